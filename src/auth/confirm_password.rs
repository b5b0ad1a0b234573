//! Asking a signed-in caller for their password again before something that outlives
//! the session: a new password, an API key.
//!
//! A stolen access token must not become a way to guess the password. Wrong current
//! passwords count as failed sign-ins of the account (the client's back-off and the
//! account's pause), and the session that sent them ends after three. Both counts are
//! taken before the password is checked and given back if it was right, so that checks
//! sent at once cannot make more guesses together than one after another.

use tracing::Instrument;

use super::{Auth, ClientInfo, Identity, login::MAX_PASSWORD_BYTES, password::Verified, validate};
use crate::{
    db::{self, sessions},
    error::{AppError, AppResult},
};

/// Wrong current passwords a session may send before it ends.
pub const SESSION_ENDS_AFTER: i32 = 3;

/// How long a check taken ahead counts for a session without being settled: past it, its
/// request is taken to have died (checks settle in well under a second).
const CHECK_COUNTS_FOR: chrono::Duration = chrono::Duration::seconds(60);

/// What the caller is told when their session ended for it.
const ENDED: &str = "too many wrong passwords; this session has ended, sign in again";

impl Auth {
    /// Checks that `password` is the caller's current one; `field` names the argument
    /// that carried it in the error.
    ///
    /// The check runs in a task of its own, so that a client that goes away once its
    /// check has been counted cannot leave the count unsettled.
    pub async fn confirm_password(
        &self,
        who: &Identity,
        password: &str,
        field: &'static str,
        client: &ClientInfo,
    ) -> AppResult<()> {
        let (this, who, password, client) = (
            self.clone(),
            who.clone(),
            password.to_owned(),
            client.clone(),
        );
        let check = async move {
            this.check_current_password(&who, &password, field, &client)
                .await
        };
        tokio::spawn(check.in_current_span())
            .await
            .map_err(AppError::internal)?
    }

    #[tracing::instrument(skip_all, fields(user_id = %who.user.id))]
    async fn check_current_password(
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
            let now = db::now();
            let stale = now - CHECK_COUNTS_FOR;
            if !sessions::take_password_check(&mut conn, id, SESSION_ENDS_AFTER, now, stale).await?
            {
                let live = sessions::find(&mut conn, id)
                    .await?
                    .is_some_and(|s| s.is_live(now));
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
        let counted = self.throttle.login_attempt(&account, client.ip);
        let verified = if password.len() > MAX_PASSWORD_BYTES {
            self.passwords.verify_dummy("").await.map(|()| Verified::No)
        } else {
            self.passwords
                .verify(password, &who.user.password_hash)
                .await
        };
        let right = match &verified {
            Ok(Verified::Yes | Verified::YesButRehash) => Some(true),
            Ok(Verified::No) => Some(false),
            Err(_) => None,
        };
        // A wrong password stays counted; anything else is taken back.
        self.throttle
            .login_outcome(&account, client.ip, counted, right);
        let ended = match session {
            Some(id) => {
                let mut tx = self.db.begin().await?;
                let wrong = right == Some(false);
                let ended = sessions::settle_password_check(
                    &mut tx,
                    id,
                    wrong,
                    SESSION_ENDS_AFTER,
                    db::now(),
                )
                .await?;
                tx.commit().await?;
                ended
            }
            None => false,
        };
        if verified? != Verified::No {
            return Ok(());
        }
        crate::telemetry::auth_event("password_confirmation_failed");
        if ended {
            tracing::warn!("wrong current passwords; session ended");
            self.access_changed(who.user.id);
            return Err(AppError::Unauthenticated(ENDED));
        }
        tracing::info!("wrong current password");
        Err(match waived {
            Some(left) => self.throttle.paused_refusal(left),
            None => AppError::bad_input(field, "the current password is not correct"),
        })
    }
}
