//! Package 0: built, signed and delivered over UDP and HTTP; retried until
//! the device calls.

use std::time::Duration;

use omadm::auth::Credentials;
use omadm::package0::{Initiator, NonceUsed, Notification};
use scomo_server::store::NotificationState;
use serde_json::json;
use tokio::net::UdpSocket;

use crate::harness::{enc, DmClient, TestApp, SERVER_PASSWORD};

async fn recv(sock: &UdpSocket) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let (n, _) = tokio::time::timeout(Duration::from_secs(10), sock.recv_from(&mut buf))
        .await
        .expect("a package 0 within 10 s")
        .unwrap();
    buf.truncate(n);
    buf
}

#[tokio::test]
async fn notify_sends_a_verifiable_package0_over_udp() {
    let app = TestApp::start().await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("udp://{}", sock.local_addr().unwrap());
    app.provision("IMEI:200", json!({"notify_addr": addr}))
        .await;
    let (status, v) = app
        .post(&format!("/devices/{}/notify", enc("IMEI:200")), json!({}))
        .await;
    assert_eq!(status, 202, "{v}");
    let bytes = recv(&sock).await;

    let received = Notification::parse(&bytes).unwrap();
    let n = &received.notification;
    assert_eq!(n.version, Notification::VERSION);
    assert_eq!(n.server_id, "scomo");
    assert_eq!(n.initiator, Initiator::Server);
    assert_ne!(n.session_id, 0);
    // Digest over the server credentials and the (not yet issued) nonce.
    let creds = Credentials::new("scomo", SERVER_PASSWORD);
    assert_eq!(received.verify(&creds, b"").unwrap(), NonceUsed::Stored);
    assert!(received
        .verify(&Credentials::new("scomo", "wrong"), b"")
        .is_err());
}

#[tokio::test]
async fn a_device_of_its_own_server_password_is_signed_with_it() {
    let app = TestApp::start().await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("udp://{}", sock.local_addr().unwrap());
    app.provision(
        "IMEI:201",
        json!({"notify_addr": addr, "server_password": "own-pw"}),
    )
    .await;
    app.post(&format!("/devices/{}/notify", enc("IMEI:201")), json!({}))
        .await;
    let received = Notification::parse(&recv(&sock).await).unwrap();
    assert!(received
        .verify(&Credentials::new("scomo", "own-pw"), b"")
        .is_ok());
}

#[tokio::test]
async fn a_queued_batch_notifies_with_retries_until_the_device_calls() {
    let app = TestApp::start().await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("udp://{}", sock.local_addr().unwrap());
    app.provision("IMEI:202", json!({"notify_addr": addr}))
        .await;
    app.enqueue(
        "IMEI:202",
        json!({"commands": [{"op": "get", "target": "./DevInfo/Mod"}]}),
    )
    .await;
    // The first attempt and at least one retry (backoff 200 ms in tests),
    // each with a fresh session id.
    let first = Notification::parse(&recv(&sock).await).unwrap();
    let second = Notification::parse(&recv(&sock).await).unwrap();
    assert_ne!(
        first.notification.session_id,
        second.notification.session_id
    );

    // The device calls: the notification is cancelled.
    let mut dev = DmClient::new(&app, "IMEI:202");
    let run = dev.run_session().await;
    assert_eq!(
        run.outcome,
        Some(omadm::client::ClientOutcome::Completed),
        "{run:?}"
    );
    // The cancel is written before the session's first reply.
    let store = app.state.store().clone();
    let mut found = false;
    for i in 1..10 {
        if let Some(n) = store
            .notification(scomo_server::store::NotificationId(i))
            .await
            .unwrap()
        {
            if n.device_id == "IMEI:202" {
                // (The second attempt's record may land after the cancel,
                // which it leaves cancelled.)
                assert_eq!(n.state, NotificationState::Cancelled, "{n:?}");
                assert!(n.attempts >= 1, "{n:?}");
                found = true;
            }
        }
    }
    assert!(found);
}

#[tokio::test]
async fn package0_goes_over_http_post_too() {
    let app = TestApp::start().await;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(String, Vec<u8>)>(4);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}/p0", listener.local_addr().unwrap());
    let router = axum::Router::new().route(
        "/p0",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let tx = tx.clone();
                async move {
                    let ct = headers
                        .get("content-type")
                        .map(|v| v.to_str().unwrap().to_owned())
                        .unwrap_or_default();
                    tx.send((ct, body.to_vec())).await.unwrap();
                    axum::http::StatusCode::ACCEPTED
                }
            },
        ),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    app.provision("IMEI:203", json!({"notify_addr": addr}))
        .await;
    app.post(&format!("/devices/{}/notify", enc("IMEI:203")), json!({}))
        .await;
    let (ct, body) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ct, scomo_server::NOTIFICATION_CONTENT_TYPE);
    let received = Notification::parse(&body).unwrap();
    assert!(received
        .verify(&Credentials::new("scomo", SERVER_PASSWORD), b"")
        .is_ok());
}
