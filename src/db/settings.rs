//! Server-wide settings kept in the database, such as the generated signing key.

use crate::{db::AsConn, sql};

/// Stores `value` under `key` unless a value is already there, then returns whichever
/// value is stored. Safe when several instances start at once: all of them end up
/// with the first value written.
#[tracing::instrument(skip_all, fields(key))]
pub async fn get_or_insert(
    mut conn: impl AsConn,
    key: &str,
    value: &str,
) -> Result<String, sqlx::Error> {
    sql!(&mut conn, |c| {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .execute(&mut *c)
        .await?;
        sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_one(c)
            .await
    })
}
