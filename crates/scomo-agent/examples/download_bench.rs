//! Downloads one URL to a file N times through the agent's own package
//! download (`scomo_client::bench_download`: reqwest + rustls, streamed to
//! disk and SHA-256 hashed on the way, `fsync` at the end), on a
//! `current_thread` runtime like the agent's. The file is removed before
//! each round (a leftover would be resumed) and after the last one.
//!
//! ```text
//! cargo run --release -p scomo-agent --example download_bench -- \
//!     --url URL --out FILE [--rounds 1] [--max-bytes B]
//! ```
//!
//! Prints one line per round on stderr and one JSON line on stdout:
//! `{"bytes":B,"rounds":N,"seconds":[..],"mb_per_s":[..],"peak_rss_kb":K}`
//! (MB = 1e6 bytes; `peak_rss_kb` is this process's VmHWM). Used by
//! `bench/agent-download-vs-curl`.
#![expect(clippy::expect_used, reason = "a measurement tool")]

use std::path::PathBuf;
use std::time::Instant;

use scomo_agent::scomo_client::{bench_download, ScomoConfig};

/// The `scomo` binary's allocator (the agent runs in it), so that the peak
/// RSS measured here is the shipped agent's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    url: String,
    out: PathBuf,
    rounds: usize,
    max_bytes: u64,
}

fn args() -> Args {
    let mut a = Args {
        url: String::new(),
        out: PathBuf::new(),
        rounds: 1,
        // Room for a 1 GiB package (the agent's default limit is 512 MiB).
        max_bytes: 4 << 30,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().expect("a value after the flag");
        match k.as_str() {
            "--url" => a.url = v(),
            "--out" => a.out = v().into(),
            "--rounds" => a.rounds = v().parse().expect("--rounds N"),
            "--max-bytes" => a.max_bytes = v().parse().expect("--max-bytes B"),
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(!a.url.is_empty(), "--url URL is required");
    assert!(!a.out.as_os_str().is_empty(), "--out FILE is required");
    a
}

/// VmHWM of this process, in kB (0 where /proc is missing).
fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let a = args();
    // The agent's defaults, with only the size limit raised.
    let cfg = ScomoConfig {
        max_package_bytes: a.max_bytes,
        ..ScomoConfig::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut secs = Vec::new();
    let mut bytes = 0u64;
    for round in 0..a.rounds {
        let _ = std::fs::remove_file(&a.out);
        let t = Instant::now();
        bytes = rt
            .block_on(bench_download(&a.url, &a.out, &cfg))
            .expect("download");
        let s = t.elapsed().as_secs_f64();
        eprintln!(
            "round {}: {bytes} bytes in {s:.2}s, {:.1} MB/s",
            round + 1,
            bytes as f64 / 1e6 / s
        );
        secs.push(s);
    }
    let _ = std::fs::remove_file(&a.out);
    let fmt = |v: Vec<String>| v.join(",");
    println!(
        "{{\"bytes\":{bytes},\"rounds\":{},\"seconds\":[{}],\"mb_per_s\":[{}],\"peak_rss_kb\":{}}}",
        a.rounds,
        fmt(secs.iter().map(|s| format!("{s:.4}")).collect()),
        fmt(secs
            .iter()
            .map(|s| format!("{:.2}", bytes as f64 / 1e6 / s))
            .collect()),
        peak_rss_kb()
    );
}
