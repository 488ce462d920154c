//! One DM session over HTTP(S): the sans-IO [`ClientSession`] driven by
//! real POSTs, with the management tree answering the server's commands.

use std::sync::Mutex;
use std::time::Duration;

use omadm::client::{
    AlertReport, ClientAlert, ClientConfig, ClientEvent, ClientOutcome, ClientSession, Request,
    SessionKind, SessionStart,
};
use omadm::handler::DeviceHandler;
use omadm::Incoming;
use omadm_tree::{ServerCtx, Tree, TreeHooks};
use omadm_wire::model::Command;
use tracing::{debug, info, warn, Instrument};

use crate::config::AgentConfig;
use crate::device::{auth_configs, DeviceState, StateError};

/// The HTTP client the agent uses for DM sessions.
#[derive(Clone, Debug)]
pub struct Http {
    client: reqwest::Client,
}

/// Why the HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpSetupError {
    /// The CA file could not be read.
    #[error("cannot read CA certificate {path}: {source}")]
    CaFile {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The CA file is not PEM or the client could not be built.
    #[error("cannot set up HTTPS: {0}")]
    Tls(#[from] reqwest::Error),
}

impl Http {
    /// A client with rustls, trusting `ca_cert` in addition to the
    /// platform's web roots when given.
    pub fn new(config: &AgentConfig) -> Result<Http, HttpSetupError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .user_agent(concat!("scomo-agent/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &config.server.ca_cert {
            let pem = std::fs::read(path).map_err(|source| HttpSetupError::CaFile {
                path: path.display().to_string(),
                source,
            })?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        Ok(Http {
            client: builder.build()?,
        })
    }

    /// The underlying client (downloads share its connection pool).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    async fn post(&self, req: &Request) -> Result<HttpReply, String> {
        let mut r = self
            .client
            .post(&req.url)
            .header(reqwest::header::CONTENT_TYPE, req.content_type)
            .header(reqwest::header::ACCEPT, req.content_type)
            .body(req.body.clone());
        if let Some(h) = &req.hmac {
            r = r.header("x-syncml-hmac", h);
        }
        let resp = r
            .send()
            .await
            .map_err(|e| format!("POST {}: {e}", req.url))?;
        let status = resp.status();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header("content-type");
        let hmac = header("x-syncml-hmac");
        let body = resp
            .bytes()
            .await
            .map_err(|e| format!("reading the reply: {e}"))?;
        if !status.is_success() {
            return Err(format!(
                "the server answered HTTP {status}: {}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(200)
                    .collect::<String>()
            ));
        }
        Ok(HttpReply {
            content_type,
            hmac,
            body: body.to_vec(),
        })
    }
}

struct HttpReply {
    content_type: Option<String>,
    hmac: Option<String>,
    body: Vec<u8>,
}

/// How a session went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionReport {
    /// The SessionID used.
    pub session_id: String,
    /// How it ended.
    pub outcome: ClientOutcome,
    /// Which client alerts the server acknowledged.
    pub alerts: AlertReport,
    /// Messages sent.
    pub messages: u32,
}

impl SessionReport {
    /// Whether the session completed normally.
    pub fn completed(&self) -> bool {
        self.outcome == ClientOutcome::Completed
    }
}

/// Answers the server's commands from a management tree: the
/// [`DeviceHandler`] of a client session over an `omadm_tree::Tree` and
/// the hooks of its management objects (the agent's and the fleet
/// simulator's).
pub struct TreeHandler<'a> {
    tree: &'a mut Tree,
    hooks: &'a mut dyn TreeHooks,
    now: u64,
}

impl<'a> TreeHandler<'a> {
    /// A handler applying commands to `tree` with `hooks`, at unix time
    /// `now` (seconds).
    pub fn new(tree: &'a mut Tree, hooks: &'a mut dyn TreeHooks, now: u64) -> TreeHandler<'a> {
        TreeHandler { tree, hooks, now }
    }
}

impl DeviceHandler for TreeHandler<'_> {
    fn execute(&mut self, server_id: &str, cmd: &Command) -> Vec<Command> {
        let ctx = ServerCtx {
            server_id,
            msg_ref: 0,
            now: self.now,
        };
        self.tree
            .apply(cmd, &ctx, self.hooks)
            .into_iter()
            .map(|reply| {
                // The session knows the MsgRef; let it fill it in.
                let mut c = reply.into_command();
                match &mut c {
                    Command::Status(s) => s.msg_ref = None,
                    Command::Results(r) => r.msg_ref = None,
                    _ => {}
                }
                c
            })
            .collect()
    }
}

/// Runs one session to its end. The tree is locked only while a server
/// message is processed, and saved after each one.
pub async fn run(
    http: &Http,
    config: &AgentConfig,
    device: &Mutex<DeviceState>,
    kind: SessionKind,
    alerts: Vec<ClientAlert>,
    hooks: &(dyn Fn() -> Box<dyn TreeHooks> + Sync),
) -> Result<SessionReport, StateError> {
    let (client_auth, server_auth) = auth_configs(config);
    let (nonces, dev_info) = {
        let d = lock(device);
        (d.nonces(), d.dev_info())
    };
    let mut cfg = ClientConfig::new(
        &config.device.id,
        &config.server.url,
        &config.server.server_id,
    );
    cfg.client_auth = Some(client_auth);
    cfg.server_auth = Some(server_auth);
    cfg.encoding = config.server.encoding.into();
    cfg.max_msg_size = u64::from(config.agent.max_msg_size);
    cfg.max_obj_size = Some(config.agent.max_obj_size);
    cfg.assumed_server_max_msg_size = Some(u64::from(config.agent.max_msg_size));
    let previous = lock(device).previous_server_nonce();
    let mut session = ClientSession::new(
        cfg,
        SessionStart {
            kind,
            dev_info,
            alerts,
            nonces,
        },
    );
    session.set_previous_server_nonce(previous);
    let span = tracing::info_span!("dm_session", device = %config.device.id, session = %session.session_id());
    exchange(http, device, &mut session, hooks)
        .instrument(span)
        .await
}

/// The message loop of [`run`].
async fn exchange(
    http: &Http,
    device: &Mutex<DeviceState>,
    session: &mut ClientSession,
    hooks: &(dyn Fn() -> Box<dyn TreeHooks> + Sync),
) -> Result<SessionReport, StateError> {
    let mut messages = 0u32;
    while let Some(req) = session.poll_transmit() {
        messages += 1;
        // A nonce we issue takes effect as the message carrying it is built:
        // save it before the message leaves, so a crash after the server
        // has it cannot leave us expecting the old one.
        persist_events(session, &mut lock(device))?;
        debug!(msg = messages, bytes = req.body.len(), url = %req.url, "sending");
        let reply = match http.post(&req).await {
            Ok(r) => r,
            Err(e) => {
                warn!("{e}");
                session.transport_failed(e);
                break;
            }
        };
        let mut d = lock(device);
        let now = unix_now();
        let DeviceState { tree, .. } = &mut *d;
        // Hooks are built per message: they live only while the tree is locked.
        let mut h = hooks();
        let mut handler = TreeHandler::new(tree, &mut *h, now);
        let mut rng = |buf: &mut [u8]| fill_random(buf);
        let result = session.handle_response(
            Incoming {
                body: &reply.body,
                content_type: reply.content_type.as_deref(),
                hmac: reply.hmac.as_deref(),
            },
            &mut handler,
            &mut rng,
        );
        if let Err(e) = result {
            warn!("session error: {e}");
        }
        persist_events(session, &mut d)?;
    }
    let outcome = session
        .outcome()
        .cloned()
        .unwrap_or(ClientOutcome::AbortedByClient);
    info!(?outcome, messages, "session finished");
    Ok(SessionReport {
        session_id: session.session_id().to_owned(),
        outcome,
        alerts: session.alert_report(),
        messages,
    })
}

/// Applies the session's events to the device state and saves it: new
/// nonces, and the server nonce still accepted beside the current one.
fn persist_events(session: &mut ClientSession, d: &mut DeviceState) -> Result<(), StateError> {
    while let Some(ev) = session.poll_event() {
        match ev {
            ClientEvent::NoncesChanged(n) => d.set_nonces(&n)?,
            ClientEvent::Ended(outcome) => debug!(?outcome, "session ended"),
            other => debug!(?other, "session event"),
        }
    }
    d.set_previous_server_nonce(session.previous_server_nonce().cloned());
    d.save()
}

/// Locks the device state; a panic in another holder does not poison the
/// agent (the tree on disk is always whole).
pub(crate) fn lock(device: &Mutex<DeviceState>) -> std::sync::MutexGuard<'_, DeviceState> {
    device
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Fills `buf` from the operating system's generator (nonces, session ids).
pub fn fill_random(buf: &mut [u8]) {
    if getrandom::fill(buf).is_err() {
        // No OS randomness is a broken platform; fall back to time-seeded
        // bytes rather than zeros so nonces still differ.
        let mut x = unix_now() ^ u64::from(std::process::id());
        for b in buf {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
    }
}

/// A fresh client-initiated SessionID (hex, 4 digits).
pub fn new_session_id() -> String {
    let mut b = [0u8; 2];
    fill_random(&mut b);
    format!("{:X}", u16::from_be_bytes(b).max(1))
}
