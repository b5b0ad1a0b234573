//! Subscriptions over WebSocket: both protocols on both paths, who may connect, sockets
//! that close when the session or key they rely on ends, and which new posts and vote
//! counts reach whom.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::{net::TcpStream, time::Instant};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{
        self, Message,
        client::IntoClientRequest,
        http::{HeaderName, HeaderValue, Request, header::SEC_WEBSOCKET_PROTOCOL},
    },
};

use crate::helpers::{Remote, TestApp, TestDb};

crate::on_both_databases!(
    subscriptions_work_in_either_protocol_on_either_path,
    the_upgrade_must_ask_for_a_graphql_subprotocol,
    connection_init_decides_who_may_subscribe,
    the_legacy_protocol_says_why_before_closing,
    messages_out_of_turn_close_the_socket,
    a_connection_runs_at_most_a_hundred_subscriptions,
    a_connection_never_initialised_closes_after_ten_seconds,
    a_socket_closes_when_its_session_ends,
    a_socket_closes_when_its_key_is_revoked_or_its_owner_deactivated,
    a_demoted_administrators_sockets_close_at_once,
    new_posts_reach_subscribers_once_published,
    vote_counts_reach_subscribers_as_they_change,
    votes_on_a_draft_reach_its_author_alone,
    only_valid_subscriptions_run_over_the_socket,
);

/// How long any one step may take before the test fails.
pub(crate) const WAIT: Duration = Duration::from_secs(5);
/// The current protocol, of the `graphql-ws` library.
pub(crate) const TRANSPORT_WS: &str = "graphql-transport-ws";
/// The older protocol, of `subscriptions-transport-ws`.
const LEGACY_WS: &str = "graphql-ws";

pub(crate) const POST_CREATED: &str =
    "subscription { postCreated { id title published author { username } } }";
pub(crate) const POST_VOTED: &str =
    "subscription($id: ID!) { postVoted(id: $id) { id voteCount viewerHasVoted } }";

/// What the server sent next.
pub(crate) enum Incoming {
    /// A protocol message.
    Json(Value),
    /// The socket closed with this close code, or ended without a close frame (`None`).
    Closed(Option<u16>),
}

/// A WebSocket client speaking either GraphQL protocol.
pub(crate) struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The subprotocol the server chose.
    protocol: String,
    /// Everything received so far, for failure messages.
    log: Vec<String>,
}

/// An upgrade request for `path`, offering `protocol`, with extra headers.
pub(crate) fn upgrade_request(
    app: &Remote,
    path: &str,
    protocol: Option<&str>,
    headers: &[(&str, &str)],
) -> Request<()> {
    let url = format!("{}{path}", app.base.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request().expect("a WebSocket request");
    if let Some(protocol) = protocol {
        request.headers_mut().insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_str(protocol).expect("a header value"),
        );
    }
    for (name, value) in headers {
        request.headers_mut().insert(
            HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
            HeaderValue::from_str(value).expect("a header value"),
        );
    }
    request
}

/// The HTTP status of an upgrade the server refuses.
async fn refused_upgrade(app: &TestApp, path: &str, protocol: Option<&str>) -> u16 {
    let request = upgrade_request(app, path, protocol, &[]);
    match tokio::time::timeout(WAIT, connect_async(request))
        .await
        .expect("the handshake timed out")
    {
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("the upgrade on {path} offering {protocol:?} failed otherwise: {e}"),
        Ok(_) => panic!("the upgrade on {path} offering {protocol:?} was accepted"),
    }
}

pub(crate) fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn is_keepalive(message: &Value) -> bool {
    matches!(message["type"].as_str(), Some("ping" | "pong" | "ka"))
}

impl Ws {
    /// Opens a socket on `path` offering `protocol` (one or several, comma-separated).
    pub(crate) async fn open(
        app: &Remote,
        path: &str,
        protocol: &str,
        headers: &[(&str, &str)],
    ) -> Self {
        let request = upgrade_request(app, path, Some(protocol), headers);
        let (stream, response) = tokio::time::timeout(WAIT, connect_async(request))
            .await
            .expect("the handshake timed out")
            .unwrap_or_else(|e| panic!("the upgrade to {protocol} on {path} failed: {e}"));
        let chosen = response
            .headers()
            .get(SEC_WEBSOCKET_PROTOCOL)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Self {
            stream,
            protocol: chosen,
            log: Vec::new(),
        }
    }

    /// Opens a `graphql-transport-ws` socket on `/graphql` from the loopback address
    /// `from`, with a receive buffer of `receive_buffer` bytes when given, and `headers`;
    /// the handshake's error when the server refuses it.
    pub(crate) async fn open_from(
        app: &Remote,
        from: [u8; 4],
        receive_buffer: Option<u32>,
        headers: &[(&str, &str)],
    ) -> Result<Self, tungstenite::Error> {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(std::net::SocketAddr::from((from, 0)))
            .expect("a loopback address to connect from");
        if let Some(size) = receive_buffer {
            socket.set_recv_buffer_size(size).unwrap();
        }
        let address = app.base.trim_start_matches("http://").parse().unwrap();
        let tcp = socket.connect(address).await.expect("the server accepts");
        let request = upgrade_request(app, "/graphql", Some(TRANSPORT_WS), headers);
        let (stream, _) = tokio::time::timeout(
            WAIT,
            tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(tcp)),
        )
        .await
        .expect("the handshake timed out")?;
        Ok(Self {
            stream,
            protocol: TRANSPORT_WS.to_owned(),
            log: Vec::new(),
        })
    }

    pub(crate) async fn connect(app: &Remote, path: &str, protocol: &str) -> Self {
        Self::open(app, path, protocol, &[]).await
    }

    /// A socket whose `connection_init` with `payload` was acknowledged.
    pub(crate) async fn ready(app: &Remote, path: &str, protocol: &str, payload: Value) -> Self {
        let mut ws = Self::connect(app, path, protocol).await;
        ws.init(payload).await;
        ws.ack().await;
        ws
    }

    /// A `graphql-transport-ws` socket on `/graphql`, acknowledged for an access token.
    pub(crate) async fn signed_in(app: &Remote, access: &str) -> Self {
        let payload = json!({ "Authorization": bearer(access) });
        Self::ready(app, "/graphql", TRANSPORT_WS, payload).await
    }

    pub(crate) fn legacy(&self) -> bool {
        self.protocol == LEGACY_WS
    }

    /// The type of the messages that carry a subscription's results.
    pub(crate) fn next_type(&self) -> &'static str {
        if self.legacy() { "data" } else { "next" }
    }

    pub(crate) async fn send(&mut self, message: Value) {
        let text = message.to_string();
        tokio::time::timeout(WAIT, self.stream.send(Message::Text(text.into())))
            .await
            .expect("sending timed out")
            .unwrap_or_else(|e| panic!("could not send {message}: {e}"));
    }

    pub(crate) async fn init(&mut self, payload: Value) {
        self.send(json!({ "type": "connection_init", "payload": payload }))
            .await;
    }

    pub(crate) async fn ack(&mut self) {
        let message = self.next_json().await;
        assert_eq!(message["type"], "connection_ack", "{message}");
    }

    pub(crate) async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        let kind = if self.legacy() { "start" } else { "subscribe" };
        self.send(json!({
            "id": id,
            "type": kind,
            "payload": { "query": query, "variables": variables },
        }))
        .await;
    }

    pub(crate) async fn stop(&mut self, id: &str) {
        let kind = if self.legacy() { "stop" } else { "complete" };
        self.send(json!({ "id": id, "type": kind })).await;
    }

    /// The next text message or close, or `None` once `deadline` passes.
    pub(crate) async fn read(&mut self, deadline: Instant) -> Option<Incoming> {
        loop {
            let next = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()?;
            let text = match next {
                None => {
                    self.log.push("<end of stream>".to_owned());
                    return Some(Incoming::Closed(None));
                }
                Some(Err(e)) => {
                    self.log.push(format!("<error: {e}>"));
                    return Some(Incoming::Closed(None));
                }
                Some(Ok(Message::Close(frame))) => {
                    // 1005: a close frame without a status code.
                    let code = frame.map_or(1005, |f| u16::from(f.code));
                    self.log.push(format!("<close {code}>"));
                    return Some(Incoming::Closed(Some(code)));
                }
                Some(Ok(Message::Text(text))) => text.as_str().to_owned(),
                Some(Ok(Message::Binary(bytes))) => String::from_utf8_lossy(&bytes).into_owned(),
                Some(Ok(_)) => continue,
            };
            self.log.push(text.clone());
            let value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("the server sent something not JSON ({e}): {text}"));
            return Some(Incoming::Json(value));
        }
    }

    /// The next message other than a keep-alive, if one comes within `within`; the
    /// server's pings are answered.
    pub(crate) async fn try_next_json(&mut self, within: Duration) -> Option<Value> {
        let deadline = Instant::now() + within;
        loop {
            match self.read(deadline).await? {
                Incoming::Json(message) if message["type"] == "ping" => {
                    self.send(json!({ "type": "pong" })).await;
                }
                Incoming::Json(message) if is_keepalive(&message) => {}
                Incoming::Json(message) => return Some(message),
                Incoming::Closed(code) => panic!(
                    "expected a message, but the socket closed ({code:?}); received: {:#?}",
                    self.log
                ),
            }
        }
    }

    /// The next message other than a keep-alive.
    pub(crate) async fn next_json(&mut self) -> Value {
        match self.try_next_json(WAIT).await {
            Some(message) => message,
            None => panic!(
                "no message within {WAIT:?}; received so far: {:#?}",
                self.log
            ),
        }
    }

    /// The `data` of the next message, which must be a result for subscription `id`.
    pub(crate) async fn next_data(&mut self, id: &str) -> Value {
        let message = self.next_json().await;
        assert_eq!(
            message["type"],
            self.next_type(),
            "expected a result for {id}: {message}"
        );
        assert_eq!(message["id"], id, "{message}");
        assert!(
            message["payload"].get("errors").is_none(),
            "expected no errors: {message}"
        );
        message["payload"]["data"].clone()
    }

    /// The error codes of the next message, which must report that subscription `id`
    /// failed: in `graphql-transport-ws` an `error` message (which ends it, with no
    /// `complete`), in the older protocol a result with errors followed by `complete`.
    pub(crate) async fn failure(&mut self, id: &str) -> Vec<String> {
        let message = self.next_json().await;
        assert_eq!(message["id"], id, "{message}");
        let errors = if self.protocol == TRANSPORT_WS {
            assert_eq!(message["type"], "error", "{message}");
            message["payload"].clone()
        } else {
            assert_eq!(
                message["type"],
                self.next_type(),
                "expected an error for {id}: {message}"
            );
            assert!(message["payload"]["data"].is_null(), "{message}");
            let complete = self.next_json().await;
            assert_eq!(
                complete,
                json!({ "type": "complete", "id": id }),
                "after {message}"
            );
            message["payload"]["errors"].clone()
        };
        let errors = errors
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("no errors in {message}"));
        assert!(!errors.is_empty(), "no errors in {message}");
        errors
            .iter()
            .map(|e| {
                e["extensions"]["code"]
                    .as_str()
                    .unwrap_or_else(|| panic!("an error without a code in {message}"))
                    .to_owned()
            })
            .collect()
    }

    /// Sends a protocol ping and waits for the pong, returning whatever else came first.
    /// The server takes a socket's messages in order and starts a subscription as soon
    /// as it has nothing more to read, so one sent before the ping is listening by the
    /// time anything done after the pong can announce an event.
    pub(crate) async fn round_trip(&mut self) -> Vec<Value> {
        self.send(json!({ "type": "ping" })).await;
        let deadline = Instant::now() + WAIT;
        let mut before = Vec::new();
        loop {
            match self.read(deadline).await {
                Some(Incoming::Json(message)) if message["type"] == "pong" => return before,
                Some(Incoming::Json(message)) if is_keepalive(&message) => {}
                Some(Incoming::Json(message)) => before.push(message),
                Some(Incoming::Closed(code)) => panic!(
                    "expected a pong, but the socket closed ({code:?}); received: {:#?}",
                    self.log
                ),
                None => panic!("no pong within {WAIT:?}; received so far: {:#?}", self.log),
            }
        }
    }

    /// Panics unless the socket still answers, after having had the time to act on
    /// anything announced before the call: the first round trip lets the server get to
    /// pending announcements, the second shows it is still there afterwards.
    pub(crate) async fn stays_open(&mut self) {
        for _ in 0..2 {
            assert_eq!(self.round_trip().await, Vec::<Value>::new());
        }
    }

    /// The close code once the socket closes, or `None` when it ends without a close
    /// frame; panics if it stays open for `within`.
    pub(crate) async fn close_code(&mut self, within: Duration) -> Option<u16> {
        let deadline = Instant::now() + within;
        loop {
            match self.read(deadline).await {
                Some(Incoming::Json(_)) => {}
                Some(Incoming::Closed(code)) => return code,
                None => panic!(
                    "the socket stayed open for {within:?}; received: {:#?}",
                    self.log
                ),
            }
        }
    }

    /// The close code once the socket closes.
    pub(crate) async fn closed(&mut self, within: Duration) -> u16 {
        let code = self.close_code(within).await;
        code.unwrap_or_else(|| {
            panic!(
                "the socket ended without a close frame; received: {:#?}",
                self.log
            )
        })
    }
}

/// What answers `connection_init` (the whole message) on a fresh `graphql-transport-ws`
/// socket opened with `headers`: `Ok` for `connection_ack`, the close code otherwise.
async fn init_outcome(app: &TestApp, init: Value, headers: &[(&str, &str)]) -> Result<(), u16> {
    let mut ws = Ws::open(app, "/graphql", TRANSPORT_WS, headers).await;
    ws.send(init).await;
    match ws.read(Instant::now() + WAIT).await {
        Some(Incoming::Json(message)) if message["type"] == "connection_ack" => Ok(()),
        Some(Incoming::Json(message)) => panic!("unexpected answer to connection_init: {message}"),
        Some(Incoming::Closed(Some(code))) => Err(code),
        Some(Incoming::Closed(None)) => {
            panic!("the socket ended without a close frame: {:#?}", ws.log)
        }
        None => panic!("no answer to connection_init within {WAIT:?}"),
    }
}

/// Creates an API key as `access` and returns (id, secret).
async fn api_key(app: &TestApp, access: &str, scopes: &[&str]) -> (String, String) {
    let res = app
        .gql(
            Some(access),
            "mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { secret apiKey { id } } }",
            json!({ "i": { "name": "listener", "scopes": scopes, "currentPassword": crate::helpers::PASSWORD } }),
        )
        .await
        .ok();
    (
        res.data("createApiKey.apiKey.id")
            .as_str()
            .unwrap()
            .to_owned(),
        res.data("createApiKey.secret").as_str().unwrap().to_owned(),
    )
}

pub(crate) async fn vote(app: &Remote, access: &str, post: &str) {
    app.gql(
        Some(access),
        "mutation($id: ID!) { votePost(id: $id) { id } }",
        json!({ "id": post }),
    )
    .await
    .ok();
}

pub(crate) async fn unvote(app: &Remote, access: &str, post: &str) {
    app.gql(
        Some(access),
        "mutation($id: ID!) { unvotePost(id: $id) { id } }",
        json!({ "id": post }),
    )
    .await
    .ok();
}

async fn set_published(app: &TestApp, access: &str, post: &str, published: bool) {
    app.gql(
        Some(access),
        "mutation($id: ID!, $p: Boolean) { updatePost(id: $id, input: { published: $p }) { id } }",
        json!({ "id": post, "p": published }),
    )
    .await
    .ok();
}

/// Reads the first message of a new `postVoted` subscription `id`: the post as it is
/// when the subscription starts, which has no votes yet.
async fn initial(ws: &mut Ws, id: &str) {
    assert_eq!(ws.next_data(id).await["postVoted"]["voteCount"], 0);
}

async fn subscriptions_work_in_either_protocol_on_either_path(db: TestDb) {
    let app = db.spawn().await;
    let reader = app.signed_up("reader").await;
    let writer = app.signed_up("writer").await;
    let credentials = json!({ "Authorization": bearer(&reader.access) });

    for path in ["/graphql", "/graphql/ws"] {
        for protocol in [TRANSPORT_WS, LEGACY_WS] {
            let context = format!("{protocol} on {path}");
            let mut ws = Ws::ready(&app, path, protocol, credentials.clone()).await;
            assert_eq!(ws.protocol, protocol, "{context}");

            ws.subscribe("1", POST_CREATED, json!({})).await;
            assert_eq!(ws.round_trip().await, Vec::<Value>::new(), "{context}");
            let title = format!("First over {protocol} on {path}");
            let first = app.post(&writer.access, &title, true).await;
            assert_eq!(
                ws.next_data("1").await["postCreated"],
                json!({
                    "id": first,
                    "title": title,
                    "published": true,
                    "author": { "username": "writer" },
                }),
                "{context}"
            );

            // Stopped, a subscription sends nothing more (the older protocol confirms
            // with `complete`), while a later one on the same socket still does.
            ws.stop("1").await;
            if ws.legacy() {
                assert_eq!(
                    ws.next_json().await,
                    json!({ "type": "complete", "id": "1" }),
                    "{context}"
                );
            }
            ws.subscribe("2", POST_CREATED, json!({})).await;
            assert_eq!(ws.round_trip().await, Vec::<Value>::new(), "{context}");
            let second = app
                .post(
                    &writer.access,
                    &format!("Second over {protocol} on {path}"),
                    true,
                )
                .await;
            assert_eq!(
                ws.next_data("2").await["postCreated"]["id"],
                second.as_str(),
                "{context}"
            );
            assert_eq!(
                ws.round_trip().await,
                Vec::<Value>::new(),
                "{context}: nothing for the stopped subscription"
            );

            if ws.legacy() {
                ws.send(json!({ "type": "connection_terminate" })).await;
                let code = ws.close_code(WAIT).await;
                assert!(
                    code.is_none_or(|c| c < 4000),
                    "{context}: a terminated connection ends without an error, got {code:?}"
                );
            }
        }
    }
}

async fn the_upgrade_must_ask_for_a_graphql_subprotocol(db: TestDb) {
    let app = db.spawn().await;
    for path in ["/graphql", "/graphql/ws"] {
        assert_eq!(
            refused_upgrade(&app, path, None).await,
            400,
            "{path} without a subprotocol"
        );
        assert_eq!(
            refused_upgrade(&app, path, Some("chat")).await,
            400,
            "{path} with an unknown subprotocol"
        );
        // Offered both, the server prefers the current protocol.
        let ws = Ws::open(&app, path, "graphql-ws, graphql-transport-ws", &[]).await;
        assert_eq!(ws.protocol, TRANSPORT_WS, "{path}");
        let ws = Ws::connect(&app, path, LEGACY_WS).await;
        assert_eq!(ws.protocol, LEGACY_WS, "{path}");
    }
}

async fn connection_init_decides_who_may_subscribe(db: TestDb) {
    let app = db.spawn().await;
    let root = app.admin("root").await;
    let ada = app.signed_up("ada").await;
    let (_, read_key) = api_key(&app, &ada.access, &["READ"]).await;
    let (_, write_key) = api_key(&app, &ada.access, &["WRITE"]).await;
    // Only the ADMIN scope: no READ, which WRITE would have implied.
    let (_, admin_key) = api_key(&app, &root.access, &["ADMIN"]).await;
    let mistyped = format!(
        "{}{}",
        &read_key[..read_key.len() - 1],
        if read_key.ends_with('A') { 'B' } else { 'A' }
    );
    let init = |payload: Value| json!({ "type": "connection_init", "payload": payload });

    // What is sent, the upgrade's Authorization header, and the answer.
    type Case<'a> = (&'a str, Value, Option<String>, Result<(), u16>);
    let cases: Vec<Case> = vec![
        (
            "no payload",
            json!({ "type": "connection_init" }),
            None,
            Err(4401),
        ),
        ("an empty payload", init(json!({})), None, Err(4401)),
        (
            "a garbage bearer token",
            init(json!({ "Authorization": "Bearer not-a-token" })),
            None,
            Err(4401),
        ),
        (
            "an access token under another scheme",
            init(json!({ "Authorization": format!("Basic {}", ada.access) })),
            None,
            Err(4401),
        ),
        (
            "a mistyped API key",
            init(json!({ "X-API-Key": mistyped })),
            None,
            Err(4401),
        ),
        (
            "an access token in X-API-Key",
            init(json!({ "X-API-Key": ada.access })),
            None,
            Err(4401),
        ),
        (
            "two credentials at once",
            init(json!({ "Authorization": bearer(&ada.access), "X-API-Key": read_key })),
            None,
            Err(4401),
        ),
        (
            "a key without READ as a bearer token",
            init(json!({ "Authorization": bearer(&admin_key) })),
            None,
            Err(4403),
        ),
        (
            "a key without READ in X-API-Key",
            init(json!({ "X-API-Key": admin_key })),
            None,
            Err(4403),
        ),
        (
            "an access token",
            init(json!({ "Authorization": bearer(&ada.access) })),
            None,
            Ok(()),
        ),
        (
            "names and scheme in lower case",
            init(json!({ "authorization": format!("bearer {}", ada.access) })),
            None,
            Ok(()),
        ),
        (
            "credentials under headers",
            init(json!({ "headers": { "Authorization": bearer(&ada.access) } })),
            None,
            Ok(()),
        ),
        (
            "a READ key as a bearer token",
            init(json!({ "Authorization": bearer(&read_key) })),
            None,
            Ok(()),
        ),
        (
            "a READ key in X-API-Key",
            init(json!({ "X-API-Key": read_key })),
            None,
            Ok(()),
        ),
        (
            "a WRITE key, which may read too",
            init(json!({ "x-api-key": write_key })),
            None,
            Ok(()),
        ),
        (
            "an empty payload and the upgrade's Authorization header",
            init(json!({})),
            Some(bearer(&ada.access)),
            Ok(()),
        ),
        (
            "no payload and the upgrade's Authorization header",
            json!({ "type": "connection_init" }),
            Some(bearer(&ada.access)),
            Ok(()),
        ),
        (
            "a bad credential in the payload over a good upgrade header",
            init(json!({ "Authorization": "Bearer not-a-token" })),
            Some(bearer(&ada.access)),
            Err(4401),
        ),
        (
            "no payload and a bad upgrade header",
            json!({ "type": "connection_init" }),
            Some("Bearer not-a-token".to_owned()),
            Err(4401),
        ),
    ];
    for (label, message, header, expected) in cases {
        let headers: Vec<(&str, &str)> = header
            .iter()
            .map(|value| ("authorization", value.as_str()))
            .collect();
        assert_eq!(
            init_outcome(&app, message, &headers).await,
            expected,
            "{label}"
        );
    }

    // A socket opened with a key receives events like any other.
    let mut ws = Ws::ready(
        &app,
        "/graphql",
        TRANSPORT_WS,
        json!({ "X-API-Key": read_key }),
    )
    .await;
    ws.subscribe("1", POST_CREATED, json!({})).await;
    assert_eq!(ws.round_trip().await, Vec::<Value>::new());
    let id = app.post(&root.access, "For key holders too", true).await;
    assert_eq!(ws.next_data("1").await["postCreated"]["id"], id.as_str());
}

async fn the_legacy_protocol_says_why_before_closing(db: TestDb) {
    let app = db.spawn().await;
    let root = app.admin("root").await;
    let (_, admin_key) = api_key(&app, &root.access, &["ADMIN"]).await;

    for (payload, code) in [
        (json!({}), 4401),
        (json!({ "Authorization": "Bearer not-a-token" }), 4401),
        (json!({ "X-API-Key": admin_key }), 4403),
    ] {
        let mut ws = Ws::connect(&app, "/graphql", LEGACY_WS).await;
        ws.init(payload.clone()).await;
        let message = ws.next_json().await;
        assert_eq!(message["type"], "connection_error", "{payload}: {message}");
        assert!(
            message["payload"]["message"].is_string(),
            "{payload}: {message}"
        );
        assert_eq!(ws.closed(WAIT).await, code, "{payload}");
    }

    let mut ws = Ws::connect(&app, "/graphql/ws", LEGACY_WS).await;
    ws.init(json!({ "Authorization": format!("Bearer {}", root.access) }))
        .await;
    ws.ack().await;
}

async fn messages_out_of_turn_close_the_socket(db: TestDb) {
    let app = db.spawn().await;
    let ada = app.signed_up("ada").await;
    let credentials = json!({ "Authorization": bearer(&ada.access) });

    // A subscription before connection_init, in either protocol: unauthorised.
    for protocol in [TRANSPORT_WS, LEGACY_WS] {
        let mut ws = Ws::connect(&app, "/graphql", protocol).await;
        ws.subscribe("1", POST_CREATED, json!({})).await;
        assert_eq!(ws.closed(WAIT).await, 4401, "{protocol}");
    }

    // A second connection_init.
    let mut ws = Ws::ready(&app, "/graphql", TRANSPORT_WS, credentials.clone()).await;
    ws.init(credentials.clone()).await;
    assert_eq!(ws.closed(WAIT).await, 4429);

    // A message that is not one of the protocol's, before and after connection_init.
    let mut ws = Ws::connect(&app, "/graphql", TRANSPORT_WS).await;
    ws.send(json!({ "type": "hello" })).await;
    assert_eq!(ws.closed(WAIT).await, 4400);
    let mut ws = Ws::ready(&app, "/graphql", TRANSPORT_WS, credentials.clone()).await;
    ws.send(json!({ "id": "1", "type": "subscribe" })).await;
    assert_eq!(ws.closed(WAIT).await, 4400);

    // A second subscription under the id of one still running.
    let mut ws = Ws::ready(&app, "/graphql", TRANSPORT_WS, credentials).await;
    ws.subscribe("1", POST_CREATED, json!({})).await;
    ws.subscribe("1", POST_CREATED, json!({})).await;
    assert_eq!(ws.closed(WAIT).await, 4409);
}

async fn a_connection_runs_at_most_a_hundred_subscriptions(db: TestDb) {
    let app = db.spawn().await;
    let ada = app.signed_up("ada").await;
    let mut ws = Ws::signed_in(&app, &ada.access).await;
    for i in 0..100 {
        ws.subscribe(&i.to_string(), POST_CREATED, json!({})).await;
    }
    assert_eq!(ws.round_trip().await, Vec::<Value>::new());
    ws.subscribe("one too many", POST_CREATED, json!({})).await;
    assert_eq!(ws.failure("one too many").await, ["BAD_REQUEST"]);

    // Ending one makes room for another, and the socket stays open throughout.
    ws.send(json!({ "id": "0", "type": "complete" })).await;
    assert_eq!(ws.round_trip().await, Vec::<Value>::new());
    ws.subscribe("another", POST_CREATED, json!({})).await;
    assert_eq!(ws.round_trip().await, Vec::<Value>::new());
}

async fn a_connection_never_initialised_closes_after_ten_seconds(db: TestDb) {
    let app = db.spawn().await;
    let started = Instant::now();
    let mut ws = Ws::connect(&app, "/graphql", TRANSPORT_WS).await;
    assert_eq!(ws.closed(Duration::from_secs(15)).await, 4408);
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "closed after only {:?}",
        started.elapsed()
    );
}

async fn a_socket_closes_when_its_session_ends(db: TestDb) {
    let app = db.spawn().await;
    let laptop = app.signed_up("ada").await;
    let phone = app.signed_in("ada").await;
    let tablet = app.signed_in("ada").await;
    let mut on_laptop = Ws::signed_in(&app, &laptop.access).await;
    let mut on_phone = Ws::signed_in(&app, &phone.access).await;
    let mut on_tablet = Ws::signed_in(&app, &tablet.access).await;
    on_laptop.subscribe("1", POST_CREATED, json!({})).await;
    assert_eq!(on_laptop.round_trip().await, Vec::<Value>::new());

    // Signing out closes the sockets of that session, and only those.
    app.gql(Some(&laptop.access), "mutation { logout }", json!({}))
        .await
        .ok();
    assert_eq!(on_laptop.closed(WAIT).await, 4401);
    on_phone.stays_open().await;
    on_tablet.stays_open().await;

    // Ending the phone's session from the tablet closes the phone's socket.
    let sessions = app
        .gql(
            Some(&tablet.access),
            "{ sessions { id current } }",
            json!({}),
        )
        .await
        .ok();
    let listed = sessions.data("sessions").as_array().unwrap();
    assert_eq!(listed.len(), 2, "{}", sessions.body);
    let phone_session = listed
        .iter()
        .find(|s| s["current"] == false)
        .and_then(|s| s["id"].as_str())
        .expect("the phone's session")
        .to_owned();
    app.gql(
        Some(&tablet.access),
        "mutation($id: ID!) { revokeSession(id: $id) }",
        json!({ "id": phone_session }),
    )
    .await
    .ok();
    assert_eq!(on_phone.closed(WAIT).await, 4401);
    on_tablet.stays_open().await;

    // Signing out everywhere closes the last one.
    app.gql(Some(&tablet.access), "mutation { logoutAll }", json!({}))
        .await
        .ok();
    assert_eq!(on_tablet.closed(WAIT).await, 4401);
}

async fn a_socket_closes_when_its_key_is_revoked_or_its_owner_deactivated(db: TestDb) {
    let app = db.spawn().await;
    let root = app.admin("root").await;
    let bob = app.signed_up("bob").await;
    let bob_id = app.user_id(&bob.access).await;
    let (key_id, secret) = api_key(&app, &bob.access, &["READ"]).await;
    let (_, spare) = api_key(&app, &bob.access, &["READ"]).await;

    let mut by_key = Ws::ready(
        &app,
        "/graphql",
        TRANSPORT_WS,
        json!({ "X-API-Key": secret }),
    )
    .await;
    let mut by_spare = Ws::ready(
        &app,
        "/graphql/ws",
        TRANSPORT_WS,
        json!({ "Authorization": format!("Bearer {spare}") }),
    )
    .await;
    let mut by_session = Ws::signed_in(&app, &bob.access).await;
    let mut by_admin = Ws::signed_in(&app, &root.access).await;

    // Revoking a key closes the sockets opened with it, and only those.
    app.gql(
        Some(&bob.access),
        "mutation($id: ID!) { revokeApiKey(id: $id) { id } }",
        json!({ "id": key_id }),
    )
    .await
    .ok();
    assert_eq!(by_key.closed(WAIT).await, 4401);
    by_spare.stays_open().await;
    by_session.stays_open().await;

    // Deactivating the owner closes every socket of theirs, by session or by key.
    app.gql(
        Some(&root.access),
        "mutation($id: ID!) { deactivateUser(id: $id) { active } }",
        json!({ "id": bob_id }),
    )
    .await
    .ok();
    assert_eq!(by_session.closed(WAIT).await, 4401);
    assert_eq!(by_spare.closed(WAIT).await, 4401);
    by_admin.stays_open().await;
}

async fn a_demoted_administrators_sockets_close_at_once(db: TestDb) {
    let app = db.spawn().await;
    let root = app.admin("root").await;
    let ops = app.admin("ops").await;
    let ops_id = app.user_id(&ops.access).await;
    let bob = app.signed_up("bob").await;
    let (_, ops_key) = api_key(&app, &ops.access, &["READ", "ADMIN"]).await;
    let with_emails = "subscription { postCreated { title author { username email } } }";

    let mut by_session = Ws::signed_in(&app, &ops.access).await;
    let mut by_key = Ws::ready(
        &app,
        "/graphql",
        TRANSPORT_WS,
        json!({ "X-API-Key": ops_key }),
    )
    .await;
    let mut bobs = Ws::signed_in(&app, &bob.access).await;
    for ws in [&mut by_session, &mut by_key] {
        ws.subscribe("1", with_emails, json!({})).await;
        assert_eq!(ws.round_trip().await, Vec::<Value>::new());
    }
    // An administrator sees authors' emails.
    app.post(&bob.access, "Before", true).await;
    for ws in [&mut by_session, &mut by_key] {
        assert_eq!(
            ws.next_data("1").await["postCreated"]["author"]["email"],
            "bob@example.com"
        );
    }

    // Demoted, at once: the sockets that were opened with admin sight close, well before
    // any periodic recheck, and other users' sockets stay.
    app.gql(
        Some(&root.access),
        "mutation($id: ID!) { updateUserRole(id: $id, role: USER) { role } }",
        json!({ "id": ops_id }),
    )
    .await
    .ok();
    assert_eq!(by_session.closed(WAIT).await, 4401);
    assert_eq!(by_key.closed(WAIT).await, 4401);
    bobs.stays_open().await;
    // A new socket sees what a user sees.
    let mut again = Ws::signed_in(&app, &ops.access).await;
    again.subscribe("1", with_emails, json!({})).await;
    assert_eq!(again.round_trip().await, Vec::<Value>::new());
    app.post(&bob.access, "After", true).await;
    let seen = again.next_data("1").await;
    assert_eq!(seen["postCreated"]["title"], "After");
    assert!(seen["postCreated"]["author"]["email"].is_null(), "{seen}");
}

async fn new_posts_reach_subscribers_once_published(db: TestDb) {
    let app = db.spawn().await;
    let reader = app.signed_up("reader").await;
    let writer = app.signed_up("writer").await;
    let mut ws = Ws::signed_in(&app, &reader.access).await;
    ws.subscribe("1", POST_CREATED, json!({})).await;
    assert_eq!(ws.round_trip().await, Vec::<Value>::new());

    let published = app.post(&writer.access, "Out now", true).await;
    assert_eq!(
        ws.next_data("1").await["postCreated"],
        json!({
            "id": published,
            "title": "Out now",
            "published": true,
            "author": { "username": "writer" },
        })
    );

    // A draft is announced to nobody: the next announcement is the post written after it.
    let draft = app.post(&writer.access, "Not yet", false).await;
    let later = app.post(&writer.access, "Also out", true).await;
    assert_eq!(
        ws.next_data("1").await["postCreated"]["id"],
        later.as_str(),
        "the draft {draft} came first"
    );

    // Published, the draft is announced then.
    set_published(&app, &writer.access, &draft, true).await;
    assert_eq!(
        ws.next_data("1").await["postCreated"],
        json!({
            "id": draft,
            "title": "Not yet",
            "published": true,
            "author": { "username": "writer" },
        })
    );

    // Changing a post that is already published announces nothing.
    app.gql(
        Some(&writer.access),
        "mutation($id: ID!) { updatePost(id: $id, input: { title: \"Out now, revised\", published: true }) { id } }",
        json!({ "id": published }),
    )
    .await
    .ok();
    let last = app.post(&writer.access, "Last one", true).await;
    assert_eq!(ws.next_data("1").await["postCreated"]["id"], last.as_str());
    assert_eq!(ws.round_trip().await, Vec::<Value>::new());
}

async fn vote_counts_reach_subscribers_as_they_change(db: TestDb) {
    let app = db.spawn().await;
    let author = app.signed_up("author").await;
    let watcher = app.signed_up("watcher").await;
    let bob = app.signed_up("bob").await;
    let carol = app.signed_up("carol").await;
    let post = app.post(&author.access, "Vote for me", true).await;
    let other = app.post(&author.access, "Or for me", true).await;

    let mut ws = Ws::signed_in(&app, &watcher.access).await;
    ws.subscribe("1", POST_VOTED, json!({ "id": post })).await;
    initial(&mut ws, "1").await;

    vote(&app, &bob.access, &post).await;
    assert_eq!(
        ws.next_data("1").await["postVoted"],
        json!({ "id": post, "voteCount": 1, "viewerHasVoted": false })
    );
    unvote(&app, &bob.access, &post).await;
    assert_eq!(
        ws.next_data("1").await["postVoted"],
        json!({ "id": post, "voteCount": 0, "viewerHasVoted": false })
    );
    vote(&app, &bob.access, &post).await;
    assert_eq!(ws.next_data("1").await["postVoted"]["voteCount"], 1);

    // A repeated vote, withdrawing a vote never given and a vote on another post change
    // nothing here: the next message is for carol's vote.
    vote(&app, &bob.access, &post).await;
    unvote(&app, &carol.access, &post).await;
    vote(&app, &bob.access, &other).await;
    vote(&app, &carol.access, &post).await;
    assert_eq!(ws.next_data("1").await["postVoted"]["voteCount"], 2);

    // The subscriber's own vote shows in viewerHasVoted.
    vote(&app, &watcher.access, &post).await;
    assert_eq!(
        ws.next_data("1").await["postVoted"],
        json!({ "id": post, "voteCount": 3, "viewerHasVoted": true })
    );
    assert_eq!(ws.round_trip().await, Vec::<Value>::new());

    // Turned back into a draft, the post is no longer the watcher's to follow: the
    // subscription ends at once.
    set_published(&app, &author.access, &post, false).await;
    assert_eq!(
        ws.next_json().await,
        json!({ "type": "complete", "id": "1" })
    );
}

async fn votes_on_a_draft_reach_its_author_alone(db: TestDb) {
    let app = db.spawn().await;
    let root = app.admin("root").await;
    let author = app.signed_up("author").await;
    let stranger = app.signed_up("stranger").await;
    let draft = app.post(&author.access, "Secret plans", false).await;

    // To anyone else the draft does not exist, administrators included; the socket stays.
    for (who, access) in [
        ("a stranger", &stranger.access),
        ("an administrator", &root.access),
    ] {
        let mut ws = Ws::signed_in(&app, access).await;
        ws.subscribe("1", POST_VOTED, json!({ "id": draft })).await;
        assert_eq!(ws.failure("1").await, ["NOT_FOUND"], "{who}");
        assert_eq!(ws.round_trip().await, Vec::<Value>::new(), "{who}");
    }

    // Nor does a post that never existed; a malformed id is bad input.
    let mut ws = Ws::signed_in(&app, &stranger.access).await;
    ws.subscribe(
        "1",
        POST_VOTED,
        json!({ "id": uuid::Uuid::new_v4().to_string() }),
    )
    .await;
    assert_eq!(ws.failure("1").await, ["NOT_FOUND"]);
    ws.subscribe("2", POST_VOTED, json!({ "id": "not-an-id" }))
        .await;
    assert_eq!(ws.failure("2").await, ["BAD_USER_INPUT"]);

    // The author follows the votes on their own draft.
    let mut ws = Ws::signed_in(&app, &author.access).await;
    ws.subscribe("1", POST_VOTED, json!({ "id": draft })).await;
    initial(&mut ws, "1").await;
    vote(&app, &root.access, &draft).await;
    assert_eq!(
        ws.next_data("1").await["postVoted"],
        json!({ "id": draft, "voteCount": 1, "viewerHasVoted": false })
    );
    vote(&app, &author.access, &draft).await;
    assert_eq!(
        ws.next_data("1").await["postVoted"],
        json!({ "id": draft, "voteCount": 2, "viewerHasVoted": true })
    );

    // Deleted, the post has nothing more to report: the subscription ends.
    app.gql(
        Some(&author.access),
        "mutation($id: ID!) { deletePost(id: $id) }",
        json!({ "id": draft }),
    )
    .await
    .ok();
    assert_eq!(
        ws.next_json().await,
        json!({ "type": "complete", "id": "1" })
    );
}

async fn only_valid_subscriptions_run_over_the_socket(db: TestDb) {
    let app = db.spawn().await;
    let ada = app.signed_up("ada").await;
    let credentials = json!({ "Authorization": bearer(&ada.access) });

    for protocol in [TRANSPORT_WS, LEGACY_WS] {
        let mut ws = Ws::ready(&app, "/graphql", protocol, credentials.clone()).await;
        for (id, query, code) in [
            ("1", "{ me { username } }", "BAD_REQUEST"),
            (
                "2",
                "mutation { createPost(input: { title: \"Sneaky\", body: \"Over the socket\" }) { id } }",
                "BAD_REQUEST",
            ),
            (
                "3",
                "subscription { postCreated { nope } }",
                "GRAPHQL_VALIDATION_FAILED",
            ),
            (
                "4",
                "subscription { postCreated { id ",
                "GRAPHQL_PARSE_FAILED",
            ),
            (
                "5",
                "query A { me { id } } subscription B { postCreated { id } }",
                "BAD_REQUEST",
            ),
        ] {
            ws.subscribe(id, query, json!({})).await;
            assert_eq!(ws.failure(id).await, [code], "{protocol}: {query}");
        }
        assert_eq!(
            ws.round_trip().await,
            Vec::<Value>::new(),
            "{protocol}: the socket stays open"
        );
    }

    // The mutation sent over the socket did not run.
    let mine = app
        .gql(
            Some(&ada.access),
            "{ me { posts { edges { node { id } } } } }",
            json!({}),
        )
        .await
        .ok();
    assert_eq!(mine.data("me.posts.edges"), &json!([]));
}
