//! Posts and votes.

use async_graphql::{ComplexObject, Context, ID, Object, Result, connection::Connection};

use super::{
    connection::{PageCursor, connection, page_request},
    context::{identity, loader, parse_id, posts},
    guards::{CanWrite, RoleAtLeast, SignedIn},
    loaders::HasVoted,
    types::{CreatePostInput, Post, UpdatePostInput, User},
};
use crate::{
    db::users::Role,
    error::AppError,
    posts::{NewPost, PostChanges},
};

#[ComplexObject]
impl Post {
    /// Who wrote the post.
    async fn author(&self, ctx: &Context<'_>) -> Result<User> {
        if let Some(author) = &self.author {
            return Ok(author.clone());
        }
        let author = loader(ctx)
            .load_one(self.author_id)
            .await
            .map_err(AppError::internal)?
            .ok_or_else(|| AppError::internal("a post's author is missing"))?;
        Ok(author.into())
    }

    /// How many users have voted for the post.
    async fn vote_count(&self) -> i32 {
        i32::try_from(self.vote_count).unwrap_or(i32::MAX)
    }

    /// Whether the caller has voted for the post.
    async fn viewer_has_voted(&self, ctx: &Context<'_>) -> Result<bool> {
        if let Some(voted) = self.viewer_voted {
            return Ok(voted);
        }
        let who = identity(ctx).await?;
        let key = HasVoted {
            post: self.uuid,
            viewer: who.user.id,
        };
        Ok(loader(ctx)
            .load_one(key)
            .await
            .map_err(AppError::internal)?
            .unwrap_or(false))
    }
}

/// Reading posts.
#[derive(Default)]
pub struct PostQuery;

#[Object]
impl PostQuery {
    /// A post by id; null when there is none or the caller may not see it.
    #[graphql(guard = "SignedIn")]
    async fn post(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Post>> {
        let who = identity(ctx).await?;
        let id = parse_id("id", &id)?;
        Ok(posts(ctx).find(who, id).await?.map(Post::from))
    }

    /// Published posts, newest first.
    #[graphql(
        guard = "SignedIn",
        complexity = "first.unwrap_or(20).max(0) as usize * child_complexity"
    )]
    async fn posts(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20, desc = "How many posts, at most 100.")] first: Option<i32>,
        #[graphql(desc = "A cursor from a previous page.")] after: Option<String>,
        #[graphql(desc = "Only posts by this user.")] author_id: Option<ID>,
    ) -> Result<Connection<PageCursor, Post>> {
        let page = page_request(first, after.as_deref())?;
        let author = author_id.map(|id| parse_id("authorId", &id)).transpose()?;
        // What the selection shows of each post's author and the caller's vote is read
        // with the page, in its one statement.
        let look = ctx.look_ahead();
        let shown = |field: &str| {
            look.field("edges").field("node").field(field).exists()
                || look.field("nodes").field(field).exists()
        };
        if shown("author") || shown("viewerHasVoted") {
            let who = identity(ctx).await?;
            let page = posts(ctx)
                .published_with_authors(who, author, &page)
                .await?;
            return Ok(connection(page, Post::from));
        }
        Ok(connection(
            posts(ctx).published(author, &page).await?,
            Post::from,
        ))
    }
}

/// Writing posts and voting.
#[derive(Default)]
pub struct PostMutation;

#[Object]
impl PostMutation {
    /// Writes a post, published unless `published` is false.
    #[graphql(guard = "CanWrite")]
    async fn create_post(&self, ctx: &Context<'_>, input: CreatePostInput) -> Result<Post> {
        let who = identity(ctx).await?;
        let new = NewPost {
            title: &input.title,
            body: &input.body,
            published: input.published.unwrap_or(true),
        };
        Ok(posts(ctx).create(who, new).await?.into())
    }

    /// Changes a post; only its author may.
    #[graphql(guard = "CanWrite")]
    async fn update_post(&self, ctx: &Context<'_>, id: ID, input: UpdatePostInput) -> Result<Post> {
        let who = identity(ctx).await?;
        let id = parse_id("id", &id)?;
        let changes = PostChanges {
            title: input.title.as_deref(),
            body: input.body.as_deref(),
            published: input.published,
        };
        Ok(posts(ctx).update(who, id, changes).await?.into())
    }

    /// Deletes a post; its author or an administrator may. Returns the post's id.
    #[graphql(guard = "RoleAtLeast(Role::Admin).or(CanWrite)")]
    async fn delete_post(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let who = identity(ctx).await?;
        let id = parse_id("id", &id)?;
        Ok(ID(posts(ctx).delete(who, id).await?.to_string()))
    }

    /// Votes for a post. Voting again changes nothing.
    #[graphql(guard = "CanWrite")]
    async fn vote_post(&self, ctx: &Context<'_>, id: ID) -> Result<Post> {
        let who = identity(ctx).await?;
        let id = parse_id("id", &id)?;
        Ok(posts(ctx).vote(who, id).await?.into())
    }

    /// Withdraws a vote. Withdrawing a vote never given changes nothing.
    #[graphql(guard = "CanWrite")]
    async fn unvote_post(&self, ctx: &Context<'_>, id: ID) -> Result<Post> {
        let who = identity(ctx).await?;
        let id = parse_id("id", &id)?;
        Ok(posts(ctx).unvote(who, id).await?.into())
    }
}
