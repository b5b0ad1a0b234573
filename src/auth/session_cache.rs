//! [`SessionCache`]: which sessions this instance knows to be live, so that a request
//! with an access token costs no statement to check it.
//!
//! An access token names its session, and the session may end before the token expires
//! (logout, revocation, a password change, a deactivated account). Reading the session
//! with its user on every request was one statement in every page's few. Instead, what
//! a read found is kept here and forgotten:
//!
//! - at once, for every session of a user whose access changed, when this instance hears
//!   of it: a change made here as it is published, a change made on another instance as
//!   soon as this instance's event listener hears its notice;
//! - all of it, whenever the bus stops hearing every change (its listener lost, or never
//!   working), and nothing is kept again until it hears them again;
//! - each entry [`TRUST_FOR`] after it was read, whatever was heard, so that a notice
//!   lost on its way (a sender's full queue, a listener silently deaf until its
//!   heartbeat gives it away) holds a session open for no longer than that.
//!
//! A read that began before a change must not store what it found after the change was
//! heard: every change moves a generation, and a read stores its result only if the
//! generation is the one it started with.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{db::users::UserRow, events::AccessWatch};

/// How long an entry is trusted after its read, whatever was heard meanwhile.
pub const TRUST_FOR: Duration = Duration::from_secs(5);
/// How many sessions are kept: beyond it, the entries past their trust go, then all.
const CAPACITY: usize = 16_384;

/// A live session as read from the database.
#[derive(Debug, Clone)]
pub struct LiveSession {
    /// The session.
    pub session_id: Uuid,
    /// Its account.
    pub user: UserRow,
    /// When the session ends unless refreshed.
    pub expires_at: DateTime<Utc>,
    /// When it was last recorded as used.
    pub last_used_at: DateTime<Utc>,
}

struct Entry {
    session: LiveSession,
    read_at: Instant,
}

struct State {
    hearing: bool,
    generation: u64,
    entries: HashMap<Uuid, Entry>,
}

/// What a read saw of the cache before it began: its result is kept only if nothing
/// changed meanwhile.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(Option<u64>);

/// The live sessions this instance may trust without reading them.
pub struct SessionCache {
    state: Mutex<State>,
}

impl Default for SessionCache {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                hearing: false,
                generation: 0,
                entries: HashMap::new(),
            }),
        }
    }
}

impl SessionCache {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The live session `session_id` of `user_id`, if it is kept and still trusted.
    pub fn get(&self, session_id: Uuid, user_id: Uuid, now: DateTime<Utc>) -> Option<LiveSession> {
        let state = self.state();
        if !state.hearing {
            return None;
        }
        let entry = state.entries.get(&session_id)?;
        (entry.read_at.elapsed() < TRUST_FOR
            && entry.session.user.id == user_id
            && now < entry.session.expires_at)
            .then(|| entry.session.clone())
    }

    /// To take before reading a session that [`get`](Self::get) did not have.
    pub fn ticket(&self) -> Ticket {
        let state = self.state();
        Ticket(state.hearing.then_some(state.generation))
    }

    /// Keeps `session`, read live after `ticket` was taken, unless something changed
    /// meanwhile.
    pub fn keep(&self, ticket: Ticket, session: LiveSession) {
        let mut state = self.state();
        if !state.hearing || ticket.0 != Some(state.generation) {
            return;
        }
        if state.entries.len() >= CAPACITY {
            state.entries.retain(|_, e| e.read_at.elapsed() < TRUST_FOR);
            if state.entries.len() >= CAPACITY {
                state.entries.clear();
            }
        }
        let read_at = Instant::now();
        state
            .entries
            .insert(session.session_id, Entry { session, read_at });
    }

    /// Records that `session_id` was used at `at`, when it is kept.
    pub fn used(&self, session_id: Uuid, at: DateTime<Utc>) {
        if let Some(entry) = self.state().entries.get_mut(&session_id) {
            entry.session.last_used_at = at;
        }
    }
}

impl AccessWatch for SessionCache {
    fn changed(&self, user_id: Uuid) {
        let mut state = self.state();
        state.generation += 1;
        state.entries.retain(|_, e| e.session.user.id != user_id);
    }

    fn hearing(&self, hearing: bool) {
        let mut state = self.state();
        state.generation += 1;
        state.hearing = hearing;
        state.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::users::Role;

    fn live(user_id: Uuid) -> LiveSession {
        let now = Utc::now();
        LiveSession {
            session_id: Uuid::now_v7(),
            user: UserRow {
                id: user_id,
                username: "ada".to_owned(),
                email: "ada@example.com".to_owned(),
                password_hash: String::new(),
                role: Role::User,
                created_at: now,
                deactivated_at: None,
            },
            expires_at: now + chrono::Duration::minutes(10),
            last_used_at: now,
        }
    }

    fn hearing() -> SessionCache {
        let cache = SessionCache::default();
        cache.hearing(true);
        cache
    }

    #[test]
    fn a_kept_session_is_served_to_its_own_user_only_until_it_expires() {
        let cache = hearing();
        let (ada, eve) = (Uuid::now_v7(), Uuid::now_v7());
        let session = live(ada);
        cache.keep(cache.ticket(), session.clone());
        let now = Utc::now();
        let got = cache.get(session.session_id, ada, now).expect("kept");
        assert_eq!(got.user.id, ada);
        assert!(cache.get(session.session_id, eve, now).is_none());
        assert!(
            cache
                .get(session.session_id, ada, session.expires_at)
                .is_none()
        );
    }

    #[test]
    fn a_change_forgets_that_users_sessions_only() {
        let cache = hearing();
        let (ada, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let (a1, a2, b1) = (live(ada), live(ada), live(bob));
        for s in [&a1, &a2, &b1] {
            cache.keep(cache.ticket(), s.clone());
        }
        cache.changed(ada);
        let now = Utc::now();
        assert!(cache.get(a1.session_id, ada, now).is_none());
        assert!(cache.get(a2.session_id, ada, now).is_none());
        assert!(cache.get(b1.session_id, bob, now).is_some());
    }

    #[test]
    fn a_read_that_began_before_a_change_is_not_kept() {
        let cache = hearing();
        let ada = Uuid::now_v7();
        let session = live(ada);
        // Read, then the session ends and the change is heard, then the read finishes.
        let ticket = cache.ticket();
        cache.changed(Uuid::now_v7());
        cache.keep(ticket, session.clone());
        assert!(cache.get(session.session_id, ada, Utc::now()).is_none());
    }

    #[test]
    fn nothing_is_served_or_kept_while_changes_may_be_missed() {
        let cache = hearing();
        let ada = Uuid::now_v7();
        let kept = live(ada);
        cache.keep(cache.ticket(), kept.clone());
        let before_loss = cache.ticket();
        cache.hearing(false);
        assert!(cache.get(kept.session_id, ada, Utc::now()).is_none());
        let read_while_deaf = live(ada);
        cache.keep(cache.ticket(), read_while_deaf.clone());
        cache.keep(before_loss, read_while_deaf.clone());
        let during = cache.ticket();
        cache.hearing(true);
        // Neither what was kept before, nor a read begun while deaf.
        assert!(cache.get(kept.session_id, ada, Utc::now()).is_none());
        cache.keep(during, read_while_deaf.clone());
        assert!(
            cache
                .get(read_while_deaf.session_id, ada, Utc::now())
                .is_none()
        );
        // A cache that never heard (a bus whose listener does not work) keeps nothing.
        let never = SessionCache::default();
        never.keep(never.ticket(), kept.clone());
        assert!(never.get(kept.session_id, ada, Utc::now()).is_none());
    }

    #[test]
    fn a_flood_of_sessions_keeps_no_more_than_the_capacity() {
        let cache = hearing();
        let ada = Uuid::now_v7();
        let mut last = None;
        for _ in 0..CAPACITY + 10 {
            let s = live(ada);
            last = Some(s.session_id);
            cache.keep(cache.ticket(), s);
            assert!(cache.state().entries.len() <= CAPACITY);
        }
        assert!(cache.get(last.unwrap(), ada, Utc::now()).is_some());
    }
}
