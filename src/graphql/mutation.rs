//! The mutation root: resolvers check who may act, call one service function and
//! convert its result.

use async_graphql::{Context, ID, Object, Result};

use super::{
    context::{auth, caller, client, identity, parse_id},
    types::{AuthPayload, LoginInput, RegisterInput},
};
use crate::{auth::register::NewAccount, error::AppError};

/// The mutation root.
#[derive(Default)]
pub struct Mutation;

/// Write operations: accounts, sign-in and sessions.
#[Object]
impl Mutation {
    /// Creates an account and signs it in.
    async fn register(&self, ctx: &Context<'_>, input: RegisterInput) -> Result<AuthPayload> {
        let account = NewAccount {
            email: &input.email,
            username: &input.username,
            password: &input.password,
        };
        Ok(auth(ctx).register(account, client(ctx)).await?.into())
    }

    /// Signs in with email and password, starting a new session.
    async fn login(&self, ctx: &Context<'_>, input: LoginInput) -> Result<AuthPayload> {
        Ok(auth(ctx)
            .login(&input.email, &input.password, client(ctx))
            .await?
            .into())
    }

    /// Exchanges a refresh token for a new access token and a new refresh token. The
    /// presented token is retired; presenting it again after a short grace period ends
    /// the session.
    async fn refresh(
        &self,
        ctx: &Context<'_>,
        refresh_token: Option<String>,
    ) -> Result<AuthPayload> {
        let token = refresh_token
            .ok_or_else(|| AppError::bad_input("refreshToken", "refreshToken is required"))?;
        Ok(auth(ctx).refresh(&token).await?.into())
    }

    /// Ends the session the refresh token belongs to or, without one, the caller's
    /// current session. Ending an ended session succeeds.
    async fn logout(&self, ctx: &Context<'_>, refresh_token: Option<String>) -> Result<bool> {
        Ok(auth(ctx)
            .logout(caller(ctx), refresh_token.as_deref())
            .await?)
    }

    /// Ends every session of the caller, this one included; returns how many ended.
    async fn logout_all(&self, ctx: &Context<'_>) -> Result<i32> {
        let who = identity(ctx).await?;
        let ended = auth(ctx).logout_all(who).await?;
        Ok(i32::try_from(ended).unwrap_or(i32::MAX))
    }

    /// Ends one of the caller's own sessions.
    async fn revoke_session(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let who = identity(ctx).await?;
        let id = parse_id("id", &id)?;
        Ok(auth(ctx).revoke_session(who, id).await?)
    }

    /// Changes the caller's password and ends all their other sessions.
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        current_password: String,
        new_password: String,
    ) -> Result<bool> {
        let who = identity(ctx).await?;
        Ok(auth(ctx)
            .change_password(who, &current_password, &new_password)
            .await?)
    }
}
