//! Reading what other instances' notices name, once per instance and only for topics
//! followed here, and delivering it; catching up after the listener was replaced.

use std::{
    collections::{HashSet, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use super::{BATCH, Owed};
use crate::{
    db::{self, posts},
    events::{
        Event, Local, PubSub, Topic,
        wire::{Kind, Notice},
    },
};

/// Catching up looks back this much before the last notice heard, for posts published by
/// instances whose clock is behind (instances warn at half the 5 s token leeway);
/// duplicates are filtered out.
const CATCH_UP_MARGIN: Duration = Duration::from_secs(10);
/// The most posts a catch-up delivers: the latest published since the notice last heard.
const CATCH_UP_POSTS: i64 = 1000;
/// How many delivered posts are remembered, so that none is delivered twice.
const REMEMBERED: usize = 16_384;

/// The ids of the posts delivered lately, so that a catch-up delivers none twice.
#[derive(Default)]
pub(super) struct Delivered(Mutex<(HashSet<Uuid>, VecDeque<Uuid>)>);

impl Delivered {
    /// Forgets `id`: the post became a draft or was deleted, and may be published again.
    pub(super) fn forget(&self, id: Uuid) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .remove(&id);
    }

    /// Remembers `id`; false when it was already.
    pub(super) fn remember(&self, id: Uuid) -> bool {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (set, order) = &mut *guard;
        if !set.insert(id) {
            return false;
        }
        order.push_back(id);
        if order.len() > REMEMBERED
            && let Some(oldest) = order.pop_front()
        {
            set.remove(&oldest);
        }
        true
    }
}

/// What the worker is handed.
#[derive(Debug, Clone, Copy)]
pub(super) enum Work {
    /// A notice from another instance.
    Notice(Notice),
    /// The listener was replaced: catch up on what it may have missed since this time.
    CatchUp(DateTime<Utc>),
}

/// Reads what notices name and delivers it to the subscribers here.
pub(super) struct Worker {
    pub(super) db: db::Db,
    pub(super) local: Local,
    pub(super) delivered: Arc<Delivered>,
    pub(super) owed: Owed,
}

impl Worker {
    pub(super) async fn run(
        self,
        mut incoming: mpsc::Receiver<Work>,
        mut stop: watch::Receiver<()>,
    ) {
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                n = incoming.recv_many(&mut batch, BATCH) => if n == 0 { return },
            }
            let owed = self.owed.lock().unwrap_or_else(|e| e.into_inner()).take();
            let catch_up = batch
                .iter()
                .filter_map(|w| match w {
                    Work::CatchUp(since) => Some(*since),
                    Work::Notice(_) => None,
                })
                .chain(owed)
                .min();
            let notices: Vec<Notice> = batch
                .drain(..)
                .filter_map(|w| match w {
                    Work::Notice(n) => Some(n),
                    Work::CatchUp(_) => None,
                })
                .collect();
            if let Err(e) = self.deliver(&notices).await {
                tracing::warn!(error = %crate::error::chain(&e), "could not read what other instances announced");
            }
            if let Some(since) = catch_up
                && let Err(e) = self.catch_up(since).await
            {
                tracing::warn!(error = %crate::error::chain(&e), "could not catch up on events");
            }
        }
    }

    /// Delivers what `notices` name to the subscribers here, reading the posts they
    /// follow in two statements.
    async fn deliver(&self, notices: &[Notice]) -> Result<(), sqlx::Error> {
        let mut published = Vec::new();
        let mut changed = Vec::new();
        for notice in notices {
            match notice.kind {
                Kind::Published if self.local.has_subscribers(Topic::NewPosts) => {
                    published.push(notice.id);
                }
                Kind::Withdrawn => {
                    self.delivered.forget(notice.id);
                    if self.local.has_subscribers(Topic::Post(notice.id)) {
                        changed.push(notice.id);
                    }
                }
                Kind::Changed if self.local.has_subscribers(Topic::Post(notice.id)) => {
                    changed.push(notice.id);
                }
                Kind::Access if self.local.has_subscribers(Topic::Access(notice.id)) => {
                    self.local
                        .publish(Event::AccessChanged { user_id: notice.id });
                }
                _ => {}
            }
        }
        if !published.is_empty() {
            let mut conn = self.db.acquire().await?;
            let rows = posts::find_many(&mut conn, &published).await?;
            // In the order they were announced.
            for id in &published {
                if let Some(row) = rows.iter().find(|r| r.id == *id) {
                    self.publish_post(row.clone());
                }
            }
        }
        self.post_changes(changed).await
    }

    /// Delivers a published post, unless it was already.
    fn publish_post(&self, row: posts::PostRow) {
        if row.published && self.delivered.remember(row.id) {
            self.local.publish(Event::PostPublished(Arc::new(row)));
        }
    }

    /// Tells the subscribers of each of `ids` how the post stands now.
    async fn post_changes(&self, mut ids: Vec<Uuid>) -> Result<(), sqlx::Error> {
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.db.acquire().await?;
        let rows = posts::find_many(&mut conn, &ids).await?;
        for id in ids {
            let now = rows
                .iter()
                .find(|r| r.id == id)
                .map(|row| Arc::new(row.clone()));
            self.local.publish(Event::PostChanged { post_id: id, now });
        }
        Ok(())
    }

    /// Delivers what may have been missed since `since`: posts published, vote counts of
    /// the posts followed here, and a recheck of every connection's credentials.
    async fn catch_up(&self, since: DateTime<Utc>) -> Result<(), sqlx::Error> {
        ::metrics::counter!("events_catch_ups_total").increment(1);
        let topics = self.local.topics();
        for topic in &topics {
            if let Topic::Access(user_id) = topic {
                self.local
                    .publish(Event::AccessChanged { user_id: *user_id });
            }
        }
        if topics.contains(&Topic::NewPosts) {
            let from = since - CATCH_UP_MARGIN;
            let mut conn = self.db.acquire().await?;
            let rows =
                posts::published_since(&mut conn, db::truncate(from), CATCH_UP_POSTS).await?;
            if rows.len() as i64 == CATCH_UP_POSTS {
                tracing::warn!(
                    posts = CATCH_UP_POSTS,
                    "catching up on events: more posts were published meanwhile than are \
                     delivered late; the earliest were not"
                );
            }
            for row in rows {
                self.publish_post(row);
            }
        }
        let followed = topics
            .iter()
            .filter_map(|t| match t {
                Topic::Post(id) => Some(*id),
                _ => None,
            })
            .collect();
        self.post_changes(followed).await?;
        tracing::info!(
            topics = topics.len(),
            "caught up on events after the listener reconnected"
        );
        Ok(())
    }
}
