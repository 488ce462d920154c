//! One virtual device: its compact state, and the management tree built
//! from it for a session (and read back after).
//!
//! A full `omadm_tree::Tree` per idle device would cost kilobytes; the
//! state kept per device is what the tree cannot rebuild: nonces, the
//! SCOMO entries and components, unacknowledged reports, counters. The
//! DevInfo/DevDetail/DMAcc/SCOMO skeleton is one template tree cloned per
//! session, and device values are written into the clone.

use std::sync::Arc;

use omadm::auth::Nonce;
use omadm::NonceState;
use omadm_tree::stdobj::{
    install_dev_detail, install_dev_info, install_dm_account, AppAddr, AppAuth, DevDetailConfig,
    DevInfoConfig, DmAccConfig,
};
use omadm_tree::{Acl, Format, Tree, TreeError};
use scomo::alert::OperationComplete;
use scomo::mo::{node, EntryKind, DEFAULT_ROOT, MO_ID};
use scomo::Primitive;

use crate::package::PkgInfo;

/// The SCOMO root every simulated device uses.
pub(crate) const ROOT: &str = DEFAULT_ROOT;
/// The DM account node name.
const ACCOUNT: &str = "scomo";

/// A Download or Delivered entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) kind: EntryKind,
    pub(crate) name: Box<str>,
    /// Server-written leaves below the entry (`PkgID`, `PkgURL`,
    /// `Ext/SHA256`, ...), relative path → value.
    pub(crate) leaves: Vec<(Box<str>, Box<str>)>,
    pub(crate) status: u16,
    /// Delivered only: 10 delivered, 20 installed.
    pub(crate) state: u16,
    /// Delivered only: the package, when its bytes arrived.
    pub(crate) package: Option<Arc<PkgInfo>>,
}

/// An installed component (`Inventory/Deployed/<id>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Component {
    pub(crate) id: Box<str>,
    pub(crate) name: Box<str>,
    pub(crate) version: Box<str>,
    pub(crate) pkg_id_ref: Option<Box<str>>,
    /// 10 inactive, 20 active.
    pub(crate) state: u16,
    pub(crate) status: u16,
}

/// A report waiting for the server's 200.
#[derive(Clone, Debug)]
pub(crate) struct Report {
    pub(crate) id: u64,
    pub(crate) report: OperationComplete,
}

/// What a session is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Want {
    /// Answer package 0 with this session id.
    Notified(u16),
    /// Client-initiated (registration, reports).
    Client,
}

/// The compact per-device state.
#[derive(Debug, Default)]
pub(crate) struct DeviceState {
    pub(crate) nonces: NonceState,
    pub(crate) previous_server_nonce: Option<Nonce>,
    /// Operations accepted so far: the k of the next one.
    pub(crate) ops: u32,
    /// Operations whose report the server acknowledged.
    pub(crate) reported: u32,
    pub(crate) entries: Vec<Entry>,
    pub(crate) components: Vec<Component>,
    pub(crate) outbox: Vec<Report>,
    /// Operations finished while a session had the tree: applied after it.
    pub(crate) deferred: Vec<crate::exec::Finished>,
    /// Entries an operation runs on (Exec on them is 409).
    pub(crate) busy: Vec<(EntryKind, Box<str>)>,
    /// A session task exists (queued or running).
    pub(crate) scheduled: bool,
    /// The session has built its tree from this state.
    pub(crate) in_session: bool,
    /// The next session to run once the current one ends.
    pub(crate) want: Option<Want>,
    pub(crate) last_notified: Option<u16>,
    /// Failed report sessions in a row (backoff).
    pub(crate) report_failures: u8,
    /// A report retry is already scheduled.
    pub(crate) retry_pending: bool,
    pub(crate) next_report_id: u64,
    /// The registration session completed.
    pub(crate) registered: bool,
}

/// The values of one device that go into its tree.
pub(crate) struct Identity<'a> {
    pub(crate) dev_id: &'a str,
    pub(crate) man: &'a str,
    pub(crate) model: &'a str,
    pub(crate) dev_typ: &'a str,
    pub(crate) username: &'a str,
    pub(crate) password: &'a str,
}

/// The template every session's tree is cloned from: the standard objects
/// with placeholder values and the SCOMO MO (schema and access rules of the
/// real agent, `scomo_agent::scomo_client::mo::schema`).
pub(crate) fn template(server_id: &str, server_url: &str) -> Result<Tree, TreeError> {
    let mut t = Tree::default();
    install_dev_info(
        &mut t,
        &DevInfoConfig {
            dev_id: "-".into(),
            man: "-".into(),
            model: "-".into(),
            dm_v: "1.2".into(),
            lang: "en-US".into(),
        },
    )?;
    install_dev_detail(
        &mut t,
        &DevDetailConfig {
            dev_typ: "-".into(),
            oem: "scomo-sim".into(),
            fw_v: "1.0".into(),
            sw_v: env!("CARGO_PKG_VERSION").into(),
            hw_v: "sim".into(),
            lrg_obj: true,
        },
    )?;
    install_dm_account(
        &mut t,
        &DmAccConfig {
            account: ACCOUNT.into(),
            server_id: server_id.into(),
            name: None,
            addrs: vec![AppAddr {
                name: "1".into(),
                addr: server_url.into(),
                addr_type: "URI".into(),
            }],
            aauth_pref: None,
            auths: vec![
                AppAuth {
                    name: "client".into(),
                    level: "CLCRED".into(),
                    auth_type: "DIGEST".into(),
                    auth_name: Some("-".into()),
                    secret: Some("-".into()),
                    data: None,
                },
                AppAuth {
                    name: "server".into(),
                    level: "SRVCRED".into(),
                    auth_type: "DIGEST".into(),
                    auth_name: Some(server_id.into()),
                    secret: Some("-".into()),
                    data: None,
                },
            ],
        },
    )?;
    t.register_schema(scomo_agent::scomo_client::mo::schema(ROOT))?;
    t.ensure_interior(ROOT)?;
    t.set_type(ROOT, MO_ID)?;
    let acl = Acl::parse("Add=*&Delete=*&Exec=*&Get=*&Replace=*")?;
    t.set_acl(ROOT, acl)?;
    for kind in [
        EntryKind::Download,
        EntryKind::Delivered,
        EntryKind::Deployed,
    ] {
        t.ensure_interior(kind.list_uri(ROOT))?;
    }
    Ok(t)
}

/// The tree of one device for one session.
pub(crate) fn build_tree(
    template: &Tree,
    id: &Identity<'_>,
    state: &DeviceState,
) -> Result<Tree, TreeError> {
    let mut t = template.clone();
    for (leaf, v) in [
        ("./DevInfo/DevId", id.dev_id),
        ("./DevInfo/Man", id.man),
        ("./DevInfo/Mod", id.model),
        ("./DevDetail/DevTyp", id.dev_typ),
    ] {
        t.set_leaf(leaf, v, Format::Chr)?;
    }
    let auth = format!("./DMAcc/{ACCOUNT}/AppAuth");
    t.set_leaf(format!("{auth}/client/AAuthName"), id.username, Format::Chr)?;
    t.set_leaf(
        format!("{auth}/client/AAuthSecret"),
        id.password,
        Format::Chr,
    )?;
    for e in &state.entries {
        write_entry(&mut t, e)?;
    }
    for c in &state.components {
        write_component(&mut t, c)?;
    }
    Ok(t)
}

fn write_entry(t: &mut Tree, e: &Entry) -> Result<(), TreeError> {
    let base = e.kind.entry_uri(ROOT, &e.name);
    t.ensure_interior(&base)?;
    for (k, v) in &e.leaves {
        t.set_leaf(format!("{base}/{k}"), &**v, Format::Chr)?;
    }
    t.set_leaf(
        format!("{base}/{}", node::STATUS),
        e.status.to_string(),
        Format::Int,
    )?;
    if e.kind == EntryKind::Delivered {
        t.set_leaf(
            format!("{base}/{}", node::STATE),
            e.state.to_string(),
            Format::Int,
        )?;
        t.set_leaf(format!("{base}/{}", node::DATA), Vec::new(), Format::Bin)?;
    }
    operations(t, &base, e.kind)
}

fn operations(t: &mut Tree, base: &str, kind: EntryKind) -> Result<(), TreeError> {
    for p in Primitive::of_kind(kind) {
        let path = format!("{base}/{}/{}", node::OPERATIONS, p.node_name());
        if !t.exists(&path) {
            t.set_leaf(path, Vec::new(), Format::Null)?;
        }
    }
    Ok(())
}

fn write_component(t: &mut Tree, c: &Component) -> Result<(), TreeError> {
    let base = EntryKind::Deployed.entry_uri(ROOT, &c.id);
    t.ensure_interior(&base)?;
    t.set_leaf(format!("{base}/{}", node::ID), &*c.id, Format::Chr)?;
    t.set_leaf(format!("{base}/{}", node::NAME), &*c.name, Format::Chr)?;
    t.set_leaf(
        format!("{base}/{}", node::VERSION),
        &*c.version,
        Format::Chr,
    )?;
    if let Some(p) = &c.pkg_id_ref {
        t.set_leaf(format!("{base}/{}", node::PKG_ID_REF), &**p, Format::Chr)?;
    }
    t.set_leaf(
        format!("{base}/{}", node::STATE),
        c.state.to_string(),
        Format::Int,
    )?;
    t.set_leaf(
        format!("{base}/{}", node::STATUS),
        c.status.to_string(),
        Format::Int,
    )?;
    operations(t, &base, EntryKind::Deployed)
}

/// Creates the device-owned nodes of an entry the server just added (the
/// hook's `after_change`).
pub(crate) fn init_entry(t: &mut Tree, kind: EntryKind, name: &str) -> Result<(), TreeError> {
    let base = kind.entry_uri(ROOT, name);
    let status = format!("{base}/{}", node::STATUS);
    if !t.exists(&status) {
        t.set_leaf(status, "10", Format::Int)?;
    }
    if kind == EntryKind::Delivered {
        let state = format!("{base}/{}", node::STATE);
        if !t.exists(&state) {
            t.set_leaf(state, "10", Format::Int)?;
        }
        let data = format!("{base}/{}", node::DATA);
        if !t.exists(&data) {
            t.set_leaf(data, Vec::new(), Format::Bin)?;
        }
    }
    operations(t, &base, kind)
}

/// Reads the Download and Delivered entries back after a session: the
/// server may have added, changed or deleted them. `packages` are the
/// packages pushed in this session (direct delivery), by entry name.
pub(crate) fn read_entries(
    t: &Tree,
    previous: &[Entry],
    packages: &[(String, Arc<PkgInfo>)],
) -> Vec<Entry> {
    let mut out = Vec::new();
    for kind in [EntryKind::Download, EntryKind::Delivered] {
        let list = kind.list_uri(ROOT);
        let names: Vec<String> = t
            .child_names(&list)
            .map(|v| v.into_iter().map(str::to_owned).collect())
            .unwrap_or_default();
        for name in names {
            let base = format!("{list}/{name}");
            let mut leaves = Vec::new();
            collect_leaves(t, &base, "", &mut leaves);
            let int = |leaf: &str, default: u16| {
                t.value_str(format!("{base}/{leaf}"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(default)
            };
            let package = packages
                .iter()
                .rev()
                .find(|(n, _)| *n == name)
                .map(|(_, p)| p.clone())
                .or_else(|| {
                    previous
                        .iter()
                        .find(|e| e.kind == kind && *e.name == *name)
                        .and_then(|e| e.package.clone())
                });
            out.push(Entry {
                kind,
                status: int(node::STATUS, 10),
                state: int(node::STATE, 10),
                name: name.into(),
                leaves,
                package,
            });
        }
    }
    out
}

/// The server-written leaves of the entry at `base`.
pub(crate) fn entry_leaves(t: &Tree, base: &str) -> Vec<(Box<str>, Box<str>)> {
    let mut out = Vec::new();
    collect_leaves(t, base, "", &mut out);
    out
}

/// The chr leaves below `base` but Status, State, Data and Operations.
fn collect_leaves(t: &Tree, base: &str, rel: &str, out: &mut Vec<(Box<str>, Box<str>)>) {
    let path = if rel.is_empty() {
        base.to_owned()
    } else {
        format!("{base}/{rel}")
    };
    let Some(children) = t.child_names(&path) else {
        return;
    };
    for c in children {
        if rel.is_empty() && [node::STATUS, node::STATE, node::DATA, node::OPERATIONS].contains(&c)
        {
            continue;
        }
        let r = if rel.is_empty() {
            c.to_owned()
        } else {
            format!("{rel}/{c}")
        };
        let p = format!("{base}/{r}");
        match t.node(&p) {
            Some(n) if n.is_interior() => collect_leaves(t, base, &r, out),
            Some(_) => {
                if let Some(v) = t.value_str(&p) {
                    out.push((r.into(), v.into()));
                }
            }
            None => {}
        }
    }
}
