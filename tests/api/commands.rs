//! The command line: create-user, migrate, print-schema, and refusing bad configuration.

use serde_json::json;

use crate::helpers::{PASSWORD, TestDb, quire, quire_env, quire_in};

crate::on_both_databases!(
    create_user_makes_an_admin,
    migrate_revert_then_migrate_round_trips,
    seeding_makes_the_same_realistic_data_every_time,
);

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn create_user_makes_an_admin(db: TestDb) {
    let args = [
        "create-user",
        "--email",
        "Root@Example.com",
        "--username",
        "root",
        "--role",
        "admin",
        "--password-stdin",
    ];
    let out = quire(Some(&db.url), &args, &format!("{PASSWORD}\n")).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("created admin root <Root@Example.com>"),
        "{}",
        stdout(&out)
    );

    let app = db.spawn().await;
    let login = app.login("root@example.com", PASSWORD).await.ok();
    assert_eq!(login.data("login.user.role"), "ADMIN");
    let token = login.data("login.accessToken").as_str().unwrap();
    assert_eq!(app.me(token).await.ok().data("me.role"), "ADMIN");

    // The same rules as register apply, each refusal on one line.
    let again = quire(Some(&db.url), &args, &format!("{PASSWORD}\n")).await;
    assert!(!again.status.success());
    assert_eq!(
        stderr(&again).trim(),
        "error: this email is already registered"
    );

    let weak = quire(
        Some(&db.url),
        &[
            "create-user",
            "--email",
            "x@example.com",
            "--username",
            "x_x",
            "--password-stdin",
        ],
        "password123\n",
    )
    .await;
    assert!(!weak.status.success());
    assert!(stderr(&weak).contains("commonly used"), "{}", stderr(&weak));

    // A plain user by default.
    let user = quire(
        Some(&db.url),
        &[
            "create-user",
            "--email",
            "u@example.com",
            "--username",
            "plain",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    )
    .await;
    assert!(
        stdout(&user).starts_with("created user plain"),
        "{}",
        stderr(&user)
    );
}

async fn migrate_revert_then_migrate_round_trips(db: TestDb) {
    let out = quire(Some(&db.url), &["migrate"], "").await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "database is up to date");

    {
        let app = db.spawn().await;
        app.signed_up("before").await;
    }

    // One migration at a time, newest first, down to none.
    let mut expected: Vec<String> = migrations()
        .into_iter()
        .rev()
        .map(|(version, description)| format!("reverted migration {version} ({description})"))
        .collect();
    expected.push("no migration to revert".to_owned());
    assert_eq!(revert_all(&db.url).await, expected);

    let out = quire(Some(&db.url), &["migrate"], "").await;
    assert!(out.status.success(), "{}", stderr(&out));

    // The schema is back, empty, and works.
    let app = db.spawn().await;
    assert_eq!(
        app.login("before@example.com", PASSWORD).await.code(),
        "UNAUTHENTICATED"
    );
    let t = app.signed_up("after").await;
    app.me(&t.access).await.ok();
    let sessions = app
        .gql(Some(&t.access), "{ sessions { id } }", json!({}))
        .await
        .ok();
    assert_eq!(sessions.data("sessions").as_array().unwrap().len(), 1);
}

#[test]
fn bad_configuration_is_refused_in_one_line_naming_the_setting() {
    /// Arguments, environment, and what the error must mention.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (
            &["--access-token-ttl", "5x", "migrate"],
            &[],
            "QUIRE_ACCESS_TOKEN_TTL",
        ),
        (
            &["serve", "--access-token-ttl", "5x"],
            &[],
            "QUIRE_ACCESS_TOKEN_TTL",
        ),
        (&["--max-body", "lots"], &[], "QUIRE_MAX_BODY"),
        (
            &["migrate"],
            &[("QUIRE_REFRESH_TOKEN_TTL", "soon")],
            "QUIRE_REFRESH_TOKEN_TTL",
        ),
        (
            &["migrate"],
            &[("QUIRE_SESSION_MAX_AGE", "0s")],
            "QUIRE_SESSION_MAX_AGE",
        ),
        (
            &["migrate"],
            &[("QUIRE_REFRESH_REUSE_GRACE", "ten")],
            "QUIRE_REFRESH_REUSE_GRACE",
        ),
        (
            &["migrate"],
            &[("QUIRE_JWT_SECRET", "too-short")],
            "QUIRE_JWT_SECRET",
        ),
        (
            &["migrate"],
            &[("DATABASE_URL", "mysql://localhost/quire")],
            "DATABASE_URL",
        ),
        (
            &["migrate"],
            &[("DATABASE_URL", "postgres://quire:hunter2@127.0.0.1:1/quire")],
            "cannot connect to the database at DATABASE_URL (postgres://quire:***@127.0.0.1:1/quire): \
             error communicating with database: Connection refused",
        ),
        (
            &["migrate"],
            &[("QUIRE_LISTEN", "everywhere")],
            "QUIRE_LISTEN",
        ),
        (&["migrate"], &[("QUIRE_ENV", "staging")], "QUIRE_ENV"),
        (
            &["migrate"],
            &[("QUIRE_MAX_DEPTH", "deep")],
            "QUIRE_MAX_DEPTH",
        ),
        (
            &["migrate"],
            &[("QUIRE_MAX_BODY", "lots")],
            "QUIRE_MAX_BODY",
        ),
        (
            &["migrate"],
            &[("QUIRE_INTROSPECTION", "maybe")],
            "QUIRE_INTROSPECTION",
        ),
        (
            &["migrate"],
            &[("QUIRE_LOG_FORMAT", "xml")],
            "QUIRE_LOG_FORMAT",
        ),
        (
            &["migrate"],
            &[("QUIRE_TRUSTED_PROXIES", "10.0.0.1, proxy.local")],
            "QUIRE_TRUSTED_PROXIES",
        ),
        (
            &["migrate"],
            &[("QUIRE_RATE_LIMIT", "sometimes")],
            "QUIRE_RATE_LIMIT",
        ),
        (
            &["migrate"],
            &[("QUIRE_CORS_ORIGINS", "https://app.example.com, *")],
            "QUIRE_CORS_ORIGINS",
        ),
        (&["migrate"], &[("QUIRE_LOG", "info,[")], "QUIRE_LOG"),
    ];
    for (args, env, names) in cases {
        let out = quire_env(None, args, env, "");
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} {env:?} should fail");
        assert_eq!(err.trim().lines().count(), 1, "one line for {env:?}: {err}");
        assert!(err.starts_with("error: "), "{err}");
        assert!(err.contains(names), "{env:?}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("hunter2"),
            "{err}"
        );
    }
}

#[test]
fn flags_go_before_or_after_the_command_and_win_over_the_environment() {
    // Settings every command reads, before the command's name or after it.
    for args in [
        &["--env", "production", "migrate"][..],
        &["migrate", "--env", "prod"],
    ] {
        let out = quire_env(None, args, &[], "");
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    // The server's settings too, though only serve lists them; a flag wins over the
    // environment wherever it stands.
    let bad = [("QUIRE_MAX_BODY", "lots")];
    for args in [
        &["--max-body", "1MiB", "migrate"][..],
        &["migrate", "--max-body", "1MiB"],
    ] {
        let out = quire_env(None, args, &bad, "");
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    // For serve as well: the server then fails for want of a database, not a setting.
    let missing = "sqlite:///no/such/directory/quire.db";
    let out = quire_env(Some(missing), &["serve", "--max-body", "1MiB"], &bad, "");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("DATABASE_URL") && !stderr(&out).contains("QUIRE_MAX_BODY"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_empty_value_in_the_environment_means_unset() {
    let empty = [
        ("QUIRE_JWT_SECRET", ""),
        ("QUIRE_METRICS_LISTEN", ""),
        ("QUIRE_INTROSPECTION", ""),
        ("QUIRE_PERSISTED_DOCUMENTS", ""),
        ("QUIRE_MAX_BODY", ""),
        ("QUIRE_ENV", ""),
    ];
    let out = quire_env(None, &["migrate"], &empty, "");
    assert!(out.status.success(), "{}", stderr(&out));
    // serve gets as far as the database, which it cannot open here.
    let missing = "sqlite:///no/such/directory/quire.db";
    let out = quire_env(Some(missing), &["serve"], &empty, "");
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("DATABASE_URL") && !err.contains("invalid QUIRE_"),
        "{err}"
    );
}

#[test]
fn settings_are_read_from_a_dot_env_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "DATABASE_URL=sqlite://from-dotenv.db\n",
    )
    .unwrap();
    let out = quire_in(dir.path(), &["migrate"], &[], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.path().join("from-dotenv.db").exists());

    std::fs::write(
        dir.path().join(".env"),
        "QUIRE_ACCESS_TOKEN_TTL=fortnight\n",
    )
    .unwrap();
    let out = quire_in(dir.path(), &["migrate"], &[], "");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("QUIRE_ACCESS_TOKEN_TTL"),
        "{}",
        stderr(&out)
    );

    // The environment wins over the file.
    let out = quire_in(
        dir.path(),
        &["migrate"],
        &[("QUIRE_ACCESS_TOKEN_TTL", "5m")],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn help_documents_every_setting_with_its_environment_variable() {
    // Every setting in the configuration reference, by its environment variable.
    let reference = std::fs::read_to_string("docs/configuration.md").unwrap();
    let documented: Vec<&str> = reference
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .filter(|var| *var == "DATABASE_URL" || var.starts_with("QUIRE_"))
        .collect();
    assert!(documented.len() > 40, "{documented:?}");
    let every_command = [
        "DATABASE_URL",
        "QUIRE_DATABASE_POOL_SIZE",
        "QUIRE_ENV",
        "QUIRE_LOG",
        "QUIRE_LOG_FORMAT",
    ];
    for args in [&["--help"][..], &["serve", "--help"]] {
        let help = stdout(&quire_env(None, args, &[], ""));
        for var in &documented {
            assert!(
                help.contains(&format!("env: {var}")),
                "{args:?} lacks {var}"
            );
        }
    }
    // Other commands show only the settings they take as flags.
    for command in ["migrate", "create-user", "seed"] {
        let help = stdout(&quire_env(None, &[command, "--help"], &[], ""));
        for var in &documented {
            assert_eq!(
                help.contains(&format!("env: {var}")),
                every_command.contains(var),
                "{command} --help and {var}"
            );
        }
    }
    let help = stdout(&quire_env(None, &["--help"], &[], ""));
    for command in ["serve", "migrate", "create-user", "print-schema", "seed"] {
        assert!(help.contains(command), "--help lacks {command}");
    }
}

#[test]
fn schema_graphql_matches_print_schema() {
    let out = quire_env(None, &["print-schema"], &[], "");
    assert!(out.status.success());
    let checked_in =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
            .expect("schema.graphql at the repository root");
    assert!(
        stdout(&out) == checked_in,
        "schema.graphql is out of date: run `cargo run -- print-schema > schema.graphql`"
    );
}

async fn seeding_makes_the_same_realistic_data_every_time(db: TestDb) {
    let args = [
        "seed", "--users", "12", "--posts", "60", "--votes", "90", "--seed", "7",
    ];
    let out = quire(Some(&db.url), &args, "").await;
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = stdout(&out);
    assert!(
        summary.starts_with("seeded 12 users, 60 posts ("),
        "{summary}"
    );
    assert!(summary.contains("and 90 votes"), "{summary}");

    // The same seed twice on one database would duplicate every account: refused, untouched.
    let again = quire(Some(&db.url), &args, "").await;
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("use another seed"),
        "{}",
        stderr(&again)
    );

    let app = db.spawn().await;
    let feed =
        "{ posts(first: 100) { edges { node { title body author { username } voteCount } } } }";
    let seeded = app
        .login(
            &format!("{}@example.com", first_username(&app).await),
            quire::seed::PASSWORD,
        )
        .await
        .ok();
    let token = seeded
        .data("login.accessToken")
        .as_str()
        .unwrap()
        .to_owned();
    let first = app.gql(Some(&token), feed, json!({})).await.ok();
    let edges = first.data("posts.edges").as_array().unwrap().clone();
    let drafts: usize = summary
        .split('(')
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(drafts > 0, "some posts are drafts: {summary}");
    assert_eq!(
        edges.len(),
        60 - drafts,
        "the feed holds the published ones"
    );
    let votes: i64 = edges
        .iter()
        .map(|e| e["node"]["voteCount"].as_i64().unwrap())
        .sum();
    assert!(votes > 0 && votes <= 90);

    // A fresh database seeded alike holds the very same posts.
    let twin = crate::helpers::fresh_like(&db).await;
    let out = quire(Some(&twin.url), &args, "").await;
    assert!(out.status.success(), "{}", stderr(&out));
    let twin_app = twin.spawn().await;
    let t = twin_app
        .login(
            &format!("{}@example.com", first_username(&twin_app).await),
            quire::seed::PASSWORD,
        )
        .await
        .ok();
    let token = t.data("login.accessToken").as_str().unwrap().to_owned();
    let second = twin_app.gql(Some(&token), feed, json!({})).await.ok();
    assert_eq!(first.body, second.body);
    twin.remove().await;
}

/// The username of the oldest seeded user, found through an administrator.
async fn first_username(app: &crate::helpers::TestApp) -> String {
    let admin = app.admin(&format!("root{}", rand_suffix())).await;
    let res = app
        .gql(
            Some(&admin.access),
            "{ users(first: 100, role: USER) { edges { node { username } } } }",
            json!({}),
        )
        .await
        .ok();
    let edges = res.data("users.edges").as_array().unwrap();
    edges.last().unwrap()["node"]["username"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn rand_suffix() -> u32 {
    uuid::Uuid::new_v4().as_u128() as u32 % 100_000
}

/// The migrations in the repository, oldest first: (version, description).
fn migrations() -> Vec<(i64, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite");
    let mut found: Vec<(i64, String)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            let stem = name.strip_suffix(".up.sql")?;
            let (version, description) = stem.split_once('_')?;
            Some((version.parse().ok()?, description.replace('_', " ")))
        })
        .collect();
    found.sort();
    assert!(found.len() >= 3, "{found:?}");
    found
}

/// Reverts migrations until none is left; returns what each run printed.
pub async fn revert_all(url: &str) -> Vec<String> {
    let mut printed = Vec::new();
    loop {
        let out = quire(Some(url), &["migrate", "--revert"], "").await;
        assert!(out.status.success(), "{}", stderr(&out));
        let line = stdout(&out).trim().to_owned();
        let done = line == "no migration to revert";
        printed.push(line);
        if done || printed.len() > 50 {
            return printed;
        }
    }
}
