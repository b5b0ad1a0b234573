//! One connection for all the statements of a read-only request.
//!
//! sqlx 0.9's pool checks every connection given back to it with a round trip to the
//! server (on PostgreSQL a `Sync`, with no setting to skip it: see bench/README.md), so
//! a page of posts whose five statements each took a connection of their own paid five
//! more round trips, and PostgreSQL half as much work again. Inside [`keeping`] (which
//! the HTTP handler enters for requests whose operations are all queries), the first
//! statement takes a connection from the pool and the later ones reuse it; it goes back
//! once, when the request is done.
//!
//! A statement that finds the kept connection busy (two fields reading at the same
//! moment) takes whichever comes first: the kept connection, given back, or one of the
//! pool's. So it never waits on the pool while its own request holds a connection that
//! could serve it, and never waits on its own request alone either. Only reads are kept
//! this way: a request that writes takes connections per statement or transaction, so it
//! never holds one idle while it waits for another.
//!
//! The rule, then: **writes and background work leave the kept scope.** A request that
//! writes is never run inside [`keeping`] (the HTTP handler decides), and work a read
//! request starts in the background goes through [`detach`]: a task of its own does not
//! inherit the task-local that holds the kept connection, so it takes one of the pool's
//! and never makes the request's reads wait behind it.

use std::{
    future::Future,
    sync::{Arc, Mutex},
};

use sqlx::{Postgres, Sqlite, pool::PoolConnection};
use tokio::sync::Notify;

/// A connection as the pool hands it out.
pub(super) enum Pooled {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

/// Where a request keeps its connection between statements.
pub(super) enum Slot {
    /// No statement has run yet.
    Unused,
    /// The connection, between statements.
    Free(Pooled),
    /// A statement has it now.
    InUse,
}

/// A request's kept connection: its slot, and a signal for whoever waits for it.
pub(super) struct Kept {
    slot: Mutex<Slot>,
    freed: Notify,
}

/// A request's kept connection, shared by every connection handle that came from it.
pub(super) type KeptRef = Arc<Kept>;

tokio::task_local! {
    static KEPT: KeptRef;
}

/// Runs `work` in a task of its own, outside the kept scope and within the current span
/// (so that its log lines name the request): for writes off a request's path, and for
/// work its caller must not be able to cancel halfway.
pub fn detach<F>(work: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(tracing::Instrument::in_current_span(work))
}

/// Runs `work` (one request) so that its statements share one connection.
pub async fn keeping<F: Future>(work: F) -> F::Output {
    let kept = Kept {
        slot: Mutex::new(Slot::Unused),
        freed: Notify::new(),
    };
    KEPT.scope(Arc::new(kept), work).await
}

impl Kept {
    fn slot(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the current request's slot offers a statement about to run.
pub(super) enum Offer {
    /// Outside [`keeping`]: take one from the pool, and give it back to the pool.
    NotKeeping,
    /// The kept connection is in use: [`wait`] for it, or take one from the pool.
    InUse(KeptRef),
    /// Take one from the pool, and keep it in this slot afterwards.
    TakeAndKeep(KeptRef),
    /// The kept connection; back into this slot afterwards.
    Kept(Pooled, KeptRef),
}

/// Takes the request's kept connection if it has one free, marking the slot busy.
pub(super) fn offer() -> Offer {
    KEPT.try_with(|kept| {
        let mut slot = kept.slot();
        match std::mem::replace(&mut *slot, Slot::InUse) {
            Slot::Unused => Offer::TakeAndKeep(kept.clone()),
            Slot::Free(conn) => Offer::Kept(conn, kept.clone()),
            Slot::InUse => Offer::InUse(kept.clone()),
        }
    })
    .unwrap_or(Offer::NotKeeping)
}

/// Waits until the kept connection is given back, and takes it.
pub(super) async fn wait(kept: &KeptRef) -> Pooled {
    loop {
        {
            let mut slot = kept.slot();
            match std::mem::replace(&mut *slot, Slot::InUse) {
                Slot::Free(conn) => return conn,
                other => *slot = other,
            }
        }
        kept.freed.notified().await;
    }
}

/// Puts a connection back into its request's slot.
pub(super) fn put_back(kept: &KeptRef, conn: Pooled) {
    *kept.slot() = Slot::Free(conn);
    kept.freed.notify_one();
}

/// Marks the slot unused again when taking a connection for it failed. (Nobody waiting
/// is woken: there is nothing to give them, and they take one from the pool.)
pub(super) fn forget(kept: &KeptRef) {
    *kept.slot() = Slot::Unused;
}
