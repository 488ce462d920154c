//! Execution environments: what installs, starts, stops and removes
//! components, selected by the package's EnvType (`SCOMO.md` §2.1; empty or
//! absent means `archive`; unknown → 1413).
//!
//! * [`archive::ArchiveEnv`] (built in, `archive`): extracts a tar.gz/zip
//!   package into one directory per component and runs its lifecycle hooks;
//! * [`command::CommandEnv`] (configured): delegates to integrator programs.
//!
//! The executor owns crash safety around them: `stage` may be run again
//! after a crash (from a fresh staging directory), staged directories are
//! moved into place and backed up by the executor, and `activate`,
//! `deactivate` and `remove` may be repeated after a crash.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use scomo::ResultCode;

use super::store::ComponentRecord;

pub mod archive;
pub mod command;

/// The built-in EnvType.
pub const ARCHIVE: &str = "archive";

/// Why an environment operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvError {
    /// It failed; `code` is the SCOMO result to report (the executor uses
    /// its own code for activate/deactivate/remove failures).
    #[error("{reason}")]
    Failed {
        /// Result code.
        code: ResultCode,
        /// What happened, for the log.
        reason: String,
    },
    /// A crash point fired; stop without cleanup.
    #[error("interrupted")]
    Interrupted,
}

impl EnvError {
    /// A failure with a code and a reason.
    pub fn failed(code: ResultCode, reason: impl Into<String>) -> EnvError {
        EnvError::Failed {
            code,
            reason: reason.into(),
        }
    }
}

/// What to install.
pub struct StageRequest<'a> {
    /// The delivery package file.
    pub package: &'a Path,
    /// An empty directory of this operation: put component `id`'s files in
    /// `staging/<id>/` to have the executor move them to
    /// `<data-dir>/components/<id>/`.
    pub staging: &'a Path,
    /// PkgID.
    pub pkg_id: &'a str,
    /// The EnvType this environment was selected by.
    pub env_type: &'a str,
    /// InstallParams.
    pub install_params: Option<&'a str>,
    /// Whether `bytes` more fit on the data file system (keeping the
    /// reserve); check before writing anything and fail with 1406.
    pub room: &'a dyn Fn(u64) -> bool,
    /// Call after each file written (crash points); stop on error.
    pub checkpoint: &'a mut dyn FnMut() -> Result<(), EnvError>,
}

/// A component a package brings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagedComponent {
    /// ID (also its directory and Deployed node name).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Free text.
    pub description: Option<String>,
    /// Activation hook (archive).
    pub activate: Option<String>,
    /// Deactivation hook (archive).
    pub deactivate: Option<String>,
    /// `true`: its files are in `staging/<id>/` for the executor to move
    /// into place (replacing, with a backup, the previous version); `false`:
    /// the environment installed it itself.
    pub staged: bool,
}

/// An installed component, for activate/deactivate/remove.
#[derive(Clone, Copy, Debug)]
pub struct ComponentCtx<'a> {
    /// The inventory record.
    pub record: &'a ComponentRecord,
    /// `<data-dir>/components/<id>`.
    pub dir: &'a Path,
    /// Where directories go to be deleted.
    pub trash: &'a Path,
}

/// An execution environment.
pub trait ExecEnv: Send + Sync {
    /// Prepares (archive) or performs (command) the installation of a
    /// package's components, inactive. Must not touch installed components
    /// when it stages.
    fn stage(&self, req: &mut StageRequest<'_>) -> Result<Vec<StagedComponent>, EnvError>;
    /// Starts a component.
    fn activate(&self, c: &ComponentCtx<'_>) -> Result<(), EnvError>;
    /// Stops a component.
    fn deactivate(&self, c: &ComponentCtx<'_>) -> Result<(), EnvError>;
    /// Uninstalls a component (already stopped).
    fn remove(&self, c: &ComponentCtx<'_>) -> Result<(), EnvError>;
}

/// The environments by EnvType (lower case).
#[derive(Clone, Default)]
pub(crate) struct Envs {
    map: BTreeMap<String, Arc<dyn ExecEnv>>,
}

impl Envs {
    pub(crate) fn insert(&mut self, env_type: &str, env: Arc<dyn ExecEnv>) {
        self.map.insert(env_type.trim().to_ascii_lowercase(), env);
    }

    /// The environment for an EnvType (empty or absent: `archive`).
    pub(crate) fn get(&self, env_type: Option<&str>) -> Option<Arc<dyn ExecEnv>> {
        let key = env_type
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or(ARCHIVE)
            .to_ascii_lowercase();
        self.map.get(&key).cloned()
    }
}

/// The EnvType name an entry resolves to.
pub(crate) fn env_name(env_type: Option<&str>) -> String {
    env_type
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(ARCHIVE)
        .to_ascii_lowercase()
}

impl std::fmt::Debug for Envs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.map.keys()).finish()
    }
}

/// The environment variables every program run for a component gets.
pub(crate) fn component_env(c: &ComponentCtx<'_>) -> Vec<(&'static str, String)> {
    vec![
        ("SCOMO_COMPONENT_ID", c.record.id.clone()),
        ("SCOMO_COMPONENT_VERSION", c.record.version.clone()),
        ("SCOMO_COMPONENT_DIR", c.dir.display().to_string()),
        ("SCOMO_ENV_TYPE", c.record.env_type.clone()),
        (
            "SCOMO_INSTALL_PARAMS",
            c.record.install_params.clone().unwrap_or_default(),
        ),
    ]
}
