//! No N+1: the number of SQL statements a request sends does not grow with the page size.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{TestApp, TestDb, Tokens, statements};

crate::on_both_databases!(
    a_page_of_posts_costs_a_constant_number_of_statements,
    the_statements_of_a_read_share_one_connection,
    one_connection_serves_concurrent_reads_and_writes,
    a_request_may_read_the_posts_of_hundreds_of_authors,
);

/// Sends `query` and returns the statements the server ran for it.
async fn statements_for(app: &TestApp, token: &Tokens, query: &str) -> Vec<String> {
    let res = app.gql(Some(&token.access), query, json!({})).await.ok();
    let request_id = res.headers["x-request-id"].to_str().unwrap().to_owned();
    statements::sent_by(&request_id)
}

async fn a_page_of_posts_costs_a_constant_number_of_statements(db: TestDb) {
    statements::install();
    let app = db.spawn().await;
    let authors = [
        app.signed_up("ann").await,
        app.signed_up("ben").await,
        app.signed_up("cyd").await,
        app.signed_up("dee").await,
    ];
    let mut posts = Vec::new();
    for i in 0..120 {
        posts.push(
            app.post(&authors[i % 4].access, &format!("Post {i}"), true)
                .await,
        );
    }
    let reader = app.signed_up("reader").await;
    for id in posts.iter().step_by(3) {
        for voter in [&reader, &authors[1]] {
            app.gql(
                Some(&voter.access),
                "mutation($id: ID!) { votePost(id: $id) { id } }",
                json!({ "id": id }),
            )
            .await
            .ok();
        }
    }

    let page = |n: usize| {
        format!(
            "{{ posts(first: {n}) {{ edges {{ node {{ title author {{ username }} voteCount viewerHasVoted }} }} }} }}"
        )
    };
    // A session this instance has not checked yet is read once: then the page.
    let newcomer = app.signed_up("newcomer").await;
    let cold = statements_for(&app, &newcomer, &page(5)).await;
    assert_eq!(cold.len(), 2, "{cold:#?}");
    // Once the session is known to be live, a page is one statement, whatever its size
    // and whatever it shows of its authors and the caller's votes.
    let small = statements_for(&app, &reader, &page(1)).await;
    let large = statements_for(&app, &reader, &page(100)).await;
    assert_eq!(small.len(), 1, "{small:#?}");
    assert_eq!(large.len(), 1, "{large:#?}");
    let through_fragments = "{ posts(first: 100) { nodes { ...P } pageInfo { hasNextPage } } } \
                             fragment P on Post { ... on Post { author { username } } viewerHasVoted }";
    let folded = statements_for(&app, &reader, through_fragments).await;
    assert_eq!(folded.len(), 1, "{folded:#?}");
    let res = app
        .gql(Some(&reader.access), through_fragments, json!({}))
        .await
        .ok();
    let nodes = res.data("posts.nodes").as_array().unwrap();
    assert_eq!(nodes.len(), 100);
    assert!(nodes.iter().all(|n| n["author"]["username"].is_string()));
    // By one author, after a cursor: one statement too.
    let ann = app.user_id(&authors[0].access).await;
    let cursor = {
        let res = app
            .gql(
                Some(&reader.access),
                "query($a: ID!) { posts(first: 2, authorId: $a) { pageInfo { endCursor } } }",
                json!({ "a": ann }),
            )
            .await
            .ok();
        res.data("posts.pageInfo.endCursor").clone()
    };
    let res = app
        .gql(
            Some(&reader.access),
            "query($a: ID!, $c: String) { posts(first: 5, authorId: $a, after: $c) { edges { node { author { username } viewerHasVoted } } } }",
            json!({ "a": ann, "c": cursor }),
        )
        .await
        .ok();
    let request_id = res.headers["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(statements::sent_by(&request_id).len(), 1);
    let edges = res.data("posts.edges").as_array().unwrap();
    assert_eq!(edges.len(), 5);
    assert!(
        edges
            .iter()
            .all(|e| e["node"]["author"]["username"] == "ann")
    );

    // The answer is right, too: every third post has two votes, one of them the reader's.
    let res = app
        .gql(Some(&reader.access), &page(100), json!({}))
        .await
        .ok();
    let edges = res.data("posts.edges").as_array().unwrap();
    assert_eq!(edges.len(), 100);
    let voted = edges
        .iter()
        .filter(|e| e["node"]["viewerHasVoted"] == true)
        .count();
    let with_two = edges.iter().filter(|e| e["node"]["voteCount"] == 2).count();
    assert_eq!(voted, with_two);
    assert!((33..=34).contains(&voted), "{voted}");

    // Nested lists are batched as well: users, each with their posts and those posts' authors.
    let admin = app.admin("root").await;
    let nested = |n: usize| {
        format!(
            "{{ users(first: {n}) {{ edges {{ node {{ username posts(first: 10) {{ edges {{ node {{ voteCount viewerHasVoted author {{ username }} }} }} }} }} }} }} }}"
        )
    };
    app.me(&admin.access).await.ok();
    // Newest first: root, newcomer and reader have no posts, dee has; then everyone.
    let three = statements_for(&app, &admin, &nested(4)).await;
    let all = statements_for(&app, &admin, &nested(8)).await;
    assert_eq!(three.len(), all.len(), "{three:#?} {all:#?}");
    // The users, their posts, the posts' authors, the caller's votes.
    assert!(all.len() <= 4, "{all:#?}");
}

/// Whether `conn` is the connection that created the session's temporary marker table.
async fn made_the_marker(conn: &mut quire::db::DbConn) -> bool {
    quire::sql!(conn, |c| sqlx::query("SELECT count(*) FROM kept_marker")
        .fetch_one(c)
        .await
        .is_ok())
}

async fn the_statements_of_a_read_share_one_connection(db: TestDb) {
    let url = quire::config::DatabaseUrl::parse(&db.url).expect("a database URL");
    let pool = quire::db::Db::connect(&url, 2).await.expect("a pool");
    quire::db::kept::keeping(async {
        let mut first = pool.acquire().await.expect("a connection");
        quire::execute!(
            &mut first,
            sqlx::query("CREATE TEMP TABLE kept_marker (x INTEGER)")
        )
        .expect("a temporary table");
        drop(first);
        let mut again = pool.acquire().await.expect("a connection");
        assert!(
            made_the_marker(&mut again).await,
            "the second statement of a request runs on the first one's connection"
        );
        // While the kept connection is busy, another statement takes one from the pool
        // rather than waiting for it.
        let mut other = tokio::time::timeout(Duration::from_secs(2), pool.acquire())
            .await
            .expect("no waiting on the busy kept connection")
            .expect("a connection");
        assert!(!made_the_marker(&mut other).await);
    })
    .await;
    pool.close().await;
}

async fn one_connection_serves_concurrent_reads_and_writes(db: TestDb) {
    let app = db.spawn_with(|s| s.common.pool_size = 1).await;
    let writer = app.signed_up("writer").await;
    let reader = app.signed_up("reader").await;
    let post = app.post(&writer.access, "Shared", true).await;
    // Several top-level fields read at once within one request, while other requests
    // vote: none may wait for a connection its own request keeps.
    let read = "{ me { username } sessions { id } apiKeys { id } \
                posts(first: 5) { edges { node { title author { username } voteCount } } } }";
    let reads = (0..6).map(|_| app.gql(Some(&reader.access), read, json!({})));
    let votes = [&writer, &reader].map(|who| {
        app.gql(
            Some(&who.access),
            "mutation($id: ID!) { votePost(id: $id) { voteCount } }",
            json!({ "id": post }),
        )
    });
    let (reads, votes) = tokio::time::timeout(
        Duration::from_secs(4),
        futures::future::join(
            futures::future::join_all(reads),
            futures::future::join_all(votes),
        ),
    )
    .await
    .expect("every request is answered before a connection could time out");
    for res in reads {
        let res = res.ok();
        assert_eq!(res.data("me.username"), "reader");
        let node = &res.data("posts.edges")[0]["node"];
        assert_eq!(node["title"], "Shared");
        assert_eq!(node["author"]["username"], "writer");
    }
    for res in votes {
        res.ok();
    }
    let res = app
        .gql(
            Some(&reader.access),
            "{ posts(first: 1) { edges { node { voteCount viewerHasVoted } } } }",
            json!({}),
        )
        .await
        .ok();
    let node = &res.data("posts.edges")[0]["node"];
    assert_eq!(node["voteCount"], 2);
    assert_eq!(node["viewerHasVoted"], true);
}

async fn a_request_may_read_the_posts_of_hundreds_of_authors(db: TestDb) {
    // Complexity raised so that one request can list 600 users, each with a post.
    let app = db
        .spawn_with(|s| s.serving.limits.max_complexity = 20000)
        .await;
    let admin = app.admin("root").await;
    let plan = quire::seed::Plan {
        users: 600,
        posts: 2400,
        votes: 0,
        seed: 7,
    };
    quire::seed::seed(&app.app.db, &app.app.auth.passwords, plan)
        .await
        .expect("demo data");
    // The cursors that split the 601 users into pages of 100.
    let mut cursors = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..6 {
        let res = app
            .gql(
                Some(&admin.access),
                "query($after: String) { users(first: 100, after: $after) { pageInfo { endCursor } } }",
                json!({ "after": after }),
            )
            .await
            .ok();
        after = res
            .data("users.pageInfo.endCursor")
            .as_str()
            .map(str::to_owned);
        cursors.push(after.clone().expect("a cursor"));
    }
    // Seven pages in one request: 601 authors whose first post is loaded in one batch.
    let mut query = String::from("query {");
    for (i, after) in std::iter::once(None)
        .chain(cursors.iter().map(Some))
        .enumerate()
    {
        let after = after
            .map(|c| format!(", after: \"{c}\""))
            .unwrap_or_default();
        query.push_str(&format!(
            " p{i}: users(first: 100{after}) {{ edges {{ node {{ id posts(first: 1) {{ edges {{ node {{ author {{ id }} }} }} }} }} }} }}"
        ));
    }
    query.push_str(" }");
    let res = app.gql(Some(&admin.access), &query, json!({})).await;
    let errors = res.body["errors"].as_array().map_or(0, Vec::len);
    assert_eq!(errors, 0, "first error of {errors}: {}", res.error());
    let mut users = 0;
    let mut with_posts = 0;
    for i in 0..7 {
        for edge in res.data(&format!("p{i}.edges")).as_array().unwrap() {
            users += 1;
            let node = &edge["node"];
            if let Some(post) = node["posts"]["edges"].as_array().unwrap().first() {
                with_posts += 1;
                assert_eq!(post["node"]["author"]["id"], node["id"], "{edge}");
            }
        }
    }
    assert_eq!(users, 601);
    // 2,400 posts over 600 authors: nearly all have one.
    assert!(with_posts > 550, "{with_posts} of 600 authors have a post");
}
