//! The OpenAPI 3.1 document of the REST API, served at
//! `GET /api/v1/openapi.json` (no token needed) and kept as a snapshot in
//! `crates/scomo-server/openapi.json`.
//!
//! A new endpoint = `#[utoipa::path]` on the handler + one line in
//! `paths(...)` below + bless the snapshot. In full:
//!
//! 1. Register it in the `endpoints!` list in [`super`] (`GET "/things" =>
//!    things::list;` under `token` unless it must be public).
//! 2. Put `#[utoipa::path(get, path = "/api/v1/things", tag = "...",
//!    params(...), request_body = ..., responses(...),
//!    security(("bearer" = [])))]` on the handler, with every error status
//!    it answers (`body = ErrorBody`), and derive `utoipa::ToSchema` on its
//!    JSON types (`utoipa::IntoParams` on query parameter structs). Schemas
//!    named in `body`/`request_body` are collected on their own; list others
//!    in `components(schemas(...))`.
//! 3. Add the handler to `paths(...)` in `ApiDoc` below.
//! 4. Bless the snapshot: `SCOMO_BLESS=1 cargo test -p scomo-server --test
//!    server openapi`, and commit the changed `openapi.json`.
//!
//! The `openapi` tests (`tests/server/openapi.rs`) fail when the snapshot is
//! stale, when an endpoint of `endpoints!` is not in the document (or the
//! other way round), or when an operation lacks responses.

use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{campaigns, commands, devices, jobs, packages};
use crate::error::ErrorBody;

/// The document's source: every path and the schemas they use.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "scomo",
        description = "REST API of the scomo OMA DM 1.2 / SCOMO server: the device \
                       registry, the DM command queue, the package repository, \
                       SCOMO jobs, device inventories, catalog rules and live \
                       events. Every endpoint but this document needs \
                       `Authorization: Bearer <token>`; errors are JSON \
                       `{code, message}`.",
    ),
    paths(
        serve,
        devices::list,
        devices::provision,
        devices::provision_bulk,
        devices::show,
        devices::update,
        devices::delete,
        devices::notify,
        devices::sessions,
        devices::alerts,
        commands::enqueue,
        commands::show,
        packages::upload,
        packages::list,
        packages::show,
        packages::delete,
        packages::download_url,
        jobs::create,
        jobs::list,
        jobs::show,
        jobs::cancel,
        jobs::inventory,
        jobs::refresh_inventory,
        jobs::create_rule,
        jobs::rules,
        jobs::delete_rule,
        jobs::events,
        campaigns::create,
        campaigns::list,
        campaigns::show,
        campaigns::pause,
        campaigns::resume,
        campaigns::cancel,
        campaigns::devices,
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerToken),
    tags(
        (name = "devices", description = "The device registry"),
        (name = "commands", description = "Batches of DM commands for a device"),
        (name = "packages", description = "The package repository and its download URLs"),
        (name = "jobs", description = "SCOMO jobs: deliver, install, update, remove, \
                                       activate and deactivate software on a device"),
        (name = "inventory", description = "What software a device reported"),
        (name = "catalog", description = "Catalog rules: packages given to matching devices"),
        (name = "events", description = "Live events (Server-Sent Events)"),
        (name = "campaigns", description = "Campaigns: one operation rolled out over many \
                                            devices in stages, paced and guarded by thresholds"),
        (name = "meta", description = "About the API itself"),
    ),
)]
struct ApiDoc;

/// The schema of a raw binary body (`request_body(content = inline(Binary),
/// content_type = "application/octet-stream")`): a string of bytes, as
/// OpenAPI 3.1 has it, rather than utoipa's array of integers for `Vec<u8>`.
pub(crate) enum Binary {}

impl utoipa::PartialSchema for Binary {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .content_media_type("application/octet-stream")
            .into()
    }
}

impl utoipa::ToSchema for Binary {}

/// Adds the `bearer` security scheme the operations name.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token: `Authorization: Bearer <token>` (the admin \
                         token is in `admin.token` in the data directory)",
                    ))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document of `/api/v1`.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// This document as JSON.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "openapi_document",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)),
)]
pub(crate) async fn serve() -> Response {
    axum::Json(document()).into_response()
}
