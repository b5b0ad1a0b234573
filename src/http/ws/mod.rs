//! Subscriptions over WebSocket on `/graphql` (and `/graphql/ws`), in the
//! `graphql-transport-ws` protocol or the older `graphql-ws` one.
//!
//! This file takes the upgrade; [`connection`] runs the connection's loop, [`init`] judges
//! `connection_init` and picks close codes, [`executor`] starts subscriptions, and
//! [`protocol`] holds the fixes layered on async-graphql's protocol implementation.
//!
//! - The client proves who it is in `connection_init`'s payload (`{"Authorization":
//!   "Bearer …"}`, or an API key with the READ scope as a bearer token or `X-API-Key`);
//!   the upgrade request's own headers are the fallback. Without a valid credential the
//!   socket closes with 4401, with a key lacking READ 4403, and without any
//!   `connection_init` within 10 seconds 4408.
//! - The socket lives as long as the session or key it was opened with, not its access
//!   token: it closes with 4401 as soon as the session ends, the key is revoked or the
//!   account is deactivated (announced on the event bus, and checked every minute in
//!   case an announcement came from elsewhere).
//! - Only subscriptions run here; queries and mutations go over HTTP, where each
//!   request is authenticated afresh.
//! - The server pings every 15 seconds and drops a peer silent for a minute, and one
//!   that has not taken a message within 10 seconds of its sending: a client that stops
//!   reading cannot hold the socket, nor stop its checks from running.
//! - Connections take places as [`super::sockets`] describes: at most
//!   `QUIRE_MAX_WEBSOCKETS_PER_ADDRESS` per client address (429 beyond),
//!   `QUIRE_MAX_PENDING_WEBSOCKETS` waiting for `connection_init` (503 beyond), and once
//!   signed in `QUIRE_MAX_WEBSOCKETS` in all and `QUIRE_MAX_WEBSOCKETS_PER_USER` per
//!   account (closed with 1013, try again later, beyond). Each runs at most 100
//!   subscriptions, and an account at most `QUIRE_MAX_SUBSCRIPTIONS_PER_USER`.
//! - Subscriptions run with their own complexity limit,
//!   `QUIRE_MAX_SUBSCRIPTION_COMPLEXITY`, and those with the same document, variables
//!   and viewer share one execution ([`crate::graphql::fanout`]).

mod connection;
mod executor;
mod init;
mod protocol;

use std::time::Duration;

use async_graphql::http::WebSocketProtocols;
use axum::{
    extract::ws::WebSocketUpgrade,
    http::{HeaderMap, StatusCode, header, request::Parts},
    response::{IntoResponse, Response as HttpResponse},
};
use tracing::Instrument;

use self::init::Credentials;
use super::{
    AppState, client,
    sockets::Full,
    wire::{Format, Refusal},
};
use crate::error::Code;

/// How long a client may take to send `connection_init`.
pub(super) const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the socket is pinged (and, in the older protocol, sent its keep-alive), so
/// that proxies keep it open and clients know the server is there; a peer that has sent
/// nothing, not even a pong, for four of these is taken for gone.
pub(super) const KEEPALIVE: Duration = Duration::from_secs(15);
/// The longest message a client may send: a subscription's document and variables, or
/// the credentials of `connection_init`. Every subscription keeps its own for as long as
/// it runs.
const MAX_MESSAGE: usize = 64 * 1024;
/// How often a socket's credential is checked again without being told to.
pub(super) const RECHECK: Duration = Duration::from_secs(60);
/// How long a message may wait for the client to take it before the client is taken
/// for gone: a client that stops reading would otherwise hold the connection, with its
/// checks stalled behind the send.
pub(super) const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether a GET asks to become a WebSocket.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// `GET /graphql/ws`: the WebSocket endpoint alone.
pub async fn endpoint(
    axum::extract::State(state): axum::extract::State<AppState>,
    upgrade: WebSocketUpgrade,
    request: axum::extract::Request,
) -> HttpResponse {
    let (parts, _) = request.into_parts();
    self::upgrade(state, upgrade, &parts).await
}

/// Accepts the upgrade in the protocol the client prefers among those served.
pub async fn upgrade(state: AppState, upgrade: WebSocketUpgrade, parts: &Parts) -> HttpResponse {
    let offered: Vec<String> = parts
        .headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_ascii_lowercase())
        .collect();
    let protocol = if offered.iter().any(|p| p == "graphql-transport-ws") {
        WebSocketProtocols::GraphQLWS
    } else if offered.iter().any(|p| p == "graphql-ws") {
        WebSocketProtocols::SubscriptionsTransportWS
    } else {
        return Refusal::bad_request(
            "ask for the graphql-transport-ws (or graphql-ws) WebSocket subprotocol",
        )
        .into_response(Format::Json);
    };
    let client = client::info(&state, parts);
    let fallback = Credentials {
        authorization: text_header(&parts.headers, header::AUTHORIZATION.as_str()),
        api_key: text_header(&parts.headers, "x-api-key"),
    };
    let place = match state.sockets.arrive(client.ip) {
        Ok(place) => place,
        Err(full) => {
            let (status, code) = match full {
                Full::Address => (StatusCode::TOO_MANY_REQUESTS, Code::RateLimited),
                _ => (StatusCode::SERVICE_UNAVAILABLE, Code::ServiceUnavailable),
            };
            let mut response =
                Refusal::new(status, code, full.reason()).into_response(Format::Json);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("10"));
            return response;
        }
    };
    // The connection's log lines and statements belong to the request that opened it.
    let span = tracing::Span::current();
    upgrade
        .protocols([protocol.sec_websocket_protocol()])
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| {
            connection::serve(state, socket, protocol, fallback, client, place).instrument(span)
        })
        .into_response()
}

fn text_header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| v.to_str().unwrap_or("").to_owned())
}
