//! The alternate download server: packages by download token, outside the
//! API's bearer-token check (the token in the URL is the capability).
//!
//! ```text
//!   GET|HEAD /dl/{token}         the package file: Range (one range), If-Range,
//!                                If-None-Match, ETag "<sha256>"; streamed
//!   GET      /dl/{token}/dd      OMA Download OTA descriptor for it
//!   POST     /dl/{token}/notify  install-notify status (9xx) from the device
//! ```
//!
//! Unknown token or deleted package: 404; expired token: 410. Bytes served
//! are recorded on the token when a response body finishes (before its last
//! chunk is handed over, so a client that has the whole file sees it
//! counted) or is dropped (an aborted download, with the count so far).

use std::future::Future;
use std::io::SeekFrom;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::BytesMut;
use futures_util::Stream;
use scomo::dlota::{DownloadDescriptor, InstallStatus, DD_CONTENT_TYPE};
use std::io::Seek as _;

use crate::error::AppError;
use crate::state::AppState;
use crate::store::{DownloadToken, Package, Timestamp};

/// Bytes read from the file per chunk.
const CHUNK: usize = 256 * 1024;
/// Largest install-notify body read.
const MAX_NOTIFY_BODY: usize = 4096;

/// The `/dl` routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/dl/{token}", get(download))
        .route("/dl/{token}/dd", get(descriptor))
        .route("/dl/{token}/notify", post(notify))
}

/// The token and its package, or 404 / 410.
async fn lookup(state: &AppState, token: &str) -> Result<(DownloadToken, Package), AppError> {
    let unknown = || AppError::NotFound("no such download".into());
    if token.is_empty() || token.len() > 64 || !token.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(unknown());
    }
    let t = state
        .store()
        .download_token(token)
        .await?
        .ok_or_else(unknown)?;
    if !t.is_live(Timestamp::now()) {
        return Err(AppError::Gone("this download URL has expired".into()));
    }
    let p = state
        .store()
        .package(&t.pkg_id)
        .await?
        .ok_or_else(|| AppError::NotFound("the package has been deleted".into()))?;
    Ok((t, p))
}

/// What a `Range` header asks for, against a file of `size` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RangeAsk {
    /// No usable single range: send everything.
    Whole,
    /// Bytes `start..=end`.
    Part(u64, u64),
    /// A syntactically valid range outside the file: 416.
    Unsatisfiable,
}

/// Parses `bytes=a-b`, `bytes=a-`, `bytes=-n`. Several ranges or another
/// unit are ignored (the whole file is sent, as RFC 9110 allows).
fn parse_range(value: &str, size: u64) -> RangeAsk {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeAsk::Whole;
    };
    if spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAsk::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    if a.is_empty() {
        // Suffix: the last n bytes.
        let Some(n) = num(b) else {
            return RangeAsk::Whole;
        };
        if n == 0 || size == 0 {
            return RangeAsk::Unsatisfiable;
        }
        return RangeAsk::Part(size.saturating_sub(n), size - 1);
    }
    let Some(start) = num(a) else {
        return RangeAsk::Whole;
    };
    let end = if b.is_empty() {
        None
    } else {
        match num(b) {
            Some(e) if e >= start => Some(e),
            _ => return RangeAsk::Whole,
        }
    };
    if start >= size {
        return RangeAsk::Unsatisfiable;
    }
    let last = size - 1;
    RangeAsk::Part(start, end.map_or(last, |e| e.min(last)))
}

/// Whether an `If-None-Match` value matches `etag`.
fn none_match(value: &str, etag: &str) -> bool {
    value
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t == etag || t.strip_prefix("W/") == Some(etag))
}

async fn download(
    State(state): State<AppState>,
    Path(token): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let (t, p) = lookup(&state, &token).await?;
    let path = state.config().data_dir.join(&p.file);
    // Opened and measured in one trip to the blocking pool.
    let opened = tokio::task::spawn_blocking(move || {
        let f = std::fs::File::open(&path)?;
        let size = f.metadata()?.len();
        Ok::<_, std::io::Error>((f, size))
    })
    .await
    .map_err(AppError::internal)?;
    let (mut file, size) = match opened {
        Ok(v) => v,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(AppError::NotFound("the package file is gone".into()))
        }
        Err(e) => return Err(AppError::internal(e)),
    };
    let etag = format!("\"{}\"", p.sha256);
    let etag_value = HeaderValue::from_str(&etag).map_err(AppError::internal)?;
    let content_type = HeaderValue::from_str(&p.pkg_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));

    let mut builder = Response::builder()
        .header(header::ETAG, etag_value)
        .header(header::ACCEPT_RANGES, "bytes");
    if let Some(v) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        if none_match(v, &etag) {
            return builder
                .status(StatusCode::NOT_MODIFIED)
                .body(Body::empty())
                .map_err(AppError::internal);
        }
    }
    let mut ask = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(v) => parse_range(v, size),
        None => RangeAsk::Whole,
    };
    if let Some(v) = headers.get(header::IF_RANGE) {
        // Only our strong ETag validates a range; a date or another tag
        // means the client's copy is stale: send everything.
        if v.to_str().ok().map(str::trim) != Some(etag.as_str()) {
            ask = RangeAsk::Whole;
        }
    }
    let (status, start, len) = match ask {
        RangeAsk::Whole => (StatusCode::OK, 0, size),
        RangeAsk::Part(a, b) => {
            builder = builder.header(header::CONTENT_RANGE, format!("bytes {a}-{b}/{size}"));
            (StatusCode::PARTIAL_CONTENT, a, b - a + 1)
        }
        RangeAsk::Unsatisfiable => {
            let mut r = AppError::RangeNotSatisfiable(format!(
                "the range is outside the package's {size} bytes"
            ))
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(r);
        }
    };
    builder = builder
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, len);
    if method == Method::HEAD {
        return builder.body(Body::empty()).map_err(AppError::internal);
    }
    if start > 0 {
        // A seek on a regular file does no I/O.
        file.seek(SeekFrom::Start(start))
            .map_err(AppError::internal)?;
    }
    let body = Transfer::new(
        file,
        len,
        Recorder {
            state: state.clone(),
            token: t.token,
            served: 0,
            total: len,
            to_eof: start + len == size,
        },
    );
    builder
        .body(Body::from_stream(body))
        .map_err(AppError::internal)
}

/// Who to tell what a response served.
struct Recorder {
    state: AppState,
    token: String,
    served: u64,
    total: u64,
    /// The response ends at the file's last byte.
    to_eof: bool,
}

impl Recorder {
    /// Records in a task of its own, so it is done even if the response is
    /// dropped meanwhile.
    fn spawn(self, completed: bool, error: Option<String>) -> Option<tokio::task::JoinHandle<()>> {
        let handle = tokio::runtime::Handle::try_current().ok()?;
        Some(handle.spawn(async move {
            let r = self
                .state
                .store()
                .record_download(
                    &self.token,
                    self.served,
                    completed,
                    error.as_deref(),
                    Timestamp::now(),
                )
                .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "cannot record a download");
            }
        }))
    }
}

/// A finished read: the file back, and the bytes.
type ReadDone = std::io::Result<(std::fs::File, BytesMut)>;

/// A response body: `remaining` bytes of the file in chunks, each read on
/// the blocking pool straight into the buffer that is sent, the next one
/// read while the current one is being written.
struct Transfer {
    /// The file, when no read is in flight.
    file: Option<std::fs::File>,
    /// The read in flight.
    reading: Option<tokio::task::JoinHandle<ReadDone>>,
    /// Bytes not yet asked of the file.
    unread: u64,
    /// Bytes not yet handed to the response.
    remaining: u64,
    /// The last chunk, held back until the download is recorded.
    pending: Option<(tokio::task::JoinHandle<()>, Bytes)>,
    record: Option<Recorder>,
}

impl Transfer {
    fn new(file: std::fs::File, len: u64, record: Recorder) -> Transfer {
        Transfer {
            file: Some(file),
            reading: None,
            unread: len,
            remaining: len,
            pending: None,
            record: Some(record),
        }
    }

    /// Starts reading the next chunk, if there is one and the file is free.
    fn start_read(&mut self) {
        if self.unread == 0 || self.reading.is_some() {
            return;
        }
        let Some(mut file) = self.file.take() else {
            return;
        };
        let want = usize::try_from(self.unread.min(CHUNK as u64)).unwrap_or(CHUNK);
        self.unread -= want as u64;
        self.reading = Some(tokio::task::spawn_blocking(move || {
            use std::io::Read as _;
            let mut buf = BytesMut::zeroed(want);
            let mut filled = 0;
            while filled < want {
                let n = file.read(buf.get_mut(filled..).unwrap_or_default())?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            buf.truncate(filled);
            Ok((file, buf))
        }));
    }
}

impl Stream for Transfer {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some((task, _)) = &mut this.pending {
            let _ = ready!(Pin::new(task).poll(cx));
            return Poll::Ready(this.pending.take().map(|(_, chunk)| Ok(chunk)));
        }
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        this.start_read();
        let Some(reading) = &mut this.reading else {
            return Poll::Ready(Some(Err(std::io::Error::other("no read in flight"))));
        };
        let done = ready!(Pin::new(reading).poll(cx));
        this.reading = None;
        let buf = match done {
            Ok(Ok((file, buf))) => {
                this.file = Some(file);
                buf
            }
            Ok(Err(e)) => return Poll::Ready(Some(Err(e))),
            Err(e) => return Poll::Ready(Some(Err(std::io::Error::other(e)))),
        };
        if buf.is_empty() {
            return Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the package file is shorter than expected",
            ))));
        }
        let n = buf.len() as u64;
        this.remaining = this.remaining.saturating_sub(n);
        if let Some(r) = &mut this.record {
            r.served += n;
        }
        // Read ahead while this chunk is written.
        this.start_read();
        let chunk = buf.freeze();
        if this.remaining > 0 {
            return Poll::Ready(Some(Ok(chunk)));
        }
        let task = this.record.take().and_then(|r| {
            let completed = r.to_eof;
            r.spawn(completed, None)
        });
        match task {
            Some(task) => {
                this.pending = Some((task, chunk));
                // Poll the recording now (registers the waker).
                self.poll_next(cx)
            }
            None => Poll::Ready(Some(Ok(chunk))),
        }
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        if let Some(r) = self.record.take() {
            let error = format!("stopped after {} of {} bytes", r.served, r.total);
            let _ = r.spawn(false, Some(error));
        }
    }
}

async fn descriptor(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let (t, p) = lookup(&state, &token).await?;
    let base = crate::dm::public_base(&state, &headers);
    let url = format!("{}/dl/{}", base.trim_end_matches('/'), t.token);
    let dd = DownloadDescriptor {
        dd_version: Some("1.0".into()),
        name: Some(p.name.clone()),
        types: vec![p.pkg_type.clone()],
        size: p.size,
        install_notify_uri: Some(format!("{url}/notify")),
        object_uri: url,
        vendor: None,
        description: p.version.as_ref().map(|v| format!("{} {v}", p.pkg_id)),
        ..DownloadDescriptor::default()
    };
    Ok((
        [
            (header::CONTENT_TYPE, DD_CONTENT_TYPE),
            (header::CACHE_CONTROL, "no-store"),
        ],
        dd.to_xml(),
    )
        .into_response())
}

async fn notify(
    State(state): State<AppState>,
    Path(token): Path<String>,
    body: Body,
) -> Result<Response, AppError> {
    let (t, _) = lookup(&state, &token).await?;
    let bytes = axum::body::to_bytes(body, MAX_NOTIFY_BODY)
        .await
        .map_err(|_| AppError::BadRequest("the install-notify body is too long".into()))?;
    let text = String::from_utf8_lossy(&bytes);
    let status = InstallStatus::parse_body(&text).ok_or_else(|| {
        AppError::BadRequest(
            "the body is not an install-notify status (a 9xx code and its text)".into(),
        )
    })?;
    state
        .store()
        .record_install_notify(&t.token, status.0, Timestamp::now())
        .await?;
    tracing::debug!(pkg_id = %t.pkg_id, job = ?t.job_id, status = %status, "install notify");
    Ok((StatusCode::OK, "").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeAsk::*;
        assert_eq!(parse_range("bytes=0-9", 100), Part(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), Part(90, 99));
        assert_eq!(parse_range("bytes=90-1000", 100), Part(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), Part(90, 99));
        assert_eq!(parse_range("bytes=-1000", 100), Part(0, 99));
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=5-1", 100), Whole);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Whole);
        assert_eq!(parse_range("items=0-1", 100), Whole);
        assert_eq!(parse_range("bytes=x-1", 100), Whole);
        assert_eq!(parse_range("bytes=+1-2", 100), Whole);
    }

    #[test]
    fn etags() {
        assert!(none_match("\"abc\"", "\"abc\""));
        assert!(none_match("\"x\", W/\"abc\"", "\"abc\""));
        assert!(none_match("*", "\"abc\""));
        assert!(!none_match("\"abd\"", "\"abc\""));
    }
}
