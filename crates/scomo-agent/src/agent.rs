//! The agent loop: periodic client-initiated sessions, sessions answering
//! verified package-0 notifications, and a clean shutdown.
//!
//! Sessions never overlap: one runs at a time, in the task that runs
//! [`Agent::run`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use omadm::auth::Credentials;
use omadm::client::{ClientAlert, SessionKind};
use omadm::package0::{NonceUsed, Notification};
use omadm_tree::{NoHooks, TreeHooks};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::config::AgentConfig;
use crate::device::{DeviceState, StateError};
use crate::notify::NotifyListener;
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
}

/// A running device.
#[derive(Debug)]
pub struct Agent {
    config: AgentConfig,
    device: Arc<Mutex<DeviceState>>,
    http: Http,
    last_notified: Mutex<Option<u16>>,
}

impl Agent {
    /// Validates the configuration and opens the device state.
    pub fn new(config: AgentConfig) -> Result<Agent, AgentError> {
        config.validate()?;
        let device = DeviceState::open(&config.agent.data_dir, &config)?;
        let http = Http::new(&config)?;
        Ok(Agent {
            config,
            device: Arc::new(Mutex::new(device)),
            http,
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

    /// Runs one session of `kind`, delivering `alerts`.
    pub async fn session(
        &self,
        kind: SessionKind,
        alerts: Vec<ClientAlert>,
        hooks: &mut (dyn TreeHooks + Send),
    ) -> Result<SessionReport, AgentError> {
        Ok(session::run(&self.http, &self.config, &self.device, kind, alerts, hooks).await?)
    }

    /// One client-initiated session (`scomo agent --once`).
    pub async fn run_once(&self) -> Result<SessionReport, AgentError> {
        let kind = SessionKind::ClientInitiated {
            session_id: session::new_session_id(),
        };
        self.session(kind, Vec::new(), &mut NoHooks).await
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

    /// Runs until `shutdown` resolves: a session every poll interval, and
    /// one per verified notification from `listener`.
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
        let period = match self.config.agent.poll_interval_secs {
            0 => None,
            s => Some(Duration::from_secs(s)),
        };
        let mut poll = period.map(tokio::time::interval);
        tokio::pin!(shutdown);
        let result = loop {
            let next_poll = async {
                match &mut poll {
                    Some(i) => {
                        i.tick().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = &mut shutdown => break Ok(()),
                () = next_poll => {
                    let kind = SessionKind::ClientInitiated { session_id: session::new_session_id() };
                    if let Err(e) = self.session(kind, Vec::new(), &mut NoHooks).await {
                        break Err(e);
                    }
                }
                Some(bytes) = rx.recv() => match self.verify_notification(&bytes) {
                    Ok(session_id) => {
                        info!(session = format!("{session_id:X}"), "package 0 verified");
                        let kind = SessionKind::ServerInitiated { session_id };
                        if let Err(e) = self.session(kind, Vec::new(), &mut NoHooks).await {
                            break Err(e);
                        }
                    }
                    Err(reason) => warn!("package 0 ignored: {reason}"),
                },
            }
        };
        if let Some(t) = listen_task {
            t.abort();
        }
        info!("agent stopped");
        result
    }
}
