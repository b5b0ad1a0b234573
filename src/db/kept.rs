//! One connection for all the statements of a read-only request.
//!
//! The pool checks every connection given back to it with a round trip to the server, so
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
    Empty,
    /// The connection, between statements.
    Idle(Pooled),
    /// A statement has it now.
    Busy,
}

/// A request's slot, and a signal for whoever waits for the connection in it.
pub(super) struct Shelf {
    slot: Mutex<Slot>,
    freed: Notify,
}

/// A request's shelf, shared by every connection handle that came from it.
pub(super) type Home = Arc<Shelf>;

tokio::task_local! {
    static KEPT: Home;
}

/// Runs `work` (one request) so that its statements share one connection.
pub async fn keeping<F: Future>(work: F) -> F::Output {
    let shelf = Shelf {
        slot: Mutex::new(Slot::Empty),
        freed: Notify::new(),
    };
    KEPT.scope(Arc::new(shelf), work).await
}

impl Shelf {
    fn slot(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the current request's slot offers a statement about to run.
pub(super) enum Offer {
    /// Outside [`keeping`]: take one from the pool, and give it back to the pool.
    Pool,
    /// The kept connection is busy: [`wait`] for it, or take one from the pool.
    Busy(Home),
    /// Take one from the pool, and keep it in this slot afterwards.
    FillSlot(Home),
    /// The kept connection; back into this slot afterwards.
    Kept(Pooled, Home),
}

/// Takes the request's kept connection if it has one free, marking the slot busy.
pub(super) fn offer() -> Offer {
    KEPT.try_with(|home| {
        let mut slot = home.slot();
        match std::mem::replace(&mut *slot, Slot::Busy) {
            Slot::Empty => Offer::FillSlot(home.clone()),
            Slot::Idle(conn) => Offer::Kept(conn, home.clone()),
            Slot::Busy => Offer::Busy(home.clone()),
        }
    })
    .unwrap_or(Offer::Pool)
}

/// Waits until the kept connection is given back, and takes it.
pub(super) async fn wait(home: &Home) -> Pooled {
    loop {
        {
            let mut slot = home.slot();
            match std::mem::replace(&mut *slot, Slot::Busy) {
                Slot::Idle(conn) => return conn,
                other => *slot = other,
            }
        }
        home.freed.notified().await;
    }
}

/// Puts a connection back into its request's slot.
pub(super) fn put_back(home: &Home, conn: Pooled) {
    *home.slot() = Slot::Idle(conn);
    home.freed.notify_one();
}

/// Marks the slot empty again when taking a connection for it failed. (Nobody waiting
/// is woken: there is nothing to give them, and they take one from the pool.)
pub(super) fn give_up(home: &Home) {
    *home.slot() = Slot::Empty;
}
