//! Asking a signed-in caller for their password again before something that outlives
//! the session: a new password, an API key.
//!
//! A stolen access token must not become a way to guess the password. Wrong current
//! passwords count as failed sign-ins of the account (the client's back-off and the
//! account's pause), and the session that sent them ends after three. Both counts are
//! taken before the password is checked and given back if it was right, so that checks
//! sent at once cannot make more guesses together than one after another.

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
        let waived = self.password_attempt_allowed(&account, client).await?;
        let session = who.session_id();
        if let Some(id) = session {
            let mut conn = self.db.acquire().await?;
            if !sessions::take_password_check(&mut conn, id, SESSION_ENDS_AFTER).await? {
                let live = sessions::find(&mut conn, id)
                    .await?
                    .is_some_and(|s| s.is_live(db::now()));
                return Err(if live {
                    // Its last checks are still being made.
                    AppError::RateLimited {
                        message: "too many password checks at once on this session".to_owned(),
                        retry_after: 1,
                    }
                } else {
                    AppError::Unauthenticated("this session has ended; sign in again")
                });
            }
        }
        self.throttle.login_attempt(&account, client.ip);
        let verified = if password.len() > MAX_PASSWORD_BYTES {
            self.passwords.verify_dummy("").await.map(|()| Verified::No)
        } else {
            self.passwords
                .verify(password, &who.user.password_hash)
                .await
        };
        let give_back = |judged: Option<bool>| async move {
            self.throttle.login_outcome(&account, client.ip, judged);
            if let Some(id) = session {
                let mut conn = self.db.acquire().await?;
                sessions::give_back_password_check(&mut conn, id).await?;
            }
            AppResult::Ok(())
        };
        match verified {
            Err(e) => {
                give_back(None).await?;
                return Err(e);
            }
            Ok(Verified::Yes | Verified::YesButRehash) => return give_back(Some(true)).await,
            Ok(Verified::No) => {}
        }
        // The failure counted ahead stays counted.
        crate::telemetry::auth_event("password_confirmation_failed");
        if let Some(id) = session {
            let mut conn = self.db.acquire().await?;
            if sessions::end_if_out_of_password_checks(&mut conn, id, SESSION_ENDS_AFTER, db::now())
                .await?
            {
                tracing::warn!(session_id = %id, "wrong current passwords; session ended");
                self.access_changed(who.user.id);
                return Err(AppError::Unauthenticated(ENDED));
            }
        }
        tracing::info!("wrong current password");
        Err(waived
            .unwrap_or_else(|| AppError::bad_input(field, "the current password is not correct")))
    }
}
