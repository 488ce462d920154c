//! The built-in `archive` environment: tar.gz, tar or zip packages with a
//! `scomo-package.toml` manifest (see [`scomo::manifest`]). Each component
//! lands in `<data-dir>/components/<id>/`; activation and deactivation run
//! the component's hooks (relative to its directory, which must contain
//! them) with the component directory as working directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use scomo::ResultCode;

use super::ARCHIVE;
use super::{component_env, ComponentCtx, EnvError, ExecEnv, StageRequest, StagedComponent};
use crate::scomo_client::package::{self, Limits, PackageError};
use crate::scomo_client::process;
use crate::scomo_client::store::remove_dir_atomically;

/// The `archive` environment.
#[derive(Clone, Debug)]
pub struct ArchiveEnv {
    limits: Limits,
    hook_timeout: Duration,
}

impl ArchiveEnv {
    /// An archive environment extracting at most `max_bytes` in at most
    /// `max_entries` entries per package, hooks limited to `hook_timeout`.
    pub fn new(max_bytes: u64, max_entries: u64, hook_timeout: Duration) -> ArchiveEnv {
        ArchiveEnv {
            limits: Limits {
                max_bytes,
                max_entries,
            },
            hook_timeout,
        }
    }

    fn run_hook(
        &self,
        c: &ComponentCtx<'_>,
        hook: Option<&str>,
        what: &str,
    ) -> Result<(), EnvError> {
        let Some(hook) = hook.filter(|h| !h.trim().is_empty()) else {
            return Ok(());
        };
        let path = hook_path(c.dir, hook).map_err(|reason| {
            EnvError::failed(
                ResultCode::UNDEFINED_ERROR,
                format!("{what} hook {hook:?}: {reason}"),
            )
        })?;
        let argv = vec![path.display().to_string()];
        let done = process::run(&argv, &component_env(c), Some(c.dir), self.hook_timeout)
            .map_err(|e| EnvError::failed(ResultCode::UNDEFINED_ERROR, e))?;
        if done.success {
            Ok(())
        } else {
            Err(EnvError::failed(
                ResultCode::UNDEFINED_ERROR,
                format!("{what} hook of {} exited with {:?}", c.record.id, done.code),
            ))
        }
    }
}

/// The hook's real path, which must be a file inside the component
/// directory (after resolving symlinks).
fn hook_path(dir: &Path, hook: &str) -> Result<PathBuf, &'static str> {
    let root = dir
        .canonicalize()
        .map_err(|_| "the component directory is missing")?;
    let path = root
        .join(hook)
        .canonicalize()
        .map_err(|_| "no such file in the component")?;
    if !path.starts_with(&root) || path == root {
        return Err("points outside the component directory");
    }
    if !path.is_file() {
        return Err("is not a file");
    }
    Ok(path)
}

fn package_error(e: PackageError) -> EnvError {
    match e {
        PackageError::Halted => EnvError::Interrupted,
        e => EnvError::failed(e.result_code(), e.to_string()),
    }
}

impl ExecEnv for ArchiveEnv {
    fn stage(&self, req: &mut StageRequest<'_>) -> Result<Vec<StagedComponent>, EnvError> {
        let insp = package::inspect(req.package, self.limits).map_err(package_error)?;
        let env = &insp.manifest.package.env_type;
        if !env.eq_ignore_ascii_case(ARCHIVE) {
            return Err(package_error(PackageError::EnvType(env.clone())));
        }
        if !(req.room)(insp.space_needed) {
            return Err(EnvError::failed(
                ResultCode::INSTALL_OUT_OF_MEMORY,
                format!("{} bytes needed, not available", insp.space_needed),
            ));
        }
        let checkpoint = &mut *req.checkpoint;
        package::extract(req.package, &insp, req.staging, &mut || {
            checkpoint().map_err(|_| PackageError::Halted)
        })
        .map_err(package_error)?;
        Ok(insp
            .manifest
            .components
            .iter()
            .map(|c| StagedComponent {
                id: c.id.clone(),
                name: c.name.clone(),
                version: c.version.clone(),
                description: c.description.clone(),
                activate: c.activate.clone(),
                deactivate: c.deactivate.clone(),
                staged: true,
            })
            .collect())
    }

    fn activate(&self, c: &ComponentCtx<'_>) -> Result<(), EnvError> {
        self.run_hook(c, c.record.activate.as_deref(), "activate")
    }

    fn deactivate(&self, c: &ComponentCtx<'_>) -> Result<(), EnvError> {
        self.run_hook(c, c.record.deactivate.as_deref(), "deactivate")
    }

    fn remove(&self, c: &ComponentCtx<'_>) -> Result<(), EnvError> {
        remove_dir_atomically(c.dir, c.trash)
            .map_err(|e| EnvError::failed(ResultCode::REMOVE_FAILED, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn hooks_must_stay_inside() {
        let dir = tempfile::tempdir().unwrap();
        let comp = dir.path().join("c");
        fs::create_dir_all(comp.join("bin")).unwrap();
        fs::write(comp.join("bin/on"), "#!/bin/sh\nexit 0\n").unwrap();
        fs::set_permissions(comp.join("bin/on"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(dir.path().join("outside"), "#!/bin/sh\n").unwrap();
        std::os::unix::fs::symlink("../outside", comp.join("bin/out")).unwrap();
        assert!(hook_path(&comp, "bin/on").is_ok());
        assert!(hook_path(&comp, "bin/out").is_err());
        assert!(hook_path(&comp, "../outside").is_err());
        assert!(hook_path(&comp, "bin").is_err());
        assert!(hook_path(&comp, "nope").is_err());
    }
}
