//! Authentication: passwords, tokens, sessions and the caller's identity.
//!
//! One file per operation — [`register`], [`login`], [`refresh`], [`logout`],
//! [`change_password`] — all methods of [`Auth`], the service the GraphQL resolvers call.

pub mod access_token;
pub mod admin;
pub mod api_key;
pub mod caller;
pub mod change_password;
pub mod confirm_password;
pub mod cookie;
pub mod email_keys;
pub mod login;
pub mod logout;
pub mod password;
pub mod refresh;
pub mod refresh_token;
pub mod register;
pub mod session_cache;
pub mod throttle;
pub mod validate;

use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use access_token::{AccessTokens, Claims};
pub use caller::{Caller, Credential, Identity};
pub use password::Passwords;
pub use refresh_token::RefreshTokens;

use crate::{
    config::{AuthConfig, Secret},
    db::{
        self, Db, DbTx,
        sessions::{self, NewSession},
        users::UserRow,
    },
    error::AppResult,
    events::{Event, Events},
};

/// The authentication service.
#[derive(Clone)]
pub struct Auth {
    /// Where accounts and sessions are kept.
    pub db: Db,
    /// Issues and verifies JWT access tokens.
    pub access_tokens: AccessTokens,
    /// Makes, encodes and checks refresh tokens.
    pub refresh_tokens: RefreshTokens,
    /// Hashes and verifies passwords on the blocking thread pool.
    pub passwords: Passwords,
    /// Brute-force protection.
    pub throttle: throttle::Throttle,
    /// Token and session lifetimes.
    pub config: AuthConfig,
    /// Where ended sessions and keys are announced.
    pub events: Events,
    /// The sessions this instance knows to be live, forgotten as they change.
    pub live_sessions: std::sync::Arc<session_cache::SessionCache>,
}

/// What the client told us about itself, kept with its session.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// The client's address: the socket peer, or what a trusted proxy forwarded.
    pub ip: Option<std::net::IpAddr>,
    /// The request's `User-Agent` header; a new session keeps its first 512 characters.
    pub user_agent: Option<String>,
}

/// A signed-in session's credentials, as returned by register, login and refresh.
#[derive(Clone)]
pub struct Authenticated {
    /// A signed JWT to send as `Authorization: Bearer <token>`.
    pub access_token: String,
    /// Lifetime of the access token in seconds.
    pub expires_in: i64,
    /// The encoded refresh token for the client; the server keeps only its SHA-256 hash.
    pub refresh_token: String,
    /// The session the tokens belong to.
    pub session_id: Uuid,
    /// The signed-in user's account.
    pub user: UserRow,
}

impl std::fmt::Debug for Authenticated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticated")
            .field("session_id", &self.session_id)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Longest user agent kept with a session.
const MAX_USER_AGENT: usize = 512;
/// How recently an account must have signed in from a network for clients there to pass
/// the account's pause after failed sign-ins.
const KNOWN_NETWORK_FOR: chrono::Duration = chrono::Duration::days(30);

impl Auth {
    /// Builds the service: access tokens are signed with `secret`, and the refresh-token
    /// keys are derived from it; tokens made with the configured previous key are still
    /// accepted.
    pub fn new(
        db: Db,
        secret: &Secret,
        config: AuthConfig,
        throttle: crate::config::ThrottleConfig,
        events: Events,
    ) -> Self {
        let live_sessions = std::sync::Arc::new(session_cache::SessionCache::default());
        events.watch_access(live_sessions.clone());
        Self {
            events,
            live_sessions,
            throttle: throttle::Throttle::for_db(throttle, &db),
            db,
            access_tokens: AccessTokens::new(
                secret,
                config.jwt_previous_secret.as_ref(),
                config.access_token_ttl,
            ),
            refresh_tokens: RefreshTokens::new(secret, config.jwt_previous_secret.as_ref()),
            passwords: Passwords::new(),
            config,
        }
    }

    /// Tells the connections that rely on `user_id`'s sessions or keys to check them again.
    fn access_changed(&self, user_id: Uuid) {
        self.events.publish(Event::AccessChanged { user_id });
    }

    /// Counts a password attempt on `account` (an [`validate::email_key`]) from `client`
    /// as failed before the password is checked, so that attempts sent together all see
    /// each other, and refuses it (taking it back) while it must wait: after its own
    /// failures to the account, or while the account is paused after failures from
    /// anywhere, unless the account signed in from the client's network in the last 30
    /// days (and since it last changed). An attacker cannot lock the owner out of the
    /// places they sign in from.
    ///
    /// Returns what was counted, to settle with [`throttle::Throttle::login_outcome`], and
    /// how long the pause that was waived for such a client still lasts, if it was:
    /// should its password be wrong, it gets the pause's refusal rather than the usual
    /// answer. While the account is paused, every refusal is the pause's, so that neither
    /// the answer nor its wording tells whether the account exists or was used from
    /// there. (Its timing does: a known client's password is checked.)
    async fn password_attempt(
        &self,
        account: &str,
        client: &ClientInfo,
    ) -> AppResult<(throttle::Counted, Option<std::time::Duration>)> {
        let attempt = self.throttle.login_attempt(account, client.ip).await?;
        let refusal = match (attempt.paused, attempt.backing_off) {
            (None, None) => return Ok((attempt.counted, None)),
            (None, Some(wait)) => self.throttle.backing_off_refusal(wait),
            (Some(left), backing_off) => {
                let known = match client.ip {
                    None => Ok(false),
                    Some(ip) => self.signed_in_from(account, ip).await,
                };
                match known {
                    Ok(true) if backing_off.is_none() => {
                        tracing::info!(
                            "account paused after failed sign-ins; passed from a known network"
                        );
                        return Ok((attempt.counted, Some(left)));
                    }
                    Ok(_) => self.throttle.paused_refusal(left),
                    Err(e) => e,
                }
            }
        };
        self.throttle
            .login_outcome(account, client.ip, attempt.counted, None)
            .await;
        Err(refusal)
    }

    /// Whether `account` signed in from `ip`'s network in the last 30 days.
    async fn signed_in_from(&self, account: &str, ip: std::net::IpAddr) -> AppResult<bool> {
        let mut conn = self.db.acquire().await?;
        let network = throttle::address_key(Some(ip));
        let since = db::now() - KNOWN_NETWORK_FOR;
        Ok(sessions::signed_in_from(&mut conn, account, &network, since).await?)
    }

    /// Starts a session for `user` inside `tx` and issues its first tokens.
    async fn start_session(
        &self,
        tx: &mut DbTx,
        user: UserRow,
        client: &ClientInfo,
    ) -> AppResult<Authenticated> {
        let now = db::now();
        let session_id = Uuid::now_v7();
        let token = self.refresh_tokens.generate(session_id);
        let absolute_expires_at = now + self.config.session_max_age;
        let user_agent = client
            .user_agent
            .as_deref()
            .map(|ua| truncate(ua, MAX_USER_AGENT));
        sessions::insert(
            &mut *tx,
            &NewSession {
                id: session_id,
                user_id: user.id,
                token_hash: &token.hash(),
                now,
                expires_at: self.refresh_expiry(now, absolute_expires_at),
                absolute_expires_at,
                user_agent,
                sign_in_network: client
                    .ip
                    .map(|ip| throttle::address_key(Some(ip)))
                    .as_deref(),
            },
        )
        .await?;
        Ok(Authenticated {
            access_token: self.access_tokens.issue(user.id, session_id, user.role)?,
            expires_in: self.access_tokens.ttl_secs(),
            refresh_token: self.refresh_tokens.encode(&token),
            session_id,
            user,
        })
    }

    /// When a refresh token issued at `now` expires: after the refresh TTL, but never
    /// after the session's absolute limit.
    fn refresh_expiry(&self, now: DateTime<Utc>, absolute: DateTime<Utc>) -> DateTime<Utc> {
        (now + self.config.refresh_token_ttl).min(absolute)
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
