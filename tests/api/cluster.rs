//! Three `quire serve` processes on one PostgreSQL database, as behind a load balancer:
//! requests rotate among them, and they must behave as one server.

use std::{
    collections::HashMap,
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use serde_json::{Value, json};

use crate::{
    helpers::{AUTH_FIELDS, Gql, PASSWORD, Process, Remote, TestDb, fresh_like, quire_env},
    subscriptions::{POST_CREATED, POST_VOTED, Ws, unvote, vote},
};

/// Generates a PostgreSQL test for each scenario `async fn name(db: TestDb)`: several
/// instances share nothing but PostgreSQL, so there is no SQLite variant.
macro_rules! on_postgres {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    $crate::helpers::run($crate::helpers::Backend::Postgres, super::$name).await;
                }
            }
        )*
    };
}

on_postgres!(
    the_address_budget_is_shared_and_exact_under_concurrency,
    failed_sign_ins_back_off_whichever_instance_they_reach,
    an_account_pauses_after_failures_spread_over_instances,
    a_failing_limiter_refuses_rather_than_waves_through,
    new_posts_and_votes_reach_subscribers_on_other_instances,
    a_sign_out_on_one_instance_closes_sockets_on_the_others_at_once,
    a_session_ended_on_one_instance_is_refused_on_the_others_at_once,
    events_survive_the_listener_being_cut_off,
    an_instance_with_another_key_refuses_to_start,
    keys_change_without_signing_anyone_out,
    a_listener_that_hears_nothing_is_reported_at_start,
    the_limiter_keeps_no_row_that_no_longer_counts,
);

/// Three instances of quire on one database.
pub struct Cluster {
    /// The processes, killed when dropped.
    pub nodes: Vec<Process>,
    remotes: Vec<Remote>,
    next: AtomicUsize,
}

impl Cluster {
    /// Starts three instances on `db` with `env` (besides the test defaults), one after
    /// the other, so that the first creates the tables and the signing key.
    pub async fn start(db: &TestDb, env: &[(&str, &str)]) -> Self {
        let mut nodes = Vec::new();
        for _ in 0..3 {
            nodes.push(db.serve_process_logged(env).await);
        }
        let remotes = nodes.iter().map(Process::remote).collect();
        Self {
            nodes,
            remotes,
            next: AtomicUsize::new(0),
        }
    }

    /// Instance `i` (0, 1 or 2: A, B, C).
    pub fn node(&self, i: usize) -> &Remote {
        &self.remotes[i]
    }

    /// The next instance in turn, as a round-robin load balancer would pick.
    pub fn any(&self) -> &Remote {
        &self.remotes[self.next.fetch_add(1, Ordering::Relaxed) % self.remotes.len()]
    }
}

/// Brute-force protection on, with the documented defaults unless `env` says otherwise,
/// trusting the test as a proxy so that each request can come from an address of its own.
fn protected<'a>(env: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut all = vec![
        ("QUIRE_RATE_LIMIT", "on"),
        ("QUIRE_TRUSTED_PROXIES", "127.0.0.1"),
    ];
    all.extend_from_slice(env);
    all
}

async fn login_from(node: &Remote, address: &str, email: &str, password: &str) -> Gql {
    node.gql_with(
        None,
        &[("x-forwarded-for", address)],
        "mutation($input: LoginInput!) { login(input: $input) { accessToken } }",
        json!({ "input": { "email": email, "password": password } }),
    )
    .await
}

async fn the_address_budget_is_shared_and_exact_under_concurrency(db: TestDb) {
    // A budget of 10 at once, refilled by one an hour: nothing comes back during the test.
    let cluster = Cluster::start(
        &db,
        &protected(&[
            ("QUIRE_RATE_LIMIT_PER_MINUTE", "1"),
            ("QUIRE_RATE_LIMIT_BURST", "10"),
        ]),
    )
    .await;
    // 30 refreshes with unknown tokens from one address, all at once, spread over the
    // three instances: exactly 10 are looked at, whichever instance they reach.
    let attempts = (0..30).map(|i| {
        let node = cluster.node(i % 3);
        async move {
            node.gql_with(
                None,
                &[("x-forwarded-for", "198.51.100.7")],
                "mutation { refresh(refreshToken: \"not-a-token\") { accessToken } }",
                json!({}),
            )
            .await
        }
    });
    let answers = futures::future::join_all(attempts).await;
    let codes: Vec<&str> = answers.iter().map(Gql::code).collect();
    let limited = codes.iter().filter(|c| **c == "RATE_LIMITED").count();
    assert_eq!(limited, 20, "{codes:?}");
    assert_eq!(
        codes.iter().filter(|c| **c == "UNAUTHENTICATED").count(),
        10,
        "{codes:?}"
    );
    // Sign-ins draw on the same budget, in the statement that counts them as failed
    // ahead: refused by the budget, none of them counts against the account.
    let attempts =
        (0..30).map(|i| login_from(cluster.node(i % 3), "198.51.100.7", "x@example.com", "pw"));
    let answers = futures::future::join_all(attempts).await;
    for res in &answers {
        assert_eq!(res.code(), "RATE_LIMITED", "{}", res.body);
        assert!(
            res.body.to_string().contains("attempts from this address"),
            "{}",
            res.body
        );
    }
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    let counted: i64 = sqlx::query_scalar("SELECT count(*) FROM throttle_failures")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(counted, 0, "refused sign-ins were counted as failures");
    // Another address has its own budget, on every instance.
    for i in 0..3 {
        let res = login_from(cluster.node(i), "198.51.100.8", "x@example.com", "pw").await;
        assert_eq!(res.code(), "UNAUTHENTICATED", "{}", res.body);
    }
}

async fn failed_sign_ins_back_off_whichever_instance_they_reach(db: TestDb) {
    let cluster = Cluster::start(&db, &protected(&[])).await;
    let email = "ada@example.com";
    cluster.any().register(email, "ada", PASSWORD).await.ok();
    // Five wrong passwords from one address, each to the next instance.
    for _ in 0..5 {
        let res = login_from(cluster.any(), "198.51.100.20", email, "wrong password").await;
        assert_eq!(res.code(), "UNAUTHENTICATED", "{}", res.body);
    }
    // The sixth waits, on every instance, even with the right password.
    for i in 0..3 {
        let res = login_from(cluster.node(i), "198.51.100.20", email, PASSWORD).await;
        assert_eq!(res.code(), "RATE_LIMITED", "instance {i}: {}", res.body);
        assert!(res.message().contains("failed sign-ins"), "{}", res.body);
    }
    // Another address is not held back.
    let res = login_from(cluster.any(), "198.51.100.21", email, PASSWORD).await;
    assert!(res.data("login.accessToken").is_string(), "{}", res.body);
}

async fn an_account_pauses_after_failures_spread_over_instances(db: TestDb) {
    let cluster = Cluster::start(&db, &protected(&[])).await;
    let email = "bob@example.com";
    cluster.any().register(email, "bob", PASSWORD).await.ok();
    // 100 wrong passwords, each from an address of its own, over the three instances:
    // no address and no instance sees more than a few.
    for batch in 0..10 {
        let attempts = (0..10).map(|i| {
            let node = cluster.any();
            let address = format!("203.0.113.{}", batch * 10 + i + 1);
            async move { login_from(node, &address, email, "wrong password").await }
        });
        for res in futures::future::join_all(attempts).await {
            assert_eq!(res.code(), "UNAUTHENTICATED", "{}", res.body);
        }
    }
    // The account is paused for everyone else, on every instance.
    for i in 0..3 {
        let res = login_from(cluster.node(i), "192.0.2.200", email, PASSWORD).await;
        assert_eq!(res.code(), "RATE_LIMITED", "instance {i}: {}", res.body);
        assert!(res.message().contains("this account"), "{}", res.body);
        let wait = res.error()["extensions"]["retryAfter"].as_u64().unwrap();
        assert!((850..=900).contains(&wait), "about 15 minutes: {wait}");
    }
}

async fn a_failing_limiter_refuses_rather_than_waves_through(db: TestDb) {
    let cluster = Cluster::start(&db, &protected(&[])).await;
    let email = "cyd@example.com";
    cluster.any().register(email, "cyd", PASSWORD).await.ok();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    let sessions = async |conn: &mut sqlx::PgConnection| -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM sessions")
            .fetch_one(conn)
            .await
            .unwrap()
    };
    let before = sessions(&mut conn).await;
    // The limiter's table goes away: its statement fails on every instance.
    sqlx::query("ALTER TABLE throttle_buckets RENAME TO throttle_buckets_gone")
        .execute(&mut conn)
        .await
        .unwrap();
    for i in 0..3 {
        let res = login_from(cluster.node(i), "198.51.100.30", email, PASSWORD).await;
        assert_eq!(res.code(), "INTERNAL_SERVER_ERROR", "{}", res.body);
        assert!(res.body["data"]["login"].is_null(), "{}", res.body);
        assert!(
            !res.message().contains("throttle"),
            "no SQL in the answer: {}",
            res.body
        );
    }
    assert_eq!(sessions(&mut conn).await, before, "no session was started");
    // Each instance says why in its log.
    for node in &cluster.nodes {
        let logs = node.logs().join("\n");
        assert!(logs.contains("the limiter's store failed"), "{logs}");
    }
    // Back again, sign-ins work.
    sqlx::query("ALTER TABLE throttle_buckets_gone RENAME TO throttle_buckets")
        .execute(&mut conn)
        .await
        .unwrap();
    let res = login_from(cluster.any(), "198.51.100.30", email, PASSWORD).await;
    assert!(res.data("login.accessToken").is_string(), "{}", res.body);
}

async fn new_posts_and_votes_reach_subscribers_on_other_instances(db: TestDb) {
    let cluster = Cluster::start(&db, &[]).await;
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let writer = a.signed_up("writer").await;
    let reader = c.signed_up("reader").await;
    let mut on_c = Ws::signed_in(c, &reader.access).await;
    let mut on_b = Ws::signed_in(b, &reader.access).await;
    for ws in [&mut on_c, &mut on_b] {
        ws.subscribe("1", POST_CREATED, json!({})).await;
        assert_eq!(ws.round_trip().await, Vec::<Value>::new());
    }
    // Written on A, heard on C (and B); written on C, heard on B (and C).
    let from_a = a.post(&writer.access, "From A", true).await;
    let from_c = c.post(&writer.access, "From C", true).await;
    // Each subscriber hears both, in either order: one arrives from its own instance at
    // once, the other through the database.
    let expected = |id: &str, title: &str| {
        json!({
            "id": id,
            "title": title,
            "published": true,
            "author": { "username": "writer" },
        })
    };
    for ws in [&mut on_c, &mut on_b] {
        let mut heard = vec![
            ws.next_data("1").await["postCreated"].clone(),
            ws.next_data("1").await["postCreated"].clone(),
        ];
        heard.sort_by_key(|post| post["title"].as_str().unwrap_or_default().to_owned());
        assert_eq!(
            heard,
            vec![expected(&from_a, "From A"), expected(&from_c, "From C")]
        );
    }
    // A draft written on A is announced nowhere.
    a.post(&writer.access, "Not yet", false).await;

    // Votes given on C and withdrawn on A reach a follower on B.
    on_b.subscribe("2", POST_VOTED, json!({ "id": from_a }))
        .await;
    assert_eq!(on_b.next_data("2").await["postVoted"]["voteCount"], 0);
    vote(c, &writer.access, &from_a).await;
    assert_eq!(on_b.next_data("2").await["postVoted"]["voteCount"], 1);
    vote(a, &reader.access, &from_a).await;
    let voted = on_b.next_data("2").await;
    assert_eq!(voted["postVoted"]["voteCount"], 2);
    assert_eq!(voted["postVoted"]["viewerHasVoted"], true, "{voted}");
    unvote(a, &writer.access, &from_a).await;
    assert_eq!(on_b.next_data("2").await["postVoted"]["voteCount"], 1);
    // Nothing twice, nothing else.
    for ws in [&mut on_c, &mut on_b] {
        ws.stays_open().await;
    }
}

async fn a_sign_out_on_one_instance_closes_sockets_on_the_others_at_once(db: TestDb) {
    let cluster = Cluster::start(&db, &[]).await;
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let laptop = a.signed_up("ada").await;
    let phone = b.signed_in("ada").await;
    let mut on_a = Ws::signed_in(a, &laptop.access).await;
    let mut phone_on_c = Ws::signed_in(c, &phone.access).await;
    for ws in [&mut on_a, &mut phone_on_c] {
        ws.subscribe("1", POST_CREATED, json!({})).await;
        assert_eq!(ws.round_trip().await, Vec::<Value>::new());
    }
    // Signed out on B: the laptop's socket on A closes within a second, not at the
    // minute's recheck; the phone's session is another, and its socket stays.
    b.gql(Some(&laptop.access), "mutation { logout }", json!({}))
        .await
        .ok();
    assert_eq!(on_a.closed(Duration::from_secs(1)).await, 4401);
    phone_on_c.stays_open().await;
    // A password changed on A ends the other sessions: the phone's socket on C closes.
    let fresh = a.signed_in("ada").await;
    a.gql(
        Some(&fresh.access),
        "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }",
        json!({ "c": PASSWORD, "n": "another correct horse battery" }),
    )
    .await
    .ok();
    assert_eq!(phone_on_c.closed(Duration::from_secs(1)).await, 4401);
}

/// Sends `me` to `node` until it is refused, for at most a second: each instance keeps
/// sessions it knows to be live for five seconds unless it hears they ended, so a refusal
/// within a second is the notice's doing.
async fn refused_within_a_second(node: &Remote, token: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    loop {
        let res = node.me(token).await;
        if res.body["errors"].is_array() {
            assert_eq!(res.code(), "UNAUTHENTICATED", "{}", res.body);
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still served a second after the session ended: {}",
            res.body
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn a_session_ended_on_one_instance_is_refused_on_the_others_at_once(db: TestDb) {
    let cluster = Cluster::start(&db, &[]).await;
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let laptop = a.signed_up("ada").await;
    let phone = b.signed_in("ada").await;
    // Known to be live on every instance.
    for node in [a, b, c] {
        for tokens in [&laptop, &phone] {
            node.me(&tokens.access).await.ok();
            node.me(&tokens.access).await.ok();
        }
    }
    // Ended on A: refused there at once, and on B and C as soon as they hear of it.
    a.gql(Some(&laptop.access), "mutation { logout }", json!({}))
        .await
        .ok();
    assert_eq!(a.me(&laptop.access).await.code(), "UNAUTHENTICATED");
    refused_within_a_second(b, &laptop.access).await;
    refused_within_a_second(c, &laptop.access).await;
    // The other session of the same account is still served everywhere.
    for node in [a, b, c] {
        node.me(&phone.access).await.ok();
    }
    // Every session ended by a password change on C, the one that changed it aside.
    let fresh = c.signed_in("ada").await;
    for node in [a, b] {
        node.me(&fresh.access).await.ok();
    }
    c.gql(
        Some(&fresh.access),
        "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }",
        json!({ "c": PASSWORD, "n": "another correct horse battery" }),
    )
    .await
    .ok();
    refused_within_a_second(a, &phone.access).await;
    refused_within_a_second(b, &phone.access).await;
    for node in [a, b, c] {
        node.me(&fresh.access).await.ok();
    }
}

async fn events_survive_the_listener_being_cut_off(db: TestDb) {
    let cluster = Cluster::start(&db, &[]).await;
    let (a, c) = (cluster.node(0), cluster.node(2));
    let writer = a.signed_up("writer").await;
    let reader = c.signed_up("reader").await;
    let mut on_c = Ws::signed_in(c, &reader.access).await;
    on_c.subscribe("1", POST_CREATED, json!({})).await;
    assert_eq!(on_c.round_trip().await, Vec::<Value>::new());
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    // Posts written on A while every instance's listener is cut off partway through.
    let mut written = Vec::new();
    for i in 0..30 {
        if i == 10 {
            let cut: Vec<bool> = sqlx::query_scalar(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = 'quire-listener' AND datname = current_database()",
            )
            .fetch_all(&mut admin)
            .await
            .unwrap();
            assert_eq!(cut, vec![true; 3], "one listener per instance");
        }
        written.push(a.post(&writer.access, &format!("Post {i}"), true).await);
    }
    // Each reaches C exactly once, those written while it was cut off by its catch-up.
    let mut heard: HashMap<String, usize> = HashMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while heard.len() < written.len() && std::time::Instant::now() < deadline {
        let Some(message) = on_c.try_next_json(Duration::from_secs(1)).await else {
            continue;
        };
        let id = message["payload"]["data"]["postCreated"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("a new post: {message}"))
            .to_owned();
        *heard.entry(id).or_default() += 1;
    }
    for id in &written {
        assert_eq!(heard.get(id), Some(&1), "post {id}: {heard:?}");
    }
    on_c.stays_open().await;
    assert_eq!(heard.len(), written.len(), "{heard:?}");
    // The reconnection shows in C's metrics.
    let metrics = c.get("/metrics", None).await.text().await.unwrap();
    let reconnects = metrics
        .lines()
        .find(|l| l.starts_with("events_listener_reconnects_total"))
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(!reconnects.ends_with(" 0"), "{reconnects}");
    assert!(
        metrics.contains("events_listener_connected 1"),
        "connected again: {metrics}"
    );
}

/// Two signing keys, as an operator would generate them.
const OLD_KEY: &str = "the-old-signing-key-of-at-least-32-bytes";
const NEW_KEY: &str = "the-new-signing-key-of-at-least-32-bytes";

/// Runs `quire serve` on `db` with `env` until it exits, which it should at once.
async fn refused_start(db: &TestDb, env: &[(&str, &str)]) -> String {
    let url = db.url.clone();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let out = tokio::task::spawn_blocking(move || {
        let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (&**k, &**v)).collect();
        env.push(("QUIRE_LISTEN", "127.0.0.1:0"));
        quire_env(Some(&url), &["serve"], &env, "")
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "it should not serve: {stderr}");
    assert!(!stderr.contains("serving GraphQL"), "{stderr}");
    stderr
}

async fn an_instance_with_another_key_refuses_to_start(db: TestDb) {
    let a = db.serve_process(&[("QUIRE_JWT_SECRET", OLD_KEY)]).await;
    // Another key, or none (the key generated in the database), is refused while A runs.
    let stderr = refused_start(&db, &[("QUIRE_JWT_SECRET", NEW_KEY)]).await;
    assert!(stderr.contains("QUIRE_JWT_SECRET differs"), "{stderr}");
    assert!(stderr.contains("key id"), "{stderr}");
    assert!(
        !stderr.contains(NEW_KEY) && !stderr.contains(OLD_KEY),
        "no key: {stderr}"
    );
    let stderr = refused_start(&db, &[]).await;
    assert!(stderr.contains("QUIRE_JWT_SECRET differs"), "{stderr}");
    // The same key joins.
    let b = db.serve_process(&[("QUIRE_JWT_SECRET", OLD_KEY)]).await;
    let t = a.remote().signed_up("ada").await;
    b.remote().me(&t.access).await.ok();
    // Once both have stopped, a lone instance may start with another key (signing
    // everyone out, as the docs say).
    assert!(a.stop().await, "a clean exit");
    assert!(b.stop().await, "a clean exit");
    let c = db.serve_process(&[("QUIRE_JWT_SECRET", NEW_KEY)]).await;
    assert_eq!(c.remote().me(&t.access).await.code(), "UNAUTHENTICATED");
    // Each instance exports its clock's offset from the database's.
    let metrics = c.remote().get("/metrics", None).await.text().await.unwrap();
    let offset: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("clock_offset_seconds "))
        .unwrap_or_else(|| panic!("{metrics}"))
        .parse()
        .unwrap();
    assert!(offset.abs() < 1.0, "same machine: {offset}");
}

async fn keys_change_without_signing_anyone_out(db: TestDb) {
    let old = [("QUIRE_JWT_SECRET", OLD_KEY)];
    let a = db.serve_process(&old).await;
    let b = db.serve_process(&old).await;
    let before = a.remote().signed_up("ada").await;
    // Straight to the new key: refused, since A and B would refuse its tokens.
    let next = [
        ("QUIRE_JWT_SECRET", NEW_KEY),
        ("QUIRE_JWT_PREVIOUS_SECRET", OLD_KEY),
    ];
    let stderr = refused_start(&db, &next).await;
    assert!(stderr.contains("does not accept"), "{stderr}");
    // Step one: each instance restarts accepting the new key.
    let accepting = [
        ("QUIRE_JWT_SECRET", OLD_KEY),
        ("QUIRE_JWT_PREVIOUS_SECRET", NEW_KEY),
    ];
    assert!(a.stop().await);
    let a = db.serve_process(&accepting).await;
    assert!(b.stop().await);
    let b = db.serve_process(&accepting).await;
    // Step two: each restarts signing with it. Halfway, tokens from either work on both.
    assert!(a.stop().await);
    let a_process = db.serve_process(&next).await;
    let (a, b) = (a_process.remote(), b.remote());
    let signed_by_new = a.signed_in("ada").await;
    b.me(&signed_by_new.access).await.ok();
    a.me(&before.access).await.ok();
    // A refresh token from before is rotated by the new key's instance; the same token
    // retried at once on the old key's instance gets the same successor, not a theft
    // alarm.
    let refresh = |node: &Remote, token: String| {
        let node = node.base.clone();
        async move {
            Remote::new(node)
                .gql(
                    None,
                    &format!(
                        "mutation($t: String) {{ refresh(refreshToken: $t) {{ {AUTH_FIELDS} }} }}"
                    ),
                    json!({ "t": token }),
                )
                .await
        }
    };
    let first = Remote::tokens(&refresh(&a, before.refresh.clone()).await.ok());
    let again = Remote::tokens(&refresh(&b, before.refresh.clone()).await.ok());
    // Each answer carries that successor, sealed with its instance's key; either works
    // everywhere, and rotates the session once.
    for tokens in [&first, &again] {
        a.me(&tokens.access).await.ok();
        b.me(&tokens.access).await.ok();
    }
    let rotated = Remote::tokens(&refresh(&b, first.refresh.clone()).await.ok());
    a.me(&rotated.access).await.ok();
    // Every session from before still works: nobody was signed out.
    a.me(&before.access).await.ok();
    b.me(&signed_by_new.access).await.ok();
}

async fn a_listener_that_hears_nothing_is_reported_at_start(db: TestDb) {
    // Its own database: the test notification comes back, and nothing is said.
    let fine = db.serve_process_logged(&[]).await;
    let logs = fine.logs().join("\n");
    assert!(!logs.contains("did not reach the event listener"), "{logs}");
    // The listener on another database, as behind a pooler that breaks LISTEN: the
    // notification sent through DATABASE_URL never reaches it, and the log says what to do.
    let elsewhere = fresh_like(&db).await;
    let deaf = db
        .serve_process_logged(&[("QUIRE_LISTENER_DATABASE_URL", &elsewhere.url)])
        .await;
    let logs = deaf.logs().join("\n");
    assert!(logs.contains("did not reach the event listener"), "{logs}");
    assert!(logs.contains("QUIRE_LISTENER_DATABASE_URL"), "{logs}");
    // It cannot hear sessions end elsewhere, so it trusts none it read before: a session
    // ended on the other instance is refused by the deaf one at the very next request.
    let (hearing, deaf_node) = (fine.remote(), deaf.remote());
    let ada = hearing.signed_up("ada").await;
    deaf_node.me(&ada.access).await.ok();
    deaf_node.me(&ada.access).await.ok();
    hearing
        .gql(Some(&ada.access), "mutation { logout }", json!({}))
        .await
        .ok();
    assert_eq!(deaf_node.me(&ada.access).await.code(), "UNAUTHENTICATED");
    elsewhere.remove().await;
    // A listener's URL is for PostgreSQL alone.
    let stderr = refused_start(
        &db,
        &[("QUIRE_LISTENER_DATABASE_URL", "sqlite://elsewhere.db")],
    )
    .await;
    assert!(stderr.contains("QUIRE_LISTENER_DATABASE_URL"), "{stderr}");
    assert!(stderr.contains("postgres://"), "{stderr}");
}

async fn the_limiter_keeps_no_row_that_no_longer_counts(db: TestDb) {
    // A budget refilled in a tenth of a millisecond: full again almost at once.
    let app = db
        .spawn_with(|s| {
            s.serving.throttle.enabled = true;
            s.serving.throttle.per_minute = 600_000;
            s.serving.throttle.burst = 1;
            s.serving.server.trusted_proxies =
                quire::config::parse::addresses("127.0.0.1").unwrap();
        })
        .await;
    // Twenty addresses fail to sign in once each: a bucket per address, a failure count
    // per address and account, and one for the account.
    for i in 0..20 {
        let res = login_from(&app, &format!("198.51.100.{i}"), "x@example.com", "wrong").await;
        assert_eq!(res.code(), "UNAUTHENTICATED", "{}", res.body);
    }
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    let rows = async |conn: &mut sqlx::PgConnection, table: &str| -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(conn)
            .await
            .unwrap()
    };
    assert_eq!(rows(&mut conn, "throttle_buckets").await, 20);
    assert_eq!(rows(&mut conn, "throttle_failures").await, 21);
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Full buckets go; failures of the last day stay.
    let day = 24 * 3600 * 1_000_000;
    quire::db::throttle::prune(&mut conn, day).await.unwrap();
    assert_eq!(rows(&mut conn, "throttle_buckets").await, 0);
    assert_eq!(rows(&mut conn, "throttle_failures").await, 21);
    // Failures older than the horizon go too.
    quire::db::throttle::prune(&mut conn, 1).await.unwrap();
    assert_eq!(rows(&mut conn, "throttle_failures").await, 0);
}
