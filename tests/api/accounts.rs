//! Registering, signing in and the rules accounts follow.

use quire::db::users;
use serde_json::json;

use crate::helpers::{PASSWORD, TestDb};

crate::on_both_databases!(
    register_then_login_then_me,
    wrong_password_and_unknown_email_look_the_same,
    password_policy,
    emails_are_normalised_and_unique_regardless_of_case,
    usernames_are_validated_and_unique_regardless_of_case,
    login_upgrades_hashes_made_with_older_parameters,
);

async fn register_then_login_then_me(db: TestDb) {
    let app = db.spawn().await;

    let reg = app.register("ada@example.com", "ada", PASSWORD).await.ok();
    let payload = reg.data("register");
    assert_eq!(payload["tokenType"], "Bearer");
    assert_eq!(payload["expiresIn"], 900);
    assert_eq!(payload["user"]["username"], "ada");
    assert_eq!(payload["user"]["email"], "ada@example.com");
    assert_eq!(payload["user"]["role"], "USER");
    let created_at = payload["user"]["createdAt"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(created_at).is_ok(),
        "createdAt is RFC 3339: {created_at}"
    );
    let user_id = payload["user"]["id"].as_str().unwrap().to_owned();
    let first_access = payload["accessToken"].as_str().unwrap().to_owned();

    let login = app.login("ada@example.com", PASSWORD).await.ok();
    let access = login.data("login.accessToken").as_str().unwrap().to_owned();
    assert_ne!(access, first_access);
    assert!(login.data("login.refreshToken").as_str().is_some());

    for token in [&first_access, &access] {
        let me = app.me(token).await.ok();
        assert_eq!(me.data("me.id"), user_id.as_str());
        assert_eq!(me.data("me.username"), "ada");
        assert_eq!(me.data("me.email"), "ada@example.com");
        assert_eq!(me.data("me.role"), "USER");
    }

    // Each sign-in is its own session.
    let sessions = app
        .gql(Some(&access), "{ sessions { id current } }", json!({}))
        .await
        .ok();
    assert_eq!(sessions.data("sessions").as_array().unwrap().len(), 2);

    // The signed-in user's own fields, posts included, can be asked for in the payload.
    let with_posts = app
        .gql(
            None,
            "mutation { login(input: { email: \"ada@example.com\", password: \"correct horse battery staple\" }) { user { email posts { edges { node { id } } } } } }",
            json!({}),
        )
        .await
        .ok();
    assert_eq!(with_posts.data("login.user.email"), "ada@example.com");
    assert!(
        with_posts
            .data("login.user.posts.edges")
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Without a token there is no caller.
    let anonymous = app.gql(None, "{ me { id } }", json!({})).await;
    assert_eq!(anonymous.code(), "UNAUTHENTICATED");
    assert!(anonymous.body["data"].is_null());
}

async fn wrong_password_and_unknown_email_look_the_same(db: TestDb) {
    let app = db.spawn().await;
    app.signed_up("grace").await;

    let wrong_password = app
        .login("grace@example.com", "not the right password")
        .await;
    let unknown_email = app
        .login("nobody@example.com", "not the right password")
        .await;

    assert_eq!(wrong_password.code(), "UNAUTHENTICATED");
    assert_eq!(wrong_password.message(), "invalid email or password");
    assert_eq!(wrong_password.status, unknown_email.status);
    assert_eq!(
        wrong_password.body, unknown_email.body,
        "the two failures must be indistinguishable"
    );
}

async fn password_policy(db: TestDb) {
    let app = db.spawn().await;

    for (password, hint) in [
        ("short1!", "at least 8"),
        (&"x".repeat(129) as &str, "at most 128"),
        ("password123", "commonly used"),
        ("qwerty123", "commonly used"),
        ("Password123", "commonly used"),
    ] {
        let res = app.register("lin@example.com", "lin", password).await;
        assert_eq!(res.code(), "BAD_USER_INPUT", "{password}");
        assert_eq!(res.error()["extensions"]["field"], "password");
        assert!(
            res.message().contains(hint),
            "{password}: {}",
            res.message()
        );
    }

    // A refused registration leaves nothing behind: the same email and username are free.
    assert_eq!(
        app.login("lin@example.com", "password123").await.code(),
        "UNAUTHENTICATED"
    );

    // Length counts characters, not bytes; no composition rules; no truncation.
    let eight_chars = "ünïcødéé";
    app.register("lin@example.com", "lin", eight_chars)
        .await
        .ok();
    app.login("lin@example.com", eight_chars).await.ok();

    let long = format!("{}a", "y".repeat(127));
    let long_but_one = format!("{}b", "y".repeat(127));
    app.register("max@example.com", "max", &long).await.ok();
    app.login("max@example.com", &long).await.ok();
    assert_eq!(
        app.login("max@example.com", &long_but_one).await.code(),
        "UNAUTHENTICATED",
        "the last character of a 128-character password counts"
    );
}

async fn emails_are_normalised_and_unique_regardless_of_case(db: TestDb) {
    let app = db.spawn().await;

    let reg = app
        .register("  Ada.Lovelace@Example.COM \n", "ada", PASSWORD)
        .await
        .ok();
    assert_eq!(reg.data("register.user.email"), "Ada.Lovelace@Example.COM");

    // Sign in with any case and surrounding spaces.
    app.login("ada.lovelace@example.com", PASSWORD).await.ok();
    app.login(" ADA.LOVELACE@EXAMPLE.COM ", PASSWORD).await.ok();

    let taken = app
        .register("ADA.lovelace@example.com", "ada2", PASSWORD)
        .await;
    assert_eq!(taken.code(), "CONFLICT");
    assert_eq!(taken.error()["extensions"]["field"], "email");

    for bad in [
        "",
        "ada",
        "ada@",
        "@example.com",
        "ada@localhost",
        "a da@example.com",
    ] {
        let res = app.register(bad, "someone", PASSWORD).await;
        assert_eq!(res.code(), "BAD_USER_INPUT", "{bad:?}");
        assert_eq!(res.error()["extensions"]["field"], "email", "{bad:?}");
    }
    // None of the refused attempts took the username.
    app.register("someone@example.com", "someone", PASSWORD)
        .await
        .ok();
}

async fn usernames_are_validated_and_unique_regardless_of_case(db: TestDb) {
    let app = db.spawn().await;
    app.register("bo@example.com", "Bo_Diddley", PASSWORD)
        .await
        .ok();

    let taken = app
        .register("other@example.com", "bo_diddley", PASSWORD)
        .await;
    assert_eq!(taken.code(), "CONFLICT");
    assert_eq!(taken.error()["extensions"]["field"], "username");

    for bad in [
        "bo",
        &"b".repeat(33) as &str,
        "bo diddley",
        "bo-diddley",
        "bö_d",
    ] {
        let res = app.register("new@example.com", bad, PASSWORD).await;
        assert_eq!(res.code(), "BAD_USER_INPUT", "{bad:?}");
        assert_eq!(res.error()["extensions"]["field"], "username", "{bad:?}");
    }
    app.register("new@example.com", &"b".repeat(32), PASSWORD)
        .await
        .ok();
}

async fn login_upgrades_hashes_made_with_older_parameters(db: TestDb) {
    let app = db.spawn().await;
    app.signed_up("veteran").await;

    // An account whose hash dates from cheaper parameters.
    let (user_id, old) = app.give_an_old_hash("veteran@example.com").await;
    let mut conn = app.app.db.acquire().await.unwrap();

    // A wrong password leaves it alone; the right one signs in and upgrades it.
    assert_eq!(
        app.login("veteran@example.com", "not the password")
            .await
            .code(),
        "UNAUTHENTICATED"
    );
    app.login("veteran@example.com", PASSWORD).await.ok();
    let stored = users::find_by_id(&mut conn, user_id)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(stored.password_hash, old);
    assert!(
        stored
            .password_hash
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{}",
        stored.password_hash
    );
    app.login("veteran@example.com", PASSWORD).await.ok();
}
