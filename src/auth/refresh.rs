//! Exchanging a refresh token for new tokens: rotation, the reuse grace window, and
//! theft detection.

use super::{Auth, Authenticated, refresh_token::RefreshToken};
use crate::{
    db::{
        self,
        sessions::{self, RevokeReason},
        users::{self, UserRow},
    },
    error::{AppError, AppResult},
};

const INVALID: &str = "invalid or expired refresh token";
const REUSED: &str = "this refresh token was already used; the session has been ended for safety";

impl Auth {
    /// Retires `token` and returns its successor with a new access token.
    ///
    /// - The live token is rotated atomically: one conditional UPDATE succeeds per token.
    /// - The token just retired, presented again within the grace window, gets the same
    ///   successor, so concurrent refreshes from several tabs or a retry all succeed.
    /// - Any other genuine token of the session is a replay of a stolen token: the
    ///   session ends, and its access tokens stop working at their next request.
    #[tracing::instrument(skip_all, fields(session_id))]
    pub async fn refresh(&self, token: &str) -> AppResult<Authenticated> {
        let presented = self
            .refresh_tokens
            .decode(token)
            .ok_or(AppError::Unauthenticated(INVALID))?;
        tracing::Span::current()
            .record("session_id", tracing::field::display(presented.session_id));
        let presented_hash = presented.hash();
        let successor = self.refresh_tokens.successor(&presented);
        let successor_hash = successor.hash();
        // Compared as a signed duration: a rotation stamped slightly in the future by an
        // instance whose clock runs ahead still counts as recent.
        let grace = chrono::Duration::from_std(self.config.refresh_reuse_grace)
            .unwrap_or(chrono::Duration::MAX);
        // One transaction: the user is read (and held) before the token is rotated, so
        // that nothing can retire the token and then fail, leaving the client holding a
        // token that a retry would present as stolen.
        let mut tx = self.db.begin().await?;

        // Two rounds at most: a rotation lost to a concurrent request is re-read once,
        // and then the token is the previous one.
        for _ in 0..2 {
            let Some(session) = sessions::find(&mut tx, presented.session_id).await? else {
                return Err(AppError::Unauthenticated(INVALID));
            };
            let now = db::now();
            if !session.is_live(now) {
                return Err(AppError::Unauthenticated(INVALID));
            }
            if session.token_hash == presented_hash {
                let user = active_user(&mut tx, session.user_id).await?;
                let expires_at = self.refresh_expiry(now, session.absolute_expires_at);
                let rotated = sessions::rotate(
                    &mut tx,
                    session.id,
                    &presented_hash,
                    &successor_hash,
                    now,
                    expires_at,
                )
                .await?;
                if rotated {
                    tx.commit().await?;
                    return self.reissue(user, &successor);
                }
                continue;
            }
            // Its successor may have been derived by an instance on the previous key.
            let given = self
                .refresh_tokens
                .successors(&presented)
                .find(|s| s.hash() == session.token_hash);
            let just_retired = session.previous_token_hash.as_deref() == Some(&presented_hash);
            if let Some(given) = given.filter(|_| just_retired)
                && now - session.rotated_at <= grace
            {
                let user = active_user(&mut tx, session.user_id).await?;
                tx.commit().await?;
                return self.reissue(user, &given);
            }
            sessions::revoke(
                &mut tx,
                session.id,
                session.user_id,
                RevokeReason::RefreshTokenReuse,
                now,
            )
            .await?;
            tx.commit().await?;
            tracing::warn!(
                user_id = %session.user_id,
                "retired refresh token presented again; session revoked"
            );
            crate::telemetry::auth_event("refresh_token_reused");
            self.access_changed(session.user_id);
            return Err(AppError::Unauthenticated(REUSED));
        }
        Err(AppError::Unauthenticated(INVALID))
    }

    fn reissue(&self, user: UserRow, refresh: &RefreshToken) -> AppResult<Authenticated> {
        crate::telemetry::auth_event("refreshed");
        tracing::info!(user_id = %user.id, session_id = %refresh.session_id, "session refreshed");
        Ok(Authenticated {
            access_token: self
                .access_tokens
                .issue(user.id, refresh.session_id, user.role)?,
            expires_in: self.access_tokens.ttl_secs(),
            refresh_token: self.refresh_tokens.encode(refresh),
            session_id: refresh.session_id,
            user,
        })
    }
}

/// The session's user, held until the transaction ends, if the account is active.
async fn active_user(tx: &mut db::DbTx, user_id: uuid::Uuid) -> AppResult<UserRow> {
    users::find_and_hold(tx, user_id, users::Hold::Share)
        .await?
        .filter(|u| u.is_active())
        .ok_or(AppError::Unauthenticated(INVALID))
}
