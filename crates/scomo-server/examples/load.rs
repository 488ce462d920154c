//! A quick load measurement of the DM endpoint: N devices, each running one
//! MD5-authenticated session (an `omadm` ClientSession over real HTTP) that
//! receives a queued batch of G Gets and answers it, C sessions at a time.
//!
//! ```text
//! cargo run --release -p scomo-server --example load -- --sessions 2000 --concurrency 64
//! cargo run --release -p scomo-server --example load -- --sessions 20000 --concurrency 1000
//! cargo run --release -p scomo-server --example load -- --sessions 20000 --concurrency 1000 --rate 2000
//! cargo run --release -p scomo-server --example load -- --synchronous normal
//! cargo run --release -p scomo-server --example load -- --database-url postgres://postgres@127.0.0.1/test
//! ```
//!
//! Starts an in-process server on 127.0.0.1:0 over SQLite in a temporary
//! directory (or the given PostgreSQL, in a schema of its own dropped at the
//! end), provisions the devices and queues the batches through the store,
//! then prints sessions/s, messages/s (HTTP round trips, and DM messages:
//! a round trip is a device message and the server's answer), latency
//! percentiles, CPU time per session and the process's peak RSS (server and
//! load generator share the process). Without `--rate` the devices run
//! closed loop (a new session as soon as one of the C slots is free: the
//! server's most sessions/s); with `--rate R` sessions are due at R per
//! second whatever the server does (open loop), up to C in flight, and a
//! session's time counts from when it was due (closed loop: from when it
//! got one of the C slots). DevDetail reads are off,
//! so each session carries exactly the queued Gets. `--synchronous` sets
//! `database.sqlite_synchronous` of the server (default `full`); the setup
//! always writes with `normal`, it is not what is measured.
//! `--writer-cache-mib M` sets `database.sqlite_writer_cache_mib`. Each concurrent
//! device holds two sockets in this process: 1,000 devices need an
//! open-file limit above 2,000 (`ulimit -n`).
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a measurement tool"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use omadm::auth::{AuthType, Credentials};
use omadm::client::{ClientConfig, ClientOutcome, ClientSession, SessionKind, SessionStart};
use omadm::handler::MemoryDevice;
use omadm::{AuthConfig, Incoming, NonceState};
use omadm_wire::model::{Command, Item, ItemCommand, Location};
use scomo_server::store::{
    AuthType as StoredAuth, ClientCredentials, CommandQueue as _, DeviceStore as _, NewBatch,
    NewDevice, SqlStore, SqliteSync, Timestamp,
};
use scomo_server::{run, AppState, Config, Listener};
use tokio::sync::Semaphore;

/// The `scomo` binary's allocator, so that what is measured is what ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    sessions: usize,
    concurrency: usize,
    gets: usize,
    database_url: Option<String>,
    pool: Option<u32>,
    synchronous: SqliteSync,
    /// Open loop: sessions started per second (0: each device starts its
    /// session as soon as one of the `concurrency` slots is free).
    rate: f64,
    /// `database.sqlite_writer_cache_mib` (unset: the server's default).
    writer_cache_mib: Option<u32>,
}

fn args() -> Args {
    let mut a = Args {
        sessions: 1000,
        concurrency: 32,
        gets: 10,
        database_url: None,
        pool: None,
        synchronous: SqliteSync::Full,
        rate: 0.0,
        writer_cache_mib: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().expect("a value after the flag");
        match flag.as_str() {
            "--sessions" => a.sessions = value().parse().expect("number"),
            "--concurrency" => a.concurrency = value().parse().expect("number"),
            "--gets" => a.gets = value().parse().expect("number"),
            "--database-url" => a.database_url = Some(value()),
            "--pool" => a.pool = Some(value().parse().expect("number")),
            "--rate" => a.rate = value().parse().expect("sessions per second"),
            "--writer-cache-mib" => a.writer_cache_mib = Some(value().parse().expect("MiB")),
            "--synchronous" => {
                a.synchronous = match value().as_str() {
                    "full" => SqliteSync::Full,
                    "normal" => SqliteSync::Normal,
                    other => panic!("--synchronous {other}: expected full or normal"),
                }
            }
            other => panic!(
                "unknown flag {other}; use --sessions N --concurrency C --gets G --database-url URL \
                 --pool N --synchronous full|normal --rate R --writer-cache-mib M"
            ),
        }
    }
    a
}

fn get(uri: &str) -> Command {
    Command::Get(ItemCommand {
        items: vec![Item {
            target: Some(Location::uri(uri)),
            ..Item::default()
        }],
        ..ItemCommand::default()
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let a = args();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.path().to_owned(),
        database_url: a.database_url.clone(),
        ..Config::default()
    };
    config.dm.server_password = Some("server-secret".into());
    // Exactly the queued Gets per session.
    config.dm.read_devdetail = false;
    // The DM core only: no SCOMO inventory reads or catalog at session start.
    config.scomo.inventory_max_age_secs = 0;
    config.scomo.catalog = false;
    config.database.max_connections = a.pool;
    let schema = a.database_url.as_ref().map(|_| {
        let mut r = [0u8; 4];
        getrandom::fill(&mut r).unwrap();
        format!("scomo_load_{:08x}", u32::from_be_bytes(r))
    });
    config.database.pg_schema = schema.clone();
    config.database.sqlite_synchronous = a.synchronous;
    config.database.sqlite_writer_cache_mib = a.writer_cache_mib;
    // Setup through a store of its own (on SQLite without an fsync per
    // device); the server opens the same database afterwards.
    let mut setup_config = config.store_config();
    setup_config.sqlite_synchronous = SqliteSync::Normal;
    let store = SqlStore::open(&setup_config).await.expect("setup store");
    let now = Timestamp::now();
    let setup = Instant::now();
    let commands: Vec<Command> = (0..a.gets)
        .map(|i| {
            get(if i % 2 == 0 {
                "./DevInfo/Man"
            } else {
                "./DevInfo/Mod"
            })
        })
        .collect();
    for i in 0..a.sessions {
        let id = format!("load-{i:06}");
        store
            .provision_device(
                &NewDevice {
                    id: id.clone(),
                    client_credentials: Some(ClientCredentials::from_password(
                        StoredAuth::Md5,
                        &id,
                        "pw",
                    )),
                    ..NewDevice::default()
                },
                now,
            )
            .await
            .unwrap();
        store
            .enqueue_batch(
                &NewBatch {
                    device_id: id,
                    owner: "load".into(),
                    commands: commands.clone(),
                    idempotent: true,
                },
                now,
            )
            .await
            .unwrap();
    }
    store.close().await;
    drop(store);
    let setup = setup.elapsed();
    let state = AppState::open(config).await.expect("server");
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    let url = format!("{}/dm", listener.url().unwrap());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(state, listener, async {
        let _ = stop_rx.await;
    }));

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(a.concurrency)
        .tcp_nodelay(true)
        .build()
        .unwrap();
    let gate = Arc::new(Semaphore::new(a.concurrency));
    let cpu_before = cpu_time();
    let started = Instant::now();
    let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let most_in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(a.sessions);
    for i in 0..a.sessions {
        let (http, url, gate) = (http.clone(), url.clone(), gate.clone());
        let (in_flight, most) = (in_flight.clone(), most_in_flight.clone());
        // Open loop: session i is due at i / rate, and its time counts from
        // then, waiting for a slot included (no coordinated omission).
        let due = (a.rate > 0.0).then(|| {
            tokio::time::Instant::from_std(started) + Duration::from_secs_f64(i as f64 / a.rate)
        });
        tasks.push(tokio::spawn(async move {
            if let Some(due) = due {
                tokio::time::sleep_until(due).await;
            }
            let _permit = gate.acquire_owned().await.unwrap();
            // Closed loop: from when the session got its slot.
            let from = due.map(|d| d.into_std()).unwrap_or_else(Instant::now);
            use std::sync::atomic::Ordering::Relaxed;
            most.fetch_max(in_flight.fetch_add(1, Relaxed) + 1, Relaxed);
            let (ok, lat, _) = session(&http, &url, &format!("load-{i:06}"), i).await;
            in_flight.fetch_sub(1, Relaxed);
            (ok, lat, from.elapsed())
        }));
    }
    let mut messages = Vec::new();
    let mut sessions = Vec::new();
    let mut failed = 0usize;
    for t in tasks {
        let (ok, per_message, total) = t.await.unwrap();
        if !ok {
            failed += 1;
        }
        messages.extend(per_message);
        sessions.push(total);
    }
    let elapsed = started.elapsed();
    let cpu = cpu_time().saturating_sub(cpu_before);
    messages.sort();
    sessions.sort();
    let secs = elapsed.as_secs_f64();
    println!(
        "backend       {}",
        if a.database_url.is_some() {
            "postgresql"
        } else {
            "sqlite"
        }
    );
    println!(
        "sessions      {} ({} failed), at most {} at a time ({} reached), {} Gets each{}",
        a.sessions,
        failed,
        a.concurrency,
        most_in_flight.load(std::sync::atomic::Ordering::Relaxed),
        a.gets,
        if a.rate > 0.0 {
            format!(", started at {} per second (open loop)", a.rate)
        } else {
            String::new()
        }
    );
    println!(
        "setup         {:.2?} (provision + enqueue through the store)",
        setup
    );
    println!("wall time     {elapsed:.2?}");
    println!("sessions/s    {:.0}", a.sessions as f64 / secs);
    println!(
        "messages/s    {:.0} round trips, {:.0} DM messages (each round trip is a device \
         message and the server's)",
        messages.len() as f64 / secs,
        2.0 * messages.len() as f64 / secs
    );
    println!(
        "message       p50 {:.2?}  p99 {:.2?}  max {:.2?}",
        percentile(&messages, 0.5),
        percentile(&messages, 0.99),
        messages.last().copied().unwrap_or_default()
    );
    println!(
        "session       p50 {:.2?}  p99 {:.2?}",
        percentile(&sessions, 0.5),
        percentile(&sessions, 0.99)
    );
    println!(
        "cpu           {:.0} us per session, {:.2} cores busy (user + system, server and load generator)",
        cpu.as_secs_f64() * 1e6 / a.sessions as f64,
        cpu.as_secs_f64() / secs
    );
    println!(
        "peak RSS      {} MiB (server and load generator, one process)",
        peak_rss_kib() / 1024
    );
    if a.database_url.is_none() {
        let size = |f: &str| {
            std::fs::metadata(dir.path().join(f))
                .map(|m| m.len() / 1024)
                .unwrap_or(0)
        };
        println!(
            "sqlite files  db {} KiB, wal {} KiB",
            size("scomo.db"),
            size("scomo.db-wal")
        );
    }
    let _ = stop_tx.send(());
    let _ = server.await;
    if let (Some(url), Some(schema)) = (&a.database_url, &schema) {
        use sqlx::Connection as _;
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
        )))
        .execute(&mut c)
        .await
        .unwrap();
    }
}

/// The CPU time (user + system) the process has used so far.
fn cpu_time() -> Duration {
    // Fields 14 and 15 of /proc/self/stat are utime and stime, in clock
    // ticks (100 per second on Linux).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // After the name, field 3 (state) is index 0: utime is 14 -> 11, stime 15 -> 12.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// The process's peak resident set (`VmHWM`), in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// One session; returns whether it completed, each round trip's latency and
/// the whole session's.
async fn session(
    http: &reqwest::Client,
    url: &str,
    id: &str,
    n: usize,
) -> (bool, Vec<Duration>, Duration) {
    let mut cfg = ClientConfig::new(id, url, "scomo");
    cfg.client_auth = Some(AuthConfig::new(AuthType::Md5, Credentials::new(id, "pw")));
    cfg.server_auth = Some(AuthConfig::new(
        AuthType::Md5,
        Credentials::new("scomo", "server-secret"),
    ));
    cfg.max_msg_size = 64 * 1024;
    let mut device = MemoryDevice::new();
    device.set("./DevInfo/Man", "LoadCo");
    device.set("./DevInfo/Mod", "L1");
    let mut s = ClientSession::new(
        cfg,
        SessionStart {
            kind: SessionKind::ClientInitiated {
                session_id: format!("{:X}", n % 0xFFFF + 1),
            },
            dev_info: vec![
                ("./DevInfo/DevId".into(), id.into()),
                ("./DevInfo/Man".into(), "LoadCo".into()),
                ("./DevInfo/Mod".into(), "L1".into()),
            ],
            alerts: Vec::new(),
            nonces: NonceState::default(),
        },
    );
    let start = Instant::now();
    let mut lat = Vec::new();
    while let Some(req) = s.poll_transmit() {
        let t = Instant::now();
        let resp = http
            .post(&req.url)
            .header("content-type", req.content_type)
            .body(req.body)
            .send()
            .await;
        let Ok(resp) = resp else {
            s.transport_failed("send");
            break;
        };
        if !resp.status().is_success() {
            s.transport_failed(resp.status().to_string());
            break;
        }
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp.bytes().await.unwrap_or_default();
        lat.push(t.elapsed());
        let _ = s.handle_response(
            Incoming {
                body: &body,
                content_type: ct.as_deref(),
                hmac: None,
            },
            &mut device,
            &mut |b: &mut [u8]| getrandom::fill(b).unwrap(),
        );
    }
    (
        s.outcome() == Some(&ClientOutcome::Completed),
        lat,
        start.elapsed(),
    )
}
