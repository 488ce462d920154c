//! The test harness: an agent (SCOMO client + shared, persisted tree +
//! executor task) driven through `Tree::apply`, package builders, and a
//! local HTTP server for alternate downloads.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, Response, StatusCode as HttpStatus};
use axum::routing;
use axum::Router;
use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey};
use omadm_tree::{HookRouter, Reply, ServerCtx, Tree};
use omadm_wire::model::{Command, Container, Data, Exec, Item, ItemCommand, Location, Meta};
use omadm_wire::StatusCode;
use scomo::alert::OperationComplete;
use scomo_agent::scomo_client::{
    ClientOptions, CrashMode, ScomoClient, ScomoConfig, SharedTree, TreeAccess,
};
use sha2::{Digest, Sha256};
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

pub(crate) const ROOT: &str = "./SCOMO";
pub(crate) const SERVER: &str = "dmserver";

/// The server-side id of the test signing key.
pub(crate) fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[42u8; 32])
}

pub(crate) fn trusted_key() -> String {
    scomo_agent::scomo_client::config::encode_key(signing_key().verifying_key().as_bytes())
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    scomo_agent::scomo_client::verify::hex(&Sha256::digest(bytes))
}

/// `Ext/Signature` for a package, signed with [`signing_key`].
pub(crate) fn signature(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    base64::engine::general_purpose::STANDARD.encode(signing_key().sign(&digest).to_bytes())
}

/// A config for tests: fast retries, small limits.
pub(crate) fn config() -> ScomoConfig {
    ScomoConfig {
        download_retries: 2,
        download_idle_timeout_secs: 10,
        download_connect_timeout_secs: 5,
        reserved_space_bytes: 0,
        hook_timeout_secs: 20,
        ..ScomoConfig::default()
    }
}

// ---- the agent ---------------------------------------------------------------------

/// A SCOMO client with its tree and executor, as the agent runtime wires it.
pub(crate) struct Agent {
    pub(crate) dir: PathBuf,
    pub(crate) client: ScomoClient,
    pub(crate) tree: Arc<SharedTree>,
    tree_file: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    msg: std::sync::atomic::AtomicU32,
}

impl Agent {
    pub(crate) async fn start(dir: &Path, cfg: ScomoConfig) -> Agent {
        Agent::start_with(dir, cfg, CrashMode::Off).await
    }

    pub(crate) async fn start_with(dir: &Path, cfg: ScomoConfig, crash: CrashMode) -> Agent {
        let tree_file = dir.join("tree.json");
        let mut tree: Tree = match fs::read(&tree_file) {
            Ok(b) => serde_json::from_slice(&b).expect("tree.json"),
            Err(_) => Tree::default(),
        };
        let client = ScomoClient::open_with(
            dir,
            cfg,
            ClientOptions {
                crash,
                ..ClientOptions::default()
            },
        )
        .expect("open");
        client.install_mo(&mut tree).expect("install_mo");
        save_tree(&tree_file, &tree);
        let file = tree_file.clone();
        let shared = Arc::new(SharedTree::new(
            tree,
            Some(Box::new(move |t: &Tree| {
                scomo_agent::persist::write_atomic(&file, &serde_json::to_vec(t)?)
            })),
        ));
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let runner = client.clone();
        let access: Arc<dyn TreeAccess> = shared.clone();
        let task = tokio::spawn(async move {
            runner
                .run(access, async {
                    let _ = stop_rx.await;
                })
                .await
                .expect("run");
        });
        Agent {
            dir: dir.to_owned(),
            client,
            tree: shared,
            tree_file,
            stop: Some(stop_tx),
            task: Some(task),
            msg: std::sync::atomic::AtomicU32::new(1),
        }
    }

    /// Stops the executor and drops everything (state stays on disk).
    pub(crate) async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("executor task");
        }
    }

    /// Applies one server command the way the DM session does: with the
    /// SCOMO hooks routed at ./SCOMO, then persists the tree.
    pub(crate) fn apply(&self, cmd: Command) -> Vec<Reply> {
        let mut t = self.tree.lock();
        let mut hooks = self.client.hooks();
        let mut router = HookRouter::new()
            .route(self.client.root(), &mut hooks)
            .expect("route");
        let ctx = ServerCtx {
            server_id: SERVER,
            msg_ref: self.msg.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
            now: 1_700_000_000,
        };
        let r = t.apply(&cmd, &ctx, &mut router);
        save_tree(&self.tree_file, &t);
        r
    }

    /// The status of the first reply.
    pub(crate) fn status(&self, cmd: Command) -> StatusCode {
        self.apply(cmd)
            .first()
            .and_then(|r| r.as_status().map(|s| s.data))
            .expect("a status")
    }

    /// The statuses of every reply.
    pub(crate) fn statuses(&self, cmd: Command) -> Vec<StatusCode> {
        self.apply(cmd)
            .iter()
            .filter_map(|r| r.as_status().map(|s| s.data))
            .collect()
    }

    pub(crate) fn exec(&self, uri: &str, correlator: &str) -> StatusCode {
        self.status(exec(uri, correlator))
    }

    /// A leaf value as text.
    pub(crate) fn value(&self, path: &str) -> Option<String> {
        self.tree.lock().value_str(path).map(str::to_owned)
    }

    pub(crate) fn exists(&self, path: &str) -> bool {
        self.tree.lock().exists(path)
    }

    pub(crate) fn children(&self, path: &str) -> Vec<String> {
        self.tree
            .lock()
            .child_names(path)
            .map(|v| v.into_iter().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    pub(crate) async fn idle(&self) {
        tokio::time::timeout(std::time::Duration::from_secs(60), self.client.wait_idle())
            .await
            .expect("operations did not finish");
    }

    /// The reports in the outbox.
    pub(crate) fn reports(&self) -> Vec<OperationComplete> {
        self.client
            .outbox()
            .entries()
            .into_iter()
            .map(|e| e.report)
            .collect()
    }

    /// The single report with `correlator`.
    pub(crate) fn report(&self, correlator: &str) -> OperationComplete {
        let mut r: Vec<_> = self
            .reports()
            .into_iter()
            .filter(|r| r.correlator.as_deref() == Some(correlator))
            .collect();
        assert_eq!(r.len(), 1, "reports for {correlator}: {r:?}");
        r.remove(0)
    }

    /// The result code of the single report with `correlator`.
    pub(crate) fn result(&self, correlator: &str) -> u16 {
        let r = self.report(correlator);
        r.items[0].result.0
    }

    /// Creates `Download/<name>` with the given leaves.
    pub(crate) fn add_download(&self, name: &str, leaves: &[(&str, &str)]) {
        let base = format!("{ROOT}/Download/{name}");
        assert_eq!(self.status(add_node(&base)), StatusCode::OK);
        for (leaf, v) in leaves {
            assert_eq!(
                self.status(add(&format!("{base}/{leaf}"), v)),
                StatusCode::OK,
                "{leaf}"
            );
        }
    }

    /// Direct delivery: Add Delivered/<name> with leaves and Replace Data,
    /// in one Atomic (as a server does).
    pub(crate) fn push_package(
        &self,
        name: &str,
        leaves: &[(&str, &str)],
        data: &[u8],
    ) -> Vec<StatusCode> {
        let base = format!("{ROOT}/Inventory/Delivered/{name}");
        let mut commands = vec![add_node(&base)];
        for (leaf, v) in leaves {
            commands.push(add(&format!("{base}/{leaf}"), v));
        }
        commands.push(replace_bin(&format!("{base}/Data"), data));
        self.statuses(Command::Atomic(Container {
            cmd_id: 1,
            commands,
            ..Container::default()
        }))
    }

    pub(crate) fn tree_snapshot(&self) -> Tree {
        self.tree.snapshot()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn save_tree(path: &Path, t: &Tree) {
    scomo_agent::persist::write_atomic(path, &serde_json::to_vec(t).expect("json")).expect("save");
}

// ---- commands ----------------------------------------------------------------------

fn item(target: &str) -> Item {
    Item {
        target: Some(Location::uri(target)),
        ..Item::default()
    }
}

pub(crate) fn add(path: &str, value: &str) -> Command {
    Command::Add(ItemCommand {
        cmd_id: 1,
        items: vec![Item {
            meta: Some(Meta::format("chr")),
            data: Some(Data::Text(value.to_owned())),
            ..item(path)
        }],
        ..ItemCommand::default()
    })
}

pub(crate) fn add_node(path: &str) -> Command {
    Command::Add(ItemCommand {
        cmd_id: 1,
        items: vec![Item {
            meta: Some(Meta::format("node")),
            ..item(path)
        }],
        ..ItemCommand::default()
    })
}

pub(crate) fn replace(path: &str, value: &str) -> Command {
    Command::Replace(ItemCommand {
        cmd_id: 1,
        items: vec![Item {
            data: Some(Data::Text(value.to_owned())),
            ..item(path)
        }],
        ..ItemCommand::default()
    })
}

pub(crate) fn replace_bin(path: &str, value: &[u8]) -> Command {
    Command::Replace(ItemCommand {
        cmd_id: 1,
        items: vec![Item {
            meta: Some(Meta::format_type("bin", "application/gzip")),
            data: Some(Data::Binary(value.to_owned())),
            ..item(path)
        }],
        ..ItemCommand::default()
    })
}

pub(crate) fn delete(path: &str) -> Command {
    Command::Delete(ItemCommand {
        cmd_id: 1,
        items: vec![item(path)],
        ..ItemCommand::default()
    })
}

pub(crate) fn get(path: &str) -> Command {
    Command::Get(ItemCommand {
        cmd_id: 1,
        items: vec![item(path)],
        ..ItemCommand::default()
    })
}

pub(crate) fn exec(path: &str, correlator: &str) -> Command {
    Command::Exec(Exec {
        cmd_id: 1,
        correlator: Some(correlator.to_owned()),
        items: vec![item(path)],
        ..Exec::default()
    })
}

pub(crate) fn download_uri(name: &str, op: &str) -> String {
    format!("{ROOT}/Download/{name}/Operations/{op}")
}

pub(crate) fn delivered_uri(name: &str, op: &str) -> String {
    format!("{ROOT}/Inventory/Delivered/{name}/Operations/{op}")
}

pub(crate) fn deployed_uri(id: &str, op: &str) -> String {
    format!("{ROOT}/Inventory/Deployed/{id}/Operations/{op}")
}

pub(crate) fn deployed(id: &str, leaf: &str) -> String {
    format!("{ROOT}/Inventory/Deployed/{id}/{leaf}")
}

// ---- packages ----------------------------------------------------------------------

/// One component of a test package. Its folder holds `VERSION` (the
/// version) and hooks that keep an `ACTIVE` marker in the component
/// directory and log to `log`.
#[derive(Clone, Debug)]
pub(crate) struct Comp {
    pub(crate) id: String,
    pub(crate) version: String,
    pub(crate) fail_activate: bool,
    pub(crate) fail_deactivate: bool,
    pub(crate) extra: Vec<(String, Vec<u8>)>,
}

pub(crate) fn comp(id: &str, version: &str) -> Comp {
    Comp {
        id: id.to_owned(),
        version: version.to_owned(),
        fail_activate: false,
        fail_deactivate: false,
        extra: Vec::new(),
    }
}

impl Comp {
    pub(crate) fn failing_activate(mut self) -> Comp {
        self.fail_activate = true;
        self
    }

    pub(crate) fn failing_deactivate(mut self) -> Comp {
        self.fail_deactivate = true;
        self
    }
}

/// Archive entries of a package: (path, content, mode); mode 0o120777 makes
/// a symlink whose target is the content.
pub(crate) type Entries = Vec<(String, Vec<u8>, u32)>;

pub(crate) fn manifest(pkg_id: &str, comps: &[Comp]) -> String {
    let mut m = format!(
        "[package]\nid = \"{pkg_id}\"\nname = \"Package {pkg_id}\"\nenv_type = \"archive\"\n"
    );
    for c in comps {
        m.push_str(&format!(
            "[[component]]\nid = \"{}\"\nname = \"Component {}\"\nversion = \"{}\"\ndir = \"{}\"\nactivate = \"hooks/activate\"\ndeactivate = \"hooks/deactivate\"\n",
            c.id, c.id, c.version, c.id
        ));
    }
    m
}

pub(crate) fn entries(pkg_id: &str, comps: &[Comp], log: &Path) -> Entries {
    let mut e: Entries = vec![(
        "scomo-package.toml".into(),
        manifest(pkg_id, comps).into_bytes(),
        0o644,
    )];
    for c in comps {
        let act = if c.fail_activate {
            format!("#!/bin/sh\necho \"activate-fail $SCOMO_COMPONENT_ID $SCOMO_COMPONENT_VERSION\" >> '{}'\nexit 1\n", log.display())
        } else {
            format!("#!/bin/sh\necho \"activate $SCOMO_COMPONENT_ID $SCOMO_COMPONENT_VERSION\" >> '{}'\ntouch ACTIVE\n", log.display())
        };
        let deact = if c.fail_deactivate {
            format!("#!/bin/sh\necho \"deactivate-fail $SCOMO_COMPONENT_ID $SCOMO_COMPONENT_VERSION\" >> '{}'\nexit 1\n", log.display())
        } else {
            format!("#!/bin/sh\necho \"deactivate $SCOMO_COMPONENT_ID $SCOMO_COMPONENT_VERSION\" >> '{}'\nrm -f ACTIVE\n", log.display())
        };
        e.push((format!("{}/", c.id), Vec::new(), 0o755 | 0o040_000));
        e.push((
            format!("{}/VERSION", c.id),
            c.version.clone().into_bytes(),
            0o644,
        ));
        e.push((format!("{}/hooks/activate", c.id), act.into_bytes(), 0o755));
        e.push((
            format!("{}/hooks/deactivate", c.id),
            deact.into_bytes(),
            0o755,
        ));
        for (p, data) in &c.extra {
            e.push((format!("{}/{p}", c.id), data.clone(), 0o644));
        }
    }
    e
}

/// A tar.gz of `entries`, written with raw headers (so that hostile paths
/// can be produced too).
pub(crate) fn tar_gz(entries: &Entries) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for (path, data, mode) in entries {
        let mut h = tar::Header::new_gnu();
        let is_dir = mode & 0o170_000 == 0o040_000;
        let is_link = mode & 0o170_000 == 0o120_000;
        let is_hard = mode & 0o170_000 == 0o110_000;
        {
            let name = &mut h.as_old_mut().name;
            name.fill(0);
            let bytes = path.as_bytes();
            name[..bytes.len()].copy_from_slice(bytes);
        }
        h.set_mode(mode & 0o7777);
        if is_dir {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
        } else if is_link || is_hard {
            h.set_entry_type(if is_link {
                tar::EntryType::Symlink
            } else {
                tar::EntryType::Link
            });
            let l = &mut h.as_old_mut().linkname;
            l.fill(0);
            l[..data.len()].copy_from_slice(data);
            h.set_size(0);
        } else {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(data.len() as u64);
        }
        h.set_cksum();
        let body: &[u8] = if is_dir || is_link || is_hard {
            &[]
        } else {
            data
        };
        b.append(&h, body).expect("append");
    }
    b.into_inner().expect("tar").finish().expect("gz")
}

/// A zip of `entries`.
pub(crate) fn zip(entries: &Entries) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (path, data, mode) in entries {
        let opts = zip::write::SimpleFileOptions::default().unix_permissions(*mode & 0o7777);
        if mode & 0o170_000 == 0o040_000 {
            w.add_directory(path.trim_end_matches('/'), opts)
                .expect("dir");
        } else if mode & 0o170_000 == 0o120_000 {
            w.add_symlink(path, String::from_utf8_lossy(data), opts)
                .expect("link");
        } else {
            w.start_file(path, opts).expect("file");
            w.write_all(data).expect("write");
        }
    }
    w.finish().expect("zip").into_inner()
}

/// A tar.gz package with hooks logging to `log`.
pub(crate) fn package(pkg_id: &str, comps: &[Comp], log: &Path) -> Vec<u8> {
    tar_gz(&entries(pkg_id, comps, log))
}

/// Incompressible bytes (so that packages are as large as their content).
pub(crate) fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 33) as u8
        })
        .collect()
}

/// The hook log lines.
pub(crate) fn hook_log(log: &Path) -> Vec<String> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

// ---- the HTTP server -----------------------------------------------------------------

/// How `/pkg/<name>` answers.
#[derive(Clone, Debug, Default)]
pub(crate) struct Served {
    pub(crate) body: Vec<u8>,
    pub(crate) content_type: Option<String>,
    /// Answer with this status instead.
    pub(crate) status: Option<u16>,
    /// First request only: send this many bytes, then break the
    /// connection.
    pub(crate) break_after: Option<usize>,
    /// Send the first `gate_after` bytes, then wait for `gate` before the
    /// rest (every request).
    pub(crate) gate_after: Option<usize>,
    /// Require this `Authorization` header.
    pub(crate) auth: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) range: Option<String>,
    pub(crate) if_range: Option<String>,
    pub(crate) body: String,
}

#[derive(Default)]
struct ServerState {
    files: HashMap<String, Served>,
    dds: HashMap<String, String>,
    seen: Vec<Seen>,
    broken: std::collections::HashSet<String>,
}

/// A local HTTP server for packages, descriptors and install-notify.
#[derive(Clone)]
pub(crate) struct Http {
    pub(crate) addr: SocketAddr,
    state: Arc<Mutex<ServerState>>,
    pub(crate) gate: Arc<Notify>,
}

const ETAG: &str = "\"v1\"";

impl Http {
    pub(crate) async fn start() -> Http {
        let state = Arc::new(Mutex::new(ServerState::default()));
        let gate = Arc::new(Notify::new());
        let app = Router::new()
            .route("/pkg/{name}", routing::get(serve_pkg))
            .route("/dd/{name}", routing::get(serve_dd))
            .route("/notify/{name}", routing::post(notify))
            .with_state((state.clone(), gate.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Http { addr, state, gate }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(crate) fn serve(&self, name: &str, served: Served) {
        self.state
            .lock()
            .unwrap()
            .files
            .insert(name.to_owned(), served);
    }

    pub(crate) fn serve_bytes(&self, name: &str, body: Vec<u8>) -> String {
        self.serve(
            name,
            Served {
                body,
                ..Served::default()
            },
        );
        self.url(&format!("/pkg/{name}"))
    }

    pub(crate) fn serve_dd(&self, name: &str, xml: String) -> String {
        self.state.lock().unwrap().dds.insert(name.to_owned(), xml);
        self.url(&format!("/dd/{name}"))
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    pub(crate) fn seen_path(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path == path).collect()
    }
}

type AppState = (Arc<Mutex<ServerState>>, Arc<Notify>);

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

async fn serve_pkg(
    State((state, gate)): State<AppState>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Response<Body> {
    let range = header(&headers, "range");
    let if_range = header(&headers, "if-range");
    let (served, first) = {
        let mut st = state.lock().unwrap();
        st.seen.push(Seen {
            method: "GET".into(),
            path: format!("/pkg/{name}"),
            range: range.clone(),
            if_range: if_range.clone(),
            body: String::new(),
        });
        let first = st.broken.insert(name.clone());
        (st.files.get(&name).cloned(), first)
    };
    let Some(s) = served else {
        return status(404);
    };
    if let Some(code) = s.status {
        return status(code);
    }
    if let Some(a) = &s.auth {
        if header(&headers, "authorization").as_deref() != Some(a.as_str()) {
            return status(401);
        }
    }
    let total = s.body.len();
    let mut start = 0;
    let mut code = 200;
    if let Some(r) = range.as_deref().and_then(|r| r.strip_prefix("bytes=")) {
        let from: usize = r.trim_end_matches('-').parse().unwrap_or(0);
        if if_range.as_deref().is_none_or(|v| v == ETAG) {
            if from >= total {
                return status(416);
            }
            start = from;
            code = 206;
        }
    }
    let body = s.body[start..].to_vec();
    let mut resp = Response::builder()
        .status(code)
        .header("etag", ETAG)
        .header("accept-ranges", "bytes")
        .header(
            "content-type",
            s.content_type
                .as_deref()
                .unwrap_or("application/octet-stream"),
        )
        .header("content-length", body.len().to_string());
    if code == 206 {
        resp = resp.header(
            "content-range",
            format!("bytes {start}-{}/{total}", total - 1),
        );
    }
    let stream_body = if let (Some(n), true) = (s.break_after, first) {
        let n = n.min(body.len());
        let head = body[..n].to_vec();
        // The break comes a moment after the head, so that the head is on
        // the wire when the connection goes down.
        let broken = futures_util::stream::once(async {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            Err::<Vec<u8>, std::io::Error>(std::io::Error::other("connection broken on purpose"))
        });
        Body::from_stream(futures_util::StreamExt::chain(
            futures_util::stream::iter(vec![Ok::<Vec<u8>, std::io::Error>(head)]),
            broken,
        ))
    } else if let Some(n) = s.gate_after {
        let n = n.min(body.len());
        let head = body[..n].to_vec();
        let tail = body[n..].to_vec();
        let gate = gate.clone();
        let rest = futures_util::stream::once(async move {
            gate.notified().await;
            Ok::<Vec<u8>, std::io::Error>(tail)
        });
        Body::from_stream(futures_util::StreamExt::chain(
            futures_util::stream::iter(vec![Ok::<Vec<u8>, std::io::Error>(head)]),
            rest,
        ))
    } else {
        Body::from(body)
    };
    resp.body(stream_body).unwrap()
}

async fn serve_dd(
    State((state, _)): State<AppState>,
    UrlPath(name): UrlPath<String>,
) -> Response<Body> {
    let dd = {
        let mut st = state.lock().unwrap();
        st.seen.push(Seen {
            method: "GET".into(),
            path: format!("/dd/{name}"),
            ..Seen::default()
        });
        st.dds.get(&name).cloned()
    };
    match dd {
        Some(xml) => Response::builder()
            .status(200)
            .header("content-type", "application/vnd.oma.dd+xml")
            .body(Body::from(xml))
            .unwrap(),
        None => status(404),
    }
}

async fn notify(
    State((state, _)): State<AppState>,
    UrlPath(name): UrlPath<String>,
    body: String,
) -> Response<Body> {
    state.lock().unwrap().seen.push(Seen {
        method: "POST".into(),
        path: format!("/notify/{name}"),
        body,
        ..Seen::default()
    });
    status(200)
}

fn status(code: u16) -> Response<Body> {
    Response::builder()
        .status(HttpStatus::from_u16(code).unwrap())
        .body(Body::empty())
        .unwrap()
}

// ---- consistency -------------------------------------------------------------------

/// Names in a directory.
pub(crate) fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Inventory, component directories and `Inventory/Deployed` agree; each
/// component's files are one whole version; the ACTIVE marker matches the
/// State; no operation leftovers remain.
pub(crate) fn assert_consistent(a: &Agent) {
    let inv = a.client.inventory();
    let mut ids: Vec<String> = inv.iter().map(|c| c.id.clone()).collect();
    ids.sort();
    assert_eq!(
        names(&a.dir.join("components")),
        ids,
        "component directories"
    );
    let mut deployed = a.children(&format!("{ROOT}/Inventory/Deployed"));
    deployed.sort();
    assert_eq!(deployed, ids, "Inventory/Deployed");
    for c in &inv {
        let dir = a.client.component_dir(&c.id);
        let on_disk = fs::read_to_string(dir.join("VERSION")).unwrap_or_default();
        assert_eq!(on_disk, c.version, "{} files", c.id);
        assert_eq!(
            a.value(&deployed_path(&c.id, "Version")).as_deref(),
            Some(c.version.as_str())
        );
        assert_eq!(
            a.value(&deployed_path(&c.id, "State")),
            Some(c.state.to_string()),
            "{} State",
            c.id
        );
        assert_eq!(
            dir.join("ACTIVE").exists(),
            c.state == scomo::state::DcState::Active,
            "{} ACTIVE marker vs state {:?}",
            c.id,
            c.state
        );
    }
    for d in ["staging", "backup", "ops", "trash"] {
        assert_eq!(
            names(&a.dir.join("scomo").join(d)),
            Vec::<String>::new(),
            "scomo/{d}"
        );
    }
    assert!(
        names(&a.dir.join("scomo/downloads")).is_empty(),
        "downloads left: {:?}",
        names(&a.dir.join("scomo/downloads"))
    );
}

fn deployed_path(id: &str, leaf: &str) -> String {
    deployed(id, leaf)
}
