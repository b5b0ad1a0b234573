//! What instances tell each other through `NOTIFY`: a few ids, never the row.
//!
//! PostgreSQL caps a notification's payload at 8,000 bytes, and a post's text alone can be
//! larger; so a notice names what changed, and an instance with subscribers for it reads
//! the row itself. The payload is versioned JSON: an instance ignores a version it does not
//! know, so that instances of two releases can run side by side during a rolling upgrade.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The channel every instance listens on (unquoted names are lowercase in PostgreSQL).
pub const CHANNEL: &str = "quire_events";

/// The payload's version.
pub const VERSION: u32 = 1;

/// One notice between instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// [`VERSION`].
    pub v: u32,
    /// The instance that sent it.
    pub origin: Uuid,
    /// What happened.
    pub kind: Kind,
    /// The post or user it is about; a heartbeat's own nonce.
    pub id: Uuid,
    /// When it was sent, in microseconds since the epoch by the sender's clock: how late
    /// it arrives is exported as the notification lag.
    pub sent_us: i64,
}

/// What a notice is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The post `id` was published.
    Published,
    /// The post `id` changed: a vote, or its publication.
    Changed,
    /// The post `id` was deleted or turned back into a draft (a change too): should it be
    /// published again, it is news again.
    Withdrawn,
    /// The sessions, keys, role or standing of the user `id` changed.
    Access,
    /// An instance checking that its listener still hears (every few seconds), or that
    /// notifications come back at all (at start-up).
    Heartbeat,
}

impl Notice {
    /// A notice from `origin`, sent now.
    pub fn new(origin: Uuid, kind: Kind, id: Uuid) -> Self {
        Self {
            v: VERSION,
            origin,
            kind,
            id,
            sent_us: chrono::Utc::now().timestamp_micros(),
        }
    }

    /// The payload to send.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The notice in `payload`, unless it is not one this version reads.
    pub fn decode(payload: &str) -> Option<Self> {
        #[derive(Deserialize)]
        struct Versioned {
            v: u32,
        }
        let versioned: Versioned = serde_json::from_str(payload).ok()?;
        if versioned.v != VERSION {
            return None;
        }
        serde_json::from_str(payload).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_are_small_and_read_back_unless_of_another_version() {
        let notice = Notice::new(Uuid::now_v7(), Kind::Published, Uuid::now_v7());
        let payload = notice.encode();
        assert!(payload.len() < 200, "{payload}");
        assert_eq!(Notice::decode(&payload), Some(notice));
        let later = payload.replace("\"v\":1", "\"v\":2");
        assert_eq!(Notice::decode(&later), None);
        assert_eq!(Notice::decode("not json"), None);
    }
}
