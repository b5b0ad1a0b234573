//! The HTTP host: routes, the GraphQL transport, health checks and request ids.

pub mod graphql;
pub mod health;
pub mod request_id;

use axum::{Router, middleware, routing::get};

use crate::{db::Db, graphql::AppSchema};

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The GraphQL schema, with the authentication service in its data.
    pub schema: AppSchema,
    /// The connection pool, pinged by `/readyz`.
    pub db: Db,
}

/// The application's routes; `main` and the tests serve the very same router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/graphql", get(graphql::get).post(graphql::post))
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .layer(middleware::from_fn(request_id::assign))
        .with_state(state)
}
