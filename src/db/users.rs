//! The `users` table: accounts, their credentials and roles.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::page::{Cursor, Keyed, Page, PageRequest};
use crate::{db::AsConn, execute, sql};

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// An ordinary account.
    User,
    /// An administrator, who may manage other accounts.
    Admin,
}

impl Role {
    /// The role as stored in the database and in access tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "user" => Ok(Self::User),
            "admin" => Ok(Self::Admin),
            other => Err(format!("unknown role '{other}' (expected user or admin)")),
        }
    }
}

impl TryFrom<String> for Role {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// A row of `users`. Its `Debug` output leaves out the password hash.
#[derive(Clone, sqlx::FromRow)]
pub struct UserRow {
    /// The user's id (UUIDv7, made by the server).
    pub id: Uuid,
    /// The username as chosen, case preserved.
    pub username: String,
    /// The email address as given (trimmed), case preserved.
    pub email: String,
    /// The argon2 hash of the password, as a PHC string.
    pub password_hash: String,
    /// What the account may do; stored as `user` or `admin`.
    #[sqlx(try_from = "String")]
    pub role: Role,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// When an administrator deactivated the account; `None` while it is active.
    pub deactivated_at: Option<DateTime<Utc>>,
}

impl UserRow {
    /// Whether the account may sign in and act.
    pub fn is_active(&self) -> bool {
        self.deactivated_at.is_none()
    }
}

impl Keyed for UserRow {
    fn cursor(&self) -> Cursor {
        Cursor {
            created_at: self.created_at,
            id: self.id,
        }
    }
}

impl std::fmt::Debug for UserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// A user about to be inserted; the `*_key` fields are the case-folded unique forms.
pub struct NewUser<'a> {
    /// The new user's id (UUIDv7).
    pub id: Uuid,
    /// The username as chosen, case preserved.
    pub username: &'a str,
    /// The lower-cased username, which no two accounts share.
    pub username_key: &'a str,
    /// The email address as given (trimmed), case preserved.
    pub email: &'a str,
    /// The lower-cased email address, which no two accounts share.
    pub email_key: &'a str,
    /// The argon2 hash of the password, as a PHC string.
    pub password_hash: &'a str,
    /// What the account may do.
    pub role: Role,
    /// The creation time, stored as both `created_at` and `updated_at`.
    pub now: DateTime<Utc>,
}

/// The columns of [`UserRow`], for `concat!` into static SQL.
macro_rules! user_columns {
    () => {
        "id, username, email, password_hash, role, created_at, deactivated_at"
    };
}

/// Inserts a new account; fails with a unique violation when its email or username
/// key is taken.
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
pub async fn insert(mut conn: impl AsConn, user: &NewUser<'_>) -> Result<(), sqlx::Error> {
    execute!(
        &mut conn,
        sqlx::query(
            "INSERT INTO users (id, username, username_key, email, email_key, password_hash, \
             role, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(user.id)
        .bind(user.username)
        .bind(user.username_key)
        .bind(user.email)
        .bind(user.email_key)
        .bind(user.password_hash)
        .bind(user.role.as_str())
        .bind(user.now)
    )?;
    Ok(())
}

/// Finds a user by id.
#[tracing::instrument(skip_all, fields(%id))]
pub async fn find_by_id(mut conn: impl AsConn, id: Uuid) -> Result<Option<UserRow>, sqlx::Error> {
    sql!(&mut conn, |c| {
        sqlx::query_as(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(c)
        .await
    })
}

/// Finds a user by the case-folded email.
#[tracing::instrument(skip_all)]
pub async fn find_by_email_key(
    mut conn: impl AsConn,
    email_key: &str,
) -> Result<Option<UserRow>, sqlx::Error> {
    sql!(&mut conn, |c| {
        sqlx::query_as(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE email_key = $1"
        ))
        .bind(email_key)
        .fetch_optional(c)
        .await
    })
}

/// Which of an email and a username (case-folded) are already in use.
#[derive(Debug, Default)]
pub struct Taken {
    /// Some account has this email key.
    pub email: bool,
    /// Some account has this username key.
    pub username: bool,
}

/// Checks in one query whether an email key and a username key are in use.
#[tracing::instrument(skip_all)]
pub async fn taken(
    mut conn: impl AsConn,
    email_key: &str,
    username_key: &str,
) -> Result<Taken, sqlx::Error> {
    let rows: Vec<(String, String)> = sql!(&mut conn, |c| {
        sqlx::query_as(
            "SELECT email_key, username_key FROM users WHERE email_key = $1 OR username_key = $2",
        )
        .bind(email_key)
        .bind(username_key)
        .fetch_all(c)
        .await
    })?;
    Ok(Taken {
        email: rows.iter().any(|(e, _)| e == email_key),
        username: rows.iter().any(|(_, u)| u == username_key),
    })
}

/// Replaces a user's password hash, stamping `updated_at` with `now`, if it is still
/// `expected`; returns false when it was changed meanwhile, so that a change computed from
/// an old password never overwrites a newer one.
#[tracing::instrument(skip_all, fields(%id))]
pub async fn replace_password_hash(
    mut conn: impl AsConn,
    id: Uuid,
    expected: &str,
    password_hash: &str,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = execute!(
        &mut conn,
        sqlx::query(
            "UPDATE users SET password_hash = $3, updated_at = $4 \
             WHERE id = $1 AND password_hash = $2"
        )
        .bind(id)
        .bind(expected)
        .bind(password_hash)
        .bind(now)
    )?;
    Ok(done == 1)
}

/// How [`find_and_hold`] holds a user's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Against changes: others may read and hold it too (starting sessions, making keys).
    Share,
    /// Against changes and against other holders, for a transaction that will change the
    /// row or must see no session or key begun meanwhile (a hash upgrade, `logoutAll`).
    /// Two holders sharing a row and then both updating it would deadlock.
    Exclusive,
}

/// Reads a user inside a transaction that is about to act on what it read (start a
/// session, rotate a refresh token, make a key), and holds the row until the transaction
/// ends, so that a password change, role change or deactivation cannot commit in
/// between: it waits, and then sees what this transaction did. PostgreSQL takes a row
/// lock (`FOR SHARE`, or `FOR NO KEY UPDATE`); SQLite needs none, its write transactions
/// already run one at a time.
#[tracing::instrument(skip_all, fields(%id))]
pub async fn find_and_hold(
    mut conn: impl AsConn,
    id: Uuid,
    hold: Hold,
) -> Result<Option<UserRow>, sqlx::Error> {
    match conn.as_conn() {
        super::ConnRef::Sqlite(c) => {
            sqlx::query_as(concat!(
                "SELECT ",
                user_columns!(),
                " FROM users WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(c)
            .await
        }
        super::ConnRef::Postgres(c) => {
            let sql = match hold {
                Hold::Share => concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM users WHERE id = $1 FOR SHARE"
                ),
                Hold::Exclusive => concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM users WHERE id = $1 FOR NO KEY UPDATE"
                ),
            };
            sqlx::query_as(sql).bind(id).fetch_optional(c).await
        }
    }
}

/// The ids, email addresses and email keys of the accounts whose key is not plain ASCII.
#[tracing::instrument(skip_all)]
pub async fn non_ascii_email_keys(
    mut conn: impl AsConn,
) -> Result<Vec<(Uuid, String, String)>, sqlx::Error> {
    match conn.as_conn() {
        super::ConnRef::Sqlite(c) => {
            sqlx::query_as("SELECT id, email, email_key FROM users WHERE email_key GLOB '*[^ -~]*'")
                .fetch_all(c)
                .await
        }
        super::ConnRef::Postgres(c) => {
            sqlx::query_as(
                "SELECT id, email, email_key FROM users WHERE email_key ~ '[^\\x01-\\x7e]'",
            )
            .fetch_all(c)
            .await
        }
    }
}

/// Replaces an account's email key (and the address, to the same normal form); fails
/// with a unique violation when another account has it.
#[tracing::instrument(skip_all, fields(%id))]
pub async fn set_email_key(
    mut conn: impl AsConn,
    id: Uuid,
    email: &str,
    email_key: &str,
) -> Result<(), sqlx::Error> {
    execute!(
        &mut conn,
        sqlx::query("UPDATE users SET email = $2, email_key = $3 WHERE id = $1")
            .bind(id)
            .bind(email)
            .bind(email_key)
    )?;
    Ok(())
}

/// Finds several users by id in one statement; unknown ids are absent.
///
/// PostgreSQL takes the ids as one array, so that a single prepared statement serves every
/// batch size; SQLite, which has no arrays, gets a placeholder per id
/// ([`crate::fetch_all_in`]).
#[tracing::instrument(skip_all, fields(ids = ids.len()))]
pub async fn find_many(mut conn: impl AsConn, ids: &[Uuid]) -> Result<Vec<UserRow>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    crate::fetch_all_in!(
        &mut conn,
        concat!("SELECT ", user_columns!(), " FROM users WHERE id {ids}"),
        [],
        ids
    )
}

/// Which users to list.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// Only users with this role.
    pub role: Option<Role>,
    /// Only users whose username or email starts with this, case-insensitively.
    pub search: Option<String>,
}

/// Escapes `%`, `_` and `\` for a LIKE pattern with `ESCAPE '\'`.
fn like_prefix(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 1);
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// A page of users, newest first.
#[tracing::instrument(skip_all)]
pub async fn list(
    mut conn: impl AsConn,
    filter: &UserFilter,
    page: &PageRequest,
) -> Result<Page<UserRow>, sqlx::Error> {
    let pattern = filter.search.as_deref().map(like_prefix);
    // With and without a cursor as two statements, so that the cursor is always an index
    // bound (see `posts::published`).
    let sql = if page.after.is_some() {
        concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE ($1 IS NULL OR role = $1) \
             AND ($2 IS NULL OR username_key LIKE $2 ESCAPE '\\' OR email_key LIKE $2 ESCAPE '\\') \
             AND (created_at, id) < ($4, $5) ORDER BY created_at DESC, id DESC LIMIT $3"
        )
    } else {
        concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE ($1 IS NULL OR role = $1) \
             AND ($2 IS NULL OR username_key LIKE $2 ESCAPE '\\' OR email_key LIKE $2 ESCAPE '\\') \
             ORDER BY created_at DESC, id DESC LIMIT $3"
        )
    };
    let rows = sql!(&mut conn, |c| {
        let mut q = sqlx::query_as(sql)
            .bind(filter.role.map(Role::as_str))
            .bind(pattern.as_deref())
            .bind(page.limit());
        if let Some(after) = page.after {
            q = q.bind(after.created_at).bind(after.id);
        }
        q.fetch_all(c).await
    })?;
    Ok(Page::from_rows(rows, page))
}

/// Sets a user's role.
#[tracing::instrument(skip_all, fields(%id, role = role.as_str()))]
pub async fn set_role(
    mut conn: impl AsConn,
    id: Uuid,
    role: Role,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    execute!(
        &mut conn,
        sqlx::query("UPDATE users SET role = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(role.as_str())
            .bind(now)
    )?;
    Ok(())
}

/// Deactivates (`Some(now)`) or reactivates (`None`) a user.
#[tracing::instrument(skip_all, fields(%id))]
pub async fn set_deactivated(
    mut conn: impl AsConn,
    id: Uuid,
    deactivated_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    execute!(
        &mut conn,
        sqlx::query("UPDATE users SET deactivated_at = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(deactivated_at)
            .bind(now)
    )?;
    Ok(())
}

/// The ids of the active administrators, locked until the end of the transaction so that
/// two concurrent demotions cannot both see another administrator left and remove the
/// last one. SQLite needs no row locks: its write transactions already run one at a time.
#[tracing::instrument(skip_all)]
pub async fn lock_active_admins(mut conn: impl AsConn) -> Result<Vec<Uuid>, sqlx::Error> {
    let rows: Vec<(Uuid,)> = match conn.as_conn() {
        super::ConnRef::Sqlite(c) => {
            sqlx::query_as("SELECT id FROM users WHERE role = 'admin' AND deactivated_at IS NULL")
                .fetch_all(c)
                .await?
        }
        super::ConnRef::Postgres(c) => {
            sqlx::query_as(
                "SELECT id FROM users WHERE role = 'admin' AND deactivated_at IS NULL \
                 ORDER BY id FOR UPDATE",
            )
            .fetch_all(c)
            .await?
        }
    };
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Inserts many users with multi-row statements (for demo data).
#[tracing::instrument(skip_all, fields(users = rows.len()))]
pub async fn insert_many(mut conn: impl AsConn, rows: &[UserRow]) -> Result<(), sqlx::Error> {
    // 9 values a row, well under both engines' limits on bound values per statement.
    for chunk in rows.chunks(1000) {
        let sql = format!(
            "INSERT INTO users (id, username, username_key, email, email_key, password_hash, \
             role, created_at, updated_at) VALUES {}",
            super::page::value_rows(chunk.len(), 9)
        );
        execute!(&mut conn, {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
            for u in chunk {
                q = q
                    .bind(u.id)
                    .bind(&u.username)
                    .bind(u.username.to_ascii_lowercase())
                    .bind(&u.email)
                    .bind(u.email.to_lowercase())
                    .bind(&u.password_hash)
                    .bind(u.role.as_str())
                    .bind(u.created_at)
                    .bind(u.created_at);
            }
            q
        })?;
    }
    Ok(())
}
