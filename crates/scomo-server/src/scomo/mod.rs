//! The SCOMO server: jobs (one SCOMO operation on one device, possibly in
//! several steps), each device's inventory, and catalog rules — all driven
//! through the DM command queue.
//!
//! ```text
//!  REST / catalog ─▶ create_job ─▶ batch "job:<id>:exec"   Add Download/<x> … Exec (Correlator)
//!                                  or "inv1:job:<id>"      Get Inventory (to find the entry)
//!  DM session ─┬─ batch finished ─▶ on_batch_finished ─▶ Exec 202: awaiting_result
//!              │                                          200 / alert 1200: verify (read back)
//!              ├─ Generic Alert ──▶ on_alert (correlator "scomo-job-<id>-<step>")
//!              └─ session ready ──▶ on_session_ready: stale inventory → read; catalog rules
//!  worker (every node) ─▶ results no session handled (crash), timeouts, scheduled steps
//! ```
//!
//! A job succeeds only when the device reported success *and* the inventory
//! read back afterwards shows the expected version and state; otherwise it
//! ends `mismatch`.

mod catalog;
mod engine;
mod inventory;
pub(crate) mod plan;
pub(crate) mod worker;

use std::time::Duration;

use omadm_wire::model::{Command, Data};
use tracing::warn;

pub use engine::{cancel_job, create_job, on_alert, on_batch_finished, tick, JobRequest};

use crate::error::AppError;
use crate::state::AppState;
use crate::store::{AlertId, Batch, BatchId, Lease, NewDownloadToken, StoredAlert, Timestamp};
use plan::{ComponentInfo, PackageInfo, PACKAGE_REF};

/// A package's metadata as jobs use it.
pub(crate) async fn load_package(
    state: &AppState,
    pkg_id: &str,
) -> Result<Option<PackageInfo>, AppError> {
    let Some(p) = state.store().package(pkg_id).await? else {
        return Ok(None);
    };
    Ok(Some(PackageInfo {
        pkg_id: p.pkg_id,
        name: p.name,
        version: p.version.unwrap_or_default(),
        env_type: Some(p.env_type),
        pkg_type: p.pkg_type,
        size: p.size,
        sha256: p.sha256,
        signature: p.signature,
        components: p
            .components
            .into_iter()
            .map(|c| ComponentInfo {
                id: c.id,
                name: c.name,
                version: c.version,
            })
            .collect(),
    }))
}

/// A download URL of the package for a job, its token not stored yet (it
/// goes with the job's update, [`crate::store::JobUpdate::token`]): (token,
/// URL, DD URL).
pub(crate) fn new_download_url(
    state: &AppState,
    pkg_id: &str,
    job: i64,
    ttl: Duration,
) -> Result<(NewDownloadToken, String, String), AppError> {
    let base = crate::packages::download_base(state, None)?;
    let token = crate::store::new_download_token()?;
    let (url, dd_url) = crate::packages::download_urls(&base, &token);
    let new = NewDownloadToken {
        token,
        pkg_id: pkg_id.to_owned(),
        job_id: Some(job),
        expires_at: Timestamp::now() + ttl,
    };
    Ok((new, url, dd_url))
}

/// One line on what the download server saw of a token.
pub(crate) async fn download_summary(
    state: &AppState,
    token: &str,
) -> Result<Option<String>, AppError> {
    let Some(t) = state.store().download_token(token).await? else {
        return Ok(None);
    };
    let mut s = format!(
        "download server: {} bytes served, {} complete downloads",
        t.bytes_served, t.downloads_completed
    );
    if let Some(e) = &t.last_error {
        s.push_str(&format!(", last error: {e}"));
    }
    if let Some(n) = t.notify_status {
        s.push_str(&format!(", install-notify {n}"));
    }
    Ok(Some(s))
}

/// Replaces package references in Data (direct delivery) with the package
/// bytes, read from the repository when the batch is sent.
pub(crate) async fn resolve_package_refs(state: &AppState, commands: &mut [Command]) {
    for cmd in commands {
        match cmd {
            Command::Replace(c) | Command::Add(c) => {
                for item in &mut c.items {
                    let Some(sha) = item
                        .data
                        .as_ref()
                        .and_then(Data::as_str)
                        .and_then(|d| d.strip_prefix(PACKAGE_REF))
                        .map(str::to_owned)
                    else {
                        continue;
                    };
                    let path = state
                        .config()
                        .data_dir
                        .join("packages")
                        .join(format!("{sha}.pkg"));
                    match tokio::fs::read(&path).await {
                        Ok(bytes) => {
                            if let Some(m) = item.meta.as_mut() {
                                m.size = Some(bytes.len() as u64);
                            }
                            item.data = Some(Data::Binary(bytes));
                        }
                        Err(e) => {
                            warn!(path = %path.display(), "cannot read a package for direct delivery: {e}");
                            item.data = Some(Data::Binary(Vec::new()));
                        }
                    }
                }
            }
            Command::Atomic(k) | Command::Sequence(k) => {
                Box::pin(resolve_package_refs(state, &mut k.commands)).await;
            }
            _ => {}
        }
    }
}

/// Called by a session once the device is authenticated and ready for
/// commands: reads a stale inventory (catalog rules follow the read), or
/// applies the catalog rules to the cached one.
pub(crate) async fn on_session_ready(state: &AppState, device_id: &str) -> Result<(), AppError> {
    let cfg = &state.config().scomo;
    let now = Timestamp::now();
    if cfg.inventory_max_age_secs == 0 && !cfg.catalog {
        return Ok(());
    }
    let inv = state.store().inventory(device_id).await?;
    let max_age = Duration::from_secs(cfg.inventory_max_age_secs);
    match &inv {
        Some(i) if i.read_at + max_age > now => {
            if cfg.catalog {
                catalog::apply(state, device_id, &i.entries).await?;
            }
        }
        _ if cfg.inventory_max_age_secs == 0 => {
            if let (true, Some(i)) = (cfg.catalog, inv.as_ref()) {
                catalog::apply(state, device_id, &i.entries).await?;
            }
        }
        _ => request_inventory(state, device_id).await?,
    }
    Ok(())
}

/// Queues an inventory read for the device's next session (catalog rules
/// are applied when it is in).
pub(crate) async fn request_inventory(state: &AppState, device_id: &str) -> Result<(), AppError> {
    state
        .store()
        .enqueue_batch(
            &crate::store::NewBatch {
                device_id: device_id.to_owned(),
                owner: inventory::owner(1, "dev"),
                commands: inventory::stage1(&state.config().scomo.root),
                idempotent: true,
            },
            Timestamp::now(),
        )
        .await?;
    Ok(())
}

/// Whether a batch owner is one of ours (job or inventory read).
pub(crate) fn owns(owner: &str) -> bool {
    owner.starts_with("job:") || inventory::parse_owner(owner).is_some()
}

/// Handles what a session just completed (its own batches, with the
/// outcomes it recorded: no need to read them back) and received, then
/// acknowledges it so the workers do not handle it again. Errors are
/// logged: the worker retries what was not acknowledged.
pub(crate) async fn after_message(state: &AppState, batches: &[Batch], alerts: &[StoredAlert]) {
    let store = state.store();
    let mut done = Vec::new();
    for batch in batches.iter().filter(|b| owns(&b.owner)) {
        match on_batch_finished(state, batch).await {
            Ok(()) => done.push(batch.id),
            Err(e) => warn!(batch = %batch.id, "handling a finished batch failed: {e}"),
        }
    }
    if !done.is_empty() {
        if let Err(e) = store.ack_finished(&done, Timestamp::now()).await {
            warn!(error = %crate::error::ErrorChain(&e), "cannot acknowledge finished batches");
        }
    }
    let mut acked: Vec<AlertId> = Vec::new();
    for a in alerts {
        let ours = a
            .alert
            .correlator
            .as_deref()
            .and_then(plan::job_of_correlator)
            .is_some();
        if !ours {
            continue;
        }
        match on_alert(state, a).await {
            Ok(()) => acked.push(a.id),
            Err(e) => warn!(alert = a.id.0, "handling an alert failed: {e}"),
        }
    }
    if !acked.is_empty() {
        if let Err(e) = store.ack_alerts(&acked, Timestamp::now()).await {
            warn!(error = %crate::error::ErrorChain(&e), "cannot acknowledge alerts");
        }
    }
}

/// How old a finished batch or an alert must be before a worker takes it
/// as one its session never handled.
const ORPHAN_AFTER: Duration = Duration::from_secs(10);

/// One round of the worker: finished batches and alerts nobody handled,
/// then due jobs.
pub(crate) async fn worker_round(state: &AppState, lease: &Lease) -> Result<(), AppError> {
    let store = state.store();
    let now = Timestamp::now();
    for prefix in ["job:", "inv"] {
        let mut batches: Vec<Batch> = store.poll_finished(prefix, lease, 100, now).await?;
        // Fresh ones belong to the session that finished them: it handles
        // and acknowledges them at once. Left alone here, they come back
        // after the lease only if that session died first.
        batches.retain(|b| b.finished_at.is_none_or(|t| t + ORPHAN_AFTER <= now));
        let ids: Vec<BatchId> = batches.iter().map(|b| b.id).collect();
        for b in &batches {
            if let Err(e) = on_batch_finished(state, b).await {
                warn!(batch = %b.id, "handling a finished batch failed: {e}");
            }
        }
        if !ids.is_empty() {
            store.ack_finished(&ids, now).await?;
        }
    }
    let mut alerts = store.poll_alerts(Some("job:"), lease, 100, now).await?;
    alerts.retain(|a| a.received_at + ORPHAN_AFTER <= now);
    let ids: Vec<AlertId> = alerts.iter().map(|a| a.id).collect();
    for a in &alerts {
        if let Err(e) = on_alert(state, a).await {
            warn!(alert = a.id.0, "handling an alert failed: {e}");
        }
    }
    if !ids.is_empty() {
        store.ack_alerts(&ids, now).await?;
    }
    tick(state, now).await
}
