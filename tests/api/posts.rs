//! Posts: drafts, ownership, validation, votes; and who sees a user's email.

use serde_json::json;

use crate::helpers::{POST_FIELDS, TestDb};

crate::on_both_databases!(
    drafts_are_invisible_to_everyone_but_their_author_and_admins,
    only_authors_change_posts_and_admins_may_delete_them,
    post_input_is_validated_and_trimmed,
    votes_are_idempotent_and_counted,
    concurrent_votes_and_unvotes_keep_the_count_exact,
    emails_are_shown_only_to_their_owner_and_admins,
);

async fn drafts_are_invisible_to_everyone_but_their_author_and_admins(db: TestDb) {
    let app = db.spawn().await;
    let alice = app.signed_up("alice").await;
    let bob = app.signed_up("bob").await;
    let admin = app.admin("root").await;
    let alice_id = app.user_id(&alice.access).await;
    let draft = app.post(&alice.access, "Half-baked", false).await;
    let public = app.post(&alice.access, "Ready", true).await;

    let get = format!("query($id: ID!) {{ post(id: $id) {{ {POST_FIELDS} }} }}");
    let feed = "{ posts { edges { node { id } } } }";
    let by_alice =
        "query($id: ID!) { user(id: $id) { posts { edges { node { id published } } } } }";
    let ids = |res: &crate::helpers::Gql, path: &str| -> Vec<String> {
        res.data(path)
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
            .collect()
    };

    // To bob the draft does not exist.
    let seen = app
        .gql(Some(&bob.access), &get, json!({ "id": draft }))
        .await
        .ok();
    assert!(seen.data("post").is_null());
    let seen = app.gql(Some(&bob.access), feed, json!({})).await.ok();
    assert_eq!(ids(&seen, "posts.edges"), std::slice::from_ref(&public));
    let seen = app
        .gql(Some(&bob.access), by_alice, json!({ "id": alice_id }))
        .await
        .ok();
    assert_eq!(
        ids(&seen, "user.posts.edges"),
        std::slice::from_ref(&public)
    );
    for mutation in [
        "mutation($id: ID!) { updatePost(id: $id, input: { title: \"Mine now\" }) { id } }",
        "mutation($id: ID!) { deletePost(id: $id) }",
        "mutation($id: ID!) { votePost(id: $id) { id } }",
        "mutation($id: ID!) { unvotePost(id: $id) { id } }",
    ] {
        let res = app
            .gql(Some(&bob.access), mutation, json!({ "id": draft }))
            .await;
        assert_eq!(
            res.code(),
            "NOT_FOUND",
            "{mutation}: never FORBIDDEN, which would reveal it"
        );
    }

    // Its author and the administrators see it, but the public feed holds published posts only.
    for viewer in [&alice.access, &admin.access] {
        let seen = app
            .gql(Some(viewer), &get, json!({ "id": draft }))
            .await
            .ok();
        assert_eq!(seen.data("post.title"), "Half-baked");
        assert_eq!(seen.data("post.published"), false);
        let seen = app
            .gql(Some(viewer), by_alice, json!({ "id": alice_id }))
            .await
            .ok();
        assert_eq!(
            ids(&seen, "user.posts.edges"),
            [public.clone(), draft.clone()]
        );
        let seen = app.gql(Some(viewer), feed, json!({})).await.ok();
        assert_eq!(ids(&seen, "posts.edges"), std::slice::from_ref(&public));
    }
    let mine = app
        .gql(
            Some(&alice.access),
            "{ me { posts { edges { node { id } } } } }",
            json!({}),
        )
        .await
        .ok();
    assert_eq!(ids(&mine, "me.posts.edges").len(), 2);

    // Once published, it is everyone's.
    app.gql(
        Some(&alice.access),
        "mutation($id: ID!) { updatePost(id: $id, input: { published: true }) { published } }",
        json!({ "id": draft }),
    )
    .await
    .ok();
    let seen = app
        .gql(Some(&bob.access), &get, json!({ "id": draft }))
        .await
        .ok();
    assert_eq!(seen.data("post.title"), "Half-baked");
    let seen = app.gql(Some(&bob.access), feed, json!({})).await.ok();
    assert_eq!(ids(&seen, "posts.edges").len(), 2);
}

async fn only_authors_change_posts_and_admins_may_delete_them(db: TestDb) {
    let app = db.spawn().await;
    let alice = app.signed_up("alice").await;
    let bob = app.signed_up("bob").await;
    let admin = app.admin("root").await;
    let post = app.post(&alice.access, "Alice's thoughts", true).await;
    let update = "mutation($id: ID!, $t: String) { updatePost(id: $id, input: { title: $t }) { title updatedAt createdAt } }";
    let delete = "mutation($id: ID!) { deletePost(id: $id) }";
    let get = "query($id: ID!) { post(id: $id) { title } }";

    for (who, token) in [("bob", &bob.access), ("the admin", &admin.access)] {
        let res = app
            .gql(Some(token), update, json!({ "id": post, "t": "Defaced" }))
            .await;
        assert_eq!(res.code(), "FORBIDDEN", "{who} may not edit alice's post");
    }
    assert_eq!(
        app.gql(Some(&bob.access), delete, json!({ "id": post }))
            .await
            .code(),
        "FORBIDDEN"
    );
    let seen = app
        .gql(Some(&bob.access), get, json!({ "id": post }))
        .await
        .ok();
    assert_eq!(seen.data("post.title"), "Alice's thoughts");

    let edited = app
        .gql(
            Some(&alice.access),
            update,
            json!({ "id": post, "t": "Second thoughts" }),
        )
        .await
        .ok();
    assert_eq!(edited.data("updatePost.title"), "Second thoughts");
    let time = |field: &str| {
        chrono::DateTime::parse_from_rfc3339(edited.data(field).as_str().unwrap()).unwrap()
    };
    assert!(time("updatePost.updatedAt") > time("updatePost.createdAt"));

    let deleted = app
        .gql(Some(&admin.access), delete, json!({ "id": post }))
        .await
        .ok();
    assert_eq!(deleted.data("deletePost"), post.as_str());
    assert!(
        app.gql(Some(&alice.access), get, json!({ "id": post }))
            .await
            .ok()
            .data("post")
            .is_null()
    );
    assert_eq!(
        app.gql(Some(&alice.access), delete, json!({ "id": post }))
            .await
            .code(),
        "NOT_FOUND"
    );

    // The author may delete their own.
    let own = app.post(&bob.access, "Bob's", true).await;
    app.gql(Some(&bob.access), delete, json!({ "id": own }))
        .await
        .ok();

    let unknown = uuid::Uuid::new_v4().to_string();
    assert_eq!(
        app.gql(
            Some(&bob.access),
            update,
            json!({ "id": unknown, "t": "x" })
        )
        .await
        .code(),
        "NOT_FOUND"
    );
    let malformed = app
        .gql(Some(&bob.access), delete, json!({ "id": "post-1" }))
        .await;
    assert_eq!(malformed.code(), "BAD_USER_INPUT");
    assert_eq!(malformed.error()["extensions"]["field"], "id");
}

async fn post_input_is_validated_and_trimmed(db: TestDb) {
    let app = db.spawn().await;
    let alice = app.signed_up("alice").await;
    let create =
        "mutation($i: CreatePostInput!) { createPost(input: $i) { id title body published } }";

    for (input, field) in [
        (json!({ "title": "   ", "body": "text" }), "title"),
        (json!({ "title": "é".repeat(201), "body": "text" }), "title"),
        (json!({ "title": "Fine", "body": " \n " }), "body"),
        (
            json!({ "title": "Fine", "body": "b".repeat(50_001) }),
            "body",
        ),
    ] {
        let res = app
            .gql(Some(&alice.access), create, json!({ "i": input }))
            .await;
        assert_eq!(res.code(), "BAD_USER_INPUT");
        assert_eq!(res.error()["extensions"]["field"], field);
    }
    let none = app
        .gql(
            Some(&alice.access),
            "{ me { posts { edges { node { id } } } } }",
            json!({}),
        )
        .await
        .ok();
    assert!(
        none.data("me.posts.edges").as_array().unwrap().is_empty(),
        "nothing was written"
    );

    let made = app
        .gql(
            Some(&alice.access),
            create,
            json!({ "i": { "title": "  Spaced out  ", "body": format!(" {} ", "b".repeat(50_000)) } }),
        )
        .await
        .ok();
    assert_eq!(made.data("createPost.title"), "Spaced out");
    assert_eq!(made.data("createPost.body").as_str().unwrap().len(), 50_000);
    assert_eq!(
        made.data("createPost.published"),
        true,
        "published unless told otherwise"
    );
    let id = made.data("createPost.id").as_str().unwrap();

    let res = app
        .gql(
            Some(&alice.access),
            "mutation($id: ID!) { updatePost(id: $id, input: { title: \"\" }) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(res.error()["extensions"]["field"], "title");
    let still = app
        .gql(
            Some(&alice.access),
            "query($id: ID!) { post(id: $id) { title } }",
            json!({ "id": id }),
        )
        .await
        .ok();
    assert_eq!(still.data("post.title"), "Spaced out");
}

async fn votes_are_idempotent_and_counted(db: TestDb) {
    let app = db.spawn().await;
    let alice = app.signed_up("alice").await;
    let bob = app.signed_up("bob").await;
    let carol = app.signed_up("carol").await;
    let post = app.post(&alice.access, "Vote for me", true).await;
    let vote = "mutation($id: ID!) { votePost(id: $id) { voteCount viewerHasVoted } }";
    let unvote = "mutation($id: ID!) { unvotePost(id: $id) { voteCount viewerHasVoted } }";
    let get = "query($id: ID!) { post(id: $id) { voteCount viewerHasVoted } }";

    for _ in 0..2 {
        let res = app
            .gql(Some(&bob.access), vote, json!({ "id": post }))
            .await
            .ok();
        assert_eq!(res.data("votePost.voteCount"), 1);
        assert_eq!(res.data("votePost.viewerHasVoted"), true);
    }
    let res = app
        .gql(Some(&alice.access), get, json!({ "id": post }))
        .await
        .ok();
    assert_eq!(res.data("post.voteCount"), 1);
    assert_eq!(res.data("post.viewerHasVoted"), false);

    let res = app
        .gql(Some(&carol.access), vote, json!({ "id": post }))
        .await
        .ok();
    assert_eq!(res.data("votePost.voteCount"), 2);

    for _ in 0..2 {
        let res = app
            .gql(Some(&bob.access), unvote, json!({ "id": post }))
            .await
            .ok();
        assert_eq!(res.data("unvotePost.voteCount"), 1);
        assert_eq!(res.data("unvotePost.viewerHasVoted"), false);
    }
    // Withdrawing a vote never given changes nothing.
    let res = app
        .gql(Some(&alice.access), unvote, json!({ "id": post }))
        .await
        .ok();
    assert_eq!(res.data("unvotePost.voteCount"), 1);
    let res = app
        .gql(Some(&carol.access), get, json!({ "id": post }))
        .await
        .ok();
    assert_eq!(res.data("post.viewerHasVoted"), true);

    let unknown = uuid::Uuid::new_v4().to_string();
    assert_eq!(
        app.gql(Some(&bob.access), vote, json!({ "id": unknown }))
            .await
            .code(),
        "NOT_FOUND"
    );
}

async fn emails_are_shown_only_to_their_owner_and_admins(db: TestDb) {
    let app = db.spawn().await;
    let alice = app.signed_up("alice").await;
    let bob = app.signed_up("bob").await;
    let admin = app.admin("root").await;
    let alice_id = app.user_id(&alice.access).await;
    app.post(&alice.access, "Hello", true).await;
    let query =
        "query($id: ID!) { user(id: $id) { email } posts { edges { node { author { email } } } } }";

    let as_bob = app
        .gql(Some(&bob.access), query, json!({ "id": alice_id }))
        .await
        .ok();
    assert!(as_bob.data("user.email").is_null());
    assert!(as_bob.data("posts.edges")[0]["node"]["author"]["email"].is_null());

    for viewer in [&alice.access, &admin.access] {
        let seen = app
            .gql(Some(viewer), query, json!({ "id": alice_id }))
            .await
            .ok();
        assert_eq!(seen.data("user.email"), "alice@example.com");
        assert_eq!(
            seen.data("posts.edges")[0]["node"]["author"]["email"],
            "alice@example.com"
        );
    }
    let unknown = app
        .gql(
            Some(&bob.access),
            "query($id: ID!) { user(id: $id) { id } }",
            json!({ "id": uuid::Uuid::new_v4().to_string() }),
        )
        .await
        .ok();
    assert!(unknown.data("user").is_null());
}

async fn concurrent_votes_and_unvotes_keep_the_count_exact(db: TestDb) {
    let app = db.spawn().await;
    let alice = app.signed_up("alice").await;
    let post = app.post(&alice.access, "Hot", true).await;
    let mut voters = Vec::new();
    for i in 0..10 {
        voters.push(app.signed_up(&format!("voter{i}")).await);
    }
    let vote = "mutation($id: ID!) { votePost(id: $id) { id } }";
    let unvote = "mutation($id: ID!) { unvotePost(id: $id) { id } }";
    // Every voter votes and withdraws several times, all at once, each in its own order:
    // votes race with votes, withdrawals with withdrawals, and both with each other's.
    let requests = voters.iter().enumerate().flat_map(|(i, voter)| {
        (0..6).map(move |k| {
            let doc = if (i + k) % 3 == 0 { unvote } else { vote };
            (voter, doc)
        })
    });
    let answers = futures::future::join_all(
        requests.map(|(voter, doc)| app.gql(Some(&voter.access), doc, json!({ "id": post }))),
    )
    .await;
    for res in answers {
        res.ok();
    }
    // The count is the number of voters whose vote stands, however the race ended.
    let get = "query($id: ID!) { post(id: $id) { voteCount viewerHasVoted } }";
    let mut standing = 0;
    for voter in &voters {
        let res = app
            .gql(Some(&voter.access), get, json!({ "id": post }))
            .await;
        if res.data("post.viewerHasVoted") == true {
            standing += 1;
        }
    }
    let res = app
        .gql(Some(&alice.access), get, json!({ "id": post }))
        .await;
    assert_eq!(res.data("post.voteCount"), standing);
    // And it stays exact from there: everyone withdraws, then one votes.
    let withdrawals = voters
        .iter()
        .map(|voter| app.gql(Some(&voter.access), unvote, json!({ "id": post })));
    futures::future::join_all(withdrawals).await;
    let res = app
        .gql(
            Some(&voters[0].access),
            "mutation($id: ID!) { votePost(id: $id) { voteCount } }",
            json!({ "id": post }),
        )
        .await;
    assert_eq!(res.data("votePost.voteCount"), 1, "{}", res.body);
}
