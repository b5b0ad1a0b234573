//! One execution per distinct subscription.
//!
//! Subscriptions with the same document, operation, variables and viewer receive the same
//! messages. Rather than have each resolve every event's selection itself (a thousand
//! subscriptions to `postCreated` with a nested selection would make one new post cost
//! thousands of statements), they share one execution: the first to arrive starts it on
//! a task of its own, and the others, however many and on whichever connections, receive
//! copies of its messages. The execution stops when its last subscriber leaves. (async-graphql
//! 7.2's `execute_stream` runs one stream per subscription, sharing nothing.)
//!
//! A subscription that starts with the current state (`postVoted`) replays the latest
//! message to a newcomer, which is the state as the execution last saw it; any change
//! since then is still to come. A subscriber that falls far behind misses messages rather
//! than holding the others back, as with the event bus itself.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
};

use async_graphql::Response;
use futures::{StreamExt, stream::BoxStream};
use sha2::{Digest, Sha256};
use tokio::{sync::broadcast, task::AbortHandle};
use tokio_stream::wrappers::{BroadcastStream, errors::BroadcastStreamRecvError};
use tracing::Instrument;
use uuid::Uuid;

/// How many messages a subscriber may fall behind its execution before it misses some.
const BACKLOG: usize = 256;

/// Who a subscription's messages are for: what they show depends on nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Viewer {
    /// The signed-in user.
    pub user_id: Uuid,
    /// Whether they act as an administrator.
    pub admin: bool,
}

/// What makes two subscriptions the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key([u8; 32]);

impl Key {
    /// The key of a subscription with this document, operation name and variables (as
    /// JSON), for `viewer`.
    pub fn new(query: &str, operation: Option<&str>, variables: &str, viewer: Viewer) -> Self {
        let mut hash = Sha256::new();
        for part in [query, operation.unwrap_or(""), variables] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        hash.update(viewer.user_id.as_bytes());
        hash.update([u8::from(viewer.admin), u8::from(operation.is_some())]);
        Self(hash.finalize().into())
    }
}

/// The executions running now.
#[derive(Default)]
pub struct Fanout {
    running: Mutex<HashMap<Key, Weak<Execution>>>,
}

/// One running execution, alive while a subscriber holds it.
struct Execution {
    key: Key,
    fanout: Weak<Fanout>,
    /// `None` once the execution has ended; taken then, so that subscribers' streams end.
    sender: Mutex<Option<broadcast::Sender<Arc<Response>>>>,
    latest: Mutex<Option<Arc<Response>>>,
    task: Mutex<Option<AbortHandle>>,
}

impl Fanout {
    /// The messages of the subscription `key`: from its running execution, if there is
    /// one, or from a new one that `start` begins. `replay`: whether a newcomer gets the
    /// latest message first.
    pub fn join(
        self: &Arc<Self>,
        key: Key,
        replay: bool,
        start: impl FnOnce() -> BoxStream<'static, Response>,
    ) -> BoxStream<'static, Response> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        // Dropped only after the lock is given back: were it the last reference, its
        // drop would take the lock again.
        let existing = running.get(&key).and_then(Weak::upgrade);
        if let Some(joined) = existing.clone().and_then(|e| e.subscribe(replay)) {
            drop(running);
            return joined;
        }
        let (sender, receiver) = broadcast::channel(BACKLOG);
        let execution = Arc::new(Execution {
            key,
            fanout: Arc::downgrade(self),
            sender: Mutex::new(Some(sender)),
            latest: Mutex::new(None),
            task: Mutex::new(None),
        });
        running.insert(key, Arc::downgrade(&execution));
        drop(running);
        let source = prime(start());
        // In the span of the subscriber that started it: its log lines and statements
        // are that connection's.
        let handle = tokio::spawn(forward(source, Arc::downgrade(&execution)).in_current_span());
        *execution.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle.abort_handle());
        messages(None, receiver, execution)
    }

    /// How many executions are running.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|e| e.strong_count() > 0)
            .count()
    }

    /// Whether none is.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Execution {
    /// A newcomer's messages, unless the execution has ended.
    fn subscribe(self: Arc<Self>, replay: bool) -> Option<BoxStream<'static, Response>> {
        let (receiver, first) = {
            // Under `latest`'s lock, so that no message falls between the two.
            let latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
            let sender = self.sender.lock().unwrap_or_else(|e| e.into_inner());
            let receiver = sender.as_ref()?.subscribe();
            (receiver, latest.clone().filter(|_| replay))
        };
        Some(messages(first, receiver, self))
    }

    /// Forgets this execution, if it is still the one running under its key.
    fn forget(&self) {
        let Some(fanout) = self.fanout.upgrade() else {
            return;
        };
        let mut running = fanout.running.lock().unwrap_or_else(|e| e.into_inner());
        let ours = running
            .get(&self.key)
            .is_some_and(|e| std::ptr::eq(e.as_ptr(), self) || e.strong_count() == 0);
        if ours {
            running.remove(&self.key);
        }
    }
}

impl Drop for Execution {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
        self.forget();
    }
}

/// Polls `source` once, here, in the subscriber's own task: its resolver runs up to its
/// first wait, so that it listens to its events before the client hears anything more
/// from the connection (the answer to a ping, say). Left to the execution's task, the
/// first poll could come after a post the client had every reason to expect.
fn prime(mut source: BoxStream<'static, Response>) -> BoxStream<'static, Response> {
    let mut context = std::task::Context::from_waker(futures::task::noop_waker_ref());
    match source.poll_next_unpin(&mut context) {
        std::task::Poll::Pending => source,
        std::task::Poll::Ready(Some(first)) => {
            futures::stream::once(async { first }).chain(source).boxed()
        }
        std::task::Poll::Ready(None) => futures::stream::empty().boxed(),
    }
}

/// Runs `source`, sending each message to the execution's subscribers, until it ends or
/// they have all left.
async fn forward(mut source: BoxStream<'static, Response>, execution: Weak<Execution>) {
    while let Some(response) = source.next().await {
        let Some(execution) = execution.upgrade() else {
            return;
        };
        let response = Arc::new(response);
        let mut latest = execution.latest.lock().unwrap_or_else(|e| e.into_inner());
        // Only a state is replayed: an error (a failed read) is news for those who were
        // there, and would read to a newcomer as its subscription failing to start.
        if !matches!(response.data, async_graphql::Value::Null) {
            *latest = Some(response.clone());
        }
        if let Some(sender) = &*execution.sender.lock().unwrap_or_else(|e| e.into_inner()) {
            // An error means every subscriber has just left.
            let _ = sender.send(response);
        }
    }
    if let Some(execution) = execution.upgrade() {
        execution.forget();
        execution
            .sender
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }
}

/// One subscriber's messages: `first`, then what the execution sends, each a copy of its
/// own. Holds the execution alive.
fn messages(
    first: Option<Arc<Response>>,
    receiver: broadcast::Receiver<Arc<Response>>,
    execution: Arc<Execution>,
) -> BoxStream<'static, Response> {
    let rest = BroadcastStream::new(receiver).filter_map(move |received| {
        let _held = &execution;
        futures::future::ready(match received {
            Ok(response) => Some(copy(&response)),
            Err(BroadcastStreamRecvError::Lagged(missed)) => {
                tracing::warn!(missed, "a subscriber fell behind and missed messages");
                None
            }
        })
    });
    futures::stream::iter(first.map(|r| copy(&r)))
        .chain(rest)
        .boxed()
}

/// A response of one's own (`Response` is not `Clone`).
fn copy(response: &Response) -> Response {
    let mut copy = Response::new(response.data.clone());
    copy.errors = response.errors.clone();
    copy.extensions = response.extensions.clone();
    copy
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use async_graphql::Value;
    use futures::stream;

    use super::*;

    fn key(n: u8) -> Key {
        let viewer = Viewer {
            user_id: Uuid::nil(),
            admin: false,
        };
        Key::new(&n.to_string(), None, "{}", viewer)
    }

    #[tokio::test]
    async fn subscribers_of_one_key_share_one_execution() {
        let fanout = Arc::new(Fanout::default());
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<i32>();
        let mut first = fanout.join(key(1), true, || {
            tokio_stream::wrappers::UnboundedReceiverStream::new(rx)
                .map(|n| Response::new(Value::from(n)))
                .boxed()
        });
        tx.send(1).unwrap();
        assert_eq!(first.next().await.unwrap().data, Value::from(1));
        // A newcomer gets the latest message first, then the next ones with the others.
        let mut second = fanout.join(key(1), true, || unreachable!("shared"));
        let mut third = fanout.join(key(1), false, || unreachable!("shared"));
        assert_eq!(fanout.len(), 1);
        assert_eq!(second.next().await.unwrap().data, Value::from(1));
        tx.send(2).unwrap();
        for s in [&mut first, &mut second, &mut third] {
            assert_eq!(s.next().await.unwrap().data, Value::from(2));
        }
        // The execution ends when its source does, and its subscribers' streams with it.
        drop(tx);
        assert!(first.next().await.is_none());
        assert!(fanout.is_empty());
        let other = fanout.join(key(1), true, || stream::empty().boxed());
        drop(other);
    }

    #[tokio::test]
    async fn an_execution_stops_when_its_last_subscriber_leaves() {
        let fanout = Arc::new(Fanout::default());
        let (dropped_tx, dropped_rx) = tokio::sync::oneshot::channel::<()>();
        struct Tell(Option<tokio::sync::oneshot::Sender<()>>);
        impl Drop for Tell {
            fn drop(&mut self) {
                let _ = self.0.take().unwrap().send(());
            }
        }
        let tell = Tell(Some(dropped_tx));
        let a = fanout.join(key(2), false, move || {
            stream::pending()
                .map(move |()| {
                    let _ = &tell;
                    Response::default()
                })
                .boxed()
        });
        let b = fanout.join(key(2), false, || unreachable!("shared"));
        assert_eq!(fanout.len(), 1);
        drop(a);
        assert_eq!(fanout.len(), 1);
        drop(b);
        tokio::time::timeout(Duration::from_secs(2), dropped_rx)
            .await
            .expect("the source is dropped")
            .unwrap();
        assert!(fanout.is_empty());
    }
}
