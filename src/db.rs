//! The PostgreSQL pool: created if missing, migrated on start.

use std::str::FromStr;
use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use crate::config::DatabaseSettings;

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database.url is not a valid PostgreSQL URL")]
    BadUrl,
    #[error("cannot reach or create the database {database:?}: {source}")]
    Create {
        database: String,
        source: sqlx::Error,
    },
    #[error("cannot connect to the database {database:?}: {source}")]
    Connect {
        database: String,
        source: sqlx::Error,
    },
    #[error("migrating the database failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("setting up the job queue tables failed: {0}")]
    Queue(String),
}

/// Creates the database if it does not exist, connects, and applies pending migrations.
pub async fn connect_and_migrate(settings: &DatabaseSettings) -> Result<PgPool, DbError> {
    let pool = connect(settings, true).await?;
    migrate(&pool).await?;
    Ok(pool)
}

/// Our migrations, then the job queue's own (schema `apalis`, its own migration table).
pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    MIGRATOR.run(pool).await?;
    apalis_postgres::PostgresStorage::<()>::setup(pool)
        .await
        .map_err(|e| DbError::Queue(e.to_string()))?;
    Ok(())
}

pub async fn connect(settings: &DatabaseSettings, create: bool) -> Result<PgPool, DbError> {
    let options = connect_options(settings)?;
    let database = options.get_database().unwrap_or("postgres").to_string();
    if create {
        create_if_missing(&options, &database)
            .await
            .map_err(|source| DbError::Create {
                database: database.clone(),
                source,
            })?;
    }
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(Duration::from_secs(settings.acquire_timeout_secs))
        .connect_with(options)
        .await
        .map_err(|source| DbError::Connect { database, source })
}

async fn create_if_missing(options: &PgConnectOptions, database: &str) -> Result<(), sqlx::Error> {
    let mut admin = PgConnection::connect_with(&options.clone().database("postgres")).await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(database)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        let quoted = database.replace('"', "\"\"");
        match sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{quoted}\"")))
            .execute(&mut admin)
            .await
        {
            Ok(_) => tracing::info!(database, "created database"),
            // Another process created it in the meantime.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(e) => return Err(e),
        }
    }
    admin.close().await
}

/// The name of the operating-system user running this process.
fn os_user_name() -> String {
    if let Some(name) = ["USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    {
        return name;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid())
            && let Ok(passwd) = std::fs::read_to_string("/etc/passwd")
        {
            for line in passwd.lines() {
                let fields: Vec<&str> = line.split(':').collect();
                if fields.len() > 2 && fields[2].parse::<u32>().ok() == Some(uid) {
                    return fields[0].to_string();
                }
            }
        }
    }
    "postgres".to_string()
}

/// Drops a database on the configured server (benchmarks and tools clean up after themselves).
pub async fn drop_database(settings: &DatabaseSettings, database: &str) -> Result<(), DbError> {
    let options = connect_options(settings)?;
    let fail = |source| DbError::Connect {
        database: database.to_string(),
        source,
    };
    let mut admin = PgConnection::connect_with(&options.database("postgres"))
        .await
        .map_err(fail)?;
    let quoted = database.replace('"', "\"\"");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{quoted}\" WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .map_err(fail)?;
    Ok(())
}

/// Options from `database.url`; without a user in the URL (or PGUSER), the operating-system
/// user, like libpq, even where $USER is unset.
fn connect_options(settings: &DatabaseSettings) -> Result<PgConnectOptions, DbError> {
    let url = settings.url.expose_secret();
    let mut options = PgConnectOptions::from_str(url).map_err(|_| DbError::BadUrl)?;
    let url_names_user = url::Url::parse(url).is_ok_and(|u| !u.username().is_empty());
    if !url_names_user && std::env::var_os("PGUSER").is_none() {
        options = options.username(&os_user_name());
    }
    Ok(options)
}

/// Rows written before the planner's statistics are refreshed. A first sync of a large
/// catalog writes hundreds of thousands of rows in minutes; until autovacuum analyzes the
/// tables the planner believes they are nearly empty, and list queries walk the whole catalog
/// instead of an index (hundreds of milliseconds instead of one).
pub const ANALYZE_AFTER_ROWS: i64 = 10_000;

/// Refreshes the planner's statistics of `tables` when a job wrote at least
/// [`ANALYZE_AFTER_ROWS`] rows. Failing to is logged, not fatal: the data is written.
pub async fn analyze_after_bulk_write(pool: &PgPool, rows: i64, tables: &[&str]) {
    if rows < ANALYZE_AFTER_ROWS {
        return;
    }
    let statement = format!("ANALYZE {}", tables.join(", "));
    if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(statement))
        .execute(pool)
        .await
    {
        tracing::warn!(error = %e, "refreshing planner statistics failed");
    }
}
