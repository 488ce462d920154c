//! What the SCOMO client keeps on disk, and where.
//!
//! ```text
//!  <data-dir>/components/<component id>/   installed files of archive components
//!  <data-dir>/scomo/inventory.json         deployed components (authoritative)
//!  <data-dir>/scomo/counters.json          next operation id
//!  <data-dir>/scomo/ops/<op id>.json       journal: one file per operation in flight
//!  <data-dir>/scomo/outbox.json            results not yet acknowledged by the server
//!  <data-dir>/scomo/packages/<key>.pkg     delivered packages (Inventory/Delivered/<x>)
//!  <data-dir>/scomo/downloads/<op id>.part downloads in progress (resumable)
//!  <data-dir>/scomo/staging/<op id>/<id>/  components extracted, not yet committed
//!  <data-dir>/scomo/backup/<op id>/<id>/   previous versions during an update
//!  <data-dir>/scomo/trash/                 directories being deleted
//! ```
//!
//! Every JSON file is written with [`crate::persist::write_atomic`].

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use scomo::state::DcState;
use serde::{Deserialize, Serialize};

use crate::persist::{read_optional, write_atomic};

/// The file and directory layout under the agent's data directory.
#[derive(Clone, Debug)]
pub(crate) struct Paths {
    pub(crate) base: PathBuf,
    pub(crate) components: PathBuf,
}

impl Paths {
    pub(crate) fn new(data_dir: &Path) -> Paths {
        Paths {
            base: data_dir.join("scomo"),
            components: data_dir.join("components"),
        }
    }

    pub(crate) fn create_dirs(&self) -> io::Result<()> {
        for d in [
            self.components.clone(),
            self.ops_dir(),
            self.packages_dir(),
            self.downloads_dir(),
            self.staging_root(),
            self.backup_root(),
            self.trash_dir(),
        ] {
            fs::create_dir_all(d)?;
        }
        Ok(())
    }

    pub(crate) fn inventory_file(&self) -> PathBuf {
        self.base.join("inventory.json")
    }

    pub(crate) fn counters_file(&self) -> PathBuf {
        self.base.join("counters.json")
    }

    pub(crate) fn outbox_file(&self) -> PathBuf {
        self.base.join("outbox.json")
    }

    pub(crate) fn ops_dir(&self) -> PathBuf {
        self.base.join("ops")
    }

    pub(crate) fn packages_dir(&self) -> PathBuf {
        self.base.join("packages")
    }

    /// The package file of `Inventory/Delivered/<entry>`.
    pub(crate) fn package_file(&self, entry: &str) -> PathBuf {
        self.packages_dir().join(format!("{}.pkg", file_key(entry)))
    }

    pub(crate) fn downloads_dir(&self) -> PathBuf {
        self.base.join("downloads")
    }

    /// The download of operation `op` while it is being received.
    pub(crate) fn part_file(&self, op: u64) -> PathBuf {
        self.downloads_dir().join(format!("{op}.part"))
    }

    pub(crate) fn staging_root(&self) -> PathBuf {
        self.base.join("staging")
    }

    pub(crate) fn staging_dir(&self, op: u64) -> PathBuf {
        self.staging_root().join(op.to_string())
    }

    pub(crate) fn backup_root(&self) -> PathBuf {
        self.base.join("backup")
    }

    pub(crate) fn backup_dir(&self, op: u64) -> PathBuf {
        self.backup_root().join(op.to_string())
    }

    pub(crate) fn trash_dir(&self) -> PathBuf {
        self.base.join("trash")
    }

    /// Where component `id` is installed.
    pub(crate) fn component_dir(&self, id: &str) -> PathBuf {
        self.components.join(id)
    }
}

/// A file-name-safe key for a node name (server-chosen entry names may hold
/// any character but `/`): the name itself when it is plain, else `x` and
/// its hex.
pub(crate) fn file_key(name: &str) -> String {
    let plain = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if plain {
        name.to_owned()
    } else {
        format!("x{}", super::verify::hex(name.as_bytes()))
    }
}

/// One deployed component, as `inventory.json` holds it and
/// `Inventory/Deployed/<id>` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentRecord {
    /// Deployment component ID (also the Deployed node name).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Version string.
    pub version: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// PkgID of the package it came from.
    #[serde(default)]
    pub pkg_id_ref: Option<String>,
    /// Execution environment that installed it.
    pub env_type: String,
    /// Active or inactive.
    pub state: DcState,
    /// Activation hook, relative to the component directory (archive).
    #[serde(default)]
    pub activate: Option<String>,
    /// Deactivation hook, relative to the component directory (archive).
    #[serde(default)]
    pub deactivate: Option<String>,
    /// InstallParams it was installed with.
    #[serde(default)]
    pub install_params: Option<String>,
}

/// The deployed components, by id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Inventory {
    pub(crate) components: BTreeMap<String, ComponentRecord>,
}

impl Inventory {
    pub(crate) fn load(path: &Path) -> io::Result<Inventory> {
        match read_optional(path)? {
            None => Ok(Inventory::default()),
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| corrupt(path, &e)),
        }
    }

    pub(crate) fn save(&self, path: &Path) -> io::Result<()> {
        write_atomic(path, &to_json(self)?)
    }
}

/// The persisted counters.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Counters {
    pub(crate) next_op_id: u64,
}

impl Counters {
    pub(crate) fn load(path: &Path) -> io::Result<Counters> {
        match read_optional(path)? {
            None => Ok(Counters { next_op_id: 1 }),
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| corrupt(path, &e)),
        }
    }

    pub(crate) fn save(&self, path: &Path) -> io::Result<()> {
        write_atomic(path, &to_json(self)?)
    }
}

pub(crate) fn to_json<T: Serialize>(v: &T) -> io::Result<Vec<u8>> {
    serde_json::to_vec_pretty(v).map_err(io::Error::other)
}

pub(crate) fn corrupt(path: &Path, e: &dyn std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {e}", path.display()),
    )
}

/// Bytes available to the agent on the file system holding `path`.
pub(crate) fn free_space(path: &Path) -> io::Result<u64> {
    let st = rustix::fs::statvfs(path).map_err(io::Error::from)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Whether `need` more bytes fit while keeping `reserve` free.
pub(crate) fn has_room(path: &Path, need: u64, reserve: u64) -> bool {
    match free_space(path) {
        Ok(free) => free.saturating_sub(reserve) >= need,
        // Cannot tell: let the write itself fail if it must.
        Err(_) => true,
    }
}

/// Removes a file or directory tree if present.
pub(crate) fn remove_path(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
    }
}

/// Whether anything (even a dangling symlink) is at `path`.
pub(crate) fn present(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Moves a directory out of the way atomically, then deletes it: the tree
/// disappears from its place in one step even if the deletion is cut.
pub(crate) fn remove_dir_atomically(path: &Path, trash: &Path) -> io::Result<()> {
    if !present(path) {
        return Ok(());
    }
    fs::create_dir_all(trash)?;
    let mut n = 0u32;
    let dest = loop {
        let name = format!(
            "{}.{}.{n}",
            path.file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            std::process::id()
        );
        let d = trash.join(name);
        if !present(&d) {
            break d;
        }
        n += 1;
    };
    fs::rename(path, &dest)?;
    if let Some(parent) = path.parent() {
        let _ = crate::persist::sync_dir(parent);
    }
    remove_path(&dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_keys() {
        assert_eq!(file_key("pkg-1.0_a"), "pkg-1.0_a");
        assert_eq!(file_key("a b"), "x612062");
        assert_eq!(file_key(".hidden"), "x2e68696464656e");
        assert_eq!(file_key(""), "x");
    }

    #[test]
    fn inventory_round_trip_and_space() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("inv.json");
        assert_eq!(Inventory::load(&p).unwrap(), Inventory::default());
        let mut inv = Inventory::default();
        inv.components.insert(
            "c".into(),
            ComponentRecord {
                id: "c".into(),
                name: "C".into(),
                version: "1".into(),
                description: None,
                pkg_id_ref: Some("p".into()),
                env_type: "archive".into(),
                state: DcState::Active,
                activate: None,
                deactivate: None,
                install_params: None,
            },
        );
        inv.save(&p).unwrap();
        assert_eq!(Inventory::load(&p).unwrap(), inv);
        fs::write(&p, b"{").unwrap();
        assert!(Inventory::load(&p).is_err());
        assert!(free_space(dir.path()).unwrap() > 0);
        assert!(has_room(dir.path(), 1, 0));
        assert!(!has_room(dir.path(), 1, u64::MAX));
    }

    #[test]
    fn atomic_dir_removal() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("comp");
        fs::create_dir_all(d.join("sub")).unwrap();
        fs::write(d.join("sub/f"), b"x").unwrap();
        remove_dir_atomically(&d, &dir.path().join("trash")).unwrap();
        assert!(!present(&d));
        remove_dir_atomically(&d, &dir.path().join("trash")).unwrap();
        assert_eq!(fs::read_dir(dir.path().join("trash")).unwrap().count(), 0);
    }
}
