//! The job state machine. Every transition is one fenced store update
//! ([`crate::store::JobStore::update_job`] on the job's revision), so the
//! same result handled twice — by the session that received it and by a
//! node's worker after a crash — moves the job once.

use std::time::Duration;

use omadm_wire::model::{Alert, Command, Item, Location, Meta};
use omadm_wire::{AlertCode, StatusCode};
use scomo::alert::OperationComplete;
use scomo::mo::EntryKind;
use scomo::result::ResultCode;
use tracing::{debug, info, warn};

use super::inventory;
use super::plan::{self, JobPlan, PackageInfo, Phase, Step};
use crate::error::AppError;
use crate::events::ApiEvent;
use crate::state::AppState;
use crate::store::{
    Batch, BatchState, Delivery, InventoryEntry, InventoryKind, Job, JobId, JobOp, JobOrigin,
    JobState, JobUpdate, NewBatch, NewJob, StoredAlert, Timestamp,
};

/// A job as asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRequest {
    /// The device.
    pub device_id: String,
    /// The operation.
    pub op: JobOp,
    /// The package (download-type operations, Install, Remove of a package).
    pub pkg_id: Option<String>,
    /// The component (Activate, Deactivate, Remove of a component).
    pub component_id: Option<String>,
    /// How to deliver (default `http` for download-type operations).
    pub delivery: Option<Delivery>,
    /// Not before this time.
    pub at: Option<Timestamp>,
    /// Further steps, each after the previous one succeeded.
    pub then: Vec<(JobOp, Option<Timestamp>)>,
    /// Per-step timeout (default from the configuration).
    pub timeout: Option<Duration>,
}

fn bad(msg: impl Into<String>) -> AppError {
    AppError::BadRequest(msg.into())
}

/// The component an operation on a deployed component works on: the one
/// named, or the package's only one.
fn component_for(
    op: JobOp,
    named: Option<&str>,
    package: Option<&PackageInfo>,
) -> Result<Option<String>, AppError> {
    let needs = matches!(op, JobOp::Activate | JobOp::Deactivate)
        || (op == JobOp::Remove && package.is_none());
    if let Some(c) = named {
        return Ok(Some(c.to_owned()));
    }
    if !needs {
        return Ok(None);
    }
    match package.map(|p| p.components.as_slice()) {
        Some([only]) => Ok(Some(only.id.clone())),
        Some(_) => Err(bad(format!(
            "{op} needs a component: the package has several, name one with component"
        ))),
        None => Err(bad(format!("{op} needs a component"))),
    }
}

/// Validates a request and creates the job; starts it unless it is
/// scheduled. `notify`: ask the device to call (package 0).
pub async fn create_job(
    state: &AppState,
    req: JobRequest,
    origin: JobOrigin,
    notify: bool,
) -> Result<Job, AppError> {
    let store = state.store();
    let now = Timestamp::now();
    let device = store
        .device(&req.device_id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no device {:?}", req.device_id)))?;
    let package = match &req.pkg_id {
        Some(p) => Some(
            super::load_package(state, p)
                .await?
                .ok_or_else(|| AppError::NotFound(format!("no package {p:?}")))?,
        ),
        None => None,
    };
    let op = req.op;
    if (plan::delivers(op) || matches!(op, JobOp::Install | JobOp::InstallInactive))
        && package.is_none()
    {
        return Err(bad(format!("{op} needs a package")));
    }
    if op == JobOp::Remove && package.is_none() && req.component_id.is_none() {
        return Err(bad("Remove needs a component or a package"));
    }
    let delivery = req.delivery.unwrap_or(if plan::delivers(op) {
        Delivery::Http
    } else {
        Delivery::None
    });
    if !plan::delivery_fits(op, delivery) {
        return Err(bad(format!(
            "delivery {delivery} does not fit {op}: download-type operations take direct, http or \
             dlota; the others take none"
        )));
    }
    let component = component_for(op, req.component_id.as_deref(), package.as_ref())?;
    for (then_op, _) in &req.then {
        if plan::delivers(*then_op) {
            return Err(bad(format!(
                "{then_op} cannot follow another step (one delivery per job)"
            )));
        }
        if matches!(then_op, JobOp::Activate | JobOp::Deactivate | JobOp::Remove) {
            component_for(*then_op, component.as_deref(), package.as_ref())?;
        }
    }
    if op == JobOp::Update {
        if let (Some(p), Some(inv)) = (&package, store.inventory(&device.id).await?) {
            let deployed = p
                .components
                .iter()
                .any(|c| plan::find_entry(&inv.entries, InventoryKind::Deployed, &c.id).is_some());
            if !deployed {
                return Err(AppError::Conflict(format!(
                    "Update of {:?}: none of its components is deployed on {:?} (use \
                     DownloadInstall)",
                    p.pkg_id, device.id
                )));
            }
        }
    }
    let mut locks: Vec<String> = Vec::new();
    if let Some(p) = &package {
        locks.push(format!("package:{}", p.pkg_id));
        if op != JobOp::Download && op != JobOp::Remove {
            locks.extend(p.components.iter().map(|c| format!("component:{}", c.id)));
        }
    }
    if let Some(c) = &component {
        locks.push(format!("component:{c}"));
    }
    locks.sort();
    locks.dedup();
    let mut steps = vec![Step {
        op: op.as_str().to_owned(),
        at: req.at.map(Timestamp::unix_millis),
    }];
    steps.extend(req.then.iter().map(|(o, at)| Step {
        op: o.as_str().to_owned(),
        at: at.map(Timestamp::unix_millis),
    }));
    let plan = JobPlan {
        steps,
        package,
        timeout_secs: req.timeout.map(|t| t.as_secs().max(1)),
        ..JobPlan::default()
    };
    let timeout = step_timeout(state, &plan);
    let scheduled = req.at.filter(|at| *at > now);
    let new = NewJob {
        device_id: device.id.clone(),
        op,
        pkg_id: req.pkg_id.clone(),
        component_id: component,
        delivery,
        origin,
        state: if scheduled.is_some() {
            JobState::Scheduled
        } else {
            JobState::Queued
        },
        plan: plan.to_json(),
        locks,
        wake_at: scheduled,
        deadline_at: Some(scheduled.unwrap_or(now) + timeout),
    };
    let job = store.create_job(&new, now).await?;
    debug!(job = %job.id, device = %job.device_id, op = %job.op, "job created");
    publish(state, &job, Some(format!("created by {origin}")));
    if scheduled.is_some() {
        return Ok(job);
    }
    let notify = notify && device.notify_addr.is_some();
    start_step(state, job, plan, now, "started", notify).await
}

/// How long a step may take.
fn step_timeout(state: &AppState, plan: &JobPlan) -> Duration {
    Duration::from_secs(
        plan.timeout_secs
            .unwrap_or(state.config().scomo.job_timeout_secs),
    )
}

/// The component the current step works on: the job's, or for a later
/// Activate/Deactivate/Remove step the package's only component.
fn step_component(job: &Job, plan: &JobPlan, op: JobOp) -> Option<String> {
    if job.component_id.is_some() {
        return job.component_id.clone();
    }
    let later = plan.step > 0 && matches!(op, JobOp::Activate | JobOp::Deactivate | JobOp::Remove);
    match plan.package.as_ref().map(|p| p.components.as_slice()) {
        Some([only]) if later => Some(only.id.clone()),
        _ => None,
    }
}

fn publish(state: &AppState, job: &Job, detail: Option<String>) {
    state.publish(ApiEvent::new(
        "job",
        job.id.0,
        &job.device_id,
        job.state.as_str(),
        detail,
        job.updated_at,
    ));
}

/// Applies a fenced update and publishes it; `None` when the job moved on
/// meanwhile (someone else handled this).
async fn update(
    state: &AppState,
    job: &Job,
    upd: JobUpdate,
    now: Timestamp,
) -> Result<Option<Job>, AppError> {
    let event = upd.event.clone();
    let updated = state.store().update_job(job.id, job.rev, &upd, now).await?;
    match &updated {
        Some(j) => {
            // Only a job that did not succeed is info: its events keep
            // every step, and a campaign moves thousands a second.
            if j.state.is_terminal() && j.state != JobState::Succeeded {
                info!(job = %j.id, device = %j.device_id, state = %j.state, event = ?event, "job ended");
            } else {
                debug!(job = %j.id, state = %j.state, event = ?event, "job moved");
            }
            metrics::counter!(crate::metrics::JOBS_MOVED, "state" => j.state.as_str()).increment(1);
            publish(state, j, event);
        }
        None => debug!(job = %job.id, "job changed meanwhile; update dropped"),
    }
    Ok(updated)
}

/// How a job ends.
struct End {
    state: JobState,
    code: Option<u16>,
    outcome: String,
    detail: Option<String>,
}

/// Ends a job in a terminal state.
async fn finish(
    state: &AppState,
    job: &Job,
    plan: &JobPlan,
    end: End,
    now: Timestamp,
) -> Result<Option<Job>, AppError> {
    let End {
        state: end,
        code,
        outcome,
        detail,
    } = end;
    let upd = JobUpdate {
        state: end,
        plan: plan.to_json(),
        result_code: code,
        event: Some(match &detail {
            Some(d) => format!("{outcome}: {d}"),
            None => outcome.clone(),
        }),
        outcome: Some(outcome),
        detail,
        wake_at: None,
        deadline_at: None,
        ..JobUpdate::keep(job)
    };
    update(state, job, upd, now).await
}

/// A batch for a job's update to enqueue ([`JobUpdate::enqueue`]): written
/// with the update, or not at all when the job moved on meanwhile.
fn new_batch(device_id: &str, owner: String, commands: Vec<Command>, idempotent: bool) -> NewBatch {
    NewBatch {
        device_id: device_id.to_owned(),
        owner,
        commands,
        idempotent,
    }
}

fn exec_owner(job: JobId) -> String {
    format!("job:{job}:exec")
}

fn job_purpose(job: JobId) -> String {
    format!("job:{job}")
}

/// Starts the current step of `plan`: its delivery and Exec batch, or the
/// inventory read that finds the entry it works on.
async fn start_step(
    state: &AppState,
    job: Job,
    mut plan: JobPlan,
    now: Timestamp,
    why: &str,
    notify: bool,
) -> Result<Job, AppError> {
    let root = state.config().scomo.root.clone();
    let Some(op) = plan.current().and_then(Step::op) else {
        return Ok(finish(
            state,
            &job,
            &plan,
            End {
                state: JobState::Failed,
                code: None,
                outcome: "failed".into(),
                detail: Some("the job plan has no such step".into()),
            },
            now,
        )
        .await?
        .unwrap_or(job));
    };
    let correlator = plan::correlator(job.id.0, plan.step);
    plan.correlator = Some(correlator.clone());
    plan.reported = None;
    plan.entry = None;
    let mut token = None;
    let (batch, event, phase) = if plan::delivers(op) {
        let Some(p) = plan.package.clone() else {
            return Err(bad(format!("{op} needs a package")));
        };
        let entry = plan::entry_name(job.id.0, plan.step);
        plan.entry = Some(entry.clone());
        let cmds = match job.delivery {
            Delivery::Direct => plan::direct_batch(&root, &entry, &p, op, correlator),
            Delivery::Http | Delivery::Dlota => {
                let ttl =
                    Duration::from_secs(state.config().scomo.job_timeout_secs).saturating_mul(2);
                let (new, url, dd_url) = super::new_download_url(state, &p.pkg_id, job.id.0, ttl)?;
                plan.download_token = Some(new.token.clone());
                token = Some(new);
                let pkg_url = if job.delivery == Delivery::Dlota {
                    dd_url
                } else {
                    url
                };
                let Some(prim) = plan::download_primitive(op) else {
                    return Err(bad(format!("{op} does not download")));
                };
                plan::indirect_batch(&root, &entry, &p, &pkg_url, prim, correlator)
            }
            Delivery::None => return Err(bad(format!("{op} needs a delivery"))),
        };
        (
            new_batch(&job.device_id, exec_owner(job.id), cmds, false),
            format!("{why}: {op} queued ({} delivery)", job.delivery),
            Phase::Exec,
        )
    } else {
        (
            new_batch(
                &job.device_id,
                inventory::owner(1, &job_purpose(job.id)),
                inventory::stage1(&root),
                true,
            ),
            format!("{why}: {op} queued (reading the inventory first)"),
            Phase::Resolve,
        )
    };
    plan.phase = phase;
    let timeout = step_timeout(state, &plan);
    let upd = JobUpdate {
        state: if plan.step == 0 {
            JobState::Queued
        } else {
            JobState::Running
        },
        plan: plan.to_json(),
        wake_at: None,
        deadline_at: Some(now + timeout),
        event: Some(event),
        enqueue: Some(batch),
        token,
        notify,
        ..JobUpdate::keep(&job)
    };
    match update(state, &job, upd, now).await? {
        Some(j) => {
            if notify {
                state.wake_notifier();
            }
            Ok(j)
        }
        None => Ok(state.store().job(job.id).await?.unwrap_or(job)),
    }
}

fn load_plan(job: &Job) -> Result<JobPlan, AppError> {
    JobPlan::from_json(&job.plan).map_err(|e| {
        AppError::internal(crate::store::StoreError::Corrupt {
            what: "jobs.plan",
            reason: e,
        })
    })
}

fn job_of_owner(owner: &str) -> Option<JobId> {
    let rest = owner.strip_prefix("job:")?;
    let id = rest.split(':').next()?;
    id.parse().ok().map(JobId)
}

/// A finished batch of a job or of an inventory read.
pub async fn on_batch_finished(state: &AppState, batch: &Batch) -> Result<(), AppError> {
    if let Some((stage, purpose)) = inventory::parse_owner(&batch.owner) {
        return on_inventory_batch(state, batch, stage, purpose).await;
    }
    if batch.owner.ends_with(":exec") {
        if let Some(id) = job_of_owner(&batch.owner) {
            return on_exec_batch(state, id, batch).await;
        }
    }
    Ok(())
}

/// The job waiting on `batch`, if it still is.
async fn job_waiting_on(
    state: &AppState,
    id: JobId,
    batch: &Batch,
) -> Result<Option<(Job, JobPlan)>, AppError> {
    let Some(job) = state.store().job(id).await? else {
        return Ok(None);
    };
    if job.state.is_terminal() || job.batch_id != Some(batch.id) {
        return Ok(None);
    }
    let plan = load_plan(&job)?;
    Ok(Some((job, plan)))
}

fn status_of(batch: &Batch, index: u32) -> Option<StatusCode> {
    batch
        .outcomes
        .iter()
        .find(|o| o.index == index)
        .map(|o| o.status)
}

/// The first command of a batch the device refused (ignoring "already
/// exists" for nodes we create), as a line.
fn first_refusal(batch: &Batch) -> Option<String> {
    batch.outcomes.iter().find_map(|o| {
        let s = o.status;
        let fine = s.is_success() || s == StatusCode::ALREADY_EXISTS || s.0 == 213 || s.0 == 202;
        (!fine).then(|| format!("command {} answered {}", o.index, s.0))
    })
}

async fn on_exec_batch(state: &AppState, id: JobId, batch: &Batch) -> Result<(), AppError> {
    let Some((job, mut plan)) = job_waiting_on(state, id, batch).await? else {
        return Ok(());
    };
    if plan.phase != Phase::Exec {
        return Ok(());
    }
    let now = Timestamp::now();
    let last = batch.command_count.saturating_sub(1);
    let last_is_exec = matches!(batch.commands.last(), Some(Command::Exec(_)));
    if batch.state == BatchState::Cancelled {
        return Ok(());
    }
    let Some(status) = status_of(batch, last) else {
        // Sent, but the session ended before the answer: the device may have
        // started the operation; its alert (or the timeout) decides.
        return await_report(
            state,
            &job,
            plan,
            "the session ended before the device answered",
            now,
        )
        .await;
    };
    if !last_is_exec {
        // Direct delivery only: the Replace of Data is the last command.
        return if status.is_success() {
            verify(state, job, plan, Vec::new(), now, "package delivered").await
        } else {
            let detail = first_refusal(batch);
            finish(
                state,
                &job,
                &plan,
                End {
                    state: JobState::Failed,
                    code: Some(status.0),
                    outcome: format!("delivery refused with status {}", status.0),
                    detail,
                },
                now,
            )
            .await
            .map(|_| ())
        };
    }
    // A synchronous 200 is the device's "successful" (SCOMO.md §7.1).
    let code = if status.0 == 200 { 1200 } else { status.0 };
    match code {
        202 => {
            await_report(
                state,
                &job,
                plan,
                "the device accepted the operation (202)",
                now,
            )
            .await
        }
        c @ 1200..=1599 => {
            let code = ResultCode(c);
            plan.reported = Some(c);
            if code.is_success() {
                let extra = cleanup(state, &job, &plan);
                let why = format!("the device completed the operation ({})", status.0);
                verify(state, job, plan, extra, now, &why).await
            } else {
                finish(
                    state,
                    &job,
                    &plan,
                    End {
                        state: JobState::Failed,
                        code: Some(c),
                        outcome: format!("failed: {c} {}", code.meaning()),
                        detail: None,
                    },
                    now,
                )
                .await
                .map(|_| ())
            }
        }
        c => {
            let detail = first_refusal(batch);
            finish(
                state,
                &job,
                &plan,
                End {
                    state: JobState::Failed,
                    code: Some(c),
                    outcome: format!("the device refused the operation with status {c}"),
                    detail,
                },
                now,
            )
            .await
            .map(|_| ())
        }
    }
}

/// The step's Exec went out: wait for the device's report (its alert or the
/// timeout decides).
async fn await_report(
    state: &AppState,
    job: &Job,
    mut plan: JobPlan,
    why: &str,
    now: Timestamp,
) -> Result<(), AppError> {
    plan.phase = Phase::Await;
    let upd = JobUpdate {
        state: JobState::AwaitingResult,
        plan: plan.to_json(),
        event: Some(format!("{why}; waiting for its report")),
        ..JobUpdate::keep(job)
    };
    update(state, job, upd, now).await?;
    Ok(())
}

/// Commands that tidy up after a successful step, sent with the read-back:
/// `Download/<x>` is the server's to delete (`SCOMO.md` §4.1).
fn cleanup(state: &AppState, job: &Job, plan: &JobPlan) -> Vec<Command> {
    let op = plan.current().and_then(Step::op);
    match (op, &plan.entry, job.delivery) {
        (Some(op), Some(entry), Delivery::Http | Delivery::Dlota) if plan::delivers(op) => {
            vec![plan::delete(
                EntryKind::Download.entry_uri(&state.config().scomo.root, entry),
            )]
        }
        _ => Vec::new(),
    }
}

/// Reads the inventory back to check a reported success.
async fn verify(
    state: &AppState,
    job: Job,
    mut plan: JobPlan,
    mut extra: Vec<Command>,
    now: Timestamp,
    why: &str,
) -> Result<(), AppError> {
    let root = state.config().scomo.root.clone();
    extra.extend(inventory::stage1(&root));
    let batch = new_batch(
        &job.device_id,
        inventory::owner(1, &job_purpose(job.id)),
        extra,
        true,
    );
    plan.phase = Phase::Verify;
    let upd = JobUpdate {
        state: JobState::Verifying,
        plan: plan.to_json(),
        event: Some(format!("{why}; reading the inventory back")),
        enqueue: Some(batch),
        ..JobUpdate::keep(&job)
    };
    update(state, &job, upd, now).await?;
    Ok(())
}

async fn on_inventory_batch(
    state: &AppState,
    batch: &Batch,
    stage: u8,
    purpose: &str,
) -> Result<(), AppError> {
    if batch.state == BatchState::Cancelled {
        return Ok(());
    }
    let job = match job_of_owner(purpose) {
        Some(id) => match job_waiting_on(state, id, batch).await? {
            Some(j) => Some(j),
            None => return Ok(()),
        },
        None => None,
    };
    let root = state.config().scomo.root.clone();
    let now = Timestamp::now();
    let next = match stage {
        1 if inventory::stage1_answered(batch) => None,
        1 => Some((2, inventory::stage2(&root))),
        2 => inventory::stage3(&root, batch).map(|c| (3, c)),
        _ => None,
    };
    if let Some((stage, cmds)) = next {
        let b = new_batch(
            &batch.device_id,
            inventory::owner(stage, purpose),
            cmds,
            true,
        );
        match job {
            Some((job, plan)) => {
                let upd = JobUpdate {
                    plan: plan.to_json(),
                    enqueue: Some(b),
                    ..JobUpdate::keep(&job)
                };
                update(state, &job, upd, now).await?;
            }
            None => {
                state.store().enqueue_batch(&b, now).await?;
            }
        }
        return Ok(());
    }
    let (entries, method) = match stage {
        1 => (inventory::parse(batch), "struct-data"),
        2 => (Vec::new(), "recursive"),
        _ => (inventory::parse(batch), "recursive"),
    };
    state
        .store()
        .replace_inventory(&batch.device_id, &entries, method, now)
        .await?;
    debug!(device = %batch.device_id, entries = entries.len(), method, "inventory read");
    match job {
        Some((job, plan)) => job_inventory(state, job, plan, &entries, now).await,
        None if state.config().scomo.catalog => {
            super::catalog::apply(state, &batch.device_id, &entries).await
        }
        None => Ok(()),
    }
}

/// The inventory a job asked for has been read.
async fn job_inventory(
    state: &AppState,
    job: Job,
    mut plan: JobPlan,
    entries: &[InventoryEntry],
    now: Timestamp,
) -> Result<(), AppError> {
    let Some(op) = plan.current().and_then(Step::op) else {
        return Ok(());
    };
    match plan.phase {
        Phase::Resolve => {
            let component = step_component(&job, &plan, op);
            let on_component =
                component.is_some() && op != JobOp::Install && op != JobOp::InstallInactive;
            let (kind, item) = if on_component {
                (InventoryKind::Deployed, component)
            } else {
                (
                    InventoryKind::Delivered,
                    plan.package.as_ref().map(|p| p.pkg_id.clone()),
                )
            };
            let item = item.unwrap_or_default();
            let Some(entry) = plan::find_entry(entries, kind, &item).map(|e| e.entry.clone())
            else {
                let what = if on_component { "component" } else { "package" };
                let list = if on_component {
                    "Deployed"
                } else {
                    "Delivered"
                };
                finish(
                    state,
                    &job,
                    &plan,
                    End {
                        state: JobState::Failed,
                        code: None,
                        outcome: format!("{what} {item:?} is not on the device"),
                        detail: Some(format!("the device's Inventory/{list} has no entry for it")),
                    },
                    now,
                )
                .await?;
                return Ok(());
            };
            let Some(prim) = plan::existing_primitive(op, on_component) else {
                return Ok(());
            };
            let root = state.config().scomo.root.clone();
            let correlator = plan::correlator(job.id.0, plan.step);
            let b = new_batch(
                &job.device_id,
                exec_owner(job.id),
                vec![plan::exec(prim.uri(&root, &entry), correlator)],
                false,
            );
            plan.entry = Some(entry.clone());
            plan.phase = Phase::Exec;
            let upd = JobUpdate {
                state: JobState::Running,
                plan: plan.to_json(),
                event: Some(format!("{op} sent to {}", prim.uri(&root, &entry))),
                enqueue: Some(b),
                ..JobUpdate::keep(&job)
            };
            update(state, &job, upd, now).await?;
            Ok(())
        }
        Phase::Verify => {
            let component = step_component(&job, &plan, op);
            match plan::check_expected(op, plan.package.as_ref(), component.as_deref(), entries) {
                Ok(()) => step_succeeded(state, job, plan, now).await,
                Err(why) => finish(
                    state,
                    &job,
                    &plan,
                    End {
                        state: JobState::Mismatch,
                        code: plan.reported,
                        outcome: "reported successful, but the inventory does not show it".into(),
                        detail: Some(why),
                    },
                    now,
                )
                .await
                .map(|_| ()),
            }
        }
        _ => Ok(()),
    }
}

async fn step_succeeded(
    state: &AppState,
    job: Job,
    mut plan: JobPlan,
    now: Timestamp,
) -> Result<(), AppError> {
    let op = plan.current().map(|s| s.op.clone()).unwrap_or_default();
    if plan.step + 1 >= plan.steps.len() {
        let detail = Some(match plan.steps.len() {
            1 => "the inventory shows the expected result".to_owned(),
            n => format!("{n} steps; the inventory shows the expected result"),
        });
        finish(
            state,
            &job,
            &plan,
            End {
                state: JobState::Succeeded,
                code: plan.reported.or(Some(ResultCode::SUCCESSFUL.0)),
                outcome: "succeeded".into(),
                detail,
            },
            now,
        )
        .await?;
        return Ok(());
    }
    plan.step += 1;
    plan.phase = Phase::Start;
    let at = plan
        .current()
        .and_then(|s| s.at)
        .map(Timestamp::from_unix_millis)
        .filter(|at| *at > now);
    match at {
        Some(at) => {
            let upd = JobUpdate {
                state: JobState::Scheduled,
                batch_id: None,
                plan: plan.to_json(),
                wake_at: Some(at),
                deadline_at: None,
                event: Some(format!(
                    "{op} succeeded; next step at {}",
                    crate::api::rfc3339(at)
                )),
                ..JobUpdate::keep(&job)
            };
            update(state, &job, upd, now).await?;
        }
        None => {
            start_step(state, job, plan, now, &format!("{op} succeeded"), false).await?;
        }
    }
    Ok(())
}

/// The wire alert a stored alert item came from (for the SCOMO parser).
fn wire_alert(a: &StoredAlert) -> Alert {
    let n = &a.alert;
    let mut alert = Alert::new(n.code);
    alert.correlator = n.correlator.clone();
    alert.items = vec![Item {
        source: n.source_uri.clone().map(Location::uri),
        target: n.target_uri.clone().map(Location::uri),
        meta: Some(Meta {
            r#type: n.alert_type.clone(),
            format: n.format.clone(),
            mark: n.mark.clone(),
            ..Meta::default()
        }),
        data: n.data.clone(),
        ..Item::default()
    }];
    alert
}

/// A Generic Alert item that carries one of our correlators.
pub async fn on_alert(state: &AppState, alert: &StoredAlert) -> Result<(), AppError> {
    if alert.alert.code != AlertCode::GENERIC_ALERT {
        return Ok(());
    }
    let Some((id, step)) = alert
        .alert
        .correlator
        .as_deref()
        .and_then(plan::job_of_correlator)
    else {
        return Ok(());
    };
    let store = state.store();
    let now = Timestamp::now();
    let Some(job) = store.job(JobId(id)).await? else {
        return Ok(());
    };
    if job.device_id != alert.alert.device_id {
        warn!(job = %job.id, device = %alert.alert.device_id, "alert for another device's job ignored");
        return Ok(());
    }
    let report = match OperationComplete::from_alert(&wire_alert(alert)) {
        Ok(r) => r,
        Err(e) => {
            store
                .note_job(job.id, &format!("unreadable SCOMO alert: {e}"), now)
                .await?;
            return Ok(());
        }
    };
    let Some(item) = report.items.first() else {
        return Ok(());
    };
    let code = item.result;
    let mut plan = load_plan(&job)?;
    if job.state.is_terminal()
        || step != plan.step
        || !matches!(plan.phase, Phase::Exec | Phase::Await)
    {
        store
            .note_job(
                job.id,
                &format!(
                    "late report {} {} (step {step}) ignored",
                    code.0,
                    code.meaning()
                ),
                now,
            )
            .await?;
        return Ok(());
    }
    plan.reported = Some(code.0);
    if code.is_success() {
        let extra = cleanup(state, &job, &plan);
        verify(
            state,
            job,
            plan,
            extra,
            now,
            &format!("the device reported {} {}", code.0, code.meaning()),
        )
        .await
    } else {
        let detail = download_detail(state, &plan).await?;
        finish(
            state,
            &job,
            &plan,
            End {
                state: JobState::Failed,
                code: Some(code.0),
                outcome: format!("failed: {} {}", code.0, code.meaning()),
                detail,
            },
            now,
        )
        .await
        .map(|_| ())
    }
}

/// What the download server saw of a job's download, for failure details.
async fn download_detail(state: &AppState, plan: &JobPlan) -> Result<Option<String>, AppError> {
    let Some(token) = &plan.download_token else {
        return Ok(None);
    };
    super::download_summary(state, token).await
}

/// Due jobs: timeouts and scheduled steps.
pub async fn tick(state: &AppState, now: Timestamp) -> Result<(), AppError> {
    for job in state.store().due_jobs(now, 100).await? {
        let plan = load_plan(&job)?;
        if job.deadline_at.is_some_and(|d| d <= now) {
            if let Some(b) = job.batch_id {
                state.store().cancel_batch(b, now).await?;
            }
            let waiting = match plan.phase {
                Phase::Start | Phase::Resolve | Phase::Exec => "the device did not answer",
                Phase::Await => "the device never reported the result",
                Phase::Verify => "the inventory was not read back",
            };
            let detail = download_detail(state, &plan).await?;
            finish(
                state,
                &job,
                &plan,
                End {
                    state: JobState::TimedOut,
                    code: None,
                    outcome: format!("timed out: {waiting}"),
                    detail,
                },
                now,
            )
            .await?;
        } else if job.state == JobState::Scheduled {
            let notify = state
                .store()
                .device(&job.device_id)
                .await?
                .is_some_and(|d| d.notify_addr.is_some());
            start_step(state, job, plan, now, "start time reached", notify).await?;
        }
    }
    Ok(())
}

/// Cancels a live job.
pub async fn cancel_job(state: &AppState, id: JobId) -> Result<Job, AppError> {
    let store = state.store();
    let now = Timestamp::now();
    let job = store
        .job(id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no job {id}")))?;
    if job.state.is_terminal() {
        return Err(AppError::Conflict(format!(
            "job {id} is already {}",
            job.state
        )));
    }
    let mut detail = None;
    if let Some(b) = job.batch_id {
        if !store.cancel_batch(b, now).await? {
            detail = Some(
                "its commands had already reached the device; a later report is recorded in the \
                 history only"
                    .to_owned(),
            );
        }
    }
    let plan = load_plan(&job)?;
    match finish(
        state,
        &job,
        &plan,
        End {
            state: JobState::Cancelled,
            code: None,
            outcome: "cancelled".into(),
            detail,
        },
        now,
    )
    .await?
    {
        Some(j) => Ok(j),
        None => Err(AppError::Conflict(format!(
            "job {id} changed meanwhile; try again"
        ))),
    }
}
