//! The server process dies (SIGKILL) in the middle of a queued batch: the
//! batch was sent, its statuses never arrived. The restarted server settles
//! the dead session, the device's next session runs the batch again, and it
//! completes exactly once.

use omadm::auth::{AuthType, Credentials};
use omadm::client::{ClientConfig, ClientSession, SessionKind, SessionStart};
use omadm::handler::MemoryDevice;
use omadm::{AuthConfig, Incoming, NonceState};
use serde_json::json;

use crate::harness::{agent_once, password, username, Server, SERVER_PASSWORD};

/// Sends the session's next message; false when the server could not be
/// reached or answered an error.
async fn step(http: &reqwest::Client, s: &mut ClientSession, device: &mut MemoryDevice) -> bool {
    let Some(req) = s.poll_transmit() else {
        return false;
    };
    let resp = match http
        .post(&req.url)
        .header("content-type", req.content_type)
        .body(req.body.clone())
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => {
            s.transport_failed(format!("HTTP {}", r.status()));
            return false;
        }
        Err(e) => {
            s.transport_failed(e.to_string());
            return false;
        }
    };
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.bytes().await.unwrap();
    let _ = s.handle_response(
        Incoming {
            body: &body,
            content_type: ct.as_deref(),
            hmac: None,
        },
        device,
        &mut |b: &mut [u8]| getrandom::fill(b).unwrap(),
    );
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_batch_the_batch_completes_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let mut server = Server::start(&data, &[]);
    let http = reqwest::Client::new();
    let id = "IMEI:5001";
    server.provision(id, &[]);
    let batch = server
        .enqueue(
            &http,
            id,
            json!({"commands": [{"op": "get", "target": "./DevInfo/DevId"}], "idempotent": true}),
        )
        .await;

    // A device session, one message at a time, until the batch went out.
    let mut cfg = ClientConfig::new(id, server.dm_url(), "scomo");
    cfg.client_auth = Some(AuthConfig::new(
        AuthType::Md5,
        Credentials::new(username(id), password(id)),
    ));
    cfg.server_auth = Some(AuthConfig::new(
        AuthType::Md5,
        Credentials::new("scomo", SERVER_PASSWORD),
    ));
    let mut device = MemoryDevice::new();
    device.set("./DevInfo/DevId", id);
    let mut session = ClientSession::new(
        cfg,
        SessionStart {
            kind: SessionKind::ClientInitiated {
                session_id: "5A".into(),
            },
            dev_info: vec![("./DevInfo/DevId".into(), id.into())],
            alerts: Vec::new(),
            nonces: NonceState::default(),
        },
    );
    for _ in 0..4 {
        assert!(step(&http, &mut session, &mut device).await);
        if server.batch(&http, id, batch).await["state"] == "sent" {
            break;
        }
    }
    assert_eq!(server.batch(&http, id, batch).await["state"], "sent");

    server.kill();
    // The device's next message has nowhere to go.
    assert!(!step(&http, &mut session, &mut device).await);

    let server = Server::start(&data, &[]);
    assert!(
        server.log().contains("settled sessions left open"),
        "{}",
        server.log()
    );
    let b = server.batch(&http, id, batch).await;
    assert_eq!(b["state"], "pending", "requeued at restart: {b}");

    agent_once(id, &server.dm_url(), &dir.path().join("agent"), &[]);
    let b = server.batch(&http, id, batch).await;
    assert_eq!(b["state"], "completed", "{b}");
    assert_eq!(b["attempts"], 2);
    let outcomes = b["outcomes"].as_array().unwrap();
    assert_eq!(outcomes.len(), 1, "{b}");
    assert_eq!(outcomes[0]["results"][0]["data"], id);

    // Another session sends nothing more.
    agent_once(id, &server.dm_url(), &dir.path().join("agent"), &[]);
    assert_eq!(server.batch(&http, id, batch).await["attempts"], 2);
    let sessions = server
        .get(
            &http,
            &format!("/devices/{}/sessions", crate::harness::enc(id)),
        )
        .await;
    let outcomes: Vec<&str> = sessions
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["outcome"].as_str().unwrap_or("open"))
        .collect();
    assert_eq!(outcomes, ["ok", "ok", "lost"], "{sessions}");
}
