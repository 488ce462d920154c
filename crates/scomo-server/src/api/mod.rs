//! The REST API (`/api/v1`), behind `Authorization: Bearer <token>`.
//!
//! ```text
//!   GET    /api/v1/devices                       list (?after=&limit=&man=&model=&dev_typ=&prefix=)
//!   POST   /api/v1/devices                       provision, with credentials
//!   POST   /api/v1/devices/bulk                  provision up to 1000, one transaction (207)
//!   GET    /api/v1/devices/{id}                  one device with its DevInfo/DevDetail values
//!   PATCH  /api/v1/devices/{id}                  credentials, server password, notification address
//!   DELETE /api/v1/devices/{id}
//!   POST   /api/v1/devices/{id}/commands         enqueue a batch of DM commands (JSON)
//!   GET    /api/v1/devices/{id}/commands/{batch} the batch with its statuses and results
//!   POST   /api/v1/devices/{id}/notify           send package 0 now
//!   GET    /api/v1/devices/{id}/sessions         the session audit log
//!   GET    /api/v1/devices/{id}/alerts           received client alerts
//!   POST   /api/v1/packages                      upload a package (raw body, ?signature=B64)
//!   GET    /api/v1/packages                      list (?after=&limit=)
//!   GET    /api/v1/packages/{pkg_id}             one package
//!   DELETE /api/v1/packages/{pkg_id}             delete it and its file (409 while in use)
//!   POST   /api/v1/packages/{pkg_id}/download-url  a /dl URL and its descriptor URL
//!   POST   /api/v1/jobs                          create a SCOMO job (op, device, package, ...)
//!   GET    /api/v1/jobs                          list (?device=&state=&package=&live=&before=&limit=)
//!   GET    /api/v1/jobs/{id}                     one job with its history and downloads
//!   POST   /api/v1/jobs/{id}/cancel              cancel a live job
//!   GET    /api/v1/devices/{id}/inventory        delivered packages, deployed components
//!   POST   /api/v1/devices/{id}/inventory/refresh  read it in the next session (and notify)
//!   GET    /api/v1/catalog/rules                 catalog rules, highest priority first
//!   POST   /api/v1/catalog/rules                 create one
//!   DELETE /api/v1/catalog/rules/{id}
//!   GET    /api/v1/events                        Server-Sent Events (?device=&kinds=job,alert,session)
//! ```
//!
//! Errors are JSON `{code, message}` (see [`crate::error::AppError`]). Secrets
//! (passwords, their hashes, nonces) never appear in a response.
//!
//! Every endpoint is declared once, in the `endpoints!` list below, and
//! documented in [`openapi`] (see there for how to add one).

pub mod campaigns;
pub mod commands;
pub mod devices;
pub mod jobs;
pub mod openapi;
pub mod packages;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{on, MethodFilter};
use axum::Router;

use crate::error::AppError;
use crate::state::AppState;
use crate::store::Timestamp;

/// One endpoint the API serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The HTTP method, e.g. `GET`.
    pub method: &'static str,
    /// The path under `/api/v1`, axum/OpenAPI style: `/devices/{id}`.
    pub path: &'static str,
    /// Whether it needs `Authorization: Bearer <token>`.
    pub token: bool,
}

impl Endpoint {
    /// The full path, `/api/v1...`, as in the OpenAPI document.
    pub fn full_path(&self) -> String {
        format!("/api/v1{}", self.path)
    }
}

/// Declares the endpoints once: the routers registering them and
/// [`ENDPOINTS`] listing them (which the OpenAPI test holds against the
/// document, so an undocumented endpoint fails it).
macro_rules! endpoints {
    (
        public { $($pm:ident $pp:literal => $ph:path;)* }
        token { $($tm:ident $tp:literal => $th:path;)* }
    ) => {
        /// Every endpoint under `/api/v1`, as `routes()` registers them.
        pub const ENDPOINTS: &[Endpoint] = &[
            $(Endpoint { method: stringify!($pm), path: $pp, token: false },)*
            $(Endpoint { method: stringify!($tm), path: $tp, token: true },)*
        ];

        /// The endpoints that need no token.
        fn public_routes() -> Router<AppState> {
            Router::new()$(.route($pp, on(MethodFilter::$pm, $ph)))*
        }

        /// The endpoints behind the token check.
        fn token_routes() -> Router<AppState> {
            Router::new()$(.route($tp, on(MethodFilter::$tm, $th)))*
        }
    };
}

// A new endpoint: one line here, `#[utoipa::path]` on its handler, one line
// in `paths(...)` in openapi.rs, then bless the snapshot (see [`openapi`]).
endpoints! {
    public {
        GET    "/openapi.json"                   => openapi::serve;
    }
    token {
        GET    "/devices"                        => devices::list;
        POST   "/devices"                        => devices::provision;
        POST   "/devices/bulk"                   => devices::provision_bulk;
        GET    "/devices/{id}"                   => devices::show;
        PATCH  "/devices/{id}"                   => devices::update;
        DELETE "/devices/{id}"                   => devices::delete;
        POST   "/devices/{id}/commands"          => commands::enqueue;
        GET    "/devices/{id}/commands/{batch}"  => commands::show;
        POST   "/devices/{id}/notify"            => devices::notify;
        GET    "/devices/{id}/sessions"          => devices::sessions;
        GET    "/devices/{id}/alerts"            => devices::alerts;
        GET    "/devices/{id}/inventory"         => jobs::inventory;
        POST   "/devices/{id}/inventory/refresh" => jobs::refresh_inventory;
        POST   "/packages"                       => packages::upload;
        GET    "/packages"                       => packages::list;
        GET    "/packages/{pkg_id}"              => packages::show;
        DELETE "/packages/{pkg_id}"              => packages::delete;
        POST   "/packages/{pkg_id}/download-url" => packages::download_url;
        POST   "/jobs"                           => jobs::create;
        GET    "/jobs"                           => jobs::list;
        GET    "/jobs/{id}"                      => jobs::show;
        POST   "/jobs/{id}/cancel"               => jobs::cancel;
        GET    "/catalog/rules"                  => jobs::rules;
        POST   "/catalog/rules"                  => jobs::create_rule;
        DELETE "/catalog/rules/{id}"             => jobs::delete_rule;
        GET    "/events"                         => jobs::events;
        POST   "/campaigns"                      => campaigns::create;
        GET    "/campaigns"                      => campaigns::list;
        GET    "/campaigns/{id}"                 => campaigns::show;
        POST   "/campaigns/{id}/pause"           => campaigns::pause;
        POST   "/campaigns/{id}/resume"          => campaigns::resume;
        POST   "/campaigns/{id}/cancel"          => campaigns::cancel;
        GET    "/campaigns/{id}/devices"         => campaigns::devices;
    }
}

/// The `/api/v1` routes: the public ones, then the token-checked ones and
/// the JSON 404 for unknown API paths (which answers 401 without a token).
pub(crate) fn routes(state: AppState) -> Router<AppState> {
    let checked = token_routes()
        .fallback(|| async { AppError::NotFound("no such API endpoint".into()) })
        .layer(middleware::from_fn_with_state(state, require_token));
    Router::new().nest("/api/v1", public_routes().merge(checked))
}

/// Checks `Authorization: Bearer <token>` against the store's live tokens.
async fn require_token(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, AppError> {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|t| !t.is_empty() && t.len() <= 256)
        .ok_or(AppError::Unauthorized(
            "missing Authorization: Bearer <token> header",
        ))?;
    match state.store().verify_token(token, Timestamp::now()).await? {
        Some(_) => Ok(next.run(req).await),
        None => Err(AppError::Unauthorized("invalid or revoked API token")),
    }
}

/// A JSON body, or a 400 naming what is wrong with it.
pub(crate) fn json_body<T>(body: Result<axum::Json<T>, JsonRejection>) -> Result<T, AppError> {
    match body {
        Ok(axum::Json(v)) => Ok(v),
        Err(rej) => Err(match rej.status().as_u16() {
            413 => AppError::PayloadTooLarge(rej.body_text()),
            415 => AppError::UnsupportedMediaType(rej.body_text()),
            _ => AppError::BadRequest(rej.body_text()),
        }),
    }
}

/// Query parameters, or a 400 naming the bad one.
pub(crate) fn query<T>(q: Result<axum::extract::Query<T>, QueryRejection>) -> Result<T, AppError> {
    q.map(|axum::extract::Query(v)| v)
        .map_err(|rej| AppError::BadRequest(rej.body_text()))
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-05-01T12:00:00.000Z`.
pub fn rfc3339(t: Timestamp) -> String {
    let ms = t.unix_millis();
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(
            rfc3339(Timestamp::from_unix_millis(0)),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            rfc3339(Timestamp::from_unix_millis(951_782_400_123)),
            "2000-02-29T00:00:00.123Z"
        );
        assert_eq!(
            rfc3339(Timestamp::from_unix_secs(1_700_000_000)),
            "2023-11-14T22:13:20.000Z"
        );
        assert_eq!(
            rfc3339(Timestamp::from_unix_millis(-1)),
            "1969-12-31T23:59:59.999Z"
        );
    }
}
