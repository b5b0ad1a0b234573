//! Who is calling: the credentials of one request (an access token or an API key) and,
//! loaded lazily, their identity.
//!
//! The identity is found at most once per request, and only when a resolver asks for it,
//! so `login` costs nothing extra while `me` sees logout, revocation and password changes
//! at the very next request rather than when the token expires. A session's identity is
//! read from the database, or taken from [`SessionCache`](super::session_cache) when this
//! instance knows the session to be live.

use chrono::Duration;
use tokio::sync::OnceCell;
use uuid::Uuid;

use super::{Auth, Claims, api_key::Scopes, session_cache::LiveSession};
use crate::{
    db::{
        self, sessions,
        users::{Role, UserRow},
    },
    error::{AppError, AppResult},
};

/// How stale `lastUsedAt` may get before a request refreshes it.
const TOUCH_EVERY: Duration = Duration::seconds(60);

/// A signed-in caller.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The caller's account, as read from the database for this request.
    pub user: UserRow,
    /// What the caller proved themself with.
    pub credential: Credential,
}

/// How a caller signed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// An access token of this live session.
    Session(Uuid),
    /// This API key, with these scopes.
    ApiKey {
        /// The key's id.
        id: Uuid,
        /// What the key may do.
        scopes: Scopes,
    },
}

impl Identity {
    /// The caller's session, when they signed in with one rather than with an API key.
    pub fn session_id(&self) -> Option<Uuid> {
        match self.credential {
            Credential::Session(id) => Some(id),
            Credential::ApiKey { .. } => None,
        }
    }

    /// Whether the caller may use administrators' powers now: an administrator signed in
    /// with a session, or with a key that has the ADMIN scope.
    pub fn acts_as_admin(&self) -> bool {
        self.user.role == Role::Admin
            && match self.credential {
                Credential::Session(_) => true,
                Credential::ApiKey { scopes, .. } => scopes.admin,
            }
    }
}

/// The credentials one request presented. (No `Debug`: it holds secrets.)
enum Credentials {
    None,
    Bearer(String),
    ApiKey(String),
    /// An `Authorization` header that is not a bearer token, or an unreadable
    /// `X-API-Key`.
    Malformed,
    /// Both `Authorization` and `X-API-Key`: which one was meant is anyone's guess.
    Both,
}

/// The caller of one request. (No `Debug`: it holds the request's secret.)
pub struct Caller {
    credentials: Credentials,
    identity: OnceCell<Result<Identity, &'static str>>,
}

impl Caller {
    /// A caller from the `Authorization` header (a bearer access token or API key) and
    /// the `X-API-Key` header, if any. A header that is not valid text is passed as `""`.
    pub fn from_headers(authorization: Option<&str>, api_key: Option<&str>) -> Self {
        let credentials = match (authorization, api_key) {
            (Some(_), Some(_)) => Credentials::Both,
            (None, Some(key)) if key.trim().is_empty() => Credentials::Malformed,
            (None, Some(key)) => Credentials::ApiKey(key.trim().to_owned()),
            (None, None) => Credentials::None,
            (Some(value), None) => match value.trim().split_once(' ') {
                Some((scheme, token))
                    if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
                {
                    let token = token.trim().to_owned();
                    if token.starts_with(super::api_key::SECRET_PREFIX) {
                        Credentials::ApiKey(token)
                    } else {
                        Credentials::Bearer(token)
                    }
                }
                _ => Credentials::Malformed,
            },
        };
        Self {
            credentials,
            identity: OnceCell::new(),
        }
    }

    /// Whether the request presented an API key.
    pub fn presents_api_key(&self) -> bool {
        matches!(self.credentials, Credentials::ApiKey(_))
    }

    /// The verified claims of the access token, without consulting the database.
    pub fn claims(&self, auth: &Auth) -> AppResult<Claims> {
        match &self.credentials {
            Credentials::None => Err(AppError::Unauthenticated("authentication required")),
            Credentials::ApiKey(_) => Err(AppError::Forbidden(
                "this needs a signed-in session; API keys cannot do it".to_owned(),
            )),
            Credentials::Malformed => Err(AppError::Unauthenticated(
                "the Authorization header must be 'Bearer <token>', and X-API-Key a key",
            )),
            Credentials::Both => Err(AppError::Unauthenticated(
                "send one credential: either Authorization or X-API-Key, not both",
            )),
            Credentials::Bearer(token) => auth.access_tokens.verify(token),
        }
    }

    /// The signed-in caller, or UNAUTHENTICATED.
    pub async fn identity(&self, auth: &Auth) -> AppResult<&Identity> {
        // Boxed: awaited from nearly every resolver, its database work would otherwise
        // make every field's future, on every object, as large as itself.
        self.identity
            .get_or_try_init(|| Box::pin(self.resolve(auth)))
            .await?
            .as_ref()
            .map_err(|why| AppError::Unauthenticated(why))
    }

    /// Whether the identity this caller proved still holds: its session has not ended
    /// (though its access token may have expired since), its key has not been revoked,
    /// the account is active, and its role is the one it was. For connections that
    /// outlive their access token, which keep the identity they started with: a changed
    /// role must not leave an old one's sight on an open connection.
    pub async fn still_valid(&self, auth: &Auth) -> AppResult<bool> {
        let Some(Ok(who)) = self.identity.get() else {
            return Ok(false);
        };
        match who.credential {
            Credential::Session(id) => {
                let mut conn = auth.db.acquire().await?;
                Ok(sessions::find_with_user(&mut conn, id)
                    .await?
                    .is_some_and(|row| {
                        row.is_live_for(who.user.id, db::now()) && row.user.role == who.user.role
                    }))
            }
            Credential::ApiKey { id, .. } => auth.api_key_still_valid(id, &who.user).await,
        }
    }

    /// Finds who the credentials stand for (once per request), and names the user on the
    /// request's log lines.
    async fn resolve(&self, auth: &Auth) -> AppResult<Result<Identity, &'static str>> {
        let found = if let Credentials::ApiKey(secret) = &self.credentials {
            auth.identify_api_key(secret)
                .await?
                .map(|(user, key)| Identity {
                    user,
                    credential: Credential::ApiKey {
                        id: key.id,
                        scopes: Scopes::from_text(&key.scopes),
                    },
                })
        } else {
            match self.claims(auth) {
                Ok(claims) => load(auth, &claims).await?,
                Err(AppError::Unauthenticated(why)) => Err(why),
                Err(other) => return Err(other),
            }
        };
        if let Ok(who) = &found {
            tracing::Span::current().record("user_id", tracing::field::display(who.user.id));
        }
        Ok(found)
    }
}

async fn load(auth: &Auth, claims: &Claims) -> AppResult<Result<Identity, &'static str>> {
    const ENDED: &str = "this session has ended; sign in again";
    let now = db::now();
    let cache = &auth.live_sessions;
    let live = match cache.get(claims.sid, claims.sub, now) {
        Some(live) => live,
        None => {
            let ticket = cache.ticket();
            let mut conn = auth.db.acquire().await?;
            let Some(row) = sessions::find_with_user(&mut conn, claims.sid).await? else {
                return Ok(Err(ENDED));
            };
            if !row.is_live_for(claims.sub, now) {
                return Ok(Err(ENDED));
            }
            let live = LiveSession {
                session_id: row.session_id,
                user: row.user,
                expires_at: row.expires_at,
                last_used_at: row.last_used_at,
            };
            cache.keep(ticket, live.clone());
            live
        }
    };
    if live.last_used_at < now - TOUCH_EVERY {
        // Off the request's path: the caller does not wait for this write.
        cache.used(live.session_id, now);
        let db = auth.db.clone();
        let session_id = live.session_id;
        let task = async move {
            let touched = async {
                let mut conn = db.acquire().await?;
                sessions::touch(&mut conn, session_id, now, now - TOUCH_EVERY).await
            };
            if let Err(e) = touched.await {
                tracing::warn!(%session_id, error = %e, "could not record session use");
            }
        };
        crate::db::kept::detach(task);
    }
    Ok(Ok(Identity {
        user: live.user,
        credential: Credential::Session(live.session_id),
    }))
}
