//! The values of the SCOMO job store: jobs and their history, inventory,
//! catalog rules. Plain data; no I/O.

use std::fmt;

use super::model::{BatchId, NewBatch, Timestamp};

/// The store's key of a job; increases with creation order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(pub i64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

macro_rules! named_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $s:literal,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $var,)* }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$var,)*];

            /// The stored (and API) name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$var => $s,)* }
            }

            /// Parses a name (ASCII case-insensitive).
            pub fn parse(s: &str) -> Option<$name> {
                $(if s.eq_ignore_ascii_case($s) { return Some($name::$var); })*
                None
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named_enum! {
    /// What a job asks of the device (the command-line `--op` names).
    JobOp {
        /// Fetch a package (Delivered, not installed).
        Download = "Download",
        /// Fetch and install, components active.
        DownloadInstall = "DownloadInstall",
        /// Fetch and install, components inactive.
        DownloadInstallInactive = "DownloadInstallInactive",
        /// Install a delivered package, components active.
        Install = "Install",
        /// Install a delivered package, components inactive.
        InstallInactive = "InstallInactive",
        /// DownloadInstall of a newer version of a deployed component.
        Update = "Update",
        /// Remove a deployed component, or a delivered package.
        Remove = "Remove",
        /// Activate a deployed component.
        Activate = "Activate",
        /// Deactivate a deployed component.
        Deactivate = "Deactivate",
    }
}

named_enum! {
    /// How the package reaches the device.
    Delivery {
        /// In the DM session, as a Large Object into `Delivered/<x>/Data`.
        Direct = "direct",
        /// The device fetches `PkgURL` from the alternate download server.
        Http = "http",
        /// `PkgURL` is an OMA Download OTA descriptor.
        Dlota = "dlota",
        /// The operation carries no package.
        None = "none",
    }
}

named_enum! {
    /// Where a job is.
    ///
    /// ```text
    /// queued ─▶ running ─▶ awaiting_result ─▶ verifying ─▶ succeeded
    ///    │         │             │                │     └─▶ mismatch
    ///    │         └─────────────┴────────────────┴─────▶ failed | timed_out
    ///    └─▶ cancelled (any live state)      scheduled ─▶ running (next step)
    /// ```
    JobState {
        /// Waiting for a session with the device.
        Queued = "queued",
        /// Commands are on their way or being answered.
        Running = "running",
        /// The device accepted the operation (202) and will report it.
        AwaitingResult = "awaiting_result",
        /// The device reported success; the inventory is being read back.
        Verifying = "verifying",
        /// Waiting for the start time of its next step.
        Scheduled = "scheduled",
        /// Reported successful and seen in the inventory as expected.
        Succeeded = "succeeded",
        /// The device (or the server) reported a failure.
        Failed = "failed",
        /// Reported successful, but the inventory does not show it.
        Mismatch = "mismatch",
        /// No result came before the deadline.
        TimedOut = "timed_out",
        /// Cancelled by an operator.
        Cancelled = "cancelled",
    }
}

impl JobState {
    /// Whether the job is over.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded
                | JobState::Failed
                | JobState::Mismatch
                | JobState::TimedOut
                | JobState::Cancelled
        )
    }
}

named_enum! {
    /// Who made a job.
    JobOrigin {
        /// The REST API (an operator or the external infrastructure).
        Api = "api",
        /// A catalog rule, in a session with the device.
        Catalog = "catalog",
        /// A campaign.
        Campaign = "campaign",
    }
}

/// A job to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewJob {
    /// The device.
    pub device_id: String,
    /// The operation.
    pub op: JobOp,
    /// The package, when the operation has one.
    pub pkg_id: Option<String>,
    /// The component, when the operation names one.
    pub component_id: Option<String>,
    /// How the package travels.
    pub delivery: Delivery,
    /// Who made it.
    pub origin: JobOrigin,
    /// Its first state (queued, or scheduled for a later start).
    pub state: JobState,
    /// The engine's plan (JSON; opaque to the store).
    pub plan: String,
    /// What it works on (component ids, package ids): creation fails with
    /// [`super::StoreError::Conflict`] while a live job holds one of them.
    pub locks: Vec<String>,
    /// When the engine wants to look at it again (start time).
    pub wake_at: Option<Timestamp>,
    /// When it times out.
    pub deadline_at: Option<Timestamp>,
}

/// A stored job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// Its key.
    pub id: JobId,
    /// The device.
    pub device_id: String,
    /// The operation.
    pub op: JobOp,
    /// The package.
    pub pkg_id: Option<String>,
    /// The component.
    pub component_id: Option<String>,
    /// How the package travels.
    pub delivery: Delivery,
    /// Who made it.
    pub origin: JobOrigin,
    /// Where it is.
    pub state: JobState,
    /// Revision: every update is fenced on it.
    pub rev: i64,
    /// The batch it waits on.
    pub batch_id: Option<BatchId>,
    /// The engine's plan.
    pub plan: String,
    /// The SCOMO result code (or DM status) that decided it.
    pub result_code: Option<u16>,
    /// The outcome in one line.
    pub outcome: Option<String>,
    /// More about the outcome.
    pub detail: Option<String>,
    /// When the engine looks at it again.
    pub wake_at: Option<Timestamp>,
    /// When it times out.
    pub deadline_at: Option<Timestamp>,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
}

/// A change to a job, applied only if its revision is still `rev`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobUpdate {
    /// The new state (terminal states release the job's locks).
    pub state: JobState,
    /// The batch it now waits on.
    pub batch_id: Option<BatchId>,
    /// The new plan.
    pub plan: String,
    /// The deciding code.
    pub result_code: Option<u16>,
    /// The outcome line.
    pub outcome: Option<String>,
    /// More about it.
    pub detail: Option<String>,
    /// When to look again.
    pub wake_at: Option<Timestamp>,
    /// When it times out.
    pub deadline_at: Option<Timestamp>,
    /// A line for the history (with the new state).
    pub event: Option<String>,
    /// A batch to enqueue with the update, in its transaction: the job then
    /// waits on it (its id replaces `batch_id`). Nothing is enqueued when
    /// the update does not apply.
    pub enqueue: Option<NewBatch>,
    /// A download token to create with the update (as
    /// [`crate::store::PackageStore::create_download_token`]), for the
    /// batch's download URL.
    pub token: Option<NewDownloadToken>,
    /// Whether to queue a package 0 for the job's device with the update
    /// (as [`crate::store::NotificationStore::enqueue_notification`], due
    /// now).
    pub notify: bool,
}

/// A download token to create (see [`JobUpdate::token`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDownloadToken {
    /// The token, from [`crate::store::new_download_token`].
    pub token: String,
    /// The package it serves.
    pub pkg_id: String,
    /// The job it is for.
    pub job_id: Option<i64>,
    /// When it stops working.
    pub expires_at: Timestamp,
}

impl JobUpdate {
    /// An update that keeps everything of `job` (change what you need).
    pub fn keep(job: &Job) -> JobUpdate {
        JobUpdate {
            state: job.state,
            batch_id: job.batch_id,
            plan: job.plan.clone(),
            result_code: job.result_code,
            outcome: job.outcome.clone(),
            detail: job.detail.clone(),
            wake_at: job.wake_at,
            deadline_at: job.deadline_at,
            event: None,
            enqueue: None,
            token: None,
            notify: false,
        }
    }
}

/// One line of a job's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobEvent {
    /// When.
    pub at: Timestamp,
    /// The state after it.
    pub state: JobState,
    /// What happened.
    pub message: String,
}

/// Which jobs to list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Only this device's.
    pub device_id: Option<String>,
    /// Only in this state.
    pub state: Option<JobState>,
    /// Only live ones (not terminal).
    pub live: bool,
    /// Only this package's.
    pub pkg_id: Option<String>,
}

named_enum! {
    /// The two inventory lists of `./SCOMO/Inventory`.
    InventoryKind {
        /// `Inventory/Delivered/<x>`: packages on the device.
        Delivered = "delivered",
        /// `Inventory/Deployed/<x>`: installed components.
        Deployed = "deployed",
    }
}

/// One entry of a device's inventory as last read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InventoryEntry {
    /// Delivered or deployed.
    pub kind: Option<InventoryKind>,
    /// The `<x>` node name.
    pub entry: String,
    /// `PkgID` (delivered) or `ID` (deployed).
    pub item_id: Option<String>,
    /// `Name`.
    pub name: Option<String>,
    /// `Version` (deployed).
    pub version: Option<String>,
    /// `State`.
    pub state: Option<u16>,
    /// `Status`.
    pub status: Option<u16>,
    /// `PkgIDRef` (deployed).
    pub pkg_id_ref: Option<String>,
    /// `EnvType` (delivered).
    pub env_type: Option<String>,
}

/// A device's inventory as last read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inventory {
    /// When it was read.
    pub read_at: Timestamp,
    /// How: `struct-data` (one `?list=StructData` Get) or `recursive`.
    pub method: String,
    /// The entries, delivered first, by node name.
    pub entries: Vec<InventoryEntry>,
}

/// The store's key of a catalog rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleId(pub i64);

/// A catalog rule: devices matching it get its package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCatalogRule {
    /// A name for operators.
    pub name: String,
    /// Higher first when several rules match.
    pub priority: i64,
    /// `DevInfo/Man` must equal this, when set.
    pub man: Option<String>,
    /// `DevInfo/Mod` must equal this, when set.
    pub model: Option<String>,
    /// `DevDetail/DevTyp` must equal this, when set.
    pub dev_typ: Option<String>,
    /// The package's EnvType must equal this, when set.
    pub env_type: Option<String>,
    /// The package to give.
    pub pkg_id: String,
    /// The operation (DownloadInstall, Update, ...).
    pub op: JobOp,
    /// How to deliver it.
    pub delivery: Delivery,
    /// Whether it applies.
    pub enabled: bool,
}

/// A stored catalog rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogRule {
    /// Its key.
    pub id: RuleId,
    /// The rule.
    pub rule: NewCatalogRule,
    /// When it was made.
    pub created_at: Timestamp,
}
