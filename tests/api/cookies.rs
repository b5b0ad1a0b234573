//! Browser sessions: the refresh token in an HttpOnly cookie, and the defences that keep
//! other sites from using it.

use serde_json::{Value, json};

use crate::helpers::{AUTH_FIELDS, PASSWORD, TestApp, TestDb};

crate::on_both_databases!(
    cookie_mode_keeps_the_refresh_token_from_page_scripts,
    requests_with_the_cookie_must_come_from_an_allowed_origin,
    only_listed_origins_may_call_with_credentials,
);

const APP_ORIGIN: &str = "https://app.example.com";

fn cookie_of(headers: &reqwest::header::HeaderMap) -> String {
    headers["set-cookie"].to_str().unwrap().to_owned()
}

fn token_in(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("__Host-quire_refresh=")
        .unwrap()
        .to_owned()
}

async fn with_cookie(
    app: &TestApp,
    token: &str,
    query: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let res = app
        .client
        .post(format!("{}/graphql", app.base))
        .header("cookie", format!("__Host-quire_refresh={token}"))
        .header("origin", APP_ORIGIN)
        .json(&json!({ "query": query }))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, headers, res.json().await.unwrap())
}

async fn cookie_mode_keeps_the_refresh_token_from_page_scripts(db: TestDb) {
    let app = db
        .spawn_with(|s| {
            s.serving.auth.refresh_cookie = true;
            s.serving.server.cors_origins = quire::config::parse::origins(APP_ORIGIN).unwrap();
        })
        .await;
    let reg = app.register("ada@example.com", "ada", PASSWORD).await.ok();
    assert!(
        reg.data("register.refreshToken").is_null(),
        "the payload holds no refresh token"
    );
    let set = cookie_of(&reg.headers);
    for attribute in [
        "__Host-quire_refresh=",
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/",
        "Max-Age=2592000",
    ] {
        assert!(set.contains(attribute), "{attribute} missing from {set}");
    }
    let first = token_in(&set);
    let access = reg
        .data("register.accessToken")
        .as_str()
        .unwrap()
        .to_owned();

    // Refresh with the cookie, and no argument.
    let (status, headers, body) = with_cookie(
        &app,
        &first,
        &format!("mutation {{ refresh {{ {AUTH_FIELDS} }} }}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["refresh"]["refreshToken"].is_null());
    let second = token_in(&cookie_of(&headers));
    assert_ne!(second, first, "the cookie rotates");
    let fresh = body["data"]["refresh"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    app.me(&fresh).await.ok();

    // Log out with the cookie: the session ends and the cookie is cleared.
    let (_, headers, body) = with_cookie(&app, &second, "mutation { logout }").await;
    assert_eq!(body["data"]["logout"], true);
    assert!(cookie_of(&headers).contains("Max-Age=0"));
    assert_eq!(app.me(&fresh).await.code(), "UNAUTHENTICATED");
    assert_eq!(app.me(&access).await.code(), "UNAUTHENTICATED");

    // Login likewise sets the cookie.
    let login = app.login("ada@example.com", PASSWORD).await.ok();
    assert!(login.data("login.refreshToken").is_null());
    assert!(cookie_of(&login.headers).starts_with("__Host-quire_refresh="));
}

async fn requests_with_the_cookie_must_come_from_an_allowed_origin(db: TestDb) {
    let app = db
        .spawn_with(|s| {
            s.serving.auth.refresh_cookie = true;
            s.serving.server.cors_origins = quire::config::parse::origins(APP_ORIGIN).unwrap();
        })
        .await;
    let reg = app.register("ada@example.com", "ada", PASSWORD).await.ok();
    let token = token_in(&cookie_of(&reg.headers));
    let access = reg
        .data("register.accessToken")
        .as_str()
        .unwrap()
        .to_owned();

    // From another site, with the cookie: refused before anything runs.
    let res = app
        .client
        .post(format!("{}/graphql", app.base))
        .header("cookie", format!("__Host-quire_refresh={token}"))
        .header("origin", "https://evil.example")
        .json(&json!({ "query": "mutation { logout }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN");
    app.me(&access).await.ok();

    // A form post from anywhere is refused for its type alone.
    let res = app
        .client
        .post(format!("{}/graphql", app.base))
        .header("cookie", format!("__Host-quire_refresh={token}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("query=mutation%20%7B%20logout%20%7D")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    // And a mutation over GET.
    let res = app
        .client
        .get(format!("{}/graphql", app.base))
        .header("cookie", format!("__Host-quire_refresh={token}"))
        .query(&[("query", "mutation { logout }")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    app.me(&access).await.ok();

    // From the app's own origin, or from a client that sends no Origin, it works.
    let (status, _, _) = with_cookie(&app, &token, "{ __typename }").await;
    assert_eq!(status, 200);
}

async fn only_listed_origins_may_call_with_credentials(db: TestDb) {
    let app = db
        .spawn_with(|s| {
            s.serving.server.cors_origins = quire::config::parse::origins(APP_ORIGIN).unwrap()
        })
        .await;
    let preflight = |origin: &'static str| {
        let app = &app;
        async move {
            app.client
                .request(reqwest::Method::OPTIONS, format!("{}/graphql", app.base))
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "content-type, authorization",
                )
                .send()
                .await
                .unwrap()
        }
    };
    let allowed = preflight(APP_ORIGIN).await;
    assert_eq!(allowed.headers()["access-control-allow-origin"], APP_ORIGIN);
    assert_eq!(
        allowed.headers()["access-control-allow-credentials"],
        "true"
    );
    let unlisted = preflight("https://evil.example").await;
    assert!(
        !unlisted
            .headers()
            .contains_key("access-control-allow-origin")
    );

    // Without a list, no origin is granted anything.
    let closed = db.spawn().await;
    let res = closed
        .client
        .request(reqwest::Method::OPTIONS, format!("{}/graphql", closed.base))
        .header("origin", APP_ORIGIN)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(!res.headers().contains_key("access-control-allow-origin"));
    for res in [&allowed, &unlisted] {
        let value = res.headers().get("access-control-allow-origin");
        assert_ne!(value.map(|v| v.to_str().unwrap()), Some("*"));
    }
}
