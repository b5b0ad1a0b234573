//! The `votes` table: at most one vote per user and post.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{
    db::{AsConn, Db},
    execute,
};

/// Records `user_id`'s vote for `post_id` (a second vote is a no-op) and counts it on
/// the post. Returns the post's vote count after it.
///
/// The vote and its count change together: on PostgreSQL in one statement (the post's
/// row lock orders concurrent votes, so the count stays equal to the rows), on SQLite,
/// which has no data-modifying `WITH`, in one transaction. Fails with a foreign-key
/// violation when the post is gone.
#[tracing::instrument(skip_all, fields(%post_id, %user_id))]
pub async fn add(
    db: &Db,
    post_id: Uuid,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    change(db, post_id, user_id, Change::Add(now)).await
}

/// Withdraws `user_id`'s vote for `post_id`, if there is one, and takes it off the
/// post's count, as [`add`] does. Returns the post's vote count after it.
#[tracing::instrument(skip_all, fields(%post_id, %user_id))]
pub async fn remove(db: &Db, post_id: Uuid, user_id: Uuid) -> Result<i64, sqlx::Error> {
    change(db, post_id, user_id, Change::Remove).await
}

/// A vote given (at this time) or withdrawn.
#[derive(Clone, Copy)]
enum Change {
    Add(DateTime<Utc>),
    Remove,
}

/// On PostgreSQL, `$changed` (a vote inserted or deleted, `$1` the post) and the post's
/// count moved `$by` in one statement, which returns the count after. The count moves
/// only when a row did: a second vote, or withdrawing none, leaves it.
macro_rules! and_count {
    ($changed:expr, $by:literal) => {
        concat!(
            "WITH changed AS (",
            $changed,
            " RETURNING post_id), counted AS (
                UPDATE posts SET vote_count = vote_count ",
            $by,
            " WHERE id = $1 AND EXISTS (SELECT 1 FROM changed) RETURNING vote_count)
            SELECT vote_count FROM counted
            UNION ALL
            SELECT vote_count FROM posts WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM counted)"
        )
    };
}

/// A vote, inserted unless it is there already.
macro_rules! insert_vote {
    () => {
        "INSERT INTO votes (post_id, user_id, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (post_id, user_id) DO NOTHING"
    };
}

/// A vote, deleted.
macro_rules! delete_vote {
    () => {
        "DELETE FROM votes WHERE post_id = $1 AND user_id = $2"
    };
}

async fn change(db: &Db, post_id: Uuid, user_id: Uuid, change: Change) -> Result<i64, sqlx::Error> {
    let pool = match db {
        Db::Postgres(pool) => pool,
        Db::Sqlite(_) => return change_in_transaction(db, post_id, user_id, change).await,
    };
    let count: Option<i64> = match change {
        Change::Add(now) => {
            sqlx::query_scalar(and_count!(insert_vote!(), "+ 1"))
                .bind(post_id)
                .bind(user_id)
                .bind(now)
                .fetch_optional(pool)
                .await
        }
        Change::Remove => {
            sqlx::query_scalar(and_count!(delete_vote!(), "- 1"))
                .bind(post_id)
                .bind(user_id)
                .fetch_optional(pool)
                .await
        }
    }?;
    Ok(count.unwrap_or(0))
}

/// [`change`] on SQLite: the vote, then the count moved (only when a row was) and read
/// back, in one transaction.
async fn change_in_transaction(
    db: &Db,
    post_id: Uuid,
    user_id: Uuid,
    change: Change,
) -> Result<i64, sqlx::Error> {
    let mut tx = db.begin().await?;
    let (changed, by) = match change {
        Change::Add(now) => (
            execute!(
                &mut tx,
                sqlx::query(insert_vote!())
                    .bind(post_id)
                    .bind(user_id)
                    .bind(now)
            )?,
            1i64,
        ),
        Change::Remove => (
            execute!(
                &mut tx,
                sqlx::query(delete_vote!()).bind(post_id).bind(user_id)
            )?,
            -1,
        ),
    };
    let count: Option<i64> = crate::sql!(&mut tx, |c| if changed > 0 {
        sqlx::query_scalar(
            "UPDATE posts SET vote_count = vote_count + $2 WHERE id = $1 RETURNING vote_count",
        )
        .bind(post_id)
        .bind(by)
        .fetch_optional(c)
        .await
    } else {
        sqlx::query_scalar("SELECT vote_count FROM posts WHERE id = $1")
            .bind(post_id)
            .fetch_optional(c)
            .await
    })?;
    tx.commit().await?;
    Ok(count.unwrap_or(0))
}

/// Which of `posts` `user_id` has voted for.
#[tracing::instrument(skip_all, fields(%user_id, posts = posts.len()))]
pub async fn voted(
    mut conn: impl AsConn,
    user_id: Uuid,
    posts: &[Uuid],
) -> Result<HashSet<Uuid>, sqlx::Error> {
    if posts.is_empty() {
        return Ok(HashSet::new());
    }
    let rows: Vec<(Uuid,)> = crate::fetch_all_in!(
        &mut conn,
        "SELECT post_id FROM votes WHERE user_id = $1 AND post_id {ids}",
        [user_id],
        posts
    )?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Inserts many votes with multi-row statements (for demo data); duplicates are skipped.
#[tracing::instrument(skip_all, fields(votes = rows.len()))]
pub async fn insert_many(
    mut conn: impl AsConn,
    rows: &[(Uuid, Uuid, DateTime<Utc>)],
) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(2000) {
        let sql = format!(
            "INSERT INTO votes (post_id, user_id, created_at) VALUES {} \
             ON CONFLICT (post_id, user_id) DO NOTHING",
            super::page::value_rows(chunk.len(), 3)
        );
        execute!(&mut conn, {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
            for (post, user, at) in chunk {
                q = q.bind(*post).bind(*user).bind(*at);
            }
            q
        })?;
    }
    Ok(())
}

/// Sets the vote count of each of `posts` from its votes (after [`insert_many`]).
#[tracing::instrument(skip_all, fields(posts = posts.len()))]
pub async fn recount(mut conn: impl AsConn, posts: &[Uuid]) -> Result<(), sqlx::Error> {
    for chunk in posts.chunks(500) {
        let _: Vec<(Uuid,)> = crate::fetch_all_in!(
            &mut conn,
            "UPDATE posts SET vote_count = \
             (SELECT COUNT(*) FROM votes WHERE votes.post_id = posts.id) \
             WHERE id {ids} RETURNING id",
            [],
            chunk
        )?;
    }
    Ok(())
}
