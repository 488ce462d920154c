//! Server-initiated sessions: package 0 (`OMA-TS-DM_Notification-V1_2`)
//! delivered to each device's notification address, retried with backoff
//! until the device calls.
//!
//! ```text
//!   enqueue_notification (REST notify, or a batch for a device with an address)
//!        │  wake
//!        ▼
//!   notifier task ── claim_due_notifications (lease; any node, SKIP LOCKED)
//!        │  per notification: digest over the server's credentials and the
//!        │  device's server nonce, version 11, UI mode, initiator, session id,
//!        │  server id
//!        ├── udp://HOST:PORT    one datagram
//!        └── http(s)://…        POST application/vnd.syncml.notification
//!   record_notification_attempt (next attempt per backoff, or expired)
//!   device calls (authenticated session) ── cancel_notifications
//! ```

use std::time::Duration;

use omadm::package0::{Initiator, Notification};
use tokio::net::UdpSocket;
use tracing::{debug, warn};

use crate::dm::session::server_auth;
use crate::state::AppState;
use crate::store::{Device, Lease, Notification as Scheduled, Timestamp};

/// The MIME type of package 0 (WSP code 0x44).
pub const CONTENT_TYPE: &str = "application/vnd.syncml.notification";

/// Notifications claimed per round.
const CLAIM_LIMIT: u32 = 128;
/// How long a claim keeps other nodes off a notification being sent.
const LEASE: Duration = Duration::from_secs(30);
/// Time allowed for one HTTP delivery.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs until `stop` resolves: a round at every poll interval, and at once
/// when woken.
pub(crate) async fn run(state: AppState, stop: impl std::future::Future<Output = ()>) {
    let http = reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .user_agent(concat!("scomo-server/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new());
    let interval = Duration::from_millis(state.config().notify.poll_interval_ms);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(interval) => {}
            () = state.notifier_woken() => {}
        }
        // A full round may leave more due: go again before sleeping.
        while round(&state, &http).await >= CLAIM_LIMIT as usize {}
    }
}

/// One round: claims due notifications and delivers each. Returns how many
/// were claimed.
async fn round(state: &AppState, http: &reqwest::Client) -> usize {
    let now = Timestamp::now();
    let lease = Lease {
        consumer: state.node_id().to_owned(),
        until: now + LEASE,
    };
    let due = match state
        .store()
        .claim_due_notifications(&lease, CLAIM_LIMIT, now)
        .await
    {
        Ok(d) => d,
        Err(e) => {
            warn!(error = %crate::error::ErrorChain(&e), "cannot claim notifications");
            return 0;
        }
    };
    let n = due.len();
    // Concurrently: each delivery waits on the store and the network, and a
    // campaign enqueues thousands at once.
    futures_util::future::join_all(due.into_iter().map(|d| deliver(state, http, d))).await;
    n
}

async fn deliver(state: &AppState, http: &reqwest::Client, n: Scheduled) {
    let store = state.store();
    let result = match store.device(&n.device_id).await {
        Ok(Some(device)) => send_to_device(state, http, &device).await,
        Ok(None) => Err("the device no longer exists".to_owned()),
        Err(e) => Err(format!("store: {e}")),
    };
    let backoff = state.config().notify_backoff();
    match store
        .record_notification_attempt(
            n.id,
            result.as_ref().err().map(String::as_str),
            &backoff,
            Timestamp::now(),
        )
        .await
    {
        Ok(after) => {
            debug!(device = %n.device_id, attempts = after.attempts, state = after.state.as_str(), "notification attempt recorded")
        }
        Err(e) => {
            warn!(error = %crate::error::ErrorChain(&e), "cannot record a notification attempt")
        }
    }
}

/// Builds and sends one package 0; `Err` says why it did not leave.
async fn send_to_device(
    state: &AppState,
    http: &reqwest::Client,
    device: &Device,
) -> Result<(), String> {
    let addr = device
        .notify_addr
        .as_deref()
        .ok_or("the device has no notification address")?;
    let (session_id, bytes) = package0(state, device)?;
    let transport = if addr.starts_with("udp://") {
        "udp"
    } else {
        "http"
    };
    let result = send(http, addr, &bytes).await;
    let outcome = if result.is_ok() { "sent" } else { "failed" };
    metrics::counter!(crate::metrics::NOTIFICATIONS, "transport" => transport, "result" => outcome)
        .increment(1);
    match &result {
        Ok(()) => {
            debug!(device = %device.id, session = format!("{session_id:X}"), %addr, "package 0 sent")
        }
        Err(e) => warn!(device = %device.id, %addr, "package 0 not delivered: {e}"),
    }
    result
}

/// The notification for `device`: a fresh session id, our ServerID, the
/// digest keyed by the device's server credentials (its own or the
/// server-wide default) and the nonce the device last issued to us.
pub(crate) fn package0(state: &AppState, device: &Device) -> Result<(u16, Vec<u8>), String> {
    let config = state.config();
    let auth = server_auth(config, device)
        .ok_or("no server password for this device (set dm.server_password or the device's)")?;
    let session_id = crate::random::notification_session_id();
    let mut n = Notification::new(session_id, config.server_id.clone());
    n.ui_mode = config.ui_mode().map_err(|e| e.to_string())?;
    n.initiator = Initiator::Server;
    let nonce = device.nonces.server.clone().unwrap_or_default();
    let bytes = n
        .encode(&auth.credentials, &nonce)
        .map_err(|e| e.to_string())?;
    Ok((session_id, bytes))
}

async fn send(http: &reqwest::Client, addr: &str, bytes: &[u8]) -> Result<(), String> {
    if let Some(target) = addr.strip_prefix("udp://") {
        let target = target.trim_end_matches('/');
        let peer = tokio::net::lookup_host(target)
            .await
            .map_err(|e| format!("cannot resolve {target}: {e}"))?
            .next()
            .ok_or_else(|| format!("{target} resolves to no address"))?;
        let local = if peer.is_ipv6() {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        };
        let sock = UdpSocket::bind(local)
            .await
            .map_err(|e| format!("cannot open a UDP socket: {e}"))?;
        sock.send_to(bytes, peer)
            .await
            .map_err(|e| format!("UDP send to {peer}: {e}"))?;
        Ok(())
    } else {
        let resp = http
            .post(addr)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(bytes.to_vec())
            .send()
            .await
            .map_err(|e| format!("POST {addr}: {e}"))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("POST {addr}: HTTP {}", resp.status()))
        }
    }
}
