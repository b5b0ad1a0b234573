//! A connection's start and end: the credentials of `connection_init` judged, and the
//! close codes the protocols give for a refusal, a session that ended, or a message the
//! executor rejected.

use std::sync::{Arc, Mutex};

use async_graphql::{Data, http::WebSocketProtocols};
use uuid::Uuid;

use crate::{
    auth::{Auth, Caller, ClientInfo, Credential},
    error::AppError,
    graphql::fanout::Viewer,
    http::sockets::{SignedIn, Sockets},
};

/// The credentials offered for a connection.
#[derive(Clone, Default)]
pub(super) struct Credentials {
    pub(super) authorization: Option<String>,
    pub(super) api_key: Option<String>,
}

impl Credentials {
    /// From `connection_init`'s payload: `Authorization` and `X-API-Key`, in any case, at
    /// its top level or under `headers`.
    pub(super) fn from_payload(payload: &serde_json::Value) -> Self {
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

    pub(super) fn is_empty(&self) -> bool {
        self.authorization.is_none() && self.api_key.is_none()
    }

    pub(super) fn caller(&self) -> Caller {
        Caller::from_headers(self.authorization.as_deref(), self.api_key.as_deref())
    }
}

/// How `connection_init` went.
pub(super) enum Init {
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

/// Marks the connection-init error that the connection's loop turns into a close code of its own.
pub(super) const REFUSED: &str = "connection refused";

/// Judges `connection_init`: the credentials in its payload, or else those of the upgrade
/// request, must name a live session or a key with the READ scope, and the account must
/// have a place left. The outcome is left in `init` for the connection's loop; a refusal
/// is reported to async-graphql as [`REFUSED`], which the loop turns into its close code.
pub(super) async fn accept(
    auth: Auth,
    sockets: Arc<Sockets>,
    init: Arc<Mutex<Init>>,
    fallback: Credentials,
    client: ClientInfo,
    payload: serde_json::Value,
) -> async_graphql::Result<Data> {
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

/// The close for a connection whose session or key has ended.
pub(super) fn ended() -> (u16, String) {
    (4401, "Unauthorized: the session has ended".to_owned())
}

/// The close code and reason for a refused `connection_init`, if it was refused.
pub(super) fn refusal(init: &Mutex<Init>) -> Option<(u16, String)> {
    match &*init.lock().unwrap_or_else(|e| e.into_inner()) {
        Init::Refused { code, reason } => Some((*code, (*reason).to_owned())),
        _ => None,
    }
}

/// The protocol's close codes where the executor's differ from them.
pub(super) fn close_code(
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
