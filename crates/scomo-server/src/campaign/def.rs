//! A campaign as an operator defines it (the `POST /api/v1/campaigns` body,
//! stored as is): the job every device gets, which devices, and the
//! rollout rules; [`CampaignDef::compile`] checks it and turns it into what
//! the driver runs.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::spec::{
    CampaignSpec, ErrorClass, ErrorThreshold, Stage, StageSize, ThresholdAction, Window,
};
use crate::api::jobs::{parse_delivery, parse_op, parse_rfc3339};
use crate::scomo::JobRequest;
use crate::store::{DeviceFilter, JobOp, LabelFilter, Timestamp};

/// Devices a campaign takes from an explicit list, at most.
pub const MAX_LISTED_DEVICES: usize = 100_000;

/// A campaign definition.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignDef {
    /// A name for people.
    pub name: String,
    /// The job each device gets.
    pub job: JobTemplate,
    /// Which devices.
    #[serde(default)]
    pub select: Selection,
    /// Staged groups, in order; the last takes every remaining device.
    /// None: one group.
    #[serde(default)]
    pub stages: Vec<StageDef>,
    /// Percent of a stage's devices that must succeed before the next stage
    /// opens (default 100).
    #[serde(default = "default_success")]
    pub success_threshold_pct: u8,
    /// Error thresholds, evaluated per stage.
    #[serde(default)]
    pub error_thresholds: Vec<ThresholdDef>,
    /// Job starts per second at most (default 10).
    #[serde(default = "default_rate")]
    pub rate_per_sec: f64,
    /// Starts allowed back to back (default: the rate rounded up).
    #[serde(default)]
    pub burst: Option<u32>,
    /// A start that waited for the rate limit waits a further random
    /// 0..=jitter_ms (default 0).
    #[serde(default)]
    pub jitter_ms: u32,
    /// Jobs in flight at most (default 100).
    #[serde(default = "default_concurrency")]
    pub max_concurrency: u32,
    /// No job before this time: RFC 3339 or unix seconds (default now).
    #[serde(default)]
    pub start_at: Option<TimeValue>,
    /// Jobs start only inside this daily UTC window.
    #[serde(default)]
    pub window: Option<WindowDef>,
    /// Seeds the jitter (default: the campaign id).
    #[serde(default)]
    pub seed: Option<u64>,
}

fn default_success() -> u8 {
    100
}
fn default_rate() -> f64 {
    10.0
}
fn default_concurrency() -> u32 {
    100
}

/// The job each device of a campaign gets (as `POST /api/v1/jobs`, without
/// the device).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobTemplate {
    /// The operation (`DownloadInstall`, `Update`, `Activate`, ...).
    pub op: String,
    /// The package (PkgID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// The deployment component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// `direct`, `http`, `dlota` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<String>,
    /// Further operations, each after the previous one succeeded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub then: Vec<String>,
    /// Per-step timeout in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
}

/// Which devices a campaign takes: an explicit list, or every device
/// matching the filter fields that are set (all of them).
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    /// These devices (no filter fields then; no late joiners).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// `./DevInfo/Man`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub man: Option<String>,
    /// `./DevInfo/Mod`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `./DevDetail/DevTyp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev_typ: Option<String>,
    /// Labels the device carries: `key=value`, or `key` for any value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// The current version of a deployed component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<ComponentSel>,
    /// Whether devices that start matching while the campaign runs join it
    /// (default true for a filter).
    #[serde(default = "yes")]
    pub late_joiners: bool,
}

fn yes() -> bool {
    true
}

/// Selects devices by a component's deployed version: `version` (exactly),
/// `below` (older than, by the version order jobs use), and/or `missing`
/// (not deployed at all). With none set: deployed, any version.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComponentSel {
    /// The component id.
    pub id: String,
    /// Deployed at exactly this version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Deployed at a version older than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below: Option<String>,
    /// Also (or only, with no version rule) devices without it.
    #[serde(default)]
    pub missing: bool,
}

impl ComponentSel {
    /// Whether a device with this deployed version (`None`: not deployed;
    /// `Some(None)`: deployed, no version reported) matches.
    pub fn matches(&self, deployed: Option<Option<&str>>) -> bool {
        let Some(version) = deployed else {
            return self.missing;
        };
        if self.version.is_none() && self.below.is_none() {
            return !self.missing;
        }
        let Some(v) = version else {
            return false;
        };
        let exact = self.version.as_deref().is_none_or(|want| want == v);
        let below = self
            .below
            .as_deref()
            .is_none_or(|b| crate::scomo::plan::compare_versions(v, b) == std::cmp::Ordering::Less);
        exact && below
    }
}

/// One stage: `percent` of the devices (rounded up) or `count` devices.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StageDef {
    /// Percent of the selection at the start (1-100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
    /// A number of devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
}

/// An error threshold.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ThresholdDef {
    /// `device_fault`, `download_server_fault` or `user_declined`.
    pub class: String,
    /// Tolerated failures of the class, percent of the stage's finished jobs.
    pub max_pct: u8,
    /// Finished jobs needed before it is evaluated (default 1).
    #[serde(default)]
    pub min_finished: u32,
    /// `pause` or `abort`.
    pub action: String,
}

/// A daily UTC window, `HH:MM` to `HH:MM` (may span midnight).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowDef {
    /// Opens at (`22:00`).
    pub start: String,
    /// Closes at (`04:00`).
    pub end: String,
}

/// A time: unix seconds or RFC 3339 text.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum TimeValue {
    /// Unix seconds.
    Secs(i64),
    /// RFC 3339, e.g. `2026-05-01T12:00:00Z`.
    Text(String),
}

/// A definition checked and turned into what the driver runs.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The rollout rules.
    pub spec: CampaignSpec,
    /// The job, with an empty device id.
    pub job: JobRequest,
    /// The attribute filter (when not a list).
    pub filter: Option<DeviceFilter>,
    /// The component rule.
    pub component: Option<ComponentSel>,
    /// Whether later matching devices join.
    pub late_joiners: bool,
}

fn class_of(s: &str) -> Result<ErrorClass, String> {
    match s {
        "device_fault" => Ok(ErrorClass::DeviceFault),
        "download_server_fault" => Ok(ErrorClass::DownloadServerFault),
        "user_declined" => Ok(ErrorClass::UserDeclined),
        o => Err(format!(
            "error threshold class {o:?}: one of device_fault, download_server_fault, user_declined"
        )),
    }
}

/// The name of an error class in definitions and counts.
pub fn class_name(c: ErrorClass) -> &'static str {
    match c {
        ErrorClass::DeviceFault => "device_fault",
        ErrorClass::DownloadServerFault => "download_server_fault",
        ErrorClass::UserDeclined => "user_declined",
    }
}

fn minute_of(s: &str) -> Result<u16, String> {
    let bad = || format!("window time {s:?} is not HH:MM");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl TimeValue {
    /// The time it names.
    pub fn parse(&self) -> Result<Timestamp, String> {
        match self {
            TimeValue::Secs(s) => Ok(Timestamp::from_unix_secs(*s)),
            TimeValue::Text(t) => parse_rfc3339(t).ok_or_else(|| {
                format!("time {t:?} is not RFC 3339 (2026-05-01T12:00:00Z) or unix seconds")
            }),
        }
    }
}

impl CampaignDef {
    /// Checks every field; `created` is the default start time.
    pub fn compile(&self, created: Timestamp) -> Result<Compiled, String> {
        if self.name.trim().is_empty() {
            return Err("name must not be empty".into());
        }
        let op = parse_op(&self.job.op).map_err(|e| e.to_string())?;
        let then = self
            .job
            .then
            .iter()
            .map(|o| parse_op(o).map(|op| (op, None)).map_err(|e| e.to_string()))
            .collect::<Result<Vec<(JobOp, Option<Timestamp>)>, String>>()?;
        if self.job.timeout_secs == Some(0) {
            return Err("job.timeout_secs must be positive".into());
        }
        let job = JobRequest {
            device_id: String::new(),
            op,
            pkg_id: self.job.package.clone(),
            component_id: self.job.component.clone(),
            delivery: self
                .job
                .delivery
                .as_deref()
                .map(parse_delivery)
                .transpose()
                .map_err(|e| e.to_string())?,
            at: None,
            then,
            timeout: self.job.timeout_secs.map(Duration::from_secs),
        };
        let sel = &self.select;
        let has_filter = sel.man.is_some()
            || sel.model.is_some()
            || sel.dev_typ.is_some()
            || !sel.labels.is_empty()
            || sel.component.is_some();
        if !sel.devices.is_empty() && has_filter {
            return Err("select: give either devices or filter fields, not both".into());
        }
        if sel.devices.len() > MAX_LISTED_DEVICES {
            return Err(format!(
                "select.devices: {} devices, at most {MAX_LISTED_DEVICES} (use a filter)",
                sel.devices.len()
            ));
        }
        let filter = if sel.devices.is_empty() {
            let labels = sel
                .labels
                .iter()
                .map(|l| match l.split_once('=') {
                    Some((k, v)) => LabelFilter {
                        key: k.to_owned(),
                        value: Some(v.to_owned()),
                    },
                    None => LabelFilter {
                        key: l.clone(),
                        value: None,
                    },
                })
                .collect();
            Some(DeviceFilter {
                man: sel.man.clone(),
                model: sel.model.clone(),
                dev_typ: sel.dev_typ.clone(),
                labels,
                id_prefix: None,
            })
        } else {
            None
        };
        let mut stages = Vec::new();
        for (i, s) in self.stages.iter().enumerate() {
            let size = match (s.percent, s.count) {
                (Some(p), None) => StageSize::Percent(p),
                (None, Some(c)) => StageSize::Count(c),
                _ => return Err(format!("stages[{i}]: give one of percent or count")),
            };
            stages.push(Stage { size });
        }
        let mut error_thresholds = Vec::new();
        for t in &self.error_thresholds {
            let action = match t.action.as_str() {
                "pause" => ThresholdAction::Pause,
                "abort" => ThresholdAction::Abort,
                o => return Err(format!("error threshold action {o:?}: pause or abort")),
            };
            error_thresholds.push(ErrorThreshold {
                class: class_of(&t.class)?,
                max_pct: t.max_pct,
                min_finished: t.min_finished,
                action,
            });
        }
        let window = match &self.window {
            Some(w) => Some(Window {
                start_minute: minute_of(&w.start)?,
                end_minute: minute_of(&w.end)?,
            }),
            None => None,
        };
        let start_at = match &self.start_at {
            Some(t) => t.parse()?,
            None => created,
        };
        let burst = self
            .burst
            .unwrap_or_else(|| (self.rate_per_sec.ceil().clamp(1.0, 1e6)) as u32);
        let spec = CampaignSpec {
            stages,
            success_threshold_pct: self.success_threshold_pct,
            error_thresholds,
            rate_per_sec: self.rate_per_sec,
            burst,
            jitter_ms: self.jitter_ms,
            max_concurrency: self.max_concurrency,
            start_at: start_at.unix_millis(),
            window,
        };
        spec.validate().map_err(|e| e.to_string())?;
        Ok(Compiled {
            spec,
            job,
            filter,
            component: sel.component.clone(),
            late_joiners: sel.devices.is_empty() && sel.late_joiners,
        })
    }
}
