//! Schema migrations, embedded in the binary: one set per engine, with matching versions.
//! Each migration is reversible (`.up.sql` / `.down.sql`).

use sqlx::migrate::{Migrate, Migrator};

use super::Db;

static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");

impl Db {
    /// Applies every pending migration.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match self {
            Self::Sqlite(p) => SQLITE.run(p).await,
            Self::Postgres(p) => POSTGRES.run(p).await,
        }
    }

    /// Reverts the most recently applied migration; returns its version and description,
    /// or `None` when nothing is applied.
    pub async fn revert_last(&self) -> Result<Option<(i64, String)>, sqlx::migrate::MigrateError> {
        async fn revert<'a, A>(
            migrator: &Migrator,
            pool: A,
        ) -> Result<Option<(i64, String)>, sqlx::migrate::MigrateError>
        where
            A: sqlx::Acquire<'a> + Copy,
            <A::Connection as std::ops::Deref>::Target: Migrate,
        {
            let applied = {
                let mut conn = pool.acquire().await?;
                conn.ensure_migrations_table(&migrator.table_name).await?;
                conn.list_applied_migrations(&migrator.table_name).await?
            };
            let Some(last) = applied.iter().map(|m| m.version).max() else {
                return Ok(None);
            };
            let target = applied
                .iter()
                .map(|m| m.version)
                .filter(|v| *v < last)
                .max()
                .unwrap_or(0);
            migrator.undo(pool, target).await?;
            let description = migrator
                .iter()
                .find(|m| m.version == last)
                .map(|m| m.description.to_string())
                .unwrap_or_default();
            Ok(Some((last, description)))
        }
        match self {
            Self::Sqlite(p) => revert(&SQLITE, p).await,
            Self::Postgres(p) => revert(&POSTGRES, p).await,
        }
    }
}
