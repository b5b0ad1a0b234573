//! [`Watchers`]: those told of every access change the moment this instance hears of it,
//! whoever's it is, and of whether this instance hears them at all.
//!
//! Subscribers (by topic, through a channel) hear of changes when their task next runs,
//! and only of the users they follow. A cache of sessions' validity needs more: every
//! change, at once, and to know when some may have been missed (the listener lost, or
//! never working) so that it can stop trusting what it holds. Watchers are called
//! synchronously, from the publisher (a change made here) or from the listening task (a
//! change made on another instance), so they must be quick and must not wait.

use std::sync::{Arc, Mutex};

use uuid::Uuid;

/// Told of access changes as this instance hears of them.
pub trait AccessWatch: Send + Sync + 'static {
    /// `user_id`'s sessions, keys, role or standing may have changed.
    fn changed(&self, user_id: Uuid);
    /// Whether this instance hears every change from now on: `false` as soon as some may
    /// be missed, `true` once they are heard again.
    fn hearing(&self, hearing: bool);
}

#[derive(Default)]
struct State {
    deaf: bool,
    watchers: Vec<Arc<dyn AccessWatch>>,
}

/// The watchers of one bus, and whether it hears every change.
#[derive(Default, Clone)]
pub(super) struct Watchers(Arc<Mutex<State>>);

impl Watchers {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `watcher`, telling it at once whether changes are heard.
    pub(super) fn add(&self, watcher: Arc<dyn AccessWatch>) {
        let mut state = self.state();
        watcher.hearing(!state.deaf);
        state.watchers.push(watcher);
    }

    /// Tells every watcher of a change to `user_id`.
    pub(super) fn changed(&self, user_id: Uuid) {
        for watcher in &self.state().watchers {
            watcher.changed(user_id);
        }
    }

    /// Tells every watcher whether changes are heard.
    pub(super) fn hearing(&self, hearing: bool) {
        let mut state = self.state();
        state.deaf = !hearing;
        for watcher in &state.watchers {
            watcher.hearing(hearing);
        }
    }
}
