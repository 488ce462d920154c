//! `scomo sim`: a fleet of virtual SCOMO devices in one process, speaking
//! real HTTP to a real scomo server — for tests, campaigns and fleet
//! figures (`bench/fleet`).
//!
//! ```text
//!  Sim::start ── bind UDP 0.0.0.0:PORT (IP_PKTINFO) ──▶ package 0 for 127.1.x.y → device n
//!     │
//!     ├─ provision: POST /api/v1/devices/bulk (1000 per request)
//!     ├─ register:  one 1201 session per device (DevInfo), at a rate
//!     │
//!     │   per device, one session at a time, N at once (semaphore):
//!     │   compact DeviceState ──build──▶ Tree (template clone) ──▶ ClientSession over HTTP
//!     │        ▲                               │ Exec on a primitive: 202, Op collected
//!     │        └────────read back──────────────┘
//!     │
//!     └─ Op task: injected outcome (seed, device, k, rates), install latency,
//!        GET PkgURL (/dl, or DL OTA descriptor → objectURI → install-notify),
//!        size/SHA-256/manifest check ─▶ state + OperationComplete report
//!        ─▶ client-initiated session (1201 + Generic Alert 1226), retried until 200
//! ```
//!
//! Choices:
//! * **Compact state.** A device keeps nonces, its SCOMO entries and
//!   components, unacknowledged reports and counters. The management tree
//!   (DevInfo, DevDetail, DMAcc, `./SCOMO` with the real agent's schema and
//!   access rules) is cloned from one template per session and read back
//!   after it: a tree per idle device would cost kilobytes.
//! * **One notification socket.** Device n listens on `udp://127.1.0.0+n:PORT`;
//!   one socket on `0.0.0.0:PORT` with `IP_PKTINFO` tells the devices apart
//!   (Linux: all of 127/8 is loopback), so the fleet needs one descriptor.
//! * **Determinism.** Credentials, models, install latencies and injected
//!   outcomes are seeded draws: [`expected_outcome`] is a pure function of
//!   (seed, device, k, rates), k counting the Execs the device accepted.
//!   Real failures (HTTP errors, a SHA-256 mismatch) give their own codes.
//! * **Injected classes.** user decline → 1401 (nothing downloaded);
//!   download-server fault → 1500 on download primitives (others succeed);
//!   device fault → the primitive's failure code (1404, 1405, 1408–1410),
//!   after a real download for the download primitives.
//! * Pushed packages (direct delivery) are read for their manifest and
//!   dropped; packages are parsed once per content (tar.gz or tar only).
#![warn(missing_docs)]

mod config;
mod device;
mod exec;
mod hooks;
mod notify;
mod outcome;
mod package;
mod sim;
mod stats;

pub use config::{Model, SimAuth, SimConfig};
pub use outcome::{expected_outcome, Injected, Rates};
pub use sim::{run, Sim, StopWhen};
pub use stats::{OpCount, SessionKind, Summary};

/// Why the simulator cannot run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A setting is wrong.
    #[error("invalid simulator configuration: {0}")]
    Config(String),
    /// The HTTP client or a REST call failed.
    #[error("{0}")]
    Http(String),
    /// The package-0 socket cannot be bound.
    #[error("cannot listen for package 0 on UDP port {port}: {reason}")]
    Notify {
        /// The port.
        port: u16,
        /// Why.
        reason: String,
    },
    /// The device tree template cannot be built.
    #[error("management tree: {0}")]
    Tree(String),
}
