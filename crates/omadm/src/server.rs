//! The server side of a DM session (`OMA-TS-DM_Protocol-V1_2` §6, §8).
//!
//! ```text
//!   ServerSession::accept(pkg1) ──▶ Accepted { device_id }      (no credentials yet)
//!        runtime looks up the device ──▶ into_session(account)
//!   loop:
//!     poll_event()        DevInfo, alerts, statuses/results of sent commands
//!     queue_command(id)   when is_ready_for_commands()
//!     poll_transmit()     the response body (statuses, commands, or the end)
//!     handle_message()    the device's next message
//! ```
//!
//! One response per received message. A duplicate of the last message gets
//! the cached response again; nothing is executed twice.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use omadm_wire::model::{Alert, Command, Location, Results, Status, SyncHdr, SyncMl};
use omadm_wire::{AlertCode, Encoding, Limits, StatusCode};

use crate::auth::{AuthType, Nonce, RandomSource};
use crate::common::{
    decode_incoming, header_status, is_header_status, size_meta, status_for, AuthConfig, Incoming,
    NonceState, Prover, ProverReaction, Verdict, Verifier,
};
use crate::error::SessionError;
use crate::large_object::{Assembler, Fed, MemorySink};
use crate::packer::{self, Budget, OutCmd};

/// Server-wide session settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Our URL (SyncHdr `Source/LocURI`).
    pub server_uri: String,
    /// `RespURI` to put in every header (pins the session to this node).
    pub resp_uri: Option<String>,
    /// MaxMsgSize we advertise and enforce (bigger requests: 413).
    pub max_msg_size: u64,
    /// MaxObjSize we advertise; bounds large-object reassembly.
    pub max_obj_size: Option<u64>,
    /// Answer good credentials with 200 (credentials in every message)
    /// instead of 212 (authenticated for the session).
    pub auth_per_message: bool,
    /// Bad client credentials tolerated (the first earns a fresh challenge).
    pub max_auth_failures: u32,
    /// How often we answer the device's challenge of our credentials.
    pub max_auth_retries: u32,
    /// Length of nonces we issue.
    pub nonce_len: usize,
    /// The device's MaxMsgSize to assume when it sends none.
    pub assumed_device_max_msg_size: Option<u64>,
    /// Decoder limits.
    pub limits: Limits,
    /// Idle time after which [`ServerSession::is_expired`] says so.
    pub idle_timeout: Duration,
}

impl ServerConfig {
    /// Default MaxMsgSize.
    pub const DEFAULT_MAX_MSG_SIZE: u64 = 64 * 1024;
    /// Default MaxObjSize.
    pub const DEFAULT_MAX_OBJ_SIZE: u64 = 16 * 1024 * 1024;

    /// Defaults: 212 auth, two tries, 16-byte nonces, 64 KiB messages.
    pub fn new(server_uri: impl Into<String>) -> ServerConfig {
        ServerConfig {
            server_uri: server_uri.into(),
            resp_uri: None,
            max_msg_size: Self::DEFAULT_MAX_MSG_SIZE,
            max_obj_size: Some(Self::DEFAULT_MAX_OBJ_SIZE),
            auth_per_message: false,
            max_auth_failures: 2,
            max_auth_retries: 2,
            nonce_len: Nonce::DEFAULT_LEN,
            assumed_device_max_msg_size: None,
            limits: Limits::default(),
            idle_timeout: Duration::from_secs(300),
        }
    }
}

/// What the server knows about one device's credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceAccount {
    /// What the device must present; `None` trusts the transport.
    pub client_auth: Option<AuthConfig>,
    /// What we present to the device (its SRVCRED), if anything.
    pub server_auth: Option<AuthConfig>,
    /// Persisted nonces.
    pub nonces: NonceState,
}

/// How the device opened the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Initiation {
    /// Alert 1201.
    ClientInitiated,
    /// Alert 1200 (answering package 0; see
    /// [`package0::session_id_matches`](crate::package0::session_id_matches)).
    ServerInitiated,
    /// Neither alert (tolerated on MsgID 1).
    Unspecified,
}

/// Where a received command was: to refer to it later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CmdRef {
    /// The MsgID of the device's message.
    pub msg_id: u32,
    /// The command's CmdID.
    pub cmd_id: u32,
}

/// One response body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The body.
    pub body: Vec<u8>,
    /// Its Content-Type (the request's encoding).
    pub content_type: &'static str,
    /// `x-syncml-hmac` header value, when HMAC is in use.
    pub hmac: Option<String>,
}

/// How a server session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerOutcome {
    /// We sent Status + Final with no commands.
    Completed,
    /// The device sent Alert 1223.
    AbortedByClient,
    /// We sent Alert 1223.
    AbortedByServer,
    /// The device did not authenticate.
    AuthenticationFailed,
    /// The device refused our credentials, or another protocol error.
    Failed(SessionError),
}

/// What the device's message brought.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[expect(
    clippy::large_enum_variant,
    reason = "a handful of events per message, drained at once"
)]
pub enum ServerEvent {
    /// The device's credentials verified.
    Authenticated {
        /// The type used (`None` when no DM-level auth is configured).
        auth_type: Option<AuthType>,
    },
    /// The device was challenged (missing or stale credentials).
    Challenged {
        /// 401 or 407.
        status: StatusCode,
    },
    /// The device failed authentication (or is unknown); the response
    /// ends the session.
    AuthenticationFailed {
        /// Credentials checked or challenges issued.
        attempts: u32,
    },
    /// `./DevInfo` values from a Replace (package 1).
    DevInfo(Vec<(String, String)>),
    /// A client alert: Generic Alert 1226 (with Correlator and items),
    /// Client Event 1224, No End Of Data 1225. Its Status is 200 unless
    /// changed with [`ServerSession::set_status`] before `poll_transmit`.
    Alert {
        /// Where it was.
        at: CmdRef,
        /// The alert.
        alert: Alert,
    },
    /// The device's Status for a command we sent (213 for chunks is not
    /// reported).
    Status {
        /// The caller's command id.
        id: u64,
        /// Index path inside Atomic/Sequence (empty: the command itself).
        path: Vec<usize>,
        /// The Status.
        status: Status,
    },
    /// Results for a Get we sent (large objects reassembled).
    Results {
        /// The caller's command id.
        id: u64,
        /// Index path of the Get inside a Sequence (empty: top level).
        path: Vec<usize>,
        /// The Results.
        results: Results,
    },
    /// A queued command that cannot be sent (bigger than the device's
    /// MaxObjSize or MaxMsgSize): 413.
    NotSent {
        /// The caller's command id.
        id: u64,
        /// Why.
        status: StatusCode,
    },
    /// The nonces to persist changed.
    NoncesChanged(NonceState),
    /// The session is over (after the response just produced).
    Ended(ServerOutcome),
}

/// How `handle_message` took a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handled {
    /// A new message, processed.
    Processed,
    /// The last message again: the cached response is re-sent, nothing runs.
    Duplicate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tag {
    Caller(u64),
    Response,
    Control,
}

#[derive(Clone, Debug)]
struct SentInfo {
    id: u64,
    path: Vec<usize>,
    more_data: bool,
}

/// The shape of the response owed for the last message.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Reply {
    /// Only statuses, Final (authentication challenge or failure).
    StatusesOnly { end: Option<ServerOutcome> },
    /// The device's package goes on: statuses + Alert 1222, no Final.
    NeedMore,
    /// Our package goes on (or starts): statuses + commands, Final when the
    /// queue drains; the end of the session if there is nothing to send.
    Package,
}

/// A first message, decoded, waiting for the device's credentials.
#[derive(Debug)]
pub struct Accepted {
    cfg: ServerConfig,
    now: Instant,
    msg: SyncMl,
    encoding: Encoding,
    body: Vec<u8>,
    hmac: Option<String>,
}

impl Accepted {
    /// The device id (SyncHdr `Source/LocURI`).
    pub fn device_id(&self) -> &str {
        &self.msg.header.source.loc_uri
    }

    /// The SessionID.
    pub fn session_id(&self) -> &str {
        &self.msg.header.session_id
    }

    /// The user name the device gave (`Source/LocName`), if any.
    pub fn loc_name(&self) -> Option<&str> {
        self.msg.header.source.loc_name.as_deref()
    }

    /// How the session was opened.
    pub fn initiation(&self) -> Initiation {
        initiation(&self.msg)
    }

    /// Continues with the device's account (`None`: unknown device, which
    /// is answered 401 and the session ends).
    pub fn into_session(
        self,
        account: Option<DeviceAccount>,
        rng: &mut dyn RandomSource,
    ) -> ServerSession {
        let known = account.is_some();
        let account = account.unwrap_or(DeviceAccount {
            client_auth: None,
            server_auth: None,
            nonces: NonceState::default(),
        });
        let cfg = self.cfg;
        let h = &self.msg.header;
        let mut s = ServerSession {
            device_id: h.source.loc_uri.clone(),
            session_id: h.session_id.clone(),
            client_target: h.target.loc_uri.clone(),
            encoding: self.encoding,
            msg_id: 0,
            last_client_msg: 0,
            done: None,
            known,
            verifier: Verifier::new(
                account.client_auth.clone(),
                account.nonces.client_nonce.clone(),
                cfg.auth_per_message,
                cfg.max_auth_failures,
                cfg.nonce_len,
            ),
            auth_type: account.client_auth.as_ref().map(|a| a.auth_type),
            prover: Prover::new(
                account.server_auth.clone(),
                account.nonces.server_nonce.clone(),
                cfg.max_auth_retries,
            ),
            nonces: account.nonces,
            reply: None,
            head: None,
            control: Vec::new(),
            responses: Vec::new(),
            queue: VecDeque::new(),
            pending: VecDeque::new(),
            device_max_msg_size: cfg.assumed_device_max_msg_size.map(clamp),
            device_max_obj_size: None,
            assembler: Assembler::new(Box::new(MemorySink::new(
                cfg.max_obj_size
                    .unwrap_or(ServerConfig::DEFAULT_MAX_OBJ_SIZE),
            ))),
            sent: HashMap::new(),
            last_placed: Vec::new(),
            cached: None,
            dup_due: false,
            events: VecDeque::new(),
            last_activity: self.now,
            dev_info: Vec::new(),
            abort_requested: false,
            cfg,
        };
        s.process(self.msg, &self.body, self.hmac.as_deref(), rng);
        s
    }
}

/// The server side of one DM session.
pub struct ServerSession {
    cfg: ServerConfig,
    device_id: String,
    session_id: String,
    client_target: String,
    encoding: Encoding,
    msg_id: u32,
    last_client_msg: u32,
    done: Option<ServerOutcome>,
    known: bool,
    verifier: Verifier,
    auth_type: Option<AuthType>,
    prover: Prover,
    nonces: NonceState,
    reply: Option<Reply>,
    head: Option<Status>,
    control: Vec<Command>,
    responses: Vec<Command>,
    /// Our current package, being sent.
    queue: VecDeque<OutCmd<Tag>>,
    /// Commands for the next package.
    pending: VecDeque<OutCmd<Tag>>,
    device_max_msg_size: Option<usize>,
    device_max_obj_size: Option<u64>,
    assembler: Assembler,
    sent: HashMap<(u32, u32), SentInfo>,
    last_placed: Vec<OutCmd<Tag>>,
    cached: Option<Response>,
    /// A duplicate arrived: `poll_transmit` re-sends `cached`.
    dup_due: bool,
    events: VecDeque<ServerEvent>,
    last_activity: Instant,
    dev_info: Vec<(String, String)>,
    abort_requested: bool,
}

impl std::fmt::Debug for ServerSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSession")
            .field("device_id", &self.device_id)
            .field("session_id", &self.session_id)
            .field("msg_id", &self.msg_id)
            .field("done", &self.done)
            .finish()
    }
}

impl ServerSession {
    /// Decodes the first message of a session. Errors map to HTTP
    /// ([`SessionError::http_status`]): 413 oversize, 400 undecodable.
    pub fn accept(
        cfg: ServerConfig,
        now: Instant,
        incoming: Incoming<'_>,
    ) -> Result<Accepted, SessionError> {
        check_size(&cfg, incoming.body)?;
        let (msg, encoding) = decode_incoming(&incoming, &cfg.limits)?;
        if msg.header.msg_id != 1 && initiation(&msg) == Initiation::Unspecified {
            return Err(SessionError::NotPackage1 {
                session_id: msg.header.session_id.clone(),
                msg_id: msg.header.msg_id,
            });
        }
        Ok(Accepted {
            cfg,
            now,
            msg,
            encoding,
            body: incoming.body.to_vec(),
            hmac: incoming.hmac.map(str::to_owned),
        })
    }

    /// The device id.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// The SessionID.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// DevInfo received so far.
    pub fn dev_info(&self) -> &[(String, String)] {
        &self.dev_info
    }

    /// The nonces to persist for this device.
    pub fn nonces(&self) -> &NonceState {
        &self.nonces
    }

    /// The device's MaxMsgSize, if it sent one.
    pub fn device_max_msg_size(&self) -> Option<usize> {
        self.device_max_msg_size
    }

    /// Whether the session is over (a duplicate of the last message still
    /// gets the cached response).
    pub fn is_finished(&self) -> bool {
        self.done.is_some() && self.reply.is_none() && !self.dup_due
    }

    /// How it ended.
    pub fn outcome(&self) -> Option<&ServerOutcome> {
        self.done.as_ref()
    }

    /// Whether the session has been idle longer than the configured timeout.
    pub fn is_expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_activity) > self.cfg.idle_timeout
    }

    /// The next event, if any. Drain after `into_session`/`handle_message`
    /// and after `poll_transmit` (which reports unsendable commands, nonce
    /// changes and the end).
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// The nonces as they will be once the response being prepared is sent
    /// (what the next [`ServerEvent::NoncesChanged`] will carry).
    ///
    /// A runtime that writes the store before building the response (to
    /// claim queued work, say) can persist these with that write and save
    /// the write that would follow the response. Should the response then
    /// never reach the device, the device still uses the nonce it knew; it
    /// is challenged with a fresh one and retries, as after any lost
    /// response.
    pub fn nonces_after_response(&self) -> NonceState {
        self.nonces_using(self.verifier.next_nonce())
    }

    /// The nonces to persist with `client_nonce` as the device's next one.
    fn nonces_using(&self, client_nonce: &Nonce) -> NonceState {
        let mut next = self.nonces.clone();
        next.client_nonce = client_nonce.clone();
        // A nonce from a device not yet authenticated is used, not stored.
        if self.known && self.verifier.trusted() {
            next.server_nonce = self.prover.nonce().clone();
        }
        next
    }

    /// Whether the response being prepared starts a new package: the time
    /// to queue commands (queued at other times they wait for it).
    pub fn is_ready_for_commands(&self) -> bool {
        self.reply == Some(Reply::Package) && self.queue.is_empty() && self.done.is_none()
    }

    /// Queues a command for the device under the caller's `id`; its Status
    /// and Results come back as events with that id.
    pub fn queue_command(&mut self, id: u64, cmd: Command) {
        self.pending.push_back(OutCmd::new(cmd, Tag::Caller(id)));
    }

    /// Changes the Status we answer a received command with (e.g. 202 or
    /// 415 for a Generic Alert), before `poll_transmit`.
    pub fn set_status(&mut self, at: CmdRef, code: StatusCode) -> bool {
        for c in &mut self.responses {
            if let Command::Status(s) = c {
                if s.msg_ref == Some(at.msg_id) && s.cmd_ref == at.cmd_id {
                    s.data = code;
                    return true;
                }
            }
        }
        false
    }

    /// Ends the session: the next response carries Alert 1223 and Final.
    pub fn abort(&mut self) {
        if self.done.is_none() {
            self.abort_requested = true;
        }
    }

    /// Takes the device's next message.
    pub fn handle_message(
        &mut self,
        now: Instant,
        incoming: Incoming<'_>,
        rng: &mut dyn RandomSource,
    ) -> Result<Handled, SessionError> {
        check_size(&self.cfg, incoming.body)?;
        let (msg, encoding) = decode_incoming(&incoming, &self.cfg.limits)?;
        if !msg
            .header
            .session_id
            .trim()
            .eq_ignore_ascii_case(self.session_id.trim())
        {
            return Err(SessionError::WrongSession {
                expected: self.session_id.clone(),
                found: msg.header.session_id,
            });
        }
        let id = msg.header.msg_id;
        if id == self.last_client_msg && self.cached.is_some() {
            self.last_activity = now;
            self.dup_due = true;
            return Ok(Handled::Duplicate);
        }
        if id < self.last_client_msg {
            return Err(SessionError::OutOfSequence {
                msg_id: id,
                last: self.last_client_msg,
            });
        }
        if self.done.is_some() {
            return Err(SessionError::InvalidState("the session has ended"));
        }
        if self.reply.is_some() {
            return Err(SessionError::InvalidState(
                "poll_transmit must answer the previous message first",
            ));
        }
        self.last_activity = now;
        self.encoding = encoding;
        self.process(msg, incoming.body, incoming.hmac, rng);
        Ok(Handled::Processed)
    }

    fn process(
        &mut self,
        msg: SyncMl,
        body: &[u8],
        hmac: Option<&str>,
        rng: &mut dyn RandomSource,
    ) {
        let h = &msg.header;
        let client_msg = h.msg_id;
        self.last_client_msg = client_msg;
        self.cached = None;
        if let Some(m) = &h.meta {
            if let Some(s) = m.max_msg_size {
                self.device_max_msg_size = Some(clamp(s));
            }
            if let Some(s) = m.max_obj_size {
                self.device_max_obj_size = Some(s);
            }
        }
        let verdict = if self.known {
            self.verifier.verify(h, hmac, body, rng)
        } else {
            Verdict::Fail { attempts: 1 }
        };
        self.update_nonces();
        let deny = |code: StatusCode, cmds: &[Command]| -> Vec<Command> {
            cmds.iter()
                .filter(|c| !matches!(c, Command::Status(_) | Command::Results(_)) && !c.no_resp())
                .map(|c| Command::Status(status_for(client_msg, c, code)))
                .collect()
        };
        match verdict {
            Verdict::Fail { attempts } => {
                self.head = Some(header_status(h, StatusCode::INVALID_CREDENTIALS, None));
                self.responses = deny(StatusCode::INVALID_CREDENTIALS, &msg.body.commands);
                self.reply = Some(Reply::StatusesOnly {
                    end: Some(ServerOutcome::AuthenticationFailed),
                });
                self.events
                    .push_back(ServerEvent::AuthenticationFailed { attempts });
                return;
            }
            Verdict::Challenge { code, chal } => {
                self.head = Some(header_status(h, code, Some(chal)));
                self.responses = deny(code, &msg.body.commands);
                self.events
                    .push_back(ServerEvent::Challenged { status: code });
                self.reply = Some(Reply::StatusesOnly { end: None });
                return;
            }
            Verdict::Ok { code, chal, fresh } => {
                self.head = (!h.no_resp).then(|| header_status(h, code, chal));
                if fresh || (!self.verifier.is_required() && self.msg_id == 0) {
                    self.events.push_back(ServerEvent::Authenticated {
                        auth_type: self.auth_type,
                    });
                }
                self.update_nonces();
            }
        }

        // The device's answer to our credentials.
        let mut retry = false;
        for c in &msg.body.commands {
            if let Command::Status(s) = c {
                if is_header_status(s)
                    && s.msg_ref.is_none_or(|r| r == self.msg_id)
                    && self.msg_id > 0
                {
                    match self.prover.on_status(s) {
                        Ok(ProverReaction::Retry) => retry = true,
                        Ok(ProverReaction::Accepted) => {}
                        Err(e) => {
                            self.responses.clear();
                            self.reply = Some(Reply::StatusesOnly {
                                end: Some(ServerOutcome::Failed(e)),
                            });
                            return;
                        }
                    }
                }
            }
        }
        self.update_nonces();
        if retry {
            // The device executed nothing of our last message: send it again.
            for oc in std::mem::take(&mut self.last_placed).into_iter().rev() {
                if oc.tag != Tag::Control {
                    self.queue.push_front(oc);
                }
            }
        } else {
            for c in &msg.body.commands {
                if let Command::Status(s) = c {
                    if !is_header_status(s) {
                        self.on_status(s);
                    }
                }
            }
        }

        let mut responses = Vec::new();
        let mut next_part_requested = false;
        let mut aborted = false;
        for cmd in msg.body.commands {
            let at = CmdRef {
                msg_id: client_msg,
                cmd_id: cmd.cmd_id(),
            };
            match &cmd {
                Command::Status(_) => continue,
                Command::Alert(a) if a.data == Some(AlertCode::NEXT_MESSAGE) => {
                    next_part_requested = true;
                }
                Command::Alert(a) if a.data == Some(AlertCode::SESSION_ABORT) => {
                    aborted = true;
                }
                _ => {}
            }
            let no_resp = cmd.no_resp();
            let reference = status_for(client_msg, &cmd, StatusCode::OK);
            let is_control = matches!(&cmd, Command::Alert(a)
                if a.data == Some(AlertCode::NEXT_MESSAGE) || a.data == Some(AlertCode::SESSION_ABORT));
            let fed = if is_control {
                Fed::Whole(cmd)
            } else {
                let (interrupted, fed) = self.assembler.feed(cmd);
                if let Some(a) = interrupted {
                    responses.push(Command::Alert(a));
                }
                fed
            };
            let code = match fed {
                Fed::Whole(c) | Fed::Complete(c) => self.take_command(at, c),
                Fed::Buffered => Some(StatusCode::CHUNK_ACCEPTED),
                Fed::Refused(code) => Some(code),
            };
            if let (Some(code), false) = (code, no_resp) {
                responses.push(Command::Status(Status {
                    data: code,
                    ..reference
                }));
            }
        }
        self.responses = responses;

        self.reply = Some(if aborted {
            self.assembler.reset();
            Reply::StatusesOnly {
                end: Some(ServerOutcome::AbortedByClient),
            }
        } else if !self.queue.is_empty() || next_part_requested {
            Reply::Package
        } else if !msg.body.is_final {
            Reply::NeedMore
        } else {
            Reply::Package
        });
    }

    /// Handles one complete received command; returns its Status code
    /// (`None`: no Status, as for Results).
    fn take_command(&mut self, at: CmdRef, cmd: Command) -> Option<StatusCode> {
        match cmd {
            Command::Alert(a) => match a.data.map(|d| d.0) {
                Some(1200 | 1201 | 1222 | 1223) => Some(StatusCode::OK),
                Some(1224..=1226) => {
                    self.events.push_back(ServerEvent::Alert { at, alert: a });
                    Some(StatusCode::OK)
                }
                _ => Some(StatusCode::OPTIONAL_FEATURE_NOT_SUPPORTED),
            },
            Command::Replace(r) => {
                let values: Vec<(String, String)> = r
                    .items
                    .iter()
                    .filter_map(|i| {
                        let uri = i.source.as_ref().or(i.target.as_ref())?.loc_uri.clone();
                        let value = i
                            .data
                            .as_ref()
                            .and_then(|d| d.as_str())
                            .unwrap_or("")
                            .to_owned();
                        Some((uri, value))
                    })
                    .collect();
                for (k, v) in &values {
                    match self.dev_info.iter_mut().find(|(u, _)| u == k) {
                        Some(slot) => slot.1 = v.clone(),
                        None => self.dev_info.push((k.clone(), v.clone())),
                    }
                }
                self.events.push_back(ServerEvent::DevInfo(values));
                Some(StatusCode::OK)
            }
            Command::Results(r) => {
                let key = (r.msg_ref.unwrap_or(self.msg_id), r.cmd_ref);
                if let Some(info) = self.sent.get(&key) {
                    self.events.push_back(ServerEvent::Results {
                        id: info.id,
                        path: info.path.clone(),
                        results: r,
                    });
                }
                None
            }
            // A client may only send Alert, Replace (DevInfo), Results, Status.
            _ => Some(StatusCode::COMMAND_NOT_ALLOWED),
        }
    }

    fn on_status(&mut self, s: &Status) {
        let key = (s.msg_ref.unwrap_or(self.msg_id), s.cmd_ref);
        let Some(info) = self.sent.get(&key).cloned() else {
            return;
        };
        if info.more_data && s.data == StatusCode::CHUNK_ACCEPTED {
            return;
        }
        if info.more_data {
            // A chunk was refused: the rest of that object is not sent.
            self.queue
                .retain(|oc| !(oc.continuation && oc.tag == Tag::Caller(info.id)));
        }
        self.events.push_back(ServerEvent::Status {
            id: info.id,
            path: info.path,
            status: s.clone(),
        });
    }

    /// The response owed for the last message.
    pub fn poll_transmit(&mut self) -> Option<Response> {
        if self.reply.is_none() {
            if std::mem::take(&mut self.dup_due) {
                // A duplicate was received: the same answer again.
                return self.cached.clone();
            }
            return None;
        }
        match self.build() {
            Ok(r) => Some(r),
            Err(e) => {
                // Nothing sensible fits: end the session with a bare Final.
                self.reply = Some(Reply::StatusesOnly {
                    end: Some(ServerOutcome::Failed(e)),
                });
                self.responses.clear();
                self.queue.clear();
                self.build().ok()
            }
        }
    }

    fn build(&mut self) -> Result<Response, SessionError> {
        let Some(reply) = self.reply.clone() else {
            return Err(SessionError::InvalidState("no response due"));
        };
        let msg_id = self.msg_id + 1;
        let trusted = self.known && self.verifier.trusted();
        let mut header = SyncHdr::new(
            self.session_id.clone(),
            msg_id,
            Location::uri(self.device_id.clone()),
            Location {
                loc_uri: if self.client_target.is_empty() {
                    self.cfg.server_uri.clone()
                } else {
                    self.client_target.clone()
                },
                loc_name: None,
            },
        );
        header.resp_uri = self.cfg.resp_uri.clone();
        header.meta = Some(size_meta(self.cfg.max_msg_size, self.cfg.max_obj_size));
        // Our credentials only to a device that proved itself: a digest made
        // for the device's nonce must not reach an impostor.
        if trusted {
            header.cred = self.prover.cred()?;
            if header.cred.is_some() {
                header.source.loc_name = self.prover.username().map(str::to_owned);
            }
        }
        let mut head: Vec<Command> = self.head.take().map(Command::Status).into_iter().collect();
        head.append(&mut self.control);
        let budget = Budget {
            encoding: self.encoding,
            max_msg_size: self.device_max_msg_size,
            max_obj_size: self.device_max_obj_size,
        };
        let responses: Vec<OutCmd<Tag>> = std::mem::take(&mut self.responses)
            .into_iter()
            .map(|c| {
                let tag = if matches!(c, Command::Alert(_)) {
                    Tag::Control
                } else {
                    Tag::Response
                };
                OutCmd::new(c, tag)
            })
            .collect();
        let mut end = None;
        let packed = match &reply {
            Reply::StatusesOnly { end: e } => {
                end = e.clone();
                let mut q: VecDeque<_> = responses.into();
                packer::pack(header, head, &mut q, true, budget)?
            }
            _ if self.abort_requested => {
                end = Some(ServerOutcome::AbortedByServer);
                let mut q: VecDeque<_> = responses.into();
                let abort = Command::Alert(Alert::new(AlertCode::SESSION_ABORT));
                q.push_back(OutCmd::new(abort, Tag::Control));
                packer::pack(header, head, &mut q, true, budget)?
            }
            Reply::NeedMore => {
                let mut q: VecDeque<_> = responses.into();
                let next = Command::Alert(Alert::new(AlertCode::NEXT_MESSAGE));
                q.push_back(OutCmd::new(next, Tag::Control));
                packer::pack(header, head, &mut q, false, budget)?
            }
            Reply::Package => {
                if self.queue.is_empty() {
                    self.queue.append(&mut self.pending);
                }
                for oc in responses.into_iter().rev() {
                    self.queue.push_front(oc);
                }
                packer::pack(header, head, &mut self.queue, true, budget)?
            }
        };
        for u in &packed.unsendable {
            if let Tag::Caller(id) = u.out.tag {
                self.events.push_back(ServerEvent::NotSent {
                    id,
                    status: u.status,
                });
            }
        }
        let sent_commands = packed
            .placed
            .iter()
            .any(|p| matches!(p.out.tag, Tag::Caller(_)));
        if end.is_none() && reply == Reply::Package && !sent_commands && self.queue.is_empty() {
            // Status + Final and no command: the end of the session.
            end = Some(ServerOutcome::Completed);
        }
        self.last_placed.clear();
        for p in packed.placed {
            if let Tag::Caller(id) = p.out.tag {
                for (path, cmd_id) in p.ids {
                    self.sent.insert(
                        (msg_id, cmd_id),
                        SentInfo {
                            id,
                            path,
                            more_data: p.more_data,
                        },
                    );
                }
            }
            self.last_placed.push(p.out);
        }
        self.msg_id = msg_id;
        self.verifier.commit();
        self.update_nonces();
        let hmac = if trusted {
            self.prover.hmac(&packed.body)
        } else {
            None
        };
        let resp = Response {
            body: packed.body,
            content_type: self.encoding.content_type(),
            hmac,
        };
        self.cached = Some(resp.clone());
        self.reply = None;
        if let Some(outcome) = end {
            self.assembler.reset();
            self.queue.clear();
            self.events.push_back(ServerEvent::Ended(outcome.clone()));
            self.done = Some(outcome);
        }
        Ok(resp)
    }

    fn update_nonces(&mut self) {
        let next = self.nonces_using(self.verifier.nonce());
        if next != self.nonces {
            self.nonces = next.clone();
            self.events.push_back(ServerEvent::NoncesChanged(next));
        }
    }
}

fn initiation(msg: &SyncMl) -> Initiation {
    for c in &msg.body.commands {
        if let Command::Alert(a) = c {
            match a.data {
                Some(AlertCode::CLIENT_INITIATED_MGMT) => return Initiation::ClientInitiated,
                Some(AlertCode::SERVER_INITIATED_MGMT) => return Initiation::ServerInitiated,
                _ => {}
            }
        }
    }
    Initiation::Unspecified
}

fn check_size(cfg: &ServerConfig, body: &[u8]) -> Result<(), SessionError> {
    let limit = clamp(cfg.max_msg_size);
    if body.len() > limit {
        return Err(SessionError::MessageTooLarge {
            size: body.len(),
            limit,
        });
    }
    Ok(())
}

fn clamp(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}
