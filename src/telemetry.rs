//! Logging: readable lines or JSON (`QUIRE_LOG_FORMAT`); always to stderr,
//! so that commands such as `print-schema` keep stdout for their output.

use std::io::IsTerminal;

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
