//! The operation journal: one file per operation in flight, rewritten
//! (atomically) **before** each step is acted on, so a restarted agent
//! knows exactly where every operation stood.
//!
//! ```text
//!  Exec ─▶ accepted ─▶ confirmed ─▶ downloading ─▶ downloaded ─┬─▶ delivering ──────────────┐ (Download)
//!                         │                                    └─▶ staging ─┐                │ (DownloadInstall*)
//!                         ├──────────────────────────────────────▶ staging ─┤                │ (Install*)
//!                         │                                   committing ◀──┘                │
//!                         │                                       │                          │
//!                         │                                   activating ─(fail)─▶ rolling-back
//!                         ├─▶ removing  (Remove)                  │                    │     │
//!                         └─▶ switching (Activate/Deactivate)     ▼                    ▼     ▼
//!                                                             finishing ──▶ alert in the outbox, file deleted
//! ```
//!
//! Crash points ([`CrashMode`]) fire right after a step is journaled, and
//! at a few places inside long steps (`download-chunk`, `extracting`,
//! `commit-component`, `activate-component`, `reported`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use scomo::dlota::DownloadDescriptor;
use scomo::mo::EntryKind;
use scomo::state::DpState;
use scomo::{Primitive, ResultCode};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::mo::EntryLeaves;
use super::rules::Phase;
use super::store::{corrupt, to_json, ComponentRecord};
use crate::persist::{sync_dir, write_atomic};

/// The environment variable the agent binary reads to set
/// [`CrashMode::Abort`] (test builds of the crash matrix).
pub const CRASH_ENV_VAR: &str = "SCOMO_CRASH_AT";

/// Crash injection, for the crash-safety tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CrashMode {
    /// Normal operation.
    #[default]
    Off,
    /// `std::process::abort()` when the named point is reached (what the
    /// agent binary does with `SCOMO_CRASH_AT=<point>`).
    Abort(String),
    /// Stop the operation dead at the named point, without any cleanup,
    /// and refuse every later journal write, as if the process had died
    /// (in-process tests; drop the client afterwards and reopen).
    Halt(String),
}

impl CrashMode {
    /// `Abort` at `point` when set and not empty (the binary passes the
    /// value of [`CRASH_ENV_VAR`]).
    pub fn abort_at(point: Option<&str>) -> CrashMode {
        match point.map(str::trim) {
            Some(p) if !p.is_empty() => CrashMode::Abort(p.to_owned()),
            _ => CrashMode::Off,
        }
    }
}

/// Returned when a [`CrashMode::Halt`] point fired: the operation stops
/// without any cleanup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Halted;

/// Fires crash points.
#[derive(Debug)]
pub(crate) struct Crasher {
    mode: CrashMode,
    dead: AtomicBool,
    halted: watch::Sender<Option<String>>,
}

impl Crasher {
    pub(crate) fn new(mode: CrashMode) -> Crasher {
        Crasher {
            mode,
            dead: AtomicBool::new(false),
            halted: watch::Sender::new(None),
        }
    }

    /// Called when `point` is reached.
    pub(crate) fn point(&self, point: &str) -> Result<(), Halted> {
        if self.is_dead() {
            return Err(Halted);
        }
        match &self.mode {
            CrashMode::Abort(p) if p == point => {
                tracing::warn!(point, "crash point reached: aborting");
                std::process::abort()
            }
            CrashMode::Halt(p) if p == point => {
                self.dead.store(true, Ordering::SeqCst);
                self.halted.send_replace(Some(point.to_owned()));
                Err(Halted)
            }
            _ => Ok(()),
        }
    }

    /// Whether a Halt point fired (nothing may be persisted any more).
    pub(crate) fn is_dead(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<Option<String>> {
        self.halted.subscribe()
    }
}

/// One operation in flight.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct OpRecord {
    pub(crate) id: u64,
    pub(crate) primitive: Primitive,
    /// The entry's node name.
    pub(crate) entry: String,
    /// The primitive's URI (the report's Source).
    pub(crate) source_uri: String,
    pub(crate) correlator: Option<String>,
    pub(crate) server_id: String,
    /// Runs inside the Exec (its Status carries the result). Not
    /// persisted: an operation recovered after a crash reports by alert.
    #[serde(skip)]
    pub(crate) sync: bool,
    /// The entry's leaves when the Exec arrived.
    pub(crate) leaves: EntryLeaves,
    /// Entries it must have to itself (its own, and the components it
    /// installs once they are known).
    pub(crate) locks: Vec<(EntryKind, String)>,
    pub(crate) step: Step,
}

/// Where an operation stands. Each variant says what is true on disk once
/// it is journaled, and so how to recover (see the executor).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[expect(
    clippy::large_enum_variant,
    reason = "one Step per operation in flight; boxing buys nothing"
)]
pub(crate) enum Step {
    /// The Exec was accepted; nothing was done.
    Accepted,
    /// The user (or policy) agreed.
    Confirmed,
    /// Receiving the package into `downloads/<op>.part`.
    Downloading(DownloadState),
    /// The package is complete and valid in `downloads/<op>.part`.
    Downloaded {
        /// Hex SHA-256 of the package.
        sha256: String,
        /// Its size.
        size: u64,
    },
    /// Download: making it `Inventory/Delivered/<name>`.
    Delivering {
        /// The Delivered entry's name.
        name: String,
    },
    /// Extracting (archive) or installing (command) the package.
    Staging {
        /// The package file.
        package: PathBuf,
        /// Whether the package stays (a Delivered entry's) or goes.
        keep_package: bool,
    },
    /// Moving staged components into place; `install.committed` are done.
    Committing(InstallState),
    /// Activating the installed components; `install.activated` are done.
    Activating(InstallState),
    /// Undoing a failed install, then reporting `failure`.
    RollingBack {
        /// The install being undone.
        install: InstallState,
        /// Why.
        failure: Failure,
    },
    /// Removing the package or the component.
    Removing,
    /// Activating or deactivating the component.
    Switching,
    /// The outcome is decided: apply it to the tree, queue the alert,
    /// delete this file.
    Finishing(Outcome),
}

impl Step {
    /// The step's crash-point name.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Step::Accepted => "accepted",
            Step::Confirmed => "confirmed",
            Step::Downloading(_) => "downloading",
            Step::Downloaded { .. } => "downloaded",
            Step::Delivering { .. } => "delivering",
            Step::Staging { .. } => "staging",
            Step::Committing(_) => "committing",
            Step::Activating(_) => "activating",
            Step::RollingBack { .. } => "rolling-back",
            Step::Removing => "removing",
            Step::Switching => "switching",
            Step::Finishing(_) => "finishing",
        }
    }

    /// The Status phase of the entry while in this step.
    pub(crate) fn phase(&self, p: Primitive) -> Phase {
        match self {
            Step::Accepted | Step::Confirmed => match p {
                Primitive::Download
                | Primitive::DownloadInstall
                | Primitive::DownloadInstallInactive => Phase::Download,
                Primitive::Install | Primitive::InstallInactive => Phase::Install,
                Primitive::RemoveDelivered | Primitive::RemoveDeployed => Phase::Remove,
                Primitive::Activate | Primitive::Deactivate => Phase::Switch,
            },
            Step::Downloading(_) => Phase::Download,
            Step::Downloaded { .. } | Step::Delivering { .. } => Phase::Downloaded,
            Step::Staging { .. }
            | Step::Committing(_)
            | Step::Activating(_)
            | Step::RollingBack { .. } => Phase::Install,
            Step::Removing => Phase::Remove,
            Step::Switching | Step::Finishing(_) => Phase::Switch,
        }
    }
}

/// A resumable download.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DownloadState {
    /// PkgURL.
    pub(crate) url: String,
    /// The descriptor, when PkgURL served one.
    pub(crate) dd: Option<DownloadDescriptor>,
    /// Where the object comes from (PkgURL or the descriptor's objectURI,
    /// resolved).
    pub(crate) object_url: Option<String>,
    /// ETag (or Last-Modified) of the object, for `If-Range`.
    pub(crate) validator: Option<String>,
    /// Total size, when known.
    pub(crate) total: Option<u64>,
    /// Media type the server gave the object.
    pub(crate) content_type: Option<String>,
}

/// An install in progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct InstallState {
    pub(crate) package: PathBuf,
    pub(crate) keep_package: bool,
    /// Install active (DownloadInstall, Install) or inactive.
    pub(crate) active: bool,
    pub(crate) plan: Vec<PlanItem>,
    /// How many plan items are committed.
    pub(crate) committed: usize,
    /// Components already activated.
    pub(crate) activated: Vec<String>,
}

/// One component of an install.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PlanItem {
    /// The new component (state Inactive until activated).
    pub(crate) record: ComponentRecord,
    /// Whether its files are staged in `staging/<op>/<id>` (archive) or
    /// were installed by the environment itself (command).
    pub(crate) staged: bool,
    /// The version it replaces (an update).
    pub(crate) previous: Option<ComponentRecord>,
}

/// A failed operation's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Failure {
    pub(crate) code: ResultCode,
    pub(crate) reason: String,
    pub(crate) phase: Phase,
}

/// What an operation ended with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Outcome {
    pub(crate) result: ResultCode,
    pub(crate) reason: String,
    /// Status to leave on the entry (`None`: the entry is gone).
    pub(crate) status: Option<u16>,
    /// State to leave on a Delivered entry.
    pub(crate) dp_state: Option<DpState>,
    /// Report items: (Target URI, Identifier) per resulting component.
    pub(crate) targets: Vec<(Option<String>, Option<String>)>,
    /// The Identifier when there is no target (PkgID or component ID).
    pub(crate) identifier: Option<String>,
}

/// The journal directory.
#[derive(Debug)]
pub(crate) struct Journal {
    dir: PathBuf,
}

impl Journal {
    pub(crate) fn new(dir: PathBuf) -> Journal {
        Journal { dir }
    }

    fn file(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    pub(crate) fn save(&self, rec: &OpRecord) -> io::Result<()> {
        write_atomic(&self.file(rec.id), &to_json(rec)?)
    }

    pub(crate) fn remove(&self, id: u64) -> io::Result<()> {
        match fs::remove_file(self.file(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        sync_dir(&self.dir)
    }

    /// Every journaled operation, oldest first. Leftover temporary files
    /// of an interrupted write are ignored (and removed).
    pub(crate) fn load_all(&self) -> io::Result<Vec<OpRecord>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.dir)? {
            let path = e?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let Some(id) = name
                .strip_suffix(".json")
                .and_then(|s| s.parse::<u64>().ok())
            else {
                if name.contains(".tmp.") {
                    let _ = fs::remove_file(&path);
                }
                continue;
            };
            out.push(load(&path, id)?);
        }
        out.sort_by_key(|r| r.id);
        Ok(out)
    }
}

fn load(path: &Path, id: u64) -> io::Result<OpRecord> {
    let bytes = fs::read(path)?;
    let rec: OpRecord = serde_json::from_slice(&bytes).map_err(|e| corrupt(path, &e))?;
    if rec.id != id {
        return Err(corrupt(path, &"operation id differs from the file name"));
    }
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u64) -> OpRecord {
        OpRecord {
            id,
            primitive: Primitive::DownloadInstall,
            entry: "p".into(),
            source_uri: "./SCOMO/Download/p/Operations/DownloadInstall".into(),
            correlator: Some("c".into()),
            server_id: "s".into(),
            sync: true,
            leaves: EntryLeaves::default(),
            locks: vec![(EntryKind::Download, "p".into())],
            step: Step::Downloading(DownloadState {
                url: "http://x/p".into(),
                dd: None,
                object_url: None,
                validator: Some("\"e\"".into()),
                total: Some(5),
                content_type: None,
            }),
        }
    }

    #[test]
    fn save_load_remove() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path().to_owned());
        j.save(&rec(2)).unwrap();
        j.save(&rec(1)).unwrap();
        fs::write(dir.path().join("3.json.tmp.77"), b"{").unwrap();
        let all = j.load_all().unwrap();
        assert_eq!(all.iter().map(|r| r.id).collect::<Vec<_>>(), [1, 2]);
        // `sync` is never persisted.
        assert!(!all[0].sync);
        assert_eq!(all[0].step, rec(1).step);
        j.remove(1).unwrap();
        j.remove(1).unwrap();
        assert_eq!(j.load_all().unwrap().len(), 1);
        fs::write(dir.path().join("9.json"), b"{}").unwrap();
        assert!(j.load_all().is_err());
    }

    #[test]
    fn crash_points() {
        let c = Crasher::new(CrashMode::Halt("staging".into()));
        assert_eq!(c.point("accepted"), Ok(()));
        assert_eq!(c.point("staging"), Err(Halted));
        assert!(c.is_dead());
        assert_eq!(c.point("accepted"), Err(Halted));
        assert_eq!(c.subscribe().borrow().as_deref(), Some("staging"));
        assert_eq!(CrashMode::abort_at(Some(" ")), CrashMode::Off);
        assert_eq!(
            CrashMode::abort_at(Some("committing")),
            CrashMode::Abort("committing".into())
        );
        assert_eq!(Step::Removing.name(), "removing");
        assert_eq!(Step::Accepted.phase(Primitive::Install), Phase::Install);
    }
}
