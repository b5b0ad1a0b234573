//! Logging: readable lines or JSON (`QUIRE_LOG_FORMAT`); always to stderr,
//! so that commands such as `print-schema` keep stdout for their output.

use std::{io::IsTerminal, sync::OnceLock};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::ConfigError;

/// Installs the global subscriber with the `QUIRE_LOG` filter (`info`, `quire=debug`, …).
pub fn init(filter: &str, json: bool) -> Result<(), ConfigError> {
    let filter = EnvFilter::try_new(filter)
        .map_err(|e| ConfigError::new("QUIRE_LOG", format!("'{filter}': {e}")))?;
    let registry = tracing_subscriber::registry().with(filter);
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

/// A label value from a client's operation name: kept only when it is a plain name, so
/// that clients cannot create series without end.
pub fn operation_label(name: Option<&str>) -> String {
    match name {
        None => "anonymous".to_owned(),
        Some(n)
            if (1..=64).contains(&n.len())
                && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            n.to_owned()
        }
        Some(_) => "other".to_owned(),
    }
}

/// Counts an authentication event (`login_succeeded`, `login_failed`, `refreshed`,
/// `refresh_token_reused`, `rate_limited`, `api_key_accepted`, `api_key_refused`).
pub fn auth_event(kind: &'static str) {
    ::metrics::counter!("auth_events_total", "kind" => kind).increment(1);
}
