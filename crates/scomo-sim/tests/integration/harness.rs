//! A scomo server in-process and helpers for its REST API.

use std::time::Duration;

use scomo_server::{run, AppState, Config, Listener};
use scomo_sim::{Model, Rates, Sim, SimConfig};
use serde_json::{json, Value};
use tokio::sync::oneshot;

pub(crate) const SERVER_PASSWORD: &str = "server-secret";
pub(crate) const WAIT: Duration = Duration::from_secs(60);

pub(crate) struct Server {
    pub(crate) url: String,
    pub(crate) token: String,
    pub(crate) http: reqwest::Client,
    _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
}

impl Server {
    pub(crate) async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            listen: "127.0.0.1:0".into(),
            data_dir: dir.path().to_owned(),
            ..Config::default()
        };
        config.dm.server_password = Some(SERVER_PASSWORD.into());
        config.notify.poll_interval_ms = 50;
        config.notify.retry_initial_ms = 200;
        config.notify.retry_max_ms = 1000;
        let token_path = config.admin_token_path();
        let state = AppState::open(config.clone()).await.expect("server");
        let listener = Listener::bind(config.listen_addr().unwrap(), None)
            .await
            .unwrap();
        let url = listener.url().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(run(state, listener, async {
            let _ = rx.await;
        }));
        let token = std::fs::read_to_string(token_path)
            .unwrap()
            .trim()
            .to_owned();
        Server {
            url,
            token,
            http: reqwest::Client::new(),
            _dir: dir,
            stop: Some(tx),
        }
    }

    /// A simulator config for this server.
    pub(crate) fn sim_config(&self, devices: u32, seed: u64, rates: Rates) -> SimConfig {
        SimConfig {
            server_url: format!("{}/dm", self.url),
            api_url: self.url.clone(),
            api_token: Some(self.token.clone()),
            server_password: SERVER_PASSWORD.into(),
            devices,
            prefix: format!("t{seed}"),
            seed,
            models: vec![
                Model::parse("Acme:A1:phone=3").unwrap(),
                Model::parse("Zeta:Z9:meter=1").unwrap(),
            ],
            concurrency: 8,
            rates,
            ..SimConfig::default()
        }
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}/api/v1{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/api/v1{path}", self.url))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// Uploads a package with one component `<id>.svc` at `version`.
    pub(crate) async fn upload(&self, pkg_id: &str, version: &str) {
        let manifest = format!(
            "[package]\nid = \"{pkg_id}\"\nname = \"Pkg\"\nenv_type = \"archive\"\n\n\
             [[component]]\nid = \"{pkg_id}.svc\"\nname = \"Service\"\nversion = \"{version}\"\ndir = \"svc\"\n"
        );
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        for (path, data) in [
            ("scomo-package.toml", manifest.as_bytes()),
            ("svc/payload.bin", &[7u8; 5000][..]),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            tar.append_data(&mut h, path, data).unwrap();
        }
        let body = tar.into_inner().unwrap().finish().unwrap();
        let r = self
            .http
            .post(format!("{}/api/v1/packages", self.url))
            .bearer_auth(&self.token)
            .header("content-type", "application/gzip")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "upload: {}", r.status());
    }

    /// Creates a job, returns its id.
    pub(crate) async fn job(&self, body: Value) -> i64 {
        let (status, v) = self.post("/jobs", body).await;
        assert_eq!(status, 201, "{v}");
        v["id"].as_i64().unwrap()
    }

    /// Waits until the job is over (polling its state; bounded).
    pub(crate) async fn finished_job(&self, id: i64) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let (_, v) = self.get(&format!("/jobs/{id}")).await;
            if v["finished"] == json!(true) {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job {id} did not finish: {v}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Starts, provisions and registers a fleet.
pub(crate) async fn fleet(server: &Server, cfg: SimConfig) -> Sim {
    let n = u64::from(cfg.devices);
    let sim = Sim::start(cfg).await.unwrap();
    assert_eq!(sim.provision().await.unwrap(), n);
    sim.register().await;
    sim.wait_until(|s| s.registered == n, WAIT)
        .await
        .unwrap_or_else(|s| panic!("registration did not finish: {s}"));
    let _ = server;
    sim
}
