//! Relay connections: walking long lists page by page.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::helpers::{TestApp, TestDb};

crate::on_both_databases!(
    walking_the_feed_neither_repeats_nor_skips_while_posts_arrive,
    page_arguments_are_checked,
    each_users_posts_are_paged_too,
);

const FEED: &str = "query($first: Int, $after: String) { posts(first: $first, after: $after) { \
    edges { cursor node { id } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }";

async fn feed_page(app: &TestApp, token: &str, first: i64, after: Option<&str>) -> Value {
    app.gql(Some(token), FEED, json!({ "first": first, "after": after }))
        .await
        .ok()
        .data("posts")
        .clone()
}

async fn walking_the_feed_neither_repeats_nor_skips_while_posts_arrive(db: TestDb) {
    let app = db.spawn().await;
    let writers = [
        app.signed_up("ann").await,
        app.signed_up("ben").await,
        app.signed_up("cyd").await,
    ];
    let mut written = Vec::new();
    for i in 0..250 {
        let w = &writers[i % writers.len()];
        written.push(app.post(&w.access, &format!("Post {i}"), true).await);
    }
    // Drafts never appear in the feed.
    app.post(&writers[0].access, "Secret", false).await;

    let reader = app.signed_up("reader").await;
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    let mut late: Vec<String> = Vec::new();
    loop {
        let page = feed_page(&app, &reader.access, 20, after.as_deref()).await;
        let edges = page["edges"].as_array().unwrap();
        pages += 1;
        assert_eq!(page["pageInfo"]["hasPreviousPage"], after.is_some());
        if !edges.is_empty() {
            assert_eq!(page["pageInfo"]["startCursor"], edges[0]["cursor"]);
            assert_eq!(
                page["pageInfo"]["endCursor"],
                edges[edges.len() - 1]["cursor"]
            );
        }
        seen.extend(
            edges
                .iter()
                .map(|e| e["node"]["id"].as_str().unwrap().to_owned()),
        );
        if pages == 3 {
            // New posts arrive mid-walk: they are newer than the walk's position.
            for i in 0..5 {
                late.push(
                    app.post(&writers[1].access, &format!("Late {i}"), true)
                        .await,
                );
            }
        }
        if page["pageInfo"]["hasNextPage"] == false {
            break;
        }
        assert_eq!(edges.len(), 20);
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(pages, 13, "250 posts in pages of 20");
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no post repeats");
    written.reverse();
    assert_eq!(seen, written, "every post, newest first, none skipped");

    // The late posts lead the feed for the next reader.
    let top = feed_page(&app, &reader.access, 5, None).await;
    let top_ids: Vec<&str> = top["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap())
        .collect();
    late.reverse();
    assert_eq!(top_ids, late);
    assert_eq!(top["pageInfo"]["hasPreviousPage"], false);
    let all = feed_page(&app, &reader.access, 100, None).await;
    assert_eq!(all["edges"].as_array().unwrap().len(), 100);
}

async fn page_arguments_are_checked(db: TestDb) {
    let app = db.spawn().await;
    let t = app.signed_up("ann").await;
    app.post(&t.access, "Only", true).await;

    for (vars, field) in [
        (json!({ "first": 101 }), "first"),
        (json!({ "first": -1 }), "first"),
        (json!({ "first": 10, "after": "not-a-cursor" }), "after"),
        (json!({ "first": 10, "after": "djE6MTox" }), "after"),
    ] {
        let res = app.gql(Some(&t.access), FEED, vars.clone()).await;
        assert_eq!(res.code(), "BAD_USER_INPUT", "{vars}");
        assert_eq!(res.error()["extensions"]["field"], field, "{vars}");
    }
    let empty = feed_page(&app, &t.access, 0, None).await;
    assert!(empty["edges"].as_array().unwrap().is_empty());
    assert_eq!(empty["pageInfo"]["hasNextPage"], true);
    let res = app
        .gql(
            Some(&t.access),
            "{ users(first: 500) { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        res.code(),
        "FORBIDDEN",
        "the guard answers before the arguments are looked at"
    );
    let res = app
        .gql(
            Some(&t.access),
            "{ me { posts(first: 500) { edges { cursor } } } }",
            json!({}),
        )
        .await;
    assert_eq!(res.code(), "BAD_USER_INPUT");
}

async fn each_users_posts_are_paged_too(db: TestDb) {
    let app = db.spawn().await;
    let ann = app.signed_up("ann").await;
    let mut written = Vec::new();
    for i in 0..7 {
        written.push(
            app.post(&ann.access, &format!("Note {i}"), i % 2 == 0)
                .await,
        );
    }
    written.reverse();
    let query = "query($after: String) { me { posts(first: 3, after: $after) { \
        edges { node { id } } pageInfo { hasNextPage endCursor } } } }";
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let res = app
            .gql(Some(&ann.access), query, json!({ "after": after }))
            .await
            .ok();
        let conn = res.data("me.posts");
        seen.extend(
            conn["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"]["id"].as_str().unwrap().to_owned()),
        );
        if conn["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = conn["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(
        seen, written,
        "drafts included for their author, newest first"
    );
}
