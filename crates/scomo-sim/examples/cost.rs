//! The simulator's own cost: resident memory per idle device, and the
//! registration sessions per second it drives against an in-process server
//! (SQLite in a temporary directory) on the same machine.
//!
//! ```text
//! cargo run --release -p scomo-sim --example cost -- --idle 100000 --sessions 2000 --concurrency 32
//! ```
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a measurement tool"
)]

use std::time::{Duration, Instant};

use scomo_server::{run, AppState, Config, Listener};
use scomo_sim::{Sim, SimConfig};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mut idle = 100_000u32;
    let mut sessions = 2000u32;
    let mut concurrency = 32usize;
    let mut it = std::env::args().skip(1);
    while let Some(f) = it.next() {
        let v: u64 = it.next().expect("value").parse().expect("number");
        match f.as_str() {
            "--idle" => idle = v as u32,
            "--sessions" => sessions = v as u32,
            "--concurrency" => concurrency = v as usize,
            other => panic!("unknown flag {other}"),
        }
    }
    // 1. Idle devices: the fleet table and per-device state, no session yet.
    let before = rss_kib();
    let sim = Sim::start(SimConfig {
        devices: idle,
        server_password: "x".into(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let after = rss_kib();
    println!(
        "idle devices      {idle}: RSS +{} KiB, {:.0} bytes/device (state struct {} bytes)",
        after - before,
        (after - before) as f64 * 1024.0 / f64::from(idle),
        Sim::state_bytes_per_device()
    );
    drop(sim.stop(Duration::from_secs(1)).await);

    // 2. Sessions against an in-process server.
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.path().to_owned(),
        ..Config::default()
    };
    config.dm.server_password = Some("spw".into());
    let token_path = config.admin_token_path();
    let state = AppState::open(config.clone()).await.unwrap();
    let listener = Listener::bind(config.listen_addr().unwrap(), None)
        .await
        .unwrap();
    let url = listener.url().unwrap();
    tokio::spawn(run(state, listener, std::future::pending::<()>()));
    let token = std::fs::read_to_string(token_path)
        .unwrap()
        .trim()
        .to_owned();
    let sim = Sim::start(SimConfig {
        server_url: format!("{url}/dm"),
        api_url: url.clone(),
        api_token: Some(token),
        server_password: "spw".into(),
        devices: sessions,
        concurrency,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let t = Instant::now();
    sim.provision().await.unwrap();
    let provision = t.elapsed();
    let t = Instant::now();
    sim.register().await;
    let s = sim
        .wait_until(
            |s| s.registered == u64::from(sessions),
            Duration::from_secs(3600),
        )
        .await
        .unwrap();
    let wall = t.elapsed().as_secs_f64();
    println!("provisioning      {sessions} devices in {provision:.2?} (bulk API)");
    println!(
        "registration      {sessions} sessions in {wall:.2} s: {:.0} sessions/s, {:.0} messages/s, p50 {:.1} ms p99 {:.1} ms, {} failed",
        f64::from(sessions) / wall,
        s.messages as f64 / wall,
        s.p50_ms,
        s.p99_ms,
        s.sessions_failed
    );
}
