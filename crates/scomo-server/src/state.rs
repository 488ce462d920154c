//! What every handler and background task shares: the configuration, the
//! store, the sessions this node holds, and the node's identity.

use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::config::{Config, ConfigError};
use crate::dm::table::SessionTable;
use crate::store::{self, Store, StoreError, Timestamp};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not be opened.
    #[error("cannot open the database {url}")]
    Store {
        /// The URL, password redacted.
        url: String,
        /// The cause.
        #[source]
        source: StoreError,
    },
    /// A file in the data directory could not be read or written.
    #[error("{what} {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The TLS certificate or key could not be loaded.
    #[error("cannot load TLS {what} from {path}: {reason}")]
    Tls {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// Settling the sessions of a previous run failed.
    #[error("cannot settle the sessions of this node's previous run")]
    Recover(#[source] StoreError),
}

/// The shared state of one server node. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    store: Arc<dyn Store>,
    node_id: String,
    public_url: OnceLock<String>,
    sessions: SessionTable,
    metrics: PrometheusHandle,
    notifier: Notify,
    campaigns: Notify,
    admin_token: Option<String>,
    events: crate::events::Events,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("node_id", &self.inner.node_id)
            .field("public_url", &self.inner.public_url.get())
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Opens the node: validates `config`, creates the data directory, opens
    /// (and migrates) the store, settles the sessions this node held before a
    /// restart, and on first start writes an admin API token to
    /// `data_dir/admin.token` (mode 0600).
    pub async fn open(config: Config) -> Result<AppState, StartError> {
        config.validate()?;
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::Io {
            what: "cannot create the data directory",
            path: config.data_dir.display().to_string(),
            source,
        })?;
        let store_config = config.store_config();
        let store = store::open(&store_config)
            .await
            .map_err(|source| StartError::Store {
                url: crate::config::redact_url(&store_config.url),
                source,
            })?;
        Self::with_store(config, store).await
    }

    /// Like [`AppState::open`] on a store the caller opened.
    pub async fn with_store(config: Config, store: Arc<dyn Store>) -> Result<AppState, StartError> {
        config.validate()?;
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::Io {
            what: "cannot create the data directory",
            path: config.data_dir.display().to_string(),
            source,
        })?;
        let node_id = match &config.node_id {
            Some(n) => n.clone(),
            None => load_or_create_node_id(&config.node_id_path())?,
        };
        let now = Timestamp::now();
        let report = store
            .close_node_sessions(&node_id, now)
            .await
            .map_err(StartError::Recover)?;
        if report.sessions_closed > 0 {
            warn!(
                node = %node_id,
                sessions = report.sessions_closed,
                requeued = report.requeued,
                completed = report.completed,
                unacknowledged = report.unacknowledged,
                "settled sessions left open by this node's previous run"
            );
        }
        let stale = crate::packages::remove_stale_uploads(&config.packages_dir());
        if stale > 0 {
            info!(
                files = stale,
                "removed unfinished uploads of the previous run"
            );
        }
        let admin_token = ensure_admin_token(&config, store.as_ref()).await?;
        let public_url = OnceLock::new();
        if let Some(u) = &config.public_url {
            let _ = public_url.set(u.trim_end_matches('/').to_owned());
        }
        let sessions = SessionTable::new(config.dm.max_sessions);
        Ok(AppState {
            inner: Arc::new(Inner {
                config,
                store,
                node_id,
                public_url,
                sessions,
                metrics: crate::metrics::handle(),
                notifier: Notify::new(),
                campaigns: Notify::new(),
                admin_token,
                events: crate::events::Events::new(),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// This node's id in the session audit log.
    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    /// This node's public base URL, once known.
    pub fn public_url(&self) -> Option<&str> {
        self.inner.public_url.get().map(String::as_str)
    }

    /// The admin token created by this start (first start only); it is also
    /// in `data_dir/admin.token`.
    pub fn created_admin_token(&self) -> Option<&str> {
        self.inner.admin_token.as_deref()
    }

    /// Sets the public URL if the configuration left it unset.
    pub(crate) fn set_public_url(&self, url: String) {
        let _ = self.inner.public_url.set(url);
    }

    pub(crate) fn sessions(&self) -> &SessionTable {
        &self.inner.sessions
    }

    pub(crate) fn metrics(&self) -> &PrometheusHandle {
        &self.inner.metrics
    }

    /// Wakes the notifier (a notification was asked for).
    pub(crate) fn wake_notifier(&self) {
        self.inner.notifier.notify_one();
    }

    /// Publishes a live event.
    pub(crate) fn publish(&self, ev: crate::events::ApiEvent) {
        self.inner.events.publish(ev);
    }

    /// A receiver of live events.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<crate::events::ApiEvent> {
        self.inner.events.subscribe()
    }

    pub(crate) async fn notifier_woken(&self) {
        self.inner.notifier.notified().await;
    }

    /// Wakes this node's campaign driver (a campaign was created or given
    /// a command).
    pub(crate) fn wake_campaigns(&self) {
        self.inner.campaigns.notify_one();
    }

    pub(crate) async fn campaigns_woken(&self) {
        self.inner.campaigns.notified().await;
    }
}

/// Reads `data_dir/node-id`, or makes one (`node-` + 8 hex digits).
fn load_or_create_node_id(path: &Path) -> Result<String, StartError> {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(StartError::Io {
                what: "cannot read",
                path: path.display().to_string(),
                source,
            })
        }
    }
    let mut b = [0u8; 4];
    crate::random::fill(&mut b);
    let id = format!("node-{:08x}", u32::from_be_bytes(b));
    std::fs::write(path, format!("{id}\n")).map_err(|source| StartError::Io {
        what: "cannot write",
        path: path.display().to_string(),
        source,
    })?;
    Ok(id)
}

/// On first start (no `admin.token` file) creates a token named `admin` and
/// writes it there, readable by the owner only.
async fn ensure_admin_token(
    config: &Config,
    store: &dyn Store,
) -> Result<Option<String>, StartError> {
    let path = config.admin_token_path();
    if path.exists() {
        return Ok(None);
    }
    let (_, secret) = store
        .create_token("admin", Timestamp::now())
        .await
        .map_err(|source| StartError::Store {
            url: crate::config::redact_url(&config.effective_database_url()),
            source,
        })?;
    let io = |source| StartError::Io {
        what: "cannot write the admin token to",
        path: path.display().to_string(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut f = options.open(&path).map_err(io)?;
    f.write_all(format!("{}\n", secret.expose()).as_bytes())
        .map_err(io)?;
    f.sync_all().map_err(io)?;
    info!("wrote an admin API token to {}", path.display());
    Ok(Some(secret.expose().to_owned()))
}
