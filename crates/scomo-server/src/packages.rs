//! The package repository on disk: uploads are streamed to a temporary file
//! under `<data_dir>/packages/` while they are hashed, the manifest is read
//! from the archive on disk, and the file is renamed to `<sha256>.pkg`.
//!
//! ```text
//!   body stream ─▶ .upload-<rand>.tmp (SHA-256, size limit) ─▶ manifest
//!       (spawn_blocking: tar.gz, tar or zip) ─▶ <sha256>.pkg + packages row
//! ```
//!
//! A package is never held whole in memory, neither here nor in `/dl`.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use scomo::manifest::{Manifest, MANIFEST_FILE};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;

use crate::error::AppError;
use crate::state::AppState;
use crate::store::{Package, PackageComponent, StoreError, Timestamp};

/// Largest manifest read from an archive.
const MAX_MANIFEST: u64 = 64 * 1024;

/// The archive formats a package may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    TarGz,
    Tar,
    Zip,
}

impl Kind {
    /// The media type the download server announces.
    fn media_type(self) -> &'static str {
        match self {
            Kind::TarGz => "application/gzip",
            Kind::Tar => "application/x-tar",
            Kind::Zip => "application/zip",
        }
    }
}

/// What an upload did.
#[derive(Debug)]
pub enum Uploaded {
    /// A new package.
    Created(Package),
    /// The same PkgID with the same content was there already.
    Existing(Package),
}

/// Stores an uploaded package from `body`. `declared_len` (Content-Length)
/// lets an oversized upload be refused before it is read.
pub async fn upload<S, E>(
    state: &AppState,
    body: S,
    declared_len: Option<u64>,
    signature: Option<String>,
) -> Result<Uploaded, AppError>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let max = state.config().downloads.max_upload_bytes;
    if let Some(n) = declared_len {
        if n > max {
            return Err(too_large(max));
        }
    }
    let signature = match signature.map(|s| s.trim().to_owned()) {
        Some(s) if s.is_empty() => None,
        Some(s) => Some(check_signature(&s)?),
        None => None,
    };
    let dir = state.config().packages_dir();
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(AppError::internal)?;
    let mut rnd = [0u8; 8];
    crate::random::fill(&mut rnd);
    let temp = TempFile(dir.join(format!(".upload-{}.tmp", hex(&rnd))));
    let (sha256, size) = receive(&temp.0, body, max).await?;

    let path = temp.0.clone();
    let (kind, manifest) = tokio::task::spawn_blocking(move || read_manifest(&path))
        .await
        .map_err(AppError::internal)?
        .map_err(|e| AppError::BadRequest(format!("not a valid package: {e}")))?;

    let pkg_id = manifest.package.id.clone();
    if let Some(existing) = state.store().package(&pkg_id).await? {
        return same_or_conflict(existing, &sha256);
    }
    let file_name = format!("{sha256}.pkg");
    tokio::fs::rename(&temp.0, dir.join(&file_name))
        .await
        .map_err(AppError::internal)?;
    temp.disarm();
    let package = Package {
        pkg_id,
        name: manifest.package.name,
        version: manifest.package.version,
        env_type: manifest.package.env_type,
        pkg_type: kind.media_type().to_owned(),
        size,
        sha256,
        signature,
        components: manifest
            .components
            .into_iter()
            .map(|c| PackageComponent {
                id: c.id,
                name: c.name,
                version: c.version,
            })
            .collect(),
        file: format!("packages/{file_name}"),
        created_at: Timestamp::now(),
    };
    match state.store().insert_package(&package).await {
        Ok(()) => {
            tracing::info!(pkg_id = %package.pkg_id, size = package.size, "package uploaded");
            Ok(Uploaded::Created(package))
        }
        Err(StoreError::PackageExists { .. }) => {
            // Another upload of the same PkgID won the race. Same content:
            // the same file, which stays. Other content: ours goes.
            let existing = state
                .store()
                .package(&package.pkg_id)
                .await?
                .ok_or_else(|| {
                    AppError::Conflict(format!(
                        "package {:?} is being changed concurrently",
                        package.pkg_id
                    ))
                })?;
            if existing.sha256 != package.sha256 {
                let _ = tokio::fs::remove_file(state.config().data_dir.join(&package.file)).await;
            }
            same_or_conflict(existing, &package.sha256)
        }
        Err(e) => Err(e.into()),
    }
}

fn same_or_conflict(existing: Package, sha256: &str) -> Result<Uploaded, AppError> {
    if existing.sha256 == sha256 {
        Ok(Uploaded::Existing(existing))
    } else {
        Err(AppError::Conflict(format!(
            "package {:?} exists with other content (sha256 {}); delete it first or give the \
             new package another id",
            existing.pkg_id, existing.sha256
        )))
    }
}

fn too_large(max: u64) -> AppError {
    AppError::PayloadTooLarge(format!(
        "the package is larger than downloads.max_upload_bytes = {max}"
    ))
}

/// A base64 Ed25519 signature (64 bytes), normalised.
fn check_signature(s: &str) -> Result<String, AppError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|_| AppError::BadRequest("signature is not base64".into()))?;
    if bytes.len() != 64 {
        return Err(AppError::BadRequest(format!(
            "signature is {} bytes; an Ed25519 signature is 64",
            bytes.len()
        )));
    }
    Ok(s.to_owned())
}

/// Writes the body to `path`, hashing it; returns (hex SHA-256, size).
async fn receive<S, E>(path: &Path, body: S, max: u64) -> Result<(String, u64), AppError>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(AppError::internal)?;
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mut body = std::pin::pin!(body);
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.map_err(|e| AppError::BadRequest(format!("reading the upload failed: {e}")))?;
        size = size.saturating_add(chunk.len() as u64);
        if size > max {
            return Err(too_large(max));
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(AppError::internal)?;
    }
    if size == 0 {
        return Err(AppError::BadRequest("the upload is empty".into()));
    }
    file.flush().await.map_err(AppError::internal)?;
    file.sync_all().await.map_err(AppError::internal)?;
    Ok((hex(&hasher.finalize()), size))
}

/// Removes the file on drop unless disarmed.
struct TempFile(PathBuf);

impl TempFile {
    fn disarm(mut self) {
        self.0 = PathBuf::new();
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.0.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// Removes the temporary files of uploads a previous run of this node was
/// receiving when it stopped; returns how many.
pub(crate) fn remove_stale_uploads(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with(".upload-") && name.ends_with(".tmp")
        })
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn detect(path: &Path) -> io::Result<Option<Kind>> {
    let mut head = Vec::with_capacity(512);
    File::open(path)?.take(512).read_to_end(&mut head)?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Some(Kind::TarGz)
    } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Some(Kind::Zip)
    } else if head.get(257..262) == Some(b"ustar") {
        Some(Kind::Tar)
    } else {
        None
    })
}

/// Reads and validates `scomo-package.toml` from the archive at `path`.
/// The error says what is wrong.
fn read_manifest(path: &Path) -> Result<(Kind, Manifest), String> {
    let kind = detect(path)
        .map_err(|e| e.to_string())?
        .ok_or("not a tar.gz, tar or zip archive")?;
    let text = match kind {
        Kind::TarGz => {
            let f = BufReader::new(File::open(path).map_err(|e| e.to_string())?);
            manifest_from_tar(flate2::read::GzDecoder::new(f))?
        }
        Kind::Tar => {
            manifest_from_tar(BufReader::new(File::open(path).map_err(|e| e.to_string())?))?
        }
        Kind::Zip => manifest_from_zip(path)?,
    };
    let text = text.ok_or_else(|| format!("no {MANIFEST_FILE} at the root of the archive"))?;
    let text = String::from_utf8(text).map_err(|_| format!("{MANIFEST_FILE} is not UTF-8"))?;
    let manifest = Manifest::parse(&text).map_err(|e| e.to_string())?;
    Ok((kind, manifest))
}

/// Whether an entry path names the root manifest (`./` prefixes allowed).
fn is_manifest_path(p: &str) -> bool {
    p.trim_start_matches("./") == MANIFEST_FILE
}

fn read_limited(r: impl Read, declared: u64) -> Result<Vec<u8>, String> {
    if declared > MAX_MANIFEST {
        return Err(format!(
            "{MANIFEST_FILE} is larger than {MAX_MANIFEST} bytes"
        ));
    }
    let mut out = Vec::new();
    r.take(MAX_MANIFEST + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("corrupt archive: {e}"))?;
    if out.len() as u64 > MAX_MANIFEST {
        return Err(format!(
            "{MANIFEST_FILE} is larger than {MAX_MANIFEST} bytes"
        ));
    }
    Ok(out)
}

fn manifest_from_tar(r: impl Read) -> Result<Option<Vec<u8>>, String> {
    let mut archive = tar::Archive::new(r);
    let entries = archive
        .entries()
        .map_err(|e| format!("corrupt archive: {e}"))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("corrupt archive: {e}"))?;
        let path = entry
            .path()
            .map_err(|e| format!("corrupt archive: {e}"))?
            .to_string_lossy()
            .into_owned();
        if is_manifest_path(&path) && entry.header().entry_type().is_file() {
            let size = entry.size();
            return read_limited(entry, size).map(Some);
        }
    }
    Ok(None)
}

fn manifest_from_zip(path: &Path) -> Result<Option<Vec<u8>>, String> {
    let f = BufReader::new(File::open(path).map_err(|e| e.to_string())?);
    let mut archive = zip::ZipArchive::new(f).map_err(|e| format!("corrupt archive: {e}"))?;
    for i in 0..archive.len() {
        let entry = archive
            .by_index(i)
            .map_err(|e| format!("corrupt archive: {e}"))?;
        if is_manifest_path(entry.name()) && entry.is_file() {
            let size = entry.size();
            return read_limited(entry, size).map(Some);
        }
    }
    Ok(None)
}

/// The download URL of a package and its descriptor.
#[derive(Clone, Debug)]
pub struct DownloadUrl {
    /// `<public_url>/dl/<token>`: the package itself.
    pub url: String,
    /// `<public_url>/dl/<token>/dd`: its OMA Download OTA descriptor.
    pub dd_url: String,
    /// When the URLs stop working.
    pub expires_at: Timestamp,
    /// The token both carry.
    pub token: String,
}

/// Makes a download token for `pkg_id` (for SCOMO job `job_id`), valid for
/// `ttl` (default `downloads.url_ttl_secs`), and returns `(url, dd_url)`.
pub async fn download_url(
    state: &AppState,
    pkg_id: &str,
    job_id: Option<i64>,
    ttl: Option<Duration>,
) -> Result<(String, String), AppError> {
    let d = issue_download_url(state, pkg_id, job_id, ttl, None).await?;
    Ok((d.url, d.dd_url))
}

/// Like [`download_url`] with everything about the token; `base` overrides
/// the node's public URL (e.g. from the request's Host).
pub async fn issue_download_url(
    state: &AppState,
    pkg_id: &str,
    job_id: Option<i64>,
    ttl: Option<Duration>,
    base: Option<&str>,
) -> Result<DownloadUrl, AppError> {
    let base = download_base(state, base)?;
    let now = Timestamp::now();
    let expires_at = now + ttl.unwrap_or_else(|| state.config().download_url_ttl());
    let token = state
        .store()
        .create_download_token(pkg_id, job_id, expires_at, now)
        .await?;
    let (url, dd_url) = download_urls(&base, &token.token);
    Ok(DownloadUrl {
        dd_url,
        url,
        expires_at,
        token: token.token,
    })
}

/// Where download URLs start: `base`, else the server's public URL.
pub(crate) fn download_base(state: &AppState, base: Option<&str>) -> Result<String, AppError> {
    Ok(base
        .or(state.public_url())
        .ok_or_else(|| AppError::Unavailable("the server's public URL is not known yet".into()))?
        .trim_end_matches('/')
        .to_owned())
}

/// A token's URLs under `base`: the package, and its download descriptor.
pub(crate) fn download_urls(base: &str, token: &str) -> (String, String) {
    let url = format!("{base}/dl/{token}");
    (url.clone(), format!("{url}/dd"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_paths() {
        assert!(is_manifest_path("scomo-package.toml"));
        assert!(is_manifest_path("./scomo-package.toml"));
        assert!(!is_manifest_path("x/scomo-package.toml"));
    }

    #[test]
    fn signatures_are_checked() {
        let sig = base64::engine::general_purpose::STANDARD.encode([7u8; 64]);
        assert_eq!(check_signature(&sig).unwrap(), sig);
        assert!(check_signature("not base64!").is_err());
        let short = base64::engine::general_purpose::STANDARD.encode([7u8; 10]);
        assert!(check_signature(&short)
            .unwrap_err()
            .to_string()
            .contains("64"));
    }

    #[test]
    fn stale_uploads_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".upload-0011.tmp"), b"x").unwrap();
        std::fs::write(dir.path().join("abc.pkg"), b"x").unwrap();
        assert_eq!(remove_stale_uploads(dir.path()), 1);
        assert!(dir.path().join("abc.pkg").exists());
        assert_eq!(remove_stale_uploads(&dir.path().join("missing")), 0);
    }

    #[test]
    fn garbage_is_not_an_archive() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, b"hello world").unwrap();
        let e = read_manifest(&p).unwrap_err();
        assert!(e.contains("not a tar.gz"), "{e}");
    }
}
