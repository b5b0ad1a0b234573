//! The refresh cookie of browser sessions: its name, its attributes and what a request
//! brought of it. The HTTP layer reads it from requests and checks their origin
//! (`http/cookies.rs`); the account mutations set and clear it.

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
