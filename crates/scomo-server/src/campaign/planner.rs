//! The campaign state machine: events in, decisions out.

use std::collections::{HashMap, VecDeque};

use scomo::result::ResultClass;

use super::rng::XorShift64;
use super::spec::{CampaignSpec, ErrorClass, SpecError, ThresholdAction};
use super::Millis;

/// How one device's job ended, as the campaign sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Reported successful and verified.
    Succeeded,
    /// Reported (or judged) failed, with the result code's class.
    Failed(ResultClass),
    /// No result before the deadline (a device fault).
    TimedOut,
    /// Reported successful but the inventory disagrees (a device fault).
    Mismatch,
    /// The job was cancelled: neither success nor failure.
    Cancelled,
}

impl Outcome {
    /// The error class the outcome counts against, if it is a failure.
    pub fn error_class(self) -> Option<ErrorClass> {
        match self {
            Outcome::Succeeded | Outcome::Cancelled => None,
            Outcome::Failed(ResultClass::UserDeclined) => Some(ErrorClass::UserDeclined),
            Outcome::Failed(ResultClass::DownloadServerFault) => {
                Some(ErrorClass::DownloadServerFault)
            }
            Outcome::Failed(_) | Outcome::TimedOut | Outcome::Mismatch => {
                Some(ErrorClass::DeviceFault)
            }
        }
    }
}

/// What the driver should do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Create and start the campaign's job on this device. The planner
    /// counts it in flight until [`Planner::job_finished`] reports it.
    StartJob(String),
    /// Ask again at this time (start time, window opening, next token).
    WaitUntil(Millis),
}

/// A tripped error threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThresholdTrip {
    /// The stage (0-based) whose jobs tripped it.
    pub stage: usize,
    /// The failure class.
    pub class: ErrorClass,
    /// Failures of that class counted.
    pub failures: u32,
    /// Finished (not cancelled) jobs counted.
    pub finished: u32,
    /// The threshold's tolerated share, percent.
    pub max_pct: u8,
}

/// Why a campaign is paused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PauseReason {
    /// An operator paused it.
    Operator,
    /// An error threshold with [`ThresholdAction::Pause`] tripped.
    ErrorThreshold(ThresholdTrip),
    /// Every job of a stage finished without reaching the success
    /// threshold; resuming opens the next stage anyway.
    SuccessThresholdNotMet {
        /// The stage (0-based).
        stage: usize,
        /// Its devices that succeeded.
        succeeded: u32,
        /// Its devices.
        devices: u32,
    },
}

/// Why a campaign was aborted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbortReason {
    /// An error threshold with [`ThresholdAction::Abort`] tripped.
    ErrorThreshold(ThresholdTrip),
}

/// Where a campaign is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CampaignState {
    /// Before its start time (or before it has any device).
    Scheduled,
    /// Starting jobs.
    Running,
    /// Starting nothing until resumed; jobs in flight still report.
    Paused {
        /// Why.
        reason: PauseReason,
    },
    /// Stopped for good by an error threshold.
    Aborted {
        /// Why.
        reason: AbortReason,
    },
    /// Stopped for good by an operator.
    Cancelled,
    /// Every stage opened and every device's job finished.
    Completed,
}

impl CampaignState {
    /// Whether the campaign is over (no more starts, no joiners).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            CampaignState::Aborted { .. } | CampaignState::Cancelled | CampaignState::Completed
        )
    }
}

/// Finished jobs by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutcomeCounts {
    /// [`Outcome::Succeeded`].
    pub succeeded: u32,
    /// `Failed(UserDeclined)`.
    pub user_declined: u32,
    /// `Failed(DeviceFault)`.
    pub device_fault: u32,
    /// `Failed(DownloadServerFault)`.
    pub download_server_fault: u32,
    /// `Failed` with any other class (counted as a device fault).
    pub other_failure: u32,
    /// [`Outcome::TimedOut`].
    pub timed_out: u32,
    /// [`Outcome::Mismatch`].
    pub mismatch: u32,
    /// [`Outcome::Cancelled`].
    pub cancelled: u32,
}

impl OutcomeCounts {
    fn record(&mut self, outcome: Outcome) {
        let slot = match outcome {
            Outcome::Succeeded => &mut self.succeeded,
            Outcome::Failed(ResultClass::UserDeclined) => &mut self.user_declined,
            Outcome::Failed(ResultClass::DeviceFault) => &mut self.device_fault,
            Outcome::Failed(ResultClass::DownloadServerFault) => &mut self.download_server_fault,
            Outcome::Failed(_) => &mut self.other_failure,
            Outcome::TimedOut => &mut self.timed_out,
            Outcome::Mismatch => &mut self.mismatch,
            Outcome::Cancelled => &mut self.cancelled,
        };
        *slot += 1;
    }

    fn add(&mut self, o: &OutcomeCounts) {
        self.succeeded += o.succeeded;
        self.user_declined += o.user_declined;
        self.device_fault += o.device_fault;
        self.download_server_fault += o.download_server_fault;
        self.other_failure += o.other_failure;
        self.timed_out += o.timed_out;
        self.mismatch += o.mismatch;
        self.cancelled += o.cancelled;
    }

    /// Failed jobs (every outcome but success and cancellation).
    pub fn failed(&self) -> u32 {
        self.user_declined
            + self.device_fault
            + self.download_server_fault
            + self.other_failure
            + self.timed_out
            + self.mismatch
    }

    /// Finished jobs, whatever the outcome.
    pub fn finished(&self) -> u32 {
        self.succeeded + self.failed() + self.cancelled
    }
}

/// Devices of a stage (or of the whole campaign) by progress. Always
/// `devices == pending + in_flight + outcomes.finished()`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Devices.
    pub devices: u32,
    /// Not started yet.
    pub pending: u32,
    /// Started, not finished.
    pub in_flight: u32,
    /// Finished, by outcome.
    pub outcomes: OutcomeCounts,
}

/// One stage in a [`CampaignStatus`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StageStatus {
    /// Whether its jobs may start.
    pub opened: bool,
    /// Its devices by progress (before the start, the planned split).
    pub counts: Counts,
}

/// A snapshot of a campaign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CampaignStatus {
    /// Where it is.
    pub state: CampaignState,
    /// When it got there (the `now` of the event that moved it).
    pub since: Millis,
    /// The highest opened stage (0-based), once started.
    pub current_stage: Option<usize>,
    /// Every stage.
    pub stages: Vec<StageStatus>,
    /// Every device.
    pub totals: Counts,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Pending,
    InFlight,
    Finished,
}

#[derive(Clone, Debug)]
struct Slot {
    stage: usize,
    phase: Phase,
}

/// Failures counted for error thresholds since the stage opened or the
/// campaign last resumed.
#[derive(Clone, Copy, Debug, Default)]
struct Eval {
    finished: u32,
    by_class: [u32; 3],
}

#[derive(Clone, Debug, Default)]
struct StageRun {
    devices: u32,
    pending: VecDeque<String>,
    in_flight: u32,
    outcomes: OutcomeCounts,
    eval: Eval,
    gate_overridden: bool,
}

/// Token bucket in micro-tokens, refilled per millisecond.
#[derive(Clone, Debug)]
struct Bucket {
    tokens: i64,
    capacity: i64,
    per_ms: i64,
    last: Option<Millis>,
}

const TOKEN: i64 = 1_000_000;

impl Bucket {
    fn new(spec: &CampaignSpec) -> Bucket {
        // rate/s × 10⁶ µtokens / 1000 ms; validated ≥ 0.001/s so ≥ 1 µtoken/ms.
        let per_ms = (spec.rate_per_sec * 1000.0).round().clamp(1.0, 1e15) as i64;
        Bucket {
            tokens: 0,
            capacity: i64::from(spec.burst) * TOKEN,
            per_ms,
            last: None,
        }
    }

    fn refill(&mut self, now: Millis) {
        match self.last {
            None => {
                self.tokens = self.capacity;
                self.last = Some(now);
            }
            Some(last) if now > last => {
                let gained = (now - last).saturating_mul(self.per_ms);
                self.tokens = self.tokens.saturating_add(gained).min(self.capacity);
                self.last = Some(now);
            }
            Some(_) => {}
        }
    }

    fn has_token(&self) -> bool {
        self.tokens >= TOKEN
    }

    /// When the next whole token is there (after a refill at `now`).
    fn token_at(&self, now: Millis) -> Millis {
        let missing = (TOKEN - self.tokens).max(0);
        now + (missing + self.per_ms - 1) / self.per_ms
    }
}

/// Where one device was when its campaign was saved, for
/// [`Planner::restore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Not started.
    Pending,
    /// Its job was started and has not been reported finished.
    InFlight,
    /// Its job finished; `counted`: in the current epoch (since the last
    /// resume), so it counts for error thresholds.
    Finished {
        /// How it ended.
        outcome: Outcome,
        /// Whether it counts for error thresholds.
        counted: bool,
    },
}

/// One device of a saved campaign, in arrival order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedDevice {
    /// Its id.
    pub id: String,
    /// The stage its job started in, when it started.
    pub stage: Option<usize>,
    /// Where it was.
    pub progress: Progress,
}

/// A saved campaign, for [`Planner::restore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Saved {
    /// Its state.
    pub state: CampaignState,
    /// Since when.
    pub since: Millis,
    /// The highest opened stage.
    pub current: Option<usize>,
    /// How many of the first devices (in arrival order) were split over
    /// the stages when the campaign started; the rest joined later.
    pub initial: usize,
    /// Every device, in arrival order.
    pub devices: Vec<SavedDevice>,
}

/// The campaign decision core: a state machine fed with events (devices
/// added, jobs finished, operator commands) and asked for decisions
/// ([`Planner::next_actions`]). Pure: no I/O, the clock and the random
/// source are passed in.
#[derive(Clone, Debug)]
pub struct Planner {
    spec: CampaignSpec,
    state: CampaignState,
    since: Millis,
    stages: Vec<StageRun>,
    current: Option<usize>,
    slots: HashMap<String, Slot>,
    /// Devices in arrival order, before the first stage opens.
    pool: Vec<String>,
    bucket: Bucket,
    jitter_until: Option<Millis>,
    in_flight: u32,
}

impl Planner {
    /// A scheduled campaign with no devices yet.
    pub fn new(spec: CampaignSpec) -> Result<Planner, SpecError> {
        spec.validate()?;
        let stages = vec![StageRun::default(); spec.stage_count()];
        Ok(Planner {
            bucket: Bucket::new(&spec),
            spec,
            state: CampaignState::Scheduled,
            since: 0,
            stages,
            current: None,
            slots: HashMap::new(),
            pool: Vec::new(),
            jitter_until: None,
            in_flight: 0,
        })
    }

    /// Rebuilds a planner from what its driver saved: devices keep the
    /// stage their job started in; devices not started take the stage the
    /// split at the start gave them (the first `initial` ones) or the
    /// current stage (later joiners). Pacing starts afresh (a full token
    /// bucket); error thresholds count the `counted` outcomes.
    pub fn restore(spec: CampaignSpec, saved: Saved, now: Millis) -> Result<Planner, SpecError> {
        let mut p = Planner::new(spec)?;
        p.state = saved.state;
        p.since = saved.since;
        let last = p.stages.len().saturating_sub(1);
        let Some(current) = saved.current.map(|c| c.min(last)) else {
            for d in saved.devices {
                if p.slots.contains_key(&d.id) {
                    continue;
                }
                p.slots.insert(
                    d.id.clone(),
                    Slot {
                        stage: 0,
                        phase: Phase::Pending,
                    },
                );
                p.pool.push(d.id);
            }
            p.split_pool();
            return Ok(p);
        };
        p.current = Some(current);
        let initial = saved.initial.min(saved.devices.len());
        let mut split = Vec::with_capacity(initial);
        for (stage, size) in p.spec.partition(initial).into_iter().enumerate() {
            split.extend(std::iter::repeat_n(stage, size));
        }
        for (i, d) in saved.devices.into_iter().enumerate() {
            if p.slots.contains_key(&d.id) {
                continue;
            }
            let stage = d
                .stage
                .or_else(|| split.get(i).copied())
                .unwrap_or(current)
                .min(last);
            let Some(run) = p.stages.get_mut(stage) else {
                continue;
            };
            run.devices += 1;
            let phase = match d.progress {
                Progress::Pending => {
                    run.pending.push_back(d.id.clone());
                    Phase::Pending
                }
                Progress::InFlight => {
                    run.in_flight += 1;
                    p.in_flight += 1;
                    Phase::InFlight
                }
                Progress::Finished { outcome, counted } => {
                    run.outcomes.record(outcome);
                    if counted && outcome != Outcome::Cancelled {
                        run.eval.finished += 1;
                        if let Some(class) = outcome.error_class() {
                            if let Some(n) = run.eval.by_class.get_mut(class.index()) {
                                *n += 1;
                            }
                        }
                    }
                    Phase::Finished
                }
            };
            p.slots.insert(d.id, Slot { stage, phase });
        }
        p.settle(now);
        Ok(p)
    }

    /// The stage a device is in (before the start: the planned split).
    pub fn stage_of(&self, device: &str) -> Option<usize> {
        self.slots.get(device).map(|s| s.stage)
    }

    /// The rules it runs.
    pub fn spec(&self) -> &CampaignSpec {
        &self.spec
    }

    /// Where it is.
    pub fn state(&self) -> CampaignState {
        self.state
    }

    /// Adds devices: the initial selection and late joiners alike. Ids
    /// already known are ignored; a finished campaign takes none. Before
    /// the first stage opens the stages are split over every device added
    /// so far; afterwards each new device joins the current (highest
    /// opened) stage. Returns how many were added.
    pub fn add_devices<I, S>(&mut self, ids: I, now: Millis) -> usize
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        if self.state.is_terminal() {
            return 0;
        }
        let mut added = 0;
        for id in ids {
            let id = id.into();
            if self.slots.contains_key(&id) {
                continue;
            }
            let stage = self.current.unwrap_or(0);
            self.slots.insert(
                id.clone(),
                Slot {
                    stage,
                    phase: Phase::Pending,
                },
            );
            match self.current.and_then(|c| self.stages.get_mut(c)) {
                Some(run) => {
                    run.devices += 1;
                    run.pending.push_back(id);
                }
                None => self.pool.push(id),
            }
            added += 1;
        }
        if added > 0 && self.current.is_none() {
            self.split_pool();
        }
        self.settle(now);
        added
    }

    /// Records the end of a device's job. Ignored (returns false) unless
    /// the device's job is in flight. Counts are kept in every state; a
    /// running (or paused) campaign re-evaluates its thresholds and stages.
    pub fn job_finished(&mut self, device: &str, outcome: Outcome, now: Millis) -> bool {
        let Some(slot) = self.slots.get_mut(device) else {
            return false;
        };
        if slot.phase != Phase::InFlight {
            return false;
        }
        slot.phase = Phase::Finished;
        let stage = slot.stage;
        self.in_flight = self.in_flight.saturating_sub(1);
        if let Some(run) = self.stages.get_mut(stage) {
            run.in_flight = run.in_flight.saturating_sub(1);
            run.outcomes.record(outcome);
            if outcome != Outcome::Cancelled {
                run.eval.finished += 1;
                if let Some(class) = outcome.error_class() {
                    if let Some(n) = run.eval.by_class.get_mut(class.index()) {
                        *n += 1;
                    }
                }
            }
        }
        self.settle(now);
        true
    }

    /// Pauses a scheduled or running campaign. Returns whether it changed.
    pub fn pause(&mut self, now: Millis) -> bool {
        match self.state {
            CampaignState::Scheduled | CampaignState::Running => {
                self.set_state(
                    CampaignState::Paused {
                        reason: PauseReason::Operator,
                    },
                    now,
                );
                true
            }
            _ => false,
        }
    }

    /// Resumes a paused campaign (whatever paused it). Error thresholds
    /// count afresh from here; a stage paused for missing its success
    /// threshold lets the next stage open. Returns whether it changed.
    pub fn resume(&mut self, now: Millis) -> bool {
        let CampaignState::Paused { reason } = self.state else {
            return false;
        };
        for run in &mut self.stages {
            run.eval = Eval::default();
        }
        if let PauseReason::SuccessThresholdNotMet { stage, .. } = reason {
            if let Some(run) = self.stages.get_mut(stage) {
                run.gate_overridden = true;
            }
        }
        let next = if self.current.is_some() {
            CampaignState::Running
        } else {
            CampaignState::Scheduled
        };
        self.set_state(next, now);
        self.settle(now);
        true
    }

    /// Cancels the campaign: no more starts. Jobs in flight are the
    /// driver's to cancel; their outcomes are still counted. Returns
    /// whether it changed.
    pub fn cancel(&mut self, now: Millis) -> bool {
        if self.state.is_terminal() {
            return false;
        }
        self.set_state(CampaignState::Cancelled, now);
        true
    }

    /// What to do at `now`: jobs to start, at most one `WaitUntil` (the
    /// time to ask again), or nothing — wait for the next event (a job
    /// finishing, devices joining, an operator command).
    pub fn next_actions(&mut self, now: Millis, rng: &mut XorShift64) -> Vec<Action> {
        let mut out = Vec::new();
        match self.state {
            CampaignState::Scheduled => {
                if now < self.spec.start_at {
                    out.push(Action::WaitUntil(self.spec.start_at));
                    return out;
                }
                if self.pool.is_empty() {
                    return out;
                }
                self.open_first(now);
            }
            CampaignState::Running => self.settle(now),
            _ => return out,
        }
        if self.state != CampaignState::Running || self.next_stage_to_start().is_none() {
            return out;
        }
        if let Some(w) = self.spec.window {
            if !w.contains(now) {
                out.push(Action::WaitUntil(w.next_open(now)));
                return out;
            }
        }
        while self.in_flight < self.spec.max_concurrency {
            let Some(stage) = self.next_stage_to_start() else {
                break;
            };
            self.bucket.refill(now);
            if let Some(until) = self.jitter_until {
                if now < until {
                    out.push(Action::WaitUntil(until));
                    break;
                }
            }
            if !self.bucket.has_token() {
                let jitter = rng.up_to(u64::from(self.spec.jitter_ms));
                let until = self.bucket.token_at(now) + i64::try_from(jitter).unwrap_or(0);
                self.jitter_until = Some(until);
                out.push(Action::WaitUntil(until));
                break;
            }
            let Some(run) = self.stages.get_mut(stage) else {
                break;
            };
            let Some(device) = run.pending.pop_front() else {
                break;
            };
            run.in_flight += 1;
            self.in_flight += 1;
            self.bucket.tokens -= TOKEN;
            self.jitter_until = None;
            if let Some(slot) = self.slots.get_mut(&device) {
                slot.phase = Phase::InFlight;
            }
            out.push(Action::StartJob(device));
        }
        out
    }

    /// A snapshot: state, current stage, per-stage and total counts.
    pub fn status(&self) -> CampaignStatus {
        let mut totals = Counts::default();
        let stages: Vec<StageStatus> = self
            .stages
            .iter()
            .enumerate()
            .map(|(i, run)| {
                let counts = Counts {
                    devices: run.devices,
                    pending: u32::try_from(run.pending.len()).unwrap_or(u32::MAX),
                    in_flight: run.in_flight,
                    outcomes: run.outcomes,
                };
                totals.devices += counts.devices;
                totals.pending += counts.pending;
                totals.in_flight += counts.in_flight;
                totals.outcomes.add(&counts.outcomes);
                StageStatus {
                    opened: self.current.is_some_and(|c| i <= c),
                    counts,
                }
            })
            .collect();
        CampaignStatus {
            state: self.state,
            since: self.since,
            current_stage: self.current,
            stages,
            totals,
        }
    }

    fn set_state(&mut self, state: CampaignState, now: Millis) {
        if self.state != state {
            self.state = state;
            self.since = now;
        }
    }

    /// Re-splits the pool over the stages (before the first opens).
    fn split_pool(&mut self) {
        let sizes = self.spec.partition(self.pool.len());
        for run in &mut self.stages {
            run.devices = 0;
            run.pending.clear();
        }
        let mut ids = self.pool.iter();
        for (stage, size) in sizes.into_iter().enumerate() {
            let Some(run) = self.stages.get_mut(stage) else {
                continue;
            };
            for id in ids.by_ref().take(size) {
                run.devices += 1;
                run.pending.push_back(id.clone());
                if let Some(slot) = self.slots.get_mut(id) {
                    slot.stage = stage;
                }
            }
        }
    }

    fn open_first(&mut self, now: Millis) {
        self.pool.clear();
        self.current = Some(0);
        self.set_state(CampaignState::Running, now);
        self.settle(now);
    }

    /// The lowest opened stage with devices not started.
    fn next_stage_to_start(&self) -> Option<usize> {
        let current = self.current?;
        (0..=current).find(|&i| self.stages.get(i).is_some_and(|r| !r.pending.is_empty()))
    }

    /// Applies thresholds, stage gates and completion after an event.
    fn settle(&mut self, now: Millis) {
        let Some(mut current) = self.current else {
            return;
        };
        if !matches!(
            self.state,
            CampaignState::Running | CampaignState::Paused { .. }
        ) {
            return;
        }
        if let Some((trip, action)) = self.tripped(current) {
            match action {
                ThresholdAction::Abort => {
                    let reason = AbortReason::ErrorThreshold(trip);
                    self.set_state(CampaignState::Aborted { reason }, now);
                    return;
                }
                ThresholdAction::Pause if self.state == CampaignState::Running => {
                    let reason = PauseReason::ErrorThreshold(trip);
                    self.set_state(CampaignState::Paused { reason }, now);
                    return;
                }
                ThresholdAction::Pause => {}
            }
        }
        if self.state != CampaignState::Running {
            return;
        }
        let pct = u64::from(self.spec.success_threshold_pct);
        while current + 1 < self.stages.len() {
            let Some(run) = self.stages.get(current) else {
                return;
            };
            let succeeded = run.outcomes.succeeded;
            if run.gate_overridden || u64::from(succeeded) * 100 >= pct * u64::from(run.devices) {
                current += 1;
                self.current = Some(current);
                continue;
            }
            if run.pending.is_empty() && run.in_flight == 0 {
                let reason = PauseReason::SuccessThresholdNotMet {
                    stage: current,
                    succeeded,
                    devices: run.devices,
                };
                self.set_state(CampaignState::Paused { reason }, now);
            }
            return;
        }
        if self.in_flight == 0 && self.stages.iter().all(|r| r.pending.is_empty()) {
            self.set_state(CampaignState::Completed, now);
        }
    }

    /// The first tripped threshold over the opened stages, an abort
    /// before a pause.
    fn tripped(&self, current: usize) -> Option<(ThresholdTrip, ThresholdAction)> {
        let mut pause = None;
        for (stage, run) in self.stages.iter().enumerate().take(current + 1) {
            for t in &self.spec.error_thresholds {
                let finished = run.eval.finished;
                if finished == 0 || finished < t.min_finished {
                    continue;
                }
                let failures = run.eval.by_class.get(t.class.index()).copied().unwrap_or(0);
                if u64::from(failures) * 100 > u64::from(t.max_pct) * u64::from(finished) {
                    let trip = ThresholdTrip {
                        stage,
                        class: t.class,
                        failures,
                        finished,
                        max_pct: t.max_pct,
                    };
                    match t.action {
                        ThresholdAction::Abort => return Some((trip, ThresholdAction::Abort)),
                        ThresholdAction::Pause => {
                            pause = pause.or(Some((trip, ThresholdAction::Pause)));
                        }
                    }
                }
            }
        }
        pause
    }
}
