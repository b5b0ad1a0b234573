//! Ending sessions: `logout`, `logoutAll`, `revokeSession`; and listing them.

use uuid::Uuid;

use super::{Auth, Caller, Identity};
use crate::{
    db::{
        self, api_keys,
        sessions::{self, RevokeReason, SessionRow},
        users,
    },
    error::{AppError, AppResult},
};

impl Auth {
    /// Ends the session a refresh token belongs to, or else the caller's current session.
    /// Idempotent: ending an ended session succeeds.
    #[tracing::instrument(skip_all)]
    pub async fn logout(&self, caller: &Caller, refresh_token: Option<&str>) -> AppResult<bool> {
        if caller.presents_api_key() {
            // A bad key is UNAUTHENTICATED; a good one may still not sign anyone out.
            caller.identity(self).await?;
            return Err(AppError::Forbidden(
                "this needs a signed-in session; API keys cannot do it".to_owned(),
            ));
        }
        let (session_id, user_id) = match refresh_token {
            Some(token) => {
                let token = self
                    .refresh_tokens
                    .decode(token)
                    .ok_or(AppError::Unauthenticated("invalid refresh token"))?;
                let mut conn = self.db.acquire().await?;
                match sessions::find(&mut conn, token.session_id).await? {
                    Some(s) => (s.id, s.user_id),
                    None => return Ok(true),
                }
            }
            // A signed access token is enough, even for a session that has already
            // ended, so that logging out twice is not an error.
            None => {
                let claims = caller.claims(self)?;
                (claims.sid, claims.sub)
            }
        };
        let mut conn = self.db.acquire().await?;
        if sessions::revoke(
            &mut conn,
            session_id,
            user_id,
            RevokeReason::Logout,
            db::now(),
        )
        .await?
        {
            tracing::info!(%session_id, %user_id, "signed out");
            self.access_changed(user_id);
        }
        Ok(true)
    }

    /// Ends every live session of the caller, the current one included, and with
    /// `revoke_api_keys` every API key of the account too, in one transaction. Returns how
    /// many sessions ended.
    #[tracing::instrument(skip_all, fields(user_id = %who.user.id))]
    pub async fn logout_all(&self, who: &Identity, revoke_api_keys: bool) -> AppResult<u64> {
        let now = db::now();
        let mut tx = self.db.begin().await?;
        // Held alone, so that a sign-in or a key creation racing this either finishes
        // first, and then ends here, or waits and comes after.
        users::find_and_hold(&mut tx, who.user.id, users::Hold::Exclusive).await?;
        let n =
            sessions::revoke_all(&mut tx, who.user.id, None, RevokeReason::LogoutAll, now).await?;
        let keys = if revoke_api_keys {
            api_keys::revoke_all(&mut tx, who.user.id, now).await?
        } else {
            0
        };
        tx.commit().await?;
        tracing::info!(sessions = n, api_keys = keys, "signed out everywhere");
        self.access_changed(who.user.id);
        Ok(n)
    }

    /// Ends one of the caller's own sessions.
    #[tracing::instrument(skip_all, fields(user_id = %who.user.id, %session_id))]
    pub async fn revoke_session(&self, who: &Identity, session_id: Uuid) -> AppResult<bool> {
        let mut conn = self.db.acquire().await?;
        match sessions::find(&mut conn, session_id).await? {
            Some(s) if s.user_id == who.user.id => {
                sessions::revoke(&mut conn, s.id, s.user_id, RevokeReason::Revoked, db::now())
                    .await?;
                self.access_changed(s.user_id);
                Ok(true)
            }
            _ => Err(AppError::NotFound("no such session".to_owned())),
        }
    }

    /// The caller's live sessions, newest first.
    pub async fn sessions(&self, who: &Identity) -> AppResult<Vec<SessionRow>> {
        let mut conn = self.db.acquire().await?;
        Ok(sessions::list_live(&mut conn, who.user.id, db::now()).await?)
    }
}
