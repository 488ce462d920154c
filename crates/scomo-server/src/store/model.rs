//! The values the store takes and gives: devices, sessions, command batches,
//! generic alerts, notifications and API tokens. Plain data; no I/O.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use md5::{Digest as _, Md5};
use omadm_wire::model::{Command, Data, Results};
use omadm_wire::{AlertCode, StatusCode};

// ---------------------------------------------------------------------------
// Time

/// A point in time: milliseconds since the Unix epoch, UTC.
///
/// The store never reads the clock: every call that records a time takes
/// `now` (tests pass fixed values; the server passes [`Timestamp::now`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The time `ms` milliseconds after the epoch.
    pub const fn from_unix_millis(ms: i64) -> Timestamp {
        Timestamp(ms)
    }

    /// The time `secs` seconds after the epoch.
    pub const fn from_unix_secs(secs: i64) -> Timestamp {
        Timestamp(secs.saturating_mul(1000))
    }

    /// Milliseconds since the epoch.
    pub const fn unix_millis(self) -> i64 {
        self.0
    }

    /// The wall clock (for runtimes; the store itself never calls this).
    pub fn now() -> Timestamp {
        let ms = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
        };
        Timestamp(ms)
    }
}

impl std::ops::Add<Duration> for Timestamp {
    type Output = Timestamp;

    /// `self + d`, saturating.
    fn add(self, d: Duration) -> Timestamp {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(ms))
    }
}

impl std::ops::Sub<Duration> for Timestamp {
    type Output = Timestamp;

    /// `self - d`, saturating.
    fn sub(self, d: Duration) -> Timestamp {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_sub(ms))
    }
}

// ---------------------------------------------------------------------------
// Devices

/// A DM authentication type (`OMA-TS-DM_Security-V1_2` §5.3), as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthType {
    /// `syncml:auth-basic` (insecure without TLS).
    Basic,
    /// `syncml:auth-md5`.
    Md5,
    /// `syncml:auth-MAC` (HMAC header).
    Hmac,
}

impl AuthType {
    /// The stored name: `basic`, `md5` or `hmac`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::Basic => "basic",
            AuthType::Md5 => "md5",
            AuthType::Hmac => "hmac",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<AuthType> {
        match s {
            "basic" => Some(AuthType::Basic),
            "md5" => Some(AuthType::Md5),
            "hmac" => Some(AuthType::Hmac),
            _ => None,
        }
    }
}

/// What the server holds to verify a device (`AAuthName` and a verifier of
/// `AAuthSecret`).
///
/// Only `MD5(username ":" password)` is stored, never the password: it is all
/// that `syncml:auth-md5` and HMAC verification need (`DM_Security` §5.3 lets
/// the authenticator keep just this hash), and basic credentials are checked
/// by hashing what the device sent. The hash is still password-equivalent for
/// MD5/HMAC, so it is treated as a secret: `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    /// The type the server asks the device for.
    pub auth_type: AuthType,
    /// The device's user name.
    pub username: String,
    /// `MD5(username ":" password)`.
    pub user_hash: [u8; 16],
}

impl ClientCredentials {
    /// Credentials from a clear-text password, which is hashed at once.
    pub fn from_password(auth_type: AuthType, username: &str, password: &str) -> Self {
        ClientCredentials {
            auth_type,
            username: username.to_owned(),
            user_hash: user_hash(username, password),
        }
    }

    /// Whether `username`/`password` (e.g. from basic credentials) match,
    /// compared in constant time.
    pub fn matches_password(&self, username: &str, password: &str) -> bool {
        let h = user_hash(username, password);
        let diff = h
            .iter()
            .zip(self.user_hash.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        username == self.username && diff == 0
    }
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("auth_type", &self.auth_type)
            .field("username", &self.username)
            .field("user_hash", &"<redacted>")
            .finish()
    }
}

/// `MD5(username ":" password)`.
fn user_hash(username: &str, password: &str) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(username.as_bytes());
    h.update(b":");
    h.update(password.as_bytes());
    h.finalize().into()
}

/// What the server presents to the device (the device's DMAcc `AppAuth` for
/// the server).
///
/// The password is stored in clear because the server must *produce*
/// credentials, and `syncml:auth-basic` needs the password itself. `Debug`
/// redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerCredentials {
    /// The type the device asks the server for.
    pub auth_type: AuthType,
    /// The server's identifier (`AAuthName`, usually the ServerID).
    pub server_id: String,
    /// The server's password for this device.
    pub password: String,
}

impl fmt::Debug for ServerCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCredentials")
            .field("auth_type", &self.auth_type)
            .field("server_id", &self.server_id)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The nonces of a device (`DM_Security` §5.4): raw bytes of the base64
/// `NextNonce`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Nonces {
    /// The nonce the server issued for the device's next `Cred`.
    pub client: Option<Vec<u8>>,
    /// The nonce the device issued for the server's next `Cred`.
    pub server: Option<Vec<u8>>,
}

/// How a device came to be known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeviceOrigin {
    /// Created through the API or CLI, with credentials.
    Provisioned,
    /// Registered on first contact because the server's policy allowed it.
    AutoRegistered,
}

impl DeviceOrigin {
    /// The stored name: `provisioned` or `auto`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceOrigin::Provisioned => "provisioned",
            DeviceOrigin::AutoRegistered => "auto",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<DeviceOrigin> {
        match s {
            "provisioned" => Some(DeviceOrigin::Provisioned),
            "auto" => Some(DeviceOrigin::AutoRegistered),
            _ => None,
        }
    }
}

/// A device to provision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewDevice {
    /// The DevId (`./DevInfo/DevId`, e.g. `IMEI:493005100592800`).
    pub id: String,
    /// How the device authenticates to the server.
    pub client_credentials: Option<ClientCredentials>,
    /// How the server authenticates to the device.
    pub server_credentials: Option<ServerCredentials>,
    /// Where package 0 goes: `udp://host:port`, `http://…` or `https://…`.
    pub notify_addr: Option<String>,
    /// Labels (a tag is a label with an empty value).
    pub labels: BTreeMap<String, String>,
}

/// A stored device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// The DevId.
    pub id: String,
    /// Provisioned or auto-registered.
    pub origin: DeviceOrigin,
    /// How the device authenticates to the server.
    pub client_credentials: Option<ClientCredentials>,
    /// How the server authenticates to the device.
    pub server_credentials: Option<ServerCredentials>,
    /// The current nonces.
    pub nonces: Nonces,
    /// Where package 0 goes.
    pub notify_addr: Option<String>,
    /// `./DevInfo/Man`, from the last session.
    pub man: Option<String>,
    /// `./DevInfo/Mod`, from the last session.
    pub model: Option<String>,
    /// `./DevDetail/DevTyp`, from the last session.
    pub dev_typ: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// When the row was created.
    pub created_at: Timestamp,
    /// The first session, if any.
    pub first_seen_at: Option<Timestamp>,
    /// The latest session, if any.
    pub last_seen_at: Option<Timestamp>,
}

/// Partial update of a device; `None` leaves a field, `Some(None)` clears it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceUpdate {
    /// New client credentials.
    pub client_credentials: Option<Option<ClientCredentials>>,
    /// New server credentials.
    pub server_credentials: Option<Option<ServerCredentials>>,
    /// New notification address.
    pub notify_addr: Option<Option<String>>,
}

/// DevInfo paths copied into columns so fleets can be filtered by them.
pub const DEVINFO_MAN: &str = "./DevInfo/Man";
/// `./DevInfo/Mod`.
pub const DEVINFO_MOD: &str = "./DevInfo/Mod";
/// `./DevDetail/DevTyp`.
pub const DEVDETAIL_DEV_TYP: &str = "./DevDetail/DevTyp";

/// Which devices to list or count; unset fields match everything, set ones
/// must all match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceFilter {
    /// Exact `./DevInfo/Man`.
    pub man: Option<String>,
    /// Exact `./DevInfo/Mod`.
    pub model: Option<String>,
    /// Exact `./DevDetail/DevTyp`.
    pub dev_typ: Option<String>,
    /// The device carries every one of these labels.
    pub labels: Vec<LabelFilter>,
    /// The DevId starts with this (case-sensitive).
    pub id_prefix: Option<String>,
}

/// A label a device must carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelFilter {
    /// The label's key.
    pub key: String,
    /// Its value; `None` matches any value.
    pub value: Option<String>,
}

/// One page of a keyset-paged listing ordered by device id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevicePageRequest {
    /// Start after this id (the previous page's `next_after`).
    pub after: Option<String>,
    /// At most this many devices (clamped to 1..=[`MAX_PAGE`]).
    pub limit: u32,
}

/// The largest page any listing returns.
pub const MAX_PAGE: u32 = 1000;

/// A page of devices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevicePage {
    /// Devices in id order (byte order of the UTF-8 id).
    pub devices: Vec<Device>,
    /// The cursor for the next page, `None` on the last page.
    pub next_after: Option<String>,
}

/// What changes about a device's nonces; `None` leaves one as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NonceUpdate {
    /// New client nonce.
    pub client: Option<Vec<u8>>,
    /// New server nonce.
    pub server: Option<Vec<u8>>,
}

// ---------------------------------------------------------------------------
// Sessions

/// The store's key of a DM session (unique across nodes and restarts, unlike
/// the protocol's SessionID).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionKey(pub i64);

impl fmt::Display for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A DM session that has started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSession {
    /// The device.
    pub device_id: String,
    /// The SyncHdr SessionID.
    pub session_id: String,
    /// The server node that holds the session.
    pub node_id: String,
    /// The initiating alert: 1200 (server-initiated) or 1201 (client-initiated).
    pub initiation: AlertCode,
}

/// How a DM session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SessionOutcome {
    /// Completed normally.
    Ok,
    /// The device failed to authenticate.
    AuthFailed,
    /// Aborted by either side (Alert 1223, timeout).
    Aborted,
    /// A protocol or server error.
    Error,
    /// The node holding it went away (restart or idle sweep).
    Lost,
}

impl SessionOutcome {
    /// The stored name: `ok`, `auth_failed`, `aborted`, `error` or `lost`.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionOutcome::Ok => "ok",
            SessionOutcome::AuthFailed => "auth_failed",
            SessionOutcome::Aborted => "aborted",
            SessionOutcome::Error => "error",
            SessionOutcome::Lost => "lost",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<SessionOutcome> {
        match s {
            "ok" => Some(SessionOutcome::Ok),
            "auth_failed" => Some(SessionOutcome::AuthFailed),
            "aborted" => Some(SessionOutcome::Aborted),
            "error" => Some(SessionOutcome::Error),
            "lost" => Some(SessionOutcome::Lost),
            _ => None,
        }
    }
}

/// The end of a DM session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionEnd {
    /// How it ended.
    pub outcome: SessionOutcome,
    /// Messages received from the device.
    pub messages_in: u32,
    /// Messages sent to the device.
    pub messages_out: u32,
    /// A human-readable reason (no secrets).
    pub detail: Option<String>,
}

/// A DM session in the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    /// The store's key.
    pub key: SessionKey,
    /// The device.
    pub device_id: String,
    /// The SyncHdr SessionID.
    pub session_id: String,
    /// The node that held it.
    pub node_id: String,
    /// 1200 or 1201.
    pub initiation: AlertCode,
    /// When it started.
    pub started_at: Timestamp,
    /// The last message seen ([`crate::store::SessionStore::touch_session`]).
    pub last_activity_at: Timestamp,
    /// When it ended, `None` while open.
    pub ended_at: Option<Timestamp>,
    /// How it ended.
    pub outcome: Option<SessionOutcome>,
    /// Messages received.
    pub messages_in: u32,
    /// Messages sent.
    pub messages_out: u32,
    /// The reason given at the end.
    pub detail: Option<String>,
}

/// What closing sessions did to the batches they held (see the requeue rule
/// in [`crate::store`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequeueReport {
    /// Sessions closed by the call.
    pub sessions_closed: u64,
    /// Batches with a status for every command, marked completed.
    pub completed: u64,
    /// Batches back to pending (never sent, or sent and idempotent).
    pub requeued: u64,
    /// Batches sent without all statuses and not idempotent.
    pub unacknowledged: u64,
}

impl RequeueReport {
    pub(crate) fn merge(&mut self, other: RequeueReport) {
        self.sessions_closed += other.sessions_closed;
        self.completed += other.completed;
        self.requeued += other.requeued;
        self.unacknowledged += other.unacknowledged;
    }
}

// ---------------------------------------------------------------------------
// Command queue

/// The store's key of a command batch; increases with enqueue order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BatchId(pub i64);

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A batch of DM commands to send to one device in one session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewBatch {
    /// The device.
    pub device_id: String,
    /// Who gets the outcome, e.g. `job:42`; consumers poll by prefix.
    pub owner: String,
    /// Get/Replace/Add/Delete/Exec/Copy/Atomic/Sequence commands (no
    /// Status, Results or Alert); CmdIDs are assigned when sent.
    pub commands: Vec<Command>,
    /// Whether sending it twice is harmless: decides what happens when a
    /// session dies after sending it (see [`crate::store`]).
    pub idempotent: bool,
}

/// Where a batch is in its life.
///
/// ```text
/// pending ─claim─▶ in_flight ─mark_sent/outcome─▶ sent ─complete─▶ completed
///    ▲                │ session ends                 │ session ends
///    └────────────────┴──── (never sent, or idempotent)─┘──▶ unacknowledged
/// pending ─cancel─▶ cancelled
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BatchState {
    /// Waiting for a session with the device.
    Pending,
    /// Claimed by a session, not yet sent.
    InFlight,
    /// Sent in a session; statuses are arriving.
    Sent,
    /// Every status arrived.
    Completed,
    /// Sent, but the session ended without all statuses, and the batch is
    /// not idempotent: the device may or may not have applied it.
    Unacknowledged,
    /// Cancelled by its owner before it was claimed.
    Cancelled,
}

impl BatchState {
    /// The stored name: `pending`, `in_flight`, `sent`, `completed`,
    /// `unacknowledged` or `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            BatchState::Pending => "pending",
            BatchState::InFlight => "in_flight",
            BatchState::Sent => "sent",
            BatchState::Completed => "completed",
            BatchState::Unacknowledged => "unacknowledged",
            BatchState::Cancelled => "cancelled",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<BatchState> {
        match s {
            "pending" => Some(BatchState::Pending),
            "in_flight" => Some(BatchState::InFlight),
            "sent" => Some(BatchState::Sent),
            "completed" => Some(BatchState::Completed),
            "unacknowledged" => Some(BatchState::Unacknowledged),
            "cancelled" => Some(BatchState::Cancelled),
            _ => None,
        }
    }

    /// Whether the batch will not change any more.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            BatchState::Completed | BatchState::Unacknowledged | BatchState::Cancelled
        )
    }
}

/// The status (and results) the device returned for one command of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandOutcome {
    /// The command's position in [`command_count`] order.
    pub index: u32,
    /// The Status code.
    pub status: StatusCode,
    /// Results answering a Get (empty otherwise).
    pub results: Vec<Results>,
    /// When it was recorded.
    pub recorded_at: Timestamp,
}

/// One outcome to record (see [`crate::store::CommandQueue::record_outcomes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutcomeWrite<'a> {
    /// The batch.
    pub batch: BatchId,
    /// The command's position in [`command_count`] order.
    pub index: u32,
    /// Its status.
    pub status: StatusCode,
    /// Its results.
    pub results: &'a [Results],
}

/// What [`crate::store::CommandQueue::record_outcomes`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutcomesReport {
    /// Batches completed.
    pub completed: Vec<BatchId>,
    /// Batches the session no longer holds (their outcomes were dropped).
    pub gone: Vec<BatchId>,
}

/// One command's status and results, owned (see [`MessageWrite`]).
#[derive(Clone, Debug, PartialEq)]
pub struct MessageOutcome {
    /// The batch.
    pub batch: BatchId,
    /// The command's position in [`command_count`] order.
    pub index: u32,
    /// Its status.
    pub status: StatusCode,
    /// Its results.
    pub results: Vec<Results>,
}

/// Everything one DM message changes in the store, written in one
/// transaction by [`crate::store::SessionStore::write_message`], in this
/// order: the session row, DevInfo/DevDetail, nonces, cancelled package 0,
/// client alerts, outcomes and completed batches, claimed batches, the
/// activity time, the session's end.
#[derive(Clone, Debug, Default)]
pub struct MessageWrite {
    /// The device.
    pub device_id: String,
    /// The session's row; `None` with [`MessageWrite::start`] creates it.
    pub session: Option<SessionKey>,
    /// Creates the session row (the first write of a session).
    pub start: Option<NewSession>,
    /// DevInfo/DevDetail values (as `record_device_info`); also marks the
    /// device seen.
    pub nodes: BTreeMap<String, String>,
    /// New nonces.
    pub nonces: Option<NonceUpdate>,
    /// Cancel the device's pending package 0 (it called).
    pub cancel_notifications: bool,
    /// Client alerts to store (their `session` is this session).
    pub alerts: Vec<NewAlert>,
    /// Statuses and results (as `record_outcomes`).
    pub outcomes: Vec<MessageOutcome>,
    /// Batches of this session to complete (as `record_outcomes`).
    pub complete: Vec<BatchId>,
    /// Claim up to this many pending batches and mark them sent (as
    /// `claim_batches` then `mark_batch_sent`): the message that carries
    /// them is built next.
    pub claim: Option<u32>,
    /// Refresh the session's activity time.
    pub touch: bool,
    /// End the session (as `finish_session`, requeue rule included).
    pub finish: Option<SessionEnd>,
}

/// What [`crate::store::SessionStore::write_message`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageReport {
    /// The session's row (created by this write if it started it).
    pub session: Option<SessionKey>,
    /// The stored alerts, in the order given.
    pub alerts: Vec<AlertId>,
    /// Outcomes and completions.
    pub outcomes: OutcomesReport,
    /// The batches claimed and marked sent, oldest first.
    pub claimed: Vec<Batch>,
    /// The requeue report of the session's end; `None` if not asked, or if
    /// the row had already been closed (by a sweep).
    pub finished: Option<RequeueReport>,
}

/// A stored batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Its key.
    pub id: BatchId,
    /// The device.
    pub device_id: String,
    /// The owner tag.
    pub owner: String,
    /// The commands.
    pub commands: Vec<Command>,
    /// The number of commands in [`command_count`] order.
    pub command_count: u32,
    /// Whether it may be sent again after an unacknowledged send.
    pub idempotent: bool,
    /// Its state.
    pub state: BatchState,
    /// The session holding it (or that last held it).
    pub session: Option<SessionKey>,
    /// How many sessions have claimed it.
    pub attempts: u32,
    /// When it was enqueued.
    pub created_at: Timestamp,
    /// When the current session claimed it.
    pub claimed_at: Option<Timestamp>,
    /// When it was first sent in the current session.
    pub sent_at: Option<Timestamp>,
    /// When it reached a finished state.
    pub finished_at: Option<Timestamp>,
    /// The outcomes recorded so far, by index.
    pub outcomes: Vec<CommandOutcome>,
}

/// The number of commands in a batch counting containers and their children
/// in depth-first pre-order: `[Get, Atomic[Add, Exec]]` is 4, indexed
/// Get=0, Atomic=1, Add=2, Exec=3. Outcomes are recorded under these indices.
pub fn command_count(commands: &[Command]) -> u32 {
    commands
        .iter()
        .map(|c| match c {
            Command::Atomic(k) | Command::Sequence(k) => 1 + command_count(&k.commands),
            _ => 1,
        })
        .fold(0u32, u32::saturating_add)
}

/// Correlators of the Execs in a batch, nested ones included.
pub(crate) fn correlators(commands: &[Command], out: &mut Vec<String>) {
    for c in commands {
        match c {
            Command::Exec(e) => {
                if let Some(k) = &e.correlator {
                    out.push(k.clone());
                }
            }
            Command::Atomic(k) | Command::Sequence(k) => correlators(&k.commands, out),
            _ => {}
        }
    }
}

/// Whether `commands` may be queued: no Status, Results or Alert, at any depth.
pub(crate) fn first_unqueueable(commands: &[Command]) -> Option<&'static str> {
    commands.iter().find_map(|c| match c {
        Command::Status(_) | Command::Results(_) | Command::Alert(_) => Some(c.name()),
        Command::Atomic(k) | Command::Sequence(k) => first_unqueueable(&k.commands),
        _ => None,
    })
}

/// A consumer's claim on finished batches or alerts: others skip them until
/// `until`, after which they are offered again (the consumer died).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// Who holds it (node id, worker name); recorded for diagnosis.
    pub consumer: String,
    /// When it lapses.
    pub until: Timestamp,
}

// ---------------------------------------------------------------------------
// Generic alerts

/// The store's key of a received alert item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AlertId(pub i64);

/// One Item of a Generic Alert (`OMA-TS-DM_Protocol-V1_2` §8.7, alert 1226).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAlert {
    /// The device that sent it.
    pub device_id: String,
    /// The session it came in.
    pub session: Option<SessionKey>,
    /// The alert code (1226 for a Generic Alert).
    pub code: AlertCode,
    /// `<Correlator>`: echoes the Exec's correlator.
    pub correlator: Option<String>,
    /// Item Meta/Type, e.g. `urn:oma:at:scomo:1.0:OperationComplete`.
    pub alert_type: Option<String>,
    /// Item Meta/Format.
    pub format: Option<String>,
    /// Item Meta/Mark (importance).
    pub mark: Option<String>,
    /// Item Source/LocURI.
    pub source_uri: Option<String>,
    /// Item Target/LocURI.
    pub target_uri: Option<String>,
    /// Item Data.
    pub data: Option<Data>,
}

/// A stored alert item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredAlert {
    /// Its key.
    pub id: AlertId,
    /// What was received.
    pub alert: NewAlert,
    /// The batch whose Exec carried the correlator, if any.
    pub batch: Option<BatchId>,
    /// That batch's owner.
    pub owner: Option<String>,
    /// When it arrived.
    pub received_at: Timestamp,
    /// When a consumer acknowledged it.
    pub processed_at: Option<Timestamp>,
}

// ---------------------------------------------------------------------------
// Notifications

/// The store's key of a notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NotificationId(pub i64);

/// Where a notification is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NotificationState {
    /// To be (re)sent at `next_attempt_at`.
    Pending,
    /// The device called; no more attempts.
    Cancelled,
    /// Gave up after the last attempt.
    Expired,
}

impl NotificationState {
    /// The stored name: `pending`, `cancelled` or `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationState::Pending => "pending",
            NotificationState::Cancelled => "cancelled",
            NotificationState::Expired => "expired",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<NotificationState> {
        match s {
            "pending" => Some(NotificationState::Pending),
            "cancelled" => Some(NotificationState::Cancelled),
            "expired" => Some(NotificationState::Expired),
            _ => None,
        }
    }
}

/// A package 0 to deliver to a device (`OMA-TS-DM_Notification-V1_2`).
///
/// The message itself is built at send time from the device row (its digest
/// depends on the current credentials and nonce), so only the schedule is
/// stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// Its key.
    pub id: NotificationId,
    /// The device.
    pub device_id: String,
    /// Where it is.
    pub state: NotificationState,
    /// When it was first asked for.
    pub created_at: Timestamp,
    /// When it is due (or, while claimed, when the claim lapses).
    pub next_attempt_at: Timestamp,
    /// Attempts so far.
    pub attempts: u32,
    /// The last attempt.
    pub last_attempt_at: Option<Timestamp>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
}

/// Retry schedule for notifications: `initial * factor^(n-1)` after the
/// `n`-th attempt, at most `max_delay`, giving up after `max_attempts`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first attempt.
    pub initial: Duration,
    /// Growth per attempt.
    pub factor: u32,
    /// The longest delay.
    pub max_delay: Duration,
    /// Attempts before the notification expires.
    pub max_attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(30),
            factor: 2,
            max_delay: Duration::from_secs(3600),
            max_attempts: 12,
        }
    }
}

impl Backoff {
    /// The delay after attempt number `attempts` (1-based).
    pub fn delay(&self, attempts: u32) -> Duration {
        let mut d = self.initial;
        for _ in 1..attempts {
            d = d.saturating_mul(self.factor);
            if d >= self.max_delay {
                return self.max_delay;
            }
        }
        d.min(self.max_delay)
    }
}

// ---------------------------------------------------------------------------
// API tokens

/// The store's key of an API token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenId(pub i64);

/// An admin API token as stored: only its SHA-256 is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiToken {
    /// Its key.
    pub id: TokenId,
    /// A name for people (`admin`, `ci`).
    pub name: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last verified.
    pub last_used_at: Option<Timestamp>,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
}

/// A token's clear text, returned once at creation. `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(pub(crate) String);

impl TokenSecret {
    /// The text to hand to the client (`scomo_` + 43 base64url characters).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use omadm_wire::model::{Container, Exec, ItemCommand};

    #[test]
    fn backoff_grows_and_caps() {
        let b = Backoff {
            initial: Duration::from_secs(10),
            factor: 3,
            max_delay: Duration::from_secs(100),
            max_attempts: 5,
        };
        assert_eq!(b.delay(1), Duration::from_secs(10));
        assert_eq!(b.delay(2), Duration::from_secs(30));
        assert_eq!(b.delay(3), Duration::from_secs(90));
        assert_eq!(b.delay(4), Duration::from_secs(100));
        assert_eq!(b.delay(40), Duration::from_secs(100));
    }

    #[test]
    fn command_count_is_preorder() {
        let exec = Command::Exec(Exec {
            correlator: Some("c1".into()),
            ..Exec::default()
        });
        let cmds = vec![
            Command::Get(ItemCommand::default()),
            Command::Atomic(Container {
                commands: vec![Command::Add(ItemCommand::default()), exec],
                ..Container::default()
            }),
        ];
        assert_eq!(command_count(&cmds), 4);
        let mut c = Vec::new();
        correlators(&cmds, &mut c);
        assert_eq!(c, ["c1"]);
        assert_eq!(first_unqueueable(&cmds), None);
    }

    #[test]
    fn secrets_are_redacted() {
        let c = ClientCredentials::from_password(AuthType::Md5, "dev", "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(c.matches_password("dev", "hunter2"));
        assert!(!c.matches_password("dev", "hunter3"));
        let s = ServerCredentials {
            auth_type: AuthType::Basic,
            server_id: "scomo".into(),
            password: "s3cret".into(),
        };
        assert!(!format!("{s:?}").contains("s3cret"));
        assert!(!format!("{:?}", TokenSecret("scomo_abc".into())).contains("abc"));
    }
}
