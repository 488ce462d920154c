//! `TestApp`: a real server on port 0 over a temporary data directory, and
//! `DmClient`: an `omadm` client engine driven over real HTTP.

use std::path::{Path, PathBuf};
use std::time::Duration;

use omadm::auth::{AuthType, Credentials};
use omadm::client::{
    ClientConfig, ClientEvent, ClientOutcome, ClientSession, SessionKind, SessionStart,
};
use omadm::handler::MemoryDevice;
use omadm::{AuthConfig, Incoming, NonceState};
use scomo_server::{run, AppState, Config, Listener};
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// The server password every TestApp uses by default.
pub(crate) const SERVER_PASSWORD: &str = "server-secret";

/// Builds a [`TestApp`].
pub(crate) struct Builder {
    config: Config,
    dir: tempfile::TempDir,
    tls: bool,
}

impl Builder {
    pub(crate) fn new() -> Builder {
        Builder::in_dir(tempfile::tempdir().expect("temp dir"))
    }

    /// Reuses a data directory (a restarted server).
    pub(crate) fn in_dir(dir: tempfile::TempDir) -> Builder {
        let mut config = Config {
            listen: "127.0.0.1:0".into(),
            data_dir: dir.path().to_owned(),
            ..Config::default()
        };
        config.dm.server_password = Some(SERVER_PASSWORD.into());
        config.notify.poll_interval_ms = 50;
        config.notify.retry_initial_ms = 200;
        config.notify.retry_max_ms = 1000;
        Builder {
            config,
            dir,
            tls: false,
        }
    }

    pub(crate) fn configure(mut self, f: impl FnOnce(&mut Config)) -> Builder {
        f(&mut self.config);
        self
    }

    /// HTTPS with a fresh self-signed certificate for 127.0.0.1/localhost.
    pub(crate) fn tls(mut self) -> Builder {
        self.tls = true;
        self
    }

    pub(crate) async fn start(mut self) -> TestApp {
        let mut ca = None;
        if self.tls {
            let key = rcgen::KeyPair::generate().expect("key");
            let params =
                rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
                    .expect("params");
            let cert = params.self_signed(&key).expect("cert");
            let cert_path = self.dir.path().join("cert.pem");
            let key_path = self.dir.path().join("key.pem");
            std::fs::write(&cert_path, cert.pem()).expect("write cert");
            std::fs::write(&key_path, key.serialize_pem()).expect("write key");
            self.config.tls.cert = Some(cert_path.clone());
            self.config.tls.key = Some(key_path);
            ca = Some(cert_path);
        }
        let token_path = self.config.admin_token_path();
        let state = AppState::open(self.config.clone())
            .await
            .expect("server starts");
        let tls = match (&self.config.tls.cert, &self.config.tls.key) {
            (Some(c), Some(k)) => Some(scomo_server::tls_acceptor(c, k).expect("tls")),
            _ => None,
        };
        let listener = Listener::bind(self.config.listen_addr().expect("addr"), tls)
            .await
            .expect("bind");
        let url = listener.url().expect("url");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(run(state.clone(), listener, async {
            let _ = rx.await;
        }));
        let token = std::fs::read_to_string(&token_path)
            .expect("admin token file")
            .trim()
            .to_owned();
        let mut http = reqwest::Client::builder().timeout(Duration::from_secs(30));
        if let Some(ca) = &ca {
            let pem = std::fs::read(ca).expect("ca");
            http = http.add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("pem"));
        }
        TestApp {
            url,
            token,
            state,
            http: http.build().expect("client"),
            ca,
            dir: Some(self.dir),
            stop: Some(tx),
            task: Some(task),
        }
    }
}

/// A running server.
pub(crate) struct TestApp {
    pub(crate) url: String,
    pub(crate) token: String,
    pub(crate) state: AppState,
    pub(crate) http: reqwest::Client,
    pub(crate) ca: Option<PathBuf>,
    dir: Option<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    pub(crate) async fn start() -> TestApp {
        Builder::new().start().await
    }

    pub(crate) fn dm_url(&self) -> String {
        format!("{}/dm", self.url)
    }

    pub(crate) fn data_dir(&self) -> &Path {
        self.dir.as_ref().expect("dir").path()
    }

    /// Stops the server gracefully and hands back its data directory.
    pub(crate) async fn stop(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("server task").expect("server ran");
        }
        self.dir.take().expect("dir")
    }

    /// Drops the server without closing its sessions (a crash): the task is
    /// aborted, the store handle survives only in the state clone.
    pub(crate) async fn crash(mut self) -> tempfile::TempDir {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
        self.dir.take().expect("dir")
    }

    pub(crate) fn api(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.url)
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.api(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("GET");
        status_json(r).await
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.api(path))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("POST");
        status_json(r).await
    }

    /// Provisions `id` with MD5 credentials `id`/`secret-<id>`.
    pub(crate) async fn provision(&self, id: &str, extra: Value) -> Value {
        let mut body = json!({"id": id, "username": id, "password": password(id)});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        let (status, v) = self.post("/devices", body).await;
        assert_eq!(status, 201, "{v}");
        v
    }

    /// Enqueues a batch; returns its id.
    pub(crate) async fn enqueue(&self, id: &str, body: Value) -> i64 {
        let (status, v) = self
            .post(&format!("/devices/{}/commands", enc(id)), body)
            .await;
        assert_eq!(status, 201, "{v}");
        v["id"].as_i64().expect("batch id")
    }

    pub(crate) async fn batch(&self, id: &str, batch: i64) -> Value {
        let (status, v) = self
            .get(&format!("/devices/{}/commands/{batch}", enc(id)))
            .await;
        assert_eq!(status, 200, "{v}");
        v
    }

    pub(crate) async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

pub(crate) async fn status_json(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, v)
}

/// Percent-encodes a device id for a path segment.
pub(crate) fn enc(id: &str) -> String {
    id.replace('%', "%25")
        .replace(':', "%3A")
        .replace('/', "%2F")
}

pub(crate) fn password(id: &str) -> String {
    format!("secret-{id}")
}

/// A device driving an `omadm` ClientSession over HTTP.
pub(crate) struct DmClient {
    pub(crate) cfg: ClientConfig,
    pub(crate) device: MemoryDevice,
    pub(crate) nonces: NonceState,
    pub(crate) http: reqwest::Client,
    /// The DS content type instead of the DM one (QUIRKS.md).
    pub(crate) ds_content_type: bool,
}

/// What one session did.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) outcome: Option<ClientOutcome>,
    pub(crate) messages: u32,
    pub(crate) http_errors: Vec<(u16, String)>,
    pub(crate) content_types: Vec<String>,
    pub(crate) urls: Vec<String>,
}

impl DmClient {
    /// A device `id` with MD5 credentials matching [`TestApp::provision`].
    pub(crate) fn new(app: &TestApp, id: &str) -> DmClient {
        let mut cfg = ClientConfig::new(id, app.dm_url(), "scomo");
        cfg.client_auth = Some(AuthConfig::new(
            AuthType::Md5,
            Credentials::new(id, password(id)),
        ));
        cfg.server_auth = Some(AuthConfig::new(
            AuthType::Md5,
            Credentials::new("scomo", SERVER_PASSWORD),
        ));
        let mut device = MemoryDevice::new();
        device.set("./DevInfo/DevId", id);
        device.set("./DevInfo/Man", "Acme");
        device.set("./DevInfo/Mod", "Rocket");
        device.set("./DevDetail/FwV", "1.0");
        device.set("./DevDetail/DevTyp", "gateway");
        DmClient {
            cfg,
            device,
            nonces: NonceState::default(),
            http: app.http.clone(),
            ds_content_type: false,
        }
    }

    pub(crate) fn session(&self, session_id: &str) -> ClientSession {
        ClientSession::new(
            self.cfg.clone(),
            SessionStart {
                kind: SessionKind::ClientInitiated {
                    session_id: session_id.into(),
                },
                dev_info: vec![
                    ("./DevInfo/DevId".into(), self.cfg.device_id.clone()),
                    ("./DevInfo/Man".into(), "Acme".into()),
                    ("./DevInfo/Mod".into(), "Rocket".into()),
                    ("./DevInfo/DmV".into(), "1.2".into()),
                    ("./DevInfo/Lang".into(), "en".into()),
                ],
                alerts: Vec::new(),
                nonces: self.nonces.clone(),
            },
        )
    }

    /// Runs `session` to its end, or for `max_messages` messages.
    pub(crate) async fn drive(&mut self, session: &mut ClientSession, max_messages: u32) -> Run {
        let mut run = Run {
            outcome: None,
            messages: 0,
            http_errors: Vec::new(),
            content_types: Vec::new(),
            urls: Vec::new(),
        };
        while run.messages < max_messages {
            let Some(req) = session.poll_transmit() else {
                break;
            };
            run.messages += 1;
            run.urls.push(req.url.clone());
            let ct = if self.ds_content_type {
                req.content_type.replace("syncml.dm+", "syncml+")
            } else {
                req.content_type.to_owned()
            };
            let mut r = self
                .http
                .post(&req.url)
                .header("content-type", ct)
                .body(req.body.clone());
            if let Some(h) = &req.hmac {
                r = r.header("x-syncml-hmac", h);
            }
            let resp = match r.send().await {
                Ok(r) => r,
                Err(e) => {
                    session.transport_failed(e.to_string());
                    break;
                }
            };
            let status = resp.status().as_u16();
            let header = |n: &str| {
                resp.headers()
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let content_type = header("content-type");
            let hmac = header("x-syncml-hmac");
            let body = resp.bytes().await.expect("body");
            if status != 200 {
                run.http_errors
                    .push((status, String::from_utf8_lossy(&body).into_owned()));
                session.transport_failed(format!("HTTP {status}"));
                break;
            }
            run.content_types
                .push(content_type.clone().unwrap_or_default());
            let mut rng = |b: &mut [u8]| getrandom::fill(b).expect("random");
            let _ = session.handle_response(
                Incoming {
                    body: &body,
                    content_type: content_type.as_deref(),
                    hmac: hmac.as_deref(),
                },
                &mut self.device,
                &mut rng,
            );
            while let Some(ev) = session.poll_event() {
                if let ClientEvent::NoncesChanged(n) = ev {
                    self.nonces = n;
                }
            }
        }
        run.outcome = session.outcome().cloned();
        run
    }

    /// A whole client-initiated session.
    pub(crate) async fn run_session(&mut self) -> Run {
        let mut s = self.session(&format!("{:X}", next_session_id()));
        self.drive(&mut s, 50).await
    }
}

fn next_session_id() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static N: AtomicU16 = AtomicU16::new(0x100);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Polls `f` every 20 ms until it returns `Some`, for at most `secs`.
pub(crate) async fn eventually<T, F, Fut>(secs: u64, mut f: F) -> T
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
            "condition not met in {secs}s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
