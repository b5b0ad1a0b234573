//! The database: one pool of either SQLite or PostgreSQL, and one body of SQL for both.
//!
//! Repositories (one file per table family) write their SQL once, with `$1`-style
//! placeholders that both engines accept, and run it through [`sql!`], which expands the
//! same body once per engine. A genuine dialect difference becomes an explicit match arm.
//!
//! Timestamps are produced in Rust ([`now`]) with microsecond precision, the finest both
//! engines store, so a value reads back exactly as it was written on either of them.

pub mod api_keys;
pub mod instances;
pub mod kept;
pub mod migrate;
pub mod page;
pub mod posts;
pub mod sessions;
pub mod settings;
pub mod throttle;
pub mod users;
pub mod votes;

use std::{str::FromStr, time::Duration};

use chrono::{DateTime, DurationRound, Utc};
use sqlx::{
    ConnectOptions, Connection, PgConnection, PgPool, Postgres, Sqlite, SqliteConnection,
    SqlitePool,
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use self::kept::Pooled;
use crate::config::{ConfigError, DatabaseUrl};

/// Runs one body of SQLx code on whichever engine a connection belongs to.
///
/// `sql!(conn, |c| sqlx::query("…").execute(c).await.map(|r| r.rows_affected()))` binds `c` to
/// `&mut SqliteConnection` or `&mut PgConnection`.
#[macro_export]
macro_rules! sql {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $crate::db::AsConn::as_conn($conn) {
            $crate::db::ConnRef::Sqlite($c) => $body,
            $crate::db::ConnRef::Postgres($c) => $body,
        }
    };
}

/// Runs the statement built by `$query` on either engine; evaluates to the number of rows
/// it affected.
#[macro_export]
macro_rules! execute {
    ($conn:expr, $query:expr) => {
        $crate::sql!($conn, |c| $query
            .execute(c)
            .await
            .map(|r| r.rows_affected()))
    };
}

/// Fetches every row of `$sql`, in which `{ids}` stands for a list of ids and `$1…` for
/// `$args`, bound before them. The one dialect difference of such a query: PostgreSQL
/// takes the list as one array parameter (`= ANY($n)`), SQLite as one parameter per id
/// (`IN ($n, …)`).
#[macro_export]
macro_rules! fetch_all_in {
    ($conn:expr, $sql:expr, [$($arg:expr),*], $ids:expr) => {{
        let ids: &[uuid::Uuid] = $ids;
        // The first placeholder after the arguments, counted without evaluating them.
        let first = 1 + <[&str]>::len(&[$(stringify!($arg)),*]);
        match $crate::db::AsConn::as_conn($conn) {
            $crate::db::ConnRef::Postgres(c) => {
                let sql = String::from($sql).replace("{ids}", &format!("= ANY(${first})"));
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    $(.bind($arg))*
                    .bind(ids)
                    .fetch_all(c)
                    .await
            }
            $crate::db::ConnRef::Sqlite(c) => {
                let list = $crate::db::page::placeholders(first, ids.len());
                let sql = String::from($sql).replace("{ids}", &format!("IN ({list})"));
                let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql)) $(.bind($arg))*;
                for id in ids {
                    q = q.bind(*id);
                }
                q.fetch_all(c).await
            }
        }
    }};
}

/// A connection pool for one of the supported engines.
#[derive(Clone, Debug)]
pub enum Db {
    /// A SQLite pool: up to 8 connections, WAL journal, foreign keys enforced.
    Sqlite(SqlitePool),
    /// A PostgreSQL pool of up to 16 connections.
    Postgres(PgPool),
}

/// A borrowed connection, as [`sql!`] hands it to a query body.
pub enum ConnRef<'a> {
    /// A SQLite connection.
    Sqlite(&'a mut SqliteConnection),
    /// A PostgreSQL connection.
    Postgres(&'a mut PgConnection),
}

/// Anything a query can run on: a pooled connection or an open transaction.
pub trait AsConn {
    /// Borrows the underlying connection, tagged with its engine.
    fn as_conn(&mut self) -> ConnRef<'_>;
}

/// A connection taken from the pool for a few statements outside a transaction: inside
/// [`kept::keeping`], the request's kept connection.
pub struct DbConn {
    /// Always `Some` until dropped.
    conn: Option<Pooled>,
    /// The request slot it goes back to, if any; otherwise the pool.
    held: Option<kept::KeptRef>,
}

impl Drop for DbConn {
    fn drop(&mut self) {
        if let (Some(held), Some(conn)) = (&self.held, self.conn.take()) {
            kept::put_back(held, conn);
        }
    }
}

/// An open transaction; dropped without [`DbTx::commit`], it rolls back.
pub enum DbTx {
    /// A SQLite transaction, begun with `BEGIN IMMEDIATE`.
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    /// A PostgreSQL transaction.
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl AsConn for DbConn {
    fn as_conn(&mut self) -> ConnRef<'_> {
        match self.conn.as_mut().expect("a connection until dropped") {
            Pooled::Sqlite(c) => ConnRef::Sqlite(c),
            Pooled::Postgres(c) => ConnRef::Postgres(c),
        }
    }
}

impl AsConn for DbTx {
    fn as_conn(&mut self) -> ConnRef<'_> {
        match self {
            Self::Sqlite(t) => ConnRef::Sqlite(t),
            Self::Postgres(t) => ConnRef::Postgres(t),
        }
    }
}

impl<T: AsConn> AsConn for &mut T {
    fn as_conn(&mut self) -> ConnRef<'_> {
        (**self).as_conn()
    }
}

impl DbTx {
    /// Commits the transaction.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlite(t) => t.commit().await,
            Self::Postgres(t) => t.commit().await,
        }
    }
}

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// `DATABASE_URL` is not a valid URL for its engine.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be opened or reached.
    #[error("cannot connect to the database at DATABASE_URL ({url}): {reason}")]
    Unreachable {
        /// `DATABASE_URL` with any password redacted.
        url: String,
        /// The driver's error chain, or the timeout that ran out.
        reason: String,
    },
}

/// How long start-up waits for the database before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Db {
    /// Opens a pool of at most `size` connections for `url`; a SQLite file is created when
    /// missing.
    pub async fn connect(url: &DatabaseUrl, size: u32) -> Result<Self, ConnectError> {
        let unreachable = |e: sqlx::Error| ConnectError::Unreachable {
            url: url.redacted(),
            reason: crate::error::chain(&e),
        };
        let bad_url = |e: sqlx::Error| {
            ConfigError::new(
                "DATABASE_URL",
                format!("'{}': {}", url.redacted(), crate::error::chain(&e)),
            )
        };
        match url {
            DatabaseUrl::Sqlite(u) => {
                let options = SqliteConnectOptions::from_str(u)
                    .map_err(bad_url)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(5));
                let pool = SqlitePoolOptions::new()
                    .max_connections(size)
                    .test_before_acquire(false)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(unreachable)?;
                Ok(Self::Sqlite(pool))
            }
            DatabaseUrl::Postgres(u) => {
                // Whatever else goes wrong, no transaction left idle holds its locks for
                // long: the server ends it (quire's transactions take milliseconds).
                let options = PgConnectOptions::from_str(u)
                    .map_err(bad_url)?
                    .options([("idle_in_transaction_session_timeout", "60s")]);
                // One direct connection first: when the server cannot be reached, its error
                // says why (refused, unknown host, bad password), where the pool would
                // only report that it timed out.
                let probe = tokio::time::timeout(CONNECT_TIMEOUT, options.connect())
                    .await
                    .map_err(|_| ConnectError::Unreachable {
                        url: url.redacted(),
                        reason: format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()),
                    })?
                    .map_err(unreachable)?;
                probe.close().await.map_err(unreachable)?;
                let pool = PgPoolOptions::new()
                    .max_connections(size)
                    // No round trip to check a connection each time it is taken: a broken
                    // one fails its query and is dropped then.
                    .test_before_acquire(false)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(unreachable)?;
                Ok(Self::Postgres(pool))
            }
        }
    }

    /// Takes a connection from the pool.
    pub async fn acquire(&self) -> Result<DbConn, sqlx::Error> {
        let (conn, held) = match kept::offer() {
            kept::Offer::Kept(conn, held) => (conn, Some(held)),
            kept::Offer::NotKeeping => (self.take_pooled().await?, None),
            kept::Offer::InUse(held) => tokio::select! {
                conn = kept::wait(&held) => (conn, Some(held)),
                conn = self.take_pooled() => (conn?, None),
            },
            kept::Offer::TakeAndKeep(held) => match self.take_pooled().await {
                Ok(conn) => (conn, Some(held)),
                Err(e) => {
                    kept::forget(&held);
                    return Err(e);
                }
            },
        };
        Ok(DbConn {
            conn: Some(conn),
            held,
        })
    }

    async fn take_pooled(&self) -> Result<Pooled, sqlx::Error> {
        Ok(match self {
            Self::Sqlite(p) => Pooled::Sqlite(p.acquire().await?),
            Self::Postgres(p) => Pooled::Postgres(p.acquire().await?),
        })
    }

    /// Begins a transaction.
    ///
    /// On SQLite the transaction takes the write lock at once (`BEGIN IMMEDIATE`), so two
    /// writers queue on the busy timeout instead of failing when one upgrades a read lock.
    ///
    /// `BEGIN` runs in a task of its own, which the caller cannot cancel. sqlx 0.9 counts
    /// a transaction as begun only once the server has answered `BEGIN`; a caller dropped
    /// while it waits (a client that went away, the request timeout) would leave the
    /// server inside a transaction that nothing ends, on a connection the pool takes back
    /// as clean. Every later user of that connection would then run inside it, and hold
    /// its locks for ever. Here the task always finishes beginning, and a transaction
    /// that nobody is left to take is dropped and so rolled back.
    pub async fn begin(&self) -> Result<DbTx, sqlx::Error> {
        let db = self.clone();
        kept::detach(async move {
            Ok(match db {
                Self::Sqlite(p) => DbTx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
                Self::Postgres(p) => DbTx::Postgres(p.begin().await?),
            })
        })
        .await
        .map_err(|e| sqlx::Error::Protocol(format!("beginning a transaction failed: {e}")))?
    }

    /// Answers whether the database responds to a trivial query.
    pub async fn ping(&self) -> bool {
        let probe = async {
            let mut conn = self.acquire().await?;
            execute!(&mut conn, sqlx::query("SELECT 1"))
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(2), probe).await,
            Ok(Ok(_))
        )
    }

    /// Closes every connection in the pool.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(p) => p.close().await,
            Self::Postgres(p) => p.close().await,
        }
    }

    /// Open and idle connections of the pool.
    pub fn pool_stats(&self) -> (u32, usize) {
        match self {
            Self::Sqlite(p) => (p.size(), p.num_idle()),
            Self::Postgres(p) => (p.size(), p.num_idle()),
        }
    }

    /// The engine's name, for logs.
    pub fn engine(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

/// The current time at the precision both databases store.
pub fn now() -> DateTime<Utc> {
    truncate(Utc::now())
}

/// Truncates a time to whole microseconds.
pub fn truncate(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(chrono::Duration::microseconds(1))
        .unwrap_or(t)
}

/// Whether an error is a foreign-key violation (a row referring to one just deleted).
pub fn is_foreign_key_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|e| e.kind() == sqlx::error::ErrorKind::ForeignKeyViolation)
}

/// Whether an error is a unique-constraint violation (a taken email, say).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|e| e.kind() == sqlx::error::ErrorKind::UniqueViolation)
}
