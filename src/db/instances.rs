//! The `instances` table (PostgreSQL only): the instances serving from one database, the
//! keys their tokens are signed and verified with, and their clocks' offsets.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// An instance as the others see it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InstanceRow {
    /// Its id, new at every start.
    pub id: Uuid,
    /// The id of the key it signs tokens with.
    pub signing_key_id: String,
    /// The id of the key it also accepts, if any.
    pub previous_key_id: Option<String>,
    /// How long ago it was last seen, in seconds.
    pub seen_secs_ago: f64,
}

/// Serialises instances joining, until the transaction ends: the check of the others'
/// keys and the joining are one step.
pub async fn lock(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    // Any fixed number serves; this one reads "quire" in ASCII.
    sqlx::query("SELECT pg_advisory_xact_lock(491496515941)")
        .execute(conn)
        .await?;
    Ok(())
}

/// The instances other than `me` seen in the last `within_secs` seconds.
pub async fn live(
    conn: &mut PgConnection,
    me: Uuid,
    within_secs: f64,
) -> Result<Vec<InstanceRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, signing_key_id, previous_key_id, \
                extract(epoch FROM now() - seen_at)::float8 AS seen_secs_ago \
         FROM instances \
         WHERE id <> $1 AND seen_at > now() - make_interval(secs => $2) \
         ORDER BY seen_at DESC",
    )
    .bind(me)
    .bind(within_secs)
    .fetch_all(conn)
    .await
}

/// Says `me` is alive, with the keys it uses and its clock's offset; returns the
/// database's clock at that moment. Rows not seen for a day go at the same time.
pub async fn seen(
    conn: &mut PgConnection,
    me: Uuid,
    signing_key_id: &str,
    previous_key_id: Option<&str>,
    clock_offset_ms: i64,
) -> Result<DateTime<Utc>, sqlx::Error> {
    sqlx::query("DELETE FROM instances WHERE seen_at < now() - interval '1 day'")
        .execute(&mut *conn)
        .await?;
    sqlx::query_scalar(
        "INSERT INTO instances (id, signing_key_id, previous_key_id, clock_offset_ms) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (id) DO UPDATE SET seen_at = now(), clock_offset_ms = $4 \
         RETURNING clock_timestamp()",
    )
    .bind(me)
    .bind(signing_key_id)
    .bind(previous_key_id)
    .bind(clock_offset_ms)
    .fetch_one(conn)
    .await
}

/// Forgets `me`: it stopped.
pub async fn leave(conn: &mut PgConnection, me: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM instances WHERE id = $1")
        .bind(me)
        .execute(conn)
        .await?;
    Ok(())
}
