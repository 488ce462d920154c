//! The agent over real HTTP against a minimal DM server built from the
//! omadm server engine: sessions, auth schemes, encodings, package 0, and
//! the tree on disk.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as HttpStatus};
use axum::response::IntoResponse;
use omadm::auth::{AuthType, Credentials};
use omadm::package0::Notification;
use omadm::server::{DeviceAccount, ServerConfig, ServerEvent, ServerSession};
use omadm::{AuthConfig, Incoming, NonceState};
use omadm_wire::model::{Command, Data, Item, ItemCommand, Location, Meta, Status};
use scomo_agent::config::{AgentConfig, AuthKind, EncodingKind};
use scomo_agent::Agent;

mod crash;

const SERVER_ID: &str = "test-server";

/// A one-device DM server: queues `commands` in the first session and
/// records what came back.
#[derive(Default)]
struct Mini {
    session: Option<ServerSession>,
    account: Option<DeviceAccount>,
    commands: Vec<Command>,
    sent: bool,
    statuses: Vec<(u64, Status)>,
    results: Vec<(u64, String)>,
    sessions: Vec<(String, String)>,
    auth_failures: u32,
    /// Signalled whenever Results arrive.
    got_results: Arc<tokio::sync::Notify>,
}

type Shared = Arc<Mutex<Mini>>;

fn rng(buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37).wrapping_add(11);
    }
}

async fn dm(
    State(s): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> impl IntoResponse {
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let hmac = headers
        .get("x-syncml-hmac")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let incoming = Incoming {
        body: &body,
        content_type: ct.as_deref(),
        hmac: hmac.as_deref(),
    };
    let mut guard = s.lock().unwrap();
    let m = &mut *guard;
    let ongoing = m.session.as_ref().is_some_and(|s| !s.is_finished());
    if ongoing {
        let session = m.session.as_mut().unwrap();
        if let Err(e) = session.handle_message(Instant::now(), incoming, &mut rng) {
            return (HttpStatus::BAD_REQUEST, e.to_string()).into_response();
        }
    } else {
        let accepted = match ServerSession::accept(
            ServerConfig::new("http://mini/dm"),
            Instant::now(),
            incoming,
        ) {
            Ok(a) => a,
            Err(e) => return (HttpStatus::BAD_REQUEST, e.to_string()).into_response(),
        };
        m.sessions.push((
            accepted.session_id().to_owned(),
            format!("{:?}", accepted.initiation()),
        ));
        m.session = Some(accepted.into_session(m.account.clone(), &mut rng));
    }
    let session = m.session.as_mut().unwrap();
    while let Some(ev) = session.poll_event() {
        match ev {
            ServerEvent::Status { id, status, .. } => m.statuses.push((id, status)),
            ServerEvent::Results { id, results, .. } => {
                let v = results.items[0]
                    .data
                    .as_ref()
                    .and_then(Data::as_str)
                    .unwrap_or("")
                    .to_owned();
                m.results.push((id, v));
                m.got_results.notify_one();
            }
            ServerEvent::NoncesChanged(n) => {
                if let Some(a) = &mut m.account {
                    a.nonces = n;
                }
            }
            ServerEvent::AuthenticationFailed { .. } => m.auth_failures += 1,
            _ => {}
        }
    }
    if session.is_ready_for_commands() && !m.sent {
        m.sent = true;
        for (i, c) in m.commands.iter().enumerate() {
            session.queue_command(i as u64 + 1, c.clone());
        }
    }
    let response = session.poll_transmit();
    // Nonces we issue take effect once the message carrying them is built.
    while let Some(ev) = session.poll_event() {
        if let (ServerEvent::NoncesChanged(n), Some(a)) = (ev, &mut m.account) {
            a.nonces = n;
        }
    }
    match response {
        Some(r) => {
            let mut h = HeaderMap::new();
            h.insert("content-type", r.content_type.parse().unwrap());
            if let Some(mac) = r.hmac {
                h.insert("x-syncml-hmac", mac.parse().unwrap());
            }
            (h, r.body).into_response()
        }
        None => HttpStatus::NO_CONTENT.into_response(),
    }
}

async fn start(mini: Shared) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/dm", axum::routing::post(dm))
        .with_state(mini);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/dm")
}

fn account(auth: AuthType, password: &str) -> DeviceAccount {
    DeviceAccount {
        client_auth: Some(AuthConfig::new(auth, Credentials::new("dev1", password))),
        server_auth: Some(AuthConfig::new(
            auth,
            Credentials::new(SERVER_ID, "server-secret"),
        )),
        nonces: NonceState::default(),
    }
}

fn config(url: &str, dir: &std::path::Path, auth: AuthKind, encoding: EncodingKind) -> AgentConfig {
    let mut c = AgentConfig::default();
    c.device.id = "IMEI:356938035643809".into();
    c.device.man = "Acme".into();
    c.server.url = url.into();
    c.server.server_id = SERVER_ID.into();
    c.server.username = "dev1".into();
    c.server.password = "client-secret".into();
    c.server.server_password = "server-secret".into();
    c.server.auth = auth;
    c.server.encoding = encoding;
    c.agent.data_dir = dir.to_owned();
    c.agent.poll_interval_secs = 0;
    c
}

fn item_cmd(uri: &str, data: Option<&str>) -> ItemCommand {
    ItemCommand {
        cmd_id: 0,
        items: vec![Item {
            target: Some(Location::uri(uri)),
            meta: data.map(|_| Meta::format("chr")),
            data: data.map(|d| Data::Text(d.into())),
            ..Item::default()
        }],
        ..ItemCommand::default()
    }
}

fn management_commands() -> Vec<Command> {
    vec![
        Command::Get(item_cmd("./DevInfo/Man", None)),
        Command::Add(item_cmd("./Vendor/Acme/Greeting", Some("hello"))),
        Command::Replace(item_cmd("./Vendor/Acme/Greeting", Some("bonjour"))),
        Command::Get(item_cmd("./Vendor/Acme/Greeting", None)),
        Command::Get(item_cmd("./Nowhere", None)),
    ]
}

async fn session_with(auth: AuthKind, t: AuthType, encoding: EncodingKind) {
    let mini = Arc::new(Mutex::new(Mini {
        account: Some(account(t, "client-secret")),
        commands: management_commands(),
        ..Mini::default()
    }));
    let url = start(mini.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::new(config(&url, dir.path(), auth, encoding)).unwrap();
    let report = agent.run_once().await.unwrap();
    assert!(report.completed(), "{report:?}");
    let m = mini.lock().unwrap();
    let codes: Vec<_> = m.statuses.iter().map(|(id, s)| (*id, s.data.0)).collect();
    assert_eq!(
        codes,
        vec![(1, 200), (2, 200), (3, 200), (4, 200), (5, 404)],
        "{auth:?} {encoding:?}"
    );
    assert_eq!(
        m.results,
        vec![(1, "Acme".to_owned()), (4, "bonjour".to_owned())]
    );
    drop(m);
    // What the server wrote is on disk and comes back after a restart.
    drop(agent);
    let again = Agent::new(config(&url, dir.path(), auth, encoding)).unwrap();
    let device = again.device().lock().unwrap();
    assert_eq!(
        device.tree.value_str("./Vendor/Acme/Greeting"),
        Some("bonjour")
    );
}

#[tokio::test]
async fn md5_session_in_xml() {
    session_with(AuthKind::Md5, AuthType::Md5, EncodingKind::Xml).await;
}

#[tokio::test]
async fn hmac_session_in_wbxml() {
    session_with(AuthKind::Hmac, AuthType::Hmac, EncodingKind::Wbxml).await;
}

#[tokio::test]
async fn basic_session_in_wbxml() {
    session_with(AuthKind::Basic, AuthType::Basic, EncodingKind::Wbxml).await;
}

#[tokio::test]
async fn nonces_rotate_across_sessions() {
    let mini = Arc::new(Mutex::new(Mini {
        account: Some(account(AuthType::Md5, "client-secret")),
        ..Mini::default()
    }));
    let url = start(mini.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&url, dir.path(), AuthKind::Md5, EncodingKind::Xml);
    let agent = Agent::new(cfg.clone()).unwrap();
    assert!(agent.run_once().await.unwrap().completed());
    let first = agent.device().lock().unwrap().nonces();
    assert!(
        !first.client_nonce.is_empty(),
        "the server issued a nonce for the next session"
    );
    assert_eq!(
        mini.lock()
            .unwrap()
            .account
            .as_ref()
            .unwrap()
            .nonces
            .client_nonce,
        first.client_nonce
    );
    drop(agent);
    // A restarted agent authenticates with the persisted nonce.
    let agent = Agent::new(cfg).unwrap();
    assert!(agent.run_once().await.unwrap().completed());
    assert_eq!(mini.lock().unwrap().auth_failures, 0);
}

#[tokio::test]
async fn wrong_password_fails_and_runs_nothing() {
    let mini = Arc::new(Mutex::new(Mini {
        account: Some(account(AuthType::Md5, "another-secret")),
        commands: management_commands(),
        ..Mini::default()
    }));
    let url = start(mini.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::new(config(&url, dir.path(), AuthKind::Md5, EncodingKind::Xml)).unwrap();
    let report = agent.run_once().await.unwrap();
    assert!(!report.completed(), "{report:?}");
    let m = mini.lock().unwrap();
    assert!(m.statuses.is_empty());
    assert!(m.auth_failures >= 1);
    drop(m);
    assert!(!agent
        .device()
        .lock()
        .unwrap()
        .tree
        .exists("./Vendor/Acme/Greeting"));
}

#[tokio::test]
async fn package_0_over_udp_starts_a_server_initiated_session() {
    package_0_starts_a_session("udp://127.0.0.1:0").await;
}

#[tokio::test]
async fn package_0_over_http_post_starts_a_server_initiated_session() {
    package_0_starts_a_session("http://127.0.0.1:0").await;
}

async fn send_notification(listen_url: &str, bytes: Vec<u8>) {
    if let Some(addr) = listen_url.strip_prefix("udp://") {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        sock.send_to(&bytes, addr).await.unwrap();
    } else {
        let resp = reqwest::Client::new()
            .post(listen_url)
            .header("content-type", "application/vnd.syncml.notification")
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 202);
    }
}

async fn package_0_starts_a_session(listen: &str) {
    let mini = Arc::new(Mutex::new(Mini {
        account: Some(account(AuthType::Md5, "client-secret")),
        commands: vec![Command::Get(item_cmd("./DevInfo/DevId", None))],
        ..Mini::default()
    }));
    let url = start(mini.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&url, dir.path(), AuthKind::Md5, EncodingKind::Xml);
    cfg.agent.notify_listen = listen.into();
    let agent = Arc::new(Agent::new(cfg).unwrap());
    let listener = agent.bind_notify().await.unwrap().unwrap();
    let target = listener.url();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let runner = {
        let agent = agent.clone();
        tokio::spawn(async move {
            agent
                .run(Some(listener), async {
                    let _ = stop_rx.await;
                })
                .await
        })
    };
    // A forged notification (wrong server password) is ignored...
    let bad = Notification::new(0x0BAD, SERVER_ID)
        .encode(&Credentials::new(SERVER_ID, "wrong"), b"")
        .unwrap();
    send_notification(&target, bad).await;
    // ...the genuine one (the agent has no nonce yet: the empty nonce) starts a session.
    let good = Notification::new(0x1234, SERVER_ID)
        .encode(&Credentials::new(SERVER_ID, "server-secret"), b"")
        .unwrap();
    send_notification(&target, good).await;
    // The server signals the Results; the timeout only bounds a failure.
    let got = mini.lock().unwrap().got_results.clone();
    tokio::time::timeout(std::time::Duration::from_secs(30), got.notified())
        .await
        .expect("no session answered the notification");
    stop_tx.send(()).unwrap();
    runner.await.unwrap().unwrap();
    let m = mini.lock().unwrap();
    assert_eq!(
        m.sessions.len(),
        1,
        "only the genuine notification started a session: {:?}",
        m.sessions
    );
    assert_eq!(m.sessions[0].0, "1234");
    assert!(m.sessions[0].1.contains("Server"), "{:?}", m.sessions[0]);
    assert_eq!(m.results, vec![(1, "IMEI:356938035643809".to_owned())]);
}
