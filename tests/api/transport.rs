//! GraphQL over HTTP as the GraphQL-over-HTTP specification has it: media types and
//! status codes, requests in a POST body and in the URL, and the whole-request refusals.

use reqwest::{Method, header};
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestDb};

crate::on_both_databases!(
    json_is_answered_to_clients_that_ask_for_it_or_anything,
    graphql_response_json_is_answered_to_clients_that_prefer_it,
    clients_accepting_neither_type_get_406,
    request_errors_have_no_data_and_a_4xx_in_graphql_response_json,
    request_errors_are_200_in_application_json,
    field_errors_keep_data_and_200_in_both_types,
    auth_failures_are_graphql_errors_in_a_normal_response,
    malformed_requests_are_400_naming_the_part_at_fault,
    posts_must_be_json,
    queries_may_be_sent_in_the_url,
    mutations_over_get_are_405_with_allow_post,
    subscriptions_over_http_are_refused,
    extensions_sent_by_clients_are_accepted,
    operation_names_select_an_operation,
    wildcards_and_weights_are_read_as_http_defines_them,
    answers_are_never_kept_by_shared_caches,
    graphiql_is_served_only_to_browsers_that_prefer_html,
);

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

/// What a client sees of a response.
struct Answer {
    status: u16,
    content_type: String,
    headers: header::HeaderMap,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("expected an error code in {}", self.body))
    }

    fn media_type(&self) -> &str {
        self.content_type.split(';').next().unwrap_or("").trim()
    }
}

async fn send(app: &TestApp, request: reqwest::RequestBuilder) -> Answer {
    let _ = app;
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        content_type,
        headers,
        body,
    }
}

/// POSTs `body` as JSON with the given `Accept` header (none when `None`).
async fn post(app: &TestApp, accept: Option<&str>, body: Value) -> Answer {
    let mut request = app
        .client
        .post(format!("{}/graphql", app.base))
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.to_string());
    if let Some(accept) = accept {
        request = request.header(header::ACCEPT, accept);
    }
    send(app, request).await
}

/// GETs `/graphql` with URL parameters.
async fn get(app: &TestApp, accept: Option<&str>, params: &[(&str, &str)]) -> Answer {
    let mut request = app
        .client
        .get(format!("{}/graphql", app.base))
        .query(params);
    if let Some(accept) = accept {
        request = request.header(header::ACCEPT, accept);
    }
    send(app, request).await
}

async fn json_is_answered_to_clients_that_ask_for_it_or_anything(db: TestDb) {
    let app = db.spawn().await;
    let query = json!({ "query": "{ __typename }" });
    for accept in [
        None,
        Some("application/json"),
        Some("*/*"),
        Some("application/*"),
        Some("text/html;q=0.9, application/json"),
        Some("application/graphql-response+json;q=0.5, application/json"),
    ] {
        let res = post(&app, accept, query.clone()).await;
        assert_eq!(res.status, 200, "Accept: {accept:?}");
        assert_eq!(res.media_type(), "application/json", "Accept: {accept:?}");
        assert_eq!(res.body, json!({ "data": { "__typename": "Query" } }));
        assert!(
            res.headers
                .get_all(header::VARY)
                .iter()
                .any(|v| v.to_str().unwrap_or("").contains("Accept")),
            "responses vary by Accept"
        );
    }
}

async fn graphql_response_json_is_answered_to_clients_that_prefer_it(db: TestDb) {
    let app = db.spawn().await;
    let query = json!({ "query": "{ __typename }" });
    for accept in [
        GRAPHQL_RESPONSE,
        // What Apollo Client sends.
        "application/graphql-response+json,application/json;q=0.9",
        // What urql sends.
        "application/graphql-response+json, application/graphql+json, application/json, \
         text/event-stream, multipart/mixed",
        "application/json;q=0.1, application/graphql-response+json;charset=utf-8",
    ] {
        let res = post(&app, Some(accept), query.clone()).await;
        assert_eq!(res.status, 200, "Accept: {accept}");
        assert_eq!(res.media_type(), GRAPHQL_RESPONSE, "Accept: {accept}");
        assert_eq!(res.body["data"]["__typename"], "Query");
    }
}

async fn clients_accepting_neither_type_get_406(db: TestDb) {
    let app = db.spawn().await;
    for accept in [
        "text/plain",
        "application/xml, text/csv",
        "application/json;q=0",
    ] {
        let res = post(&app, Some(accept), json!({ "query": "{ __typename }" })).await;
        assert_eq!(res.status, 406, "Accept: {accept}");
        assert_eq!(res.code(), "NOT_ACCEPTABLE");
    }
}

async fn request_errors_have_no_data_and_a_4xx_in_graphql_response_json(db: TestDb) {
    let app = db.spawn().await;
    let cases = [
        (json!({ "query": "{ me { id " }), "GRAPHQL_PARSE_FAILED"),
        (
            json!({ "query": "{ noSuchField }" }),
            "GRAPHQL_VALIDATION_FAILED",
        ),
        // A variable of the wrong type, and a required one left out.
        (
            json!({ "query": "query($id: ID!) { post(id: $id) { id } }", "variables": { "id": [1] } }),
            "GRAPHQL_VALIDATION_FAILED",
        ),
        (
            json!({ "query": "query($id: ID!) { post(id: $id) { id } }" }),
            "GRAPHQL_VALIDATION_FAILED",
        ),
    ];
    for (body, code) in cases {
        let res = post(&app, Some(GRAPHQL_RESPONSE), body.clone()).await;
        assert_eq!(res.status, 400, "{body}: {}", res.body);
        assert_eq!(res.media_type(), GRAPHQL_RESPONSE);
        assert_eq!(res.code(), code, "{body}");
        assert!(
            res.body.get("data").is_none(),
            "no data key before execution: {}",
            res.body
        );
    }
}

async fn request_errors_are_200_in_application_json(db: TestDb) {
    let app = db.spawn().await;
    for (query, code) in [
        ("{ me { id ", "GRAPHQL_PARSE_FAILED"),
        ("{ noSuchField }", "GRAPHQL_VALIDATION_FAILED"),
    ] {
        let res = post(&app, Some("application/json"), json!({ "query": query })).await;
        assert_eq!(res.status, 200, "{query}");
        assert_eq!(res.media_type(), "application/json");
        assert_eq!(res.code(), code);
        assert!(res.body.get("data").is_none(), "{}", res.body);
    }
}

async fn field_errors_keep_data_and_200_in_both_types(db: TestDb) {
    let app = db.spawn().await;
    let alice = app.signed_up("alice").await;
    // A malformed id is an error of that field; the rest of the operation runs.
    let query = json!({ "query": "{ me { username } post(id: \"not-an-id\") { id } }" });
    for accept in [GRAPHQL_RESPONSE, "application/json"] {
        let res = send(
            &app,
            app.client
                .post(format!("{}/graphql", app.base))
                .bearer_auth(&alice.access)
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::ACCEPT, accept)
                .body(query.to_string()),
        )
        .await;
        assert_eq!(res.status, 200, "{accept}: {}", res.body);
        assert_eq!(res.body["data"]["me"]["username"], "alice");
        assert_eq!(res.body["data"]["post"], Value::Null);
        assert_eq!(res.code(), "BAD_USER_INPUT");
    }
}

async fn auth_failures_are_graphql_errors_in_a_normal_response(db: TestDb) {
    let app = db.spawn().await;
    let alice = app.signed_up("alice").await;
    for accept in [GRAPHQL_RESPONSE, "application/json"] {
        // No credentials: UNAUTHENTICATED, inside a 200 that clients read as GraphQL.
        let res = post(&app, Some(accept), json!({ "query": "{ me { id } }" })).await;
        assert_eq!(res.status, 200, "{accept}");
        assert_eq!(res.code(), "UNAUTHENTICATED");
        assert!(res.body.get("data").is_some(), "executed: {}", res.body);

        // Signed in but not an administrator: FORBIDDEN, the same way.
        let res = send(
            &app,
            app.client
                .post(format!("{}/graphql", app.base))
                .bearer_auth(&alice.access)
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::ACCEPT, accept)
                .body(json!({ "query": "{ users { edges { node { id } } } }" }).to_string()),
        )
        .await;
        assert_eq!(res.status, 200, "{accept}");
        assert_eq!(res.code(), "FORBIDDEN");
    }
}

async fn malformed_requests_are_400_naming_the_part_at_fault(db: TestDb) {
    let app = db.spawn().await;
    let raw = |body: &'static str| {
        app.client
            .post(format!("{}/graphql", app.base))
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .body(body)
    };
    let cases = [
        ("{\"query\": ", "not valid JSON"),
        ("\"{ me { id } }\"", "JSON object"),
        ("{}", "no query"),
        ("{\"query\": 42}", "query must be a string"),
        (
            "{\"query\": \"{ __typename }\", \"variables\": [1]}",
            "variables must be an object",
        ),
        (
            "{\"query\": \"{ __typename }\", \"operationName\": 7}",
            "operationName must be a string",
        ),
        (
            "{\"query\": \"{ __typename }\", \"extensions\": \"x\"}",
            "extensions must be an object",
        ),
        ("[]", "no operations"),
    ];
    for (body, why) in cases {
        // Whatever the client accepts: such a request is not GraphQL at all.
        let res = send(&app, raw(body)).await;
        assert_eq!(res.status, 400, "{body}: {}", res.body);
        assert_eq!(res.code(), "BAD_REQUEST", "{body}");
        let message = res.body["errors"][0]["message"].as_str().unwrap_or("");
        assert!(message.contains(why), "{body}: {message}");
        assert!(res.body.get("data").is_none());
    }
}

async fn posts_must_be_json(db: TestDb) {
    let app = db.spawn().await;
    let url = format!("{}/graphql", app.base);
    let body = json!({ "query": "{ __typename }" }).to_string();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = app.client.post(&url).body(body.clone());
        if let Some(ct) = content_type {
            request = request.header(header::CONTENT_TYPE, ct);
        }
        let res = send(&app, request).await;
        assert_eq!(res.status, 415, "Content-Type: {content_type:?}");
        assert_eq!(res.code(), "UNSUPPORTED_MEDIA_TYPE");
    }
    let res = send(
        &app,
        app.client
            .post(&url)
            .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
            .body(body),
    )
    .await;
    assert_eq!(res.status, 200);
}

async fn queries_may_be_sent_in_the_url(db: TestDb) {
    let app = db.spawn().await;
    let alice = app.signed_up("alice").await;
    let id = app.post(&alice.access, "In the URL", true).await;
    let res = send(
        &app,
        app.client
            .get(format!("{}/graphql", app.base))
            .bearer_auth(&alice.access)
            .query(&[
                ("query", "query Find($id: ID!) { post(id: $id) { title } }"),
                ("variables", &json!({ "id": id }).to_string()),
                ("operationName", "Find"),
                ("extensions", r#"{"clientLibrary":{"name":"test"}}"#),
            ]),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.media_type(), "application/json");
    assert_eq!(res.body["data"]["post"]["title"], "In the URL");

    // Parameters that are not what they should be are named.
    let res = get(
        &app,
        Some(GRAPHQL_RESPONSE),
        &[("query", "{ __typename }"), ("variables", "{not json")],
    )
    .await;
    assert_eq!(res.status, 400);
    assert!(
        res.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("variables")
    );
    let res = get(&app, Some(GRAPHQL_RESPONSE), &[("operationName", "X")]).await;
    assert_eq!(res.status, 400);
    assert_eq!(res.code(), "BAD_REQUEST");
    let res = get(
        &app,
        Some(GRAPHQL_RESPONSE),
        &[("query", "{ __typename }"), ("query", "{ me { id } }")],
    )
    .await;
    assert_eq!(res.status, 400);
    assert!(
        res.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("more than once")
    );
}

async fn mutations_over_get_are_405_with_allow_post(db: TestDb) {
    let app = db.spawn().await;
    let alice = app.signed_up("alice").await;
    for accept in [GRAPHQL_RESPONSE, "application/json"] {
        let res = send(
            &app,
            app.client
                .get(format!("{}/graphql", app.base))
                .bearer_auth(&alice.access)
                .header(header::ACCEPT, accept)
                .query(&[("query", "mutation { logoutAll }")]),
        )
        .await;
        assert_eq!(res.status, 405, "{accept}");
        assert_eq!(res.headers.get(header::ALLOW).unwrap(), "POST");
        assert_eq!(res.code(), "METHOD_NOT_ALLOWED");
    }
    // Nothing ran: the session still works.
    app.me(&alice.access).await.ok();

    // The operation that would run decides, not the first one in the document.
    let res = get(
        &app,
        None,
        &[
            ("query", "query Q { __typename } mutation M { logoutAll }"),
            ("operationName", "Q"),
        ],
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let res = get(
        &app,
        None,
        &[
            ("query", "query Q { __typename } mutation M { logoutAll }"),
            ("operationName", "M"),
        ],
    )
    .await;
    assert_eq!(res.status, 405);

    // Other methods are not GraphQL's.
    let res = send(
        &app,
        app.client
            .request(Method::PUT, format!("{}/graphql", app.base))
            .header(header::CONTENT_TYPE, "application/json")
            .body(json!({ "query": "{ __typename }" }).to_string()),
    )
    .await;
    assert_eq!(res.status, 405);
}

async fn subscriptions_over_http_are_refused(db: TestDb) {
    let app = db.spawn().await;
    let alice = app.signed_up("alice").await;
    let res = send(
        &app,
        app.client
            .post(format!("{}/graphql", app.base))
            .bearer_auth(&alice.access)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, GRAPHQL_RESPONSE)
            .body(json!({ "query": "subscription { postCreated { id } }" }).to_string()),
    )
    .await;
    assert_eq!(res.status, 400);
    assert_eq!(res.code(), "BAD_REQUEST");
    assert!(
        res.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("WebSocket")
    );
}

async fn extensions_sent_by_clients_are_accepted(db: TestDb) {
    let app = db.spawn().await;
    let res = post(
        &app,
        Some("application/graphql-response+json,application/json;q=0.9"),
        json!({
            "query": "{ __typename }",
            "operationName": null,
            "variables": null,
            "extensions": { "clientLibrary": { "name": "@apollo/client", "version": "4.0.0" } }
        }),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["data"]["__typename"], "Query");
}

async fn operation_names_select_an_operation(db: TestDb) {
    let app = db.spawn().await;
    let document = "query A { a: __typename } query B { b: __typename }";
    let res = post(
        &app,
        Some(GRAPHQL_RESPONSE),
        json!({ "query": document, "operationName": "B" }),
    )
    .await;
    assert_eq!(res.body, json!({ "data": { "b": "Query" } }));
    for name in [Value::Null, json!("C")] {
        let res = post(
            &app,
            Some(GRAPHQL_RESPONSE),
            json!({ "query": document, "operationName": name }),
        )
        .await;
        assert_eq!(res.status, 400, "{name}: {}", res.body);
        assert_eq!(res.code(), "BAD_REQUEST");
        assert!(res.body.get("data").is_none());
    }
}

async fn wildcards_and_weights_are_read_as_http_defines_them(db: TestDb) {
    let app = db.spawn().await;
    let query = json!({ "query": "{ __typename }" });
    for (accept, media) in [
        // JSON refused by name: the wildcard leaves graphql-response+json.
        ("application/json;q=0, */*", GRAPHQL_RESPONSE),
        ("application/json;Q=0, application/*", GRAPHQL_RESPONSE),
        // Named types win ties with wildcards, and the first named wins a tie.
        ("*/*, application/graphql-response+json", GRAPHQL_RESPONSE),
        (
            "application/json, application/graphql-response+json",
            "application/json",
        ),
        ("APPLICATION/JSON", "application/json"),
    ] {
        let res = post(&app, Some(accept), query.clone()).await;
        assert_eq!(res.status, 200, "{accept}");
        assert_eq!(res.media_type(), media, "{accept}");
    }
    let res = post(
        &app,
        Some("application/json;q=0, application/graphql-response+json;q=0"),
        query,
    )
    .await;
    assert_eq!(res.status, 406);
}

async fn answers_are_never_kept_by_shared_caches(db: TestDb) {
    let app = db.spawn().await;
    let alice = app.signed_up("alice").await;
    let res = send(
        &app,
        app.client
            .get(format!("{}/graphql", app.base))
            .bearer_auth(&alice.access)
            .query(&[("query", "{ me { email } }")]),
    )
    .await;
    assert_eq!(res.status, 200);
    assert_eq!(
        res.headers.get(header::CACHE_CONTROL).unwrap(),
        "private, no-store"
    );
}

async fn graphiql_is_served_only_to_browsers_that_prefer_html(db: TestDb) {
    let app = db.spawn().await;
    for (accept, page) in [
        (
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            true,
        ),
        ("application/json, text/html;q=0", false),
        ("application/json, text/html;q=0.5", false),
        ("*/*", false),
    ] {
        let res = app
            .client
            .get(format!("{}/graphql", app.base))
            .header(header::ACCEPT, accept)
            .query(&[("query", "{ __typename }")])
            .send()
            .await
            .unwrap();
        let html = res
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.to_str().unwrap().starts_with("text/html"));
        assert_eq!(html, page, "{accept}");
        if page {
            assert!(
                res.headers()
                    .get_all(header::VARY)
                    .iter()
                    .any(|v| v == "Accept")
            );
        }
    }
}
