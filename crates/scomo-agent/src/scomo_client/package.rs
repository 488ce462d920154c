//! Delivery packages of the `archive` environment: a tar.gz, tar or zip
//! file with `scomo-package.toml` at its root and one folder per component.
//!
//! Reading is two passes over the file, never holding it in memory:
//! [`inspect`] reads every header and the manifest and refuses anything
//! unsafe; [`extract`] writes the components' files under the staging
//! directory. Refused: absolute paths, `..` segments, backslashes, NUL,
//! duplicate paths, entries below a symlink, symlinks whose target leaves
//! their component (absolute, or `..` anywhere but leading, or more leading
//! `..` than the link is deep), hard links, devices and FIFOs, and archives
//! larger than the limits. Files are created with `O_EXCL` and symlinks
//! only after every file, so nothing is ever written through a link.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use scomo::manifest::{ComponentInfo, Manifest, MANIFEST_FILE};
use scomo::ResultCode;

use super::rules::install_failure;

/// Largest manifest we read.
const MAX_MANIFEST: u64 = 64 * 1024;
/// Largest symlink target in a zip (stored as the entry's content).
const MAX_LINK: u64 = 4096;
/// Accounted per entry on top of its size (inodes, directory blocks).
const ENTRY_OVERHEAD: u64 = 4096;

/// Why a package cannot be installed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum PackageError {
    /// Not a tar.gz, tar or zip file.
    #[error("not a tar.gz, tar or zip archive")]
    UnknownFormat,
    /// The archive cannot be read.
    #[error("corrupt archive: {0}")]
    Corrupt(String),
    /// The manifest is missing or invalid.
    #[error("bad manifest: {0}")]
    Manifest(String),
    /// The manifest names another execution environment.
    #[error("package is for environment {0:?}")]
    EnvType(String),
    /// An entry that would write outside its component, or of a refused
    /// kind.
    #[error("unsafe archive entry {path:?}: {reason}")]
    Unsafe {
        /// The entry's path as stored.
        path: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// Beyond the size or entry-count limits.
    #[error("package too large: {0}")]
    TooLarge(String),
    /// Reading or writing failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// A crash point fired during extraction.
    #[error("halted")]
    Halted,
}

impl PackageError {
    /// The SCOMO result this failure reports.
    pub(crate) fn result_code(&self) -> ResultCode {
        match self {
            PackageError::TooLarge(_) => install_failure(true),
            PackageError::Io(e) if e.kind() == io::ErrorKind::StorageFull => install_failure(true),
            PackageError::EnvType(_) => ResultCode::UNSUPPORTED_ENVIRONMENT,
            _ => install_failure(false),
        }
    }
}

/// Extraction limits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) max_bytes: u64,
    pub(crate) max_entries: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    TarGz,
    Tar,
    Zip,
}

fn detect(path: &Path) -> Result<Kind, PackageError> {
    let mut head = [0u8; 512];
    let mut f = File::open(path)?;
    let mut n = 0;
    while n < head.len() {
        let r = f.read(head.get_mut(n..).unwrap_or_default())?;
        if r == 0 {
            break;
        }
        n += r;
    }
    let head = head.get(..n).unwrap_or_default();
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Kind::TarGz)
    } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Ok(Kind::Zip)
    } else if head.get(257..262) == Some(b"ustar") {
        Ok(Kind::Tar)
    } else {
        Err(PackageError::UnknownFormat)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum EntryKind {
    File {
        size: u64,
        exec: bool,
    },
    Dir,
    Symlink(String),
    /// Metadata entries the reader skips (pax global headers).
    Skip,
}

/// Normalises an entry path: strips `./` and empty segments; refuses
/// absolute paths, `..`, backslashes and NUL.
fn normalize(raw: &str) -> Result<String, &'static str> {
    if raw.contains('\0') {
        return Err("NUL in path");
    }
    if raw.contains('\\') {
        return Err("backslash in path");
    }
    if raw.starts_with('/') {
        return Err("absolute path");
    }
    let mut segs = Vec::new();
    for seg in raw.split('/') {
        match seg {
            "" | "." => {}
            ".." => return Err("'..' in path"),
            s => segs.push(s),
        }
    }
    Ok(segs.join("/"))
}

/// Checks a symlink at `rel` (relative to its component root) pointing at
/// `target`: relative, `..` only leading and no deeper than the link's
/// directory.
fn check_link(rel: &str, target: &str) -> Result<(), &'static str> {
    if target.is_empty() || target.contains('\0') || target.contains('\\') {
        return Err("bad symlink target");
    }
    if target.starts_with('/') {
        return Err("symlink to an absolute path");
    }
    let depth = rel.split('/').count().saturating_sub(1);
    let mut ups = 0;
    let mut leading = true;
    for seg in target.split('/') {
        match seg {
            "" | "." => {}
            ".." if leading => ups += 1,
            ".." => return Err("symlink target with '..' after a name"),
            _ => leading = false,
        }
    }
    if ups > depth {
        return Err("symlink out of the component root");
    }
    Ok(())
}

/// One entry as the reader sees it.
struct RawEntry {
    path: String,
    kind: EntryKind,
}

/// Calls `f` for each entry of the archive, with a reader of its content.
fn for_each_entry(
    path: &Path,
    f: &mut dyn FnMut(RawEntry, &mut dyn Read) -> Result<(), PackageError>,
) -> Result<(), PackageError> {
    match detect(path)? {
        Kind::TarGz => tar_entries(GzDecoder::new(BufReader::new(File::open(path)?)), f),
        Kind::Tar => tar_entries(BufReader::new(File::open(path)?), f),
        Kind::Zip => zip_entries(path, f),
    }
}

fn corrupt(e: impl std::fmt::Display) -> PackageError {
    PackageError::Corrupt(e.to_string())
}

fn tar_entries(
    reader: impl Read,
    f: &mut dyn FnMut(RawEntry, &mut dyn Read) -> Result<(), PackageError>,
) -> Result<(), PackageError> {
    use tar::EntryType;
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let raw_path = String::from_utf8(entry.path_bytes().into_owned())
            .map_err(|_| PackageError::Corrupt("entry path is not UTF-8".into()))?;
        let ty = entry.header().entry_type();
        let kind = match ty {
            EntryType::Regular | EntryType::Continuous => EntryKind::File {
                size: entry.header().size().map_err(corrupt)?,
                exec: entry.header().mode().map_err(corrupt)? & 0o111 != 0,
            },
            EntryType::Directory => EntryKind::Dir,
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                EntryKind::Symlink(target)
            }
            EntryType::XGlobalHeader => EntryKind::Skip,
            EntryType::Link => {
                return Err(PackageError::Unsafe {
                    path: raw_path,
                    reason: "hard links are not allowed",
                })
            }
            _ => {
                return Err(PackageError::Unsafe {
                    path: raw_path,
                    reason: "only files, directories and symlinks are allowed",
                })
            }
        };
        f(
            RawEntry {
                path: raw_path,
                kind,
            },
            &mut entry,
        )?;
    }
    Ok(())
}

fn zip_entries(
    path: &Path,
    f: &mut dyn FnMut(RawEntry, &mut dyn Read) -> Result<(), PackageError>,
) -> Result<(), PackageError> {
    let mut archive = zip::ZipArchive::new(BufReader::new(File::open(path)?)).map_err(corrupt)?;
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).map_err(corrupt)?;
        let raw_path = file.name().to_owned();
        let mode = file.unix_mode().unwrap_or(0);
        let kind = if mode & 0o170_000 == 0o120_000 {
            let mut target = String::new();
            (&mut file)
                .take(MAX_LINK)
                .read_to_string(&mut target)
                .map_err(corrupt)?;
            EntryKind::Symlink(target)
        } else if file.is_dir() {
            EntryKind::Dir
        } else if mode & 0o170_000 == 0 || mode & 0o170_000 == 0o100_000 {
            EntryKind::File {
                size: file.size(),
                exec: mode & 0o111 != 0,
            }
        } else {
            return Err(PackageError::Unsafe {
                path: raw_path,
                reason: "only files, directories and symlinks are allowed",
            });
        };
        f(
            RawEntry {
                path: raw_path,
                kind,
            },
            &mut file,
        )?;
    }
    Ok(())
}

/// What [`inspect`] learned.
#[derive(Clone, Debug)]
pub(crate) struct Inspection {
    pub(crate) manifest: Manifest,
    /// Bytes the components' files take (plus per-entry overhead).
    pub(crate) space_needed: u64,
}

impl Inspection {
    /// The component whose folder holds normalised path `p`, and the path
    /// relative to that folder (`""` for the folder itself).
    fn component_of<'a>(&'a self, p: &'a str) -> Option<(&'a ComponentInfo, &'a str)> {
        self.manifest.components.iter().find_map(|c| {
            let dir = c.dir.trim_matches('/');
            if p == dir {
                Some((c, ""))
            } else {
                p.strip_prefix(dir)
                    .and_then(|r| r.strip_prefix('/'))
                    .map(|r| (c, r))
            }
        })
    }
}

/// First pass: reads the manifest and every header, and refuses unsafe or
/// oversized packages.
pub(crate) fn inspect(path: &Path, limits: Limits) -> Result<Inspection, PackageError> {
    let mut manifest_text = None;
    let mut entries: Vec<(String, EntryKind)> = Vec::new();
    let mut seen = HashSet::new();
    for_each_entry(path, &mut |e, content| {
        if entries.len() as u64 >= limits.max_entries {
            return Err(PackageError::TooLarge(format!(
                "more than {} entries",
                limits.max_entries
            )));
        }
        if e.kind == EntryKind::Skip {
            return Ok(());
        }
        let p = normalize(&e.path).map_err(|reason| PackageError::Unsafe {
            path: e.path.clone(),
            reason,
        })?;
        if p.is_empty() {
            return Ok(());
        }
        if !seen.insert(p.clone()) {
            return Err(PackageError::Unsafe {
                path: e.path,
                reason: "duplicate path",
            });
        }
        if p == MANIFEST_FILE {
            let EntryKind::File { size, .. } = e.kind else {
                return Err(PackageError::Manifest(format!(
                    "{MANIFEST_FILE} is not a file"
                )));
            };
            if size > MAX_MANIFEST {
                return Err(PackageError::Manifest(format!(
                    "{MANIFEST_FILE} is larger than {MAX_MANIFEST} bytes"
                )));
            }
            let mut text = String::new();
            content
                .take(MAX_MANIFEST)
                .read_to_string(&mut text)
                .map_err(|_| PackageError::Manifest(format!("{MANIFEST_FILE} is not UTF-8")))?;
            manifest_text = Some(text);
        }
        entries.push((p, e.kind));
        Ok(())
    })?;
    let text = manifest_text
        .ok_or_else(|| PackageError::Manifest(format!("no {MANIFEST_FILE} at the archive root")))?;
    let manifest = Manifest::parse(&text).map_err(|e| PackageError::Manifest(e.to_string()))?;
    check_component_dirs(&manifest)?;
    let insp = Inspection {
        manifest,
        space_needed: 0,
    };
    let links: HashSet<&str> = entries
        .iter()
        .filter(|(_, k)| matches!(k, EntryKind::Symlink(_)))
        .map(|(p, _)| p.as_str())
        .collect();
    let mut total: u64 = 0;
    let mut present: BTreeMap<&str, bool> = insp
        .manifest
        .components
        .iter()
        .map(|c| (c.id.as_str(), false))
        .collect();
    for (p, kind) in &entries {
        // Nothing may live below a symlink: it would be written through it.
        let mut prefix = String::new();
        for seg in p.split('/') {
            if !prefix.is_empty() && links.contains(prefix.as_str()) {
                return Err(PackageError::Unsafe {
                    path: p.clone(),
                    reason: "entry below a symlink",
                });
            }
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(seg);
        }
        let Some((c, rel)) = insp.component_of(p) else {
            continue;
        };
        present.insert(c.id.as_str(), true);
        match kind {
            EntryKind::File { size, .. } => {
                total = total.saturating_add(*size).saturating_add(ENTRY_OVERHEAD);
            }
            EntryKind::Symlink(target) => {
                if rel.is_empty() {
                    return Err(PackageError::Unsafe {
                        path: p.clone(),
                        reason: "a component folder cannot be a symlink",
                    });
                }
                check_link(rel, target).map_err(|reason| PackageError::Unsafe {
                    path: p.clone(),
                    reason,
                })?;
                total = total.saturating_add(ENTRY_OVERHEAD);
            }
            EntryKind::Dir | EntryKind::Skip => {
                total = total.saturating_add(ENTRY_OVERHEAD);
            }
        }
        if total > limits.max_bytes {
            return Err(PackageError::TooLarge(format!(
                "components need more than {} bytes",
                limits.max_bytes
            )));
        }
    }
    if let Some((id, _)) = present.iter().find(|(_, p)| !**p) {
        return Err(PackageError::Manifest(format!(
            "component {id:?}: its folder is not in the archive"
        )));
    }
    Ok(Inspection {
        space_needed: total,
        ..insp
    })
}

/// Component folders may not nest or coincide (each becomes its own
/// directory), and `.` would take the whole package.
fn check_component_dirs(m: &Manifest) -> Result<(), PackageError> {
    let dirs: Vec<String> = m
        .components
        .iter()
        .map(|c| normalize(&c.dir).unwrap_or_default())
        .collect();
    for (i, a) in dirs.iter().enumerate() {
        if a.is_empty() {
            return Err(PackageError::Manifest(format!(
                "component[{i}].dir must name a folder inside the package"
            )));
        }
        for (j, b) in dirs.iter().enumerate() {
            if i != j && (a == b || b.starts_with(&format!("{a}/"))) {
                return Err(PackageError::Manifest(format!(
                    "component[{i}].dir {a:?} overlaps component[{j}].dir {b:?}"
                )));
            }
        }
    }
    Ok(())
}

/// Second pass: writes each component's files to `staging/<component id>/`.
/// `checkpoint` runs after each file (crash points).
pub(crate) fn extract(
    path: &Path,
    insp: &Inspection,
    staging: &Path,
    checkpoint: &mut dyn FnMut() -> Result<(), PackageError>,
) -> Result<(), PackageError> {
    let normalized: Vec<(String, &ComponentInfo)> = insp
        .manifest
        .components
        .iter()
        .map(|c| (normalize(&c.dir).unwrap_or_default(), c))
        .collect();
    for c in &insp.manifest.components {
        fs::create_dir_all(staging.join(&c.id))?;
    }
    let mut links: Vec<(PathBuf, String)> = Vec::new();
    for_each_entry(path, &mut |e, content| {
        let Ok(p) = normalize(&e.path) else {
            return Err(PackageError::Unsafe {
                path: e.path,
                reason: "changed since inspection",
            });
        };
        let Some((c, rel)) = normalized.iter().find_map(|(dir, c)| {
            if &p == dir {
                Some((*c, ""))
            } else {
                p.strip_prefix(dir.as_str())
                    .and_then(|r| r.strip_prefix('/'))
                    .map(|r| (*c, r))
            }
        }) else {
            return Ok(());
        };
        let dest = staging.join(&c.id).join(rel);
        match e.kind {
            EntryKind::Dir => fs::create_dir_all(&dest)?,
            EntryKind::File { size, exec } => {
                if let Some(parent) = dest.parent() {
                    fs::create_dir_all(parent)?;
                }
                let mut out = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(if exec { 0o755 } else { 0o644 })
                    .open(&dest)?;
                let copied = io::copy(&mut content.take(size.saturating_add(1)), &mut out)
                    .map_err(|e| match e.kind() {
                        io::ErrorKind::StorageFull => PackageError::Io(e),
                        _ => corrupt(e),
                    })?;
                if copied != size {
                    return Err(PackageError::Corrupt(format!(
                        "{p}: {copied} bytes where the header says {size}"
                    )));
                }
                out.sync_all()?;
                checkpoint()?;
            }
            EntryKind::Symlink(target) => links.push((dest, target)),
            EntryKind::Skip => {}
        }
        Ok(())
    })?;
    for (dest, target) in links {
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)?;
        }
        std::os::unix::fs::symlink(target, &dest)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_paths() {
        assert_eq!(normalize("./a//b/").unwrap(), "a/b");
        assert_eq!(normalize("./").unwrap(), "");
        assert!(normalize("../x").is_err());
        assert!(normalize("a/../../x").is_err());
        assert!(normalize("/etc/passwd").is_err());
        assert!(normalize("a\\b").is_err());
    }

    #[test]
    fn symlink_targets() {
        assert!(check_link("lib/libx.so", "libx.so.1").is_ok());
        assert!(check_link("bin/tool", "../lib/tool").is_ok());
        assert!(check_link("tool", "../outside").is_err());
        assert!(check_link("a/b/c", "../../../x").is_err());
        assert!(check_link("a/b", "/etc/passwd").is_err());
        assert!(check_link("a/b", "s/../../x").is_err());
        assert!(check_link("a/b", "").is_err());
    }

    #[test]
    fn result_codes() {
        assert_eq!(
            PackageError::TooLarge("x".into()).result_code(),
            ResultCode(1406)
        );
        assert_eq!(PackageError::UnknownFormat.result_code(), ResultCode(1405));
        assert_eq!(
            PackageError::EnvType("deb".into()).result_code(),
            ResultCode(1413)
        );
    }
}
