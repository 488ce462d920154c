//! The SCOMO worker each node runs: it picks up results no session handled
//! (the node that received them died first), times jobs out and starts
//! scheduled steps.

use std::time::Duration;

use tracing::warn;

use crate::state::AppState;
use crate::store::{Lease, Timestamp};

/// Runs until `shutdown` resolves.
pub(crate) async fn run(state: AppState, shutdown: impl std::future::Future<Output = ()>) {
    let every = Duration::from_millis(state.config().scomo.worker_interval_ms);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = tick.tick() => {}
        }
        let lease = Lease {
            consumer: format!("{}/scomo", state.node_id()),
            until: Timestamp::now() + Duration::from_secs(60),
        };
        if let Err(e) = super::worker_round(&state, &lease).await {
            warn!("SCOMO worker round failed: {e}");
        }
    }
}
