//! GraphQL object, input and enum types. Each is separate from the database row it is
//! made from (joined by `From`), so the API can change without touching storage and
//! storage details never appear in the API by accident.

use async_graphql::{Enum, ID, InputObject, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{
    auth::{Authenticated, api_key::Scopes},
    db::{
        api_keys::ApiKeyRow,
        posts::{PostRow, PostWithAuthor},
        sessions::SessionRow,
        users,
    },
};

/// What an account may do.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An ordinary account.
    User,
    /// An administrator, who may manage other accounts.
    Admin,
}

impl From<Role> for users::Role {
    fn from(role: Role) -> Self {
        match role {
            Role::User => Self::User,
            Role::Admin => Self::Admin,
        }
    }
}

impl From<users::Role> for Role {
    fn from(role: users::Role) -> Self {
        match role {
            users::Role::User => Self::User,
            users::Role::Admin => Self::Admin,
        }
    }
}

/// A person with an account.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(complex)]
pub struct User {
    /// The user's unique, permanent id.
    pub id: ID,
    /// The user's public name: 3 to 32 letters, digits or underscores.
    pub username: String,
    /// What the user may do.
    pub role: Role,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// False once an administrator has deactivated the account.
    pub active: bool,
    /// The id, parsed.
    #[graphql(skip)]
    pub uuid: Uuid,
    /// The email address, shown only to the user and to administrators.
    #[graphql(skip)]
    pub email_address: String,
    /// Whether this value is being shown to the user themself (as `me`, or in the
    /// payload of their own sign-in).
    #[graphql(skip)]
    pub shown_to_self: bool,
}

impl From<users::UserRow> for User {
    fn from(row: users::UserRow) -> Self {
        Self {
            id: ID(row.id.to_string()),
            username: row.username,
            role: row.role.into(),
            created_at: row.created_at,
            active: row.deactivated_at.is_none(),
            uuid: row.id,
            email_address: row.email,
            shown_to_self: false,
        }
    }
}

impl User {
    /// The user as shown to themself.
    pub fn own(row: users::UserRow) -> Self {
        Self {
            shown_to_self: true,
            ..row.into()
        }
    }
}

/// A post: published for everyone to read, or a draft only its author and administrators
/// see.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(complex)]
pub struct Post {
    /// The post's unique, permanent id.
    pub id: ID,
    /// The title: 1 to 200 characters.
    pub title: String,
    /// The text: 1 to 50,000 characters.
    pub body: String,
    /// False for a draft.
    pub published: bool,
    /// When the post was written.
    pub created_at: DateTime<Utc>,
    /// When the post was last changed.
    pub updated_at: DateTime<Utc>,
    /// The id, parsed.
    #[graphql(skip)]
    pub uuid: Uuid,
    /// The author's id.
    #[graphql(skip)]
    pub author_id: Uuid,
    /// The vote count, read with the post.
    #[graphql(skip)]
    pub vote_count: i64,
    /// The author, when read with the post.
    #[graphql(skip)]
    pub author: Option<User>,
    /// Whether the caller has voted for the post, when read with it.
    #[graphql(skip)]
    pub viewer_voted: Option<bool>,
}

impl From<PostRow> for Post {
    fn from(row: PostRow) -> Self {
        Self {
            id: ID(row.id.to_string()),
            title: row.title,
            body: row.body,
            published: row.published,
            created_at: row.created_at,
            updated_at: row.updated_at,
            uuid: row.id,
            author_id: row.author_id,
            vote_count: row.vote_count,
            author: None,
            viewer_voted: None,
        }
    }
}

impl From<PostWithAuthor> for Post {
    fn from(row: PostWithAuthor) -> Self {
        let author = User {
            id: ID(row.post.author_id.to_string()),
            username: row.author_username,
            role: row.author_role.into(),
            created_at: row.author_created_at,
            active: row.author_deactivated_at.is_none(),
            uuid: row.post.author_id,
            email_address: row.author_email,
            shown_to_self: false,
        };
        Self {
            author: Some(author),
            viewer_voted: Some(row.viewer_voted),
            ..row.post.into()
        }
    }
}

/// A new post.
#[derive(InputObject, Debug)]
pub struct CreatePostInput {
    /// 1 to 200 characters; surrounding spaces are removed.
    pub title: String,
    /// 1 to 50,000 characters; surrounding spaces are removed.
    pub body: String,
    /// False to keep the post as a draft.
    #[graphql(default_with = "Some(true)")]
    pub published: Option<bool>,
}

/// Changes to a post; fields left out stay as they are.
#[derive(InputObject, Debug)]
pub struct UpdatePostInput {
    /// A new title.
    pub title: Option<String>,
    /// A new text.
    pub body: Option<String>,
    /// True to publish, false to turn the post back into a draft.
    pub published: Option<bool>,
}

/// A new account made by an administrator.
#[derive(InputObject, Debug)]
pub struct CreateUserInput {
    /// The email address to sign in with; unique regardless of case and of Unicode
    /// composition (it is stored in NFC, and compared in NFC lower case).
    pub email: String,
    /// 3 to 32 letters, digits or underscores; unique regardless of case.
    pub username: String,
    /// 8 to 128 characters, not one of the most common passwords.
    pub password: String,
    /// What the account may do.
    #[graphql(default_with = "Role::User")]
    pub role: Role,
}

/// The credentials of a signed-in session.
#[derive(SimpleObject, Debug, Clone)]
pub struct AuthPayload {
    /// A short-lived JWT to send as `Authorization: Bearer <accessToken>`.
    pub access_token: String,
    /// An opaque, single-use token that `refresh` exchanges for new tokens. Keep it
    /// secret; each refresh returns its successor.
    pub refresh_token: Option<String>,
    /// How to send the access token: always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i32,
    /// The signed-in user.
    pub user: User,
}

impl From<Authenticated> for AuthPayload {
    fn from(a: Authenticated) -> Self {
        Self {
            access_token: a.access_token,
            refresh_token: Some(a.refresh_token),
            token_type: "Bearer".to_owned(),
            expires_in: i32::try_from(a.expires_in).unwrap_or(i32::MAX),
            user: User::own(a.user),
        }
    }
}

/// A signed-in device or client of the caller.
#[derive(SimpleObject, Debug, Clone)]
pub struct Session {
    /// The session's id, for `revokeSession`.
    pub id: ID,
    /// When the user signed in.
    pub created_at: DateTime<Utc>,
    /// When the session was last used (to within a minute).
    pub last_used_at: DateTime<Utc>,
    /// When the session ends unless it is refreshed before then.
    pub expires_at: DateTime<Utc>,
    /// The `User-Agent` the client sent when it signed in.
    pub user_agent: Option<String>,
    /// Whether this is the session making the request.
    pub current: bool,
}

impl Session {
    /// The API view of `row`; `current` tells whether it is `current_session`.
    pub fn new(row: SessionRow, current_session: Option<Uuid>) -> Self {
        Self {
            id: ID(row.id.to_string()),
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            expires_at: row.expires_at,
            user_agent: row.user_agent,
            current: Some(row.id) == current_session,
        }
    }
}

/// A new account.
// No `Debug`: it holds a password.
#[derive(InputObject)]
pub struct RegisterInput {
    /// The email address to sign in with; unique regardless of case and of Unicode
    /// composition (it is stored in NFC, and compared in NFC lower case).
    pub email: String,
    /// 3 to 32 letters, digits or underscores; unique regardless of case.
    pub username: String,
    /// 8 to 128 characters, not one of the most common passwords.
    pub password: String,
}

/// Credentials to sign in with.
// No `Debug`: it holds a password.
#[derive(InputObject)]
pub struct LoginInput {
    /// The account's email address, in any case.
    pub email: String,
    /// The account's password.
    pub password: String,
}

/// What an API key may do.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKeyScope {
    /// Run queries.
    Read,
    /// Also change the owner's own data: posts and votes.
    Write,
    /// The administrators' operations, and only while the owner is an administrator.
    Admin,
}

/// Scopes as a list for the API.
fn scope_list(s: Scopes) -> Vec<ApiKeyScope> {
    [
        (s.read, ApiKeyScope::Read),
        (s.write, ApiKeyScope::Write),
        (s.admin, ApiKeyScope::Admin),
    ]
    .into_iter()
    .filter_map(|(on, scope)| on.then_some(scope))
    .collect()
}

/// Scopes from the API's list.
pub fn scopes_of(list: &[ApiKeyScope]) -> Scopes {
    Scopes {
        read: list.contains(&ApiKeyScope::Read),
        write: list.contains(&ApiKeyScope::Write),
        admin: list.contains(&ApiKeyScope::Admin),
    }
}

/// A long-lived credential for scripts and services, acting for its owner. Its secret is
/// shown once, when it is created.
#[derive(SimpleObject, Debug, Clone)]
pub struct ApiKey {
    /// The key's id, for `revokeApiKey`.
    pub id: ID,
    /// The owner's name for the key.
    pub name: String,
    /// The first characters of the secret, to tell keys apart.
    pub prefix: String,
    /// What the key may do.
    pub scopes: Vec<ApiKeyScope>,
    /// When the key was created.
    pub created_at: DateTime<Utc>,
    /// When the key was last used (to within a minute); null if never.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When the key stops working; null if never.
    pub expires_at: Option<DateTime<Utc>>,
    /// When the key was revoked; null while it is not.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiKeyRow> for ApiKey {
    fn from(row: ApiKeyRow) -> Self {
        Self {
            id: ID(row.id.to_string()),
            name: row.name,
            prefix: row.prefix,
            scopes: scope_list(Scopes::from_text(&row.scopes)),
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
        }
    }
}

/// A new API key and its secret.
// No `Debug`: it holds the secret.
#[derive(SimpleObject, Clone)]
pub struct CreateApiKeyPayload {
    /// The key.
    pub api_key: ApiKey,
    /// The secret to send as `Authorization: Bearer <secret>` or `X-API-Key: <secret>`.
    /// It is shown this once and never again: keep it safe.
    pub secret: String,
}

/// A new API key.
// No `Debug`: it holds a password.
#[derive(InputObject)]
pub struct CreateApiKeyInput {
    /// A name to recognise the key by: 1 to 100 characters.
    pub name: String,
    /// What the key may do; at least one scope. ADMIN needs an administrator.
    pub scopes: Vec<ApiKeyScope>,
    /// When the key stops working; never when left out.
    pub expires_at: Option<DateTime<Utc>>,
    /// The caller's password, confirmed again: a key outlives the session, so a stolen
    /// session must not be able to make one. Wrong passwords count as failed sign-ins,
    /// and the session ends after three.
    pub current_password: String,
}
