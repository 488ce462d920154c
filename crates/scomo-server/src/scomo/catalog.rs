//! Catalog rules: which package a device gets (`SCOMO.md` §5.4.1.2/3: the
//! server picks the component, possibly from the inventory it just read).
//!
//! A rule matches a device by `DevInfo/Man`, `DevInfo/Mod`,
//! `DevDetail/DevTyp` (each optional) and the package's EnvType. The device
//! needs the package when one of its components is missing (install-type
//! rules) or deployed at a lower version (every rule). A device gets each
//! package from the catalog at most once: a failed attempt is not retried
//! behind the operator's back.

use std::cmp::Ordering;

use tracing::{debug, info};

use super::engine::{create_job, JobRequest};
use super::plan::{compare_versions, find_entry, PackageInfo};
use crate::error::AppError;
use crate::state::AppState;
use crate::store::{
    CatalogRule, Device, InventoryEntry, InventoryKind, JobFilter, JobOp, JobOrigin,
};

fn matches(rule: &CatalogRule, d: &Device) -> bool {
    let eq = |want: &Option<String>, have: &Option<String>| match want {
        None => true,
        Some(w) => have.as_deref() == Some(w.as_str()),
    };
    rule.rule.enabled
        && eq(&rule.rule.man, &d.man)
        && eq(&rule.rule.model, &d.model)
        && eq(&rule.rule.dev_typ, &d.dev_typ)
}

/// Whether the device (by its inventory) needs the package under `op`.
pub(crate) fn needs(op: JobOp, p: &PackageInfo, entries: &[InventoryEntry]) -> bool {
    p.components.iter().any(
        |c| match find_entry(entries, InventoryKind::Deployed, &c.id) {
            None => op != JobOp::Update,
            Some(e) => e
                .version
                .as_deref()
                .is_some_and(|v| compare_versions(v, &c.version) == Ordering::Less),
        },
    )
}

/// Applies the rules to a device whose inventory is `entries`: creates the
/// jobs they select (in the current session, no package 0).
pub(crate) async fn apply(
    state: &AppState,
    device_id: &str,
    entries: &[InventoryEntry],
) -> Result<(), AppError> {
    let store = state.store();
    let rules = store.rules().await?;
    if rules.is_empty() {
        return Ok(());
    }
    let Some(device) = store.device(device_id).await? else {
        return Ok(());
    };
    for rule in rules.iter().filter(|r| matches(r, &device)) {
        let Some(p) = super::load_package(state, &rule.rule.pkg_id).await? else {
            debug!(rule = rule.id.0, "rule names a package that is gone");
            continue;
        };
        if rule
            .rule
            .env_type
            .as_ref()
            .is_some_and(|e| p.env_type.as_ref() != Some(e))
        {
            continue;
        }
        if !needs(rule.rule.op, &p, entries) {
            continue;
        }
        let filter = JobFilter {
            device_id: Some(device_id.to_owned()),
            pkg_id: Some(p.pkg_id.clone()),
            ..JobFilter::default()
        };
        if !store.list_jobs(&filter, None, 1).await?.is_empty() {
            continue;
        }
        let req = JobRequest {
            device_id: device_id.to_owned(),
            op: rule.rule.op,
            pkg_id: Some(p.pkg_id.clone()),
            component_id: None,
            delivery: Some(rule.rule.delivery),
            at: None,
            then: Vec::new(),
            timeout: None,
        };
        match create_job(state, req, JobOrigin::Catalog, false).await {
            Ok(job) => {
                info!(job = %job.id, rule = %rule.rule.name, package = %p.pkg_id, "catalog rule selected a package")
            }
            Err(AppError::Conflict(why)) => debug!("catalog job not created: {why}"),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
