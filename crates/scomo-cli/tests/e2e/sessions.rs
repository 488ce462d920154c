//! Real `scomo agent` ↔ real `scomo server`: XML, WBXML, HTTPS, package 0
//! over UDP and HTTP, and the CLI's own contract.

use serde_json::{json, Value};

use crate::harness::{
    agent_once, eventually, free_tcp_port, free_udp_port, AgentDaemon, Server, BIN,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_sessions_in_xml_and_wbxml_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("server"), &[]);
    let http = reqwest::Client::new();
    for (id, encoding) in [("IMEI:1001", "xml"), ("IMEI:1002", "wbxml")] {
        server.provision(id, &["--label", "site=lab"]);
        let b = server.admin(&[
            "batch",
            "add",
            "--device",
            id,
            "--get",
            "./DevInfo/Man",
            "--get",
            "./DevDetail/SwV",
        ]);
        let batch = b["id"].as_i64().unwrap();
        assert_eq!(b["state"], "pending");

        let agent_dir = dir.path().join(id.replace(':', "_"));
        agent_once(
            id,
            &server.dm_url(),
            &agent_dir,
            &["--encoding", encoding, "--man", "E2E Inc"],
        );

        let b = server.admin(&["batch", "show", "--device", id, &batch.to_string()]);
        assert_eq!(b["state"], "completed", "{b}");
        assert_eq!(b["outcomes"][0]["status"], 200);
        assert_eq!(b["outcomes"][0]["results"][0]["data"], "E2E Inc");
        assert!(b["outcomes"][1]["results"][0]["data"].is_string(), "{b}");

        let d = server.admin(&["device", "show", id]);
        assert_eq!(d["man"], "E2E Inc");
        assert_eq!(d["labels"]["site"], "lab");
        assert_eq!(d["nodes"]["./DevInfo/DevId"], id);
        let sessions = server
            .get(
                &http,
                &format!("/devices/{}/sessions", crate::harness::enc(id)),
            )
            .await;
        assert_eq!(sessions[0]["outcome"], "ok", "{sessions}");
    }
    let list = server.admin(&["device", "list"]);
    assert_eq!(list["devices"].as_array().unwrap().len(), 2);
    // Human output too.
    let out = std::process::Command::new(BIN)
        .args([
            "admin",
            "--server",
            &server.url,
            "--token",
            &server.token,
            "device",
            "list",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("IMEI:1001") && text.contains("E2E Inc"),
        "{text}"
    );
    let metrics = http
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("scomo_dm_messages_received_total{encoding=\"wbxml\"}"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn package0_over_udp_and_http_starts_agent_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("server"), &[]);
    let http = reqwest::Client::new();
    let mut daemons = Vec::new();
    let mut batches = Vec::new();
    for (id, notify) in [
        ("IMEI:2001", format!("udp://127.0.0.1:{}", free_udp_port())),
        ("IMEI:2002", format!("http://127.0.0.1:{}", free_tcp_port())),
    ] {
        server.provision(id, &["--notify", &notify]);
        daemons.push(AgentDaemon::start(
            id,
            &server.dm_url(),
            &dir.path().join(id.replace(':', "_")),
            &notify,
        ));
        // Queuing work for a device with an address notifies it; the
        // notifier retries until the listener is up and the device calls.
        let batch = server
            .enqueue(
                &http,
                id,
                json!({"commands": [{"op": "get", "target": "./DevInfo/DevId"}]}),
            )
            .await;
        batches.push((id, batch));
    }
    for (id, batch) in batches {
        let b: Value = eventually(60, "the notified device runs the batch", || async {
            let b = server.batch(&http, id, batch).await;
            (b["state"] == "completed").then_some(b)
        })
        .await;
        assert_eq!(b["outcomes"][0]["results"][0]["data"], id);
        // The session goes on after the batch (the inventory read of a
        // device's first session) and is recorded when it ends.
        eventually(60, "a server-initiated session that ended ok", || async {
            let sessions = server
                .get(
                    &http,
                    &format!("/devices/{}/sessions", crate::harness::enc(id)),
                )
                .await;
            sessions
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["initiation"] == 1200 && s["outcome"] == "ok")
                .then_some(())
        })
        .await;
    }
    drop(daemons);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_and_server_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let server = Server::start(
        &dir.path().join("server"),
        &[
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
    );
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let ca = cert_path.to_str().unwrap();
    let mut add = vec!["--ca-cert", ca, "device", "add", "--id", "IMEI:3001"];
    let user = crate::harness::username("IMEI:3001");
    let pass = crate::harness::password("IMEI:3001");
    add.extend(["--username", &user, "--password", &pass]);
    server.admin(&add);
    let b = server.admin(&[
        "--ca-cert",
        ca,
        "batch",
        "add",
        "--device",
        "IMEI:3001",
        "--get",
        "./DevInfo/Mod",
    ]);
    agent_once(
        "IMEI:3001",
        &server.dm_url(),
        &dir.path().join("agent"),
        &["--ca-cert", ca, "--mod", "TLS-1"],
    );
    let b = server.admin(&[
        "--ca-cert",
        ca,
        "batch",
        "show",
        "--device",
        "IMEI:3001",
        &b["id"].to_string(),
    ]);
    assert_eq!(b["outcomes"][0]["results"][0]["data"], "TLS-1", "{b}");
}

#[test]
fn check_config_and_cli_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "listen = \"127.0.0.1:9999\"\nserver_id = \"acme\"\n[dm]\nserver_password = \"s3cret\"\n",
    )
    .unwrap();
    // Flags and SCOMO_* variables override the file.
    let out = std::process::Command::new(BIN)
        .args(["server", "--check-config", "--config"])
        .arg(&good)
        .args(["--listen", "127.0.0.1:7777"])
        .env("SCOMO_SERVER_ID", "from-env")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("listen = \"127.0.0.1:7777\""), "{text}");
    assert!(text.contains("server_id = \"from-env\""), "{text}");
    assert!(!text.contains("s3cret"), "{text}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[dm]\nmax_msg_siz = 1\n").unwrap();
    let out = std::process::Command::new(BIN)
        .args(["server", "--check-config", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("max_msg_siz") && err.contains("bad.toml"),
        "{err}"
    );

    let out = std::process::Command::new(BIN)
        .args(["server", "--check-config", "--listen", "nowhere"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen"));

    let out = std::process::Command::new(BIN)
        .args(["admin", "device", "list"])
        .env_remove("SCOMO_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_reports_api_errors_and_the_token_file_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("server"), &[]);
    assert!(server.log().contains("admin.token"), "{}", server.log());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(server.data_dir.join("admin.token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    server.provision("IMEI:4001", &[]);
    let out = server.admin_raw(&[
        "device",
        "add",
        "--id",
        "IMEI:4001",
        "--username",
        "u",
        "--password",
        "p",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("409") && err.contains("already exists"),
        "{err}"
    );
    let out = server.admin_raw(&["device", "show", "IMEI:nope"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));
    let mut server = server;
    server.stop();
    assert!(server.log().contains("server stopped"), "{}", server.log());
}
