//! `POST /graphql` and `GET /graphql`: GraphQL over HTTP as the GraphQL-over-HTTP
//! specification describes it, and GraphiQL for browsers.
//!
//! quire reads and answers requests itself rather than through async-graphql's axum
//! integration, so that each document is parsed once, a whole request (a batch included)
//! shares one caller, one loader and one kept connection, and statuses and media types
//! follow the specification (see docs/graphql-over-http.md).
//!
//! Each request is read ([`super::wire`]), its document found (sent in full, or by hash:
//! [`crate::graphql::persisted`]) and parsed once here, and checked for what HTTP allows
//! (no mutation over GET, no subscription over HTTP) before the executor sees it.

use std::sync::Arc;

use async_graphql::parser::types::OperationType;
use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::Response,
};

use super::{
    AppState,
    request_id::RequestId,
    wire::{self, Format, Outcome, Refusal},
};
use crate::{
    auth::{Caller, ClientInfo, cookie::BrowserSession},
    db,
    error::{Code, REQUEST_ID, RetryAfter},
    graphql::{
        context::CredentialBudget,
        error_codes::Unrunnable,
        loaders,
        persisted::Failure,
        runner::{Ran, Ready},
    },
};

/// Executes the GraphQL request, or batch of requests, in a POST body.
pub async fn post(
    State(state): State<AppState>,
    axum::Extension(RequestId(id)): axum::Extension<RequestId>,
    client: ClientInfo,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(format) = Format::negotiate(&headers) else {
        return wire::not_acceptable();
    };
    let (requests, batch) = match wire::from_body(&body, state.config.limits.max_batch) {
        Ok(read) => read,
        Err(refused) => return refused.into_response(format),
    };
    let transport = Transport {
        format,
        over_get: false,
        batch,
    };
    run(&state, id, client, &headers, transport, requests).await
}

/// Serves GraphiQL to browsers, and executes a query sent in the URL otherwise. (The
/// router sends WebSocket upgrades of the same URL to [`super::ws`].)
pub async fn get(state: AppState, parts: Parts) -> Response {
    let client = super::client::info(&state, &parts);
    let headers = parts.headers;
    if state.config.exposure.graphiql && wire::wants_html(&headers) {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        return super::graphiql::page(&state.config.server.graphiql_assets, host);
    }
    let Ok(format) = Format::negotiate(&headers) else {
        return wire::not_acceptable();
    };
    let request = match wire::from_url(parts.uri.query()) {
        Ok(request) => request,
        Err(refused) => return refused.into_response(format),
    };
    let id = parts
        .extensions
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let transport = Transport {
        format,
        over_get: true,
        batch: false,
    };
    run(&state, id, client, &headers, transport, vec![request]).await
}

/// How a request arrived.
#[derive(Clone, Copy)]
struct Transport {
    format: Format,
    over_get: bool,
    batch: bool,
}

/// Finds, parses and checks one request's document: no subscription over HTTP, and no
/// mutation over GET.
fn prepare(
    state: &AppState,
    request: async_graphql::Request,
    over_get: bool,
) -> Result<Ready, Unrunnable> {
    let ready = state.runner.prepare(request)?;
    match ready.ty {
        OperationType::Subscription => Err(Unrunnable::new(
            Code::BadRequest,
            "subscriptions are served over WebSocket on /graphql \
             (graphql-transport-ws or graphql-ws)",
        )),
        OperationType::Mutation if over_get => Err(Unrunnable::new(
            Code::MethodNotAllowed,
            "mutations must be sent with POST",
        )),
        _ => Ok(ready),
    }
}

async fn run(
    state: &AppState,
    request_id: String,
    client: ClientInfo,
    headers: &HeaderMap,
    transport: Transport,
    requests: Vec<async_graphql::Request>,
) -> Response {
    // An unreadable header still counts as sent, so that it is refused, not ignored.
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or(""));
    let api_key = headers.get("x-api-key").map(|v| v.to_str().unwrap_or(""));
    let session = BrowserSession {
        enabled: state.config.auth.refresh_cookie,
        token: super::cookies::read(headers),
    };
    // One loader and one credential budget for the whole HTTP request, batch or not.
    let (loader, batches) = loaders::for_request(state.db.clone());
    let loader = Arc::new(loader);
    let budget = CredentialBudget::default();
    // One caller too: its identity is loaded once, however many operations ask.
    let caller = Arc::new(Caller::from_headers(authorization, api_key));

    let mut early: Vec<Option<Unrunnable>> = Vec::with_capacity(requests.len());
    let mut ready = Vec::new();
    for request in requests {
        match prepare(state, request, transport.over_get) {
            Ok(mut operation) => {
                let data = &mut operation.request.data;
                data.insert(caller.clone());
                data.insert(client.clone());
                data.insert(loader.clone());
                data.insert(budget.clone());
                data.insert(session.clone());
                ready.push(operation);
                early.push(None);
            }
            Err(failure) => early.push(Some(failure)),
        }
    }
    // A request that only reads runs all its statements on one connection.
    let reads_only = ready.iter().all(|r| r.ty == OperationType::Query);
    let execution = futures::future::join_all(
        ready
            .into_iter()
            .map(|operation| state.runner.execute(operation)),
    );
    let execution = loaders::drive(batches, execution);
    let ran = if reads_only {
        REQUEST_ID
            .scope(request_id, db::kept::keeping(execution))
            .await
    } else {
        REQUEST_ID.scope(request_id, execution).await
    };
    let mut ran = ran.into_iter();

    let mut fixed_status = None;
    let mut outcomes = Vec::with_capacity(early.len());
    for failure in early {
        outcomes.push(match failure {
            Some(unrunnable) => {
                fixed_status = fixed_status.or(status_of(&unrunnable));
                Outcome {
                    response: async_graphql::Response::from_errors(vec![*unrunnable.error]),
                    executed: false,
                }
            }
            None => {
                let Ran { response, executed } = ran.next().expect("one response per request");
                Outcome { response, executed }
            }
        });
    }
    respond(transport, fixed_status, outcomes)
}

/// Writes the outcomes with the status the transport calls for.
fn respond(transport: Transport, fixed: Option<StatusCode>, outcomes: Vec<Outcome>) -> Response {
    let retry_after = outcomes
        .iter()
        .map(|o| refused_as_a_whole(&o.response))
        .try_fold(0u64, |longest, r| r.map(|s| longest.max(s)));
    let status = match (retry_after, transport.batch, fixed) {
        (Some(_), _, _) => StatusCode::TOO_MANY_REQUESTS,
        (None, true, _) => StatusCode::OK,
        // A step of the persisted-query protocol is 200 in JSON; graphql-response+json
        // allows no success without data.
        (None, false, Some(StatusCode::OK)) if transport.format == Format::GraphQLResponse => {
            StatusCode::NOT_FOUND
        }
        (None, false, Some(status)) => status,
        (None, false, None) if outcomes.iter().all(|o| o.executed) => StatusCode::OK,
        (None, false, None) => match transport.format {
            Format::GraphQLResponse => StatusCode::BAD_REQUEST,
            Format::Json => StatusCode::OK,
        },
    };
    let body = if transport.batch {
        serde_json::to_string(&outcomes)
    } else {
        serde_json::to_string(&outcomes[0])
    };
    let Ok(body) = body else {
        return Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Code::InternalServerError,
            "the response could not be written",
        )
        .into_response(transport.format);
    };
    let mut http = wire::json(status, transport.format, body);
    let headers = http.headers_mut();
    if status == StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
    }
    if let Some(seconds) = retry_after
        && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
    {
        headers.insert(header::RETRY_AFTER, value);
    }
    for outcome in &outcomes {
        headers.extend(outcome.response.http_headers.clone());
    }
    http
}

/// When every error of a response without data is a rate limit's, the request was
/// refused as a whole: the longest wait it names, for `Retry-After`.
fn refused_as_a_whole(response: &async_graphql::Response) -> Option<u64> {
    if response.errors.is_empty() || !matches!(response.data, async_graphql::Value::Null) {
        return None;
    }
    response.errors.iter().try_fold(0u64, |longest, e| {
        e.source::<RetryAfter>()
            .map(|RetryAfter(wait)| longest.max(*wait))
    })
}

/// The status a request that cannot run calls for whatever the media type, if any: a
/// persisted-query miss is a normal step of that protocol (200, so that clients keep
/// using it); a persisted query that cannot be right is 400; an operation outside the
/// trusted documents is 404 by hash and 403 in full; a mutation over GET is 405.
fn status_of(unrunnable: &Unrunnable) -> Option<StatusCode> {
    match (&unrunnable.persisted, unrunnable.code) {
        (Some(Failure::NotFound | Failure::NotSupported), _) => Some(StatusCode::OK),
        (Some(Failure::HashMismatch | Failure::Malformed(_)), _) => Some(StatusCode::BAD_REQUEST),
        (Some(Failure::NotInList { by_hash: true }), _) => Some(StatusCode::NOT_FOUND),
        (Some(Failure::NotInList { by_hash: false }), _) => Some(StatusCode::FORBIDDEN),
        (None, Code::MethodNotAllowed) => Some(StatusCode::METHOD_NOT_ALLOWED),
        (None, _) => None,
    }
}
