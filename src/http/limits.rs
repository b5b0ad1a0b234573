//! Whole-request refusals and protections: the body size limit (413), the request
//! timeout, JSON-only POSTs (415, so that no HTML form or `text/plain` request from
//! another site can reach the API) and the security headers on every response.

use axum::{
    body::Body,
    extract::Request,
    http::{HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::Response,
};
use http_body_util::BodyExt;

use super::wire::{Format, Refusal};
use crate::error::Code;

/// How long a request may take before it is answered 408.
pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// 413, for a body over `QUIRE_MAX_BODY`.
pub fn too_large() -> Response {
    Refusal::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        Code::PayloadTooLarge,
        "the request body is larger than this server accepts",
    )
    .into_response(Format::Json)
}

/// Middleware: POSTs must be JSON.
pub async fn json_posts_only(req: Request, next: Next) -> Response {
    if req.method() == Method::POST {
        let media_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        let accepted = matches!(
            media_type.as_deref(),
            Some("application/json" | "application/graphql-response+json")
        );
        if !accepted {
            let mut response = Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Code::UnsupportedMediaType,
                "send GraphQL requests as application/json",
            )
            .into_response(Format::Json);
            response
                .headers_mut()
                .insert("accept-post", HeaderValue::from_static("application/json"));
            return response;
        }
    }
    next.run(req).await
}

/// Middleware: reads the body, at most `max` bytes of it, before anything else does; a
/// larger body, declared or found while reading, is answered 413.
pub async fn bounded_body(max: usize, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    match http_body_util::Limited::new(body, max).collect().await {
        Ok(collected) => {
            next.run(Request::from_parts(parts, Body::from(collected.to_bytes())))
                .await
        }
        Err(e) if e.is::<http_body_util::LengthLimitError>() => too_large(),
        Err(_) => {
            Refusal::bad_request("the request body could not be read").into_response(Format::Json)
        }
    }
}
