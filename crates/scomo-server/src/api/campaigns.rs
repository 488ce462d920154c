//! `/api/v1/campaigns`: one SCOMO operation rolled out over many devices,
//! staged, paced and guarded by thresholds (see [`crate::campaign`]).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::{json_body, query, rfc3339};
use crate::campaign::def::CampaignDef;
use crate::campaign::view::{ProgressView, ReasonView};
use crate::error::AppError;
use crate::state::AppState;
use crate::store::{CampaignId, CampaignMember, CampaignRecord, NewCampaign, Timestamp, MAX_PAGE};

/// A campaign as the API shows it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CampaignView {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// `scheduled`, `running`, `paused`, `aborted`, `cancelled` or `completed`.
    pub state: String,
    /// Why it is paused or aborted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<ReasonView>,
    /// The same, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_text: Option<String>,
    /// The highest opened stage (0-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_stage: Option<u32>,
    /// Per-stage and total counts (empty before the first round).
    pub progress: ProgressView,
    /// An operator command the campaign has not applied yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_command: Option<String>,
    /// The definition.
    pub definition: CampaignDef,
    /// Created (RFC 3339).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Last changed (RFC 3339).
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// Reached a final state (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
}

impl CampaignView {
    fn new(r: CampaignRecord) -> Result<CampaignView, AppError> {
        let definition: CampaignDef =
            serde_json::from_str(&r.definition).map_err(|e| AppError::Internal(Box::new(e)))?;
        let reason: Option<ReasonView> = r
            .reason
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok());
        let progress = r
            .status
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        Ok(CampaignView {
            id: r.id.0,
            name: r.name,
            state: r.state,
            reason_text: reason.as_ref().map(ReasonView::describe),
            reason,
            current_stage: r.current_stage,
            progress,
            pending_command: r.command,
            definition,
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
            finished_at: r.finished_at.map(rfc3339),
        })
    }
}

/// Creates a campaign.
#[utoipa::path(
    post,
    path = "/api/v1/campaigns",
    operation_id = "create_campaign",
    tag = "campaigns",
    request_body = CampaignDef,
    responses(
        (status = 201, description = "The campaign (scheduled)", body = CampaignView),
        (status = 400, description = "A bad body or field", body = crate::error::ErrorBody),
        (status = 401, description = "No valid token", body = crate::error::ErrorBody),
        (status = 404, description = "No such package", body = crate::error::ErrorBody),
        (status = 413, description = "The body is too big", body = crate::error::ErrorBody),
        (status = 415, description = "The body is not JSON", body = crate::error::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    body: Result<Json<CampaignDef>, JsonRejection>,
) -> Result<Response, AppError> {
    let def = json_body(body)?;
    let now = Timestamp::now();
    let compiled = def.compile(now).map_err(AppError::BadRequest)?;
    if let Some(p) = &compiled.job.pkg_id {
        if crate::scomo::load_package(&state, p).await?.is_none() {
            return Err(AppError::NotFound(format!("no package {p:?}")));
        }
    }
    let definition = serde_json::to_string(&def).map_err(|e| AppError::Internal(Box::new(e)))?;
    let rec = state
        .store()
        .create_campaign(
            &NewCampaign {
                name: def.name.clone(),
                definition,
                state: "scheduled".into(),
            },
            now,
        )
        .await?;
    wake(&state);
    Ok((StatusCode::CREATED, Json(CampaignView::new(rec)?)).into_response())
}

/// Wakes this node's campaign driver.
fn wake(state: &AppState) {
    state.wake_campaigns();
}

/// `GET /api/v1/campaigns` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Campaigns with a smaller id than this.
    before: Option<i64>,
    /// Page size (default 50; clamped to 1..=1000).
    limit: Option<u32>,
}

/// Lists campaigns, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/campaigns",
    operation_id = "list_campaigns",
    tag = "campaigns",
    params(ListParams),
    responses(
        (status = 200, description = "The campaigns, newest first", body = Vec<CampaignView>),
        (status = 400, description = "A bad query parameter", body = crate::error::ErrorBody),
        (status = 401, description = "No valid token", body = crate::error::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, AppError> {
    let p = query(params)?;
    let rows = state
        .store()
        .list_campaigns(
            p.before.map(CampaignId),
            p.limit.unwrap_or(50).clamp(1, MAX_PAGE),
        )
        .await?;
    let v = rows
        .into_iter()
        .map(CampaignView::new)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(v).into_response())
}

async fn find(state: &AppState, id: i64) -> Result<CampaignRecord, AppError> {
    state
        .store()
        .campaign(CampaignId(id))
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no campaign {id}")))
}

/// One campaign with its progress.
#[utoipa::path(
    get,
    path = "/api/v1/campaigns/{id}",
    operation_id = "show_campaign",
    tag = "campaigns",
    params(("id" = i64, Path, description = "The campaign id")),
    responses(
        (status = 200, description = "The campaign", body = CampaignView),
        (status = 401, description = "No valid token", body = crate::error::ErrorBody),
        (status = 404, description = "No such campaign", body = crate::error::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    Ok(Json(CampaignView::new(find(&state, id).await?)?).into_response())
}

async fn command(state: &AppState, id: i64, cmd: &str) -> Result<Response, AppError> {
    let rec = find(state, id).await?;
    if rec.finished_at.is_some() {
        return Err(AppError::Conflict(format!(
            "campaign {id} is {} already",
            rec.state
        )));
    }
    if !state
        .store()
        .request_campaign_command(rec.id, cmd, Timestamp::now())
        .await?
    {
        return Err(AppError::Conflict(format!("campaign {id} is over already")));
    }
    wake(state);
    let rec = find(state, id).await?;
    Ok((StatusCode::ACCEPTED, Json(CampaignView::new(rec)?)).into_response())
}

/// Pauses a campaign: no more job starts (jobs in flight go on).
#[utoipa::path(
    post,
    path = "/api/v1/campaigns/{id}/pause",
    operation_id = "pause_campaign",
    tag = "campaigns",
    params(("id" = i64, Path, description = "The campaign id")),
    responses(
        (status = 202, description = "Asked; the campaign applies it in its next round", body = CampaignView),
        (status = 401, description = "No valid token", body = crate::error::ErrorBody),
        (status = 404, description = "No such campaign", body = crate::error::ErrorBody),
        (status = 409, description = "The campaign is over", body = crate::error::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn pause(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    command(&state, id, "pause").await
}

/// Resumes a paused campaign; error thresholds count afresh.
#[utoipa::path(
    post,
    path = "/api/v1/campaigns/{id}/resume",
    operation_id = "resume_campaign",
    tag = "campaigns",
    params(("id" = i64, Path, description = "The campaign id")),
    responses(
        (status = 202, description = "Asked; the campaign applies it in its next round", body = CampaignView),
        (status = 401, description = "No valid token", body = crate::error::ErrorBody),
        (status = 404, description = "No such campaign", body = crate::error::ErrorBody),
        (status = 409, description = "The campaign is over", body = crate::error::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn resume(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    command(&state, id, "resume").await
}

/// Cancels a campaign and its jobs in flight.
#[utoipa::path(
    post,
    path = "/api/v1/campaigns/{id}/cancel",
    operation_id = "cancel_campaign",
    tag = "campaigns",
    params(("id" = i64, Path, description = "The campaign id")),
    responses(
        (status = 202, description = "Asked; the campaign applies it in its next round", body = CampaignView),
        (status = 401, description = "No valid token", body = crate::error::ErrorBody),
        (status = 404, description = "No such campaign", body = crate::error::ErrorBody),
        (status = 409, description = "The campaign is over", body = crate::error::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    command(&state, id, "cancel").await
}

/// A device a campaign has taken.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemberView {
    /// Arrival order (page with `after`).
    pub seq: i64,
    /// The device.
    pub device_id: String,
    /// The stage its job started in (0-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<u32>,
    /// Its job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<i64>,
    /// `succeeded`, `failed`, `timed_out`, `mismatch`, `cancelled` or
    /// `not_started`; absent while pending or running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The SCOMO result code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_code: Option<u16>,
    /// The failure class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
}

impl From<CampaignMember> for MemberView {
    fn from(m: CampaignMember) -> MemberView {
        MemberView {
            seq: m.seq,
            device_id: m.device_id,
            stage: m.stage,
            job_id: m.job_id.map(|j| j.0),
            outcome: m.outcome,
            result_code: m.result_code,
            class: m.class,
        }
    }
}

/// `GET /api/v1/campaigns/{id}/devices` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct MemberParams {
    /// Devices after this `seq` (the last of the previous page).
    after: Option<i64>,
    /// Page size (default 100; clamped to 1..=1000).
    limit: Option<u32>,
}

/// The devices a campaign has taken, in arrival order, with their outcomes.
#[utoipa::path(
    get,
    path = "/api/v1/campaigns/{id}/devices",
    operation_id = "campaign_devices",
    tag = "campaigns",
    params(("id" = i64, Path, description = "The campaign id"), MemberParams),
    responses(
        (status = 200, description = "The devices", body = Vec<MemberView>),
        (status = 400, description = "A bad query parameter", body = crate::error::ErrorBody),
        (status = 401, description = "No valid token", body = crate::error::ErrorBody),
        (status = 404, description = "No such campaign", body = crate::error::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn devices(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    params: Result<Query<MemberParams>, QueryRejection>,
) -> Result<Response, AppError> {
    let p = query(params)?;
    let rec = find(&state, id).await?;
    let rows = state
        .store()
        .members(rec.id, p.after, p.limit.unwrap_or(100).clamp(1, MAX_PAGE))
        .await?;
    let v: Vec<MemberView> = rows.into_iter().map(Into::into).collect();
    Ok(Json(v).into_response())
}
