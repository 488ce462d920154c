//! `/api/v1/packages`: the package repository.

use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::{query, rfc3339};
use crate::error::AppError;
use crate::packages::Uploaded;
use crate::state::AppState;
use crate::store::{Package, PackageComponent, Timestamp, MAX_PAGE};

/// A package as the API shows it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PackageView {
    /// PkgID.
    pub pkg_id: String,
    /// Display name.
    pub name: String,
    /// Package version, if the manifest gives one.
    pub version: Option<String>,
    /// Execution environment.
    pub env_type: String,
    /// Media type served.
    pub pkg_type: String,
    /// Size in bytes.
    pub size: u64,
    /// Hex SHA-256 of the file.
    pub sha256: String,
    /// Base64 Ed25519 signature over the SHA-256 digest, if given.
    pub signature: Option<String>,
    /// Deployment components.
    pub components: Vec<PackageComponent>,
    /// Upload time (RFC 3339).
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<Package> for PackageView {
    fn from(p: Package) -> PackageView {
        PackageView {
            pkg_id: p.pkg_id,
            name: p.name,
            version: p.version,
            env_type: p.env_type,
            pkg_type: p.pkg_type,
            size: p.size,
            sha256: p.sha256,
            signature: p.signature,
            components: p.components,
            created_at: rfc3339(p.created_at),
        }
    }
}

/// `POST /api/v1/packages` parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct UploadParams {
    /// Base64 Ed25519 signature (64 bytes) over the file's SHA-256 digest,
    /// kept with the package.
    signature: Option<String>,
}

/// `POST /api/v1/packages`: the body is the package file, streamed to disk.
///
/// The package's manifest (`scomo-package.toml`) gives its PkgID. The same
/// PkgID with the same content answers 200 with the stored package.
#[utoipa::path(
    post,
    path = "/api/v1/packages",
    operation_id = "upload_package",
    tag = "packages",
    params(UploadParams),
    request_body(
        content = inline(super::openapi::Binary),
        content_type = "application/octet-stream",
        description = "The package file (a tar, tar.gz or zip archive with \
                       `scomo-package.toml`), as the raw body",
    ),
    responses(
        (status = 201, description = "The package, stored", body = PackageView),
        (status = 200, description = "The same package was stored already", body = PackageView),
        (status = 400, description = "A bad signature, an empty upload or not a valid package", body = crate::error::ErrorBody),
        (status = 401, description = "No valid token", body = crate::error::ErrorBody),
        (status = 409, description = "The PkgID exists with other content", body = crate::error::ErrorBody),
        (status = 413, description = "The package is larger than `downloads.max_upload_bytes`", body = crate::error::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn upload(
    State(state): State<AppState>,
    params: Result<Query<UploadParams>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let p = query(params)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let uploaded =
        crate::packages::upload(&state, body.into_data_stream(), declared, p.signature).await?;
    Ok(match uploaded {
        Uploaded::Created(p) => (StatusCode::CREATED, Json(PackageView::from(p))).into_response(),
        Uploaded::Existing(p) => (StatusCode::OK, Json(PackageView::from(p))).into_response(),
    })
}

/// `GET /api/v1/packages` parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Packages after this PkgID (the previous page's `next_after`).
    after: Option<String>,
    /// Page size (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// One page of packages, in PkgID order.
#[derive(Serialize, utoipa::ToSchema)]
struct PackagePageView {
    /// The packages.
    packages: Vec<PackageView>,
    /// The `after` of the next page; `null` on the last one.
    next_after: Option<String>,
}

/// Lists packages, paged by PkgID.
#[utoipa::path(
    get,
    path = "/api/v1/packages",
    operation_id = "list_packages",
    tag = "packages",
    params(ListParams),
    responses(
        (status = 200, description = "A page of packages", body = PackagePageView),
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
    let limit = p.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(AppError::BadRequest(format!(
            "limit must be 1..={MAX_PAGE}, is {limit}"
        )));
    }
    let packages = state
        .store()
        .list_packages(p.after.as_deref(), limit)
        .await?;
    let next_after = if packages.len() == limit as usize {
        packages.last().map(|p| p.pkg_id.clone())
    } else {
        None
    };
    Ok(Json(PackagePageView {
        packages: packages.into_iter().map(PackageView::from).collect(),
        next_after,
    })
    .into_response())
}

async fn find(state: &AppState, pkg_id: &str) -> Result<Package, AppError> {
    state
        .store()
        .package(pkg_id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no package {pkg_id:?}")))
}

/// One package.
#[utoipa::path(
    get,
    path = "/api/v1/packages/{pkg_id}",
    operation_id = "show_package",
    tag = "packages",
    params(("pkg_id" = String, Path, description = "The PkgID")),
    responses(
        (status = 200, description = "The package", body = PackageView),
        (status = 401, description = "No valid token", body = crate::error::ErrorBody),
        (status = 404, description = "No such package", body = crate::error::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    Path(pkg_id): Path<String>,
) -> Result<Response, AppError> {
    Ok(Json(PackageView::from(find(&state, &pkg_id).await?)).into_response())
}

/// Deletes a package and its file.
#[utoipa::path(
    delete,
    path = "/api/v1/packages/{pkg_id}",
    operation_id = "delete_package",
    tag = "packages",
    params(("pkg_id" = String, Path, description = "The PkgID")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid token", body = crate::error::ErrorBody),
        (status = 404, description = "No such package", body = crate::error::ErrorBody),
        (status = 409, description = "A download URL for it is live", body = crate::error::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(pkg_id): Path<String>,
) -> Result<Response, AppError> {
    let p = find(&state, &pkg_id).await?;
    if state
        .store()
        .package_in_use(&pkg_id, Timestamp::now())
        .await?
    {
        return Err(AppError::Conflict(format!(
            "package {pkg_id:?} is in use (a download URL for it is live)"
        )));
    }
    if !state.store().delete_package(&pkg_id).await? {
        return Err(AppError::NotFound(format!("no package {pkg_id:?}")));
    }
    // The file is named by its digest, and the digest covers the manifest
    // and so the PkgID: no other package shares it.
    match tokio::fs::remove_file(state.config().data_dir.join(&p.file)).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(pkg_id = %pkg_id, error = %e, "cannot remove the package file"),
    }
    tracing::info!(pkg_id = %pkg_id, "package deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/v1/packages/{pkg_id}/download-url` parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DownloadUrlParams {
    /// How long the URL works, in seconds (default
    /// `downloads.url_ttl_secs`).
    #[param(minimum = 1)]
    ttl_secs: Option<u64>,
    /// The SCOMO job the URL is for (its downloads show on the job).
    job_id: Option<i64>,
}

/// A download URL of a package.
#[derive(Serialize, utoipa::ToSchema)]
struct DownloadUrlView {
    /// The package file: `.../dl/{token}`.
    url: String,
    /// Its OMA download descriptor: `.../dl/{token}/dd`.
    dd_url: String,
    /// When both stop working (RFC 3339).
    #[schema(format = DateTime)]
    expires_at: String,
}

/// Makes a download URL for a package and its download descriptor URL, on
/// the server's public URL (else the request's host).
#[utoipa::path(
    post,
    path = "/api/v1/packages/{pkg_id}/download-url",
    operation_id = "package_download_url",
    tag = "packages",
    params(
        ("pkg_id" = String, Path, description = "The PkgID"),
        DownloadUrlParams,
    ),
    responses(
        (status = 201, description = "The URLs", body = DownloadUrlView),
        (status = 400, description = "A bad query parameter", body = crate::error::ErrorBody),
        (status = 401, description = "No valid token", body = crate::error::ErrorBody),
        (status = 404, description = "No such package", body = crate::error::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn download_url(
    State(state): State<AppState>,
    Path(pkg_id): Path<String>,
    params: Result<Query<DownloadUrlParams>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let p = query(params)?;
    if p.ttl_secs == Some(0) {
        return Err(AppError::BadRequest("ttl_secs must be at least 1".into()));
    }
    let base = crate::dm::public_base(&state, &headers);
    let d = crate::packages::issue_download_url(
        &state,
        &pkg_id,
        p.job_id,
        p.ttl_secs.map(Duration::from_secs),
        Some(&base),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(DownloadUrlView {
            url: d.url,
            dd_url: d.dd_url,
            expires_at: rfc3339(d.expires_at),
        }),
    )
        .into_response())
}
