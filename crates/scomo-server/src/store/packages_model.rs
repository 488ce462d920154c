//! Types of the package repository and its download tokens.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::model::Timestamp;

/// A delivery package in the repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Package {
    /// PkgID, from the manifest's `package.id`.
    pub pkg_id: String,
    /// Display name (`package.name`).
    pub name: String,
    /// Package version (`package.version`), informational.
    pub version: Option<String>,
    /// Execution environment (`package.env_type`).
    pub env_type: String,
    /// Media type served for the file (`application/gzip`, `application/zip`,
    /// `application/x-tar`).
    pub pkg_type: String,
    /// File size in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256 of the file.
    pub sha256: String,
    /// Base64 Ed25519 signature over the 32-byte SHA-256 digest, if given.
    pub signature: Option<String>,
    /// The deployment components the manifest declares.
    pub components: Vec<PackageComponent>,
    /// The file, relative to the data directory.
    pub file: String,
    /// When it was uploaded.
    pub created_at: Timestamp,
}

/// One `[[component]]` of a package, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PackageComponent {
    /// Deployment component ID.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Version.
    pub version: String,
}

/// A capability to download one package from `/dl/{token}` until it
/// expires, with what was served through it. `Debug` redacts the token.
#[derive(Clone, PartialEq, Eq)]
pub struct DownloadToken {
    /// The token (32 hex digits, 128 random bits).
    pub token: String,
    /// The package.
    pub pkg_id: String,
    /// The SCOMO job it was made for.
    pub job_id: Option<i64>,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// When it was made.
    pub created_at: Timestamp,
    /// Bytes sent through it, all requests together.
    pub bytes_served: u64,
    /// Responses that delivered the file's last byte.
    pub downloads_completed: u32,
    /// Why the latest unfinished response stopped (cleared by a completion).
    pub last_error: Option<String>,
    /// The install-notify status (9xx) the device posted.
    pub notify_status: Option<u16>,
    /// When it posted it.
    pub notify_at: Option<Timestamp>,
}

impl DownloadToken {
    /// Whether the token still works at `now`.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.expires_at > now
    }
}

impl fmt::Debug for DownloadToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DownloadToken")
            .field("token", &"<redacted>")
            .field("pkg_id", &self.pkg_id)
            .field("job_id", &self.job_id)
            .field("expires_at", &self.expires_at)
            .field("created_at", &self.created_at)
            .field("bytes_served", &self.bytes_served)
            .field("downloads_completed", &self.downloads_completed)
            .field("last_error", &self.last_error)
            .field("notify_status", &self.notify_status)
            .field("notify_at", &self.notify_at)
            .finish()
    }
}
