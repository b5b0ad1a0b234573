//! Request-scoped DataLoaders: fields that would cost one statement per row (a post's
//! author, its votes, a user's posts) are gathered across the whole response and loaded
//! with one statement per kind.
//!
//! Batches are not left to a timer on another thread, which would fire whenever the
//! runtime got to it and split a page's keys over several statements on a busy machine.
//! Instead [`drive`] runs them inside the request's own task, and only once execution can
//! go no further without them: by then every field that was ready to ask for a key has
//! asked, so each kind of key is loaded with one statement, much as a JavaScript
//! DataLoader batches per tick. (A field still waiting on something else, such as another
//! query, asks later and joins a later batch.)

use std::{
    collections::HashMap,
    future::Future,
    pin::pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, Wake, Waker},
};

use async_graphql::dataloader::{DataLoader, Loader};
use futures::{StreamExt, future::BoxFuture, stream::FuturesUnordered};
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

/// Loads rows by key in batches; one per request.
pub struct DbLoader {
    db: Db,
}

/// Batches a request's loader has started and [`drive`] has yet to run.
#[derive(Default)]
pub struct Batches(Mutex<Vec<BoxFuture<'static, ()>>>);

impl Batches {
    fn take(&self) -> Vec<BoxFuture<'static, ()>> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A new loader for one request, and the queue its batches wait in for [`drive`].
pub fn for_request(db: Db) -> (DataLoader<DbLoader>, Arc<Batches>) {
    let batches = Arc::new(Batches::default());
    let queue = batches.clone();
    let loader = DataLoader::new(DbLoader { db }, move |batch| {
        queue
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(batch);
    });
    (loader, batches)
}

/// A loader for one subscription: its batches run on their own tasks, as events arrive
/// outside any request for [`drive`] to work in.
pub fn for_stream(db: Db) -> DataLoader<DbLoader> {
    DataLoader::new(DbLoader { db }, tokio::spawn)
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
pub async fn drive<F: Future>(batches: Arc<Batches>, execution: F) -> F::Output {
    let mut execution = pin!(execution);
    let mut running = FuturesUnordered::new();
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
            running.extend(batches.take());
        }
        // Completed batches wake the fields waiting on them, and so this task.
        while let Poll::Ready(Some(())) = running.poll_next_unpin(cx) {}
        Poll::Pending
    })
    .await
}

/// The number of votes of a post.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VoteCount(pub Uuid);

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

impl Loader<Uuid> for DbLoader {
    type Value = UserRow;
    type Error = LoadError;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, UserRow>, LoadError> {
        let mut conn = self.db.acquire().await?;
        let rows = users::find_many(&mut conn, ids).await?;
        Ok(rows.into_iter().map(|u| (u.id, u)).collect())
    }
}

impl Loader<VoteCount> for DbLoader {
    type Value = i64;
    type Error = LoadError;

    async fn load(&self, keys: &[VoteCount]) -> Result<HashMap<VoteCount, i64>, LoadError> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let mut conn = self.db.acquire().await?;
        let counts = votes::counts(&mut conn, &ids).await?;
        Ok(keys
            .iter()
            .map(|k| (*k, counts.get(&k.0).copied().unwrap_or(0)))
            .collect())
    }
}

impl Loader<HasVoted> for DbLoader {
    type Value = bool;
    type Error = LoadError;

    async fn load(&self, keys: &[HasVoted]) -> Result<HashMap<HasVoted, bool>, LoadError> {
        let mut by_viewer: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for k in keys {
            by_viewer.entry(k.viewer).or_default().push(k.post);
        }
        let mut conn = self.db.acquire().await?;
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

impl Loader<AuthorPosts> for DbLoader {
    type Value = Page<PostRow>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[AuthorPosts],
    ) -> Result<HashMap<AuthorPosts, Page<PostRow>>, LoadError> {
        // Keys that differ only by author share one statement.
        let mut groups: HashMap<(Uuid, bool, PageRequest), Vec<Uuid>> = HashMap::new();
        for k in keys {
            groups
                .entry((k.viewer, k.viewer_is_admin, k.page))
                .or_default()
                .push(k.author);
        }
        let mut conn = self.db.acquire().await?;
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
