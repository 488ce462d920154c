//! The user-interaction hook: before an operation does anything, the
//! configured policy (or program) may decline it, which is reported as
//! 1401 (`SCOMO.md` §5).

use std::time::Duration;

use super::config::{primitive_name, ConfirmPolicy, ScomoConfig};
use super::journal::OpRecord;
use super::process;

/// Whether the operation may go ahead; `Err` says why not (for the log).
pub(crate) fn confirm(cfg: &ScomoConfig, rec: &OpRecord) -> Result<(), String> {
    match cfg.confirm_policy(rec.primitive) {
        ConfirmPolicy::Accept => Ok(()),
        ConfirmPolicy::Decline => Err("declined by policy".into()),
        ConfirmPolicy::Command => {
            let env = [
                ("SCOMO_PRIMITIVE", primitive_name(rec.primitive).to_owned()),
                ("SCOMO_ENTRY", rec.entry.clone()),
                ("SCOMO_PKG_ID", rec.leaves.pkg_id.clone()),
                (
                    "SCOMO_NAME",
                    rec.leaves.name.clone().unwrap_or_else(|| rec.entry.clone()),
                ),
                (
                    "SCOMO_DESCRIPTION",
                    rec.leaves.description.clone().unwrap_or_default(),
                ),
            ];
            let done = process::run(
                &cfg.confirm.command,
                &env,
                None,
                Duration::from_secs(cfg.confirm.timeout_secs),
            )?;
            if done.success {
                Ok(())
            } else {
                Err(format!("declined by the user ({:?})", done.code))
            }
        }
    }
}
