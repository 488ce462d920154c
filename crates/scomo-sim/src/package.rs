//! What a simulated device learns from a delivery package: its manifest
//! (`scomo-package.toml`, read from the tar.gz or tar archive in memory)
//! and digest. Packages are parsed once per content and shared.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};

use scomo::manifest::{Manifest, MANIFEST_FILE};
use sha2::{Digest, Sha256};

/// Largest manifest read from an archive.
const MAX_MANIFEST: u64 = 256 * 1024;

/// A package's identity and components.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PkgInfo {
    pub(crate) sha256: String,
    pub(crate) size: u64,
    pub(crate) pkg_id: String,
    /// (ID, Name, Version) per component.
    pub(crate) components: Vec<(String, String, String)>,
}

/// Packages by SHA-256 (or the reason they cannot be installed).
#[derive(Default)]
pub(crate) struct PackageCache {
    map: Mutex<HashMap<String, Result<Arc<PkgInfo>, String>>>,
}

impl PackageCache {
    /// The package `bytes` hold (hashed; parsed the first time).
    pub(crate) fn get(&self, bytes: &[u8]) -> Result<Arc<PkgInfo>, String> {
        let sha256 = hex(&Sha256::digest(bytes));
        if let Some(hit) = self.lock().get(&sha256) {
            return hit.clone();
        }
        let parsed = parse(bytes).map(|m| {
            Arc::new(PkgInfo {
                sha256: sha256.clone(),
                size: bytes.len() as u64,
                pkg_id: m.package.id.clone(),
                components: m
                    .components
                    .iter()
                    .map(|c| (c.id.clone(), c.name.clone(), c.version.clone()))
                    .collect(),
            })
        });
        self.lock().insert(sha256, parsed.clone());
        parsed
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Result<Arc<PkgInfo>, String>>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The manifest of a tar.gz or tar package.
fn parse(bytes: &[u8]) -> Result<Manifest, String> {
    let gz = bytes.starts_with(&[0x1f, 0x8b]);
    let text = if gz {
        manifest_text(flate2::read::GzDecoder::new(bytes))
    } else {
        manifest_text(bytes)
    }?;
    let m = Manifest::parse(&text).map_err(|e| e.to_string())?;
    if m.components.is_empty() {
        return Err("the package has no component".into());
    }
    Ok(m)
}

fn manifest_text(r: impl Read) -> Result<String, String> {
    let mut archive = tar::Archive::new(r);
    let entries = archive
        .entries()
        .map_err(|e| format!("not a tar archive: {e}"))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("bad archive: {e}"))?;
        let is_manifest = entry
            .path()
            .ok()
            .is_some_and(|p| p.trim_start_matches_dot() == MANIFEST_FILE);
        if is_manifest {
            let mut text = String::new();
            entry
                .take(MAX_MANIFEST)
                .read_to_string(&mut text)
                .map_err(|e| format!("cannot read {MANIFEST_FILE}: {e}"))?;
            return Ok(text);
        }
    }
    Err(format!("no {MANIFEST_FILE} in the package"))
}

trait TrimDot {
    fn trim_start_matches_dot(&self) -> String;
}

impl TrimDot for std::borrow::Cow<'_, std::path::Path> {
    fn trim_start_matches_dot(&self) -> String {
        self.to_string_lossy().trim_start_matches("./").to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn package(pkg_id: &str, comp: &str, version: &str) -> Vec<u8> {
        let manifest = format!(
            "[package]\nid = \"{pkg_id}\"\nname = \"P\"\n\n[[component]]\nid = \"{comp}\"\nname = \"C\"\nversion = \"{version}\"\ndir = \"c\"\n"
        );
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(manifest.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, MANIFEST_FILE, manifest.as_bytes())
            .unwrap();
        let tar = b.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn reads_manifests_once() {
        let cache = PackageCache::default();
        let bytes = package("p-1", "c", "1.0");
        let p = cache.get(&bytes).unwrap();
        assert_eq!(p.pkg_id, "p-1");
        assert_eq!(p.components, vec![("c".into(), "C".into(), "1.0".into())]);
        assert!(Arc::ptr_eq(&p, &cache.get(&bytes).unwrap()));
        assert!(cache.get(b"not a package").is_err());
    }
}
