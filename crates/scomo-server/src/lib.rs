//! The OMA DM 1.2 / SCOMO server runtime.
//!
//! ```text
//!   device ──POST /dm──────▶ dm: LiveSession (omadm::ServerSession + claimed batches)
//!          ◀─RespURI /dm/<token> on this node's public URL
//!                               │ DevInfo/DevDetail, nonces, alerts, outcomes
//!                               ▼
//!   REST /api/v1 ─────────▶ store (SQLite | PostgreSQL) ◀── notifier ──package 0──▶ device
//!   /metrics /healthz
//! ```
//!
//! Use it as a library the way the binary does:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use scomo_server::{run, AppState, Config, Listener};
//! let config = Config::default();
//! let state = AppState::open(config).await?;
//! let listener = Listener::bind("127.0.0.1:0".parse()?, None).await?;
//! run(state, listener, async { /* shutdown signal */ }).await?;
//! # Ok(()) }
//! ```
//!
//! Sessions in flight live in memory on the node that opened them
//! (the DM endpoint's session table); everything that must outlive a request —
//! devices, credentials and nonces, the command queue, alerts, the
//! notification schedule, the session audit log — is in the [`store`]. A
//! node settles what it held before a restart when it starts again, and any
//! node closes sessions a dead peer abandoned, so queued work is never lost
//! nor done twice (see the requeue rule in [`store`]).
#![warn(missing_docs)]

pub mod api;
pub mod campaign;
pub mod config;
mod dl;
mod dm;
pub mod error;
pub mod events;
pub mod metrics;
mod notifier;
pub mod packages;
mod random;
pub mod scomo;
mod serve;
mod state;
pub mod store;

pub use config::{Config, ConfigError};
pub use dm::DEVDETAIL_LEAVES;
pub use error::AppError;
pub use notifier::CONTENT_TYPE as NOTIFICATION_CONTENT_TYPE;
pub use packages::download_url;
pub use serve::{app, run, tls_acceptor, Listener};
pub use state::{AppState, StartError};
