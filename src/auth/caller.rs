//! Who is calling: the bearer token of one request and, loaded lazily, their identity.
//!
//! The identity is read from the database at most once per request, and only when a
//! resolver asks for it, so `login` costs nothing extra while `me` sees logout, revocation
//! and password changes at the very next request rather than when the token expires.

use chrono::Duration;
use tokio::sync::OnceCell;
use uuid::Uuid;

use super::{Auth, Claims};
use crate::{
    db::{self, sessions, users::UserRow},
    error::{AppError, AppResult},
};

/// How stale `lastUsedAt` may get before a request refreshes it.
const TOUCH_EVERY: Duration = Duration::seconds(60);

/// A signed-in caller.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The caller's account, as read from the database for this request.
    pub user: UserRow,
    /// The session the access token names, found live and unexpired.
    pub session_id: Uuid,
}

/// The credentials one request presented.
#[derive(Debug)]
enum Credentials {
    None,
    Bearer(String),
    /// An `Authorization` header that is not a bearer token.
    Malformed,
}

/// The caller of one request.
#[derive(Debug)]
pub struct Caller {
    credentials: Credentials,
    identity: OnceCell<Result<Identity, &'static str>>,
}

impl Caller {
    /// A caller from the value of the `Authorization` header, if any.
    pub fn from_authorization(header: Option<&str>) -> Self {
        let credentials = match header {
            None => Credentials::None,
            Some(value) => match value.trim().split_once(' ') {
                Some((scheme, token))
                    if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
                {
                    Credentials::Bearer(token.trim().to_owned())
                }
                _ => Credentials::Malformed,
            },
        };
        Self {
            credentials,
            identity: OnceCell::new(),
        }
    }

    /// The verified claims of the access token, without consulting the database.
    pub fn claims(&self, auth: &Auth) -> AppResult<Claims> {
        match &self.credentials {
            Credentials::None => Err(AppError::Unauthenticated("authentication required")),
            Credentials::Malformed => Err(AppError::Unauthenticated(
                "the Authorization header must be 'Bearer <access token>'",
            )),
            Credentials::Bearer(token) => auth.access_tokens.verify(token),
        }
    }

    /// The signed-in caller, or UNAUTHENTICATED.
    pub async fn identity(&self, auth: &Auth) -> AppResult<&Identity> {
        let loaded = self
            .identity
            .get_or_try_init(|| async {
                let claims = match self.claims(auth) {
                    Ok(c) => c,
                    Err(AppError::Unauthenticated(why)) => return Ok(Err(why)),
                    Err(other) => return Err(other),
                };
                load(auth, &claims).await
            })
            .await?;
        loaded
            .as_ref()
            .map_err(|why| AppError::Unauthenticated(why))
    }
}

async fn load(auth: &Auth, claims: &Claims) -> AppResult<Result<Identity, &'static str>> {
    const ENDED: &str = "this session has ended; sign in again";
    let mut conn = auth.db.acquire().await?;
    let Some(row) = sessions::find_with_user(&mut conn, claims.sid).await? else {
        return Ok(Err(ENDED));
    };
    let now = db::now();
    if row.user.id != claims.sub
        || row.revoked_at.is_some()
        || now >= row.expires_at
        || !row.user.is_active()
    {
        return Ok(Err(ENDED));
    }
    if row.last_used_at < now - TOUCH_EVERY {
        // Off the request's path: the caller does not wait for this write.
        let db = auth.db.clone();
        let session_id = row.session_id;
        tokio::spawn(async move {
            let touched = async {
                let mut conn = db.acquire().await?;
                sessions::touch(&mut conn, session_id, now, now - TOUCH_EVERY).await
            };
            if let Err(e) = touched.await {
                tracing::warn!(%session_id, error = %e, "could not record session use");
            }
        });
    }
    Ok(Ok(Identity {
        user: row.user,
        session_id: row.session_id,
    }))
}
