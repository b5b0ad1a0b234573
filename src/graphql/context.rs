//! Access to per-request data from resolvers.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use async_graphql::{Context, ID};
use uuid::Uuid;

use super::loaders::DbLoader;
use crate::{
    auth::{Auth, Caller, ClientInfo, Identity},
    error::{AppError, AppResult},
    posts::Posts,
};

/// The authentication service.
pub fn auth<'a>(ctx: &Context<'a>) -> &'a Auth {
    ctx.data_unchecked::<Auth>()
}

/// The posts service.
pub fn posts<'a>(ctx: &Context<'a>) -> &'a Posts {
    ctx.data_unchecked::<Posts>()
}

/// This request's DataLoader, shared by the operations of a batch.
pub fn loader<'a>(ctx: &Context<'a>) -> &'a DbLoader {
    ctx.data_unchecked::<Arc<DbLoader>>()
}

/// The caller of this request.
pub fn caller<'a>(ctx: &Context<'a>) -> &'a Caller {
    ctx.data_unchecked::<Arc<Caller>>()
}

/// What the client told us about itself.
pub fn client<'a>(ctx: &Context<'a>) -> &'a ClientInfo {
    ctx.data_unchecked::<ClientInfo>()
}

/// The signed-in caller, or UNAUTHENTICATED.
pub async fn identity<'a>(ctx: &Context<'a>) -> AppResult<&'a Identity> {
    caller(ctx).identity(auth(ctx)).await
}

/// Parses an `ID` argument, naming the argument when it is malformed.
pub fn parse_id(field: &'static str, id: &ID) -> AppResult<Uuid> {
    Uuid::parse_str(id)
        .map_err(|_| AppError::bad_input(field, format!("'{}' is not a valid id", id.as_str())))
}

/// The one credential operation (login, register, refresh, changePassword, createApiKey)
/// an HTTP request may run, however many aliases or batch entries ask for more: one
/// request can never try many passwords.
#[derive(Clone, Default)]
pub struct CredentialBudget(Arc<AtomicBool>);

/// Claims the request's credential operation, or refuses a second one. The operation
/// then spends one of the address's own with its password attempt (see
/// [`crate::auth::throttle::Throttle::login_attempt`]), or with
/// [`spend_credential_attempt`] when it checks no password.
pub fn claim_credential_attempt(ctx: &Context<'_>) -> AppResult<()> {
    let spent = ctx
        .data_opt::<CredentialBudget>()
        .is_some_and(|budget| budget.0.swap(true, Ordering::SeqCst));
    if spent {
        return Err(AppError::RateLimited {
            message: "one login, register, refresh, changePassword or createApiKey per request"
                .to_owned(),
            retry_after: 0,
        });
    }
    Ok(())
}

/// Spends the request's credential operation and one of the address's, or refuses.
pub async fn spend_credential_attempt(ctx: &Context<'_>) -> AppResult<()> {
    claim_credential_attempt(ctx)?;
    auth(ctx).throttle.credential_attempt(client(ctx).ip).await
}
