//! SQLite through rusqlite, for the DM sessions' hot path.
//!
//! sqlx runs each SQLite connection on a worker thread of its own and
//! hands every statement to it and its answer back: two thread wake-ups per
//! statement. A DM message runs a dozen statements, and with hundreds of
//! sessions a second the process spent more time switching threads than
//! running SQL. The paths every session takes therefore run synchronously
//! on rusqlite connections opened on the same database file:
//!
//! - reads ([`Lite::read`]): a point lookup on an indexed row takes
//!   microseconds once the page is cached, less than a hand-off to another
//!   thread, so it runs in the caller's task on a connection from a small
//!   pool. WAL readers never wait for the writer.
//! - writes: the group-commit writer thread ([`super::writer`]) runs each
//!   message's statements without leaving its thread.
//!
//! Everything else (API, jobs engine, campaigns, sweeps) stays on sqlx; the
//! two share the file, WAL, and the per-database write gate.
//!
//! Statements are written as for sqlx (`$1`, `$2`, … placeholders, which
//! SQLite takes as named parameters): [`bind`] binds `$n` to the n-th value
//! whatever order the names first appear in, so one SQL text serves both.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::types::ToSql;
use rusqlite::{CachedStatement, Connection, OpenFlags, Row};

use crate::store::config::SqliteSync;
use crate::store::error::{Result, StoreError};

/// Most idle reader connections kept.
const MAX_IDLE_READERS: usize = 8;

/// Prepared statements cached per connection.
const STATEMENT_CACHE: usize = 64;

/// How connections to one database file are opened.
#[derive(Clone, Debug)]
pub(crate) struct LiteOptions {
    pub(crate) path: PathBuf,
    pub(crate) synchronous: SqliteSync,
    pub(crate) busy_timeout: Duration,
    /// The writer connection's page cache, MiB.
    pub(crate) writer_cache_mib: u32,
}

impl LiteOptions {
    /// Opens a connection with the store's pragmas (the database exists and
    /// is in WAL mode: sqlx created and migrated it).
    pub(crate) fn open(&self) -> Result<Connection> {
        let c = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        c.busy_timeout(self.busy_timeout)?;
        c.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        c.execute_batch(match self.synchronous {
            SqliteSync::Full => "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;",
            SqliteSync::Normal => "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
        })?;
        Ok(c)
    }
}

/// Read connections on one database, used in the caller's task.
#[derive(Debug)]
pub(crate) struct Lite {
    options: LiteOptions,
    idle: Mutex<Vec<Connection>>,
}

impl Lite {
    pub(crate) fn new(options: LiteOptions) -> Lite {
        Lite {
            options,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs the read `f` on an idle connection (opened when none is idle).
    /// Meant for indexed lookups: it blocks the calling thread while it
    /// runs.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let taken = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        let c = match taken {
            Some(c) => c,
            None => self.options.open()?,
        };
        let out = f(&c);
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < MAX_IDLE_READERS {
            idle.push(c);
        }
        out
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::Sqlite(e)
    }
}

/// Whether `e` is a foreign key violation.
fn is_foreign_key_violation(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _))
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY
    )
}

/// A foreign key violation on a row naming `device_id` means the device is
/// gone (as `sessions::unknown_device_on_fk` on sqlx).
pub(crate) fn unknown_device(e: StoreError, device_id: &str) -> StoreError {
    if is_foreign_key_violation(&e) {
        StoreError::UnknownDevice {
            id: device_id.to_owned(),
        }
    } else {
        e
    }
}

/// The row an `INSERT … RETURNING` gives; its absence is an error naming
/// `what`.
pub(crate) fn returned<T>(row: Option<T>, what: &'static str) -> Result<T> {
    row.ok_or_else(|| StoreError::Invalid {
        field: what,
        reason: "the insert returned no row".into(),
    })
}

/// Prepares `sql` (cached) and binds `$n` to `params[n - 1]`.
pub(crate) fn bind<'c>(
    c: &'c Connection,
    sql: &str,
    params: &[&dyn ToSql],
) -> Result<CachedStatement<'c>> {
    let mut stmt = c.prepare_cached(sql)?;
    for i in 1..=stmt.parameter_count() {
        let n = stmt
            .parameter_name(i)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| (1..=params.len()).contains(n))
            .ok_or_else(|| StoreError::Invalid {
                field: "sql",
                reason: format!("parameter {i} of {sql:?} is not $1..=${}", params.len()),
            })?;
        stmt.raw_bind_parameter(i, params[n - 1])?;
    }
    Ok(stmt)
}

/// Runs a statement; the number of rows it changed.
pub(crate) fn exec(c: &Connection, sql: &str, params: &[&dyn ToSql]) -> Result<u64> {
    let n = bind(c, sql, params)?.raw_execute()?;
    Ok(n as u64)
}

/// The first row of a query, mapped by `f`.
pub(crate) fn first<T>(
    c: &Connection,
    sql: &str,
    params: &[&dyn ToSql],
    f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Option<T>> {
    let mut stmt = bind(c, sql, params)?;
    let mut rows = stmt.raw_query();
    match rows.next()? {
        Some(r) => Ok(Some(f(r)?)),
        None => Ok(None),
    }
}

/// Every row of a query, mapped by `f`.
pub(crate) fn all<T>(
    c: &Connection,
    sql: &str,
    params: &[&dyn ToSql],
    mut f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = bind(c, sql, params)?;
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(f(r)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_parameters_bind_by_number_not_by_first_appearance() {
        let c = Connection::open_in_memory().expect("open");
        let got = first(
            &c,
            "SELECT $2 || '-' || $1 || '-' || $2",
            &[&"a", &"b"],
            |r| r.get::<_, String>(0),
        )
        .expect("query");
        assert_eq!(got.as_deref(), Some("b-a-b"));
    }

    #[test]
    fn a_parameter_without_a_value_is_an_error_not_a_panic() {
        let c = Connection::open_in_memory().expect("open");
        let e = first(&c, "SELECT $3", &[&1], |r| r.get::<_, i64>(0));
        assert!(matches!(e, Err(StoreError::Invalid { field: "sql", .. })));
        let e = first(&c, "SELECT ?", &[&1], |r| r.get::<_, i64>(0));
        assert!(matches!(e, Err(StoreError::Invalid { field: "sql", .. })));
    }
}
