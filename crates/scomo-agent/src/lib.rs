//! The scomo device agent: the runtime around the sans-IO DM client and
//! SCOMO client.
//!
//! ```text
//!   config ─▶ Agent ─┬─ DeviceState: tree.json (crash-safe writes)
//!                    ├─ session: omadm::ClientSession over HTTP(S) (reqwest, rustls)
//!                    ├─ notify: package-0 listener (UDP, HTTP POST)
//!                    └─ scomo_client: downloads, environments, alert outbox
//! ```
#![warn(missing_docs)]

pub mod agent;
pub mod config;
pub mod device;
pub mod notify;
pub mod persist;
pub mod scomo_client;
pub mod session;

pub use agent::{Agent, AgentError};
pub use config::AgentConfig;
