//! The one error type at the HTTP edge: every failure becomes a status and a
//! JSON body `{"code": "...", "message": "..."}` with a stable `code`. Causes
//! of internal errors are logged, never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use omadm::SessionError;
use serde::Serialize;

use crate::store::StoreError;

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// No or a wrong `Authorization: Bearer` token (401).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The addressed thing does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed (400).
    #[error("{0}")]
    BadRequest(String),
    /// The request conflicts with what exists (409).
    #[error("{0}")]
    Conflict(String),
    /// The addressed thing existed but is gone for good, e.g. an expired
    /// download token (410).
    #[error("{0}")]
    Gone(String),
    /// The requested byte range is outside the resource (416).
    #[error("{0}")]
    RangeNotSatisfiable(String),
    /// The body is too big (413).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The Content-Type is not one we take (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The server cannot take more work now (503).
    #[error("{0}")]
    Unavailable(String),
    /// Something failed on our side (500); the cause is logged only.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: String,
}

impl AppError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::Gone(_) => StatusCode::GONE,
            AppError::RangeNotSatisfiable(_) => StatusCode::RANGE_NOT_SATISFIABLE,
            AppError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Unauthorized(_) => "unauthorized",
            AppError::NotFound(_) => "not_found",
            AppError::BadRequest(_) => "bad_request",
            AppError::Conflict(_) => "conflict",
            AppError::Gone(_) => "gone",
            AppError::RangeNotSatisfiable(_) => "range_not_satisfiable",
            AppError::PayloadTooLarge(_) => "payload_too_large",
            AppError::UnsupportedMediaType(_) => "unsupported_media_type",
            AppError::Unavailable(_) => "unavailable",
            AppError::Internal(_) => "internal",
        }
    }

    /// An internal error from any cause.
    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> AppError {
        AppError::Internal(Box::new(e))
    }

    /// A DM engine's refusal of a message, mapped per
    /// [`SessionError::http_status`]. The message is the engine's (it names
    /// the problem, never a credential).
    pub fn from_session(e: &SessionError) -> AppError {
        let msg = e.to_string();
        match e.http_status() {
            400 => AppError::BadRequest(msg),
            401 => AppError::Unauthorized("authentication failed"),
            413 => AppError::PayloadTooLarge(msg),
            415 => AppError::UnsupportedMediaType(msg),
            _ => AppError::Internal(Box::new(e.clone())),
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> AppError {
        match e {
            StoreError::DeviceExists { .. } | StoreError::PackageExists { .. } => {
                AppError::Conflict(e.to_string())
            }
            StoreError::UnknownDevice { .. }
            | StoreError::UnknownBatch { .. }
            | StoreError::UnknownPackage { .. } => AppError::NotFound(e.to_string()),
            StoreError::Invalid { .. } => AppError::BadRequest(e.to_string()),
            other => AppError::internal(other),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let AppError::Internal(cause) = &self {
            tracing::error!(error = %ErrorChain(cause.as_ref()), "internal error");
        }
        metrics::counter!(crate::metrics::HTTP_ERRORS, "code" => self.code()).increment(1);
        let body = ErrorBody {
            code: self.code(),
            message: self.to_string(),
        };
        (status, axum::Json(body)).into_response()
    }
}

/// Displays an error with its sources: `a: b: c`.
pub(crate) struct ErrorChain<'a>(pub(crate) &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}
