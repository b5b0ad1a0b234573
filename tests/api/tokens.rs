//! Access tokens, refresh-token rotation, reuse detection and expiry.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::{Remote, TEST_SECRET, TestDb};

crate::on_both_databases!(
    refresh_rotates_both_tokens,
    concurrent_refreshes_converge_and_keep_the_session,
    reuse_after_the_grace_window_ends_the_session,
    expired_access_tokens_are_refused,
    refresh_tokens_expire_and_sessions_have_a_maximum_age,
    forged_and_misused_tokens_are_refused,
    the_generated_signing_key_survives_a_restart,
);

async fn refresh_rotates_both_tokens(db: TestDb) {
    let app = db.spawn().await;
    let first = app.signed_up("ada").await;

    let res = app.refresh(&first.refresh).await.ok();
    let second = Remote::tokens(&res);
    assert_eq!(res.data("refresh.tokenType"), "Bearer");
    assert_eq!(res.data("refresh.user.username"), "ada");
    assert_ne!(second.refresh, first.refresh, "the refresh token rotates");
    assert_ne!(second.access, first.access);
    app.me(&second.access).await.ok();

    // The successor rotates in turn, and the chain goes on.
    let third = Remote::tokens(&app.refresh(&second.refresh).await.ok());
    assert_ne!(third.refresh, second.refresh);
    app.me(&third.access).await.ok();

    // Still one session.
    let sessions = app
        .gql(
            Some(&third.access),
            "{ sessions { id current } }",
            json!({}),
        )
        .await
        .ok();
    assert_eq!(sessions.data("sessions").as_array().unwrap().len(), 1);

    // Junk is refused without further ado.
    let junk = app.refresh("not-a-refresh-token").await;
    assert_eq!(junk.code(), "UNAUTHENTICATED");
    app.me(&third.access).await.ok();
}

async fn concurrent_refreshes_converge_and_keep_the_session(db: TestDb) {
    let app = db.spawn().await;
    let tokens = app.signed_up("tabs").await;

    let calls = (0..20).map(|_| app.refresh(&tokens.refresh));
    let results = futures::future::join_all(calls).await;

    let successors: Vec<String> = results
        .iter()
        .map(|r| {
            assert!(
                r.body.get("errors").is_none(),
                "every refresh succeeds: {}",
                r.body
            );
            Remote::tokens(r).refresh
        })
        .collect();
    assert!(
        successors.iter().all(|t| *t == successors[0]),
        "all 20 refreshes return the same new refresh token"
    );
    assert_ne!(successors[0], tokens.refresh);

    // The session lives on: every access token works, and the successor refreshes.
    for r in &results {
        app.me(&Remote::tokens(r).access).await.ok();
    }
    app.refresh(&successors[0]).await.ok();
}

async fn reuse_after_the_grace_window_ends_the_session(db: TestDb) {
    let app = db
        .spawn_with(|s| s.serving.auth.refresh_reuse_grace = std::time::Duration::from_secs(1))
        .await;
    let stolen = app.signed_up("victim").await;
    let other_session = app.signed_in("victim").await;

    let fresh = Remote::tokens(&app.refresh(&stolen.refresh).await.ok());
    app.me(&fresh.access).await.ok();

    tokio::time::sleep(Duration::from_millis(1500)).await;

    // The retired token comes back after the grace window: treated as theft.
    let replay = app.refresh(&stolen.refresh).await;
    assert_eq!(replay.code(), "UNAUTHENTICATED");
    assert!(
        replay.message().contains("already used"),
        "{}",
        replay.message()
    );

    // The whole session ends at once: its newest access and refresh tokens too.
    assert_eq!(app.me(&fresh.access).await.code(), "UNAUTHENTICATED");
    assert_eq!(app.me(&stolen.access).await.code(), "UNAUTHENTICATED");
    assert_eq!(app.refresh(&fresh.refresh).await.code(), "UNAUTHENTICATED");

    // Other sessions of the same user are untouched.
    app.me(&other_session.access).await.ok();
}

async fn expired_access_tokens_are_refused(db: TestDb) {
    let app = db
        .spawn_with(|s| s.serving.auth.access_token_ttl = std::time::Duration::from_secs(1))
        .await;
    let reg = app
        .register("brief@example.com", "brief", crate::helpers::PASSWORD)
        .await
        .ok();
    assert_eq!(reg.data("register.expiresIn"), 1);
    let access = reg
        .data("register.accessToken")
        .as_str()
        .unwrap()
        .to_owned();
    let refresh = reg
        .data("register.refreshToken")
        .as_str()
        .unwrap()
        .to_owned();
    app.me(&access).await.ok();

    // Past the lifetime and the few seconds of clock leeway allowed between instances.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let expired = app.me(&access).await;
    assert_eq!(expired.code(), "UNAUTHENTICATED");

    // The session itself is fine: a refresh gives a working token.
    let renewed = Remote::tokens(&app.refresh(&refresh).await.ok());
    app.me(&renewed.access).await.ok();
}

async fn refresh_tokens_expire_and_sessions_have_a_maximum_age(db: TestDb) {
    // A refresh token lives 3 s from its issue; each refresh slides that window.
    let app = db
        .spawn_with(|s| s.serving.auth.refresh_token_ttl = std::time::Duration::from_secs(3))
        .await;
    let t = app.signed_up("slider").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t = Remote::tokens(&app.refresh(&t.refresh).await.ok());
    tokio::time::sleep(Duration::from_secs(2)).await;
    // 4 s after sign-in, but only 2 s after the last refresh: still valid.
    let t = Remote::tokens(&app.refresh(&t.refresh).await.ok());
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(app.refresh(&t.refresh).await.code(), "UNAUTHENTICATED");
    assert_eq!(
        app.me(&t.access).await.code(),
        "UNAUTHENTICATED",
        "an expired session's access tokens stop working too"
    );

    // However often it is refreshed, no session outlives the maximum age.
    let app = db
        .spawn_with(|s| {
            s.serving.auth.refresh_token_ttl = std::time::Duration::from_secs(3600);
            s.serving.auth.session_max_age = std::time::Duration::from_secs(5);
        })
        .await;
    let mut t = app.signed_up("capped").await;
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        t = Remote::tokens(&app.refresh(&t.refresh).await.ok());
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(app.refresh(&t.refresh).await.code(), "UNAUTHENTICATED");
}

fn claims_for(valid: &Value) -> serde_json::Map<String, Value> {
    valid.as_object().unwrap().clone()
}

fn sign(header: Header, claims: &serde_json::Map<String, Value>, key: &[u8]) -> String {
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(key)).unwrap()
}

async fn forged_and_misused_tokens_are_refused(db: TestDb) {
    let app = db
        .spawn_with(|s| {
            s.serving.auth.jwt_secret = Some(quire::config::parse::secret(TEST_SECRET).unwrap())
        })
        .await;
    let t = app.signed_up("mallory").await;

    // Read the real claims to build variations on them.
    let payload = t.access.split('.').nth(1).unwrap();
    let real: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let now = chrono::Utc::now().timestamp();
    let typed = || {
        let mut h = Header::new(Algorithm::HS256);
        h.typ = Some("at+jwt".into());
        h
    };
    let key = TEST_SECRET.as_bytes();

    // The crafting itself is sound: a token made the same way with the right key works.
    let genuine = sign(typed(), &claims_for(&real), key);
    app.me(&genuine).await.ok();

    let mut forged: Vec<(&str, String)> = Vec::new();

    // A flipped signature character, in the middle, where every bit counts (the last
    // character of base64 carries padding bits that decoders may ignore).
    let signature = t.access.rsplit('.').next().unwrap();
    let mid = signature.len() / 2;
    let flipped = if &signature[mid..=mid] == "A" {
        "B"
    } else {
        "A"
    };
    let tampered = format!(
        "{}{}{}",
        &t.access[..t.access.len() - signature.len() + mid],
        flipped,
        &signature[mid + 1..]
    );
    assert_ne!(tampered, t.access);
    forged.push(("tampered signature", tampered));

    // A changed payload with the old signature.
    let mut upgraded = claims_for(&real);
    upgraded.insert("role".into(), json!("admin"));
    let parts: Vec<&str> = t.access.split('.').collect();
    forged.push((
        "changed payload",
        format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&upgraded).unwrap()),
            parts[2]
        ),
    ));

    // `alg: none`, unsigned.
    forged.push((
        "alg none",
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"at+jwt"}"#),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&real).unwrap())
        ),
    ));

    // Another algorithm with the right key.
    let mut hs512 = Header::new(Algorithm::HS512);
    hs512.typ = Some("at+jwt".into());
    forged.push(("HS512", sign(hs512, &claims_for(&real), key)));

    // Signed with some other key.
    forged.push((
        "another key",
        sign(
            typed(),
            &claims_for(&real),
            b"some-other-key-that-is-32-bytes-long!!",
        ),
    ));

    for (name, field, value) in [
        ("wrong aud", "aud", json!("someone-else")),
        ("wrong iss", "iss", json!("someone-else")),
        ("future nbf", "nbf", json!(now + 3600)),
        ("expired", "exp", json!(now - 3600)),
    ] {
        let mut c = claims_for(&real);
        c.insert(field.into(), value);
        forged.push((name, sign(typed(), &c, key)));
    }
    for missing in ["exp", "nbf", "iss", "aud", "sub"] {
        let mut c = claims_for(&real);
        c.remove(missing);
        forged.push((missing, sign(typed(), &c, key)));
    }

    // A plain JWT without the access-token type.
    forged.push((
        "typ JWT",
        sign(Header::new(Algorithm::HS256), &claims_for(&real), key),
    ));

    // A refresh token is not an access token.
    forged.push(("refresh token as access token", t.refresh.clone()));

    for (name, token) in &forged {
        let res = app.me(token).await;
        assert_eq!(res.code(), "UNAUTHENTICATED", "{name}: {}", res.body);
    }

    // Not a bearer token at all.
    let basic = app
        .gql_with(
            None,
            &[("authorization", &format!("Basic {}", t.access))],
            "{ me { id } }",
            json!({}),
        )
        .await;
    assert_eq!(basic.code(), "UNAUTHENTICATED");

    // The real token still works after all that.
    app.me(&t.access).await.ok();
}

async fn the_generated_signing_key_survives_a_restart(db: TestDb) {
    let first = db.spawn().await;
    let t = first.signed_up("steady").await;
    drop(first);

    // A second instance on the same database (or the same one restarted) agrees.
    let second = db.spawn().await;
    second.me(&t.access).await.ok();
    second.refresh(&t.refresh).await.ok();

    // An instance with a different configured key would refuse the tokens of the one
    // running. On PostgreSQL, where instances run side by side, it refuses to serve;
    // on SQLite, one process at a time, it serves and refuses the old tokens.
    let mut settings = db.settings();
    settings.serving.auth.jwt_secret = Some(quire::config::parse::secret(TEST_SECRET).unwrap());
    let config = quire::config::Config::new(settings).unwrap();
    let other = quire::app::App::start(&config).await.expect("it starts");
    if db.backend_name() == "postgres" {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let refused = other
            .serve(listener, std::future::ready(()))
            .await
            .expect_err("it refuses to serve")
            .to_string();
        assert!(refused.contains("QUIRE_JWT_SECRET differs"), "{refused}");
        second.me(&t.access).await.ok();
    } else {
        drop(other);
        let other = db
            .spawn_with(|s| {
                s.serving.auth.jwt_secret = Some(quire::config::parse::secret(TEST_SECRET).unwrap())
            })
            .await;
        assert_eq!(other.me(&t.access).await.code(), "UNAUTHENTICATED");
    }
}
