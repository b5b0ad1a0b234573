//! Runtime configuration: what the server needs to know, validated once at start-up.
//!
//! Values arrive as strings from flags, the environment or a `.env` file (see
//! [`crate::cli`]); [`Config::from_settings`] turns them into typed values and names
//! the offending setting in every error so an operator can fix it at a glance.

use std::{fmt, net::SocketAddr, time::Duration};

/// A configuration error, phrased as one line that names the setting.
#[derive(Debug, thiserror::Error)]
#[error("invalid {setting}: {reason}")]
pub struct ConfigError {
    setting: &'static str,
    reason: String,
}

impl ConfigError {
    pub(crate) fn new(setting: &'static str, reason: impl Into<String>) -> Self {
        Self {
            setting,
            reason: reason.into(),
        }
    }
}

/// Which kind of deployment this is; production logs JSON lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// Local development: human-readable log lines, coloured on a terminal.
    Development,
    /// A deployment: log lines are JSON.
    Production,
}

/// The database the server talks to, chosen by the scheme of `DATABASE_URL`.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A `sqlite:` URL, as given.
    Sqlite(String),
    /// A `postgres:` or `postgresql:` URL, as given; it may carry a password.
    Postgres(String),
}

impl DatabaseUrl {
    /// Parses `sqlite://…` (or `sqlite:…`) and `postgres://…` (or `postgresql://…`).
    pub fn parse(url: &str) -> Result<Self, ConfigError> {
        let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
        match scheme {
            "sqlite" => Ok(Self::Sqlite(url.to_owned())),
            "postgres" | "postgresql" => Ok(Self::Postgres(url.to_owned())),
            _ => Err(ConfigError::new(
                "DATABASE_URL",
                format!(
                    "unknown scheme in '{}' (expected sqlite://path or postgres://host/db)",
                    redact(url)
                ),
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

/// A secret key of at least 32 bytes; never printed.
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
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Token and session lifetimes.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Lifetime of a JWT access token.
    pub access_token_ttl: Duration,
    /// A refresh token expires this long after it was issued (sliding).
    pub refresh_token_ttl: Duration,
    /// No session outlives this, however often it is refreshed.
    pub session_max_age: Duration,
    /// How long a just-retired refresh token still yields the same successor.
    pub refresh_reuse_grace: Duration,
}

/// Everything the server needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// The database to use (`DATABASE_URL`).
    pub database_url: DatabaseUrl,
    /// The address and port to serve on (`QUIRE_LISTEN`).
    pub listen: SocketAddr,
    /// Development or production (`QUIRE_ENV`); decides the log format.
    pub environment: Environment,
    /// `None`: a key is generated on first start and kept in the database.
    pub jwt_secret: Option<Secret>,
    /// Token and session lifetimes.
    pub auth: AuthConfig,
    /// Bounds on requests.
    pub limits: Limits,
    /// What the server shows of itself.
    pub exposure: Exposure,
    /// Brute-force protection.
    pub throttle: crate::auth::throttle::ThrottleConfig,
    /// Proxies whose `X-Forwarded-For` is believed (`QUIRE_TRUSTED_PROXIES`).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Browser sessions: the refresh token in a cookie (`QUIRE_REFRESH_COOKIE`).
    pub refresh_cookie: bool,
    /// Web origins allowed to call with credentials (`QUIRE_CORS_ORIGINS`).
    pub cors_origins: Vec<String>,
    /// Where to serve `/metrics` instead of the main address (`QUIRE_METRICS_LISTEN`).
    pub metrics_listen: Option<SocketAddr>,
    /// The most database connections the pool opens (`QUIRE_DATABASE_POOL_SIZE`).
    pub pool_size: u32,
    /// Bounds on connections and how long they may idle.
    pub connections: Connections,
    /// Bounds on WebSocket connections and their subscriptions.
    pub websockets: WebSockets,
    /// How many distinct operation names get a metric series of their own
    /// (`QUIRE_METRICS_OPERATIONS`); the rest are counted as `other`.
    pub metrics_operations: usize,
    /// Persisted queries and trusted documents.
    pub persisted: Persisted,
    /// Where the GraphiQL page loads its scripts and styles from
    /// (`QUIRE_GRAPHIQL_ASSETS`), without a trailing slash.
    pub graphiql_assets: String,
}

/// Bounds on the connections one instance serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connections {
    /// How long a client may take to send a request's headers (`QUIRE_HEADER_TIMEOUT`).
    pub header_timeout: Duration,
    /// How long a connection may stay open without a byte read or written
    /// (`QUIRE_IDLE_TIMEOUT`).
    pub idle_timeout: Duration,
    /// The most connections served at once (`QUIRE_MAX_CONNECTIONS`).
    pub max: usize,
    /// The most connections from one client address (`QUIRE_MAX_CONNECTIONS_PER_ADDRESS`);
    /// trusted proxies are not held to it.
    pub per_address: usize,
}

/// Bounds on WebSocket connections (subscriptions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebSockets {
    /// The most signed-in connections served at once (`QUIRE_MAX_WEBSOCKETS`).
    pub max: usize,
    /// The most connections still waiting for their `connection_init`
    /// (`QUIRE_MAX_PENDING_WEBSOCKETS`).
    pub pending: usize,
    /// The most connections of one account (`QUIRE_MAX_WEBSOCKETS_PER_USER`).
    pub per_user: usize,
    /// The most connections from one client address, signed in or not
    /// (`QUIRE_MAX_WEBSOCKETS_PER_ADDRESS`).
    pub per_address: usize,
    /// The most subscriptions one account runs at once, over all its connections
    /// (`QUIRE_MAX_SUBSCRIPTIONS_PER_USER`).
    pub subscriptions_per_user: usize,
}

/// Operations sent by hash instead of in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persisted {
    /// How many bytes of query text automatic persisted queries may keep
    /// (`QUIRE_PERSISTED_QUERIES_CACHE`); 0 turns them off.
    pub cache_bytes: usize,
    /// A file of allowed operations (`QUIRE_PERSISTED_DOCUMENTS`).
    pub documents: Option<std::path::PathBuf>,
    /// Refuse every operation that is not in `documents` (`QUIRE_PERSISTED_ONLY`).
    pub only: bool,
}

/// What the server shows of itself: everything in development; in production only what
/// is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exposure {
    /// Schema introspection and "did you mean" suggestions (`QUIRE_INTROSPECTION`).
    pub introspection: bool,
    /// The GraphiQL page on `GET /graphql` (`QUIRE_GRAPHIQL`).
    pub graphiql: bool,
    /// `/metrics` on the main address, when it has none of its own (`QUIRE_METRICS`).
    pub metrics: bool,
    /// JSON log lines rather than readable ones (`QUIRE_LOG_FORMAT`).
    pub json_logs: bool,
}

/// The documented defaults, shared by the command line and the tests.
pub mod defaults {
    /// `DATABASE_URL`: the SQLite file `quire.db` in the working directory.
    pub const DATABASE_URL: &str = "sqlite://quire.db";
    /// `QUIRE_LISTEN`: port 8000 on the loopback interface only.
    pub const LISTEN: &str = "127.0.0.1:8000";
    /// `QUIRE_ENV`: development, with human-readable logs.
    pub const ENVIRONMENT: &str = "development";
    /// `QUIRE_ACCESS_TOKEN_TTL`: 15 minutes.
    pub const ACCESS_TOKEN_TTL: &str = "15m";
    /// `QUIRE_REFRESH_TOKEN_TTL`: 30 days.
    pub const REFRESH_TOKEN_TTL: &str = "30d";
    /// `QUIRE_SESSION_MAX_AGE`: 90 days.
    pub const SESSION_MAX_AGE: &str = "90d";
    /// `QUIRE_REFRESH_REUSE_GRACE`: 10 seconds.
    pub const REFRESH_REUSE_GRACE: &str = "10s";
    /// `QUIRE_LOG`: `info` and above, from every target.
    pub const LOG: &str = "info";
    /// `QUIRE_MAX_DEPTH`.
    pub const MAX_DEPTH: &str = "15";
    /// `QUIRE_MAX_COMPLEXITY`.
    pub const MAX_COMPLEXITY: &str = "2000";
    /// `QUIRE_MAX_ALIASES`.
    pub const MAX_ALIASES: &str = "15";
    /// `QUIRE_MAX_NODES`.
    pub const MAX_NODES: &str = "4000";
    /// `QUIRE_MAX_SUBSCRIPTION_COMPLEXITY`.
    pub const MAX_SUBSCRIPTION_COMPLEXITY: &str = "200";
    /// `QUIRE_MAX_BODY`.
    pub const MAX_BODY: &str = "1MiB";
    /// `QUIRE_MAX_BATCH`.
    pub const MAX_BATCH: &str = "10";
    /// `QUIRE_RATE_LIMIT`.
    pub const RATE_LIMIT: &str = "on";
    /// `QUIRE_RATE_LIMIT_PER_MINUTE`.
    pub const RATE_LIMIT_PER_MINUTE: &str = "30";
    /// `QUIRE_RATE_LIMIT_BURST`.
    pub const RATE_LIMIT_BURST: &str = "10";
    /// `QUIRE_DATABASE_POOL_SIZE`.
    pub const DATABASE_POOL_SIZE: &str = "8";
    /// `QUIRE_MAX_WEBSOCKETS`.
    pub const MAX_WEBSOCKETS: &str = "10000";
    /// `QUIRE_MAX_PENDING_WEBSOCKETS`.
    pub const MAX_PENDING_WEBSOCKETS: &str = "1000";
    /// `QUIRE_MAX_WEBSOCKETS_PER_USER`.
    pub const MAX_WEBSOCKETS_PER_USER: &str = "20";
    /// `QUIRE_MAX_WEBSOCKETS_PER_ADDRESS`.
    pub const MAX_WEBSOCKETS_PER_ADDRESS: &str = "50";
    /// `QUIRE_MAX_SUBSCRIPTIONS_PER_USER`.
    pub const MAX_SUBSCRIPTIONS_PER_USER: &str = "200";
    /// `QUIRE_HEADER_TIMEOUT`.
    pub const HEADER_TIMEOUT: &str = "10s";
    /// `QUIRE_IDLE_TIMEOUT`.
    pub const IDLE_TIMEOUT: &str = "60s";
    /// `QUIRE_MAX_CONNECTIONS`.
    pub const MAX_CONNECTIONS: &str = "16384";
    /// `QUIRE_MAX_CONNECTIONS_PER_ADDRESS`.
    pub const MAX_CONNECTIONS_PER_ADDRESS: &str = "256";
    /// `QUIRE_WRITE_RATE_PER_MINUTE`.
    pub const WRITE_RATE_PER_MINUTE: &str = "60";
    /// `QUIRE_WRITE_BURST`.
    pub const WRITE_BURST: &str = "30";
    /// `QUIRE_METRICS_OPERATIONS`.
    pub const METRICS_OPERATIONS: &str = "200";
    /// `QUIRE_PERSISTED_QUERIES_CACHE`.
    pub const PERSISTED_QUERIES_CACHE: &str = "4MiB";
    /// `QUIRE_GRAPHIQL_ASSETS`: the npm packages as a public CDN serves them.
    pub const GRAPHIQL_ASSETS: &str = "https://cdn.jsdelivr.net/npm";
}

/// Bounds on what one request may ask for; a request beyond them is refused before
/// anything runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How deeply selections may nest (`QUIRE_MAX_DEPTH`).
    pub max_depth: usize,
    /// The most an operation may cost, where a connection costs its `first` times its
    /// selection (`QUIRE_MAX_COMPLEXITY`).
    pub max_complexity: usize,
    /// The most aliased fields in one operation (`QUIRE_MAX_ALIASES`).
    pub max_aliases: usize,
    /// The most nodes (fields, fragment spreads, inline fragments, arguments, directives,
    /// values) a document has once its fragments are expanded (`QUIRE_MAX_NODES`).
    pub max_nodes: usize,
    /// The most a subscription may cost, since it runs again for every event
    /// (`QUIRE_MAX_SUBSCRIPTION_COMPLEXITY`).
    pub max_subscription_complexity: usize,
    /// The largest request body, in bytes (`QUIRE_MAX_BODY`).
    pub max_body: usize,
    /// The most operations in one batch, a JSON array of requests (`QUIRE_MAX_BATCH`).
    pub max_batch: usize,
}

/// The raw settings as strings, before validation, as flags, the environment or a `.env`
/// file give them (the doc comments are the `--help` text).
#[derive(Clone, clap::Args)]
pub struct Settings {
    /// Database: sqlite://path/to.db (created when missing) or postgres://user@host/db
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = defaults::DATABASE_URL,
        global = true
    )]
    pub database_url: String,
    /// Address and port to serve on
    #[arg(
        long,
        env = "QUIRE_LISTEN",
        default_value = defaults::LISTEN,
        global = true
    )]
    pub listen: String,
    /// development or production
    #[arg(
        long = "env",
        env = "QUIRE_ENV",
        default_value = defaults::ENVIRONMENT,
        global = true
    )]
    pub environment: String,
    /// Key that signs access tokens, at least 32 bytes; when unset, a random key is
    /// generated on first start and kept in the database
    #[arg(long, env = "QUIRE_JWT_SECRET", hide_env_values = true, global = true)]
    pub jwt_secret: Option<String>,
    /// Lifetime of access tokens (e.g. 15m)
    #[arg(
        long,
        env = "QUIRE_ACCESS_TOKEN_TTL",
        default_value = defaults::ACCESS_TOKEN_TTL,
        global = true
    )]
    pub access_token_ttl: String,
    /// Lifetime of a refresh token from its issue; each refresh issues a new one
    #[arg(
        long,
        env = "QUIRE_REFRESH_TOKEN_TTL",
        default_value = defaults::REFRESH_TOKEN_TTL,
        global = true
    )]
    pub refresh_token_ttl: String,
    /// Longest a session can last, however often it is refreshed
    #[arg(
        long,
        env = "QUIRE_SESSION_MAX_AGE",
        default_value = defaults::SESSION_MAX_AGE,
        global = true
    )]
    pub session_max_age: String,
    /// How long a just-used refresh token still returns the same new token, so that
    /// concurrent refreshes do not end the session
    #[arg(
        long,
        env = "QUIRE_REFRESH_REUSE_GRACE",
        default_value = defaults::REFRESH_REUSE_GRACE,
        global = true
    )]
    pub refresh_reuse_grace: String,
    /// How deeply a query's selections may nest
    #[arg(long, env = "QUIRE_MAX_DEPTH", default_value = defaults::MAX_DEPTH, global = true)]
    pub max_depth: String,
    /// The most a query may cost; a connection field costs its `first` times its selection
    #[arg(
        long,
        env = "QUIRE_MAX_COMPLEXITY",
        default_value = defaults::MAX_COMPLEXITY,
        global = true
    )]
    pub max_complexity: String,
    /// The most aliased fields in one operation
    #[arg(long, env = "QUIRE_MAX_ALIASES", default_value = defaults::MAX_ALIASES, global = true)]
    pub max_aliases: String,
    /// The most nodes (fields, fragment spreads, inline fragments, arguments, directives,
    /// values) a document may have once its fragments are expanded, each fragment counted
    /// as often as it is spread
    #[arg(
        long,
        env = "QUIRE_MAX_NODES",
        default_value = defaults::MAX_NODES,
        global = true
    )]
    pub max_nodes: String,
    /// The most a subscription may cost (as QUIRE_MAX_COMPLEXITY, but it runs for every
    /// event)
    #[arg(
        long,
        env = "QUIRE_MAX_SUBSCRIPTION_COMPLEXITY",
        default_value = defaults::MAX_SUBSCRIPTION_COMPLEXITY,
        global = true
    )]
    pub max_subscription_complexity: String,
    /// The largest request body, e.g. 1MiB, 64KiB or 4096 (bytes)
    #[arg(long, env = "QUIRE_MAX_BODY", default_value = defaults::MAX_BODY, global = true)]
    pub max_body: String,
    /// Serve schema introspection and "did you mean" hints: true or false (default: true in
    /// development, false in production)
    #[arg(long, env = "QUIRE_INTROSPECTION", global = true)]
    pub introspection: Option<String>,
    /// Serve the GraphiQL page on GET /graphql: true or false (default: true in
    /// development, false in production)
    #[arg(long, env = "QUIRE_GRAPHIQL", global = true)]
    pub graphiql: Option<String>,
    /// Serve /metrics on the main address: true or false (default: true in development,
    /// false in production); QUIRE_METRICS_LISTEN serves it on an address of its own
    #[arg(long, env = "QUIRE_METRICS", global = true)]
    pub metrics: Option<String>,
    /// Log format: text or json (default: text in development, json in production)
    #[arg(long, env = "QUIRE_LOG_FORMAT", global = true)]
    pub log_format: Option<String>,
    /// The most operations in one batch (a JSON array of requests)
    #[arg(long, env = "QUIRE_MAX_BATCH", default_value = defaults::MAX_BATCH, global = true)]
    pub max_batch: String,
    /// Brute-force protection: on or off
    #[arg(long, env = "QUIRE_RATE_LIMIT", default_value = defaults::RATE_LIMIT, global = true)]
    pub rate_limit: String,
    /// Credential operations (login, register, refresh, …) allowed per minute per client IP
    #[arg(
        long,
        env = "QUIRE_RATE_LIMIT_PER_MINUTE",
        default_value = defaults::RATE_LIMIT_PER_MINUTE,
        global = true
    )]
    pub rate_limit_per_minute: String,
    /// How many of those may come at once
    #[arg(
        long,
        env = "QUIRE_RATE_LIMIT_BURST",
        default_value = defaults::RATE_LIMIT_BURST,
        global = true
    )]
    pub rate_limit_burst: String,
    /// The most database connections to open
    #[arg(
        long,
        env = "QUIRE_DATABASE_POOL_SIZE",
        default_value = defaults::DATABASE_POOL_SIZE,
        global = true
    )]
    pub database_pool_size: String,
    /// The most WebSocket connections (subscriptions) served at once
    #[arg(
        long,
        env = "QUIRE_MAX_WEBSOCKETS",
        default_value = defaults::MAX_WEBSOCKETS,
        global = true
    )]
    pub max_websockets: String,
    /// The most WebSocket connections still waiting for their connection_init
    #[arg(
        long,
        env = "QUIRE_MAX_PENDING_WEBSOCKETS",
        default_value = defaults::MAX_PENDING_WEBSOCKETS,
        global = true
    )]
    pub max_pending_websockets: String,
    /// The most WebSocket connections of one account
    #[arg(
        long,
        env = "QUIRE_MAX_WEBSOCKETS_PER_USER",
        default_value = defaults::MAX_WEBSOCKETS_PER_USER,
        global = true
    )]
    pub max_websockets_per_user: String,
    /// The most WebSocket connections from one client address
    #[arg(
        long,
        env = "QUIRE_MAX_WEBSOCKETS_PER_ADDRESS",
        default_value = defaults::MAX_WEBSOCKETS_PER_ADDRESS,
        global = true
    )]
    pub max_websockets_per_address: String,
    /// The most subscriptions one account runs at once, over all its connections
    #[arg(
        long,
        env = "QUIRE_MAX_SUBSCRIPTIONS_PER_USER",
        default_value = defaults::MAX_SUBSCRIPTIONS_PER_USER,
        global = true
    )]
    pub max_subscriptions_per_user: String,
    /// How long a client may take to send a request's headers
    #[arg(
        long,
        env = "QUIRE_HEADER_TIMEOUT",
        default_value = defaults::HEADER_TIMEOUT,
        global = true
    )]
    pub header_timeout: String,
    /// How long a connection may stay open with nothing read or written
    #[arg(
        long,
        env = "QUIRE_IDLE_TIMEOUT",
        default_value = defaults::IDLE_TIMEOUT,
        global = true
    )]
    pub idle_timeout: String,
    /// The most connections served at once
    #[arg(
        long,
        env = "QUIRE_MAX_CONNECTIONS",
        default_value = defaults::MAX_CONNECTIONS,
        global = true
    )]
    pub max_connections: String,
    /// The most connections from one client address (trusted proxies excepted)
    #[arg(
        long,
        env = "QUIRE_MAX_CONNECTIONS_PER_ADDRESS",
        default_value = defaults::MAX_CONNECTIONS_PER_ADDRESS,
        global = true
    )]
    pub max_connections_per_address: String,
    /// Writes (posts and votes) one account may make per minute; a post costs one more for
    /// every 4 KiB of text
    #[arg(
        long,
        env = "QUIRE_WRITE_RATE_PER_MINUTE",
        default_value = defaults::WRITE_RATE_PER_MINUTE,
        global = true
    )]
    pub write_rate_per_minute: String,
    /// How many of those may come at once
    #[arg(
        long,
        env = "QUIRE_WRITE_BURST",
        default_value = defaults::WRITE_BURST,
        global = true
    )]
    pub write_burst: String,
    /// How many distinct operation names get metric series of their own; later ones are
    /// counted as "other"
    #[arg(
        long,
        env = "QUIRE_METRICS_OPERATIONS",
        default_value = defaults::METRICS_OPERATIONS,
        global = true
    )]
    pub metrics_operations: String,
    /// Memory for automatic persisted queries, e.g. 4MiB; 0 turns them off
    #[arg(
        long,
        env = "QUIRE_PERSISTED_QUERIES_CACHE",
        default_value = defaults::PERSISTED_QUERIES_CACHE,
        global = true
    )]
    pub persisted_queries_cache: String,
    /// A JSON file of allowed operations: a persisted query manifest, or an object from
    /// SHA-256 hash to query text
    #[arg(
        long,
        env = "QUIRE_PERSISTED_DOCUMENTS",
        default_value = "",
        global = true
    )]
    pub persisted_documents: String,
    /// Refuse every operation not in QUIRE_PERSISTED_DOCUMENTS: true or false
    #[arg(
        long,
        env = "QUIRE_PERSISTED_ONLY",
        default_value = "false",
        global = true
    )]
    pub persisted_only: String,
    /// Base URL of the npm packages GraphiQL loads (react, react-dom, graphiql, graphql-ws),
    /// laid out as <base>/<package>@<version>/<file>
    #[arg(
        long,
        env = "QUIRE_GRAPHIQL_ASSETS",
        default_value = defaults::GRAPHIQL_ASSETS,
        global = true
    )]
    pub graphiql_assets: String,
    /// Comma-separated IP addresses of reverse proxies whose X-Forwarded-For is believed
    #[arg(long, env = "QUIRE_TRUSTED_PROXIES", default_value = "", global = true)]
    pub trusted_proxies: String,
    /// Browser sessions: keep the refresh token in an HttpOnly cookie instead of the payload
    #[arg(
        long,
        env = "QUIRE_REFRESH_COOKIE",
        default_value = "false",
        global = true
    )]
    pub refresh_cookie: String,
    /// Comma-separated web origins allowed to call with credentials, e.g.
    /// https://app.example.com
    #[arg(long, env = "QUIRE_CORS_ORIGINS", default_value = "", global = true)]
    pub cors_origins: String,
    /// Serve /metrics on this address and port instead of the main one, so that it need
    /// not be public
    #[arg(long, env = "QUIRE_METRICS_LISTEN", default_value = "", global = true)]
    pub metrics_listen: String,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("database_url", &redact(&self.database_url))
            .field("listen", &self.listen)
            .field("environment", &self.environment)
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "***"))
            .field("access_token_ttl", &self.access_token_ttl)
            .field("refresh_token_ttl", &self.refresh_token_ttl)
            .field("session_max_age", &self.session_max_age)
            .field("refresh_reuse_grace", &self.refresh_reuse_grace)
            .field("max_depth", &self.max_depth)
            .field("max_complexity", &self.max_complexity)
            .field("max_aliases", &self.max_aliases)
            .field("max_body", &self.max_body)
            .field("max_batch", &self.max_batch)
            .field("introspection", &self.introspection)
            .field("graphiql", &self.graphiql)
            .field("log_format", &self.log_format)
            .field("rate_limit", &self.rate_limit)
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .field("rate_limit_burst", &self.rate_limit_burst)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("refresh_cookie", &self.refresh_cookie)
            .field("cors_origins", &self.cors_origins)
            .field("metrics_listen", &self.metrics_listen)
            .field("metrics", &self.metrics)
            .field("metrics_operations", &self.metrics_operations)
            .field("max_nodes", &self.max_nodes)
            .field(
                "max_subscription_complexity",
                &self.max_subscription_complexity,
            )
            .field("database_pool_size", &self.database_pool_size)
            .field("max_websockets", &self.max_websockets)
            .field("max_pending_websockets", &self.max_pending_websockets)
            .field("max_websockets_per_user", &self.max_websockets_per_user)
            .field(
                "max_websockets_per_address",
                &self.max_websockets_per_address,
            )
            .field(
                "max_subscriptions_per_user",
                &self.max_subscriptions_per_user,
            )
            .field("header_timeout", &self.header_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_connections", &self.max_connections)
            .field(
                "max_connections_per_address",
                &self.max_connections_per_address,
            )
            .field("write_rate_per_minute", &self.write_rate_per_minute)
            .field("write_burst", &self.write_burst)
            .field("persisted_queries_cache", &self.persisted_queries_cache)
            .field("persisted_documents", &self.persisted_documents)
            .field("persisted_only", &self.persisted_only)
            .field("graphiql_assets", &self.graphiql_assets)
            .finish()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            database_url: defaults::DATABASE_URL.to_owned(),
            listen: defaults::LISTEN.to_owned(),
            environment: defaults::ENVIRONMENT.to_owned(),
            jwt_secret: None,
            access_token_ttl: defaults::ACCESS_TOKEN_TTL.to_owned(),
            refresh_token_ttl: defaults::REFRESH_TOKEN_TTL.to_owned(),
            session_max_age: defaults::SESSION_MAX_AGE.to_owned(),
            refresh_reuse_grace: defaults::REFRESH_REUSE_GRACE.to_owned(),
            max_depth: defaults::MAX_DEPTH.to_owned(),
            max_complexity: defaults::MAX_COMPLEXITY.to_owned(),
            max_aliases: defaults::MAX_ALIASES.to_owned(),
            max_nodes: defaults::MAX_NODES.to_owned(),
            max_subscription_complexity: defaults::MAX_SUBSCRIPTION_COMPLEXITY.to_owned(),
            max_body: defaults::MAX_BODY.to_owned(),
            max_batch: defaults::MAX_BATCH.to_owned(),
            introspection: None,
            graphiql: None,
            metrics: None,
            log_format: None,
            rate_limit: defaults::RATE_LIMIT.to_owned(),
            rate_limit_per_minute: defaults::RATE_LIMIT_PER_MINUTE.to_owned(),
            rate_limit_burst: defaults::RATE_LIMIT_BURST.to_owned(),
            trusted_proxies: String::new(),
            refresh_cookie: "false".to_owned(),
            cors_origins: String::new(),
            metrics_listen: String::new(),
            database_pool_size: defaults::DATABASE_POOL_SIZE.to_owned(),
            max_websockets: defaults::MAX_WEBSOCKETS.to_owned(),
            max_pending_websockets: defaults::MAX_PENDING_WEBSOCKETS.to_owned(),
            max_websockets_per_user: defaults::MAX_WEBSOCKETS_PER_USER.to_owned(),
            max_websockets_per_address: defaults::MAX_WEBSOCKETS_PER_ADDRESS.to_owned(),
            max_subscriptions_per_user: defaults::MAX_SUBSCRIPTIONS_PER_USER.to_owned(),
            header_timeout: defaults::HEADER_TIMEOUT.to_owned(),
            idle_timeout: defaults::IDLE_TIMEOUT.to_owned(),
            max_connections: defaults::MAX_CONNECTIONS.to_owned(),
            max_connections_per_address: defaults::MAX_CONNECTIONS_PER_ADDRESS.to_owned(),
            write_rate_per_minute: defaults::WRITE_RATE_PER_MINUTE.to_owned(),
            write_burst: defaults::WRITE_BURST.to_owned(),
            metrics_operations: defaults::METRICS_OPERATIONS.to_owned(),
            persisted_queries_cache: defaults::PERSISTED_QUERIES_CACHE.to_owned(),
            persisted_documents: String::new(),
            persisted_only: "false".to_owned(),
            graphiql_assets: defaults::GRAPHIQL_ASSETS.to_owned(),
        }
    }
}

impl Config {
    /// Validates raw settings, naming the setting at fault.
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        let database_url = DatabaseUrl::parse(&s.database_url)?;
        let listen = s.listen.parse().map_err(|_| {
            ConfigError::new(
                "QUIRE_LISTEN",
                format!("'{}' is not an address such as 127.0.0.1:8000", s.listen),
            )
        })?;
        let environment = match s.environment.to_ascii_lowercase().as_str() {
            "development" | "dev" => Environment::Development,
            "production" | "prod" => Environment::Production,
            other => {
                return Err(ConfigError::new(
                    "QUIRE_ENV",
                    format!("'{other}' is neither development nor production"),
                ));
            }
        };
        // An empty value (`QUIRE_JWT_SECRET=` in a compose file, say) means unset.
        let jwt_secret = match s.jwt_secret.as_deref().filter(|v| !v.is_empty()) {
            Some(v) if v.len() < Secret::MIN_LEN => {
                return Err(ConfigError::new(
                    "QUIRE_JWT_SECRET",
                    format!(
                        "it is {} bytes long; use at least {} random bytes, or leave it unset \
                         to have one generated and kept in the database",
                        v.len(),
                        Secret::MIN_LEN
                    ),
                ));
            }
            Some(v) => Some(Secret::new(v.as_bytes().to_vec())),
            None => None,
        };
        let auth = AuthConfig {
            access_token_ttl: positive("QUIRE_ACCESS_TOKEN_TTL", &s.access_token_ttl)?,
            refresh_token_ttl: positive("QUIRE_REFRESH_TOKEN_TTL", &s.refresh_token_ttl)?,
            session_max_age: positive("QUIRE_SESSION_MAX_AGE", &s.session_max_age)?,
            refresh_reuse_grace: duration("QUIRE_REFRESH_REUSE_GRACE", &s.refresh_reuse_grace)?,
        };
        let limits = Limits {
            max_depth: count("QUIRE_MAX_DEPTH", &s.max_depth, 1)?,
            max_complexity: count("QUIRE_MAX_COMPLEXITY", &s.max_complexity, 1)?,
            max_aliases: count("QUIRE_MAX_ALIASES", &s.max_aliases, 0)?,
            max_nodes: count("QUIRE_MAX_NODES", &s.max_nodes, 1)?,
            max_subscription_complexity: count(
                "QUIRE_MAX_SUBSCRIPTION_COMPLEXITY",
                &s.max_subscription_complexity,
                1,
            )?,
            max_body: size("QUIRE_MAX_BODY", &s.max_body)?,
            max_batch: count("QUIRE_MAX_BATCH", &s.max_batch, 1)?,
        };
        let development = environment == Environment::Development;
        let exposure = Exposure {
            introspection: flag(
                "QUIRE_INTROSPECTION",
                s.introspection.as_deref(),
                development,
            )?,
            graphiql: flag("QUIRE_GRAPHIQL", s.graphiql.as_deref(), development)?,
            metrics: flag("QUIRE_METRICS", s.metrics.as_deref(), development)?,
            json_logs: match s
                .log_format
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                None | Some("") => !development,
                Some("json") => true,
                Some("text") => false,
                Some(other) => {
                    return Err(ConfigError::new(
                        "QUIRE_LOG_FORMAT",
                        format!("'{other}' is neither text nor json"),
                    ));
                }
            },
        };
        let throttle = crate::auth::throttle::ThrottleConfig {
            enabled: flag("QUIRE_RATE_LIMIT", Some(&s.rate_limit), true)?,
            per_minute: small_count("QUIRE_RATE_LIMIT_PER_MINUTE", &s.rate_limit_per_minute)?,
            burst: small_count("QUIRE_RATE_LIMIT_BURST", &s.rate_limit_burst)?,
            writes_per_minute: small_count(
                "QUIRE_WRITE_RATE_PER_MINUTE",
                &s.write_rate_per_minute,
            )?,
            write_burst: small_count("QUIRE_WRITE_BURST", &s.write_burst)?,
        };
        let trusted_proxies = s
            .trusted_proxies
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<std::net::IpAddr>()
                    .map(|ip| ip.to_canonical())
                    .map_err(|_| {
                        ConfigError::new(
                            "QUIRE_TRUSTED_PROXIES",
                            format!("'{p}' is not an IP address"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let refresh_cookie = flag("QUIRE_REFRESH_COOKIE", Some(&s.refresh_cookie), false)?;
        let cors_origins = s
            .cors_origins
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(|o| {
                let origin = o.trim_end_matches('/');
                let well_formed = (origin.starts_with("https://") || origin.starts_with("http://"))
                    && !origin["https://".len().min(origin.len())..].contains('/')
                    && origin != "*";
                if well_formed {
                    Ok(origin.to_owned())
                } else {
                    Err(ConfigError::new(
                        "QUIRE_CORS_ORIGINS",
                        format!("'{o}' is not an origin such as https://app.example.com"),
                    ))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let metrics_listen = match s.metrics_listen.trim() {
            "" => None,
            text => Some(text.parse().map_err(|_| {
                ConfigError::new(
                    "QUIRE_METRICS_LISTEN",
                    format!("'{text}' is not an address such as 127.0.0.1:9000"),
                )
            })?),
        };
        let persisted = Persisted {
            cache_bytes: match s.persisted_queries_cache.trim() {
                "0" => 0,
                text => size("QUIRE_PERSISTED_QUERIES_CACHE", text)?,
            },
            documents: Some(s.persisted_documents.trim())
                .filter(|p| !p.is_empty())
                .map(std::path::PathBuf::from),
            only: flag("QUIRE_PERSISTED_ONLY", Some(&s.persisted_only), false)?,
        };
        if persisted.only && persisted.documents.is_none() {
            return Err(ConfigError::new(
                "QUIRE_PERSISTED_ONLY",
                "it needs QUIRE_PERSISTED_DOCUMENTS, the file of allowed operations",
            ));
        }
        let graphiql_assets = s.graphiql_assets.trim().trim_end_matches('/').to_owned();
        let host = graphiql_assets
            .strip_prefix("https://")
            .or_else(|| graphiql_assets.strip_prefix("http://"))
            .and_then(|rest| rest.split('/').next())
            .unwrap_or("");
        // It goes into the page and its Content-Security-Policy as it is.
        let well_formed = !host.is_empty()
            && !graphiql_assets
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "\"'<>\\?#;,".contains(c));
        if !well_formed {
            return Err(ConfigError::new(
                "QUIRE_GRAPHIQL_ASSETS",
                format!(
                    "'{}' is not a URL such as https://cdn.jsdelivr.net/npm",
                    s.graphiql_assets
                ),
            ));
        }
        let pool_size = match count("QUIRE_DATABASE_POOL_SIZE", &s.database_pool_size, 1)? {
            n @ 1..=1000 => n as u32,
            n => {
                return Err(ConfigError::new(
                    "QUIRE_DATABASE_POOL_SIZE",
                    format!("{n} connections is more than any database should be asked for"),
                ));
            }
        };
        let connections = Connections {
            header_timeout: positive("QUIRE_HEADER_TIMEOUT", &s.header_timeout)?,
            idle_timeout: positive("QUIRE_IDLE_TIMEOUT", &s.idle_timeout)?,
            max: count("QUIRE_MAX_CONNECTIONS", &s.max_connections, 1)?,
            per_address: count(
                "QUIRE_MAX_CONNECTIONS_PER_ADDRESS",
                &s.max_connections_per_address,
                1,
            )?,
        };
        let websockets = WebSockets {
            max: count("QUIRE_MAX_WEBSOCKETS", &s.max_websockets, 0)?,
            pending: count("QUIRE_MAX_PENDING_WEBSOCKETS", &s.max_pending_websockets, 0)?,
            per_user: count(
                "QUIRE_MAX_WEBSOCKETS_PER_USER",
                &s.max_websockets_per_user,
                1,
            )?,
            per_address: count(
                "QUIRE_MAX_WEBSOCKETS_PER_ADDRESS",
                &s.max_websockets_per_address,
                1,
            )?,
            subscriptions_per_user: count(
                "QUIRE_MAX_SUBSCRIPTIONS_PER_USER",
                &s.max_subscriptions_per_user,
                1,
            )?,
        };
        let metrics_operations = count("QUIRE_METRICS_OPERATIONS", &s.metrics_operations, 0)?;
        Ok(Self {
            pool_size,
            connections,
            websockets,
            metrics_operations,
            persisted,
            graphiql_assets,
            database_url,
            listen,
            environment,
            jwt_secret,
            auth,
            limits,
            exposure,
            throttle,
            trusted_proxies,
            refresh_cookie,
            cors_origins,
            metrics_listen,
        })
    }
}

fn flag(setting: &'static str, value: Option<&str>, default: bool) -> Result<bool, ConfigError> {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") => Ok(default),
        Some("true" | "1" | "yes" | "on") => Ok(true),
        Some("false" | "0" | "no" | "off") => Ok(false),
        Some(other) => Err(ConfigError::new(
            setting,
            format!("'{other}' is neither true nor false"),
        )),
    }
}

fn small_count(setting: &'static str, value: &str) -> Result<u32, ConfigError> {
    u32::try_from(count(setting, value, 1)?)
        .map_err(|_| ConfigError::new(setting, format!("'{value}' is too large")))
}

fn count(setting: &'static str, value: &str, min: usize) -> Result<usize, ConfigError> {
    match value.trim().parse::<usize>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(ConfigError::new(
            setting,
            format!("'{value}' is not a whole number of at least {min}"),
        )),
    }
}

/// Parses sizes: a number of bytes, optionally followed by `KiB` or `MiB`.
fn size(setting: &'static str, value: &str) -> Result<usize, ConfigError> {
    let text = value.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, ""),
    };
    let factor = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1024,
        "MiB" => 1024 * 1024,
        _ => 0,
    };
    match digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
    {
        Some(n) if n > 0 => Ok(n),
        _ => Err(ConfigError::new(
            setting,
            format!("'{value}' is not a size such as 1MiB, 64KiB or 4096"),
        )),
    }
}

/// The longest duration accepted: anything longer is a typo, and would overflow the
/// calendar arithmetic done on expiry times.
const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

fn duration(setting: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let d = parse_duration(value).ok_or_else(|| {
        ConfigError::new(
            setting,
            format!("'{value}' is not a duration such as 15m, 30d, 2s or 1h30m"),
        )
    })?;
    if d > MAX_DURATION {
        return Err(ConfigError::new(
            setting,
            format!("'{value}' is longer than 100 years"),
        ));
    }
    Ok(d)
}

fn positive(setting: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let d = duration(setting, value)?;
    if d.is_zero() {
        return Err(ConfigError::new(setting, "it must be longer than zero"));
    }
    Ok(d)
}

/// Parses durations written as one or more `<number><unit>` groups, where the unit
/// is `ms`, `s`, `m`, `h` or `d`: `15m`, `30d`, `2s`, `1h30m`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            "d" => Duration::from_secs(86_400),
            _ => return None,
        };
        total = total.checked_add(unit.checked_mul(u32::try_from(n).ok()?)?)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_the_documented_forms() {
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("30d"), Some(Duration::from_secs(2_592_000)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        for bad in ["", "15", "m", "15x", "1.5h", "-3s", "15 m", "99999999999d"] {
            assert_eq!(parse_duration(bad), None, "{bad:?} should not parse");
        }
    }

    #[test]
    fn durations_longer_than_a_century_are_refused() {
        let s = Settings {
            session_max_age: "36501d".into(),
            ..Settings::default()
        };
        let err = Config::from_settings(&s).unwrap_err().to_string();
        assert!(err.contains("QUIRE_SESSION_MAX_AGE"), "{err}");
        let s = Settings {
            session_max_age: "36500d".into(),
            ..Settings::default()
        };
        assert!(Config::from_settings(&s).is_ok());
    }

    #[test]
    fn limits_are_read_and_checked() {
        let s = Settings {
            max_body: "64KiB".into(),
            ..Settings::default()
        };
        let limits = Config::from_settings(&s).unwrap().limits;
        assert_eq!(limits.max_body, 65_536);
        assert_eq!(limits.max_depth, 15);
        assert_eq!(
            Config::from_settings(&Settings::default())
                .unwrap()
                .limits
                .max_body,
            1_048_576
        );
        for (field, bad) in [
            ("depth", "0"),
            ("body", "1GB"),
            ("body", "0"),
            ("aliases", "-1"),
        ] {
            let mut s = Settings::default();
            match field {
                "depth" => s.max_depth = bad.into(),
                "aliases" => s.max_aliases = bad.into(),
                _ => s.max_body = bad.into(),
            }
            assert!(Config::from_settings(&s).is_err(), "{field}={bad}");
        }
    }

    #[test]
    fn persisted_queries_and_graphiql_assets_are_read_and_checked() {
        let config = Config::from_settings(&Settings::default()).unwrap();
        assert_eq!(config.persisted.cache_bytes, 4 * 1024 * 1024);
        assert_eq!(config.graphiql_assets, "https://cdn.jsdelivr.net/npm");
        let s = Settings {
            persisted_queries_cache: "0".into(),
            graphiql_assets: "http://127.0.0.1:9000/npm/".into(),
            ..Settings::default()
        };
        let config = Config::from_settings(&s).unwrap();
        assert_eq!(config.persisted.cache_bytes, 0);
        assert_eq!(config.graphiql_assets, "http://127.0.0.1:9000/npm");

        let only = Settings {
            persisted_only: "true".into(),
            ..Settings::default()
        };
        let err = Config::from_settings(&only).unwrap_err().to_string();
        assert!(err.contains("QUIRE_PERSISTED_ONLY"), "{err}");
        for bad in [
            "cdn.example.com",
            "ftp://cdn.example.com",
            "https://",
            "https://cdn.example.com/\"><script>",
            "https://cdn.example.com; script-src *",
        ] {
            let s = Settings {
                graphiql_assets: bad.into(),
                ..Settings::default()
            };
            let err = Config::from_settings(&s).unwrap_err().to_string();
            assert!(err.contains("QUIRE_GRAPHIQL_ASSETS"), "{bad}: {err}");
        }
    }

    #[test]
    fn production_shows_only_what_it_is_asked_to() {
        let dev = Config::from_settings(&Settings::default())
            .unwrap()
            .exposure;
        assert!(dev.introspection && dev.graphiql && !dev.json_logs);
        let mut s = Settings {
            environment: "production".into(),
            ..Settings::default()
        };
        let prod = Config::from_settings(&s).unwrap().exposure;
        assert!(!prod.introspection && !prod.graphiql && prod.json_logs);
        s.introspection = Some("true".into());
        s.log_format = Some("text".into());
        let asked = Config::from_settings(&s).unwrap().exposure;
        assert!(asked.introspection && !asked.graphiql && !asked.json_logs);
        s.graphiql = Some("maybe".into());
        assert!(Config::from_settings(&s).is_err());
    }

    #[test]
    fn an_empty_secret_means_none_and_a_short_one_is_refused() {
        let mut s = Settings {
            jwt_secret: Some(String::new()),
            ..Settings::default()
        };
        assert!(Config::from_settings(&s).unwrap().jwt_secret.is_none());
        s.jwt_secret = Some("x".repeat(31));
        let err = Config::from_settings(&s).unwrap_err().to_string();
        assert!(
            err.starts_with("invalid QUIRE_JWT_SECRET: it is 31 bytes long"),
            "{err}"
        );
        s.jwt_secret = Some("x".repeat(32));
        assert!(Config::from_settings(&s).unwrap().jwt_secret.is_some());
    }

    #[test]
    fn passwords_in_database_urls_are_redacted() {
        assert_eq!(
            redact("postgres://app:hunter2@db.example:5432/quire"),
            "postgres://app:***@db.example:5432/quire"
        );
        assert_eq!(redact("postgres://app@db/quire"), "postgres://app@db/quire");
        assert_eq!(redact("sqlite://quire.db"), "sqlite://quire.db");
    }
}
