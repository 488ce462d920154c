//! Fleet behaviour against a real server.

use scomo_sim::{Rates, Sim};
use serde_json::json;

use crate::harness::{fleet, Server, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_devices_provision_and_register() {
    let server = Server::start().await;
    let sim = fleet(&server, server.sim_config(20, 11, Rates::default())).await;
    let (status, v) = server.get("/devices?prefix=t11-&limit=100").await;
    assert_eq!(status, 200, "{v}");
    let devices = v["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 20);
    for d in devices {
        let id = d["id"].as_str().unwrap();
        let n: u32 = id.strip_prefix("t11-").unwrap().parse().unwrap();
        let m = sim.model(n);
        assert_eq!(d["man"], json!(m.man), "{d}");
        assert_eq!(d["model"], json!(m.model), "{d}");
        assert_eq!(d["labels"]["model"], json!(m.model), "{d}");
        assert_eq!(d["notify_addr"], json!(sim.notify_addr(n)));
    }
    // Both models of the mix occur; the draw is the seed's.
    let acme = (0..20).filter(|&n| sim.model(n).man == "Acme").count();
    assert!(acme > 0 && acme < 20, "{acme}");
    let s = sim.stop(WAIT).await;
    assert_eq!(s.sessions["register"], 20);
    assert_eq!(s.sessions_failed, 0, "{s}");
    assert!(s.errors.is_empty(), "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_install_over_http_and_dlota() {
    let server = Server::start().await;
    server.upload("com.example.sim-1.0", "1.0.0").await;
    let sim = fleet(&server, server.sim_config(2, 12, Rates::default())).await;
    let mut jobs = Vec::new();
    for (n, delivery) in [(0u32, "http"), (1, "dlota")] {
        jobs.push(
            server
                .job(json!({
                    "device": sim.device_id(n),
                    "op": "DownloadInstall",
                    "package": "com.example.sim-1.0",
                    "delivery": delivery,
                }))
                .await,
        );
    }
    for (n, id) in jobs.into_iter().enumerate() {
        let job = server.finished_job(id).await;
        assert_eq!(job["state"], "succeeded", "{job}");
        assert_eq!(job["result_code"], 1200, "{job}");
        assert_eq!(
            sim.components(n as u32),
            vec![("com.example.sim-1.0.svc".into(), "1.0.0".into(), 20)]
        );
        let (_, inv) = server
            .get(&format!("/devices/{}/inventory", sim.device_id(n as u32)))
            .await;
        assert!(inv.to_string().contains("com.example.sim-1.0.svc"), "{inv}");
    }
    let s = sim.stop(WAIT).await;
    // http: the package; dlota: the descriptor and the package.
    assert_eq!(s.downloads, 3, "{s}");
    assert_eq!(s.notifications, 2, "{s}");
    assert_eq!(s.ops_with(1200), 2, "{s}");
    assert_eq!(s.reports_delivered, 2, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_failures_give_the_expected_codes() {
    let server = Server::start().await;
    server.upload("com.example.flaky-2.0", "2.0.0").await;
    let rates = Rates {
        download_server_fault: 0.2,
        device_fault: 0.2,
        user_decline: 0.2,
    };
    let cfg = server.sim_config(16, 13, rates);
    let seed = cfg.seed;
    let sim = fleet(&server, cfg).await;
    let mut jobs = Vec::new();
    for n in 0..16u32 {
        let id = server
            .job(json!({
                "device": sim.device_id(n),
                "op": "DownloadInstall",
                "package": "com.example.flaky-2.0",
            }))
            .await;
        jobs.push((n, id));
    }
    let mut expected_codes = std::collections::BTreeMap::new();
    for (n, id) in jobs {
        let want = Sim::expected_outcome(seed, u64::from(n), 0, &rates)
            .result_code(scomo::Primitive::DownloadInstall);
        *expected_codes.entry(want.0).or_insert(0u64) += 1;
        let job = server.finished_job(id).await;
        assert_eq!(job["result_code"], want.0, "device {n}: {job}");
        let ok = want.is_success();
        assert_eq!(
            job["state"],
            if ok { "succeeded" } else { "failed" },
            "{job}"
        );
        assert_eq!(sim.components(n).len(), usize::from(ok));
    }
    // The seed gives a mix of every class here.
    assert!(expected_codes.len() >= 3, "{expected_codes:?}");
    let s = sim
        .wait_until(|s| s.reports_delivered == 16, WAIT)
        .await
        .unwrap();
    for (code, count) in expected_codes {
        assert_eq!(s.ops_with(code), count, "{code}: {s}");
    }
    sim.stop(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn package0_reaches_the_right_device() {
    let server = Server::start().await;
    let sim = fleet(&server, server.sim_config(5, 14, Rates::default())).await;
    let (status, v) = server
        .post(&format!("/devices/{}/notify", sim.device_id(3)), json!({}))
        .await;
    assert!(status == 200 || status == 202, "{status} {v}");
    let s = sim
        .wait_until(|s| s.sessions["notified"] == 1, WAIT)
        .await
        .unwrap();
    assert_eq!(s.notifications, 1);
    assert_eq!(s.notifications_rejected, 0);
    for n in 0..5u32 {
        let (_, v) = server
            .get(&format!("/devices/{}/sessions", sim.device_id(n)))
            .await;
        let sessions = v.as_array().map_or(0, Vec::len);
        assert_eq!(sessions, if n == 3 { 2 } else { 1 }, "device {n}: {v}");
    }
    sim.stop(WAIT).await;
}
