//! Assembling the application from its configuration: database, migrations, signing key,
//! services and routes.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use tokio::net::TcpListener;

use crate::{
    auth::{Auth, access_token},
    config::{Config, ConfigError, DatabaseUrl, Secret},
    db::{ConnectError, Db, settings},
    error::chain,
    events::{Events, Shared},
    fleet::{Fleet, KeyIds},
    graphql::{self, persisted::Documents, runner::Runner},
    http::{self, AppState},
    posts::Posts,
};

/// How long requests in flight may take to finish once the server is asked to stop.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Why the server could not start; each reads as one line.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The settings are invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be opened or reached.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// Applying the pending migrations failed; holds the cause chain.
    #[error("database migration failed: {0}")]
    Migrate(String),
    /// The signing key could not be read from or stored in the database, or the stored
    /// one is not valid base64 of at least [`Secret::MIN_LEN`] bytes.
    #[error("cannot read the signing key from the database: {0}")]
    Secret(String),
    /// The listening socket could not be bound.
    #[error("cannot listen on QUIRE_LISTEN ({addr}): {reason}")]
    Listen {
        /// The address from `QUIRE_LISTEN`.
        addr: SocketAddr,
        /// The operating system's reason.
        reason: String,
    },
    /// The file of trusted documents could not be read, or holds a wrong hash.
    #[error("QUIRE_PERSISTED_DOCUMENTS: {0}")]
    Documents(String),
    /// Another instance serving from the database uses keys this one cannot work with,
    /// or the database could not be asked.
    #[error(transparent)]
    Fleet(#[from] crate::fleet::JoinError),
    /// The event listener could not connect.
    #[error(transparent)]
    Listener(#[from] crate::events::ListenerError),
    /// Computing the dummy password hash ahead of the first login failed.
    #[error("cannot prepare password hashing: {0}")]
    Passwords(String),
}

/// A ready application: connected, migrated, with its services.
#[derive(Clone)]
pub struct App {
    /// The configuration the application was started with.
    pub config: Arc<Config>,
    /// Renders the metrics.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// The connection pool, shared with `auth` and closed when serving ends.
    pub db: Db,
    /// The authentication service the resolvers and the CLI call.
    pub auth: Auth,
    /// Runs operations against the GraphQL schema, which has `auth` in its data.
    pub runner: Runner,
    /// Places for WebSocket connections and subscriptions.
    pub sockets: Arc<http::sockets::Sockets>,
    /// The loader every subscription shares.
    pub stream_loader: Arc<graphql::loaders::DbLoader>,
    /// The ids of the keys tokens are signed and verified with.
    keys: KeyIds,
}

impl App {
    /// Connects to the database, applies migrations and loads the signing key.
    pub async fn start(config: &Config) -> Result<Self, StartError> {
        // First, so that what start-up records is kept.
        let metrics = crate::telemetry::metrics();
        let db = Db::connect(&config.database_url, config.pool_size).await?;
        db.migrate()
            .await
            .map_err(|e| StartError::Migrate(chain(&e)))?;
        let secret = signing_secret(&db, config).await?;
        let events = match &db {
            Db::Postgres(pool) => {
                let (DatabaseUrl::Postgres(url) | DatabaseUrl::Sqlite(url)) = config
                    .server
                    .listener_database_url
                    .as_ref()
                    .unwrap_or(&config.database_url);
                Events::new(Shared::start(pool.clone(), url).await?)
            }
            Db::Sqlite(_) => Events::default(),
        };
        let auth = Auth::new(
            db.clone(),
            &secret,
            config.auth.clone(),
            config.throttle,
            events.clone(),
        );
        auth.passwords
            .warm_up()
            .await
            .map_err(|e| StartError::Passwords(e.to_string()))?;
        auth.compose_legacy_email_keys()
            .await
            .map_err(|e| StartError::Migrate(e.to_string()))?;
        let posts = Posts::new(db.clone(), events.clone(), auth.throttle.clone());
        let schema = |max_complexity| {
            graphql::schema(
                auth.clone(),
                posts.clone(),
                &config.limits,
                max_complexity,
                &config.exposure,
            )
        };
        let queries = schema(config.limits.max_complexity);
        let subscriptions = schema(config.limits.max_subscription_complexity);
        let documents = Documents::load(&config.persisted).map_err(StartError::Documents)?;
        if documents.trusted_len() > 0 {
            tracing::info!(
                documents = documents.trusted_len(),
                persisted_only = config.persisted.only,
                "trusted documents loaded"
            );
        }
        Ok(Self {
            runner: Runner::new(
                queries,
                subscriptions,
                Arc::new(documents),
                &config.limits,
                config.server.metrics_operations,
                config.exposure.introspection,
            ),
            sockets: Arc::new(http::sockets::Sockets::new(config.websockets)),
            stream_loader: Arc::new(graphql::loaders::for_stream(db.clone())),
            keys: KeyIds {
                signing: secret.key_id(),
                previous: config.auth.jwt_previous_secret.as_ref().map(Secret::key_id),
            },
            config: Arc::new(config.clone()),
            metrics,
            db,
            auth,
        })
    }

    /// The HTTP routes.
    pub fn router(&self) -> axum::Router {
        http::router(self.state())
    }

    fn state(&self) -> AppState {
        AppState::new(http::Shared {
            runner: self.runner.clone(),
            sockets: self.sockets.clone(),
            stream_loader: self.stream_loader.clone(),
            db: self.db.clone(),
            config: self.config.clone(),
            metrics: self.metrics.clone(),
            auth: self.auth.clone(),
        })
    }

    /// Serves on `listener` until `shutdown` completes, then finishes in-flight requests.
    /// On PostgreSQL it first joins the other instances serving from the database, and
    /// refuses to serve if their keys and this one's disagree.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let fleet = match &self.db {
            Db::Postgres(pool) => {
                Some(Fleet::join(pool.clone(), self.keys.clone(), access_token::LEEWAY).await?)
            }
            Db::Sqlite(_) => None,
        };
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(
                database = self.db.engine(),
                "quire is serving GraphQL on http://{addr}/graphql"
            );
        }
        let router = self.router();
        let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            let _ = stopping.send(());
        };
        let server = http::server::serve(
            listener,
            router,
            self.config.connections,
            self.config.server.trusted_proxies.to_vec(),
            signal,
        );
        // Once asked to stop, requests in flight get a grace period, and no more.
        let deadline = async {
            if stopped.await.is_ok() {
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = server => {}
            () = deadline => tracing::warn!(
                "requests still in flight after {} s; stopping anyway",
                SHUTDOWN_GRACE.as_secs()
            ),
        }
        if let Some(fleet) = fleet {
            fleet.leave().await;
        }
        // Closing waits for every connection to come back; one held by a request still
        // stuck after the grace period would make it wait for ever.
        if tokio::time::timeout(Duration::from_secs(5), self.db.close())
            .await
            .is_err()
        {
            tracing::warn!("database connections still in use; stopping without them");
        }
        Ok(())
    }
}

/// Starts the server described by `config` and runs it until Ctrl-C or SIGTERM.
pub async fn run(config: Config) -> Result<(), StartError> {
    let app = App::start(&config).await?;
    let listener =
        TcpListener::bind(config.server.listen)
            .await
            .map_err(|e| StartError::Listen {
                addr: config.server.listen,
                reason: e.to_string(),
            })?;
    let shutdown = shutdown_signal();
    if let Some(metrics_addr) = config.server.metrics_listen {
        let listener = TcpListener::bind(metrics_addr)
            .await
            .map_err(|e| StartError::Listen {
                addr: metrics_addr,
                reason: e.to_string(),
            })?;
        let bound = listener.local_addr().unwrap_or(metrics_addr);
        let router = http::metrics_router(app.state());
        tracing::info!("metrics on http://{bound}/metrics");
        let connections = config.connections;
        tokio::spawn(http::server::serve(
            listener,
            router,
            connections,
            Vec::new(),
            std::future::pending(),
        ));
    }
    app.serve(listener, shutdown).await?;
    tracing::info!("quire stopped");
    Ok(())
}

/// The configured signing key or, when none is configured, the one kept in the
/// database, generated by whichever instance started first.
async fn signing_secret(db: &Db, config: &Config) -> Result<Secret, StartError> {
    if let Some(secret) = &config.auth.jwt_secret {
        return Ok(secret.clone());
    }
    let fresh = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let mut conn = db
        .acquire()
        .await
        .map_err(|e| StartError::Secret(chain(&e)))?;
    let stored = settings::get_or_insert(&mut conn, "jwt_secret", &fresh)
        .await
        .map_err(|e| StartError::Secret(chain(&e)))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(stored.trim())
        .map_err(|e| StartError::Secret(format!("the stored key is not valid base64: {e}")))?;
    if bytes.len() < Secret::MIN_LEN {
        return Err(StartError::Secret("the stored key is too short".to_owned()));
    }
    Ok(Secret::new(bytes))
}

/// Listens for Ctrl-C and SIGTERM from now on (not from the first poll, so that a signal
/// arriving just after start-up is not met by the default action of ending the process),
/// and completes when one arrives.
fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let streams = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        );
        async move {
            match streams {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {},
                        _ = int.recv() => {},
                    }
                }
                _ => std::future::pending::<()>().await,
            }
            tracing::info!("shutting down: finishing requests in flight");
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down: finishing requests in flight");
    }
}
