//! Who may call what: anonymous callers, USERs and ADMINs against every operation.

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestDb};

crate::on_both_databases!(
    anonymous_callers_may_only_register_login_and_refresh,
    every_operation_for_every_role,
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

/// What a caller of one role sees from one operation.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Data,
    Code(&'static str),
}

async fn every_operation_for_every_role(db: TestDb) {
    use Outcome::{Code, Data};
    let app = db.spawn().await;
    let admin = app.admin("root").await;
    let user = app.signed_up("ada").await;
    let target = app.signed_up("bob").await;
    let target_id = app.user_id(&target.access).await;
    let user_post = app.post(&user.access, "Ada's post", true).await;
    let admin_post = app.post(&admin.access, "Root's post", true).await;

    // (operation, query, variables for USER, variables for ADMIN, USER sees, ADMIN sees)
    // Each role acts on its own post, so ownership never decides the outcome here.
    type Row = (&'static str, String, Value, Value, Outcome, Outcome);
    let own = |p: &str| json!({ "id": p });
    let rows: Vec<Row> = vec![
        ("me", "{ me { id } }".into(), json!({}), json!({}), Data, Data),
        ("sessions", "{ sessions { id } }".into(), json!({}), json!({}), Data, Data),
        ("user", "query($id: ID!) { user(id: $id) { id } }".into(), own(&target_id), own(&target_id), Data, Data),
        ("users", "{ users { edges { node { id } } } }".into(), json!({}), json!({}), Code("FORBIDDEN"), Data),
        ("post", "query($id: ID!) { post(id: $id) { id } }".into(), own(&user_post), own(&admin_post), Data, Data),
        ("posts", "{ posts { edges { node { id } } } }".into(), json!({}), json!({}), Data, Data),
        ("createPost", "mutation { createPost(input: { title: \"t\", body: \"b\" }) { id } }".into(), json!({}), json!({}), Data, Data),
        ("updatePost", "mutation($id: ID!) { updatePost(id: $id, input: { title: \"t2\" }) { id } }".into(), own(&user_post), own(&admin_post), Data, Data),
        ("votePost", "mutation($id: ID!) { votePost(id: $id) { id } }".into(), own(&user_post), own(&admin_post), Data, Data),
        ("unvotePost", "mutation($id: ID!) { unvotePost(id: $id) { id } }".into(), own(&user_post), own(&admin_post), Data, Data),
        ("createUser", "mutation($e: String!, $u: String!) { createUser(input: { email: $e, username: $u, password: \"a long passphrase\" }) { id } }".into(),
            json!({ "e": "u1@example.com", "u": "made_by_user" }), json!({ "e": "a1@example.com", "u": "made_by_admin" }), Code("FORBIDDEN"), Data),
        ("updateUserRole", "mutation($id: ID!) { updateUserRole(id: $id, role: USER) { id } }".into(), own(&target_id), own(&target_id), Code("FORBIDDEN"), Data),
        ("deactivateUser", "mutation($id: ID!) { deactivateUser(id: $id) { id } }".into(), own(&target_id), own(&target_id), Code("FORBIDDEN"), Data),
        ("reactivateUser", "mutation($id: ID!) { reactivateUser(id: $id) { id } }".into(), own(&target_id), own(&target_id), Code("FORBIDDEN"), Data),
        ("deletePost", "mutation($id: ID!) { deletePost(id: $id) }".into(), own(&user_post), own(&admin_post), Data, Data),
        ("changePassword", "mutation { changePassword(currentPassword: \"correct horse battery staple\", newPassword: \"a brand new passphrase\") }".into(),
            json!({}), json!({}), Data, Data),
        ("revokeSession", "mutation($id: ID!) { revokeSession(id: $id) }".into(), json!({ "id": uuid::Uuid::new_v4().to_string() }), json!({ "id": uuid::Uuid::new_v4().to_string() }), Code("NOT_FOUND"), Code("NOT_FOUND")),
        ("logoutAll", "mutation { logoutAll }".into(), json!({}), json!({}), Data, Data),
    ];
    for (name, query, user_vars, admin_vars, for_user, for_admin) in rows {
        for (role, token, vars, expected) in [
            ("USER", &user.access, user_vars, for_user),
            ("ADMIN", &admin.access, admin_vars, for_admin),
        ] {
            let res = app.gql(Some(token), &query, vars).await;
            let seen = match res.body.get("errors") {
                None => Data,
                Some(_) => Code(match res.code() {
                    "FORBIDDEN" => "FORBIDDEN",
                    "NOT_FOUND" => "NOT_FOUND",
                    other => panic!("{name} as {role}: unexpected {other}: {}", res.body),
                }),
            };
            assert_eq!(seen, expected, "{name} as {role}: {}", res.body);
            if expected != Data {
                assert!(res.body["data"].is_null(), "{name} as {role}");
            }
        }
    }
    // The refusals changed nothing: the USER's attempt made no account.
    assert_eq!(
        app.login("u1@example.com", "a long passphrase")
            .await
            .code(),
        "UNAUTHENTICATED"
    );
    app.login("a1@example.com", "a long passphrase").await.ok();
}
