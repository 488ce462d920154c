//! Campaigns: one SCOMO operation rolled out over many devices — the pure
//! decision core.
//!
//! A [`Planner`] is a state machine with no I/O, no store and no async: the
//! driver (later: a task over the store) feeds it events —
//! [`Planner::add_devices`], [`Planner::job_finished`], [`Planner::pause`],
//! [`Planner::resume`], [`Planner::cancel`] — and asks it what to do with
//! [`Planner::next_actions`], which answers [`Action::StartJob`] for each
//! device whose job should start now and at most one [`Action::WaitUntil`]
//! (ask again then); no action means "wait for the next event". Time is
//! passed in as unix milliseconds ([`Millis`]; the store's
//! `Timestamp::unix_millis`), randomness as a seeded [`XorShift64`], so a
//! run is reproducible with a simulated clock.
//!
//! ```text
//!   Scheduled ──start_at, ≥1 device──▶ Running ──all stages opened, all jobs finished──▶ Completed
//!       │  ▲                           │  ▲   │
//!     pause│resume               pause │  │resume   error threshold (Abort) ──▶ Aborted
//!       ▼  │                           ▼  │   │
//!       Paused ◀── error threshold (Pause) / stage finished below success threshold
//!   any non-terminal state ──cancel──▶ Cancelled
//! ```
//!
//! # Rules
//!
//! **Stages.** Devices are split over the stages when the campaign starts
//! (the first [`Planner::next_actions`] at or after `start_at` with at least
//! one device): in arrival order, each stage but the last takes its size —
//! [`StageSize::Percent`] of all devices, rounded up, or
//! [`StageSize::Count`] — capped by what is left; the last stage takes every
//! remaining device whatever its size says. Only opened stages start jobs;
//! stage 0 opens at the start, and jobs start lowest stage first, in
//! arrival order.
//!
//! **Success threshold.** The next stage opens as soon as the current
//! stage's *succeeded* jobs reach `success_threshold_pct` percent of its
//! devices (`succeeded × 100 ≥ pct × devices`; an empty stage passes at
//! once). The rest of the stage keeps running alongside. If every job of the
//! stage has finished below the threshold, the campaign pauses
//! ([`PauseReason::SuccessThresholdNotMet`]); resuming opens the next stage
//! anyway (the operator's decision). The last stage has no gate: the
//! campaign completes when every stage is open and every job has finished.
//!
//! **What counts as failure.** [`Outcome::Succeeded`] is success;
//! [`Outcome::Cancelled`] is neither (it counts as finished in the stage, not
//! in error thresholds). Every other outcome is a failure of one
//! [`ErrorClass`]: `Failed(UserDeclined)` (1401) → `UserDeclined`;
//! `Failed(DownloadServerFault)` (15xx) → `DownloadServerFault`;
//! `Failed(DeviceFault)`, `Failed` with any other class, `TimedOut` and
//! `Mismatch` → `DeviceFault`.
//!
//! **Error thresholds.** Evaluated per opened stage after every event: with
//! `finished` the stage's finished, not cancelled, jobs and `failures` those
//! of the threshold's class, a threshold trips when `finished ≥
//! max(min_finished, 1)` and `failures × 100 > max_pct × finished`. An
//! `Abort` threshold wins over a `Pause` one and trips even while paused;
//! `Pause` trips only while running. Resuming starts the counts afresh (the
//! failures the operator has seen no longer count; the per-outcome counts in
//! [`CampaignStatus`] keep everything).
//!
//! **Pacing.** A token bucket holds up to `burst` starts and refills at
//! `rate_per_sec`; it is full at the first start. A start that has to wait
//! for a token is further delayed by a jitter drawn once in `0..=jitter_ms`,
//! so every start is at most `jitter_ms` after its token was there, and the
//! rate is an upper bound. At most `max_concurrency` jobs are in flight (a
//! job is in flight from its `StartJob` to its `job_finished`). No job
//! starts before `start_at`, nor outside the daily UTC [`Window`] when one
//! is set (jobs in flight are not touched). Pause, abort and cancel stop
//! starts only: jobs in flight are the driver's to cancel, and their
//! outcomes are still counted.
//!
//! **Late joiners.** [`Planner::add_devices`] takes the initial selection
//! and devices that start matching later alike (ids already known are
//! ignored). Until the campaign starts, every device is pooled and the
//! stages are split over the whole pool at the start. Once it has started, a
//! new device joins the *current* stage — the highest opened one — and is
//! started like its other pending devices (so it also counts in that stage's
//! success gate); a stage already passed is never reopened. An aborted,
//! cancelled or completed campaign takes no more devices.

pub mod def;
pub(crate) mod driver;
mod planner;
mod rng;
mod spec;
#[cfg(test)]
mod tests;
pub mod view;

pub use planner::{
    AbortReason, Action, CampaignState, CampaignStatus, Counts, Outcome, OutcomeCounts,
    PauseReason, Planner, Progress, Saved, SavedDevice, StageStatus, ThresholdTrip,
};
pub use rng::XorShift64;
pub use spec::{
    CampaignSpec, ErrorClass, ErrorThreshold, SpecError, Stage, StageSize, ThresholdAction, Window,
};

/// A time: milliseconds since the Unix epoch, UTC.
pub type Millis = i64;
