//! [`PackageStore`] on SQL.

use async_trait::async_trait;

use super::{check_len, count, opt_ts, page_limit, ts, with_pool, SqlStore};
use crate::store::error::{Result, StoreError};
use crate::store::model::Timestamp;
use crate::store::packages_model::{DownloadToken, Package, PackageComponent};
use crate::store::PackageStore;

pub(super) const INSERT_DL_TOKEN: &str =
    "INSERT INTO download_tokens (token, pkg_id, job_id, expires_at, \
     created_at) SELECT $1, pkg_id, $3, $4, $5 FROM packages WHERE pkg_id = $2";
const RECORD_DOWNLOAD: &str = "UPDATE download_tokens SET bytes_served = bytes_served + $2, \
     downloads_completed = downloads_completed + $3, \
     last_error = CASE WHEN $3 > 0 THEN NULL ELSE COALESCE($4, last_error) END WHERE token = $1";

/// A new download token: random, hex.
pub fn new_download_token() -> Result<String> {
    let mut bytes = [0u8; DL_TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(StoreError::Random)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Random bytes in a download token.
const DL_TOKEN_BYTES: usize = 16;
/// Longest PkgID (the manifest allows 128).
const MAX_PKG_ID_LEN: usize = 128;
/// Longest error text kept for a download.
const MAX_ERROR_LEN: usize = 512;

macro_rules! package_columns {
    () => {
        "pkg_id, name, version, env_type, pkg_type, size, sha256, signature, components, file, \
         created_at"
    };
}
macro_rules! token_columns {
    () => {
        "token, pkg_id, job_id, expires_at, created_at, bytes_served, downloads_completed, \
         last_error, notify_status, notify_at"
    };
}

#[derive(sqlx::FromRow)]
struct PackageRow {
    pkg_id: String,
    name: String,
    version: Option<String>,
    env_type: String,
    pkg_type: String,
    size: i64,
    sha256: String,
    signature: Option<String>,
    components: String,
    file: String,
    created_at: i64,
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    token: String,
    pkg_id: String,
    job_id: Option<i64>,
    expires_at: i64,
    created_at: i64,
    bytes_served: i64,
    downloads_completed: i64,
    last_error: Option<String>,
    notify_status: Option<i64>,
    notify_at: Option<i64>,
}

impl PackageRow {
    /// The row of a `package_columns!()` select on the SQLite read path.
    fn from_lite(r: &rusqlite::Row<'_>) -> rusqlite::Result<PackageRow> {
        Ok(PackageRow {
            pkg_id: r.get(0)?,
            name: r.get(1)?,
            version: r.get(2)?,
            env_type: r.get(3)?,
            pkg_type: r.get(4)?,
            size: r.get(5)?,
            sha256: r.get(6)?,
            signature: r.get(7)?,
            components: r.get(8)?,
            file: r.get(9)?,
            created_at: r.get(10)?,
        })
    }
}

impl TokenRow {
    /// The row of a `token_columns!()` select on the SQLite read path.
    fn from_lite(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRow> {
        Ok(TokenRow {
            token: r.get(0)?,
            pkg_id: r.get(1)?,
            job_id: r.get(2)?,
            expires_at: r.get(3)?,
            created_at: r.get(4)?,
            bytes_served: r.get(5)?,
            downloads_completed: r.get(6)?,
            last_error: r.get(7)?,
            notify_status: r.get(8)?,
            notify_at: r.get(9)?,
        })
    }
}

#[async_trait]
impl PackageStore for SqlStore {
    async fn insert_package(&self, p: &Package) -> Result<()> {
        check_len("pkg_id", &p.pkg_id, MAX_PKG_ID_LEN)?;
        let components =
            serde_json::to_string(&p.components).map_err(|source| StoreError::Serialize {
                what: "package components",
                source,
            })?;
        let size = i64::try_from(p.size).map_err(|_| StoreError::Invalid {
            field: "size",
            reason: format!("{} is too large", p.size),
        })?;
        let inserted = with_pool!(self, |pool, _pg| {
            sqlx::query(
                "INSERT INTO packages (pkg_id, name, version, env_type, pkg_type, size, sha256, \
                 signature, components, file, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (pkg_id) DO NOTHING",
            )
            .bind(&p.pkg_id)
            .bind(&p.name)
            .bind(p.version.as_deref())
            .bind(&p.env_type)
            .bind(&p.pkg_type)
            .bind(size)
            .bind(&p.sha256)
            .bind(p.signature.as_deref())
            .bind(&components)
            .bind(&p.file)
            .bind(ts(p.created_at))
            .execute(pool)
            .await?
            .rows_affected()
        });
        if inserted == 0 {
            return Err(StoreError::PackageExists {
                pkg_id: p.pkg_id.clone(),
            });
        }
        Ok(())
    }

    async fn package(&self, pkg_id: &str) -> Result<Option<Package>> {
        const PACKAGE: &str = concat!(
            "SELECT ",
            package_columns!(),
            " FROM packages WHERE pkg_id = $1"
        );
        if let Some(lite) = &self.lite {
            return lite
                .read(|c| super::lite::first(c, PACKAGE, &[&pkg_id], PackageRow::from_lite))?
                .map(package_from_row)
                .transpose();
        }
        let row: Option<PackageRow> = with_pool!(self, |pool, _pg| {
            sqlx::query_as(PACKAGE)
                .bind(pkg_id)
                .fetch_optional(pool)
                .await?
        });
        row.map(package_from_row).transpose()
    }

    async fn list_packages(&self, after: Option<&str>, limit: u32) -> Result<Vec<Package>> {
        let rows: Vec<PackageRow> = with_pool!(self, |pool, _pg| {
            sqlx::query_as(concat!(
                "SELECT ",
                package_columns!(),
                " FROM packages \
                 WHERE ($1 IS NULL OR pkg_id > $1) ORDER BY pkg_id LIMIT $2"
            ))
            .bind(after)
            .bind(page_limit(limit))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(package_from_row).collect()
    }

    async fn delete_package(&self, pkg_id: &str) -> Result<bool> {
        with_pool!(self, |pool, _pg| {
            // Tokens go with it (ON DELETE CASCADE).
            let n = sqlx::query("DELETE FROM packages WHERE pkg_id = $1")
                .bind(pkg_id)
                .execute(pool)
                .await?
                .rows_affected();
            Ok(n > 0)
        })
    }

    async fn package_in_use(&self, pkg_id: &str, now: Timestamp) -> Result<bool> {
        with_pool!(self, |pool, _pg| {
            let live: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM download_tokens t LEFT JOIN jobs j ON j.id = t.job_id \
                 WHERE t.pkg_id = $1 AND t.expires_at > $2 \
                 AND (t.job_id IS NULL OR j.finished_at IS NULL)) \
                 OR EXISTS (SELECT 1 FROM jobs WHERE pkg_id = $1 AND finished_at IS NULL) \
                 OR EXISTS (SELECT 1 FROM catalog_rules WHERE pkg_id = $1)",
            )
            .bind(pkg_id)
            .bind(ts(now))
            .fetch_one(pool)
            .await?;
            Ok(live)
        })
    }

    async fn create_download_token(
        &self,
        pkg_id: &str,
        job_id: Option<i64>,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<DownloadToken> {
        let token = new_download_token()?;
        let inserted = if let Some(writer) = &self.writer {
            // SQLite: with the other writes of the moment (group commit).
            let (token, pkg_id) = (token.clone(), pkg_id.to_owned());
            writer
                .write(move |c| {
                    super::lite::exec(
                        c,
                        INSERT_DL_TOKEN,
                        &[&token, &pkg_id, &job_id, &ts(expires_at), &ts(now)],
                    )
                })
                .await?
        } else {
            with_pool!(self, |pool, _pg| {
                sqlx::query(INSERT_DL_TOKEN)
                    .bind(&token)
                    .bind(pkg_id)
                    .bind(job_id)
                    .bind(ts(expires_at))
                    .bind(ts(now))
                    .execute(pool)
                    .await?
                    .rows_affected()
            })
        };
        if inserted == 0 {
            return Err(StoreError::UnknownPackage {
                pkg_id: pkg_id.to_owned(),
            });
        }
        Ok(DownloadToken {
            token,
            pkg_id: pkg_id.to_owned(),
            job_id,
            expires_at,
            created_at: now,
            bytes_served: 0,
            downloads_completed: 0,
            last_error: None,
            notify_status: None,
            notify_at: None,
        })
    }

    async fn download_token(&self, token: &str) -> Result<Option<DownloadToken>> {
        const TOKEN: &str = concat!(
            "SELECT ",
            token_columns!(),
            " FROM download_tokens WHERE token = $1"
        );
        // Every package download looks its token up: in place on SQLite.
        if let Some(lite) = &self.lite {
            return lite
                .read(|c| super::lite::first(c, TOKEN, &[&token], TokenRow::from_lite))?
                .map(token_from_row)
                .transpose();
        }
        let row: Option<TokenRow> = with_pool!(self, |pool, _pg| {
            sqlx::query_as(TOKEN)
                .bind(token)
                .fetch_optional(pool)
                .await?
        });
        row.map(token_from_row).transpose()
    }

    async fn download_tokens_for_job(&self, job_id: i64) -> Result<Vec<DownloadToken>> {
        let rows: Vec<TokenRow> = with_pool!(self, |pool, _pg| {
            sqlx::query_as(concat!(
                "SELECT ",
                token_columns!(),
                " FROM download_tokens WHERE job_id = $1 \
                 ORDER BY created_at, token"
            ))
            .bind(job_id)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(token_from_row).collect()
    }

    async fn record_download(
        &self,
        token: &str,
        bytes: u64,
        completed: bool,
        error: Option<&str>,
        _now: Timestamp,
    ) -> Result<bool> {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        let error = error.map(|e| truncate(e, MAX_ERROR_LEN));
        if let Some(writer) = &self.writer {
            let (token, error) = (token.to_owned(), error.map(str::to_owned));
            let n = writer
                .write(move |c| {
                    super::lite::exec(
                        c,
                        RECORD_DOWNLOAD,
                        &[&token, &bytes, &i64::from(completed), &error],
                    )
                })
                .await?;
            return Ok(n > 0);
        }
        with_pool!(self, |pool, _pg| {
            let n = sqlx::query(RECORD_DOWNLOAD)
                .bind(token)
                .bind(bytes)
                .bind(i64::from(completed))
                .bind(error)
                .execute(pool)
                .await?
                .rows_affected();
            Ok(n > 0)
        })
    }

    async fn record_install_notify(
        &self,
        token: &str,
        status: u16,
        now: Timestamp,
    ) -> Result<bool> {
        with_pool!(self, |pool, _pg| {
            let n = sqlx::query(
                "UPDATE download_tokens SET notify_status = $2, notify_at = $3 WHERE token = $1",
            )
            .bind(token)
            .bind(i64::from(status))
            .bind(ts(now))
            .execute(pool)
            .await?
            .rows_affected();
            Ok(n > 0)
        })
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

fn package_from_row(r: PackageRow) -> Result<Package> {
    let components: Vec<PackageComponent> =
        serde_json::from_str(&r.components).map_err(|e| StoreError::Corrupt {
            what: "packages.components",
            reason: e.to_string(),
        })?;
    let size = u64::try_from(r.size).map_err(|_| StoreError::Corrupt {
        what: "packages.size",
        reason: format!("{} is not a size", r.size),
    })?;
    Ok(Package {
        pkg_id: r.pkg_id,
        name: r.name,
        version: r.version,
        env_type: r.env_type,
        pkg_type: r.pkg_type,
        size,
        sha256: r.sha256,
        signature: r.signature,
        components,
        file: r.file,
        created_at: Timestamp::from_unix_millis(r.created_at),
    })
}

fn token_from_row(r: TokenRow) -> Result<DownloadToken> {
    let notify_status = match r.notify_status {
        None => None,
        Some(v) => Some(u16::try_from(v).map_err(|_| StoreError::Corrupt {
            what: "download_tokens.notify_status",
            reason: format!("{v} is not a status"),
        })?),
    };
    Ok(DownloadToken {
        token: r.token,
        pkg_id: r.pkg_id,
        job_id: r.job_id,
        expires_at: Timestamp::from_unix_millis(r.expires_at),
        created_at: Timestamp::from_unix_millis(r.created_at),
        bytes_served: u64::try_from(r.bytes_served).unwrap_or(0),
        downloads_completed: count("download_tokens.downloads_completed", r.downloads_completed)?,
        last_error: r.last_error,
        notify_status,
        notify_at: opt_ts(r.notify_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_keeps_char_boundaries() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("abcdef", 3), "abc");
        assert_eq!(truncate("aé", 2), "a");
    }
}
