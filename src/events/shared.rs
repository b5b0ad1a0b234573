//! [`Shared`]: events delivered here at once and to every other instance on the same
//! PostgreSQL database through `LISTEN`/`NOTIFY` (sqlx 0.9's `PgListener`).
//!
//! - Publishing delivers locally, then queues a [`Notice`] that a task sends with
//!   `pg_notify`, several at a time, so that publishers never wait for the database.
//! - One dedicated connection per instance listens. The listening task does no slow work:
//!   it hands notices to a worker, which reads what they name (a post, its vote count) only
//!   when someone here subscribes to that topic, once per instance however many sockets
//!   follow it, and in batches.
//! - Losing the listener is normal (a restart, a failover, a network cut). sqlx sets no
//!   TCP keepalive, so a half-open connection would look like silence: every instance
//!   sends itself a heartbeat every few seconds, and a listener that does not hear one
//!   the database took is replaced. After any reconnect the worker catches up once: the
//!   posts published since the last notice heard (each delivered once: ids already
//!   delivered are remembered, and forgotten when a post is withdrawn, so that publishing
//!   it again is news), the current vote count of every post followed here, and a recheck
//!   of every connection's credentials. A worker too far behind to take notices owes one
//!   such catch-up, however many it could not take.
//! - sqlx's own reconnection is turned off: it happens inside `try_recv`, and a call
//!   cancelled while it waits for the database (the heartbeat's turn in `select!`) leaves
//!   the next call to reconnect without a word, so that nothing would catch up. (A
//!   PostgreSQL restart showed it.) The listener is rebuilt here instead, and the
//!   catch-up always follows a `LISTEN` in place.

use std::{
    collections::{HashSet, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgListener, PgPoolOptions},
};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use super::{
    Event, Local, PubSub, Topic,
    wire::{CHANNEL, Kind, Notice},
};
use crate::db::{self, posts, votes};

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
/// Notices waiting to be sent, or to be worked on, before they are dropped (sending) or
/// replaced by a catch-up (working).
const QUEUE: usize = 8192;
/// How many notices go in one `pg_notify` statement, and how many the worker takes at once.
const BATCH: usize = 256;
/// Catching up looks back this much before the last notice heard, for posts published by
/// instances whose clock is behind (instances warn at half the 5 s token leeway);
/// duplicates are filtered out.
const CATCH_UP_MARGIN: Duration = Duration::from_secs(10);
/// The most posts a catch-up delivers: the latest published since the notice last heard.
const CATCH_UP_POSTS: i64 = 1000;
/// How many delivered posts are remembered, so that none is delivered twice.
const REMEMBERED: usize = 16_384;

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen for events on the database ({0})")]
pub struct ListenerError(String);

/// Events shared with every instance on the database.
pub struct Shared {
    local: Local,
    origin: Uuid,
    outbox: mpsc::Sender<Notice>,
    delivered: Arc<Delivered>,
    /// Dropped with the bus, which stops its tasks.
    _stop: watch::Sender<()>,
}

impl Shared {
    /// Starts listening through `listener_url` (a PostgreSQL URL, usually the main
    /// `DATABASE_URL`) and sending through `pool`, and checks that a notification sent
    /// comes back: when it does not (a pooler in transaction mode between quire and the
    /// database breaks `LISTEN`), says so in the log and carries on.
    pub async fn start(pool: PgPool, listener_url: &str) -> Result<Self, ListenerError> {
        let origin = Uuid::new_v4();
        let options: PgConnectOptions = listener_url
            .parse()
            .map_err(|e: sqlx::Error| ListenerError(crate::error::chain(&e)))?;
        let options = options.application_name("quire-listener");
        let mut listener = connect(&options)
            .await
            .map_err(|e| ListenerError(crate::error::chain(&e)))?;
        self_test(&pool, &mut listener, origin).await;
        let (stop, stopped) = watch::channel(());
        let (outbox, outgoing) = mpsc::channel(QUEUE);
        let (work, incoming) = mpsc::channel(QUEUE);
        let local = Local::default();
        let delivered = Arc::new(Delivered::default());
        let beat_sent = Arc::new(Mutex::new(None));
        let owed = Arc::new(Mutex::new(None));
        tokio::spawn(send(
            pool.clone(),
            outgoing,
            beat_sent.clone(),
            stopped.clone(),
        ));
        let worker = Worker {
            db: db::Db::Postgres(pool),
            local: local.clone(),
            delivered: delivered.clone(),
            owed: owed.clone(),
        };
        tokio::spawn(worker.run(incoming, stopped.clone()));
        tokio::spawn(
            Listening {
                options,
                origin,
                outbox: outbox.clone(),
                work,
                owed,
                beat_sent,
                last_heard: Utc::now(),
            }
            .run(listener, stopped),
        );
        ::metrics::gauge!("events_listener_connected").set(1.0);
        Ok(Self {
            local,
            origin,
            outbox,
            delivered,
            _stop: stop,
        })
    }

    fn tell_others(&self, kind: Kind, id: Uuid) {
        if self
            .outbox
            .try_send(Notice::new(self.origin, kind, id))
            .is_err()
        {
            ::metrics::counter!("events_dropped_total", "stage" => "send").increment(1);
            tracing::warn!("too many events waiting to be sent to other instances; dropped one");
        }
    }
}

impl PubSub for Shared {
    fn publish(&self, event: Event) {
        let (kind, id) = match &event {
            Event::PostPublished(row) => {
                self.delivered.remember(row.id);
                (Kind::Published, row.id)
            }
            Event::PostChanged { post_id, now } => {
                if now.as_ref().is_some_and(|(row, _)| row.published) {
                    (Kind::Changed, *post_id)
                } else {
                    self.delivered.forget(*post_id);
                    (Kind::Withdrawn, *post_id)
                }
            }
            Event::AccessChanged { user_id } => (Kind::Access, *user_id),
        };
        self.local.publish(event);
        self.tell_others(kind, id);
    }

    fn subscribe(&self, topic: Topic) -> BoxStream<'static, Event> {
        self.local.subscribe(topic)
    }
}

/// The ids of the posts delivered lately, so that a catch-up delivers none twice.
#[derive(Default)]
struct Delivered(Mutex<(HashSet<Uuid>, VecDeque<Uuid>)>);

impl Delivered {
    /// Forgets `id`: the post became a draft or was deleted, and may be published again.
    fn forget(&self, id: Uuid) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .remove(&id);
    }

    /// Remembers `id`; false when it was already.
    fn remember(&self, id: Uuid) -> bool {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (set, order) = &mut *guard;
        if !set.insert(id) {
            return false;
        }
        order.push_back(id);
        if order.len() > REMEMBERED
            && let Some(oldest) = order.pop_front()
        {
            set.remove(&oldest);
        }
        true
    }
}

/// A listener on its own pool of one connection, which no idle or lifetime limit closes.
async fn connect(options: &PgConnectOptions) -> Result<PgListener, sqlx::Error> {
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

/// Sends a notification through `pool` and waits for it on `listener`.
async fn self_test(pool: &PgPool, listener: &mut PgListener, origin: Uuid) {
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
        Ok(Ok(())) => tracing::debug!("event listener heard its test notification"),
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
}

/// Sends `notices` in one statement.
async fn notify(pool: &PgPool, notices: &[Notice]) -> Result<(), sqlx::Error> {
    let payloads: Vec<String> = notices.iter().map(Notice::encode).collect();
    sqlx::query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
        .bind(CHANNEL)
        .bind(payloads)
        .execute(pool)
        .await?;
    Ok(())
}

/// When this instance last sent itself a heartbeat that the database took.
type BeatSent = Arc<Mutex<Option<tokio::time::Instant>>>;
/// The earliest time a catch-up is owed from, when notices could not be handed over.
type Owed = Arc<Mutex<Option<DateTime<Utc>>>>;

/// Sends queued notices until the bus is dropped, several per statement; a failed
/// statement is tried again a few times, then its notices are dropped.
async fn send(
    pool: PgPool,
    mut outgoing: mpsc::Receiver<Notice>,
    beat_sent: BeatSent,
    mut stop: watch::Receiver<()>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            n = outgoing.recv_many(&mut batch, BATCH) => if n == 0 { return },
        }
        let mut tries = 0;
        loop {
            let Err(e) = notify(&pool, &batch).await else {
                if batch.iter().any(|n| n.kind == Kind::Heartbeat) {
                    *beat_sent.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(tokio::time::Instant::now());
                }
                break;
            };
            tries += 1;
            if tries == 3 {
                ::metrics::counter!("events_dropped_total", "stage" => "send")
                    .increment(batch.len() as u64);
                tracing::warn!(
                    error = %crate::error::chain(&e),
                    events = batch.len(),
                    "could not tell other instances of events; dropped them"
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(100 * tries)).await;
        }
        batch.clear();
    }
}

/// What the worker is handed.
#[derive(Debug, Clone, Copy)]
enum Work {
    /// A notice from another instance.
    Notice(Notice),
    /// The listener was replaced: catch up on what it may have missed since this time.
    CatchUp(DateTime<Utc>),
}

/// The listening task's state.
struct Listening {
    options: PgConnectOptions,
    origin: Uuid,
    outbox: mpsc::Sender<Notice>,
    work: mpsc::Sender<Work>,
    owed: Owed,
    beat_sent: BeatSent,
    /// When the last notice was heard.
    last_heard: DateTime<Utc>,
}

impl Listening {
    /// Listens until the bus is dropped, replacing the listener whenever it fails.
    async fn run(mut self, first: PgListener, mut stop: watch::Receiver<()>) {
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

/// Reads what notices name and delivers it to the subscribers here.
struct Worker {
    db: db::Db,
    local: Local,
    delivered: Arc<Delivered>,
    owed: Owed,
}

impl Worker {
    async fn run(self, mut incoming: mpsc::Receiver<Work>, mut stop: watch::Receiver<()>) {
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                n = incoming.recv_many(&mut batch, BATCH) => if n == 0 { return },
            }
            let owed = self.owed.lock().unwrap_or_else(|e| e.into_inner()).take();
            let catch_up = batch
                .iter()
                .filter_map(|w| match w {
                    Work::CatchUp(since) => Some(*since),
                    Work::Notice(_) => None,
                })
                .chain(owed)
                .min();
            let notices: Vec<Notice> = batch
                .drain(..)
                .filter_map(|w| match w {
                    Work::Notice(n) => Some(n),
                    Work::CatchUp(_) => None,
                })
                .collect();
            if let Err(e) = self.deliver(&notices).await {
                tracing::warn!(error = %crate::error::chain(&e), "could not read what other instances announced");
            }
            if let Some(since) = catch_up
                && let Err(e) = self.catch_up(since).await
            {
                tracing::warn!(error = %crate::error::chain(&e), "could not catch up on events");
            }
        }
    }

    /// Delivers what `notices` name to the subscribers here, reading the posts they
    /// follow in two statements.
    async fn deliver(&self, notices: &[Notice]) -> Result<(), sqlx::Error> {
        let mut published = Vec::new();
        let mut changed = Vec::new();
        for notice in notices {
            match notice.kind {
                Kind::Published if self.local.has_subscribers(Topic::NewPosts) => {
                    published.push(notice.id);
                }
                Kind::Withdrawn => {
                    self.delivered.forget(notice.id);
                    if self.local.has_subscribers(Topic::Post(notice.id)) {
                        changed.push(notice.id);
                    }
                }
                Kind::Changed if self.local.has_subscribers(Topic::Post(notice.id)) => {
                    changed.push(notice.id);
                }
                Kind::Access if self.local.has_subscribers(Topic::Access(notice.id)) => {
                    self.local
                        .publish(Event::AccessChanged { user_id: notice.id });
                }
                _ => {}
            }
        }
        if !published.is_empty() {
            let mut conn = self.db.acquire().await?;
            let rows = posts::find_many(&mut conn, &published).await?;
            // In the order they were announced.
            for id in &published {
                if let Some(row) = rows.iter().find(|r| r.id == *id) {
                    self.publish_post(row.clone());
                }
            }
        }
        self.post_changes(changed).await
    }

    /// Delivers a published post, unless it was already.
    fn publish_post(&self, row: posts::PostRow) {
        if row.published && self.delivered.remember(row.id) {
            self.local.publish(Event::PostPublished(Arc::new(row)));
        }
    }

    /// Tells the subscribers of each of `ids` how the post stands now.
    async fn post_changes(&self, mut ids: Vec<Uuid>) -> Result<(), sqlx::Error> {
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.db.acquire().await?;
        let rows = posts::find_many(&mut conn, &ids).await?;
        let counts = votes::counts(&mut conn, &ids).await?;
        for id in ids {
            let now = rows.iter().find(|r| r.id == id).map(|row| {
                let count = counts.get(&id).copied().unwrap_or(0);
                (Arc::new(row.clone()), count)
            });
            self.local.publish(Event::PostChanged { post_id: id, now });
        }
        Ok(())
    }

    /// Delivers what may have been missed since `since`: posts published, vote counts of
    /// the posts followed here, and a recheck of every connection's credentials.
    async fn catch_up(&self, since: DateTime<Utc>) -> Result<(), sqlx::Error> {
        ::metrics::counter!("events_catch_ups_total").increment(1);
        let topics = self.local.topics();
        for topic in &topics {
            if let Topic::Access(user_id) = topic {
                self.local
                    .publish(Event::AccessChanged { user_id: *user_id });
            }
        }
        if topics.contains(&Topic::NewPosts) {
            let from = since - CATCH_UP_MARGIN;
            let mut conn = self.db.acquire().await?;
            let rows =
                posts::published_since(&mut conn, db::truncate(from), CATCH_UP_POSTS).await?;
            if rows.len() as i64 == CATCH_UP_POSTS {
                tracing::warn!(
                    posts = CATCH_UP_POSTS,
                    "catching up on events: more posts were published meanwhile than are \
                     delivered late; the earliest were not"
                );
            }
            for row in rows {
                self.publish_post(row);
            }
        }
        let followed = topics
            .iter()
            .filter_map(|t| match t {
                Topic::Post(id) => Some(*id),
                _ => None,
            })
            .collect();
        self.post_changes(followed).await?;
        tracing::info!(
            topics = topics.len(),
            "caught up on events after the listener reconnected"
        );
        Ok(())
    }
}
