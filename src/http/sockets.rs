//! Places for WebSocket connections and their subscriptions, so that no one client can
//! take them all.
//!
//! A connection first takes a place among those waiting for their `connection_init`
//! (`QUIRE_MAX_PENDING_WEBSOCKETS`), and one of its address's
//! (`QUIRE_MAX_WEBSOCKETS_PER_ADDRESS`, kept for the connection's whole life); only once
//! its credential is checked does it take a signed-in place (`QUIRE_MAX_WEBSOCKETS`) and
//! one of its account's (`QUIRE_MAX_WEBSOCKETS_PER_USER`), giving its waiting place back.
//! Anonymous sockets, which cost nothing to open, can then fill only the waiting places,
//! and only their addresses' share of them. When every waiting place is taken, the
//! socket that has waited longest gives its place up to the newcomer: a client that says
//! who it is at once (within milliseconds, as clients do) keeps its place unless others
//! arrive by the thousand within those milliseconds. Each subscription also takes one of
//! its account's places (`QUIRE_MAX_SUBSCRIPTIONS_PER_USER`) besides its connection's.

use std::{
    collections::VecDeque,
    net::IpAddr,
    sync::{Arc, Mutex},
};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use super::counted::{Counted, Counts};
use crate::{auth::throttle::client_network, config::WebSockets};

/// The places of one server.
pub struct Sockets {
    limits: WebSockets,
    pending: Arc<Mutex<Waiting>>,
    signed_in: Arc<Semaphore>,
    addresses: Counts<IpAddr>,
    users: Counts<Uuid>,
    subscriptions: Counts<Uuid>,
}

/// The connections waiting for their `connection_init`, longest waiting first.
#[derive(Default)]
struct Waiting {
    next: u64,
    queue: VecDeque<(u64, Arc<Notify>)>,
}

/// A connection's waiting place; given back when dropped, unless it was given up.
struct Ticket {
    id: u64,
    waiting: Arc<Mutex<Waiting>>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        waiting.queue.retain(|(id, _)| *id != self.id);
    }
}

/// Why a connection found no place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// Its address has as many connections as it may.
    Address,
    /// No connection may wait for its `connection_init` (none is served).
    Pending,
    /// Its account has as many connections as it may.
    User,
    /// The server holds as many signed-in connections as it may.
    Server,
}

impl Full {
    /// What to tell the client.
    pub fn reason(self) -> &'static str {
        match self {
            Full::Address => "too many WebSocket connections from this address",
            Full::Pending => "Try Again Later: too many WebSocket connections are starting",
            Full::User => "too many WebSocket connections for this account",
            Full::Server => "this server holds as many WebSocket connections as it may",
        }
    }
}

/// A connection's places, given back when it is dropped.
pub struct Place {
    _address: Option<Counted<IpAddr>>,
    pending: Option<Ticket>,
    signed_in: Option<(OwnedSemaphorePermit, Counted<Uuid>)>,
    /// Told when a newcomer takes the waiting place.
    bumped: Arc<Notify>,
}

/// A signed-in connection's places, to move into its [`Place`].
pub struct SignedIn(OwnedSemaphorePermit, Counted<Uuid>);

impl Place {
    /// Gives the waiting place back for the signed-in ones.
    pub fn sign_in(&mut self, places: SignedIn) {
        self.pending = None;
        self.signed_in = Some((places.0, places.1));
    }

    /// Notified when a newcomer has taken this connection's waiting place: it is to
    /// close, unless it signed in meanwhile.
    pub fn bumped(&self) -> Arc<Notify> {
        self.bumped.clone()
    }
}

impl Sockets {
    /// Places as `limits` allow.
    pub fn new(limits: WebSockets) -> Self {
        Self {
            limits,
            pending: Arc::default(),
            signed_in: Arc::new(Semaphore::new(limits.max)),
            addresses: Counts::default(),
            users: Counts::default(),
            subscriptions: Counts::default(),
        }
    }

    /// A waiting place for a new connection from `ip`.
    pub fn arrive(&self, ip: Option<IpAddr>) -> Result<Place, Full> {
        let address = match ip {
            Some(ip) => Some(
                self.addresses
                    .take(client_network(ip), self.limits.per_address)
                    .ok_or(Full::Address)?,
            ),
            None => None,
        };
        if self.limits.pending == 0 {
            return Err(Full::Pending);
        }
        let bumped = Arc::new(Notify::new());
        let mut waiting = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if waiting.queue.len() >= self.limits.pending
            && let Some((_, longest)) = waiting.queue.pop_front()
        {
            longest.notify_one();
        }
        waiting.next += 1;
        let id = waiting.next;
        waiting.queue.push_back((id, bumped.clone()));
        drop(waiting);
        Ok(Place {
            _address: address,
            pending: Some(Ticket {
                id,
                waiting: self.pending.clone(),
            }),
            signed_in: None,
            bumped,
        })
    }

    /// Signed-in places for a connection of `user`.
    pub fn sign_in(&self, user: Uuid) -> Result<SignedIn, Full> {
        let mine = self
            .users
            .take(user, self.limits.per_user)
            .ok_or(Full::User)?;
        let place = self
            .signed_in
            .clone()
            .try_acquire_owned()
            .map_err(|_| Full::Server)?;
        Ok(SignedIn(place, mine))
    }

    /// A place for one more subscription of `user`, held while it runs.
    pub fn subscribe(&self, user: Uuid) -> Option<Counted<Uuid>> {
        self.subscriptions
            .take(user, self.limits.subscriptions_per_user)
    }

    /// The most subscriptions one account may run.
    pub fn subscriptions_per_user(&self) -> usize {
        self.limits.subscriptions_per_user
    }
}
