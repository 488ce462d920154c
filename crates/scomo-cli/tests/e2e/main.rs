//! End to end: the real `scomo server`, `scomo agent` and `scomo admin`
//! processes over real HTTP(S) and UDP on loopback, on port 0 or free ports.
//! Readiness is the server's "listening on" log line; nothing sleeps to
//! synchronise.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed step is a failed test"
)]

mod harness;
#[path = "../support/package.rs"]
mod pkg;

mod flows;
mod multinode;
mod packages;
mod readme;
mod restart;
mod sessions;
