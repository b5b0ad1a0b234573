//! [`SharedLimiter`]: the counts in PostgreSQL, shared by every instance on the database.
//!
//! Each operation is one statement (see [`crate::db::throttle`] for the SQL and why it is
//! exact under concurrency). Rows that no longer matter are deleted at most once a
//! minute per instance, on a task of its own.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use sqlx::{PgConnection, PgPool};

use super::{Draw, FORGET_FAILURES_AFTER, Failure, Limiter, Stamp, micros};
use crate::{
    db::throttle,
    error::{AppError, AppResult},
};

/// How often an instance deletes the rows that no longer matter.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Counts kept in PostgreSQL.
pub struct SharedLimiter {
    pool: PgPool,
    /// When this instance last pruned.
    pruned_at: Mutex<Instant>,
    pruning: Arc<AtomicBool>,
}

impl SharedLimiter {
    /// A limiter keeping its counts in the database of `pool`.
    pub fn new(pool: &PgPool) -> Self {
        Self {
            pool: pool.clone(),
            pruned_at: Mutex::new(Instant::now()),
            pruning: Arc::default(),
        }
    }

    /// Runs `op` on a connection of the pool. (Not the request's kept one: the
    /// limiter's statements are writes, which never hold a connection between them.)
    async fn run<T>(
        &self,
        op: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
    ) -> AppResult<T> {
        let mut conn = self.pool.acquire().await?;
        Ok(op(&mut conn).await?)
    }

    /// Deletes stale rows on a task of its own, if a minute has passed since the last time.
    fn prune_if_due(&self) {
        {
            let mut at = self.pruned_at.lock().unwrap_or_else(|e| e.into_inner());
            if at.elapsed() < PRUNE_EVERY || self.pruning.swap(true, Ordering::AcqRel) {
                return;
            }
            *at = Instant::now();
        }
        let (pool, pruning) = (self.pool.clone(), self.pruning.clone());
        tokio::spawn(async move {
            let forget = micros(FORGET_FAILURES_AFTER);
            let pruned = async {
                let mut conn = pool.acquire().await?;
                throttle::prune(&mut conn, forget).await
            }
            .await;
            match pruned {
                Ok(n) => tracing::debug!(rows = n, "pruned the limiter's stale rows"),
                Err(e) => tracing::warn!(error = %e, "could not prune the limiter's rows"),
            }
            pruning.store(false, Ordering::Release);
        });
    }
}

#[async_trait::async_trait]
impl Limiter for SharedLimiter {
    async fn take(&self, draw: Draw<'_>) -> AppResult<Result<(), Duration>> {
        self.prune_if_due();
        let wait = self
            .run(async |c| throttle::take(c, in_micros(draw)).await)
            .await?;
        Ok(waited(wait))
    }

    async fn attempt(
        &self,
        draw: Draw<'_>,
        keys: &[(&str, Option<Duration>)],
    ) -> AppResult<Result<Vec<Failure>, Duration>> {
        self.prune_if_due();
        let names: Vec<&str> = keys.iter().map(|(k, _)| *k).collect();
        let decays: Vec<i64> = keys.iter().map(|(_, d)| d.map_or(0, micros)).collect();
        let rows = self
            .run(async |c| throttle::attempt(c, in_micros(draw), &names, &decays).await)
            .await?;
        let wait = rows.first().map_or(0, |r| r.wait_us);
        if let Err(wait) = waited(wait) {
            return Ok(Err(wait));
        }
        let recorded = |name: &str| {
            let row = rows.iter().find(|r| r.key.as_deref() == Some(name))?;
            Some(Failure {
                at: Stamp(row.last_us?),
                previous: row.previous_us.map(Stamp),
                count: u32::try_from(row.count?).unwrap_or(0),
            })
        };
        names
            .iter()
            .map(|name| {
                recorded(name)
                    .ok_or_else(|| AppError::internal("a failure was not recorded".to_owned()))
            })
            .collect::<AppResult<_>>()
            .map(Ok)
    }

    async fn settle(&self, forgive: &[(&str, Failure)], reset: &[&str]) -> AppResult<()> {
        let keys: Vec<&str> = forgive.iter().map(|(k, _)| *k).collect();
        let at: Vec<i64> = forgive.iter().map(|(_, f)| f.at.0).collect();
        let previous: Vec<Option<i64>> = forgive
            .iter()
            .map(|(_, f)| f.previous.map(|p| p.0))
            .collect();
        self.run(async |c| throttle::settle(c, &keys, &at, &previous, reset).await)
            .await
    }
}

/// `draw` in the statement's units: microseconds of the bucket's emission interval, how
/// long one token takes to come back.
fn in_micros(draw: Draw<'_>) -> throttle::Draw<'_> {
    let interval = 60_000_000 / i64::from(draw.per_minute.max(1));
    throttle::Draw {
        key: draw.key,
        cost_us: i64::from(draw.cost) * interval,
        needed_us: i64::from(draw.cost.min(draw.burst)) * interval,
        burst_us: i64::from(draw.burst) * interval,
    }
}

/// A bucket's answer: taken at 0, or the wait.
fn waited(wait_us: i64) -> Result<(), Duration> {
    match u64::try_from(wait_us) {
        Ok(0) | Err(_) => Ok(()),
        Ok(us) => Err(Duration::from_micros(us)),
    }
}
