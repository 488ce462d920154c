//! The real device agent (in-process) against the server: XML, WBXML,
//! HTTPS, and sessions started by package 0.

use std::path::Path;
use std::time::Duration;

use scomo_agent::config::EncodingKind;
use scomo_agent::{Agent, AgentConfig};
use serde_json::json;

use crate::harness::{enc, eventually, password, Builder, TestApp, SERVER_PASSWORD};

pub(crate) fn agent_config(app: &TestApp, id: &str, dir: &Path) -> AgentConfig {
    let mut c = AgentConfig::default();
    c.device.id = id.into();
    c.device.man = "AgentCo".into();
    c.device.model = "A1".into();
    c.server.url = app.dm_url();
    c.server.username = id.into();
    c.server.password = password(id);
    c.server.server_password = SERVER_PASSWORD.into();
    c.server.ca_cert = app.ca.clone();
    c.agent.data_dir = dir.to_owned();
    c.agent.poll_interval_secs = 0;
    c
}

#[tokio::test]
async fn agent_sessions_in_xml_and_wbxml_complete_batches() {
    let app = TestApp::start().await;
    for (id, encoding) in [
        ("IMEI:300", EncodingKind::Xml),
        ("IMEI:301", EncodingKind::Wbxml),
    ] {
        app.provision(id, json!({})).await;
        let batch = app
            .enqueue(
                id,
                json!({"commands": [
                    {"op": "get", "target": "./DevInfo/Man"},
                    {"op": "add", "target": "./Vendor", "format": "node"},
                    {"op": "add", "target": "./Vendor/Note", "data": "hello", "format": "chr"},
                    {"op": "get", "target": "./Vendor/Note"}
                ]}),
            )
            .await;
        let dir = tempfile::tempdir().unwrap();
        let mut config = agent_config(&app, id, dir.path());
        config.server.encoding = encoding;
        let agent = Agent::new(config).unwrap();
        let report = agent.run_once().await.unwrap();
        assert!(report.completed(), "{encoding}: {report:?}");

        let b = app.batch(id, batch).await;
        assert_eq!(b["state"], "completed", "{b}");
        let statuses: Vec<u64> = b["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["status"].as_u64().unwrap())
            .collect();
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}: {b}");
        assert_eq!(b["outcomes"][0]["results"][0]["data"], "AgentCo");
        assert_eq!(b["outcomes"][3]["results"][0]["data"], "hello");
        let (_, d) = app.get(&format!("/devices/{}", enc(id))).await;
        assert_eq!(d["man"], "AgentCo");
        assert_eq!(d["dev_typ"], "linux");
        assert!(d["nodes"]["./DevDetail/SwV"].is_string(), "{d}");
    }
}

#[tokio::test]
async fn agent_over_tls_with_its_ca() {
    let app = Builder::new().tls().start().await;
    assert!(app.url.starts_with("https://"));
    app.provision("IMEI:302", json!({})).await;
    let batch = app
        .enqueue(
            "IMEI:302",
            json!({"commands": [{"op": "get", "target": "./DevInfo/Mod"}]}),
        )
        .await;
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::new(agent_config(&app, "IMEI:302", dir.path())).unwrap();
    let report = agent.run_once().await.unwrap();
    assert!(report.completed(), "{report:?}");
    let b = app.batch("IMEI:302", batch).await;
    assert_eq!(b["outcomes"][0]["results"][0]["data"], "A1");

    // Without the CA the agent refuses the server.
    let dir = tempfile::tempdir().unwrap();
    let mut config = agent_config(&app, "IMEI:302", dir.path());
    config.server.ca_cert = None;
    let report = Agent::new(config).unwrap().run_once().await.unwrap();
    assert!(!report.completed(), "{report:?}");
}

#[tokio::test]
async fn package0_over_udp_starts_an_agent_session() {
    let app = TestApp::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = agent_config(&app, "IMEI:303", dir.path());
    config.agent.notify_listen = "udp://127.0.0.1:0".into();
    let agent = Agent::new(config).unwrap();
    let listener = agent.bind_notify().await.unwrap().unwrap();
    app.provision("IMEI:303", json!({"notify_addr": listener.url()}))
        .await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        agent
            .run(Some(listener), async {
                let _ = stopped.await;
            })
            .await
    });
    let batch = app
        .enqueue(
            "IMEI:303",
            json!({"commands": [{"op": "get", "target": "./DevInfo/DevId"}]}),
        )
        .await;
    let b = eventually(20, || async {
        let b = app.batch("IMEI:303", batch).await;
        (b["state"] == "completed").then_some(b)
    })
    .await;
    assert_eq!(b["outcomes"][0]["results"][0]["data"], "IMEI:303");
    let (_, sessions) = app
        .get(&format!("/devices/{}/sessions", enc("IMEI:303")))
        .await;
    assert_eq!(
        sessions[0]["initiation"], 1200,
        "server-initiated: {sessions}"
    );
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
