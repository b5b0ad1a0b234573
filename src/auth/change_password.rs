//! Changing one's password.

use super::{Auth, Identity, password, password::Verified};
use crate::{
    db::{
        self,
        sessions::{self, RevokeReason},
        users,
    },
    error::{AppError, AppResult},
};

impl Auth {
    /// Replaces the caller's password and ends all their other sessions, in one
    /// transaction: either both happen or neither does.
    #[tracing::instrument(skip_all, fields(user_id = %who.user.id))]
    pub async fn change_password(
        &self,
        who: &Identity,
        current_password: &str,
        new_password: &str,
    ) -> AppResult<bool> {
        password::check_policy("newPassword", new_password)?;
        if self
            .passwords
            .verify(current_password, &who.user.password_hash)
            .await?
            == Verified::No
        {
            return Err(AppError::bad_input(
                "currentPassword",
                "the current password is not correct",
            ));
        }
        let hash = self.passwords.hash(new_password).await?;
        let now = db::now();
        let mut tx = self.db.begin().await?;
        users::set_password_hash(&mut tx, who.user.id, &hash, now).await?;
        let ended = sessions::revoke_all(
            &mut tx,
            who.user.id,
            who.session_id(),
            RevokeReason::PasswordChanged,
            now,
        )
        .await?;
        tx.commit().await?;
        tracing::info!(other_sessions_ended = ended, "password changed");
        self.access_changed(who.user.id);
        Ok(true)
    }
}
