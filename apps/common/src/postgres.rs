//! PostgreSQL settings from `<PREFIX>_DB_*` variables, the pool built from
//! them, and how database errors become HTTP answers.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use sqlx::error::BoxDynError;
use sqlx::migrate::{MigrateError, Migration, MigrationSource, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokio::sync::watch;

use crate::ApiError;
use crate::backoff::Backoff;
use crate::config::{Env, Secret};

#[derive(Debug, Clone)]
pub struct DbSettings {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Secret,
    pub database: String,
}

impl DbSettings {
    /// Reads `{prefix}_DB_USER`, `_PASSWORD`, `_NAME`, `_HOST` and `_PORT`
    /// (5432 when absent).
    pub fn from_env(env: &Env, prefix: &str) -> anyhow::Result<Self> {
        Ok(DbSettings {
            host: env.required(&format!("{prefix}_DB_HOST"))?,
            port: env.parsed_or(&format!("{prefix}_DB_PORT"), 5432)?,
            user: env.required(&format!("{prefix}_DB_USER"))?,
            password: env.secret(&format!("{prefix}_DB_PASSWORD"))?,
            database: env.required(&format!("{prefix}_DB_NAME"))?,
        })
    }

    pub fn connect_options(&self) -> PgConnectOptions {
        PgConnectOptions::new()
            .host(&self.host)
            .port(self.port)
            .username(&self.user)
            .password(self.password.expose())
            .database(&self.database)
    }

    /// A pool that connects on demand, so the service starts (and answers
    /// 503) while the database is down, and recovers when it is back.
    pub fn lazy_pool(&self, max_connections: u32) -> PgPool {
        PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(3))
            .connect_lazy_with(self.connect_options())
    }
}

/// A service's migrations, embedded in its binary (`include_str!`) as
/// `(file name, SQL)`: what `sqlx::migrate!()` embeds, the same versions,
/// descriptions and checksums, without sqlx's macros, whose build (and the
/// second, host build of sqlx it needs) was a third of a cold image build.
#[derive(Debug, Clone, Copy)]
pub struct Embedded(pub &'static [(&'static str, &'static str)]);

type Resolved<'s> = Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>>;

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> Resolved<'s> {
        Box::pin(async move {
            self.0
                .iter()
                .map(|(file, sql)| embedded(file, sql))
                .collect()
        })
    }
}

/// `0002_orders_message_id.sql` is version 2, "orders message id", as sqlx names it.
fn embedded(file: &str, sql: &'static str) -> Result<Migration, BoxDynError> {
    let (version, description) = file
        .strip_suffix(".sql")
        .and_then(|stem| stem.split_once('_'))
        .ok_or_else(|| format!("migration {file:?} is not named VERSION_DESCRIPTION.sql"))?;
    let version = version
        .parse()
        .map_err(|_| format!("migration {file:?} has no numeric version"))?;
    Ok(Migration::new(
        version,
        Cow::Owned(description.replace('_', " ")),
        MigrationType::Simple,
        Cow::Borrowed(sql),
        false,
    ))
}

/// A service's database: the pool, and whether its schema is migrated yet.
/// The service serves from the start; it is ready once the database answers
/// and the migrations ran, which [`Database::migrate`] retries until they do.
#[derive(Clone)]
pub struct Database {
    pub pool: PgPool,
    migrated: Arc<watch::Sender<bool>>,
}

impl Database {
    pub fn new(pool: PgPool) -> Self {
        Database {
            pool,
            migrated: Arc::new(watch::channel(false).0),
        }
    }

    /// Applies the migrations, retrying with backoff until they succeed: the
    /// database may start after the service, or refuse for a while (a role
    /// or database being created), and a restart would not help either.
    pub async fn migrate(&self, migrations: Embedded) {
        let migrator = Migrator::new(migrations)
            .await
            .expect("embedded migrations are named VERSION_DESCRIPTION.sql");
        let mut backoff = Backoff::default();
        loop {
            match migrator.run(&self.pool).await {
                Ok(()) => break,
                Err(MigrateError::Execute(error)) if is_unreachable(&error) => {
                    tracing::warn!(%error, "database unreachable, migrations wait");
                }
                Err(error) => tracing::error!(%error, "migrations failed, retrying"),
            }
            backoff.wait().await;
        }
        tracing::info!("database schema up to date");
        self.migrated.send_replace(true);
    }

    /// Completes once the migrations have run.
    pub async fn migrated(&self) {
        let mut migrated = self.migrated.subscribe();
        // The sender lives as long as `self`: the wait cannot fail.
        let _ = migrated.wait_for(|migrated| *migrated).await;
    }

    /// Readiness: the schema is migrated and the database answers.
    pub async fn ready(&self) -> Result<(), ApiError> {
        if !*self.migrated.borrow() {
            return Err(ApiError::Unavailable(
                "database schema not migrated yet".into(),
            ));
        }
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// Whether the error means the database could not be reached, as opposed to
/// a query it refused.
pub fn is_unreachable(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
    ) || matches!(error, sqlx::Error::Database(db)
        // Class 57 (operator intervention: shutdown in progress) and 08
        // (connection exception) mean the server is going away.
        if db.code().is_some_and(|code| code.starts_with("57") || code.starts_with("08")))
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::RowNotFound => ApiError::NotFound("not found".into()),
            error if is_unreachable(&error) => {
                tracing::warn!(%error, "database unavailable");
                ApiError::Unavailable("database unavailable".into())
            }
            error => {
                tracing::error!(%error, "database error");
                ApiError::Internal
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_migrations_are_named_as_sqlx_names_them() {
        let migration = embedded("0002_orders_message_id.sql", "SELECT 1").unwrap();
        assert_eq!(migration.version, 2);
        assert_eq!(migration.description, "orders message id");
        // The checksum sqlx::migrate!() stores: databases migrated before keep theirs.
        let same_sql = Migration::new(
            2,
            Cow::Borrowed("x"),
            MigrationType::Simple,
            Cow::Borrowed("SELECT 1"),
            false,
        );
        assert_eq!(migration.checksum, same_sql.checksum);
        for bad in ["orders.sql", "x_orders.sql", "0001_orders.txt"] {
            assert!(embedded(bad, "").is_err(), "{bad}");
        }
    }
}
