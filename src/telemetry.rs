//! Logging: readable lines or JSON (`QUIRE_LOG_FORMAT`); always to stderr,
//! so that commands such as `print-schema` keep stdout for their output.

use std::{
    collections::HashSet,
    io::IsTerminal,
    sync::{
        OnceLock, RwLock,
        atomic::{AtomicUsize, Ordering},
    },
};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// A `QUIRE_LOG` filter that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid QUIRE_LOG: '{filter}': {reason}")]
pub struct BadLogFilter {
    filter: String,
    reason: String,
}

/// Libraries that print what passes through them at their debug and trace levels:
/// WebSocket frames (a `connection_init` carries a bearer token), HTTP headers, request
/// bodies in rejections, a mail conversation. No setting of `QUIRE_LOG` lets them below
/// `info`, since no level of logging may print a secret.
const CAPPED_AT_INFO: &[&str] = &[
    "tungstenite",
    "tokio_tungstenite",
    "hyper",
    "hyper_util",
    "h2",
    "axum",
    "tower_http",
    "reqwest",
    "rustls",
    "lettre",
];

/// Whether an event or span from `target` at `level` may be logged at all.
pub fn loggable(target: &str, level: &tracing::Level) -> bool {
    *level <= tracing::Level::INFO
        || !CAPPED_AT_INFO.iter().any(|capped| {
            target
                .strip_prefix(capped)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
        })
}

/// Installs the global subscriber with the `QUIRE_LOG` filter (`info`, `quire=debug`, …),
/// under the cap of [`loggable`].
pub fn init(filter: &str, json: bool) -> Result<(), BadLogFilter> {
    let filter = EnvFilter::try_new(filter).map_err(|e| BadLogFilter {
        filter: filter.to_owned(),
        reason: e.to_string(),
    })?;
    let registry =
        tracing_subscriber::registry()
            .with(filter)
            .with(tracing_subscriber::filter::filter_fn(|meta| {
                loggable(meta.target(), meta.level())
            }));
    let result = match json {
        true => registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .try_init(),
        false => registry
            .with(
                fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    // Already installed (a test harness, say): keep the existing one.
    let _ = result;
    Ok(())
}

/// The Prometheus recorder, installed once per process, and its handle for rendering.
pub fn metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("graphql_operation_duration_seconds".to_owned()),
                    &[
                        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    ],
                )
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder already installed (an embedding program's): keep it.
            let _ = ::metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The operation names that get metric series of their own, so that clients cannot
/// create series without end: every series is kept for the life of the process, and
/// each costs memory and a share of every scrape.
///
/// The names of trusted documents always have their own; of the others, the first
/// `max` plain names (letters, digits and underscores, at most 64) of operations that ran
/// without errors. Any other name is counted as `other`, and an operation without a name
/// as `anonymous`.
pub struct OperationNames {
    known: RwLock<HashSet<String>>,
    /// How many names besides the trusted ones may still be taken in.
    room: AtomicUsize,
}

impl OperationNames {
    /// Room for `max` names, and every one of `trusted`.
    pub fn new(max: usize, trusted: impl IntoIterator<Item = String>) -> Self {
        Self {
            known: RwLock::new(trusted.into_iter().collect()),
            room: AtomicUsize::new(max),
        }
    }

    /// The label value for an operation named `name`, which ran without errors if `clean`:
    /// only such an operation's name may take one of the places left.
    pub fn label(&self, name: Option<&str>, clean: bool) -> String {
        let Some(name) = name else {
            return "anonymous".to_owned();
        };
        let plain = (1..=64).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !plain {
            return "other".to_owned();
        }
        if self
            .known
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(name)
        {
            return name.to_owned();
        }
        if !clean || self.room.load(Ordering::Relaxed) == 0 {
            return "other".to_owned();
        }
        let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
        if known.contains(name) {
            return name.to_owned();
        }
        let taken = self
            .room
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |room| {
                room.checked_sub(1)
            });
        if taken.is_err() {
            return "other".to_owned();
        }
        known.insert(name.to_owned());
        name.to_owned()
    }
}

/// Counts an authentication event (`login_succeeded`, `login_failed`, `refreshed`,
/// `refresh_token_reused`, `rate_limited`, `api_key_accepted`, `api_key_refused`).
pub fn auth_event(kind: &'static str) {
    ::metrics::counter!("auth_events_total", "kind" => kind).increment(1);
}
