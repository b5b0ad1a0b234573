//! [`SharedLimiter`]: the counts in PostgreSQL, shared by every instance on the database.
//!
//! Each operation is one statement on the request's connection (see [`crate::db::throttle`]
//! for the SQL and why it is exact under concurrency). Rows that no longer matter are
//! deleted at most once a minute per instance, on a task of its own.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use super::{FORGET_FAILURES_AFTER, Failure, Failures, Limiter, Stamp, micros};
use crate::{
    db::{self, ConnRef, Db, throttle},
    error::{AppError, AppResult},
};

/// How often an instance deletes the rows that no longer matter.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Counts kept in PostgreSQL.
pub struct SharedLimiter {
    db: Db,
    /// When this instance last pruned.
    pruned_at: Mutex<Instant>,
    pruning: std::sync::Arc<AtomicBool>,
}

impl SharedLimiter {
    /// A limiter keeping its counts in `db`, which must be PostgreSQL.
    pub fn new(db: Db) -> Self {
        Self {
            db,
            pruned_at: Mutex::new(Instant::now()),
            pruning: std::sync::Arc::default(),
        }
    }

    /// Runs `op` on a connection of the database, which must be PostgreSQL.
    async fn run<T>(
        &self,
        op: impl AsyncFnOnce(&mut sqlx::PgConnection) -> Result<T, sqlx::Error>,
    ) -> AppResult<T> {
        let mut conn = self.db.acquire().await?;
        match db::AsConn::as_conn(&mut conn) {
            ConnRef::Postgres(c) => Ok(op(c).await?),
            ConnRef::Sqlite(_) => Err(AppError::internal(
                "the shared limiter needs PostgreSQL".to_owned(),
            )),
        }
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
        let (db, pruning) = (self.db.clone(), self.pruning.clone());
        tokio::spawn(async move {
            let limiter = SharedLimiter::new(db);
            let forget = micros(FORGET_FAILURES_AFTER);
            match limiter
                .run(async |c| throttle::prune(c, forget).await)
                .await
            {
                Ok(n) => tracing::debug!(rows = n, "pruned the limiter's stale rows"),
                Err(e) => tracing::warn!(error = %e, "could not prune the limiter's rows"),
            }
            pruning.store(false, Ordering::Release);
        });
    }
}

#[async_trait::async_trait]
impl Limiter for SharedLimiter {
    async fn take(
        &self,
        key: &str,
        cost: u32,
        per_minute: u32,
        burst: u32,
    ) -> AppResult<Result<(), Duration>> {
        self.prune_if_due();
        // The emission interval: how long one token takes to come back.
        let interval = 60_000_000 / i64::from(per_minute.max(1));
        let cost_us = i64::from(cost) * interval;
        let needed_us = i64::from(cost.min(burst)) * interval;
        let burst_us = i64::from(burst) * interval;
        let wait = self
            .run(async |c| throttle::take(c, key, cost_us, needed_us, burst_us).await)
            .await?;
        Ok(match u64::try_from(wait) {
            Ok(0) | Err(_) => Ok(()),
            Ok(us) => Err(Duration::from_micros(us)),
        })
    }

    async fn failures(&self, key: &str) -> AppResult<Failures> {
        let row = self.run(async |c| throttle::failures(c, key).await).await?;
        Ok(Failures {
            count: row.count.map_or(0, |n| u32::try_from(n).unwrap_or(0)),
            last: row.last_us.map(Stamp),
            now: Stamp(row.now_us),
        })
    }

    async fn fail(&self, key: &str, decay_every: Option<Duration>) -> AppResult<Failure> {
        let decay = decay_every.map_or(0, micros);
        let (at, previous) = self
            .run(async |c| throttle::fail(c, key, decay).await)
            .await?;
        Ok(Failure {
            at: Stamp(at),
            previous: previous.map(Stamp),
        })
    }

    async fn forgive(&self, key: &str, failure: Failure) -> AppResult<()> {
        let (at, previous) = (failure.at.0, failure.previous.map(|p| p.0));
        self.run(async |c| throttle::forgive(c, key, at, previous).await)
            .await
    }

    async fn reset(&self, key: &str) -> AppResult<()> {
        self.run(async |c| throttle::reset(c, key).await).await
    }
}
