//! The `sessions` table: one row per signed-in device, holding only hashes of its
//! refresh tokens.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{db::AsConn, db::users::UserRow, execute, sql};

/// A row of `sessions`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    /// The session's id (UUIDv7, made by the server); also carried in its refresh tokens.
    pub id: Uuid,
    /// The account signed in on this session.
    pub user_id: Uuid,
    /// SHA-256 of the live refresh token.
    pub token_hash: Vec<u8>,
    /// SHA-256 of the refresh token the live one replaced; `None` until the first refresh.
    pub previous_token_hash: Option<Vec<u8>>,
    /// When the refresh token was last replaced; the sign-in time until the first refresh.
    pub rotated_at: DateTime<Utc>,
    /// When the user signed in.
    pub created_at: DateTime<Utc>,
    /// When the session was last used; requests update it at most once a minute, refreshes
    /// every time.
    pub last_used_at: DateTime<Utc>,
    /// When the live refresh token expires, and the session with it: the refresh-token
    /// lifetime after its issue, never later than `absolute_expires_at`.
    pub expires_at: DateTime<Utc>,
    /// When the session ends however often it is refreshed: sign-in plus the maximum
    /// session age.
    pub absolute_expires_at: DateTime<Utc>,
    /// When the session was ended; `None` while it has not been.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The client's `User-Agent` at sign-in, cut to 512 characters.
    pub user_agent: Option<String>,
}

impl SessionRow {
    /// Whether the session can still be used at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

/// A session together with its user, as loaded for an incoming request.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionUserRow {
    /// The session's id, selected as `session_id` so as not to clash with the user's `id`.
    pub session_id: Uuid,
    /// When the session expires unless refreshed first.
    pub expires_at: DateTime<Utc>,
    /// When the session was ended, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When the session was last used; requests update it at most once a minute.
    pub last_used_at: DateTime<Utc>,
    /// The account signed in on the session.
    #[sqlx(flatten)]
    pub user: UserRow,
}

impl SessionUserRow {
    /// Whether, at `now`, this is a live session of `user_id`'s active account.
    pub fn is_live_for(&self, user_id: Uuid, now: DateTime<Utc>) -> bool {
        self.user.id == user_id
            && self.revoked_at.is_none()
            && now < self.expires_at
            && self.user.is_active()
    }
}

/// A session about to be inserted.
pub struct NewSession<'a> {
    /// The new session's id (UUIDv7).
    pub id: Uuid,
    /// The account signing in.
    pub user_id: Uuid,
    /// SHA-256 of the session's first refresh token.
    pub token_hash: &'a [u8],
    /// The sign-in time: `created_at`, `rotated_at` and `last_used_at` all start at it.
    pub now: DateTime<Utc>,
    /// When the first refresh token expires.
    pub expires_at: DateTime<Utc>,
    /// When the session ends however often it is refreshed.
    pub absolute_expires_at: DateTime<Utc>,
    /// The client's `User-Agent`, already cut to length.
    pub user_agent: Option<&'a str>,
    /// The network the client signed in from, as the throttle keys it.
    pub sign_in_network: Option<&'a str>,
}

macro_rules! session_columns {
    () => {
        "id, user_id, token_hash, previous_token_hash, rotated_at, created_at, last_used_at, \
         expires_at, absolute_expires_at, revoked_at, user_agent"
    };
}

/// Inserts a new session.
#[tracing::instrument(skip_all, fields(session_id = %s.id, user_id = %s.user_id))]
pub async fn insert(mut conn: impl AsConn, s: &NewSession<'_>) -> Result<(), sqlx::Error> {
    execute!(
        &mut conn,
        sqlx::query(
            "INSERT INTO sessions (id, user_id, token_hash, rotated_at, created_at, last_used_at, \
             expires_at, absolute_expires_at, user_agent, sign_in_network) \
             VALUES ($1, $2, $3, $4, $4, $4, $5, $6, $7, $8)",
        )
        .bind(s.id)
        .bind(s.user_id)
        .bind(s.token_hash)
        .bind(s.now)
        .bind(s.expires_at)
        .bind(s.absolute_expires_at)
        .bind(s.user_agent)
        .bind(s.sign_in_network)
    )?;
    Ok(())
}

/// Whether the account with `email_key` signed in from `network` since `since` and since
/// its password (or anything else of it) last changed, on a session that did not end for
/// a stolen token or wrong passwords. One statement, whether or not the account exists.
#[tracing::instrument(skip_all)]
pub async fn signed_in_from(
    mut conn: impl AsConn,
    email_key: &str,
    network: &str,
    since: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let found: Option<(i32,)> = sql!(&mut conn, |c| {
        sqlx::query_as(
            "SELECT 1 FROM users u JOIN sessions s ON s.user_id = u.id \
             WHERE u.email_key = $1 AND s.sign_in_network = $2 AND s.created_at > $3 \
             AND s.created_at >= u.updated_at \
             AND (s.revoked_reason IS NULL \
                  OR s.revoked_reason NOT IN ('refresh_token_reuse', 'wrong_password')) \
             LIMIT 1",
        )
        .bind(email_key)
        .bind(network)
        .bind(since)
        .fetch_optional(c)
        .await
    })?;
    Ok(found.is_some())
}

/// Takes one of a live session's password checks before the password is checked, so
/// that checks sent at once cannot together make more guesses than `allowed`: the
/// session's wrong passwords and the checks being made now must stay under it. Checks
/// taken before `stale_before` no longer count (their requests died before settling).
/// Returns false when the session has ended or has none left.
#[tracing::instrument(skip_all, fields(%id))]
pub async fn take_password_check(
    mut conn: impl AsConn,
    id: Uuid,
    allowed: i32,
    now: DateTime<Utc>,
    stale_before: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = execute!(
        &mut conn,
        sqlx::query(
            "UPDATE sessions SET \
             password_checks = CASE WHEN password_checks_at >= $4 THEN password_checks + 1 \
                               ELSE 1 END, \
             password_checks_at = $3 \
             WHERE id = $1 AND revoked_at IS NULL \
             AND password_failures + CASE WHEN password_checks_at >= $4 THEN password_checks \
                                     ELSE 0 END < $2",
        )
        .bind(id)
        .bind(allowed)
        .bind(now)
        .bind(stale_before)
    )?;
    Ok(done == 1)
}

/// Settles a password check taken by [`take_password_check`]. A wrong password is
/// counted, and ends the session once it has sent `allowed` of them. Run it in a
/// transaction.
#[tracing::instrument(skip_all, fields(%id))]
pub async fn settle_password_check(
    mut tx: impl AsConn,
    id: Uuid,
    wrong: bool,
    allowed: i32,
    now: DateTime<Utc>,
) -> Result<Settled, sqlx::Error> {
    let ended: Option<(bool,)> = sql!(&mut tx, |c| {
        sqlx::query_as(
            "UPDATE sessions SET password_failures = password_failures + $2, \
             password_checks = CASE WHEN password_checks > 0 THEN password_checks - 1 \
                               ELSE 0 END \
             WHERE id = $1 RETURNING revoked_at IS NOT NULL",
        )
        .bind(id)
        .bind(i32::from(wrong))
        .fetch_optional(c)
        .await
    })?;
    let Some((false,)) = ended else {
        return Ok(Settled::Ended);
    };
    let ends_now = wrong
        && execute!(
            &mut tx,
            sqlx::query(
                "UPDATE sessions SET revoked_at = $3, revoked_reason = 'wrong_password' \
                 WHERE id = $1 AND revoked_at IS NULL AND password_failures >= $2",
            )
            .bind(id)
            .bind(allowed)
            .bind(now)
        )? == 1;
    Ok(if ends_now {
        Settled::EndsNow
    } else {
        Settled::Live
    })
}

/// What became of a session as its password check was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// It goes on.
    Live,
    /// It ends now, for this check's wrong password.
    EndsNow,
    /// It had ended while the check was made (or before), for whatever reason.
    Ended,
}

/// Loads a session by id, whether live, expired or revoked.
#[tracing::instrument(skip_all, fields(%id))]
pub async fn find(mut conn: impl AsConn, id: Uuid) -> Result<Option<SessionRow>, sqlx::Error> {
    sql!(&mut conn, |c| {
        sqlx::query_as(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(c)
        .await
    })
}

/// Loads a session and its user in one query.
#[tracing::instrument(skip_all, fields(%session_id))]
pub async fn find_with_user(
    mut conn: impl AsConn,
    session_id: Uuid,
) -> Result<Option<SessionUserRow>, sqlx::Error> {
    sql!(&mut conn, |c| {
        sqlx::query_as(
            "SELECT s.id AS session_id, s.expires_at, s.revoked_at, s.last_used_at, \
             u.id, u.username, u.email, u.password_hash, u.role, u.created_at, u.deactivated_at \
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1",
        )
        .bind(session_id)
        .fetch_optional(c)
        .await
    })
}

/// Replaces the live refresh token `old_hash` by `new_hash`, keeping `old_hash` as the
/// previous one. Returns false when `old_hash` is no longer the live token (another
/// request rotated it first) or the session was revoked: the caller re-reads and decides.
#[tracing::instrument(skip_all, fields(%id))]
pub async fn rotate(
    mut conn: impl AsConn,
    id: Uuid,
    old_hash: &[u8],
    new_hash: &[u8],
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = execute!(
        &mut conn,
        sqlx::query(
            "UPDATE sessions SET token_hash = $3, previous_token_hash = $2, rotated_at = $4, \
             last_used_at = $4, expires_at = $5 \
             WHERE id = $1 AND token_hash = $2 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(old_hash)
        .bind(new_hash)
        .bind(now)
        .bind(expires_at)
    )?;
    Ok(done == 1)
}

/// Why a session ended, kept for audits.
#[derive(Debug, Clone, Copy)]
pub enum RevokeReason {
    /// The user signed out of this session (`logout`).
    Logout,
    /// The user signed out of every session at once (`logoutAll`).
    LogoutAll,
    /// The user ended this session by its id (`revokeSession`).
    Revoked,
    /// The user changed their password in another session.
    PasswordChanged,
    /// A retired refresh token was presented again, so a token may have been stolen.
    RefreshTokenReuse,
    /// An administrator deactivated the account.
    Deactivated,
}

impl RevokeReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::LogoutAll => "logout_all",
            Self::Revoked => "revoked",
            Self::PasswordChanged => "password_changed",
            Self::RefreshTokenReuse => "refresh_token_reuse",
            Self::Deactivated => "deactivated",
        }
    }
}

/// Revokes one session of `user_id`; returns false when it was already revoked or is
/// not theirs.
#[tracing::instrument(skip_all, fields(%id, %user_id, ?reason))]
pub async fn revoke(
    mut conn: impl AsConn,
    id: Uuid,
    user_id: Uuid,
    reason: RevokeReason,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = execute!(
        &mut conn,
        sqlx::query(
            "UPDATE sessions SET revoked_at = $3, revoked_reason = $4 \
             WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(user_id)
        .bind(now)
        .bind(reason.as_str())
    )?;
    Ok(done == 1)
}

/// Revokes every live session of `user_id` except `keep`; returns how many.
#[tracing::instrument(skip_all, fields(%user_id, ?reason))]
pub async fn revoke_all(
    mut conn: impl AsConn,
    user_id: Uuid,
    keep: Option<Uuid>,
    reason: RevokeReason,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let done = execute!(
        &mut conn,
        sqlx::query(
            "UPDATE sessions SET revoked_at = $3, revoked_reason = $4 \
             WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $3 \
             AND ($2 IS NULL OR id <> $2)",
        )
        .bind(user_id)
        .bind(keep)
        .bind(now)
        .bind(reason.as_str())
    )?;
    Ok(done)
}

/// The live sessions of `user_id`, newest first.
#[tracing::instrument(skip_all, fields(%user_id))]
pub async fn list_live(
    mut conn: impl AsConn,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<SessionRow>, sqlx::Error> {
    sql!(&mut conn, |c| {
        sqlx::query_as(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
             ORDER BY created_at DESC, id"
        ))
        .bind(user_id)
        .bind(now)
        .fetch_all(c)
        .await
    })
}

/// Records that a session was used, at most once per `after` so that reading requests
/// do not each cost a write.
#[tracing::instrument(skip_all, fields(%id))]
pub async fn touch(
    mut conn: impl AsConn,
    id: Uuid,
    now: DateTime<Utc>,
    stale_before: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    execute!(
        &mut conn,
        sqlx::query("UPDATE sessions SET last_used_at = $2 WHERE id = $1 AND last_used_at < $3")
            .bind(id)
            .bind(now)
            .bind(stale_before)
    )?;
    Ok(())
}
