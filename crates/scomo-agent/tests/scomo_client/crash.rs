//! The crash matrix, in process: the executor is stopped dead right after
//! each journaled step (and inside long steps) with `CrashMode::Halt`, the
//! client is dropped without cleanup and reopened from the data directory.
//! Afterwards the inventory on disk and in the tree agree, the operation
//! ends as it should, and exactly one alert for it is in the outbox.
//!
//! (The agent binary does the same with `SCOMO_CRASH_AT=<point>` and
//! `std::process::abort()`.)

use std::collections::BTreeSet;
use std::path::Path;

use scomo::state::DcState;
use scomo_agent::scomo_client::CrashMode;

use crate::common::*;

const POINTS: [&str; 16] = [
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
    "rolling-back",
    "removing",
    "switching",
    "finishing",
    "reported",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    DownloadInstall,
    Update,
    FailedUpdate,
    Install,
    RemoveDeployed,
    Activate,
}

/// Puts the device in the scenario's starting state (no crash injection).
async fn prepare(s: Scenario, a: &Agent, http: &Http, log: &Path) {
    let install = |name: &str, comps: Vec<Comp>, active: bool| {
        let bytes = package(&format!("{name}-pkg"), &comps, log);
        let url = http.serve_bytes(name, bytes);
        a.add_download(name, &[("PkgID", &format!("{name}-pkg")), ("PkgURL", &url)]);
        let op = if active {
            "DownloadInstall"
        } else {
            "DownloadInstallInactive"
        };
        a.exec(&download_uri(name, op), &format!("prep-{name}"));
    };
    match s {
        Scenario::DownloadInstall => {}
        Scenario::Update | Scenario::FailedUpdate | Scenario::RemoveDeployed => {
            install("v1", vec![comp("c.a", "1.0"), comp("c.b", "1.0")], true)
        }
        Scenario::Activate => install("v1", vec![comp("c.a", "1.0")], false),
        Scenario::Install => {
            let bytes = package("direct-pkg", &[comp("c.a", "1.0"), comp("c.b", "1.0")], log);
            a.push_package("d1", &[("PkgID", "direct-pkg")], &bytes);
        }
    }
    a.idle().await;
}

/// Starts the operation under test (correlator `crash`).
fn trigger(s: Scenario, a: &Agent, http: &Http, log: &Path) {
    let serve = |name: &str, comps: Vec<Comp>| {
        let mut bytes_comps = comps;
        // Large enough for several chunks.
        if let Some(c) = bytes_comps.first_mut() {
            c.extra.push((
                "blob".into(),
                (0..150_000u32).map(|i| (i % 253) as u8).collect(),
            ));
        }
        let bytes = package(&format!("{name}-pkg"), &bytes_comps, log);
        let url = http.serve_bytes(name, bytes);
        a.add_download(name, &[("PkgID", &format!("{name}-pkg")), ("PkgURL", &url)]);
    };
    match s {
        Scenario::DownloadInstall => {
            serve("p1", vec![comp("c.a", "1.0"), comp("c.b", "1.0")]);
            a.exec(&download_uri("p1", "DownloadInstall"), "crash");
        }
        Scenario::Update => {
            serve("v2", vec![comp("c.a", "2.0"), comp("c.b", "2.0")]);
            a.exec(&download_uri("v2", "DownloadInstall"), "crash");
        }
        Scenario::FailedUpdate => {
            serve("v2", vec![comp("c.a", "2.0").failing_activate()]);
            a.exec(&download_uri("v2", "DownloadInstall"), "crash");
        }
        Scenario::Install => {
            a.exec(&delivered_uri("d1", "Install"), "crash");
        }
        Scenario::RemoveDeployed => {
            a.exec(&deployed_uri("c.a", "Remove"), "crash");
        }
        Scenario::Activate => {
            a.exec(&deployed_uri("c.a", "Activate"), "crash");
        }
    }
}

/// What the device must look like once the operation is over.
fn check_outcome(s: Scenario, a: &Agent) {
    let inv: Vec<(String, String, DcState)> = a
        .client
        .inventory()
        .into_iter()
        .map(|c| (c.id, c.version, c.state))
        .collect();
    let want: Vec<(&str, &str, DcState)> = match s {
        Scenario::DownloadInstall | Scenario::Install => {
            vec![
                ("c.a", "1.0", DcState::Active),
                ("c.b", "1.0", DcState::Active),
            ]
        }
        Scenario::Update => vec![
            ("c.a", "2.0", DcState::Active),
            ("c.b", "2.0", DcState::Active),
        ],
        Scenario::FailedUpdate => {
            vec![
                ("c.a", "1.0", DcState::Active),
                ("c.b", "1.0", DcState::Active),
            ]
        }
        Scenario::RemoveDeployed => vec![("c.b", "1.0", DcState::Active)],
        Scenario::Activate => vec![("c.a", "1.0", DcState::Active)],
    };
    let want: Vec<(String, String, DcState)> = want
        .into_iter()
        .map(|(i, v, st)| (i.to_owned(), v.to_owned(), st))
        .collect();
    assert_eq!(inv, want, "{s:?}");
    let code = a.result("crash");
    let expected = if s == Scenario::FailedUpdate {
        1405
    } else {
        1200
    };
    assert_eq!(code, expected, "{s:?}");
    assert_consistent(a);
}

/// Runs the scenario with a crash at `point`; returns whether the point was
/// reached.
async fn case(s: Scenario, point: &str) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let http = Http::start().await;
    let log = dir.path().join("hooks.log");
    let a = Agent::start(dir.path(), config()).await;
    prepare(s, &a, &http, &log).await;
    a.stop().await;

    let a = Agent::start_with(dir.path(), config(), CrashMode::Halt(point.to_owned())).await;
    trigger(s, &a, &http, &log);
    let mut halted = a.client.halted();
    let reached = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        tokio::select! {
            _ = halted.wait_for(|h| h.is_some()) => true,
            () = a.client.wait_idle() => false,
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{s:?} at {point}: neither halted nor finished"));
    a.stop().await;

    let a = Agent::start(dir.path(), config()).await;
    a.idle().await;
    check_outcome(s, &a);
    // Recovery is done: a further restart changes nothing and reports
    // nothing new.
    let before = a.reports();
    a.stop().await;
    let a = Agent::start(dir.path(), config()).await;
    a.idle().await;
    assert_eq!(a.reports(), before, "{s:?} at {point}");
    check_outcome(s, &a);
    reached
}

async fn matrix(s: Scenario, expected: &[&str]) {
    let mut reached = BTreeSet::new();
    for point in POINTS {
        if case(s, point).await {
            reached.insert(point);
        }
    }
    let expected: BTreeSet<&str> = expected.iter().copied().collect();
    assert_eq!(reached, expected, "{s:?}: crash points reached");
}

const DOWNLOAD_INSTALL: [&str; 13] = [
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_matrix_download_install() {
    matrix(Scenario::DownloadInstall, &DOWNLOAD_INSTALL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_matrix_update() {
    matrix(Scenario::Update, &DOWNLOAD_INSTALL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_matrix_failed_update() {
    matrix(
        Scenario::FailedUpdate,
        &[
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
            "rolling-back",
            "finishing",
            "reported",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_matrix_direct_install() {
    matrix(
        Scenario::Install,
        &[
            "accepted",
            "confirmed",
            "staging",
            "extracting",
            "committing",
            "commit-component",
            "activating",
            "activate-component",
            "finishing",
            "reported",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_matrix_remove() {
    matrix(
        Scenario::RemoveDeployed,
        &["accepted", "confirmed", "removing", "finishing", "reported"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_matrix_activate() {
    matrix(
        Scenario::Activate,
        &[
            "accepted",
            "confirmed",
            "switching",
            "finishing",
            "reported",
        ],
    )
    .await;
}
