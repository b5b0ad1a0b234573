//! The counts of brute-force protection on PostgreSQL, shared by every instance: token
//! buckets as GCRA (the algorithm of redis-cell and governor) and failure counts.
//!
//! Each operation is one statement, timed by the database's clock (`clock_timestamp()`,
//! read once per statement), so that instances' clocks do not matter and attempts made
//! at once on different instances are counted exactly: the upsert's row lock orders them.
//! Statements run outside transactions: under READ COMMITTED, a conflicting upsert
//! re-reads the row another has just committed.
//!
//! They commit without waiting for the disk (`synchronous_commit` off, for their own
//! transaction only: the connection's other work still waits). Waiting doubled the time
//! of counting a failure (0.28 against 0.13 ms a statement, measured with pgbench on the
//! benchmark machine), and it was most of what the limiter added to a sign-in. The
//! failures table stays logged, so a crash of the database never empties it; it may
//! lose the counts of its last fraction of a second (at most three times
//! `wal_writer_delay`).

use sqlx::PgConnection;

/// Prefixes a statement with `clock`: the database's clock, in microseconds since the
/// epoch, read once. Reading it also turns off `synchronous_commit` for the statement's
/// own transaction (see the module's header).
macro_rules! with_clock {
    ($sql:literal) => {
        concat!(
            "WITH clock AS MATERIALIZED ",
            "(SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS now_us, ",
            "set_config('synchronous_commit', 'off', true) AS relaxed) ",
            $sql
        )
    };
}

/// Takes `cost_us` (cost × emission interval) from the bucket `key`, which holds
/// `burst_us` (burst × interval); a cost above the burst needs `needed_us` (burst ×
/// interval) and leaves the rest owed. Returns 0 when taken, or how many microseconds
/// until it could be.
pub async fn take(
    conn: &mut PgConnection,
    key: &str,
    cost_us: i64,
    needed_us: i64,
    burst_us: i64,
) -> Result<i64, sqlx::Error> {
    // A bucket's theoretical arrival time (TAT) is when it would be full again; a take
    // is allowed while TAT + needed − burst ≤ now, and moves TAT on by the cost.
    let sql = with_clock!(
        "INSERT INTO throttle_buckets AS b (key, tat_us, wait_us)
        SELECT $1, clock.now_us + $2, 0 FROM clock
        ON CONFLICT (key) DO UPDATE SET (tat_us, wait_us) = (
            SELECT CASE WHEN w.wait <= 0 THEN w.base + $2 ELSE b.tat_us END,
                   greatest(w.wait, 0)
            FROM (SELECT greatest(b.tat_us, clock.now_us) AS base,
                         greatest(b.tat_us, clock.now_us) + $3 - $4 - clock.now_us AS wait
                  FROM clock) AS w)
        RETURNING wait_us"
    );
    sqlx::query_scalar(sql)
        .bind(key)
        .bind(cost_us)
        .bind(needed_us)
        .bind(burst_us)
        .fetch_one(conn)
        .await
}

/// A failure just recorded, by [`fail`].
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FailureRow {
    /// The key it was recorded for.
    pub key: String,
    /// The key's count with it, after decay.
    pub count: i32,
    /// When it was recorded (microseconds by the database's clock).
    pub last_us: i64,
    /// When the one before it was.
    pub previous_us: Option<i64>,
}

/// Records a failure for each of `keys` at one moment: with a decay period above zero
/// (`decays_us`, in the same order), a key's count first loses one for every whole such
/// period since decay was last counted. The keys are locked in sorted order, so that two
/// statements on the same keys cannot deadlock.
pub async fn fail(
    conn: &mut PgConnection,
    keys: &[&str],
    decays_us: &[i64],
) -> Result<Vec<FailureRow>, sqlx::Error> {
    let sql = with_clock!(
        "INSERT INTO throttle_failures AS f
            (key, count, last_us, previous_us, decayed_to_us, decay_us)
        SELECT k.key, 1, clock.now_us, NULL, clock.now_us, k.decay
        FROM clock, unnest($1::text[], $2::bigint[]) AS k(key, decay)
        ORDER BY k.key
        ON CONFLICT (key) DO UPDATE SET (count, last_us, previous_us, decayed_to_us, decay_us) = (
            SELECT greatest(f.count - d.periods, 0) + 1, clock.now_us, f.last_us,
                   CASE WHEN EXCLUDED.decay_us <= 0 OR f.count - d.periods <= 0
                        THEN clock.now_us
                        ELSE f.decayed_to_us + d.periods * EXCLUDED.decay_us END,
                   EXCLUDED.decay_us
            FROM clock, (SELECT CASE WHEN EXCLUDED.decay_us > 0
                                     THEN greatest(clock.now_us - f.decayed_to_us, 0)
                                          / EXCLUDED.decay_us
                                     ELSE 0 END AS periods
                         FROM clock) AS d)
        RETURNING key, count, last_us, previous_us"
    );
    sqlx::query_as(sql)
        .bind(keys)
        .bind(decays_us)
        .fetch_all(conn)
        .await
}

/// Takes back the failures of `forgive_keys` recorded at `at_us` (each count loses one
/// and, unless a later failure was recorded since, `previous_us` becomes the last
/// again), and forgets the failures of `reset_keys`, in one statement. No key may be in
/// both lists. The rows are locked first, in sorted order as [`fail`] locks them, so that
/// the two cannot deadlock.
pub async fn settle(
    conn: &mut PgConnection,
    forgive_keys: &[&str],
    at_us: &[i64],
    previous_us: &[Option<i64>],
    reset_keys: &[&str],
) -> Result<(), sqlx::Error> {
    if forgive_keys.is_empty() {
        sqlx::query(
            "WITH relaxed AS MATERIALIZED (
                SELECT set_config('synchronous_commit', 'off', true) AS setting),
            locked AS (
                SELECT key FROM throttle_failures WHERE key = ANY($1::text[])
                ORDER BY key FOR UPDATE)
            DELETE FROM throttle_failures USING relaxed
            WHERE key IN (SELECT key FROM locked)",
        )
        .bind(reset_keys)
        .execute(conn)
        .await?;
        return Ok(());
    }
    sqlx::query(
        "WITH relaxed AS MATERIALIZED (
            SELECT set_config('synchronous_commit', 'off', true) AS setting),
        locked AS (
            SELECT key FROM throttle_failures
            WHERE key = ANY($1::text[]) OR key = ANY($4::text[])
            ORDER BY key FOR UPDATE),
        reset AS (
            DELETE FROM throttle_failures USING relaxed
            WHERE key = ANY($4::text[]) AND key IN (SELECT key FROM locked))
        UPDATE throttle_failures AS f SET
            count = greatest(f.count - 1, 0),
            last_us = CASE WHEN f.last_us = g.at THEN coalesce(g.previous, f.last_us)
                           ELSE f.last_us END,
            previous_us = CASE WHEN f.last_us = g.at THEN NULL ELSE f.previous_us END
        FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS g(key, at, previous), relaxed
        WHERE f.key = g.key AND f.key IN (SELECT key FROM locked)",
    )
    .bind(forgive_keys)
    .bind(at_us)
    .bind(previous_us)
    .bind(reset_keys)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes the rows that no longer matter: buckets that are full again (the same as no
/// row), and failures whose last one is older than `forget_after_us`. Returns how many
/// rows went.
pub async fn prune(conn: &mut PgConnection, forget_after_us: i64) -> Result<u64, sqlx::Error> {
    // Rows are taken in key order, as the counting statements take them, and those they
    // hold are skipped: pruning never waits on a sign-in, nor a sign-in on pruning.
    let buckets = with_clock!(
        "DELETE FROM throttle_buckets WHERE key IN (
            SELECT key FROM throttle_buckets, clock WHERE tat_us <= clock.now_us
            ORDER BY key FOR UPDATE OF throttle_buckets SKIP LOCKED)"
    );
    let failures = with_clock!(
        "DELETE FROM throttle_failures WHERE key IN (
            SELECT key FROM throttle_failures, clock WHERE last_us < clock.now_us - $1
            ORDER BY key FOR UPDATE OF throttle_failures SKIP LOCKED)"
    );
    let a = sqlx::query(buckets)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let b = sqlx::query(failures)
        .bind(forget_after_us)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(a + b)
}
