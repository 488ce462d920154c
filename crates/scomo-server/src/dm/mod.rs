//! The DM-1 endpoint (`OMA-TS-DM_Protocol-V1_2` §5, HTTP binding).
//!
//! ```text
//!   POST /dm            package 1: new session ──▶ LiveSession::open
//!                         RespURI = <public URL>/dm/<token>
//!   POST /dm/<token>    every later message of that session, on this node
//! ```
//!
//! The token is 128 random bits naming a session held in this node's
//! memory; the public URL in front of it is this node's own, so a fleet
//! behind a load balancer keeps each session on the node that holds it.
//! Bodies are `application/vnd.syncml.dm+xml` or `+wbxml` (the DS types
//! `application/vnd.syncml+xml|wbxml` of older clients too, and sniffed when
//! the type says neither); the response uses the request's encoding.

pub(crate) mod session;
pub(crate) mod table;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use omadm::auth::HmacHeader;
use omadm::Incoming;
use tracing::warn;

use crate::error::AppError;
use crate::state::AppState;
use crate::store::{SessionOutcome, Timestamp};
use session::LiveSession;

pub use session::DEVDETAIL_LEAVES;

/// The DM routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/dm", post(first_message))
        .route("/dm/{token}", post(next_message))
}

/// Package 1 of a new session.
async fn first_message(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let started = Instant::now();
    let body = read_body(&state, &headers, body).await?;
    count_message(&headers, &body);
    if !state.sessions().has_room() {
        return Err(AppError::Unavailable(
            "this node holds as many DM sessions as it may; try again later".into(),
        ));
    }
    let token = crate::random::session_token();
    let base = public_base(&state, &headers);
    let resp_uri = format!("{base}/dm/{token}");
    let server_uri = format!("{base}/dm");
    let mut live =
        LiveSession::open(&state, resp_uri, server_uri, incoming(&headers, &body)).await?;
    let result = live.respond(&state).await;
    let resp = match result {
        Ok(r) => r,
        Err(e) => {
            fail(&state, &mut live, &e).await;
            return Err(e);
        }
    };
    if !live.is_finished() {
        state
            .sessions()
            .insert(token, Arc::new(tokio::sync::Mutex::new(live)));
    }
    observe(started, "first");
    Ok(dm_response(resp))
}

/// A later message of a session this node holds.
async fn next_message(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let started = Instant::now();
    let body = read_body(&state, &headers, body).await?;
    count_message(&headers, &body);
    let Some(session) = state.sessions().get(&token) else {
        return Err(unknown_session());
    };
    let mut live = session.lock().await;
    if live.is_closed() {
        return Err(unknown_session());
    }
    live.handle(incoming(&headers, &body))?;
    let result = live.respond(&state).await;
    let resp = match result {
        Ok(r) => r,
        Err(e) => {
            fail(&state, &mut live, &e).await;
            drop(live);
            state.sessions().remove(&token);
            return Err(e);
        }
    };
    if live.is_finished() {
        drop(live);
        state.sessions().remove(&token);
    }
    observe(started, "next");
    Ok(dm_response(resp))
}

fn unknown_session() -> AppError {
    AppError::NotFound(
        "this node holds no such DM session (it ended, expired, or the node restarted); \
         start a new session at /dm"
            .into(),
    )
}

/// Closes a session whose message could not be handled (store failure).
async fn fail(state: &AppState, live: &mut LiveSession, e: &AppError) {
    live.span().in_scope(|| warn!("session failed: {e}"));
    live.close(
        state,
        SessionOutcome::Error,
        Some("server error while handling a message".into()),
        Timestamp::now(),
    )
    .await;
}

fn observe(started: Instant, kind: &'static str) {
    metrics::histogram!(crate::metrics::MESSAGE_DURATION, "kind" => kind)
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(crate::metrics::MESSAGES_SENT).increment(1);
}

fn count_message(headers: &HeaderMap, body: &[u8]) {
    let wbxml = content_type(headers)
        .map(|t| t.to_ascii_lowercase().contains("wbxml"))
        .unwrap_or_else(|| body.first().is_some_and(|b| *b <= 3));
    metrics::counter!(crate::metrics::MESSAGES_RECEIVED, "encoding" => if wbxml { "wbxml" } else { "xml" })
        .increment(1);
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}

fn incoming<'a>(headers: &'a HeaderMap, body: &'a [u8]) -> Incoming<'a> {
    Incoming {
        body,
        content_type: content_type(headers),
        hmac: headers.get(HmacHeader::NAME).and_then(|v| v.to_str().ok()),
    }
}

/// Reads the body, refusing more than MaxMsgSize bytes (413) before reading
/// them when Content-Length says so.
async fn read_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Vec<u8>, AppError> {
    let limit = usize::try_from(state.config().dm.max_msg_size).unwrap_or(usize::MAX);
    let too_big = |size: String| {
        AppError::PayloadTooLarge(format!(
            "message of {size} bytes exceeds the MaxMsgSize of {limit} bytes"
        ))
    };
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > limit as u64 {
            return Err(too_big(len.to_string()));
        }
    }
    let read = axum::body::to_bytes(body, limit);
    match tokio::time::timeout(Duration::from_secs(60), read).await {
        Ok(Ok(b)) if b.is_empty() => Err(AppError::BadRequest(
            "empty body: expected a SyncML DM message".into(),
        )),
        Ok(Ok(b)) => Ok(b.to_vec()),
        Ok(Err(_)) => Err(too_big("more than that".into())),
        Err(_) => Err(AppError::BadRequest(
            "the body took too long to arrive".into(),
        )),
    }
}

/// `scheme://host[:port]` devices reach this node at: the configured (or
/// bound) public URL, else the request's `Host`.
pub(crate) fn public_base(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(u) = state.public_url() {
        return u.to_owned();
    }
    let scheme = if state.config().tls_enabled() {
        "https"
    } else {
        "http"
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

fn dm_response(resp: omadm::server::Response) -> Response {
    let mut r = (StatusCode::OK, resp.body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(resp.content_type),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(mac) = resp.hmac.and_then(|m| HeaderValue::from_str(&m).ok()) {
        h.insert(HmacHeader::NAME, mac);
    }
    r
}

/// Drops this node's sessions idle past their timeout, then closes, as
/// lost, sessions of any node idle for twice that (their node died).
pub(crate) async fn sweep(state: &AppState) {
    for s in state.sessions().take_expired(Instant::now()) {
        let mut live = s.lock().await;
        live.close(
            state,
            SessionOutcome::Aborted,
            Some("idle timeout".into()),
            Timestamp::now(),
        )
        .await;
    }
    let now = Timestamp::now();
    let idle_since = now - state.config().session_idle_timeout() * 2;
    match state.store().close_idle_sessions(idle_since, now).await {
        Ok(r) if r.sessions_closed > 0 => tracing::info!(
            sessions = r.sessions_closed,
            requeued = r.requeued,
            "closed sessions abandoned by their node"
        ),
        Ok(_) => {}
        Err(e) => warn!(error = %crate::error::ErrorChain(&e), "idle session sweep failed"),
    }
}

/// Closes every session this node holds (shutdown): their batches are
/// settled now rather than at the next start.
pub(crate) async fn close_all(state: &AppState) {
    for s in state.sessions().drain() {
        let mut live = s.lock().await;
        live.close(
            state,
            SessionOutcome::Lost,
            Some("server shut down".into()),
            Timestamp::now(),
        )
        .await;
    }
}
