//! The `api_keys` table.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{
    db::{AsConn, users::UserRow},
    execute, sql,
};

/// A row of `api_keys`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyRow {
    /// The key's id (UUIDv7, made by the server); what logs name it by.
    pub id: Uuid,
    /// The user the key acts for.
    pub user_id: Uuid,
    /// The owner's name for it.
    pub name: String,
    /// The first characters of the secret, for telling keys apart.
    pub prefix: String,
    /// A comma-separated subset of `read`, `write`, `admin`.
    pub scopes: String,
    /// When the key was made.
    pub created_at: DateTime<Utc>,
    /// When the key was last used (to within a minute), if ever.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When the key stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When the key was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKeyRow {
    /// Whether the key may be used at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| now < at)
    }
}

/// A key together with its owner, as loaded for an incoming request. (No `Debug`: the
/// owner's columns include the password hash.)
#[derive(Clone, sqlx::FromRow)]
pub struct ApiKeyUserRow {
    /// The key.
    #[sqlx(flatten)]
    pub key: ApiKeyRow,
    /// Its owner.
    #[sqlx(flatten)]
    pub user: KeyOwner,
}

/// The owner's columns, renamed so as not to clash with the key's.
#[derive(Clone, sqlx::FromRow)]
pub struct KeyOwner {
    /// The owner's id.
    pub owner_id: Uuid,
    /// The owner's username.
    pub owner_username: String,
    /// The owner's email.
    pub owner_email: String,
    /// The owner's password hash.
    pub owner_password_hash: String,
    /// The owner's role.
    pub owner_role: String,
    /// When the owner's account was made.
    pub owner_created_at: DateTime<Utc>,
    /// When the owner's account was deactivated, if it was.
    pub owner_deactivated_at: Option<DateTime<Utc>>,
}

impl TryFrom<KeyOwner> for UserRow {
    type Error = String;

    fn try_from(o: KeyOwner) -> Result<Self, Self::Error> {
        Ok(UserRow {
            id: o.owner_id,
            username: o.owner_username,
            email: o.owner_email,
            password_hash: o.owner_password_hash,
            role: o.owner_role.parse()?,
            created_at: o.owner_created_at,
            deactivated_at: o.owner_deactivated_at,
        })
    }
}

macro_rules! key_columns {
    () => {
        "id, user_id, name, prefix, scopes, created_at, last_used_at, expires_at, revoked_at"
    };
}

/// A key about to be inserted.
pub struct NewApiKey<'a> {
    /// The row, without secret.
    pub row: &'a ApiKeyRow,
    /// SHA-256 of the secret.
    pub secret_hash: &'a [u8],
}

/// Inserts a key.
#[tracing::instrument(skip_all, fields(api_key_id = %key.row.id))]
pub async fn insert(mut conn: impl AsConn, key: &NewApiKey<'_>) -> Result<(), sqlx::Error> {
    let r = key.row;
    execute!(
        &mut conn,
        sqlx::query(
            "INSERT INTO api_keys (id, user_id, name, prefix, secret_hash, scopes, created_at, \
             expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(r.id)
        .bind(r.user_id)
        .bind(&r.name)
        .bind(&r.prefix)
        .bind(key.secret_hash)
        .bind(&r.scopes)
        .bind(r.created_at)
        .bind(r.expires_at)
    )?;
    Ok(())
}

/// Finds a key and its owner by the hash of its secret, in one indexed read.
#[tracing::instrument(skip_all)]
pub async fn find_by_secret_hash(
    mut conn: impl AsConn,
    secret_hash: &[u8],
) -> Result<Option<ApiKeyUserRow>, sqlx::Error> {
    sql!(&mut conn, |c| {
        sqlx::query_as(
            "SELECT k.id, k.user_id, k.name, k.prefix, k.scopes, k.created_at, k.last_used_at, \
             k.expires_at, k.revoked_at, u.id AS owner_id, u.username AS owner_username, \
             u.email AS owner_email, u.password_hash AS owner_password_hash, \
             u.role AS owner_role, u.created_at AS owner_created_at, \
             u.deactivated_at AS owner_deactivated_at \
             FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.secret_hash = $1",
        )
        .bind(secret_hash)
        .fetch_optional(c)
        .await
    })
}

/// Finds a key by id.
#[tracing::instrument(skip_all, fields(%id))]
pub async fn find(mut conn: impl AsConn, id: Uuid) -> Result<Option<ApiKeyRow>, sqlx::Error> {
    sql!(&mut conn, |c| {
        sqlx::query_as(concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(c)
        .await
    })
}

/// A user's keys, newest first.
#[tracing::instrument(skip_all, fields(%user_id))]
pub async fn for_user(mut conn: impl AsConn, user_id: Uuid) -> Result<Vec<ApiKeyRow>, sqlx::Error> {
    sql!(&mut conn, |c| {
        sqlx::query_as(concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys WHERE user_id = $1 ORDER BY created_at DESC, id DESC"
        ))
        .bind(user_id)
        .fetch_all(c)
        .await
    })
}

/// Revokes a key (once: a revoked key keeps its first revocation time).
#[tracing::instrument(skip_all, fields(%id))]
pub async fn revoke(
    mut conn: impl AsConn,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    execute!(
        &mut conn,
        sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .bind(now)
    )?;
    Ok(())
}

/// Revokes every key of `user_id` not yet revoked; returns how many.
#[tracing::instrument(skip_all, fields(%user_id))]
pub async fn revoke_all(
    mut conn: impl AsConn,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    execute!(
        &mut conn,
        sqlx::query(
            "UPDATE api_keys SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL"
        )
        .bind(user_id)
        .bind(now)
    )
}

/// Records a key's use, unless it was recorded since `stale_before`.
#[tracing::instrument(skip_all, fields(%id))]
pub async fn touch(
    mut conn: impl AsConn,
    id: Uuid,
    now: DateTime<Utc>,
    stale_before: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    execute!(
        &mut conn,
        sqlx::query(
            "UPDATE api_keys SET last_used_at = $2 WHERE id = $1 \
             AND (last_used_at IS NULL OR last_used_at < $3)",
        )
        .bind(id)
        .bind(now)
        .bind(stale_before)
    )?;
    Ok(())
}
