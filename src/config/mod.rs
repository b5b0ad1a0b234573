//! Runtime configuration: what the server needs to know, validated once at start-up.
//!
//! Each concern is one clap group below, and each setting one field of it: its flag, its
//! environment variable, its default, its `--help` text (the doc comment) and its parser
//! ([`parse`]) all sit on that field, so adding a setting is editing one place. The
//! groups every command reads form [`Common`]; the server's own form [`Serving`], shown
//! by `quire serve --help` only but read by every command, so that a bad value is caught
//! whatever the command. [`Config::new`] joins the two and
//! makes the few checks that span settings.
//!
//! An empty value (`QUIRE_JWT_SECRET=` in a compose file, say) means the setting is
//! unset. This module is a leaf: it imports nothing else of the crate.

pub mod parse;
mod secret;
mod serving;

use clap::{Args, FromArgMatches};

pub use parse::List;
pub use secret::{DatabaseUrl, Secret};
pub use serving::{
    AuthConfig, Connections, Exposure, ExposureSettings, Limits, Persisted, Server, Serving,
    ThrottleConfig, WebSockets,
};

/// A configuration error, phrased as one line that names the setting.
#[derive(Debug, thiserror::Error)]
#[error("invalid {setting}: {reason}")]
pub struct ConfigError {
    setting: String,
    reason: String,
}

impl ConfigError {
    /// An error about `setting` (its environment variable), saying what is wrong.
    pub fn new(setting: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            reason: reason.into(),
        }
    }
}

/// Which kind of deployment this is: it decides the log format and what the server
/// shows of itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// Local development: readable logs, GraphiQL, introspection and metrics shown.
    Development,
    /// A deployment: JSON logs; only what is asked for is shown.
    Production,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines, coloured on a terminal.
    Text,
    /// One JSON object per line.
    Json,
}

/// Settings every command reads.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Database and logs (every command)")]
pub struct Common {
    /// Database: sqlite://path/to.db (created when missing) or postgres://user@host/db
    #[arg(long = "database-url", env = "DATABASE_URL", default_value = "sqlite://quire.db",
          value_parser = DatabaseUrl::parse, global = true)]
    pub database_url: DatabaseUrl,
    /// The most database connections to open
    #[arg(long = "database-pool-size", env = "QUIRE_DATABASE_POOL_SIZE", default_value = "8",
          value_parser = parse::pool_size, global = true)]
    pub pool_size: u32,
    /// development or production
    #[arg(long = "env", env = "QUIRE_ENV", default_value = "development",
          value_parser = parse::environment, global = true)]
    pub environment: Environment,
    /// Log filter, e.g. info, debug or quire=debug,info
    #[arg(long, env = "QUIRE_LOG", default_value = "info", global = true)]
    pub log: String,
    /// Log format: text or json (default: text in development, json in production)
    #[arg(long, env = "QUIRE_LOG_FORMAT", value_parser = parse::log_format, global = true)]
    pub log_format: Option<LogFormat>,
}

impl Common {
    /// Whether log lines are JSON: as asked, or in production.
    pub fn json_logs(&self) -> bool {
        match self.log_format {
            Some(format) => format == LogFormat::Json,
            None => self.environment == Environment::Production,
        }
    }
}

/// Everything the server needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// The database to use (`DATABASE_URL`).
    pub database_url: DatabaseUrl,
    /// The most database connections the pool opens (`QUIRE_DATABASE_POOL_SIZE`).
    pub pool_size: u32,
    /// Where the server listens and whom it believes.
    pub server: Server,
    /// Token and session lifetimes, and the signing key.
    pub auth: AuthConfig,
    /// What the server shows of itself, decided for this environment.
    pub exposure: Exposure,
    /// Bounds on requests.
    pub limits: Limits,
    /// Brute-force protection.
    pub throttle: ThrottleConfig,
    /// Bounds on connections and how long they may idle.
    pub connections: Connections,
    /// Bounds on WebSocket connections and their subscriptions.
    pub websockets: WebSockets,
    /// Persisted queries and trusted documents.
    pub persisted: Persisted,
}

/// All settings before they are joined: what the command line and the environment gave.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Settings every command reads.
    pub common: Common,
    /// The server's settings.
    pub serving: Serving,
}

impl Default for Settings {
    /// The documented defaults, whatever the environment holds.
    fn default() -> Self {
        Self {
            common: defaults(),
            serving: defaults(),
        }
    }
}

impl Config {
    /// Joins the settings, making the checks that span them.
    pub fn new(Settings { common, serving }: Settings) -> Result<Self, ConfigError> {
        let Serving {
            server,
            auth,
            exposure,
            limits,
            throttle,
            connections,
            websockets,
            persisted,
        } = serving;
        if persisted.only && persisted.documents.is_none() {
            return Err(ConfigError::new(
                "QUIRE_PERSISTED_ONLY",
                "it needs QUIRE_PERSISTED_DOCUMENTS, the file of allowed operations",
            ));
        }
        let listener_not_postgres = |url: &DatabaseUrl| !matches!(url, DatabaseUrl::Postgres(_));
        if let Some(listener) = &server.listener_database_url
            && (listener_not_postgres(listener) || listener_not_postgres(&common.database_url))
        {
            return Err(ConfigError::new(
                "QUIRE_LISTENER_DATABASE_URL",
                "it is for PostgreSQL only: both it and DATABASE_URL must be postgres:// URLs \
                 of the same database",
            ));
        }
        let development = common.environment == Environment::Development;
        Ok(Self {
            database_url: common.database_url,
            pool_size: common.pool_size,
            exposure: Exposure {
                introspection: exposure.introspection.unwrap_or(development),
                graphiql: exposure.graphiql.unwrap_or(development),
                metrics: exposure.metrics.unwrap_or(development),
            },
            server,
            auth,
            limits,
            throttle,
            connections,
            websockets,
            persisted,
        })
    }
}

/// Leaves out of `cmd` and its subcommands the environment values that do not count: an
/// empty one (the setting is unset), and one whose flag is among `args` (the flag wins).
/// clap reads a global setting's variable at every level of commands, and would refuse a
/// bad value there even when a flag after the command's name overrides it.
pub fn settle_env(cmd: clap::Command, args: &[String]) -> clap::Command {
    let flagged = |long: &str| {
        args.iter().any(|a| {
            a.strip_prefix("--")
                .is_some_and(|rest| rest.split('=').next() == Some(long))
        })
    };
    cmd.mut_args(|arg| {
        let empty = arg
            .get_env()
            .and_then(std::env::var_os)
            .is_some_and(|v| v.is_empty());
        match empty || arg.get_long().is_some_and(flagged) {
            true => arg.env(None),
            false => arg,
        }
    })
    .mut_subcommands(|sub| settle_env(sub, args))
}

/// A group of settings at its documented defaults, whatever the environment holds.
pub fn defaults<T: Args + FromArgMatches>() -> T {
    let cmd = T::augment_args(clap::Command::new("quire")).mut_args(|arg| arg.env(None));
    let matches = cmd
        .try_get_matches_from(["quire"])
        .expect("the documented defaults are valid");
    T::from_arg_matches(&matches).expect("the documented defaults are valid")
}

/// Rephrases clap's report of a bad value as one line naming the environment variable,
/// as [`ConfigError`] does; `None` for every other report (help, unknown flags, …).
pub fn explain(cmd: &clap::Command, e: &clap::Error) -> Option<ConfigError> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::ValueValidation {
        return None;
    }
    let Some(ContextValue::String(shown)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let long = shown.trim_start_matches('-').split([' ', '=']).next()?;
    // Settings only: a command's own arguments keep clap's report.
    let env = find_arg(cmd, long)?.get_env()?;
    let setting = format!("{} (--{long})", env.to_string_lossy());
    let reason =
        std::error::Error::source(e).map_or_else(|| "bad value".to_owned(), |s| s.to_string());
    Some(ConfigError::new(setting, reason))
}

fn find_arg<'a>(cmd: &'a clap::Command, long: &str) -> Option<&'a clap::Arg> {
    cmd.get_arguments()
        .find(|a| a.get_long() == Some(long))
        .or_else(|| cmd.get_subcommands().find_map(|sub| find_arg(sub, long)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        #[derive(clap::Parser)]
        struct Both {
            #[command(flatten)]
            common: Common,
            #[command(flatten)]
            serving: Serving,
        }
        use clap::CommandFactory;
        let cmd = settle_env(Both::command(), &[]);
        let matches = cmd
            .clone()
            .try_get_matches_from(std::iter::once("quire").chain(args.iter().copied()))
            .map_err(|e| explain(&cmd, &e).unwrap_or_else(|| panic!("{e}")))?;
        let both = Both::from_arg_matches(&matches).unwrap();
        Config::new(Settings {
            common: both.common,
            serving: both.serving,
        })
    }

    #[test]
    fn bad_values_are_named_by_their_environment_variable() {
        let err = parse(&["--session-max-age", "36501d"])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid QUIRE_SESSION_MAX_AGE (--session-max-age): '36501d' is longer than 100 years"
        );
        assert!(parse(&["--session-max-age", "36500d"]).is_ok());
        let err = parse(&["--jwt-secret", &"x".repeat(31)])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("invalid QUIRE_JWT_SECRET (--jwt-secret): it is 31 bytes long"),
            "{err}"
        );
        assert!(!err.contains("xxx"), "{err}");
        for (flag, bad) in [
            ("--max-depth", "0"),
            ("--max-body", "1GB"),
            ("--max-aliases", "few"),
            ("--graphiql", "maybe"),
        ] {
            let err = parse(&[flag, bad]).unwrap_err().to_string();
            assert!(err.contains(flag), "{flag}={bad}: {err}");
        }
    }

    #[test]
    fn limits_are_read() {
        let config = parse(&["--max-body", "64KiB"]).unwrap();
        assert_eq!(config.limits.max_body, 65_536);
        assert_eq!(config.limits.max_depth, 15);
        assert_eq!(
            Config::new(Settings::default()).unwrap().limits.max_body,
            1_048_576
        );
    }

    #[test]
    fn persisted_queries_and_graphiql_assets_are_read_and_checked() {
        let config = Config::new(Settings::default()).unwrap();
        assert_eq!(config.persisted.cache_bytes, 4 * 1024 * 1024);
        assert_eq!(
            config.server.graphiql_assets,
            "https://cdn.jsdelivr.net/npm"
        );
        let config = parse(&[
            "--persisted-queries-cache",
            "0",
            "--graphiql-assets",
            "http://127.0.0.1:9000/npm/",
        ])
        .unwrap();
        assert_eq!(config.persisted.cache_bytes, 0);
        assert_eq!(config.server.graphiql_assets, "http://127.0.0.1:9000/npm");
        let err = parse(&["--persisted-only", "true"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("QUIRE_PERSISTED_ONLY"), "{err}");
    }

    #[test]
    fn production_shows_only_what_it_is_asked_to() {
        let dev = Config::new(Settings::default()).unwrap();
        assert!(dev.exposure.introspection && dev.exposure.graphiql);
        let prod = parse(&["--env", "production"]).unwrap();
        assert!(!prod.exposure.introspection && !prod.exposure.graphiql && !prod.exposure.metrics);
        let asked = parse(&["--env", "prod", "--introspection", "yes"]).unwrap();
        assert!(asked.exposure.introspection && !asked.exposure.graphiql);
    }

    #[test]
    fn production_logs_json_unless_asked_for_text() {
        let mut common: Common = defaults();
        assert!(!common.json_logs());
        common.environment = Environment::Production;
        assert!(common.json_logs());
        common.log_format = Some(LogFormat::Text);
        assert!(!common.json_logs());
    }
}
