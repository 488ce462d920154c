//! Persistent state of the DM server, behind narrow async traits.
//!
//! ```text
//!   DM session engine ─┬─ DeviceStore        devices, credentials, nonces, DevInfo, labels
//!   notifier ──────────┼─ SessionStore       audit log; closing a session requeues its batches
//!   SCOMO job engine ──┼─ CommandQueue       batches of DM commands ⇄ statuses/results
//!   REST API ──────────┼─ AlertStore         received Generic Alerts, drained by consumers
//!                      ├─ NotificationStore  package 0 schedule with backoff
//!                      ├─ TokenStore         admin API tokens (SHA-256 only)
//!   /api/v1/packages, /dl ─ PackageStore     package repository, download tokens
//!                                │
//!                            SqlStore ── SQLite (one node, WAL) | PostgreSQL (many nodes)
//! ```
//!
//! # Design
//!
//! * **Dyn-compatible traits.** Each trait is declared with `async_trait`, so
//!   its futures are boxed `Send` futures and the whole store is usable as
//!   `Arc<dyn Store>` ([`Store`] is the union of the narrow traits). Native
//!   `async fn` in traits is not dyn-compatible; the boxing costs one
//!   allocation per call, which is noise next to a database round trip.
//! * **One implementation, two backends.** [`SqlStore`] holds either a SQLite
//!   or a PostgreSQL pool; every method body is written once and compiled for
//!   both (the same SQL with `$n` placeholders, which SQLite accepts too). The
//!   only per-backend SQL is `FOR UPDATE [SKIP LOCKED]`, `BEGIN IMMEDIATE` and
//!   `min`/`LEAST`.
//! * **Versioned migrations per backend** under `migrations/sqlite` and
//!   `migrations/postgres`, embedded with `sqlx::migrate!` and applied on
//!   open. Both directories carry the same versions (a test checks it): the
//!   SCOMO tables (packages, jobs, inventory, download tokens, catalog rules,
//!   campaigns) come as `0002_….sql` in each.
//! * **Time is passed in.** Every method that records a time takes `now`.
//!   Timestamps are stored as unix milliseconds (`BIGINT`).
//! * **Secrets.** Client secrets are stored as `MD5(user ":" password)`,
//!   server passwords in clear (basic auth toward the device needs them),
//!   API tokens as SHA-256 hex. `Debug` of every type holding one redacts it,
//!   and errors never carry them.
//!
//! # Multi-node claiming
//!
//! Work that any node may pick up (batches for a session, finished batches
//! and alerts for consumers, due notifications) is claimed with one
//! `UPDATE … WHERE id IN (SELECT … ORDER BY id LIMIT n FOR UPDATE SKIP LOCKED)
//! RETURNING …`. On PostgreSQL concurrent claimers skip each other's rows; on
//! SQLite the statement runs under the single write lock. Either way a row is
//! handed to one claimer.
//!
//! # The requeue rule (crash safety of the command queue)
//!
//! A batch moves `pending → in_flight` when a session claims it and
//! `in_flight → sent` when the server marks it sent (before the message
//! leaves) or records its first status. When its session ends without
//! [`CommandQueue::complete_batch`] — finished with any outcome, closed
//! because its node restarted ([`SessionStore::close_node_sessions`]), or
//! found idle by a sweep on any node ([`SessionStore::close_idle_sessions`])
//! — each batch it held is settled in the same transaction:
//!
//! 1. `sent` with a status for every command → `completed` (the crash came
//!    between the last status and `complete_batch`);
//! 2. `in_flight` (never sent) → `pending`, keeping its place in the FIFO;
//! 3. `sent`, statuses missing, batch marked idempotent → `pending`, its
//!    partial outcomes dropped, to be sent again whole;
//! 4. `sent`, statuses missing, not idempotent → `unacknowledged`: finished,
//!    never sent again; its owner sees it like a completion and decides
//!    (e.g. re-reads the tree).
//!
//! Every per-batch write by a session (`mark_batch_sent`, `record_outcome`,
//! `complete_batch`) is fenced on that session still holding the batch, so a
//! session that was swept away cannot complete a batch that was requeued: a
//! batch completes once. Owners learn of finished batches by polling
//! ([`CommandQueue::poll_finished`] then [`CommandQueue::ack_finished`]), so
//! completions survive restarts and reach whichever node polls.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use omadm_wire::model::Results;
use omadm_wire::StatusCode;

mod campaigns_model;
mod config;
mod error;
mod jobs_model;
mod model;
mod packages_model;
mod sql;

pub use campaigns_model::{
    CampaignId, CampaignMember, CampaignRecord, CampaignUpdate, FinishedMemberJob, MemberOutcome,
    NewCampaign,
};
pub use config::{SqliteSync, StoreConfig, DEFAULT_SQLITE_WRITER_CACHE_MIB};
pub use error::{Result, StoreError};
pub use jobs_model::{
    CatalogRule, Delivery, Inventory, InventoryEntry, InventoryKind, Job, JobEvent, JobFilter,
    JobId, JobOp, JobOrigin, JobState, JobUpdate, NewCatalogRule, NewDownloadToken, NewJob, RuleId,
};
pub use model::{
    command_count, AlertId, ApiToken, AuthType, Backoff, Batch, BatchId, BatchState,
    ClientCredentials, CommandOutcome, Device, DeviceFilter, DeviceOrigin, DevicePage,
    DevicePageRequest, DeviceUpdate, LabelFilter, Lease, MessageOutcome, MessageReport,
    MessageWrite, NewAlert, NewBatch, NewDevice, NewSession, NonceUpdate, Nonces, Notification,
    NotificationId, NotificationState, OutcomeWrite, OutcomesReport, RequeueReport,
    ServerCredentials, SessionEnd, SessionKey, SessionOutcome, SessionRecord, StoredAlert,
    Timestamp, TokenId, TokenSecret, DEVDETAIL_DEV_TYP, DEVINFO_MAN, DEVINFO_MOD, MAX_PAGE,
};
pub use packages_model::{DownloadToken, Package, PackageComponent};
pub use sql::{new_download_token, Backend, SqlStore};

/// Checks a client alert as [`AlertStore::record_alert`] would, without
/// storing it (a session answers 500 for one the store would refuse).
pub(crate) fn check_alert(alert: &NewAlert) -> Result<()> {
    sql::check_alert(alert)
}

/// Opens the store at `config.url`, applying pending migrations.
pub async fn open(config: &StoreConfig) -> Result<Arc<dyn Store>> {
    Ok(Arc::new(SqlStore::open(config).await?))
}

/// Everything the DM server keeps: the union of the narrow traits.
#[async_trait]
pub trait Store:
    DeviceStore
    + DeviceBulkStore
    + SessionStore
    + CommandQueue
    + AlertStore
    + NotificationStore
    + TokenStore
    + PackageStore
    + JobStore
    + CampaignStore
{
    /// Which database this is.
    fn backend(&self) -> Backend;

    /// Closes the pool, waiting for connections in use to come back.
    async fn close(&self);
}

/// The device registry.
#[async_trait]
pub trait DeviceStore: Send + Sync {
    /// Creates a device; [`StoreError::DeviceExists`] if the id is taken.
    async fn provision_device(&self, device: &NewDevice, now: Timestamp) -> Result<Device>;

    /// Creates a device without credentials on first contact (when the
    /// server's policy allows); returns whether it was created.
    async fn auto_register(&self, id: &str, now: Timestamp) -> Result<bool>;

    /// One device with its labels.
    async fn device(&self, id: &str) -> Result<Option<Device>>;

    /// Devices matching `filter`, in id order, one page at a time.
    async fn list_devices(
        &self,
        filter: &DeviceFilter,
        page: &DevicePageRequest,
    ) -> Result<DevicePage>;

    /// How many devices match `filter`.
    async fn count_devices(&self, filter: &DeviceFilter) -> Result<u64>;

    /// Deletes a device and everything about it (sessions, queued batches,
    /// alerts, notifications); returns whether it existed.
    async fn delete_device(&self, id: &str) -> Result<bool>;

    /// Changes credentials or the notification address.
    async fn update_device(&self, id: &str, update: &DeviceUpdate, now: Timestamp) -> Result<()>;

    /// Sets a label (a tag is a label with an empty value).
    async fn set_label(&self, id: &str, key: &str, value: &str, now: Timestamp) -> Result<()>;

    /// Removes a label; returns whether it was there.
    async fn remove_label(&self, id: &str, key: &str) -> Result<bool>;

    /// Records what a session reported of `./DevInfo` and `./DevDetail`
    /// (node path → value, merged into what is stored) and that the device
    /// was seen at `now`.
    async fn record_device_info(
        &self,
        id: &str,
        nodes: &BTreeMap<String, String>,
        now: Timestamp,
    ) -> Result<()>;

    /// The stored DevInfo/DevDetail nodes.
    async fn device_nodes(&self, id: &str) -> Result<BTreeMap<String, String>>;

    /// Replaces the nonces given in `update`.
    async fn update_nonces(&self, id: &str, update: &NonceUpdate, now: Timestamp) -> Result<()>;
}

/// Provisioning many devices at once (fleets, the simulator).
#[async_trait]
pub trait DeviceBulkStore: Send + Sync {
    /// Creates `devices` in one transaction and answers one outcome per
    /// device, in order. A taken DevId (also one repeated in `devices`) is
    /// [`BulkOutcome::Exists`] and left unchanged; a device that fails
    /// validation is [`BulkOutcome::Invalid`] and not written. `Err` only
    /// when the database fails, and then nothing is written.
    async fn provision_devices(
        &self,
        devices: &[NewDevice],
        now: Timestamp,
    ) -> Result<Vec<BulkOutcome>>;
}

/// What [`DeviceBulkStore::provision_devices`] did with one device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BulkOutcome {
    /// The device was created.
    Created,
    /// A device with this DevId exists; nothing was changed.
    Exists,
    /// The device was refused: why.
    Invalid(String),
}

/// The DM session audit log; closing sessions settles their batches.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Records a session that started at `now`.
    async fn start_session(&self, session: &NewSession, now: Timestamp) -> Result<SessionKey>;

    /// Records activity (each message), which keeps idle sweeps away.
    async fn touch_session(&self, session: SessionKey, now: Timestamp) -> Result<()>;

    /// Ends a session and applies the requeue rule to its batches.
    async fn finish_session(
        &self,
        session: SessionKey,
        end: &SessionEnd,
        now: Timestamp,
    ) -> Result<RequeueReport>;

    /// Ends every open session of `node_id` as [`SessionOutcome::Lost`]: a
    /// node calls this when it starts, since its sessions lived in memory.
    async fn close_node_sessions(&self, node_id: &str, now: Timestamp) -> Result<RequeueReport>;

    /// Ends, as lost, every open session with no activity since
    /// `idle_since` (any node may sweep for crashed peers).
    async fn close_idle_sessions(
        &self,
        idle_since: Timestamp,
        now: Timestamp,
    ) -> Result<RequeueReport>;

    /// One session.
    async fn session(&self, session: SessionKey) -> Result<Option<SessionRecord>>;

    /// A device's sessions, newest first, older than `before`.
    async fn sessions(
        &self,
        device_id: &str,
        before: Option<SessionKey>,
        limit: u32,
    ) -> Result<Vec<SessionRecord>>;

    /// Writes everything one DM message changes in one transaction (see
    /// [`MessageWrite`]). On SQLite the transaction is shared with the
    /// concurrent messages of other sessions (group commit); either way it
    /// returns once the write is committed.
    async fn write_message(&self, write: MessageWrite, now: Timestamp) -> Result<MessageReport>;
}

/// The command queue the SCOMO server drives devices through.
#[async_trait]
pub trait CommandQueue: Send + Sync {
    /// Queues a batch for a device.
    async fn enqueue_batch(&self, batch: &NewBatch, now: Timestamp) -> Result<BatchId>;

    /// Whether the device has pending batches (a read: a session asks
    /// before it claims).
    async fn has_pending_batches(&self, device_id: &str) -> Result<bool>;

    /// Moves up to `limit` of the session's device's pending batches to
    /// in-flight on `session` and returns them oldest first.
    async fn claim_batches(
        &self,
        session: SessionKey,
        limit: u32,
        now: Timestamp,
    ) -> Result<Vec<Batch>>;

    /// Marks a claimed batch sent; call before the message carrying it
    /// leaves. [`StoreError::NotInFlight`] means: do not send it.
    async fn mark_batch_sent(
        &self,
        batch: BatchId,
        session: SessionKey,
        now: Timestamp,
    ) -> Result<()>;

    /// Records the status (and results) of command `index` (in
    /// [`command_count`] order); a repeat overwrites.
    async fn record_outcome(
        &self,
        batch: BatchId,
        session: SessionKey,
        index: u32,
        status: StatusCode,
        results: &[Results],
        now: Timestamp,
    ) -> Result<()>;

    /// Everything one device message brought, in one transaction: the
    /// outcomes (as [`CommandQueue::record_outcome`]) and then the batches
    /// whose statuses are now all in (as [`CommandQueue::complete_batch`]).
    /// Batches this session no longer holds are skipped and listed in the
    /// report, not an error.
    async fn record_outcomes(
        &self,
        session: SessionKey,
        outcomes: &[OutcomeWrite<'_>],
        complete: &[BatchId],
        now: Timestamp,
    ) -> Result<OutcomesReport> {
        let mut report = OutcomesReport::default();
        for o in outcomes {
            if report.gone.contains(&o.batch) {
                continue;
            }
            match self
                .record_outcome(o.batch, session, o.index, o.status, o.results, now)
                .await
            {
                Ok(()) => {}
                Err(StoreError::NotInFlight { .. }) => report.gone.push(o.batch),
                Err(e) => return Err(e),
            }
        }
        for b in complete {
            if report.gone.contains(b) {
                continue;
            }
            match self.complete_batch(*b, session, now).await {
                Ok(()) => report.completed.push(*b),
                Err(StoreError::NotInFlight { .. }) => report.gone.push(*b),
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }

    /// Marks a batch completed once its statuses are in.
    async fn complete_batch(
        &self,
        batch: BatchId,
        session: SessionKey,
        now: Timestamp,
    ) -> Result<()>;

    /// Cancels a batch that is still pending; returns whether it was.
    async fn cancel_batch(&self, batch: BatchId, now: Timestamp) -> Result<bool>;

    /// One batch with its outcomes.
    async fn batch(&self, batch: BatchId) -> Result<Option<Batch>>;

    /// Batches whose owner starts with `owner_prefix`, oldest first, after
    /// `after`.
    async fn batches_by_owner(
        &self,
        owner_prefix: &str,
        after: Option<BatchId>,
        limit: u32,
    ) -> Result<Vec<Batch>>;

    /// Leases up to `limit` finished (completed, unacknowledged) batches of
    /// owners starting with `owner_prefix` that no one has acknowledged and
    /// no live lease holds, oldest first, with their outcomes.
    async fn poll_finished(
        &self,
        owner_prefix: &str,
        lease: &Lease,
        limit: u32,
        now: Timestamp,
    ) -> Result<Vec<Batch>>;

    /// Acknowledges finished batches: they are not offered again. Returns how
    /// many were newly acknowledged.
    async fn ack_finished(&self, batches: &[BatchId], now: Timestamp) -> Result<u64>;
}

/// Received Generic Alerts.
#[async_trait]
pub trait AlertStore: Send + Sync {
    /// Stores one alert item received at `now`, linking it to the batch
    /// whose Exec carried its correlator.
    async fn record_alert(&self, alert: &NewAlert, now: Timestamp) -> Result<AlertId>;

    /// A device's alerts, newest first, older than `before`.
    async fn alerts(
        &self,
        device_id: &str,
        before: Option<AlertId>,
        limit: u32,
    ) -> Result<Vec<StoredAlert>>;

    /// Alerts carrying `correlator`, oldest first.
    async fn alerts_by_correlator(&self, correlator: &str) -> Result<Vec<StoredAlert>>;

    /// Leases up to `limit` unprocessed alerts no live lease holds, oldest
    /// first: all of them, or with `owner_prefix` only those correlated to a
    /// batch of such an owner.
    async fn poll_alerts(
        &self,
        owner_prefix: Option<&str>,
        lease: &Lease,
        limit: u32,
        now: Timestamp,
    ) -> Result<Vec<StoredAlert>>;

    /// Marks alerts processed; returns how many were newly marked.
    async fn ack_alerts(&self, alerts: &[AlertId], now: Timestamp) -> Result<u64>;
}

/// Package 0 delivery schedule.
#[async_trait]
pub trait NotificationStore: Send + Sync {
    /// Asks for a notification due at `due_at`. A device has at most one
    /// pending notification: asking again moves it earlier, never later.
    async fn enqueue_notification(
        &self,
        device_id: &str,
        due_at: Timestamp,
        now: Timestamp,
    ) -> Result<NotificationId>;

    /// Claims up to `limit` pending notifications due at `now`: each one's
    /// `next_attempt_at` moves to `lease.until`, so others skip it and it
    /// comes back if the claimer dies before recording the attempt.
    async fn claim_due_notifications(
        &self,
        lease: &Lease,
        limit: u32,
        now: Timestamp,
    ) -> Result<Vec<Notification>>;

    /// Records an attempt (`error` is `None` when the message left) and
    /// schedules the next one per `backoff`, or expires the notification. A
    /// notification cancelled meanwhile stays cancelled.
    async fn record_notification_attempt(
        &self,
        id: NotificationId,
        error: Option<&str>,
        backoff: &Backoff,
        now: Timestamp,
    ) -> Result<Notification>;

    /// Cancels the device's pending notification (it called); returns how
    /// many were cancelled.
    async fn cancel_notifications(&self, device_id: &str, now: Timestamp) -> Result<u64>;

    /// One notification.
    async fn notification(&self, id: NotificationId) -> Result<Option<Notification>>;
}

/// Admin API tokens.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Creates a token; its clear text is returned here and never again.
    async fn create_token(&self, name: &str, now: Timestamp) -> Result<(ApiToken, TokenSecret)>;

    /// The live token with this clear text, recording its use.
    async fn verify_token(&self, secret: &str, now: Timestamp) -> Result<Option<ApiToken>>;

    /// All tokens, revoked ones included, oldest first.
    async fn tokens(&self) -> Result<Vec<ApiToken>>;

    /// Revokes a token; returns whether it was live.
    async fn revoke_token(&self, id: TokenId, now: Timestamp) -> Result<bool>;
}

/// SCOMO jobs, inventory and catalog rules.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Creates a job and takes its locks; [`StoreError::Conflict`] names the
    /// live job that holds one of them.
    async fn create_job(&self, job: &NewJob, now: Timestamp) -> Result<Job>;

    /// One job.
    async fn job(&self, id: JobId) -> Result<Option<Job>>;

    /// Jobs matching `filter`, newest first, older than `before`.
    async fn list_jobs(
        &self,
        filter: &JobFilter,
        before: Option<JobId>,
        limit: u32,
    ) -> Result<Vec<Job>>;

    /// Applies `update` if the job is still at revision `rev` (and not
    /// terminal); returns the updated job, or `None` when someone else got
    /// there first. A terminal state releases the job's locks.
    async fn update_job(
        &self,
        id: JobId,
        rev: i64,
        update: &JobUpdate,
        now: Timestamp,
    ) -> Result<Option<Job>>;

    /// Adds a line to a job's history without changing it.
    async fn note_job(&self, id: JobId, message: &str, now: Timestamp) -> Result<()>;

    /// A job's history, oldest first.
    async fn job_events(&self, id: JobId) -> Result<Vec<JobEvent>>;

    /// Live jobs whose wake time or deadline has come, oldest first.
    async fn due_jobs(&self, now: Timestamp, limit: u32) -> Result<Vec<Job>>;

    /// Replaces a device's inventory with what was just read.
    async fn replace_inventory(
        &self,
        device_id: &str,
        entries: &[InventoryEntry],
        method: &str,
        now: Timestamp,
    ) -> Result<()>;

    /// A device's inventory as last read (`None`: never read).
    async fn inventory(&self, device_id: &str) -> Result<Option<Inventory>>;

    /// Creates a catalog rule.
    async fn create_rule(&self, rule: &NewCatalogRule, now: Timestamp) -> Result<CatalogRule>;

    /// All catalog rules, highest priority first.
    async fn rules(&self) -> Result<Vec<CatalogRule>>;

    /// Deletes a rule; returns whether it existed.
    async fn delete_rule(&self, id: RuleId) -> Result<bool>;
}

/// The package repository and the download tokens of `/dl`.
#[async_trait]
pub trait PackageStore: Send + Sync {
    /// Adds a package; [`StoreError::PackageExists`] if the PkgID is taken.
    async fn insert_package(&self, package: &Package) -> Result<()>;

    /// One package.
    async fn package(&self, pkg_id: &str) -> Result<Option<Package>>;

    /// Packages in PkgID order, after `after`, at most `limit`
    /// (1..=[`MAX_PAGE`]).
    async fn list_packages(&self, after: Option<&str>, limit: u32) -> Result<Vec<Package>>;

    /// Deletes a package and its download tokens; returns whether it existed.
    /// The caller checks [`PackageStore::package_in_use`] first and removes
    /// the file.
    async fn delete_package(&self, pkg_id: &str) -> Result<bool>;

    /// Whether something still needs the package at `now`: a live job, a
    /// catalog rule, or a live download token not tied to a finished job.
    async fn package_in_use(&self, pkg_id: &str, now: Timestamp) -> Result<bool>;

    /// Makes a download token for a package, valid until `expires_at`;
    /// [`StoreError::UnknownPackage`] if there is no such package.
    async fn create_download_token(
        &self,
        pkg_id: &str,
        job_id: Option<i64>,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<DownloadToken>;

    /// One token, expired or not.
    async fn download_token(&self, token: &str) -> Result<Option<DownloadToken>>;

    /// The tokens made for a job, oldest first.
    async fn download_tokens_for_job(&self, job_id: i64) -> Result<Vec<DownloadToken>>;

    /// Adds `bytes` to what a token served; `completed` when the response
    /// delivered the file's last byte (clears `last_error`), `error` when it
    /// stopped early. Returns whether the token exists.
    async fn record_download(
        &self,
        token: &str,
        bytes: u64,
        completed: bool,
        error: Option<&str>,
        now: Timestamp,
    ) -> Result<bool>;

    /// Records the install-notify status a device posted; returns whether
    /// the token exists.
    async fn record_install_notify(&self, token: &str, status: u16, now: Timestamp)
        -> Result<bool>;
}

/// Campaigns and the devices they take.
#[async_trait]
pub trait CampaignStore: Send + Sync {
    /// Creates a campaign.
    async fn create_campaign(&self, c: &NewCampaign, now: Timestamp) -> Result<CampaignRecord>;

    /// One campaign.
    async fn campaign(&self, id: CampaignId) -> Result<Option<CampaignRecord>>;

    /// Campaigns, newest first, before `before`.
    async fn list_campaigns(
        &self,
        before: Option<CampaignId>,
        limit: u32,
    ) -> Result<Vec<CampaignRecord>>;

    /// Leaves an operator command (`pause`, `resume`, `cancel`) for the
    /// campaign's owner. False when the campaign is unknown or finished.
    async fn request_campaign_command(
        &self,
        id: CampaignId,
        command: &str,
        now: Timestamp,
    ) -> Result<bool>;

    /// Takes (and clears) the pending operator command; owner only.
    async fn take_campaign_command(&self, id: CampaignId, owner: &str) -> Result<Option<String>>;

    /// Claims (or renews) the lease of every live campaign that is free,
    /// expired or already `owner`'s, until `until`; returns them.
    async fn claim_campaigns(
        &self,
        owner: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<Vec<CampaignRecord>>;

    /// Saves the owner's view after a round; false when `owner` no longer
    /// holds the campaign (nothing written).
    async fn save_campaign(
        &self,
        id: CampaignId,
        owner: &str,
        update: &CampaignUpdate,
        now: Timestamp,
    ) -> Result<bool>;

    /// Adds devices (in the given order) that the campaign does not have
    /// yet; returns those added, in order.
    async fn add_members(
        &self,
        id: CampaignId,
        devices: &[String],
        now: Timestamp,
    ) -> Result<Vec<String>>;

    /// Members in arrival order, after `after_seq`.
    async fn members(
        &self,
        id: CampaignId,
        after_seq: Option<i64>,
        limit: u32,
    ) -> Result<Vec<CampaignMember>>;

    /// Records that the jobs of these members (device, stage) are about to
    /// be created: their stage and start time, no job yet. A member marked
    /// so but without a job after a crash is matched to the job (if any)
    /// when the campaign is restored.
    async fn start_members(
        &self,
        id: CampaignId,
        starts: &[(String, u32)],
        now: Timestamp,
    ) -> Result<()>;

    /// Records the jobs created for members.
    async fn set_member_jobs(&self, id: CampaignId, jobs: &[(String, JobId)]) -> Result<()>;

    /// Records how members' jobs ended (each once: members with an outcome
    /// already are left alone); returns how many were recorded.
    async fn finish_members(
        &self,
        id: CampaignId,
        outcomes: &[(String, MemberOutcome)],
        now: Timestamp,
    ) -> Result<u64>;

    /// Members whose job is over but whose outcome is not recorded yet.
    async fn finished_member_jobs(
        &self,
        id: CampaignId,
        limit: u32,
    ) -> Result<Vec<FinishedMemberJob>>;

    /// Devices matching `filter` the campaign has not taken yet, by id,
    /// at most `limit`.
    async fn select_new_devices(
        &self,
        id: CampaignId,
        filter: &DeviceFilter,
        limit: u32,
    ) -> Result<Vec<String>>;

    /// Every device with a deployed component `component_id`, with its
    /// version (`None` when the device did not report one).
    async fn deployed_versions(&self, component_id: &str) -> Result<Vec<(String, Option<String>)>>;
}
