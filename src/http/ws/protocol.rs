//! Fixes layered on async-graphql's protocol implementation: the ids of a connection's
//! subscriptions, kept to hold the `graphql-transport-ws` protocol where async-graphql
//! 7.2.1's `http::WebSocket` does not: a second subscription under a
//! running one's id ends the connection (4409), a subscription that cannot start gets an
//! `error` message and no `complete`, and no id may be longer than [`MAX_ID`] bytes (4400),
//! since every message of the subscription repeats it.

use async_graphql::http::WebSocketProtocols;

/// The longest subscription id.
const MAX_ID: usize = 128;

/// The ids of a connection's running subscriptions, to keep to the
/// `graphql-transport-ws` protocol where the executor does not.
#[derive(Default)]
pub(super) struct Ids {
    running: std::collections::HashSet<String>,
    /// Subscriptions the client stopped, which need no `complete` from the server.
    stopped: std::collections::HashSet<String>,
    /// Subscriptions that have sent something.
    started: std::collections::HashSet<String>,
    /// Subscriptions whose first message was an error, and so must not be completed.
    failed: std::collections::HashSet<String>,
    /// Why the client's last message ends the connection: a subscription sent twice, or
    /// an id too long.
    pub(super) ended: Option<(u16, String)>,
}

/// The `type` and `id` of a protocol message.
#[derive(serde::Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
}

impl Ids {
    /// Notes a message from the client; false for one that ends the connection: an id
    /// longer than [`MAX_ID`] (every message of the subscription repeats it), or a
    /// subscription under the id of one still running.
    pub(super) fn incoming(&mut self, protocol: WebSocketProtocols, bytes: &[u8]) -> bool {
        let Ok(Envelope { kind, id: Some(id) }) = serde_json::from_slice::<Envelope>(bytes) else {
            return true;
        };
        if id.len() > MAX_ID {
            self.ended = Some((4400, format!("ids may be at most {MAX_ID} bytes long")));
            return false;
        }
        if protocol != WebSocketProtocols::GraphQLWS {
            return true;
        }
        match kind.as_str() {
            "subscribe" if !self.running.insert(id.clone()) => {
                self.ended = Some((4409, format!("Subscriber for {id} already exists")));
                false
            }
            "complete" => {
                if self.running.remove(&id) {
                    self.stopped.insert(id);
                }
                true
            }
            _ => true,
        }
    }

    /// A message for the client as the protocol has it, or `None` to send nothing: a
    /// subscription whose first answer is errors without data (it could not start) gets
    /// an `error` message and no `complete`, where the executor sends its errors as data.
    pub(super) fn outgoing(
        &mut self,
        protocol: WebSocketProtocols,
        text: String,
    ) -> Option<String> {
        if protocol != WebSocketProtocols::GraphQLWS {
            return Some(text);
        }
        // The prefixes below are how async-graphql 7.2.1 serializes its `ServerMessage`
        // (`type` first, then `id`, `payload`): a message it writes otherwise passes
        // through untouched, and the protocol tests in tests/api/subscriptions.rs fail.
        if text.starts_with(r#"{"type":"complete""#) {
            let id = serde_json::from_str::<Envelope>(&text).ok()?.id?;
            self.running.remove(&id);
            self.started.remove(&id);
            let failed = self.failed.remove(&id);
            let stopped = self.stopped.remove(&id);
            return (!failed && !stopped).then_some(text);
        }
        if !text.starts_with(r#"{"type":"next""#) {
            return Some(text);
        }
        let Some(id) = serde_json::from_str::<Envelope>(&text)
            .ok()
            .and_then(|e| e.id)
        else {
            return Some(text);
        };
        if !self.started.insert(id) || !text.contains(r#""data":null"#) {
            return Some(text);
        }
        let mut message: serde_json::Value = serde_json::from_str(&text).ok()?;
        let payload = message.get_mut("payload")?;
        let failed_to_start = payload.get("data").is_some_and(serde_json::Value::is_null)
            && payload
                .get("errors")
                .and_then(|e| e.as_array())
                .is_some_and(|errors| !errors.is_empty());
        if !failed_to_start {
            return Some(text);
        }
        let errors = payload.get_mut("errors")?.take();
        let id = message.get("id")?.as_str()?.to_owned();
        self.running.remove(&id);
        self.failed.insert(id.clone());
        Some(serde_json::json!({ "id": id, "type": "error", "payload": errors }).to_string())
    }
}
