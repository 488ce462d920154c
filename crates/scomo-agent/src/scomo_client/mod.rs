//! The device-side SCOMO client (`SCOMO.md`, `DLOTA.md`): the `./SCOMO`
//! management object, the executor that carries out its primitives, and
//! the outbox of OperationComplete alerts.
//!
//! ```text
//!  DM session ── Tree::apply ──▶ ScomoHooks ── Exec: journal, 202 ──▶ queue
//!      ▲                          (check/after/changed: entries, Data)    │
//!      │                                                                   ▼
//!      │   outbox.pending() ◀── Outbox ◀── alert ── executor (run): confirm, download
//!      └── outbox.ack(id)        (persisted)              (HTTP, DL OTA), validate,
//!                                                          stage, commit, activate
//!                                                          ─▶ environments (archive, command)
//!                                                          ─▶ TreeAccess (Status, State, Deployed)
//! ```
//!
//! Wiring, for the agent runtime:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use scomo_agent::scomo_client::{ScomoClient, ScomoConfig, SharedTree, TreeAccess};
//! # async fn demo(data_dir: &std::path::Path, mut tree: omadm_tree::Tree) -> Result<(), Box<dyn std::error::Error>> {
//! let client = ScomoClient::open(data_dir, ScomoConfig::default())?; // recovers the journal
//! client.install_mo(&mut tree)?;                                      // first start and after load
//! let shared = Arc::new(SharedTree::new(tree, None));
//! // The session: HookRouter::new().route(client.root(), client.hooks())?
//! // and Tree::apply(cmd, ctx, &mut router) on shared.lock().
//! let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
//! let runner = client.clone();
//! let tree_access: Arc<dyn TreeAccess> = shared.clone();
//! tokio::spawn(async move { runner.run(tree_access, async { let _ = stop_rx.await; }).await });
//! // Pending alerts: client.alerts_pending() (a watch of the count),
//! // client.outbox().pending() into package 1, client.outbox().ack(id) on 200/202.
//! # drop(stop_tx); Ok(()) }
//! ```
//!
//! Choices the digest leaves open, made here:
//! * busy entry → Exec status 409; missing PkgURL or Data → 412; Exec on a
//!   component that is not installed → 404; these are refused in the Exec
//!   and produce no alert;
//! * synchronous primitives (configured) answer 200, or the SCOMO result
//!   code as the Exec status, and send no alert;
//! * Status goes back to 10 after a success; a Download creates
//!   `Inventory/Delivered/<x>` (or `<x>-2`, ...) and keeps `Download/<x>`
//!   for the server to delete; a DownloadInstall keeps no Delivered entry;
//!   an Install keeps the package (State 20); Remove of a package does not
//!   uninstall its components;
//! * Activate of an active component (and Deactivate of an inactive one)
//!   succeeds without change;
//! * validation leaves `Ext/SHA256` and `Ext/Signature` ([`verify`]).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use omadm_tree::Tree;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub mod config;
mod confirm;
mod download;
pub mod env;
mod executor;
mod hooks;
mod journal;
pub mod mo;
pub mod outbox;
mod package;
mod process;
mod rules;
mod store;
pub mod tree_access;
pub mod verify;

pub use config::{CommandEnvConfig, ConfirmConfig, ConfirmPolicy, ScomoConfig, ScomoConfigError};
pub use env::{ComponentCtx, EnvError, ExecEnv, StageRequest, StagedComponent};
pub use hooks::ScomoHooks;
pub use journal::{CrashMode, CRASH_ENV_VAR};
pub use outbox::{Outbox, OutboxEntry, PendingAlert};
pub use store::ComponentRecord;
pub use tree_access::{SharedTree, TreeAccess};

use executor::Shared;

/// Why the SCOMO client cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScomoError {
    /// A `[scomo]` key is wrong.
    #[error(transparent)]
    InvalidConfig(#[from] ScomoConfigError),
    /// A setting cannot be used (e.g. the CA file does not load).
    #[error("invalid configuration: {key}: {reason}")]
    Config {
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A state file cannot be read or written.
    #[error("{what}: {source}")]
    Io {
        /// The file or directory.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The MO cannot be created in the tree.
    #[error("management tree: {0}")]
    Tree(String),
    /// [`ScomoClient::run`] is already running.
    #[error("the SCOMO executor is already running")]
    AlreadyRunning,
}

/// Extra settings of [`ScomoClient::open_with`].
#[derive(Clone, Default)]
pub struct ClientOptions {
    /// Crash injection (tests; the binary sets it from [`CRASH_ENV_VAR`]).
    pub crash: CrashMode,
    /// More execution environments, by EnvType (beside `archive` and the
    /// configured `command` ones).
    pub environments: Vec<(String, Arc<dyn ExecEnv>)>,
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("crash", &self.crash)
            .field(
                "environments",
                &self.environments.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The SCOMO client. Cheap to clone (shared state).
#[derive(Clone)]
pub struct ScomoClient {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ScomoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScomoClient")
            .field("root", &self.shared.root)
            .field("data", &self.shared.paths.base)
            .finish()
    }
}

impl ScomoClient {
    /// Opens the client's state under `data_dir` (creating it), validates
    /// `config`, and recovers: journaled operations are reloaded (they
    /// resume when [`ScomoClient::run`] starts), leftovers of finished
    /// operations are deleted.
    pub fn open(data_dir: &Path, config: ScomoConfig) -> Result<ScomoClient, ScomoError> {
        ScomoClient::open_with(data_dir, config, ClientOptions::default())
    }

    /// [`ScomoClient::open`] with crash injection or extra environments.
    pub fn open_with(
        data_dir: &Path,
        config: ScomoConfig,
        options: ClientOptions,
    ) -> Result<ScomoClient, ScomoError> {
        let shared = Shared::open(data_dir, config, options.crash, options.environments)?;
        Ok(ScomoClient {
            shared: Arc::new(shared),
        })
    }

    /// Where the MO lives (the route for [`ScomoClient::hooks`]).
    pub fn root(&self) -> &str {
        &self.shared.root
    }

    /// Creates `./SCOMO` (schema, fixed nodes, root ACL) and makes it agree
    /// with the client's state. Idempotent: call it on first start and
    /// after loading a persisted tree, before the first session.
    pub fn install_mo(&self, tree: &mut Tree) -> Result<(), ScomoError> {
        self.shared.install_mo(tree)
    }

    /// The tree hooks, for `HookRouter::route(client.root(), hooks)`.
    pub fn hooks(&self) -> ScomoHooks {
        ScomoHooks {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The executor: resumes journaled operations, then runs each accepted
    /// operation, until `shutdown` completes. Running operations then stop
    /// at their next step boundary (a download between two chunks) and
    /// resume at the next start.
    pub async fn run(
        &self,
        tree: Arc<dyn TreeAccess>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ScomoError> {
        let mut rx = self
            .shared
            .queue_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or(ScomoError::AlreadyRunning)?;
        {
            let shared = Arc::clone(&self.shared);
            let t = Arc::clone(&tree);
            let r = tokio::task::spawn_blocking(move || {
                let mut out = Ok(());
                t.edit(&mut |tree| out = shared.install_mo(tree));
                out
            })
            .await;
            if let Ok(Err(e)) = r {
                tracing::error!(error = %e, "cannot reconcile the SCOMO tree");
            }
        }
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let mut tasks: JoinSet<u64> = JoinSet::new();
        let mut driving = std::collections::HashSet::new();
        let spawn = |tasks: &mut JoinSet<u64>, id: u64| {
            let shared = Arc::clone(&self.shared);
            let t = Arc::clone(&tree);
            let c = cancel_rx.clone();
            tasks.spawn(async move {
                shared.drive(t, id, c).await;
                id
            });
        };
        for id in self.shared.op_ids() {
            if driving.insert(id) {
                spawn(&mut tasks, id);
            }
        }
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                id = rx.recv() => match id {
                    Some(id) => {
                        if driving.insert(id) {
                            spawn(&mut tasks, id);
                        }
                    }
                    None => break,
                },
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Ok(id) = done {
                        driving.remove(&id);
                    }
                }
            }
        }
        cancel_tx.send_replace(true);
        while tasks.join_next().await.is_some() {}
        *self
            .shared
            .queue_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(rx);
        Ok(())
    }

    /// The alert outbox.
    pub fn outbox(&self) -> &Outbox {
        &self.shared.outbox
    }

    /// The number of alerts waiting for the server; changes whenever one
    /// is queued or acknowledged. A value above 0 calls for a
    /// client-initiated session (retried with [`outbox::retry_delay`]).
    pub fn alerts_pending(&self) -> watch::Receiver<usize> {
        self.shared.outbox.subscribe()
    }

    /// The number of operations in flight (journaled, not finished).
    pub fn operations(&self) -> watch::Receiver<usize> {
        self.shared.running.subscribe()
    }

    /// Waits until no operation is in flight.
    pub async fn wait_idle(&self) {
        let mut rx = self.operations();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// The deployed components.
    pub fn inventory(&self) -> Vec<ComponentRecord> {
        self.shared.inventory()
    }

    /// Where component `id` is installed (archive environment).
    pub fn component_dir(&self, id: &str) -> PathBuf {
        self.shared.paths.component_dir(id)
    }

    /// The crash point that fired ([`CrashMode::Halt`]), if any.
    pub fn halted(&self) -> watch::Receiver<Option<String>> {
        self.shared.crash.subscribe()
    }
}

/// Drives the agent's package download (the same code path an Exec on
/// `Download`/`DownloadInstall` takes: `GET`, streamed to `dest` and hashed
/// on the way, `Range`/`If-Range` resume and retries per `config`, `fsync`
/// at the end) without a DM session, journal or crash points. Returns the
/// number of bytes received. For `examples/download_bench.rs`; not a
/// stable API.
#[doc(hidden)]
pub async fn bench_download(url: &str, dest: &Path, config: &ScomoConfig) -> Result<u64, String> {
    let downloader = download::Downloader::new(config)?;
    let mut st = journal::DownloadState {
        url: url.to_owned(),
        dd: None,
        object_url: None,
        validator: None,
        total: None,
        content_type: None,
    };
    let mut journal = |_: &journal::DownloadState| Ok(());
    let checkpoint = |_: &str| Ok(());
    // Never cancelled: the sender lives until the download ends.
    let (_stop, cancel) = watch::channel(false);
    let mut progress = download::Progress {
        journal: &mut journal,
        checkpoint: &checkpoint,
        cancel,
    };
    match downloader.fetch(&mut st, dest, &mut progress).await {
        Ok(f) => Ok(f.size),
        Err(download::DlError::Fail(_, why)) => Err(why),
        Err(download::DlError::Halted) => Err("halted".into()),
        Err(download::DlError::Stopped) => Err("stopped".into()),
    }
}
