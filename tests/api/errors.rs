//! What clients see when things go wrong, and the operational endpoints.

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestDb};

crate::on_both_databases!(
    every_graphql_error_has_a_code,
    internal_errors_show_only_a_request_id,
    health_and_readiness,
    graphiql_is_served_to_browsers,
    responses_keep_the_order_of_the_query,
);

async fn every_graphql_error_has_a_code(db: TestDb) {
    let app = db.spawn().await;

    let parse = app.gql(None, "{ me { id ", json!({})).await;
    assert_eq!(parse.code(), "GRAPHQL_PARSE_FAILED");

    let unknown = app.gql(None, "{ whoever { id } }", json!({})).await;
    assert_eq!(unknown.code(), "GRAPHQL_VALIDATION_FAILED");
    assert!(unknown.body["data"].is_null());

    let bad_variable = app
        .gql(
            None,
            "mutation($i: LoginInput!) { login(input: $i) { accessToken } }",
            json!({ "i": { "email": 42 } }),
        )
        .await;
    assert!(
        bad_variable.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["extensions"]["code"].is_string()),
        "{}",
        bad_variable.body
    );
    assert_eq!(bad_variable.code(), "GRAPHQL_VALIDATION_FAILED");

    // Not a GraphQL request at all: 400, still with a coded error to show.
    for body in ["{\"query\": ", "[1, 2", "not json"] {
        let res = app
            .client
            .post(format!("{}/graphql", app.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{body}");
        let json: Value = res.json().await.unwrap();
        assert_eq!(
            json["errors"][0]["extensions"]["code"], "BAD_REQUEST",
            "{body}"
        );
    }
}

async fn internal_errors_show_only_a_request_id(db: TestDb) {
    let app = db.spawn().await;
    app.signed_up("ada").await;

    // Pull the tables out from under the running server.
    crate::commands::revert_all(&db.url).await;

    let res = app.register("bob@example.com", "bob", PASSWORD).await;
    assert_eq!(res.code(), "INTERNAL_SERVER_ERROR");
    let request_id = res.headers["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(
        res.message(),
        format!("internal error (request id {request_id})")
    );
    assert_eq!(res.error()["extensions"]["requestId"], request_id.as_str());
    let text = res.body.to_string().to_lowercase();
    for leak in ["users", "table", "relation", "sqlx", "select", "database"] {
        assert!(
            !text.contains(leak),
            "the response mentions {leak:?}: {text}"
        );
    }
}

async fn health_and_readiness(db: TestDb) {
    let app = db.spawn().await;
    let live = app.get("/healthz", None).await;
    assert_eq!(live.status(), 200);
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status(), 200);
    assert!(ready.headers().contains_key("x-request-id"));

    // With the database gone, the process is alive but not ready.
    app.app.db.close().await;
    assert_eq!(app.get("/readyz", None).await.status(), 503);
    assert_eq!(app.get("/healthz", None).await.status(), 200);
}

async fn graphiql_is_served_to_browsers(db: TestDb) {
    let app = db.spawn().await;
    let page = app
        .get(
            "/graphql",
            Some("text/html,application/xhtml+xml,*/*;q=0.8"),
        )
        .await;
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(html.to_lowercase().contains("graphiql"));

    // Scripts may send a query in the URL.
    let res = app
        .get("/graphql?query=%7B__typename%7D", Some("application/json"))
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["data"]["__typename"], "Query");

    // But never a mutation: a GET must change nothing.
    let t = app.signed_up("ada").await;
    let res = app
        .client
        .get(format!("{}/graphql", app.base))
        .query(&[("query", "mutation { logoutAll }")])
        .bearer_auth(&t.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "POST");
    app.me(&t.access).await.ok();
}

async fn responses_keep_the_order_of_the_query(db: TestDb) {
    let app = db.spawn().await;
    let t = app.signed_up("ada").await;
    for i in 0..3 {
        app.post(&t.access, &format!("Post {i}"), true).await;
    }
    // Fields that finish at different times (loaders, the database) in an order of the
    // client's choosing, with an alias and a fragment.
    let query = "{ posts(first: 3) { pageInfo { hasNextPage } edges { node { ...Tail title } } } \
        who: me { role username id } } \
        fragment Tail on Post { viewerHasVoted voteCount author { username id } }";
    let expected = [
        "\"posts\"",
        "\"pageInfo\"",
        "\"hasNextPage\"",
        "\"edges\"",
        "\"node\"",
        "\"viewerHasVoted\"",
        "\"voteCount\"",
        "\"author\"",
        "\"username\"",
        "\"id\"",
        "\"title\"",
        "\"who\"",
        "\"role\"",
        "\"username\"",
        "\"id\"",
    ];
    for _ in 0..10 {
        let text = app
            .client
            .post(format!("{}/graphql", app.base))
            .bearer_auth(&t.access)
            .json(&json!({ "query": query }))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let mut at = 0;
        for key in expected {
            let found = text[at..]
                .find(key)
                .unwrap_or_else(|| panic!("{key} is out of order in {text}"));
            at += found + key.len();
        }
    }
}
