//! Who may call what: anonymous callers, USERs and ADMINs against every operation.

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestDb};

crate::on_both_databases!(
    anonymous_callers_may_only_register_login_and_refresh,
    users_are_forbidden_the_administrators_operations,
    administrators_may_administer,
    roles_are_read_afresh_on_every_request,
);

fn any_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Every operation that needs a signed-in caller, with well-formed arguments.
fn signed_in_operations() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("me", "{ me { id } }", json!({})),
        ("sessions", "{ sessions { id } }", json!({})),
        (
            "user",
            "query($id: ID!) { user(id: $id) { id } }",
            json!({ "id": any_id() }),
        ),
        ("users", "{ users { edges { node { id } } } }", json!({})),
        (
            "post",
            "query($id: ID!) { post(id: $id) { id } }",
            json!({ "id": any_id() }),
        ),
        ("posts", "{ posts { edges { node { id } } } }", json!({})),
        ("logoutAll", "mutation { logoutAll }", json!({})),
        (
            "revokeSession",
            "mutation($id: ID!) { revokeSession(id: $id) }",
            json!({ "id": any_id() }),
        ),
        (
            "changePassword",
            "mutation { changePassword(currentPassword: \"x\", newPassword: \"a brand new passphrase\") }",
            json!({}),
        ),
        (
            "createUser",
            "mutation { createUser(input: { email: \"new@example.com\", username: \"newbie\", password: \"a long passphrase\" }) { id } }",
            json!({}),
        ),
        (
            "updateUserRole",
            "mutation($id: ID!) { updateUserRole(id: $id, role: ADMIN) { id } }",
            json!({ "id": any_id() }),
        ),
        (
            "deactivateUser",
            "mutation($id: ID!) { deactivateUser(id: $id) { id } }",
            json!({ "id": any_id() }),
        ),
        (
            "reactivateUser",
            "mutation($id: ID!) { reactivateUser(id: $id) { id } }",
            json!({ "id": any_id() }),
        ),
        (
            "createPost",
            "mutation { createPost(input: { title: \"t\", body: \"b\" }) { id } }",
            json!({}),
        ),
        (
            "updatePost",
            "mutation($id: ID!) { updatePost(id: $id, input: { title: \"t\" }) { id } }",
            json!({ "id": any_id() }),
        ),
        (
            "deletePost",
            "mutation($id: ID!) { deletePost(id: $id) }",
            json!({ "id": any_id() }),
        ),
        (
            "votePost",
            "mutation($id: ID!) { votePost(id: $id) { id } }",
            json!({ "id": any_id() }),
        ),
        (
            "unvotePost",
            "mutation($id: ID!) { unvotePost(id: $id) { id } }",
            json!({ "id": any_id() }),
        ),
        ("logout", "mutation { logout }", json!({})),
    ]
}

async fn anonymous_callers_may_only_register_login_and_refresh(db: TestDb) {
    let app = db.spawn().await;
    for (name, query, vars) in signed_in_operations() {
        let res = app.gql(None, query, vars).await;
        assert_eq!(res.code(), "UNAUTHENTICATED", "{name}: {}", res.body);
        assert!(res.body["data"].is_null(), "{name}: {}", res.body);
    }
    // Nothing was created on the way.
    let admin = app.admin("root").await;
    let users = app
        .gql(
            Some(&admin.access),
            "{ users { edges { node { username } } } }",
            json!({}),
        )
        .await
        .ok();
    assert_eq!(users.data("users.edges").as_array().unwrap().len(), 1);
    let posts = app
        .gql(
            Some(&admin.access),
            "{ posts { edges { node { id } } } }",
            json!({}),
        )
        .await
        .ok();
    assert!(posts.data("posts.edges").as_array().unwrap().is_empty());

    // The three ways in need no token.
    let t = app.signed_up("ada").await;
    app.login("ada@example.com", PASSWORD).await.ok();
    app.refresh(&t.refresh).await.ok();
}

async fn users_are_forbidden_the_administrators_operations(db: TestDb) {
    let app = db.spawn().await;
    app.admin("root").await;
    let user = app.signed_up("ada").await;
    let victim = app.signed_up("bob").await;
    let victim_id = app.user_id(&victim.access).await;

    let forbidden = [
        ("users", "{ users { edges { node { id } } } }".to_owned()),
        (
            "createUser",
            "mutation { createUser(input: { email: \"new@example.com\", username: \"newbie\", password: \"a long passphrase\", role: ADMIN }) { id } }".to_owned(),
        ),
        ("updateUserRole", format!("mutation {{ updateUserRole(id: \"{victim_id}\", role: ADMIN) {{ id }} }}")),
        ("deactivateUser", format!("mutation {{ deactivateUser(id: \"{victim_id}\") {{ id }} }}")),
        ("reactivateUser", format!("mutation {{ reactivateUser(id: \"{victim_id}\") {{ id }} }}")),
    ];
    for (name, query) in &forbidden {
        let res = app.gql(Some(&user.access), query, json!({})).await;
        assert_eq!(res.code(), "FORBIDDEN", "{name}: {}", res.body);
        assert!(res.body["data"].is_null(), "{name}");
    }
    // Nothing changed: the victim is still an active USER, and no account was made.
    let me = app
        .gql(Some(&victim.access), "{ me { role active } }", json!({}))
        .await
        .ok();
    assert_eq!(me.data("me.role"), "USER");
    assert_eq!(me.data("me.active"), true);
    assert_eq!(
        app.login("new@example.com", "a long passphrase")
            .await
            .code(),
        "UNAUTHENTICATED"
    );

    // Everything else is open to them.
    for (name, query) in [
        ("me", "{ me { id } }"),
        ("sessions", "{ sessions { id } }"),
        ("posts", "{ posts { edges { node { id } } } }"),
        (
            "createPost",
            "mutation { createPost(input: { title: \"t\", body: \"b\" }) { id } }",
        ),
    ] {
        let res = app.gql(Some(&user.access), query, json!({})).await;
        assert!(res.body.get("errors").is_none(), "{name}: {}", res.body);
    }
    let res = app
        .gql(
            Some(&user.access),
            "query($id: ID!) { user(id: $id) { username } }",
            json!({ "id": victim_id }),
        )
        .await
        .ok();
    assert_eq!(res.data("user.username"), "bob");
}

async fn administrators_may_administer(db: TestDb) {
    let app = db.spawn().await;
    let admin = app.admin("root").await;
    let bob = app.signed_up("bob").await;
    let bob_id = app.user_id(&bob.access).await;
    let a = Some(admin.access.as_str());

    let created = app
        .gql(
            a,
            "mutation { createUser(input: { email: \"Carol@Example.com\", username: \"carol\", password: \"a long passphrase\" }) { username role active email } }",
            json!({}),
        )
        .await
        .ok();
    assert_eq!(created.data("createUser.role"), "USER", "USER by default");
    assert_eq!(created.data("createUser.email"), "Carol@Example.com");
    app.login("carol@example.com", "a long passphrase")
        .await
        .ok();

    let promoted = app
        .gql(
            a,
            "mutation($id: ID!) { updateUserRole(id: $id, role: ADMIN) { role } }",
            json!({ "id": bob_id }),
        )
        .await
        .ok();
    assert_eq!(promoted.data("updateUserRole.role"), "ADMIN");
    let deactivated = app
        .gql(
            a,
            "mutation($id: ID!) { deactivateUser(id: $id) { active } }",
            json!({ "id": bob_id }),
        )
        .await
        .ok();
    assert_eq!(deactivated.data("deactivateUser.active"), false);
    let reactivated = app
        .gql(
            a,
            "mutation($id: ID!) { reactivateUser(id: $id) { active } }",
            json!({ "id": bob_id }),
        )
        .await
        .ok();
    assert_eq!(reactivated.data("reactivateUser.active"), true);

    let listed = app
        .gql(
            a,
            "{ users { edges { node { username email } } } }",
            json!({}),
        )
        .await
        .ok();
    let names: Vec<&str> = listed
        .data("users.edges")
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["carol", "bob", "root"], "newest first");
    assert!(
        listed
            .data("users.edges")
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["node"]["email"].is_string())
    );

    for (name, query) in [
        (
            "unknown user",
            format!(
                "mutation {{ deactivateUser(id: \"{}\") {{ id }} }}",
                any_id()
            ),
        ),
        (
            "unknown user",
            format!(
                "mutation {{ updateUserRole(id: \"{}\", role: USER) {{ id }} }}",
                any_id()
            ),
        ),
    ] {
        assert_eq!(
            app.gql(a, &query, json!({})).await.code(),
            "NOT_FOUND",
            "{name}"
        );
    }
    let taken = app
        .gql(
            a,
            "mutation { createUser(input: { email: \"bob@example.com\", username: \"bobby\", password: \"a long passphrase\" }) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(taken.code(), "CONFLICT");
    assert_eq!(taken.error()["extensions"]["field"], "email");
}

async fn roles_are_read_afresh_on_every_request(db: TestDb) {
    let app = db.spawn().await;
    let admin = app.admin("root").await;
    let bob = app.signed_up("bob").await;
    let bob_id = app.user_id(&bob.access).await;
    let list = "{ users { edges { node { id } } } }";
    let set_role =
        "mutation($id: ID!, $role: Role!) { updateUserRole(id: $id, role: $role) { role } }";

    assert_eq!(
        app.gql(Some(&bob.access), list, json!({})).await.code(),
        "FORBIDDEN"
    );
    app.gql(
        Some(&admin.access),
        set_role,
        json!({ "id": bob_id, "role": "ADMIN" }),
    )
    .await
    .ok();
    // The same access token, minted while bob was a USER, now carries ADMIN rights.
    app.gql(Some(&bob.access), list, json!({})).await.ok();
    app.gql(
        Some(&admin.access),
        set_role,
        json!({ "id": bob_id, "role": "USER" }),
    )
    .await
    .ok();
    assert_eq!(
        app.gql(Some(&bob.access), list, json!({})).await.code(),
        "FORBIDDEN"
    );
}
