//! The simulator against a real server started in-process: provisioning
//! and registration, jobs over http and dlota delivery, injected failures,
//! package 0 routing. Waits are on conditions with timeouts, never sleeps.
#![expect(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod harness;

mod campaign;
mod fleet;
