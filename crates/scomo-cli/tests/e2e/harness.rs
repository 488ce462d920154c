//! Processes: a server, agents, the admin client.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_scomo");
pub(crate) const SERVER_PASSWORD: &str = "e2e-server-secret";

/// A `scomo server` process.
pub(crate) struct Server {
    child: Option<Child>,
    pub(crate) url: String,
    pub(crate) token: String,
    pub(crate) data_dir: PathBuf,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `scomo server` on 127.0.0.1:0 with `extra` flags and waits for
    /// its "listening on" line.
    pub(crate) fn start(data_dir: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .arg("server")
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args([
                "--server-password",
                SERVER_PASSWORD,
                "--notify-retry-ms",
                "300",
            ])
            .args(extra)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn scomo server");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(i) = line.find("listening on ") {
                    let url = line[i + "listening on ".len()..]
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(url);
                    }
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(u) => u,
            Err(_) => {
                let _ = child.kill();
                panic!("server did not start:\n{}", log.lock().unwrap());
            }
        };
        let token = std::fs::read_to_string(data_dir.join("admin.token"))
            .expect("admin.token")
            .trim()
            .to_owned();
        Server {
            child: Some(child),
            url,
            token,
            data_dir: data_dir.to_owned(),
            log,
        }
    }

    pub(crate) fn dm_url(&self) -> String {
        format!("{}/dm", self.url)
    }

    /// What the server logged so far.
    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGKILL: a crash.
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait: a graceful stop.
    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
            panic!("server did not stop on SIGTERM");
        }
    }

    /// `scomo admin --json <args>` against this server.
    pub(crate) fn admin(&self, args: &[&str]) -> Value {
        let out = self.admin_raw(args);
        assert!(
            out.status.success(),
            "scomo admin {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("admin prints JSON")
    }

    pub(crate) fn admin_raw(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("admin")
            .args(["--server", &self.url, "--json"])
            .args(args)
            .env("SCOMO_TOKEN", &self.token)
            .output()
            .expect("scomo admin")
    }

    /// Provisions a device whose user name and password match [`Agent`].
    pub(crate) fn provision(&self, id: &str, extra: &[&str]) {
        let user = username(id);
        let pass = password(id);
        let mut args = vec![
            "device",
            "add",
            "--id",
            id,
            "--username",
            &user,
            "--password",
            &pass,
        ];
        args.extend_from_slice(extra);
        self.admin(&args);
    }

    /// `GET /api/v1<path>`.
    pub(crate) async fn get(&self, http: &reqwest::Client, path: &str) -> Value {
        let r = http
            .get(format!("{}/api/v1{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("GET");
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.expect("json")
    }

    /// Enqueues a batch through the REST API; returns its id.
    pub(crate) async fn enqueue(&self, http: &reqwest::Client, id: &str, body: Value) -> i64 {
        let r = http
            .post(format!("{}/api/v1/devices/{}/commands", self.url, enc(id)))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("POST");
        assert_eq!(r.status().as_u16(), 201);
        r.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
    }

    pub(crate) async fn batch(&self, http: &reqwest::Client, id: &str, batch: i64) -> Value {
        self.get(http, &format!("/devices/{}/commands/{batch}", enc(id)))
            .await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

pub(crate) fn username(id: &str) -> String {
    format!("user-{}", id.replace(':', "-"))
}

pub(crate) fn password(id: &str) -> String {
    format!("pw-{id}")
}

pub(crate) fn enc(id: &str) -> String {
    id.replace(':', "%3A")
}

/// `scomo agent` flags for device `id` against `dm_url`.
pub(crate) fn agent_args(id: &str, dm_url: &str, data_dir: &Path) -> Vec<String> {
    vec![
        "agent".into(),
        "--server".into(),
        dm_url.into(),
        "--device-id".into(),
        id.into(),
        "--username".into(),
        username(id),
        "--password".into(),
        password(id),
        "--server-id".into(),
        "scomo".into(),
        "--server-password".into(),
        SERVER_PASSWORD.into(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--poll-interval".into(),
        "0".into(),
    ]
}

/// Runs `scomo <args>` to its end (at most two minutes).
pub(crate) fn run(args: &[String]) -> Output {
    let child = Command::new(BIN)
        .args(args)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn scomo");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(out) => out.expect("output"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("scomo {args:?} hung");
        }
    }
}

/// `scomo agent --once` for `id`; panics unless the session completed.
pub(crate) fn agent_once(id: &str, dm_url: &str, data_dir: &Path, extra: &[&str]) -> Output {
    let mut args = agent_args(id, dm_url, data_dir);
    args.push("--once".into());
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let out = run(&args);
    assert!(
        out.status.success(),
        "scomo agent --once for {id}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A long-running agent (a notification listener), killed on drop.
pub(crate) struct AgentDaemon(pub(crate) Child);

impl AgentDaemon {
    pub(crate) fn start(id: &str, dm_url: &str, data_dir: &Path, notify: &str) -> AgentDaemon {
        AgentDaemon::start_with(id, dm_url, data_dir, notify, &[])
    }

    /// Like [`AgentDaemon::start`] with more agent flags.
    pub(crate) fn start_with(
        id: &str,
        dm_url: &str,
        data_dir: &Path,
        notify: &str,
        extra: &[String],
    ) -> AgentDaemon {
        let mut args = agent_args(id, dm_url, data_dir);
        args.push("--notify-listen".into());
        args.push(notify.into());
        args.extend(extra.iter().cloned());
        AgentDaemon(
            Command::new(BIN)
                .args(&args)
                .env("NO_COLOR", "1")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn agent"),
        )
    }
}

impl Drop for AgentDaemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port free at the time of asking.
pub(crate) fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` every 25 ms until it returns `Some`, for at most `secs`.
pub(crate) async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {secs}s"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
