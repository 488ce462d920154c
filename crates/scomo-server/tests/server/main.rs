//! The server as HTTP clients see it: a real `scomo_server` on port 0 over
//! SQLite in a temporary directory, driven by `omadm` client engines over
//! HTTP and by the real device agent in-process.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed step is a failed test"
)]

mod harness;

mod agent;
mod api;
mod campaigns;
mod dl;
mod dm;
mod jobs;
mod notify;
mod openapi;
mod packages;
