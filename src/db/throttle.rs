//! The counts of brute-force protection on PostgreSQL, shared by every instance: token
//! buckets as GCRA (the algorithm of redis-cell and governor) and failure counts.
//!
//! Each operation is one statement, timed by the database's clock (`clock_timestamp()`,
//! read once per statement), so that instances' clocks do not matter and attempts made
//! at once on different instances are counted exactly: the upsert's row lock orders them.
//! Statements run outside transactions: under READ COMMITTED, a conflicting upsert
//! re-reads the row another has just committed.

use sqlx::PgConnection;

/// Prefixes a statement with `clock`: the database's clock, in microseconds since the
/// epoch, read once.
macro_rules! with_clock {
    ($sql:literal) => {
        concat!(
            "WITH clock AS MATERIALIZED ",
            "(SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS now_us) ",
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

/// The failures of a key: how many, when the last was, and the database's time now (all
/// in microseconds).
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct FailureRow {
    /// How many, as counted at the last one.
    pub count: Option<i32>,
    /// When the last one was.
    pub last_us: Option<i64>,
    /// Now, by the database's clock.
    pub now_us: i64,
}

/// The failures recorded for `key`.
pub async fn failures(conn: &mut PgConnection, key: &str) -> Result<FailureRow, sqlx::Error> {
    let sql = with_clock!(
        "SELECT f.count, f.last_us, clock.now_us
        FROM clock LEFT JOIN throttle_failures AS f ON f.key = $1"
    );
    sqlx::query_as(sql).bind(key).fetch_one(conn).await
}

/// Records a failure for `key`: with `decay_us` above zero, the count first loses one for
/// every whole such period since decay was last counted. Returns when this failure and
/// the one before it were.
pub async fn fail(
    conn: &mut PgConnection,
    key: &str,
    decay_us: i64,
) -> Result<(i64, Option<i64>), sqlx::Error> {
    let sql = with_clock!(
        "INSERT INTO throttle_failures AS f (key, count, last_us, previous_us, decayed_to_us)
        SELECT $1, 1, clock.now_us, NULL, clock.now_us FROM clock
        ON CONFLICT (key) DO UPDATE SET (count, last_us, previous_us, decayed_to_us) = (
            SELECT greatest(f.count - d.periods, 0) + 1, clock.now_us, f.last_us,
                   CASE WHEN $2 <= 0 OR f.count - d.periods <= 0 THEN clock.now_us
                        ELSE f.decayed_to_us + d.periods * $2 END
            FROM clock, (SELECT CASE WHEN $2 > 0
                                     THEN greatest(clock.now_us - f.decayed_to_us, 0) / $2
                                     ELSE 0 END AS periods
                         FROM clock) AS d)
        RETURNING last_us, previous_us"
    );
    sqlx::query_as(sql)
        .bind(key)
        .bind(decay_us)
        .fetch_one(conn)
        .await
}

/// Takes back the failure of `key` recorded at `at_us`: the count loses one and, unless a
/// later failure was recorded since, `previous_us` becomes the last again.
pub async fn forgive(
    conn: &mut PgConnection,
    key: &str,
    at_us: i64,
    previous_us: Option<i64>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE throttle_failures SET
            count = greatest(count - 1, 0),
            last_us = CASE WHEN last_us = $2 THEN coalesce($3, last_us) ELSE last_us END,
            previous_us = CASE WHEN last_us = $2 THEN NULL ELSE previous_us END
        WHERE key = $1",
    )
    .bind(key)
    .bind(at_us)
    .bind(previous_us)
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets the failures of `key`.
pub async fn reset(conn: &mut PgConnection, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM throttle_failures WHERE key = $1")
        .bind(key)
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes the rows that no longer matter: buckets that are full again (the same as no
/// row), and failures whose last one is older than `forget_after_us`. Returns how many
/// rows went.
pub async fn prune(conn: &mut PgConnection, forget_after_us: i64) -> Result<u64, sqlx::Error> {
    let buckets =
        with_clock!("DELETE FROM throttle_buckets USING clock WHERE tat_us <= clock.now_us");
    let failures =
        with_clock!("DELETE FROM throttle_failures USING clock WHERE last_us < clock.now_us - $1");
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
