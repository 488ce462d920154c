//! The OMA DM 1.2 / SCOMO server.
//!
//! ```text
//!   device ──HTTP /dm──▶ session engine (omadm) ──▶ store ◀── job engine, REST API
//! ```
//!
//! For now this crate holds the server's storage layer, [`store`]: devices,
//! DM sessions, the command queue, Generic Alerts, package 0 notifications
//! and admin API tokens, on SQLite (one node) or PostgreSQL (many nodes). The
//! HTTP application comes on top of it.
#![warn(missing_docs)]

pub mod store;
