//! Request-scoped DataLoaders: fields that would cost one statement per row (a post's
//! author, its votes, a user's posts) are gathered across the whole response and loaded
//! with one statement per kind.

use std::{collections::HashMap, sync::Arc};

use async_graphql::dataloader::{DataLoader, Loader};
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

/// Loads rows by key in batches; one per request.
pub struct DbLoader {
    db: Db,
}

/// A new loader for one request. Its batches run in tasks of their own, which stay in the
/// request's tracing span so that their statements are logged with the request id.
pub fn for_request(db: Db) -> DataLoader<DbLoader> {
    DataLoader::new(DbLoader { db }, |batch| {
        tokio::spawn(batch.instrument(tracing::Span::current()))
    })
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
