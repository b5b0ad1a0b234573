//! Asking a signed-in caller for their password again before something that outlives
//! the session: a new password, an API key.
//!
//! A stolen access token must not become a way to guess the password. Wrong current
//! passwords count as failed sign-ins of the account (the client's back-off and the
//! account's pause), and the session that sent them ends after three. Both counts are
//! taken before the password is checked and given back if it was right, so that checks
//! sent at once cannot make more guesses together than one after another: a session's
//! wrong passwords and its checks in flight stay under three.
//!
//! A check taken must be settled. It runs to its end in a task of its own, whether or not
//! its client waits, and within a time bound well inside the time a taken check counts
//! for; past that, a check whose process died no longer counts.

use super::{Auth, ClientInfo, Identity, login::MAX_PASSWORD_BYTES, password::Verified, validate};
use crate::{
    db::{
        self,
        sessions::{self, Settled},
    },
    error::{AppError, AppResult},
};

/// Wrong current passwords a session may send before it ends.
pub const SESSION_ENDS_AFTER: i32 = 3;

/// How long a check taken ahead counts for a session without being settled: past it, its
/// request is taken to have died (checks settle in well under a second).
const CHECK_COUNTS_FOR: chrono::Duration = chrono::Duration::seconds(60);

/// How long a check may take, waiting for its turn at the hashes included.
const CHECK_TAKES_AT_MOST: std::time::Duration = std::time::Duration::from_secs(20);

/// What the caller is told when their session ends for wrong passwords.
const ENDED: &str = "too many wrong passwords; this session has ended, sign in again";

/// What the caller is told when their session had ended before the check was judged.
const GONE: &str = "this session has ended; sign in again";

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
        crate::db::kept::detach(check)
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
        // Counted at once, so that checks sent together all see each other.
        let (counted, waived) = self.password_attempt(&account, client).await?;
        let session = who.session_id();
        if let Some(id) = session {
            let mut conn = self.db.acquire().await?;
            let now = db::now();
            let stale = now - CHECK_COUNTS_FOR;
            if !sessions::take_password_check(&mut conn, id, SESSION_ENDS_AFTER, now, stale).await?
            {
                self.throttle
                    .login_outcome(&account, client.ip, counted, None)
                    .await;
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
                    AppError::Unauthenticated(GONE)
                });
            }
        }
        let verify = async {
            if password.len() > MAX_PASSWORD_BYTES {
                self.passwords.verify_dummy("").await.map(|()| Verified::No)
            } else {
                self.passwords
                    .verify(password, &who.user.password_hash)
                    .await
            }
        };
        // Bounded well within the time a check counts for, the hashes waiting their turn
        // included: a check is always settled while it still counts.
        let verified = tokio::time::timeout(CHECK_TAKES_AT_MOST, verify)
            .await
            .unwrap_or_else(|_| {
                Err(AppError::RateLimited {
                    message: "the server is busy checking passwords; try again shortly".to_owned(),
                    retry_after: 5,
                })
            });
        let right = match &verified {
            Ok(Verified::Yes | Verified::YesButRehash) => Some(true),
            Ok(Verified::No) => Some(false),
            Err(_) => None,
        };
        // A wrong password stays counted; anything else is taken back.
        self.throttle
            .login_outcome(&account, client.ip, counted, right)
            .await;
        let settled = match session {
            Some(id) => {
                let mut tx = self.db.begin().await?;
                let wrong = right == Some(false);
                let settled = sessions::settle_password_check(
                    &mut tx,
                    id,
                    wrong,
                    SESSION_ENDS_AFTER,
                    db::now(),
                )
                .await?;
                tx.commit().await?;
                settled
            }
            None => Settled::Live,
        };
        match settled {
            Settled::Live => {}
            Settled::EndsNow => {
                crate::telemetry::auth_event("password_confirmation_failed");
                tracing::warn!("wrong current passwords; session ended");
                self.access_changed(who.user.id);
                return Err(AppError::Unauthenticated(ENDED));
            }
            // Whatever the verdict: a session that ended meanwhile learns nothing from it.
            Settled::Ended => return Err(AppError::Unauthenticated(GONE)),
        }
        if verified? != Verified::No {
            return Ok(());
        }
        crate::telemetry::auth_event("password_confirmation_failed");
        tracing::info!("wrong current password");
        Err(match waived {
            Some(left) => self.throttle.paused_refusal(left),
            None => AppError::bad_input(field, "the current password is not correct"),
        })
    }
}
