//! Subscriptions over WebSocket on `/graphql` (and `/graphql/ws`), in the
//! `graphql-transport-ws` protocol or the older `graphql-ws` one.
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

mod executor;
mod ids;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use async_graphql::{
    Data,
    http::{WebSocket as Protocol, WebSocketProtocols, WsMessage},
};
use axum::{
    extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
    http::{HeaderMap, StatusCode, header, request::Parts},
    response::{IntoResponse, Response as HttpResponse},
};
use futures::{SinkExt, StreamExt, future};
use tracing::Instrument;
use uuid::Uuid;

use self::{executor::SubscriptionExecutor, ids::Ids};
use super::{
    AppState,
    sockets::{Full, Place, SignedIn},
    wire::{Format, Refused},
};
use crate::{
    auth::{Caller, ClientInfo, Credential},
    error::AppError,
    events::Event,
    graphql::fanout::Viewer,
};

/// How long a client may take to send `connection_init`.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the socket is pinged (and, in the older protocol, sent its keep-alive), so
/// that proxies keep it open and clients know the server is there; a peer that has sent
/// nothing, not even a pong, for four of these is taken for gone.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// The longest message a client may send: a subscription's document and variables, or
/// the credentials of `connection_init`. Every subscription keeps its own for as long as
/// it runs.
const MAX_MESSAGE: usize = 64 * 1024;
/// How often a socket's credential is checked again without being told to.
const RECHECK: Duration = Duration::from_secs(60);
/// How long a message may wait for the client to take it before the client is taken
/// for gone: a client that stops reading would otherwise hold the connection, with its
/// checks stalled behind the send.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

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
        return Refused {
            status: StatusCode::BAD_REQUEST,
            code: "BAD_REQUEST",
            message: "ask for the graphql-transport-ws (or graphql-ws) WebSocket subprotocol"
                .to_owned(),
        }
        .into_response(Format::Json);
    };
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    let client = ClientInfo {
        ip: super::graphql::client_ip(&state, peer, &parts.headers),
        user_agent: parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    let fallback = Credentials {
        authorization: text_header(&parts.headers, header::AUTHORIZATION.as_str()),
        api_key: text_header(&parts.headers, "x-api-key"),
    };
    let place = match state.sockets.arrive(client.ip) {
        Ok(place) => place,
        Err(full) => {
            let (status, code) = match full {
                Full::Address => (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED"),
                _ => (StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE"),
            };
            let mut response = Refused {
                status,
                code,
                message: full.reason().to_owned(),
            }
            .into_response(Format::Json);
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
            serve(state, socket, protocol, fallback, client, place).instrument(span)
        })
        .into_response()
}

fn text_header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| v.to_str().unwrap_or("").to_owned())
}

/// The credentials offered for a connection.
#[derive(Clone, Default)]
struct Credentials {
    authorization: Option<String>,
    api_key: Option<String>,
}

impl Credentials {
    /// From `connection_init`'s payload: `Authorization` and `X-API-Key`, in any case, at
    /// its top level or under `headers`.
    fn from_payload(payload: &serde_json::Value) -> Self {
        let find = |name: &str| {
            let lookup = |object: &serde_json::Value| {
                object.as_object().and_then(|fields| {
                    fields
                        .iter()
                        .find(|(key, _)| key.eq_ignore_ascii_case(name))
                        .map(|(_, value)| value.as_str().unwrap_or("").to_owned())
                })
            };
            lookup(payload).or_else(|| payload.get("headers").and_then(lookup))
        };
        Self {
            authorization: find("authorization"),
            api_key: find("x-api-key"),
        }
    }

    fn is_empty(&self) -> bool {
        self.authorization.is_none() && self.api_key.is_none()
    }

    fn caller(&self) -> Caller {
        Caller::from_headers(self.authorization.as_deref(), self.api_key.as_deref())
    }
}

/// How `connection_init` went.
enum Init {
    Pending,
    Accepted {
        caller: Arc<Caller>,
        user_id: Uuid,
        places: SignedIn,
    },
    /// Accepted, and seen so by the connection's loop, which took its places.
    Serving,
    Refused {
        code: u16,
        reason: &'static str,
    },
}

/// Marks the connection-init error that [`serve`] turns into a close code of its own.
const REFUSED: &str = "connection refused";

async fn serve(
    state: AppState,
    socket: WebSocket,
    protocol: WebSocketProtocols,
    fallback: Credentials,
    client: ClientInfo,
    mut place: Place,
) {
    let auth = state.auth.clone();
    let (mut sink, source) = socket.split();
    let heard = Arc::new(Mutex::new(tokio::time::Instant::now()));
    let ids = Arc::new(Mutex::new(Ids::default()));
    let input = source
        .inspect({
            let heard = heard.clone();
            move |_| *heard.lock().unwrap_or_else(|e| e.into_inner()) = tokio::time::Instant::now()
        })
        .take_while(|m| future::ready(matches!(m, Ok(m) if !matches!(m, Message::Close(_)))))
        .filter_map(|m| {
            future::ready(match m {
                Ok(Message::Text(text)) => Some(axum::body::Bytes::from(text)),
                Ok(Message::Binary(bytes)) => Some(bytes),
                _ => None,
            })
        })
        // A second subscription under a running one's id ends the connection (4409).
        .take_while({
            let ids = ids.clone();
            move |bytes| {
                let mut ids = ids.lock().unwrap_or_else(|e| e.into_inner());
                future::ready(ids.incoming(protocol, bytes))
            }
        });
    let init = Arc::new(Mutex::new(Init::Pending));
    let on_init = {
        let (auth, init, sockets) = (auth.clone(), init.clone(), state.sockets.clone());
        move |payload: serde_json::Value| async move {
            let offered = Credentials::from_payload(&payload);
            let credentials = if offered.is_empty() {
                fallback
            } else {
                offered
            };
            let caller = Arc::new(credentials.caller());
            let mut viewer = None;
            let outcome = match caller.identity(&auth).await {
                Ok(who) => match who.credential {
                    Credential::ApiKey { scopes, .. } if !scopes.can_read() => Init::Refused {
                        code: 4403,
                        reason: "Forbidden: this API key lacks the READ scope",
                    },
                    _ => match sockets.sign_in(who.user.id) {
                        Ok(places) => {
                            viewer = Some(Viewer {
                                user_id: who.user.id,
                                admin: who.acts_as_admin(),
                            });
                            Init::Accepted {
                                user_id: who.user.id,
                                caller: caller.clone(),
                                places,
                            }
                        }
                        // 1013: try again later.
                        Err(full) => Init::Refused {
                            code: 1013,
                            reason: full.reason(),
                        },
                    },
                },
                Err(AppError::Unauthenticated(_)) => Init::Refused {
                    code: 4401,
                    reason: "Unauthorized",
                },
                Err(e) => {
                    tracing::error!(error = %e, "could not authenticate a WebSocket connection");
                    Init::Refused {
                        code: 1011,
                        reason: "Internal server error",
                    }
                }
            };
            *init.lock().unwrap_or_else(|e| e.into_inner()) = outcome;
            let Some(viewer) = viewer else {
                return Err(async_graphql::Error::new(REFUSED));
            };
            let mut data = Data::default();
            data.insert(caller);
            data.insert(client);
            data.insert(viewer);
            Ok(data)
        }
    };
    let executor = SubscriptionExecutor {
        state: state.clone(),
        active: Arc::default(),
    };
    let mut outgoing = Protocol::new(executor, input, protocol).on_connection_init(on_init);
    let mut access = auth.events.subscribe();
    let mut recheck = tokio::time::interval_at(tokio::time::Instant::now() + RECHECK, RECHECK);
    let mut keepalive =
        tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    let init_deadline = tokio::time::sleep(INIT_TIMEOUT);
    tokio::pin!(init_deadline);
    let bumped = place.bumped();
    let mut accepted: Option<(Arc<Caller>, Uuid)> = None;
    let mut just_accepted = false;

    let close = loop {
        tokio::select! {
            message = outgoing.next() => {
                if accepted.is_none() {
                    let mut init = init.lock().unwrap_or_else(|e| e.into_inner());
                    if matches!(*init, Init::Accepted { .. })
                        && let Init::Accepted { caller, user_id, places } =
                            std::mem::replace(&mut *init, Init::Serving)
                    {
                        place.sign_in(places);
                        accepted = Some((caller, user_id));
                        just_accepted = true;
                        tracing::debug!(%user_id, "WebSocket connection accepted");
                    }
                }
                match message {
                    Some(WsMessage::Text(text)) => {
                        let outgoing = ids
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .outgoing(protocol, text);
                        let Some(text) = outgoing else {
                            continue;
                        };
                        if !send(&mut sink, Message::Text(text.into())).await {
                            break None;
                        }
                        // The older protocol's clients expect a keep-alive at once.
                        if std::mem::take(&mut just_accepted)
                            && protocol == WebSocketProtocols::SubscriptionsTransportWS
                            && !send(&mut sink, Message::Text(r#"{"type":"ka"}"#.into())).await
                        {
                            break None;
                        }
                    }
                    Some(WsMessage::Close(code, reason)) => {
                        break Some(close_code(protocol, &init, code, reason));
                    }
                    // Ended: the client left, or the legacy protocol refused the
                    // connection after saying why.
                    None => {
                        let ended = ids.lock().unwrap_or_else(|e| e.into_inner()).ended.take();
                        break refusal(&init).or(ended);
                    }
                }
            }
            Some(event) = access.next() => {
                if let (Some((caller, user_id)), Event::AccessChanged { user_id: changed }) =
                    (&accepted, &event)
                    && changed == user_id
                    && !still_valid(&auth, caller).await
                {
                    break Some(ended());
                }
            }
            _ = recheck.tick(), if accepted.is_some() => {
                if let Some((caller, _)) = &accepted
                    && !still_valid(&auth, caller).await
                {
                    break Some(ended());
                }
            }
            _ = keepalive.tick(), if accepted.is_some() => {
                let silent = heard.lock().unwrap_or_else(|e| e.into_inner()).elapsed();
                if silent > 4 * KEEPALIVE {
                    tracing::debug!(?silent, "WebSocket peer gone quiet; closing");
                    break Some((1001, "no answer to pings".to_owned()));
                }
                if !send(&mut sink, Message::Ping(Default::default())).await {
                    break None;
                }
                // The older protocol's clients time out without its own keep-alive.
                if protocol == WebSocketProtocols::SubscriptionsTransportWS
                    && !send(&mut sink, Message::Text(r#"{"type":"ka"}"#.into())).await
                {
                    break None;
                }
            }
            () = &mut init_deadline, if accepted.is_none() => {
                break Some((4408, "Connection initialisation timeout".to_owned()));
            }
            () = bumped.notified(), if accepted.is_none() => {
                break Some((1013, Full::Pending.reason().to_owned()));
            }
        }
    };
    if let Some((code, mut reason)) = close {
        // A close frame's reason may hold at most 123 bytes.
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        send(&mut sink, Message::Close(Some(frame))).await;
    }
    let _ = tokio::time::timeout(SEND_TIMEOUT, sink.close()).await;
}

/// Sends `message`, unless the client has not taken it within [`SEND_TIMEOUT`] or is
/// gone: false then, and the connection is to end.
async fn send(sink: &mut futures::stream::SplitSink<WebSocket, Message>, message: Message) -> bool {
    match tokio::time::timeout(SEND_TIMEOUT, sink.send(message)).await {
        Ok(sent) => sent.is_ok(),
        Err(_) => {
            tracing::info!("a WebSocket client stopped taking messages; dropping it");
            false
        }
    }
}

/// The close for a connection whose session or key has ended.
fn ended() -> (u16, String) {
    (4401, "Unauthorized: the session has ended".to_owned())
}

/// Whether the connection's credential still holds; a database error counts as yes,
/// so that an outage does not drop every subscriber at once.
async fn still_valid(auth: &crate::auth::Auth, caller: &Caller) -> bool {
    caller.still_valid(auth).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "could not check a WebSocket connection's credential");
        true
    })
}

/// The close code and reason for a refused `connection_init`, if it was refused.
fn refusal(init: &Mutex<Init>) -> Option<(u16, String)> {
    match &*init.lock().unwrap_or_else(|e| e.into_inner()) {
        Init::Refused { code, reason } => Some((*code, (*reason).to_owned())),
        _ => None,
    }
}

/// The protocol's close codes where the executor's differ from them.
fn close_code(
    protocol: WebSocketProtocols,
    init: &Mutex<Init>,
    code: u16,
    reason: String,
) -> (u16, String) {
    if let Some(refused) = refusal(init) {
        return refused;
    }
    match (protocol, code) {
        // A subscription before the connection was acknowledged.
        (_, 1011) => (4401, "Unauthorized".to_owned()),
        // A message that is not one of the protocol's.
        (WebSocketProtocols::GraphQLWS, 1002) => (4400, reason),
        _ => (code, reason),
    }
}
