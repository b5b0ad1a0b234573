//! The `posts` table.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::page::{Cursor, Keyed, Page, PageRequest};
use crate::{
    db::{AsConn, users::Role},
    execute, sql,
};

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
    /// How many users had voted for it when it was read (kept on the post by
    /// [`crate::db::votes`]).
    pub vote_count: i64,
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
        "id, author_id, title, body, published, created_at, updated_at, vote_count"
    };
}

/// Inserts a post.
#[tracing::instrument(skip_all, fields(post_id = %post.id))]
pub async fn insert(mut conn: impl AsConn, post: &PostRow) -> Result<(), sqlx::Error> {
    execute!(
        &mut conn,
        sqlx::query(
            "INSERT INTO posts \
             (id, author_id, title, body, published, created_at, updated_at, published_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(post.id)
        .bind(post.author_id)
        .bind(&post.title)
        .bind(&post.body)
        .bind(post.published)
        .bind(post.created_at)
        .bind(post.updated_at)
        .bind(post.published.then_some(post.created_at))
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

/// The posts with these ids that still exist, in no particular order.
#[tracing::instrument(skip_all, fields(posts = ids.len()))]
pub async fn find_many(mut conn: impl AsConn, ids: &[Uuid]) -> Result<Vec<PostRow>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    crate::fetch_all_in!(
        &mut conn,
        concat!("SELECT ", post_columns!(), " FROM posts WHERE id {ids}"),
        [],
        ids
    )
}

/// Posts published after `since`, at most `limit` of them, the latest if there are more,
/// in the order they were published.
#[tracing::instrument(skip_all)]
pub async fn published_since(
    mut conn: impl AsConn,
    since: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<PostRow>, sqlx::Error> {
    let mut rows: Vec<PostRow> = sql!(&mut conn, |c| {
        sqlx::query_as(concat!(
            "SELECT ",
            post_columns!(),
            " FROM posts WHERE published AND published_at > $1 \
             ORDER BY published_at DESC, id DESC LIMIT $2"
        ))
        .bind(since)
        .bind(limit)
        .fetch_all(c)
        .await
    })?;
    rows.reverse();
    Ok(rows)
}

/// Changes the given fields of a post in one statement (`None` leaves a field alone), so
/// that concurrent edits of different fields do not undo each other. Returns the post as
/// changed, or `None` when it no longer exists.
#[tracing::instrument(skip_all, fields(%id))]
pub async fn update(
    mut conn: impl AsConn,
    id: Uuid,
    title: Option<&str>,
    body: Option<&str>,
    published: Option<bool>,
    now: DateTime<Utc>,
) -> Result<Option<PostRow>, sqlx::Error> {
    sql!(&mut conn, |c| {
        sqlx::query_as(concat!(
            "UPDATE posts SET title = COALESCE($2, title), body = COALESCE($3, body), \
             published_at = CASE WHEN $4 AND NOT published THEN $5 ELSE published_at END, \
             published = COALESCE($4, published), updated_at = $5 WHERE id = $1 RETURNING ",
            post_columns!()
        ))
        .bind(id)
        .bind(title)
        .bind(body)
        .bind(published)
        .bind(now)
        .fetch_optional(c)
        .await
    })
}

/// Deletes a post (and, by cascade, its votes).
#[tracing::instrument(skip_all, fields(%id))]
pub async fn delete(mut conn: impl AsConn, id: Uuid) -> Result<bool, sqlx::Error> {
    Ok(execute!(
        &mut conn,
        sqlx::query("DELETE FROM posts WHERE id = $1").bind(id)
    )? == 1)
}

/// A post of a page read with its author and whether the viewer has voted for it, so
/// that a page costs one statement whatever it shows of them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PostWithAuthor {
    /// The post.
    #[sqlx(flatten)]
    pub post: PostRow,
    /// The author's username.
    pub author_username: String,
    /// The author's email address.
    pub author_email: String,
    /// The author's role.
    #[sqlx(try_from = "String")]
    pub author_role: Role,
    /// When the author's account was created.
    pub author_created_at: DateTime<Utc>,
    /// When the author's account was deactivated, if it was.
    pub author_deactivated_at: Option<DateTime<Utc>>,
    /// Whether the viewer has voted for the post.
    pub viewer_voted: bool,
}

impl Keyed for PostWithAuthor {
    fn cursor(&self) -> Cursor {
        self.post.cursor()
    }
}

/// The statement of a page of published posts, for each shape: with or without an
/// author, with or without a cursor, the posts alone or with their authors and the
/// viewer's votes. Built once.
///
/// One static statement per shape rather than `$n IS NULL OR …`: a prepared statement's
/// generic plan cannot use an optional condition as an index bound, and would read
/// through every row before the cursor, as OFFSET does. The authors and votes are joined
/// to the page once it is cut, so that the page's own plan is the index seek it was.
fn published_sql(by_author: bool, after: bool, beside: bool) -> &'static str {
    static SQL: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
        (0..8)
            .map(|i| build_published_sql(i & 1 != 0, i & 2 != 0, i & 4 != 0))
            .collect()
    });
    &SQL[usize::from(by_author) | usize::from(after) << 1 | usize::from(beside) << 2]
}

fn build_published_sql(by_author: bool, after: bool, beside: bool) -> String {
    let mut n = 0;
    let mut next = || {
        n += 1;
        format!("${n}")
    };
    let mut conditions = Vec::new();
    if by_author {
        conditions.push(format!("author_id = {}", next()));
    }
    conditions.push(format!("published = {}", next()));
    if after {
        conditions.push(format!("(created_at, id) < ({}, {})", next(), next()));
    }
    let page = format!(
        "SELECT {} FROM posts WHERE {} ORDER BY created_at DESC, id DESC LIMIT {}",
        post_columns!(),
        conditions.join(" AND "),
        next()
    );
    if !beside {
        return page;
    }
    format!(
        "SELECT p.*, u.username AS author_username, u.email AS author_email, \
         u.role AS author_role, u.created_at AS author_created_at, \
         u.deactivated_at AS author_deactivated_at, \
         EXISTS (SELECT 1 FROM votes v WHERE v.post_id = p.id AND v.user_id = {viewer}) \
         AS viewer_voted \
         FROM ({page}) p JOIN users u ON u.id = p.author_id \
         ORDER BY p.created_at DESC, p.id DESC",
        viewer = next()
    )
}

/// A page of published posts, newest first, optionally by one author.
#[tracing::instrument(skip_all)]
pub async fn published(
    conn: impl AsConn,
    author_id: Option<Uuid>,
    page: &PageRequest,
) -> Result<Page<PostRow>, sqlx::Error> {
    published_page(conn, author_id, page, None).await
}

/// A page of published posts, newest first, optionally by one author, each with its
/// author and whether `viewer` has voted for it.
#[tracing::instrument(skip_all)]
pub async fn published_with_authors(
    conn: impl AsConn,
    author_id: Option<Uuid>,
    page: &PageRequest,
    viewer: Uuid,
) -> Result<Page<PostWithAuthor>, sqlx::Error> {
    published_page(conn, author_id, page, Some(viewer)).await
}

async fn published_page<R>(
    mut conn: impl AsConn,
    author_id: Option<Uuid>,
    page: &PageRequest,
    viewer: Option<Uuid>,
) -> Result<Page<R>, sqlx::Error>
where
    R: Send
        + Unpin
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>,
{
    let sql = published_sql(author_id.is_some(), page.after.is_some(), viewer.is_some());
    let rows = sql!(&mut conn, |c| {
        let mut q = sqlx::query_as(sql);
        if let Some(author) = author_id {
            q = q.bind(author);
        }
        q = q.bind(true);
        if let Some(after) = page.after {
            q = q.bind(after.created_at).bind(after.id);
        }
        q = q.bind(page.limit());
        if let Some(viewer) = viewer {
            q = q.bind(viewer);
        }
        q.fetch_all(c).await
    })?;
    Ok(Page::from_rows(rows, page))
}

/// One page of posts for each of several authors, in one statement: what the viewer may
/// see of each author's posts (drafts too for the author themself and for admins).
///
/// Each author's page is its own index seek that stops after `limit` rows, so the cost
/// does not grow with how many posts an author has written. That takes a lateral join on
/// PostgreSQL and a union of limited subqueries on SQLite, which has no lateral joins.
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
    // $1 published, $2 viewer, $3 viewer is admin, $4 limit, then $5 and $6 the cursor.
    let after = if page.after.is_some() {
        " AND (created_at, id) < ($5, $6)"
    } else {
        ""
    };
    let first_author = if page.after.is_some() { 7 } else { 5 };
    let rows: Vec<PostRow> = match conn.as_conn() {
        super::ConnRef::Postgres(c) => {
            let sql = format!(
                "SELECT p.* FROM UNNEST(${first_author}::uuid[]) AS a (author_id) \
                 CROSS JOIN LATERAL (SELECT {cols} FROM posts \
                   WHERE posts.author_id = a.author_id \
                     AND (published = $1 OR posts.author_id = $2 OR $3){after} \
                   ORDER BY created_at DESC, id DESC LIMIT $4) p",
                cols = post_columns!(),
            );
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(true)
                .bind(viewer_id)
                .bind(viewer_is_admin)
                .bind(page.limit());
            if let Some(cursor) = page.after {
                q = q.bind(cursor.created_at).bind(cursor.id);
            }
            q.bind(authors).fetch_all(c).await?
        }
        super::ConnRef::Sqlite(c) => {
            // One limited subquery per author, joined by UNION ALL; SQLite allows at most
            // 500 terms in a compound SELECT, so many authors take several statements.
            let mut rows = Vec::new();
            for chunk in authors.chunks(SQLITE_AUTHORS_PER_STATEMENT) {
                let sql = (0..chunk.len())
                    .map(|i| {
                        format!(
                            "SELECT * FROM (SELECT {cols} FROM posts WHERE author_id = ${n} \
                             AND (published = $1 OR author_id = $2 OR $3){after} \
                             ORDER BY created_at DESC, id DESC LIMIT $4)",
                            cols = post_columns!(),
                            n = first_author + i,
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" UNION ALL ");
                let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(true)
                    .bind(viewer_id)
                    .bind(viewer_is_admin)
                    .bind(page.limit());
                if let Some(cursor) = page.after {
                    q = q.bind(cursor.created_at).bind(cursor.id);
                }
                for author in chunk {
                    q = q.bind(*author);
                }
                rows.extend(q.fetch_all(&mut *c).await?);
            }
            rows
        }
    };
    let mut grouped: HashMap<Uuid, Vec<PostRow>> =
        authors.iter().map(|a| (*a, Vec::new())).collect();
    for row in rows {
        grouped.entry(row.author_id).or_default().push(row);
    }
    Ok(grouped
        .into_iter()
        .map(|(author, mut rows)| {
            rows.sort_by_key(|p| std::cmp::Reverse((p.created_at, p.id)));
            (author, Page::from_rows(rows, page))
        })
        .collect())
}

/// The most authors one SQLite statement of [`by_authors`] reads, well below SQLite's
/// limit of 500 terms in a compound SELECT.
const SQLITE_AUTHORS_PER_STATEMENT: usize = 200;

/// Inserts many posts with multi-row statements (for demo data).
#[tracing::instrument(skip_all, fields(posts = rows.len()))]
pub async fn insert_many(mut conn: impl AsConn, rows: &[PostRow]) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(1000) {
        let sql = format!(
            "INSERT INTO posts \
             (id, author_id, title, body, published, created_at, updated_at, published_at) \
             VALUES {}",
            super::page::value_rows(chunk.len(), 8)
        );
        execute!(&mut conn, {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
            for p in chunk {
                q = q
                    .bind(p.id)
                    .bind(p.author_id)
                    .bind(&p.title)
                    .bind(&p.body)
                    .bind(p.published)
                    .bind(p.created_at)
                    .bind(p.updated_at)
                    .bind(p.published.then_some(p.created_at));
            }
            q
        })?;
    }
    Ok(())
}
