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
//!
//! The parts: [`send`] carries notices out, [`listen`] hears them and keeps the listener
//! alive, [`work`] reads what they name and delivers it here.

mod listen;
mod send;
mod work;

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use sqlx::{PgPool, postgres::PgConnectOptions};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use super::{
    AccessWatch, Event, Local, PubSub, Topic,
    wire::{Kind, Notice},
};
use crate::db;
use listen::{Listening, connect, self_test};
use work::{Delivered, Worker};

/// Notices waiting to be sent, or to be worked on, before they are dropped (sending) or
/// replaced by a catch-up (working).
const QUEUE: usize = 8192;
/// How many notices go in one `pg_notify` statement, and how many the worker takes at once.
const BATCH: usize = 256;

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
        let trusted = self_test(&pool, &mut listener, origin).await;
        let local = Local::default();
        if !trusted {
            local.watchers().hearing(false);
        }
        let (stop, stopped) = watch::channel(());
        let (outbox, outgoing) = mpsc::channel(QUEUE);
        let (work, incoming) = mpsc::channel(QUEUE);
        let delivered = Arc::new(Delivered::default());
        let beat_sent = Arc::new(Mutex::new(None));
        let owed = Arc::new(Mutex::new(None));
        tokio::spawn(send::send(
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
                watchers: local.watchers().clone(),
                trusted,
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
                if now.as_ref().is_some_and(|row| row.published) {
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

    fn watch_access(&self, watcher: Arc<dyn AccessWatch>) {
        self.local.watch_access(watcher);
    }
}

/// When this instance last sent itself a heartbeat that the database took.
type BeatSent = Arc<Mutex<Option<tokio::time::Instant>>>;
/// The earliest time a catch-up is owed from, when notices could not be handed over.
type Owed = Arc<Mutex<Option<DateTime<Utc>>>>;
