//! One connection's loop: the protocol's messages both ways, the `connection_init`
//! deadline, pings, and the rechecks that close the socket when its session ends.

use std::sync::{Arc, Mutex};

use async_graphql::http::{WebSocket as Protocol, WebSocketProtocols, WsMessage};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::{
    SinkExt, Stream, StreamExt, future,
    stream::{SplitSink, SplitStream},
};
use uuid::Uuid;

use super::{
    AppState, INIT_TIMEOUT, KEEPALIVE, RECHECK, SEND_TIMEOUT,
    executor::SubscriptionExecutor,
    init::{self, Credentials, Init, close_code, ended, refusal},
    protocol::Ids,
};
use crate::{
    auth::{Caller, ClientInfo},
    events::{Event, Topic},
    http::sockets::{Full, Place},
};

/// Serves one upgraded connection until it closes.
pub(super) async fn serve(
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
    let input = incoming(source, heard.clone(), ids.clone(), protocol);
    let init = Arc::new(Mutex::new(Init::Pending));
    let on_init = {
        let (auth, init, sockets) = (auth.clone(), init.clone(), state.sockets.clone());
        move |payload| init::accept(auth, sockets, init, fallback, client, payload)
    };
    let executor = SubscriptionExecutor {
        state: state.clone(),
        active: Arc::default(),
    };
    let mut outgoing = Protocol::new(executor, input, protocol).on_connection_init(on_init);
    // The user's access changes, once the connection is accepted and its user known.
    let mut access = futures::stream::pending::<Event>().boxed();
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
                        access = auth.events.subscribe(Topic::Access(user_id));
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
                if let (Some((caller, _)), Event::AccessChanged { .. }) = (&accepted, &event)
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
    if let Some((code, reason)) = close {
        send(&mut sink, close_frame(code, reason)).await;
    }
    let _ = tokio::time::timeout(SEND_TIMEOUT, sink.close()).await;
}

/// The client's messages as the protocol implementation takes them: text and binary
/// frames up to the first close, noting when the client was last heard from, and ending
/// at a message that ends the connection (a second subscription under a running one's
/// id, 4409, or an id too long, 4400: see [`Ids::incoming`]).
fn incoming(
    source: SplitStream<WebSocket>,
    heard: Arc<Mutex<tokio::time::Instant>>,
    ids: Arc<Mutex<Ids>>,
    protocol: WebSocketProtocols,
) -> impl Stream<Item = axum::body::Bytes> + Send + 'static {
    source
        .inspect(move |_| {
            *heard.lock().unwrap_or_else(|e| e.into_inner()) = tokio::time::Instant::now();
        })
        .take_while(|m| future::ready(matches!(m, Ok(m) if !matches!(m, Message::Close(_)))))
        .filter_map(|m| {
            future::ready(match m {
                Ok(Message::Text(text)) => Some(axum::body::Bytes::from(text)),
                Ok(Message::Binary(bytes)) => Some(bytes),
                _ => None,
            })
        })
        .take_while(move |bytes| {
            let mut ids = ids.lock().unwrap_or_else(|e| e.into_inner());
            future::ready(ids.incoming(protocol, bytes))
        })
}

/// A close frame, its reason cut to the 123 bytes a frame may hold.
fn close_frame(code: u16, mut reason: String) -> Message {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason.truncate(end);
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// Sends `message`, unless the client has not taken it within [`SEND_TIMEOUT`] or is
/// gone: false then, and the connection is to end.
async fn send(sink: &mut SplitSink<WebSocket, Message>, message: Message) -> bool {
    match tokio::time::timeout(SEND_TIMEOUT, sink.send(message)).await {
        Ok(sent) => sent.is_ok(),
        Err(_) => {
            tracing::info!("a WebSocket client stopped taking messages; dropping it");
            false
        }
    }
}

/// Whether the connection's credential still holds; a database error counts as yes,
/// so that an outage does not drop every subscriber at once.
async fn still_valid(auth: &crate::auth::Auth, caller: &Caller) -> bool {
    caller.still_valid(auth).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "could not check a WebSocket connection's credential");
        true
    })
}
