//! API keys: long-lived, scoped, revocable credentials for scripts and services, acting
//! for their owner and never beyond the owner's role.
//!
//! A secret is `qk_` + 30 base62 characters of randomness (about 178 bits) + a 6-character
//! base62 CRC32 of them, as GitHub's tokens are built: secret scanners can recognise a
//! leaked key by its shape, and a mistyped one is refused without touching the database.
//! Only the SHA-256 of a secret is stored, under a unique index, so checking a key is one
//! indexed read. The first characters (`prefix`) are kept in clear for telling keys apart.

use chrono::{DateTime, Duration, Utc};
use rand::{Rng, rngs::OsRng};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{Auth, ClientInfo, Credential, Identity};
use crate::{
    db::{
        self,
        api_keys::{self, ApiKeyRow, NewApiKey},
        sessions,
        users::{self, UserRow},
    },
    error::{AppError, AppResult},
};

/// What every secret starts with.
pub const SECRET_PREFIX: &str = "qk_";
const RANDOM_LEN: usize = 30;
const CHECKSUM_LEN: usize = 6;
const SECRET_LEN: usize = SECRET_PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN;
/// How many characters of a secret are kept in clear as its `prefix`.
const SHOWN_LEN: usize = SECRET_PREFIX.len() + 6;
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Longest name of a key, in characters.
pub const MAX_NAME: usize = 100;
/// How stale `lastUsedAt` may get before a use refreshes it.
const TOUCH_EVERY: Duration = Duration::seconds(60);

/// What a key may do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes {
    /// Queries.
    pub read: bool,
    /// Queries, and mutations of the owner's own data (posts, votes).
    pub write: bool,
    /// The administrators' operations, while the owner is an administrator.
    pub admin: bool,
}

impl Scopes {
    /// Whether the key may run queries.
    pub fn can_read(&self) -> bool {
        self.read || self.write
    }

    /// The stored form: `read,write,admin` or a part of it.
    pub fn to_text(self) -> String {
        [
            (self.read, "read"),
            (self.write, "write"),
            (self.admin, "admin"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| *name)
        .collect::<Vec<_>>()
        .join(",")
    }

    /// Reads the stored form.
    pub fn from_text(text: &str) -> Self {
        let mut s = Self::default();
        for part in text.split(',') {
            match part {
                "read" => s.read = true,
                "write" => s.write = true,
                "admin" => s.admin = true,
                _ => {}
            }
        }
        s
    }

    /// Whether no scope is set.
    pub fn is_empty(&self) -> bool {
        !(self.read || self.write || self.admin)
    }
}

fn base62(mut n: u64, width: usize) -> String {
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(out).unwrap_or_default()
}

fn checksum(random: &str) -> String {
    base62(u64::from(crc32fast::hash(random.as_bytes())), CHECKSUM_LEN)
}

/// A new secret.
pub fn generate_secret() -> String {
    let mut rng = OsRng;
    let random: String = (0..RANDOM_LEN)
        .map(|_| char::from(BASE62[rng.gen_range(0..BASE62.len())]))
        .collect();
    format!("{SECRET_PREFIX}{random}{}", checksum(&random))
}

/// Whether `text` has the shape of a secret and its checksum matches.
pub fn is_well_formed(text: &str) -> bool {
    if text.len() != SECRET_LEN || !text.starts_with(SECRET_PREFIX) {
        return false;
    }
    let body = &text[SECRET_PREFIX.len()..];
    if !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return false;
    }
    let (random, check) = body.split_at(RANDOM_LEN);
    checksum(random) == check
}

/// The stored hash of a secret.
pub fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// A key as its owner asked for it.
#[derive(Debug, Clone)]
pub struct NewKey<'a> {
    /// A name to recognise it by.
    pub name: &'a str,
    /// What it may do.
    pub scopes: Scopes,
    /// When it stops working; never when `None`.
    pub expires_at: Option<DateTime<Utc>>,
}

impl Auth {
    /// Makes a key for the caller and returns it with its secret, which is never
    /// available again. The caller confirms their password first: a key outlives the
    /// session, so a stolen session must not be able to make one.
    #[tracing::instrument(skip_all, fields(user_id = %who.user.id))]
    pub async fn create_api_key(
        &self,
        who: &Identity,
        new: NewKey<'_>,
        current_password: &str,
        client: &ClientInfo,
    ) -> AppResult<(ApiKeyRow, String)> {
        let name = new.name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME {
            return Err(AppError::bad_input(
                "name",
                format!("name must be 1 to {MAX_NAME} characters long"),
            ));
        }
        if new.scopes.is_empty() {
            return Err(AppError::bad_input(
                "scopes",
                "give the key at least one scope",
            ));
        }
        if new.scopes.admin && !who.acts_as_admin() {
            return Err(AppError::Forbidden(
                "only administrators may create keys with the ADMIN scope".to_owned(),
            ));
        }
        let now = db::now();
        if new.expires_at.is_some_and(|at| at <= now) {
            return Err(AppError::bad_input(
                "expiresAt",
                "expiresAt must be in the future",
            ));
        }
        self.confirm_password(who, current_password, "currentPassword", client)
            .await?;
        let secret = generate_secret();
        let row = ApiKeyRow {
            id: Uuid::now_v7(),
            user_id: who.user.id,
            name: name.to_owned(),
            prefix: secret[..SHOWN_LEN].to_owned(),
            scopes: new.scopes.to_text(),
            created_at: now,
            last_used_at: None,
            expires_at: new.expires_at.map(db::truncate),
            revoked_at: None,
        };
        // Made only if, at commit, the password is the one just confirmed and the session
        // is live: a password change or `logoutAll` racing this either waits for it and
        // then revokes the key, or wins and refuses it.
        let mut tx = self.db.begin().await?;
        let held = users::find_and_hold(&mut tx, who.user.id, users::Hold::Share).await?;
        let session_live = match who.session_id() {
            Some(id) => sessions::find(&mut tx, id)
                .await?
                .is_some_and(|s| s.is_live(db::now())),
            None => true,
        };
        if !session_live
            || !held.is_some_and(|u| u.password_hash == who.user.password_hash && u.is_active())
        {
            return Err(AppError::Unauthenticated(
                "this session has ended; sign in again",
            ));
        }
        api_keys::insert(
            &mut tx,
            &NewApiKey {
                row: &row,
                secret_hash: &hash_secret(&secret),
            },
        )
        .await?;
        tx.commit().await?;
        tracing::info!(api_key_id = %row.id, scopes = %row.scopes, "API key created");
        Ok((row, secret))
    }

    /// The caller's own keys, newest first.
    pub async fn api_keys(&self, who: &Identity) -> AppResult<Vec<ApiKeyRow>> {
        let mut conn = self.db.acquire().await?;
        Ok(api_keys::for_user(&mut conn, who.user.id).await?)
    }

    /// Revokes one of the caller's keys or, for an administrator, anyone's. A session
    /// may revoke its owner's keys. A key may revoke itself, and an administrator's ADMIN
    /// key other users' keys, but no key its owner's other keys: a key is for posts and
    /// votes or for administration, never for taking the owner's other keys away.
    #[tracing::instrument(skip_all, fields(user_id = %who.user.id, api_key_id = %id))]
    pub async fn revoke_api_key(&self, who: &Identity, id: Uuid) -> AppResult<ApiKeyRow> {
        let mut conn = self.db.acquire().await?;
        let key = api_keys::find(&mut conn, id)
            .await?
            .filter(|k| k.user_id == who.user.id || who.acts_as_admin())
            .ok_or_else(|| AppError::NotFound("no such API key".to_owned()))?;
        if let Credential::ApiKey { id: own, .. } = who.credential
            && key.user_id == who.user.id
            && key.id != own
        {
            return Err(AppError::Forbidden(
                "an API key cannot revoke its owner's keys; use a signed-in session".to_owned(),
            ));
        }
        let now = db::now();
        api_keys::revoke(&mut conn, id, now).await?;
        tracing::info!("API key revoked");
        self.access_changed(key.user_id);
        Ok(ApiKeyRow {
            revoked_at: key.revoked_at.or(Some(now)),
            ..key
        })
    }

    /// Whether the key `id` of `owner` still works: not revoked, not expired, and its
    /// owner active with the role they had. Unlike using the key, checking it is neither
    /// logged nor counted as use.
    pub(crate) async fn api_key_still_valid(&self, id: Uuid, owner: &UserRow) -> AppResult<bool> {
        let user_id = owner.id;
        let mut conn = self.db.acquire().await?;
        let now = db::now();
        let Some(key) = api_keys::find(&mut conn, id).await? else {
            return Ok(false);
        };
        if key.user_id != user_id || !key.is_live(now) {
            return Ok(false);
        }
        Ok(users::find_by_id(&mut conn, user_id)
            .await?
            .is_some_and(|user| user.is_active() && user.role == owner.role))
    }

    /// The identity a secret stands for, or why it stands for none.
    pub(crate) async fn identify_api_key(
        &self,
        secret: &str,
    ) -> AppResult<Result<(UserRow, ApiKeyRow), &'static str>> {
        const INVALID: &str = "invalid API key";
        if !is_well_formed(secret) {
            tracing::info!("API key refused: malformed or mistyped");
            return Ok(Err(INVALID));
        }
        let mut conn = self.db.acquire().await?;
        let Some(found) = api_keys::find_by_secret_hash(&mut conn, &hash_secret(secret)).await?
        else {
            tracing::info!("API key refused: unknown");
            return Ok(Err(INVALID));
        };
        let key = found.key;
        let user = UserRow::try_from(found.user).map_err(AppError::internal)?;
        let now = db::now();
        let why = if key.revoked_at.is_some() {
            Some("revoked")
        } else if !key.is_live(now) {
            Some("expired")
        } else if !user.is_active() {
            Some("owner deactivated")
        } else {
            None
        };
        if let Some(why) = why {
            tracing::info!(api_key_id = %key.id, reason = why, "API key refused");
            crate::telemetry::auth_event("api_key_refused");
            return Ok(Err("this API key no longer works"));
        }
        tracing::info!(api_key_id = %key.id, user_id = %user.id, "API key accepted");
        crate::telemetry::auth_event("api_key_accepted");
        if key.last_used_at.is_none_or(|at| at < now - TOUCH_EVERY) {
            // Off the request's path, and at most once a minute per key.
            let db = self.db.clone();
            let id = key.id;
            // Still within the request's span, so that its logs name the request.
            let task = async move {
                let touched = async {
                    let mut conn = db.acquire().await?;
                    api_keys::touch(&mut conn, id, now, now - TOUCH_EVERY).await
                };
                if let Err(e) = touched.await {
                    tracing::warn!(api_key_id = %id, error = %e, "could not record API key use");
                }
            };
            crate::db::kept::detach(task);
        }
        Ok(Ok((user, key)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_carry_a_checksum_that_catches_typos() {
        let secret = generate_secret();
        assert_eq!(secret.len(), SECRET_LEN);
        assert!(secret.starts_with("qk_"));
        assert!(is_well_formed(&secret));
        // Change one character of the random part.
        let mut typo: Vec<char> = secret.chars().collect();
        typo[10] = if typo[10] == 'a' { 'b' } else { 'a' };
        assert!(!is_well_formed(&typo.into_iter().collect::<String>()));
        assert!(!is_well_formed(&secret[..SECRET_LEN - 1]));
        assert!(!is_well_formed(&secret.replacen("qk_", "qq_", 1)));
        assert_ne!(generate_secret(), secret);
    }

    #[test]
    fn scopes_round_trip() {
        let s = Scopes {
            read: true,
            write: false,
            admin: true,
        };
        assert_eq!(s.to_text(), "read,admin");
        assert_eq!(Scopes::from_text("read,admin"), s);
        assert!(Scopes::from_text("write").can_read());
        assert!(!Scopes::from_text("admin").can_read());
    }
}
