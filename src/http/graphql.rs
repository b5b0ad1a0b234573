//! `POST /graphql` and `GET /graphql`: GraphQL over HTTP, and GraphiQL for browsers.

use async_graphql::ParseRequestError;
use async_graphql::{BatchRequest, BatchResponse};
use async_graphql::{
    http::GraphiQLSource,
    parser::types::{DocumentOperations, OperationType},
};
use async_graphql_axum::{
    GraphQLBatchRequest, GraphQLRequest, GraphQLResponse, rejection::GraphQLRejection,
};
use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use axum::{
    extract::{ConnectInfo, FromRequest, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};

use super::{AppState, cookies::BrowserSession, request_id::RequestId};
use crate::{
    auth::{Caller, ClientInfo},
    error::REQUEST_ID,
    graphql::{context::CredentialBudget, loaders},
};

/// What the GraphiQL page may load: its own inline script and style, the GraphiQL and
/// React bundles, and requests to this server only.
const GRAPHIQL_CSP: &str = "default-src 'none'; \
    script-src 'unsafe-inline' https://unpkg.com; \
    style-src 'unsafe-inline' https://unpkg.com; \
    img-src 'self' data: https://graphql.org; font-src https://unpkg.com data:; \
    connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Executes a GraphQL request sent as a POST body.
pub async fn post(
    State(state): State<AppState>,
    axum::Extension(RequestId(id)): axum::Extension<RequestId>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    request: Result<GraphQLBatchRequest, GraphQLRejection>,
) -> Response {
    let ip = client_ip(&state, peer.map(|p| (p.0).0), &headers);
    match request {
        Ok(batch) => {
            let batch = batch.into_inner();
            let operations = batch.iter().count();
            if operations > state.config.limits.max_batch {
                return super::limits::refusal(
                    StatusCode::BAD_REQUEST,
                    "GRAPHQL_VALIDATION_FAILED",
                    &format!(
                        "a batch may hold at most {} operations; this one holds {operations}",
                        state.config.limits.max_batch
                    ),
                );
            }
            execute(&state, id, ip, &headers, batch).await
        }
        Err(rejection) => bad_request(rejection),
    }
}

/// Serves GraphiQL to browsers, and executes a GraphQL request sent in the URL otherwise.
pub async fn get(State(state): State<AppState>, request: Request) -> Response {
    let headers = request.headers().clone();
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let ip = client_ip(&state, peer, &headers);
    if state.config.exposure.graphiql && wants_html(&headers) {
        let page = GraphiQLSource::build()
            .endpoint("/graphql")
            .title("quire GraphiQL")
            .finish();
        return (
            [(header::CONTENT_SECURITY_POLICY, GRAPHIQL_CSP)],
            Html(page),
        )
            .into_response();
    }
    let id = request
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    match GraphQLRequest::<GraphQLRejection>::from_request(request, &state).await {
        Ok(request) => {
            let request = request.into_inner();
            if is_mutation(&request) {
                return mutation_over_get();
            }
            execute(&state, id, ip, &headers, BatchRequest::Single(request)).await
        }
        Err(rejection) => bad_request(rejection),
    }
}

/// A request that is not a GraphQL request at all (malformed JSON, no query): 400, with
/// the reason as a GraphQL error so that clients can show it like any other.
fn bad_request(rejection: GraphQLRejection) -> Response {
    let message = match rejection.0 {
        ParseRequestError::InvalidRequest(e) => format!("the request body is not valid: {e}"),
        other => format!("the request is not a GraphQL request: {other}"),
    };
    let body = serde_json::json!({
        "errors": [{ "message": message, "extensions": { "code": "BAD_REQUEST" } }]
    });
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

async fn execute(
    state: &AppState,
    request_id: String,
    ip: Option<IpAddr>,
    headers: &HeaderMap,
    mut batch: BatchRequest,
) -> Response {
    // An unreadable header still counts as sent, so that it is refused, not ignored.
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or(""));
    let client = ClientInfo {
        ip,
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    let api_key = headers.get("x-api-key").map(|v| v.to_str().unwrap_or(""));
    let session = BrowserSession {
        enabled: state.config.refresh_cookie,
        token: super::cookies::read(headers),
    };
    // One loader and one credential budget for the whole HTTP request, batch or not.
    let (loader, batches) = loaders::for_request(state.db.clone());
    let loader = Arc::new(loader);
    let budget = CredentialBudget::default();
    // One caller too: its identity is loaded once, however many operations ask.
    let caller = Arc::new(Caller::from_headers(authorization, api_key));
    for request in batch.iter_mut() {
        request.data.insert(caller.clone());
        request.data.insert(client.clone());
        request.data.insert(loader.clone());
        request.data.insert(budget.clone());
        request.data.insert(session.clone());
    }
    let execution = loaders::drive(batches, state.schema.execute_batch(batch));
    let response = REQUEST_ID.scope(request_id, execution).await;
    let retry_after = match &response {
        BatchResponse::Single(r) => refused_as_a_whole(r),
        BatchResponse::Batch(all) => all
            .iter()
            .map(refused_as_a_whole)
            .try_fold(0u64, |longest, r| r.map(|s| longest.max(s))),
    };
    let mut http = GraphQLResponse::from(response).into_response();
    if let Some(seconds) = retry_after {
        *http.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            http.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    http
}

/// When every error of a response without data is RATE_LIMITED, the request was refused
/// as a whole: the longest wait it names, for `Retry-After`.
fn refused_as_a_whole(response: &async_graphql::Response) -> Option<u64> {
    if response.errors.is_empty() || !matches!(response.data, async_graphql::Value::Null) {
        return None;
    }
    response.errors.iter().try_fold(0u64, |longest, e| {
        let ext = e.extensions.as_ref()?;
        match (ext.get("code"), ext.get("retryAfter")) {
            (Some(async_graphql::Value::String(code)), Some(async_graphql::Value::Number(n)))
                if code == "RATE_LIMITED" =>
            {
                Some(longest.max(n.as_u64().unwrap_or(0)))
            }
            _ => None,
        }
    })
}

/// The client's address: the socket peer, unless that is a trusted proxy, in which case
/// the right-most address in `X-Forwarded-For` that is not itself a trusted proxy. A hop
/// that cannot be read ends the walk at the last trusted address, so that nothing written
/// to its left by the client counts.
fn client_ip(state: &AppState, peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<IpAddr> {
    let trusted = |ip: &IpAddr| state.config.trusted_proxies.contains(&ip.to_canonical());
    let mut client = peer?.ip().to_canonical();
    if !trusted(&client) {
        return Some(client);
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().unwrap_or(""))
        .flat_map(|v| v.split(','))
        .collect();
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop.trim()) else {
            break;
        };
        client = ip;
        if !trusted(&ip) {
            break;
        }
    }
    Some(client)
}

/// An address as proxies write it in `X-Forwarded-For`: `ip`, `ip:port` or `[ip]:port`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

/// Whether the operation a request selects is a mutation. A request that does not parse
/// is left to the executor, which reports the syntax error.
fn is_mutation(request: &async_graphql::Request) -> bool {
    let Ok(document) = async_graphql::parser::parse_query(&request.query) else {
        return false;
    };
    let ty = match (&document.operations, request.operation_name.as_deref()) {
        (DocumentOperations::Single(op), _) => Some(op.node.ty),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name).map(|op| op.node.ty),
        (DocumentOperations::Multiple(ops), None) => ops
            .values()
            .next()
            .filter(|_| ops.len() == 1)
            .map(|op| op.node.ty),
    };
    ty == Some(OperationType::Mutation)
}

/// A GET must not change anything: links, prefetchers and caches issue GETs freely.
fn mutation_over_get() -> Response {
    let body = serde_json::json!({
        "errors": [{
            "message": "mutations must be sent with POST",
            "extensions": { "code": "METHOD_NOT_ALLOWED" }
        }]
    });
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, "POST")],
        axum::Json(body),
    )
        .into_response()
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}
