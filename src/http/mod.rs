//! The HTTP host: routes, the GraphQL transport, health checks, request ids, and the
//! protections every request passes through.

pub mod client;
pub mod cookies;
pub mod counted;
pub mod graphiql;
pub mod graphql;
pub mod health;
pub mod limits;
pub mod request_id;
pub mod server;
pub mod sockets;
pub mod wire;
pub mod ws;

use axum::{
    Router,
    extract::{FromRequestParts, Request, State, ws::WebSocketUpgrade},
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    middleware,
    response::{IntoResponse, Response},
    routing::get,
};
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    set_header::SetResponseHeaderLayer,
    timeout::TimeoutLayer,
};

use std::sync::Arc;

use crate::{auth::Auth, config::Config, db::Db, graphql::runner::Runner};

/// What the HTTP handlers share: a handle, cloned for every request and every layer
/// that extracts it, so it costs a reference count rather than a copy of its parts.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// A handle on `shared`.
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts behind an [`AppState`].
pub struct Shared {
    /// Runs operations against the GraphQL schema.
    pub runner: Runner,
    /// Places for WebSocket connections and subscriptions.
    pub sockets: Arc<sockets::Sockets>,
    /// The loader every subscription shares, so that the loads one event causes in many
    /// subscriptions are batched together.
    pub stream_loader: Arc<crate::graphql::loaders::DbLoader>,
    /// The database, for the readiness probe and the loaders.
    pub db: Db,
    /// The configuration: limits, exposure, proxies, cookies, origins.
    pub config: Arc<Config>,
    /// Renders the metrics.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Authenticates WebSocket connections and hears when their sessions end.
    pub auth: Auth,
}

/// `/metrics` alone, for serving on its own address.
pub fn metrics_router(state: AppState) -> Router {
    security_headers(
        Router::new()
            .route("/metrics", get(health::metrics))
            .with_state(state),
    )
}

/// `nosniff` and `no-referrer` on every response.
fn security_headers(router: Router) -> Router {
    router
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("no-referrer"),
        ))
}

/// Cross-origin access for the listed origins only, with credentials; none when the list
/// is empty. Never `*`.
fn cors(origins: &[String]) -> CorsLayer {
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if allowed.is_empty() {
        return CorsLayer::new();
    }
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static("x-api-key"),
            HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([HeaderName::from_static("x-request-id")])
        .max_age(std::time::Duration::from_secs(600))
}

/// `GET /graphql`: a WebSocket upgrade for subscriptions, or GraphQL over HTTP.
async fn get_graphql(State(state): State<AppState>, request: Request) -> Response {
    let (mut parts, _) = request.into_parts();
    if !ws::is_upgrade(&parts.headers) {
        return graphql::get(state, parts).await;
    }
    match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
        Ok(upgrade) => ws::upgrade(state, upgrade, &parts).await,
        Err(rejection) => rejection.into_response(),
    }
}

/// The application's routes; `main` and the tests serve the very same router.
pub fn router(state: AppState) -> Router {
    let max_body = state.config.limits.max_body;
    let config = state.config.clone();
    let api = Router::new()
        .route("/graphql", get(get_graphql).post(graphql::post))
        .route("/graphql/ws", get(ws::endpoint))
        .layer(middleware::from_fn(move |req, next| {
            limits::bounded_body(max_body, req, next)
        }))
        .layer(middleware::from_fn(limits::json_posts_only))
        .layer(middleware::from_fn(move |req, next| {
            cookies::origin_check(config.clone(), req, next)
        }))
        .layer(cors(&state.config.server.cors_origins));
    let mut router = Router::new()
        .merge(api)
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready));
    // Unless it has an address of its own, or is not to be public.
    if state.config.server.metrics_listen.is_none() && state.config.exposure.metrics {
        router = router.route("/metrics", get(health::metrics));
    }
    router
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits::TIMEOUT,
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(middleware::from_fn(request_id::assign))
        .with_state(state)
}
