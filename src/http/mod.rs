//! The HTTP host: routes, the GraphQL transport, health checks, request ids, and the
//! protections every request passes through.

pub mod cookies;
pub mod graphql;
pub mod health;
pub mod limits;
pub mod request_id;

use axum::{
    Router,
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    middleware,
    routing::get,
};
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    set_header::SetResponseHeaderLayer,
    timeout::TimeoutLayer,
};

use crate::{config::Limits, db::Db, graphql::AppSchema};

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The GraphQL schema with its services.
    pub schema: AppSchema,
    /// The database, for the readiness probe.
    pub db: Db,
    /// Bounds on requests.
    pub limits: Limits,
    /// Whether `GET /graphql` serves GraphiQL to browsers.
    pub graphiql: bool,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: std::sync::Arc<Vec<std::net::IpAddr>>,
    /// Browser sessions with the refresh token in a cookie.
    pub refresh_cookie: bool,
    /// Origins allowed to call with credentials.
    pub cors_origins: std::sync::Arc<Vec<String>>,
    /// Renders the metrics.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Whether `/metrics` is served on the main address (else on its own).
    pub metrics_here: bool,
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

/// The application's routes; `main` and the tests serve the very same router.
pub fn router(state: AppState) -> Router {
    let max_body = state.limits.max_body;
    let origins = state.cors_origins.clone();
    let api = Router::new()
        .route("/graphql", get(graphql::get).post(graphql::post))
        .layer(middleware::from_fn(move |req, next| {
            limits::bounded_body(max_body, req, next)
        }))
        .layer(middleware::from_fn(limits::json_posts_only))
        .layer(middleware::from_fn(move |req, next| {
            cookies::origin_check(origins.clone(), req, next)
        }))
        .layer(cors(&state.cors_origins));
    let mut router = Router::new()
        .merge(api)
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready));
    if state.metrics_here {
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
