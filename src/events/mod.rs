//! What happened, for whoever listens: new posts and votes for subscriptions, and ended
//! sessions for the WebSocket connections that rely on them.
//!
//! Services publish after their changes are committed; subscribers get every event of
//! their [`Topic`] from the moment they subscribe, and nothing of other topics. Delivery
//! goes through the [`PubSub`] trait: [`Local`] keeps events in this process (SQLite, one
//! instance); [`Shared`] also carries them to every other instance on the same PostgreSQL
//! database, through `LISTEN`/`NOTIFY`, so that a subscriber on one instance hears of a
//! post created on another. A store such as Redis could carry them instead by
//! implementing the trait.

mod local;
mod shared;
mod watch;
mod wire;

use std::sync::Arc;

use futures::stream::BoxStream;
use uuid::Uuid;

pub use local::Local;
pub use shared::{ListenerError, Shared};
pub use watch::AccessWatch;

use crate::db::posts::PostRow;

/// Something subscribers may want to know.
#[derive(Debug, Clone)]
pub enum Event {
    /// A post became visible to everyone: written as published, or a draft published.
    PostPublished(Arc<PostRow>),
    /// A vote was given or withdrawn on this post, or it was deleted, published or
    /// turned back into a draft.
    PostChanged {
        /// The post.
        post_id: Uuid,
        /// The post after the change, with its vote count; `None` once deleted.
        /// Carried so that subscribers need not each read it.
        now: Option<Arc<PostRow>>,
    },
    /// Some of this user's sessions or keys may have ended, or the account was
    /// deactivated or its role changed: connections that rely on them must check again.
    AccessChanged {
        /// The user.
        user_id: Uuid,
    },
}

/// What a subscriber listens to: it hears the events of its topic only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Posts as they are published.
    NewPosts,
    /// Changes to one post: votes, deletion, publication.
    Post(Uuid),
    /// Changes to one user's sessions, keys, role or standing.
    Access(Uuid),
}

impl Event {
    /// The topic whose subscribers hear of it.
    pub fn topic(&self) -> Topic {
        match self {
            Self::PostPublished(_) => Topic::NewPosts,
            Self::PostChanged { post_id, .. } => Topic::Post(*post_id),
            Self::AccessChanged { user_id } => Topic::Access(*user_id),
        }
    }
}

/// Carries events from publishers to subscribers.
pub trait PubSub: Send + Sync + 'static {
    /// Sends `event` to every current subscriber of its topic, here and on other
    /// instances. Never waits and never fails: an event nobody listens to is dropped.
    fn publish(&self, event: Event);

    /// Every event of `topic` published from now on. A subscriber too slow to keep up
    /// misses events rather than holding publishers back.
    fn subscribe(&self, topic: Topic) -> BoxStream<'static, Event>;

    /// Tells `watcher` of every access change from now on, made here or elsewhere, as
    /// soon as this instance hears of it, and of whether it hears them all.
    fn watch_access(&self, watcher: Arc<dyn AccessWatch>);
}

/// The application's event bus: cheap to clone, shared by services and subscriptions.
#[derive(Clone)]
pub struct Events(Arc<dyn PubSub>);

impl Events {
    /// A bus over `pubsub`.
    pub fn new(pubsub: impl PubSub) -> Self {
        Self(Arc::new(pubsub))
    }

    /// Sends `event` to every current subscriber of its topic.
    pub fn publish(&self, event: Event) {
        self.0.publish(event);
    }

    /// Every event of `topic` published from now on.
    pub fn subscribe(&self, topic: Topic) -> BoxStream<'static, Event> {
        self.0.subscribe(topic)
    }

    /// Tells `watcher` of every access change from now on, and of whether this instance
    /// hears them all.
    pub fn watch_access(&self, watcher: Arc<dyn AccessWatch>) {
        self.0.watch_access(watcher);
    }
}

impl Default for Events {
    fn default() -> Self {
        Self::new(Local::default())
    }
}
