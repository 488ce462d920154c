//! SCOMO job throughput: jobs created per second through the REST API, and
//! jobs completed per second with many real agents (in-process, each with
//! its own data directory, over HTTP) running DownloadInstall from the
//! alternate download server.
//!
//! ```text
//! cargo run --release -p scomo-server --example jobs_bench -- --devices 200 --concurrency 16
//! ```
//!
//! Prints one table: devices, jobs created/s (REST, `--concurrency` clients),
//! jobs completed/s (agents `--concurrency` at a time: inventory, exec,
//! download, install, alert, inventory check), and the outcome counts.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a measurement tool"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use scomo_agent::{Agent, AgentConfig};
use scomo_server::{run, AppState, Config, Listener};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

struct Args {
    devices: usize,
    concurrency: usize,
}

fn args() -> Args {
    let mut a = Args {
        devices: 200,
        concurrency: 16,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().expect("a value after the flag");
        match flag.as_str() {
            "--devices" => a.devices = value().parse().expect("number"),
            "--concurrency" => a.concurrency = value().parse().expect("number"),
            other => panic!("unknown flag {other}; use --devices N --concurrency C"),
        }
    }
    a
}

fn package() -> Vec<u8> {
    let manifest = "[package]\nid = \"bench-1\"\nname = \"Bench\"\nenv_type = \"archive\"\n\
                    version = \"1.0\"\n\n[[component]]\nid = \"bench\"\nname = \"Bench\"\n\
                    version = \"1.0\"\ndir = \"svc\"\n";
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (path, data) in [
        ("scomo-package.toml", manifest.as_bytes()),
        ("svc/payload.bin", &[7u8; 4096][..]),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, path, data).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

async fn parallel<F, Fut>(n: usize, concurrency: usize, f: F) -> Duration
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let sem = Arc::new(Semaphore::new(concurrency));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let fut = f(i);
        tasks.push(tokio::spawn(async move {
            fut.await;
            drop(permit);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

#[tokio::main]
async fn main() {
    let a = args();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.path().join("server"),
        ..Config::default()
    };
    config.dm.server_password = Some("server-secret".into());
    config.dm.read_devdetail = false;
    let state = AppState::open(config.clone()).await.unwrap();
    let listener = Listener::bind(config.listen_addr().unwrap(), None)
        .await
        .unwrap();
    let url = listener.url().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(state.clone(), listener, async {
        let _ = stopped.await;
    }));
    let token = std::fs::read_to_string(config.admin_token_path())
        .unwrap()
        .trim()
        .to_owned();
    let http = reqwest::Client::new();
    let api = |p: &str| format!("{url}/api/v1{p}");
    let r = http
        .post(api("/packages"))
        .bearer_auth(&token)
        .body(package())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "upload: {}", r.status());
    let id = |i: usize| format!("BENCH:{i:06}");
    parallel(a.devices, a.concurrency, |i| {
        let (http, token, u) = (http.clone(), token.clone(), api("/devices"));
        let id = id(i);
        async move {
            let r = http
                .post(u)
                .bearer_auth(&token)
                .json(&json!({"id": id, "username": id, "password": format!("pw-{id}")}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
        }
    })
    .await;

    let created = parallel(a.devices, a.concurrency, |i| {
        let (http, token, u) = (http.clone(), token.clone(), api("/jobs"));
        let id = id(i);
        async move {
            let r = http
                .post(u)
                .bearer_auth(&token)
                .json(&json!({"device": id, "op": "DownloadInstall", "package": "bench-1"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
        }
    })
    .await;

    let agents_dir = dir.path().join("agents");
    let completed = parallel(a.devices, a.concurrency, |i| {
        let id = id(i);
        let mut c = AgentConfig::default();
        c.device.id = id.clone();
        c.server.url = format!("{url}/dm");
        c.server.username = id.clone();
        c.server.password = format!("pw-{id}");
        c.server.server_password = "server-secret".into();
        c.agent.data_dir = agents_dir.join(&id);
        c.agent.poll_interval_secs = 0;
        async move {
            let agent = Agent::new(c).unwrap();
            agent.run_once().await.unwrap();
        }
    })
    .await;

    let r: Value = http
        .get(api("/jobs?limit=1000"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    let mut seen = 0;
    let mut before = None;
    let mut page = r;
    loop {
        let jobs = page.as_array().unwrap().clone();
        if jobs.is_empty() {
            break;
        }
        for j in &jobs {
            *outcomes
                .entry(j["state"].as_str().unwrap().to_owned())
                .or_default() += 1;
            seen += 1;
            before = j["id"].as_i64();
        }
        page = http
            .get(api(&format!("/jobs?limit=1000&before={}", before.unwrap())))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    }
    let rate = |d: Duration| a.devices as f64 / d.as_secs_f64();
    println!(
        "| devices | concurrency | jobs created/s (REST) | jobs completed/s (agents) | outcomes |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| {} | {} | {:.0} | {:.1} | {} |",
        a.devices,
        a.concurrency,
        rate(created),
        rate(completed),
        outcomes
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert_eq!(seen, a.devices);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
