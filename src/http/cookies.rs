//! Browser sessions at the HTTP edge: the refresh cookie read from a request, and the
//! check that keeps other sites from using it. What the cookie holds and how it is set
//! lives in `auth/cookie.rs`.

use super::wire::{Format, Refusal};
use crate::{auth::cookie::REFRESH_COOKIE, error::Code};
use axum::{
    extract::Request,
    http::{HeaderMap, StatusCode, header},
    middleware::Next,
    response::Response,
};

/// The refresh cookie's value among the request's cookies.
pub fn read(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == REFRESH_COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|v| !v.is_empty())
}

/// Middleware: a request carrying the refresh cookie and an `Origin` must come from one
/// of the listed origins, so that another site cannot ride on the cookie (CSRF).
pub async fn origin_check(
    config: std::sync::Arc<crate::config::Config>,
    req: Request,
    next: Next,
) -> Response {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(|o| o.trim_end_matches('/').to_owned());
    if let Some(origin) = origin
        && read(req.headers()).is_some()
        && !config.server.cors_origins.contains(&origin)
    {
        return Refusal::new(
            StatusCode::FORBIDDEN,
            Code::Forbidden,
            "requests carrying the session cookie must come from an allowed origin",
        )
        .into_response(Format::Json);
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; __Host-quire_refresh=tok; b=2".parse().unwrap(),
        );
        assert_eq!(read(&headers).as_deref(), Some("tok"));
        headers.insert(header::COOKIE, "__Host-quire_refresh=".parse().unwrap());
        assert_eq!(read(&headers), None);
    }
}
