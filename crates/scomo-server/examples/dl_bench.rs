//! N concurrent full downloads of one URL, bodies discarded; prints one JSON
//! line: `{"clients":N,"downloads":D,"bytes":B,"seconds":S,"mb_per_s":X}`
//! (MB = 1e6 bytes). Used by `bench/dl-vs-nginx`.
//!
//! ```text
//! cargo run --release -p scomo-server --example dl_bench -- --url URL --clients 100 [--rounds 1]
//! ```
//!
//! Every download must be a 200 with the expected length (`--expect-bytes`,
//! else the first response's Content-Length), or the run fails.
#![expect(clippy::expect_used, reason = "a measurement tool")]

use std::time::{Duration, Instant};

struct Args {
    url: String,
    clients: usize,
    rounds: usize,
    expect: Option<u64>,
}

fn args() -> Args {
    let mut a = Args {
        url: String::new(),
        clients: 100,
        rounds: 1,
        expect: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().expect("a value after the flag");
        match k.as_str() {
            "--url" => a.url = v(),
            "--clients" => a.clients = v().parse().expect("--clients N"),
            "--rounds" => a.rounds = v().parse().expect("--rounds N"),
            "--expect-bytes" => a.expect = Some(v().parse().expect("--expect-bytes N")),
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(!a.url.is_empty(), "--url URL is required");
    a
}

async fn download(http: &reqwest::Client, url: &str) -> u64 {
    let mut r = http.get(url).send().await.expect("GET");
    assert_eq!(r.status().as_u16(), 200, "GET {url}");
    let mut n = 0u64;
    while let Some(chunk) = r.chunk().await.expect("body") {
        n += chunk.len() as u64;
    }
    n
}

fn main() {
    let a = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(a.clients)
            .timeout(Duration::from_secs(3600))
            .build()
            .expect("client");
        // Warm up (and learn the size) with one download.
        let size = download(&http, &a.url).await;
        let expect = a.expect.unwrap_or(size);
        assert_eq!(size, expect, "size of the first download");
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..a.clients {
            let http = http.clone();
            let url = a.url.clone();
            let rounds = a.rounds;
            tasks.push(tokio::spawn(async move {
                let mut total = 0;
                for _ in 0..rounds {
                    let n = download(&http, &url).await;
                    assert_eq!(n, expect, "a download came short");
                    total += n;
                }
                total
            }));
        }
        let mut bytes = 0u64;
        for t in tasks {
            bytes += t.await.expect("client task");
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{{\"clients\":{},\"downloads\":{},\"bytes\":{bytes},\"seconds\":{secs:.3},\"mb_per_s\":{:.1}}}",
            a.clients,
            a.clients * a.rounds,
            bytes as f64 / 1e6 / secs
        );
    });
}
