//! The ceiling for the benchmarks: the fewest moving parts that can answer a page of 20
//! posts. It runs the very statements quire runs for
//! `posts(first: 20) { edges { cursor node { id title author { username } voteCount
//! viewerHasVoted } } pageInfo { hasNextPage endCursor } }`, through quire's own
//! repository functions, and writes the same JSON, but with no GraphQL, no
//! authentication and no DataLoader: what the hardware allows.
//!
//! `cargo run --release --example ceiling -- <DATABASE_URL> <listen address> <viewer id>`
//! then `POST /` with any body.

use std::{collections::HashMap, sync::Arc};

use axum::{Router, extract::State, http::header, response::IntoResponse, routing::post};
use quire::{
    config::DatabaseUrl,
    db::{
        Db,
        page::{Keyed, PageRequest},
        posts, users, votes,
    },
};
use serde_json::{Value, json};
use uuid::Uuid;

struct Ceiling {
    db: Db,
    viewer: Uuid,
}

async fn page(State(state): State<Arc<Ceiling>>) -> impl IntoResponse {
    match render(&state).await {
        Ok(body) => (
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response(),
        Err(e) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("database error: {e}"),
        )
            .into_response(),
    }
}

async fn render(state: &Ceiling) -> Result<Value, sqlx::Error> {
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
    let router = Router::new().route("/", post(page)).with_state(state);
    let listener = tokio::net::TcpListener::bind(listen.as_str())
        .await
        .expect("the listen address");
    eprintln!("ceiling serving on {listen}");
    axum::serve(listener, router).await.expect("serving");
}
