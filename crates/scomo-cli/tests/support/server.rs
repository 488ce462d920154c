//! A minimal DM server built from the omadm server engine behind axum, and
//! the package files the agent downloads.
//!
//! * `POST /dm` opens a new session; the server pins it to
//!   `/dm/s/<n>` with RespURI, so a session the agent abandoned (it died)
//!   never swallows the next one.
//! * Each new session that reaches the command phase takes the next queued
//!   round of commands for its device; later sessions get none.
//! * Every Status (by command id), every Generic Alert, and every package
//!   GET (with its Range / If-Range) is recorded.
//! * `GET /pkg/<name>` serves a package in 16 KiB frames, with a strong
//!   ETag, `Range: bytes=N-` (206) and `If-Range`.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode as HttpStatus};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use omadm::auth::{AuthType, Credentials};
use omadm::server::{DeviceAccount, ServerConfig, ServerEvent, ServerSession};
use omadm::{AuthConfig, Incoming, NonceState};
use omadm_wire::model::{Alert, Command, Data, Exec, Item, ItemCommand, Location, Meta};
use sha2::{Digest, Sha256};

pub(crate) const SERVER_ID: &str = "crash-matrix";
pub(crate) const USERNAME: &str = "dev";
pub(crate) const PASSWORD: &str = "client-secret";
pub(crate) const SERVER_PASSWORD: &str = "server-secret";

/// What the server knows and saw of one device.
#[derive(Clone, Debug)]
pub(crate) struct DeviceLog {
    account: DeviceAccount,
    rounds: VecDeque<Vec<(u64, Command)>>,
    next_cmd: u64,
    /// (command id, status code) of every Status for a command we sent.
    pub(crate) statuses: Vec<(u64, u16)>,
    /// Every client alert (Generic Alerts carry the SCOMO results).
    pub(crate) alerts: Vec<Alert>,
    /// The session that takes the next round gets no reply to any later
    /// message (see [`Mini::hold_next_round`]).
    hold_next_round: bool,
}

/// One package download request.
#[derive(Clone, Debug)]
pub(crate) struct PkgGet {
    pub(crate) name: String,
    pub(crate) range: Option<String>,
    pub(crate) if_range: Option<String>,
    pub(crate) status: u16,
}

struct Live {
    device: String,
    session: ServerSession,
    fed: bool,
    /// Process the device's messages after the round, never answer them.
    hold: bool,
}

#[derive(Default)]
struct Inner {
    devices: HashMap<String, DeviceLog>,
    live: HashMap<u64, Live>,
    next_live: u64,
    files: HashMap<String, Vec<u8>>,
    gets: Vec<PkgGet>,
}

/// The server.
#[derive(Clone)]
pub(crate) struct Mini {
    base: String,
    inner: Arc<Mutex<Inner>>,
}

impl Mini {
    pub(crate) async fn start() -> Mini {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mini = Mini {
            base,
            inner: Arc::new(Mutex::new(Inner::default())),
        };
        let app = Router::new()
            .route("/dm", post(dm_new))
            .route("/dm/s/{n}", post(dm_continue))
            .route("/pkg/{name}", get(pkg))
            .with_state(mini.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        mini
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }

    /// The DM endpoint devices start sessions at.
    pub(crate) fn dm_url(&self) -> String {
        format!("{}/dm", self.base)
    }

    /// Provisions a device (MD5 both ways, as `scomo agent init` sets up).
    pub(crate) fn add_device(&self, id: &str) {
        let account = DeviceAccount {
            client_auth: Some(AuthConfig::new(
                AuthType::Md5,
                Credentials::new(USERNAME, PASSWORD),
            )),
            server_auth: Some(AuthConfig::new(
                AuthType::Md5,
                Credentials::new(SERVER_ID, SERVER_PASSWORD),
            )),
            nonces: NonceState::default(),
        };
        let log = DeviceLog {
            account,
            rounds: VecDeque::new(),
            next_cmd: 1,
            statuses: Vec::new(),
            alerts: Vec::new(),
            hold_next_round: false,
        };
        let old = self.lock().devices.insert(id.to_owned(), log);
        assert!(old.is_none(), "device {id} provisioned twice");
    }

    /// Queues a round for the device's next session; returns the command
    /// ids its Statuses will carry.
    pub(crate) fn queue_round(&self, device: &str, commands: Vec<Command>) -> Vec<u64> {
        let mut inner = self.lock();
        let log = inner.devices.get_mut(device).expect("unknown device");
        let mut round = Vec::new();
        for c in commands {
            round.push((log.next_cmd, c));
            log.next_cmd += 1;
        }
        let ids = round.iter().map(|(id, _)| *id).collect();
        log.rounds.push_back(round);
        ids
    }

    /// The session that takes the device's next round processes every
    /// later message of the device (statuses, nonces) but never answers it:
    /// the device waits for a reply until it dies.
    pub(crate) fn hold_next_round(&self, device: &str) {
        let mut inner = self.lock();
        let log = inner.devices.get_mut(device).expect("unknown device");
        log.hold_next_round = true;
    }

    /// What the server saw of `device` so far.
    pub(crate) fn device(&self, device: &str) -> DeviceLog {
        self.lock()
            .devices
            .get(device)
            .cloned()
            .expect("unknown device")
    }

    /// Serves `body` at `/pkg/<name>`; returns its URL.
    pub(crate) fn serve(&self, name: &str, body: Vec<u8>) -> String {
        self.lock().files.insert(name.to_owned(), body);
        format!("{}/pkg/{name}", self.base)
    }

    /// The package requests so far.
    pub(crate) fn gets(&self) -> Vec<PkgGet> {
        self.lock().gets.clone()
    }
}

/// Distinct bytes for nonces (the engine asks for randomness).
fn rng(buf: &mut [u8]) {
    static STATE: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    let mut x = STATE.fetch_add(0x6A09_E667_F3BC_C909, Ordering::Relaxed);
    for b in buf {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

async fn dm_new(State(m): State<Mini>, headers: HeaderMap, body: Bytes) -> Response {
    reply(dm(&m, None, &headers, &body)).await
}

async fn dm_continue(
    State(m): State<Mini>,
    UrlPath(n): UrlPath<u64>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    reply(dm(&m, Some(n), &headers, &body)).await
}

/// The reply, or none ever (a held session).
async fn reply(r: Option<Response>) -> Response {
    match r {
        Some(r) => r,
        None => std::future::pending().await,
    }
}

fn dm(m: &Mini, n: Option<u64>, headers: &HeaderMap, body: &[u8]) -> Option<Response> {
    let ct = header(headers, "content-type");
    let hmac = header(headers, "x-syncml-hmac");
    let incoming = Incoming {
        body,
        content_type: ct.as_deref(),
        hmac: hmac.as_deref(),
    };
    let mut guard = m.lock();
    let inner = &mut *guard;
    let n = match n {
        Some(n) => {
            let Some(live) = inner.live.get_mut(&n) else {
                return Some((HttpStatus::NOT_FOUND, "no such session").into_response());
            };
            if let Err(e) = live
                .session
                .handle_message(Instant::now(), incoming, &mut rng)
            {
                return Some((HttpStatus::BAD_REQUEST, e.to_string()).into_response());
            }
            n
        }
        None => {
            let n = inner.next_live;
            inner.next_live += 1;
            let mut cfg = ServerConfig::new(m.dm_url());
            cfg.resp_uri = Some(format!("{}/s/{n}", m.dm_url()));
            let accepted = match ServerSession::accept(cfg, Instant::now(), incoming) {
                Ok(a) => a,
                Err(e) => return Some((HttpStatus::BAD_REQUEST, e.to_string()).into_response()),
            };
            let device = accepted.device_id().to_owned();
            let account = inner.devices.get(&device).map(|d| d.account.clone());
            let session = accepted.into_session(account, &mut rng);
            inner.live.insert(
                n,
                Live {
                    device,
                    session,
                    fed: false,
                    hold: false,
                },
            );
            n
        }
    };
    let Inner { devices, live, .. } = inner;
    let l = live.get_mut(&n).unwrap();
    let mut dev = devices.get_mut(&l.device);
    while let Some(ev) = l.session.poll_event() {
        let Some(d) = dev.as_deref_mut() else {
            continue;
        };
        match ev {
            ServerEvent::Status { id, status, .. } => d.statuses.push((id, status.data.0)),
            ServerEvent::Alert { alert, .. } => d.alerts.push(alert),
            ServerEvent::NoncesChanged(nonces) => d.account.nonces = nonces,
            _ => {}
        }
    }
    if l.hold {
        return None;
    }
    if l.session.is_ready_for_commands() && !l.fed {
        l.fed = true;
        if let Some(d) = dev.as_deref_mut() {
            if let Some(round) = d.rounds.pop_front() {
                for (id, c) in round {
                    l.session.queue_command(id, c);
                }
                l.hold = std::mem::take(&mut d.hold_next_round);
            }
        }
    }
    let response = l.session.poll_transmit();
    // Nonces we issue take effect once the message carrying them is built.
    while let Some(ev) = l.session.poll_event() {
        if let (ServerEvent::NoncesChanged(nonces), Some(d)) = (ev, dev.as_deref_mut()) {
            d.account.nonces = nonces;
        }
    }
    if l.session.is_finished() {
        live.remove(&n);
    }
    Some(match response {
        Some(r) => {
            let mut h = HeaderMap::new();
            h.insert("content-type", r.content_type.parse().unwrap());
            if let Some(mac) = r.hmac {
                h.insert("x-syncml-hmac", mac.parse().unwrap());
            }
            (h, r.body).into_response()
        }
        None => HttpStatus::NO_CONTENT.into_response(),
    })
}

/// Hex SHA-256.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn pkg(
    State(m): State<Mini>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let range = header(&headers, "range");
    let if_range = header(&headers, "if-range");
    let mut inner = m.lock();
    let file = inner.files.get(&name).cloned();
    let mut record = |status: u16| {
        inner.gets.push(PkgGet {
            name: name.clone(),
            range: range.clone(),
            if_range: if_range.clone(),
            status,
        });
    };
    let Some(file) = file else {
        record(404);
        return HttpStatus::NOT_FOUND.into_response();
    };
    let etag = format!("\"{}\"", &sha256_hex(&file)[..16]);
    let total = file.len();
    let from = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|r| r.parse::<usize>().ok())
        // If-Range: the range only while the object is unchanged.
        .filter(|_| if_range.as_deref().is_none_or(|v| v == etag));
    if from.is_some_and(|f| f >= total) {
        record(416);
        return Response::builder()
            .status(416)
            .header("content-range", format!("bytes */{total}"))
            .body(Body::empty())
            .unwrap();
    }
    let start = from.unwrap_or(0);
    let code: u16 = if from.is_some() { 206 } else { 200 };
    record(code);
    drop(inner);
    let frames: Vec<Result<Bytes, Infallible>> = file[start..]
        .chunks(16 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let mut resp = Response::builder()
        .status(code)
        .header("etag", &etag)
        .header("accept-ranges", "bytes")
        .header("content-type", "application/gzip")
        .header("content-length", (total - start).to_string());
    if code == 206 {
        resp = resp.header(
            "content-range",
            format!("bytes {start}-{}/{total}", total - 1),
        );
    }
    resp.body(Body::from_stream(futures_util::stream::iter(frames)))
        .unwrap()
}

// ---- commands ----------------------------------------------------------------------

fn target(uri: &str) -> Item {
    Item {
        target: Some(Location::uri(uri)),
        ..Item::default()
    }
}

/// Add of an interior node (Format node, empty Data).
pub(crate) fn add_node(uri: &str) -> Command {
    Command::Add(ItemCommand {
        items: vec![Item {
            meta: Some(Meta::format("node")),
            data: Some(Data::Text(String::new())),
            ..target(uri)
        }],
        ..ItemCommand::default()
    })
}

/// Add of a chr leaf.
pub(crate) fn add_leaf(uri: &str, value: &str) -> Command {
    Command::Add(ItemCommand {
        items: vec![Item {
            meta: Some(Meta::format("chr")),
            data: Some(Data::Text(value.to_owned())),
            ..target(uri)
        }],
        ..ItemCommand::default()
    })
}

/// Exec with a Correlator.
pub(crate) fn exec(uri: &str, correlator: &str) -> Command {
    Command::Exec(Exec {
        correlator: Some(correlator.to_owned()),
        items: vec![target(uri)],
        ..Exec::default()
    })
}
