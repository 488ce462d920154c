//! One device: a data directory, the configuration `scomo agent init`
//! wrote for it, the `scomo agent --once` processes run on it, and what
//! they left on disk.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use omadm_tree::Tree;
use scomo_agent::scomo_client::ComponentRecord;

use super::server::{Mini, PASSWORD, SERVER_ID, SERVER_PASSWORD, USERNAME};

const BIN: &str = env!("CARGO_BIN_EXE_scomo");

/// Longest an agent round may take (a hang fails the test, it does not
/// block it).
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// The agents' log filter: `CRASH_MATRIX_LOG` when set (e.g. `debug` to
/// see every message), else what the assertions rely on (the crash point
/// warning) and the operations.
fn log_filter() -> String {
    std::env::var("CRASH_MATRIX_LOG").unwrap_or_else(|_| "warn,scomo_agent=info".into())
}

/// How an agent process ended.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) status: ExitStatus,
    pub(crate) stderr: String,
}

impl Run {
    /// Killed by SIGABRT (`std::process::abort`).
    pub(crate) fn aborted(&self) -> bool {
        self.status.signal() == Some(SIGABRT)
    }
}

/// SIGABRT (6 on every Unix the agent runs on).
const SIGABRT: i32 = 6;

/// A device under test.
pub(crate) struct Device {
    pub(crate) id: String,
    dir: tempfile::TempDir,
    pub(crate) data: PathBuf,
    config: PathBuf,
}

impl Device {
    /// A fresh data directory and a configuration from `scomo agent init`;
    /// the device is provisioned on `mini`.
    pub(crate) async fn new(mini: &Mini, id: &str) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let config = dir.path().join("agent.toml");
        let dm_url = mini.dm_url();
        let out = tokio::process::Command::new(BIN)
            .args([
                "agent",
                "init",
                "--device-id",
                id,
                "--username",
                USERNAME,
                "--password",
                PASSWORD,
                "--server-id",
                SERVER_ID,
                "--server-password",
                SERVER_PASSWORD,
                "--server",
                &dm_url,
                "--data-dir",
                data.to_str().unwrap(),
                "--poll-interval",
                "0",
            ])
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "agent init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        fs::write(&config, &out.stdout).unwrap();
        mini.add_device(id);
        Device {
            id: id.to_owned(),
            dir,
            data,
            config,
        }
    }

    /// One `scomo agent --once`, with `SCOMO_CRASH_AT=<crash>` when given.
    /// Core dumps are off (`ulimit -c 0`): the abort is expected.
    pub(crate) async fn run(&self, crash: Option<&str>) -> Run {
        let mut cmd = tokio::process::Command::new("/bin/sh");
        cmd.arg("-c")
            .arg("ulimit -c 0 2>/dev/null; exec \"$0\" \"$@\"")
            .arg(BIN)
            .arg("agent")
            .arg("--config")
            .arg(&self.config)
            .arg("--once")
            .current_dir(self.dir.path())
            .env("RUST_LOG", log_filter())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("SCOMO_") {
                cmd.env_remove(k);
            }
        }
        if let Some(point) = crash {
            cmd.env("SCOMO_CRASH_AT", point);
        }
        let out = tokio::time::timeout(RUN_LIMIT, cmd.output())
            .await
            .unwrap_or_else(|_| panic!("{}: the agent did not finish its round", self.id))
            .unwrap();
        Run {
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `<data>/scomo/<sub>`.
    pub(crate) fn scomo_dir(&self, sub: &str) -> PathBuf {
        self.data.join("scomo").join(sub)
    }

    /// The tree as the agent saved it.
    pub(crate) fn tree(&self) -> Tree {
        let bytes = fs::read(self.data.join("tree.json")).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    /// `scomo/inventory.json`: the client's authoritative inventory.
    pub(crate) fn inventory(&self) -> Vec<ComponentRecord> {
        let Ok(bytes) = fs::read(self.scomo_dir("inventory.json")) else {
            return Vec::new();
        };
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["components"]
            .as_object()
            .unwrap()
            .values()
            .map(|c| serde_json::from_value(c.clone()).unwrap())
            .collect()
    }

    /// The reports still waiting in `scomo/outbox.json`.
    pub(crate) fn outbox_len(&self) -> usize {
        let Ok(bytes) = fs::read(self.scomo_dir("outbox.json")) else {
            return 0;
        };
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["entries"].as_array().map_or(0, Vec::len)
    }

    /// Component directory of `id`.
    pub(crate) fn component_dir(&self, id: &str) -> PathBuf {
        self.data.join("components").join(id)
    }
}

/// Names in a directory, sorted (empty when it does not exist).
pub(crate) fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Every file under `dir`, as paths relative to it.
pub(crate) fn files_under(dir: &Path) -> BTreeSet<String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let path = e.path();
            if e.file_type().unwrap().is_dir() {
                walk(base, &path, out);
            } else {
                out.insert(
                    path.strip_prefix(base)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}
