//! Our side of `bench/wbxml-vs-libwbxml`: the conversion the libwbxml
//! harness (`bench/libwbxml-harness/harness.c`) times, done with this crate.
//!
//! ```text
//! wbxml_roundtrip_bench <iterations> <file1.xml> [file2.xml ...]
//! ```
//!
//! Every file is read once. Then, for `<iterations>` rounds, each document
//! goes XML → WBXML → XML in-process, through the model as a DM stack does:
//! `decode_xml` → `encode_wbxml` → `decode_wbxml` → `encode_xml`. Then the
//! same rounds time `decode_xml` alone. One line on stdout, starting like
//! the harness's:
//!
//! ```text
//! bytes=<XML bytes> seconds=<s> mb_s=<MB/s> xml_decode_seconds=<s> xml_decode_mb_s=<MB/s>
//! ```
//!
//! (MB = 1e6 bytes of XML input.) Before timing, every file is converted
//! once and checked to come back as the same model; a failure exits with
//! status 1, so a conversion that fails is never timed.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use omadm_wire::{decode_wbxml, decode_xml, encode_wbxml, encode_xml, Limits};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(iterations), files) = (args.first(), args.get(1..).unwrap_or_default()) else {
        return usage();
    };
    let Ok(iterations) = iterations.parse::<u64>() else {
        return usage();
    };
    if iterations == 0 || files.is_empty() {
        return usage();
    }

    let mut docs = Vec::with_capacity(files.len());
    for path in files {
        match std::fs::read(path) {
            Ok(bytes) => docs.push((path, bytes)),
            Err(e) => {
                eprintln!("wbxml_roundtrip_bench: cannot read {path}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let limits = Limits::default();

    // Validation pass (not timed).
    for (path, xml) in &docs {
        if let Err(e) = check(path, xml, &limits) {
            eprintln!("wbxml_roundtrip_bench: {path}: {e}");
            return ExitCode::FAILURE;
        }
    }

    let round_bytes: u64 = docs.iter().map(|(_, xml)| xml.len() as u64).sum();
    let total = round_bytes * iterations;

    let start = Instant::now();
    round_trips(&docs, iterations, &limits);
    let seconds = start.elapsed().as_secs_f64();

    let start = Instant::now();
    xml_decodes(&docs, iterations, &limits);
    let decode_seconds = start.elapsed().as_secs_f64();

    let mb_s = |s: f64| if s > 0.0 { total as f64 / 1e6 / s } else { 0.0 };
    println!(
        "bytes={total} seconds={seconds:.6} mb_s={:.3} xml_decode_seconds={decode_seconds:.6} xml_decode_mb_s={:.3}",
        mb_s(seconds),
        mb_s(decode_seconds)
    );
    ExitCode::SUCCESS
}

/// The timed conversions. Not inlined, so that a profiler
/// (`valgrind --tool=callgrind`) shows their cost apart from the setup.
#[inline(never)]
fn round_trips(docs: &[(&String, Vec<u8>)], iterations: u64, limits: &Limits) {
    for _ in 0..iterations {
        for (_, xml) in docs {
            black_box(round_trip(black_box(xml), limits));
        }
    }
}

/// The timed XML decodes (see `round_trips`).
#[inline(never)]
fn xml_decodes(docs: &[(&String, Vec<u8>)], iterations: u64, limits: &Limits) {
    for _ in 0..iterations {
        for (_, xml) in docs {
            let _ = black_box(decode_xml(black_box(xml), limits));
        }
    }
}

/// XML → model → WBXML → model → XML; `None` if a step fails (never, once
/// `check` has passed).
fn round_trip(xml: &[u8], limits: &Limits) -> Option<Vec<u8>> {
    let msg = decode_xml(xml, limits).ok()?;
    let wbxml = encode_wbxml(&msg);
    let back = decode_wbxml(&wbxml, limits).ok()?;
    Some(encode_xml(&back))
}

/// The untimed round trip, with errors for people.
fn check(path: &str, xml: &[u8], limits: &Limits) -> Result<(), String> {
    let msg = decode_xml(xml, limits).map_err(|e| format!("decode_xml failed: {e}"))?;
    let wbxml = encode_wbxml(&msg);
    let back = decode_wbxml(&wbxml, limits).map_err(|e| format!("decode_wbxml failed: {e}"))?;
    if back != msg {
        return Err("the WBXML round trip changed the model".into());
    }
    eprintln!(
        "wbxml_roundtrip_bench: {path}: xml={} wbxml={} xml_out={}",
        xml.len(),
        wbxml.len(),
        encode_xml(&back).len()
    );
    Ok(())
}

fn usage() -> ExitCode {
    eprintln!("usage: wbxml_roundtrip_bench <iterations> <file1.xml> [file2.xml ...]");
    ExitCode::from(2)
}
