//! Guards: who may call a field, declared on the field itself, for example
//! `#[graphql(guard = "SignedIn")]` or `#[graphql(guard = "RoleAtLeast(Role::Admin)")]`.
//! They compose with `.and(…)` and `.or(…)`.
//!
//! Anonymous callers get UNAUTHENTICATED; signed-in callers who may not get FORBIDDEN.
//! Callers with an API key are held to its scopes: READ for queries, WRITE for changing
//! their own data (it includes READ), ADMIN for the administrators' operations, and
//! never the operations that need a session.

use async_graphql::{Context, Guard, Result};

use super::context::identity;
use crate::{auth::Credential, db::users::Role, error::AppError};

fn forbidden(message: &str) -> async_graphql::Error {
    AppError::Forbidden(message.to_owned()).into()
}

/// Any signed-in caller; an API key needs the READ (or WRITE) scope.
pub struct SignedIn;

impl Guard for SignedIn {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        match identity(ctx).await?.credential {
            Credential::ApiKey { scopes, .. } if !scopes.can_read() => {
                Err(forbidden("this API key lacks the READ scope"))
            }
            _ => Ok(()),
        }
    }
}

/// A signed-in caller changing their own data; an API key needs the WRITE scope.
pub struct CanWrite;

impl Guard for CanWrite {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        match identity(ctx).await?.credential {
            Credential::ApiKey { scopes, .. } if !scopes.write => {
                Err(forbidden("this API key lacks the WRITE scope"))
            }
            _ => Ok(()),
        }
    }
}

/// A caller signed in with a session: creating keys, changing the password, signing out
/// and ending sessions are never done with an API key.
pub struct SessionOnly;

impl Guard for SessionOnly {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        match identity(ctx).await?.credential {
            Credential::Session(_) => Ok(()),
            Credential::ApiKey { .. } => Err(forbidden(
                "this needs a signed-in session; API keys cannot do it",
            )),
        }
    }
}

/// Signed-in callers with at least this role, as recorded in the database at the time of
/// the request, so that a change applies at once. For ADMIN, an API key also needs the
/// ADMIN scope.
pub struct RoleAtLeast(pub Role);

impl Guard for RoleAtLeast {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        let who = identity(ctx).await?;
        if who.user.role < self.0 {
            return Err(forbidden(&format!(
                "this needs the {} role",
                self.0.as_str().to_uppercase()
            )));
        }
        match who.credential {
            Credential::ApiKey { scopes, .. } if self.0 == Role::Admin && !scopes.admin => {
                Err(forbidden("this API key lacks the ADMIN scope"))
            }
            _ => Ok(()),
        }
    }
}
