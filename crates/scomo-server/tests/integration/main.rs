//! The store behaviour battery: every case runs on SQLite (a temp file) and
//! on PostgreSQL (`SCOMO_TEST_DATABASE_URL`, one fresh schema per test).
//!
//! The PostgreSQL half fails, never skips, when the variable is unset, so a
//! CI without a database cannot pass by accident.
#![expect(
    clippy::unwrap_used,
    reason = "battery cases are test code, called from the #[tokio::test] wrappers below"
)]

mod harness;

mod alerts;
mod campaigns;
mod devices;
mod notifications;
mod packages;
mod queue;
mod sessions;
mod tokens;

/// Instantiates every battery case as a `#[tokio::test]` for one backend.
macro_rules! battery {
    ($backend:ident, $db:expr, [$($area:ident :: $case:ident),* $(,)?]) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let db = $db.await;
                    crate::$area::$case(&db).await;
                }
            )*
        }
    };
}

macro_rules! all_cases {
    ($backend:ident, $db:expr) => {
        battery!(
            $backend,
            $db,
            [
                devices::provision_get_delete,
                devices::list_pages_and_filters,
                devices::device_info_and_seen,
                devices::nonces_credentials_labels,
                devices::delete_cascades,
                devices::bulk_provision,
                sessions::session_audit,
                sessions::finish_requeues_unsent,
                queue::fifo_claim_outcomes_complete,
                queue::outcomes_of_a_message_in_one_call,
                queue::rejects_bad_batches,
                queue::concurrent_claimers_never_share,
                queue::restart_mid_batch_completes_once,
                queue::restart_settles_each_kind,
                queue::finished_lease_expires,
                queue::cancel_and_owner_listing,
                alerts::record_list_correlate,
                alerts::drain_exactly_once_two_consumers,
                notifications::due_backoff_cancel,
                notifications::concurrent_claims_never_share,
                tokens::create_verify_list_revoke,
                packages::insert_get_list_delete,
                packages::tokens_use_and_records,
                packages::job_update_writes_its_batch_token_and_notification,
                campaigns::leases_commands_and_saves,
                campaigns::members_selection_and_outcomes,
            ]
        );
    };
}

all_cases!(sqlite, crate::harness::SqliteDb::new());
all_cases!(postgres, crate::harness::PgDb::new());
