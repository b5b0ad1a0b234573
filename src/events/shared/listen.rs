//! Hearing other instances' notices on a dedicated connection, and keeping it alive:
//! heartbeats, reconnection with jittered back-off, and the start-up self-test.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgListener, PgPoolOptions},
};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use super::{BeatSent, Owed, send::notify, work::Work};
use crate::events::{
    watch::Watchers,
    wire::{CHANNEL, Kind, Notice},
};

/// How often an instance sends itself a heartbeat.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// How long a heartbeat sent may take to come back before the listener is taken for dead.
/// Only a heartbeat actually sent counts: when the database is too busy to take one, the
/// listener cannot be judged, and is left alone.
const BEAT_BACK_WITHIN: Duration = Duration::from_secs(5);
/// How long start-up waits for its test notification to come back.
const SELF_TEST: Duration = Duration::from_secs(3);
/// How long connecting the listener may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Reconnection back-off: from this, doubling, with full jitter…
const BACKOFF_START: Duration = Duration::from_millis(100);
/// …up to this.
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// A listener on its own pool of one connection, which no idle or lifetime limit closes.
pub(super) async fn connect(options: &PgConnectOptions) -> Result<PgListener, sqlx::Error> {
    let attempt = async {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_lazy_with(options.clone());
        let mut listener = PgListener::connect_with(&pool).await?;
        // Reconnecting inside `try_recv` would hide a loss from this module whenever the
        // call is cancelled (by the heartbeat's turn in `select!`) between noticing the
        // loss and reporting it: the next call would reconnect silently, and no catch-up
        // would follow. Without it, the loss is reported as soon as it is noticed.
        listener.eager_reconnect(false);
        listener.listen(CHANNEL).await?;
        Ok(listener)
    };
    tokio::time::timeout(CONNECT_TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| Err(sqlx::Error::PoolTimedOut))
}

/// Sends a notification through `pool` and waits for it on `listener`: whether it came
/// back.
pub(super) async fn self_test(pool: &PgPool, listener: &mut PgListener, origin: Uuid) -> bool {
    let probe = Notice::new(origin, Kind::Heartbeat, Uuid::new_v4());
    let came_back = async {
        notify(pool, &[probe]).await?;
        loop {
            let heard = listener.recv().await?;
            if Notice::decode(heard.payload()) == Some(probe) {
                return Ok::<_, sqlx::Error>(());
            }
        }
    };
    match tokio::time::timeout(SELF_TEST, came_back).await {
        Ok(Ok(())) => {
            tracing::debug!("event listener heard its test notification");
            return true;
        }
        Ok(Err(e)) => tracing::warn!(
            error = %crate::error::chain(&e),
            "the event listener's test notification failed; events from other instances \
             may not arrive"
        ),
        Err(_) => tracing::warn!(
            "a notification sent through DATABASE_URL did not reach the event listener within \
             {} s: events from other instances will not arrive. A connection pooler in \
             transaction mode (PgBouncer's pool_mode=transaction) breaks LISTEN; set \
             QUIRE_LISTENER_DATABASE_URL to a direct connection to PostgreSQL",
            SELF_TEST.as_secs()
        ),
    }
    false
}

/// The listening task's state.
pub(super) struct Listening {
    pub(super) options: PgConnectOptions,
    pub(super) origin: Uuid,
    pub(super) outbox: mpsc::Sender<Notice>,
    pub(super) work: mpsc::Sender<Work>,
    pub(super) owed: Owed,
    pub(super) beat_sent: BeatSent,
    /// When the last notice was heard.
    pub(super) last_heard: DateTime<Utc>,
    /// Told of other instances' access changes, and of losing and regaining the listener.
    pub(super) watchers: Watchers,
    /// Whether the start-up test heard its notification: when it did not, notices do not
    /// arrive through this connection, and a reconnected listener does not hear them
    /// either.
    pub(super) trusted: bool,
}

impl Listening {
    /// Listens until the bus is dropped, replacing the listener whenever it fails.
    pub(super) async fn run(mut self, first: PgListener, mut stop: watch::Receiver<()>) {
        let mut listener = Some(first);
        let mut failures = 0u32;
        loop {
            let current = match listener.take() {
                Some(l) => l,
                None => {
                    let wait = backoff(failures);
                    tokio::select! {
                        _ = stop.changed() => return,
                        () = tokio::time::sleep(wait) => {}
                    }
                    match connect(&self.options).await {
                        Ok(l) => {
                            tracing::info!("event listener reconnected");
                            ::metrics::gauge!("events_listener_connected").set(1.0);
                            self.watchers.hearing(self.trusted);
                            self.hand(Work::CatchUp(self.last_heard));
                            failures = 0;
                            l
                        }
                        Err(e) => {
                            failures = failures.saturating_add(1);
                            tracing::warn!(
                                error = %crate::error::chain(&e),
                                retry_in_ms = backoff(failures).as_millis() as u64,
                                "event listener cannot reconnect"
                            );
                            continue;
                        }
                    }
                }
            };
            let Some(why) = self.listen(current, &mut stop).await else {
                return;
            };
            self.watchers.hearing(false);
            ::metrics::gauge!("events_listener_connected").set(0.0);
            ::metrics::counter!("events_listener_reconnects_total").increment(1);
            tracing::warn!(why, "event listener lost; reconnecting");
        }
    }

    /// Hears notices on `listener` until it fails (why) or the bus is dropped (`None`).
    async fn listen(
        &mut self,
        mut listener: PgListener,
        stop: &mut watch::Receiver<()>,
    ) -> Option<String> {
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        let mut heard_at = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = stop.changed() => return None,
                received = listener.try_recv() => match received {
                    Ok(Some(notification)) => {
                        heard_at = tokio::time::Instant::now();
                        self.last_heard = Utc::now();
                        self.heard(notification.payload());
                    }
                    Ok(None) => return Some("the connection was closed".to_owned()),
                    Err(e) => return Some(crate::error::chain(&e)),
                },
                _ = heartbeat.tick() => {
                    let sent = *self.beat_sent.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(sent) = sent
                        && sent > heard_at
                        && sent.elapsed() > BEAT_BACK_WITHIN
                    {
                        return Some(format!(
                            "a heartbeat sent {} s ago never came back",
                            sent.elapsed().as_secs()
                        ));
                    }
                    let beat = Notice::new(self.origin, Kind::Heartbeat, Uuid::new_v4());
                    let _ = self.outbox.try_send(beat);
                }
            }
        }
    }

    /// Takes in one notification's payload.
    fn heard(&mut self, payload: &str) {
        let Some(notice) = Notice::decode(payload) else {
            tracing::debug!("ignored a notification this version does not read");
            return;
        };
        let lag = (Utc::now().timestamp_micros() - notice.sent_us).max(0);
        ::metrics::histogram!("events_notification_lag_seconds").record(lag as f64 / 1e6);
        if notice.origin != self.origin && notice.kind != Kind::Heartbeat {
            if notice.kind == Kind::Access {
                // At once, before the worker's queue: caches must forget what ended.
                self.watchers.changed(notice.id);
            }
            self.hand(Work::Notice(notice));
        }
    }

    /// Hands `work` to the worker; when it is too far behind, a catch-up replaces what
    /// could not be handed.
    fn hand(&self, work: Work) {
        if self.work.try_send(work).is_err() {
            ::metrics::counter!("events_dropped_total", "stage" => "work").increment(1);
            // One catch-up, from the earliest time owed, covers everything dropped until
            // the worker gets to it: the worker is busy with a full queue, and looks.
            let since = match work {
                Work::CatchUp(since) => since,
                Work::Notice(_) => self.last_heard,
            };
            let mut owed = self.owed.lock().unwrap_or_else(|e| e.into_inner());
            *owed = Some(owed.map_or(since, |o| o.min(since)));
        }
    }
}

/// The wait before reconnection attempt `failures` + 1: exponential, fully jittered.
fn backoff(failures: u32) -> Duration {
    let ceiling = BACKOFF_START
        .saturating_mul(2u32.saturating_pow(failures.min(16)))
        .min(BACKOFF_MAX);
    ceiling.mul_f64(rand::random::<f64>().max(0.1))
}
