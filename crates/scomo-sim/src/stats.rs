//! Counters while the simulator runs, and the [`Summary`] it prints.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Why a session ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionKind {
    /// The device's first client-initiated session (1201 + DevInfo).
    Register,
    /// Answering a verified package 0 (1200).
    Notified,
    /// Client-initiated to deliver OperationComplete reports.
    Report,
}

impl SessionKind {
    const ALL: [SessionKind; 3] = [
        SessionKind::Register,
        SessionKind::Notified,
        SessionKind::Report,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// The name used in summaries.
    pub fn name(self) -> &'static str {
        match self {
            SessionKind::Register => "register",
            SessionKind::Notified => "notified",
            SessionKind::Report => "report",
        }
    }
}

/// Live counters (cheap to update from every task).
pub(crate) struct Stats {
    started: Instant,
    sessions: [AtomicU64; 3],
    sessions_failed: [AtomicU64; 3],
    messages: AtomicU64,
    latencies_us: Mutex<Vec<u32>>,
    downloads: AtomicU64,
    download_bytes: AtomicU64,
    pub(crate) notifications: AtomicU64,
    pub(crate) notifications_rejected: AtomicU64,
    pub(crate) reports_delivered: AtomicU64,
    pub(crate) devices_done: AtomicU64,
    pub(crate) registered: AtomicU64,
    ops: Mutex<BTreeMap<(String, u16), u64>>,
    errors: Mutex<BTreeMap<String, u64>>,
    pub(crate) provisioned: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Stats {
    pub(crate) fn new() -> Stats {
        Stats {
            started: Instant::now(),
            sessions: Default::default(),
            sessions_failed: Default::default(),
            messages: AtomicU64::new(0),
            latencies_us: Mutex::new(Vec::new()),
            downloads: AtomicU64::new(0),
            download_bytes: AtomicU64::new(0),
            notifications: AtomicU64::new(0),
            notifications_rejected: AtomicU64::new(0),
            reports_delivered: AtomicU64::new(0),
            devices_done: AtomicU64::new(0),
            registered: AtomicU64::new(0),
            ops: Mutex::new(BTreeMap::new()),
            errors: Mutex::new(BTreeMap::new()),
            provisioned: AtomicU64::new(0),
        }
    }

    pub(crate) fn session(&self, kind: SessionKind, ok: bool, messages: u64, took: Duration) {
        self.sessions[kind.index()].fetch_add(1, Relaxed);
        if !ok {
            self.sessions_failed[kind.index()].fetch_add(1, Relaxed);
        }
        self.messages.fetch_add(messages, Relaxed);
        let us = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
        lock(&self.latencies_us).push(us);
    }

    pub(crate) fn download(&self, bytes: u64) {
        self.downloads.fetch_add(1, Relaxed);
        self.download_bytes.fetch_add(bytes, Relaxed);
    }

    pub(crate) fn op(&self, primitive: &str, code: u16) {
        *lock(&self.ops)
            .entry((primitive.to_owned(), code))
            .or_insert(0) += 1;
    }

    pub(crate) fn error(&self, what: &str) {
        let mut e = lock(&self.errors);
        match e.get_mut(what) {
            Some(n) => *n += 1,
            None => {
                e.insert(what.to_owned(), 1);
            }
        }
    }

    pub(crate) fn summary(&self, devices: u64) -> Summary {
        let mut lat = lock(&self.latencies_us).clone();
        lat.sort_unstable();
        let pct = |p: f64| -> f64 {
            if lat.is_empty() {
                return 0.0;
            }
            let i = ((lat.len() - 1) as f64 * p).round() as usize;
            f64::from(lat[i.min(lat.len() - 1)]) / 1000.0
        };
        let wall_s = self.started.elapsed().as_secs_f64();
        let sessions: BTreeMap<String, u64> = SessionKind::ALL
            .iter()
            .map(|k| (k.name().to_owned(), self.sessions[k.index()].load(Relaxed)))
            .collect();
        let sessions_failed = self.sessions_failed.iter().map(|a| a.load(Relaxed)).sum();
        let total: u64 = sessions.values().sum();
        let messages = self.messages.load(Relaxed);
        let mut operations = Vec::new();
        for ((primitive, code), count) in lock(&self.ops).iter() {
            operations.push(OpCount {
                primitive: primitive.clone(),
                result: *code,
                class: class_name(*code).to_owned(),
                count: *count,
            });
        }
        Summary {
            devices,
            provisioned: self.provisioned.load(Relaxed),
            registered: self.registered.load(Relaxed),
            wall_s,
            sessions,
            sessions_failed,
            sessions_per_s: if wall_s > 0.0 {
                total as f64 / wall_s
            } else {
                0.0
            },
            messages,
            messages_per_s: if wall_s > 0.0 {
                messages as f64 / wall_s
            } else {
                0.0
            },
            p50_ms: pct(0.5),
            p90_ms: pct(0.9),
            p99_ms: pct(0.99),
            downloads: self.downloads.load(Relaxed),
            download_bytes: self.download_bytes.load(Relaxed),
            notifications: self.notifications.load(Relaxed),
            notifications_rejected: self.notifications_rejected.load(Relaxed),
            reports_delivered: self.reports_delivered.load(Relaxed),
            operations,
            errors: lock(&self.errors).clone(),
        }
    }
}

fn class_name(code: u16) -> &'static str {
    match scomo::ResultCode(code).class() {
        scomo::result::ResultClass::Success => "success",
        scomo::result::ResultClass::UserDeclined => "user_declined",
        scomo::result::ResultClass::DeviceFault => "device_fault",
        scomo::result::ResultClass::DownloadServerFault => "download_server_fault",
        _ => "unknown",
    }
}

/// Operations that ended with one result code.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpCount {
    /// The primitive (`DownloadInstall`, ...).
    pub primitive: String,
    /// The SCOMO result code reported.
    pub result: u16,
    /// Its class (`success`, `device_fault`, `download_server_fault`,
    /// `user_declined`).
    pub class: String,
    /// How many.
    pub count: u64,
}

/// What a run did. `Display` prints the table; serde gives the JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Simulated devices.
    pub devices: u64,
    /// Devices the server took in provisioning (created or existing).
    pub provisioned: u64,
    /// Devices whose registration session completed.
    pub registered: u64,
    /// Seconds since the simulator started.
    pub wall_s: f64,
    /// Sessions by kind (`register`, `notified`, `report`).
    pub sessions: BTreeMap<String, u64>,
    /// Sessions that did not complete.
    pub sessions_failed: u64,
    /// Sessions per second over the run.
    pub sessions_per_s: f64,
    /// DM messages sent.
    pub messages: u64,
    /// DM messages per second over the run.
    pub messages_per_s: f64,
    /// Session latency percentiles (whole session, milliseconds).
    pub p50_ms: f64,
    /// See `p50_ms`.
    pub p90_ms: f64,
    /// See `p50_ms`.
    pub p99_ms: f64,
    /// HTTP downloads (descriptors and packages).
    pub downloads: u64,
    /// Bytes downloaded.
    pub download_bytes: u64,
    /// Package-0 notifications that started a session.
    pub notifications: u64,
    /// Package-0 datagrams dropped (unknown address, bad digest, repeat).
    pub notifications_rejected: u64,
    /// Reports the server acknowledged.
    pub reports_delivered: u64,
    /// Operations by primitive and result code.
    pub operations: Vec<OpCount>,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
}

impl Summary {
    /// Operations that ended with `code`, over all primitives.
    pub fn ops_with(&self, code: u16) -> u64 {
        self.operations
            .iter()
            .filter(|o| o.result == code)
            .map(|o| o.count)
            .sum()
    }

    /// Operations reported, in all.
    pub fn ops_total(&self) -> u64 {
        self.operations.iter().map(|o| o.count).sum()
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "devices            {} ({} provisioned, {} registered)",
            self.devices, self.provisioned, self.registered
        )?;
        writeln!(f, "wall time          {:.1} s", self.wall_s)?;
        let kinds: Vec<String> = self
            .sessions
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        writeln!(
            f,
            "sessions           {} ({}), {} failed, {:.0}/s",
            self.sessions.values().sum::<u64>(),
            kinds.join(", "),
            self.sessions_failed,
            self.sessions_per_s
        )?;
        writeln!(
            f,
            "DM messages        {} ({:.0}/s)",
            self.messages, self.messages_per_s
        )?;
        writeln!(
            f,
            "session latency    p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms",
            self.p50_ms, self.p90_ms, self.p99_ms
        )?;
        writeln!(
            f,
            "downloads          {} ({} bytes)",
            self.downloads, self.download_bytes
        )?;
        writeln!(
            f,
            "package 0          {} started a session, {} dropped",
            self.notifications, self.notifications_rejected
        )?;
        writeln!(f, "reports delivered  {}", self.reports_delivered)?;
        writeln!(f, "operations         {}", self.ops_total())?;
        for o in &self.operations {
            writeln!(
                f,
                "  {:<24} {} {:<22} {}",
                o.primitive, o.result, o.class, o.count
            )?;
        }
        let errors: u64 = self.errors.values().sum();
        writeln!(f, "errors             {errors}")?;
        for (k, v) in &self.errors {
            writeln!(f, "  {k:<40} {v}")?;
        }
        Ok(())
    }
}
