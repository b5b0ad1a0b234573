//! [`Local`]: events delivered within this process, by topic.
//!
//! Each topic with subscribers has a broadcast channel of its own, so that an event
//! reaches only the subscribers of its topic: a vote on one post wakes the few sockets
//! following it, not every socket. A topic's channel goes when its last subscriber
//! leaves, so that topics named by clients (any post id) cannot pile up.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{Arc, Mutex, Weak},
    task::{Context, Poll},
};

use futures::{Stream, StreamExt, stream::BoxStream};
use tokio::sync::broadcast;
use tokio_stream::wrappers::{BroadcastStream, errors::BroadcastStreamRecvError};

use super::{AccessWatch, Event, PubSub, Topic, watch::Watchers};

/// How many events a subscriber may fall behind before it misses some.
const BACKLOG: usize = 1024;

type Channels = Mutex<HashMap<Topic, broadcast::Sender<Event>>>;

/// The events of one instance, in memory.
#[derive(Default, Clone)]
pub struct Local {
    channels: Arc<Channels>,
    watchers: Watchers,
}

impl Local {
    /// Those told of every access change here.
    pub(super) fn watchers(&self) -> &Watchers {
        &self.watchers
    }

    /// Whether anyone here listens to `topic`.
    pub fn has_subscribers(&self, topic: Topic) -> bool {
        self.channels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&topic)
            .is_some_and(|s| s.receiver_count() > 0)
    }

    /// The topics someone here listens to.
    pub fn topics(&self) -> Vec<Topic> {
        self.channels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, s)| s.receiver_count() > 0)
            .map(|(t, _)| *t)
            .collect()
    }
}

impl PubSub for Local {
    fn publish(&self, event: Event) {
        if let Event::AccessChanged { user_id } = event {
            self.watchers.changed(user_id);
        }
        let channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sender) = channels.get(&event.topic()) {
            // An error means its last subscriber has just left.
            let _ = sender.send(event);
        }
    }

    fn watch_access(&self, watcher: Arc<dyn AccessWatch>) {
        self.watchers.add(watcher);
    }

    fn subscribe(&self, topic: Topic) -> BoxStream<'static, Event> {
        let receiver = self
            .channels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(topic)
            .or_insert_with(|| broadcast::channel(BACKLOG).0)
            .subscribe();
        Subscription {
            events: Some(BroadcastStream::new(receiver)),
            topic,
            channels: Arc::downgrade(&self.channels),
        }
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

/// One subscriber's receiver; its topic's channel goes with the last of them.
struct Subscription {
    events: Option<BroadcastStream<Event>>,
    topic: Topic,
    channels: Weak<Channels>,
}

impl Stream for Subscription {
    type Item = Result<Event, BroadcastStreamRecvError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.events.as_mut() {
            Some(events) => events.poll_next_unpin(cx),
            None => Poll::Ready(None),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // The receiver first, so that the count below no longer includes it.
        drop(self.events.take());
        let Some(channels) = self.channels.upgrade() else {
            return;
        };
        let mut channels = channels.lock().unwrap_or_else(|e| e.into_inner());
        if channels
            .get(&self.topic)
            .is_some_and(|s| s.receiver_count() == 0)
        {
            channels.remove(&self.topic);
        }
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    #[tokio::test]
    async fn subscribers_hear_their_topic_only_and_topics_go_with_them() {
        let local = Local::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let mut of_a = local.subscribe(Topic::Access(a));
        let of_b = local.subscribe(Topic::Access(b));
        local.publish(Event::AccessChanged { user_id: b });
        local.publish(Event::AccessChanged { user_id: a });
        match of_a.next().await {
            Some(Event::AccessChanged { user_id }) => assert_eq!(user_id, a),
            other => panic!("{other:?}"),
        }
        assert_eq!(local.topics().len(), 2);
        drop(of_b);
        assert_eq!(local.topics(), vec![Topic::Access(a)]);
        assert!(!local.has_subscribers(Topic::Access(b)));
        drop(of_a);
        assert!(local.channels.lock().unwrap().is_empty());
    }
}
