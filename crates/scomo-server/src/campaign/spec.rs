//! What a campaign asks for: stages, thresholds, pacing and timing.

use super::Millis;

/// How many devices a stage takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StageSize {
    /// A share of the selection at start, in percent (1–100), rounded up.
    Percent(u8),
    /// A fixed number of devices (at least 1).
    Count(u32),
}

/// One group of a staged rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage {
    /// Its size. The last stage always takes every remaining device.
    pub size: StageSize,
}

/// The failure classes error thresholds watch (see the module docs for
/// which outcomes fall in which class).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The device or its package failed (1400–1499 except 1401, unknown
    /// codes, timeouts, inventory mismatches).
    DeviceFault,
    /// The alternate download server failed (1500–1599).
    DownloadServerFault,
    /// The user declined (1401).
    UserDeclined,
}

impl ErrorClass {
    /// Every class.
    pub const ALL: [ErrorClass; 3] = [
        ErrorClass::DeviceFault,
        ErrorClass::DownloadServerFault,
        ErrorClass::UserDeclined,
    ];

    pub(crate) fn index(self) -> usize {
        match self {
            ErrorClass::DeviceFault => 0,
            ErrorClass::DownloadServerFault => 1,
            ErrorClass::UserDeclined => 2,
        }
    }
}

/// What a tripped error threshold does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThresholdAction {
    /// Stop starting jobs until an operator resumes.
    Pause,
    /// Stop for good.
    Abort,
}

/// An error threshold: trips when, within one stage, more than `max_pct`
/// percent of the finished (not cancelled) jobs failed with `class`, once
/// at least `min_finished` of them have finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorThreshold {
    /// The failure class counted.
    pub class: ErrorClass,
    /// The tolerated share in percent (0 trips on the first failure).
    pub max_pct: u8,
    /// The sample needed before the threshold is evaluated (0 counts as 1).
    pub min_finished: u32,
    /// What tripping does.
    pub action: ThresholdAction,
}

/// A daily maintenance window in UTC, minutes of the day: starts happen only
/// at `start_minute <= m < end_minute`; a window with `start_minute >
/// end_minute` spans midnight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// First minute of the day inside the window (0–1439).
    pub start_minute: u16,
    /// First minute of the day after the window (0–1439, not equal to the
    /// start).
    pub end_minute: u16,
}

const DAY_MS: i64 = 86_400_000;
const MINUTE_MS: i64 = 60_000;

impl Window {
    /// Whether `now` is inside the window.
    pub fn contains(&self, now: Millis) -> bool {
        let m = now.rem_euclid(DAY_MS) / MINUTE_MS;
        let (s, e) = (i64::from(self.start_minute), i64::from(self.end_minute));
        if s < e {
            s <= m && m < e
        } else {
            m >= s || m < e
        }
    }

    /// The next time at or after `now` the window is open.
    pub fn next_open(&self, now: Millis) -> Millis {
        if self.contains(now) {
            return now;
        }
        let day_start = now - now.rem_euclid(DAY_MS);
        let open = day_start + i64::from(self.start_minute) * MINUTE_MS;
        if open > now {
            open
        } else {
            open + DAY_MS
        }
    }
}

/// A campaign's rollout rules (the operation and device selection live
/// elsewhere; the planner only sees device ids).
#[derive(Clone, Debug, PartialEq)]
pub struct CampaignSpec {
    /// The groups, in order; none means one group of every device.
    pub stages: Vec<Stage>,
    /// The share (percent of the stage's devices) that must have succeeded
    /// before the next stage opens.
    pub success_threshold_pct: u8,
    /// Error thresholds, evaluated per stage.
    pub error_thresholds: Vec<ErrorThreshold>,
    /// Job starts per second (token bucket refill rate, ≥ 0.001).
    pub rate_per_sec: f64,
    /// Token bucket capacity: starts allowed back to back (≥ 1).
    pub burst: u32,
    /// A start that had to wait for a token is delayed by a further
    /// `0..=jitter_ms`, drawn from the caller's seeded generator.
    pub jitter_ms: u32,
    /// Jobs in flight at most (≥ 1).
    pub max_concurrency: u32,
    /// No job starts before this time.
    pub start_at: Millis,
    /// Jobs start only inside this daily window, when set.
    pub window: Option<Window>,
}

impl Default for CampaignSpec {
    /// One stage of every device, all must succeed, no error thresholds,
    /// one start per second, one at a time, start at once, no window.
    fn default() -> CampaignSpec {
        CampaignSpec {
            stages: vec![Stage {
                size: StageSize::Percent(100),
            }],
            success_threshold_pct: 100,
            error_thresholds: Vec::new(),
            rate_per_sec: 1.0,
            burst: 1,
            jitter_ms: 0,
            max_concurrency: 1,
            start_at: 0,
            window: None,
        }
    }
}

/// Why a [`CampaignSpec`] is refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SpecError {
    /// A stage has a size of 0, or more than 100 percent.
    #[error("stage {0}: size must be 1-100 percent or a count of at least 1")]
    StageSize(usize),
    /// A percentage above 100.
    #[error("{0}: percentage above 100")]
    Percent(&'static str),
    /// The rate is not a finite number of at least 0.001 per second.
    #[error("rate_per_sec must be finite and at least 0.001 (got {0})")]
    Rate(f64),
    /// `burst` or `max_concurrency` is 0.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// A window minute past 1439, or a window that starts where it ends.
    #[error("window minutes must be 0-1439 and differ")]
    Window,
}

impl CampaignSpec {
    /// Checks the rules' ranges.
    pub fn validate(&self) -> Result<(), SpecError> {
        for (i, s) in self.stages.iter().enumerate() {
            match s.size {
                StageSize::Percent(p) if p == 0 || p > 100 => return Err(SpecError::StageSize(i)),
                StageSize::Count(0) => return Err(SpecError::StageSize(i)),
                _ => {}
            }
        }
        if self.success_threshold_pct > 100 {
            return Err(SpecError::Percent("success_threshold_pct"));
        }
        if self.error_thresholds.iter().any(|t| t.max_pct > 100) {
            return Err(SpecError::Percent("error threshold max_pct"));
        }
        if !self.rate_per_sec.is_finite() || self.rate_per_sec < 0.001 {
            return Err(SpecError::Rate(self.rate_per_sec));
        }
        if self.burst == 0 {
            return Err(SpecError::Zero("burst"));
        }
        if self.max_concurrency == 0 {
            return Err(SpecError::Zero("max_concurrency"));
        }
        if let Some(w) = self.window {
            if w.start_minute >= 1440 || w.end_minute >= 1440 || w.start_minute == w.end_minute {
                return Err(SpecError::Window);
            }
        }
        Ok(())
    }

    /// The number of stages (at least 1).
    pub(crate) fn stage_count(&self) -> usize {
        self.stages.len().max(1)
    }

    /// Splits `n` devices into stage sizes: each stage but the last takes
    /// its size (percent of `n` rounded up, or its count), capped by what is
    /// left; the last takes the rest.
    pub(crate) fn partition(&self, n: usize) -> Vec<usize> {
        let count = self.stage_count();
        let mut sizes = Vec::with_capacity(count);
        let mut left = n;
        for i in 0..count {
            let want = if i + 1 == count {
                left
            } else {
                match self.stages.get(i).map(|s| s.size) {
                    Some(StageSize::Percent(p)) => (n * usize::from(p)).div_ceil(100),
                    Some(StageSize::Count(c)) => usize::try_from(c).unwrap_or(usize::MAX),
                    None => left,
                }
            };
            let take = want.min(left);
            left -= take;
            sizes.push(take);
        }
        sizes
    }
}
