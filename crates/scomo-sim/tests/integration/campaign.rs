//! A real campaign over simulated devices with injected failures: the
//! outcome counts are exactly what the seed and the rates imply.

use std::collections::BTreeMap;

use scomo_sim::{Injected, Rates, Sim};
use serde_json::json;

use crate::harness::{fleet, Server, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_devices_through_a_staged_campaign_with_injected_failures() {
    let server = Server::start().await;
    server.upload("com.example.fleet-1.0", "1.0.0").await;
    let rates = Rates {
        download_server_fault: 0.1,
        device_fault: 0.1,
        user_decline: 0.1,
    };
    let mut cfg = server.sim_config(50, 21, rates);
    cfg.labels = vec![("wave".into(), "ci".into())];
    let seed = cfg.seed;
    let sim = fleet(&server, cfg).await;

    // What the seed says each device's first (and only) operation does.
    let mut expected: BTreeMap<&str, u64> = BTreeMap::new();
    let mut per_device = BTreeMap::new();
    for n in 0..50u32 {
        let class = match Sim::expected_outcome(seed, u64::from(n), 0, &rates) {
            Injected::Success => "succeeded",
            Injected::UserDecline => "user_declined",
            Injected::DownloadServerFault => "download_server_fault",
            Injected::DeviceFault => "device_fault",
        };
        *expected.entry(class).or_default() += 1;
        per_device.insert(sim.device_id(n), class);
    }
    assert_eq!(
        expected.len(),
        4,
        "the seed gives every class: {expected:?}"
    );

    let (status, c) = server
        .post(
            "/campaigns",
            json!({
                "name": "fleet 1.0 to wave ci",
                "job": {"op": "DownloadInstall", "package": "com.example.fleet-1.0"},
                "select": {"labels": ["wave=ci"]},
                "stages": [{"percent": 20}, {"percent": 100}],
                "success_threshold_pct": 50,
                "rate_per_sec": 1000,
                "max_concurrency": 50
            }),
        )
        .await;
    assert_eq!(status, 201, "{c}");
    let id = c["id"].as_i64().unwrap();
    let s = sim
        .wait_until(|s| s.reports_delivered == 50, WAIT)
        .await
        .unwrap_or_else(|s| panic!("not every device reported: {s}"));
    let deadline = tokio::time::Instant::now() + WAIT;
    let c = loop {
        let (_, c) = server.get(&format!("/campaigns/{id}")).await;
        if c["state"] == "completed" {
            break c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "campaign not completed: {c}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let t = &c["progress"]["totals"];
    for class in [
        "succeeded",
        "user_declined",
        "download_server_fault",
        "device_fault",
    ] {
        assert_eq!(
            t[class].as_u64(),
            Some(expected.get(class).copied().unwrap_or(0)),
            "{class}: {c}"
        );
    }
    assert_eq!(t["devices"], 50, "{c}");
    assert_eq!(t["pending"], 0, "{c}");
    // Stage sizes: 20 % of 50, then the rest.
    assert_eq!(c["progress"]["stages"][0]["devices"], 10, "{c}");
    assert_eq!(c["progress"]["stages"][1]["devices"], 40, "{c}");
    // Each device's own outcome is the seed's.
    let (_, members) = server
        .get(&format!("/campaigns/{id}/devices?limit=100"))
        .await;
    let members = members.as_array().unwrap();
    assert_eq!(members.len(), 50);
    for m in members {
        let want = per_device[m["device_id"].as_str().unwrap()];
        let got = if m["outcome"] == "succeeded" {
            "succeeded"
        } else {
            m["class"].as_str().unwrap_or("?")
        };
        assert_eq!(got, want, "{m}");
    }
    assert_eq!(s.sessions_failed, 0, "{s}");
    sim.stop(WAIT).await;
}
