//! The caller's own account: register, sign in, refresh, sign out, sessions, password.

use async_graphql::{Context, ID, Object, Result};

use super::{
    context::{
        auth, caller, claim_credential_attempt, client, identity, parse_id,
        spend_credential_attempt,
    },
    guards::{SessionOnly, SignedIn},
    types::{
        ApiKey, AuthPayload, CreateApiKeyInput, CreateApiKeyPayload, LoginInput, RegisterInput,
        Session, User, scopes_of,
    },
};
use axum::http::header;

use crate::{
    auth::{
        Authenticated,
        api_key::NewKey,
        cookie::{self, BrowserSession},
        register::NewAccount,
    },
    error::AppError,
};

/// Queries about the caller's own account.
#[derive(Default)]
pub struct AccountQuery;

#[Object]
impl AccountQuery {
    /// The signed-in caller.
    #[graphql(guard = "SignedIn")]
    async fn me(&self, ctx: &Context<'_>) -> Result<User> {
        Ok(User::own(identity(ctx).await?.user.clone()))
    }

    /// The caller's own API keys, newest first, revoked and expired ones included.
    #[graphql(guard = "SignedIn")]
    async fn api_keys(&self, ctx: &Context<'_>) -> Result<Vec<ApiKey>> {
        let who = identity(ctx).await?;
        let keys = auth(ctx).api_keys(who).await?;
        Ok(keys.into_iter().map(ApiKey::from).collect())
    }

    /// The caller's active sessions, newest first.
    #[graphql(guard = "SignedIn")]
    async fn sessions(&self, ctx: &Context<'_>) -> Result<Vec<Session>> {
        let who = identity(ctx).await?;
        let rows = auth(ctx).sessions(who).await?;
        Ok(rows
            .into_iter()
            .map(|row| Session::new(row, who.session_id()))
            .collect())
    }
}

/// Registering, signing in and out, and managing one's sessions.
#[derive(Default)]
pub struct AccountMutation;

#[Object]
impl AccountMutation {
    /// Creates an account and signs it in.
    async fn register(&self, ctx: &Context<'_>, input: RegisterInput) -> Result<AuthPayload> {
        spend_credential_attempt(ctx).await?;
        let account = NewAccount {
            email: &input.email,
            username: &input.username,
            password: &input.password,
        };
        let signed_in = auth(ctx).register(account, client(ctx)).await?;
        Ok(payload(ctx, signed_in))
    }

    /// Signs in with email and password, starting a new session.
    async fn login(&self, ctx: &Context<'_>, input: LoginInput) -> Result<AuthPayload> {
        claim_credential_attempt(ctx)?;
        let signed_in = auth(ctx)
            .login(&input.email, &input.password, client(ctx))
            .await?;
        Ok(payload(ctx, signed_in))
    }

    /// Exchanges a refresh token for a new access token and a new refresh token. The
    /// presented token is retired; presenting it again after a short grace period ends
    /// the session. In cookie mode the token may come from the session cookie instead.
    async fn refresh(
        &self,
        ctx: &Context<'_>,
        refresh_token: Option<String>,
    ) -> Result<AuthPayload> {
        spend_credential_attempt(ctx).await?;
        let token = refresh_token
            .or_else(|| cookie_token(ctx))
            .ok_or_else(|| AppError::bad_input("refreshToken", "refreshToken is required"))?;
        let signed_in = auth(ctx).refresh(&token).await?;
        Ok(payload(ctx, signed_in))
    }

    /// Ends the session the refresh token (or, in cookie mode, the session cookie) belongs
    /// to or, without either, the caller's current session. Ending an ended session
    /// succeeds. In cookie mode the cookie is cleared.
    async fn logout(&self, ctx: &Context<'_>, refresh_token: Option<String>) -> Result<bool> {
        let token = refresh_token.or_else(|| cookie_token(ctx));
        let done = auth(ctx).logout(caller(ctx), token.as_deref()).await?;
        if cookie_mode(ctx) {
            ctx.append_http_header(header::SET_COOKIE, cookie::clear());
        }
        Ok(done)
    }

    /// Ends every session of the caller, this one included; returns how many ended.
    /// With `revokeApiKeys: true` it also revokes every API key of the account, for when
    /// a device or a key may have been stolen.
    #[graphql(guard = "SessionOnly")]
    async fn logout_all(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Also revoke every API key of the account (default false).")]
        revoke_api_keys: Option<bool>,
    ) -> Result<i32> {
        let who = identity(ctx).await?;
        let ended = auth(ctx)
            .logout_all(who, revoke_api_keys.unwrap_or(false))
            .await?;
        Ok(i32::try_from(ended).unwrap_or(i32::MAX))
    }

    /// Ends one of the caller's own sessions.
    #[graphql(guard = "SessionOnly")]
    async fn revoke_session(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let who = identity(ctx).await?;
        let id = parse_id("id", &id)?;
        Ok(auth(ctx).revoke_session(who, id).await?)
    }

    /// Creates an API key acting for the caller. Needs a signed-in session and the
    /// caller's current password; the ADMIN scope needs an administrator. The secret is in
    /// the payload, once. A password change revokes the account's keys unless asked not to.
    #[graphql(guard = "SessionOnly")]
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        input: CreateApiKeyInput,
    ) -> Result<CreateApiKeyPayload> {
        claim_credential_attempt(ctx)?;
        let who = identity(ctx).await?;
        let new = NewKey {
            name: &input.name,
            scopes: scopes_of(&input.scopes),
            expires_at: input.expires_at,
        };
        let (key, secret) = auth(ctx)
            .create_api_key(who, new, &input.current_password, client(ctx))
            .await?;
        Ok(CreateApiKeyPayload {
            api_key: key.into(),
            secret,
        })
    }

    /// Revokes an API key at once. A signed-in session revokes its owner's keys (an
    /// administrator's, anyone's). A key revokes itself, and an administrator's ADMIN key
    /// other users' keys, but no key revokes its owner's other keys.
    async fn revoke_api_key(&self, ctx: &Context<'_>, id: ID) -> Result<ApiKey> {
        let who = identity(ctx).await?;
        let id = parse_id("id", &id)?;
        Ok(auth(ctx).revoke_api_key(who, id).await?.into())
    }

    /// Changes the caller's password, ends all their other sessions and revokes every
    /// API key of the account, so that nothing made with the old password (or a stolen
    /// session) outlives it; `keepApiKeys: true` keeps the keys. Wrong current passwords
    /// count as failed sign-ins, and the session ends after three.
    #[graphql(guard = "SessionOnly")]
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The password the account has now.")] current_password: String,
        #[graphql(desc = "The password to have instead; the same rules as at registration.")]
        new_password: String,
        #[graphql(desc = "Keep the account's API keys working (default false).")]
        keep_api_keys: Option<bool>,
    ) -> Result<bool> {
        claim_credential_attempt(ctx)?;
        let who = identity(ctx).await?;
        auth(ctx)
            .change_password(
                who,
                &current_password,
                &new_password,
                keep_api_keys.unwrap_or(false),
                client(ctx),
            )
            .await?;
        Ok(true)
    }
}

fn cookie_mode(ctx: &Context<'_>) -> bool {
    ctx.data_opt::<BrowserSession>().is_some_and(|s| s.enabled)
}

/// The refresh token of the session cookie, in cookie mode.
fn cookie_token(ctx: &Context<'_>) -> Option<String> {
    ctx.data_opt::<BrowserSession>()
        .filter(|s| s.enabled)
        .and_then(|s| s.token.clone())
}

/// The payload of a sign-in. In cookie mode the refresh token goes into an HttpOnly
/// cookie instead, out of reach of page scripts.
fn payload(ctx: &Context<'_>, signed_in: Authenticated) -> AuthPayload {
    if !cookie_mode(ctx) {
        return signed_in.into();
    }
    let max_age = auth(ctx).config.refresh_token_ttl.as_secs();
    ctx.append_http_header(
        header::SET_COOKIE,
        cookie::set(&signed_in.refresh_token, max_age),
    );
    AuthPayload {
        refresh_token: None,
        ..signed_in.into()
    }
}
