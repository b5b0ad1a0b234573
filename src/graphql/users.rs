//! Users: looking them up, their posts, and their administration (ADMIN only).

use async_graphql::{ComplexObject, Context, ID, Object, Result, connection::Connection};

use super::{
    connection::{PageCursor, connection, page_request},
    context::{auth, identity, loader, parse_id},
    guards::{RoleAtLeast, SignedIn},
    loaders::AuthorPosts,
    types::{CreateUserInput, Post, Role, User},
};
use crate::{
    auth::register::NewAccount,
    db::{
        page::Page,
        users::{self, UserFilter},
    },
    error::AppError,
};

#[ComplexObject]
impl User {
    /// The user's email address: shown to the user themself and to administrators, null
    /// for everyone else.
    async fn email(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        if self.shown_to_self {
            return Ok(Some(self.email_address.clone()));
        }
        let who = identity(ctx).await?;
        let visible = who.user.id == self.uuid || who.acts_as_admin();
        Ok(visible.then(|| self.email_address.clone()))
    }

    /// The user's posts, newest first: published ones, and drafts too when the viewer is
    /// this user or an administrator.
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn posts(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20, desc = "How many posts, at most 100.")] first: Option<i32>,
        #[graphql(desc = "A cursor from a previous page.")] after: Option<String>,
    ) -> Result<Connection<PageCursor, Post>> {
        let page = page_request(first, after.as_deref())?;
        // In the payload of a sign-in the request has no caller yet: the viewer is the
        // user being signed in.
        let (viewer, viewer_is_admin) = if self.shown_to_self {
            // The user's own posts, drafts included, whatever their role.
            (self.uuid, false)
        } else {
            let who = identity(ctx).await?;
            (who.user.id, who.acts_as_admin())
        };
        let key = AuthorPosts {
            author: self.uuid,
            viewer,
            viewer_is_admin,
            page,
        };
        let page = loader(ctx)
            .load_one(key)
            .await
            .map_err(AppError::internal)?
            .unwrap_or_else(|| Page::from_rows(Vec::new(), &page));
        Ok(connection(page, Post::from))
    }
}

/// Looking up users.
#[derive(Default)]
pub struct UserQuery;

#[Object]
impl UserQuery {
    /// A user by id; null when there is none.
    #[graphql(guard = "SignedIn")]
    async fn user(&self, ctx: &Context<'_>, id: ID) -> Result<Option<User>> {
        let id = parse_id("id", &id)?;
        Ok(auth(ctx).user(id).await?.map(User::from))
    }

    /// All users, newest first (administrators only).
    #[graphql(
        guard = "RoleAtLeast(users::Role::Admin)",
        complexity = "first.unwrap_or(20).max(0) as usize * child_complexity"
    )]
    async fn users(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20, desc = "How many users, at most 100.")] first: Option<i32>,
        #[graphql(desc = "A cursor from a previous page.")] after: Option<String>,
        #[graphql(desc = "Only users with this role.")] role: Option<Role>,
        #[graphql(desc = "Only users whose username or email starts with this, in any case.")]
        search: Option<String>,
    ) -> Result<Connection<PageCursor, User>> {
        let page = page_request(first, after.as_deref())?;
        let filter = UserFilter {
            role: role.map(Into::into),
            search: search.filter(|s| !s.is_empty()),
        };
        Ok(connection(
            auth(ctx).users(&filter, &page).await?,
            User::from,
        ))
    }
}

/// Administering users (administrators only).
#[derive(Default)]
pub struct UserMutation;

#[Object]
impl UserMutation {
    /// Creates an account with the given role.
    #[graphql(guard = "RoleAtLeast(users::Role::Admin)")]
    async fn create_user(&self, ctx: &Context<'_>, input: CreateUserInput) -> Result<User> {
        let account = NewAccount {
            email: &input.email,
            username: &input.username,
            password: &input.password,
        };
        Ok(auth(ctx)
            .create_user(account, input.role.into())
            .await?
            .into())
    }

    /// Gives a user another role. The last active administrator cannot be demoted.
    #[graphql(guard = "RoleAtLeast(users::Role::Admin)")]
    async fn update_user_role(&self, ctx: &Context<'_>, id: ID, role: Role) -> Result<User> {
        let id = parse_id("id", &id)?;
        Ok(auth(ctx).update_role(id, role.into()).await?.into())
    }

    /// Deactivates a user: all their sessions end at once and they can no longer sign
    /// in. The last active administrator cannot be deactivated.
    #[graphql(guard = "RoleAtLeast(users::Role::Admin)")]
    async fn deactivate_user(&self, ctx: &Context<'_>, id: ID) -> Result<User> {
        let id = parse_id("id", &id)?;
        Ok(auth(ctx).deactivate(id).await?.into())
    }

    /// Lets a deactivated user sign in again.
    #[graphql(guard = "RoleAtLeast(users::Role::Admin)")]
    async fn reactivate_user(&self, ctx: &Context<'_>, id: ID) -> Result<User> {
        let id = parse_id("id", &id)?;
        Ok(auth(ctx).reactivate(id).await?.into())
    }
}
