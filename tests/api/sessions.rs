//! Listing and ending sessions, and changing passwords.

use serde_json::json;

use crate::helpers::{PASSWORD, TestDb};

crate::on_both_databases!(
    sessions_are_listed_newest_first_with_the_current_one_marked,
    logout_ends_the_current_session_and_is_idempotent,
    logout_with_a_refresh_token_needs_no_access_token,
    logout_all_ends_every_session,
    revoke_session_ends_one_of_ones_own_sessions,
    change_password_keeps_this_session_and_ends_the_others,
);

const LOGOUT: &str = "mutation { logout }";

async fn sessions_are_listed_newest_first_with_the_current_one_marked(db: TestDb) {
    let app = db.spawn().await;
    let laptop = app.signed_up("ada").await;
    app.signed_in("ada").await; // from the phone

    let res = app
        .gql_with(
            Some(&laptop.access),
            &[("user-agent", "curious-browser/1.0")],
            "{ sessions { id createdAt lastUsedAt expiresAt userAgent current } }",
            json!({}),
        )
        .await
        .ok();
    let sessions = res.data("sessions").as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    // Newest first: the phone signed in after the laptop.
    assert_eq!(sessions[0]["current"], false);
    assert_eq!(sessions[1]["current"], true);
    for s in sessions {
        // Both sign-ins came from the test client, which sends no User-Agent.
        assert!(s["userAgent"].is_null());
        let created =
            chrono::DateTime::parse_from_rfc3339(s["createdAt"].as_str().unwrap()).unwrap();
        let expires =
            chrono::DateTime::parse_from_rfc3339(s["expiresAt"].as_str().unwrap()).unwrap();
        assert!(
            expires - created >= chrono::Duration::days(29),
            "refresh TTL is 30 days"
        );
    }

    // Another user sees only their own.
    let bo = app.signed_up("bob").await;
    let theirs = app
        .gql(Some(&bo.access), "{ sessions { id } }", json!({}))
        .await
        .ok();
    assert_eq!(theirs.data("sessions").as_array().unwrap().len(), 1);

    // The user agent given at sign-in is kept.
    let login = app
        .gql_with(
            None,
            &[("user-agent", "quire-tests/2.0")],
            "mutation($i: LoginInput!) { login(input: $i) { accessToken } }",
            json!({ "i": { "email": "bob@example.com", "password": PASSWORD } }),
        )
        .await
        .ok();
    let token = login.data("login.accessToken").as_str().unwrap();
    let listed = app
        .gql(Some(token), "{ sessions { userAgent current } }", json!({}))
        .await
        .ok();
    assert_eq!(listed.data("sessions")[0]["userAgent"], "quire-tests/2.0");
    assert_eq!(listed.data("sessions")[0]["current"], true);
}

async fn logout_ends_the_current_session_and_is_idempotent(db: TestDb) {
    let app = db.spawn().await;
    let t = app.signed_up("ada").await;
    let other = app.signed_in("ada").await;

    let res = app.gql(Some(&t.access), LOGOUT, json!({})).await.ok();
    assert_eq!(res.data("logout"), true);

    assert_eq!(app.me(&t.access).await.code(), "UNAUTHENTICATED");
    assert_eq!(app.refresh(&t.refresh).await.code(), "UNAUTHENTICATED");
    // Logging out again succeeds.
    let again = app.gql(Some(&t.access), LOGOUT, json!({})).await.ok();
    assert_eq!(again.data("logout"), true);
    // The other session is unaffected.
    app.me(&other.access).await.ok();

    // Without any credentials there is nothing to log out of.
    assert_eq!(
        app.gql(None, LOGOUT, json!({})).await.code(),
        "UNAUTHENTICATED"
    );
}

async fn logout_with_a_refresh_token_needs_no_access_token(db: TestDb) {
    let app = db.spawn().await;
    let t = app.signed_up("ada").await;
    let query = "mutation($t: String) { logout(refreshToken: $t) }";

    let res = app.gql(None, query, json!({ "t": t.refresh })).await.ok();
    assert_eq!(res.data("logout"), true);
    assert_eq!(app.me(&t.access).await.code(), "UNAUTHENTICATED");
    assert_eq!(app.refresh(&t.refresh).await.code(), "UNAUTHENTICATED");
    app.gql(None, query, json!({ "t": t.refresh })).await.ok();

    let junk = app.gql(None, query, json!({ "t": "junk" })).await;
    assert_eq!(junk.code(), "UNAUTHENTICATED");
}

async fn logout_all_ends_every_session(db: TestDb) {
    let app = db.spawn().await;
    let sessions = [
        app.signed_up("ada").await,
        app.signed_in("ada").await,
        app.signed_in("ada").await,
    ];
    let bystander = app.signed_up("bob").await;

    let res = app
        .gql(
            Some(&sessions[1].access),
            "mutation { logoutAll }",
            json!({}),
        )
        .await
        .ok();
    assert_eq!(res.data("logoutAll"), 3);

    for s in &sessions {
        assert_eq!(app.me(&s.access).await.code(), "UNAUTHENTICATED");
        assert_eq!(app.refresh(&s.refresh).await.code(), "UNAUTHENTICATED");
    }
    app.me(&bystander.access).await.ok();

    // Signing in again starts afresh.
    let back = app.signed_in("ada").await;
    app.me(&back.access).await.ok();
}

async fn revoke_session_ends_one_of_ones_own_sessions(db: TestDb) {
    let app = db.spawn().await;
    let laptop = app.signed_up("ada").await;
    let phone = app.signed_in("ada").await;
    let eve = app.signed_up("eve").await;
    let revoke = "mutation($id: ID!) { revokeSession(id: $id) }";

    let listed = app
        .gql(
            Some(&laptop.access),
            "{ sessions { id current } }",
            json!({}),
        )
        .await
        .ok();
    let phone_id = listed
        .data("sessions")
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Someone else cannot end it, and learns nothing about it.
    let attempt = app
        .gql(Some(&eve.access), revoke, json!({ "id": phone_id }))
        .await;
    assert_eq!(attempt.code(), "NOT_FOUND");
    app.me(&phone.access).await.ok();

    let res = app
        .gql(Some(&laptop.access), revoke, json!({ "id": phone_id }))
        .await
        .ok();
    assert_eq!(res.data("revokeSession"), true);
    assert_eq!(app.me(&phone.access).await.code(), "UNAUTHENTICATED");
    assert_eq!(app.refresh(&phone.refresh).await.code(), "UNAUTHENTICATED");
    app.me(&laptop.access).await.ok();

    let gone = app
        .gql(Some(&laptop.access), "{ sessions { id } }", json!({}))
        .await
        .ok();
    assert_eq!(gone.data("sessions").as_array().unwrap().len(), 1);

    let unknown = app
        .gql(
            Some(&laptop.access),
            revoke,
            json!({ "id": uuid::Uuid::new_v4().to_string() }),
        )
        .await;
    assert_eq!(unknown.code(), "NOT_FOUND");
    let malformed = app
        .gql(Some(&laptop.access), revoke, json!({ "id": "42" }))
        .await;
    assert_eq!(malformed.code(), "BAD_USER_INPUT");
    assert_eq!(malformed.error()["extensions"]["field"], "id");
    assert_eq!(
        app.gql(None, revoke, json!({ "id": phone_id }))
            .await
            .code(),
        "UNAUTHENTICATED"
    );
}

async fn change_password_keeps_this_session_and_ends_the_others(db: TestDb) {
    let app = db.spawn().await;
    let here = app.signed_up("ada").await;
    let elsewhere = app.signed_in("ada").await;
    let change = "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }";
    let new_password = "a completely different passphrase";

    // A wrong current password changes nothing.
    let wrong = app
        .gql(
            Some(&here.access),
            change,
            json!({ "c": "not my password", "n": new_password }),
        )
        .await;
    assert_eq!(wrong.code(), "BAD_USER_INPUT");
    assert_eq!(wrong.error()["extensions"]["field"], "currentPassword");
    // A weak new password changes nothing either.
    let weak = app
        .gql(
            Some(&here.access),
            change,
            json!({ "c": PASSWORD, "n": "password123" }),
        )
        .await;
    assert_eq!(weak.code(), "BAD_USER_INPUT");
    assert_eq!(weak.error()["extensions"]["field"], "newPassword");
    app.me(&elsewhere.access).await.ok();
    app.login("ada@example.com", PASSWORD).await.ok();

    let res = app
        .gql(
            Some(&here.access),
            change,
            json!({ "c": PASSWORD, "n": new_password }),
        )
        .await
        .ok();
    assert_eq!(res.data("changePassword"), true);

    app.me(&here.access).await.ok();
    app.refresh(&here.refresh).await.ok();
    assert_eq!(app.me(&elsewhere.access).await.code(), "UNAUTHENTICATED");
    assert_eq!(
        app.refresh(&elsewhere.refresh).await.code(),
        "UNAUTHENTICATED"
    );

    assert_eq!(
        app.login("ada@example.com", PASSWORD).await.code(),
        "UNAUTHENTICATED"
    );
    app.login("ada@example.com", new_password).await.ok();
    assert_eq!(
        app.gql(
            None,
            change,
            json!({ "c": new_password, "n": "yet another passphrase" })
        )
        .await
        .code(),
        "UNAUTHENTICATED"
    );
}
