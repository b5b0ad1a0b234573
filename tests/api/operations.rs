//! Running in production: one password per request, what production hides, and stopping
//! without dropping requests.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::json;

use crate::helpers::{PASSWORD, TestDb};

crate::on_both_databases!(
    one_request_tries_at_most_one_password,
    production_hides_introspection_and_graphiql,
    shutdown_lets_a_request_in_flight_finish,
    metrics_expose_the_named_series,
    metrics_can_live_on_their_own_address,
    metric_series_stay_bounded_however_many_names_clients_send,
    metrics_are_not_public_in_production_unless_asked,
);

async fn one_request_tries_at_most_one_password(db: TestDb) {
    // Aliases allowed well beyond 20, so that only the credential rule is at work.
    let app = db.spawn_with(|s| s.serving.limits.max_aliases = 25).await;
    app.signed_up("ada").await;
    let attempts: Vec<String> = (0..20)
        .map(|i| {
            // The right password is the eleventh guess.
            let password = if i == 10 { PASSWORD.to_owned() } else { format!("guess number {i}") };
            format!(
                "a{i}: login(input: {{ email: \"ada@example.com\", password: \"{password}\" }}) {{ accessToken }}"
            )
        })
        .collect();
    let res = app
        .gql(
            None,
            &format!("mutation {{ {} }}", attempts.join(" ")),
            json!({}),
        )
        .await;
    let errors = res.body["errors"].as_array().unwrap();
    let code_of = |alias: &str| {
        errors
            .iter()
            .find(|e| e["path"][0] == alias)
            .map(|e| e["extensions"]["code"].as_str().unwrap().to_owned())
    };
    // The first guess is tried and fails; every other one, the right one included, is
    // refused untried.
    assert_eq!(code_of("a0").as_deref(), Some("UNAUTHENTICATED"));
    for i in 1..20 {
        let code = code_of(&format!("a{i}"));
        assert_eq!(code.as_deref(), Some("RATE_LIMITED"), "a{i}: {}", res.body);
    }
    let limited = errors.iter().find(|e| e["path"][0] == "a10").unwrap();
    assert_eq!(limited["extensions"]["retryAfter"], 0);
    assert!(res.body["data"].is_null(), "no tokens were handed out");

    // Register and login in one request: the second is refused too.
    let res = app
        .gql(
            None,
            "mutation { register(input: { email: \"bo@example.com\", username: \"bobo\", password: \"correct horse battery staple\" }) { accessToken } \
             login(input: { email: \"ada@example.com\", password: \"correct horse battery staple\" }) { accessToken } }",
            json!({}),
        )
        .await;
    let login_error = res.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"][0] == "login")
        .unwrap();
    assert_eq!(login_error["extensions"]["code"], "RATE_LIMITED");
    // One per request, not one ever: the next request signs in.
    app.login("ada@example.com", PASSWORD).await.ok();
}

async fn production_hides_introspection_and_graphiql(db: TestDb) {
    let introspect = "{ __schema { queryType { name } } }";

    let dev = db.spawn().await;
    let t = dev.signed_up("ada").await;
    dev.gql(Some(&t.access), introspect, json!({})).await.ok();
    let page = dev.get("/graphql", Some("text/html")).await;
    assert!(
        page.text()
            .await
            .unwrap()
            .to_lowercase()
            .contains("graphiql")
    );

    let prod = db
        .spawn_with(|s| s.common.environment = quire::config::Environment::Production)
        .await;
    // The schema is not described: asking for it is refused with a code of its own,
    // however the fields are reached, and nothing runs, answered as any other request
    // that fails before execution.
    let invalid = prod.gql(Some(&t.access), "{ nope }", json!({})).await;
    assert_eq!(invalid.code(), "GRAPHQL_VALIDATION_FAILED");
    for query in [
        introspect,
        "{ __type(name: \"User\") { fields { name } } }",
        "query { me { username } ...Schema } fragment Schema on Query { __schema { types { name } } }",
        "{ ... on Query { __type(name: \"Post\") { name } } }",
    ] {
        let res = prod.gql(Some(&t.access), query, json!({})).await;
        assert_eq!(
            res.code(),
            "INTROSPECTION_DISABLED",
            "{query}: {}",
            res.body
        );
        assert!(
            res.message().contains("QUIRE_INTROSPECTION"),
            "{}",
            res.body
        );
        assert!(res.body.get("data").is_none(), "{}", res.body);
        assert_eq!(res.status, invalid.status, "{}", res.body);
    }
    // `__typename` is not introspection of the schema: it still answers.
    let res = prod
        .gql(
            Some(&t.access),
            "{ __typename me { __typename } }",
            json!({}),
        )
        .await
        .ok();
    assert_eq!(res.data("__typename"), "Query");
    let page = prod.get("/graphql", Some("text/html")).await;
    let content_type = page.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(!content_type.starts_with("text/html"), "{content_type}");
    assert!(
        !page
            .text()
            .await
            .unwrap()
            .to_lowercase()
            .contains("graphiql")
    );
    // The API itself works as ever.
    prod.me(&t.access).await.ok();

    // Asked for, production shows them.
    let open = db
        .spawn_with(|s| {
            s.common.environment = quire::config::Environment::Production;
            s.serving.exposure.introspection = Some(true);
            s.serving.exposure.graphiql = Some(true);
        })
        .await;
    open.gql(Some(&t.access), introspect, json!({})).await.ok();
    assert_eq!(open.get("/graphql", Some("text/html")).await.status(), 200);
}

async fn shutdown_lets_a_request_in_flight_finish(db: TestDb) {
    drop(db.spawn().await); // the schema exists before the server process starts
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_quire"))
            .env("DATABASE_URL", &url)
            .env("QUIRE_LISTEN", "127.0.0.1:0")
            .env("QUIRE_LOG", "info")
            .env_remove("QUIRE_JWT_SECRET")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let address = loop {
            let line = lines.next().expect("the server logs").unwrap();
            if let Some(rest) = line.split("http://").nth(1) {
                break rest.split('/').next().unwrap().to_owned();
            }
        };
        // A request whose headers have arrived but whose body has not: in flight.
        let body = json!({ "query": "{ __typename }" }).to_string();
        let (first, rest) = body.split_at(5);
        let mut stream = TcpStream::connect(&address).unwrap();
        write!(
            stream,
            "POST /graphql HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{first}",
            body.len()
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let killed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        std::thread::sleep(Duration::from_millis(300));
        stream.write_all(rest.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.contains("\"__typename\":\"Query\""), "{response}");

        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "a clean exit");
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        assert!(rest.iter().any(|l| l.contains("quire stopped")), "{rest:?}");
    })
    .await
    .unwrap();
}

async fn metrics_expose_the_named_series(db: TestDb) {
    let app = db.spawn().await;
    let t = app.signed_up("ada").await;
    app.gql(Some(&t.access), "query Me { me { id } }", json!({}))
        .await
        .ok();
    app.login("ada@example.com", PASSWORD).await.ok();
    assert_eq!(
        app.login("ada@example.com", "wrong password").await.code(),
        "UNAUTHENTICATED"
    );

    let res = app.get("/metrics", None).await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = res.text().await.unwrap();
    for series in [
        "http_requests_total{status=\"200\"}",
        "graphql_operations_total{operation=\"Me\",outcome=\"ok\"}",
        "graphql_operation_duration_seconds_bucket{operation=\"Me\",le=\"0.005\"}",
        "auth_events_total{kind=\"login_succeeded\"}",
        "auth_events_total{kind=\"login_failed\"}",
        "db_pool_connections{state=\"open\"}",
        "db_pool_connections{state=\"idle\"}",
    ] {
        assert!(text.contains(series), "{series} missing from:\n{text}");
    }
    // Client-chosen names do not become series.
    app.gql(
        Some(&t.access),
        "query Weird_Name_Ok { me { id } }",
        json!({}),
    )
    .await
    .ok();
    let long = format!("query {} {{ me {{ id }} }}", "x".repeat(80));
    app.gql(Some(&t.access), &long, json!({})).await.ok();
    let text = app.get("/metrics", None).await.text().await.unwrap();
    assert!(text.contains("operation=\"Weird_Name_Ok\""));
    assert!(text.contains("operation=\"other\""));
    assert!(!text.contains(&"x".repeat(80)));
}

async fn metric_series_stay_bounded_however_many_names_clients_send(db: TestDb) {
    let app = db
        .spawn_with(|s| s.serving.server.metrics_operations = 10)
        .await;
    // Names of this test's own, since every server of this process shares the recorder.
    let prefix = format!("Flood{}", uuid::Uuid::new_v4().simple());
    for i in 0..300 {
        app.gql(
            None,
            &format!("query {prefix}_{i} {{ __typename }}"),
            json!({}),
        )
        .await
        .ok();
    }
    let text = app.get("/metrics", None).await.text().await.unwrap();
    let mut names: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("graphql_operations_total{"))
        .filter_map(|l| l.split(&format!("operation=\"{prefix}_")).nth(1))
        .filter_map(|rest| rest.split('"').next())
        .collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 10, "{names:?}");
    // The first names seen keep their series; the rest count as other.
    assert!(names.contains(&"0") && names.contains(&"9"), "{names:?}");
    assert!(text.contains("graphql_operations_total{operation=\"other\",outcome=\"ok\"}"));
}

async fn metrics_are_not_public_in_production_unless_asked(db: TestDb) {
    let production = db
        .spawn_with(|s| s.common.environment = quire::config::Environment::Production)
        .await;
    assert_eq!(production.get("/metrics", None).await.status(), 404);
    let asked = db
        .spawn_with(|s| {
            s.common.environment = quire::config::Environment::Production;
            s.serving.exposure.metrics = Some(true);
        })
        .await;
    let res = asked.get("/metrics", None).await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("http_requests_total"));
    let development = db.spawn().await;
    assert_eq!(development.get("/metrics", None).await.status(), 200);
}

async fn metrics_can_live_on_their_own_address(db: TestDb) {
    drop(db.spawn().await); // the schema exists before the server process starts
    let url = db.url.clone();
    let (address, logs, mut child) = tokio::task::spawn_blocking(move || {
        crate::api_keys::serve_with_logs(&url, &[("QUIRE_METRICS_LISTEN", "127.0.0.1:0")])
    })
    .await
    .unwrap();
    let mut metrics_address = None;
    for _ in 0..50 {
        metrics_address = logs
            .lock()
            .unwrap()
            .lines()
            .find_map(|l| l.split("metrics on http://").nth(1).map(str::to_owned));
        if metrics_address.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics_address = metrics_address.expect("the server says where the metrics are");
    let client = reqwest::Client::new();
    let main = client
        .get(format!("http://{address}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(main.status(), 404, "not on the public address");
    let own = client
        .get(format!("http://{metrics_address}"))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    assert!(
        own.text()
            .await
            .unwrap()
            .contains("http_requests_total{status=\"404\"}")
    );
    let _ = child.kill();
    let _ = child.wait();
}
