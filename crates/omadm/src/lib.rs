//! Sans-IO OMA DM 1.2 sessions (`OMA-TS-DM_Protocol-V1_2`,
//! `DM_Security`, `DM_Notification`), shared by the device agent, the
//! server and the fleet simulator.
//!
//! ```text
//!   server runtime                                   device runtime
//!   ──────────────                                   ──────────────
//!   package0::Notification::encode ──(SMS/push)──▶ package0::Notification::parse + verify
//!                                                    ClientSession::new(SessionKind::ServerInitiated)
//!   ServerSession::accept ◀──────── Request ──────── ClientSession::poll_transmit   (pkg 1)
//!     Accepted::into_session(account)
//!     poll_event / queue_command
//!   ServerSession::poll_transmit ── Response ──────▶ ClientSession::handle_response (pkg 2)
//!                                                      └▶ DeviceHandler::execute
//!   ServerSession::handle_message ◀─ Request ─────── ClientSession::poll_transmit   (pkg 3)
//!   ...                                              ... until Status + Final, no commands
//! ```
//!
//! Nothing here does I/O, reads a clock or draws randomness: bodies go in
//! and out as bytes, `now` is an argument, nonces come from a caller's
//! [`auth::RandomSource`]. Both engines handle authentication (basic, MD5,
//! HMAC; challenges, nonce rotation, both directions), MaxMsgSize splitting
//! with Alert 1222, large objects both ways (213, 424, 1225, MaxObjSize),
//! session abort (1223), and report what the runtime must persist
//! ([`NonceState`]) or act on (events).
//!
//! Modules: [`auth`] (credentials, HMAC header, nonces), [`package0`]
//! (notification), [`client`] ([`client::ClientSession`]), [`server`]
//! ([`server::ServerSession`]), [`handler`] (the device's tree seam),
//! [`large_object`] (pluggable reassembly sink), [`error`].
#![warn(missing_docs)]

pub mod auth;
pub mod client;
mod common;
pub mod error;
pub mod handler;
pub mod large_object;
pub mod package0;
mod packer;
pub mod server;

pub use common::{status_for, AuthConfig, Incoming, NonceState};
pub use error::SessionError;

#[cfg(test)]
mod tests {
    use super::*;

    /// Runtimes keep sessions across `.await`s and in per-device tables.
    #[test]
    fn sessions_are_send() {
        fn send<T: Send + 'static>() {}
        send::<client::ClientSession>();
        send::<server::ServerSession>();
        send::<server::Accepted>();
        send::<client::ClientEvent>();
        send::<server::ServerEvent>();
        send::<SessionError>();
    }
}
