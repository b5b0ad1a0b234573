//! Request-scoped DataLoaders: fields that would cost one statement per row (a post's
//! author, its votes, a user's posts) are gathered across the whole response and loaded
//! with one statement per kind.
//!
//! Batches are not left to a timer, which would add its tick to every batch's latency
//! and split a page's keys over several statements whenever it fired early. Instead
//! [`drive`] runs them inside the request's own task, and only once execution can go no
//! further without them: by then every field that was ready to ask for a key has asked,
//! so each kind of key is loaded with one statement, much as a JavaScript DataLoader
//! batches per tick. (A field still waiting on something else, such as another query,
//! asks later and joins a later batch.) A batch takes its keys when it starts, not when
//! it is queued, so keys asked for while an earlier batch runs join it too.
//!
//! This replaces async-graphql's `DataLoader`, which batches on a timer (its `delay`) and
//! spawns each batch. It relies on three behaviours, each checked by the batching tests'
//! statement counts (`tests/api/batching.rs`):
//! - async-graphql 7.2 resolves a selection's fields as futures joined inside the
//!   request's own task (`FuturesUnordered` for an object's fields, `try_join_all` for a
//!   list's items), never spawned, so one `poll` of the
//!   execution future reaches every field that can run;
//! - a future that returns `Pending` without waking itself is waiting on something
//!   outside it (here, a batch), while one that wakes itself before returning (a long
//!   list, async-graphql yielding) is not: [`drive`] tells the two apart with its waker;
//! - tokio 1's cooperative budget: a task that spent it is woken only after its poll
//!   returns, so `tokio::task::coop::has_budget_remaining` counts as a self-wake too.
//!
//! Subscriptions, which run outside any request, use [`for_stream`]: batches spawned
//! after a short delay, as a timer-based loader would.

use std::{
    collections::{HashMap, VecDeque},
    future::Future,
    hash::Hash,
    pin::pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, Wake, Waker},
    time::Duration,
};

use futures::{FutureExt, channel::oneshot, future::BoxFuture};
use tracing::Instrument;
use uuid::Uuid;

use crate::db::{
    Db,
    page::{Page, PageRequest},
    posts::{self, PostRow},
    users::{self, UserRow},
    votes,
};

/// Loader errors are shared between every field that waited on the batch.
pub type LoadError = Arc<sqlx::Error>;

/// What one field waits for.
type Answer<V> = Result<Option<V>, LoadError>;

/// A kind of key the loader batches, and how a batch of them is loaded.
pub trait Key: Copy + Eq + Hash + Send + 'static {
    /// What a key loads.
    type Value: Clone + Send + 'static;

    /// This kind's waiting keys.
    fn waiting(pending: &mut Pending) -> &mut Waiting<Self>;

    /// Loads the keys' values with one statement (or one per group of keys); keys
    /// without a value are left out.
    fn load(
        db: Db,
        keys: Vec<Self>,
    ) -> impl Future<Output = Result<HashMap<Self, Self::Value>, LoadError>> + Send;
}

/// The keys of one kind asked for since its last batch started, with who waits on each.
pub struct Waiting<K: Key>(HashMap<K, Vec<oneshot::Sender<Answer<K::Value>>>>);

impl<K: Key> Default for Waiting<K> {
    fn default() -> Self {
        Self(HashMap::new())
    }
}

/// Every kind's waiting keys.
#[derive(Default)]
pub struct Pending {
    users: Waiting<Uuid>,
    has_voted: Waiting<HasVoted>,
    author_posts: Waiting<AuthorPosts>,
}

/// Where a loader's batches go once queued.
enum Runs {
    /// To [`drive`], in the request's task.
    InRequest(Arc<Batches>),
    /// To a task of their own, after a moment for the other keys of the same event to
    /// be asked for (subscriptions, which have no request to drive them).
    Spawned,
}

/// Loads rows by key in batches; one per request or subscription.
pub struct DbLoader {
    db: Db,
    pending: Arc<Mutex<Pending>>,
    runs: Runs,
}

/// Batches a request's loader has queued and [`drive`] has yet to run.
#[derive(Default)]
pub struct Batches(Mutex<Vec<BoxFuture<'static, ()>>>);

impl Batches {
    fn take(&self) -> Vec<BoxFuture<'static, ()>> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// How long a subscription's batch waits for more keys.
const SPAWNED_BATCH_DELAY: Duration = Duration::from_millis(1);

/// A new loader for one request, and the queue its batches wait in for [`drive`].
pub fn for_request(db: Db) -> (DbLoader, Arc<Batches>) {
    let batches = Arc::new(Batches::default());
    let loader = DbLoader {
        db,
        pending: Arc::default(),
        runs: Runs::InRequest(batches.clone()),
    };
    (loader, batches)
}

/// A loader for subscriptions: its batches run on their own tasks, as events arrive
/// outside any request for [`drive`] to work in. One serves every subscription, so that
/// the keys one event makes many subscriptions ask for are loaded together.
pub fn for_stream(db: Db) -> DbLoader {
    DbLoader {
        db,
        pending: Arc::default(),
        runs: Runs::Spawned,
    }
}

impl DbLoader {
    /// The value of `key`, loaded in a batch with the other keys of its kind.
    pub async fn load_one<K: Key>(&self, key: K) -> Answer<K::Value> {
        let (sender, answer) = oneshot::channel();
        let first = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let waiting = &mut K::waiting(&mut pending).0;
            let first = waiting.is_empty();
            waiting.entry(key).or_default().push(sender);
            first
        };
        if first {
            self.queue_batch::<K>();
        }
        answer.await.unwrap_or_else(|_| {
            Err(Arc::new(sqlx::Error::Protocol(
                "the batch was dropped before it answered".to_owned(),
            )))
        })
    }

    /// Queues a batch that will load whatever keys of kind `K` are waiting when it starts.
    fn queue_batch<K: Key>(&self) {
        let pending = self.pending.clone();
        let db = self.db.clone();
        let batch = async move {
            let waiting = std::mem::take(
                &mut K::waiting(&mut pending.lock().unwrap_or_else(|e| e.into_inner())).0,
            );
            if waiting.is_empty() {
                return;
            }
            let loaded = K::load(db, waiting.keys().copied().collect()).await;
            for (key, senders) in waiting {
                let answer = match &loaded {
                    Ok(values) => Ok(values.get(&key).cloned()),
                    Err(e) => Err(e.clone()),
                };
                for sender in senders {
                    // A field no longer waiting has nothing to be told.
                    let _ = sender.send(answer.clone());
                }
            }
        }
        .boxed();
        match &self.runs {
            Runs::InRequest(batches) => batches
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(batch),
            Runs::Spawned => {
                tokio::spawn(
                    async move {
                        tokio::time::sleep(SPAWNED_BATCH_DELAY).await;
                        batch.await;
                    }
                    .in_current_span(),
                );
            }
        }
    }
}

/// Forwards wake-ups to the task and notes that one happened.
struct NotingWaker {
    task: Waker,
    woken: AtomicBool,
}

impl Wake for NotingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake_by_ref();
    }
}

/// Runs `execution` to completion, running the loader's batches whenever execution is
/// waiting.
///
/// Execution sometimes returns `Pending` only to let other tasks run (a long list of
/// fields, a spent cooperative budget), waking itself before it returns. That is not
/// waiting, and starting the batches then would split them; so execution is polled with
/// a waker that notes such a wake-up, and the batches run only after a poll without one.
///
/// Batches run one after another, in the order they were started: a request's statements
/// then share one connection (see [`crate::db::kept`]) rather than each taking its own.
pub async fn drive<F: Future>(batches: Arc<Batches>, execution: F) -> F::Output {
    let mut execution = pin!(execution);
    let mut waiting = VecDeque::new();
    let mut running: Option<BoxFuture<'static, ()>> = None;
    std::future::poll_fn(move |cx| {
        let noting = Arc::new(NotingWaker {
            task: cx.waker().clone(),
            woken: AtomicBool::new(false),
        });
        let waker = Waker::from(noting.clone());
        if let Poll::Ready(output) = execution.as_mut().poll(&mut Context::from_waker(&waker)) {
            return Poll::Ready(output);
        }
        // Tokio defers the wake-up of a task that spent its cooperative budget until after
        // the poll, so a spent budget counts as a voluntary yield too.
        let yielded =
            noting.woken.load(Ordering::Acquire) || !tokio::task::coop::has_budget_remaining();
        if !yielded {
            // Execution waits: every key it can ask for now has been asked for.
            waiting.extend(batches.take());
        }
        // A completed batch wakes the fields waiting on it, and so this task.
        loop {
            if running.is_none() {
                running = waiting.pop_front();
            }
            let Some(batch) = running.as_mut() else {
                break;
            };
            if batch.as_mut().poll(cx).is_pending() {
                break;
            }
            running = None;
        }
        Poll::Pending
    })
    .await
}

/// Whether a viewer has voted for a post.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HasVoted {
    /// The post.
    pub post: Uuid,
    /// The viewer.
    pub viewer: Uuid,
}

/// One page of an author's posts, as one viewer may see them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuthorPosts {
    /// The author.
    pub author: Uuid,
    /// The viewer.
    pub viewer: Uuid,
    /// Whether the viewer is an administrator (who sees drafts).
    pub viewer_is_admin: bool,
    /// Which page.
    pub page: PageRequest,
}

impl Key for Uuid {
    type Value = UserRow;

    fn waiting(pending: &mut Pending) -> &mut Waiting<Self> {
        &mut pending.users
    }

    async fn load(db: Db, ids: Vec<Uuid>) -> Result<HashMap<Uuid, UserRow>, LoadError> {
        let mut conn = db.acquire().await?;
        let rows = users::find_many(&mut conn, &ids).await?;
        Ok(rows.into_iter().map(|u| (u.id, u)).collect())
    }
}

impl Key for HasVoted {
    type Value = bool;

    fn waiting(pending: &mut Pending) -> &mut Waiting<Self> {
        &mut pending.has_voted
    }

    async fn load(db: Db, keys: Vec<HasVoted>) -> Result<HashMap<HasVoted, bool>, LoadError> {
        let mut by_viewer: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for k in &keys {
            by_viewer.entry(k.viewer).or_default().push(k.post);
        }
        let mut conn = db.acquire().await?;
        let mut out = HashMap::with_capacity(keys.len());
        for (viewer, posts) in by_viewer {
            let voted = votes::voted(&mut conn, viewer, &posts).await?;
            out.extend(
                posts
                    .into_iter()
                    .map(|post| (HasVoted { post, viewer }, voted.contains(&post))),
            );
        }
        Ok(out)
    }
}

impl Key for AuthorPosts {
    type Value = Page<PostRow>;

    fn waiting(pending: &mut Pending) -> &mut Waiting<Self> {
        &mut pending.author_posts
    }

    async fn load(
        db: Db,
        keys: Vec<AuthorPosts>,
    ) -> Result<HashMap<AuthorPosts, Page<PostRow>>, LoadError> {
        // Keys that differ only by author share one statement.
        let mut groups: HashMap<(Uuid, bool, PageRequest), Vec<Uuid>> = HashMap::new();
        for k in &keys {
            groups
                .entry((k.viewer, k.viewer_is_admin, k.page))
                .or_default()
                .push(k.author);
        }
        let mut conn = db.acquire().await?;
        let mut out = HashMap::with_capacity(keys.len());
        for ((viewer, viewer_is_admin, page), authors) in groups {
            let pages =
                posts::by_authors(&mut conn, &authors, viewer, viewer_is_admin, &page).await?;
            out.extend(pages.into_iter().map(|(author, p)| {
                (
                    AuthorPosts {
                        author,
                        viewer,
                        viewer_is_admin,
                        page,
                    },
                    p,
                )
            }));
        }
        Ok(out)
    }
}
