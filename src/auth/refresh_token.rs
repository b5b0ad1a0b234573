//! Refresh tokens: opaque, single-use, stored only as SHA-256 hashes.
//!
//! A token is `base64url(session id ‖ 32-byte secret ‖ 16-byte MAC)`:
//! - the session id lets the server find the session with a primary-key lookup;
//! - the secret carries the randomness (256 bits for the first token of a session);
//! - the MAC, keyed by the server secret, tells a token this server issued from a forgery
//!   without touching the database, so junk carrying a victim's session id cannot make
//!   the server treat it as a stolen token and end the victim's session.
//!
//! The successor of a token is derived from it: `HMAC(successor key, session id ‖ secret)`.
//! That is what lets concurrent refreshes with one token converge: every request presenting
//! the just-retired token within the grace window is handed the very same successor, yet
//! neither token is ever stored in plain text.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::config::Secret;

type HmacSha256 = Hmac<Sha256>;

const SECRET_LEN: usize = 32;
const MAC_LEN: usize = 16;
const TOKEN_LEN: usize = 16 + SECRET_LEN + MAC_LEN;

/// A decoded refresh token.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// The session the token belongs to, readable without the database.
    pub session_id: Uuid,
    secret: [u8; SECRET_LEN],
}

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshToken")
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

impl RefreshToken {
    /// The hash stored in the database.
    pub fn hash(&self) -> Vec<u8> {
        let mut h = Sha256::new();
        h.update(self.session_id.as_bytes());
        h.update(self.secret);
        h.finalize().to_vec()
    }
}

/// Makes, checks and derives refresh tokens with keys derived from the server secret.
#[derive(Clone)]
pub struct RefreshTokens {
    /// The keys of the server secret and of the previous one, if any: (MAC, successor).
    /// New tokens use the first; tokens made with either are accepted.
    keys: Vec<([u8; 32], [u8; 32])>,
}

impl RefreshTokens {
    /// Derives the MAC and successor keys from the server `secret`, and from `previous`,
    /// whose tokens are still accepted.
    pub fn new(secret: &Secret, previous: Option<&Secret>) -> Self {
        let keys = std::iter::once(secret)
            .chain(previous)
            .map(|s| {
                (
                    derive(s.expose(), b"quire refresh token mac v1"),
                    derive(s.expose(), b"quire refresh token successor v1"),
                )
            })
            .collect();
        Self { keys }
    }

    /// A fresh token for a new session.
    pub fn generate(&self, session_id: Uuid) -> RefreshToken {
        RefreshToken {
            session_id,
            secret: rand::random(),
        }
    }

    /// The token that replaces `token` when it is refreshed.
    pub fn successor(&self, token: &RefreshToken) -> RefreshToken {
        self.successors(token)
            .next()
            .expect("a server secret at least")
    }

    /// The successors `token` may have been given by instances of this server: by the
    /// signing key first, then by the previous one. While keys change, an instance still
    /// on the old key may have rotated it, and a retry reaching one on the new key must
    /// find the same successor, not take the retry for a theft.
    pub fn successors<'a>(
        &'a self,
        token: &'a RefreshToken,
    ) -> impl Iterator<Item = RefreshToken> + 'a {
        self.keys.iter().map(|(_, successor_key)| RefreshToken {
            session_id: token.session_id,
            secret: mac(successor_key, token),
        })
    }

    /// The string handed to the client.
    pub fn encode(&self, token: &RefreshToken) -> String {
        let mut bytes = Vec::with_capacity(TOKEN_LEN);
        bytes.extend_from_slice(token.session_id.as_bytes());
        bytes.extend_from_slice(&token.secret);
        bytes.extend_from_slice(&mac(&self.keys[0].0, token)[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Decodes a client's string; `None` unless this server issued it.
    pub fn decode(&self, text: &str) -> Option<RefreshToken> {
        let bytes = URL_SAFE_NO_PAD.decode(text.trim()).ok()?;
        if bytes.len() != TOKEN_LEN {
            return None;
        }
        let (id, rest) = bytes.split_at(16);
        let (secret, tag) = rest.split_at(SECRET_LEN);
        let token = RefreshToken {
            session_id: Uuid::from_slice(id).ok()?,
            secret: secret.try_into().ok()?,
        };
        let genuine = self.keys.iter().any(|(mac_key, _)| {
            let Ok(mut m) = HmacSha256::new_from_slice(mac_key) else {
                return false;
            };
            m.update(token.session_id.as_bytes());
            m.update(&token.secret);
            // Constant-time comparison of the truncated tag.
            m.verify_truncated_left(tag).is_ok()
        });
        genuine.then_some(token)
    }
}

fn derive(secret: &[u8], label: &[u8]) -> [u8; 32] {
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    m.update(label);
    m.finalize().into_bytes().into()
}

fn mac(key: &[u8; 32], token: &RefreshToken) -> [u8; 32] {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    m.update(token.session_id.as_bytes());
    m.update(&token.secret);
    m.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(key: u8) -> RefreshTokens {
        RefreshTokens::new(&Secret::new(vec![key; 32]), None)
    }

    #[test]
    fn a_token_round_trips_and_a_tampered_one_does_not() {
        let t = tokens(1);
        let token = t.generate(Uuid::new_v4());
        let text = t.encode(&token);
        assert_eq!(t.decode(&text), Some(token.clone()));
        let mut bytes = URL_SAFE_NO_PAD.decode(&text).unwrap();
        bytes[20] ^= 1;
        assert_eq!(t.decode(&URL_SAFE_NO_PAD.encode(bytes)), None);
        assert_eq!(tokens(2).decode(&text), None, "another server's key");
        assert_eq!(t.decode("not a token"), None);
    }

    #[test]
    fn successors_are_deterministic_and_distinct() {
        let t = tokens(1);
        let first = t.generate(Uuid::new_v4());
        let next = t.successor(&first);
        assert_eq!(next, t.successor(&first));
        assert_ne!(next, first);
        assert_ne!(next.hash(), first.hash());
        assert_eq!(next.session_id, first.session_id);
    }
}
