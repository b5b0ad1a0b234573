//! `POST /graphql` and `GET /graphql`: GraphQL over HTTP as the GraphQL-over-HTTP
//! specification describes it, GraphiQL for browsers, and the WebSocket upgrade for
//! subscriptions.
//!
//! Each request is read ([`super::wire`]), its document found (sent in full, or by hash:
//! [`crate::graphql::documents`]) and parsed once here, and checked for what HTTP allows
//! (no mutation over GET, no subscription over HTTP) before the executor sees it.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use async_graphql::parser::types::OperationType;
use axum::{
    body::Bytes,
    extract::{ConnectInfo, FromRequestParts, Request, State, ws::WebSocketUpgrade},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use super::{
    AppState,
    cookies::BrowserSession,
    request_id::RequestId,
    wire::{self, Format, Outcome, Refused},
};
use crate::{
    auth::{Caller, ClientInfo},
    db,
    error::REQUEST_ID,
    graphql::{
        context::CredentialBudget,
        documents::Unrunnable,
        loaders,
        runner::{Ran, Ready},
    },
};

/// Executes the GraphQL request, or batch of requests, in a POST body.
pub async fn post(
    State(state): State<AppState>,
    axum::Extension(RequestId(id)): axum::Extension<RequestId>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
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
    let ip = client_ip(&state, peer.map(|p| (p.0).0), &headers);
    let transport = Transport {
        format,
        over_get: false,
        batch,
    };
    run(&state, id, ip, &headers, transport, requests).await
}

/// Upgrades to a WebSocket for subscriptions; serves GraphiQL to browsers; and executes
/// a query sent in the URL otherwise.
pub async fn get(State(state): State<AppState>, request: Request) -> Response {
    let (mut parts, _) = request.into_parts();
    if super::subscriptions::is_upgrade(&parts.headers) {
        return match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
            Ok(upgrade) => super::subscriptions::upgrade(state, upgrade, &parts).await,
            Err(rejection) => rejection.into_response(),
        };
    }
    let headers = parts.headers;
    if state.config.exposure.graphiql && wire::wants_html(&headers) {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        return super::graphiql::page(&state.config.graphiql_assets, host);
    }
    let Ok(format) = Format::negotiate(&headers) else {
        return wire::not_acceptable();
    };
    let request = match wire::from_url(parts.uri.query()) {
        Ok(request) => request,
        Err(refused) => return refused.into_response(format),
    };
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let ip = client_ip(&state, peer, &headers);
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
    run(&state, id, ip, &headers, transport, vec![request]).await
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
            "BAD_REQUEST",
            "subscriptions are served over WebSocket on /graphql \
             (graphql-transport-ws or graphql-ws)",
        )),
        OperationType::Mutation if over_get => Err(Unrunnable {
            status: Some(StatusCode::METHOD_NOT_ALLOWED.as_u16()),
            ..Unrunnable::new("METHOD_NOT_ALLOWED", "mutations must be sent with POST")
        }),
        _ => Ok(ready),
    }
}

async fn run(
    state: &AppState,
    request_id: String,
    ip: Option<IpAddr>,
    headers: &HeaderMap,
    transport: Transport,
    requests: Vec<async_graphql::Request>,
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
            Some(Unrunnable { error, status }) => {
                fixed_status = fixed_status.or(status.and_then(|s| StatusCode::from_u16(s).ok()));
                Outcome {
                    response: async_graphql::Response::from_errors(vec![*error]),
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
        return Refused {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "INTERNAL_SERVER_ERROR",
            message: "the response could not be written".to_owned(),
        }
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
pub(super) fn client_ip(
    state: &AppState,
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
) -> Option<IpAddr> {
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
