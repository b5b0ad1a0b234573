//! Changing one's password.

use super::{Auth, ClientInfo, Identity, password};
use crate::{
    db::{
        self, api_keys,
        sessions::{self, RevokeReason},
        users,
    },
    error::{AppError, AppResult},
};

/// What a password change ended besides the old password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordChanged {
    /// The caller's other sessions, all of which ended.
    pub sessions_ended: u64,
    /// The account's API keys that were revoked (none when the caller kept them).
    pub api_keys_revoked: u64,
}

impl Auth {
    /// Replaces the caller's password, ends all their other sessions and, unless
    /// `keep_api_keys`, revokes the account's API keys, in one transaction: all of it
    /// happens or none of it does. A key made by someone who had the old password (or a
    /// stolen session) must not outlive it.
    #[tracing::instrument(skip_all, fields(user_id = %who.user.id))]
    pub async fn change_password(
        &self,
        who: &Identity,
        current_password: &str,
        new_password: &str,
        keep_api_keys: bool,
        client: &ClientInfo,
    ) -> AppResult<PasswordChanged> {
        password::check_policy("newPassword", new_password)?;
        self.confirm_password(who, current_password, "currentPassword", client)
            .await?;
        let hash = self.passwords.hash(new_password).await?;
        let now = db::now();
        // Only over the hash the current password was just checked against, so that of
        // two changes racing from the same old password one wins and the other is told. A
        // hash that changed meanwhile is checked once more: a sign-in may only have
        // upgraded it.
        let mut expected = who.user.password_hash.clone();
        let mut tx = self.db.begin().await?;
        for round in 0..2 {
            if users::replace_password_hash(&mut tx, who.user.id, &expected, &hash, now).await? {
                break;
            }
            drop(tx);
            let stored = {
                let mut conn = self.db.acquire().await?;
                users::find_by_id(&mut conn, who.user.id).await?
            };
            let still_current = match &stored {
                Some(user) if round == 0 => {
                    self.passwords
                        .verify(current_password, &user.password_hash)
                        .await?
                        != password::Verified::No
                }
                _ => false,
            };
            if !still_current {
                return Err(AppError::Conflict {
                    field: Some("currentPassword"),
                    message: "the password was changed meanwhile; sign in again".to_owned(),
                });
            }
            expected = stored.map(|u| u.password_hash).unwrap_or_default();
            tx = self.db.begin().await?;
        }
        // The caller's own session must still be live: a `logoutAll` that committed
        // first ended it, and what it ended stays ended.
        if let Some(id) = who.session_id()
            && !sessions::find(&mut tx, id)
                .await?
                .is_some_and(|s| s.is_live(now))
        {
            return Err(AppError::Unauthenticated(
                "this session has ended; sign in again",
            ));
        }
        let sessions_ended = sessions::revoke_all(
            &mut tx,
            who.user.id,
            who.session_id(),
            RevokeReason::PasswordChanged,
            now,
        )
        .await?;
        let api_keys_revoked = if keep_api_keys {
            0
        } else {
            api_keys::revoke_all(&mut tx, who.user.id, now).await?
        };
        tx.commit().await?;
        tracing::info!(sessions_ended, api_keys_revoked, "password changed");
        self.access_changed(who.user.id);
        Ok(PasswordChanged {
            sessions_ended,
            api_keys_revoked,
        })
    }
}
