//! User administration: listing accounts, changing roles, deactivating and reactivating.
//!
//! The last active administrator can be neither demoted nor deactivated, so that a
//! deployment can never lock itself out. The check and the change happen in one
//! transaction that holds the administrators' rows.

use uuid::Uuid;

use super::Auth;
use crate::{
    db::{
        self,
        page::{Page, PageRequest},
        sessions::{self, RevokeReason},
        users::{self, Role, UserFilter, UserRow},
    },
    error::{AppError, AppResult},
};

fn no_such_user() -> AppError {
    AppError::NotFound("no such user".to_owned())
}

impl Auth {
    /// A user by id, or `None`.
    #[tracing::instrument(skip_all, fields(%id))]
    pub async fn user(&self, id: Uuid) -> AppResult<Option<UserRow>> {
        let mut conn = self.db.acquire().await?;
        Ok(users::find_by_id(&mut conn, id).await?)
    }

    /// A page of users, newest first.
    #[tracing::instrument(skip_all)]
    pub async fn users(&self, filter: &UserFilter, page: &PageRequest) -> AppResult<Page<UserRow>> {
        let mut conn = self.db.acquire().await?;
        Ok(users::list(&mut conn, filter, page).await?)
    }

    /// Gives a user another role.
    #[tracing::instrument(skip_all, fields(%id, role = role.as_str()))]
    pub async fn update_role(&self, id: Uuid, role: Role) -> AppResult<UserRow> {
        let mut tx = self.db.begin().await?;
        // Lock the administrators before reading the target, so that the target's role
        // is read after any change that was racing for the same rows.
        let admins = if role == Role::Admin {
            Vec::new()
        } else {
            users::lock_active_admins(&mut tx).await?
        };
        let mut user = users::find_by_id(&mut tx, id)
            .await?
            .ok_or_else(no_such_user)?;
        if role != Role::Admin {
            refuse_if_last_admin(&admins, &user)?;
        }
        users::set_role(&mut tx, id, role, db::now()).await?;
        tx.commit().await?;
        let changed = user.role != role;
        user.role = role;
        tracing::info!("role changed");
        if changed {
            // Open connections keep the identity they began with: have them check it.
            self.access_changed(id);
        }
        Ok(user)
    }

    /// Deactivates a user: their sessions end and they can no longer sign in.
    #[tracing::instrument(skip_all, fields(%id))]
    pub async fn deactivate(&self, id: Uuid) -> AppResult<UserRow> {
        let now = db::now();
        let mut tx = self.db.begin().await?;
        let admins = users::lock_active_admins(&mut tx).await?;
        let mut user = users::find_by_id(&mut tx, id)
            .await?
            .ok_or_else(no_such_user)?;
        refuse_if_last_admin(&admins, &user)?;
        if user.deactivated_at.is_none() {
            users::set_deactivated(&mut tx, id, Some(now), now).await?;
            user.deactivated_at = Some(now);
        }
        let ended = sessions::revoke_all(&mut tx, id, None, RevokeReason::Deactivated, now).await?;
        tx.commit().await?;
        tracing::info!(sessions_ended = ended, "user deactivated");
        self.access_changed(id);
        Ok(user)
    }

    /// Lets a deactivated user sign in again.
    #[tracing::instrument(skip_all, fields(%id))]
    pub async fn reactivate(&self, id: Uuid) -> AppResult<UserRow> {
        let mut conn = self.db.acquire().await?;
        let mut user = users::find_by_id(&mut conn, id)
            .await?
            .ok_or_else(no_such_user)?;
        if user.deactivated_at.is_some() {
            users::set_deactivated(&mut conn, id, None, db::now()).await?;
            user.deactivated_at = None;
            tracing::info!("user reactivated");
        }
        Ok(user)
    }
}

/// CONFLICT when `user` is an active administrator and no other active administrator
/// is among the locked `admins`.
fn refuse_if_last_admin(admins: &[Uuid], user: &UserRow) -> AppResult<()> {
    let is_active_admin = user.role == Role::Admin && user.is_active();
    if is_active_admin && admins.iter().all(|a| *a == user.id) {
        return Err(AppError::Conflict {
            field: Some("id"),
            message: "this is the last active administrator; make another one first".to_owned(),
        });
    }
    Ok(())
}
