//! Brute-force protection, counted per attempt inside the resolvers.
//!
//! - Per client IP: credential operations (login, register, refresh, changePassword,
//!   createApiKey) draw from a token bucket (by default 30 a minute, bursts of 10):
//!   register and refresh before anything else, the three that check a password with
//!   the attempt's count, once their input is valid and before any password work.
//! - Per account and IP: after 5 consecutive failed logins, each further attempt must
//!   wait 1 s, doubling with every failure, at most 15 minutes; a success resets it.
//! - Per account: after 100 failures, logins to it pause for 15 minutes (NIST SP
//!   800-63B), whatever the IP, except from the network of one of the account's sign-ins
//!   in the last 30 days (decided by [`crate::auth::Auth`], which knows the sessions), so
//!   that the pause cannot be aimed at the owner. The count decays by one every five
//!   minutes, so that old failures stop counting: 100 fade in a little over eight hours.
//! - Wrong current passwords (`changePassword`, `createApiKey`) count as failed logins.
//! - Per account: writes (posts and votes) draw from a token bucket (by default 60 a
//!   minute, bursts of 30), a post costing one more for every 4 KiB of its text, so
//!   that no one account can fill the disk however it spreads its writes over aliases,
//!   batches and connections.
//!
//! The counts live behind [`Limiter`]: in the database when it is PostgreSQL
//! ([`SharedLimiter`]), so that every instance on it counts together, and in memory
//! ([`MemoryLimiter`]) on SQLite, where one process serves. A store that fails refuses
//! the operation it was to count: it is never waved through.

use std::{net::IpAddr, sync::Arc, time::Duration};

mod memory;
mod shared;

pub use memory::MemoryLimiter;
pub use shared::SharedLimiter;

use crate::{
    config::ThrottleConfig,
    db::Db,
    error::{AppError, AppResult},
};

/// Consecutive failures from one IP to one account before back-off starts.
const BACKOFF_AFTER: u32 = 5;
/// The first wait, doubled with each further failure.
const BACKOFF_START: Duration = Duration::from_secs(1);
/// The longest wait.
const BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);
/// Failures to one account, from anywhere, before it pauses.
const LOCK_AFTER: u32 = 100;
/// How long such a pause lasts, from the failure that reached the count.
const LOCK_FOR: Duration = Duration::from_secs(15 * 60);
/// The account's count of failures loses one this often.
const LOCK_DECAY: Duration = Duration::from_secs(5 * 60);
/// How long failure counts are kept after the last failure: longer than any wait they
/// can cause.
const FORGET_FAILURES_AFTER: Duration = Duration::from_secs(24 * 3600);

/// A moment on a store's clock, in microseconds: the database's for the shared store, so
/// that instances' clocks do not matter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp(pub i64);

/// `d` in whole microseconds, as stamps count.
fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// A draw of `cost` tokens on the bucket `key`, which refills at `per_minute` and holds
/// at most `burst`.
#[derive(Debug, Clone, Copy)]
pub struct Draw<'a> {
    /// The bucket.
    pub key: &'a str,
    /// How many tokens.
    pub cost: u32,
    /// How many come back a minute.
    pub per_minute: u32,
    /// How many it holds when full.
    pub burst: u32,
}

/// Where attempts are counted. Each method is one step of the store (one statement for
/// the shared one), whatever the number of keys, so that a sign-in costs two: its
/// credential budget drawn with its failure counted ahead, and the settling of that
/// failure.
#[async_trait::async_trait]
pub trait Limiter: Send + Sync {
    /// Takes `draw`; `Ok(Err(wait))` holds how long until its tokens are available. A
    /// cost above the burst is taken once the bucket is full, and leaves it owing the
    /// rest: what is taken over time never exceeds the refill, however large each cost.
    async fn take(&self, draw: Draw<'_>) -> AppResult<Result<(), Duration>>;
    /// Takes `draw` as [`Limiter::take`] does and, only once it is granted, records a
    /// failure for each of `keys`, all at the same moment; a refused draw records
    /// nothing. With a decay period, a key's count first loses one for every whole such
    /// period it has held, however often failures come. Returns the failures recorded,
    /// in the order of `keys`, which must be distinct.
    async fn attempt(
        &self,
        draw: Draw<'_>,
        keys: &[(&str, Option<Duration>)],
    ) -> AppResult<Result<Vec<Failure>, Duration>>;
    /// Takes back each failure of `forgive`, counted ahead for an attempt that did not
    /// fail after all (unless a later one was recorded since, the time of the one before
    /// it becomes the last again, so that it restarts no wait), and forgets every failure
    /// of the keys in `reset`. No key may be in both.
    async fn settle(&self, forgive: &[(&str, Failure)], reset: &[&str]) -> AppResult<()>;
}

/// The brute-force protection service.
#[derive(Clone)]
pub struct Throttle {
    limiter: Arc<dyn Limiter>,
    config: ThrottleConfig,
}

fn limited(what: &str, wait: Duration) -> AppError {
    let retry_after = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    tracing::info!(what, retry_after, "rate limited");
    crate::telemetry::auth_event("rate_limited");
    AppError::RateLimited {
        message: format!("too many {what}; try again in {retry_after} s"),
        retry_after: retry_after.max(1),
    }
}

/// Times one of the store's operations for `/metrics`.
async fn timed<T>(op: &'static str, work: impl Future<Output = AppResult<T>>) -> AppResult<T> {
    let started = std::time::Instant::now();
    let result = work.await;
    ::metrics::histogram!("limiter_duration_seconds", "op" => op)
        .record(started.elapsed().as_secs_f64());
    if let Err(e) = &result {
        ::metrics::counter!("limiter_errors_total", "op" => op).increment(1);
        tracing::error!(op, error = %e, "the limiter's store failed; refusing");
    }
    result
}

impl Throttle {
    /// A throttle counting in memory.
    pub fn new(config: ThrottleConfig) -> Self {
        Self::with(config, Arc::new(MemoryLimiter::default()))
    }

    /// A throttle counting in `limiter`.
    pub fn with(config: ThrottleConfig, limiter: Arc<dyn Limiter>) -> Self {
        Self { limiter, config }
    }

    /// A throttle for instances on `db`: shared through it when it is PostgreSQL, in
    /// memory otherwise.
    pub fn for_db(config: ThrottleConfig, db: &Db) -> Self {
        match db {
            Db::Postgres(pool) => Self::with(config, Arc::new(SharedLimiter::new(pool))),
            Db::Sqlite(_) => Self::new(config),
        }
    }

    /// Spends one of the IP's credential operations, or refuses. (A password attempt
    /// spends it with [`Throttle::login_attempt`] instead.)
    pub async fn credential_attempt(&self, ip: Option<IpAddr>) -> AppResult<()> {
        if !self.config.enabled {
            return Ok(());
        }
        let key = self.address_budget(ip);
        timed("take", self.limiter.take(self.credential_draw(&key)))
            .await?
            .map_err(|wait| limited("attempts from this address", wait))
    }

    /// The key of `ip`'s credential budget.
    fn address_budget(&self, ip: Option<IpAddr>) -> String {
        format!("ip:{}", address_key(ip))
    }

    /// One credential operation from the budget `key`.
    fn credential_draw<'a>(&self, key: &'a str) -> Draw<'a> {
        Draw {
            key,
            cost: 1,
            per_minute: self.config.per_minute,
            burst: self.config.burst,
        }
    }

    /// Spends `cost` of the account's write budget, or refuses.
    pub async fn write(&self, user: uuid::Uuid, cost: u32) -> AppResult<()> {
        if !self.config.enabled {
            return Ok(());
        }
        let key = format!("write:{user}");
        let draw = Draw {
            key: &key,
            cost,
            per_minute: self.config.writes_per_minute,
            burst: self.config.write_burst,
        };
        timed("take", self.limiter.take(draw))
            .await?
            .map_err(|wait| limited("writes from this account", wait))
    }

    /// Spends one of `ip`'s credential operations, or refuses, and counts a login to
    /// `account` from it as failed before its password is checked, so that attempts sent
    /// at once all see each other's failures: the back-off and the pause hold however
    /// many arrive together. [`Throttle::login_outcome`] then settles it with the
    /// [`Attempt`]'s `counted`. (One step of the store for both: a refused operation is
    /// not counted.)
    ///
    /// The attempt also tells, from the counts before it, whether this client must still
    /// wait after its own failures to the account, and whether the account is paused
    /// after failures from anywhere. Whoever refuses it then takes it back with
    /// [`Throttle::login_outcome`] and `None`.
    pub async fn login_attempt(&self, account: &str, ip: Option<IpAddr>) -> AppResult<Attempt> {
        if !self.config.enabled {
            return Ok(Attempt::default());
        }
        let budget = self.address_budget(ip);
        let (pair, whole) = (pair(account, ip), account_failures(account));
        let counted = timed(
            "attempt",
            self.limiter.attempt(
                self.credential_draw(&budget),
                &[(&pair, None), (&whole, Some(LOCK_DECAY))],
            ),
        )
        .await?
        .map_err(|wait| limited("attempts from this address", wait))?;
        let [by_pair, by_whole] = counted[..] else {
            return Err(AppError::internal(
                "the limiter's store answered for other keys".to_owned(),
            ));
        };
        Ok(Attempt {
            counted: Counted(Some((by_pair, by_whole))),
            backing_off: by_pair.backing_off(),
            paused: by_whole.paused(),
        })
    }

    /// The refusal of a login while the client must wait after its own failures.
    pub fn backing_off_refusal(&self, left: Duration) -> AppError {
        limited("failed sign-ins", left)
    }

    /// The refusal of a login to a paused account, `left` before the pause ends.
    pub fn paused_refusal(&self, left: Duration) -> AppError {
        limited("failed sign-ins to this account", left)
    }

    /// Settles a login attempt counted by [`Throttle::login_attempt`]: `Some(true)` for a
    /// success, which forgets the client's failures (and the account's, unless it was
    /// paused: a success let through a pause from a known network says nothing of the
    /// guesses from elsewhere), `Some(false)` for refused credentials, which stay
    /// counted, and `None` for an attempt that could not be judged (a server error, or
    /// one refused before its password was checked), which is taken back as if never
    /// made.
    ///
    /// The attempt has been answered by then: should the store fail here, the counts
    /// stay as they were (erring towards caution) and the error is logged.
    pub async fn login_outcome(
        &self,
        account: &str,
        ip: Option<IpAddr>,
        counted: Counted,
        succeeded: Option<bool>,
    ) {
        let Counted(Some((by_pair, by_whole))) = counted else {
            return;
        };
        let (pair, whole) = (pair(account, ip), account_failures(account));
        let (forgive, reset): (&[(&str, Failure)], &[&str]) = match succeeded {
            // Whether the account was paused is judged without this attempt's own
            // failure, which was never one.
            Some(true) if by_whole.paused().is_none() => (&[], &[&pair, &whole]),
            Some(true) => (&[(&whole, by_whole)], &[&pair]),
            Some(false) => return,
            None => (&[(&pair, by_pair), (&whole, by_whole)], &[]),
        };
        // Errors were logged by `timed`.
        let _ = timed("settle", self.limiter.settle(forgive, reset)).await;
    }
}

/// A failure recorded by [`Limiter::attempt`], to take back with [`Limiter::settle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// When it was recorded.
    pub at: Stamp,
    /// When the one before it was, if any.
    pub previous: Option<Stamp>,
    /// The key's count with it, after decay.
    pub count: u32,
}

impl Failure {
    /// The key's count before this failure, and how long before it the last one was.
    fn before(&self) -> Option<(u32, Duration)> {
        let previous = self.previous?;
        let since = u64::try_from(self.at.0 - previous.0).unwrap_or(0);
        Some((self.count.saturating_sub(1), Duration::from_micros(since)))
    }

    /// Of a client's failures to an account: how long it had still to wait when this
    /// one came, after the ones before it.
    fn backing_off(&self) -> Option<Duration> {
        let (n, since) = self.before().filter(|(n, _)| *n >= BACKOFF_AFTER)?;
        let doublings = (n - BACKOFF_AFTER).min(20);
        let wait = (BACKOFF_START * 2u32.pow(doublings)).min(BACKOFF_MAX);
        wait.checked_sub(since).filter(|d| !d.is_zero())
    }

    /// Of an account's failures from anywhere: how long it was still paused when this
    /// one came, after the ones before it.
    fn paused(&self) -> Option<Duration> {
        let (_, since) = self.before().filter(|(n, _)| *n >= LOCK_AFTER)?;
        LOCK_FOR.checked_sub(since).filter(|d| !d.is_zero())
    }
}

/// What [`Throttle::login_attempt`] counted, to take back should the attempt not fail.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counted(Option<(Failure, Failure)>);

/// A login attempt, counted as failed until settled.
#[derive(Debug, Clone, Copy, Default)]
pub struct Attempt {
    /// What was counted.
    pub counted: Counted,
    /// How long the client must still wait after its own failures to the account.
    pub backing_off: Option<Duration>,
    /// How long the account stays paused after failures from anywhere.
    pub paused: Option<Duration>,
}

fn account_failures(account: &str) -> String {
    format!("account:{}", account_key(account))
}

fn pair(account: &str, ip: Option<IpAddr>) -> String {
    format!("pair:{}:{}", account_key(account), address_key(ip))
}

/// The part of an address that identifies a client: all of an IPv4 address, the /64
/// network of an IPv6 one (its first address), since one client commonly holds a whole
/// /64.
pub fn client_network(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

/// [`client_network`] as a key: an IPv6 network is written with its prefix length.
pub fn address_key(ip: Option<IpAddr>) -> String {
    match ip.map(client_network) {
        None => "unknown".to_owned(),
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => format!("{v6}/64"),
    }
}

/// An account's key: the email as typed, bounded, so that junk cannot make keys of any
/// size.
fn account_key(account: &str) -> &str {
    let end = account
        .char_indices()
        .nth(254)
        .map_or(account.len(), |(i, _)| i);
    &account[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_client_is_known_by_its_network() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(Some(a)), address_key(Some(b)));
        assert_ne!(address_key(Some(a)), address_key(Some(c)));
        let mapped: IpAddr = "::ffff:10.0.0.5".parse().unwrap();
        assert_eq!(address_key(Some(mapped)), "10.0.0.5");
    }

    #[tokio::test]
    async fn backoff_starts_after_five_failures_and_success_resets_it() {
        // Each attempt draws on the address's budget too: enough of it for the story.
        let t = Throttle::new(crate::config::ThrottleConfig {
            enabled: true,
            per_minute: 30,
            burst: 100,
            writes_per_minute: 60,
            write_burst: 30,
        });
        let (ip, elsewhere) = (
            Some(IpAddr::from([10, 0, 0, 1])),
            Some(IpAddr::from([10, 0, 0, 2])),
        );
        let account = "a@example.com";
        for _ in 0..5 {
            let attempt = t.login_attempt(account, ip).await.unwrap();
            assert_eq!(attempt.backing_off, None);
            t.login_outcome(account, ip, attempt.counted, Some(false))
                .await;
        }
        // The sixth must wait a second; refused, it is taken back.
        let attempt = t.login_attempt(account, ip).await.unwrap();
        let wait = attempt.backing_off.expect("a wait");
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1));
        t.login_outcome(account, ip, attempt.counted, None).await;
        // Another address is not held back.
        let other = t.login_attempt(account, elsewhere).await.unwrap();
        assert_eq!(other.backing_off, None);
        t.login_outcome(account, elsewhere, other.counted, None)
            .await;
        // A success forgets the failures.
        let attempt = t.login_attempt(account, ip).await.unwrap();
        t.login_outcome(account, ip, attempt.counted, Some(true))
            .await;
        let attempt = t.login_attempt(account, ip).await.unwrap();
        assert_eq!(attempt.backing_off, None);
        t.login_outcome(account, ip, attempt.counted, None).await;
        // An attempt that could not be judged is taken back: four failures and one taken
        // back leave the next attempt free.
        for _ in 0..4 {
            let attempt = t.login_attempt(account, ip).await.unwrap();
            t.login_outcome(account, ip, attempt.counted, Some(false))
                .await;
        }
        let attempt = t.login_attempt(account, ip).await.unwrap();
        t.login_outcome(account, ip, attempt.counted, None).await;
        let attempt = t.login_attempt(account, ip).await.unwrap();
        assert_eq!(attempt.backing_off, None);
    }

    #[tokio::test]
    async fn attempts_refused_by_the_address_budget_count_no_failure() {
        let t = Throttle::new(crate::config::ThrottleConfig {
            enabled: true,
            per_minute: 1,
            burst: 3,
            writes_per_minute: 60,
            write_burst: 30,
        });
        let ip = Some(IpAddr::from([10, 0, 0, 1]));
        let account = "a@example.com";
        for _ in 0..3 {
            let attempt = t.login_attempt(account, ip).await.unwrap();
            t.login_outcome(account, ip, attempt.counted, Some(false))
                .await;
        }
        for _ in 0..10 {
            let refused = t.login_attempt(account, ip).await.unwrap_err();
            assert!(
                matches!(refused, AppError::RateLimited { .. }),
                "{refused:?}"
            );
        }
        // From elsewhere, the account's count holds the three failures alone.
        let other = t
            .login_attempt(account, Some(IpAddr::from([10, 0, 0, 2])))
            .await
            .unwrap();
        let Counted(Some((_, by_whole))) = other.counted else {
            panic!("not counted");
        };
        assert_eq!(by_whole.count, 4);
    }
}
