//! What happened, for whoever listens: new posts and votes for subscriptions, and ended
//! sessions for the WebSocket connections that rely on them.
//!
//! Services publish after their changes are committed; subscribers get every event from
//! the moment they subscribe. Delivery goes through the [`PubSub`] trait: in-process by
//! default, so that a shared broker can carry events between instances without touching
//! publishers or subscribers.

use std::sync::Arc;

use futures::{StreamExt, stream::BoxStream};
use tokio::sync::broadcast;
use tokio_stream::wrappers::{BroadcastStream, errors::BroadcastStreamRecvError};
use uuid::Uuid;

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
        /// The post and its vote count after the change; `None` once deleted. Carried
        /// so that subscribers need not each read them.
        now: Option<(Arc<PostRow>, i64)>,
    },
    /// Some of this user's sessions or keys may have ended, or the account was
    /// deactivated: connections that rely on them must check again.
    AccessChanged {
        /// The user.
        user_id: Uuid,
    },
}

/// Carries events from publishers to subscribers.
pub trait PubSub: Send + Sync + 'static {
    /// Sends `event` to every current subscriber. Never waits and never fails: an event
    /// nobody listens to is dropped.
    fn publish(&self, event: Event);

    /// Every event published from now on. A subscriber too slow to keep up misses
    /// events rather than holding publishers back.
    fn subscribe(&self) -> BoxStream<'static, Event>;
}

/// The events of one instance, in memory.
pub struct InProcess {
    sender: broadcast::Sender<Event>,
}

/// How many events a subscriber may fall behind before it misses some.
const BACKLOG: usize = 1024;

impl Default for InProcess {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(BACKLOG).0,
        }
    }
}

impl PubSub for InProcess {
    fn publish(&self, event: Event) {
        // An error means nobody subscribes right now.
        let _ = self.sender.send(event);
    }

    fn subscribe(&self) -> BoxStream<'static, Event> {
        BroadcastStream::new(self.sender.subscribe())
            .filter_map(|received| async move {
                match received {
                    Ok(event) => Some(event),
                    Err(BroadcastStreamRecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "a subscriber fell behind and missed events");
                        None
                    }
                }
            })
            .boxed()
    }
}

/// The application's event bus: cheap to clone, shared by services and subscriptions.
#[derive(Clone)]
pub struct Events(Arc<dyn PubSub>);

impl Events {
    /// A bus over `pubsub`.
    pub fn new(pubsub: impl PubSub) -> Self {
        Self(Arc::new(pubsub))
    }

    /// Sends `event` to every current subscriber.
    pub fn publish(&self, event: Event) {
        self.0.publish(event);
    }

    /// Every event published from now on.
    pub fn subscribe(&self) -> BoxStream<'static, Event> {
        self.0.subscribe()
    }
}

impl Default for Events {
    fn default() -> Self {
        Self::new(InProcess::default())
    }
}
