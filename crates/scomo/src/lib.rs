//! The SCOMO 1.0 model both sides share (`SCOMO.md`, `DLOTA.md`).
//!
//! ```text
//!   server ── Add ./SCOMO/Download/<x>, Exec …/Operations/<Primitive> ──▶ device
//!   server ◀── Generic Alert 1226 OperationComplete (ResultCode, Identifier) ── device
//! ```
//!
//! Pure data and rules: MO paths and primitives ([`mo`]), the Status/State
//! value tables ([`state`]), result codes ([`result`]), the OperationComplete
//! alert ([`alert`]), OMA Download OTA descriptors and install-notify codes
//! ([`dlota`]) and the delivery package manifest ([`manifest`]). No I/O.
#![warn(missing_docs)]

pub mod alert;
pub mod config_doc;
pub mod dlota;
pub mod manifest;
pub mod mo;
pub mod result;
pub mod state;

pub use alert::OperationComplete;
pub use mo::{Primitive, PrimitiveTarget};
pub use result::ResultCode;
