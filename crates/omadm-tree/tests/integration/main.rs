//! Integration tests of the management tree, grouped by area.
#![expect(
    clippy::unwrap_used,
    reason = "fixtures and helpers outside #[test] fns fail the test the same way"
)]

mod atomic;
mod commands;
mod hooks;
mod limits;
mod lists;
mod props;
mod proptests;
mod schema;
mod stdobj;
mod util;
mod vectors;
