//! [`Sim`]: the fleet, its sessions and its operations.

use scomo_agent::session::TreeHandler;
use std::future::Future;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use omadm::auth::{AuthType, Credentials};
use omadm::client::{
    ClientAlert, ClientConfig, ClientEvent, ClientOutcome, ClientSession, SessionKind as DmKind,
    SessionStart,
};
use omadm::package0::{NonceUsed, Notification};
use omadm::{AuthConfig, Incoming};
use omadm_tree::{HookRouter, Tree};
use scomo::mo::EntryKind;
use tokio::sync::{watch, Semaphore};

use crate::config::{Model, SimAuth, SimConfig};
use crate::device::{build_tree, read_entries, template, DeviceState, Identity, Want};
use crate::exec::{self, Finished};
use crate::hooks::{SessionHooks, Ui};
use crate::outcome::{expected_outcome, mix, unit, Injected, Rates};
use crate::package::PackageCache;
use crate::stats::{SessionKind, Stats, Summary};
use crate::SimError;

/// Devices per bulk provisioning request.
const PROVISION_CHUNK: usize = 1000;
/// Longest wait between retries of an unacknowledged report.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// The shared state of a running simulator.
pub(crate) struct Inner {
    pub(crate) cfg: SimConfig,
    pub(crate) http: reqwest::Client,
    pub(crate) stats: Stats,
    pub(crate) packages: PackageCache,
    pub(crate) downloads: Semaphore,
    sessions: Arc<Semaphore>,
    template: Tree,
    devices: Box<[Mutex<DeviceState>]>,
    notify_port: u16,
    /// Bumped on every change tests may wait for.
    changed: watch::Sender<u64>,
    stop: watch::Sender<bool>,
    /// Sessions and operations queued or running.
    in_flight: AtomicU64,
    last_activity: Mutex<Instant>,
}

/// A simulated fleet. Start it with [`Sim::start`], provision and register
/// the devices, then let the server work on them; [`Sim::stop`] gives the
/// [`Summary`].
pub struct Sim {
    inner: Arc<Inner>,
    listener: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("devices", &self.inner.cfg.devices)
            .field("notify_port", &self.inner.notify_port)
            .finish()
    }
}

impl Sim {
    /// Builds the fleet and binds the package-0 socket (no session yet).
    pub async fn start(cfg: SimConfig) -> Result<Sim, SimError> {
        cfg.validate().map_err(SimError::Config)?;
        let http = reqwest::Client::builder()
            .timeout(cfg.http_timeout)
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(cfg.concurrency + cfg.download_concurrency)
            .user_agent(concat!("scomo-sim/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SimError::Http(e.to_string()))?;
        let template =
            template(&cfg.server_id, &cfg.server_url).map_err(|e| SimError::Tree(e.to_string()))?;
        let sock = if cfg.notify {
            Some(
                crate::notify::bind(cfg.notify_port).map_err(|e| SimError::Notify {
                    port: cfg.notify_port,
                    reason: e.to_string(),
                })?,
            )
        } else {
            None
        };
        let notify_port = match &sock {
            Some(s) => s.local_addr().map(|a| a.port()).unwrap_or(cfg.notify_port),
            None => cfg.notify_port,
        };
        let devices = (0..cfg.devices)
            .map(|_| Mutex::new(DeviceState::default()))
            .collect();
        let inner = Arc::new(Inner {
            http,
            stats: Stats::new(),
            packages: PackageCache::default(),
            downloads: Semaphore::new(cfg.download_concurrency),
            sessions: Arc::new(Semaphore::new(cfg.concurrency)),
            template,
            devices,
            notify_port,
            changed: watch::channel(0).0,
            stop: watch::channel(false).0,
            in_flight: AtomicU64::new(0),
            last_activity: Mutex::new(Instant::now()),
            cfg,
        });
        let listener = sock.map(|s| tokio::spawn(crate::notify::serve(inner.clone(), s)));
        Ok(Sim { inner, listener })
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.inner.cfg
    }

    /// The DevId of device `n`.
    pub fn device_id(&self, n: u32) -> String {
        self.inner.dev_id(n)
    }

    /// Where device `n` receives package 0.
    pub fn notify_addr(&self, n: u32) -> String {
        format!(
            "udp://{}:{}",
            crate::notify::device_ip(n),
            self.inner.notify_port
        )
    }

    /// The model of device `n` (a seeded draw over the configured mix).
    pub fn model(&self, n: u32) -> &Model {
        self.inner.model(n)
    }

    /// The injection for operation `k` of device `device`: a pure function
    /// of its arguments (see [`crate::expected_outcome`]).
    pub fn expected_outcome(seed: u64, device: u64, k: u64, rates: &Rates) -> Injected {
        expected_outcome(seed, device, k, rates)
    }

    /// The components device `n` has: (ID, Version, State).
    pub fn components(&self, n: u32) -> Vec<(String, String, u16)> {
        self.inner
            .devices
            .get(n as usize)
            .map_or_else(Vec::new, |d| {
                lock(d)
                    .components
                    .iter()
                    .map(|c| (c.id.to_string(), c.version.to_string(), c.state))
                    .collect()
            })
    }

    /// Provisions every device through `POST /api/v1/devices/bulk`, in
    /// chunks of 1000 (one store transaction each). Devices that exist are
    /// taken as they are. Returns how many were created.
    pub async fn provision(&self) -> Result<u64, SimError> {
        let inner = &self.inner;
        let token = inner
            .cfg
            .api_token
            .as_deref()
            .ok_or_else(|| SimError::Config("provisioning needs an API token".into()))?;
        let url = format!(
            "{}/api/v1/devices/bulk",
            inner.cfg.api_url.trim_end_matches('/')
        );
        let mut created = 0;
        let all: Vec<u32> = (0..inner.cfg.devices).collect();
        for chunk in all.chunks(PROVISION_CHUNK) {
            let devices: Vec<serde_json::Value> = chunk
                .iter()
                .map(|&n| {
                    let m = inner.model(n);
                    let mut labels = serde_json::Map::new();
                    labels.insert("sim".into(), inner.cfg.prefix.clone().into());
                    labels.insert("model".into(), m.model.clone().into());
                    for (k, v) in &inner.cfg.labels {
                        labels.insert(k.clone(), v.clone().into());
                    }
                    serde_json::json!({
                        "id": inner.dev_id(n),
                        "username": inner.dev_id(n),
                        "password": inner.password(n),
                        "auth": match inner.cfg.auth { SimAuth::Md5 => "md5", SimAuth::Basic => "basic" },
                        "notify_addr": inner.cfg.notify.then(|| self.notify_addr(n)),
                        "labels": labels,
                    })
                })
                .collect();
            let resp = inner
                .http
                .post(&url)
                .bearer_auth(token)
                .json(&serde_json::json!({ "devices": devices }))
                .send()
                .await
                .map_err(|e| SimError::Http(format!("POST {url}: {e}")))?;
            let status = resp.status();
            let body: serde_json::Value = resp
                .json()
                .await
                .map_err(|e| SimError::Http(format!("POST {url}: reading the answer: {e}")))?;
            if status.as_u16() != 207 {
                return Err(SimError::Http(format!("POST {url}: HTTP {status}: {body}")));
            }
            let count = |k: &str| body.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
            if count("invalid") > 0 {
                return Err(SimError::Http(format!(
                    "the server refused {} devices: {body}",
                    count("invalid")
                )));
            }
            created += count("created");
            inner
                .stats
                .provisioned
                .fetch_add(count("created") + count("exists"), Relaxed);
        }
        inner.touch();
        Ok(created)
    }

    /// Starts one registration session per device (1201 with DevInfo), at
    /// most `register_rate` per second. Returns once all are started; wait
    /// for them with [`Sim::wait_until`] (`registered`).
    pub async fn register(&self) {
        let inner = &self.inner;
        let started = tokio::time::Instant::now();
        for n in 0..inner.cfg.devices {
            if *inner.stop.borrow() {
                return;
            }
            if inner.cfg.register_rate > 0.0 {
                let at = started + Duration::from_secs_f64(f64::from(n) / inner.cfg.register_rate);
                tokio::time::sleep_until(at).await;
            }
            inner.request(n, Want::Client);
        }
    }

    /// Asks device `n` for a client-initiated session now.
    pub fn poke(&self, n: u32) {
        if n < self.inner.cfg.devices {
            self.inner.request(n, Want::Client);
        }
    }

    /// The figures so far.
    pub fn summary(&self) -> Summary {
        self.inner.stats.summary(u64::from(self.inner.cfg.devices))
    }

    /// Devices whose registration session completed.
    pub fn registered(&self) -> u64 {
        self.inner.stats.registered.load(Relaxed)
    }

    /// Devices whose server acknowledged `SimConfig::report_target`
    /// reports (0 when no target is set).
    pub fn devices_done(&self) -> u64 {
        self.inner.stats.devices_done.load(Relaxed)
    }

    /// Whether nothing is queued or running, and for how long.
    pub fn idle_for(&self) -> Option<Duration> {
        (self.inner.in_flight.load(Relaxed) == 0).then(|| lock(&self.inner.last_activity).elapsed())
    }

    /// Waits until `cond` holds for the summary (checked on every change),
    /// at most `timeout`. `Err` carries the last summary.
    pub async fn wait_until(
        &self,
        mut cond: impl FnMut(&Summary) -> bool,
        timeout: Duration,
    ) -> Result<Summary, Box<Summary>> {
        let mut rx = self.inner.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let s = self.summary();
            if cond(&s) {
                return Ok(s);
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return Err(Box::new(s)); },
                () = tokio::time::sleep_until(deadline) => return Err(Box::new(self.summary())),
            }
        }
    }

    /// Stops: no new sessions; running ones end within `grace`.
    pub async fn stop(mut self, grace: Duration) -> Summary {
        let _ = self.inner.stop.send(true);
        let deadline = tokio::time::Instant::now() + grace;
        let mut rx = self.inner.changed.subscribe();
        while self.inner.in_flight.load(Relaxed) > 0 {
            tokio::select! {
                r = rx.changed() => if r.is_err() { break },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        if let Some(l) = self.listener.take() {
            l.abort();
        }
        self.summary()
    }

    /// Bytes of compact state held per idle device (the fleet's table and
    /// each device's state; heap parts of nonces and entries excluded).
    pub fn state_bytes_per_device() -> usize {
        std::mem::size_of::<Mutex<DeviceState>>()
    }
}

/// When [`run`] stops on its own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StopWhen {
    /// Nothing queued or running for this long (after registration).
    pub idle: Option<Duration>,
    /// Every device had this many reports acknowledged
    /// (`SimConfig::report_target`).
    pub all_reported: bool,
}

/// Runs a whole simulation: start, provision (when a token is given),
/// register, then serve the server until `shutdown` resolves or `stop`
/// says so. `progress` is called about once a second.
pub async fn run(
    cfg: SimConfig,
    stop: StopWhen,
    mut progress: impl FnMut(&Sim),
    shutdown: impl Future<Output = ()>,
) -> Result<Summary, SimError> {
    let sim = Sim::start(cfg).await?;
    tokio::pin!(shutdown);
    if sim.config().api_token.is_some() {
        tokio::select! {
            r = sim.provision() => { r?; }
            () = &mut shutdown => return Ok(sim.stop(Duration::from_secs(5)).await),
        }
    }
    if sim.config().register {
        tokio::select! {
            () = sim.register() => {}
            () = &mut shutdown => return Ok(sim.stop(Duration::from_secs(5)).await),
        }
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let target = u64::from(sim.config().devices);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = tick.tick() => {
                progress(&sim);
                if stop.all_reported && sim.config().report_target > 0 && sim.devices_done() >= target {
                    break;
                }
                if let (Some(idle), Some(was)) = (stop.idle, sim.idle_for()) {
                    if was >= idle {
                        break;
                    }
                }
            }
        }
    }
    Ok(sim.stop(Duration::from_secs(5)).await)
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Inner {
    pub(crate) fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    fn dev_id(&self, n: u32) -> String {
        format!("{}-{n}", self.cfg.prefix)
    }

    fn password(&self, n: u32) -> String {
        format!(
            "{:016x}",
            mix(self.cfg.seed, u64::from(n), 0, 0x7061_7373_776f_7264)
        )
    }

    fn model(&self, n: u32) -> &Model {
        let total: u64 = self.cfg.models.iter().map(|m| u64::from(m.weight)).sum();
        let pick =
            (unit(mix(self.cfg.seed, u64::from(n), 0, 0x6d6f_6465_6c21)) * total as f64) as u64;
        let mut acc = 0;
        for m in &self.cfg.models {
            acc += u64::from(m.weight);
            if pick < acc {
                return m;
            }
        }
        // validate() guarantees a model with a weight.
        &self.cfg.models[self.cfg.models.len() - 1]
    }

    fn device(&self, n: u32) -> Option<&Mutex<DeviceState>> {
        self.devices.get(n as usize)
    }

    fn touch(&self) {
        *self
            .last_activity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now();
        self.changed.send_modify(|g| *g += 1);
    }

    fn begin(&self) {
        self.in_flight.fetch_add(1, Relaxed);
        self.touch();
    }

    fn end(&self) {
        self.in_flight.fetch_sub(1, Relaxed);
        self.touch();
    }

    /// A package 0 sent to `dst`.
    pub(crate) fn notified(self: &Arc<Self>, dst: Ipv4Addr, bytes: &[u8]) {
        let reject = |why: &str| {
            self.stats.notifications_rejected.fetch_add(1, Relaxed);
            tracing::debug!(%dst, "package 0 dropped: {why}");
            self.touch();
        };
        let Some(n) = crate::notify::device_of(dst, self.cfg.devices) else {
            return reject("not a device address");
        };
        let Ok(received) = Notification::parse(bytes) else {
            return reject("unparsable");
        };
        if received.notification.server_id != self.cfg.server_id {
            return reject("unknown server id");
        }
        let creds = Credentials::new(self.cfg.server_id.clone(), self.cfg.server_password.clone());
        let session_id = received.notification.session_id;
        {
            let Some(d) = self.device(n) else {
                return reject("no device");
            };
            let mut st = lock(d);
            let used = match received.verify(&creds, st.nonces.server_nonce.as_bytes()) {
                Ok(u) => u,
                Err(_) => {
                    drop(st);
                    return reject("bad digest");
                }
            };
            if used != NonceUsed::Stored {
                st.nonces.server_nonce = used.nonce(st.nonces.server_nonce.as_bytes());
            }
            if st.last_notified == Some(session_id) {
                drop(st);
                return reject("repeated");
            }
            st.last_notified = Some(session_id);
        }
        self.stats.notifications.fetch_add(1, Relaxed);
        self.request(n, Want::Notified(session_id));
    }

    /// Asks for a session of device `n`; one session per device runs at a
    /// time, further requests are merged into the next one.
    pub(crate) fn request(self: &Arc<Self>, n: u32, want: Want) {
        if *self.stop.borrow() {
            return;
        }
        let Some(d) = self.device(n) else {
            return;
        };
        {
            let mut st = lock(d);
            st.want = match (st.want, want) {
                (Some(Want::Notified(s)), Want::Client) => Some(Want::Notified(s)),
                (_, w) => Some(w),
            };
            if st.scheduled {
                return;
            }
            st.scheduled = true;
        }
        self.begin();
        tokio::spawn(self.clone().session_task(n));
    }

    async fn session_task(self: Arc<Self>, n: u32) {
        let mut stop = self.stop.subscribe();
        loop {
            let permit = tokio::select! {
                p = self.sessions.clone().acquire_owned() => p.ok(),
                _ = stop.wait_for(|s| *s) => None,
            };
            let want = {
                let Some(d) = self.device(n) else { break };
                let mut st = lock(d);
                match (permit.is_some(), st.want.take()) {
                    (true, Some(w)) => w,
                    _ => {
                        st.scheduled = false;
                        break;
                    }
                }
            };
            self.session(n, want).await;
            drop(permit);
        }
        self.end();
    }

    /// One DM session of device `n`.
    async fn session(self: &Arc<Self>, n: u32, want: Want) {
        let Some(d) = self.device(n) else { return };
        let dev_id = self.dev_id(n);
        let password = self.password(n);
        let model = self.model(n);
        let ident = Identity {
            dev_id: &dev_id,
            man: &model.man,
            model: &model.model,
            dev_typ: &model.dev_typ,
            username: &dev_id,
            password: &password,
        };
        let built = {
            let mut st = lock(d);
            match build_tree(&self.template, &ident, &st) {
                Ok(tree) => {
                    st.in_session = true;
                    let hooks = SessionHooks {
                        cache: &self.packages,
                        next_k: st.ops,
                        busy: st.busy.clone(),
                        components: st.components.clone(),
                        delivered: st
                            .entries
                            .iter()
                            .filter(|e| e.kind == EntryKind::Delivered)
                            .filter_map(|e| Some((e.name.clone(), e.package.clone()?)))
                            .collect(),
                        pushed: Vec::new(),
                        accepted: Vec::new(),
                    };
                    let alerts: Vec<ClientAlert> = st
                        .outbox
                        .iter()
                        .map(|r| ClientAlert {
                            id: r.id,
                            alert: r.report.to_alert(None),
                        })
                        .collect();
                    let kind = match want {
                        Want::Notified(_) => SessionKind::Notified,
                        Want::Client if !st.registered => SessionKind::Register,
                        Want::Client => SessionKind::Report,
                    };
                    Ok((
                        tree,
                        hooks,
                        alerts,
                        st.nonces.clone(),
                        st.previous_server_nonce.clone(),
                        kind,
                    ))
                }
                Err(e) => Err(e),
            }
        };
        let (mut tree, mut hooks, alerts, nonces, previous, kind) = match built {
            Ok(b) => b,
            Err(e) => {
                self.stats.error("cannot build the tree");
                tracing::warn!(device = %dev_id, "cannot build the tree: {e}");
                return;
            }
        };
        let sent = alerts.len();
        let mut cfg = ClientConfig::new(&dev_id, self.cfg.server_url_of(n), &self.cfg.server_id);
        let auth = match self.cfg.auth {
            SimAuth::Md5 => AuthType::Md5,
            SimAuth::Basic => AuthType::Basic,
        };
        cfg.client_auth = Some(AuthConfig::new(auth, Credentials::new(&dev_id, &password)));
        cfg.server_auth = Some(AuthConfig::new(
            AuthType::Md5,
            Credentials::new(self.cfg.server_id.clone(), self.cfg.server_password.clone()),
        ));
        cfg.max_msg_size = self.cfg.max_msg_size;
        let dm_kind = match want {
            Want::Notified(session_id) => DmKind::ServerInitiated { session_id },
            Want::Client => DmKind::ClientInitiated {
                session_id: new_session_id(),
            },
        };
        let mut session = ClientSession::new(
            cfg,
            SessionStart {
                kind: dm_kind,
                dev_info: vec![
                    ("./DevInfo/DevId".into(), dev_id.clone()),
                    ("./DevInfo/Man".into(), model.man.clone()),
                    ("./DevInfo/Mod".into(), model.model.clone()),
                    ("./DevInfo/DmV".into(), "1.2".into()),
                    ("./DevInfo/Lang".into(), "en-US".into()),
                ],
                alerts,
                nonces,
            },
        );
        session.set_previous_server_nonce(previous);
        let started = Instant::now();
        let mut messages = 0u64;
        let mut nonces_now = None;
        while let Some(req) = session.poll_transmit() {
            messages += 1;
            drain(&mut session, &mut nonces_now);
            let reply = match self.post(&req).await {
                Ok(r) => r,
                Err(e) => {
                    self.stats.error(&e.0);
                    tracing::debug!(device = %dev_id, "{}", e.1);
                    session.transport_failed(e.1);
                    break;
                }
            };
            let mut ui = Ui;
            let router = HookRouter::new()
                .route(crate::device::ROOT, &mut hooks)
                .map(|r| r.fallback(&mut ui));
            let Ok(mut router) = router else {
                session.abort();
                break;
            };
            let mut handler = TreeHandler::new(&mut tree, &mut router, unix_now());
            let result = session.handle_response(
                Incoming {
                    body: &reply.1,
                    content_type: reply.0.as_deref(),
                    hmac: None,
                },
                &mut handler,
                &mut fill_random,
            );
            if let Err(e) = result {
                tracing::debug!(device = %dev_id, "session error: {e}");
            }
            drain(&mut session, &mut nonces_now);
        }
        drain(&mut session, &mut nonces_now);
        let ok = session.outcome() == Some(&ClientOutcome::Completed);
        if !ok {
            self.stats.error(&format!("{} session failed", kind.name()));
        }
        self.stats.session(kind, ok, messages, started.elapsed());
        let report = session.alert_report();
        let accepted = std::mem::take(&mut hooks.accepted);
        let mut reports_pending = false;
        let mut retry = false;
        {
            let mut st = lock(d);
            if let Some(n) = nonces_now {
                st.nonces = n;
            }
            st.previous_server_nonce = session.previous_server_nonce().cloned();
            st.entries = read_entries(&tree, &st.entries, &hooks.pushed);
            st.ops = hooks.next_k;
            st.busy = std::mem::take(&mut hooks.busy);
            let done: Vec<u64> = report
                .delivered
                .iter()
                .map(|(id, _)| *id)
                .chain(report.failed.iter().map(|(id, _)| *id))
                .collect();
            for (_, status) in &report.failed {
                self.stats
                    .error(&format!("report refused with status {}", status.0));
            }
            let before = st.outbox.len();
            st.outbox.retain(|r| !done.contains(&r.id));
            let acked = (before - st.outbox.len()) as u64;
            if acked > 0 {
                self.stats.reports_delivered.fetch_add(acked, Relaxed);
                let target = self.cfg.report_target;
                let was = st.reported;
                st.reported += acked as u32;
                if target > 0 && was < target && st.reported >= target {
                    self.stats.devices_done.fetch_add(1, Relaxed);
                }
            }
            if ok && kind == SessionKind::Register && !st.registered {
                st.registered = true;
                self.stats.registered.fetch_add(1, Relaxed);
            }
            st.in_session = false;
            for f in std::mem::take(&mut st.deferred) {
                self.applied(&mut st, f);
            }
            if !st.outbox.is_empty() {
                // Sent and not acknowledged: retry later; new ones: now.
                if sent > 0 && (!ok || !report.pending.is_empty()) {
                    if !st.retry_pending {
                        st.retry_pending = true;
                        st.report_failures = st.report_failures.saturating_add(1);
                        retry = true;
                    }
                } else {
                    reports_pending = true;
                }
            } else {
                st.report_failures = 0;
            }
            if reports_pending && st.want.is_none() {
                st.want = Some(Want::Client);
            }
            if retry {
                let delay = self.retry_delay(st.report_failures);
                let inner = self.clone();
                self.begin();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    if let Some(d) = inner.device(n) {
                        lock(d).retry_pending = false;
                    }
                    inner.request(n, Want::Client);
                    inner.end();
                });
            }
        }
        for op in accepted {
            self.begin();
            let inner = self.clone();
            tokio::spawn(async move {
                exec::run(inner.clone(), n, op).await;
                inner.end();
            });
        }
        self.touch();
    }

    fn retry_delay(&self, failures: u8) -> Duration {
        let base = self.cfg.report_retry;
        let f = 1u32 << u32::from(failures.saturating_sub(1).min(8));
        (base * f).min(MAX_RETRY)
    }

    /// An operation ended: apply it now, or after the running session.
    pub(crate) fn finish(self: &Arc<Self>, n: u32, f: Finished) {
        let Some(d) = self.device(n) else { return };
        let mut st = lock(d);
        if st.in_session {
            st.deferred.push(f);
            return;
        }
        self.applied(&mut st, f);
        drop(st);
        self.request(n, Want::Client);
    }

    fn applied(&self, st: &mut DeviceState, f: Finished) {
        let name = format!("{:?}", f.op.primitive);
        let code = f.result.0;
        exec::apply(st, f);
        self.stats.op(&name, code);
    }

    /// POSTs one DM message; `Err((kind, detail))`.
    async fn post(
        &self,
        req: &omadm::client::Request,
    ) -> Result<(Option<String>, Vec<u8>), (String, String)> {
        let mut r = self
            .http
            .post(&req.url)
            .header(reqwest::header::CONTENT_TYPE, req.content_type)
            .header(reqwest::header::ACCEPT, req.content_type)
            .body(req.body.clone());
        if let Some(h) = &req.hmac {
            r = r.header("x-syncml-hmac", h);
        }
        let resp = r.send().await.map_err(|e| {
            (
                "DM POST failed".to_owned(),
                format!("POST {}: {e}", req.url),
            )
        })?;
        let status = resp.status();
        let ct = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp
            .bytes()
            .await
            .map_err(|e| ("DM reply cut short".to_owned(), e.to_string()))?;
        if !status.is_success() {
            return Err((
                format!("DM POST: HTTP {}", status.as_u16()),
                format!("HTTP {status}"),
            ));
        }
        Ok((ct, body.to_vec()))
    }
}

fn drain(session: &mut ClientSession, nonces: &mut Option<omadm::NonceState>) {
    while let Some(ev) = session.poll_event() {
        if let ClientEvent::NoncesChanged(n) = ev {
            *nonces = Some(n);
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn fill_random(buf: &mut [u8]) {
    if getrandom::fill(buf).is_err() {
        let mut x = unix_now() ^ 0x5eed;
        for b in buf {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
    }
}

fn new_session_id() -> String {
    let mut b = [0u8; 2];
    fill_random(&mut b);
    format!("{:X}", u16::from_be_bytes(b).max(1))
}
