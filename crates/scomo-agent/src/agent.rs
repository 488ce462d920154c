//! The agent loop: periodic client-initiated sessions, sessions answering
//! verified package-0 notifications, sessions that deliver pending SCOMO
//! results (with backoff), the SCOMO executor, and a clean shutdown.
//!
//! Sessions never overlap: one runs at a time, in the task that runs
//! [`Agent::run`]. The executor runs beside it and shares the tree.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use omadm::auth::Credentials;
use omadm::client::{ClientAlert, SessionKind};
use omadm::package0::{NonceUsed, Notification};
use omadm_tree::{HookRouter, Tree};
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use crate::config::AgentConfig;
use crate::device::{DeviceState, StateError};
use crate::notify::NotifyListener;
use crate::scomo_client::{outbox, ClientOptions, CrashMode, ScomoClient, ScomoError, TreeAccess};
use crate::session::{self, Http, HttpSetupError, SessionReport};

/// Why the agent could not start or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// Invalid configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Device state could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// HTTP client setup failed.
    #[error(transparent)]
    Http(#[from] HttpSetupError),
    /// The notification listener could not be bound.
    #[error(transparent)]
    Notify(#[from] crate::notify::BindError),
    /// The SCOMO client could not open its state.
    #[error(transparent)]
    Scomo(#[from] ScomoError),
}

/// A running device.
#[derive(Debug)]
pub struct Agent {
    config: AgentConfig,
    device: Arc<Mutex<DeviceState>>,
    http: Http,
    scomo: ScomoClient,
    last_notified: Mutex<Option<u16>>,
}

/// The executor's view of the tree: edits lock the device state and are
/// saved before the lock is released.
struct DeviceTree(Arc<Mutex<DeviceState>>);

impl TreeAccess for DeviceTree {
    fn edit(&self, f: &mut dyn FnMut(&mut Tree)) {
        let mut d = session::lock(&self.0);
        f(&mut d.tree);
        if let Err(e) = d.save() {
            error!("cannot save the tree: {e}");
        }
    }
}

impl Agent {
    /// Validates the configuration, opens the device state and the SCOMO
    /// client, and places ./SCOMO in the tree.
    pub fn new(config: AgentConfig) -> Result<Agent, AgentError> {
        Agent::with_crash_mode(config, CrashMode::default())
    }

    /// [`Agent::new`] with crash injection (the binary passes
    /// `SCOMO_CRASH_AT`; tests use it to kill the agent at a journaled step).
    pub fn with_crash_mode(config: AgentConfig, crash: CrashMode) -> Result<Agent, AgentError> {
        config.validate()?;
        let scomo = ScomoClient::open_with(
            &config.agent.data_dir,
            config.scomo.clone(),
            ClientOptions {
                crash,
                ..ClientOptions::default()
            },
        )?;
        let mut device = DeviceState::open(&config.agent.data_dir, &config)?;
        scomo.install_mo(&mut device.tree)?;
        device.save()?;
        let http = Http::new(&config)?;
        Ok(Agent {
            config,
            device: Arc::new(Mutex::new(device)),
            http,
            scomo,
            last_notified: Mutex::new(None),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// The device state (tree), shared with the SCOMO executor.
    pub fn device(&self) -> &Arc<Mutex<DeviceState>> {
        &self.device
    }

    /// The SCOMO client.
    pub fn scomo(&self) -> &ScomoClient {
        &self.scomo
    }

    /// Runs one session of `kind`, delivering the SCOMO results waiting in
    /// the outbox; those the server acknowledged leave it.
    pub async fn session(&self, kind: SessionKind) -> Result<SessionReport, AgentError> {
        let alerts: Vec<ClientAlert> = self
            .scomo
            .outbox()
            .pending()
            .into_iter()
            .map(|p| ClientAlert {
                id: p.id,
                alert: p.alert,
            })
            .collect();
        // Fail early on a bad MO root rather than on the first message.
        HookRouter::new()
            .route(self.scomo.root(), self.scomo.hooks())
            .map_err(StateError::Tree)?;
        let scomo = self.scomo.clone();
        let hooks = move || -> Box<dyn omadm_tree::TreeHooks> {
            match HookRouter::new().route(scomo.root(), scomo.hooks()) {
                Ok(router) => Box::new(router),
                Err(_) => Box::new(omadm_tree::NoHooks),
            }
        };
        let report =
            session::run(&self.http, &self.config, &self.device, kind, alerts, &hooks).await?;
        for (id, status) in &report.alerts.delivered {
            info!(alert = id, %status, "result delivered");
            if let Err(e) = self.scomo.outbox().ack(*id) {
                error!("cannot update the alert outbox: {e}");
            }
        }
        Ok(report)
    }

    /// One management round (`scomo agent --once`): a client-initiated
    /// session; then the operations it started run to their end and, while
    /// results are waiting, more sessions report them (a report may bring
    /// the next operation: a job's next step). Operations that
    /// need the network longer than the round stay journaled and resume at
    /// the next start.
    pub async fn run_once(&self) -> Result<SessionReport, AgentError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let executor = self.spawn_executor(stop_rx);
        let mut report = self.session(new_client_kind()).await;
        // A session that reports results may start the next operation (a
        // job's next step): go on while there is something to report.
        for _ in 0..MAX_REPORT_SESSIONS {
            if !matches!(&report, Ok(r) if r.completed()) {
                break;
            }
            self.scomo.wait_idle().await;
            if self.scomo.outbox().pending().is_empty() {
                break;
            }
            report = self.session(new_client_kind()).await;
        }
        let _ = stop_tx.send(true);
        let _ = executor.await;
        report
    }

    fn spawn_executor(&self, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let scomo = self.scomo.clone();
        let tree: Arc<dyn TreeAccess> = Arc::new(DeviceTree(self.device.clone()));
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = scomo.run(tree, shutdown).await {
                error!("SCOMO executor: {e}");
            }
        })
    }

    /// Binds the configured notification listener, if any.
    pub async fn bind_notify(&self) -> Result<Option<NotifyListener>, AgentError> {
        match self.config.agent.notify_listen.as_str() {
            "" => Ok(None),
            spec => Ok(Some(NotifyListener::bind(spec).await?)),
        }
    }

    /// Checks a package-0 notification against the server credentials and
    /// the stored nonce (then the fallback nonces). Returns the session id
    /// to answer with, or why it is ignored. A repeat of the session id just
    /// answered is ignored (one session per notification).
    pub fn verify_notification(&self, bytes: &[u8]) -> Result<u16, String> {
        let received = Notification::parse(bytes).map_err(|e| e.to_string())?;
        let n = &received.notification;
        if n.server_id != self.config.server.server_id {
            return Err(format!(
                "notification from unknown server id {:?}",
                n.server_id
            ));
        }
        let creds = Credentials::new(
            self.config.server.server_id.clone(),
            self.config.server.server_password.clone(),
        );
        let mut device = session::lock(&self.device);
        let mut nonces = device.nonces();
        let used = received
            .verify(&creds, nonces.server_nonce.as_bytes())
            .map_err(|e| e.to_string())?;
        if used != NonceUsed::Stored {
            // The fallback nonce worked: run the session with it; the session's
            // challenges issue fresh nonces (DM_Notification §6).
            nonces.server_nonce = used.nonce(nonces.server_nonce.as_bytes());
            device.set_nonces(&nonces).map_err(|e| e.to_string())?;
        }
        drop(device);
        let mut last = self
            .last_notified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *last == Some(n.session_id) {
            return Err(format!("session {:X} was already started", n.session_id));
        }
        *last = Some(n.session_id);
        Ok(n.session_id)
    }

    /// Runs until `shutdown` resolves: a session every poll interval, one
    /// per verified notification from `listener`, and one whenever SCOMO
    /// results wait in the outbox (retried with backoff while the server
    /// cannot be reached).
    pub async fn run(
        &self,
        listener: Option<NotifyListener>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), AgentError> {
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(16);
        let listen_task = listener.map(|l| {
            info!(listen = %l.url(), "listening for package 0");
            tokio::spawn(l.serve(tx))
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let executor = self.spawn_executor(stop_rx);
        let mut alerts = self.scomo.alerts_pending();
        let mut poll = match self.config.agent.poll_interval_secs {
            0 => None,
            s => Some(tokio::time::interval(Duration::from_secs(s))),
        };
        let (retry_min, retry_max) = (
            Duration::from_secs(self.config.scomo.alert_retry_min_secs),
            Duration::from_secs(self.config.scomo.alert_retry_max_secs),
        );
        let mut failures = 0u32;
        let mut retry_at: Option<tokio::time::Instant> = None;
        tokio::pin!(shutdown);
        let result = loop {
            let waiting = *alerts.borrow_and_update() > 0;
            let next_poll = async {
                match &mut poll {
                    Some(i) => {
                        i.tick().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let deliver = async {
                match (waiting, retry_at) {
                    (true, Some(at)) => tokio::time::sleep_until(at).await,
                    (true, None) => {}
                    (false, _) => std::future::pending::<()>().await,
                }
            };
            let kind = tokio::select! {
                () = &mut shutdown => break Ok(()),
                () = next_poll => new_client_kind(),
                () = deliver => new_client_kind(),
                changed = alerts.changed() => {
                    if changed.is_err() {
                        break Ok(());
                    }
                    continue;
                }
                Some(bytes) = rx.recv() => match self.verify_notification(&bytes) {
                    Ok(session_id) => {
                        info!(session = format!("{session_id:X}"), "package 0 verified");
                        SessionKind::ServerInitiated { session_id }
                    }
                    Err(reason) => {
                        warn!("package 0 ignored: {reason}");
                        continue;
                    }
                },
            };
            match self.session(kind).await {
                // Results still waiting after a session (not acknowledged, or
                // the session failed) are retried with backoff, not at once.
                Ok(report) if report.completed() && self.scomo.outbox().pending().is_empty() => {
                    failures = 0;
                    retry_at = None;
                }
                Ok(report) => {
                    failures += 1;
                    let delay = outbox::retry_delay(failures, retry_min, retry_max);
                    warn!(outcome = ?report.outcome, retry_in = ?delay, "results not delivered yet");
                    retry_at = Some(tokio::time::Instant::now() + delay);
                }
                Err(e) => break Err(e),
            }
        };
        let _ = stop_tx.send(true);
        let _ = executor.await;
        if let Some(t) = listen_task {
            t.abort();
        }
        info!("agent stopped");
        result
    }
}

/// Sessions `run_once` opens to report results, at most.
const MAX_REPORT_SESSIONS: usize = 8;

fn new_client_kind() -> SessionKind {
    SessionKind::ClientInitiated {
        session_id: session::new_session_id(),
    }
}
