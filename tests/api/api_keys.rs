//! API keys: scopes, both headers, checksums, expiry, revocation, owners' changes, and
//! keeping the secret out of sight.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::Duration,
};

use serde_json::{Value, json};

use crate::helpers::{Gql, PASSWORD, TestApp, TestDb, statements};

crate::on_both_databases!(
    scopes_decide_what_a_key_may_do,
    keys_are_created_with_care,
    keys_work_in_either_header_and_typos_cost_nothing,
    expired_and_revoked_keys_stop_at_once,
    keys_follow_their_owner,
    last_use_is_recorded_about_once_a_minute,
    the_secret_is_never_shown_again_nor_logged,
);

const CREATE: &str = "mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { secret \
    apiKey { id name prefix scopes createdAt lastUsedAt expiresAt revokedAt } } }";

/// Creates a key as `token` and returns (id, secret).
async fn key(
    app: &TestApp,
    token: &str,
    scopes: &[&str],
    expires_at: Option<String>,
) -> (String, String) {
    let res = app
        .gql(
            Some(token),
            CREATE,
            json!({ "i": { "name": "script", "scopes": scopes, "expiresAt": expires_at, "currentPassword": PASSWORD } }),
        )
        .await
        .ok();
    (
        res.data("createApiKey.apiKey.id")
            .as_str()
            .unwrap()
            .to_owned(),
        res.data("createApiKey.secret").as_str().unwrap().to_owned(),
    )
}

/// Sends `query` with the key in `X-API-Key`.
async fn with_header(app: &TestApp, secret: &str, query: &str, vars: Value) -> Gql {
    app.gql_with(None, &[("x-api-key", secret)], query, vars)
        .await
}

fn outcome(res: &Gql) -> &str {
    match res.body.get("errors") {
        None => "ok",
        Some(_) => res.code(),
    }
}

async fn scopes_decide_what_a_key_may_do(db: TestDb) {
    let app = db.spawn().await;
    let admin = app.admin("root").await;
    let victim = app.signed_up("bob").await;
    let victim_id = app.user_id(&victim.access).await;
    let some_id = uuid::Uuid::new_v4().to_string();

    let query = (
        "query",
        "{ me { username } posts { edges { node { id } } } }".to_owned(),
    );
    let own = (
        "own mutation",
        "mutation { createPost(input: { title: \"t\", body: \"b\" }) { id } }".to_owned(),
    );
    let admin_query = (
        "admin query",
        "{ users { edges { node { id } } } }".to_owned(),
    );
    let admin_mutation = (
        "admin mutation",
        format!("mutation {{ updateUserRole(id: \"{victim_id}\", role: USER) {{ role }} }}"),
    );
    let session_only = [
        ("createApiKey", "mutation { createApiKey(input: { name: \"more\", scopes: [READ], currentPassword: \"correct horse battery staple\" }) { secret } }".to_owned()),
        ("changePassword", "mutation { changePassword(currentPassword: \"correct horse battery staple\", newPassword: \"another long passphrase\") }".to_owned()),
        ("logout", "mutation { logout }".to_owned()),
        ("logout with a refresh token", format!("mutation {{ logout(refreshToken: \"{}\") }}", admin.refresh)),
        ("logoutAll", "mutation { logoutAll }".to_owned()),
        ("revokeSession", format!("mutation {{ revokeSession(id: \"{some_id}\") }}")),
    ];

    // (scopes, query, own mutation, admin query, admin mutation)
    let matrix: [(&[&str], [&str; 4]); 5] = [
        (&["READ"], ["ok", "FORBIDDEN", "FORBIDDEN", "FORBIDDEN"]),
        (&["WRITE"], ["ok", "ok", "FORBIDDEN", "FORBIDDEN"]),
        (&["ADMIN"], ["FORBIDDEN", "FORBIDDEN", "ok", "ok"]),
        (&["READ", "ADMIN"], ["ok", "FORBIDDEN", "ok", "ok"]),
        (&["READ", "WRITE", "ADMIN"], ["ok", "ok", "ok", "ok"]),
    ];
    for (scopes, expected) in matrix {
        let (_, secret) = key(&app, &admin.access, scopes, None).await;
        for ((name, q), want) in [&query, &own, &admin_query, &admin_mutation]
            .iter()
            .zip(expected)
        {
            let res = app.gql(Some(&secret), q, json!({})).await;
            assert_eq!(outcome(&res), want, "{scopes:?} × {name}: {}", res.body);
        }
        for (name, q) in &session_only {
            let res = app.gql(Some(&secret), q, json!({})).await;
            assert_eq!(res.code(), "FORBIDDEN", "{scopes:?} × {name}: {}", res.body);
            assert!(
                res.message().contains("session"),
                "{name}: {}",
                res.message()
            );
        }
    }
    // None of the session-only attempts took effect: the admin's session and password stand.
    app.me(&admin.access).await.ok();
    app.login("root@example.com", crate::helpers::PASSWORD)
        .await
        .ok();
}

async fn keys_are_created_with_care(db: TestDb) {
    let app = db.spawn().await;
    let user = app.signed_up("ada").await;

    let res = app
        .gql(
            Some(&user.access),
            CREATE,
            json!({ "i": { "name": "  nightly backup  ", "scopes": ["READ", "WRITE"], "currentPassword": PASSWORD } }),
        )
        .await
        .ok();
    let secret = res.data("createApiKey.secret").as_str().unwrap();
    let made = res.data("createApiKey.apiKey");
    assert!(secret.starts_with("qk_") && secret.len() == 39, "{secret}");
    assert!(secret[3..].chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(made["name"], "nightly backup");
    assert_eq!(made["prefix"].as_str().unwrap(), &secret[..9]);
    assert_eq!(made["scopes"], json!(["READ", "WRITE"]));
    assert!(
        made["lastUsedAt"].is_null() && made["expiresAt"].is_null() && made["revokedAt"].is_null()
    );

    for (input, field) in [
        (
            json!({ "name": "", "scopes": ["READ"], "currentPassword": PASSWORD }),
            "name",
        ),
        (
            json!({ "name": "x".repeat(101), "scopes": ["READ"], "currentPassword": PASSWORD }),
            "name",
        ),
        (
            json!({ "name": "k", "scopes": [], "currentPassword": PASSWORD }),
            "scopes",
        ),
        (
            json!({ "name": "k", "scopes": ["READ"], "expiresAt": "2001-01-01T00:00:00Z", "currentPassword": PASSWORD }),
            "expiresAt",
        ),
    ] {
        let res = app
            .gql(Some(&user.access), CREATE, json!({ "i": input }))
            .await;
        assert_eq!(res.code(), "BAD_USER_INPUT", "{field}");
        assert_eq!(res.error()["extensions"]["field"], field);
    }
    // Only administrators may make ADMIN keys.
    let res = app
        .gql(
            Some(&user.access),
            CREATE,
            json!({ "i": { "name": "k", "scopes": ["ADMIN"], "currentPassword": PASSWORD } }),
        )
        .await;
    assert_eq!(res.code(), "FORBIDDEN");
    // Keys need a session to be made at all.
    assert_eq!(
        app.gql(
            None,
            CREATE,
            json!({ "i": { "name": "k", "scopes": ["READ"], "currentPassword": PASSWORD } })
        )
        .await
        .code(),
        "UNAUTHENTICATED"
    );

    let listed = app
        .gql(Some(&user.access), "{ apiKeys { name scopes } }", json!({}))
        .await
        .ok();
    assert_eq!(
        listed.data("apiKeys"),
        &json!([{ "name": "nightly backup", "scopes": ["READ", "WRITE"] }])
    );
}

async fn keys_work_in_either_header_and_typos_cost_nothing(db: TestDb) {
    statements::install();
    let app = db.spawn().await;
    let user = app.signed_up("ada").await;
    let (_, secret) = key(&app, &user.access, &["READ"], None).await;

    let bearer = app
        .gql(Some(&secret), "{ me { username } }", json!({}))
        .await
        .ok();
    assert_eq!(bearer.data("me.username"), "ada");
    let header = with_header(&app, &secret, "{ me { username } }", json!({}))
        .await
        .ok();
    assert_eq!(header.data("me.username"), "ada");

    // One character off: the checksum fails and the database is not asked.
    let mut typo: Vec<char> = secret.chars().collect();
    typo[12] = if typo[12] == 'x' { 'y' } else { 'x' };
    let typo: String = typo.into_iter().collect();
    for res in [
        app.gql(Some(&typo), "{ me { username } }", json!({})).await,
        with_header(&app, &typo, "{ me { username } }", json!({})).await,
    ] {
        assert_eq!(res.code(), "UNAUTHENTICATED");
        let request_id = res.headers["x-request-id"].to_str().unwrap();
        assert_eq!(statements::sent_by(request_id), Vec::<String>::new());
    }
    // Both headers at once: refused rather than guessed at.
    let both = app
        .gql_with(
            Some(&user.access),
            &[("x-api-key", &secret)],
            "{ me { username } }",
            json!({}),
        )
        .await;
    assert_eq!(both.code(), "UNAUTHENTICATED");
    assert!(both.message().contains("not both"), "{}", both.message());
    // A bad key is UNAUTHENTICATED everywhere, logout included.
    assert_eq!(
        app.gql(Some(&typo), "mutation { logout }", json!({}))
            .await
            .code(),
        "UNAUTHENTICATED"
    );

    // A well-formed key that does not exist is looked up once, and refused.
    let forged = quire::auth::api_key::generate_secret();
    let res = app
        .gql(Some(&forged), "{ me { username } }", json!({}))
        .await;
    assert_eq!(res.code(), "UNAUTHENTICATED");
    let request_id = res.headers["x-request-id"].to_str().unwrap();
    assert_eq!(statements::sent_by(request_id).len(), 1);
}

async fn expired_and_revoked_keys_stop_at_once(db: TestDb) {
    let app = db.spawn().await;
    let admin = app.admin("root").await;
    let ada = app.signed_up("ada").await;
    let eve = app.signed_up("eve").await;
    let me = "{ me { username } }";
    let revoke = "mutation($id: ID!) { revokeApiKey(id: $id) { id revokedAt } }";

    let soon = (chrono::Utc::now() + chrono::Duration::seconds(4)).to_rfc3339();
    let (_, brief) = key(&app, &ada.access, &["READ"], Some(soon)).await;
    app.gql(Some(&brief), me, json!({})).await.ok();
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert_eq!(
        app.gql(Some(&brief), me, json!({})).await.code(),
        "UNAUTHENTICATED"
    );

    // Revoked by its owner.
    let (own_id, own) = key(&app, &ada.access, &["READ"], None).await;
    app.gql(Some(&own), me, json!({})).await.ok();
    // Nobody else may, and nobody else learns it exists.
    assert_eq!(
        app.gql(Some(&eve.access), revoke, json!({ "id": own_id }))
            .await
            .code(),
        "NOT_FOUND"
    );
    app.gql(Some(&own), me, json!({})).await.ok();
    let res = app
        .gql(Some(&ada.access), revoke, json!({ "id": own_id }))
        .await
        .ok();
    assert!(res.data("revokeApiKey.revokedAt").is_string());
    assert_eq!(
        app.gql(Some(&own), me, json!({})).await.code(),
        "UNAUTHENTICATED"
    );

    // Revoked by an administrator.
    let (other_id, other) = key(&app, &ada.access, &["READ"], None).await;
    app.gql(Some(&admin.access), revoke, json!({ "id": other_id }))
        .await
        .ok();
    assert_eq!(
        app.gql(Some(&other), me, json!({})).await.code(),
        "UNAUTHENTICATED"
    );

    // A WRITE key may revoke itself.
    let (self_id, selfish) = key(&app, &ada.access, &["WRITE"], None).await;
    app.gql(Some(&selfish), revoke, json!({ "id": self_id }))
        .await
        .ok();
    assert_eq!(
        app.gql(Some(&selfish), me, json!({})).await.code(),
        "UNAUTHENTICATED"
    );

    let listed = app
        .gql(Some(&ada.access), "{ apiKeys { revokedAt } }", json!({}))
        .await
        .ok();
    let revoked = listed
        .data("apiKeys")
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["revokedAt"].is_string())
        .count();
    assert_eq!(revoked, 3);
}

async fn keys_follow_their_owner(db: TestDb) {
    let app = db.spawn().await;
    let root = app.admin("root").await;
    let ops = app.admin("ops").await;
    let ops_id = app.user_id(&ops.access).await;
    let bob = app.signed_up("bob").await;
    let bob_id = app.user_id(&bob.access).await;
    let (_, bob_key) = key(&app, &bob.access, &["READ"], None).await;
    let (_, ops_key) = key(&app, &ops.access, &["READ", "ADMIN"], None).await;
    let users = "{ users { edges { node { id } } } }";

    // The owner deactivated: the key fails at once; reactivated: it works again.
    app.gql(
        Some(&root.access),
        "mutation($id: ID!) { deactivateUser(id: $id) { id } }",
        json!({ "id": bob_id }),
    )
    .await
    .ok();
    assert_eq!(
        app.gql(Some(&bob_key), "{ me { id } }", json!({}))
            .await
            .code(),
        "UNAUTHENTICATED"
    );
    app.gql(
        Some(&root.access),
        "mutation($id: ID!) { reactivateUser(id: $id) { id } }",
        json!({ "id": bob_id }),
    )
    .await
    .ok();
    app.gql(Some(&bob_key), "{ me { id } }", json!({}))
        .await
        .ok();

    // An ADMIN key is worth what its owner's role is now.
    app.gql(Some(&ops_key), users, json!({})).await.ok();
    app.gql(
        Some(&root.access),
        "mutation($id: ID!) { updateUserRole(id: $id, role: USER) { id } }",
        json!({ "id": ops_id }),
    )
    .await
    .ok();
    assert_eq!(
        app.gql(Some(&ops_key), users, json!({})).await.code(),
        "FORBIDDEN"
    );
    app.gql(Some(&ops_key), "{ me { role } }", json!({}))
        .await
        .ok();

    // Nor does a key without the ADMIN scope carry its administrator owner's powers.
    let (_, plain) = key(&app, &root.access, &["READ", "WRITE"], None).await;
    let res = app
        .gql(
            Some(&plain),
            "query($id: ID!) { user(id: $id) { email } }",
            json!({ "id": bob_id }),
        )
        .await
        .ok();
    assert!(res.data("user.email").is_null());
}

async fn last_use_is_recorded_about_once_a_minute(db: TestDb) {
    statements::install();
    let app = db.spawn().await;
    let ada = app.signed_up("ada").await;
    let (_, secret) = key(&app, &ada.access, &["READ"], None).await;
    let last_used = || async {
        app.gql(Some(&ada.access), "{ apiKeys { lastUsedAt } }", json!({}))
            .await
            .ok()
            .data("apiKeys")[0]["lastUsedAt"]
            .clone()
    };
    let writes = |res: &Gql| {
        let request_id = res.headers["x-request-id"].to_str().unwrap().to_owned();
        statements::sent_by(&request_id)
            .into_iter()
            .filter(|s| s.starts_with("UPDATE api_keys"))
            .count()
    };
    assert!(last_used().await.is_null(), "never used yet");

    let first_use = app
        .gql(Some(&secret), "{ me { id } }", json!({}))
        .await
        .ok();
    // Recorded off the request's path: it appears shortly after.
    let mut first = Value::Null;
    for _ in 0..50 {
        first = last_used().await;
        if !first.is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(first.is_string(), "lastUsedAt was recorded");
    assert_eq!(writes(&first_use), 1, "the first use writes once");

    // Used again within the minute: no write at all.
    let mut again = Vec::new();
    for _ in 0..3 {
        again.push(
            app.gql(Some(&secret), "{ me { id } }", json!({}))
                .await
                .ok(),
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for res in &again {
        assert_eq!(writes(res), 0, "a use within the minute writes nothing");
    }
    assert_eq!(last_used().await, first);
}

/// Runs the `quire` binary as a server on `url` with debug logs; returns its address and
/// everything it logs.
pub fn serve_with_logs(
    url: &str,
    extra: &[(&str, &str)],
) -> (String, Arc<Mutex<String>>, std::process::Child) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_quire"))
        .envs(extra.iter().copied())
        .env("DATABASE_URL", url)
        .env("QUIRE_LISTEN", "127.0.0.1:0")
        .env("QUIRE_LOG", "debug")
        .env_remove("QUIRE_JWT_SECRET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the server starts");
    let logs = Arc::new(Mutex::new(String::new()));
    let (found, address) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let sink = logs.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("http://").nth(1)
                && line.contains("serving GraphQL")
            {
                let _ = found.send(rest.split('/').next().unwrap_or_default().to_owned());
            }
            let mut all = sink.lock().unwrap();
            all.push_str(&line);
            all.push('\n');
        }
    });
    let address = address
        .recv_timeout(Duration::from_secs(20))
        .expect("the server says where it listens");
    (address, logs, child)
}

async fn the_secret_is_never_shown_again_nor_logged(db: TestDb) {
    // Make sure the schema exists before the server process starts.
    drop(db.spawn().await);
    let url = db.url.clone();
    let (address, logs, mut child) =
        tokio::task::spawn_blocking(move || serve_with_logs(&url, &[]))
            .await
            .unwrap();
    let client = reqwest::Client::new();
    let send = |token: String, query: &'static str, vars: Value| {
        let client = client.clone();
        let address = address.clone();
        async move {
            client
                .post(format!("http://{address}/graphql"))
                .bearer_auth(token)
                .json(&json!({ "query": query, "variables": vars }))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let reg = client
        .post(format!("http://{address}/graphql"))
        .json(&json!({ "query": "mutation { register(input: { email: \"ada@example.com\", username: \"ada\", password: \"correct horse battery staple\" }) { accessToken } }" }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let first_access = reg["data"]["register"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    // A full session: sign in, refresh, then work with a key.
    let login = client
        .post(format!("http://{address}/graphql"))
        .json(&json!({ "query": "mutation { login(input: { email: \"ada@example.com\", password: \"correct horse battery staple\" }) { accessToken refreshToken } }" }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let old_refresh = login["data"]["login"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let refreshed = send(
        String::new(),
        "mutation($t: String) { refresh(refreshToken: $t) { accessToken refreshToken } }",
        json!({ "t": old_refresh }),
    )
    .await;
    let access = refreshed["data"]["refresh"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let new_refresh = refreshed["data"]["refresh"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let made = send(
        access.clone(),
        CREATE,
        json!({ "i": { "name": "ci", "scopes": ["READ", "WRITE"], "currentPassword": PASSWORD } }),
    )
    .await;
    let secret = made["data"]["createApiKey"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = made["data"]["createApiKey"]["apiKey"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let ok = send(secret.clone(), "{ me { username } }", json!({})).await;
    assert_eq!(ok["data"]["me"]["username"], "ada");
    let via_header = client
        .post(format!("http://{address}/graphql"))
        .header("x-api-key", &secret)
        .json(&json!({ "query": "{ me { username } }" }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(via_header["data"]["me"]["username"], "ada");
    let listed = send(
        access.clone(),
        "{ apiKeys { id name prefix scopes createdAt lastUsedAt expiresAt revokedAt } }",
        json!({}),
    )
    .await;
    assert!(
        !listed.to_string().contains(&secret[9..]),
        "apiKeys never shows the secret"
    );
    send(
        access.clone(),
        "mutation($id: ID!) { revokeApiKey(id: $id) { id } }",
        json!({ "id": id }),
    )
    .await;
    let refused = send(secret.clone(), "{ me { username } }", json!({})).await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"],
        "UNAUTHENTICATED"
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = child.kill();
    let _ = child.wait();
    let logs = logs.lock().unwrap().clone();
    assert!(
        !logs.contains(&secret[9..]),
        "the secret appears in the logs"
    );
    for (what, value) in [
        ("the password", "correct horse battery staple"),
        ("an access token", first_access.as_str()),
        ("an access token", access.as_str()),
        ("a refresh token", old_refresh.as_str()),
        ("a refresh token", new_refresh.as_str()),
    ] {
        assert!(!logs.contains(value), "{what} appears in the logs");
    }
    // Each request's lines name the user, once known.
    assert!(
        logs.lines()
            .any(|l| l.contains("served") && l.contains("user_id=")),
        "{logs}"
    );
    // Successes and failures are told apart by the key's id.
    let accepted = logs
        .lines()
        .any(|l| l.contains("API key accepted") && l.contains(&id));
    let refused = logs
        .lines()
        .any(|l| l.contains("API key refused") && l.contains(&id) && l.contains("revoked"));
    assert!(accepted && refused, "{logs}");
}
