//! [`MemoryLimiter`]: the counts of one process, in maps that prune themselves.

use std::{
    collections::HashMap,
    sync::{LazyLock, Mutex},
    time::{Duration, Instant},
};

use super::{Draw, FORGET_FAILURES_AFTER, Failure, Limiter, Stamp, micros};
use crate::error::AppResult;
/// Maps are pruned when they grow past this many entries (and then past twice their size
/// after the last pruning), so that pruning costs little per insertion.
const PRUNE_FROM: usize = 10_000;

/// Counts kept in this process. Entries that no longer matter are pruned as the maps
/// grow: a bucket once it would have refilled completely (it is then the same as a new
/// one), failure counts a day after the last failure.
#[derive(Default)]
pub struct MemoryLimiter {
    buckets: Mutex<Pruned<(f64, Instant, Duration)>>,
    failures: Mutex<Pruned<Record>>,
}

/// One key's failures.
#[derive(Debug, Clone, Copy)]
struct Record {
    count: u32,
    /// When the last one was.
    last: Stamp,
    /// Where decay has been counted up to: moved on by whole periods only, so that
    /// failures coming more often than a period do not stop the count from decaying.
    decayed_to: Stamp,
}

/// This process's clock as stamps: microseconds since its first reading.
fn now() -> Stamp {
    static START: LazyLock<Instant> = LazyLock::new(Instant::now);
    Stamp(i64::try_from(START.elapsed().as_micros()).unwrap_or(i64::MAX))
}

/// A map that is pruned when it grows.
struct Pruned<V> {
    map: HashMap<String, V>,
    next_prune: usize,
}

impl<V> Default for Pruned<V> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            next_prune: PRUNE_FROM,
        }
    }
}

impl<V> Pruned<V> {
    fn prune_if_large(&mut self, keep: impl Fn(&V) -> bool) {
        if self.map.len() >= self.next_prune {
            self.map.retain(|_, v| keep(v));
            self.next_prune = PRUNE_FROM.max(self.map.len() * 2);
        }
    }
}

#[async_trait::async_trait]
impl Limiter for MemoryLimiter {
    async fn take(&self, draw: Draw<'_>) -> AppResult<Result<(), Duration>> {
        Ok(self.take_now(draw.key, draw.cost, draw.per_minute, draw.burst))
    }

    async fn attempt(
        &self,
        draw: Draw<'_>,
        keys: &[(&str, Option<Duration>)],
    ) -> AppResult<Result<Vec<Failure>, Duration>> {
        Ok(self
            .take_now(draw.key, draw.cost, draw.per_minute, draw.burst)
            .map(|()| {
                keys.iter()
                    .map(|(key, decay)| self.fail_now(key, *decay))
                    .collect()
            }))
    }

    async fn settle(&self, forgive: &[(&str, Failure)], reset: &[&str]) -> AppResult<()> {
        for (key, failure) in forgive {
            self.forgive_now(key, *failure);
        }
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        for key in reset {
            failures.map.remove(*key);
        }
        Ok(())
    }
}

impl MemoryLimiter {
    fn take_now(&self, key: &str, cost: u32, per_minute: u32, burst: u32) -> Result<(), Duration> {
        let now = Instant::now();
        let cost = f64::from(cost);
        let rate = f64::from(per_minute.max(1)) / 60.0;
        let full = f64::from(burst);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        buckets.prune_if_large(|(_, at, until_full)| at.elapsed() < *until_full);
        let (tokens, at, until_full) =
            buckets
                .map
                .entry(key.to_owned())
                .or_insert((full, now, Duration::ZERO));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(full);
        *at = now;
        // A cost the bucket can never hold needs it full, and then takes it into debt.
        let needed = cost.min(full);
        let taken = if *tokens >= needed {
            *tokens -= cost;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((needed - *tokens) / rate))
        };
        // Kept until it would be full again (a debt included), and no longer.
        *until_full = Duration::from_secs_f64((full - *tokens) / rate);
        taken
    }

    /// The count of `key` and when its last failure was.
    #[cfg(test)]
    fn failures_now(&self, key: &str) -> (u32, Option<Stamp>) {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures
            .map
            .get(key)
            .map_or((0, None), |f| (f.count, Some(f.last)))
    }

    fn fail_now(&self, key: &str, decay_every: Option<Duration>) -> Failure {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = now();
        let forget = micros(FORGET_FAILURES_AFTER);
        failures.prune_if_large(|f| now.0 - f.last.0 < forget);
        let previous = failures.map.get(key).map(|f| f.last);
        let entry = failures.map.entry(key.to_owned()).or_insert(Record {
            count: 0,
            last: now,
            decayed_to: now,
        });
        if let Some(every) = decay_every.map(micros).filter(|d| *d > 0) {
            let periods = (now.0 - entry.decayed_to.0).max(0) / every;
            entry.count = entry
                .count
                .saturating_sub(u32::try_from(periods).unwrap_or(u32::MAX));
            entry.decayed_to = if entry.count == 0 {
                now
            } else {
                Stamp(entry.decayed_to.0 + every * periods)
            };
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        Failure {
            at: now,
            previous,
            count: entry.count,
        }
    }

    fn forgive_now(&self, key: &str, failure: Failure) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = failures.map.get_mut(key) else {
            return;
        };
        entry.count = entry.count.saturating_sub(1);
        if entry.last != failure.at {
            // A later failure stands: its time does too.
            return;
        }
        match failure.previous {
            Some(last) => entry.last = last,
            None if entry.count == 0 => {
                failures.map.remove(key);
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_a_burst_then_refill() {
        let l = MemoryLimiter::default();
        for _ in 0..3 {
            assert!(l.take_now("k", 1, 60, 3).is_ok());
        }
        let wait = l.take_now("k", 1, 60, 3).unwrap_err();
        assert!(
            wait <= Duration::from_secs(1) && wait > Duration::ZERO,
            "{wait:?}"
        );
        assert!(l.take_now("other", 1, 60, 3).is_ok(), "keys are separate");
    }

    #[test]
    fn a_costly_take_needs_as_many_tokens_and_never_more_than_the_burst() {
        let l = MemoryLimiter::default();
        assert!(l.take_now("k", 2, 60, 3).is_ok());
        // One token left: a take of two waits for one more, a second at 60 a minute.
        let wait = l.take_now("k", 2, 60, 3).unwrap_err();
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1));
        // A cost above the burst is taken from a full bucket, and the rest is owed: the
        // next token comes only once the debt (7 tokens) is paid, seven seconds later.
        assert!(l.take_now("big", 10, 60, 3).is_ok());
        let wait = l.take_now("big", 1, 60, 3).unwrap_err();
        assert!(wait > Duration::from_millis(7900) && wait <= Duration::from_secs(8));
    }

    #[test]
    fn idle_buckets_are_pruned_as_the_map_grows() {
        let l = MemoryLimiter::default();
        // Fast refill: every bucket is full again within a millisecond.
        for i in 0..PRUNE_FROM {
            l.take_now(&format!("k{i}"), 1, 600_000, 1).unwrap();
        }
        std::thread::sleep(Duration::from_millis(5));
        l.take_now("one more", 1, 600_000, 1).unwrap();
        let size = l.buckets.lock().unwrap().map.len();
        assert!(size < 10, "idle buckets were dropped: {size} left");
    }

    #[test]
    fn an_account_count_decays_however_often_failures_come() {
        let l = MemoryLimiter::default();
        let every = Some(Duration::from_secs(300));
        for _ in 0..3 {
            l.fail_now("k", every);
        }
        assert_eq!(l.failures_now("k").0, 3);
        let age = |l: &MemoryLimiter, key: &str, by: Duration| {
            let mut failures = l.failures.lock().unwrap();
            let f = failures.map.get_mut(key).unwrap();
            f.last.0 -= micros(by);
            f.decayed_to.0 -= micros(by);
        };
        // Ten minutes on, two of the three have faded.
        age(&l, "k", Duration::from_secs(600));
        l.fail_now("k", every);
        assert_eq!(l.failures_now("k").0, 2);
        // Failures every four minutes still decay: one period in every five minutes.
        for _ in 0..5 {
            age(&l, "k", Duration::from_secs(240));
            l.fail_now("k", every);
        }
        assert_eq!(l.failures_now("k").0, 2 + 5 - 4, "20 minutes: four periods");
        // Without decay nothing fades; forgiving takes one back.
        l.fail_now("pair", None);
        age(&l, "pair", Duration::from_secs(600));
        l.fail_now("pair", None);
        assert_eq!(l.failures_now("pair").0, 2);
        let before = l.failures_now("pair").1;
        let taken_back = l.fail_now("pair", None);
        l.forgive_now("pair", taken_back);
        assert_eq!(l.failures_now("pair").0, 2);
        assert_eq!(l.failures_now("pair").1, before, "as if never counted");
        // A failure recorded after the one taken back keeps its time.
        let taken_back = l.fail_now("pair", None);
        std::thread::sleep(Duration::from_millis(2));
        l.fail_now("pair", None);
        let latest = l.failures_now("pair").1;
        l.forgive_now("pair", taken_back);
        assert_eq!(l.failures_now("pair").0, 3);
        assert_eq!(l.failures_now("pair").1, latest);
        assert_ne!(latest, before);
    }
}
