//! Conformance suite of `omadm-wire`: one test binary, one module per concern.
//!
//! | Module | What it checks |
//! |---|---|
//! | `vectors` | every message under `tests/vectors/` decodes, round-trips and matches its `.wbxml` twin (`SCOMO_BLESS=1` rewrites the twins) |
//! | `spec_bytes` | the byte examples of `WBXML.md` §7, byte for byte |
//! | `libwbxml` | every vector against libwbxml's `xml2wbxml` / `wbxml2xml`, an independent implementation |
//! | `quirks` | the deployed-stack variants of `QUIRKS.md` decode to the clean model |
//! | `bad_input` | malformed input is a clear error with an offset and a status |
//! | `roundtrip` | proptest: model → XML/WBXML → model, XML → WBXML → XML |
//!
//! `support` holds the shared helpers and `tree` the generic element tree
//! the libwbxml cross-check compares.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bad_input;
mod libwbxml;
mod quirks;
mod roundtrip;
mod spec_bytes;
mod support;
mod tree;
mod vectors;
