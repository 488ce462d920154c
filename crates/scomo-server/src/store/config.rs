//! How to open a store.

use std::time::Duration;

/// Store configuration (the server builds it from its TOML/env/flags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// `sqlite://PATH` (created if missing; `sqlite::memory:` is refused
    /// because a pool would see several databases) or `postgres://…`.
    pub url: String,
    /// Pool size; `None` picks 4 for SQLite (one writer at a time anyway)
    /// and 10 for PostgreSQL.
    pub max_connections: Option<u32>,
    /// How long to wait for a pooled connection.
    pub acquire_timeout: Duration,
    /// SQLite: how long a writer waits for the write lock.
    pub busy_timeout: Duration,
    /// PostgreSQL: use (and create) this schema instead of the default
    /// `search_path` (`[a-z_][a-z0-9_]*`, at most 63 bytes). Tests use a
    /// random one per run; deployments normally leave it unset.
    pub pg_schema: Option<String>,
    /// SQLite: when a commit reaches the disk (`PRAGMA synchronous`).
    pub sqlite_synchronous: SqliteSync,
    /// SQLite: the page cache of the connection every write goes through,
    /// in MiB (filled only as pages are touched).
    pub sqlite_writer_cache_mib: u32,
}

/// The default of [`StoreConfig::sqlite_writer_cache_mib`]: every write of a
/// session or job walks the same few tables and indexes, and a page missing
/// from the cache is a `pread` on the writer thread, the one thread every
/// write waits for. 128 MiB holds the index pages a campaign over 100,000
/// devices touches: with 32 MiB that campaign ran at 463 devices/s against
/// 503, with 10 % more server CPU. A short burst on a fresh database runs
/// about 5 % faster with 32 MiB (fewer new pages to take in).
pub const DEFAULT_SQLITE_WRITER_CACHE_MIB: u32 = 128;

/// SQLite's durability level (`PRAGMA synchronous` in WAL mode).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum SqliteSync {
    /// Every commit is on disk before it returns (one fsync of the WAL per
    /// commit; group commit shares it between the sessions of one batch):
    /// a committed write survives power loss.
    #[default]
    Full,
    /// The WAL is synced at checkpoints only: a crash of the process loses
    /// nothing, a power loss or kernel crash may lose the last commits
    /// (the database stays consistent). Faster; a durability trade-off
    /// the operator makes.
    Normal,
}

impl StoreConfig {
    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> StoreConfig {
        StoreConfig {
            url: url.into(),
            max_connections: None,
            acquire_timeout: Duration::from_secs(30),
            busy_timeout: Duration::from_secs(10),
            pg_schema: None,
            sqlite_synchronous: SqliteSync::Full,
            sqlite_writer_cache_mib: DEFAULT_SQLITE_WRITER_CACHE_MIB,
        }
    }
}
