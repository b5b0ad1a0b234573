//! A reference for the benchmarks: the server a user would write with stock async-graphql
//! and its `DataLoader`, following async-graphql's book, over a plain sqlx pool. It answers
//! `posts(first: N) { edges { cursor node { id title author { username } voteCount
//! viewerHasVoted } } pageInfo { hasNextPage endCursor } }` as quire does, with no
//! authentication (the viewer is given on the command line) and no limits: a page, then
//! one batch of authors and one of the viewer's votes, through loaders with their default
//! 1 ms delay.
//!
//! `cargo run --release --example stock -- <DATABASE_URL> <listen address> <viewer id>`
//! (PostgreSQL), then `POST /graphql` with a GraphQL request.

use std::{collections::HashMap, sync::Arc};

use async_graphql::{
    ComplexObject, Context, EmptyMutation, EmptySubscription, ID, Object, Schema, SimpleObject,
    connection::{Connection, Edge},
    dataloader::{DataLoader, Loader},
};
use axum::{Json, Router, extract::State, routing::post};
use chrono::{DateTime, Utc};
use quire::db::page::Cursor;
use sqlx::{PgPool, postgres::PgPoolOptions};
use uuid::Uuid;

#[derive(SimpleObject, sqlx::FromRow)]
#[graphql(complex)]
struct Post {
    #[graphql(skip)]
    id: Uuid,
    title: String,
    vote_count: i64,
    #[graphql(skip)]
    author_id: Uuid,
    #[graphql(skip)]
    created_at: DateTime<Utc>,
}

#[derive(SimpleObject, Clone)]
struct User {
    username: String,
}

#[ComplexObject]
impl Post {
    #[graphql(name = "id")]
    async fn graphql_id(&self) -> ID {
        ID(self.id.to_string())
    }

    async fn author(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        ctx.data_unchecked::<DataLoader<Authors>>()
            .load_one(self.author_id)
            .await
            .map_err(error)
    }

    async fn viewer_has_voted(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        Ok(ctx
            .data_unchecked::<DataLoader<Votes>>()
            .load_one(self.id)
            .await
            .map_err(error)?
            .unwrap_or(false))
    }
}

/// quire turns off async-graphql's conversion of any error (its `custom-error-conversion`
/// feature), which this example shares as a dependency.
fn error(e: impl std::fmt::Display) -> async_graphql::Error {
    async_graphql::Error::new(e.to_string())
}

struct Authors(PgPool);

impl Loader<Uuid> for Authors {
    type Value = User;
    type Error = Arc<sqlx::Error>;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, User>, Self::Error> {
        let rows: Vec<(Uuid, String)> =
            sqlx::query_as("SELECT id, username FROM users WHERE id = ANY($1)")
                .bind(keys)
                .fetch_all(&self.0)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(id, username)| (id, User { username }))
            .collect())
    }
}

struct Votes(PgPool, Uuid);

impl Loader<Uuid> for Votes {
    type Value = bool;
    type Error = Arc<sqlx::Error>;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, bool>, Self::Error> {
        let voted: Vec<Uuid> = sqlx::query_scalar(
            "SELECT post_id FROM votes WHERE user_id = $1 AND post_id = ANY($2)",
        )
        .bind(self.1)
        .bind(keys)
        .fetch_all(&self.0)
        .await?;
        Ok(voted.into_iter().map(|id| (id, true)).collect())
    }
}

struct Query;

#[Object]
impl Query {
    async fn posts(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
    ) -> async_graphql::Result<Connection<String, Post>> {
        let first = first.clamp(0, 100) as usize;
        let mut rows: Vec<Post> = sqlx::query_as(
            "SELECT id, title, vote_count, author_id, created_at FROM posts \
             WHERE published = TRUE ORDER BY created_at DESC, id DESC LIMIT $1",
        )
        .bind(first as i64 + 1)
        .fetch_all(ctx.data_unchecked::<PgPool>())
        .await
        .map_err(error)?;
        let has_next = rows.len() > first;
        rows.truncate(first);
        let mut connection = Connection::new(false, has_next);
        connection.edges = rows
            .into_iter()
            .map(|p| {
                let cursor = Cursor {
                    created_at: p.created_at,
                    id: p.id,
                }
                .encode();
                Edge::new(cursor, p)
            })
            .collect();
        Ok(connection)
    }
}

type StockSchema = Schema<Query, EmptyMutation, EmptySubscription>;

async fn graphql(
    State(schema): State<StockSchema>,
    Json(request): Json<async_graphql::Request>,
) -> Json<async_graphql::Response> {
    Json(schema.execute(request).await)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, listen, viewer] = args.as_slice() else {
        eprintln!("usage: stock <DATABASE_URL> <listen address> <viewer id>");
        std::process::exit(2);
    };
    let viewer: Uuid = viewer.parse().expect("a user id");
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect(url)
        .await
        .expect("the database");
    let schema = Schema::build(Query, EmptyMutation, EmptySubscription)
        .data(DataLoader::new(Authors(pool.clone()), tokio::spawn))
        .data(DataLoader::new(Votes(pool.clone(), viewer), tokio::spawn))
        .data(pool)
        .finish();
    let router = Router::new()
        .route("/graphql", post(graphql))
        .with_state(schema);
    let listener = tokio::net::TcpListener::bind(listen.as_str())
        .await
        .expect("the listen address");
    eprintln!("stock async-graphql serving on {listen}");
    axum::serve(listener, router).await.expect("serving");
}
