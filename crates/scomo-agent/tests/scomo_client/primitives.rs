//! Every primitive, its successes and the failure codes it produces,
//! checked through the tree (Status, State, inventory nodes) and the alert.

use omadm_wire::StatusCode;
use scomo::mo::ALERT_TYPE_OPERATION_COMPLETE;
use scomo_agent::scomo_client::{ConfirmPolicy, ScomoConfig};

use crate::common::*;

struct Setup {
    _dir: tempfile::TempDir,
    http: Http,
    agent: Agent,
    log: std::path::PathBuf,
}

async fn setup_with(cfg: ScomoConfig) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let http = Http::start().await;
    let agent = Agent::start(dir.path(), cfg).await;
    let log = dir.path().join("hooks.log");
    Setup {
        _dir: dir,
        http,
        agent,
        log,
    }
}

async fn setup() -> Setup {
    setup_with(config()).await
}

impl Setup {
    /// Serves a package and creates Download/<name> for it.
    fn offer(&self, name: &str, comps: &[Comp]) -> Vec<u8> {
        let bytes = package(&format!("{name}-pkg"), comps, &self.log);
        let url = self.http.serve_bytes(name, bytes.clone());
        self.agent.add_download(
            name,
            &[
                ("PkgID", &format!("{name}-pkg")),
                ("PkgURL", &url),
                ("Name", "A package"),
                ("EnvType", "archive"),
                ("Ext/SHA256", &sha256_hex(&bytes)),
            ],
        );
        bytes
    }

    /// DownloadInstall(Inactive) of `comps` as Download/<name>.
    async fn install(&self, name: &str, comps: &[Comp], active: bool, corr: &str) -> u16 {
        self.offer(name, comps);
        let op = if active {
            "DownloadInstall"
        } else {
            "DownloadInstallInactive"
        };
        assert_eq!(
            self.agent.exec(&download_uri(name, op), corr),
            StatusCode::ACCEPTED
        );
        self.agent.idle().await;
        self.agent.result(corr)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_only_delivers_the_package() {
    let s = setup().await;
    let bytes = s.offer("p1", &[comp("c.one", "1.0")]);
    assert_eq!(
        s.agent
            .value(&format!("{ROOT}/Download/p1/Status"))
            .as_deref(),
        Some("10")
    );
    assert_eq!(
        s.agent.exec(&download_uri("p1", "Download"), "corr-1"),
        StatusCode::ACCEPTED
    );
    s.agent.idle().await;
    let r = s.agent.report("corr-1");
    assert_eq!(r.items.len(), 1);
    let item = &r.items[0];
    assert_eq!(item.result.0, 1200);
    assert_eq!(
        item.source_uri.as_deref(),
        Some("./SCOMO/Download/p1/Operations/Download")
    );
    assert_eq!(
        item.target_uri.as_deref(),
        Some("./SCOMO/Inventory/Delivered/p1")
    );
    assert_eq!(item.identifier.as_deref(), Some("p1-pkg"));
    // The alert itself: Generic Alert 1226 of the OperationComplete type.
    let pending = s.agent.client.outbox().pending();
    let alert = &pending[0].alert;
    assert_eq!(alert.data.map(|c| c.0), Some(1226));
    assert_eq!(alert.correlator.as_deref(), Some("corr-1"));
    let meta = alert.items[0].meta.as_ref().unwrap();
    assert_eq!(meta.r#type.as_deref(), Some(ALERT_TYPE_OPERATION_COMPLETE));
    let data = alert.items[0].data.as_ref().unwrap().as_str().unwrap();
    assert_eq!(
        data,
        "<ResultCode>1200</ResultCode><Identifier>p1-pkg</Identifier>"
    );
    // Tree: Download back to IDLE, the Delivered entry with copied leaves.
    let d = format!("{ROOT}/Inventory/Delivered/p1");
    assert_eq!(
        s.agent
            .value(&format!("{ROOT}/Download/p1/Status"))
            .as_deref(),
        Some("10")
    );
    assert_eq!(s.agent.value(&format!("{d}/State")).as_deref(), Some("10"));
    assert_eq!(s.agent.value(&format!("{d}/Status")).as_deref(), Some("10"));
    assert_eq!(
        s.agent.value(&format!("{d}/PkgID")).as_deref(),
        Some("p1-pkg")
    );
    assert_eq!(
        s.agent.value(&format!("{d}/Name")).as_deref(),
        Some("A package")
    );
    assert_eq!(
        s.agent.value(&format!("{d}/Ext/SHA256")),
        Some(sha256_hex(&bytes))
    );
    assert!(s.agent.exists(&format!("{d}/Operations/Install")));
    assert_eq!(
        std::fs::read(s.agent.dir.join("scomo/packages/p1.pkg")).unwrap(),
        bytes
    );
    // Nothing installed.
    assert!(s.agent.client.inventory().is_empty());
    // A second Download of the same entry gets a fresh Delivered entry.
    assert_eq!(
        s.agent.exec(&download_uri("p1", "Download"), "corr-2"),
        StatusCode::ACCEPTED
    );
    s.agent.idle().await;
    assert_eq!(
        s.agent.report("corr-2").items[0].target_uri.as_deref(),
        Some("./SCOMO/Inventory/Delivered/p1-2")
    );
    assert_consistent(&s.agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_install_activates_every_component() {
    let s = setup().await;
    let code = s
        .install("p1", &[comp("c.a", "1.0"), comp("c.b", "2.0")], true, "c1")
        .await;
    assert_eq!(code, 1200);
    let r = s.agent.report("c1");
    // One item per resulting component.
    let targets: Vec<_> = r
        .items
        .iter()
        .map(|i| (i.target_uri.clone().unwrap(), i.identifier.clone().unwrap()))
        .collect();
    assert_eq!(
        targets,
        [
            (
                "./SCOMO/Inventory/Deployed/c.a".to_owned(),
                "c.a".to_owned()
            ),
            (
                "./SCOMO/Inventory/Deployed/c.b".to_owned(),
                "c.b".to_owned()
            )
        ]
    );
    for (id, v) in [("c.a", "1.0"), ("c.b", "2.0")] {
        assert_eq!(s.agent.value(&deployed(id, "ID")).as_deref(), Some(id));
        assert_eq!(s.agent.value(&deployed(id, "Version")).as_deref(), Some(v));
        assert_eq!(s.agent.value(&deployed(id, "State")).as_deref(), Some("20"));
        assert_eq!(
            s.agent.value(&deployed(id, "Status")).as_deref(),
            Some("10")
        );
        assert_eq!(
            s.agent.value(&deployed(id, "PkgIDRef")).as_deref(),
            Some("p1-pkg")
        );
        assert!(s.agent.exists(&deployed(id, "Operations/Activate")));
    }
    assert_eq!(
        s.agent
            .value(&format!("{ROOT}/Download/p1/Status"))
            .as_deref(),
        Some("10")
    );
    // DownloadInstall keeps no Delivered entry.
    assert!(s
        .agent
        .children(&format!("{ROOT}/Inventory/Delivered"))
        .is_empty());
    assert_eq!(hook_log(&s.log), ["activate c.a 1.0", "activate c.b 2.0"]);
    assert_consistent(&s.agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_install_inactive_runs_no_hook() {
    let s = setup().await;
    assert_eq!(
        s.install("p1", &[comp("c.a", "1.0")], false, "c1").await,
        1200
    );
    assert_eq!(
        s.agent.value(&deployed("c.a", "State")).as_deref(),
        Some("10")
    );
    assert!(hook_log(&s.log).is_empty());
    assert_consistent(&s.agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_and_install_inactive_from_delivered() {
    let s = setup().await;
    s.offer("p1", &[comp("c.a", "1.0")]);
    s.agent.exec(&download_uri("p1", "Download"), "d1");
    s.agent.idle().await;
    assert_eq!(
        s.agent.exec(&delivered_uri("p1", "InstallInactive"), "i1"),
        StatusCode::ACCEPTED
    );
    s.agent.idle().await;
    assert_eq!(s.agent.result("i1"), 1200);
    let d = format!("{ROOT}/Inventory/Delivered/p1");
    assert_eq!(s.agent.value(&format!("{d}/State")).as_deref(), Some("20"));
    assert_eq!(s.agent.value(&format!("{d}/Status")).as_deref(), Some("10"));
    assert_eq!(
        s.agent.value(&deployed("c.a", "State")).as_deref(),
        Some("10")
    );
    // The package stays: Install again, active this time.
    assert_eq!(
        s.agent.exec(&delivered_uri("p1", "Install"), "i2"),
        StatusCode::ACCEPTED
    );
    s.agent.idle().await;
    assert_eq!(s.agent.result("i2"), 1200);
    assert_eq!(
        s.agent.value(&deployed("c.a", "State")).as_deref(),
        Some("20")
    );
    assert!(s.agent.dir.join("scomo/packages/p1.pkg").exists());
    assert_consistent(&s.agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_delivered_package() {
    let s = setup().await;
    s.offer("p1", &[comp("c.a", "1.0")]);
    s.agent.exec(&download_uri("p1", "Download"), "d1");
    s.agent.idle().await;
    assert_eq!(
        s.agent.exec(&delivered_uri("p1", "Remove"), "r1"),
        StatusCode::ACCEPTED
    );
    s.agent.idle().await;
    let r = s.agent.report("r1");
    assert_eq!(r.items[0].result.0, 1200);
    assert_eq!(r.items[0].target_uri, None);
    assert_eq!(r.items[0].identifier.as_deref(), Some("p1-pkg"));
    assert!(!s.agent.exists(&format!("{ROOT}/Inventory/Delivered/p1")));
    assert!(!s.agent.dir.join("scomo/packages/p1.pkg").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activate_and_deactivate() {
    let s = setup().await;
    s.install("p1", &[comp("c.a", "1.0")], false, "c1").await;
    assert_eq!(
        s.agent.exec(&deployed_uri("c.a", "Activate"), "a1"),
        StatusCode::ACCEPTED
    );
    s.agent.idle().await;
    let r = s.agent.report("a1");
    assert_eq!(r.items[0].result.0, 1200);
    assert_eq!(
        r.items[0].target_uri.as_deref(),
        Some("./SCOMO/Inventory/Deployed/c.a")
    );
    assert_eq!(
        s.agent.value(&deployed("c.a", "State")).as_deref(),
        Some("20")
    );
    assert_eq!(
        s.agent.value(&deployed("c.a", "Status")).as_deref(),
        Some("10")
    );
    // Activate of an active component: success, no change, no hook.
    s.agent.exec(&deployed_uri("c.a", "Activate"), "a2");
    s.agent.idle().await;
    assert_eq!(s.agent.result("a2"), 1200);
    s.agent.exec(&deployed_uri("c.a", "Deactivate"), "x1");
    s.agent.idle().await;
    assert_eq!(s.agent.result("x1"), 1200);
    assert_eq!(
        s.agent.value(&deployed("c.a", "State")).as_deref(),
        Some("10")
    );
    assert_eq!(hook_log(&s.log), ["activate c.a 1.0", "deactivate c.a 1.0"]);
    assert_consistent(&s.agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activate_and_deactivate_failures() {
    let s = setup().await;
    s.install(
        "p1",
        &[comp("c.bad", "1.0").failing_activate()],
        false,
        "c1",
    )
    .await;
    s.agent.exec(&deployed_uri("c.bad", "Activate"), "a1");
    s.agent.idle().await;
    assert_eq!(s.agent.result("a1"), 1409);
    assert_eq!(
        s.agent.report("a1").items[0].identifier.as_deref(),
        Some("c.bad")
    );
    assert_eq!(
        s.agent.value(&deployed("c.bad", "Status")).as_deref(),
        Some("40")
    );
    assert_eq!(
        s.agent.value(&deployed("c.bad", "State")).as_deref(),
        Some("10")
    );

    s.install(
        "p2",
        &[comp("c.stuck", "1.0").failing_deactivate()],
        true,
        "c2",
    )
    .await;
    s.agent.exec(&deployed_uri("c.stuck", "Deactivate"), "x1");
    s.agent.idle().await;
    assert_eq!(s.agent.result("x1"), 1410);
    assert_eq!(
        s.agent.value(&deployed("c.stuck", "Status")).as_deref(),
        Some("60")
    );
    assert_eq!(
        s.agent.value(&deployed("c.stuck", "State")).as_deref(),
        Some("20")
    );
    // Removing it needs it stopped: remove fails too.
    s.agent.exec(&deployed_uri("c.stuck", "Remove"), "r1");
    s.agent.idle().await;
    assert_eq!(s.agent.result("r1"), 1408);
    assert_eq!(
        s.agent.value(&deployed("c.stuck", "Status")).as_deref(),
        Some("20")
    );
    assert_consistent(&s.agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_deployed_component() {
    let s = setup().await;
    s.install("p1", &[comp("c.a", "1.0"), comp("c.b", "1.0")], true, "c1")
        .await;
    assert_eq!(
        s.agent.exec(&deployed_uri("c.a", "Remove"), "r1"),
        StatusCode::ACCEPTED
    );
    s.agent.idle().await;
    let r = s.agent.report("r1");
    assert_eq!(r.items[0].result.0, 1200);
    assert_eq!(r.items[0].identifier.as_deref(), Some("c.a"));
    assert_eq!(r.items[0].target_uri, None);
    assert!(!s.agent.exists(&deployed("c.a", "ID")));
    assert!(!s.agent.client.component_dir("c.a").exists());
    assert!(s.agent.client.component_dir("c.b").exists());
    assert!(hook_log(&s.log).contains(&"deactivate c.a 1.0".to_owned()));
    assert_consistent(&s.agent);
    // The component is gone: the primitive node is gone with it (404).
    assert_eq!(
        s.agent.exec(&deployed_uri("c.a", "Remove"), "r2"),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_replaces_the_old_version() {
    let s = setup().await;
    s.install("v1", &[comp("c.a", "1.0")], true, "c1").await;
    assert_eq!(
        s.install("v2", &[comp("c.a", "2.0")], true, "c2").await,
        1200
    );
    assert_eq!(
        s.agent.value(&deployed("c.a", "Version")).as_deref(),
        Some("2.0")
    );
    assert_eq!(
        s.agent.value(&deployed("c.a", "PkgIDRef")).as_deref(),
        Some("v2-pkg")
    );
    assert_eq!(
        s.agent.value(&deployed("c.a", "State")).as_deref(),
        Some("20")
    );
    assert_eq!(
        hook_log(&s.log),
        ["activate c.a 1.0", "deactivate c.a 1.0", "activate c.a 2.0"]
    );
    assert_consistent(&s.agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_update_brings_the_old_version_back() {
    let s = setup().await;
    s.install(
        "v1",
        &[comp("c.a", "1.0"), comp("c.keep", "1.0")],
        true,
        "c1",
    )
    .await;
    let code = s
        .install(
            "v2",
            &[comp("c.a", "2.0").failing_activate(), comp("c.new", "1.0")],
            true,
            "c2",
        )
        .await;
    assert_eq!(code, 1405);
    assert_eq!(s.agent.report("c2").items[0].target_uri, None);
    assert_eq!(
        s.agent.value(&deployed("c.a", "Version")).as_deref(),
        Some("1.0")
    );
    assert_eq!(
        s.agent.value(&deployed("c.a", "State")).as_deref(),
        Some("20")
    );
    // The fresh component of the failed package is not left behind.
    assert!(!s.agent.exists(&deployed("c.new", "ID")));
    assert_eq!(
        s.agent
            .value(&format!("{ROOT}/Download/v2/Status"))
            .as_deref(),
        Some("70")
    );
    let log = hook_log(&s.log);
    assert_eq!(
        log.last().map(String::as_str),
        Some("activate c.a 1.0"),
        "{log:?}"
    );
    assert!(log.contains(&"activate-fail c.a 2.0".to_owned()));
    assert_consistent(&s.agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_confirmation() {
    let mut cfg = config();
    cfg.confirm.default = ConfirmPolicy::Command;
    cfg.confirm.command = vec![
        "/bin/sh".into(),
        "-c".into(),
        "[ \"$SCOMO_PKG_ID\" = yes-pkg ]".into(),
    ];
    cfg.confirm
        .operations
        .insert("Deactivate".into(), ConfirmPolicy::Decline);
    let s = setup_with(cfg).await;
    assert_eq!(
        s.install("no", &[comp("c.n", "1.0")], true, "c1").await,
        1401
    );
    assert_eq!(
        s.agent
            .value(&format!("{ROOT}/Download/no/Status"))
            .as_deref(),
        Some("20")
    );
    // Nothing was even fetched.
    assert!(s.http.seen_path("/pkg/no").is_empty());
    assert_eq!(
        s.install("yes", &[comp("c.y", "1.0")], true, "c2").await,
        1200
    );
    s.agent.exec(&deployed_uri("c.y", "Deactivate"), "x1");
    s.agent.idle().await;
    assert_eq!(s.agent.result("x1"), 1401);
    assert_eq!(
        s.agent.value(&deployed("c.y", "State")).as_deref(),
        Some("20")
    );
    assert_consistent(&s.agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_entries_refuse_a_second_operation() {
    let s = setup().await;
    let bytes = package("p1-pkg", &[comp("c.a", "1.0")], &s.log);
    s.http.serve(
        "p1",
        Served {
            body: bytes,
            gate_after: Some(10),
            ..Served::default()
        },
    );
    s.agent.add_download(
        "p1",
        &[("PkgID", "p1-pkg"), ("PkgURL", &s.http.url("/pkg/p1"))],
    );
    assert_eq!(
        s.agent.exec(&download_uri("p1", "DownloadInstall"), "c1"),
        StatusCode::ACCEPTED
    );
    // Busy from the moment the Exec is accepted, and showing it.
    assert_eq!(
        s.agent
            .value(&format!("{ROOT}/Download/p1/Status"))
            .as_deref(),
        Some("30")
    );
    assert_eq!(
        s.agent.exec(&download_uri("p1", "Download"), "c2"),
        StatusCode::CONFLICT
    );
    assert_eq!(
        s.agent
            .status(replace(&format!("{ROOT}/Download/p1/PkgURL"), "http://x/")),
        StatusCode::CONFLICT
    );
    assert_eq!(
        s.agent.status(delete(&format!("{ROOT}/Download/p1"))),
        StatusCode::CONFLICT
    );
    s.http.gate.notify_one();
    s.agent.idle().await;
    assert_eq!(s.agent.result("c1"), 1200);
    assert!(s
        .agent
        .reports()
        .iter()
        .all(|r| r.correlator.as_deref() != Some("c2")));
    // Free again.
    assert_eq!(
        s.agent.status(delete(&format!("{ROOT}/Download/p1"))),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_env_type_is_1413() {
    let s = setup().await;
    let url = s.http.serve_bytes("p1", b"whatever".to_vec());
    s.agent.add_download(
        "p1",
        &[("PkgID", "p1"), ("PkgURL", &url), ("EnvType", "flatpak")],
    );
    s.agent.exec(&download_uri("p1", "DownloadInstall"), "c1");
    s.agent.idle().await;
    assert_eq!(s.agent.result("c1"), 1413);
    assert_eq!(
        s.agent
            .value(&format!("{ROOT}/Download/p1/Status"))
            .as_deref(),
        Some("70")
    );
    assert!(s.http.seen_path("/pkg/p1").is_empty(), "nothing downloaded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_space_is_refused_before_writing() {
    let cfg = ScomoConfig {
        reserved_space_bytes: u64::MAX / 2,
        ..config()
    };
    let s = setup_with(cfg).await;
    assert_eq!(
        s.install("p1", &[comp("c.a", "1.0")], true, "c1").await,
        1404
    );
    assert_eq!(
        s.agent
            .value(&format!("{ROOT}/Download/p1/Status"))
            .as_deref(),
        Some("20")
    );
    assert!(names(&s.agent.dir.join("scomo/downloads")).is_empty());
    // A pushed package that does not fit: 420 on the Data replace.
    let bytes = package("d-pkg", &[comp("c.d", "1.0")], &s.log);
    let st = s.agent.push_package("d1", &[("PkgID", "d-pkg")], &bytes);
    assert_eq!(st[0], StatusCode::ATOMIC_FAILED, "{st:?}");
    assert!(st.contains(&StatusCode::DEVICE_FULL), "{st:?}");
    assert_consistent(&s.agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_preconditions_and_access_rules() {
    let s = setup().await;
    // No PkgURL: 412, no operation.
    s.agent.add_download("p1", &[("PkgID", "p1")]);
    assert_eq!(
        s.agent.exec(&download_uri("p1", "Download"), "c1"),
        StatusCode::INCOMPLETE_COMMAND
    );
    // A Delivered entry without Data: Install is 412.
    assert_eq!(
        s.agent
            .status(add_node(&format!("{ROOT}/Inventory/Delivered/d1"))),
        StatusCode::OK
    );
    assert_eq!(
        s.agent.exec(&delivered_uri("d1", "Install"), "c2"),
        StatusCode::INCOMPLETE_COMMAND
    );
    // Device-written nodes.
    assert_eq!(
        s.agent
            .status(replace(&format!("{ROOT}/Download/p1/Status"), "40")),
        StatusCode::COMMAND_NOT_ALLOWED
    );
    assert_eq!(
        s.agent.status(replace(
            &format!("{ROOT}/Inventory/Delivered/d1/State"),
            "20"
        )),
        StatusCode::COMMAND_NOT_ALLOWED
    );
    assert_eq!(
        s.agent
            .status(add_node(&format!("{ROOT}/Inventory/Deployed/evil"))),
        StatusCode::COMMAND_NOT_ALLOWED
    );
    assert_eq!(
        s.agent
            .status(get(&format!("{ROOT}/Inventory/Delivered/d1/Data"))),
        StatusCode::COMMAND_NOT_ALLOWED
    );
    assert_eq!(
        s.agent.status(delete(&format!("{ROOT}/Inventory"))),
        StatusCode::COMMAND_NOT_ALLOWED
    );
    // The MO id.
    let t = s.agent.tree_snapshot();
    assert_eq!(
        t.node(ROOT).unwrap().mime_type(),
        "urn:oma:mo:oma-scomo:1.0"
    );
    assert!(s.agent.reports().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synchronous_operations_answer_in_the_exec() {
    let cfg = ScomoConfig {
        sync_operations: vec![
            "Activate".into(),
            "Deactivate".into(),
            "RemoveDeployed".into(),
        ],
        ..config()
    };
    let s = setup_with(cfg).await;
    s.install(
        "p1",
        &[comp("c.a", "1.0"), comp("c.bad", "1.0").failing_activate()],
        false,
        "c1",
    )
    .await;
    assert_eq!(
        s.agent.exec(&deployed_uri("c.a", "Activate"), "a1"),
        StatusCode::OK
    );
    assert_eq!(
        s.agent.value(&deployed("c.a", "State")).as_deref(),
        Some("20")
    );
    assert_eq!(
        s.agent.exec(&deployed_uri("c.bad", "Activate"), "a2"),
        StatusCode(1409)
    );
    assert_eq!(
        s.agent.value(&deployed("c.bad", "Status")).as_deref(),
        Some("40")
    );
    assert_eq!(
        s.agent.exec(&deployed_uri("c.a", "Remove"), "r1"),
        StatusCode::OK
    );
    assert!(!s.agent.exists(&deployed("c.a", "ID")));
    // No alert for synchronous results (only the install's).
    assert_eq!(s.agent.reports().len(), 1);
    assert_consistent(&s.agent);
}
