//! What a job will do, and the DM commands each step sends (`SCOMO.md` §5,
//! §6): pure functions, no I/O.

use omadm_wire::model::{Command, Data, Exec, Item, ItemCommand, Location, Meta};
use scomo::mo::{node, EntryKind, Primitive};
use serde::{Deserialize, Serialize};

use crate::store::{Delivery, InventoryEntry, InventoryKind, JobOp};

/// The prefix of a Data value that stands for a package's bytes: resolved
/// from the package file when the batch is sent, so queued batches never
/// hold packages.
pub(crate) const PACKAGE_REF: &str = "scomo-package-ref:";

/// What a job knows of its package (a snapshot taken when it was made).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PackageInfo {
    pub(crate) pkg_id: String,
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) env_type: Option<String>,
    pub(crate) pkg_type: String,
    pub(crate) size: u64,
    pub(crate) sha256: String,
    pub(crate) signature: Option<String>,
    pub(crate) components: Vec<ComponentInfo>,
}

/// One component a package installs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ComponentInfo {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) version: String,
}

/// One step of a job: an operation, optionally not before `at`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Step {
    pub(crate) op: String,
    /// Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) at: Option<i64>,
}

impl Step {
    pub(crate) fn op(&self) -> Option<JobOp> {
        JobOp::parse(&self.op)
    }
}

/// Where a step is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Phase {
    /// Not started.
    #[default]
    Start,
    /// Reading the inventory to find the entry to work on.
    Resolve,
    /// The delivery and Exec batch is out.
    Exec,
    /// The Exec was accepted (202); waiting for the alert.
    Await,
    /// Reading the inventory back to check the result.
    Verify,
}

/// The job's plan and progress, stored as JSON in the job row.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct JobPlan {
    pub(crate) steps: Vec<Step>,
    pub(crate) step: usize,
    pub(crate) phase: Phase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) package: Option<PackageInfo>,
    /// The `<x>` node the current step works on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) entry: Option<String>,
    /// The correlator of the current step's Exec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) correlator: Option<String>,
    /// The download token of the current step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) download_token: Option<String>,
    /// The result code the device reported for the current step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reported: Option<u16>,
    /// Per-step timeout asked for with the job (else the configured one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) timeout_secs: Option<u64>,
}

impl JobPlan {
    pub(crate) fn to_json(&self) -> String {
        // A plain struct of strings and numbers: serialization cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub(crate) fn from_json(s: &str) -> Result<JobPlan, String> {
        serde_json::from_str(s).map_err(|e| format!("unreadable job plan: {e}"))
    }

    pub(crate) fn current(&self) -> Option<&Step> {
        self.steps.get(self.step)
    }
}

/// The correlator of step `step` of job `job`: the alert carries it back.
pub(crate) fn correlator(job: i64, step: usize) -> String {
    format!("scomo-job-{job}-{step}")
}

/// The job id a correlator of ours names.
pub(crate) fn job_of_correlator(c: &str) -> Option<(i64, usize)> {
    let rest = c.strip_prefix("scomo-job-")?;
    let (job, step) = rest.split_once('-')?;
    Some((job.parse().ok()?, step.parse().ok()?))
}

/// The node name a job's new Download or Delivered entry gets.
pub(crate) fn entry_name(job: i64, step: usize) -> String {
    if step == 0 {
        format!("j{job}")
    } else {
        format!("j{job}s{step}")
    }
}

/// The primitive a download-type operation runs on `Download/<x>`.
pub(crate) fn download_primitive(op: JobOp) -> Option<Primitive> {
    match op {
        JobOp::Download => Some(Primitive::Download),
        JobOp::DownloadInstall | JobOp::Update => Some(Primitive::DownloadInstall),
        JobOp::DownloadInstallInactive => Some(Primitive::DownloadInstallInactive),
        _ => None,
    }
}

/// Whether the operation brings a package to the device.
pub(crate) fn delivers(op: JobOp) -> bool {
    download_primitive(op).is_some()
}

/// The primitive that installs a directly delivered package for `op`
/// (`None`: deliver only).
fn direct_install_primitive(op: JobOp) -> Option<Primitive> {
    match op {
        JobOp::DownloadInstall | JobOp::Update => Some(Primitive::Install),
        JobOp::DownloadInstallInactive => Some(Primitive::InstallInactive),
        _ => None,
    }
}

fn leaf(uri: String, value: &str) -> Command {
    Command::Add(ItemCommand {
        items: vec![Item {
            target: Some(Location::uri(uri)),
            meta: Some(Meta {
                format: Some("chr".into()),
                ..Meta::default()
            }),
            data: Some(Data::Text(value.to_owned())),
            ..Item::default()
        }],
        ..ItemCommand::default()
    })
}

fn interior(uri: String) -> Command {
    Command::Add(ItemCommand {
        items: vec![Item {
            target: Some(Location::uri(uri)),
            meta: Some(Meta {
                format: Some("node".into()),
                ..Meta::default()
            }),
            ..Item::default()
        }],
        ..ItemCommand::default()
    })
}

/// `Exec <uri>` with a correlator.
pub(crate) fn exec(uri: String, correlator: String) -> Command {
    Command::Exec(Exec {
        correlator: Some(correlator),
        items: vec![Item {
            target: Some(Location::uri(uri)),
            ..Item::default()
        }],
        ..Exec::default()
    })
}

/// `Delete <uri>`.
pub(crate) fn delete(uri: String) -> Command {
    Command::Delete(ItemCommand {
        items: vec![Item {
            target: Some(Location::uri(uri)),
            ..Item::default()
        }],
        ..ItemCommand::default()
    })
}

/// The entry leaves every delivery writes: PkgID, Name, EnvType, PkgType
/// and the validation extensions (`Ext/SHA256`, `Ext/Signature`).
fn entry_leaves(base: &str, p: &PackageInfo, out: &mut Vec<Command>) {
    out.push(leaf(format!("{base}/{}", node::PKG_ID), &p.pkg_id));
    if !p.name.is_empty() {
        out.push(leaf(format!("{base}/{}", node::NAME), &p.name));
    }
    if let Some(e) = &p.env_type {
        out.push(leaf(format!("{base}/{}", node::ENV_TYPE), e));
    }
    out.push(leaf(format!("{base}/{}", node::PKG_TYPE), &p.pkg_type));
    out.push(interior(format!("{base}/{}", node::EXT)));
    out.push(leaf(format!("{base}/{}/SHA256", node::EXT), &p.sha256));
    if let Some(s) = &p.signature {
        out.push(leaf(format!("{base}/{}/Signature", node::EXT), s));
    }
}

/// Indirect delivery (`SCOMO.md` §6.2): create `Download/<entry>` with its
/// leaves and `PkgURL`, then Exec the primitive.
pub(crate) fn indirect_batch(
    root: &str,
    entry: &str,
    p: &PackageInfo,
    pkg_url: &str,
    primitive: Primitive,
    correlator: String,
) -> Vec<Command> {
    let base = EntryKind::Download.entry_uri(root, entry);
    let mut out = vec![interior(base.clone())];
    entry_leaves(&base, p, &mut out);
    out.push(leaf(format!("{base}/{}", node::PKG_URL), pkg_url));
    out.push(exec(primitive.uri(root, entry), correlator));
    out
}

/// Direct delivery (`SCOMO.md` §6.1): create `Inventory/Delivered/<entry>`,
/// Replace its Data with the package (a Large Object when it does not fit a
/// message), then Exec Install/InstallInactive when `op` installs.
pub(crate) fn direct_batch(
    root: &str,
    entry: &str,
    p: &PackageInfo,
    op: JobOp,
    correlator: String,
) -> Vec<Command> {
    let base = EntryKind::Delivered.entry_uri(root, entry);
    let mut out = vec![interior(base.clone())];
    entry_leaves(&base, p, &mut out);
    out.push(Command::Replace(ItemCommand {
        items: vec![Item {
            target: Some(Location::uri(format!("{base}/{}", node::DATA))),
            meta: Some(Meta {
                format: Some("bin".into()),
                r#type: Some(p.pkg_type.clone()),
                ..Meta::default()
            }),
            data: Some(Data::Text(format!("{PACKAGE_REF}{}", p.sha256))),
            ..Item::default()
        }],
        ..ItemCommand::default()
    }));
    if let Some(prim) = direct_install_primitive(op) {
        out.push(exec(prim.uri(root, entry), correlator));
    }
    out
}

/// The Exec target of an operation on an entry the device already has.
pub(crate) fn existing_primitive(op: JobOp, on_component: bool) -> Option<Primitive> {
    match op {
        JobOp::Install => Some(Primitive::Install),
        JobOp::InstallInactive => Some(Primitive::InstallInactive),
        JobOp::Remove if on_component => Some(Primitive::RemoveDeployed),
        JobOp::Remove => Some(Primitive::RemoveDelivered),
        JobOp::Activate => Some(Primitive::Activate),
        JobOp::Deactivate => Some(Primitive::Deactivate),
        _ => None,
    }
}

/// The inventory entry an operation on an existing entry works on.
pub(crate) fn find_entry<'a>(
    entries: &'a [InventoryEntry],
    kind: InventoryKind,
    item_id: &str,
) -> Option<&'a InventoryEntry> {
    entries
        .iter()
        .find(|e| e.kind == Some(kind) && e.item_id.as_deref() == Some(item_id))
}

/// What the inventory must show after `op` succeeded; `Err` says what it
/// shows instead.
pub(crate) fn check_expected(
    op: JobOp,
    package: Option<&PackageInfo>,
    component: Option<&str>,
    entries: &[InventoryEntry],
) -> Result<(), String> {
    let deployed = |id: &str| find_entry(entries, InventoryKind::Deployed, id);
    let want_state = |id: &str, version: Option<&str>, state: u16| -> Result<(), String> {
        let Some(e) = deployed(id) else {
            return Err(format!("component {id:?} is not deployed"));
        };
        if let Some(v) = version {
            if e.version.as_deref() != Some(v) {
                return Err(format!(
                    "component {id:?} is at version {:?}, expected {v:?}",
                    e.version.as_deref().unwrap_or("?")
                ));
            }
        }
        if e.state != Some(state) {
            return Err(format!(
                "component {id:?} is in state {}, expected {}",
                e.state.map_or("?".into(), |s| s.to_string()),
                state
            ));
        }
        Ok(())
    };
    match op {
        JobOp::Download => {
            let p = package.ok_or("the job has no package")?;
            find_entry(entries, InventoryKind::Delivered, &p.pkg_id)
                .map(|_| ())
                .ok_or_else(|| format!("package {:?} is not in Inventory/Delivered", p.pkg_id))
        }
        JobOp::DownloadInstall
        | JobOp::Update
        | JobOp::Install
        | JobOp::DownloadInstallInactive
        | JobOp::InstallInactive => {
            let p = package.ok_or("the job has no package")?;
            let state = match op {
                JobOp::DownloadInstallInactive | JobOp::InstallInactive => 10,
                _ => 20,
            };
            for c in &p.components {
                want_state(&c.id, Some(&c.version), state)?;
            }
            Ok(())
        }
        JobOp::Remove => match (component, package) {
            (Some(c), _) => match deployed(c) {
                None => Ok(()),
                Some(_) => Err(format!("component {c:?} is still deployed")),
            },
            (None, Some(p)) => match find_entry(entries, InventoryKind::Delivered, &p.pkg_id) {
                None => Ok(()),
                Some(_) => Err(format!("package {:?} is still delivered", p.pkg_id)),
            },
            (None, None) => Err("the job names neither a component nor a package".into()),
        },
        JobOp::Activate | JobOp::Deactivate => {
            let c = component.ok_or("the job names no component")?;
            want_state(c, None, if op == JobOp::Activate { 20 } else { 10 })
        }
    }
}

/// Whether `delivery` fits `op`.
pub(crate) fn delivery_fits(op: JobOp, delivery: Delivery) -> bool {
    if delivers(op) {
        delivery != Delivery::None
    } else {
        delivery == Delivery::None
    }
}

/// Orders version strings: dot-separated parts compared as numbers when both
/// are numeric, as text otherwise (`1.10` > `1.9`, `2.0-rc1` < `2.0.1`).
pub(crate) fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let mut pa = a.split(['.', '-', '+']);
    let mut pb = b.split(['.', '-', '+']);
    loop {
        match (pa.next(), pb.next()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => {
                let o = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(m), Ok(n)) => m.cmp(&n),
                    _ => x.cmp(y),
                };
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    fn pkg() -> PackageInfo {
        PackageInfo {
            pkg_id: "hello-1.1".into(),
            name: "hello".into(),
            version: "1.1".into(),
            env_type: Some("archive".into()),
            pkg_type: "application/gzip".into(),
            size: 10,
            sha256: "ab".repeat(32),
            signature: None,
            components: vec![ComponentInfo {
                id: "hello".into(),
                name: "Hello".into(),
                version: "1.1".into(),
            }],
        }
    }

    fn deployed(id: &str, version: &str, state: u16) -> InventoryEntry {
        InventoryEntry {
            kind: Some(InventoryKind::Deployed),
            entry: id.into(),
            item_id: Some(id.into()),
            version: Some(version.into()),
            state: Some(state),
            ..InventoryEntry::default()
        }
    }

    #[test]
    fn correlators_round_trip() {
        assert_eq!(job_of_correlator(&correlator(42, 1)), Some((42, 1)));
        assert_eq!(job_of_correlator("other"), None);
        assert_eq!(job_of_correlator("scomo-job-x-1"), None);
    }

    #[test]
    fn indirect_batch_ends_with_the_exec() {
        let cmds = indirect_batch(
            "./SCOMO",
            "j1",
            &pkg(),
            "http://h/dl/t",
            Primitive::DownloadInstall,
            correlator(1, 0),
        );
        let Some(Command::Exec(e)) = cmds.last() else {
            panic!("no exec")
        };
        assert_eq!(e.correlator.as_deref(), Some("scomo-job-1-0"));
        assert_eq!(
            e.items[0].target.as_ref().map(|l| l.loc_uri.as_str()),
            Some("./SCOMO/Download/j1/Operations/DownloadInstall")
        );
        assert!(cmds.iter().any(|c| matches!(c, Command::Add(a)
            if a.items[0].target.as_ref().is_some_and(|t| t.loc_uri == "./SCOMO/Download/j1/PkgURL"))));
    }

    #[test]
    fn direct_download_has_no_exec() {
        let cmds = direct_batch("./SCOMO", "j1", &pkg(), JobOp::Download, correlator(1, 0));
        assert!(!cmds.iter().any(|c| matches!(c, Command::Exec(_))));
        let cmds = direct_batch("./SCOMO", "j1", &pkg(), JobOp::Update, correlator(1, 0));
        assert!(matches!(cmds.last(), Some(Command::Exec(_))));
    }

    #[test]
    fn expectations() {
        let p = pkg();
        let ok = [deployed("hello", "1.1", 20)];
        assert!(check_expected(JobOp::DownloadInstall, Some(&p), None, &ok).is_ok());
        let old = [deployed("hello", "1.0", 20)];
        let e = check_expected(JobOp::Update, Some(&p), None, &old).unwrap_err();
        assert!(e.contains("version \"1.0\""), "{e}");
        assert!(check_expected(JobOp::DownloadInstallInactive, Some(&p), None, &ok).is_err());
        assert!(check_expected(JobOp::Activate, None, Some("hello"), &ok).is_ok());
        assert!(check_expected(JobOp::Deactivate, None, Some("hello"), &ok).is_err());
        assert!(check_expected(JobOp::Remove, None, Some("hello"), &[]).is_ok());
        assert!(check_expected(JobOp::Remove, None, Some("hello"), &ok).is_err());
        assert!(check_expected(JobOp::Download, Some(&p), None, &ok).is_err());
    }

    #[test]
    fn versions_order() {
        assert_eq!(compare_versions("1.10", "1.9"), Ordering::Greater);
        assert_eq!(compare_versions("1.0", "1.0"), Ordering::Equal);
        assert_eq!(compare_versions("1.0", "1.0.1"), Ordering::Less);
        assert_eq!(compare_versions("2.0", "10.0"), Ordering::Less);
    }
}
