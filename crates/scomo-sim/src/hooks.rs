//! The tree hooks of a simulated device for one session: Exec of a SCOMO
//! primitive is checked and accepted (202) like the real agent does it,
//! and collected to run after the session; a pushed package (`Data` of a
//! Delivered entry, direct delivery) is read and dropped from the tree.

use std::sync::Arc;

use omadm_tree::{
    AlertReply, ChangeEvent, ChangeKind, ExecRequest, Format, ServerCtx, Tree, TreeHooks,
};
use omadm_wire::model::Alert;
use omadm_wire::StatusCode;
use scomo::mo::{node, EntryKind, PrimitiveTarget};
use scomo::Primitive;

use crate::device::{init_entry, Component, ROOT};
use crate::exec::Op;
use crate::package::{PackageCache, PkgInfo};

/// What one session's hooks see and collect.
pub(crate) struct SessionHooks<'a> {
    pub(crate) cache: &'a PackageCache,
    /// The k of the next accepted operation.
    pub(crate) next_k: u32,
    pub(crate) busy: Vec<(EntryKind, Box<str>)>,
    pub(crate) components: Vec<Component>,
    /// Packages of Delivered entries before the session.
    pub(crate) delivered: Vec<(Box<str>, Arc<PkgInfo>)>,
    /// Packages pushed in this session, by entry name.
    pub(crate) pushed: Vec<(String, Arc<PkgInfo>)>,
    /// Operations accepted, to start when the session ends.
    pub(crate) accepted: Vec<Op>,
}

impl SessionHooks<'_> {
    fn package_of(&self, entry: &str) -> Option<Arc<PkgInfo>> {
        self.pushed
            .iter()
            .rev()
            .find(|(n, _)| n == entry)
            .map(|(_, p)| p.clone())
            .or_else(|| {
                self.delivered
                    .iter()
                    .find(|(n, _)| &**n == entry)
                    .map(|(_, p)| p.clone())
            })
    }
}

impl TreeHooks for SessionHooks<'_> {
    fn exec(&mut self, tree: &mut Tree, req: &ExecRequest<'_>) -> StatusCode {
        let Some(target) = PrimitiveTarget::parse(ROOT, &req.path.to_string()) else {
            return StatusCode::COMMAND_NOT_ALLOWED;
        };
        let p = target.primitive;
        let kind = p.entry_kind();
        let entry: Box<str> = target.entry.as_str().into();
        if self.busy.iter().any(|(k, n)| *k == kind && *n == entry) {
            return StatusCode::CONFLICT;
        }
        let base = kind.entry_uri(ROOT, &entry);
        let leaves = if kind == EntryKind::Deployed {
            Vec::new()
        } else {
            crate::device::entry_leaves(tree, &base)
        };
        let leaf = |name: &str| {
            leaves
                .iter()
                .find(|(k, _)| &**k == name)
                .map(|(_, v)| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let mut package = None;
        match kind {
            EntryKind::Download if leaf(node::PKG_URL).is_none() => {
                return StatusCode::INCOMPLETE_COMMAND
            }
            EntryKind::Delivered if p != Primitive::RemoveDelivered => {
                package = self.package_of(&entry);
                if package.is_none() {
                    return StatusCode::INCOMPLETE_COMMAND;
                }
            }
            EntryKind::Deployed if !self.components.iter().any(|c| c.id == entry) => {
                return StatusCode::NOT_FOUND
            }
            _ => {}
        }
        let progress = crate::exec::progress_status(p);
        if kind != EntryKind::Deployed || self.components.iter().any(|c| c.id == entry) {
            let _ = tree.set_leaf(
                format!("{base}/{}", node::STATUS),
                progress.to_string(),
                Format::Int,
            );
        }
        let op = Op {
            primitive: p,
            k: self.next_k,
            correlator: req.correlator.map(str::to_owned),
            pkg_id: leaf(node::PKG_ID),
            pkg_url: leaf(node::PKG_URL),
            sha256: leaf(&format!("{}/SHA256", node::EXT)),
            leaves,
            package,
            entry: entry.clone(),
        };
        self.next_k += 1;
        self.busy.push((kind, entry));
        self.accepted.push(op);
        StatusCode::ACCEPTED
    }

    fn after_change(&mut self, tree: &mut Tree, event: &ChangeEvent) -> Result<(), StatusCode> {
        if event.kind != ChangeKind::Add {
            return Ok(());
        }
        if let Some((kind, name)) = new_entry(&event.path.to_string()) {
            init_entry(tree, kind, &name).map_err(|_| StatusCode::COMMAND_FAILED)?;
        }
        Ok(())
    }

    fn changed(&mut self, tree: &mut Tree, event: &ChangeEvent) {
        if !matches!(event.kind, ChangeKind::Add | ChangeKind::Replace) {
            return;
        }
        let path = event.path.to_string();
        let Some(name) = pushed_data(&path) else {
            return;
        };
        let Some(bytes) = tree.value(&path).filter(|b| !b.is_empty()) else {
            return;
        };
        match self.cache.get(bytes) {
            Ok(p) => self.pushed.push((name, p)),
            Err(why) => tracing::warn!(entry = %name, "pushed package unusable: {why}"),
        }
        // The bytes are not kept: the package info stands for them.
        let _ = tree.set_leaf(path, Vec::new(), Format::Bin);
    }

    fn alert(&mut self, _alert: &Alert, _ctx: &ServerCtx<'_>) -> AlertReply {
        // The simulated user accepts every prompt; declines are injected
        // per operation instead.
        AlertReply::new(StatusCode::OK)
    }
}

/// `./SCOMO/Download/<x>` or `./SCOMO/Inventory/Delivered/<x>` itself.
fn new_entry(path: &str) -> Option<(EntryKind, String)> {
    for kind in [EntryKind::Download, EntryKind::Delivered] {
        let list = kind.list_uri(ROOT);
        let rest = scomo::mo::strip_dot(path).strip_prefix(scomo::mo::strip_dot(&list));
        if let Some(name) = rest.and_then(|r| r.strip_prefix('/')) {
            if !name.is_empty() && !name.contains('/') {
                return Some((kind, name.to_owned()));
            }
        }
    }
    None
}

/// The entry whose `Data` `path` is.
fn pushed_data(path: &str) -> Option<String> {
    let list = EntryKind::Delivered.list_uri(ROOT);
    let rest = scomo::mo::strip_dot(path)
        .strip_prefix(scomo::mo::strip_dot(&list))?
        .strip_prefix('/')?;
    let (name, leaf) = rest.split_once('/')?;
    (leaf == node::DATA && !name.is_empty()).then(|| name.to_owned())
}

/// Answers UI alerts outside the SCOMO subtree.
pub(crate) struct Ui;

impl TreeHooks for Ui {
    fn alert(&mut self, _alert: &Alert, _ctx: &ServerCtx<'_>) -> AlertReply {
        AlertReply::new(StatusCode::OK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            new_entry("./SCOMO/Download/j1"),
            Some((EntryKind::Download, "j1".into()))
        );
        assert_eq!(new_entry("./SCOMO/Download/j1/PkgURL"), None);
        assert_eq!(
            new_entry("./SCOMO/Inventory/Delivered/p"),
            Some((EntryKind::Delivered, "p".into()))
        );
        assert_eq!(
            pushed_data("./SCOMO/Inventory/Delivered/p/Data"),
            Some("p".into())
        );
        assert_eq!(pushed_data("./SCOMO/Inventory/Delivered/p/Name"), None);
    }
}
