//! The simulated execution environment: carries out an accepted primitive
//! (injected outcome, install latency, a real download from the server's
//! alternate download server, DL OTA descriptors and install-notify) and
//! turns its result into the device's new state and an OperationComplete
//! report (`SCOMO.md` §4, §5, §7; `DLOTA.md`).

use std::sync::Arc;
use std::time::Duration;

use scomo::alert::{ComponentResult, OperationComplete};
use scomo::dlota::{DownloadDescriptor, InstallStatus, DD_CONTENT_TYPE, MAX_DD_SIZE};
use scomo::mo::{node, EntryKind};
use scomo::{Primitive, ResultCode};

use crate::device::{Component, DeviceState, Entry, Report, ROOT};
use crate::outcome::{device_fault_code, expected_outcome, mix, unit, Injected};
use crate::package::PkgInfo;
use crate::sim::Inner;

/// Largest package a simulated device downloads.
const MAX_PACKAGE: u64 = 256 * 1024 * 1024;

/// An accepted primitive, with what it needs from the tree.
#[derive(Clone, Debug)]
pub(crate) struct Op {
    pub(crate) primitive: Primitive,
    pub(crate) entry: Box<str>,
    /// The device's operation number (the outcome draw).
    pub(crate) k: u32,
    pub(crate) correlator: Option<String>,
    pub(crate) pkg_id: Option<String>,
    pub(crate) pkg_url: Option<String>,
    /// `Ext/SHA256` of the entry, checked against the package.
    pub(crate) sha256: Option<String>,
    /// The entry's server-written leaves (copied to a Delivered entry).
    pub(crate) leaves: Vec<(Box<str>, Box<str>)>,
    /// Install*: the delivered package.
    pub(crate) package: Option<Arc<PkgInfo>>,
}

/// An operation's end.
#[derive(Clone, Debug)]
pub(crate) struct Finished {
    pub(crate) op: Op,
    pub(crate) result: ResultCode,
    pub(crate) package: Option<Arc<PkgInfo>>,
}

/// Runs `op` of device `device` to its end.
pub(crate) async fn run(inner: Arc<Inner>, device: u32, op: Op) {
    let cfg = &inner.cfg;
    let p = op.primitive;
    let injected = expected_outcome(cfg.seed, u64::from(device), u64::from(op.k), &cfg.rates);
    let (result, package) = if p.downloads() {
        match injected {
            Injected::UserDecline | Injected::DownloadServerFault => {
                (injected.result_code(p), None)
            }
            _ => match download(&inner, &op).await {
                Err(code) => (code, None),
                Ok(_) if injected == Injected::DeviceFault => (device_fault_code(p), None),
                Ok(pkg) => {
                    if p != Primitive::Download {
                        install_wait(&inner, device, &op).await;
                    }
                    (ResultCode::SUCCESSFUL, Some(pkg))
                }
            },
        }
    } else {
        install_wait(&inner, device, &op).await;
        (injected.result_code(p), op.package.clone())
    };
    inner.finish(
        device,
        Finished {
            op,
            result,
            package,
        },
    );
}

/// The install latency of this operation (seeded draw in min..=max).
async fn install_wait(inner: &Inner, device: u32, op: &Op) {
    let (lo, hi) = (inner.cfg.install_latency_min, inner.cfg.install_latency_max);
    if hi.is_zero() {
        return;
    }
    let u = unit(mix(
        inner.cfg.seed,
        u64::from(device),
        u64::from(op.k),
        0x6c61_7465_6e63_7921,
    ));
    let d = lo + Duration::from_secs_f64((hi - lo).as_secs_f64() * u);
    tokio::time::sleep(d).await;
}

/// Fetches the package from `PkgURL` (directly, or through a DL OTA
/// descriptor with install-notify) and checks it.
async fn download(inner: &Inner, op: &Op) -> Result<Arc<PkgInfo>, ResultCode> {
    let _permit = inner.downloads.acquire().await;
    let url = op.pkg_url.as_deref().ok_or(ResultCode::DOWNLOAD_FAILED)?;
    let (ct, body) = get(inner, url, MAX_PACKAGE).await?;
    let is_dd = ct.as_deref().is_some_and(|t| {
        t.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case(DD_CONTENT_TYPE))
    });
    if !is_dd {
        return check(inner, op, &body);
    }
    if body.len() > MAX_DD_SIZE {
        return Err(ResultCode::DOWNLOAD_FAILED);
    }
    let dd = DownloadDescriptor::parse(&body).map_err(|s| s.result_code())?;
    let notify = |status: InstallStatus| {
        let uri = dd.install_notify_uri.clone();
        async move {
            match uri {
                Some(uri) => post_notify(inner, &uri, status).await,
                None => true,
            }
        }
    };
    let object = match get(inner, &dd.object_uri, MAX_PACKAGE).await {
        Ok((_, b)) => b,
        Err(code) => {
            notify(InstallStatus::LOSS_OF_SERVICE).await;
            return Err(code);
        }
    };
    if object.len() as u64 != dd.size {
        notify(InstallStatus::ATTRIBUTE_MISMATCH).await;
        return Err(ResultCode::DOWNLOAD_FAILED);
    }
    match check(inner, op, &object) {
        Ok(p) => {
            if notify(InstallStatus::SUCCESS).await {
                Ok(p)
            } else {
                Err(ResultCode::DOWNLOAD_FAILED)
            }
        }
        Err(code) => {
            notify(InstallStatus::ATTRIBUTE_MISMATCH).await;
            Err(code)
        }
    }
}

/// Size and SHA-256 (when the entry names one), then the manifest.
fn check(inner: &Inner, op: &Op, bytes: &[u8]) -> Result<Arc<PkgInfo>, ResultCode> {
    let p = inner
        .packages
        .get(bytes)
        .map_err(|_| ResultCode::INSTALL_FAILED)?;
    if let Some(want) = &op.sha256 {
        if !want.eq_ignore_ascii_case(&p.sha256) {
            inner.stats.error("package sha-256 mismatch");
            return Err(ResultCode::PACKAGE_VALIDATION_FAILED);
        }
    }
    Ok(p)
}

/// One GET, its content type and body, as a SCOMO result on failure.
async fn get(
    inner: &Inner,
    url: &str,
    limit: u64,
) -> Result<(Option<String>, bytes::Bytes), ResultCode> {
    let resp = inner.http.get(url).send().await.map_err(|e| {
        inner.stats.error("download: no response");
        tracing::debug!(url, "download failed: {e}");
        ResultCode::DOWNLOAD_SERVER_UNAVAILABLE
    })?;
    let status = resp.status();
    if !status.is_success() {
        inner
            .stats
            .error(&format!("download: HTTP {}", status.as_u16()));
        return Err(match status.as_u16() {
            401 | 403 => ResultCode::ALTERNATE_DOWNLOAD_AUTH_FAILED,
            500..=599 => ResultCode::DOWNLOAD_SERVER_ERROR,
            _ => ResultCode::DOWNLOAD_FAILED,
        });
    }
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(ResultCode::DOWNLOAD_OUT_OF_MEMORY);
    }
    let ct = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.bytes().await.map_err(|_| {
        inner.stats.error("download: cut short");
        ResultCode::DOWNLOAD_FAILED
    })?;
    inner.stats.download(body.len() as u64);
    Ok((ct, body))
}

/// POSTs an install-notify status; whether the server took it.
async fn post_notify(inner: &Inner, uri: &str, status: InstallStatus) -> bool {
    let r = inner.http.post(uri).body(status.body()).send().await;
    let ok = r.is_ok_and(|r| r.status().is_success());
    if !ok {
        inner.stats.error("install-notify refused");
    }
    ok
}

/// The Status an entry shows while `p` runs on it.
pub(crate) fn progress_status(p: Primitive) -> u16 {
    match p {
        Primitive::Download | Primitive::DownloadInstall | Primitive::DownloadInstallInactive => 30,
        Primitive::Install | Primitive::InstallInactive => 40,
        Primitive::RemoveDelivered | Primitive::RemoveDeployed => 30,
        Primitive::Activate => 50,
        Primitive::Deactivate => 70,
    }
}

/// The Status an entry shows after `p` failed with `code`.
fn failure_status(p: Primitive, code: ResultCode) -> u16 {
    let install_phase = matches!(code.0, 1405 | 1406 | 1413);
    match p.entry_kind() {
        EntryKind::Download if install_phase => 70,
        EntryKind::Download => 20,
        EntryKind::Delivered if p == Primitive::RemoveDelivered => 20,
        EntryKind::Delivered => 50,
        EntryKind::Deployed => match p {
            Primitive::Activate => 40,
            Primitive::Deactivate => 60,
            _ => 20,
        },
    }
}

/// Applies a finished operation to the device and queues its report.
/// Returns the report id.
pub(crate) fn apply(st: &mut DeviceState, f: Finished) -> u64 {
    let op = &f.op;
    let p = op.primitive;
    let kind = p.entry_kind();
    st.busy.retain(|(k, n)| !(*k == kind && *n == op.entry));
    let mut targets: Vec<(Option<String>, Option<String>)> = Vec::new();
    let fallback_id = if kind == EntryKind::Deployed || op.pkg_id.is_none() {
        op.entry.to_string()
    } else {
        op.pkg_id.clone().unwrap_or_default()
    };
    let set_status = |st: &mut DeviceState, status: u16| {
        if kind == EntryKind::Deployed {
            if let Some(c) = st.components.iter_mut().find(|c| c.id == op.entry) {
                c.status = status;
            }
        } else if let Some(e) = st
            .entries
            .iter_mut()
            .find(|e| e.kind == kind && e.name == op.entry)
        {
            e.status = status;
        }
    };
    if f.result.is_success() {
        match p {
            Primitive::Download => {
                set_status(st, 10);
                let name = free_delivered_name(st, &op.entry);
                let keep = [
                    node::PKG_ID,
                    node::NAME,
                    node::DESCRIPTION,
                    node::INSTALL_PARAMS,
                    node::ENV_TYPE,
                    node::PKG_TYPE,
                    "Ext/SHA256",
                ];
                st.entries.push(Entry {
                    kind: EntryKind::Delivered,
                    leaves: op
                        .leaves
                        .iter()
                        .filter(|(k, _)| keep.contains(&&**k))
                        .cloned()
                        .collect(),
                    status: 10,
                    state: 10,
                    package: f.package.clone(),
                    name: name.as_str().into(),
                });
                targets.push((
                    Some(EntryKind::Delivered.entry_uri(ROOT, &name)),
                    Some(fallback_id.clone()),
                ));
            }
            Primitive::DownloadInstall
            | Primitive::DownloadInstallInactive
            | Primitive::Install
            | Primitive::InstallInactive => {
                set_status(st, 10);
                if kind == EntryKind::Delivered {
                    if let Some(e) = st
                        .entries
                        .iter_mut()
                        .find(|e| e.kind == kind && e.name == op.entry)
                    {
                        e.state = 20;
                    }
                }
                let state = p.installs().map_or(20, |s| s.value());
                if let Some(pkg) = &f.package {
                    for (id, name, version) in &pkg.components {
                        let c = Component {
                            id: id.as_str().into(),
                            name: name.as_str().into(),
                            version: version.as_str().into(),
                            pkg_id_ref: Some(pkg.pkg_id.as_str().into()),
                            state,
                            status: 10,
                        };
                        match st.components.iter_mut().find(|x| x.id == c.id) {
                            Some(x) => *x = c,
                            None => st.components.push(c),
                        }
                        targets.push((
                            Some(EntryKind::Deployed.entry_uri(ROOT, id)),
                            Some(id.clone()),
                        ));
                    }
                }
            }
            Primitive::RemoveDelivered => st
                .entries
                .retain(|e| !(e.kind == kind && e.name == op.entry)),
            Primitive::RemoveDeployed => st.components.retain(|c| c.id != op.entry),
            Primitive::Activate | Primitive::Deactivate => {
                let want = if p == Primitive::Activate { 20 } else { 10 };
                if let Some(c) = st.components.iter_mut().find(|c| c.id == op.entry) {
                    c.state = want;
                    c.status = 10;
                }
                targets.push((
                    Some(EntryKind::Deployed.entry_uri(ROOT, &op.entry)),
                    Some(op.entry.to_string()),
                ));
            }
        }
    } else {
        set_status(st, failure_status(p, f.result));
    }
    let source = p.uri(ROOT, &op.entry);
    let items = if targets.is_empty() {
        vec![ComponentResult {
            source_uri: Some(source),
            target_uri: None,
            result: f.result,
            identifier: Some(fallback_id),
        }]
    } else {
        targets
            .into_iter()
            .map(|(target_uri, identifier)| ComponentResult {
                source_uri: Some(source.clone()),
                target_uri,
                result: f.result,
                identifier,
            })
            .collect()
    };
    let id = st.next_report_id;
    st.next_report_id += 1;
    st.outbox.push(Report {
        id,
        report: OperationComplete {
            correlator: op.correlator.clone(),
            items,
        },
    });
    id
}

/// `<x>`, or `<x>-2`, `<x>-3`, ... when taken.
fn free_delivered_name(st: &DeviceState, base: &str) -> String {
    let taken = |n: &str| {
        st.entries
            .iter()
            .any(|e| e.kind == EntryKind::Delivered && &*e.name == n)
    };
    let mut name = base.to_owned();
    let mut n = 1;
    while taken(&name) {
        n += 1;
        name = format!("{base}-{n}");
    }
    name
}
