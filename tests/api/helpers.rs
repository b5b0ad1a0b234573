//! Test harness: a database per test, the real application on a random port, and a
//! small GraphQL client.
//!
//! PostgreSQL tests run when `QUIRE_TEST_POSTGRES_URL` names a server (such as
//! `postgres://postgres@127.0.0.1:5432/postgres`); each creates its own database and drops
//! it afterwards. Without the variable they are skipped with a notice on the terminal,
//! unless `QUIRE_TEST_REQUIRE_POSTGRES=1`, when they fail instead.

use std::{
    future::Future,
    io::Write,
    sync::{Arc, Once},
};

use quire::{
    app::App,
    config::{Config, Settings},
};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use tokio::{net::TcpListener, sync::oneshot};

/// A fixed signing key for tests that need to craft their own tokens.
pub const TEST_SECRET: &str = "test-signing-key-of-at-least-32-bytes-long!";
/// A password that satisfies the policy.
pub const PASSWORD: &str = "correct horse battery staple";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates `mod name { sqlite(), postgres() }` tests for each scenario
/// `async fn name(db: TestDb)`.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    $crate::helpers::run($crate::helpers::Backend::Sqlite, super::$name).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    $crate::helpers::run($crate::helpers::Backend::Postgres, super::$name).await;
                }
            }
        )*
    };
}

/// A database for one test.
#[derive(Clone)]
pub struct TestDb {
    /// The `DATABASE_URL` the application uses.
    pub url: String,
    _dir: Option<Arc<tempfile::TempDir>>,
    postgres: Option<(String, String)>,
}

/// Runs `scenario` on a fresh database of `backend`, then removes the database, even
/// when the scenario fails.
pub async fn run<F, Fut>(backend: Backend, scenario: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let outcome = tokio::spawn(scenario(db.clone())).await;
    db.remove().await;
    if let Err(e) = outcome {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic());
        }
        panic!("scenario did not finish: {e}");
    }
}

fn postgres_server_url() -> Option<String> {
    static NOTICE: Once = Once::new();
    match std::env::var("QUIRE_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("QUIRE_TEST_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!("QUIRE_TEST_REQUIRE_POSTGRES=1 but QUIRE_TEST_POSTGRES_URL is not set");
            }
            // Written straight to the terminal: the test harness captures only `eprintln!`.
            NOTICE.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "\n*** NOTICE: QUIRE_TEST_POSTGRES_URL is not set: every PostgreSQL test is \
                     SKIPPED (reported as passed without running). Set it to a server URL, e.g. \
                     postgres://postgres@127.0.0.1:5432/postgres ***\n"
                );
            });
            None
        }
    }
}

/// Replaces the database name in a PostgreSQL URL.
fn with_database(server: &str, name: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (server, None),
    };
    let (scheme, rest) = base.split_once("://").expect("a postgres:// URL");
    let authority = rest.split('/').next().unwrap_or(rest);
    let mut url = format!("{scheme}://{authority}/{name}");
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

/// Another fresh database on the same engine as `db`; the caller removes it.
pub async fn fresh_like(db: &TestDb) -> TestDb {
    let backend = if db.postgres.is_some() {
        Backend::Postgres
    } else {
        Backend::Sqlite
    };
    TestDb::create(backend).await.expect("a second database")
}

impl TestDb {
    async fn create(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let url = format!("sqlite://{}", dir.path().join("quire.db").display());
                Some(Self {
                    url,
                    _dir: Some(Arc::new(dir)),
                    postgres: None,
                })
            }
            Backend::Postgres => {
                let server = postgres_server_url()?;
                let name = format!("quire_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = PgConnection::connect(&server)
                    .await
                    .unwrap_or_else(|e| panic!("cannot reach QUIRE_TEST_POSTGRES_URL: {e}"));
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("CREATE DATABASE");
                conn.close().await.ok();
                Some(Self {
                    url: with_database(&server, &name),
                    _dir: None,
                    postgres: Some((server, name)),
                })
            }
        }
    }

    /// `sqlite` or `postgres`, for naming what a test leaves behind.
    pub fn backend_name(&self) -> &'static str {
        if self.postgres.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    }

    /// Drops the database (PostgreSQL; a SQLite file goes with its directory).
    pub async fn remove(&self) {
        if let Some((server, name)) = &self.postgres
            && let Ok(mut conn) = PgConnection::connect(server).await
        {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await;
            conn.close().await.ok();
        }
    }

    /// Settings for an application on this database, with the documented defaults but
    /// for brute-force protection, which is off unless a test turns it on: the stories
    /// sign in far more often than any person would.
    pub fn settings(&self) -> Settings {
        let mut settings = Settings::default();
        settings.common.database_url =
            quire::config::DatabaseUrl::parse(&self.url).expect("a database URL");
        settings.serving.throttle.enabled = false;
        settings
    }

    /// Starts the application with default settings.
    pub async fn spawn(&self) -> TestApp {
        self.spawn_with(|_| {}).await
    }

    /// Starts the application with adjusted settings.
    pub async fn spawn_with(&self, adjust: impl FnOnce(&mut Settings)) -> TestApp {
        let mut settings = self.settings();
        adjust(&mut settings);
        let config = Config::new(settings).expect("valid test settings");
        let app = App::start(&config).await.expect("the application starts");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let addr = listener.local_addr().expect("a bound address");
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(app.clone().serve(listener, async {
            let _ = stopped.await;
        }));
        TestApp {
            remote: Remote::new(format!("http://{addr}")),
            app,
            _stop: stop,
        }
    }
}

/// A running application and a client for it.
pub struct TestApp {
    remote: Remote,
    pub app: App,
    _stop: oneshot::Sender<()>,
}

impl std::ops::Deref for TestApp {
    type Target = Remote;

    fn deref(&self) -> &Remote {
        &self.remote
    }
}

/// A client of a server at `base`: one in the test's runtime, or a process of its own.
pub struct Remote {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    pub client: reqwest::Client,
}

/// What a client sees of one GraphQL response.
#[derive(Debug, Clone)]
pub struct Gql {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Gql {
    /// `data` at a path such as `me.username`.
    pub fn data(&self, path: &str) -> &Value {
        let mut v = &self.body["data"];
        for key in path.split('.') {
            v = &v[key];
        }
        v
    }

    /// Panics unless the response has no errors.
    pub fn ok(self) -> Self {
        assert!(
            self.body.get("errors").is_none(),
            "expected no errors, got {}",
            self.body
        );
        self
    }

    /// The first error.
    pub fn error(&self) -> &Value {
        &self.body["errors"][0]
    }

    /// The `extensions.code` of the first error.
    pub fn code(&self) -> &str {
        self.error()["extensions"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("expected an error with a code, got {}", self.body))
    }

    /// The first error's message.
    pub fn message(&self) -> &str {
        self.error()["message"].as_str().unwrap_or("")
    }
}

/// Tokens of a signed-in session.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

impl Tokens {
    /// Tokens from a `login` response.
    pub fn from_login(res: &Gql) -> Self {
        Self::from_payload(res.data("login"))
    }

    fn from_payload(p: &Value) -> Self {
        Self {
            access: p["accessToken"].as_str().expect("accessToken").to_owned(),
            refresh: p["refreshToken"].as_str().expect("refreshToken").to_owned(),
        }
    }
}

pub const AUTH_FIELDS: &str =
    "accessToken refreshToken tokenType expiresIn user { id username email role createdAt }";

impl Remote {
    /// A client of the server at `base`.
    pub fn new(base: String) -> Self {
        Self {
            base,
            client: reqwest::Client::new(),
        }
    }

    /// Sends a GraphQL request, with an access token when given.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Gql {
        self.gql_with(token, &[], query, variables).await
    }

    /// Sends a GraphQL request with extra headers.
    pub async fn gql_with(
        &self,
        token: Option<&str>,
        headers: &[(&str, &str)],
        query: &str,
        variables: Value,
    ) -> Gql {
        let mut req = self
            .client
            .post(format!("{}/graphql", self.base))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let res = req.send().await.expect("the server answers");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res.json().await.expect("a JSON body");
        Gql {
            status,
            headers,
            body,
        }
    }

    pub async fn register(&self, email: &str, username: &str, password: &str) -> Gql {
        self.gql(
            None,
            &format!(
                "mutation($input: RegisterInput!) {{ register(input: $input) {{ {AUTH_FIELDS} }} }}"
            ),
            json!({ "input": { "email": email, "username": username, "password": password } }),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Gql {
        self.gql(
            None,
            &format!(
                "mutation($input: LoginInput!) {{ login(input: $input) {{ {AUTH_FIELDS} }} }}"
            ),
            json!({ "input": { "email": email, "password": password } }),
        )
        .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Gql {
        self.gql(
            None,
            &format!("mutation($t: String) {{ refresh(refreshToken: $t) {{ {AUTH_FIELDS} }} }}"),
            json!({ "t": refresh_token }),
        )
        .await
    }

    /// Registers `username` (with `username@example.com`) and returns its tokens.
    pub async fn signed_up(&self, username: &str) -> Tokens {
        let res = self
            .register(&format!("{username}@example.com"), username, PASSWORD)
            .await
            .ok();
        Tokens::from_payload(res.data("register"))
    }

    /// Logs `username` in again, starting another session.
    pub async fn signed_in(&self, username: &str) -> Tokens {
        let res = self
            .login(&format!("{username}@example.com"), PASSWORD)
            .await
            .ok();
        Tokens::from_payload(res.data("login"))
    }

    /// Tokens from a `refresh` response.
    pub fn tokens(res: &Gql) -> Tokens {
        Tokens::from_payload(res.data("refresh"))
    }

    /// `me { id username }` with `token`.
    pub async fn me(&self, token: &str) -> Gql {
        self.gql(Some(token), "{ me { id username email role } }", json!({}))
            .await
    }

    /// A GET request to `path`.
    pub async fn get(&self, path: &str, accept: Option<&str>) -> reqwest::Response {
        let mut req = self.client.get(format!("{}{path}", self.base));
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        req.send().await.expect("the server answers")
    }
}

/// Runs the `quire` binary with `args` and `DATABASE_URL`, feeding `stdin`, on the
/// blocking pool so that the server under test keeps its async threads.
pub async fn quire(database_url: Option<&str>, args: &[&str], stdin: &str) -> std::process::Output {
    let url = database_url.map(str::to_owned);
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let stdin = stdin.to_owned();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        quire_env(url.as_deref(), &args, &[], &stdin)
    })
    .await
    .expect("the quire binary ran")
}

/// Runs the `quire` binary with extra environment variables, in a fresh directory.
pub fn quire_env(
    database_url: Option<&str>,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: &str,
) -> std::process::Output {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut vars: Vec<(&str, &str)> = env.to_vec();
    if let Some(url) = database_url {
        vars.push(("DATABASE_URL", url));
    }
    quire_in(dir.path(), args, &vars, stdin)
}

/// Runs the `quire` binary in `dir` (where it reads `.env`), with only the given
/// settings in its environment.
pub fn quire_in(
    dir: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: &str,
) -> std::process::Output {
    use std::process::{Command, Stdio};
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quire"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env("QUIRE_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars() {
        if key.starts_with("QUIRE_") && key != "QUIRE_LOG" {
            cmd.env_remove(key);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("the quire binary runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("quire finishes")
}

/// The fields of a post most tests look at.
pub const POST_FIELDS: &str =
    "id title body published createdAt updatedAt voteCount viewerHasVoted author { id username }";

impl TestApp {
    /// Makes an administrator the way `quire create-user --role admin` does, and signs
    /// them in.
    pub async fn admin(&self, username: &str) -> Tokens {
        use quire::auth::register::NewAccount;
        self.app
            .auth
            .create_user(
                NewAccount {
                    email: &format!("{username}@example.com"),
                    username,
                    password: PASSWORD,
                },
                quire::db::users::Role::Admin,
            )
            .await
            .expect("the administrator is created");
        self.signed_in(username).await
    }

    /// Gives `email`'s account a hash of [`PASSWORD`] made with cheaper, older argon2
    /// parameters, as an account from an older release would have; returns the account's
    /// id and that hash.
    pub async fn give_an_old_hash(&self, email: &str) -> (uuid::Uuid, String) {
        use argon2::{
            Algorithm, Argon2, Params, PasswordHasher, Version,
            password_hash::{SaltString, rand_core::OsRng},
        };
        use quire::db::users;
        let old = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(4096, 1, 1, None).unwrap(),
        )
        .hash_password(PASSWORD.as_bytes(), &SaltString::generate(&mut OsRng))
        .unwrap()
        .to_string();
        let mut conn = self.app.db.acquire().await.unwrap();
        let user = users::find_by_email_key(&mut conn, email)
            .await
            .unwrap()
            .expect("the account exists");
        let replaced = users::replace_password_hash(
            &mut conn,
            user.id,
            &user.password_hash,
            &old,
            quire::db::now(),
        )
        .await
        .unwrap();
        assert!(replaced);
        (user.id, old)
    }
}

impl Remote {
    /// Writes a post as `token` and returns its id.
    pub async fn post(&self, token: &str, title: &str, published: bool) -> String {
        let res = self
            .gql(
                Some(token),
                "mutation($i: CreatePostInput!) { createPost(input: $i) { id } }",
                json!({ "i": { "title": title, "body": format!("The text of {title}."), "published": published } }),
            )
            .await
            .ok();
        res.data("createPost.id").as_str().unwrap().to_owned()
    }

    /// The id of the user `token` belongs to.
    pub async fn user_id(&self, token: &str) -> String {
        self.me(token)
            .await
            .ok()
            .data("me.id")
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// Counting the SQL statements each request sends, from the events sqlx logs for every
/// statement it executes, grouped by the request id of the span they happen in.
pub mod statements {
    use std::{
        collections::HashMap,
        sync::{LazyLock, Mutex, Once},
    };

    use tracing::{
        Subscriber,
        field::{Field, Visit},
        span,
    };
    use tracing_subscriber::{
        Layer, filter::filter_fn, layer::Context, prelude::*, registry::LookupSpan,
    };

    static COUNTS: LazyLock<Mutex<HashMap<String, Vec<String>>>> = LazyLock::new(Default::default);

    struct RequestId(String);

    struct Visitor(Option<String>);

    impl Visit for Visitor {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "request_id" {
                self.0 = Some(format!("{value:?}"));
            }
        }
    }

    struct Statement(Option<String>);

    impl Visit for Statement {
        fn record_str(&mut self, field: &Field, value: &str) {
            if field.name() == "db.statement" || field.name() == "summary" {
                self.0.get_or_insert_with(|| value.to_owned());
            }
        }
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "summary" {
                self.0.get_or_insert_with(|| format!("{value:?}"));
            }
        }
    }

    struct Counter;

    impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Counter {
        fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
            if attrs.metadata().name() != "request" {
                return;
            }
            let mut visitor = Visitor(None);
            attrs.record(&mut visitor);
            if let (Some(request_id), Some(span)) = (visitor.0, ctx.span(id)) {
                span.extensions_mut().insert(RequestId(request_id));
            }
        }

        fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
            let Some(scope) = ctx.event_scope(event) else {
                return;
            };
            for span in scope {
                if let Some(RequestId(id)) = span.extensions().get::<RequestId>() {
                    let mut statement = Statement(None);
                    event.record(&mut statement);
                    COUNTS
                        .lock()
                        .unwrap()
                        .entry(id.clone())
                        .or_default()
                        .push(statement.0.unwrap_or_default());
                    return;
                }
            }
        }
    }

    /// Starts counting (once per test process).
    pub fn install() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            let filter = filter_fn(|meta| {
                meta.target() == "sqlx::query" || (meta.is_span() && meta.name() == "request")
            });
            let _ = tracing_subscriber::registry()
                .with(Counter.with_filter(filter))
                .try_init();
        });
    }

    /// The statements sent while serving the request with this id. Setting up a
    /// connection the pool happens to open meanwhile (SQLite's PRAGMAs) is not counted:
    /// it belongs to the pool, once per connection, not to the request.
    pub fn sent_by(request_id: &str) -> Vec<String> {
        COUNTS
            .lock()
            .unwrap()
            .get(request_id)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|s| !s.starts_with("PRAGMA "))
            .collect()
    }
}

/// A `quire serve` process of its own, with its own threads: for attacks that would stall
/// a server sharing the test's runtime, and for what only a process shows (a crash).
/// Killed when dropped.
pub struct Process {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    child: std::process::Child,
    /// Its log lines, when they are kept.
    logs: Option<Arc<std::sync::Mutex<Vec<String>>>>,
}

impl TestDb {
    /// Starts `quire serve` on this database with `env` besides the defaults (brute-force
    /// protection off, as in [`TestDb::settings`]), and waits until it listens.
    pub async fn serve_process(&self, env: &[(&str, &str)]) -> Process {
        self.start_process(env, false).await
    }

    /// [`TestDb::serve_process`], keeping every line the process logs for
    /// [`Process::logs`].
    pub async fn serve_process_logged(&self, env: &[(&str, &str)]) -> Process {
        self.start_process(env, true).await
    }

    async fn start_process(&self, env: &[(&str, &str)], keep_logs: bool) -> Process {
        use std::{
            io::{BufRead, BufReader},
            process::{Command, Stdio},
        };
        let url = self.url.clone();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        tokio::task::spawn_blocking(move || {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_quire"));
            for (key, _) in std::env::vars() {
                if key.starts_with("QUIRE_") {
                    cmd.env_remove(key);
                }
            }
            cmd.arg("serve")
                .env("DATABASE_URL", &url)
                .env("QUIRE_LISTEN", "127.0.0.1:0")
                .env("QUIRE_LOG", "info")
                .env("QUIRE_RATE_LIMIT", "off")
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            for (key, value) in &env {
                cmd.env(key, value);
            }
            let mut child = cmd.spawn().expect("quire serve starts");
            let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
            let mut seen = Vec::new();
            let address = loop {
                let Some(Ok(line)) = lines.next() else {
                    let _ = child.kill();
                    panic!("quire serve stopped before listening: {seen:#?}");
                };
                if line.contains("serving GraphQL")
                    && let Some(rest) = line.split("http://").nth(1)
                {
                    break rest.split('/').next().expect("an address").to_owned();
                }
                seen.push(line);
            };
            // Keep reading, so that the process never blocks on a full pipe.
            let logs = keep_logs.then(|| Arc::new(std::sync::Mutex::new(seen)));
            let kept = logs.clone();
            std::thread::spawn(move || {
                for line in lines.map_while(Result::ok) {
                    if let Some(kept) = &kept {
                        kept.lock().unwrap().push(line);
                    }
                }
            });
            Process {
                base: format!("http://{address}"),
                child,
                logs,
            }
        })
        .await
        .expect("the process was started")
    }
}

impl Process {
    /// The lines it logged so far (from [`TestDb::serve_process_logged`]).
    pub fn logs(&self) -> Vec<String> {
        self.logs
            .as_ref()
            .expect("a process started with its logs kept")
            .lock()
            .unwrap()
            .clone()
    }

    /// A client of it.
    pub fn remote(&self) -> Remote {
        Remote::new(self.base.clone())
    }

    /// Stops it as an orchestrator would, with SIGTERM, and waits until it has exited;
    /// returns whether it exited successfully.
    pub async fn stop(mut self) -> bool {
        let pid = self.child.id().to_string();
        let mut child = std::mem::replace(
            &mut self.child,
            std::process::Command::new("true")
                .spawn()
                .expect("a placeholder"),
        );
        tokio::task::spawn_blocking(move || {
            std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .expect("kill runs");
            child.wait().expect("it exits").success()
        })
        .await
        .unwrap()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
