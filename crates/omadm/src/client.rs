//! The device side of a DM session (`OMA-TS-DM_Protocol-V1_2` §6, §8).
//!
//! ```text
//!   ClientSession::new ──▶ poll_transmit() = package 1 (Alert 1200/1201, DevInfo, alerts)
//!        ▲                        │ HTTP POST (runtime)
//!        │                        ▼
//!        └── poll_transmit() ◀── handle_response(body, handler)
//!              (package 3…)         executes commands through DeviceHandler,
//!                                   answers challenges, reassembles large
//!                                   objects, ends on a Final with nothing to answer
//! ```
//!
//! The session never blocks and never does I/O: the runtime moves bytes,
//! the session says what to send next ([`Request`]) and what happened
//! ([`ClientEvent`]).

use std::collections::{BTreeMap, HashMap, VecDeque};

use omadm_wire::model::{Alert, Command, Data, Item, ItemCommand, Location, Meta, Status, SyncHdr};
use omadm_wire::{AlertCode, Encoding, Limits, StatusCode};

use crate::auth::{Nonce, RandomSource};
use crate::common::{
    decode_incoming, header_status, is_header_status, size_meta, status_for, AuthConfig, Incoming,
    NonceState, Prover, ProverReaction, Verdict, Verifier,
};
use crate::error::SessionError;
use crate::handler::DeviceHandler;
use crate::large_object::{Assembler, Fed, MemorySink, ObjectSink};
use crate::packer::{self, Budget, OutCmd};

/// Static settings of one DM account on the device (DMAcc + DevDetail).
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `./DevInfo/DevId`: the SyncHdr `Source/LocURI`.
    pub device_id: String,
    /// The server URL (DMAcc `AppAddr/<x>/Addr`): `Target/LocURI` and the
    /// first request's URL.
    pub server_uri: String,
    /// DMAcc `ServerID`: handed to the [`DeviceHandler`] for ACL checks.
    pub server_id: String,
    /// What we present to the server (CLCRED), if DM-level auth is used.
    pub client_auth: Option<AuthConfig>,
    /// What we expect from the server (SRVCRED); `None` trusts the transport.
    pub server_auth: Option<AuthConfig>,
    /// MaxMsgSize we advertise.
    pub max_msg_size: u64,
    /// MaxObjSize we advertise; also bounds large-object reassembly.
    pub max_obj_size: Option<u64>,
    /// Encoding of our messages.
    pub encoding: Encoding,
    /// The server's MaxMsgSize to assume until it sends its own.
    pub assumed_server_max_msg_size: Option<u64>,
    /// How often we answer a challenge before giving up.
    pub max_auth_retries: u32,
    /// Bad server credentials tolerated (the first earns a fresh challenge).
    pub max_server_auth_failures: u32,
    /// Length of nonces we issue.
    pub nonce_len: usize,
    /// Decoder limits for the server's messages.
    pub limits: Limits,
}

impl ClientConfig {
    /// Default MaxMsgSize (the common 16 KiB of deployed clients).
    pub const DEFAULT_MAX_MSG_SIZE: u64 = 16 * 1024;
    /// Default MaxObjSize.
    pub const DEFAULT_MAX_OBJ_SIZE: u64 = 4 * 1024 * 1024;

    /// A config with defaults: XML, no DM-level auth, 16 KiB messages.
    pub fn new(
        device_id: impl Into<String>,
        server_uri: impl Into<String>,
        server_id: impl Into<String>,
    ) -> ClientConfig {
        ClientConfig {
            device_id: device_id.into(),
            server_uri: server_uri.into(),
            server_id: server_id.into(),
            client_auth: None,
            server_auth: None,
            max_msg_size: Self::DEFAULT_MAX_MSG_SIZE,
            max_obj_size: Some(Self::DEFAULT_MAX_OBJ_SIZE),
            encoding: Encoding::Xml,
            assumed_server_max_msg_size: None,
            max_auth_retries: 3,
            max_server_auth_failures: 2,
            nonce_len: Nonce::DEFAULT_LEN,
            limits: Limits::default(),
        }
    }
}

/// Why the session runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionKind {
    /// Alert 1201; the caller picks a SessionID unique for this client.
    ClientInitiated {
        /// The SessionID.
        session_id: String,
    },
    /// Alert 1200 answering package 0; the SessionID is the notification's
    /// session id in hex.
    ServerInitiated {
        /// The notification's session id.
        session_id: u16,
    },
}

/// A client alert to deliver (Generic Alert 1226, Client Event 1224), with
/// the caller's outbox id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientAlert {
    /// The caller's id, reported back with the server's status.
    pub id: u64,
    /// The alert (CmdID is assigned by the session).
    pub alert: Alert,
}

impl ClientAlert {
    /// A Generic Alert (1226) with one item.
    pub fn generic(
        id: u64,
        alert_type: &str,
        format: &str,
        source: Option<&str>,
        correlator: Option<&str>,
        data: Data,
    ) -> ClientAlert {
        let mut alert = Alert::new(AlertCode::GENERIC_ALERT);
        alert.correlator = correlator.map(str::to_owned);
        alert.items.push(Item {
            source: source.map(Location::uri),
            meta: Some(Meta::format_type(format, alert_type)),
            data: Some(data),
            ..Item::default()
        });
        ClientAlert { id, alert }
    }
}

/// Everything package 1 needs.
#[derive(Clone, Debug)]
pub struct SessionStart {
    /// Client- or server-initiated.
    pub kind: SessionKind,
    /// `./DevInfo` leaves as (URI, value), sent as one Replace.
    pub dev_info: Vec<(String, String)>,
    /// Alerts to deliver in this session (after the 1200/1201 alert).
    pub alerts: Vec<ClientAlert>,
    /// Nonces persisted from the previous session (DMAcc AAuthData).
    pub nonces: NonceState,
}

/// One HTTP POST to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// RespURI if the server gave one, else the server URI.
    pub url: String,
    /// The body.
    pub body: Vec<u8>,
    /// Its Content-Type (also the Accept value).
    pub content_type: &'static str,
    /// `x-syncml-hmac` header value, when HMAC is in use.
    pub hmac: Option<String>,
}

/// How a client session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientOutcome {
    /// The server's last package had Final and nothing to answer.
    Completed,
    /// The server sent Alert 1223.
    AbortedByServer,
    /// We sent Alert 1223.
    AbortedByClient,
    /// A protocol or authentication error.
    Failed(SessionError),
}

/// What happened during `handle_response`, for the runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The server accepted our credentials (212: for the session; 200: per
    /// message).
    Authenticated {
        /// The SyncHdr status.
        status: StatusCode,
    },
    /// The server's credentials verified.
    ServerAuthenticated,
    /// The server's status for one of our alerts (2xx = delivered, drop it
    /// from the outbox).
    AlertStatus {
        /// The caller's alert id.
        id: u64,
        /// The server's status.
        status: StatusCode,
    },
    /// The nonces to persist changed.
    NoncesChanged(NonceState),
    /// The session is over.
    Ended(ClientOutcome),
}

/// Delivery state of the session's client alerts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlertReport {
    /// Accepted by the server (200, 202, any 2xx): drop from the outbox.
    pub delivered: Vec<(u64, StatusCode)>,
    /// Refused by the server, or too big to send.
    pub failed: Vec<(u64, StatusCode)>,
    /// Sent or queued, no status received (keep for the next session).
    pub pending: Vec<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tag {
    Init,
    DevInfo,
    Alert(u64),
    Response,
    Control,
}

#[derive(Clone, Copy, Debug)]
struct SentInfo {
    tag: Tag,
    more_data: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// `poll_transmit` has a message.
    Sending,
    /// Waiting for the server's answer.
    Waiting,
    /// Over.
    Done(ClientOutcome),
}

/// The device side of one DM session.
pub struct ClientSession {
    cfg: ClientConfig,
    session_id: String,
    /// MsgID of our last message (0 before the first).
    msg_id: u32,
    url: String,
    phase: Phase,
    prover: Prover,
    verifier: Verifier,
    nonces: NonceState,
    authenticated: bool,
    queue: VecDeque<OutCmd<Tag>>,
    head: Option<Status>,
    control: Vec<Command>,
    server_max_msg_size: Option<usize>,
    server_max_obj_size: Option<u64>,
    assembler: Assembler,
    sent: HashMap<(u32, u32), SentInfo>,
    last_placed: Vec<OutCmd<Tag>>,
    alerts: BTreeMap<u64, Option<StatusCode>>,
    events: VecDeque<ClientEvent>,
    /// The server's last package ended (Final seen): we may send Final.
    server_pkg_complete: bool,
    last_server_msg: Option<u32>,
    abort_requested: bool,
    abort_sent: bool,
}

impl std::fmt::Debug for ClientSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSession")
            .field("session_id", &self.session_id)
            .field("msg_id", &self.msg_id)
            .field("phase", &self.phase)
            .field("queued", &self.queue.len())
            .finish()
    }
}

impl ClientSession {
    /// Starts a session; the first [`poll_transmit`](Self::poll_transmit)
    /// yields package 1.
    pub fn new(cfg: ClientConfig, start: SessionStart) -> ClientSession {
        let (session_id, code) = match &start.kind {
            SessionKind::ClientInitiated { session_id } => {
                (session_id.clone(), AlertCode::CLIENT_INITIATED_MGMT)
            }
            SessionKind::ServerInitiated { session_id } => (
                crate::package0::session_id_hex(*session_id),
                AlertCode::SERVER_INITIATED_MGMT,
            ),
        };
        let mut queue = VecDeque::new();
        queue.push_back(OutCmd::new(Command::Alert(Alert::new(code)), Tag::Init));
        if !start.dev_info.is_empty() {
            let items = start
                .dev_info
                .iter()
                .map(|(uri, value)| Item {
                    source: Some(Location::uri(uri.clone())),
                    meta: Some(Meta::format_type("chr", "text/plain")),
                    data: Some(Data::Text(value.clone())),
                    ..Item::default()
                })
                .collect();
            queue.push_back(OutCmd::new(
                Command::Replace(ItemCommand {
                    items,
                    ..ItemCommand::default()
                }),
                Tag::DevInfo,
            ));
        }
        let mut alerts = BTreeMap::new();
        for a in start.alerts {
            alerts.insert(a.id, None);
            queue.push_back(OutCmd::new(Command::Alert(a.alert), Tag::Alert(a.id)));
        }
        let sink_limit = cfg
            .max_obj_size
            .unwrap_or(ClientConfig::DEFAULT_MAX_OBJ_SIZE);
        ClientSession {
            prover: Prover::new(
                cfg.client_auth.clone(),
                start.nonces.client_nonce.clone(),
                cfg.max_auth_retries,
            ),
            verifier: Verifier::new(
                cfg.server_auth.clone(),
                start.nonces.server_nonce.clone(),
                false,
                cfg.max_server_auth_failures,
                cfg.nonce_len,
            ),
            url: cfg.server_uri.clone(),
            server_max_msg_size: cfg.assumed_server_max_msg_size.map(clamp),
            assembler: Assembler::new(Box::new(MemorySink::new(sink_limit))),
            nonces: start.nonces,
            cfg,
            session_id,
            msg_id: 0,
            phase: Phase::Sending,
            authenticated: false,
            queue,
            head: None,
            control: Vec::new(),
            server_max_obj_size: None,
            sent: HashMap::new(),
            last_placed: Vec::new(),
            alerts,
            events: VecDeque::new(),
            server_pkg_complete: true,
            last_server_msg: None,
            abort_requested: false,
            abort_sent: false,
        }
    }

    /// Replaces the in-memory large-object buffer (e.g. with one that
    /// streams to disk).
    pub fn set_object_sink(&mut self, sink: Box<dyn ObjectSink>) {
        self.assembler.set_sink(sink);
    }

    /// The SessionID.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The server nonce still accepted beside the current one (the one
    /// before the last rotation), to persist beside [`ClientSession::nonces`].
    pub fn previous_server_nonce(&self) -> Option<&Nonce> {
        self.verifier.previous()
    }

    /// Restores the server nonce that was current before the last rotation
    /// (persisted by the runtime with [`ClientSession::previous_server_nonce`]):
    /// the server may not have received the rotation, so it is accepted until
    /// the server proves itself with the new one. Call before the first
    /// message is handled.
    pub fn set_previous_server_nonce(&mut self, nonce: Option<Nonce>) {
        self.verifier.set_previous(nonce);
    }

    /// The nonces to persist (DMAcc AAuthData of CLCRED and SRVCRED; also
    /// reported by [`ClientEvent::NoncesChanged`]).
    pub fn nonces(&self) -> &NonceState {
        &self.nonces
    }

    /// Whether the session is over.
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Done(_))
    }

    /// How it ended, once it has.
    pub fn outcome(&self) -> Option<&ClientOutcome> {
        match &self.phase {
            Phase::Done(o) => Some(o),
            _ => None,
        }
    }

    /// Whether a response from the server is awaited.
    pub fn is_waiting(&self) -> bool {
        self.phase == Phase::Waiting
    }

    /// The next event, if any. Drain after `handle_response` and after
    /// `poll_transmit` (sending a NextNonce changes what to persist).
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Delivery state of this session's alerts.
    pub fn alert_report(&self) -> AlertReport {
        let mut r = AlertReport::default();
        for (&id, st) in &self.alerts {
            match st {
                Some(s) if s.is_success() => r.delivered.push((id, *s)),
                Some(s) => r.failed.push((id, *s)),
                None => r.pending.push(id),
            }
        }
        r
    }

    /// Asks to abort: the next message is Alert 1223 with Final.
    pub fn abort(&mut self) {
        if !self.is_finished() {
            self.abort_requested = true;
        }
    }

    /// The transport failed (no response will come): ends the session.
    /// Alerts without a status stay pending in [`alert_report`](Self::alert_report).
    pub fn transport_failed(&mut self, reason: impl Into<String>) {
        if !self.is_finished() {
            self.finish(ClientOutcome::Failed(SessionError::Transport(
                reason.into(),
            )));
        }
    }

    /// The next message to POST, if one is due.
    pub fn poll_transmit(&mut self) -> Option<Request> {
        if self.phase != Phase::Sending {
            return None;
        }
        match self.build() {
            Ok(r) => Some(r),
            Err(e) => {
                self.finish(ClientOutcome::Failed(e));
                None
            }
        }
    }

    fn build(&mut self) -> Result<Request, SessionError> {
        let msg_id = self.msg_id + 1;
        let mut header = SyncHdr::new(
            self.session_id.clone(),
            msg_id,
            Location::uri(self.cfg.server_uri.clone()),
            Location {
                loc_uri: self.cfg.device_id.clone(),
                loc_name: self.prover.username().map(str::to_owned),
            },
        );
        header.cred = self.prover.cred()?;
        header.meta = Some(size_meta(self.cfg.max_msg_size, self.cfg.max_obj_size));
        let mut head: Vec<Command> = self.head.take().map(Command::Status).into_iter().collect();
        head.append(&mut self.control);
        let budget = Budget {
            encoding: self.cfg.encoding,
            max_msg_size: self.server_max_msg_size,
            max_obj_size: self.server_max_obj_size,
        };
        let packed = if self.abort_requested {
            // Status for what we got, then the abort; nothing else.
            head.push(Command::Alert(Alert::new(AlertCode::SESSION_ABORT)));
            self.queue.clear();
            self.abort_sent = true;
            packer::pack(header, head, &mut VecDeque::new(), true, budget)?
        } else {
            packer::pack(
                header,
                head,
                &mut self.queue,
                self.server_pkg_complete,
                budget,
            )?
        };
        for u in &packed.unsendable {
            if let Tag::Alert(id) = u.out.tag {
                self.set_alert_status(id, u.status);
            }
        }
        self.last_placed.clear();
        for p in packed.placed {
            for (_, id) in p.ids {
                self.sent.insert(
                    (msg_id, id),
                    SentInfo {
                        tag: p.out.tag,
                        more_data: p.more_data,
                    },
                );
            }
            self.last_placed.push(p.out);
        }
        self.msg_id = msg_id;
        self.phase = Phase::Waiting;
        self.verifier.commit();
        self.update_nonces();
        Ok(Request {
            url: self.url.clone(),
            hmac: self.prover.hmac(&packed.body),
            body: packed.body,
            content_type: self.cfg.encoding.content_type(),
        })
    }

    /// Takes the server's answer to our last message. Management commands
    /// go to `handler`; `rng` makes the nonces we issue to the server.
    pub fn handle_response(
        &mut self,
        incoming: Incoming<'_>,
        handler: &mut dyn DeviceHandler,
        rng: &mut dyn RandomSource,
    ) -> Result<(), SessionError> {
        if self.phase != Phase::Waiting {
            return Err(SessionError::InvalidState(
                "handle_response without a request in flight",
            ));
        }
        match self.process(incoming, handler, rng) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.finish(ClientOutcome::Failed(e.clone()));
                Err(e)
            }
        }
    }

    fn process(
        &mut self,
        incoming: Incoming<'_>,
        handler: &mut dyn DeviceHandler,
        rng: &mut dyn RandomSource,
    ) -> Result<(), SessionError> {
        let (msg, _) = decode_incoming(&incoming, &self.cfg.limits)?;
        let h = &msg.header;
        if !h.session_id.trim().eq_ignore_ascii_case(&self.session_id) {
            return Err(SessionError::WrongSession {
                expected: self.session_id.clone(),
                found: h.session_id.clone(),
            });
        }
        if let Some(last) = self.last_server_msg {
            if h.msg_id <= last {
                return Err(SessionError::OutOfSequence {
                    msg_id: h.msg_id,
                    last,
                });
            }
        }
        self.last_server_msg = Some(h.msg_id);
        if self.abort_sent {
            self.finish(ClientOutcome::AbortedByClient);
            return Ok(());
        }
        if let Some(uri) = h.resp_uri.as_deref().filter(|u| !u.trim().is_empty()) {
            self.url = uri.trim().to_owned();
        }
        if let Some(m) = &h.meta {
            if let Some(s) = m.max_msg_size {
                self.server_max_msg_size = Some(clamp(s));
            }
            if let Some(s) = m.max_obj_size {
                self.server_max_obj_size = Some(s);
            }
        }
        let server_msg = h.msg_id;

        // Our credentials first: a challenge means the server executed
        // nothing and could not yet authenticate itself to us.
        let hdr_status = msg.body.commands.iter().find_map(|c| match c {
            Command::Status(s)
                if is_header_status(s) && s.msg_ref.is_none_or(|r| r == self.msg_id) =>
            {
                Some(s)
            }
            _ => None,
        });
        let mut retry = false;
        if let Some(s) = hdr_status {
            match self.prover.on_status(s)? {
                ProverReaction::Retry => retry = true,
                ProverReaction::Accepted => {
                    if !self.authenticated && self.cfg.client_auth.is_some() {
                        self.authenticated = true;
                        self.events
                            .push_back(ClientEvent::Authenticated { status: s.data });
                    }
                }
            }
        }
        if retry {
            self.head = (!h.no_resp).then(|| header_status(h, StatusCode::OK, None));
            self.requeue_last();
            self.update_nonces();
            self.server_pkg_complete = msg.body.is_final;
            self.phase = Phase::Sending;
            return Ok(());
        }

        let verdict = self.verifier.verify(h, incoming.hmac, incoming.body, rng);
        self.update_nonces();
        match verdict {
            Verdict::Fail { attempts } => {
                return Err(SessionError::PeerAuthenticationFailed { attempts });
            }
            Verdict::Challenge { .. }
                if msg.body.is_final
                    && msg
                        .body
                        .commands
                        .iter()
                        .all(|c| matches!(c, Command::Status(_))) =>
            {
                // The server ended without proving itself: nothing it could
                // re-send would change that.
                return Err(SessionError::PeerAuthenticationFailed {
                    attempts: self.verifier.failures(),
                });
            }
            Verdict::Challenge { code, chal } => {
                // Execute nothing; answer every command with the challenge code.
                self.head = Some(header_status(h, code, Some(chal)));
                let statuses: Vec<Command> = msg
                    .body
                    .commands
                    .iter()
                    .filter(|c| {
                        !matches!(c, Command::Status(_) | Command::Results(_)) && !c.no_resp()
                    })
                    .map(|c| Command::Status(status_for(server_msg, c, code)))
                    .collect();
                self.push_responses(statuses);
                self.server_pkg_complete = msg.body.is_final;
                self.phase = Phase::Sending;
                return Ok(());
            }
            Verdict::Ok { code, chal, fresh } => {
                if fresh {
                    self.events.push_back(ClientEvent::ServerAuthenticated);
                }
                self.head = (!h.no_resp).then(|| header_status(h, code, chal));
            }
        }

        for c in &msg.body.commands {
            if let Command::Status(s) = c {
                if !is_header_status(s) {
                    self.on_status(s);
                }
            }
        }

        let mut responses = Vec::new();
        let mut next_part_requested = false;
        for cmd in msg.body.commands {
            match &cmd {
                Command::Status(_) | Command::Results(_) => {}
                Command::Alert(a) if a.data == Some(AlertCode::SESSION_ABORT) => {
                    self.finish(ClientOutcome::AbortedByServer);
                    return Ok(());
                }
                Command::Alert(a) if a.data == Some(AlertCode::NEXT_MESSAGE) => {
                    next_part_requested = true;
                    if !a.no_resp {
                        responses.push(Command::Status(status_for(
                            server_msg,
                            &cmd,
                            StatusCode::OK,
                        )));
                    }
                }
                _ => {
                    let no_resp = cmd.no_resp();
                    let reference = status_for(server_msg, &cmd, StatusCode::OK);
                    let (interrupted, fed) = self.assembler.feed(cmd);
                    if let Some(a) = interrupted {
                        responses.push(Command::Alert(a));
                    }
                    match fed {
                        Fed::Whole(c) | Fed::Complete(c) => {
                            responses.extend(self.execute(handler, &c, server_msg));
                        }
                        Fed::Buffered if !no_resp => responses.push(Command::Status(Status {
                            data: StatusCode::CHUNK_ACCEPTED,
                            ..reference
                        })),
                        Fed::Refused(code) if !no_resp => responses.push(Command::Status(Status {
                            data: code,
                            ..reference
                        })),
                        Fed::Buffered | Fed::Refused(_) => {}
                    }
                }
            }
        }

        let server_final = msg.body.is_final;
        if server_final {
            self.server_pkg_complete = true;
        } else if !next_part_requested {
            // The server's package goes on: ask for its next message.
            self.server_pkg_complete = false;
            self.control
                .push(Command::Alert(Alert::new(AlertCode::NEXT_MESSAGE)));
        }
        self.push_responses(responses);
        if server_final && self.queue.is_empty() && self.control.is_empty() && !self.abort_requested
        {
            self.finish(ClientOutcome::Completed);
        } else {
            self.phase = Phase::Sending;
        }
        Ok(())
    }

    /// Runs one command through the handler and fixes up its answers.
    fn execute(&self, handler: &mut dyn DeviceHandler, cmd: &Command, msg_id: u32) -> Vec<Command> {
        let mut out = handler.execute(&self.cfg.server_id, cmd);
        let mut silent = Vec::new();
        collect_no_resp(cmd, &mut silent);
        let name = cmd.name();
        if !out
            .iter()
            .any(|c| matches!(c, Command::Status(s) if s.cmd_ref == cmd.cmd_id() && s.cmd == name))
        {
            out.insert(
                0,
                Command::Status(status_for(msg_id, cmd, StatusCode::COMMAND_FAILED)),
            );
        }
        for c in &mut out {
            match c {
                Command::Status(s) => {
                    s.msg_ref.get_or_insert(msg_id);
                }
                Command::Results(r) => {
                    r.msg_ref.get_or_insert(msg_id);
                }
                _ => {}
            }
        }
        // Results the server could never accept: answer the Get with 413.
        if let Some(max) = self.server_max_obj_size {
            let too_big: Vec<u32> = out
                .iter()
                .filter_map(|c| match c {
                    Command::Results(r)
                        if r.items
                            .iter()
                            .any(|i| i.data.as_ref().is_some_and(|d| d.len() as u64 > max)) =>
                    {
                        Some(r.cmd_ref)
                    }
                    _ => None,
                })
                .collect();
            out.retain(|c| !matches!(c, Command::Results(r) if too_big.contains(&r.cmd_ref)));
            for c in &mut out {
                if let Command::Status(s) = c {
                    if too_big.contains(&s.cmd_ref) {
                        s.data = StatusCode::REQUEST_ENTITY_TOO_LARGE;
                    }
                }
            }
        }
        out.retain(|c| !matches!(c, Command::Status(s) if silent.contains(&s.cmd_ref)));
        out
    }

    fn on_status(&mut self, s: &Status) {
        let key = (s.msg_ref.unwrap_or(self.msg_id), s.cmd_ref);
        let Some(info) = self.sent.get(&key).copied() else {
            return;
        };
        if info.more_data && s.data == StatusCode::CHUNK_ACCEPTED {
            return;
        }
        if info.more_data {
            // A chunk was refused: drop the rest of that object.
            self.queue
                .retain(|oc| !(oc.continuation && oc.tag == info.tag));
        }
        if let Tag::Alert(id) = info.tag {
            self.set_alert_status(id, s.data);
        }
    }

    fn set_alert_status(&mut self, id: u64, status: StatusCode) {
        if let Some(slot) = self.alerts.get_mut(&id) {
            *slot = Some(status);
            self.events
                .push_back(ClientEvent::AlertStatus { id, status });
        }
    }

    fn push_responses(&mut self, responses: Vec<Command>) {
        for cmd in responses.into_iter().rev() {
            let tag = match cmd {
                Command::Alert(_) => Tag::Control,
                _ => Tag::Response,
            };
            self.queue.push_front(OutCmd::new(cmd, tag));
        }
    }

    fn requeue_last(&mut self) {
        for oc in std::mem::take(&mut self.last_placed).into_iter().rev() {
            if oc.tag != Tag::Control
                || matches!(&oc.cmd, Command::Alert(a) if a.data != Some(AlertCode::NEXT_MESSAGE))
            {
                self.queue.push_front(oc);
            }
        }
    }

    fn update_nonces(&mut self) {
        let mut next = self.nonces.clone();
        next.server_nonce = self.verifier.nonce().clone();
        // A nonce from a server not yet authenticated is used, not stored.
        if self.verifier.trusted() {
            next.client_nonce = self.prover.nonce().clone();
        }
        if next != self.nonces {
            self.nonces = next.clone();
            self.events.push_back(ClientEvent::NoncesChanged(next));
        }
    }

    fn finish(&mut self, outcome: ClientOutcome) {
        self.assembler.reset();
        self.queue.clear();
        self.events.push_back(ClientEvent::Ended(outcome.clone()));
        self.phase = Phase::Done(outcome);
    }
}

/// The CmdIDs (nested included) whose sender asked for no Status.
fn collect_no_resp(cmd: &Command, out: &mut Vec<u32>) {
    if cmd.no_resp() {
        out.push(cmd.cmd_id());
    }
    if let Command::Atomic(c) | Command::Sequence(c) = cmd {
        for inner in &c.commands {
            collect_no_resp(inner, out);
        }
    }
}

fn clamp(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::MemoryDevice;

    fn start() -> SessionStart {
        SessionStart {
            kind: SessionKind::ServerInitiated { session_id: 0x00A1 },
            dev_info: vec![("./DevInfo/DevId".into(), "IMEI:1".into())],
            alerts: vec![ClientAlert::generic(
                9,
                "urn:oma:at:scomo:1.0:OperationComplete",
                "xml",
                Some("./SCOMO/Download/1"),
                Some("c1"),
                Data::Text("<ResultCode>1200</ResultCode>".into()),
            )],
            nonces: NonceState::default(),
        }
    }

    #[test]
    fn package1_shape() {
        let mut c = ClientSession::new(ClientConfig::new("IMEI:1", "http://s/dm", "srv"), start());
        let req = c.poll_transmit().unwrap();
        assert!(c.poll_transmit().is_none());
        let msg = omadm_wire::decode_xml(&req.body, &Limits::default()).unwrap();
        assert_eq!(msg.header.session_id, "A1");
        assert_eq!(msg.header.msg_id, 1);
        assert!(msg.body.is_final);
        let names: Vec<&str> = msg.body.commands.iter().map(Command::name).collect();
        assert_eq!(names, ["Alert", "Replace", "Alert"]);
        assert!(
            matches!(&msg.body.commands[0], Command::Alert(a) if a.data == Some(AlertCode::SERVER_INITIATED_MGMT))
        );
        assert_eq!(c.alert_report().pending, vec![9]);
    }

    #[test]
    fn response_to_nothing_is_an_error() {
        let mut c = ClientSession::new(ClientConfig::new("IMEI:1", "http://s/dm", "srv"), start());
        let mut dev = MemoryDevice::new();
        let mut rng = |d: &mut [u8]| d.fill(1);
        assert!(matches!(
            c.handle_response(Incoming::new(b"<SyncML/>"), &mut dev, &mut rng),
            Err(SessionError::InvalidState(_))
        ));
        c.poll_transmit().unwrap();
        assert!(c
            .handle_response(Incoming::new(b"garbage"), &mut dev, &mut rng)
            .is_err());
        assert!(matches!(c.outcome(), Some(ClientOutcome::Failed(_))));
    }
}
