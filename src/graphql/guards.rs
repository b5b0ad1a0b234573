//! Guards: who may call a field, declared on the field itself with
//! `#[graphql(guard = "SignedIn")]` or `#[graphql(guard = "RoleAtLeast(Role::Admin)")]`.
//! They compose with `.and(…)` and `.or(…)`.

use async_graphql::{Context, Guard, Result};

use super::context::identity;
use crate::{db::users::Role, error::AppError};

/// Lets through any signed-in caller; anonymous callers get UNAUTHENTICATED.
pub struct SignedIn;

impl Guard for SignedIn {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        identity(ctx).await?;
        Ok(())
    }
}

/// Lets through signed-in callers with at least this role: anonymous callers get
/// UNAUTHENTICATED, others FORBIDDEN. The role is the one in the database at the time of
/// the request, so a change applies at once.
pub struct RoleAtLeast(pub Role);

impl Guard for RoleAtLeast {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        let who = identity(ctx).await?;
        if who.user.role >= self.0 {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "this needs the {} role",
                self.0.as_str().to_uppercase()
            ))
            .into())
        }
    }
}
