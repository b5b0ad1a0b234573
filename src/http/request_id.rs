//! Gives each request an id, returned in `X-Request-Id`, recorded on its log lines and
//! quoted in internal errors so that a user's report leads straight to the log. An id the
//! client (or a proxy in front) sent is kept when it is sane: up to 128 letters, digits,
//! dots, dashes and underscores.

use std::time::Instant;

use axum::{extract::Request, http::HeaderValue, middleware::Next, response::Response};
use tracing::Instrument;
use uuid::Uuid;

/// The header that carries the id.
pub const HEADER: &str = "x-request-id";

/// The id of the request being served.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn sane(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// Middleware: assigns the id, wraps the request in a span and logs its outcome.
pub async fn assign(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane(v))
        .map(str::to_owned)
        .unwrap_or_else(|| Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.uri().path(),
        operation = tracing::field::Empty,
        user_id = tracing::field::Empty,
    );
    let started = Instant::now();
    let mut response = next.run(req).instrument(span.clone()).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    ::metrics::counter!("http_requests_total", "status" => response.status().as_u16().to_string())
        .increment(1);
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "served"
        );
    });
    response
}

#[cfg(test)]
mod tests {
    use super::sane;

    #[test]
    fn only_sane_ids_are_kept() {
        assert!(sane("abc-123_DEF.4"));
        assert!(sane(&"a".repeat(128)));
        for bad in [
            "",
            "with space",
            "semi;colon",
            "new\nline",
            &"a".repeat(129),
        ] {
            assert!(!sane(bad), "{bad:?}");
        }
    }
}
