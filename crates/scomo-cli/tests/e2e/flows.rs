//! The flows of the SCOMO architecture (OMA-AD-SCOMO §5.4) between real
//! processes: `scomo server`, `scomo agent` (one management round with
//! `--once`, or a daemon woken by package 0) and `scomo admin`. Each test
//! asserts on the server's job and inventory and on the agent's files.
//! Encodings and auth schemes vary across the tests: XML and WBXML, basic,
//! MD5 and HMAC.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{agent_once, enc, free_udp_port, AgentDaemon, Server};
use crate::pkg::{comp, package, Comp};

/// A device: its id, data directory, notification address and the agent
/// flags it runs with.
struct Device {
    id: String,
    dir: PathBuf,
    notify: String,
    flags: Vec<String>,
}

impl Device {
    /// Provisions `id` with `auth` (and a package-0 address on a free UDP
    /// port) and prepares agent flags for `encoding`.
    fn new(server: &Server, root: &Path, id: &str, auth: &str, encoding: &str) -> Device {
        let notify = format!("udp://127.0.0.1:{}", free_udp_port());
        server.provision(id, &["--auth", auth, "--notify", &notify]);
        Device {
            id: id.to_owned(),
            dir: root.join(id.replace(':', "_")),
            notify,
            flags: vec![
                "--auth".into(),
                auth.into(),
                "--encoding".into(),
                encoding.into(),
            ],
        }
    }

    fn with(mut self, flag: &str, value: &str) -> Device {
        self.flags.push(flag.into());
        self.flags.push(value.into());
        self
    }

    /// `scomo agent --once`: a client-initiated session (Alert 1201), the
    /// operations it started, and the session reporting their results.
    fn once(&self, server: &Server) {
        let flags: Vec<&str> = self.flags.iter().map(String::as_str).collect();
        agent_once(&self.id, &server.dm_url(), &self.dir, &flags);
    }

    /// A daemon listening for package 0 at the device's address.
    fn daemon(&self, server: &Server) -> AgentDaemon {
        AgentDaemon::start_with(
            &self.id,
            &server.dm_url(),
            &self.dir,
            &self.notify,
            &self.flags,
        )
    }

    fn component_dir(&self, id: &str) -> PathBuf {
        self.dir.join("components").join(id)
    }
}

/// Relative paths of the files under `dir`.
fn files_under(dir: &Path) -> BTreeSet<String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else if let Ok(rel) = p.strip_prefix(base) {
                out.insert(rel.display().to_string());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

fn upload(server: &Server, dir: &Path, pkg_id: &str, comps: &[Comp]) -> Value {
    let file = dir.join(format!("{pkg_id}.tar.gz"));
    std::fs::write(&file, package(pkg_id, comps)).unwrap();
    server.admin(&["package", "upload", file.to_str().unwrap()])
}

fn job_create(server: &Server, args: &[&str]) -> Value {
    let mut a = vec!["job", "create"];
    a.extend_from_slice(args);
    server.admin(&a)
}

fn job(server: &Server, id: &Value) -> Value {
    server.admin(&["job", "show", &id.to_string()])
}

fn inventory(server: &Server, device: &str) -> Value {
    server.admin(&["inventory", "--device", device])
}

fn deployed<'a>(inv: &'a Value, id: &str) -> Option<&'a Value> {
    inv["deployed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id)
}

/// SCOMO alerts the device sent for job `job`.
fn reports(server: &Server, job: &Value) -> usize {
    let j = self::job(server, job);
    j["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| {
            h["message"]
                .as_str()
                .unwrap_or("")
                .starts_with("the device reported")
        })
        .count()
}

/// Waits on the server's event stream for job events of `device` until
/// `done` holds for one; returns that event.
async fn wait_for_job_event(
    server: &Server,
    device: &str,
    mut resp: reqwest::Response,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let mut buf = String::new();
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let data: String = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .collect();
                if let Ok(ev) = serde_json::from_str::<Value>(data.trim()) {
                    if ev["kind"] == "job" && done(&ev) {
                        return ev;
                    }
                }
            }
            let chunk = resp.chunk().await.unwrap().expect("event stream open");
            buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no such job event for {device}:\n{}", server.log()))
}

async fn events(server: &Server, device: &str) -> reqwest::Response {
    let r = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/events?kinds=job&device={}",
            server.url,
            enc(device)
        ))
        .bearer_auth(&server.token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    r
}

/// 5.4.1.1 (server-initiated, the server picks the component, delivers it
/// over DM as a Large Object across several messages) and 5.4.1.3 (it
/// reads the inventory first and picks from it). XML, MD5.
#[tokio::test]
async fn server_initiated_catalog_pick_direct_delivery_in_several_messages() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::start(&root.path().join("server"), &[]);
    // 48 KB of incompressible payload; the device takes 8 KB messages.
    upload(
        &server,
        root.path(),
        "big-1",
        &[comp("big", "1.0").with_blob(48 * 1024)],
    );
    server.admin(&[
        "catalog",
        "add",
        "--name",
        "big for all",
        "--package",
        "big-1",
        "--delivery",
        "direct",
    ]);
    let dev =
        Device::new(&server, root.path(), "IMEI:901", "md5", "xml").with("--max-msg-size", "8192");
    let _daemon = dev.daemon(&server);
    let stream = events(&server, &dev.id).await;
    server.admin(&["device", "notify", &dev.id]);
    let ev = wait_for_job_event(&server, &dev.id, stream, |e| {
        e["state"] == "succeeded" || e["state"] == "failed" || e["state"] == "mismatch"
    })
    .await;
    assert_eq!(ev["state"], "succeeded", "{ev}\n{}", server.log());
    let j = job(&server, &ev["id"]);
    assert_eq!(j["origin"], "catalog");
    assert_eq!(j["delivery"], "direct");
    let inv = inventory(&server, &dev.id);
    assert_eq!(deployed(&inv, "big").unwrap()["state"], "active", "{inv}");
    // The inventory was read before the catalog picked the package.
    let created = j["created_at"].as_str().unwrap();
    assert!(j["history"][0]["message"]
        .as_str()
        .unwrap()
        .contains("catalog"));
    assert!(inv["read_at"].as_str().unwrap() >= created);
    // On the device: the component's files, activated.
    let files = files_under(&dev.component_dir("big"));
    assert_eq!(
        files,
        comp("big", "1.0").with_blob(1).files(true),
        "{files:?}"
    );
    // The package went across several messages of the server-initiated session.
    let (_, sessions) = sessions(&server, &dev.id).await;
    let first = &sessions.as_array().unwrap().last().unwrap();
    assert_eq!(first["initiation"], 1200, "{sessions}");
    assert!(
        sessions
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["messages_out"].as_u64().unwrap() >= 6),
        "{sessions}"
    );
}

async fn sessions(server: &Server, device: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/devices/{}/sessions",
            server.url,
            enc(device)
        ))
        .bearer_auth(&server.token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// 5.4.1.2 / 5.4.2.2 / 5.4.2.3: the device initiates the session (Alert
/// 1201); the server reads its inventory and gives it what the catalog
/// selects, over DM or by alternate download. WBXML, HMAC.
#[tokio::test]
async fn device_initiated_session_receives_what_the_catalog_selects() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::start(&root.path().join("server"), &[]);
    upload(&server, root.path(), "tool-2", &[comp("tool", "2.0")]);
    for (i, delivery) in ["direct", "http", "dlota"].into_iter().enumerate() {
        let man = format!("maker-{delivery}");
        server.admin(&[
            "catalog",
            "add",
            "--name",
            &man,
            "--package",
            "tool-2",
            "--delivery",
            delivery,
            "--man",
            &man,
        ]);
        let dev = Device::new(
            &server,
            root.path(),
            &format!("IMEI:90{i}2"),
            "hmac",
            "wbxml",
        )
        .with("--man", &man);
        dev.once(&server);
        let jobs = server.admin(&["job", "list", "--device", &dev.id]);
        let jobs = jobs.as_array().unwrap();
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        assert_eq!(jobs[0]["state"], "succeeded", "{jobs:?}\n{}", server.log());
        assert_eq!(jobs[0]["origin"], "catalog");
        assert_eq!(jobs[0]["delivery"], delivery);
        assert!(dev.component_dir("tool").join("ACTIVE").exists());
        // Up to date: another round brings nothing new.
        dev.once(&server);
        let again = server.admin(&["job", "list", "--device", &dev.id]);
        assert_eq!(again.as_array().unwrap().len(), 1);
    }
}

/// 5.4.1.4 / 5.4.2.1–5.4.2.4 / 5.4.3.3: the external management
/// infrastructure asks (REST); the server chooses alternate download; the
/// device, woken by package 0, fetches from `/dl` (plain HTTP and with a
/// download descriptor) and acknowledges. WBXML, basic.
#[tokio::test]
async fn rest_request_alternate_download_http_and_dlota() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::start(&root.path().join("server"), &[]);
    upload(&server, root.path(), "svc-1", &[comp("svc", "1.0")]);
    for (i, delivery) in ["http", "dlota"].into_iter().enumerate() {
        let dev = Device::new(
            &server,
            root.path(),
            &format!("IMEI:91{i}"),
            "basic",
            "wbxml",
        );
        let _daemon = dev.daemon(&server);
        let j = job_create(
            &server,
            &[
                "--device",
                &dev.id,
                "--op",
                "DownloadInstall",
                "--package",
                "svc-1",
                "--delivery",
                delivery,
                "--wait",
            ],
        );
        assert_eq!(j["state"], "succeeded", "{delivery}: {j}\n{}", server.log());
        assert!(
            j["downloads"][0]["bytes_served"].as_u64().unwrap() > 0,
            "{j}"
        );
        if delivery == "dlota" {
            assert_eq!(j["downloads"][0]["notify_status"], 900, "{j}");
        }
        assert!(dev.component_dir("svc").join("ACTIVE").exists());
        assert_eq!(reports(&server, &j["id"]), 1, "reported once");
    }
}

/// 5.4.3.1 / 5.4.3.2 / 5.4.3.4: every operation invoked by the server and
/// reported by the device, picked up by the device's own sessions (queued
/// work); combined operations reported once per primitive. XML, HMAC.
#[tokio::test]
async fn every_operation_and_the_combined_ones() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::start(&root.path().join("server"), &[]);
    upload(&server, root.path(), "app-1", &[comp("app", "1.0")]);
    upload(&server, root.path(), "app-2", &[comp("app", "2.0")]);
    upload(&server, root.path(), "lib-1", &[comp("lib", "1.0")]);
    let dev = Device::new(&server, root.path(), "IMEI:920", "hmac", "xml");
    let run = |args: &[&str]| -> Value {
        let mut a = vec!["--device", dev.id.as_str()];
        a.extend_from_slice(args);
        let j = job_create(&server, &a);
        dev.once(&server);
        let j = job(&server, &j["id"]);
        assert_eq!(j["state"], "succeeded", "{args:?}: {j}\n{}", server.log());
        j
    };
    let state_of = |c: &str| {
        let inv = inventory(&server, &dev.id);
        deployed(&inv, c).map(|e| (e["version"].clone(), e["state"].clone()))
    };
    // Combined: DownloadInstallInactive then Activate — two primitives.
    let j = run(&[
        "--op",
        "DownloadInstallInactive",
        "--package",
        "app-1",
        "--then",
        "Activate",
    ]);
    assert_eq!(reports(&server, &j["id"]), 2);
    assert_eq!(state_of("app"), Some(("1.0".into(), "active".into())));
    assert!(dev.component_dir("app").join("ACTIVE").exists());
    run(&["--op", "Deactivate", "--component", "app"]);
    assert_eq!(state_of("app"), Some(("1.0".into(), "inactive".into())));
    assert!(!dev.component_dir("app").join("ACTIVE").exists());
    run(&["--op", "Activate", "--component", "app"]);
    assert!(dev.component_dir("app").join("ACTIVE").exists());
    // Update-and-Activate: the new version installed inactive, then activated.
    let j = run(&["--op", "Update", "--package", "app-2", "--then", "Activate"]);
    assert_eq!(j["steps"].as_array().unwrap().len(), 2);
    assert_eq!(state_of("app"), Some(("2.0".into(), "active".into())));
    assert!(dev.component_dir("app").join("only-2.0").exists());
    // Download, then Install from Inventory/Delivered, then Remove both.
    run(&["--op", "Download", "--package", "lib-1"]);
    assert_eq!(state_of("lib"), None);
    run(&["--op", "Install", "--package", "lib-1"]);
    assert_eq!(state_of("lib"), Some(("1.0".into(), "active".into())));
    run(&["--op", "Remove", "--component", "lib"]);
    assert_eq!(state_of("lib"), None);
    assert!(!dev.component_dir("lib").exists());
    run(&["--op", "Remove", "--package", "lib-1"]);
    let inv = inventory(&server, &dev.id);
    assert!(
        !inv["delivered"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["id"] == "lib-1"),
        "{inv}"
    );
    // The inventory on demand.
    let out = std::process::Command::new(crate::harness::BIN)
        .args([
            "admin",
            "--server",
            &server.url,
            "inventory",
            "--device",
            &dev.id,
        ])
        .env("SCOMO_TOKEN", &server.token)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("app") && text.contains("2.0") && text.contains("active"),
        "{text}"
    );
}

/// A failure on the device becomes the job's outcome, and `--wait` exits 1
/// naming it.
#[tokio::test]
async fn a_failed_job_makes_wait_fail_with_the_reason() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::start(&root.path().join("server"), &[]);
    let dev = Device::new(&server, root.path(), "IMEI:930", "md5", "xml");
    let _daemon = dev.daemon(&server);
    let out = server.admin_raw(&[
        "job",
        "create",
        "--device",
        &dev.id,
        "--op",
        "Activate",
        "--component",
        "ghost",
        "--wait",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ended failed") && err.contains("ghost"),
        "{err}"
    );
}

/// A campaign over three devices woken by package 0: the first stage (one
/// device) succeeds, the second opens, every device ends with the package,
/// and `campaign watch` shows the progress and exits 0. XML, MD5.
#[tokio::test]
async fn a_staged_campaign_installs_on_every_device() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::start(&root.path().join("server"), &[]);
    upload(&server, root.path(), "fleet-1", &[comp("fleet", "1.0")]);
    let devices: Vec<Device> = (0..3)
        .map(|i| Device::new(&server, root.path(), &format!("IMEI:96{i}"), "md5", "xml"))
        .collect();
    let _daemons: Vec<AgentDaemon> = devices.iter().map(|d| d.daemon(&server)).collect();
    let ids: Vec<&str> = devices.iter().map(|d| d.id.as_str()).collect();
    let c = server.admin(&[
        "campaign",
        "create",
        "--name",
        "fleet 1.0",
        "--op",
        "DownloadInstall",
        "--package",
        "fleet-1",
        "--devices",
        &ids.join(","),
        "--stage",
        "1",
        "--stage",
        "100%",
        "--error-threshold",
        "device_fault:0:1:abort",
        "--rate",
        "50",
    ]);
    let id = c["id"].to_string();
    let out = std::process::Command::new(crate::harness::BIN)
        .args(["admin", "--server", &server.url, "campaign", "watch", &id])
        .env("SCOMO_TOKEN", &server.token)
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}\n{}", server.log());
    assert!(
        shown.lines().last().unwrap_or("").starts_with("completed") && shown.contains("3/3: 3 ok"),
        "{shown}"
    );
    let c = server.admin(&["campaign", "show", &id]);
    let t = &c["progress"]["totals"];
    assert_eq!(
        (t["devices"].as_u64(), t["succeeded"].as_u64()),
        (Some(3), Some(3)),
        "{c}"
    );
    let m = server.admin(&["campaign", "devices", &id]);
    let stages: Vec<u64> = m
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["stage"].as_u64().unwrap())
        .collect();
    assert_eq!(stages, [0, 1, 1], "{m}");
    for d in &devices {
        assert!(d.component_dir("fleet").join("ACTIVE").exists(), "{}", d.id);
    }
}
