//! SCOMO jobs end to end: the REST API creates them, the real agent
//! (in-process, over HTTP) carries them out, the server checks the result
//! against the inventory it reads back.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use scomo_agent::Agent;
use serde_json::{json, Value};

use crate::agent::agent_config;
use crate::harness::{enc, Builder, TestApp};
use crate::packages::{noise, upload};

/// A package `pkg` (version `version`) with one component `comp` at
/// `version`, for `env` (the agent's archive environment by default).
pub(crate) fn package(pkg: &str, comp: &str, version: &str, env: &str) -> Vec<u8> {
    let manifest = format!(
        "[package]\nid = \"{pkg}\"\nname = \"Pkg {pkg}\"\nenv_type = \"{env}\"\nversion = \"{version}\"\n\n\
         [[component]]\nid = \"{comp}\"\nname = \"Component {comp}\"\nversion = \"{version}\"\ndir = \"svc\"\n"
    );
    crate::packages::targz(Some(&manifest), &noise(3000, 7))
}

pub(crate) async fn upload_ok(app: &TestApp, body: Vec<u8>) -> Value {
    let (status, v) = upload(app, body, "").await;
    assert!(status == 201 || status == 200, "{status} {v}");
    v
}

async fn create(app: &TestApp, body: Value) -> Value {
    let (status, v) = app.post("/jobs", body).await;
    assert_eq!(status, 201, "{v}");
    v
}

pub(crate) async fn job(app: &TestApp, id: &Value) -> Value {
    let (status, v) = app.get(&format!("/jobs/{id}")).await;
    assert_eq!(status, 200, "{v}");
    v
}

async fn inventory(app: &TestApp, device: &str) -> Value {
    let (status, v) = app
        .get(&format!("/devices/{}/inventory", enc(device)))
        .await;
    assert_eq!(status, 200, "{v}");
    v
}

/// The deployed entry for component `id`, if any.
fn deployed<'a>(inv: &'a Value, id: &str) -> Option<&'a Value> {
    inv["deployed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id)
}

pub(crate) async fn agent(app: &TestApp, id: &str, dir: &Path) -> Agent {
    app.provision(id, json!({})).await;
    Agent::new(agent_config(app, id, dir)).unwrap()
}

/// Runs sessions until the job is over (each `run_once` is a session plus,
/// when the agent has an alert pending, the session that delivers it).
pub(crate) async fn run_job(app: &TestApp, agent: &Agent, id: &Value) -> Value {
    for _ in 0..4 {
        let report = agent.run_once().await.unwrap();
        assert!(report.completed(), "{report:?}");
        let j = job(app, id).await;
        if j["finished"] == true {
            return j;
        }
    }
    panic!(
        "job not finished after four sessions: {}",
        job(app, id).await
    );
}

#[tokio::test]
async fn download_install_by_http_dlota_and_direct_delivery() {
    let app = TestApp::start().await;
    upload_ok(&app, package("hello-1.0", "hello", "1.0", "archive")).await;
    for (i, delivery) in ["http", "dlota", "direct"].into_iter().enumerate() {
        let id = format!("IMEI:40{i}");
        let dir = tempfile::tempdir().unwrap();
        let agent = agent(&app, &id, dir.path()).await;
        let j = create(
            &app,
            json!({"device": id, "op": "DownloadInstall", "package": "hello-1.0", "delivery": delivery}),
        )
        .await;
        assert_eq!(j["state"], "queued", "{j}");
        let j = run_job(&app, &agent, &j["id"]).await;
        assert_eq!(j["state"], "succeeded", "{delivery}: {j}");
        assert_eq!(j["result_code"], 1200, "{j}");
        let inv = inventory(&app, &id).await;
        let hello = deployed(&inv, "hello").expect("deployed");
        assert_eq!(hello["version"], "1.0", "{inv}");
        assert_eq!(hello["state"], "active", "{inv}");
        // On the device: the component's files are installed.
        assert!(
            agent
                .scomo()
                .component_dir("hello")
                .join("payload.bin")
                .is_file(),
            "{delivery}: component files missing"
        );
        if delivery != "direct" {
            let dl = &j["downloads"][0];
            assert!(dl["bytes_served"].as_u64().unwrap() > 0, "{j}");
        }
        if delivery == "dlota" {
            assert_eq!(j["downloads"][0]["notify_status"], 900, "{j}");
        }
    }
}

#[tokio::test]
async fn every_operation_through_one_component_lifecycle() {
    let app = TestApp::start().await;
    upload_ok(&app, package("app-1", "app", "1.0", "archive")).await;
    upload_ok(&app, package("app-2", "app", "2.0", "archive")).await;
    let dir = tempfile::tempdir().unwrap();
    let dev = "IMEI:410";
    let agent = agent(&app, dev, dir.path()).await;

    let steps: &[(Value, &str, &str)] = &[
        (
            json!({"op": "DownloadInstallInactive", "package": "app-1"}),
            "1.0",
            "inactive",
        ),
        (
            json!({"op": "Activate", "component": "app"}),
            "1.0",
            "active",
        ),
        (
            json!({"op": "Deactivate", "component": "app"}),
            "1.0",
            "inactive",
        ),
        (json!({"op": "Update", "package": "app-2"}), "2.0", "active"),
    ];
    for (body, version, state) in steps {
        let mut body = body.clone();
        body["device"] = json!(dev);
        let j = create(&app, body.clone()).await;
        let j = run_job(&app, &agent, &j["id"]).await;
        assert_eq!(j["state"], "succeeded", "{body}: {j}");
        let inv = inventory(&app, dev).await;
        let app_entry = deployed(&inv, "app").expect("deployed");
        assert_eq!(app_entry["version"], *version, "{body}: {inv}");
        assert_eq!(app_entry["state"], *state, "{body}: {inv}");
    }

    // Download only, then Install from Inventory/Delivered.
    upload_ok(&app, package("tool-1", "tool", "1.0", "archive")).await;
    let j = create(
        &app,
        json!({"device": dev, "op": "Download", "package": "tool-1"}),
    )
    .await;
    let j = run_job(&app, &agent, &j["id"]).await;
    assert_eq!(j["state"], "succeeded", "{j}");
    let inv = inventory(&app, dev).await;
    assert!(
        inv["delivered"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["id"] == "tool-1"),
        "{inv}"
    );
    assert!(deployed(&inv, "tool").is_none(), "{inv}");
    let j = create(
        &app,
        json!({"device": dev, "op": "Install", "package": "tool-1"}),
    )
    .await;
    let j = run_job(&app, &agent, &j["id"]).await;
    assert_eq!(j["state"], "succeeded", "{j}");
    assert!(deployed(&inventory(&app, dev).await, "tool").is_some());

    // Remove the component, then the delivered package.
    let j = create(
        &app,
        json!({"device": dev, "op": "Remove", "component": "app"}),
    )
    .await;
    let j = run_job(&app, &agent, &j["id"]).await;
    assert_eq!(j["state"], "succeeded", "{j}");
    assert!(deployed(&inventory(&app, dev).await, "app").is_none());
    assert!(!agent.scomo().component_dir("app").exists());
    let j = create(
        &app,
        json!({"device": dev, "op": "Remove", "package": "tool-1"}),
    )
    .await;
    let j = run_job(&app, &agent, &j["id"]).await;
    assert_eq!(j["state"], "succeeded", "{j}");
    let inv = inventory(&app, dev).await;
    assert!(
        !inv["delivered"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["id"] == "tool-1"),
        "{inv}"
    );
    // Every job has its history.
    let h = j["history"].as_array().unwrap();
    assert!(h.len() >= 3, "{j}");
    assert_eq!(h.last().unwrap()["state"], "succeeded");
}

#[tokio::test]
async fn combined_steps_run_in_order_and_report_once() {
    let app = TestApp::start().await;
    upload_ok(&app, package("svc-1", "svc", "1.0", "archive")).await;
    let dir = tempfile::tempdir().unwrap();
    let dev = "IMEI:420";
    let agent = agent(&app, dev, dir.path()).await;
    let j = create(
        &app,
        json!({"device": dev, "op": "DownloadInstallInactive", "package": "svc-1",
               "then": [{"op": "Activate"}]}),
    )
    .await;
    assert_eq!(j["steps"], json!(["DownloadInstallInactive", "Activate"]));
    let j = run_job(&app, &agent, &j["id"]).await;
    assert_eq!(j["state"], "succeeded", "{j}");
    assert_eq!(j["step"], 1);
    let inv = inventory(&app, dev).await;
    assert_eq!(deployed(&inv, "svc").unwrap()["state"], "active", "{inv}");
    // One report per primitive, each correlated to this job.
    let (_, alerts) = app.get(&format!("/devices/{}/alerts", enc(dev))).await;
    let ours: Vec<&Value> = alerts
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["correlator"]
                .as_str()
                .unwrap_or("")
                .starts_with("scomo-job-")
        })
        .collect();
    assert_eq!(ours.len(), 2, "{alerts}");
}

#[tokio::test]
async fn device_failures_become_job_outcomes() {
    let app = TestApp::start().await;
    // An environment the agent does not have: 1413.
    upload_ok(&app, package("odd-1", "odd", "1.0", "no-such-env")).await;
    let dir = tempfile::tempdir().unwrap();
    let dev = "IMEI:430";
    let agent = agent(&app, dev, dir.path()).await;
    let j = create(
        &app,
        json!({"device": dev, "op": "DownloadInstall", "package": "odd-1"}),
    )
    .await;
    let j = run_job(&app, &agent, &j["id"]).await;
    assert_eq!(j["state"], "failed", "{j}");
    assert_eq!(j["result_code"], 1413, "{j}");
    assert_eq!(j["result_class"], "device_fault", "{j}");
    assert!(
        j["result_meaning"]
            .as_str()
            .unwrap()
            .contains("environment"),
        "{j}"
    );

    // A device that trusts a signing key refuses an unsigned package: 1407.
    // A user who declines: 1401.
    for (i, (code, class)) in [(1407, "device_fault"), (1401, "user_declined")]
        .into_iter()
        .enumerate()
    {
        let id = format!("IMEI:43{}", i + 1);
        app.provision(&id, json!({})).await;
        let d = tempfile::tempdir().unwrap();
        let mut c = agent_config(&app, &id, d.path());
        if code == 1407 {
            c.scomo.trusted_keys =
                vec![base64::engine::general_purpose::STANDARD.encode([9u8; 32])];
        } else {
            c.scomo.confirm.default = scomo_agent::scomo_client::ConfirmPolicy::Decline;
        }
        let a = Agent::new(c).unwrap();
        let pkg = format!("p{code}");
        upload_ok(&app, package(&pkg, &format!("c{code}"), "1.0", "archive")).await;
        let j = create(
            &app,
            json!({"device": id, "op": "DownloadInstall", "package": pkg}),
        )
        .await;
        let j = run_job(&app, &a, &j["id"]).await;
        assert_eq!(j["state"], "failed", "{j}");
        assert_eq!(j["result_code"], code, "{j}");
        assert_eq!(j["result_class"], class, "{j}");
    }

    // Activate of a component the device does not have: found out from the
    // inventory, before anything is sent.
    let j = create(
        &app,
        json!({"device": dev, "op": "Activate", "component": "ghost"}),
    )
    .await;
    let j = run_job(&app, &agent, &j["id"]).await;
    assert_eq!(j["state"], "failed", "{j}");
    assert!(
        j["outcome"].as_str().unwrap().contains("not on the device"),
        "{j}"
    );

    // A package whose file vanished from the repository: the download fails.
    upload_ok(&app, package("gone-1", "gone", "1.0", "archive")).await;
    let (_, p) = app.get("/packages/gone-1").await;
    let j = create(
        &app,
        json!({"device": dev, "op": "DownloadInstall", "package": "gone-1"}),
    )
    .await;
    let file = app
        .data_dir()
        .join("packages")
        .join(format!("{}.pkg", p["sha256"].as_str().unwrap()));
    std::fs::remove_file(&file).unwrap();
    let j = run_job(&app, &agent, &j["id"]).await;
    assert_eq!(j["state"], "failed", "{j}");
    let code = j["result_code"].as_u64().unwrap();
    assert!((1400..1600).contains(&code), "{j}");
}

#[tokio::test]
async fn conflicts_cancel_and_validation() {
    let app = TestApp::start().await;
    upload_ok(&app, package("c-1", "c", "1.0", "archive")).await;
    app.provision("IMEI:440", json!({})).await;
    let j = create(
        &app,
        json!({"device": "IMEI:440", "op": "DownloadInstall", "package": "c-1"}),
    )
    .await;
    // A second job on the same component is refused while the first lives.
    let (status, v) = app
        .post(
            "/jobs",
            json!({"device": "IMEI:440", "op": "Activate", "component": "c"}),
        )
        .await;
    assert_eq!(status, 409, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("already working"),
        "{v}"
    );
    // Cancel frees it; its batch never reaches the device.
    let (status, c) = app
        .post(&format!("/jobs/{}/cancel", j["id"]), json!({}))
        .await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["state"], "cancelled");
    let (status, _) = app
        .post(&format!("/jobs/{}/cancel", j["id"]), json!({}))
        .await;
    assert_eq!(status, 409);
    create(
        &app,
        json!({"device": "IMEI:440", "op": "Activate", "component": "c"}),
    )
    .await;

    for (body, want) in [
        (json!({"device": "IMEI:440", "op": "Explode"}), 400),
        (json!({"device": "IMEI:440", "op": "DownloadInstall"}), 400),
        (json!({"device": "IMEI:440", "op": "Activate"}), 400),
        (
            json!({"device": "IMEI:440", "op": "DownloadInstall", "package": "nope"}),
            404,
        ),
        (
            json!({"device": "nobody", "op": "Activate", "component": "c"}),
            404,
        ),
        (
            json!({"device": "IMEI:440", "op": "Install", "package": "c-1", "delivery": "http"}),
            400,
        ),
        (
            json!({"device": "IMEI:440", "op": "Activate", "component": "c", "at": "soon"}),
            400,
        ),
        (
            json!({"device": "IMEI:440", "op": "Activate", "color": "red"}),
            400,
        ),
    ] {
        let (status, v) = app.post("/jobs", body.clone()).await;
        assert_eq!(status, want, "{body}: {v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    }
    let (status, _) = app.get("/jobs/999999").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn jobs_without_a_result_time_out() {
    let app = Builder::new()
        .configure(|c| c.scomo.worker_interval_ms = 20)
        .start()
        .await;
    upload_ok(&app, package("t-1", "t", "1.0", "archive")).await;
    app.provision("IMEI:450", json!({})).await;
    let mut events = app.state.subscribe();
    let j = create(
        &app,
        json!({"device": "IMEI:450", "op": "DownloadInstall", "package": "t-1", "timeout_secs": 1}),
    )
    .await;
    let id = j["id"].as_i64().unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let ev = events.recv().await.unwrap();
            if ev.kind == "job" && ev.id == id && ev.state == "timed_out" {
                return ev;
            }
        }
    })
    .await
    .expect("a timed_out event");
    assert!(ev.detail.unwrap().contains("did not answer"));
    let j = job(&app, &j["id"]).await;
    assert_eq!(j["state"], "timed_out", "{j}");
}

#[tokio::test]
async fn catalog_rules_give_devices_their_package_in_their_own_session() {
    let app = TestApp::start().await;
    upload_ok(&app, package("cat-2", "cat", "2.0", "archive")).await;
    let (status, r) = app
        .post(
            "/catalog/rules",
            json!({"name": "AgentCo gets cat 2", "man": "AgentCo", "package": "cat-2"}),
        )
        .await;
    assert_eq!(status, 201, "{r}");
    let (status, _) = app
        .post(
            "/catalog/rules",
            json!({"name": "bad", "package": "cat-2", "op": "Activate"}),
        )
        .await;
    assert_eq!(status, 400);
    let dir = tempfile::tempdir().unwrap();
    let dev = "IMEI:460";
    let agent = agent(&app, dev, dir.path()).await;
    // The device's own session (Alert 1201): inventory, the rule, the job.
    for _ in 0..3 {
        agent.run_once().await.unwrap();
    }
    let (_, jobs) = app.get(&format!("/jobs?device={}", enc(dev))).await;
    let jobs = jobs.as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["origin"], "catalog");
    assert_eq!(jobs[0]["state"], "succeeded", "{jobs:?}");
    let inv = inventory(&app, dev).await;
    assert_eq!(deployed(&inv, "cat").unwrap()["version"], "2.0");
    // Up to date: the next session creates nothing.
    agent.run_once().await.unwrap();
    let (_, jobs) = app.get(&format!("/jobs?device={}", enc(dev))).await;
    assert_eq!(jobs.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_server_restart_in_the_middle_of_a_job_does_not_lose_it() {
    let app = TestApp::start().await;
    let addr = app.url.trim_start_matches("http://").to_owned();
    upload_ok(&app, package("r-1", "r", "1.0", "archive")).await;
    let dir = tempfile::tempdir().unwrap();
    let dev = "IMEI:470";
    let agent = agent(&app, dev, dir.path()).await;
    let j = create(
        &app,
        json!({"device": dev, "op": "DownloadInstall", "package": "r-1"}),
    )
    .await;
    // One session: the device accepts the operation (202) ...
    let report = agent
        .session(omadm::client::SessionKind::ClientInitiated {
            session_id: "77".into(),
        })
        .await
        .unwrap();
    assert!(report.completed(), "{report:?}");
    assert_eq!(job(&app, &j["id"]).await["state"], "awaiting_result");
    // ... and the server dies before the result comes.
    let data = app.crash().await;
    let app = Builder::in_dir(data)
        .configure(|c| c.listen = addr.clone())
        .start()
        .await;
    // The device downloads, installs and reports to the restarted server.
    let j = run_job(&app, &agent, &j["id"]).await;
    assert_eq!(j["state"], "succeeded", "{j}");
    assert_eq!(
        deployed(&inventory(&app, dev).await, "r").unwrap()["version"],
        "1.0"
    );
}

#[tokio::test]
async fn devices_without_tnds_are_read_with_plain_gets() {
    let app = TestApp::start().await;
    app.provision("IMEI:480", json!({})).await;
    let mut dev = crate::harness::DmClient::new(&app, "IMEI:480");
    for (k, v) in [
        ("./SCOMO/Inventory/Delivered/p1/PkgID", "pkg-1"),
        ("./SCOMO/Inventory/Delivered/p1/State", "20"),
        ("./SCOMO/Inventory/Deployed/c1/ID", "comp-1"),
        ("./SCOMO/Inventory/Deployed/c1/Name", "Component one"),
        ("./SCOMO/Inventory/Deployed/c1/Version", "3.1"),
        ("./SCOMO/Inventory/Deployed/c1/State", "10"),
        ("./SCOMO/Inventory/Deployed/c2/ID", "comp-2"),
        ("./SCOMO/Inventory/Deployed/c2/Version", "0.9"),
        ("./SCOMO/Inventory/Deployed/c2/State", "20"),
    ] {
        dev.device.set(k, v);
    }
    // The first session of a device reads its inventory: this client has
    // no `?list=` (404), so the server lists and reads leaf by leaf.
    let run = dev.run_session().await;
    assert!(run.outcome.is_some(), "{run:?}");
    let inv = inventory(&app, "IMEI:480").await;
    assert_eq!(inv["method"], "recursive", "{inv}");
    assert_eq!(inv["delivered"][0]["id"], "pkg-1", "{inv}");
    assert_eq!(inv["delivered"][0]["state"], "installed", "{inv}");
    let c1 = deployed(&inv, "comp-1").expect("comp-1");
    assert_eq!(c1["version"], "3.1");
    assert_eq!(c1["state"], "inactive");
    assert_eq!(c1["name"], "Component one");
    assert_eq!(deployed(&inv, "comp-2").unwrap()["state"], "active");
    assert!(dev
        .device
        .executed
        .iter()
        .any(|e| e.contains("Get ./SCOMO/Inventory/Deployed/c2/Version")));
}

#[tokio::test]
async fn the_event_stream_carries_job_alert_and_session_events() {
    let app = TestApp::start().await;
    upload_ok(&app, package("e-1", "e", "1.0", "archive")).await;
    let dir = tempfile::tempdir().unwrap();
    let dev = "IMEI:490";
    let agent = agent(&app, dev, dir.path()).await;
    // Without a token: 401.
    let r = app.http.get(app.api("/events")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let mut stream = app
        .http
        .get(app.api(&format!("/events?device={}", enc(dev))))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert!(stream.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let j = create(
        &app,
        json!({"device": dev, "op": "DownloadInstall", "package": "e-1"}),
    )
    .await;
    run_job(&app, &agent, &j["id"]).await;
    // Read until the job's final event; every kind must have shown up.
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while !text.contains("\"state\":\"succeeded\"") {
            let chunk = stream.chunk().await.unwrap().expect("stream open");
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .expect("the succeeded event");
    for kind in ["event: job", "event: alert", "event: session"] {
        assert!(text.contains(kind), "{kind} missing in {text}");
    }
    assert!(text.contains(&format!("\"id\":{}", j["id"])), "{text}");
}

#[tokio::test]
async fn a_package_is_in_use_while_a_job_or_a_rule_needs_it() {
    let app = TestApp::start().await;
    upload_ok(&app, package("u-1", "u", "1.0", "archive")).await;
    app.provision("IMEI:495", json!({})).await;
    let j = create(
        &app,
        json!({"device": "IMEI:495", "op": "DownloadInstall", "package": "u-1"}),
    )
    .await;
    let (status, v) = crate::packages::delete(&app, "u-1").await;
    assert_eq!(status, 409, "{v}");
    app.post(&format!("/jobs/{}/cancel", j["id"]), json!({}))
        .await;
    let (status, r) = app
        .post("/catalog/rules", json!({"name": "r", "package": "u-1"}))
        .await;
    assert_eq!(status, 201);
    let (status, _) = crate::packages::delete(&app, "u-1").await;
    assert_eq!(status, 409, "a rule needs it");
    let r = app
        .http
        .delete(app.api(&format!("/catalog/rules/{}", r["id"])))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // The cancelled job's download URL no longer holds the package.
    let (status, v) = crate::packages::delete(&app, "u-1").await;
    assert_eq!(status, 204, "{v}");
}

#[tokio::test]
async fn a_success_the_inventory_does_not_show_is_a_mismatch() {
    let app = TestApp::start().await;
    app.provision("IMEI:496", json!({})).await;
    // A device that answers every Exec 200 but changes nothing.
    let mut dev = crate::harness::DmClient::new(&app, "IMEI:496");
    dev.device.set("./SCOMO/Inventory/Deployed/c1/ID", "c1");
    dev.device
        .set("./SCOMO/Inventory/Deployed/c1/Version", "1.0");
    dev.device.set("./SCOMO/Inventory/Deployed/c1/State", "10");
    let j = create(
        &app,
        json!({"device": "IMEI:496", "op": "Activate", "component": "c1"}),
    )
    .await;
    let run = dev.run_session().await;
    assert!(run.outcome.is_some(), "{run:?}");
    let j = job(&app, &j["id"]).await;
    assert_eq!(j["state"], "mismatch", "{j}");
    assert_eq!(j["result_code"], 1200, "{j}");
    assert!(j["detail"].as_str().unwrap().contains("state 10"), "{j}");
    assert!(dev
        .device
        .executed
        .iter()
        .any(|e| e == "Exec ./SCOMO/Inventory/Deployed/c1/Operations/Activate"));
}

#[tokio::test]
async fn a_later_step_waits_for_its_start_time() {
    let app = Builder::new()
        .configure(|c| c.scomo.worker_interval_ms = 20)
        .start()
        .await;
    upload_ok(&app, package("s-1", "s", "1.0", "archive")).await;
    let dir = tempfile::tempdir().unwrap();
    let dev = "IMEI:497";
    let agent = agent(&app, dev, dir.path()).await;
    let at = scomo_server::store::Timestamp::now().unix_millis() / 1000 + 2;
    let j = create(
        &app,
        json!({"device": dev, "op": "DownloadInstallInactive", "package": "s-1",
               "then": [{"op": "Activate", "at": at}]}),
    )
    .await;
    let id = j["id"].as_i64().unwrap();
    let mut events = app.state.subscribe();
    agent.run_once().await.unwrap();
    let j = job(&app, &json!(id)).await;
    assert_eq!(j["state"], "scheduled", "{j}");
    assert!(j["wake_at"].is_string(), "{j}");
    assert_eq!(
        deployed(&inventory(&app, dev).await, "s").unwrap()["state"],
        "inactive"
    );
    // The worker starts the step at its time.
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let ev = events.recv().await.unwrap();
            if ev.kind == "job" && ev.id == id && ev.state == "running" {
                return;
            }
        }
    })
    .await
    .expect("the step started");
    assert!(scomo_server::store::Timestamp::now().unix_millis() >= at * 1000);
    let j = run_job(&app, &agent, &json!(id)).await;
    assert_eq!(j["state"], "succeeded", "{j}");
    assert_eq!(
        deployed(&inventory(&app, dev).await, "s").unwrap()["state"],
        "active"
    );
    assert!(j["history"].as_array().unwrap().iter().any(|h| h["message"]
        .as_str()
        .unwrap()
        .contains("start time reached")));
}
