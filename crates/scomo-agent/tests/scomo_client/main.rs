//! SCOMO client tests: primitives through the tree and the alerts, indirect
//! delivery against a local HTTP server, direct delivery, hostile packages,
//! and the crash matrix.
#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

mod bad_packages;
mod command_env;
mod common;
mod crash;
mod direct;
mod download;
mod primitives;
