//! [`SqlStore`]: the store on SQLite or PostgreSQL.
//!
//! Method bodies are written once inside [`with_pool!`], which expands them
//! for each pool type; the SQL is shared (`$n` placeholders work on both).

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::AssertSqlSafe;

use super::config::{SqliteSync, StoreConfig};
use super::error::{Result, StoreError};
use super::model::{Timestamp, MAX_PAGE};
use super::Store;

mod alerts;
mod campaigns;
mod devices;
mod jobs;
mod lite;
mod message;
mod notify;
mod packages;
mod queue;
mod sessions;
mod tokens;
mod writer;

/// Embedded SQLite migrations (`migrations/sqlite/<version>_<name>.sql`).
static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");
/// Embedded PostgreSQL migrations, same versions as SQLite.
static PG_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// SQLite, one node.
    Sqlite,
    /// PostgreSQL, any number of nodes.
    Postgres,
}

/// The store over a SQLite or PostgreSQL pool.
#[derive(Clone, Debug)]
pub struct SqlStore {
    pool: Pool,
    /// SQLite: the group-commit writer the DM sessions' writes go through
    /// (see [`writer`]).
    writer: Option<Arc<writer::GroupWriter>>,
    /// SQLite: read connections for the sessions' hot lookups (see [`lite`]).
    lite: Option<Arc<lite::Lite>>,
}

#[derive(Clone, Debug)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the concrete pool and `$pg` to whether
/// it is PostgreSQL; the body is compiled once per backend.
macro_rules! with_pool {
    ($store:expr, |$pool:ident, $pg:ident| $body:expr) => {
        match &$store.pool {
            $crate::store::sql::Pool::Sqlite($pool) => {
                let $pg = false;
                let _ = $pg;
                $body
            }
            $crate::store::sql::Pool::Postgres($pool) => {
                let $pg = true;
                let _ = $pg;
                $body
            }
        }
    };
}
pub(crate) use with_pool;

pub use packages::new_download_token;

/// Begins a write transaction ([`WriteTx`]). On SQLite it first waits for
/// the database's write turn ([`GatePool::write_turn`]), then `BEGIN
/// IMMEDIATE` takes the write lock up front, so a transaction that reads
/// before it writes cannot fail with `SQLITE_BUSY` on upgrade.
macro_rules! begin_write {
    ($pool:expr, $pg:expr) => {{
        let turn = $crate::store::sql::GatePool::write_turn($pool).await;
        let tx = $pool
            .begin_with(if $pg { "BEGIN" } else { "BEGIN IMMEDIATE" })
            .await?;
        $crate::store::sql::WriteTx::new(tx, turn)
    }};
}
pub(crate) use begin_write;

/// Checks a client alert as `record_alert` would.
pub(crate) fn check_alert(alert: &super::NewAlert) -> Result<()> {
    alerts::alert_data(alert).map(|_| ())
}

/// A write transaction holding its SQLite write turn until it ends. Derefs
/// to the connection, like [`sqlx::Transaction`].
pub(crate) struct WriteTx<'c, DB: sqlx::Database> {
    tx: sqlx::Transaction<'c, DB>,
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl<'c, DB: sqlx::Database> WriteTx<'c, DB> {
    pub(crate) fn new(
        tx: sqlx::Transaction<'c, DB>,
        turn: Option<tokio::sync::OwnedMutexGuard<()>>,
    ) -> Self {
        WriteTx { tx, _turn: turn }
    }

    /// Commits, then gives the write turn up.
    pub(crate) async fn commit(self) -> std::result::Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl<DB: sqlx::Database> std::ops::Deref for WriteTx<'_, DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &DB::Connection {
        &self.tx
    }
}

impl<DB: sqlx::Database> std::ops::DerefMut for WriteTx<'_, DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.tx
    }
}

/// Turn-taking between the writers of one SQLite database in this process.
///
/// SQLite has one writer at a time; writers that collide wait in its busy
/// handler, which sleeps in growing steps (1, 2, 5, 10, … ms) and so stalls
/// the group-commit writer, and with it every DM session, whenever a
/// background task (SCOMO worker, notifier, sweeper, API) writes at the
/// same moment. Instead every write transaction waits for its turn here,
/// first come first served (tokio's mutex is fair), and never meets
/// another writer inside SQLite.
pub(crate) trait GatePool {
    /// The database's write turn (SQLite), or `None` (PostgreSQL).
    fn write_turn(
        &self,
    ) -> impl std::future::Future<Output = Option<tokio::sync::OwnedMutexGuard<()>>> + Send;
}

impl GatePool for SqlitePool {
    async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        Some(
            sqlite_gate(self.connect_options().get_filename())
                .lock_owned()
                .await,
        )
    }
}

impl GatePool for PgPool {
    async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        None
    }
}

/// The write gate of the SQLite database at `path`, one per file in this
/// process (stores opened on the same file share it).
pub(crate) fn sqlite_gate(path: &std::path::Path) -> Arc<tokio::sync::Mutex<()>> {
    use std::collections::HashMap;
    use std::path::PathBuf;
    use std::sync::{Mutex, OnceLock, Weak};
    type Gates = Mutex<HashMap<PathBuf, Weak<tokio::sync::Mutex<()>>>>;
    static GATES: OnceLock<Gates> = OnceLock::new();
    let gates = GATES.get_or_init(|| Mutex::new(HashMap::new()));
    let mut gates = gates
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(g) = gates.get(path).and_then(Weak::upgrade) {
        return g;
    }
    gates.retain(|_, g| g.strong_count() > 0);
    let g = Arc::new(tokio::sync::Mutex::new(()));
    gates.insert(path.to_owned(), Arc::downgrade(&g));
    g
}

/// Picks the PostgreSQL or the SQLite text of a statement.
pub(crate) fn pick(pg: bool, postgres: &'static str, sqlite: &'static str) -> &'static str {
    if pg {
        postgres
    } else {
        sqlite
    }
}

impl SqlStore {
    /// Opens (creating if needed) the database at `config.url` and applies
    /// pending migrations.
    pub async fn open(config: &StoreConfig) -> Result<SqlStore> {
        let scheme = config.url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => open_sqlite(config).await,
            "postgres" | "postgresql" => open_postgres(config).await,
            other => Err(StoreError::UnsupportedUrl {
                scheme: other.to_owned(),
            }),
        }
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Closes the pool.
    pub async fn close(&self) {
        if let Some(w) = &self.writer {
            w.stop();
        }
        with_pool!(self, |pool, _pg| pool.close().await)
    }
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        SqlStore::backend(self)
    }

    async fn close(&self) {
        SqlStore::close(self).await
    }
}

async fn open_sqlite(config: &StoreConfig) -> Result<SqlStore> {
    let lower = config.url.to_ascii_lowercase();
    if lower.contains(":memory:") || lower.contains("mode=memory") {
        return Err(StoreError::InvalidConfig {
            field: "url",
            reason: "an in-memory SQLite database is not shared by a pool; use a file".into(),
        });
    }
    let options = SqliteConnectOptions::from_str(&config.url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL (default): a committed enqueue survives power loss, not only
        // a crash. NORMAL is the operator's choice (`database.sqlite_synchronous`).
        .synchronous(match config.sqlite_synchronous {
            SqliteSync::Full => SqliteSynchronous::Full,
            SqliteSync::Normal => SqliteSynchronous::Normal,
        })
        .foreign_keys(true)
        .busy_timeout(config.busy_timeout);
    let pool = SqlitePoolOptions::new()
        .max_connections(pool_size(config, 4)?)
        .acquire_timeout(config.acquire_timeout)
        .connect_with(options.clone())
        .await?;
    SQLITE_MIGRATOR.run(&pool).await?;
    let lite_options = lite::LiteOptions {
        path: options.get_filename().to_owned(),
        synchronous: config.sqlite_synchronous,
        busy_timeout: config.busy_timeout,
        writer_cache_mib: config.sqlite_writer_cache_mib,
    };
    // Held by the writer (and so by the store) for as long as it runs.
    let gate = sqlite_gate(options.get_filename());
    let writer = writer::GroupWriter::spawn(&lite_options, gate)?;
    Ok(SqlStore {
        pool: Pool::Sqlite(pool),
        writer: Some(Arc::new(writer)),
        lite: Some(Arc::new(lite::Lite::new(lite_options))),
    })
}

async fn open_postgres(config: &StoreConfig) -> Result<SqlStore> {
    let options = PgConnectOptions::from_str(&config.url)?;
    let mut pool_options = PgPoolOptions::new()
        .max_connections(pool_size(config, 10)?)
        .acquire_timeout(config.acquire_timeout);
    let schema = match &config.pg_schema {
        Some(s) => Some(checked_schema(s)?),
        None => None,
    };
    if let Some(schema) = &schema {
        let set = format!("SET search_path TO \"{schema}\"");
        pool_options = pool_options.after_connect(move |conn, _meta| {
            let set = set.clone();
            Box::pin(async move {
                sqlx::raw_sql(AssertSqlSafe(set)).execute(conn).await?;
                Ok(())
            })
        });
    }
    let pool = pool_options.connect_with(options).await?;
    if let Some(schema) = &schema {
        let create = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
        sqlx::raw_sql(AssertSqlSafe(create)).execute(&pool).await?;
    }
    PG_MIGRATOR.run(&pool).await?;
    Ok(SqlStore {
        pool: Pool::Postgres(pool),
        writer: None,
        lite: None,
    })
}

fn pool_size(config: &StoreConfig, default: u32) -> Result<u32> {
    match config.max_connections {
        None => Ok(default),
        Some(n @ 1..=1000) => Ok(n),
        Some(n) => Err(StoreError::InvalidConfig {
            field: "max_connections",
            reason: format!("{n} is not in 1..=1000"),
        }),
    }
}

/// A schema name safe to splice into `SET search_path` (it cannot be bound).
fn checked_schema(s: &str) -> Result<&str> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(s)
    } else {
        Err(StoreError::InvalidConfig {
            field: "pg_schema",
            reason: format!("{s:?} is not [a-z_][a-z0-9_]* of at most 63 bytes"),
        })
    }
}

/// A page size in 1..=[`MAX_PAGE`], as bound in SQL.
pub(crate) fn page_limit(limit: u32) -> i64 {
    i64::from(limit.clamp(1, MAX_PAGE))
}

pub(crate) fn ts(t: Timestamp) -> i64 {
    t.unix_millis()
}

pub(crate) fn opt_ts(t: Option<i64>) -> Option<Timestamp> {
    t.map(Timestamp::from_unix_millis)
}

/// An unsigned counter read back from an `BIGINT` column.
pub(crate) fn count(what: &'static str, v: i64) -> Result<u32> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt {
        what,
        reason: format!("{v} is not a count"),
    })
}

/// Rejects empty or oversized strings from callers.
pub(crate) fn check_len(field: &'static str, s: &str, max: usize) -> Result<()> {
    if s.is_empty() || s.len() > max {
        return Err(StoreError::Invalid {
            field,
            reason: format!("must be 1..={max} bytes, is {}", s.len()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_have_the_same_migrations() {
        let versions = |m: &Migrator| {
            m.iter()
                .map(|m| (m.version, m.description.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(versions(&SQLITE_MIGRATOR), versions(&PG_MIGRATOR));
        assert!(!versions(&SQLITE_MIGRATOR).is_empty());
    }

    #[test]
    fn schema_names_are_checked() {
        assert!(checked_schema("scomo_test_1").is_ok());
        assert!(checked_schema("x\"; DROP").is_err());
        assert!(checked_schema("1abc").is_err());
        assert!(checked_schema("").is_err());
    }
}
