//! Administering users: the last administrator, deactivation, searching.

use serde_json::json;

use crate::helpers::{PASSWORD, TestDb};

crate::on_both_databases!(
    the_last_active_admin_can_be_neither_demoted_nor_deactivated,
    concurrent_demotions_never_remove_the_last_admin,
    deactivation_cuts_off_live_tokens_and_sign_in,
    users_are_filtered_by_role_and_searched_by_prefix,
);

const SET_ROLE: &str =
    "mutation($id: ID!, $role: Role!) { updateUserRole(id: $id, role: $role) { role } }";
const DEACTIVATE: &str = "mutation($id: ID!) { deactivateUser(id: $id) { active } }";
const REACTIVATE: &str = "mutation($id: ID!) { reactivateUser(id: $id) { active } }";

async fn the_last_active_admin_can_be_neither_demoted_nor_deactivated(db: TestDb) {
    let app = db.spawn().await;
    let root = app.admin("root").await;
    let root_id = app.user_id(&root.access).await;
    let a = Some(root.access.as_str());

    let demote = app
        .gql(a, SET_ROLE, json!({ "id": root_id, "role": "USER" }))
        .await;
    assert_eq!(demote.code(), "CONFLICT");
    assert_eq!(
        app.gql(a, DEACTIVATE, json!({ "id": root_id }))
            .await
            .code(),
        "CONFLICT"
    );
    // Still an administrator, and still signed in.
    assert_eq!(app.me(&root.access).await.ok().data("me.role"), "ADMIN");

    // With a second administrator, the first may step down…
    let made = app
        .gql(
            a,
            "mutation { createUser(input: { email: \"ops@example.com\", username: \"ops\", password: \"a long passphrase\", role: ADMIN }) { id } }",
            json!({}),
        )
        .await
        .ok();
    let ops_id = made.data("createUser.id").as_str().unwrap().to_owned();
    app.gql(a, SET_ROLE, json!({ "id": root_id, "role": "USER" }))
        .await
        .ok();
    // …and now the second is the last one.
    let ops = app.login("ops@example.com", "a long passphrase").await.ok();
    let o = ops.data("login.accessToken").as_str().unwrap().to_owned();
    assert_eq!(
        app.gql(Some(&o), SET_ROLE, json!({ "id": ops_id, "role": "USER" }))
            .await
            .code(),
        "CONFLICT"
    );

    // A deactivated administrator does not count.
    app.gql(
        Some(&o),
        SET_ROLE,
        json!({ "id": root_id, "role": "ADMIN" }),
    )
    .await
    .ok();
    app.gql(Some(&o), DEACTIVATE, json!({ "id": root_id }))
        .await
        .ok();
    assert_eq!(
        app.gql(Some(&o), DEACTIVATE, json!({ "id": ops_id }))
            .await
            .code(),
        "CONFLICT"
    );
    app.gql(Some(&o), REACTIVATE, json!({ "id": root_id }))
        .await
        .ok();
    app.gql(Some(&o), DEACTIVATE, json!({ "id": ops_id }))
        .await
        .ok();
}

async fn concurrent_demotions_never_remove_the_last_admin(db: TestDb) {
    let app = db.spawn().await;
    let first = app.admin("first").await;
    let second = app.admin("second").await;
    let first_id = app.user_id(&first.access).await;
    let second_id = app.user_id(&second.access).await;
    let ids = [first_id.as_str(), second_id.as_str()];
    let tokens = [&first, &second];

    // Each demotes the other at the same moment, round after round: one must lose.
    for round in 0..6 {
        let (a, b) = tokio::join!(
            app.gql(
                Some(&first.access),
                SET_ROLE,
                json!({ "id": second_id, "role": "USER" })
            ),
            app.gql(
                Some(&second.access),
                SET_ROLE,
                json!({ "id": first_id, "role": "USER" })
            ),
        );
        let outcomes = [&a, &b].map(|r| r.body.get("errors").map(|_| r.code().to_owned()));
        let winners: Vec<usize> = (0..2).filter(|i| outcomes[*i].is_none()).collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one demotion succeeds: {outcomes:?}"
        );
        // The loser is refused by the last-admin rule (CONFLICT) or, when it arrives after
        // the winner's change, by its guard, being a USER by then (FORBIDDEN).
        let loser = 1 - winners[0];
        assert!(
            matches!(outcomes[loser].as_deref(), Some("CONFLICT" | "FORBIDDEN")),
            "round {round}: {outcomes:?}"
        );
        let roles = [
            app.me(&first.access).await.ok().data("me.role").clone(),
            app.me(&second.access).await.ok().data("me.role").clone(),
        ];
        assert_eq!(
            roles.iter().filter(|r| *r == "ADMIN").count(),
            1,
            "round {round}: {roles:?}"
        );
        // The winner promotes the loser back for the next round.
        app.gql(
            Some(&tokens[winners[0]].access),
            SET_ROLE,
            json!({ "id": ids[1 - winners[0]], "role": "ADMIN" }),
        )
        .await
        .ok();
    }
}

async fn deactivation_cuts_off_live_tokens_and_sign_in(db: TestDb) {
    let app = db.spawn().await;
    let admin = app.admin("root").await;
    let laptop = app.signed_up("bob").await;
    let phone = app.signed_in("bob").await;
    let bob_id = app.user_id(&laptop.access).await;

    let res = app
        .gql(Some(&admin.access), DEACTIVATE, json!({ "id": bob_id }))
        .await
        .ok();
    assert_eq!(res.data("deactivateUser.active"), false);

    for t in [&laptop, &phone] {
        assert_eq!(app.me(&t.access).await.code(), "UNAUTHENTICATED");
        assert_eq!(app.refresh(&t.refresh).await.code(), "UNAUTHENTICATED");
    }
    let refused = app.login("bob@example.com", PASSWORD).await;
    let wrong = app.login("bob@example.com", "not the password").await;
    assert_eq!(
        refused.body, wrong.body,
        "a deactivated account looks like a wrong password"
    );

    let seen = app
        .gql(
            Some(&admin.access),
            "query($id: ID!) { user(id: $id) { active } }",
            json!({ "id": bob_id }),
        )
        .await
        .ok();
    assert_eq!(seen.data("user.active"), false);

    app.gql(Some(&admin.access), REACTIVATE, json!({ "id": bob_id }))
        .await
        .ok();
    let back = app.signed_in("bob").await;
    app.me(&back.access).await.ok();
    // The sessions that were ended stay ended.
    assert_eq!(app.me(&laptop.access).await.code(), "UNAUTHENTICATED");
}

async fn users_are_filtered_by_role_and_searched_by_prefix(db: TestDb) {
    let app = db.spawn().await;
    let admin = app.admin("root").await;
    for name in ["alice", "alfred", "bob", "al_pha"] {
        app.signed_up(name).await;
    }
    app.register("Alpha.Zed@Example.com", "zed", PASSWORD)
        .await
        .ok();
    let list = "query($role: Role, $search: String) { users(role: $role, search: $search) { edges { node { username } } } }";
    let names = |res: crate::helpers::Gql| -> Vec<String> {
        res.data("users.edges")
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["username"].as_str().unwrap().to_owned())
            .collect()
    };

    let found = app
        .gql(Some(&admin.access), list, json!({ "search": "AL" }))
        .await
        .ok();
    assert_eq!(
        names(found),
        ["zed", "al_pha", "alfred", "alice"],
        "username or email, any case"
    );
    // `_` and `%` are matched literally.
    let found = app
        .gql(Some(&admin.access), list, json!({ "search": "al_" }))
        .await
        .ok();
    assert_eq!(names(found), ["al_pha"]);
    let found = app
        .gql(Some(&admin.access), list, json!({ "search": "%" }))
        .await
        .ok();
    assert!(names(found).is_empty());
    let found = app
        .gql(Some(&admin.access), list, json!({ "search": "lice" }))
        .await
        .ok();
    assert!(names(found).is_empty(), "prefixes only");

    let admins = app
        .gql(Some(&admin.access), list, json!({ "role": "ADMIN" }))
        .await
        .ok();
    assert_eq!(names(admins), ["root"]);
    let users = app
        .gql(
            Some(&admin.access),
            list,
            json!({ "role": "USER", "search": "b" }),
        )
        .await
        .ok();
    assert_eq!(names(users), ["bob"]);
}
