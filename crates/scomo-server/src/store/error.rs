//! Store errors.

use super::model::{BatchId, SessionKey};

/// What went wrong in the store.
///
/// Messages never contain credentials, nonces, token text or the database
/// URL's password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database URL has a scheme other than `sqlite:` or `postgres:`.
    #[error("unsupported database url scheme {scheme:?}: expected sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl {
        /// The scheme found (the part before `:`).
        scheme: String,
    },
    /// A configuration value is out of range.
    #[error("invalid store config {field}: {reason}")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// What is accepted.
        reason: String,
    },
    /// The database failed or refused a statement.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// SQLite failed or refused a statement on the sessions' hot path
    /// (rusqlite, see `store::sql::lite`).
    #[error("database error")]
    Sqlite(#[source] rusqlite::Error),
    /// SQLite: the group transaction a write was part of failed (it was
    /// rolled back with every write of the group).
    #[error("group transaction failed: {reason}")]
    GroupCommit {
        /// Why.
        reason: String,
    },
    /// Applying migrations failed.
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A device with this id exists already.
    #[error("device {id:?} already exists")]
    DeviceExists {
        /// The DevId.
        id: String,
    },
    /// No device has this id.
    #[error("no device {id:?}")]
    UnknownDevice {
        /// The DevId.
        id: String,
    },
    /// No session has this key.
    #[error("no session {session}")]
    UnknownSession {
        /// The session.
        session: SessionKey,
    },
    /// The session has ended; it can no longer claim or report.
    #[error("session {session} has ended")]
    SessionEnded {
        /// The session.
        session: SessionKey,
    },
    /// No batch has this id.
    #[error("no batch {batch}")]
    UnknownBatch {
        /// The batch.
        batch: BatchId,
    },
    /// The batch is not held by this session any more (it was requeued,
    /// finished, or claimed by another session): drop it, do not send it.
    #[error("batch {batch} is not in flight on session {session}")]
    NotInFlight {
        /// The batch.
        batch: BatchId,
        /// The session that asked.
        session: SessionKey,
    },
    /// A package with this PkgID exists already.
    #[error("package {pkg_id:?} already exists")]
    PackageExists {
        /// The PkgID.
        pkg_id: String,
    },
    /// No package has this PkgID.
    #[error("no package {pkg_id:?}")]
    UnknownPackage {
        /// The PkgID.
        pkg_id: String,
    },
    /// An argument is not acceptable.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The argument.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A stored value cannot be read back.
    #[error("corrupt {what} in the database: {reason}")]
    Corrupt {
        /// The column.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// Commands or results could not be serialized.
    #[error("cannot serialize {what}")]
    Serialize {
        /// What.
        what: &'static str,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The operation conflicts with live work (e.g. a job on the same
    /// component).
    #[error("{what}")]
    Conflict {
        /// What is in the way.
        what: String,
    },
    /// The OS random source failed.
    #[error("no randomness for a token: {0}")]
    Random(getrandom::Error),
}

/// `Result` with [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
