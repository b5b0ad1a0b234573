//! The ceilings for the benchmarks: the fewest moving parts that can answer what quire's
//! scenarios ask, with no GraphQL and no authentication, on quire's own connection pool.
//!
//! - `POST /?first=N` (the ideal): the exact response to
//!   `posts(first: N) { edges { cursor node { id title author { username } voteCount
//!   viewerHasVoted } } pageInfo { hasNextPage endCursor } }` for the viewer, from **one**
//!   SQL statement that reads only the columns the response shows, written with serde.
//!   What the hardware allows.
//! - `POST /statements` (the previous ceiling): the same response for 20 posts from the
//!   three statements quire's repository ran for it before a page became one statement
//!   (the page, its authors, the viewer's votes), written with `serde_json::json!`.
//! - `POST /me`: `me { id username }` for the viewer, from one statement.
//!
//! `cargo run --release --example ceiling -- <DATABASE_URL> <listen address> <viewer id>`
//! (PostgreSQL).

use std::{collections::HashMap, sync::Arc};

use axum::{
    Router,
    extract::{Query, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use chrono::{DateTime, Utc};
use quire::{
    config::DatabaseUrl,
    db::{
        AsConn, ConnRef, Db,
        page::{Cursor, Keyed, PageRequest},
        posts, users, votes,
    },
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

struct Ceiling {
    db: Db,
    viewer: Uuid,
}

fn json_response(result: Result<Vec<u8>, sqlx::Error>) -> Response {
    match result {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("database error: {e}"),
        )
            .into_response(),
    }
}

// ------------------------------------------------------------------ the ideal

/// One statement: the page cut by its index, then joined to its authors and the viewer's
/// votes, with only the columns the response shows.
const PAGE: &str = "SELECT p.id, p.title, p.vote_count, p.created_at, u.username, \
     EXISTS (SELECT 1 FROM votes v WHERE v.post_id = p.id AND v.user_id = $2) AS voted \
     FROM (SELECT id, author_id, title, vote_count, created_at FROM posts \
           WHERE published = TRUE ORDER BY created_at DESC, id DESC LIMIT $1) p \
     JOIN users u ON u.id = p.author_id ORDER BY p.created_at DESC, p.id DESC";

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    title: String,
    vote_count: i64,
    created_at: DateTime<Utc>,
    username: String,
    voted: bool,
}

#[derive(Serialize)]
struct Body<D> {
    data: D,
}

#[derive(Serialize)]
struct PostsData {
    posts: PostConnection,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PostConnection {
    edges: Vec<Edge>,
    page_info: PageInfo,
}

#[derive(Serialize)]
struct Edge {
    cursor: String,
    node: Node,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Node {
    id: Uuid,
    title: String,
    author: Author,
    vote_count: i64,
    viewer_has_voted: bool,
}

#[derive(Serialize)]
struct Author {
    username: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PageInfo {
    has_next_page: bool,
    end_cursor: Option<String>,
}

#[derive(Deserialize)]
struct First {
    first: Option<usize>,
}

async fn ideal(State(state): State<Arc<Ceiling>>, Query(q): Query<First>) -> Response {
    json_response(ideal_page(&state, q.first.unwrap_or(20).min(100)).await)
}

async fn ideal_page(state: &Ceiling, first: usize) -> Result<Vec<u8>, sqlx::Error> {
    let mut conn = state.db.acquire().await?;
    let ConnRef::Postgres(c) = conn.as_conn() else {
        panic!("the ceiling runs on PostgreSQL");
    };
    let mut rows: Vec<Row> = sqlx::query_as(PAGE)
        .bind(first as i64 + 1)
        .bind(state.viewer)
        .fetch_all(c)
        .await?;
    let has_next_page = rows.len() > first;
    rows.truncate(first);
    let cursor = |r: &Row| {
        Cursor {
            created_at: r.created_at,
            id: r.id,
        }
        .encode()
    };
    let end_cursor = rows.last().map(cursor);
    let edges = rows
        .into_iter()
        .map(|r| Edge {
            cursor: cursor(&r),
            node: Node {
                id: r.id,
                title: r.title,
                author: Author {
                    username: r.username,
                },
                vote_count: r.vote_count,
                viewer_has_voted: r.voted,
            },
        })
        .collect();
    let body = Body {
        data: PostsData {
            posts: PostConnection {
                edges,
                page_info: PageInfo {
                    has_next_page,
                    end_cursor,
                },
            },
        },
    };
    Ok(serde_json::to_vec(&body).expect("serializable"))
}

// ------------------------------------------------------------------ me

#[derive(Serialize, sqlx::FromRow)]
struct Me {
    id: Uuid,
    username: String,
}

#[derive(Serialize)]
struct MeData {
    me: Me,
}

async fn me(State(state): State<Arc<Ceiling>>) -> Response {
    let read = async {
        let mut conn = state.db.acquire().await?;
        let ConnRef::Postgres(c) = conn.as_conn() else {
            panic!("the ceiling runs on PostgreSQL");
        };
        let me: Me = sqlx::query_as("SELECT id, username FROM users WHERE id = $1")
            .bind(state.viewer)
            .fetch_one(c)
            .await?;
        Ok(serde_json::to_vec(&Body {
            data: MeData { me },
        })
        .expect("serializable"))
    };
    json_response(read.await)
}

// ------------------------------------------------------------------ the previous ceiling

async fn statements(State(state): State<Arc<Ceiling>>) -> Response {
    json_response(
        three_statements(&state)
            .await
            .map(|v| v.to_string().into_bytes()),
    )
}

async fn three_statements(state: &Ceiling) -> Result<Value, sqlx::Error> {
    let request = PageRequest {
        first: 20,
        after: None,
    };
    let mut conn = state.db.acquire().await?;
    let page = posts::published(&mut conn, None, &request).await?;
    let ids: Vec<Uuid> = page.rows.iter().map(|p| p.id).collect();
    let mut authors: Vec<Uuid> = page.rows.iter().map(|p| p.author_id).collect();
    authors.sort_unstable();
    authors.dedup();
    let names: HashMap<Uuid, String> = users::find_many(&mut conn, &authors)
        .await?
        .into_iter()
        .map(|u| (u.id, u.username))
        .collect();
    let voted = votes::voted(&mut conn, state.viewer, &ids).await?;
    let edges: Vec<Value> = page
        .rows
        .iter()
        .map(|p| {
            json!({
                "cursor": p.cursor().encode(),
                "node": {
                    "id": p.id.to_string(),
                    "title": p.title,
                    "author": { "username": names.get(&p.author_id) },
                    "voteCount": p.vote_count,
                    "viewerHasVoted": voted.contains(&p.id),
                }
            })
        })
        .collect();
    let end = page.rows.last().map(|p| p.cursor().encode());
    Ok(json!({
        "data": { "posts": {
            "edges": edges,
            "pageInfo": { "hasNextPage": page.has_next, "endCursor": end }
        } }
    }))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, listen, viewer] = args.as_slice() else {
        eprintln!("usage: ceiling <DATABASE_URL> <listen address> <viewer id>");
        std::process::exit(2);
    };
    let url = DatabaseUrl::parse(url).expect("a database URL");
    // The same pool as quire's by default.
    let size = std::env::var("QUIRE_DATABASE_POOL_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let db = Db::connect(&url, size).await.expect("the database");
    let state = Arc::new(Ceiling {
        db,
        viewer: viewer.parse().expect("a user id"),
    });
    let router = Router::new()
        .route("/", post(ideal))
        .route("/statements", post(statements))
        .route("/me", post(me))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(listen.as_str())
        .await
        .expect("the listen address");
    eprintln!("ceiling serving on {listen}");
    axum::serve(listener, router).await.expect("serving");
}
