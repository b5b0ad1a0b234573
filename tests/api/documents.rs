//! Documents built to cost far more than their size: fragment bombs, long chains of
//! fragments, fragments that spread themselves. Each is refused at once, before any walk
//! that would follow every spread, and the server keeps answering everyone else.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Process, TestDb};

crate::on_both_databases!(
    a_fragment_bomb_is_refused_at_once_and_the_server_keeps_answering,
    a_long_chain_of_fragments_is_refused_and_the_server_survives,
    nodes_are_counted_with_fragments_expanded,
    arguments_spread_many_times_are_counted_each_time,
    an_answer_lists_at_most_a_hundred_validation_errors,
    deeply_nested_values_are_refused_before_they_are_parsed,
    a_conflict_reached_from_many_places_is_reported_once,
    fragments_that_spread_themselves_or_go_unused_are_refused_by_name,
);

/// `query { ...F0 }` where each of `levels` fragments spreads the next one twice: 1.6 KB
/// for forty levels, which expand to about three million million selections.
fn bomb(levels: usize) -> String {
    let mut text = String::from("query { ...F0 }");
    for i in 0..levels {
        text.push_str(&format!(
            " fragment F{i} on Query {{ ...F{next} ...F{next} }}",
            next = i + 1
        ));
    }
    text.push_str(&format!(" fragment F{levels} on Query {{ __typename }}"));
    text
}

/// A `quire serve` process of its own on `db`, and a client that waits for it 10 s at
/// most: an attack that stalled a server sharing this test's runtime would stall the
/// test's own timeouts too.
async fn own_server(db: &TestDb) -> (Process, reqwest::Client) {
    drop(db.spawn().await); // the schema exists before the process starts
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    (db.serve_process(&[]).await, client)
}

async fn post(client: &reqwest::Client, base: &str, query: &str) -> (u16, Value) {
    let res = client
        .post(format!("{base}/graphql"))
        .json(&json!({ "query": query }))
        .send()
        .await
        .expect("the server answers");
    (
        res.status().as_u16(),
        res.json().await.expect("a JSON body"),
    )
}

async fn a_fragment_bomb_is_refused_at_once_and_the_server_keeps_answering(db: TestDb) {
    let (server, client) = own_server(&db).await;
    // Thirty levels: within the nesting allowed, billions of nodes once expanded.
    let text = bomb(30);
    assert!(text.len() < 1300, "{} bytes", text.len());
    // More bombs than the server has worker threads, sent anonymously, at once, with a
    // health check among them.
    let bombs = (0..4).map(|_| post(&client, &server.base, &text));
    let health = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        client
            .get(format!("{}/healthz", server.base))
            .send()
            .await
            .expect("the health check is answered while the bombs are")
            .status()
            .as_u16()
    };
    let (answers, health) = futures::future::join(futures::future::join_all(bombs), health).await;
    assert_eq!(health, 200);
    for (status, body) in answers {
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
            "{body}"
        );
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert_eq!(
            message,
            "the document has 3221225471 nodes once its fragments are expanded; \
             at most 4000 are allowed"
        );
        assert!(body.get("data").is_none_or(Value::is_null), "{body}");
    }
    // Forty levels, 1.6 KB, nest deeper than allowed and are refused for that.
    let (_, body) = post(&client, &server.base, &bomb(40)).await;
    refused_as_too_deep(&body);
    let (_, body) = post(&client, &server.base, "{ __typename }").await;
    assert_eq!(body, json!({ "data": { "__typename": "Query" } }));
}

fn refused_as_too_deep(body: &Value) {
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
        "{body}"
    );
    assert_eq!(
        body["errors"][0]["message"],
        "selections nest more than 32 levels deep, counting fragments"
    );
}

async fn a_long_chain_of_fragments_is_refused_and_the_server_survives(db: TestDb) {
    let (mut server, client) = own_server(&db).await;
    // Ten thousand fragments, each spreading the next: a walk that follows them
    // recursively goes ten thousand calls deep.
    let mut text = String::from("{ ...F0 }");
    for i in 0..10_000 {
        text.push_str(&format!(" fragment F{i} on Query {{ ...F{} }}", i + 1));
    }
    text.push_str(" fragment F10000 on Query { __typename }");
    let (status, body) = post(&client, &server.base, &text).await;
    assert_eq!(status, 200, "{body}");
    refused_as_too_deep(&body);
    let (_, body) = post(&client, &server.base, "{ __typename }").await;
    assert_eq!(body, json!({ "data": { "__typename": "Query" } }));
    assert!(server.running());
}

/// graphql-js's introspection query, as GraphiQL and most client tooling send it.
const INTROSPECTION: &str = "query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) {
    name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason
  }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name ofType { kind name ofType { kind name ofType { kind name ofType {
    kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } }
}";

async fn nodes_are_counted_with_fragments_expanded(db: TestDb) {
    let app = db.spawn().await;
    let t = app.signed_up("ada").await;
    // The tooling's introspection query is well within the default.
    let res = app.gql(None, INTROSPECTION, json!({})).await.ok();
    assert_eq!(res.data("__schema.queryType.name"), "Query");

    let limited = db.spawn_with(|s| s.serving.limits.max_nodes = 50).await;
    // `me` and five fields, spread eight times: 1 + 8 × 6 = 49 selections.
    let spread = |times: usize| {
        format!(
            "{{ me {{ {} }} }} fragment U on User {{ id username email role createdAt }}",
            "...U ".repeat(times)
        )
    };
    let res = limited
        .gql(Some(&t.access), &spread(8), json!({}))
        .await
        .ok();
    assert_eq!(res.data("me.username"), "ada");
    let res = limited.gql(Some(&t.access), &spread(9), json!({})).await;
    assert_eq!(res.code(), "GRAPHQL_VALIDATION_FAILED");
    assert_eq!(
        res.message(),
        "the document has 55 nodes once its fragments are expanded; at most 50 are allowed"
    );
    assert!(res.body["data"].is_null());
    // Refused before anything runs: a mutation past the limit writes nothing.
    let many = format!(
        "mutation {{ createPost(input: {{ title: \"t\", body: \"b\" }}) {{ id {} }} }}",
        "title ".repeat(60)
    );
    let res = limited.gql(Some(&t.access), &many, json!({})).await;
    assert_eq!(res.code(), "GRAPHQL_VALIDATION_FAILED");
    let mine = limited
        .gql(
            Some(&t.access),
            "{ me { posts { edges { cursor } } } }",
            json!({}),
        )
        .await
        .ok();
    assert_eq!(mine.data("me.posts.edges"), &json!([]));
}

async fn arguments_spread_many_times_are_counted_each_time(db: TestDb) {
    let (server, client) = own_server(&db).await;
    // One fragment whose two fields carry a long list each, spread 499 times: validation
    // would compare the two lists, and walk them, once for every spread.
    let list = vec!["1"; 100_000].join(",");
    let text = format!(
        "{{ {} }} fragment F on User {{ id(a: [{list}]) id(a: [{list}]) }}",
        "me { ...F } ".repeat(499)
    );
    assert!(text.len() < 1_000_000, "{} bytes", text.len());
    let (status, body) = post(&client, &server.base, &text).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "GRAPHQL_VALIDATION_FAILED"
    );
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("the document has ") && message.ends_with("at most 4000 are allowed"),
        "{message}"
    );
    // A variable counts its value wherever it is used: validation and execution copy it
    // into each place. A list of a thousand strings, used 3,900 times in 52 KB.
    let uses = vec!["$v"; 3900].join(" ");
    let res = client
        .post(format!("{}/graphql", server.base))
        .json(&json!({
            "query": format!("query($v: [String]) {{ post(id: [{uses}]) {{ id }} }}"),
            "variables": { "v": vec!["x"; 1000] },
        }))
        .send()
        .await
        .expect("the server answers");
    let body: Value = res.json().await.unwrap();
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("the document has "), "{body}");
    // Many arguments on one field are refused however often it is spread.
    let many = (0..40)
        .map(|i| format!("a{i}: 1"))
        .collect::<Vec<_>>()
        .join(" ");
    let (_, body) = post(&client, &server.base, &format!("{{ me {{ id({many}) }} }}")).await;
    assert_eq!(
        body["errors"][0]["message"],
        "more than 16 arguments in one place"
    );
    let (_, body) = post(&client, &server.base, "{ __typename }").await;
    assert_eq!(body, json!({ "data": { "__typename": "Query" } }));
}

async fn deeply_nested_values_are_refused_before_they_are_parsed(db: TestDb) {
    let (mut server, client) = own_server(&db).await;
    // 3 KB of brackets: a parser that descends into each by calling itself overflows its
    // thread's stack, and the process dies.
    let nested = |open: &str, close: &str| {
        format!(
            "{{ post(id: {}1{}) {{ id }} }}",
            open.repeat(2000),
            close.repeat(2000)
        )
    };
    // A block string never closed is read by the parser as an empty string and another
    // string: the brackets after it are parsed, and counted.
    let hidden = format!(
        "{{ post(id: [\"\"\"x\"] other: {}1{}) {{ id }} }}",
        "[".repeat(3000),
        "]".repeat(3000)
    );
    for text in [nested("[", "]"), nested("{a: ", "}"), hidden] {
        let (status, body) = post(&client, &server.base, &text).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["errors"][0]["extensions"]["code"],
            "GRAPHQL_PARSE_FAILED"
        );
        assert_eq!(
            body["errors"][0]["message"],
            "brackets nest more than 64 levels deep"
        );
    }
    // In a URL too.
    let res = client
        .get(format!("{}/graphql", server.base))
        .query(&[("query", nested("[", "]"))])
        .send()
        .await
        .expect("the server answers");
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "GRAPHQL_PARSE_FAILED"
    );
    // And names that would be repeated in every error about them.
    let (_, body) = post(&client, &server.base, &format!("{{ {} }}", "a".repeat(300))).await;
    assert_eq!(
        body["errors"][0]["message"],
        "a name or number is longer than 256 characters"
    );
    let (_, body) = post(&client, &server.base, "{ __typename }").await;
    assert_eq!(body, json!({ "data": { "__typename": "Query" } }));
    assert!(server.running());
}

async fn a_conflict_reached_from_many_places_is_reported_once(db: TestDb) {
    let (server, client) = own_server(&db).await;
    // Two fields that conflict, in a fragment reached through thirty levels of inline
    // fragments from a hundred places: validation would report the conflict from each
    // of three thousand selection sets.
    let chain = format!("{}...F{}", "... { ".repeat(30), " }".repeat(30));
    let text = format!(
        "{{ {} }} fragment F on Query {{ posts(first: 1) {{ __typename }} \
         posts(first: 2) {{ __typename }} }}",
        vec![chain; 100].join(" ")
    );
    let (status, body) = post(&client, &server.base, &text).await;
    assert_eq!(status, 200);
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{body}");
    assert_eq!(errors[0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("fields \"posts\" conflict"),
        "{body}"
    );
    // Fields that agree pass, however many places reach them (and the query runs: it
    // needs a signed-in caller).
    let agreeing = text.replace("posts(first: 2)", "posts(first: 1)");
    let (_, body) = post(&client, &server.base, &agreeing).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{body}"
    );
}

async fn an_answer_lists_at_most_a_hundred_validation_errors(db: TestDb) {
    let app = db.spawn().await;
    // 150 fields the schema does not have: an error for each.
    let fields: String = (0..150).map(|i| format!("missing{i} ")).collect();
    let res = app.gql(None, &format!("{{ {fields} }}"), json!({})).await;
    let errors = res.body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 101);
    assert!(
        errors[..100]
            .iter()
            .all(|e| e["message"].as_str().unwrap().contains("Unknown field")),
        "{}",
        res.body
    );
    assert_eq!(
        errors[100]["message"],
        "50 more errors like these were left out"
    );
    assert_eq!(
        errors[100]["extensions"]["code"],
        "GRAPHQL_VALIDATION_FAILED"
    );
}

async fn fragments_that_spread_themselves_or_go_unused_are_refused_by_name(db: TestDb) {
    let app = db.spawn().await;
    let t = app.signed_up("ada").await;
    let res = app
        .gql(
            Some(&t.access),
            "{ me { ...A } } fragment A on User { id ...B } fragment B on User { ...A }",
            json!({}),
        )
        .await;
    assert_eq!(res.code(), "GRAPHQL_VALIDATION_FAILED");
    assert!(
        res.message().starts_with("fragment \"")
            && res
                .message()
                .ends_with("spreads itself, directly or through other fragments"),
        "{}",
        res.message()
    );
    let res = app
        .gql(
            Some(&t.access),
            "{ me { id } } fragment Spare on User { username }",
            json!({}),
        )
        .await;
    assert_eq!(res.code(), "GRAPHQL_VALIDATION_FAILED");
    assert_eq!(res.message(), "fragment \"Spare\" is never used");
}
