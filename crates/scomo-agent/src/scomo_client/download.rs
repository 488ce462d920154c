//! Alternate download (`SCOMO.md` §6.2): HTTP(S) GET of PkgURL, streamed to
//! a `.part` file and hashed on the way, resumed with `Range` + `If-Range`
//! after a broken transfer or an agent restart; OMA Download OTA when
//! PkgURL serves a download descriptor (`DLOTA.md` §3).
//!
//! ```text
//!  GET PkgURL ─┬─ application/vnd.oma.dd+xml ─▶ parse DD (906/951), type (953), size (901)
//!              │                                   └─▶ GET objectURI (Range/If-Range) ─▶ size, type (905)
//!              └─ anything else: the package itself (Range/If-Range on resume)
//!  … then the caller validates (SHA-256, signature) and POSTs 900 (or the
//!  failure) to installNotifyURI.
//! ```

use std::io::Write as _;
use std::num::NonZeroU64;
use std::path::Path;
use std::time::Duration;

use reqwest::header::{CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_RANGE, LAST_MODIFIED, RANGE};
use reqwest::{Response, StatusCode};
use scomo::dlota::{DownloadDescriptor, InstallStatus, DD_CONTENT_TYPE, MAX_DD_SIZE};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot, watch};

use super::journal::{DownloadState, Halted};
use super::rules::DownloadFailure;
use super::store::has_room;

/// Bytes received between two writeback kicks of the `.part` file.
const WRITEBACK_WINDOW: u64 = 8 * 1024 * 1024;

/// How a download ended, when it did not complete.
#[derive(Debug)]
pub(crate) enum DlError {
    /// It failed for good.
    Fail(DownloadFailure, String),
    /// A crash point fired.
    Halted,
    /// The agent is shutting down; resume later.
    Stopped,
}

impl From<Halted> for DlError {
    fn from(_: Halted) -> DlError {
        DlError::Halted
    }
}

/// What was received.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fetched {
    pub(crate) digest: [u8; 32],
    pub(crate) size: u64,
}

/// Download settings.
#[derive(Clone, Debug)]
pub(crate) struct Downloader {
    client: reqwest::Client,
    pub(crate) retries: u32,
    idle: Duration,
    max_bytes: u64,
    reserve: u64,
    accepted_types: Vec<String>,
}

/// Hooks the executor gives a download.
pub(crate) struct Progress<'a> {
    /// Persist the state (called before bytes are written under a new
    /// validator or URL).
    pub(crate) journal: &'a mut (dyn FnMut(&DownloadState) -> Result<(), Halted> + Send),
    /// Crash points.
    pub(crate) checkpoint: &'a (dyn Fn(&str) -> Result<(), Halted> + Send + Sync),
    /// Becomes `true` when the agent shuts down.
    pub(crate) cancel: watch::Receiver<bool>,
}

enum Attempt {
    Done,
    /// Try again (resuming), after a pause.
    Retry(DownloadFailure, String),
}

impl Downloader {
    pub(crate) fn new(cfg: &super::config::ScomoConfig) -> Result<Downloader, String> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(cfg.download_connect_timeout_secs))
            .read_timeout(Duration::from_secs(cfg.download_idle_timeout_secs))
            .user_agent(concat!("scomo-agent/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &cfg.download_ca_cert {
            let pem = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| format!("{}: {e}", ca.display()))?;
            b = b.add_root_certificate(cert);
        }
        Ok(Downloader {
            client: b.build().map_err(|e| e.to_string())?,
            retries: cfg.download_retries,
            idle: Duration::from_secs(cfg.download_idle_timeout_secs.max(1)),
            max_bytes: cfg.max_package_bytes,
            reserve: cfg.reserved_space_bytes,
            accepted_types: cfg.dd_accepted_types.clone(),
        })
    }

    /// Downloads `st.url` (or what its descriptor points at) into `part`,
    /// resuming what `part` already holds.
    pub(crate) async fn fetch(
        &self,
        st: &mut DownloadState,
        part: &Path,
        p: &mut Progress<'_>,
    ) -> Result<Fetched, DlError> {
        let mut attempt = 0u32;
        let mut hashing = Hashing::default();
        loop {
            if *p.cancel.borrow() {
                return Err(DlError::Stopped);
            }
            let r = if st.object_url.is_none() {
                self.first_contact(st, part, p, &mut hashing).await?
            } else {
                self.object(st, part, p, &mut hashing).await?
            };
            match r {
                Attempt::Done => break,
                Attempt::Retry(fail, why) => {
                    if attempt >= self.retries {
                        return Err(DlError::Fail(fail, why));
                    }
                    tracing::info!(url = %st.url, attempt, reason = %why, "download interrupted; resuming");
                    let pause = Duration::from_millis(100u64 << attempt.min(6));
                    attempt += 1;
                    let mut cancel = p.cancel.clone();
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = cancelled(&mut cancel) => return Err(DlError::Stopped),
                    }
                }
            }
        }
        let size = tokio::fs::metadata(part)
            .await
            .map_err(|e| DlError::Fail(DownloadFailure::lost(), e.to_string()))?
            .len();
        if let Some(dd) = &st.dd {
            if dd.size != size {
                return Err(DlError::Fail(
                    DownloadFailure::mismatch(),
                    format!(
                        "received {size} bytes, the descriptor announced {}",
                        dd.size
                    ),
                ));
            }
            if let Some(ct) = &st.content_type {
                if !dd.types.iter().any(|t| same_type(t, ct)) {
                    return Err(DlError::Fail(
                        DownloadFailure::mismatch(),
                        format!("object served as {ct}, the descriptor lists {:?}", dd.types),
                    ));
                }
            }
        }
        let digest = if hashing.at == size {
            hashing.h.finalize().into()
        } else {
            // Complete before this run (resumed after the last byte).
            hash_file(part, u64::MAX, Sha256::new())
                .await
                .map_err(|e| DlError::Fail(DownloadFailure::lost(), e.to_string()))?
                .finalize()
                .into()
        };
        Ok(Fetched { digest, size })
    }

    /// The first GET of PkgURL: a descriptor, or the package itself.
    async fn first_contact(
        &self,
        st: &mut DownloadState,
        part: &Path,
        p: &mut Progress<'_>,
        hashing: &mut Hashing,
    ) -> Result<Attempt, DlError> {
        let resp = match self.client.get(&st.url).send().await {
            Ok(r) => r,
            Err(e) => return Ok(Attempt::Retry(send_failure(&e), e.to_string())),
        };
        if let Some(a) = status_failure(&resp)? {
            return Ok(a);
        }
        let ct = header(&resp, CONTENT_TYPE);
        if ct.as_deref().is_some_and(|t| same_type(t, DD_CONTENT_TYPE)) {
            let body = match read_limited(resp, MAX_DD_SIZE).await {
                Ok(b) => b,
                Err(why) => return Ok(Attempt::Retry(DownloadFailure::lost(), why)),
            };
            let dd = DownloadDescriptor::parse(&body).map_err(|s| {
                DlError::Fail(
                    DownloadFailure::descriptor(s),
                    format!("download descriptor: {s}"),
                )
            })?;
            let object = reqwest::Url::parse(&st.url)
                .and_then(|base| base.join(&dd.object_uri))
                .map_err(|e| {
                    DlError::Fail(
                        DownloadFailure::descriptor(InstallStatus::INVALID_DESCRIPTOR),
                        format!("objectURI {:?}: {e}", dd.object_uri),
                    )
                })?;
            if !self.accepted_types.is_empty()
                && !dd.accepts_type(|t| self.accepted_types.iter().any(|a| same_type(a, t)))
            {
                return Err(DlError::Fail(
                    DownloadFailure::descriptor(InstallStatus::NON_ACCEPTABLE_CONTENT),
                    format!("no acceptable type in {:?}", dd.types),
                ));
            }
            self.check_room(dd.size, 0, part)?;
            st.object_url = Some(object.to_string());
            st.dd = Some(dd);
            st.total = None;
            st.validator = None;
            (p.journal)(st)?;
            return self.object(st, part, p, hashing).await;
        }
        st.object_url = Some(st.url.clone());
        self.receive(resp, st, part, 0, p, hashing).await
    }

    /// GET of the object, resuming what `part` holds.
    async fn object(
        &self,
        st: &mut DownloadState,
        part: &Path,
        p: &mut Progress<'_>,
        hashing: &mut Hashing,
    ) -> Result<Attempt, DlError> {
        let url = st.object_url.clone().unwrap_or_else(|| st.url.clone());
        let have = tokio::fs::metadata(part)
            .await
            .map(|m| m.len())
            .unwrap_or(0);
        if have > 0 && st.total == Some(have) {
            return Ok(Attempt::Done);
        }
        let mut req = self.client.get(&url);
        if have > 0 {
            req = req.header(RANGE, format!("bytes={have}-"));
            if let Some(v) = &st.validator {
                req = req.header(IF_RANGE, v.as_str());
            }
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return Ok(Attempt::Retry(send_failure(&e), e.to_string())),
        };
        if resp.status() == StatusCode::RANGE_NOT_SATISFIABLE {
            // Our partial file does not fit the object any more: start over.
            truncate(part).await?;
            return Ok(Attempt::Retry(
                DownloadFailure::lost(),
                "range not satisfiable; restarting".into(),
            ));
        }
        if let Some(a) = status_failure(&resp)? {
            return Ok(a);
        }
        let start = if resp.status() == StatusCode::PARTIAL_CONTENT {
            match content_range_start(&resp) {
                Some(s) if s == have => have,
                _ => {
                    truncate(part).await?;
                    return Ok(Attempt::Retry(
                        DownloadFailure::lost(),
                        "unexpected Content-Range; restarting".into(),
                    ));
                }
            }
        } else {
            0
        };
        self.receive(resp, st, part, start, p, hashing).await
    }

    fn check_room(&self, total: u64, have: u64, part: &Path) -> Result<(), DlError> {
        if total > self.max_bytes {
            return Err(DlError::Fail(
                DownloadFailure::no_space(),
                format!(
                    "package of {total} bytes is over the {} limit",
                    self.max_bytes
                ),
            ));
        }
        let dir = part.parent().unwrap_or(Path::new("."));
        if !has_room(dir, total.saturating_sub(have), self.reserve) {
            return Err(DlError::Fail(
                DownloadFailure::no_space(),
                format!("no room for {total} bytes"),
            ));
        }
        Ok(())
    }

    /// Streams a 200/206 body into `part` from offset `start`.
    async fn receive(
        &self,
        mut resp: Response,
        st: &mut DownloadState,
        part: &Path,
        start: u64,
        p: &mut Progress<'_>,
        hashing: &mut Hashing,
    ) -> Result<Attempt, DlError> {
        let remaining = resp.content_length();
        let total = remaining.map(|r| r.saturating_add(start));
        let validator = header(&resp, ETAG)
            .filter(|e| !e.starts_with("W/"))
            .or_else(|| header(&resp, LAST_MODIFIED));
        if let Some(t) = total {
            self.check_room(t, start, part)?;
        }
        let changed = st.total != total
            || st.validator != validator
            || (start == 0 && st.content_type != header(&resp, CONTENT_TYPE));
        if changed {
            st.total = total;
            st.validator = validator;
            st.content_type = header(&resp, CONTENT_TYPE);
            (p.journal)(st)?;
        }
        let file = if start == 0 {
            tokio::fs::File::create(part).await
        } else {
            tokio::fs::OpenOptions::new().append(true).open(part).await
        }
        .map_err(|e| io_failure(&e))?;
        // Hash while streaming; after a restart, hash what is already there.
        if hashing.at != start {
            let h = hash_file(part, start, Sha256::new())
                .await
                .map_err(|e| io_failure(&e))?;
            *hashing = Hashing { h, at: start };
        }
        // The receive loop only copies chunks into a batch buffer; hashing
        // and writing happen on a blocking thread, `IN_FLIGHT` batches
        // behind, so that neither stalls the socket (issue #4). The writer
        // hands each buffer back, so a download of any size allocates a few
        // of them and nothing per chunk crosses threads: the HTTP client
        // reuses its read buffer, and the RSS stays small whatever the
        // allocator does with memory freed on another thread.
        let file = file.into_std().await;
        let (tx, rx) = mpsc::channel(IN_FLIGHT);
        let (back_tx, mut back) = mpsc::channel(IN_FLIGHT + 2);
        let h = std::mem::take(&mut hashing.h);
        let writer =
            tokio::task::spawn_blocking(move || write_batches(file, rx, back_tx, h, start));
        let mut received = start;
        let mut batch = Batch::default();
        let mut first = true;
        let mut cancel = p.cancel.clone();
        let end = loop {
            let chunk = tokio::select! {
                c = tokio::time::timeout(self.idle, resp.chunk()) => c,
                () = cancelled(&mut cancel) => break Err(DlError::Stopped),
            };
            let chunk = match chunk {
                Err(_) => {
                    break Ok(Attempt::Retry(
                        DownloadFailure::lost(),
                        "download stalled".into(),
                    ))
                }
                Ok(Err(e)) => break Ok(Attempt::Retry(DownloadFailure::lost(), e.to_string())),
                Ok(Ok(None)) => break Ok(Attempt::Done),
                Ok(Ok(Some(c))) => c,
            };
            received = received.saturating_add(chunk.len() as u64);
            if received > self.max_bytes {
                break Err(DlError::Fail(
                    DownloadFailure::no_space(),
                    format!("package is over the {} byte limit", self.max_bytes),
                ));
            }
            if batch.buf.len() + chunk.len() > batch.buf.capacity()
                && !batch.buf.is_empty()
                && tx.send(batch.next(&mut back)).await.is_err()
            {
                break Ok(Attempt::Done);
            }
            if batch.buf.capacity() == 0 {
                batch.buf = back
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(BATCH_BYTES));
            }
            batch.buf.extend_from_slice(&chunk);
            drop(chunk);
            if first {
                // The first bytes are on disk before the crash point fires.
                first = false;
                let (ack, acked) = oneshot::channel();
                batch.synced = Some(ack);
                if tx.send(batch.next(&mut back)).await.is_err() || acked.await.is_err() {
                    // The writer failed: its error comes out below.
                    break Ok(Attempt::Done);
                }
                if let Err(h) = (p.checkpoint)("download-chunk") {
                    break Err(h.into());
                }
            } else if batch.buf.len() >= BATCH_BYTES
                && tx.send(batch.next(&mut back)).await.is_err()
            {
                break Ok(Attempt::Done);
            }
        };
        // What was received is kept (a retry resumes after it), except past
        // a failure or a crash point.
        if matches!(end, Ok(_) | Err(DlError::Stopped)) && !batch.buf.is_empty() {
            let _ = tx.send(batch).await;
        }
        drop(tx);
        let wrote = writer.await;
        let written = match wrote {
            Ok(Written {
                hash,
                written,
                result: Ok(()),
            }) => {
                *hashing = Hashing {
                    h: hash,
                    at: written,
                };
                written
            }
            Ok(Written { result: Err(e), .. }) => {
                // Unknown how much reached the file: hash it again on resume.
                *hashing = Hashing::default();
                return Err(end.err().unwrap_or_else(|| io_failure(&e)));
            }
            Err(e) => {
                *hashing = Hashing::default();
                let e = std::io::Error::other(e.to_string());
                return Err(end.err().unwrap_or_else(|| io_failure(&e)));
            }
        };
        match end? {
            Attempt::Done => {}
            retry @ Attempt::Retry(..) => return Ok(retry),
        }
        if let Some(t) = total {
            if written != t {
                return Ok(Attempt::Retry(
                    DownloadFailure::lost(),
                    format!("got {written} of {t} bytes"),
                ));
            }
        }
        if st.total.is_none() {
            st.total = Some(written);
            (p.journal)(st)?;
        }
        Ok(Attempt::Done)
    }

    /// POSTs an install-notify status (`DLOTA.md` §3 step 8), a few times
    /// if it does not get through. Returns whether a 2xx came back.
    pub(crate) async fn notify(&self, uri: &str, status: InstallStatus) -> bool {
        for attempt in 0..3u32 {
            let r = self
                .client
                .post(uri)
                .header(CONTENT_TYPE, "text/plain")
                .body(status.body())
                .send()
                .await;
            match r {
                Ok(resp) if resp.status().is_success() => return true,
                Ok(resp) => {
                    tracing::warn!(uri, status = %resp.status(), "install-notify refused");
                }
                Err(e) => tracing::warn!(uri, error = %e, "install-notify failed"),
            }
            tokio::time::sleep(Duration::from_millis(100u64 << attempt)).await;
        }
        false
    }
}

/// Bytes the receive loop collects before handing them to the writer: large
/// enough that the hand-over and the write calls cost little per byte, small
/// enough that the agent stays small while downloading (RSS budget 16 MB).
const BATCH_BYTES: usize = 1024 * 1024;
/// Batches queued for the writer; the receive loop waits when it is ahead.
const IN_FLIGHT: usize = 2;

/// Received bytes for the writer, in a buffer it hands back once written.
#[derive(Default)]
struct Batch {
    buf: Vec<u8>,
    /// Answered once the batch is written and `fdatasync`ed.
    synced: Option<oneshot::Sender<()>>,
}

impl Batch {
    /// This batch, to send; `self` continues with a buffer the writer gave
    /// back (or none yet: one is taken or made when the next chunk comes).
    fn next(&mut self, back: &mut mpsc::Receiver<Vec<u8>>) -> Batch {
        let buf = back.try_recv().unwrap_or_default();
        Batch {
            buf: std::mem::replace(&mut self.buf, buf),
            synced: self.synced.take(),
        }
    }
}

/// What the writer did: the hash and size of the file so far.
struct Written {
    hash: Sha256,
    written: u64,
    result: std::io::Result<()>,
}

/// The writer (a blocking thread): appends and hashes every batch, keeps the
/// page cache in check, and `fsync`s at the end. Stops at the first error,
/// which it returns once the channel closes or right away.
fn write_batches(
    mut file: std::fs::File,
    mut rx: mpsc::Receiver<Batch>,
    back: mpsc::Sender<Vec<u8>>,
    mut hash: Sha256,
    start: u64,
) -> Written {
    let mut written = start;
    // Writeback: started for [.., kicked), asked to be dropped for
    // [.., dropped) (see `WRITEBACK_WINDOW`).
    let (mut dropped, mut kicked) = (start, start);
    let mut run = || -> std::io::Result<()> {
        while let Some(mut batch) = rx.blocking_recv() {
            file.write_all(&batch.buf)?;
            hash.update(&batch.buf);
            written += batch.buf.len() as u64;
            batch.buf.clear();
            // Full (the loop has spares) or closed: the buffer is freed.
            let _ = back.try_send(batch.buf);
            if written.saturating_sub(kicked) >= WRITEBACK_WINDOW {
                // Start the writeback of the last window now, so the final
                // fsync has little left, and let the window before it
                // (written back by now) leave the page cache, so a large
                // package does not fill it. Advice only: errors ignored.
                let _ = rustix::fs::fadvise(
                    &file,
                    dropped,
                    NonZeroU64::new(written - dropped),
                    rustix::fs::Advice::DontNeed,
                );
                (dropped, kicked) = (kicked, written);
            }
            if let Some(synced) = batch.synced {
                file.sync_data()?;
                let _ = synced.send(());
            }
        }
        file.sync_all()
    };
    let result = run();
    Written {
        hash,
        written,
        result,
    }
}

/// Completes once the agent shuts down.
async fn cancelled(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|c| *c).await.is_err() {
        // The sender is gone: nobody can cancel any more.
        std::future::pending::<()>().await;
    }
}

/// A failed request: connection problems are "unavailable" (1501).
fn send_failure(e: &reqwest::Error) -> DownloadFailure {
    if e.is_connect() || e.is_timeout() {
        DownloadFailure::unreachable()
    } else {
        DownloadFailure::lost()
    }
}

/// An error status: final for 4xx, retried for 5xx (then 1500).
fn status_failure(resp: &Response) -> Result<Option<Attempt>, DlError> {
    let s = resp.status();
    if s.is_success() {
        return Ok(None);
    }
    let fail = DownloadFailure::http(s.as_u16());
    let why = format!("{} answered {s}", resp.url());
    if s.is_server_error() {
        Ok(Some(Attempt::Retry(fail, why)))
    } else {
        Err(DlError::Fail(fail, why))
    }
}

fn io_failure(e: &std::io::Error) -> DlError {
    if e.kind() == std::io::ErrorKind::StorageFull {
        DlError::Fail(DownloadFailure::no_space(), e.to_string())
    } else {
        DlError::Fail(DownloadFailure::lost(), e.to_string())
    }
}

fn header(resp: &Response, name: reqwest::header::HeaderName) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// The first byte of a `Content-Range: bytes A-B/T`.
fn content_range_start(resp: &Response) -> Option<u64> {
    let v = header(resp, CONTENT_RANGE)?;
    let range = v.strip_prefix("bytes ")?;
    range.split('-').next()?.trim().parse().ok()
}

/// Whether two media types are the same, ignoring parameters and case.
fn same_type(a: &str, b: &str) -> bool {
    let base = |s: &str| {
        s.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    };
    base(a) == base(b)
}

async fn read_limited(mut resp: Response, limit: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(c) = resp.chunk().await.map_err(|e| e.to_string())? {
        if out.len() + c.len() > limit {
            return Err(format!("descriptor larger than {limit} bytes"));
        }
        out.extend_from_slice(&c);
    }
    Ok(out)
}

async fn truncate(part: &Path) -> Result<(), DlError> {
    match tokio::fs::remove_file(part).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_failure(&e)),
        _ => Ok(()),
    }
}

/// The running SHA-256 of the `.part` file and how many bytes it covers.
#[derive(Clone, Default)]
struct Hashing {
    h: Sha256,
    at: u64,
}

/// Feeds the first `limit` bytes of `path` into `h`.
async fn hash_file(path: &Path, limit: u64, mut h: Sha256) -> std::io::Result<Sha256> {
    let f = tokio::fs::File::open(path).await?;
    let mut f = f.take(limit);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        h.update(buf.get(..n).unwrap_or_default());
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        assert!(same_type(
            "application/vnd.oma.dd+xml; charset=utf-8",
            DD_CONTENT_TYPE
        ));
        assert!(!same_type("text/plain", DD_CONTENT_TYPE));
    }
}
