//! Campaign rows: the campaign with its progress snapshot, and the devices
//! it has taken.

use super::jobs_model::{JobId, JobState};
use super::model::Timestamp;

/// A campaign id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CampaignId(pub i64);

impl std::fmt::Display for CampaignId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A campaign to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCampaign {
    /// Its name.
    pub name: String,
    /// Its definition (JSON).
    pub definition: String,
    /// Its first state (`scheduled`).
    pub state: String,
}

/// A stored campaign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CampaignRecord {
    /// Its id.
    pub id: CampaignId,
    /// Its name.
    pub name: String,
    /// Its definition (JSON).
    pub definition: String,
    /// `scheduled`, `running`, `paused`, `aborted`, `cancelled` or `completed`.
    pub state: String,
    /// Why it is paused or aborted (JSON).
    pub reason: Option<String>,
    /// The highest opened stage.
    pub current_stage: Option<u32>,
    /// Bumped by every resume.
    pub epoch: i64,
    /// The last progress snapshot (JSON).
    pub status: Option<String>,
    /// An operator command not applied yet.
    pub command: Option<String>,
    /// The node running it.
    pub owner: Option<String>,
    /// Until when that node holds it.
    pub lease_until: Option<Timestamp>,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
    /// Reached a final state.
    pub finished_at: Option<Timestamp>,
}

/// What the owner of a campaign saves after a round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CampaignUpdate {
    /// The state.
    pub state: String,
    /// Why it is paused or aborted (JSON).
    pub reason: Option<String>,
    /// The highest opened stage.
    pub current_stage: Option<u32>,
    /// The epoch.
    pub epoch: i64,
    /// The progress snapshot (JSON).
    pub status: String,
    /// Whether the state is final.
    pub finished: bool,
}

/// A device a campaign has taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CampaignMember {
    /// Arrival order (increasing across the store).
    pub seq: i64,
    /// The device.
    pub device_id: String,
    /// The stage its job started in.
    pub stage: Option<u32>,
    /// Its job, once started (none if the job could not be created).
    pub job_id: Option<JobId>,
    /// When its job started.
    pub started_at: Option<Timestamp>,
    /// How it ended: `succeeded`, `failed`, `timed_out`, `mismatch`, `cancelled`.
    pub outcome: Option<String>,
    /// The SCOMO result code, when there is one.
    pub result_code: Option<u16>,
    /// The failure class (`device_fault`, `download_server_fault`,
    /// `user_declined`, `other`).
    pub class: Option<String>,
    /// The campaign epoch it finished in.
    pub epoch: Option<i64>,
    /// When it finished.
    pub finished_at: Option<Timestamp>,
}

/// How a member's job ended, for [`super::CampaignStore::finish_members`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberOutcome {
    /// `succeeded`, `failed`, `timed_out`, `mismatch` or `cancelled`.
    pub outcome: String,
    /// The SCOMO result code.
    pub result_code: Option<u16>,
    /// The failure class.
    pub class: Option<String>,
    /// The campaign epoch.
    pub epoch: i64,
}

/// A member whose job has finished and whose outcome is not recorded yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinishedMemberJob {
    /// The device.
    pub device_id: String,
    /// Its job.
    pub job_id: JobId,
    /// The job's final state.
    pub state: JobState,
    /// The job's SCOMO result code.
    pub result_code: Option<u16>,
}
