//! `/api/v1/devices`: the device registry, and the views the API returns.

use std::collections::BTreeMap;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Deserializer, Serialize};

use super::{json_body, query, rfc3339};
use crate::error::{AppError, ErrorBody};
use crate::state::AppState;
use crate::store::{
    AlertId, AuthType, BulkOutcome, ClientCredentials, Device, DeviceFilter, DevicePageRequest,
    DeviceUpdate, NewDevice, ServerCredentials, SessionKey, SessionRecord, StoredAlert, Timestamp,
    MAX_PAGE,
};

/// A device as the API shows it (never a secret).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeviceView {
    /// The DevId.
    pub id: String,
    /// `provisioned` or `auto`.
    pub origin: String,
    /// Client auth type (`basic`, `md5`, `hmac`), if the device has credentials.
    pub auth: Option<String>,
    /// Client user name.
    pub username: Option<String>,
    /// Whether the device has a server password of its own (else the
    /// server-wide default applies).
    pub own_server_password: bool,
    /// Where package 0 goes.
    pub notify_addr: Option<String>,
    /// `./DevInfo/Man`.
    pub man: Option<String>,
    /// `./DevInfo/Mod`.
    pub model: Option<String>,
    /// `./DevDetail/DevTyp`.
    pub dev_typ: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// When it was provisioned or registered (RFC 3339).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Its first session (RFC 3339).
    #[schema(format = DateTime)]
    pub first_seen_at: Option<String>,
    /// Its latest session (RFC 3339).
    #[schema(format = DateTime)]
    pub last_seen_at: Option<String>,
    /// DevInfo/DevDetail values the device reported, by node URI (only when
    /// one device is shown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<BTreeMap<String, String>>,
}

impl DeviceView {
    fn new(d: Device, nodes: Option<BTreeMap<String, String>>) -> DeviceView {
        DeviceView {
            origin: d.origin.as_str().to_owned(),
            auth: d
                .client_credentials
                .as_ref()
                .map(|c| c.auth_type.as_str().to_owned()),
            username: d.client_credentials.map(|c| c.username),
            own_server_password: d.server_credentials.is_some(),
            notify_addr: d.notify_addr,
            man: d.man,
            model: d.model,
            dev_typ: d.dev_typ,
            labels: d.labels,
            created_at: rfc3339(d.created_at),
            first_seen_at: d.first_seen_at.map(rfc3339),
            last_seen_at: d.last_seen_at.map(rfc3339),
            nodes,
            id: d.id,
        }
    }
}

/// `GET /api/v1/devices` parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Devices after this DevId (the previous page's `next_after`).
    after: Option<String>,
    /// Page size (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Only this `./DevInfo/Man`.
    man: Option<String>,
    /// Only this `./DevInfo/Mod`.
    model: Option<String>,
    /// Only this `./DevDetail/DevTyp`.
    dev_typ: Option<String>,
    /// Only DevIds starting with this.
    prefix: Option<String>,
}

/// One page of devices, in DevId order.
#[derive(Serialize, utoipa::ToSchema)]
struct DevicePage {
    /// The devices.
    devices: Vec<DeviceView>,
    /// The `after` of the next page; `null` on the last one.
    next_after: Option<String>,
}

/// Lists devices, filtered and paged by DevId.
#[utoipa::path(
    get,
    path = "/api/v1/devices",
    operation_id = "list_devices",
    tag = "devices",
    params(ListParams),
    responses(
        (status = 200, description = "A page of devices", body = DevicePage),
        (status = 400, description = "A bad query parameter", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, AppError> {
    let p = query(params)?;
    let limit = p.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(AppError::BadRequest(format!(
            "limit must be 1..={MAX_PAGE}, is {limit}"
        )));
    }
    let filter = DeviceFilter {
        man: p.man,
        model: p.model,
        dev_typ: p.dev_typ,
        labels: Vec::new(),
        id_prefix: p.prefix,
    };
    let page = state
        .store()
        .list_devices(
            &filter,
            &DevicePageRequest {
                after: p.after,
                limit,
            },
        )
        .await?;
    Ok(Json(DevicePage {
        devices: page
            .devices
            .into_iter()
            .map(|d| DeviceView::new(d, None))
            .collect(),
        next_after: page.next_after,
    })
    .into_response())
}

/// `POST /api/v1/devices`: a device with its client credentials.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProvisionRequest {
    /// The DevId (1 to 255 bytes).
    id: String,
    /// The client user name (no `:` with `basic`).
    username: String,
    /// The client password (only its hash is stored).
    password: String,
    /// Client auth type: `md5` (default), `basic` or `hmac`.
    #[serde(default)]
    auth: Option<String>,
    /// The server's password towards this device (default: the server-wide
    /// one).
    #[serde(default)]
    server_password: Option<String>,
    /// Where package 0 goes (`http://` or `https://` URL).
    #[serde(default)]
    notify_addr: Option<String>,
    /// Labels.
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Provisions a device with its credentials.
#[utoipa::path(
    post,
    path = "/api/v1/devices",
    operation_id = "provision_device",
    tag = "devices",
    request_body = ProvisionRequest,
    responses(
        (status = 201, description = "The device", body = DeviceView),
        (status = 400, description = "A bad body or field", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 409, description = "The DevId exists", body = ErrorBody),
        (status = 413, description = "The body is too big", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn provision(
    State(state): State<AppState>,
    body: Result<Json<ProvisionRequest>, JsonRejection>,
) -> Result<Response, AppError> {
    let new = new_device(&state, json_body(body)?)?;
    let device = state
        .store()
        .provision_device(&new, Timestamp::now())
        .await?;
    tracing::info!(device = %device.id, "device provisioned");
    Ok((StatusCode::CREATED, Json(DeviceView::new(device, None))).into_response())
}

/// Most devices one `POST /api/v1/devices/bulk` takes.
pub(crate) const MAX_BULK: usize = 1000;

/// `POST /api/v1/devices/bulk`: up to [`MAX_BULK`] devices.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BulkRequest {
    /// The devices, each as `POST /api/v1/devices` takes it.
    devices: Vec<ProvisionRequest>,
}

/// What happened to each device of a bulk provisioning, in request order.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct BulkResponse {
    /// Devices created.
    created: u64,
    /// Devices whose DevId was taken (left unchanged).
    exists: u64,
    /// Devices refused.
    invalid: u64,
    /// One result per device.
    results: Vec<BulkItem>,
}

/// The result for one device.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct BulkItem {
    /// The DevId.
    id: String,
    /// 201 created, 409 the DevId exists, 400 refused.
    status: u16,
    /// Why it was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

/// Provisions many devices in one store transaction. Each device is
/// checked as `POST /api/v1/devices` checks it; a refused or existing one
/// does not stop the others (its item says why).
#[utoipa::path(
    post,
    path = "/api/v1/devices/bulk",
    operation_id = "provision_devices",
    tag = "devices",
    request_body = BulkRequest,
    responses(
        (status = 207, description = "One result per device", body = BulkResponse),
        (status = 400, description = "A bad body, or more than 1000 devices", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 413, description = "The body is too big", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn provision_bulk(
    State(state): State<AppState>,
    body: Result<Json<BulkRequest>, JsonRejection>,
) -> Result<Response, AppError> {
    let r = json_body(body)?;
    if r.devices.len() > MAX_BULK {
        return Err(AppError::BadRequest(format!(
            "at most {MAX_BULK} devices per request, got {}",
            r.devices.len()
        )));
    }
    let mut ids = Vec::with_capacity(r.devices.len());
    let mut refused: Vec<Option<String>> = Vec::with_capacity(r.devices.len());
    let mut new = Vec::with_capacity(r.devices.len());
    for d in r.devices {
        ids.push(d.id.clone());
        match new_device(&state, d) {
            Ok(n) => {
                refused.push(None);
                new.push(n);
            }
            Err(e) => refused.push(Some(e.to_string())),
        }
    }
    let mut stored = state
        .store()
        .provision_devices(&new, Timestamp::now())
        .await?
        .into_iter();
    let mut out = BulkResponse {
        created: 0,
        exists: 0,
        invalid: 0,
        results: Vec::with_capacity(ids.len()),
    };
    for (id, refused) in ids.into_iter().zip(refused) {
        let outcome = match refused {
            Some(m) => BulkOutcome::Invalid(m),
            None => stored
                .next()
                .unwrap_or_else(|| BulkOutcome::Invalid("not stored".into())),
        };
        let (status, message) = match outcome {
            BulkOutcome::Created => {
                out.created += 1;
                (201, None)
            }
            BulkOutcome::Exists => {
                out.exists += 1;
                (409, Some("the DevId exists".to_owned()))
            }
            BulkOutcome::Invalid(m) => {
                out.invalid += 1;
                (400, Some(m))
            }
        };
        out.results.push(BulkItem {
            id,
            status,
            message,
        });
    }
    tracing::info!(
        created = out.created,
        exists = out.exists,
        invalid = out.invalid,
        "devices provisioned in bulk"
    );
    Ok((StatusCode::MULTI_STATUS, Json(out)).into_response())
}

/// The checks of `POST /api/v1/devices`, giving the device to store.
fn new_device(state: &AppState, r: ProvisionRequest) -> Result<NewDevice, AppError> {
    check_text("id", &r.id, 255)?;
    check_text("username", &r.username, 255)?;
    if r.password.is_empty() {
        return Err(AppError::BadRequest("password must not be empty".into()));
    }
    let auth_type = parse_auth(r.auth.as_deref())?;
    check_basic_username(auth_type, &r.username)?;
    if let Some(addr) = &r.notify_addr {
        check_notify_addr(addr)?;
    }
    Ok(NewDevice {
        client_credentials: Some(ClientCredentials::from_password(
            auth_type,
            &r.username,
            &r.password,
        )),
        server_credentials: server_credentials(state, auth_type, r.server_password)?,
        notify_addr: r.notify_addr,
        labels: r.labels,
        id: r.id,
    })
}

/// One device with the DevInfo/DevDetail values it reported.
#[utoipa::path(
    get,
    path = "/api/v1/devices/{id}",
    operation_id = "show_device",
    tag = "devices",
    params(("id" = String, Path, description = "The DevId")),
    responses(
        (status = 200, description = "The device, with `nodes`", body = DeviceView),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such device", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let device = find(&state, &id).await?;
    let nodes = state.store().device_nodes(&id).await?;
    Ok(Json(DeviceView::new(device, Some(nodes))).into_response())
}

/// `PATCH /api/v1/devices/{id}`: absent fields stay, `null` clears.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateRequest {
    /// New client user name (with `password`).
    #[serde(default)]
    username: Option<String>,
    /// New client password (with `username`).
    #[serde(default)]
    password: Option<String>,
    /// New client auth type (needs `username` and `password`).
    #[serde(default)]
    auth: Option<String>,
    /// The server's password towards this device; `null` goes back to the
    /// server-wide one.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    server_password: Option<Option<String>>,
    /// Where package 0 goes; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    notify_addr: Option<Option<String>>,
}

/// Tells `null` (`Some(None)`) from absent (`None`, via `default`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Changes credentials, the server password or the notification address.
#[utoipa::path(
    patch,
    path = "/api/v1/devices/{id}",
    operation_id = "update_device",
    tag = "devices",
    params(("id" = String, Path, description = "The DevId")),
    request_body = UpdateRequest,
    responses(
        (status = 200, description = "The device", body = DeviceView),
        (status = 400, description = "A bad body or field", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such device", body = ErrorBody),
        (status = 413, description = "The body is too big", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<UpdateRequest>, JsonRejection>,
) -> Result<Response, AppError> {
    let r = json_body(body)?;
    let device = find(&state, &id).await?;
    let current_type = device
        .client_credentials
        .as_ref()
        .map_or(AuthType::Md5, |c| c.auth_type);
    let auth_type = match &r.auth {
        Some(a) => parse_auth(Some(a))?,
        None => current_type,
    };
    let mut update = DeviceUpdate::default();
    match (&r.username, &r.password) {
        (Some(u), Some(p)) => {
            check_text("username", u, 255)?;
            check_basic_username(auth_type, u)?;
            if p.is_empty() {
                return Err(AppError::BadRequest("password must not be empty".into()));
            }
            update.client_credentials =
                Some(Some(ClientCredentials::from_password(auth_type, u, p)));
        }
        (None, None) if r.auth.is_some() => {
            return Err(AppError::BadRequest(
                "changing auth needs username and password (only their hash is stored)".into(),
            ))
        }
        (None, None) => {}
        _ => {
            return Err(AppError::BadRequest(
                "username and password go together".into(),
            ))
        }
    }
    if let Some(sp) = r.server_password {
        update.server_credentials = Some(server_credentials(&state, auth_type, sp)?);
    }
    if let Some(addr) = r.notify_addr {
        if let Some(a) = &addr {
            check_notify_addr(a)?;
        }
        update.notify_addr = Some(addr);
    }
    state
        .store()
        .update_device(&id, &update, Timestamp::now())
        .await?;
    let device = find(&state, &id).await?;
    Ok(Json(DeviceView::new(device, None)).into_response())
}

/// Deletes a device with its queue, alerts and audit log.
#[utoipa::path(
    delete,
    path = "/api/v1/devices/{id}",
    operation_id = "delete_device",
    tag = "devices",
    params(("id" = String, Path, description = "The DevId")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such device", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    if state.store().delete_device(&id).await? {
        tracing::info!(device = %id, "device deleted");
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(no_device(&id))
    }
}

/// A package 0 scheduled.
#[derive(Serialize, utoipa::ToSchema)]
struct NotifyView {
    /// The notification's id.
    notification_id: i64,
    /// Where it goes.
    notify_addr: String,
}

/// `POST /api/v1/devices/{id}/notify`: asks for a package 0 due now; this
/// node's notifier sends it at once (and retries until the device calls).
#[utoipa::path(
    post,
    path = "/api/v1/devices/{id}/notify",
    operation_id = "notify_device",
    tag = "devices",
    params(("id" = String, Path, description = "The DevId")),
    responses(
        (status = 202, description = "Package 0 is due now", body = NotifyView),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such device", body = ErrorBody),
        (status = 409, description = "The device has no notification address", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn notify(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let device = find(&state, &id).await?;
    let Some(addr) = device.notify_addr else {
        return Err(AppError::Conflict(format!(
            "device {id:?} has no notification address; set notify_addr first"
        )));
    };
    let now = Timestamp::now();
    let n = state.store().enqueue_notification(&id, now, now).await?;
    state.wake_notifier();
    Ok((
        StatusCode::ACCEPTED,
        Json(NotifyView {
            notification_id: n.0,
            notify_addr: addr,
        }),
    )
        .into_response())
}

/// Paging of a device's sessions or alerts, newest first.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageParams {
    /// Entries older than this `key` / `id` (the last one of the previous page).
    before: Option<i64>,
    /// Page size (default 50, clamped to 1..=1000).
    limit: Option<u32>,
}

/// One DM session in the audit log.
#[derive(Serialize, utoipa::ToSchema)]
struct SessionView {
    /// Its key (for `before`).
    key: i64,
    /// The SyncML SessionID.
    session_id: String,
    /// The server node that ran it.
    node_id: String,
    /// The initiating alert code (1200 server-, 1201 client-initiated).
    initiation: u16,
    /// When it started (RFC 3339).
    #[schema(format = DateTime)]
    started_at: String,
    /// When it ended (RFC 3339).
    #[schema(format = DateTime)]
    ended_at: Option<String>,
    /// How it ended, once it has: `ok`, `auth_failed`, `aborted`, `error`
    /// or `lost`.
    outcome: Option<&'static str>,
    /// Messages received.
    messages_in: u32,
    /// Messages sent.
    messages_out: u32,
    /// More on the outcome.
    detail: Option<String>,
}

impl From<SessionRecord> for SessionView {
    fn from(s: SessionRecord) -> SessionView {
        SessionView {
            key: s.key.0,
            session_id: s.session_id,
            node_id: s.node_id,
            initiation: s.initiation.0,
            started_at: rfc3339(s.started_at),
            ended_at: s.ended_at.map(rfc3339),
            outcome: s.outcome.map(|o| o.as_str()),
            messages_in: s.messages_in,
            messages_out: s.messages_out,
            detail: s.detail,
        }
    }
}

/// The device's session audit log, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/devices/{id}/sessions",
    operation_id = "list_sessions",
    tag = "devices",
    params(("id" = String, Path, description = "The DevId"), PageParams),
    responses(
        (status = 200, description = "Sessions, newest first", body = [SessionView]),
        (status = 400, description = "A bad query parameter", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such device", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn sessions(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Response, AppError> {
    let p = query(params)?;
    find(&state, &id).await?;
    let rows = state
        .store()
        .sessions(
            &id,
            p.before.map(SessionKey),
            p.limit.unwrap_or(50).clamp(1, MAX_PAGE),
        )
        .await?;
    let v: Vec<SessionView> = rows.into_iter().map(SessionView::from).collect();
    Ok(Json(v).into_response())
}

/// A client alert the device sent.
#[derive(Serialize, utoipa::ToSchema)]
struct AlertView {
    /// Its id (for `before`).
    id: i64,
    /// The alert code (e.g. 1226 generic alert).
    code: u16,
    /// The Exec correlator it answers.
    correlator: Option<String>,
    /// `Item/Meta/Type`.
    #[serde(rename = "type")]
    alert_type: Option<String>,
    /// `Item/Meta/Format`.
    format: Option<String>,
    /// `Item/Source/LocURI`.
    source: Option<String>,
    /// `Item/Target/LocURI`.
    target: Option<String>,
    /// `Item/Data` as text.
    data: Option<String>,
    /// The batch whose Exec it answers.
    batch: Option<i64>,
    /// When it arrived (RFC 3339).
    #[schema(format = DateTime)]
    received_at: String,
    /// When it was processed (RFC 3339).
    #[schema(format = DateTime)]
    processed_at: Option<String>,
}

impl From<StoredAlert> for AlertView {
    fn from(a: StoredAlert) -> AlertView {
        AlertView {
            id: a.id.0,
            code: a.alert.code.0,
            correlator: a.alert.correlator,
            alert_type: a.alert.alert_type,
            format: a.alert.format,
            source: a.alert.source_uri,
            target: a.alert.target_uri,
            data: a
                .alert
                .data
                .as_ref()
                .map(|d| String::from_utf8_lossy(d.as_bytes()).into_owned()),
            batch: a.batch.map(|b| b.0),
            received_at: rfc3339(a.received_at),
            processed_at: a.processed_at.map(rfc3339),
        }
    }
}

/// Client alerts the device sent, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/devices/{id}/alerts",
    operation_id = "list_alerts",
    tag = "devices",
    params(("id" = String, Path, description = "The DevId"), PageParams),
    responses(
        (status = 200, description = "Alerts, newest first", body = [AlertView]),
        (status = 400, description = "A bad query parameter", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such device", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn alerts(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Response, AppError> {
    let p = query(params)?;
    find(&state, &id).await?;
    let rows = state
        .store()
        .alerts(
            &id,
            p.before.map(AlertId),
            p.limit.unwrap_or(50).clamp(1, MAX_PAGE),
        )
        .await?;
    let v: Vec<AlertView> = rows.into_iter().map(AlertView::from).collect();
    Ok(Json(v).into_response())
}

pub(crate) async fn find(state: &AppState, id: &str) -> Result<Device, AppError> {
    state.store().device(id).await?.ok_or_else(|| no_device(id))
}

fn no_device(id: &str) -> AppError {
    AppError::NotFound(format!("no device {id:?}"))
}

fn server_credentials(
    state: &AppState,
    auth_type: AuthType,
    password: Option<String>,
) -> Result<Option<ServerCredentials>, AppError> {
    match password {
        None => Ok(None),
        Some(p) if p.is_empty() => Err(AppError::BadRequest(
            "server_password must not be empty (omit it to use the server's default)".into(),
        )),
        Some(password) => Ok(Some(ServerCredentials {
            auth_type,
            server_id: state.config().server_id.clone(),
            password,
        })),
    }
}

fn parse_auth(s: Option<&str>) -> Result<AuthType, AppError> {
    match s.map(str::to_ascii_lowercase).as_deref() {
        None | Some("md5") => Ok(AuthType::Md5),
        Some("basic") => Ok(AuthType::Basic),
        Some("hmac") => Ok(AuthType::Hmac),
        Some(other) => Err(AppError::BadRequest(format!(
            "auth {other:?} is not one of basic, md5, hmac"
        ))),
    }
}

fn check_text(field: &str, v: &str, max: usize) -> Result<(), AppError> {
    if v.trim().is_empty() || v.len() > max || v.chars().any(char::is_control) {
        return Err(AppError::BadRequest(format!(
            "{field} must be 1..={max} bytes of text without control characters"
        )));
    }
    Ok(())
}

/// `syncml:auth-basic` carries `B64(user ":" password)`: a colon in the user
/// name would make the credential ambiguous.
fn check_basic_username(t: AuthType, username: &str) -> Result<(), AppError> {
    if t == AuthType::Basic && username.contains(':') {
        return Err(AppError::BadRequest(
            "a basic-auth username must not contain a colon (basic credentials are user:password)"
                .into(),
        ));
    }
    Ok(())
}

/// `udp://HOST:PORT`, `http://…` or `https://…` — what the agent listens on.
pub(crate) fn check_notify_addr(addr: &str) -> Result<(), AppError> {
    let ok = if let Some(hp) = addr.strip_prefix("udp://") {
        hp.rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0))
    } else {
        (addr.starts_with("http://") || addr.starts_with("https://")) && addr.len() > 8
    };
    if ok && addr.len() <= 512 && !addr.chars().any(|c| c.is_control() || c == ' ') {
        Ok(())
    } else {
        Err(AppError::BadRequest(format!(
            "notify_addr {addr:?} is not udp://HOST:PORT, http://HOST:PORT[/PATH] or https://…"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_addresses() {
        assert!(check_notify_addr("udp://127.0.0.1:7000").is_ok());
        assert!(check_notify_addr("udp://[::1]:7000").is_ok());
        assert!(check_notify_addr("http://10.0.0.1:8000/p0").is_ok());
        assert!(check_notify_addr("udp://127.0.0.1").is_err());
        assert!(check_notify_addr("udp://h:0").is_err());
        assert!(check_notify_addr("sms:+123").is_err());
    }
}
