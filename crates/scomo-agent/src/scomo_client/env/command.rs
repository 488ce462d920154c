//! The `command` environment: install, remove, activate and deactivate are
//! programs the integrator configures (`[[scomo.environments]]`, see
//! [`CommandEnvConfig`]). This is how dpkg, opkg, RAUC or a container
//! runtime plug in. The program owns atomicity of its own installs: when an
//! update fails, restoring the previous version is its job.

use std::time::Duration;

use scomo::manifest::check_id;
use scomo::ResultCode;

use super::{component_env, ComponentCtx, EnvError, ExecEnv, StageRequest, StagedComponent};
use crate::scomo_client::config::CommandEnvConfig;
use crate::scomo_client::process;

/// A configured program-backed environment.
#[derive(Clone, Debug)]
pub struct CommandEnv {
    cfg: CommandEnvConfig,
    timeout: Duration,
}

impl CommandEnv {
    /// The environment `cfg` describes; programs are limited to `timeout`.
    pub fn new(cfg: CommandEnvConfig, timeout: Duration) -> CommandEnv {
        CommandEnv { cfg, timeout }
    }

    fn run_for(
        &self,
        argv: &[String],
        c: &ComponentCtx<'_>,
        code: ResultCode,
    ) -> Result<(), EnvError> {
        if argv.is_empty() {
            return Ok(());
        }
        let done = process::run(argv, &component_env(c), None, self.timeout)
            .map_err(|e| EnvError::failed(code, e))?;
        if done.success {
            Ok(())
        } else {
            Err(EnvError::failed(
                code,
                format!(
                    "{} exited with {:?}",
                    argv.first().map(String::as_str).unwrap_or(""),
                    done.code
                ),
            ))
        }
    }
}

/// Parses the install program's output: one `ID VERSION [NAME...]` line
/// per component.
pub(crate) fn parse_components(stdout: &str) -> Result<Vec<StagedComponent>, String> {
    let mut out: Vec<StagedComponent> = Vec::new();
    for line in stdout.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let mut parts = line.split_whitespace();
        let (Some(id), Some(version)) = (parts.next(), parts.next()) else {
            return Err(format!(
                "install output line {line:?}: expected `ID VERSION [NAME]`"
            ));
        };
        check_id("component id", id).map_err(|e| e.to_string())?;
        if out.iter().any(|c| c.id == id) {
            return Err(format!("install output names component {id:?} twice"));
        }
        let name = parts.collect::<Vec<_>>().join(" ");
        out.push(StagedComponent {
            id: id.to_owned(),
            name: if name.is_empty() { id.to_owned() } else { name },
            version: version.to_owned(),
            description: None,
            activate: None,
            deactivate: None,
            staged: false,
        });
    }
    if out.is_empty() {
        return Err("the install program reported no component".into());
    }
    Ok(out)
}

impl ExecEnv for CommandEnv {
    fn stage(&self, req: &mut StageRequest<'_>) -> Result<Vec<StagedComponent>, EnvError> {
        let size = std::fs::metadata(req.package)
            .map(|m| m.len())
            .map_err(|e| EnvError::failed(ResultCode::INSTALL_FAILED, e.to_string()))?;
        if !(req.room)(size.saturating_add(self.cfg.install_space_bytes)) {
            return Err(EnvError::failed(
                ResultCode::INSTALL_OUT_OF_MEMORY,
                "not enough space to install",
            ));
        }
        let env = [
            ("SCOMO_PACKAGE", req.package.display().to_string()),
            ("SCOMO_PKG_ID", req.pkg_id.to_owned()),
            ("SCOMO_ENV_TYPE", req.env_type.to_owned()),
            (
                "SCOMO_INSTALL_PARAMS",
                req.install_params.unwrap_or_default().to_owned(),
            ),
            ("SCOMO_STAGING_DIR", req.staging.display().to_string()),
        ];
        let done = process::run(&self.cfg.install, &env, None, self.timeout)
            .map_err(|e| EnvError::failed(ResultCode::INSTALL_FAILED, e))?;
        if !done.success {
            return Err(EnvError::failed(
                ResultCode::INSTALL_FAILED,
                format!("install program exited with {:?}", done.code),
            ));
        }
        parse_components(&done.stdout).map_err(|e| EnvError::failed(ResultCode::INSTALL_FAILED, e))
    }

    fn activate(&self, c: &ComponentCtx<'_>) -> Result<(), EnvError> {
        self.run_for(&self.cfg.activate, c, ResultCode::ACTIVATE_FAILED)
    }

    fn deactivate(&self, c: &ComponentCtx<'_>) -> Result<(), EnvError> {
        self.run_for(&self.cfg.deactivate, c, ResultCode::DEACTIVATE_FAILED)
    }

    fn remove(&self, c: &ComponentCtx<'_>) -> Result<(), EnvError> {
        self.run_for(&self.cfg.remove, c, ResultCode::REMOVE_FAILED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_output() {
        let c = parse_components("pkg.a 1.2 The A\n\n pkg.b 3 \n").unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].id.as_str(), c[0].name.as_str()), ("pkg.a", "The A"));
        assert_eq!((c[1].name.as_str(), c[1].version.as_str()), ("pkg.b", "3"));
        assert!(!c[0].staged);
        assert!(parse_components("").is_err());
        assert!(parse_components("onlyid\n").is_err());
        assert!(parse_components("a/b 1\n").is_err());
        assert!(parse_components("a 1\na 2\n").is_err());
    }
}
