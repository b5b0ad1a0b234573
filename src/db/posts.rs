//! The `posts` table.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::page::{Cursor, Keyed, Page, PageRequest, placeholders};
use crate::{db::AsConn, execute, sql};

/// A row of `posts`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PostRow {
    /// The post's id (UUIDv7, made by the server).
    pub id: Uuid,
    /// The user who wrote it.
    pub author_id: Uuid,
    /// The title, trimmed, 1 to 200 characters.
    pub title: String,
    /// The text, trimmed, 1 to 50,000 characters.
    pub body: String,
    /// False for a draft, which only its author and administrators see.
    pub published: bool,
    /// When it was created; with `id`, its place in every list.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

impl PostRow {
    /// Whether `viewer` (`None`: no one in particular) may see this post.
    pub fn visible_to(&self, viewer_id: Uuid, viewer_is_admin: bool) -> bool {
        self.published || self.author_id == viewer_id || viewer_is_admin
    }
}

impl Keyed for PostRow {
    fn cursor(&self) -> Cursor {
        Cursor {
            created_at: self.created_at,
            id: self.id,
        }
    }
}

macro_rules! post_columns {
    () => {
        "id, author_id, title, body, published, created_at, updated_at"
    };
}

/// Inserts a post.
#[tracing::instrument(skip_all, fields(post_id = %post.id))]
pub async fn insert(mut conn: impl AsConn, post: &PostRow) -> Result<(), sqlx::Error> {
    execute!(
        &mut conn,
        sqlx::query(
            "INSERT INTO posts (id, author_id, title, body, published, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(post.id)
        .bind(post.author_id)
        .bind(&post.title)
        .bind(&post.body)
        .bind(post.published)
        .bind(post.created_at)
        .bind(post.updated_at)
    )?;
    Ok(())
}

/// Finds a post by id, whoever may see it.
#[tracing::instrument(skip_all, fields(%id))]
pub async fn find(mut conn: impl AsConn, id: Uuid) -> Result<Option<PostRow>, sqlx::Error> {
    sql!(&mut conn, |c| {
        sqlx::query_as(concat!(
            "SELECT ",
            post_columns!(),
            " FROM posts WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(c)
        .await
    })
}

/// Writes a post's title, body and published flag.
#[tracing::instrument(skip_all, fields(post_id = %post.id))]
pub async fn update(mut conn: impl AsConn, post: &PostRow) -> Result<(), sqlx::Error> {
    execute!(
        &mut conn,
        sqlx::query(
            "UPDATE posts SET title = $2, body = $3, published = $4, updated_at = $5 WHERE id = $1",
        )
        .bind(post.id)
        .bind(&post.title)
        .bind(&post.body)
        .bind(post.published)
        .bind(post.updated_at)
    )?;
    Ok(())
}

/// Deletes a post (and, by cascade, its votes).
#[tracing::instrument(skip_all, fields(%id))]
pub async fn delete(mut conn: impl AsConn, id: Uuid) -> Result<bool, sqlx::Error> {
    Ok(execute!(
        &mut conn,
        sqlx::query("DELETE FROM posts WHERE id = $1").bind(id)
    )? == 1)
}

/// A page of published posts, newest first, optionally by one author.
#[tracing::instrument(skip_all)]
pub async fn published(
    mut conn: impl AsConn,
    author_id: Option<Uuid>,
    page: &PageRequest,
) -> Result<Page<PostRow>, sqlx::Error> {
    // Two statements rather than one with `$1 IS NULL OR author_id = $1`, so that each
    // uses the index that matches it.
    let rows = match author_id {
        None => sql!(&mut conn, |c| {
            sqlx::query_as(concat!(
                "SELECT ",
                post_columns!(),
                " FROM posts WHERE published = $1 \
                 AND ($2 IS NULL OR (created_at, id) < ($2, $3)) \
                 ORDER BY created_at DESC, id DESC LIMIT $4"
            ))
            .bind(true)
            .bind(page.after_time())
            .bind(page.after_id())
            .bind(page.limit())
            .fetch_all(c)
            .await
        })?,
        Some(author) => sql!(&mut conn, |c| {
            sqlx::query_as(concat!(
                "SELECT ",
                post_columns!(),
                " FROM posts WHERE author_id = $1 AND published = $2 \
                 AND ($3 IS NULL OR (created_at, id) < ($3, $4)) \
                 ORDER BY created_at DESC, id DESC LIMIT $5"
            ))
            .bind(author)
            .bind(true)
            .bind(page.after_time())
            .bind(page.after_id())
            .bind(page.limit())
            .fetch_all(c)
            .await
        })?,
    };
    Ok(Page::from_rows(rows, page))
}

/// One page of posts for each of several authors, in one statement: what `viewer` may
/// see of each author's posts (drafts too for the author themself and for admins).
#[tracing::instrument(skip_all, fields(authors = authors.len()))]
pub async fn by_authors(
    mut conn: impl AsConn,
    authors: &[Uuid],
    viewer_id: Uuid,
    viewer_is_admin: bool,
    page: &PageRequest,
) -> Result<HashMap<Uuid, Page<PostRow>>, sqlx::Error> {
    if authors.is_empty() {
        return Ok(HashMap::new());
    }
    let sql = format!(
        "SELECT {cols} FROM (\
           SELECT {cols}, ROW_NUMBER() OVER \
             (PARTITION BY author_id ORDER BY created_at DESC, id DESC) AS rn \
           FROM posts \
           WHERE author_id IN ({authors}) \
             AND (published = $1 OR author_id = $2 OR $3) \
             AND ($4 IS NULL OR (created_at, id) < ($4, $5))\
         ) ranked WHERE rn <= $6 ORDER BY author_id, created_at DESC, id DESC",
        cols = post_columns!(),
        authors = placeholders(7, authors.len()),
    );
    let rows: Vec<PostRow> = sql!(&mut conn, |c| {
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(true)
            .bind(viewer_id)
            .bind(viewer_is_admin)
            .bind(page.after_time())
            .bind(page.after_id())
            .bind(page.limit());
        for author in authors {
            q = q.bind(*author);
        }
        q.fetch_all(c).await
    })?;
    let mut grouped: HashMap<Uuid, Vec<PostRow>> =
        authors.iter().map(|a| (*a, Vec::new())).collect();
    for row in rows {
        grouped.entry(row.author_id).or_default().push(row);
    }
    Ok(grouped
        .into_iter()
        .map(|(author, rows)| (author, Page::from_rows(rows, page)))
        .collect())
}
