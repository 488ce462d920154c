//! The crash matrix's harness: a minimal DM server with package files,
//! packages, and devices run as real `scomo agent` processes.

pub(crate) mod device;
pub(crate) mod package;
pub(crate) mod server;
