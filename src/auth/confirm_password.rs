//! Asking a signed-in caller for their password again before something that outlives
//! the session: a new password, an API key.
//!
//! A stolen access token must not become a way to guess the password. Wrong current
//! passwords count as failed sign-ins of the account (the client's back-off and the
//! account's pause), and the session that sent them ends after three.

use super::{Auth, ClientInfo, Identity, login::MAX_PASSWORD_BYTES, password::Verified, validate};
use crate::{
    db::{self, sessions},
    error::{AppError, AppResult},
};

/// Wrong current passwords a session may send before it ends.
pub const SESSION_ENDS_AFTER: i32 = 3;

/// What the caller is told when their session ended for it.
const ENDED: &str = "too many wrong passwords; this session has ended, sign in again";

impl Auth {
    /// Checks that `password` is the caller's current one; `field` names the argument
    /// that carried it in the error.
    #[tracing::instrument(skip_all, fields(user_id = %who.user.id))]
    pub async fn confirm_password(
        &self,
        who: &Identity,
        password: &str,
        field: &'static str,
        client: &ClientInfo,
    ) -> AppResult<()> {
        let account = validate::email_key(&who.user.email);
        self.password_attempt_allowed(&account, client).await?;
        let verified = if password.len() > MAX_PASSWORD_BYTES {
            self.passwords.verify_dummy("").await?;
            Verified::No
        } else {
            self.passwords
                .verify(password, &who.user.password_hash)
                .await?
        };
        if verified != Verified::No {
            self.throttle.login_outcome(&account, client.ip, true);
            return Ok(());
        }
        self.throttle.login_outcome(&account, client.ip, false);
        crate::telemetry::auth_event("password_confirmation_failed");
        if let Some(session_id) = who.session_id() {
            let mut conn = self.db.acquire().await?;
            let count =
                sessions::wrong_password(&mut conn, session_id, SESSION_ENDS_AFTER, db::now())
                    .await?;
            if count.is_none_or(|n| n >= SESSION_ENDS_AFTER) {
                tracing::warn!(%session_id, "wrong current passwords; session ended");
                self.access_changed(who.user.id);
                return Err(AppError::Unauthenticated(ENDED));
            }
        }
        tracing::info!("wrong current password");
        Err(AppError::bad_input(
            field,
            "the current password is not correct",
        ))
    }
}
