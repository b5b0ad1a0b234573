//! Operations sent by hash instead of in full: automatic persisted queries (a client
//! sends `extensions.persistedQuery.sha256Hash`; on a miss it sends the text once more
//! with the hash, and the server remembers it) and trusted documents (a file of the
//! only operations a locked-down deployment will run).
//!
//! Used alike by the HTTP transport and by WebSocket subscriptions.

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex},
};

use async_graphql::{Value, parser::types::DocumentOperations};
use lru::LruCache;
use sha2::{Digest, Sha256};

use crate::{config::Persisted, error::Code};

/// Why an operation sent by hash, or not in the trusted documents, cannot run. The HTTP
/// edge picks the response's status from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The hash is not known (yet): the client should send the text with it.
    NotFound,
    /// Automatic persisted queries are turned off.
    NotSupported,
    /// The text sent does not have the hash sent with it.
    HashMismatch,
    /// `extensions.persistedQuery` is not `{"version": 1, "sha256Hash": "…"}`.
    Malformed(String),
    /// The operation is not among the trusted documents; `by_hash` when it was sent by
    /// hash rather than in full.
    NotInList {
        /// Whether the client sent a hash.
        by_hash: bool,
    },
}

impl Failure {
    /// The `extensions.code` of the error.
    pub fn code(&self) -> Code {
        match self {
            Self::NotFound => Code::PersistedQueryNotFound,
            Self::NotSupported => Code::PersistedQueryNotSupported,
            Self::HashMismatch | Self::Malformed(_) => Code::BadRequest,
            Self::NotInList { .. } => Code::PersistedQueryNotInList,
        }
    }

    /// The error's message. The first two are the exact words clients look for.
    pub fn message(&self) -> String {
        match self {
            Self::NotFound => "PersistedQueryNotFound".to_owned(),
            Self::NotSupported => "PersistedQueryNotSupported".to_owned(),
            Self::HashMismatch => "provided sha does not match query".to_owned(),
            Self::Malformed(why) => why.clone(),
            Self::NotInList { .. } => {
                "this server runs only the operations in its list of trusted documents".to_owned()
            }
        }
    }
}

/// What a request will run, once its document is found.
#[derive(Debug)]
pub struct Resolved {
    /// The operation's text.
    pub query: String,
    /// A hash to remember the text under, once it proves to be GraphQL.
    pub register: Option<String>,
}

/// The trusted documents and the persisted-query cache.
pub struct Documents {
    trusted: HashMap<String, Arc<str>>,
    only: bool,
    cache: Option<Mutex<Cache>>,
}

struct Cache {
    entries: LruCache<String, Arc<str>>,
    bytes: usize,
    max_bytes: usize,
}

/// The SHA-256 of `text`, in lowercase hex.
pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Documents {
    /// Loads the trusted documents, if any, checking that every hash matches its text.
    pub fn load(config: &Persisted) -> Result<Self, String> {
        let trusted = match &config.documents {
            Some(path) => read_documents(path)?,
            None => HashMap::new(),
        };
        let cache = (config.cache_bytes > 0 && !config.only).then(|| {
            Mutex::new(Cache {
                entries: LruCache::unbounded(),
                bytes: 0,
                max_bytes: config.cache_bytes,
            })
        });
        Ok(Self {
            trusted,
            only: config.only,
            cache,
        })
    }

    /// The names of the trusted documents' operations.
    pub fn operation_names(&self) -> Vec<String> {
        self.trusted
            .values()
            .filter_map(|text| async_graphql::parser::parse_query(&**text).ok())
            .flat_map(|document| match document.operations {
                DocumentOperations::Single(_) => Vec::new(),
                DocumentOperations::Multiple(operations) => operations
                    .into_keys()
                    .map(|name| name.to_string())
                    .collect(),
            })
            .collect()
    }

    /// How many trusted documents are loaded.
    pub fn trusted_len(&self) -> usize {
        self.trusted.len()
    }

    /// Finds the text of the operation a request asks for: `query` as sent (empty when
    /// it was not), and the hash in `extensions.persistedQuery`, if any.
    pub fn resolve(
        &self,
        query: &str,
        extensions: &HashMap<String, Value>,
    ) -> Result<Resolved, Failure> {
        let hash = persisted_hash(extensions)?;
        if let Some(hash) = &hash
            && !query.is_empty()
            && sha256_hex(query) != *hash
        {
            return Err(Failure::HashMismatch);
        }
        match hash {
            None if self.only => {
                if self.trusted.contains_key(&sha256_hex(query)) {
                    Ok(self.text(query))
                } else {
                    Err(Failure::NotInList { by_hash: false })
                }
            }
            None => Ok(self.text(query)),
            Some(hash) => {
                if let Some(text) = self.trusted.get(&hash) {
                    return Ok(self.text(text));
                }
                if self.only {
                    return Err(Failure::NotInList { by_hash: true });
                }
                let Some(cache) = &self.cache else {
                    return Err(Failure::NotSupported);
                };
                if !query.is_empty() {
                    return Ok(Resolved {
                        query: query.to_owned(),
                        register: Some(hash),
                    });
                }
                let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
                match cache.entries.get(&hash) {
                    Some(text) => Ok(self.text(text)),
                    None => Err(Failure::NotFound),
                }
            }
        }
    }

    fn text(&self, query: &str) -> Resolved {
        Resolved {
            query: query.to_owned(),
            register: None,
        }
    }

    /// Remembers `query` under `hash` (already checked), forgetting the least recently
    /// used texts to stay within the cache's size.
    pub fn remember(&self, hash: String, query: &str) {
        let Some(cache) = &self.cache else {
            return;
        };
        let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
        let cost = entry_cost(query);
        if cost > cache.max_bytes || cache.entries.contains(&hash) {
            return;
        }
        cache.bytes += cost;
        cache.entries.put(hash, Arc::from(query));
        while cache.bytes > cache.max_bytes {
            match cache.entries.pop_lru() {
                Some((_, old)) => cache.bytes -= entry_cost(&old),
                None => break,
            }
        }
    }
}

/// What an entry of the cache costs in memory: its text, its hash, and the bookkeeping
/// of the map and the list around them, so that many tiny texts cannot hold more memory
/// than the setting allows.
fn entry_cost(query: &str) -> usize {
    const BOOKKEEPING: usize = 160;
    query.len() + 64 + BOOKKEEPING
}

/// The lowercase hash in `extensions.persistedQuery`, if the request has one.
fn persisted_hash(extensions: &HashMap<String, Value>) -> Result<Option<String>, Failure> {
    let Some(persisted) = extensions.get("persistedQuery") else {
        return Ok(None);
    };
    let malformed = |why: &str| Failure::Malformed(format!("extensions.persistedQuery {why}"));
    let Value::Object(fields) = persisted else {
        return Err(malformed("must be an object"));
    };
    match fields.get("version") {
        Some(Value::Number(n)) if n.as_u64() == Some(1) => {}
        _ => return Err(malformed("must have version 1")),
    }
    match fields.get("sha256Hash") {
        Some(Value::String(hash))
            if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Ok(Some(hash.to_ascii_lowercase()))
        }
        _ => Err(malformed(
            "must have a sha256Hash of 64 hexadecimal characters",
        )),
    }
}

/// Reads a persisted query manifest (`{"format": "apollo-persisted-query-manifest",
/// "operations": [{"id", "body"}, …]}`) or a plain object from hash to text.
fn read_documents(path: &Path) -> Result<HashMap<String, Arc<str>>, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{shown} is not JSON: {e}"))?;
    let pairs: Vec<(String, String)> = match &json {
        serde_json::Value::Object(map) if map.contains_key("operations") => map["operations"]
            .as_array()
            .ok_or_else(|| format!("{shown}: operations must be an array"))?
            .iter()
            .enumerate()
            .map(|(i, op)| {
                let id = op.get("id").and_then(|v| v.as_str());
                let body = op.get("body").and_then(|v| v.as_str());
                match (id, body) {
                    (Some(id), Some(body)) => Ok((id.to_owned(), body.to_owned())),
                    _ => Err(format!(
                        "{shown}: operation {i} needs an \"id\" and a \"body\""
                    )),
                }
            })
            .collect::<Result<_, _>>()?,
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(hash, body)| match body.as_str() {
                Some(body) => Ok((hash.clone(), body.to_owned())),
                None => Err(format!("{shown}: the value of {hash} must be a string")),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(format!("{shown} must hold a JSON object")),
    };
    let mut documents = HashMap::with_capacity(pairs.len());
    for (hash, body) in pairs {
        let hash = hash.to_ascii_lowercase();
        if sha256_hex(&body) != hash {
            return Err(format!(
                "{shown}: {hash} is not the SHA-256 of its operation's text"
            ));
        }
        documents.insert(hash, Arc::from(body));
    }
    Ok(documents)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(cache_bytes: usize) -> Persisted {
        Persisted {
            cache_bytes,
            documents: None,
            only: false,
        }
    }

    fn ext(hash: &str) -> HashMap<String, Value> {
        let mut persisted = async_graphql::indexmap::IndexMap::new();
        persisted.insert(async_graphql::Name::new("version"), Value::from(1));
        persisted.insert(async_graphql::Name::new("sha256Hash"), Value::from(hash));
        HashMap::from([("persistedQuery".to_owned(), Value::Object(persisted))])
    }

    #[test]
    fn the_cache_forgets_the_least_recently_used_text_beyond_its_size() {
        let (a, b, c) = ("{ a a a }", "{ b b b }", "{ c c c }");
        let docs = Documents::load(&config(2 * entry_cost(a) + 1)).unwrap();
        for q in [a, b] {
            docs.remember(sha256_hex(q), q);
        }
        // Using `a` makes `b` the least recently used.
        assert!(docs.resolve("", &ext(&sha256_hex(a))).is_ok());
        docs.remember(sha256_hex(c), c);
        assert_eq!(
            docs.resolve("", &ext(&sha256_hex(b))).unwrap_err(),
            Failure::NotFound
        );
        for q in [a, c] {
            assert_eq!(docs.resolve("", &ext(&sha256_hex(q))).unwrap().query, q);
        }
    }

    #[test]
    fn documents_whose_hash_is_not_their_text_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ops.json");
        let good = "query Me { me { id } }";
        let wrong = "0".repeat(64);
        std::fs::write(
            &path,
            serde_json::json!({ sha256_hex(good): good, wrong.clone(): "{ me { id } }" })
                .to_string(),
        )
        .unwrap();
        let config = Persisted {
            documents: Some(path.clone()),
            ..config(1024)
        };
        let err = Documents::load(&config).err().expect("refused");
        assert!(err.contains(&wrong), "{err}");

        std::fs::write(&path, "[1, 2]").unwrap();
        assert!(Documents::load(&config).is_err());
        std::fs::write(&path, r#"{"operations": [{"id": "x"}]}"#).unwrap();
        let err = Documents::load(&config).err().expect("refused");
        assert!(err.contains("operation 0"), "{err}");
    }

    #[test]
    fn a_text_larger_than_the_cache_is_not_kept() {
        let docs = Documents::load(&config(4)).unwrap();
        docs.remember(sha256_hex("{ me }"), "{ me }");
        assert_eq!(
            docs.resolve("", &ext(&sha256_hex("{ me }"))).unwrap_err(),
            Failure::NotFound
        );
    }
}
