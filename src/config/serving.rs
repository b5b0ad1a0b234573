//! The server's settings, one clap group per concern; `quire serve --help` shows each
//! under its own heading.

use std::{net::IpAddr, net::SocketAddr, path::PathBuf, time::Duration};

use clap::{ArgAction, Args};

use super::{DatabaseUrl, List, Secret, parse};

/// The server's settings, one group per concern.
#[derive(Debug, Clone, Args)]
pub struct Serving {
    #[allow(missing_docs)]
    #[command(flatten)]
    pub server: Server,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub auth: AuthConfig,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub exposure: ExposureSettings,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub limits: Limits,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub throttle: ThrottleConfig,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub connections: Connections,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub websockets: WebSockets,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub persisted: Persisted,
}

/// Where the server listens, whom it believes, and where its pages and metrics are.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Server")]
pub struct Server {
    /// Address and port to serve on
    #[arg(long, env = "QUIRE_LISTEN", default_value = "127.0.0.1:8000",
          value_parser = parse::address)]
    pub listen: SocketAddr,
    /// Comma-separated IP addresses of reverse proxies whose X-Forwarded-For is believed
    #[arg(long, env = "QUIRE_TRUSTED_PROXIES", default_value = "", hide_default_value = true,
          value_parser = parse::addresses)]
    pub trusted_proxies: List<IpAddr>,
    /// Comma-separated web origins allowed to call with credentials, e.g.
    /// https://app.example.com
    #[arg(long, env = "QUIRE_CORS_ORIGINS", default_value = "", hide_default_value = true,
          value_parser = parse::origins)]
    pub cors_origins: List<String>,
    /// Serve /metrics on this address and port instead of the main one, so that it need
    /// not be public
    #[arg(long, env = "QUIRE_METRICS_LISTEN", value_parser = parse::address)]
    pub metrics_listen: Option<SocketAddr>,
    /// How many distinct operation names get metric series of their own; later ones are
    /// counted as "other"
    #[arg(long, env = "QUIRE_METRICS_OPERATIONS", default_value = "200",
          value_parser = parse::at_least(0))]
    pub metrics_operations: usize,
    /// Base URL of the npm packages GraphiQL loads (react, react-dom, graphiql, graphql-ws),
    /// laid out as <base>/<package>@<version>/<file>
    #[arg(long, env = "QUIRE_GRAPHIQL_ASSETS", default_value = "https://cdn.jsdelivr.net/npm",
          value_parser = parse::base_url)]
    pub graphiql_assets: String,
    /// PostgreSQL only: where the event listener connects, when DATABASE_URL goes through
    /// a pooler in transaction mode (such as PgBouncer), which breaks LISTEN; a direct
    /// connection to the same database. Default: DATABASE_URL
    #[arg(long, env = "QUIRE_LISTENER_DATABASE_URL", value_parser = DatabaseUrl::parse)]
    pub listener_database_url: Option<DatabaseUrl>,
}

/// Tokens, sessions and the signing key.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Tokens and sessions")]
pub struct AuthConfig {
    /// Key that signs access tokens, at least 32 bytes; when unset, a random key is
    /// generated on first start and kept in the database
    #[arg(long, env = "QUIRE_JWT_SECRET", hide_env_values = true, value_parser = parse::secret)]
    pub jwt_secret: Option<Secret>,
    /// A key that signed tokens before QUIRE_JWT_SECRET, still accepted when verifying
    /// (never used to sign), so that keys can be changed without signing anyone out
    #[arg(long, env = "QUIRE_JWT_PREVIOUS_SECRET", hide_env_values = true,
          value_parser = parse::secret)]
    pub jwt_previous_secret: Option<Secret>,
    /// Lifetime of access tokens (e.g. 15m)
    #[arg(long = "access-token-ttl", env = "QUIRE_ACCESS_TOKEN_TTL", default_value = "15m",
          value_parser = parse::positive)]
    pub access_token_ttl: Duration,
    /// Lifetime of a refresh token from its issue; each refresh issues a new one
    #[arg(long = "refresh-token-ttl", env = "QUIRE_REFRESH_TOKEN_TTL", default_value = "30d",
          value_parser = parse::positive)]
    pub refresh_token_ttl: Duration,
    /// Longest a session can last, however often it is refreshed
    #[arg(long, env = "QUIRE_SESSION_MAX_AGE", default_value = "90d",
          value_parser = parse::positive)]
    pub session_max_age: Duration,
    /// How long a just-used refresh token still returns the same new token, so that
    /// concurrent refreshes do not end the session
    #[arg(long, env = "QUIRE_REFRESH_REUSE_GRACE", default_value = "10s",
          value_parser = parse::duration)]
    pub refresh_reuse_grace: Duration,
    /// Browser sessions: keep the refresh token in an HttpOnly cookie instead of the payload
    #[arg(long, env = "QUIRE_REFRESH_COOKIE", default_value = "false", action = ArgAction::Set,
          value_parser = parse::flag)]
    pub refresh_cookie: bool,
}

/// What the server shows of itself, as asked; unset, everything in development and
/// nothing in production (see [`Exposure`]).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "What the server shows")]
pub struct ExposureSettings {
    /// Serve schema introspection and "did you mean" hints: true or false (default: true in
    /// development, false in production)
    #[arg(long, env = "QUIRE_INTROSPECTION", value_parser = parse::flag)]
    pub introspection: Option<bool>,
    /// Serve the GraphiQL page on GET /graphql: true or false (default: true in
    /// development, false in production)
    #[arg(long, env = "QUIRE_GRAPHIQL", value_parser = parse::flag)]
    pub graphiql: Option<bool>,
    /// Serve /metrics on the main address: true or false (default: true in development,
    /// false in production); QUIRE_METRICS_LISTEN serves it on an address of its own
    #[arg(long, env = "QUIRE_METRICS", value_parser = parse::flag)]
    pub metrics: Option<bool>,
}

/// What the server shows of itself, decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exposure {
    /// Schema introspection and "did you mean" suggestions.
    pub introspection: bool,
    /// The GraphiQL page on `GET /graphql`.
    pub graphiql: bool,
    /// `/metrics` on the main address, when it has none of its own.
    pub metrics: bool,
}

/// Bounds on what one request may ask for; a request beyond them is refused before
/// anything runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
#[command(next_help_heading = "Limits on requests")]
pub struct Limits {
    /// How deeply a query's selections may nest
    #[arg(long, env = "QUIRE_MAX_DEPTH", default_value = "15", value_parser = parse::at_least(1))]
    pub max_depth: usize,
    /// The most a query may cost; a connection field costs its `first` times its selection
    #[arg(long, env = "QUIRE_MAX_COMPLEXITY", default_value = "2000",
          value_parser = parse::at_least(1))]
    pub max_complexity: usize,
    /// The most aliased fields in one operation
    #[arg(long, env = "QUIRE_MAX_ALIASES", default_value = "15",
          value_parser = parse::at_least(0))]
    pub max_aliases: usize,
    /// The most nodes (fields, fragment spreads, inline fragments, arguments, directives,
    /// values) a document may have once its fragments are expanded, each fragment counted
    /// as often as it is spread
    #[arg(long, env = "QUIRE_MAX_NODES", default_value = "4000", value_parser = parse::at_least(1))]
    pub max_nodes: usize,
    /// The most a subscription may cost (as QUIRE_MAX_COMPLEXITY, but it runs for every
    /// event)
    #[arg(long, env = "QUIRE_MAX_SUBSCRIPTION_COMPLEXITY", default_value = "200",
          value_parser = parse::at_least(1))]
    pub max_subscription_complexity: usize,
    /// The largest request body, e.g. 1MiB, 64KiB or 4096 (bytes)
    #[arg(long, env = "QUIRE_MAX_BODY", default_value = "1MiB", value_parser = parse::size)]
    pub max_body: usize,
    /// The most operations in one batch (a JSON array of requests)
    #[arg(long, env = "QUIRE_MAX_BATCH", default_value = "10", value_parser = parse::at_least(1))]
    pub max_batch: usize,
}

/// Brute-force protection: how hard credential operations and writes are limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
#[command(next_help_heading = "Brute-force protection")]
pub struct ThrottleConfig {
    /// Brute-force protection: on or off
    #[arg(long = "rate-limit", env = "QUIRE_RATE_LIMIT", default_value = "on",
          action = ArgAction::Set, value_parser = parse::flag)]
    pub enabled: bool,
    /// Credential operations (login, register, refresh, …) allowed per minute per client IP
    #[arg(long = "rate-limit-per-minute", env = "QUIRE_RATE_LIMIT_PER_MINUTE",
          default_value = "30", value_parser = parse::rate)]
    pub per_minute: u32,
    /// How many of those may come at once
    #[arg(long = "rate-limit-burst", env = "QUIRE_RATE_LIMIT_BURST", default_value = "10",
          value_parser = parse::rate)]
    pub burst: u32,
    /// Writes (posts and votes) one account may make per minute; a post costs one more for
    /// every 4 KiB of text
    #[arg(long = "write-rate-per-minute", env = "QUIRE_WRITE_RATE_PER_MINUTE",
          default_value = "60", value_parser = parse::rate)]
    pub writes_per_minute: u32,
    /// How many of those may come at once
    #[arg(long, env = "QUIRE_WRITE_BURST", default_value = "30", value_parser = parse::rate)]
    pub write_burst: u32,
}

/// Bounds on the connections one instance serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
#[command(next_help_heading = "Connections")]
pub struct Connections {
    /// How long a client may take to send a request's headers
    #[arg(long, env = "QUIRE_HEADER_TIMEOUT", default_value = "10s",
          value_parser = parse::positive)]
    pub header_timeout: Duration,
    /// How long a connection may stay open with nothing read or written
    #[arg(long, env = "QUIRE_IDLE_TIMEOUT", default_value = "60s", value_parser = parse::positive)]
    pub idle_timeout: Duration,
    /// The most connections served at once
    #[arg(id = "max_connections",
        long = "max-connections", env = "QUIRE_MAX_CONNECTIONS", default_value = "16384",
          value_parser = parse::at_least(1))]
    pub max: usize,
    /// The most connections from one client address (trusted proxies excepted)
    #[arg(id = "max_connections_per_address",
        long = "max-connections-per-address", env = "QUIRE_MAX_CONNECTIONS_PER_ADDRESS",
          default_value = "256", value_parser = parse::at_least(1))]
    pub per_address: usize,
}

/// Bounds on WebSocket connections (subscriptions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
#[command(next_help_heading = "WebSockets")]
pub struct WebSockets {
    /// The most WebSocket connections (subscriptions) served at once
    #[arg(id = "max_websockets",
        long = "max-websockets", env = "QUIRE_MAX_WEBSOCKETS", default_value = "10000",
          value_parser = parse::at_least(0))]
    pub max: usize,
    /// The most WebSocket connections still waiting for their connection_init
    #[arg(id = "max_pending_websockets",
        long = "max-pending-websockets", env = "QUIRE_MAX_PENDING_WEBSOCKETS",
          default_value = "1000", value_parser = parse::at_least(0))]
    pub pending: usize,
    /// The most WebSocket connections of one account
    #[arg(id = "max_websockets_per_user",
        long = "max-websockets-per-user", env = "QUIRE_MAX_WEBSOCKETS_PER_USER",
          default_value = "20", value_parser = parse::at_least(1))]
    pub per_user: usize,
    /// The most WebSocket connections from one client address
    #[arg(id = "max_websockets_per_address",
        long = "max-websockets-per-address", env = "QUIRE_MAX_WEBSOCKETS_PER_ADDRESS",
          default_value = "50", value_parser = parse::at_least(1))]
    pub per_address: usize,
    /// The most subscriptions one account runs at once, over all its connections
    #[arg(id = "max_subscriptions_per_user",
        long = "max-subscriptions-per-user", env = "QUIRE_MAX_SUBSCRIPTIONS_PER_USER",
          default_value = "200", value_parser = parse::at_least(1))]
    pub subscriptions_per_user: usize,
}

/// Operations sent by hash instead of in full.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
#[command(next_help_heading = "Persisted queries")]
pub struct Persisted {
    /// Memory for automatic persisted queries, e.g. 4MiB; 0 turns them off
    #[arg(long = "persisted-queries-cache", env = "QUIRE_PERSISTED_QUERIES_CACHE",
          default_value = "4MiB", value_parser = parse::size_or_zero)]
    pub cache_bytes: usize,
    /// A JSON file of allowed operations: a persisted query manifest, or an object from
    /// SHA-256 hash to query text
    #[arg(long = "persisted-documents", env = "QUIRE_PERSISTED_DOCUMENTS",
          value_parser = parse::path)]
    pub documents: Option<PathBuf>,
    /// Refuse every operation not in QUIRE_PERSISTED_DOCUMENTS: true or false
    #[arg(long = "persisted-only", env = "QUIRE_PERSISTED_ONLY", default_value = "false",
          action = ArgAction::Set, value_parser = parse::flag)]
    pub only: bool,
}
