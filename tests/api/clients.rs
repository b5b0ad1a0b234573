//! What real clients see: the GraphiQL page (its assets, its policy, and a login and a
//! `me` query in headless Chromium) and the example scripts for curl, Apollo Client and
//! urql, run against a live server.
//!
//! The browser and Node runs need `npm ci` in `tests/browser` and `examples`, Chromium
//! and `jq`. Without them these tests say so loudly and pass, unless
//! `QUIRE_TEST_REQUIRE_CLIENTS=1` (set by CI), which makes a missing piece a failure.

use std::{path::PathBuf, process::Stdio, time::Duration};

use axum::{
    Router,
    extract::Path,
    http::{StatusCode, header},
    response::IntoResponse,
};
use reqwest::header as h;
use serde_json::Value;
use tokio::process::Command;

use crate::helpers::{PASSWORD, TestApp, TestDb};

crate::on_both_databases!(
    the_graphiql_page_loads_pinned_assets_under_a_strict_policy,
    graphiql_runs_login_and_me_in_a_real_browser,
    the_curl_walkthrough_runs,
    the_apollo_client_example_runs,
    the_urql_example_runs,
);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where `program` is found on `PATH` (its bare name, which does not exist, if nowhere).
fn on_path(program: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from(program))
}

/// Whether everything `needs` names is installed; if not, a loud notice, or a failure
/// when CI requires the clients.
fn available(what: &str, needs: &[PathBuf]) -> bool {
    let missing: Vec<String> = needs
        .iter()
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let notice = format!(
        "{what} NOT RUN: missing {}. Run `npm ci` in tests/browser and examples, and install \
         chromium and jq.",
        missing.join(", ")
    );
    if std::env::var("QUIRE_TEST_REQUIRE_CLIENTS").as_deref() == Ok("1") {
        panic!("{notice}");
    }
    eprintln!("\n!!!!!!!!!!\n{notice}\n!!!!!!!!!!\n");
    false
}

/// Runs `program` with `args` and `env` in `dir`, failing the test with its output
/// unless it succeeds within two minutes.
async fn run(program: &str, args: &[&str], env: &[(&str, &str)], dir: PathBuf) -> String {
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} took over two minutes"))
        .unwrap_or_else(|e| panic!("{program} could not be started: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{program} {args:?} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    stdout
}

/// Serves npm packages from `node_modules` the way a CDN does, as
/// `/<name>@<version>/<file>`, refusing a version other than the installed one.
async fn asset_server(node_modules: PathBuf) -> String {
    let serve = move |Path(path): Path<String>| {
        let node_modules = node_modules.clone();
        async move {
            let Some((package, file)) = path.split_once('/') else {
                return StatusCode::NOT_FOUND.into_response();
            };
            let Some((name, version)) = package.rsplit_once('@') else {
                return StatusCode::NOT_FOUND.into_response();
            };
            let dir = node_modules.join(name);
            let installed = std::fs::read_to_string(dir.join("package.json"))
                .ok()
                .and_then(|text| serde_json::from_str::<Value>(&text).ok())
                .and_then(|json| json["version"].as_str().map(str::to_owned));
            if installed.as_deref() != Some(version) || file.contains("..") {
                return StatusCode::NOT_FOUND.into_response();
            }
            let Ok(bytes) = tokio::fs::read(dir.join(file)).await else {
                return StatusCode::NOT_FOUND.into_response();
            };
            let content_type = if file.ends_with(".css") {
                "text/css"
            } else {
                "text/javascript"
            };
            (
                [
                    (header::CONTENT_TYPE, content_type),
                    (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
                ],
                bytes,
            )
                .into_response()
        }
    };
    let router = Router::new().route("/{*path}", axum::routing::get(serve));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

async fn graphiql_runs_login_and_me_in_a_real_browser(db: TestDb) {
    let browser = root().join("tests/browser");
    let node_modules = browser.join("node_modules");
    if !available(
        "The GraphiQL browser test",
        &[
            node_modules.join("playwright-core"),
            node_modules.join("graphiql"),
            PathBuf::from(std::env::var("CHROMIUM").unwrap_or("/usr/bin/chromium".into())),
        ],
    ) {
        return;
    }
    let assets = asset_server(node_modules).await;
    let app = db
        .spawn_with(|s| {
            s.serving.server.graphiql_assets =
                quire::config::parse::base_url(&format!("{assets}/")).unwrap()
        })
        .await;
    app.register("ada@example.com", "ada", PASSWORD).await.ok();
    let artifacts = root().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("the artifacts directory");
    let screenshot = artifacts.join(format!("graphiql-{}.png", db.backend_name()));
    let _ = std::fs::remove_file(&screenshot);
    let out = run(
        "node",
        &["graphiql.mjs", &app.base, screenshot.to_str().unwrap()],
        &[
            ("E2E_EMAIL", "ada@example.com"),
            ("E2E_PASSWORD", PASSWORD),
            ("E2E_USERNAME", "ada"),
        ],
        browser,
    )
    .await;
    assert!(out.contains("graphiql e2e ok"), "{out}");
    let png = std::fs::read(&screenshot).expect("a screenshot was kept");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real screenshot"
    );
}

/// Runs one example against `app`.
async fn example(app: &TestApp, program: &str, script: &str) -> String {
    run(
        program,
        &[script],
        &[("QUIRE_URL", &app.base)],
        root().join("examples"),
    )
    .await
}

async fn the_curl_walkthrough_runs(db: TestDb) {
    if !available("The curl example", &[on_path("jq"), on_path("curl")]) {
        return;
    }
    let app = db.spawn().await;
    let out = example(&app, "bash", "curl.sh").await;
    assert!(out.trim_end().ends_with("curl example ok"), "{out}");
}

async fn the_apollo_client_example_runs(db: TestDb) {
    let modules = root().join("examples/node_modules");
    if !available(
        "The Apollo Client example",
        &[modules.join("@apollo/client")],
    ) {
        return;
    }
    let app = db.spawn().await;
    let out = example(&app, "node", "apollo.mjs").await;
    // Its persisted queries were used: some operations went by hash alone.
    assert!(out.contains("postCreated: received"), "{out}");
    assert!(out.contains("answered from the hash"), "{out}");
    assert!(out.trim_end().ends_with("apollo example ok"), "{out}");
}

async fn the_urql_example_runs(db: TestDb) {
    let modules = root().join("examples/node_modules");
    if !available("The urql example", &[modules.join("@urql/core")]) {
        return;
    }
    let app = db.spawn().await;
    let out = example(&app, "node", "urql.mjs").await;
    assert!(out.contains("postCreated: received"), "{out}");
    assert!(out.trim_end().ends_with("urql example ok"), "{out}");
}

async fn the_graphiql_page_loads_pinned_assets_under_a_strict_policy(db: TestDb) {
    let app = db
        .spawn_with(|s| {
            s.serving.server.graphiql_assets =
                quire::config::parse::base_url("https://assets.example.com/npm/").unwrap()
        })
        .await;
    let page = |app: &TestApp| {
        app.client
            .get(format!("{}/graphql", app.base))
            .header(h::ACCEPT, "text/html,application/xhtml+xml,*/*;q=0.8")
            .send()
    };
    let first = page(&app).await.unwrap();
    assert_eq!(first.status(), 200);
    let policy = first.headers()[h::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    let html = first.text().await.unwrap();
    assert!(!html.contains("{{"), "every placeholder is filled");
    for asset in [
        "https://assets.example.com/npm/graphiql@",
        "https://assets.example.com/npm/react@",
        "https://assets.example.com/npm/react-dom@",
        "https://assets.example.com/npm/graphql-ws@",
    ] {
        assert!(html.contains(asset), "{asset}");
    }
    let nonce = policy
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a nonce in the policy")
        .to_owned();
    // Every script runs by the nonce alone, and the assets are pinned by their hashes.
    let scripts = html.matches("<script ").count();
    assert_eq!(
        html.matches(&format!("<script nonce=\"{nonce}\"")).count(),
        scripts
    );
    assert_eq!(
        html.matches(" src=\"https://assets.example.com/").count() + 1,
        html.matches("integrity=\"sha384-").count(),
        "every script (and the stylesheet) is pinned by its hash"
    );
    assert!(policy.contains(&format!("script-src 'nonce-{nonce}';")));
    assert!(policy.contains("style-src 'unsafe-inline' https://assets.example.com"));
    assert!(!policy.contains("'unsafe-eval'"));
    assert!(policy.contains("frame-ancestors 'none'"));
    // A new nonce for every page.
    let second = page(&app).await.unwrap();
    let policy2 = second.headers()[h::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(policy, policy2);

    // In production there is no page.
    let app = db
        .spawn_with(|s| s.common.environment = quire::config::Environment::Production)
        .await;
    let res = page(&app).await.unwrap();
    assert_ne!(
        res.headers()
            .get(h::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("text/html; charset=utf-8")
    );
}
