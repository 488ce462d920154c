//! Each stage of the `bench/wbxml-vs-libwbxml` round trip in its own loop,
//! for an instruction profiler: where the instructions per XML byte go.
//!
//! ```text
//! codec_stages <iterations> <file1.xml> [file2.xml ...]
//! valgrind --tool=callgrind --callgrind-out-file=cg.out \
//!     target/release/examples/codec_stages 20 $(corpus files)
//! callgrind_annotate --inclusive=yes cg.out | grep codec_stages::stage_
//! ```
//!
//! Build it with symbols (`CARGO_PROFILE_RELEASE_STRIP=none
//! CARGO_PROFILE_RELEASE_DEBUG=line-tables-only`). Every file is decoded
//! once up front (not timed); then `decode_xml`, `encode_wbxml`,
//! `decode_wbxml` and `encode_xml` each run over the whole corpus
//! `<iterations>` times in a function of their own (`stage_*`, never
//! inlined). Divide a stage's inclusive count by iterations × the corpus's
//! XML bytes. Prints the wall time of each stage too.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use omadm_wire::{decode_wbxml, decode_xml, encode_wbxml, encode_xml, Limits, SyncMl};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(Ok(n)), Some(files)) = (args.first().map(|a| a.parse::<u64>()), args.get(1..)) else {
        eprintln!("usage: codec_stages <iterations> <file1.xml> [file2.xml ...]");
        return ExitCode::from(2);
    };
    let limits = Limits::default();
    let mut docs = Vec::new();
    let mut models = Vec::new();
    for path in files {
        let decoded = std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|xml| Ok((decode_xml(&xml, &limits).map_err(|e| e.to_string())?, xml)));
        match decoded {
            Ok((model, xml)) => {
                models.push(model);
                docs.push(xml);
            }
            Err(e) => {
                eprintln!("codec_stages: {path}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let wbxmls: Vec<Vec<u8>> = models.iter().map(encode_wbxml).collect();
    let bytes = docs.iter().map(Vec::len).sum::<usize>() as f64 * n as f64;
    let timed = |name: &str, f: &dyn Fn()| {
        let start = Instant::now();
        f();
        let s = start.elapsed().as_secs_f64();
        println!("{name}: {s:.6} s, {:.1} MB/s of XML", bytes / 1e6 / s);
    };
    timed("decode_xml", &|| stage_decode_xml(&docs, n, &limits));
    timed("encode_wbxml", &|| stage_encode_wbxml(&models, n));
    timed("decode_wbxml", &|| stage_decode_wbxml(&wbxmls, n, &limits));
    timed("encode_xml", &|| stage_encode_xml(&models, n));
    ExitCode::SUCCESS
}

#[inline(never)]
fn stage_decode_xml(docs: &[Vec<u8>], n: u64, limits: &Limits) {
    for _ in 0..n {
        for d in docs {
            let _ = black_box(decode_xml(black_box(d), limits));
        }
    }
}

#[inline(never)]
fn stage_encode_wbxml(models: &[SyncMl], n: u64) {
    for _ in 0..n {
        for m in models {
            black_box(encode_wbxml(black_box(m)));
        }
    }
}

#[inline(never)]
fn stage_decode_wbxml(docs: &[Vec<u8>], n: u64, limits: &Limits) {
    for _ in 0..n {
        for d in docs {
            let _ = black_box(decode_wbxml(black_box(d), limits));
        }
    }
}

#[inline(never)]
fn stage_encode_xml(models: &[SyncMl], n: u64) {
    for _ in 0..n {
        for m in models {
            black_box(encode_xml(black_box(m)));
        }
    }
}
