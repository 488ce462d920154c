//! The scomo device agent: the runtime around the sans-IO DM client and
//! SCOMO client.
//!
//! ```text
//!   config ─▶ Agent ─┬─ persisted tree (data dir, crash-safe writes)
//!                    ├─ DM sessions over HTTP(S) (omadm::ClientSession)
//!                    ├─ package-0 listener (UDP, HTTP POST)
//!                    └─ SCOMO executor: downloads, environments, alert outbox
//! ```
#![warn(missing_docs)]

pub mod config;
pub mod persist;
