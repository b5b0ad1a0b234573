//! Operations sent by hash: automatic persisted queries as Apollo's clients speak them,
//! and trusted documents for deployments that run nothing else.

use reqwest::header;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{TestApp, TestDb};

crate::on_both_databases!(
    an_unknown_hash_is_asked_for_then_remembered,
    persisted_queries_work_in_the_url,
    a_hash_that_is_not_the_text_is_refused_and_not_remembered,
    text_that_is_not_graphql_is_not_remembered,
    malformed_persisted_query_extensions_are_400,
    persisted_queries_can_be_turned_off,
    trusted_documents_are_the_only_operations_when_required,
    trusted_documents_are_served_by_hash_alongside_free_queries,
);

fn sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn persisted(hash: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } })
}

/// Status and body of a POST of `body`, with a token when given.
async fn post(app: &TestApp, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut request = app
        .client
        .post(format!("{}/graphql", app.base))
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            header::ACCEPT,
            "application/graphql-response+json,application/json;q=0.9",
        )
        .body(body.to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error code in {body}"))
}

async fn an_unknown_hash_is_asked_for_then_remembered(db: TestDb) {
    let app = db.spawn().await;
    let alice = app.signed_up("alice").await;
    let query = "query Me { me { username } }";
    let hash = sha256(query);

    // The first time, the server does not know the hash: the client is to send the text.
    let (status, body) = post(
        &app,
        Some(&alice.access),
        json!({ "extensions": persisted(&hash) }),
    )
    .await;
    // No data, so not a success in graphql-response+json; 200 in application/json.
    assert_eq!(status, 404, "{body}");
    assert_eq!(code(&body), "PERSISTED_QUERY_NOT_FOUND");
    assert_eq!(body["errors"][0]["message"], "PersistedQueryNotFound");
    assert!(body.get("data").is_none());

    // The text with its hash runs and registers it…
    let (status, body) = post(
        &app,
        Some(&alice.access),
        json!({ "query": query, "extensions": persisted(&hash) }),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({ "data": { "me": { "username": "alice" } } }));

    // …so the hash alone is enough from then on, for anyone.
    let bob = app.signed_up("bob").await;
    let (status, body) = post(
        &app,
        Some(&bob.access),
        json!({ "extensions": persisted(&hash.to_uppercase()), "operationName": "Me" }),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({ "data": { "me": { "username": "bob" } } }));
}

async fn persisted_queries_work_in_the_url(db: TestDb) {
    let app = db.spawn().await;
    let alice = app.signed_up("alice").await;
    let query = "{ me { username } }";
    let get = |params: Vec<(&'static str, String)>| {
        app.client
            .get(format!("{}/graphql", app.base))
            .bearer_auth(&alice.access)
            .query(&params)
            .send()
    };
    let extensions = persisted(&sha256(query)).to_string();
    let res = get(vec![("extensions", extensions.clone())]).await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(code(&body), "PERSISTED_QUERY_NOT_FOUND");

    let res = get(vec![
        ("query", query.to_owned()),
        ("extensions", extensions.clone()),
    ])
    .await
    .unwrap();
    assert_eq!(
        res.json::<Value>().await.unwrap()["data"]["me"]["username"],
        "alice"
    );

    let res = get(vec![("extensions", extensions)]).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({ "data": { "me": { "username": "alice" } } })
    );

    // A mutation remembered by hash is still not run over GET.
    let logout = "mutation { logoutAll }";
    let extensions = persisted(&sha256(logout));
    let (status, _) = post(
        &app,
        Some("not a token"),
        json!({ "query": logout, "extensions": extensions }),
    )
    .await;
    assert_eq!(status, 200);
    let res = get(vec![("extensions", extensions.to_string())])
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    app.me(&alice.access).await.ok();
}

async fn a_hash_that_is_not_the_text_is_refused_and_not_remembered(db: TestDb) {
    let app = db.spawn().await;
    let alice = app.signed_up("alice").await;
    let hash = sha256("{ me { id } }");
    let (status, body) = post(
        &app,
        Some(&alice.access),
        json!({ "query": "{ me { email } }", "extensions": persisted(&hash) }),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(code(&body), "BAD_REQUEST");
    assert_eq!(
        body["errors"][0]["message"],
        "provided sha does not match query"
    );
    let (_, body) = post(
        &app,
        Some(&alice.access),
        json!({ "extensions": persisted(&hash) }),
    )
    .await;
    assert_eq!(code(&body), "PERSISTED_QUERY_NOT_FOUND");
}

async fn text_that_is_not_graphql_is_not_remembered(db: TestDb) {
    let app = db.spawn().await;
    // Nor text that does not fit the schema.
    let invalid = "{ noSuchField }";
    let (status, body) = post(
        &app,
        None,
        json!({ "query": invalid, "extensions": persisted(&sha256(invalid)) }),
    )
    .await;
    assert_eq!((status, code(&body)), (400, "GRAPHQL_VALIDATION_FAILED"));
    let (_, body) = post(
        &app,
        None,
        json!({ "extensions": persisted(&sha256(invalid)) }),
    )
    .await;
    assert_eq!(code(&body), "PERSISTED_QUERY_NOT_FOUND");

    let junk = "{ me { id ";
    let (status, body) = post(
        &app,
        None,
        json!({ "query": junk, "extensions": persisted(&sha256(junk)) }),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(code(&body), "GRAPHQL_PARSE_FAILED");
    let (_, body) = post(
        &app,
        None,
        json!({ "extensions": persisted(&sha256(junk)) }),
    )
    .await;
    assert_eq!(code(&body), "PERSISTED_QUERY_NOT_FOUND");
}

async fn malformed_persisted_query_extensions_are_400(db: TestDb) {
    let app = db.spawn().await;
    let hash = sha256("{ __typename }");
    for extension in [
        json!({ "persistedQuery": { "version": 2, "sha256Hash": hash } }),
        json!({ "persistedQuery": { "version": 1, "sha256Hash": "abc" } }),
        json!({ "persistedQuery": { "version": 1 } }),
        json!({ "persistedQuery": "yes" }),
    ] {
        let (status, body) = post(&app, None, json!({ "extensions": extension })).await;
        assert_eq!(status, 400, "{extension}: {body}");
        assert_eq!(code(&body), "BAD_REQUEST");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("persistedQuery")
        );
    }
}

async fn persisted_queries_can_be_turned_off(db: TestDb) {
    let app = db.spawn_with(|s| s.serving.persisted.cache_bytes = 0).await;
    let query = "{ __typename }";
    let (status, body) = post(
        &app,
        None,
        json!({ "extensions": persisted(&sha256(query)) }),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(code(&body), "PERSISTED_QUERY_NOT_SUPPORTED");
    assert_eq!(body["errors"][0]["message"], "PersistedQueryNotSupported");
    // Sent in full, everything works as ever.
    let (status, body) = post(&app, None, json!({ "query": query })).await;
    assert_eq!(
        (status, &body["data"]["__typename"]),
        (200, &json!("Query"))
    );
}

/// Writes a persisted query manifest of `operations` and returns its directory (which
/// must outlive the test) and path.
fn manifest(operations: &[&str]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("operations.json");
    let operations: Vec<Value> = operations
        .iter()
        .map(|body| json!({ "id": sha256(body), "body": body, "name": "op", "type": "query" }))
        .collect();
    let text = json!({
        "format": "apollo-persisted-query-manifest",
        "version": 1,
        "operations": operations
    });
    std::fs::write(&path, text.to_string()).expect("the manifest is written");
    let path = path.to_str().expect("a UTF-8 path").to_owned();
    (dir, path)
}

async fn trusted_documents_are_the_only_operations_when_required(db: TestDb) {
    let me = "query Me { me { username } }";
    let login = "mutation Login($input: LoginInput!) { login(input: $input) { accessToken } }";
    let (_dir, path) = manifest(&[me, login]);
    let app = db
        .spawn_with(|s| {
            s.serving.persisted.documents = Some(path.clone().into());
            s.serving.persisted.only = true;
        })
        .await;
    // Registering is not among the trusted operations: the account is made directly.
    app.app
        .auth
        .create_user(
            quire::auth::register::NewAccount {
                email: "alice@example.com",
                username: "alice",
                password: crate::helpers::PASSWORD,
            },
            quire::db::users::Role::User,
        )
        .await
        .expect("the account is created");

    // The listed login, by hash.
    let (status, body) = post(
        &app,
        None,
        json!({
            "extensions": persisted(&sha256(login)),
            "variables": { "input": { "email": "alice@example.com", "password": crate::helpers::PASSWORD } }
        }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["data"]["login"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();

    // The listed query, by hash or in full.
    for body in [
        json!({ "extensions": persisted(&sha256(me)) }),
        json!({ "query": me }),
    ] {
        let (status, answer) = post(&app, Some(&token), body).await;
        assert_eq!(status, 200);
        assert_eq!(answer["data"]["me"]["username"], "alice");
    }

    // Anything else is refused before it runs: 403 in full, 404 by hash, and no text
    // can be registered.
    let other = "{ me { email } }";
    let (status, body) = post(&app, Some(&token), json!({ "query": other })).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(code(&body), "PERSISTED_QUERY_NOT_IN_LIST");
    assert!(body.get("data").is_none());
    for body in [
        json!({ "extensions": persisted(&sha256(other)) }),
        json!({ "query": other, "extensions": persisted(&sha256(other)) }),
    ] {
        let (status, answer) = post(&app, Some(&token), body).await;
        assert_eq!(status, 404, "{answer}");
        assert_eq!(code(&answer), "PERSISTED_QUERY_NOT_IN_LIST");
    }
}

async fn trusted_documents_are_served_by_hash_alongside_free_queries(db: TestDb) {
    let me = "{ me { username } }";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("documents.json");
    std::fs::write(&path, json!({ sha256(me): me }).to_string()).unwrap();
    let app = db
        .spawn_with(|s| s.serving.persisted.documents = Some(path.clone()))
        .await;
    let alice = app.signed_up("alice").await;
    let (_, body) = post(
        &app,
        Some(&alice.access),
        json!({ "extensions": persisted(&sha256(me)) }),
    )
    .await;
    assert_eq!(body["data"]["me"]["username"], "alice");
    let (status, body) = post(
        &app,
        Some(&alice.access),
        json!({ "query": "{ me { email } }" }),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["me"]["email"], "alice@example.com");
}
