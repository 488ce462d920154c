//! Fuzzes the XML decoder: no panic on any input, and every accepted
//! message round-trips through both encodings (see `omadm_wire_fuzz::check`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use omadm_wire::Encoding;

fuzz_target!(|data: &[u8]| omadm_wire_fuzz::check(data, Encoding::Xml));
