//! Places for WebSocket connections and their subscriptions, so that no one client can
//! take them all.
//!
//! A connection first takes a place among those waiting for their `connection_init`
//! (`QUIRE_MAX_PENDING_WEBSOCKETS`), and one of its address's
//! (`QUIRE_MAX_WEBSOCKETS_PER_ADDRESS`, kept for the connection's whole life); only once
//! its credential is checked does it take a signed-in place (`QUIRE_MAX_WEBSOCKETS`) and
//! one of its account's (`QUIRE_MAX_WEBSOCKETS_PER_USER`), giving its waiting place back.
//! Anonymous sockets, which cost nothing to open, can then fill only the waiting places,
//! and only their addresses' share of them; they never keep a signed-in user out. Each
//! subscription also takes one of its account's places (`QUIRE_MAX_SUBSCRIPTIONS_PER_USER`)
//! besides its connection's.

use std::{net::IpAddr, sync::Arc};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use super::counted::{Counted, Counts};
use crate::{auth::throttle::client_network, config::WebSockets};

/// The places of one server.
pub struct Sockets {
    limits: WebSockets,
    pending: Arc<Semaphore>,
    signed_in: Arc<Semaphore>,
    addresses: Counts<IpAddr>,
    users: Counts<Uuid>,
    subscriptions: Counts<Uuid>,
}

/// Why a connection found no place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// Its address has as many connections as it may.
    Address,
    /// As many connections wait for their `connection_init` as may.
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
            Full::Pending => "too many WebSocket connections are starting; try later",
            Full::User => "too many WebSocket connections for this account",
            Full::Server => "this server holds as many WebSocket connections as it may",
        }
    }
}

/// A connection's places, given back when it is dropped.
pub struct Place {
    _address: Option<Counted<IpAddr>>,
    pending: Option<OwnedSemaphorePermit>,
    signed_in: Option<(OwnedSemaphorePermit, Counted<Uuid>)>,
}

/// A signed-in connection's places, to move into its [`Place`].
pub struct SignedIn(OwnedSemaphorePermit, Counted<Uuid>);

impl Place {
    /// Gives the waiting place back for the signed-in ones.
    pub fn sign_in(&mut self, places: SignedIn) {
        self.pending = None;
        self.signed_in = Some((places.0, places.1));
    }
}

impl Sockets {
    /// Places as `limits` allow.
    pub fn new(limits: WebSockets) -> Self {
        Self {
            limits,
            pending: Arc::new(Semaphore::new(limits.pending)),
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
        let pending = self
            .pending
            .clone()
            .try_acquire_owned()
            .map_err(|_| Full::Pending)?;
        Ok(Place {
            _address: address,
            pending: Some(pending),
            signed_in: None,
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
