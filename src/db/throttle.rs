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
    ($($sql:tt)+) => {
        concat!(
            "WITH clock AS MATERIALIZED ",
            "(SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS now_us, ",
            "set_config('synchronous_commit', 'off', true) AS relaxed) ",
            $($sql)+
        )
    };
}

/// Takes `$2` (cost × emission interval) from the bucket `$1`, which holds `$4` (burst ×
/// interval); a cost above the burst needs `$3` (burst × interval) and leaves the rest
/// owed. Its `wait_us` is then 0 when taken, or how many microseconds until it could be.
///
/// A bucket's theoretical arrival time (TAT) is when it would be full again; a take is
/// allowed while TAT + needed − burst ≤ now, and moves TAT on by the cost.
macro_rules! take_from_bucket {
    () => {
        "INSERT INTO throttle_buckets AS b (key, tat_us, wait_us)
        SELECT $1, clock.now_us + $2, 0 FROM clock
        ON CONFLICT (key) DO UPDATE SET (tat_us, wait_us) = (
            SELECT CASE WHEN w.wait <= 0 THEN w.base + $2 ELSE b.tat_us END,
                   greatest(w.wait, 0)
            FROM (SELECT greatest(b.tat_us, clock.now_us) AS base,
                         greatest(b.tat_us, clock.now_us) + $3 - $4 - clock.now_us AS wait
                  FROM clock) AS w)
        RETURNING wait_us"
    };
}

/// A draw on a bucket, in the units of the statement: microseconds of its emission
/// interval.
#[derive(Debug, Clone, Copy)]
pub struct Draw<'a> {
    /// The bucket.
    pub key: &'a str,
    /// The cost × the interval.
    pub cost_us: i64,
    /// What must be in the bucket: the cost, at most the burst, × the interval.
    pub needed_us: i64,
    /// The burst × the interval.
    pub burst_us: i64,
}

/// Takes `draw`. Returns 0 when taken, or how many microseconds until it could be.
pub async fn take(conn: &mut PgConnection, draw: Draw<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(with_clock!(take_from_bucket!()))
        .bind(draw.key)
        .bind(draw.cost_us)
        .bind(draw.needed_us)
        .bind(draw.burst_us)
        .fetch_one(conn)
        .await
}

/// What [`attempt`] did.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptRow {
    /// 0 when the draw was taken, or how many microseconds until it could be.
    pub wait_us: i64,
    /// The key a failure was recorded for (none when the draw was refused).
    pub key: Option<String>,
    /// The key's count with it, after decay.
    pub count: Option<i32>,
    /// When it was recorded (microseconds by the database's clock).
    pub last_us: Option<i64>,
    /// When the one before it was.
    pub previous_us: Option<i64>,
}

/// Takes `draw` and, only when it is taken, records a failure for each of `keys` at the
/// same moment: with a decay period above zero (`decays_us`, in the same order), a key's
/// count first loses one for every whole such period since decay was last counted. One
/// row per failure recorded, or a single row with the wait when the draw was refused.
///
/// The bucket's row is locked first, then the keys' in sorted order, so that two
/// statements on the same keys cannot deadlock (none holds a failure's row while it
/// waits for a bucket's).
pub async fn attempt(
    conn: &mut PgConnection,
    draw: Draw<'_>,
    keys: &[&str],
    decays_us: &[i64],
) -> Result<Vec<AttemptRow>, sqlx::Error> {
    let sql = with_clock!(
        ", taken AS (",
        take_from_bucket!(),
        "), failed AS (
        INSERT INTO throttle_failures AS f
            (key, count, last_us, previous_us, decayed_to_us, decay_us)
        SELECT k.key, 1, clock.now_us, NULL, clock.now_us, k.decay
        FROM clock, unnest($5::text[], $6::bigint[]) AS k(key, decay)
        WHERE (SELECT wait_us FROM taken) = 0
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
        RETURNING key, count, last_us, previous_us)
        SELECT taken.wait_us, failed.key, failed.count, failed.last_us, failed.previous_us
        FROM taken LEFT JOIN failed ON true"
    );
    sqlx::query_as(sql)
        .bind(draw.key)
        .bind(draw.cost_us)
        .bind(draw.needed_us)
        .bind(draw.burst_us)
        .bind(keys)
        .bind(decays_us)
        .fetch_all(conn)
        .await
}

/// Takes back the failures of `forgive_keys` recorded at `at_us` (each count loses one
/// and, unless a later failure was recorded since, `previous_us` becomes the last
/// again), and forgets the failures of `reset_keys`, in one statement. No key may be in
/// both lists. The rows are locked first, in sorted order as [`attempt`] locks them, so that
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
