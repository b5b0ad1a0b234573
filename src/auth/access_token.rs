//! JWT access tokens: short-lived, HS256 only, `typ: at+jwt` (RFC 9068).
//!
//! A token only proves which session is asking; whether that session, and its user, may
//! still act is decided from the database on every request (see [`super::caller`]).

use std::{collections::HashSet, sync::Arc, time::Duration};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    config::Secret,
    db::users::Role,
    error::{AppError, AppResult},
};

/// The issuer and audience of every token.
pub const ISSUER: &str = "quire";
/// The media type of access tokens, in the `typ` header.
pub const TOKEN_TYPE: &str = "at+jwt";
/// Tolerated clock difference between the instances sharing a database.
pub const LEEWAY: Duration = Duration::from_secs(5);

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    /// The session id.
    pub sid: Uuid,
    /// The user's role when the token was issued (`user` or `admin`); the server itself
    /// acts on the role stored in the database.
    pub role: String,
    /// Issuer: always [`ISSUER`].
    pub iss: String,
    /// Audience: always [`ISSUER`].
    pub aud: String,
    /// Issued at, in seconds since the Unix epoch.
    pub iat: i64,
    /// Not valid before, in seconds since the Unix epoch; equal to `iat`.
    pub nbf: i64,
    /// Expiry, in seconds since the Unix epoch: `iat` plus the access-token lifetime.
    pub exp: i64,
    /// A random id (UUIDv4) unique to this token.
    pub jti: Uuid,
}

/// Signs and checks access tokens. Cloning shares the keys.
#[derive(Clone)]
pub struct AccessTokens(Arc<Keys>);

struct Keys {
    /// The `kid` of the tokens this instance signs.
    kid: String,
    encoding: EncodingKey,
    /// The keys tokens are verified with, by `kid`: the signing key first, then the
    /// previous one, if any.
    decoding: Vec<(String, DecodingKey)>,
    validation: Validation,
    ttl: Duration,
}

impl AccessTokens {
    /// Signs with `secret` (HS256) and verifies with it or `previous`; new tokens live
    /// for `ttl`.
    pub fn new(secret: &Secret, previous: Option<&Secret>, ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[ISSUER]);
        validation.required_spec_claims =
            HashSet::from(["exp", "nbf", "iss", "aud", "sub"].map(String::from));
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = LEEWAY.as_secs();
        let decoding = std::iter::once(secret)
            .chain(previous)
            .map(|s| (s.key_id(), DecodingKey::from_secret(s.expose())))
            .collect();
        Self(Arc::new(Keys {
            kid: secret.key_id(),
            encoding: EncodingKey::from_secret(secret.expose()),
            decoding,
            validation,
            ttl,
        }))
    }

    /// The lifetime of new tokens, in whole seconds.
    pub fn ttl_secs(&self) -> i64 {
        i64::try_from(self.0.ttl.as_secs()).unwrap_or(i64::MAX)
    }

    /// Issues a token for `session_id` of `user_id`.
    pub fn issue(&self, user_id: Uuid, session_id: Uuid, role: Role) -> AppResult<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_id,
            sid: session_id,
            role: role.as_str().to_owned(),
            iss: ISSUER.to_owned(),
            aud: ISSUER.to_owned(),
            iat: now,
            nbf: now,
            exp: now.saturating_add(self.ttl_secs()),
            jti: Uuid::new_v4(),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some(TOKEN_TYPE.to_owned());
        header.kid = Some(self.0.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.0.encoding)
            .map_err(|e| AppError::internal(e.to_string()))
    }

    /// Checks signature, algorithm, type and claims; any failure is UNAUTHENTICATED. The
    /// key is the one the token's `kid` names; a token without one (signed before keys had
    /// ids) is tried with each.
    pub fn verify(&self, token: &str) -> AppResult<Claims> {
        const INVALID: &str = "invalid or expired access token";
        let refused = |e: jsonwebtoken::errors::Error| {
            tracing::debug!(reason = %e, "access token refused");
            AppError::Unauthenticated(INVALID)
        };
        let kid = jsonwebtoken::decode_header(token).map_err(refused)?.kid;
        let mut keys = self
            .0
            .decoding
            .iter()
            .filter(|(id, _)| kid.as_ref().is_none_or(|kid| kid == id))
            .peekable();
        if keys.peek().is_none() {
            tracing::debug!(?kid, "access token refused: unknown key id");
            return Err(AppError::Unauthenticated(INVALID));
        }
        let mut outcome = None;
        for (_, key) in keys {
            outcome = Some(jsonwebtoken::decode::<Claims>(
                token,
                key,
                &self.0.validation,
            ));
            if matches!(outcome, Some(Ok(_))) {
                break;
            }
        }
        let data = outcome
            .expect("at least one key was tried")
            .map_err(refused)?;
        if data.header.typ.as_deref() != Some(TOKEN_TYPE) {
            tracing::debug!(typ = ?data.header.typ, "access token refused: wrong typ");
            return Err(AppError::Unauthenticated(INVALID));
        }
        Ok(data.claims)
    }
}
