//! A campaign's progress and state as saved in the store and shown by the
//! API: plain serde mirrors of the planner's [`CampaignStatus`] and pause
//! or abort reasons.

use serde::{Deserialize, Serialize};

use super::def::class_name;
use super::planner::{
    AbortReason, CampaignState, CampaignStatus, Counts, PauseReason, ThresholdTrip,
};
use super::spec::ErrorClass;

/// Devices by progress and outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CountsView {
    /// Devices.
    pub devices: u32,
    /// Not started.
    pub pending: u32,
    /// Started, not finished.
    pub in_flight: u32,
    /// Succeeded (reported and verified).
    pub succeeded: u32,
    /// Failed, every class.
    pub failed: u32,
    /// Failed: device faults (14xx but 1401).
    pub device_fault: u32,
    /// Failed: download server faults (15xx).
    pub download_server_fault: u32,
    /// Failed: the user declined (1401).
    pub user_declined: u32,
    /// Failed with another result code.
    pub other_failure: u32,
    /// No result in time.
    pub timed_out: u32,
    /// Reported success, inventory disagrees.
    pub mismatch: u32,
    /// Cancelled, or could not start.
    pub cancelled: u32,
}

impl From<&Counts> for CountsView {
    fn from(c: &Counts) -> CountsView {
        let o = &c.outcomes;
        CountsView {
            devices: c.devices,
            pending: c.pending,
            in_flight: c.in_flight,
            succeeded: o.succeeded,
            failed: o.failed(),
            device_fault: o.device_fault,
            download_server_fault: o.download_server_fault,
            user_declined: o.user_declined,
            other_failure: o.other_failure,
            timed_out: o.timed_out,
            mismatch: o.mismatch,
            cancelled: o.cancelled,
        }
    }
}

/// One stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StageView {
    /// Whether its jobs may start.
    pub opened: bool,
    /// Its devices.
    #[serde(flatten)]
    pub counts: CountsView,
}

/// Progress: per stage and in total.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProgressView {
    /// Every stage.
    pub stages: Vec<StageView>,
    /// Every device.
    pub totals: CountsView,
    /// Devices split over the stages at the start (the rest joined later).
    pub initial: usize,
}

impl ProgressView {
    /// The view of a planner snapshot.
    pub fn new(s: &CampaignStatus, initial: usize) -> ProgressView {
        ProgressView {
            stages: s
                .stages
                .iter()
                .map(|st| StageView {
                    opened: st.opened,
                    counts: (&st.counts).into(),
                })
                .collect(),
            totals: (&s.totals).into(),
            initial,
        }
    }
}

/// Why a campaign is paused or aborted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReasonView {
    /// `operator`, `error_threshold` or `success_threshold_not_met`.
    pub kind: String,
    /// The stage concerned (0-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<usize>,
    /// The failure class of a tripped error threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Failures counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures: Option<u32>,
    /// Finished jobs counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<u32>,
    /// The threshold's tolerated share, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pct: Option<u8>,
    /// Devices of the stage that succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succeeded: Option<u32>,
    /// Devices of the stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<u32>,
}

impl ReasonView {
    fn trip(t: &ThresholdTrip) -> ReasonView {
        ReasonView {
            kind: "error_threshold".into(),
            stage: Some(t.stage),
            class: Some(class_name(t.class).into()),
            failures: Some(t.failures),
            finished: Some(t.finished),
            max_pct: Some(t.max_pct),
            succeeded: None,
            devices: None,
        }
    }

    fn to_trip(&self) -> Option<ThresholdTrip> {
        let class = match self.class.as_deref()? {
            "device_fault" => ErrorClass::DeviceFault,
            "download_server_fault" => ErrorClass::DownloadServerFault,
            "user_declined" => ErrorClass::UserDeclined,
            _ => return None,
        };
        Some(ThresholdTrip {
            stage: self.stage?,
            class,
            failures: self.failures?,
            finished: self.finished?,
            max_pct: self.max_pct?,
        })
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        match self.kind.as_str() {
            "error_threshold" => format!(
                "stage {}: {} of {} finished jobs failed with {} (more than {}%)",
                self.stage.unwrap_or(0) + 1,
                self.failures.unwrap_or(0),
                self.finished.unwrap_or(0),
                self.class.as_deref().unwrap_or("?"),
                self.max_pct.unwrap_or(0)
            ),
            "success_threshold_not_met" => format!(
                "stage {}: only {} of {} devices succeeded",
                self.stage.unwrap_or(0) + 1,
                self.succeeded.unwrap_or(0),
                self.devices.unwrap_or(0)
            ),
            _ => "paused by an operator".into(),
        }
    }
}

/// The state's name and reason, as stored.
pub fn state_parts(s: CampaignState) -> (&'static str, Option<ReasonView>) {
    match s {
        CampaignState::Scheduled => ("scheduled", None),
        CampaignState::Running => ("running", None),
        CampaignState::Paused { reason } => (
            "paused",
            Some(match reason {
                PauseReason::Operator => ReasonView {
                    kind: "operator".into(),
                    stage: None,
                    class: None,
                    failures: None,
                    finished: None,
                    max_pct: None,
                    succeeded: None,
                    devices: None,
                },
                PauseReason::ErrorThreshold(t) => ReasonView::trip(&t),
                PauseReason::SuccessThresholdNotMet {
                    stage,
                    succeeded,
                    devices,
                } => ReasonView {
                    kind: "success_threshold_not_met".into(),
                    stage: Some(stage),
                    class: None,
                    failures: None,
                    finished: None,
                    max_pct: None,
                    succeeded: Some(succeeded),
                    devices: Some(devices),
                },
            }),
        ),
        CampaignState::Aborted {
            reason: AbortReason::ErrorThreshold(t),
        } => ("aborted", Some(ReasonView::trip(&t))),
        CampaignState::Cancelled => ("cancelled", None),
        CampaignState::Completed => ("completed", None),
    }
}

/// The state back from its stored parts (`None` when they make no sense).
pub fn state_from_parts(name: &str, reason: Option<&ReasonView>) -> Option<CampaignState> {
    Some(match name {
        "scheduled" => CampaignState::Scheduled,
        "running" => CampaignState::Running,
        "cancelled" => CampaignState::Cancelled,
        "completed" => CampaignState::Completed,
        "aborted" => CampaignState::Aborted {
            reason: AbortReason::ErrorThreshold(reason?.to_trip()?),
        },
        "paused" => {
            let r = reason?;
            let reason = match r.kind.as_str() {
                "error_threshold" => PauseReason::ErrorThreshold(r.to_trip()?),
                "success_threshold_not_met" => PauseReason::SuccessThresholdNotMet {
                    stage: r.stage?,
                    succeeded: r.succeeded?,
                    devices: r.devices?,
                },
                _ => PauseReason::Operator,
            };
            CampaignState::Paused { reason }
        }
        _ => return None,
    })
}
