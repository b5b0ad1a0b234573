//! Signing in with email and password.

use super::{Auth, Authenticated, ClientInfo, password::Verified, validate};
use crate::{
    db::{self, users, users::UserRow},
    error::{AppError, AppResult},
};

/// The one answer to every failed login, whether the email is unknown or the password
/// wrong, so that the response does not reveal which accounts exist.
pub const LOGIN_FAILED: &str = "invalid email or password";

/// Passwords longer than this are refused without hashing: no account can have one.
pub(super) const MAX_PASSWORD_BYTES: usize = 4 * super::password::MAX_LEN;

impl Auth {
    /// Verifies the credentials and starts a new session.
    ///
    /// The attempt runs in a task of its own: it is counted as failed before the password
    /// is checked, and a client that goes away meanwhile (or a request cut off by the
    /// timeout) must not leave that count unsettled, which would let an attacker push an
    /// account towards its pause with attempts that were refused anyway.
    #[tracing::instrument(skip_all)]
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        client: &ClientInfo,
    ) -> AppResult<Authenticated> {
        let (this, email, password, client) = (
            self.clone(),
            email.to_owned(),
            password.to_owned(),
            client.clone(),
        );
        let attempt = async move { this.sign_in(&email, &password, &client).await };
        crate::db::kept::detach(attempt)
            .await
            .map_err(AppError::internal)?
    }

    async fn sign_in(
        &self,
        email: &str,
        password: &str,
        client: &ClientInfo,
    ) -> AppResult<Authenticated> {
        let email_key = validate::email_key(email);
        // Counted as failed before the check, so that attempts sent together see each
        // other; a success resets the counts, and an error of the server's own (an
        // overloaded database, say) is taken back.
        let (counted, waived) = self.password_attempt(&email_key, client).await?;
        let settle = async |judged| {
            self.throttle
                .login_outcome(&email_key, client.ip, counted, judged)
                .await;
        };
        // A right password is settled while its session is written, not after: the
        // answer waits for both, so that the next attempt sees the counts reset.
        let mut on_right_password = Some(settle(Some(true)));
        let outcome = self
            .check_credentials(&email_key, password, client, &mut on_right_password)
            .await;
        let settled = on_right_password.is_none();
        match outcome {
            Ok(signed_in) => {
                if !settled {
                    settle(Some(true)).await;
                }
                crate::telemetry::auth_event("login_succeeded");
                Ok(signed_in)
            }
            Err(AppError::Unauthenticated(why)) => {
                settle(Some(false)).await;
                crate::telemetry::auth_event("login_failed");
                Err(match waived {
                    Some(left) => self.throttle.paused_refusal(left),
                    None => AppError::Unauthenticated(why),
                })
            }
            Err(other) => {
                // Unless the password was right and the account active, and only the
                // session's own writes failed: it was no guess, and the counts are reset.
                if !settled {
                    settle(None).await;
                }
                Err(other)
            }
        }
    }

    /// Checks the credentials and starts the session. Once the password is known to be
    /// right and the account still has it and is active, `on_right_password` is taken and
    /// run alongside the session's writes.
    async fn check_credentials(
        &self,
        email_key: &str,
        password: &str,
        client: &ClientInfo,
        on_right_password: &mut Option<impl Future<Output = ()>>,
    ) -> AppResult<Authenticated> {
        if password.len() > MAX_PASSWORD_BYTES {
            // No account can have such a password. Refuse it before looking the email up,
            // after the same work as any other failure, so that neither the answer nor its
            // timing depends on whether the email exists.
            self.passwords.verify_dummy("").await?;
            tracing::info!("login refused: password too long");
            return Err(AppError::Unauthenticated(LOGIN_FAILED));
        }
        let user = {
            let mut conn = self.db.acquire().await?;
            users::find_by_email_key(&mut conn, email_key).await?
        };
        let Some(user) = user else {
            // Spend the same time as a real check, so timing does not tell either.
            self.passwords.verify_dummy(password).await?;
            tracing::info!("login refused: unknown email");
            return Err(AppError::Unauthenticated(LOGIN_FAILED));
        };
        let mut user = user;
        // The password is checked outside any transaction (it takes a while), and the
        // session starts only if, at commit, the account still has the hash it was checked
        // against and is still active: a password change or deactivation racing this
        // sign-in either waits for it and then ends its session, or wins and refuses it.
        // A hash that changed meanwhile is checked once more (another sign-in may only
        // have upgraded it).
        for _ in 0..2 {
            let verified = self.passwords.verify(password, &user.password_hash).await?;
            if verified == Verified::No {
                tracing::info!(user_id = %user.id, "login refused: wrong password");
                return Err(AppError::Unauthenticated(LOGIN_FAILED));
            }
            // Checked after the password, so that the answer and its timing are those of
            // any other failure.
            if !user.is_active() {
                tracing::info!(user_id = %user.id, "login refused: account deactivated");
                return Err(AppError::Unauthenticated(LOGIN_FAILED));
            }
            let new_hash = match verified {
                Verified::YesButRehash => Some(self.passwords.hash(password).await?),
                _ => None,
            };
            let opened = self
                .open_session(&user, new_hash, client, on_right_password)
                .await?;
            match opened {
                Opened::Session(signed_in) => return Ok(signed_in),
                Opened::HashChanged(held) => user = held,
                Opened::Deactivated => return Err(AppError::Unauthenticated(LOGIN_FAILED)),
            }
        }
        tracing::info!(user_id = %user.id, "login refused: the password keeps changing");
        Err(AppError::Unauthenticated(LOGIN_FAILED))
    }

    /// Starts a session for `user`, whose password was just checked against the hash it
    /// holds, in one transaction: only if, at commit, the account still has that hash and
    /// is still active. `new_hash`, if any, replaces the hash in the same transaction.
    /// Once both are known, `on_right_password` is taken and run alongside the writes.
    async fn open_session(
        &self,
        user: &UserRow,
        new_hash: Option<String>,
        client: &ClientInfo,
        on_right_password: &mut Option<impl Future<Output = ()>>,
    ) -> AppResult<Opened> {
        let mut tx = self.db.begin().await?;
        // A hash upgrade writes the row: hold it alone, or two sign-ins that both share
        // it and then both write it would deadlock.
        let hold = match new_hash {
            Some(_) => users::Hold::Exclusive,
            None => users::Hold::Share,
        };
        let Some(mut held) = users::find_and_hold(&mut tx, user.id, hold).await? else {
            return Ok(Opened::Deactivated);
        };
        if held.password_hash != user.password_hash {
            return Ok(Opened::HashChanged(held));
        }
        if !held.is_active() {
            tracing::info!(user_id = %user.id, "login refused: account deactivated meanwhile");
            return Ok(Opened::Deactivated);
        }
        let writing = async move {
            if let Some(hash) = new_hash
                && users::replace_password_hash(
                    &mut tx,
                    held.id,
                    &held.password_hash,
                    &hash,
                    db::now(),
                )
                .await?
            {
                held.password_hash = hash;
                tracing::info!(user_id = %held.id, "password rehashed with current parameters");
            }
            let signed_in = self.start_session(&mut tx, held, client).await?;
            tx.commit().await?;
            Ok::<_, AppError>(signed_in)
        };
        let signed_in = match on_right_password.take() {
            Some(settling) => futures::join!(writing, settling).0,
            None => writing.await,
        }?;
        tracing::info!(user_id = %signed_in.user.id, session_id = %signed_in.session_id, "signed in");
        Ok(Opened::Session(signed_in))
    }
}

/// What [`Auth::open_session`] found.
enum Opened {
    /// The session started.
    Session(Authenticated),
    /// The account's hash changed since it was read: the row as it is now.
    HashChanged(UserRow),
    /// The account is gone or deactivated.
    Deactivated,
}
