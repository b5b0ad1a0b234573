//! Posts and votes: who may see, write, change and vote on what.
//!
//! A draft is visible only to its author and to administrators. To anyone else it does
//! not exist: reading it gives nothing and acting on it says NOT_FOUND, never FORBIDDEN,
//! which would reveal that it exists.

use uuid::Uuid;

use crate::{
    auth::{Identity, throttle::Throttle},
    db::{
        self, Db,
        page::{Page, PageRequest},
        posts::{self, PostRow, PostWithAuthor},
        votes,
    },
    error::{AppError, AppResult},
    events::{Event, Events},
};

/// Longest title, in characters.
pub const MAX_TITLE: usize = 200;
/// Longest body, in characters.
pub const MAX_BODY: usize = 50_000;

/// The posts service.
#[derive(Clone)]
pub struct Posts {
    db: Db,
    events: Events,
    throttle: Throttle,
}

/// How much of an account's write budget a write storing `text` costs: one, and one more
/// for every 4 KiB, so that the budget bounds the bytes stored as well as the writes.
fn write_cost<'a>(text: impl IntoIterator<Item = &'a str>) -> u32 {
    let bytes: usize = text.into_iter().map(str::len).sum();
    u32::try_from(1 + bytes / 4096).unwrap_or(u32::MAX)
}

/// A new post as the client sent it.
#[derive(Debug, Clone)]
pub struct NewPost<'a> {
    /// The title, before trimming.
    pub title: &'a str,
    /// The text, before trimming.
    pub body: &'a str,
    /// False to keep it as a draft.
    pub published: bool,
}

/// Changes to a post; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct PostChanges<'a> {
    /// A new title, before trimming.
    pub title: Option<&'a str>,
    /// A new text, before trimming.
    pub body: Option<&'a str>,
    /// Publish (true) or turn back into a draft (false).
    pub published: Option<bool>,
}

fn is_admin(who: &Identity) -> bool {
    who.acts_as_admin()
}

fn not_found() -> AppError {
    AppError::NotFound("no such post".to_owned())
}

/// Trims a text field and checks its length in characters.
fn text(field: &'static str, value: &str, max: usize) -> AppResult<String> {
    let trimmed = value.trim();
    let len = trimmed.chars().count();
    if len == 0 {
        return Err(AppError::bad_input(
            field,
            format!("{field} must not be empty"),
        ));
    }
    if len > max {
        return Err(AppError::bad_input(
            field,
            format!("{field} must be at most {max} characters long"),
        ));
    }
    Ok(trimmed.to_owned())
}

impl Posts {
    /// The service over `db`, announcing new posts and votes on `events`, with each
    /// account's writes limited by `throttle`.
    pub fn new(db: Db, events: Events, throttle: Throttle) -> Self {
        Self {
            db,
            events,
            throttle,
        }
    }

    /// A post, if `who` may see it.
    #[tracing::instrument(skip_all, fields(%id))]
    pub async fn find(&self, who: &Identity, id: Uuid) -> AppResult<Option<PostRow>> {
        let mut conn = self.db.acquire().await?;
        Ok(posts::find(&mut conn, id)
            .await?
            .filter(|p| p.visible_to(who.user.id, is_admin(who))))
    }

    /// A post `who` may see, or NOT_FOUND.
    async fn visible(&self, conn: &mut db::DbConn, who: &Identity, id: Uuid) -> AppResult<PostRow> {
        posts::find(&mut *conn, id)
            .await?
            .filter(|p| p.visible_to(who.user.id, is_admin(who)))
            .ok_or_else(not_found)
    }

    /// Writes a new post by `who`.
    #[tracing::instrument(skip_all, fields(user_id = %who.user.id))]
    pub async fn create(&self, who: &Identity, new: NewPost<'_>) -> AppResult<PostRow> {
        let now = db::now();
        let post = PostRow {
            id: Uuid::now_v7(),
            author_id: who.user.id,
            title: text("title", new.title, MAX_TITLE)?,
            body: text("body", new.body, MAX_BODY)?,
            published: new.published,
            created_at: now,
            updated_at: now,
            vote_count: 0,
        };
        self.throttle
            .write(who.user.id, write_cost([&*post.title, &*post.body]))
            .await?;
        let mut conn = self.db.acquire().await?;
        posts::insert(&mut conn, &post).await?;
        tracing::info!(post_id = %post.id, "post created");
        if post.published {
            self.events
                .publish(Event::PostPublished(std::sync::Arc::new(post.clone())));
        }
        Ok(post)
    }

    /// Changes a post; only its author may.
    #[tracing::instrument(skip_all, fields(user_id = %who.user.id, %id))]
    pub async fn update(
        &self,
        who: &Identity,
        id: Uuid,
        changes: PostChanges<'_>,
    ) -> AppResult<PostRow> {
        let title = changes
            .title
            .map(|t| text("title", t, MAX_TITLE))
            .transpose()?;
        let body = changes
            .body
            .map(|b| text("body", b, MAX_BODY))
            .transpose()?;
        self.throttle
            .write(
                who.user.id,
                write_cost(title.as_deref().into_iter().chain(body.as_deref())),
            )
            .await?;
        let mut conn = self.db.acquire().await?;
        let post = self.visible(&mut conn, who, id).await?;
        if post.author_id != who.user.id {
            return Err(AppError::Forbidden(
                "only the author may change a post".to_owned(),
            ));
        }
        let updated = posts::update(
            &mut conn,
            id,
            title.as_deref(),
            body.as_deref(),
            changes.published,
            db::now(),
        )
        .await?
        .ok_or_else(not_found)?;
        if updated.published != post.published {
            self.announce(&updated);
        }
        if updated.published && !post.published {
            self.events
                .publish(Event::PostPublished(std::sync::Arc::new(updated.clone())));
        }
        Ok(updated)
    }

    /// Deletes a post; its author or an administrator may.
    #[tracing::instrument(skip_all, fields(user_id = %who.user.id, %id))]
    pub async fn delete(&self, who: &Identity, id: Uuid) -> AppResult<Uuid> {
        self.throttle.write(who.user.id, 1).await?;
        let mut conn = self.db.acquire().await?;
        let post = self.visible(&mut conn, who, id).await?;
        if post.author_id != who.user.id && !is_admin(who) {
            return Err(AppError::Forbidden(
                "only the author or an administrator may delete a post".to_owned(),
            ));
        }
        posts::delete(&mut conn, id).await?;
        tracing::info!("post deleted");
        self.events.publish(Event::PostChanged {
            post_id: id,
            now: None,
        });
        Ok(id)
    }

    /// Votes for a post; voting twice is a no-op.
    #[tracing::instrument(skip_all, fields(user_id = %who.user.id, %id))]
    pub async fn vote(&self, who: &Identity, id: Uuid) -> AppResult<PostRow> {
        self.throttle.write(who.user.id, 1).await?;
        let mut post = self.visible(&mut self.db.acquire().await?, who, id).await?;
        match votes::add(&self.db, id, who.user.id, db::now()).await {
            Ok(count) => {
                post.vote_count = count;
                self.announce(&post);
                Ok(post)
            }
            // Deleted between the check and the vote.
            Err(e) if db::is_foreign_key_violation(&e) => Err(not_found()),
            Err(e) => Err(e.into()),
        }
    }

    /// Withdraws a vote; withdrawing a vote never given is a no-op.
    #[tracing::instrument(skip_all, fields(user_id = %who.user.id, %id))]
    pub async fn unvote(&self, who: &Identity, id: Uuid) -> AppResult<PostRow> {
        self.throttle.write(who.user.id, 1).await?;
        let mut post = self.visible(&mut self.db.acquire().await?, who, id).await?;
        post.vote_count = votes::remove(&self.db, id, who.user.id).await?;
        self.announce(&post);
        Ok(post)
    }

    /// Tells subscribers how `post` stands now.
    fn announce(&self, post: &PostRow) {
        self.events.publish(Event::PostChanged {
            post_id: post.id,
            now: Some(std::sync::Arc::new(post.clone())),
        });
    }

    /// A post, as a subscriber `viewer_id` may be sent it: drafts go to their author
    /// alone, administrators included. `None` when there is no such post or it may not be
    /// sent.
    #[tracing::instrument(skip_all, fields(%id))]
    pub async fn for_subscriber(&self, viewer_id: Uuid, id: Uuid) -> AppResult<Option<PostRow>> {
        let mut conn = self.db.acquire().await?;
        Ok(posts::find(&mut conn, id)
            .await?
            .filter(|p| p.visible_to(viewer_id, false)))
    }

    /// Published posts, newest first, optionally by one author.
    #[tracing::instrument(skip_all)]
    pub async fn published(
        &self,
        author_id: Option<Uuid>,
        page: &PageRequest,
    ) -> AppResult<Page<PostRow>> {
        let mut conn = self.db.acquire().await?;
        Ok(posts::published(&mut conn, author_id, page).await?)
    }

    /// Published posts, newest first, optionally by one author, each with its author and
    /// whether `who` has voted for it.
    #[tracing::instrument(skip_all)]
    pub async fn published_with_authors(
        &self,
        who: &Identity,
        author_id: Option<Uuid>,
        page: &PageRequest,
    ) -> AppResult<Page<PostWithAuthor>> {
        let mut conn = self.db.acquire().await?;
        Ok(posts::published_with_authors(&mut conn, author_id, page, who.user.id).await?)
    }
}
