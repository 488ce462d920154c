//! `/api/v1/jobs`, `/api/v1/devices/{id}/inventory`, `/api/v1/catalog`
//! and `/api/v1/events`: the SCOMO server's operations.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;

use super::{json_body, query, rfc3339};
use crate::error::AppError;
use crate::scomo::JobRequest;
use crate::state::AppState;
use crate::store::{
    CatalogRule, Delivery, InventoryEntry, Job, JobEvent, JobFilter, JobId, JobOp, JobOrigin,
    JobState, NewCatalogRule, RuleId, Timestamp, MAX_PAGE,
};

/// A job as the API shows it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobView {
    /// Its id.
    pub id: i64,
    /// The device.
    pub device_id: String,
    /// The operation (`DownloadInstall`, ...).
    pub op: String,
    /// The package.
    pub package: Option<String>,
    /// The component.
    pub component: Option<String>,
    /// `direct`, `http`, `dlota` or `none`.
    pub delivery: String,
    /// `api`, `catalog` or `campaign`.
    pub origin: String,
    /// `queued`, `running`, `awaiting_result`, `verifying`, `scheduled`,
    /// `succeeded`, `failed`, `mismatch`, `timed_out`, `cancelled`.
    pub state: String,
    /// Whether the job is over.
    pub finished: bool,
    /// The steps (operation names), and which one is current (0-based).
    pub steps: Vec<String>,
    /// The current step.
    pub step: usize,
    /// The SCOMO result code (or DM status) that decided it.
    pub result_code: Option<u16>,
    /// What the code means.
    pub result_meaning: Option<String>,
    /// `success`, `device_fault`, `download_server_fault`, `user_declined`.
    pub result_class: Option<String>,
    /// The outcome in one line.
    pub outcome: Option<String>,
    /// More about it.
    pub detail: Option<String>,
    /// When it was made (RFC 3339).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When it last changed (RFC 3339).
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// When it ended (RFC 3339).
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    /// When it times out (RFC 3339).
    #[schema(format = DateTime)]
    pub deadline_at: Option<String>,
    /// When its next step starts (scheduled; RFC 3339).
    #[schema(format = DateTime)]
    pub wake_at: Option<String>,
    /// History, oldest first (one job only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<JobEventView>>,
    /// What the download server saw (one job only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downloads: Option<Vec<DownloadView>>,
}

/// One line of a job's history.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobEventView {
    /// When (RFC 3339).
    #[schema(format = DateTime)]
    pub at: String,
    /// The state after it.
    pub state: String,
    /// What happened.
    pub message: String,
}

/// A download URL of a job as the download server saw it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DownloadView {
    /// Bytes sent (all requests).
    pub bytes_served: u64,
    /// Downloads that reached the end of the file.
    pub downloads_completed: u32,
    /// The last failure.
    pub last_error: Option<String>,
    /// The DL OTA install-notify status (900–954).
    pub notify_status: Option<u16>,
    /// When the URL expires (RFC 3339).
    #[schema(format = DateTime)]
    pub expires_at: String,
}

fn result_class(code: u16) -> Option<&'static str> {
    use scomo::result::{ResultClass, ResultCode};
    match ResultCode(code).class() {
        ResultClass::Success => Some("success"),
        ResultClass::UserDeclined => Some("user_declined"),
        ResultClass::DeviceFault => Some("device_fault"),
        ResultClass::DownloadServerFault => Some("download_server_fault"),
        _ => None,
    }
}

impl JobView {
    /// The view of a job.
    pub fn new(j: Job) -> JobView {
        let plan = crate::scomo::plan::JobPlan::from_json(&j.plan).unwrap_or_default();
        let meaning = j.result_code.and_then(|c| {
            (1200..=1599)
                .contains(&c)
                .then(|| scomo::result::ResultCode(c).meaning().to_owned())
        });
        JobView {
            id: j.id.0,
            device_id: j.device_id,
            op: j.op.as_str().to_owned(),
            package: j.pkg_id,
            component: j.component_id,
            delivery: j.delivery.as_str().to_owned(),
            origin: j.origin.as_str().to_owned(),
            state: j.state.as_str().to_owned(),
            finished: j.state.is_terminal(),
            steps: plan.steps.iter().map(|s| s.op.clone()).collect(),
            step: plan.step,
            result_meaning: meaning,
            result_class: j.result_code.and_then(result_class).map(str::to_owned),
            result_code: j.result_code,
            outcome: j.outcome,
            detail: j.detail,
            created_at: rfc3339(j.created_at),
            updated_at: rfc3339(j.updated_at),
            finished_at: j.finished_at.map(rfc3339),
            deadline_at: j.deadline_at.map(rfc3339),
            wake_at: j.wake_at.map(rfc3339),
            history: None,
            downloads: None,
        }
    }
}

impl From<JobEvent> for JobEventView {
    fn from(e: JobEvent) -> JobEventView {
        JobEventView {
            at: rfc3339(e.at),
            state: e.state.as_str().to_owned(),
            message: e.message,
        }
    }
}

/// `POST /api/v1/jobs`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateJob {
    /// The device (DevId).
    device: String,
    /// The operation: `Download`, `DownloadInstall`,
    /// `DownloadInstallInactive`, `Install`, `InstallInactive`, `Update`,
    /// `Remove`, `Activate` or `Deactivate` (case-insensitive).
    op: String,
    /// The package (PkgID): download-type operations, Install, Remove of a
    /// package.
    #[serde(default)]
    package: Option<String>,
    /// The deployment component: Activate, Deactivate, Remove of a
    /// component.
    #[serde(default)]
    component: Option<String>,
    /// `direct`, `http`, `dlota` or `none` (default `http` for the
    /// download-type operations, else `none`).
    #[serde(default)]
    delivery: Option<String>,
    /// Not before this time (RFC 3339 or unix seconds; default now).
    #[serde(default)]
    at: Option<TimeArg>,
    /// Further steps, each after the previous one succeeded.
    #[serde(default)]
    then: Vec<ThenStep>,
    /// Per-step timeout in seconds (default `scomo.job_timeout_secs`).
    #[serde(default)]
    #[schema(minimum = 1)]
    timeout_secs: Option<u64>,
}

/// A later step of a job.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ThenStep {
    /// The operation.
    op: String,
    /// Not before this time (RFC 3339 or unix seconds).
    #[serde(default)]
    at: Option<TimeArg>,
}

/// A time given as unix seconds or RFC 3339 text.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
enum TimeArg {
    /// Unix seconds.
    Secs(i64),
    /// RFC 3339, e.g. `2026-05-01T12:00:00Z`.
    Text(String),
}

impl TimeArg {
    fn parse(&self) -> Result<Timestamp, AppError> {
        match self {
            TimeArg::Secs(s) => Ok(Timestamp::from_unix_secs(*s)),
            TimeArg::Text(t) => parse_rfc3339(t).ok_or_else(|| {
                AppError::BadRequest(format!(
                    "time {t:?} is not RFC 3339 (2026-05-01T12:00:00Z) or unix seconds"
                ))
            }),
        }
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)`.
pub(crate) fn parse_rfc3339(t: &str) -> Option<Timestamp> {
    let b = t.as_bytes();
    if b.len() < 20 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = t.get(19..)?;
    let mut ms = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        let f = frac.get(..digits)?;
        ms = format!("{f:0<3}").get(..3)?.parse().ok()?;
        rest = frac.get(digits..)?;
    }
    let offset = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 => {
            let sign = match o.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            sign * (o.get(1..3)?.parse::<i64>().ok()? * 60 + o.get(4..6)?.parse::<i64>().ok()?)
        }
        _ => return None,
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + s - offset * 60;
    Some(Timestamp::from_unix_millis(secs * 1000 + ms))
}

pub(crate) fn parse_op(s: &str) -> Result<JobOp, AppError> {
    JobOp::parse(s).ok_or_else(|| {
        let all: Vec<&str> = JobOp::ALL.iter().map(|o| o.as_str()).collect();
        AppError::BadRequest(format!("unknown op {s:?}: one of {}", all.join(", ")))
    })
}

pub(crate) fn parse_delivery(s: &str) -> Result<Delivery, AppError> {
    Delivery::parse(s).ok_or_else(|| {
        AppError::BadRequest(format!(
            "unknown delivery {s:?}: one of direct, http, dlota, none"
        ))
    })
}

/// Creates a job.
#[utoipa::path(
    post,
    path = "/api/v1/jobs",
    operation_id = "create_job",
    tag = "jobs",
    request_body = CreateJob,
    responses(
        (status = 201, description = "The job", body = JobView),
        (status = 400, description = "A bad body or field", body = crate::error::ErrorBody),
        (status = 401, description = "No valid token", body = crate::error::ErrorBody),
        (status = 404, description = "No such device or package", body = crate::error::ErrorBody),
        (status = 409, description = "The job conflicts with the device's state or jobs", body = crate::error::ErrorBody),
        (status = 413, description = "The body is too big", body = crate::error::ErrorBody),
        (status = 415, description = "The body is not JSON", body = crate::error::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    body: Result<Json<CreateJob>, JsonRejection>,
) -> Result<Response, AppError> {
    let b = json_body(body)?;
    let mut then = Vec::new();
    for s in &b.then {
        then.push((
            parse_op(&s.op)?,
            s.at.as_ref().map(TimeArg::parse).transpose()?,
        ));
    }
    if b.timeout_secs == Some(0) {
        return Err(AppError::BadRequest("timeout_secs must be positive".into()));
    }
    let req = JobRequest {
        device_id: b.device,
        op: parse_op(&b.op)?,
        pkg_id: b.package,
        component_id: b.component,
        delivery: b.delivery.as_deref().map(parse_delivery).transpose()?,
        at: b.at.as_ref().map(TimeArg::parse).transpose()?,
        then,
        timeout: b.timeout_secs.map(Duration::from_secs),
    };
    let job = crate::scomo::create_job(&state, req, JobOrigin::Api, true).await?;
    Ok((StatusCode::CREATED, Json(JobView::new(job))).into_response())
}

/// `GET /api/v1/jobs` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct JobParams {
    /// Only this device's jobs.
    device: Option<String>,
    /// Only jobs in this state (`queued`, `running`, ..., `cancelled`).
    state: Option<String>,
    /// Only jobs of this package (PkgID).
    package: Option<String>,
    /// Only jobs that are not over.
    #[serde(default)]
    live: bool,
    /// Jobs with a smaller id than this (the last id of the previous page).
    before: Option<i64>,
    /// Page size (default 50; clamped to 1..=1000).
    limit: Option<u32>,
}

/// Lists jobs, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/jobs",
    operation_id = "list_jobs",
    tag = "jobs",
    params(JobParams),
    responses(
        (status = 200, description = "The jobs, newest first", body = Vec<JobView>),
        (status = 400, description = "A bad query parameter", body = crate::error::ErrorBody),
        (status = 401, description = "No valid token", body = crate::error::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    params: Result<Query<JobParams>, QueryRejection>,
) -> Result<Response, AppError> {
    let p = query(params)?;
    let filter = JobFilter {
        device_id: p.device,
        state: p
            .state
            .as_deref()
            .map(|s| {
                JobState::parse(s)
                    .ok_or_else(|| AppError::BadRequest(format!("unknown job state {s:?}")))
            })
            .transpose()?,
        live: p.live,
        pkg_id: p.package,
    };
    let jobs = state
        .store()
        .list_jobs(
            &filter,
            p.before.map(JobId),
            p.limit.unwrap_or(50).clamp(1, MAX_PAGE),
        )
        .await?;
    let v: Vec<JobView> = jobs.into_iter().map(JobView::new).collect();
    Ok(Json(v).into_response())
}

async fn find(state: &AppState, id: i64) -> Result<Job, AppError> {
    state
        .store()
        .job(JobId(id))
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no job {id}")))
}

/// One job with its history and downloads.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/{id}",
    operation_id = "show_job",
    tag = "jobs",
    params(("id" = i64, Path, description = "The job id")),
    responses(
        (status = 200, description = "The job, with `history` and `downloads`", body = JobView),
        (status = 401, description = "No valid token", body = crate::error::ErrorBody),
        (status = 404, description = "No such job", body = crate::error::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    let job = find(&state, id).await?;
    let events = state.store().job_events(job.id).await?;
    let downloads = state.store().download_tokens_for_job(job.id.0).await?;
    let mut v = JobView::new(job);
    v.history = Some(events.into_iter().map(JobEventView::from).collect());
    v.downloads = Some(
        downloads
            .into_iter()
            .map(|t| DownloadView {
                bytes_served: t.bytes_served,
                downloads_completed: t.downloads_completed,
                last_error: t.last_error,
                notify_status: t.notify_status,
                expires_at: rfc3339(t.expires_at),
            })
            .collect(),
    );
    Ok(Json(v).into_response())
}

/// Cancels a live job.
#[utoipa::path(
    post,
    path = "/api/v1/jobs/{id}/cancel",
    operation_id = "cancel_job",
    tag = "jobs",
    params(("id" = i64, Path, description = "The job id")),
    responses(
        (status = 200, description = "The job, cancelled", body = JobView),
        (status = 401, description = "No valid token", body = crate::error::ErrorBody),
        (status = 404, description = "No such job", body = crate::error::ErrorBody),
        (status = 409, description = "The job is over already", body = crate::error::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    let job = crate::scomo::cancel_job(&state, JobId(id)).await?;
    Ok(Json(JobView::new(job)).into_response())
}

/// An inventory entry as the API shows it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InventoryEntryView {
    /// The `<x>` node name.
    pub entry: String,
    /// PkgID (delivered) or component ID (deployed).
    pub id: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Version (deployed).
    pub version: Option<String>,
    /// `active`/`inactive` (deployed), `delivered`/`installed` (delivered),
    /// or the raw number.
    pub state: Option<String>,
    /// The Status node's value.
    pub status: Option<u16>,
    /// PkgIDRef (deployed).
    pub pkg_id_ref: Option<String>,
    /// EnvType (delivered).
    pub env_type: Option<String>,
}

/// A device's inventory as the API shows it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InventoryView {
    /// The device.
    pub device_id: String,
    /// When it was read (RFC 3339; `null`: never).
    #[schema(format = DateTime)]
    pub read_at: Option<String>,
    /// `struct-data` or `recursive`.
    pub method: Option<String>,
    /// Packages on the device.
    pub delivered: Vec<InventoryEntryView>,
    /// Installed components.
    pub deployed: Vec<InventoryEntryView>,
}

fn entry_view(e: InventoryEntry, deployed: bool) -> InventoryEntryView {
    let state = e.state.map(|s| match (deployed, s) {
        (true, 20) => "active".to_owned(),
        (true, 10) => "inactive".to_owned(),
        (false, 10) => "delivered".to_owned(),
        (false, 20) => "installed".to_owned(),
        (_, n) => n.to_string(),
    });
    InventoryEntryView {
        entry: e.entry,
        id: e.item_id,
        name: e.name,
        version: e.version,
        state,
        status: e.status,
        pkg_id_ref: e.pkg_id_ref,
        env_type: e.env_type,
    }
}

/// A device's inventory as last read.
#[utoipa::path(
    get,
    path = "/api/v1/devices/{id}/inventory",
    operation_id = "device_inventory",
    tag = "inventory",
    params(("id" = String, Path, description = "The DevId")),
    responses(
        (status = 200, description = "The inventory (empty if never read)", body = InventoryView),
        (status = 401, description = "No valid token", body = crate::error::ErrorBody),
        (status = 404, description = "No such device", body = crate::error::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn inventory(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    super::devices::find(&state, &id).await?;
    let inv = state.store().inventory(&id).await?;
    let mut v = InventoryView {
        device_id: id,
        read_at: None,
        method: None,
        delivered: Vec::new(),
        deployed: Vec::new(),
    };
    if let Some(inv) = inv {
        v.read_at = Some(rfc3339(inv.read_at));
        v.method = Some(inv.method);
        for e in inv.entries {
            match e.kind {
                Some(crate::store::InventoryKind::Deployed) => v.deployed.push(entry_view(e, true)),
                _ => v.delivered.push(entry_view(e, false)),
            }
        }
    }
    Ok(Json(v).into_response())
}

/// Asks for the inventory to be read in the device's next session (and
/// sends package 0).
#[utoipa::path(
    post,
    path = "/api/v1/devices/{id}/inventory/refresh",
    operation_id = "refresh_device_inventory",
    tag = "inventory",
    params(("id" = String, Path, description = "The DevId")),
    responses(
        (status = 202, description = "The read is queued (and package 0 sent if the device has a notification address)"),
        (status = 401, description = "No valid token", body = crate::error::ErrorBody),
        (status = 404, description = "No such device", body = crate::error::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn refresh_inventory(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let device = super::devices::find(&state, &id).await?;
    crate::scomo::request_inventory(&state, &device.id).await?;
    if device.notify_addr.is_some() {
        let now = Timestamp::now();
        state.store().enqueue_notification(&id, now, now).await?;
        state.wake_notifier();
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

/// A catalog rule as the API shows it and takes it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleView {
    /// Its id (ignored when creating).
    #[serde(default)]
    pub id: i64,
    /// A name for operators.
    pub name: String,
    /// Higher first.
    #[serde(default)]
    pub priority: i64,
    /// `DevInfo/Man` to match.
    #[serde(default)]
    pub man: Option<String>,
    /// `DevInfo/Mod` to match.
    #[serde(default)]
    pub model: Option<String>,
    /// `DevDetail/DevTyp` to match.
    #[serde(default)]
    pub dev_typ: Option<String>,
    /// The package's EnvType to match.
    #[serde(default)]
    pub env_type: Option<String>,
    /// The package to give.
    pub package: String,
    /// The operation (default DownloadInstall).
    #[serde(default)]
    pub op: Option<String>,
    /// The delivery (default http).
    #[serde(default)]
    pub delivery: Option<String>,
    /// Whether it applies (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// When it was made (RFC 3339; ignored when creating).
    #[serde(default)]
    #[schema(format = DateTime)]
    pub created_at: Option<String>,
}

impl From<CatalogRule> for RuleView {
    fn from(r: CatalogRule) -> RuleView {
        RuleView {
            id: r.id.0,
            name: r.rule.name,
            priority: r.rule.priority,
            man: r.rule.man,
            model: r.rule.model,
            dev_typ: r.rule.dev_typ,
            env_type: r.rule.env_type,
            package: r.rule.pkg_id,
            op: Some(r.rule.op.as_str().to_owned()),
            delivery: Some(r.rule.delivery.as_str().to_owned()),
            enabled: Some(r.rule.enabled),
            created_at: Some(rfc3339(r.created_at)),
        }
    }
}

/// Creates a catalog rule.
#[utoipa::path(
    post,
    path = "/api/v1/catalog/rules",
    operation_id = "create_catalog_rule",
    tag = "catalog",
    request_body = RuleView,
    responses(
        (status = 201, description = "The rule", body = RuleView),
        (status = 400, description = "A bad body or field", body = crate::error::ErrorBody),
        (status = 401, description = "No valid token", body = crate::error::ErrorBody),
        (status = 404, description = "No such package", body = crate::error::ErrorBody),
        (status = 413, description = "The body is too big", body = crate::error::ErrorBody),
        (status = 415, description = "The body is not JSON", body = crate::error::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn create_rule(
    State(state): State<AppState>,
    body: Result<Json<RuleView>, JsonRejection>,
) -> Result<Response, AppError> {
    let b = json_body(body)?;
    let op = parse_op(b.op.as_deref().unwrap_or("DownloadInstall"))?;
    if !crate::scomo::plan::delivers(op) {
        return Err(AppError::BadRequest(format!(
            "a catalog rule gives a package: op must be Download, DownloadInstall, \
             DownloadInstallInactive or Update, not {op}"
        )));
    }
    let delivery = parse_delivery(b.delivery.as_deref().unwrap_or("http"))?;
    if !crate::scomo::plan::delivery_fits(op, delivery) {
        return Err(AppError::BadRequest(format!(
            "delivery {delivery} does not fit {op}"
        )));
    }
    if crate::scomo::load_package(&state, &b.package)
        .await?
        .is_none()
    {
        return Err(AppError::NotFound(format!("no package {:?}", b.package)));
    }
    let rule = NewCatalogRule {
        name: b.name,
        priority: b.priority,
        man: b.man,
        model: b.model,
        dev_typ: b.dev_typ,
        env_type: b.env_type,
        pkg_id: b.package,
        op,
        delivery,
        enabled: b.enabled.unwrap_or(true),
    };
    let r = state.store().create_rule(&rule, Timestamp::now()).await?;
    Ok((StatusCode::CREATED, Json(RuleView::from(r))).into_response())
}

/// Lists the catalog rules.
#[utoipa::path(
    get,
    path = "/api/v1/catalog/rules",
    operation_id = "list_catalog_rules",
    tag = "catalog",
    responses(
        (status = 200, description = "The rules, highest priority first", body = Vec<RuleView>),
        (status = 401, description = "No valid token", body = crate::error::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn rules(State(state): State<AppState>) -> Result<Response, AppError> {
    let v: Vec<RuleView> = state
        .store()
        .rules()
        .await?
        .into_iter()
        .map(RuleView::from)
        .collect();
    Ok(Json(v).into_response())
}

/// Deletes a catalog rule.
#[utoipa::path(
    delete,
    path = "/api/v1/catalog/rules/{id}",
    operation_id = "delete_catalog_rule",
    tag = "catalog",
    params(("id" = i64, Path, description = "The rule id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid token", body = crate::error::ErrorBody),
        (status = 404, description = "No such rule", body = crate::error::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn delete_rule(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    if state.store().delete_rule(RuleId(id)).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(AppError::NotFound(format!("no catalog rule {id}")))
    }
}

/// `GET /api/v1/events` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventParams {
    /// Only this device's events.
    device: Option<String>,
    /// Only these kinds (comma-separated: job, alert, session).
    kinds: Option<String>,
}

/// Server-Sent Events: `event: job|alert|session`, `data:` the event JSON.
///
/// A live view of this node, not a log: a subscriber that falls behind gets
/// `event: lagged` with `data:` the number of events it missed (the store
/// keeps the truth). A comment line keeps the stream alive every 15 s.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    operation_id = "events",
    tag = "events",
    params(EventParams),
    responses(
        (
            status = 200,
            description = "A `text/event-stream` of events. `event: job` (a job \
                           changed state), `event: alert` (a client alert \
                           arrived) and `event: session` (a DM session ended) \
                           carry an `ApiEvent` as JSON in `data:`; `event: lagged` \
                           carries the number of events missed (an integer).",
            content_type = "text/event-stream",
            body = crate::events::ApiEvent,
            example = json!(
                "event: job\ndata: {\"kind\":\"job\",\"id\":42,\"device_id\":\"dev-1\",\
                 \"state\":\"succeeded\",\"detail\":\"installed\",\
                 \"at\":\"2026-05-01T12:00:00.000Z\"}\n\nevent: lagged\ndata: 3\n\n"
            ),
        ),
        (status = 400, description = "A bad query parameter", body = crate::error::ErrorBody),
        (status = 401, description = "No valid token", body = crate::error::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn events(
    State(state): State<AppState>,
    params: Result<Query<EventParams>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, AppError> {
    let p = query(params)?;
    let kinds: Option<Vec<String>> = p
        .kinds
        .map(|k| k.split(',').map(|s| s.trim().to_owned()).collect());
    let rx = state.subscribe();
    let stream = futures_util::stream::unfold(rx, move |mut rx| {
        let device = p.device.clone();
        let kinds = kinds.clone();
        async move {
            loop {
                match rx.recv().await {
                    Ok(ev) => {
                        if device.as_ref().is_some_and(|d| *d != ev.device_id) {
                            continue;
                        }
                        if kinds
                            .as_ref()
                            .is_some_and(|k| !k.iter().any(|k| k == ev.kind))
                        {
                            continue;
                        }
                        let data = serde_json::to_string(&ev).unwrap_or_default();
                        let e = Event::default().event(ev.kind).data(data);
                        return Some((Ok::<_, Infallible>(e), rx));
                    }
                    Err(RecvError::Lagged(n)) => {
                        let e = Event::default().event("lagged").data(n.to_string());
                        return Some((Ok(e), rx));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_parses_what_it_prints() {
        for ms in [0, 951_782_400_123, 1_700_000_000_000, 1_790_000_000_500] {
            let t = Timestamp::from_unix_millis(ms);
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        }
        assert_eq!(
            parse_rfc3339("2023-11-14T23:13:20+01:00"),
            Some(Timestamp::from_unix_secs(1_700_000_000))
        );
        assert_eq!(parse_rfc3339("2023-13-14T23:13:20Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
