//! One DM session in flight on this node: the sans-IO [`ServerSession`] plus
//! what the runtime adds around it — the device's account from the store,
//! the command batches the session claimed, and the store writes each
//! message causes.
//!
//! ```text
//!   message ─▶ engine ─▶ events ─┬─ DevInfo / DevDetail results ─┐
//!                                ├─ Generic Alerts ──────────────┤ collected in `Writes`
//!                                └─ statuses / results ──────────┘
//!            alerts, or SCOMO work to do? ─▶ write_message (committed before the SCOMO engine reads)
//!            ready for commands and a batch pending? ─▶ write_message + claim (marked sent) ─▶ queue_command
//!            poll_transmit ─▶ write_message (what is left, session end) ─▶ response
//! ```
//!
//! Every write also stores the nonces the coming response issues
//! ([`ServerSession::nonces_after_response`]) when they changed.
//!
//! Everything the device told us is in the store before the response that
//! acknowledges it leaves, so a crash between two messages loses nothing the
//! device believes delivered. A message costs one transaction (a write
//! before the response leaves nothing for after it); on SQLite concurrent
//! sessions share each commit ([`crate::store::SessionStore::write_message`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use omadm::auth::{Credentials, Nonce};
use omadm::server::{
    CmdRef, DeviceAccount, Initiation, Response, ServerConfig, ServerEvent, ServerOutcome,
    ServerSession,
};
use omadm::{AuthConfig, Incoming, NonceState};
use omadm_wire::model::{Alert, Command, Data, Item, ItemCommand, Location, Results};
use omadm_wire::{AlertCode, StatusCode};
use tracing::{debug, info, warn, Instrument as _, Span};

use crate::config::Config;
use crate::error::AppError;
use crate::random::OsRandom;
use crate::state::AppState;
use crate::store::{
    AuthType, Batch, BatchId, BatchState, CommandOutcome, Device, MessageOutcome, MessageReport,
    MessageWrite, NewAlert, NewSession, NonceUpdate, SessionEnd, SessionKey, SessionOutcome,
    StoreError, StoredAlert, Timestamp,
};

/// The `./DevDetail` leaves read in every session (`OMA-TS-DM_StdObj-V1_2`
/// §5.2). One Get each: a device without one of them answers 404 for that
/// Get only.
pub const DEVDETAIL_LEAVES: &[&str] = &[
    "./DevDetail/DevTyp",
    "./DevDetail/OEM",
    "./DevDetail/FwV",
    "./DevDetail/SwV",
    "./DevDetail/HwV",
    "./DevDetail/LrgObj",
    "./DevDetail/URI/MaxDepth",
    "./DevDetail/URI/MaxTotLen",
    "./DevDetail/URI/MaxSegLen",
];

/// What a command id given to the engine stands for.
#[derive(Clone, Copy, Debug)]
enum Sent {
    /// A Get of a DevDetail leaf.
    DevDetail,
    /// Top-level command `top` of a batch.
    Batch { batch: BatchId, top: usize },
}

/// A claimed batch and which of its top-level commands were answered.
struct BatchProgress {
    /// The batch as claimed, kept when the SCOMO engine owns it: the
    /// outcomes this session records are added to it, and once it completes
    /// the engine takes it from here instead of reading it back.
    scomo: Option<Batch>,
    /// The nesting of its commands, to map a status to its store index
    /// (the commands themselves went to the engine).
    shape: Vec<Shape>,
    answered: BTreeSet<usize>,
    done: bool,
}

/// A command's nesting: the children of an Atomic or Sequence (none for
/// any other command).
#[derive(Debug, Default)]
struct Shape(Vec<Shape>);

impl Shape {
    fn of(commands: &[Command]) -> Vec<Shape> {
        commands
            .iter()
            .map(|c| match c {
                Command::Atomic(k) | Command::Sequence(k) => Shape(Shape::of(&k.commands)),
                _ => Shape::default(),
            })
            .collect()
    }

    /// Commands at and under each of `shapes`, as
    /// [`command_count`](crate::store::command_count) counts them.
    fn count(shapes: &[Shape]) -> u32 {
        shapes
            .iter()
            .map(|s| 1u32.saturating_add(Shape::count(&s.0)))
            .fold(0u32, u32::saturating_add)
    }
}

/// Store writes collected while draining events, applied before replying.
#[derive(Default)]
struct Writes {
    nodes: BTreeMap<String, String>,
    outcomes: BTreeMap<(BatchId, u32), (Option<StatusCode>, Vec<Results>)>,
    /// Client alerts to store, with the command they came in (its Status).
    alerts: Vec<(CmdRef, NewAlert)>,
    cancel_notifications: bool,
}

/// A DM session held by this node.
pub(crate) struct LiveSession {
    engine: ServerSession,
    device_id: String,
    /// The audit row, once written.
    key: Option<SessionKey>,
    /// The audit row to create with the session's first write; `None` for
    /// a device the store does not know (its session ends with 401 and
    /// leaves no row).
    start: Option<NewSession>,
    authenticated: bool,
    /// The nonces as the store has them. Every write carries the engine's
    /// [`ServerSession::nonces_after_response`] when they differ, so the
    /// write that claims work before a response also stores the nonce that
    /// response issues, and no write is needed after it for that alone.
    stored_nonces: NonceState,
    /// Whether a pending package 0 may exist for the device (it has a
    /// notification address) and has not been cancelled yet.
    cancel_notifications: bool,
    /// When the audit row's activity time was last written.
    touched_at: Instant,
    devdetail_requested: bool,
    started: Instant,
    messages_in: u32,
    messages_out: u32,
    next_id: u64,
    sent: HashMap<u64, Sent>,
    batches: BTreeMap<BatchId, BatchProgress>,
    ended: Option<ServerOutcome>,
    /// Whether the SCOMO session-start work (inventory, catalog) was done.
    scomo_ready: bool,
    /// SCOMO batches completed by this message, with their outcomes, for
    /// the SCOMO engine.
    completed: Vec<Batch>,
    /// Alerts stored from this message, for the SCOMO engine.
    new_alerts: Vec<StoredAlert>,
    /// Set once the store row is closed (ended, swept, or failed): the
    /// session must not handle more messages.
    closed: bool,
    span: Span,
}

impl LiveSession {
    /// Takes a package 1: decodes it, finds the device, records the session
    /// and runs the first message through the engine. The caller then calls
    /// [`LiveSession::respond`].
    pub(crate) async fn open(
        state: &AppState,
        resp_uri: String,
        server_uri: String,
        incoming: Incoming<'_>,
    ) -> Result<LiveSession, AppError> {
        let config = state.config();
        let store = state.store();
        let cfg = engine_config(config, resp_uri, server_uri);
        let accepted = ServerSession::accept(cfg, Instant::now(), incoming)
            .map_err(|e| AppError::from_session(&e))?;
        let device_id = accepted.device_id().to_owned();
        let session_id = accepted.session_id().to_owned();
        let span = tracing::info_span!(
            "dm_session",
            device = %device_id,
            session = %session_id,
            node = %state.node_id(),
        );
        let now = Timestamp::now();
        let initiation = accepted.initiation();
        let device = async {
            let mut device = store.device(&device_id).await?;
            if device.is_none()
                && config.devices.insecure_auto_register
                && valid_device_id(&device_id)
            {
                if store.auto_register(&device_id, now).await? {
                    info!("auto-registered a new device (no credentials)");
                }
                device = store.device(&device_id).await?;
            }
            if device.is_none() {
                warn!("session from an unknown device");
            }
            Ok::<_, StoreError>(device)
        }
        .instrument(span.clone())
        .await?;
        // The audit row is written with the first message's other writes.
        let start = device.as_ref().map(|_| NewSession {
            device_id: device_id.clone(),
            session_id: session_id.clone(),
            node_id: state.node_id().to_owned(),
            initiation: match initiation {
                Initiation::ServerInitiated => AlertCode::SERVER_INITIATED_MGMT,
                _ => AlertCode::CLIENT_INITIATED_MGMT,
            },
        });
        metrics::counter!(crate::metrics::SESSIONS_STARTED, "initiation" => match initiation {
            Initiation::ClientInitiated => "client",
            Initiation::ServerInitiated => "server",
            Initiation::Unspecified => "unspecified",
        })
        .increment(1);
        let account = device.as_ref().map(|d| account(config, d));
        let stored_nonces = account
            .as_ref()
            .map(|a| a.nonces.clone())
            .unwrap_or_default();
        let engine = span.in_scope(|| accepted.into_session(account, &mut OsRandom));
        Ok(LiveSession {
            engine,
            device_id,
            key: None,
            start,
            authenticated: false,
            stored_nonces,
            cancel_notifications: device.as_ref().is_some_and(|d| d.notify_addr.is_some()),
            touched_at: Instant::now(),
            devdetail_requested: false,
            started: Instant::now(),
            messages_in: 1,
            messages_out: 0,
            next_id: 1,
            sent: HashMap::new(),
            batches: BTreeMap::new(),
            ended: None,
            scomo_ready: false,
            completed: Vec::new(),
            new_alerts: Vec::new(),
            closed: false,
            span,
        })
    }

    /// Takes a follow-up message. Errors are the engine's refusals (the
    /// session stays as it was).
    pub(crate) fn handle(&mut self, incoming: Incoming<'_>) -> Result<(), AppError> {
        let _enter = self.span.enter();
        self.messages_in = self.messages_in.saturating_add(1);
        match self
            .engine
            .handle_message(Instant::now(), incoming, &mut OsRandom)
        {
            Ok(handled) => {
                debug!(?handled, "message taken");
                Ok(())
            }
            Err(e) => {
                warn!("message refused: {e}");
                Err(AppError::from_session(&e))
            }
        }
    }

    /// Whether the session is over (nothing more will be accepted).
    pub(crate) fn is_finished(&self) -> bool {
        self.closed || self.engine.is_finished()
    }

    /// Whether the store row was closed (the session must not go on).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether the session has been idle past its timeout.
    pub(crate) fn is_expired(&self, now: Instant) -> bool {
        self.engine.is_expired(now)
    }

    /// The span of this session.
    pub(crate) fn span(&self) -> &Span {
        &self.span
    }

    /// Reacts to the message just taken and produces the response: store
    /// writes, claimed batches, the engine's answer.
    pub(crate) async fn respond(&mut self, state: &AppState) -> Result<Response, AppError> {
        let span = tracing::info_span!(parent: &self.span, "dm_message", msg = self.messages_in);
        self.respond_inner(state).instrument(span).await
    }

    async fn respond_inner(&mut self, state: &AppState) -> Result<Response, AppError> {
        let now = Timestamp::now();
        let mut w = Writes::default();
        self.drain(&mut w);
        let known = self.key.is_some() || self.start.is_some();
        if self.authenticated && known {
            let config = state.config();
            let starting = self.engine.is_ready_for_commands() && !self.scomo_ready;
            let scomo_start_work =
                starting && (config.scomo.inventory_max_age_secs > 0 || config.scomo.catalog);
            // The SCOMO engine reads what this message brought (alerts,
            // completed batches of its own, DevInfo for catalog rules)
            // through the store: commit it first.
            if !w.alerts.is_empty() || scomo_start_work || self.completes_scomo_batch() {
                self.commit(state, &mut w, None, None, false, now).await?;
            }
            if starting {
                self.scomo_ready = true;
                if scomo_start_work {
                    if let Err(e) = crate::scomo::on_session_ready(state, &self.device_id).await {
                        warn!("SCOMO session start failed: {e}");
                    }
                }
            }
            // Results first: a job's next step goes out in this response.
            self.scomo_after_message(state).await;
            if self.engine.is_ready_for_commands() {
                self.queue_work(state, &mut w, now).await?;
            }
        }
        let Some(resp) = self.engine.poll_transmit() else {
            return Err(AppError::internal(StoreError::Invalid {
                field: "session",
                reason: "the engine produced no response".into(),
            }));
        };
        self.messages_out = self.messages_out.saturating_add(1);
        self.drain(&mut w);
        let end = self.ended.take().map(|o| self.session_end(&o));
        let ending = end.is_some();
        if known {
            let touch = !ending && self.touched_at.elapsed() >= touch_interval(state.config());
            if touch
                || ending
                || self.start.is_some()
                || !w.is_empty()
                || self.completes_any()
                || self.nonces_unstored()
            {
                let report = self
                    .commit(state, &mut w, None, end.clone(), touch, now)
                    .await?;
                if touch {
                    self.touched_at = Instant::now();
                }
                if let Some(r) = report.finished {
                    if r.requeued + r.unacknowledged > 0 {
                        info!(
                            requeued = r.requeued,
                            unacknowledged = r.unacknowledged,
                            completed = r.completed,
                            "batches of the session settled"
                        );
                    }
                }
            }
        }
        self.scomo_after_message(state).await;
        if let Some(end) = end {
            // The row was closed by the write above.
            self.closed = true;
            let span = self.span.clone();
            let _enter = span.enter();
            self.closed_bookkeeping(state, end.outcome, now);
        }
        Ok(resp)
    }

    /// Hands the batches completed and the alerts stored so far to the
    /// SCOMO engine (nothing to do, no store access, when there are none).
    async fn scomo_after_message(&mut self, state: &AppState) {
        if self.completed.is_empty() && self.new_alerts.is_empty() {
            return;
        }
        crate::scomo::after_message(
            state,
            &std::mem::take(&mut self.completed),
            &std::mem::take(&mut self.new_alerts),
        )
        .await;
    }

    /// The batches whose every command was answered and that are not
    /// completed yet.
    fn to_complete(&self) -> Vec<BatchId> {
        self.batches
            .iter()
            .filter(|(_, p)| !p.done && p.answered.len() == p.shape.len())
            .map(|(id, _)| *id)
            .collect()
    }

    /// Whether the nonces the next response leaves differ from the stored
    /// ones.
    fn nonces_unstored(&self) -> bool {
        self.engine.nonces_after_response() != self.stored_nonces
    }

    fn completes_any(&self) -> bool {
        self.batches
            .values()
            .any(|p| !p.done && p.answered.len() == p.shape.len())
    }

    fn completes_scomo_batch(&self) -> bool {
        self.batches
            .values()
            .any(|p| p.scomo.is_some() && !p.done && p.answered.len() == p.shape.len())
    }

    fn drain(&mut self, w: &mut Writes) {
        while let Some(ev) = self.engine.poll_event() {
            match ev {
                ServerEvent::Authenticated { auth_type } => {
                    debug!(?auth_type, "device authenticated");
                    self.authenticated = true;
                    if self.cancel_notifications {
                        // The device called: no more package 0 for it.
                        w.cancel_notifications = true;
                        self.cancel_notifications = false;
                    }
                }
                ServerEvent::Challenged { status } => {
                    debug!(%status, "device challenged");
                    metrics::counter!(crate::metrics::AUTH_CHALLENGES).increment(1);
                }
                ServerEvent::AuthenticationFailed { attempts } => {
                    warn!(attempts, "device failed authentication");
                    metrics::counter!(crate::metrics::AUTH_FAILURES).increment(1);
                }
                ServerEvent::DevInfo(values) => {
                    for (uri, value) in values {
                        if is_std_node(&uri) {
                            w.nodes.insert(uri, value);
                        }
                    }
                }
                ServerEvent::Alert { at, alert } => self.take_alert(at, alert, w),
                ServerEvent::Status { id, path, status } => {
                    self.on_status(id, &path, status.data, w);
                }
                ServerEvent::NotSent { id, status } => self.on_status(id, &[], status, w),
                ServerEvent::Results { id, path, results } => {
                    self.on_results(id, &path, results, w)
                }
                // Written from `nonces_after_response` by every write.
                ServerEvent::NoncesChanged(_) => {}
                ServerEvent::Ended(outcome) => self.ended = Some(outcome),
                other => debug!(?other, "event"),
            }
        }
    }

    fn on_status(&mut self, id: u64, path: &[usize], code: StatusCode, w: &mut Writes) {
        metrics::counter!(crate::metrics::STATUSES, "code" => code.0.to_string()).increment(1);
        let Some(Sent::Batch { batch, top }) = self.sent.get(&id).copied() else {
            return;
        };
        let Some(progress) = self.batches.get_mut(&batch) else {
            return;
        };
        let Some(index) = preorder_index(&progress.shape, top, path) else {
            warn!(%batch, top, ?path, "status for a command the batch does not have");
            return;
        };
        w.outcomes.entry((batch, index)).or_default().0 = Some(code);
        if path.is_empty() {
            progress.answered.insert(top);
        }
    }

    fn on_results(&mut self, id: u64, path: &[usize], results: Results, w: &mut Writes) {
        match self.sent.get(&id).copied() {
            Some(Sent::DevDetail) => {
                for item in &results.items {
                    let uri = item
                        .source
                        .as_ref()
                        .map(|s| s.loc_uri.clone())
                        .or_else(|| results.source_ref.clone())
                        .or_else(|| results.target_ref.clone());
                    let value = item.data.as_ref().and_then(Data::as_str);
                    if let (Some(uri), Some(value)) = (uri, value) {
                        if is_std_node(&uri) {
                            w.nodes.insert(uri, value.to_owned());
                        }
                    }
                }
            }
            Some(Sent::Batch { batch, top }) => {
                let Some(progress) = self.batches.get(&batch) else {
                    return;
                };
                if let Some(index) = preorder_index(&progress.shape, top, path) {
                    w.outcomes
                        .entry((batch, index))
                        .or_default()
                        .1
                        .push(results);
                }
            }
            None => {}
        }
    }

    /// Takes a client alert (Generic Alert 1226, Client Event 1224) to be
    /// stored, one row per item, before the response is built. An alert the
    /// store would refuse gets Status 500, so the device keeps it and sends
    /// it again.
    fn take_alert(&mut self, at: CmdRef, alert: Alert, w: &mut Writes) {
        let code = alert.data.unwrap_or(AlertCode(0));
        if code != AlertCode::GENERIC_ALERT && code != AlertCode::CLIENT_EVENT {
            debug!(%code, "client alert not stored");
            return;
        }
        if self.key.is_none() && self.start.is_none() {
            return;
        }
        let items: Vec<Option<&Item>> = if alert.items.is_empty() {
            vec![None]
        } else {
            alert.items.iter().map(Some).collect()
        };
        let mut taken = Vec::with_capacity(items.len());
        for item in items {
            let meta = item.and_then(|i| i.meta.as_ref());
            let new = NewAlert {
                device_id: self.device_id.clone(),
                session: self.key,
                code,
                correlator: alert.correlator.clone(),
                alert_type: meta.and_then(|m| m.r#type.clone()),
                format: meta.and_then(|m| m.format.clone()),
                mark: meta.and_then(|m| m.mark.clone()),
                source_uri: item
                    .and_then(|i| i.source.as_ref())
                    .map(|l| l.loc_uri.clone()),
                target_uri: item
                    .and_then(|i| i.target.as_ref())
                    .map(|l| l.loc_uri.clone()),
                data: item.and_then(|i| i.data.clone()),
            };
            if let Err(e) = crate::store::check_alert(&new) {
                warn!(error = %crate::error::ErrorChain(&e), "cannot store a client alert; answering 500");
                self.engine.set_status(at, StatusCode::COMMAND_FAILED);
                return;
            }
            taken.push((at, new));
        }
        w.alerts.extend(taken);
    }

    /// At a package start: the DevDetail reads (once), then the device's
    /// pending batches, oldest first, claimed (and marked sent) with the
    /// message's other writes.
    async fn queue_work(
        &mut self,
        state: &AppState,
        w: &mut Writes,
        now: Timestamp,
    ) -> Result<(), AppError> {
        let config = state.config();
        if config.dm.read_devdetail && !self.devdetail_requested {
            self.devdetail_requested = true;
            for leaf in DEVDETAIL_LEAVES {
                let id = self.alloc(Sent::DevDetail);
                self.engine.queue_command(id, get(leaf));
            }
        }
        // A read first: most packages find nothing to claim, and a read
        // costs no commit.
        if !state.store().has_pending_batches(&self.device_id).await? {
            return Ok(());
        }
        let report = self
            .commit(
                state,
                w,
                Some(config.dm.max_batches_per_package),
                None,
                false,
                now,
            )
            .await?;
        for batch in report.claimed {
            metrics::counter!(crate::metrics::BATCHES_CLAIMED).increment(1);
            debug!(batch = %batch.id, owner = %batch.owner, commands = batch.command_count, "sending batch");
            let shape = Shape::of(&batch.commands);
            let id = batch.id;
            // The SCOMO engine reads the commands again once the batch
            // completes: it keeps the batch and the engine gets a copy.
            let (scomo, mut commands) = if crate::scomo::owns(&batch.owner) {
                let commands = batch.commands.clone();
                (Some(batch), commands)
            } else {
                (None, batch.commands)
            };
            crate::scomo::resolve_package_refs(state, &mut commands).await;
            for (top, cmd) in commands.into_iter().enumerate() {
                let sent = self.alloc(Sent::Batch { batch: id, top });
                self.engine.queue_command(sent, prepare(cmd));
            }
            // A batch without commands completes with the next write.
            self.batches.insert(
                id,
                BatchProgress {
                    scomo,
                    shape,
                    answered: BTreeSet::new(),
                    done: false,
                },
            );
        }
        Ok(())
    }

    fn alloc(&mut self, sent: Sent) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.sent.insert(id, sent);
        id
    }

    /// Writes what `w` collected (device info, nonces, alerts, outcomes and
    /// the batches they complete), the audit row if this is the session's
    /// first write, and optionally a claim and the session's end, in one
    /// transaction.
    async fn commit(
        &mut self,
        state: &AppState,
        w: &mut Writes,
        claim: Option<u32>,
        finish: Option<SessionEnd>,
        touch: bool,
        now: Timestamp,
    ) -> Result<MessageReport, AppError> {
        let w = std::mem::take(w);
        let complete = self.to_complete();
        let next_nonces = self.engine.nonces_after_response();
        let nonces = (next_nonces != self.stored_nonces).then(|| NonceUpdate {
            client: (!next_nonces.client_nonce.is_empty())
                .then(|| next_nonces.client_nonce.as_bytes().to_vec()),
            server: (!next_nonces.server_nonce.is_empty())
                .then(|| next_nonces.server_nonce.as_bytes().to_vec()),
        });
        let (ats, alerts): (Vec<CmdRef>, Vec<NewAlert>) = w.alerts.into_iter().unzip();
        let outcomes: Vec<MessageOutcome> = w
            .outcomes
            .into_iter()
            .map(|((batch, index), (status, results))| MessageOutcome {
                batch,
                index,
                status: status.unwrap_or(StatusCode::OK),
                results,
            })
            .collect();
        // The SCOMO engine's batches keep their outcomes here too.
        let scomo_outcomes: Vec<MessageOutcome> = outcomes
            .iter()
            .filter(|o| {
                self.batches
                    .get(&o.batch)
                    .is_some_and(|p| p.scomo.is_some())
            })
            .cloned()
            .collect();
        let write = MessageWrite {
            device_id: self.device_id.clone(),
            session: self.key,
            start: if self.key.is_none() {
                self.start.clone()
            } else {
                None
            },
            nodes: w.nodes,
            nonces,
            cancel_notifications: w.cancel_notifications,
            alerts,
            outcomes,
            complete: complete.clone(),
            claim,
            touch,
            finish,
        };
        let store_alerts = write.alerts.clone();
        let report = match state.store().write_message(write, now).await {
            Ok(r) => r,
            Err(e) => {
                if !ats.is_empty() {
                    // As before the writes were folded: an alert that
                    // cannot be stored is answered 500 (the message fails
                    // here anyway, so the device sends it again).
                    for at in ats {
                        self.engine.set_status(at, StatusCode::COMMAND_FAILED);
                    }
                }
                return Err(e.into());
            }
        };
        self.stored_nonces = next_nonces;
        if let Some(key) = report.session {
            if self.key.is_none() {
                self.start = None;
            }
            self.key = Some(key);
        }
        for (id, alert) in report.alerts.iter().zip(store_alerts) {
            let mut alert = alert;
            alert.session = self.key;
            state.publish(crate::events::ApiEvent::new(
                "alert",
                id.0,
                &self.device_id,
                alert.code.0.to_string(),
                alert.correlator.clone(),
                now,
            ));
            debug!(code = %alert.code, correlator = ?alert.correlator, "client alert stored");
            metrics::counter!(crate::metrics::ALERTS_RECEIVED, "code" => alert.code.0.to_string())
                .increment(1);
            self.new_alerts.push(StoredAlert {
                id: *id,
                alert,
                batch: None,
                owner: None,
                received_at: now,
                processed_at: None,
            });
        }
        for o in scomo_outcomes {
            if let Some(b) = self
                .batches
                .get_mut(&o.batch)
                .and_then(|p| p.scomo.as_mut())
            {
                b.outcomes.retain(|r| r.index != o.index);
                b.outcomes.push(CommandOutcome {
                    index: o.index,
                    status: o.status,
                    results: o.results,
                    recorded_at: now,
                });
            }
        }
        for id in &complete {
            if let Some(p) = self.batches.get_mut(id) {
                p.done = true;
            }
        }
        for id in &report.outcomes.gone {
            warn!(batch = %id, "batch was taken from this session; its outcomes are dropped");
            if let Some(p) = self.batches.get_mut(id) {
                p.done = true;
            }
        }
        for id in &report.outcomes.completed {
            debug!(batch = %id, "batch completed");
            metrics::counter!(crate::metrics::BATCHES_COMPLETED).increment(1);
            // Only the SCOMO engine's batches need it; others' owners poll.
            if let Some(mut b) = self.batches.get_mut(id).and_then(|p| p.scomo.take()) {
                b.outcomes.sort_by_key(|o| o.index);
                b.state = BatchState::Completed;
                b.sent_at = b.sent_at.or(Some(now));
                b.finished_at = Some(now);
                self.completed.push(b);
            }
        }
        Ok(report)
    }

    /// How the store records the engine's end of the session.
    fn session_end(&self, outcome: &ServerOutcome) -> SessionEnd {
        let (outcome, detail) = match outcome {
            ServerOutcome::Completed => (SessionOutcome::Ok, None),
            ServerOutcome::AbortedByClient => (
                SessionOutcome::Aborted,
                Some("aborted by the device".to_owned()),
            ),
            ServerOutcome::AbortedByServer => (
                SessionOutcome::Aborted,
                Some("aborted by the server".to_owned()),
            ),
            ServerOutcome::AuthenticationFailed => (SessionOutcome::AuthFailed, None),
            ServerOutcome::Failed(e) => (SessionOutcome::Error, Some(e.to_string())),
        };
        SessionEnd {
            outcome,
            messages_in: self.messages_in,
            messages_out: self.messages_out,
            detail,
        }
    }

    /// Ends the session as `outcome` (also for idle expiry and shutdown).
    pub(crate) async fn close(
        &mut self,
        state: &AppState,
        outcome: SessionOutcome,
        detail: Option<String>,
        now: Timestamp,
    ) {
        if self.closed {
            return;
        }
        self.closed = true;
        let span = self.span.clone();
        self.close_inner(state, outcome, detail, now)
            .instrument(span)
            .await;
    }

    async fn close_inner(
        &mut self,
        state: &AppState,
        outcome: SessionOutcome,
        detail: Option<String>,
        now: Timestamp,
    ) {
        self.closed_bookkeeping(state, outcome, now);
        let Some(key) = self.key else { return };
        let end = SessionEnd {
            outcome,
            messages_in: self.messages_in,
            messages_out: self.messages_out,
            detail,
        };
        match state.store().finish_session(key, &end, now).await {
            Ok(r) if r.requeued + r.unacknowledged > 0 => info!(
                requeued = r.requeued,
                unacknowledged = r.unacknowledged,
                completed = r.completed,
                "batches of the session settled"
            ),
            Ok(_) => {}
            Err(e) => warn!(error = %crate::error::ErrorChain(&e), "cannot close the session row"),
        }
    }

    /// Metrics, log line and live event of a session's end.
    fn closed_bookkeeping(&self, state: &AppState, outcome: SessionOutcome, now: Timestamp) {
        metrics::counter!(crate::metrics::SESSIONS_ENDED, "outcome" => outcome.as_str())
            .increment(1);
        metrics::histogram!(crate::metrics::SESSION_DURATION)
            .record(self.started.elapsed().as_secs_f64());
        // Per-session lines are debug when all went well: at thousands of
        // sessions a second, a line each cost the server a fifth of its CPU
        // (formatting and a write to stderr), and the sessions table, the
        // metrics and /api/v1/events already tell. Anything else is info.
        if outcome == SessionOutcome::Ok {
            debug!(
                messages_in = self.messages_in,
                messages_out = self.messages_out,
                "session ended"
            );
        } else {
            info!(
                outcome = outcome.as_str(),
                messages_in = self.messages_in,
                messages_out = self.messages_out,
                "session ended"
            );
        }
        if let Some(key) = self.key {
            state.publish(crate::events::ApiEvent::new(
                "session",
                key.0,
                &self.device_id,
                outcome.as_str(),
                None,
                now,
            ));
        }
    }
}

impl Writes {
    fn is_empty(&self) -> bool {
        self.nodes.is_empty()
            && self.outcomes.is_empty()
            && self.alerts.is_empty()
            && !self.cancel_notifications
    }
}

/// How often a live session refreshes its audit row's activity time: well
/// within the idle timeout, after which sweeps consider a session dead.
fn touch_interval(config: &Config) -> std::time::Duration {
    (config.session_idle_timeout() / 4).min(std::time::Duration::from_secs(30))
}

/// The engine's settings for one session.
fn engine_config(config: &Config, resp_uri: String, server_uri: String) -> ServerConfig {
    let mut cfg = ServerConfig::new(server_uri);
    cfg.resp_uri = Some(resp_uri);
    cfg.max_msg_size = config.dm.max_msg_size;
    cfg.max_obj_size = Some(config.dm.max_obj_size);
    cfg.auth_per_message = config.dm.auth_per_message;
    // 16 bytes: 128 bits, and 16 mod 3 = 1 avoids the base64 client bug in
    // QUIRKS.md.
    cfg.nonce_len = Nonce::DEFAULT_LEN;
    cfg.idle_timeout = config.session_idle_timeout();
    cfg
}

/// The engine's view of a stored device: its credentials (only
/// `MD5(user:password)` is stored, which verifies basic, MD5 and HMAC), the
/// server's credentials toward it, and the nonces.
pub(crate) fn account(config: &Config, d: &Device) -> DeviceAccount {
    let client_auth = d.client_credentials.as_ref().map(|c| {
        AuthConfig::new(
            auth_type(c.auth_type),
            Credentials::with_hash(c.username.clone(), c.user_hash),
        )
    });
    DeviceAccount {
        client_auth,
        server_auth: server_auth(config, d),
        nonces: NonceState {
            client_nonce: Nonce::from_bytes(d.nonces.client.clone().unwrap_or_default()),
            server_nonce: Nonce::from_bytes(d.nonces.server.clone().unwrap_or_default()),
        },
    }
}

/// What the server presents to a device: its own server credentials, or the
/// server-wide default password under the ServerID, with the device's auth
/// type.
pub(crate) fn server_auth(config: &Config, d: &Device) -> Option<AuthConfig> {
    if let Some(s) = &d.server_credentials {
        return Some(AuthConfig::new(
            auth_type(s.auth_type),
            Credentials::new(s.server_id.clone(), s.password.clone()),
        ));
    }
    let password = config.dm.server_password.as_ref()?;
    let t = d
        .client_credentials
        .as_ref()
        .map_or(omadm::auth::AuthType::Md5, |c| auth_type(c.auth_type));
    Some(AuthConfig::new(
        t,
        Credentials::new(config.server_id.clone(), password.clone()),
    ))
}

/// The omadm auth type of a stored one.
pub(crate) fn auth_type(t: AuthType) -> omadm::auth::AuthType {
    match t {
        AuthType::Basic => omadm::auth::AuthType::Basic,
        AuthType::Md5 => omadm::auth::AuthType::Md5,
        AuthType::Hmac => omadm::auth::AuthType::Hmac,
    }
}

/// Whether a URI is one of the standard objects recorded per device.
fn is_std_node(uri: &str) -> bool {
    let u = uri.strip_prefix("./").unwrap_or(uri);
    (u.starts_with("DevInfo/") || u.starts_with("DevDetail/")) && uri.len() <= 256
}

/// A DevId acceptable for auto-registration.
fn valid_device_id(id: &str) -> bool {
    !id.trim().is_empty() && id.len() <= 255 && !id.chars().any(char::is_control)
}

/// `Get <uri>`.
fn get(uri: &str) -> Command {
    Command::Get(ItemCommand {
        items: vec![Item {
            target: Some(Location::uri(uri)),
            ..Item::default()
        }],
        ..ItemCommand::default()
    })
}

/// Last touches before a stored command is sent: an interior-node Add gets
/// `<Data/>` (QUIRKS.md: a deployed client crashes without it).
fn prepare(cmd: Command) -> Command {
    match cmd {
        Command::Add(mut c) => {
            let node_format = |m: &Option<omadm_wire::model::Meta>| {
                m.as_ref()
                    .and_then(|m| m.format.as_deref())
                    .is_some_and(|f| f.eq_ignore_ascii_case("node"))
            };
            let cmd_is_node = node_format(&c.meta);
            for item in &mut c.items {
                if item.data.is_none() && (cmd_is_node || node_format(&item.meta)) {
                    item.data = Some(Data::Text(String::new()));
                }
            }
            Command::Add(c)
        }
        Command::Atomic(mut k) => {
            k.commands = k.commands.into_iter().map(prepare).collect();
            Command::Atomic(k)
        }
        Command::Sequence(mut k) => {
            k.commands = k.commands.into_iter().map(prepare).collect();
            Command::Sequence(k)
        }
        other => other,
    }
}

/// The store's index (depth-first pre-order, see
/// [`command_count`](crate::store::command_count)) of the
/// command at `path` inside top-level command `top`.
fn preorder_index(shapes: &[Shape], top: usize, path: &[usize]) -> Option<u32> {
    let mut index = Shape::count(shapes.get(..top)?);
    let mut cmd = shapes.get(top)?;
    for &j in path {
        let children = &cmd.0;
        if children.is_empty() {
            return None;
        }
        index = index
            .saturating_add(1)
            .saturating_add(Shape::count(children.get(..j)?));
        cmd = children.get(j)?;
    }
    Some(index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use omadm_wire::model::{Container, Meta};

    fn atomic(commands: Vec<Command>) -> Command {
        Command::Atomic(Container {
            commands,
            ..Container::default()
        })
    }

    #[test]
    fn preorder_indices_match_the_store() {
        // [Get, Atomic[Add, Sequence[Get, Get]], Get] → 0, 1, 2, 3, 4, 5, 6
        let cmds = vec![
            get("a"),
            atomic(vec![
                Command::Add(ItemCommand::default()),
                Command::Sequence(Container {
                    commands: vec![get("b"), get("c")],
                    ..Container::default()
                }),
            ]),
            get("d"),
        ];
        assert_eq!(crate::store::command_count(&cmds), 7);
        let shape = Shape::of(&cmds);
        assert_eq!(Shape::count(&shape), 7);
        assert_eq!(preorder_index(&shape, 0, &[]), Some(0));
        assert_eq!(preorder_index(&shape, 1, &[]), Some(1));
        assert_eq!(preorder_index(&shape, 1, &[0]), Some(2));
        assert_eq!(preorder_index(&shape, 1, &[1]), Some(3));
        assert_eq!(preorder_index(&shape, 1, &[1, 1]), Some(5));
        assert_eq!(preorder_index(&shape, 2, &[]), Some(6));
        assert_eq!(preorder_index(&shape, 3, &[]), None);
        assert_eq!(preorder_index(&shape, 0, &[0]), None);
    }

    #[test]
    fn interior_adds_get_empty_data() {
        let add = Command::Add(ItemCommand {
            items: vec![Item {
                target: Some(Location::uri("./A")),
                meta: Some(Meta {
                    format: Some("node".into()),
                    ..Meta::default()
                }),
                ..Item::default()
            }],
            ..ItemCommand::default()
        });
        let Command::Atomic(k) = prepare(atomic(vec![add])) else {
            panic!("atomic")
        };
        let Some(Command::Add(c)) = k.commands.first() else {
            panic!("add")
        };
        assert_eq!(
            c.items.first().and_then(|i| i.data.clone()),
            Some(Data::Text(String::new()))
        );
    }

    #[test]
    fn std_nodes() {
        assert!(is_std_node("./DevInfo/Man"));
        assert!(is_std_node("DevDetail/URI/MaxDepth"));
        assert!(!is_std_node("./Vendor/x"));
        assert!(!is_std_node("./DevInfoX/x"));
    }
}
