//! Values that must never reach a log line: a signing key, and database URLs that may
//! carry a password. Their `Debug` redacts, so every struct holding them can derive it.

use std::fmt;

/// A secret key of at least [`Secret::MIN_LEN`] bytes; `Debug` prints `Secret(***)`.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// The shortest secret accepted, in bytes (the HS256 key size).
    pub const MIN_LEN: usize = 32;

    /// Wraps key bytes as they are; callers enforce [`Secret::MIN_LEN`].
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The raw key bytes, from which signing and MAC keys are made.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// A short public name for the key (16 hex digits of a hash of it): the `kid` of the
    /// tokens it signs, and how instances sharing a database compare keys without
    /// revealing them. Learning a key from it is as hard as from a token it signed.
    pub fn key_id(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        hash.update(b"quire key id v1");
        hash.update(&self.0);
        hash.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The database the server talks to, chosen by the scheme of `DATABASE_URL`;
/// `Debug` hides its password.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A `sqlite:` URL, as given.
    Sqlite(String),
    /// A `postgres:` or `postgresql:` URL, as given; it may carry a password.
    Postgres(String),
}

impl DatabaseUrl {
    /// Parses `sqlite://…` (or `sqlite:…`) and `postgres://…` (or `postgresql://…`).
    pub fn parse(url: &str) -> Result<Self, String> {
        let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
        match scheme {
            "sqlite" => Ok(Self::Sqlite(url.to_owned())),
            "postgres" | "postgresql" => Ok(Self::Postgres(url.to_owned())),
            _ => Err(format!(
                "unknown scheme in '{}' (expected sqlite://path or postgres://host/db)",
                redact(url)
            )),
        }
    }

    /// The URL with any password replaced, safe to print.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite(u) | Self::Postgres(u) => redact(u),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Replaces the password of `scheme://user:password@host` with `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_database_urls_are_redacted() {
        assert_eq!(
            redact("postgres://app:hunter2@db.example:5432/quire"),
            "postgres://app:***@db.example:5432/quire"
        );
        assert_eq!(redact("postgres://app@db/quire"), "postgres://app@db/quire");
        assert_eq!(redact("sqlite://quire.db"), "sqlite://quire.db");
        let url = DatabaseUrl::parse("postgres://app:hunter2@db/quire").unwrap();
        assert_eq!(format!("{url:?}"), "postgres://app:***@db/quire");
        assert_eq!(
            format!("{:?}", Secret::new(b"hunter2".to_vec())),
            "Secret(***)"
        );
    }
}
