//! The GraphiQL page: a GraphQL IDE for browsers, with a headers editor for the bearer
//! token and subscriptions over the WebSocket.
//!
//! Its scripts and styles come from `QUIRE_GRAPHIQL_ASSETS` (a public CDN by default; a
//! server of one's own in air-gapped deployments), pinned by version and checked by
//! the browser against their SHA-384 (subresource integrity). The inline script runs
//! only with the response's nonce.

use axum::{
    http::{HeaderValue, header},
    response::{Html, IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use rand::RngCore;

const TEMPLATE: &str = include_str!("graphiql.html");

/// The page, loading its assets from `assets` (a base URL without trailing slash), as
/// served on `host` (the request's `Host`, for the WebSocket it may open).
pub fn page(assets: &str, host: Option<&str>) -> Response {
    let mut nonce = [0u8; 18];
    rand::thread_rng().fill_bytes(&mut nonce);
    let nonce = STANDARD.encode(nonce);
    let html = TEMPLATE
        .replace("{{ASSETS}}", assets)
        .replace("{{NONCE}}", &nonce);
    let origin = origin(assets);
    // Only scripts bearing this response's nonce run (the assets carry it too, besides
    // their integrity hashes), so no other script from the assets' host can.
    let sockets = host
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .map(|h| format!(" ws://{h} wss://{h}"))
        .unwrap_or_default();
    let policy = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; \
         style-src 'unsafe-inline' {origin}; img-src 'self' data:; font-src {origin} data:; \
         connect-src 'self'{sockets}; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    );
    let mut response = Html(html).into_response();
    if let Ok(policy) = HeaderValue::from_str(&policy) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The same URL answers JSON to other clients.
    headers.insert(header::VARY, HeaderValue::from_static("Accept"));
    response
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

#[cfg(test)]
mod tests {
    use super::origin;

    #[test]
    fn the_origin_is_the_url_up_to_its_path() {
        assert_eq!(
            origin("https://cdn.jsdelivr.net/npm"),
            "https://cdn.jsdelivr.net"
        );
        assert_eq!(origin("http://127.0.0.1:9000/a/b"), "http://127.0.0.1:9000");
        assert_eq!(origin("http://assets.internal"), "http://assets.internal");
    }
}
