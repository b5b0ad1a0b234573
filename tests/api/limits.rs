//! Requests the server refuses as a whole, and the headers it always sends.

use serde_json::{Value, json};

use crate::helpers::{TestApp, TestDb};

crate::on_both_databases!(
    depth_is_limited,
    complexity_is_limited_with_connections_costing_their_page,
    aliases_are_limited,
    batches_are_limited_and_share_one_credential_attempt,
    bodies_are_limited,
    only_json_may_be_posted,
    every_response_carries_the_security_headers,
    request_ids_round_trip,
);

/// How many posts the account of `token` has.
pub(crate) async fn post_count(app: &TestApp, token: &str) -> usize {
    app.gql(
        Some(token),
        "{ me { posts(first: 100) { edges { cursor } } } }",
        json!({}),
    )
    .await
    .ok()
    .data("me.posts.edges")
    .as_array()
    .unwrap()
    .len()
}

async fn depth_is_limited(db: TestDb) {
    let app = db.spawn_with(|s| s.serving.limits.max_depth = 5).await;
    let t = app.signed_up("ada").await;
    app.gql(
        Some(&t.access),
        "{ me { posts { edges { node { id } } } } }",
        json!({}),
    )
    .await
    .ok();
    let deeper = app
        .gql(
            Some(&t.access),
            "{ me { posts { edges { node { author { id } } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(deeper.code(), "GRAPHQL_VALIDATION_FAILED");
    assert!(deeper.body["data"].is_null());
    // Refused before anything runs: the mutation wrote nothing.
    let res = app
        .gql(
            Some(&t.access),
            "mutation { createPost(input: { title: \"t\", body: \"b\" }) { author { posts { edges { node { id } } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(res.code(), "GRAPHQL_VALIDATION_FAILED");
    assert_eq!(post_count(&app, &t.access).await, 0);
}

async fn complexity_is_limited_with_connections_costing_their_page(db: TestDb) {
    // A page costs `first` times its selection: edges + node + id = 3.
    let app = db
        .spawn_with(|s| s.serving.limits.max_complexity = 30)
        .await;
    let t = app.signed_up("ada").await;
    let page = |n: usize| format!("{{ posts(first: {n}) {{ edges {{ node {{ id }} }} }} }}");
    app.gql(Some(&t.access), &page(10), json!({})).await.ok();
    let over = app.gql(Some(&t.access), &page(11), json!({})).await;
    assert_eq!(over.code(), "GRAPHQL_VALIDATION_FAILED");
    // The default first (20) counts too.
    let default = app
        .gql(
            Some(&t.access),
            "{ posts { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(default.code(), "GRAPHQL_VALIDATION_FAILED");

    // With the default limit: 100 posts × 100 posts of each author is refused, while a
    // normal page of 100 posts with their authors and votes passes.
    let app = db.spawn().await;
    let nested = "{ posts(first: 100) { edges { node { author { posts(first: 100) { edges { node { title } } } } } } } }";
    assert_eq!(
        app.gql(Some(&t.access), nested, json!({})).await.code(),
        "GRAPHQL_VALIDATION_FAILED"
    );
    let normal = "{ posts(first: 100) { edges { cursor node { id title body createdAt author { username } voteCount viewerHasVoted } } pageInfo { hasNextPage endCursor } } }";
    app.gql(Some(&t.access), normal, json!({})).await.ok();
}

async fn aliases_are_limited(db: TestDb) {
    let app = db.spawn().await;
    let t = app.signed_up("ada").await;
    let aliased = |n: usize, field: &str| {
        let fields: Vec<String> = (0..n).map(|i| format!("a{i}: {field}")).collect();
        fields.join(" ")
    };
    app.gql(
        Some(&t.access),
        &format!("{{ {} }}", aliased(15, "me { id }")),
        json!({}),
    )
    .await
    .ok();
    let over = app
        .gql(
            Some(&t.access),
            &format!("{{ {} }}", aliased(16, "me { id }")),
            json!({}),
        )
        .await;
    assert_eq!(over.code(), "GRAPHQL_VALIDATION_FAILED");
    assert!(
        over.message().contains("more than 15 aliases"),
        "{}",
        over.message()
    );
    // A fragment counts each time it is spread: 8 aliases spread under two parents is 16
    // (plus the 2 parents).
    let spread = format!(
        "{{ a: me {{ ...Eight }} b: me {{ ...Eight }} }} fragment Eight on User {{ {} }}",
        aliased(8, "id")
    );
    assert_eq!(
        app.gql(Some(&t.access), &spread, json!({})).await.code(),
        "GRAPHQL_VALIDATION_FAILED"
    );
    let within = format!(
        "{{ a: me {{ ...Six }} b: me {{ ...Six }} }} fragment Six on User {{ {} }}",
        aliased(6, "id")
    );
    app.gql(Some(&t.access), &within, json!({})).await.ok();
    // Aliases inside fragments count, and a refused mutation runs not once.
    let many = format!(
        "mutation {{ ...Many }} fragment Many on Mutation {{ {} }}",
        aliased(
            16,
            "createPost(input: { title: \"t\", body: \"b\" }) { id }"
        )
    );
    assert_eq!(
        app.gql(Some(&t.access), &many, json!({})).await.code(),
        "GRAPHQL_VALIDATION_FAILED"
    );
    assert_eq!(post_count(&app, &t.access).await, 0);
}

async fn bodies_are_limited(db: TestDb) {
    let app = db.spawn_with(|s| s.serving.limits.max_body = 1024).await;
    let t = app.signed_up("ada").await;
    let padded = |len: usize| {
        let query = format!("{{ me {{ id }} }} #{}", "x".repeat(len));
        serde_json::to_vec(&json!({ "query": query })).unwrap()
    };
    let fits = padded(900);
    assert!(fits.len() <= 1024);
    let res = app
        .client
        .post(format!("{}/graphql", app.base))
        .bearer_auth(&t.access)
        .header("content-type", "application/json")
        .body(fits)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // Declared too large.
    let res = app
        .client
        .post(format!("{}/graphql", app.base))
        .bearer_auth(&t.access)
        .header("content-type", "application/json")
        .body(padded(2000))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "PAYLOAD_TOO_LARGE");

    // Too large, found while reading a body sent without a length.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        padded(2000).chunks(256).map(|c| Ok(c.to_vec())).collect();
    let res = app
        .client
        .post(format!("{}/graphql", app.base))
        .bearer_auth(&t.access)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
}

async fn only_json_may_be_posted(db: TestDb) {
    let app = db.spawn().await;
    let t = app.signed_up("ada").await;
    let body = json!({ "query": "mutation { createPost(input: { title: \"csrf\", body: \"b\" }) { id } }" })
        .to_string();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let mut req = app
            .client
            .post(format!("{}/graphql", app.base))
            .bearer_auth(&t.access)
            .body(body.clone());
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 415, "{content_type:?}");
        let json: Value = res.json().await.unwrap();
        assert_eq!(
            json["errors"][0]["extensions"]["code"],
            "UNSUPPORTED_MEDIA_TYPE"
        );
    }
    assert_eq!(post_count(&app, &t.access).await, 0, "nothing ran");

    // JSON with parameters is JSON.
    let res = app
        .client
        .post(format!("{}/graphql", app.base))
        .bearer_auth(&t.access)
        .header("content-type", "application/json; charset=utf-8")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(post_count(&app, &t.access).await, 1);
}

async fn every_response_carries_the_security_headers(db: TestDb) {
    let app = db.spawn().await;
    let responses = [
        app.client
            .post(format!("{}/graphql", app.base))
            .json(&json!({ "query": "{ __typename }" }))
            .send()
            .await
            .unwrap(),
        app.client
            .post(format!("{}/graphql", app.base))
            .body("x")
            .send()
            .await
            .unwrap(),
        app.get("/healthz", None).await,
        app.get("/readyz", None).await,
        app.get("/no-such-page", None).await,
        app.get("/graphql", Some("text/html")).await,
    ];
    for res in &responses {
        assert_eq!(
            res.headers()["x-content-type-options"],
            "nosniff",
            "{}",
            res.url()
        );
        assert_eq!(
            res.headers()["referrer-policy"],
            "no-referrer",
            "{}",
            res.url()
        );
    }
    let csp = responses[5].headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    assert!(
        !responses[0]
            .headers()
            .contains_key("content-security-policy")
    );
}

async fn request_ids_round_trip(db: TestDb) {
    let app = db.spawn().await;
    let sent = |id: &'static str| {
        let app = &app;
        async move {
            app.client
                .get(format!("{}/healthz", app.base))
                .header("x-request-id", id)
                .send()
                .await
                .unwrap()
                .headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned()
        }
    };
    assert_eq!(sent("trace-42.abc_DEF").await, "trace-42.abc_DEF");
    let replaced = sent("not sane; at all").await;
    assert_ne!(replaced, "not sane; at all");
    assert!(uuid::Uuid::parse_str(&replaced).is_ok());
    let fresh = app.get("/healthz", None).await;
    assert!(uuid::Uuid::parse_str(fresh.headers()["x-request-id"].to_str().unwrap()).is_ok());
}

async fn batches_are_limited_and_share_one_credential_attempt(db: TestDb) {
    let app = db.spawn().await;
    let t = app.signed_up("ada").await;
    let send = |ops: Vec<Value>| {
        let app = &app;
        let token = t.access.clone();
        async move {
            app.client
                .post(format!("{}/graphql", app.base))
                .bearer_auth(token)
                .json(&ops)
                .send()
                .await
                .unwrap()
        }
    };
    let me = json!({ "query": "{ me { username } }" });
    let res = send(vec![me.clone(); 10]).await;
    assert_eq!(res.status(), 200);
    let answers: Vec<Value> = res.json().await.unwrap();
    assert_eq!(answers.len(), 10);
    assert!(answers.iter().all(|a| a["data"]["me"]["username"] == "ada"));

    // One too many: refused whole, and nothing in it runs.
    let create =
        json!({ "query": "mutation { createPost(input: { title: \"t\", body: \"b\" }) { id } }" });
    let res = send(vec![create; 11]).await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "GRAPHQL_VALIDATION_FAILED"
    );
    assert_eq!(post_count(&app, &t.access).await, 0);

    // A batch of logins tries one password: the first.
    let login = |password: &str| {
        json!({
            "query": "mutation($i: LoginInput!) { login(input: $i) { accessToken } }",
            "variables": { "i": { "email": "ada@example.com", "password": password } }
        })
    };
    let res = send(vec![
        login("first guess"),
        login(crate::helpers::PASSWORD),
        login("third guess"),
    ])
    .await;
    let answers: Vec<Value> = res.json().await.unwrap();
    let codes: Vec<&str> = answers
        .iter()
        .map(|a| {
            a["errors"][0]["extensions"]["code"]
                .as_str()
                .unwrap_or("none")
        })
        .collect();
    assert_eq!(codes, ["UNAUTHENTICATED", "RATE_LIMITED", "RATE_LIMITED"]);
}
