//! Live events for the external management infrastructure: job changes,
//! received alerts and session ends, fanned out to `GET /api/v1/events`
//! (Server-Sent Events) subscribers of this node.
//!
//! Events are a live view, not a log: a subscriber that falls behind by
//! more than [`CAPACITY`] events is told how many it missed (`lagged`), and
//! the durable truth stays in the store (jobs with their history, alerts,
//! sessions). With several nodes, each node streams what it handles.

use serde::Serialize;
use tokio::sync::broadcast;

use crate::store::Timestamp;

/// Events kept for slow subscribers.
pub const CAPACITY: usize = 1024;

/// One event: the `data:` of an `event: job|alert|session` line of
/// `GET /api/v1/events`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ApiEvent {
    /// `job`, `alert` or `session` (also the SSE event name).
    #[schema(example = "job")]
    pub kind: &'static str,
    /// The job id, alert id or session key.
    pub id: i64,
    /// The device.
    pub device_id: String,
    /// The job's state, the alert's code, the session's outcome.
    pub state: String,
    /// One line about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// When (RFC 3339).
    #[schema(format = DateTime)]
    pub at: String,
}

impl ApiEvent {
    /// An event at `at`.
    pub fn new(
        kind: &'static str,
        id: i64,
        device_id: &str,
        state: impl Into<String>,
        detail: Option<String>,
        at: Timestamp,
    ) -> ApiEvent {
        ApiEvent {
            kind,
            id,
            device_id: device_id.to_owned(),
            state: state.into(),
            detail,
            at: crate::api::rfc3339(at),
        }
    }
}

/// The fan-out.
#[derive(Debug)]
pub(crate) struct Events {
    tx: broadcast::Sender<ApiEvent>,
}

impl Events {
    pub(crate) fn new() -> Events {
        Events {
            tx: broadcast::channel(CAPACITY).0,
        }
    }

    /// Sends to every subscriber (none: dropped).
    pub(crate) fn publish(&self, ev: ApiEvent) {
        let _ = self.tx.send(ev);
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<ApiEvent> {
        self.tx.subscribe()
    }
}
