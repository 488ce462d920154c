//! The campaign driver each node runs: it holds a lease on the live
//! campaigns it can take, keeps a [`Planner`] per campaign in memory,
//! feeds it the outcomes of the campaign's jobs and the devices that start
//! matching, starts the jobs it asks for, and saves the progress.
//!
//! ```text
//!  claim leases ─▶ restore planners (members from the store)
//!     │
//!     ├─ operator command (pause/resume/cancel, left by any node's API)
//!     ├─ finished jobs (campaign_finished) ─▶ finish_members ─▶ Planner::job_finished
//!     ├─ new matching devices ─▶ add_members ─▶ Planner::add_devices
//!     ├─ Planner::next_actions ─▶ start_members ─▶ create_job (origin campaign)
//!     │                             ─▶ set_member_jobs
//!     └─ save_campaign (state, reason, counts) ── publish `campaign` event
//! ```
//!
//! Everything a planner knows is in the store (members with stage, job and
//! outcome; state; epoch), so when a node dies another one takes the
//! campaign when the lease runs out and carries on where it stopped. A
//! round is cheap when nothing changed; job events of this node wake the
//! driver at once, the tick catches the rest (other nodes' jobs, timers).

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt as _;
use scomo::result::{ResultClass, ResultCode};
use tracing::{info, warn};

use super::def::{class_name, CampaignDef, Compiled};
use super::planner::{Action, Outcome, Planner, Progress, Saved, SavedDevice};
use super::rng::XorShift64;
use super::view::{state_from_parts, state_parts, ProgressView, ReasonView};
use super::Millis;
use crate::error::AppError;
use crate::events::ApiEvent;
use crate::state::AppState;
use crate::store::{
    CampaignId, CampaignMember, CampaignRecord, CampaignUpdate, JobFilter, JobId, JobOrigin,
    JobState, MemberOutcome, Timestamp,
};

/// How long a node holds a campaign without renewing.
const LEASE: Duration = Duration::from_secs(30);
/// Longest pause between rounds.
const TICK: Duration = Duration::from_millis(500);
/// Devices taken per filter query.
const JOIN_BATCH: u32 = 20_000;
/// Members read per page when restoring.
const PAGE: u32 = 10_000;
/// Jobs created at once. A job's creation is two writes in a row (the job,
/// then its first step with its batch, token and package 0); 16 at once
/// keeps pace with what a node's sessions get through, and creating faster
/// only queues devices (at 64 a 10k campaign ran no faster and its
/// sessions took twice as long).
const START_PARALLEL: usize = 16;
/// Jobs started between two lease renewals.
const START_CHUNK: usize = 512;

/// One campaign this node runs.
struct Live {
    id: CampaignId,
    name: String,
    planner: Planner,
    compiled: Compiled,
    rng: XorShift64,
    epoch: i64,
    initial: usize,
    started: bool,
    next_join: Millis,
    saved: Option<(String, Option<String>, String)>,
}

/// Runs until `shutdown` resolves.
pub(crate) async fn run(state: AppState, shutdown: impl std::future::Future<Output = ()>) {
    let owner = format!("{}/campaigns", state.node_id());
    let mut events = state.subscribe();
    let mut live: HashMap<CampaignId, Live> = HashMap::new();
    tokio::pin!(shutdown);
    let mut next = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep_until(next) => {}
            () = state.campaigns_woken() => {}
            ev = events.recv() => {
                match ev {
                    Ok(e) if wakes(&e) => {}
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        }
        // Whatever else arrived meanwhile is handled by this round.
        while events.try_recv().is_ok() {}
        let wake = match round(&state, &owner, &mut live).await {
            Ok(w) => w,
            Err(e) => {
                warn!("campaign round failed: {e}");
                None
            }
        };
        let now = Timestamp::now().unix_millis();
        let wait = wake
            .map(|w| Duration::from_millis(u64::try_from((w - now).max(0)).unwrap_or(0)))
            .unwrap_or(TICK)
            .min(TICK);
        next = tokio::time::Instant::now() + wait;
    }
}

fn wakes(e: &ApiEvent) -> bool {
    match e.kind {
        "job" => JobState::parse(&e.state).is_some_and(JobState::is_terminal),
        _ => false,
    }
}

/// One round over every campaign this node holds; returns the earliest
/// time a planner asked to be asked again.
async fn round(
    state: &AppState,
    owner: &str,
    live: &mut HashMap<CampaignId, Live>,
) -> Result<Option<Millis>, AppError> {
    let store = state.store();
    let now = Timestamp::now();
    let claimed = store.claim_campaigns(owner, now + LEASE, now).await?;
    live.retain(|id, _| claimed.iter().any(|c| c.id == *id));
    let mut wake: Option<Millis> = None;
    for rec in claimed {
        let l = match live.entry(rec.id) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => match restore(state, &rec).await {
                Ok(l) => e.insert(l),
                Err(err) => {
                    warn!(campaign = rec.id.0, "cannot run campaign: {err}");
                    continue;
                }
            },
        };
        match step(state, owner, l).await {
            Ok(w) => {
                if let Some(w) = w {
                    wake = Some(wake.map_or(w, |x: Millis| x.min(w)));
                }
            }
            Err(e) => warn!(campaign = rec.id.0, "campaign step failed: {e}"),
        }
        if l.planner.state().is_terminal() && l.saved.is_some() {
            live.remove(&rec.id);
        }
    }
    Ok(wake)
}

fn outcome_of_member(m: &CampaignMember) -> Option<Outcome> {
    Some(match m.outcome.as_deref()? {
        "succeeded" => Outcome::Succeeded,
        "failed" => Outcome::Failed(match m.class.as_deref() {
            Some("user_declined") => ResultClass::UserDeclined,
            Some("download_server_fault") => ResultClass::DownloadServerFault,
            Some("device_fault") => ResultClass::DeviceFault,
            _ => ResultClass::Unknown,
        }),
        "timed_out" => Outcome::TimedOut,
        "mismatch" => Outcome::Mismatch,
        _ => Outcome::Cancelled,
    })
}

fn outcome_of_job(state: JobState, code: Option<u16>) -> Outcome {
    match state {
        JobState::Succeeded => Outcome::Succeeded,
        JobState::Mismatch => Outcome::Mismatch,
        JobState::TimedOut => Outcome::TimedOut,
        JobState::Failed => Outcome::Failed(match code.map(|c| ResultCode(c).class()) {
            Some(ResultClass::Success) | None => ResultClass::DeviceFault,
            Some(c) => c,
        }),
        _ => Outcome::Cancelled,
    }
}

fn member_outcome(o: Outcome, code: Option<u16>, epoch: i64, not_started: bool) -> MemberOutcome {
    let (name, class) = match o {
        Outcome::Succeeded => ("succeeded", None),
        Outcome::Failed(c) => (
            "failed",
            Some(match c {
                ResultClass::UserDeclined => "user_declined",
                ResultClass::DownloadServerFault => "download_server_fault",
                ResultClass::DeviceFault => "device_fault",
                _ => "other",
            }),
        ),
        Outcome::TimedOut => ("timed_out", o.error_class().map(class_name)),
        Outcome::Mismatch => ("mismatch", o.error_class().map(class_name)),
        Outcome::Cancelled if not_started => ("not_started", None),
        Outcome::Cancelled => ("cancelled", None),
    };
    MemberOutcome {
        outcome: name.into(),
        result_code: code,
        class: class.map(str::to_owned),
        epoch,
    }
}

/// The progress snapshot as saved (`initial` rides along).
fn progress_json(l: &Live) -> String {
    let view = ProgressView::new(&l.planner.status(), l.initial);
    serde_json::to_string(&view).unwrap_or_default()
}

async fn restore(state: &AppState, rec: &CampaignRecord) -> Result<Live, String> {
    let def: CampaignDef = serde_json::from_str(&rec.definition)
        .map_err(|e| format!("stored definition unreadable: {e}"))?;
    let compiled = def.compile(rec.created_at)?;
    let reason: Option<ReasonView> = rec
        .reason
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok());
    let planner_state = state_from_parts(&rec.state, reason.as_ref())
        .ok_or_else(|| format!("stored state {:?} unreadable", rec.state))?;
    let initial = rec
        .status
        .as_deref()
        .and_then(|s| serde_json::from_str::<ProgressView>(s).ok())
        .map_or(0, |p| p.initial);
    let store = state.store();
    let mut devices = Vec::new();
    let mut adopted = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .members(rec.id, after, PAGE)
            .await
            .map_err(|e| e.to_string())?;
        let full = page.len() >= PAGE as usize;
        after = page.last().map(|m| m.seq);
        for m in page {
            let progress = match outcome_of_member(&m) {
                Some(outcome) => Progress::Finished {
                    outcome,
                    counted: m.epoch == Some(rec.epoch),
                },
                None if m.job_id.is_some() => Progress::InFlight,
                None => match m.started_at {
                    Some(at) => match adopt(store.as_ref(), &m.device_id, at).await? {
                        Some(job) => {
                            adopted.push((m.device_id.clone(), job));
                            Progress::InFlight
                        }
                        None => Progress::Pending,
                    },
                    None => Progress::Pending,
                },
            };
            devices.push(SavedDevice {
                id: m.device_id,
                stage: m.stage.map(|s| s as usize),
                progress,
            });
        }
        if !full {
            break;
        }
    }
    store
        .set_member_jobs(rec.id, &adopted)
        .await
        .map_err(|e| e.to_string())?;
    let listed = def.select.devices.clone();
    let now = Timestamp::now().unix_millis();
    let saved = Saved {
        state: planner_state,
        since: rec.updated_at.unix_millis(),
        current: rec.current_stage.map(|s| s as usize),
        initial,
        devices,
    };
    let started = saved.current.is_some();
    let mut planner =
        Planner::restore(compiled.spec.clone(), saved, now).map_err(|e| e.to_string())?;
    let seed = def.seed.unwrap_or(rec.id.0 as u64);
    // A listed campaign takes its devices on its first round.
    if !listed.is_empty() && rec.status.is_none() {
        let added = store
            .add_members(rec.id, &listed, Timestamp::now())
            .await
            .map_err(|e| e.to_string())?;
        planner.add_devices(added, now);
    }
    // What the store has, so an unchanged round writes nothing (none
    // before the first save).
    let saved = rec
        .status
        .clone()
        .map(|status| (rec.state.clone(), rec.reason.clone(), status));
    Ok(Live {
        id: rec.id,
        name: rec.name.clone(),
        rng: XorShift64::new(seed ^ (rec.epoch as u64).rotate_left(32)),
        epoch: rec.epoch,
        initial,
        started,
        next_join: 0,
        saved,
        planner,
        compiled,
    })
}

/// The job a member got when its node stopped between creating the job
/// and recording it: the device's newest campaign job created since the
/// member was started.
async fn adopt(
    store: &dyn crate::store::Store,
    device: &str,
    started: Timestamp,
) -> Result<Option<JobId>, String> {
    let filter = JobFilter {
        device_id: Some(device.to_owned()),
        ..JobFilter::default()
    };
    let jobs = store
        .list_jobs(&filter, None, 10)
        .await
        .map_err(|e| e.to_string())?;
    Ok(jobs
        .into_iter()
        .find(|j| j.origin == JobOrigin::Campaign && j.created_at >= started)
        .map(|j| j.id))
}

/// One round of one campaign.
async fn step(state: &AppState, owner: &str, l: &mut Live) -> Result<Option<Millis>, AppError> {
    let store = state.store();
    let now = Timestamp::now();
    let ms = now.unix_millis();

    if let Some(cmd) = store.take_campaign_command(l.id, owner).await? {
        apply_command(state, l, &cmd, ms).await?;
    }

    // Outcomes.
    loop {
        let done = store.finished_member_jobs(l.id, 1000).await?;
        let n = done.len();
        let outcomes: Vec<(String, Outcome, MemberOutcome)> = done
            .into_iter()
            .map(|f| {
                let outcome = outcome_of_job(f.state, f.result_code);
                let m = member_outcome(outcome, f.result_code, l.epoch, false);
                (f.device_id, outcome, m)
            })
            .collect();
        let rows: Vec<(String, MemberOutcome)> = outcomes
            .iter()
            .map(|(d, _, m)| (d.clone(), m.clone()))
            .collect();
        store.finish_members(l.id, &rows, now).await?;
        for (d, outcome, _) in outcomes {
            l.planner.job_finished(&d, outcome, ms);
        }
        if n < 1000 {
            break;
        }
    }

    // Devices that match (the first selection and late joiners).
    if l.compiled.filter.is_some()
        && !l.planner.state().is_terminal()
        && ms >= l.next_join
        && (l.compiled.late_joiners || l.next_join == 0)
    {
        join(state, l, now).await?;
        l.next_join =
            ms + i64::try_from(state.config().scomo.campaign_rejoin_ms).unwrap_or(i64::MAX);
    }

    // Starts.
    let mut wake = None;
    let actions = l.planner.next_actions(ms, &mut l.rng);
    if !l.started && l.planner.status().current_stage.is_some() {
        l.started = true;
        l.initial = l.planner.status().totals.devices as usize;
        info!(campaign = l.id.0, name = %l.name, devices = l.initial, "campaign started");
    }
    let mut starts = Vec::new();
    for a in actions {
        match a {
            Action::StartJob(d) => starts.push(d),
            Action::WaitUntil(t) => wake = Some(t),
        }
    }
    if !starts.is_empty() {
        start_jobs(state, owner, l, starts).await?;
    }

    save(state, owner, l).await?;
    Ok(wake)
}

async fn join(state: &AppState, l: &mut Live, now: Timestamp) -> Result<(), AppError> {
    let store = state.store();
    let Some(filter) = l.compiled.filter.clone() else {
        return Ok(());
    };
    let versions: Option<HashMap<String, Option<String>>> = match &l.compiled.component {
        Some(c) => Some(store.deployed_versions(&c.id).await?.into_iter().collect()),
        None => None,
    };
    loop {
        let mut ids = store.select_new_devices(l.id, &filter, JOIN_BATCH).await?;
        let full = ids.len() >= JOIN_BATCH as usize;
        if let (Some(c), Some(v)) = (&l.compiled.component, &versions) {
            ids.retain(|d| c.matches(v.get(d).map(|x| x.as_deref())));
        }
        if !ids.is_empty() {
            let added = store.add_members(l.id, &ids, now).await?;
            l.planner.add_devices(added, now.unix_millis());
        }
        // With a component rule, devices that did not match stay out of
        // the members and would come back first: one batch per round.
        if !full || l.compiled.component.is_some() {
            return Ok(());
        }
    }
}

async fn start_jobs(
    state: &AppState,
    owner: &str,
    l: &mut Live,
    devices: Vec<String>,
) -> Result<(), AppError> {
    for chunk in devices.chunks(START_CHUNK) {
        // A long burst of starts must not outlive the lease.
        let now = Timestamp::now();
        state
            .store()
            .claim_campaigns(owner, now + LEASE, now)
            .await?;
        start_chunk(state, l, chunk.to_vec()).await?;
    }
    Ok(())
}

async fn start_chunk(state: &AppState, l: &mut Live, devices: Vec<String>) -> Result<(), AppError> {
    let store = state.store();
    // Intent first: a crash between here and set_member_jobs leaves members
    // started without a job, which restore matches to the jobs it finds.
    let starts: Vec<(String, u32)> = devices
        .iter()
        .map(|d| (d.clone(), l.planner.stage_of(d).unwrap_or(0) as u32))
        .collect();
    store.start_members(l.id, &starts, Timestamp::now()).await?;
    let template = l.compiled.job.clone();
    let results: Vec<(String, Result<crate::store::Job, AppError>)> =
        futures_util::stream::iter(devices)
            .map(|d| {
                let mut req = template.clone();
                req.device_id = d.clone();
                async move {
                    let r = crate::scomo::create_job(state, req, JobOrigin::Campaign, true).await;
                    (d, r)
                }
            })
            .buffered(START_PARALLEL)
            .collect()
            .await;
    let now = Timestamp::now();
    let mut jobs = Vec::new();
    let mut failed = Vec::new();
    for (d, r) in results {
        match r {
            Ok(job) => jobs.push((d, job.id)),
            Err(e) => {
                warn!(campaign = l.id.0, device = %d, "campaign job not started: {e}");
                failed.push((d, member_outcome(Outcome::Cancelled, None, l.epoch, true)));
            }
        }
    }
    store.set_member_jobs(l.id, &jobs).await?;
    store.finish_members(l.id, &failed, now).await?;
    for (d, _) in failed {
        l.planner
            .job_finished(&d, Outcome::Cancelled, now.unix_millis());
    }
    Ok(())
}

async fn apply_command(
    state: &AppState,
    l: &mut Live,
    cmd: &str,
    now: Millis,
) -> Result<(), AppError> {
    match cmd {
        "pause" => {
            l.planner.pause(now);
        }
        "resume" => {
            if l.planner.resume(now) {
                l.epoch += 1;
            }
        }
        "cancel" => {
            if l.planner.cancel(now) {
                cancel_in_flight(state, l).await?;
            }
        }
        other => warn!(
            campaign = l.id.0,
            "unknown campaign command {other:?} ignored"
        ),
    }
    Ok(())
}

/// Cancels the jobs of a cancelled campaign that are still running; their
/// outcomes come back as `cancelled` (or what they had reached).
async fn cancel_in_flight(state: &AppState, l: &Live) -> Result<(), AppError> {
    let store = state.store();
    let mut after = None;
    loop {
        let page = store.members(l.id, after, PAGE).await?;
        let full = page.len() >= PAGE as usize;
        after = page.last().map(|m| m.seq);
        for m in page {
            if let (Some(job), None) = (m.job_id, &m.outcome) {
                match crate::scomo::cancel_job(state, job).await {
                    Ok(_) | Err(AppError::Conflict(_)) | Err(AppError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        if !full {
            return Ok(());
        }
    }
}

async fn save(state: &AppState, owner: &str, l: &mut Live) -> Result<(), AppError> {
    let status = l.planner.status();
    let (name, reason) = state_parts(status.state);
    let reason = reason.and_then(|r| serde_json::to_string(&r).ok());
    let progress = progress_json(l);
    let now_state = (name.to_owned(), reason.clone(), progress.clone());
    if l.saved.as_ref() == Some(&now_state) {
        return Ok(());
    }
    let update = CampaignUpdate {
        state: name.to_owned(),
        reason,
        current_stage: status.current_stage.map(|s| s as u32),
        epoch: l.epoch,
        status: progress,
        finished: status.state.is_terminal(),
    };
    let now = Timestamp::now();
    if !state
        .store()
        .save_campaign(l.id, owner, &update, now)
        .await?
    {
        // Another node took it over (this node was too slow to renew):
        // forget the planner; the round after drops it.
        l.saved = None;
        return Err(AppError::Conflict(format!(
            "campaign {} is held by another node",
            l.id
        )));
    }
    let changed_state = l.saved.as_ref().is_none_or(|s| s.0 != name);
    l.saved = Some(now_state);
    if changed_state {
        info!(campaign = l.id.0, state = name, "campaign state");
    }
    state.publish(ApiEvent::new(
        "campaign",
        l.id.0,
        "",
        name,
        Some(format!(
            "{} of {} devices finished",
            status.totals.outcomes.finished(),
            status.totals.devices
        )),
        now,
    ));
    Ok(())
}
