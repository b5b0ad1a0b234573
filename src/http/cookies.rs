//! Browser sessions: the refresh token in an HttpOnly cookie, out of reach of page
//! scripts, and the checks that keep other sites from using it.

use axum::{
    extract::Request,
    http::{HeaderMap, StatusCode, header},
    middleware::Next,
    response::Response,
};

/// The cookie's name. The `__Host-` prefix makes browsers insist on `Secure`, `Path=/`
/// and no `Domain`, so no other host can set or read it.
pub const REFRESH_COOKIE: &str = "__Host-quire_refresh";

/// What a request brings in the way of a browser session: whether cookie mode is on,
/// and the refresh token its cookie holds.
#[derive(Debug, Clone, Default)]
pub struct BrowserSession {
    /// Cookie mode (`QUIRE_REFRESH_COOKIE`).
    pub enabled: bool,
    /// The refresh cookie's value, if sent.
    pub token: Option<String>,
}

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

/// A `Set-Cookie` value holding `token` for `max_age` seconds.
pub fn set(token: &str, max_age: u64) -> String {
    format!(
        "{REFRESH_COOKIE}={token}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age={max_age}"
    )
}

/// A `Set-Cookie` value that removes the cookie.
pub fn clear() -> String {
    format!("{REFRESH_COOKIE}=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0")
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
        && !config.cors_origins.contains(&origin)
    {
        return super::limits::refusal(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "requests carrying the session cookie must come from an allowed origin",
        );
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
