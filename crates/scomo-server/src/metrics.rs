//! Metrics through the `metrics` facade, exported at `/metrics` in
//! Prometheus text. Every metric is named and described here, once.
//!
//! The recorder is process-global (the facade's design): several apps in one
//! process (tests) share it, so their counts add up.

use std::sync::OnceLock;

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// DM sessions started, by `initiation` (`client`, `server`, `unspecified`).
pub const SESSIONS_STARTED: &str = "scomo_dm_sessions_started_total";
/// DM sessions ended, by `outcome` (`ok`, `auth_failed`, `aborted`, `error`, `lost`).
pub const SESSIONS_ENDED: &str = "scomo_dm_sessions_ended_total";
/// DM sessions held in memory on this node.
pub const SESSIONS_ACTIVE: &str = "scomo_dm_sessions_active";
/// DM messages received, by `encoding` (`xml`, `wbxml`).
pub const MESSAGES_RECEIVED: &str = "scomo_dm_messages_received_total";
/// DM messages sent.
pub const MESSAGES_SENT: &str = "scomo_dm_messages_sent_total";
/// Statuses devices returned for our commands, by `code`.
pub const STATUSES: &str = "scomo_dm_statuses_total";
/// Devices that failed authentication (wrong or missing credentials,
/// unknown devices).
pub const AUTH_FAILURES: &str = "scomo_dm_auth_failures_total";
/// Authentication challenges issued.
pub const AUTH_CHALLENGES: &str = "scomo_dm_auth_challenges_total";
/// Time to handle one DM message (decode, engine, store, encode), by `kind`
/// (`first`, `next`).
pub const MESSAGE_DURATION: &str = "scomo_dm_message_duration_seconds";
/// Duration of whole DM sessions.
pub const SESSION_DURATION: &str = "scomo_dm_session_duration_seconds";
/// Command batches claimed by sessions.
pub const BATCHES_CLAIMED: &str = "scomo_batches_claimed_total";
/// Command batches completed.
pub const BATCHES_COMPLETED: &str = "scomo_batches_completed_total";
/// Generic alerts received and stored, by `code`.
pub const ALERTS_RECEIVED: &str = "scomo_dm_alerts_received_total";
/// Counter: SCOMO job state changes, by new state.
pub const JOBS_MOVED: &str = "scomo_jobs_moved_total";
/// Package 0 delivery attempts, by `transport` and `result` (`sent`, `failed`).
pub const NOTIFICATIONS: &str = "scomo_notifications_total";
/// Writes committed together by one SQLite group transaction.
pub const STORE_GROUP_SIZE: &str = "scomo_store_group_commit_writes";
/// HTTP requests answered with an error, by `code`.
pub const HTTP_ERRORS: &str = "scomo_http_errors_total";

const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const SESSION_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0];

/// The process's Prometheus handle, installing the recorder on first use.
///
/// If another recorder was installed first (an embedding program's), the
/// handle renders an empty registry.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(MESSAGE_DURATION.into()), DURATION_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(SESSION_DURATION.into()),
                        SESSION_BUCKETS,
                    )
                });
            let builder = match builder {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!("metrics buckets: {e}");
                    PrometheusBuilder::new()
                }
            };
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics stays empty");
            }
            describe();
            handle
        })
        .clone()
}

fn describe() {
    describe_counter!(SESSIONS_STARTED, "DM sessions started");
    describe_counter!(SESSIONS_ENDED, "DM sessions ended, by outcome");
    describe_gauge!(SESSIONS_ACTIVE, "DM sessions held in memory on this node");
    describe_counter!(MESSAGES_RECEIVED, "DM messages received");
    describe_counter!(MESSAGES_SENT, "DM messages sent");
    describe_counter!(STATUSES, "statuses devices returned for server commands");
    describe_counter!(AUTH_FAILURES, "devices that failed DM authentication");
    describe_counter!(AUTH_CHALLENGES, "DM authentication challenges issued");
    describe_histogram!(
        MESSAGE_DURATION,
        Unit::Seconds,
        "time to handle one DM message"
    );
    describe_histogram!(SESSION_DURATION, Unit::Seconds, "duration of DM sessions");
    describe_counter!(BATCHES_CLAIMED, "command batches claimed by DM sessions");
    describe_counter!(BATCHES_COMPLETED, "command batches completed");
    describe_counter!(ALERTS_RECEIVED, "client alerts received and stored");
    describe_counter!(NOTIFICATIONS, "package 0 delivery attempts");
    describe_histogram!(
        STORE_GROUP_SIZE,
        "writes committed together by one SQLite group transaction"
    );
    describe_counter!(HTTP_ERRORS, "HTTP requests answered with an error");
}
