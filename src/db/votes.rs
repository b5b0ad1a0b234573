//! The `votes` table: at most one vote per user and post.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{db::AsConn, execute};

/// Records `user_id`'s vote for `post_id`; a second vote is a no-op.
#[tracing::instrument(skip_all, fields(%post_id, %user_id))]
pub async fn add(
    mut conn: impl AsConn,
    post_id: Uuid,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    execute!(
        &mut conn,
        sqlx::query(
            "INSERT INTO votes (post_id, user_id, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (post_id, user_id) DO NOTHING",
        )
        .bind(post_id)
        .bind(user_id)
        .bind(now)
    )?;
    Ok(())
}

/// Withdraws `user_id`'s vote for `post_id`, if there is one.
#[tracing::instrument(skip_all, fields(%post_id, %user_id))]
pub async fn remove(
    mut conn: impl AsConn,
    post_id: Uuid,
    user_id: Uuid,
) -> Result<(), sqlx::Error> {
    execute!(
        &mut conn,
        sqlx::query("DELETE FROM votes WHERE post_id = $1 AND user_id = $2")
            .bind(post_id)
            .bind(user_id)
    )?;
    Ok(())
}

/// The number of votes of each post; posts without votes are absent. (IN lists as in
/// [`crate::db::users::find_many`].)
#[tracing::instrument(skip_all, fields(posts = posts.len()))]
pub async fn counts(
    mut conn: impl AsConn,
    posts: &[Uuid],
) -> Result<HashMap<Uuid, i64>, sqlx::Error> {
    if posts.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(Uuid, i64)> = crate::fetch_all_in!(
        &mut conn,
        "SELECT post_id, COUNT(*) FROM votes WHERE post_id {ids} GROUP BY post_id",
        [],
        posts
    )?;
    Ok(rows.into_iter().collect())
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
