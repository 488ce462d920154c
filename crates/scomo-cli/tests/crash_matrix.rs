//! The crash matrix, end to end: the real `scomo agent --once` is killed
//! right after each journaled step (and each inner crash point) of
//! DownloadInstall, Update, Remove and Activate, and restarted.
//!
//! `SCOMO_CRASH_AT=<point>` makes the agent `std::process::abort()` there:
//! an abnormal death with no cleanup, like kill -9. The restarted agent
//! must finish the operation from its journal, and then
//!
//! * exactly one OperationComplete alert for the operation (correlator
//!   `crash`) reached the server, with result 1200, and no other alert;
//! * `scomo/inventory.json`, `Inventory/Deployed` in `tree.json` and the
//!   directories under `components/` agree: the right components, each
//!   holding exactly the files of its expected version (an update leaves
//!   none of the old version), `ACTIVE` marker iff State 20;
//! * nothing temporary is left: journal, staging, backup, trash, partial
//!   downloads, package files, and the outbox are empty; no entry shows a
//!   "progressing" Status;
//! * a download cut after its first bytes resumes with `Range` + `If-Range`;
//! * one more run changes nothing and reports nothing.
//!
//! Each scenario has its own server; each (scenario, point) case its own
//! device and data directory; agent processes run one after the other.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use omadm_tree::Tree;
use omadm_wire::model::Command;
use scomo::alert::OperationComplete;

use support::device::{files_under, names, Device};
use support::package::{comp, package, Comp};
use support::server::{add_leaf, add_node, exec, sha256_hex, DeviceLog, Mini};

const ROOT: &str = "./SCOMO";
/// The Correlator of the operation under test.
const CORRELATOR: &str = "crash";
/// The Correlator of the operations that set the device up.
const PREP: &str = "prep";
/// Incompressible bytes in the first component of downloaded packages, so
/// that a download takes several reads.
const BLOB: usize = 96 * 1024;

/// Every crash point a DownloadInstall passes (a fresh install and an
/// update alike).
const DOWNLOAD_INSTALL_POINTS: &[&str] = &[
    "accepted",
    "confirmed",
    "downloading",
    "download-chunk",
    "downloaded",
    "staging",
    "extracting",
    "committing",
    "commit-component",
    "activating",
    "activate-component",
    "finishing",
    "reported",
];
const REMOVE_POINTS: &[&str] = &["accepted", "confirmed", "removing", "finishing", "reported"];
const ACTIVATE_POINTS: &[&str] = &[
    "accepted",
    "confirmed",
    "switching",
    "finishing",
    "reported",
];

/// Fresh install: two components.
const P1: [Comp; 2] = [comp("c.a", "1.0").with_blob(BLOB), comp("c.b", "1.0")];
/// What Update and Remove start from.
const V1: [Comp; 2] = [comp("c.a", "1.0"), comp("c.b", "1.0")];
/// The update of V1.
const V2: [Comp; 2] = [comp("c.a", "2.0").with_blob(BLOB), comp("c.b", "2.0")];
/// What Activate starts from (installed inactive).
const SOLO: [Comp; 1] = [comp("c.a", "1.0")];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    DownloadInstall,
    Update,
    Remove,
    Activate,
}

/// A package served by the scenario's server.
struct Served {
    /// Download entry name, also the name it is served under.
    name: &'static str,
    url: String,
    sha256: String,
    size: usize,
}

impl Served {
    fn new(mini: &Mini, name: &'static str, comps: &[Comp]) -> Served {
        let bytes = package(&pkg_id(name), comps);
        Served {
            name,
            sha256: sha256_hex(&bytes),
            size: bytes.len(),
            url: mini.serve(name, bytes),
        }
    }

    /// Indirect delivery: Add Download/<name> with PkgID, PkgURL and
    /// Ext/SHA256, then Exec its `op`.
    fn commands(&self, op: &str, correlator: &str) -> Vec<Command> {
        let base = format!("{ROOT}/Download/{}", self.name);
        vec![
            add_node(&base),
            add_leaf(&format!("{base}/PkgID"), &pkg_id(self.name)),
            add_leaf(&format!("{base}/PkgURL"), &self.url),
            add_leaf(&format!("{base}/Ext/SHA256"), &self.sha256),
            exec(&format!("{base}/Operations/{op}"), correlator),
        ]
    }
}

fn pkg_id(name: &str) -> String {
    format!("{name}-pkg")
}

impl Scenario {
    fn points(self) -> &'static [&'static str] {
        match self {
            Scenario::DownloadInstall | Scenario::Update => DOWNLOAD_INSTALL_POINTS,
            Scenario::Remove => REMOVE_POINTS,
            Scenario::Activate => ACTIVATE_POINTS,
        }
    }

    /// The install that sets the device up: (package, primitive).
    fn prep(self) -> Option<(&'static str, &'static [Comp], &'static str)> {
        match self {
            Scenario::DownloadInstall => None,
            Scenario::Update | Scenario::Remove => Some(("v1", &V1, "DownloadInstall")),
            Scenario::Activate => Some(("v1", &SOLO, "DownloadInstallInactive")),
        }
    }

    /// The package the operation under test downloads.
    fn download(self) -> Option<(&'static str, &'static [Comp])> {
        match self {
            Scenario::DownloadInstall => Some(("p1", &P1)),
            Scenario::Update => Some(("v2", &V2)),
            Scenario::Remove | Scenario::Activate => None,
        }
    }

    /// The primitive URI the operation's report names as its Source.
    fn source_uri(self) -> String {
        match self {
            Scenario::DownloadInstall => format!("{ROOT}/Download/p1/Operations/DownloadInstall"),
            Scenario::Update => format!("{ROOT}/Download/v2/Operations/DownloadInstall"),
            Scenario::Remove => format!("{ROOT}/Inventory/Deployed/c.a/Operations/Remove"),
            Scenario::Activate => format!("{ROOT}/Inventory/Deployed/c.a/Operations/Activate"),
        }
    }

    /// The commands that start the operation under test.
    fn commands(self, served: Option<&Served>) -> Vec<Command> {
        match (self, served) {
            (Scenario::DownloadInstall | Scenario::Update, Some(p)) => {
                p.commands("DownloadInstall", CORRELATOR)
            }
            (Scenario::Remove | Scenario::Activate, _) => {
                vec![exec(&self.source_uri(), CORRELATOR)]
            }
            _ => unreachable!("a download scenario without its package"),
        }
    }

    /// The components once the operation is over: (component, active).
    fn outcome(self) -> Vec<(Comp, bool)> {
        match self {
            Scenario::DownloadInstall => P1.iter().map(|c| (*c, true)).collect(),
            Scenario::Update => V2.iter().map(|c| (*c, true)).collect(),
            Scenario::Remove => vec![(V1[1], true)],
            Scenario::Activate => vec![(SOLO[0], true)],
        }
    }
}

/// The OperationComplete reports with `correlator` the server received.
fn reports(log: &DeviceLog, correlator: &str) -> Vec<OperationComplete> {
    log.alerts
        .iter()
        .filter_map(|a| OperationComplete::from_alert(a).ok())
        .filter(|r| r.correlator.as_deref() == Some(correlator))
        .collect()
}

/// Runs one scenario against every crash point it passes.
async fn matrix(s: Scenario) {
    let mini = Mini::start().await;
    let prep = s
        .prep()
        .map(|(name, comps, op)| (Served::new(&mini, name, comps), op));
    let download = s
        .download()
        .map(|(name, comps)| Served::new(&mini, name, comps));
    let mut resumed = 0;
    for point in s.points() {
        if case(&mini, s, point, prep.as_ref(), download.as_ref()).await {
            resumed += 1;
        }
    }
    if s.download().is_some() {
        assert!(
            resumed >= 1,
            "{s:?}: no crash left a partial download to resume"
        );
    }
}

/// One case: set up, run the operation with the agent killed at `point`,
/// restart, check. Returns whether a partial download was resumed.
async fn case(
    mini: &Mini,
    s: Scenario,
    point: &str,
    prep: Option<&(Served, &str)>,
    download: Option<&Served>,
) -> bool {
    let what = format!("{s:?} killed at {point}");
    let dev = Device::new(mini, &format!("dev-{s:?}-{point}")).await;

    // 1. The starting state, without crash injection.
    if let Some((pkg, op)) = prep {
        let ids = mini.queue_round(&dev.id, pkg.commands(op, PREP));
        let run = dev.run(None).await;
        assert!(
            run.status.success(),
            "{what}: setting up: {:?}\n{}",
            run.status,
            run.stderr
        );
        let log = mini.device(&dev.id);
        let mut want: Vec<(u64, u16)> = ids.iter().map(|id| (*id, 200)).collect();
        if let Some(last) = want.last_mut() {
            last.1 = 202;
        }
        assert_eq!(log.statuses, want, "{what}: setting up: statuses");
        let r = reports(&log, PREP);
        assert_eq!(r.len(), 1, "{what}: setting up: {r:?}");
        assert!(
            r[0].items.iter().all(|i| i.result.0 == 1200),
            "{what}: setting up: {r:?}"
        );
        assert!(names(&dev.scomo_dir("ops")).is_empty());
    }
    let alerts_before = mini.device(&dev.id).alerts.len();

    // 2. The operation; the agent dies at `point`.
    let round = mini.queue_round(&dev.id, s.commands(download));
    let run = dev.run(Some(point)).await;
    assert!(
        run.aborted(),
        "{what}: the agent did not die at the crash point (not reached?): {:?}\n{}",
        run.status,
        run.stderr
    );
    assert!(
        run.stderr.contains("crash point reached"),
        "{what}: {}",
        run.stderr
    );
    assert!(
        !names(&dev.scomo_dir("ops")).is_empty(),
        "{what}: the operation is not journaled"
    );
    // A download cut short: what the restart must resume from.
    let partial = download.and_then(|pkg| {
        names(&dev.scomo_dir("downloads"))
            .iter()
            .filter(|n| n.ends_with(".part"))
            .map(|n| {
                std::fs::metadata(dev.scomo_dir("downloads").join(n))
                    .unwrap()
                    .len()
            })
            .find(|&len| len > 0 && len < pkg.size as u64)
    });
    let gets_before = mini.gets().len();

    // 3. Restart until the operation is over and reported (bounded).
    let mut restarts = 0;
    loop {
        restarts += 1;
        let run = dev.run(None).await;
        assert!(
            run.status.success(),
            "{what}: restart {restarts}: {:?} (the server got Statuses {:?} of the round {round:?})\n{}",
            run.status,
            mini.device(&dev.id).statuses,
            run.stderr
        );
        let done = names(&dev.scomo_dir("ops")).is_empty()
            && dev.outbox_len() == 0
            && !reports(&mini.device(&dev.id), CORRELATOR).is_empty();
        if done {
            break;
        }
        assert!(
            restarts < 2,
            "{what}: not over after {restarts} restarts: journal {:?}, outbox {}, alerts {:?}",
            names(&dev.scomo_dir("ops")),
            dev.outbox_len(),
            mini.device(&dev.id).alerts
        );
    }
    check(mini, &dev, s, &what, alerts_before);

    // The partial download was resumed, not started over.
    if let (Some(have), Some(pkg)) = (partial, download) {
        let gets = mini.gets();
        let first = gets[gets_before..]
            .iter()
            .find(|g| g.name == pkg.name)
            .unwrap_or_else(|| panic!("{what}: the download was not resumed"));
        assert_eq!(
            first.range.as_deref(),
            Some(format!("bytes={have}-").as_str()),
            "{what}: {first:?}"
        );
        assert!(first.if_range.is_some(), "{what}: {first:?}");
        assert_eq!(first.status, 206, "{what}: {first:?}");
    }

    // 4. Recovery is over: another round changes nothing, reports nothing.
    let alerts = mini.device(&dev.id).alerts.len();
    let run = dev.run(None).await;
    assert!(
        run.status.success(),
        "{what}: last run: {:?}\n{}",
        run.status,
        run.stderr
    );
    assert_eq!(
        mini.device(&dev.id).alerts.len(),
        alerts,
        "{what}: a later run reported again"
    );
    check(mini, &dev, s, &what, alerts_before);
    partial.is_some()
}

/// The device is consistent and the operation ended as it should.
fn check(mini: &Mini, dev: &Device, s: Scenario, what: &str, alerts_before: usize) {
    // One alert, for the operation, successful.
    let log = mini.device(&dev.id);
    let r = reports(&log, CORRELATOR);
    assert_eq!(r.len(), 1, "{what}: reports {r:?}");
    assert_eq!(
        log.alerts.len(),
        alerts_before + 1,
        "{what}: alerts {:?}",
        log.alerts
    );
    let items = &r[0].items;
    assert!(!items.is_empty(), "{what}: {r:?}");
    for i in items {
        assert_eq!(i.result.0, 1200, "{what}: {r:?}");
        assert_eq!(
            i.source_uri.as_deref(),
            Some(s.source_uri().as_str()),
            "{what}"
        );
    }
    let want = s.outcome();
    let want_ids: Vec<&str> = want.iter().map(|(c, _)| c.id).collect();
    let state = |active: bool| if active { "20" } else { "10" };

    // The client's inventory.
    let mut inv = dev.inventory();
    inv.sort_by(|a, b| a.id.cmp(&b.id));
    let got: Vec<(String, String, String)> = inv
        .iter()
        .map(|c| (c.id.clone(), c.version.clone(), c.state.to_string()))
        .collect();
    let expected: Vec<(String, String, String)> = want
        .iter()
        .map(|(c, a)| (c.id.into(), c.version.into(), state(*a).into()))
        .collect();
    assert_eq!(got, expected, "{what}: inventory.json");

    // The tree agrees.
    let tree = dev.tree();
    let deployed = format!("{ROOT}/Inventory/Deployed");
    assert_eq!(children(&tree, &deployed), want_ids, "{what}: {deployed}");
    for (c, active) in &want {
        let leaf = |n: &str| {
            tree.value_str(format!("{deployed}/{}/{n}", c.id))
                .map(str::to_owned)
        };
        assert_eq!(leaf("ID").as_deref(), Some(c.id), "{what}: {} ID", c.id);
        assert_eq!(
            leaf("Version").as_deref(),
            Some(c.version),
            "{what}: {} Version",
            c.id
        );
        assert_eq!(
            leaf("State").as_deref(),
            Some(state(*active)),
            "{what}: {} State",
            c.id
        );
        assert_eq!(
            leaf("Status").as_deref(),
            Some("10"),
            "{what}: {} Status",
            c.id
        );
    }
    let delivered = format!("{ROOT}/Inventory/Delivered");
    assert!(
        children(&tree, &delivered).is_empty(),
        "{what}: {delivered}"
    );
    // Download entries the server created (one whose Add was lost with the
    // crashed session may be missing) are idle again.
    for name in children(&tree, &format!("{ROOT}/Download")) {
        assert_eq!(
            tree.value_str(format!("{ROOT}/Download/{name}/Status")),
            Some("10"),
            "{what}: Download/{name}/Status"
        );
    }

    // The files agree: exactly the expected version's files.
    assert_eq!(
        names(&dev.data.join("components")),
        want_ids,
        "{what}: component directories"
    );
    for (c, active) in &want {
        let dir = dev.component_dir(c.id);
        assert_eq!(
            files_under(&dir),
            c.files(*active),
            "{what}: files of {}",
            c.id
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("VERSION")).unwrap(),
            c.version,
            "{what}: {}",
            c.id
        );
    }

    // Nothing temporary is left, nothing waits.
    for d in ["ops", "staging", "backup", "trash", "downloads", "packages"] {
        assert!(
            names(&dev.scomo_dir(d)).is_empty(),
            "{what}: scomo/{d} holds {:?}",
            names(&dev.scomo_dir(d))
        );
    }
    assert_eq!(dev.outbox_len(), 0, "{what}: outbox");
}

fn children(tree: &Tree, path: &str) -> Vec<String> {
    let mut v: Vec<String> = tree
        .child_names(path)
        .unwrap_or_default()
        .into_iter()
        .map(str::to_owned)
        .collect();
    v.sort();
    v
}

/// The agent dies after it sent a message carrying a new nonce for the
/// server (the `Chal` in its SyncHdr Status, after the server proved
/// itself) and before the reply came: the server already uses that nonce,
/// so the restarted agent must know it too, and its next sessions must
/// still authenticate the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_session_the_agent_still_authenticates_the_server() {
    let s = Scenario::Activate;
    let what = "killed while waiting for the server's reply";
    let mini = Mini::start().await;
    let (name, comps, op) = s.prep().unwrap();
    let v1 = Served::new(&mini, name, comps);
    let dev = Device::new(&mini, "dev-mid-session").await;
    mini.queue_round(&dev.id, v1.commands(op, PREP));
    let run = dev.run(None).await;
    assert!(run.status.success(), "{what}: {}", run.stderr);
    let alerts_before = mini.device(&dev.id).alerts.len();
    // The server takes the Exec's Status (and the new nonce with it) but
    // never answers; the operation runs on and the agent dies at its end.
    mini.hold_next_round(&dev.id);
    let ids = mini.queue_round(&dev.id, s.commands(None));
    let run = dev.run(Some("reported")).await;
    assert!(run.aborted(), "{what}: {:?}\n{}", run.status, run.stderr);
    assert!(
        mini.device(&dev.id)
            .statuses
            .iter()
            .any(|(id, code)| *id == ids[0] && *code == 202),
        "{what}: the Exec's Status did not reach the server"
    );
    let run = dev.run(None).await;
    assert!(
        run.status.success(),
        "{what}: the restarted agent cannot run a session: {:?}\n{}",
        run.status,
        run.stderr
    );
    check(&mini, &dev, s, what, alerts_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_matrix_download_install() {
    matrix(Scenario::DownloadInstall).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_matrix_update() {
    matrix(Scenario::Update).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_matrix_remove() {
    matrix(Scenario::Remove).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_matrix_activate() {
    matrix(Scenario::Activate).await;
}
