//! How management objects (SCOMO, FUMO, ...) plug into the tree.
//!
//! The tree stores values and enforces ACLs and AccessTypes; everything an
//! MO *does* happens in a [`TreeHooks`] implementation the caller passes to
//! [`Tree::apply`](crate::Tree::apply). The hooks object is separate from the
//! tree, so each hook can be handed the tree (`&Tree` or `&mut Tree`):
//!
//! ```text
//!  Tree::apply(cmd, ctx, hooks)
//!    ├─ Add/Replace/Delete/rename/ACL/Title of a node
//!    │     ├─ before ──────────▶ hooks.check_change(&Tree, &Change) -> Ok | Err(status)   (veto)
//!    │     ├─ right after ─────▶ hooks.after_change(&mut Tree, &ChangeEvent) -> Ok | Err(status)
//!    │     │                     (follow-up tree edits; undone with the command / Atomic)
//!    │     └─ once committed ──▶ hooks.changed(&mut Tree, &ChangeEvent)   (side effects)
//!    ├─ Exec on a node ───────▶ hooks.exec(&mut Tree, &ExecRequest) -> status
//!    └─ Alert ────────────────▶ hooks.alert(&Alert, ctx) -> AlertReply
//! ```
//!
//! [`HookRouter`] sends each call to the hooks registered for the deepest
//! enclosing subtree, so several MOs can share one tree.

use omadm_wire::model::{Alert, Data, Item, Meta};
use omadm_wire::StatusCode;

use crate::apply::ServerCtx;
use crate::error::TreeError;
use crate::format::Format;
use crate::tree::Tree;
use crate::uri::{Property, Uri};

/// Callbacks from the tree into management-object logic. Every method has a
/// default, so an implementation overrides only what it needs.
pub trait TreeHooks {
    /// Exec on `req.path` (ACL and AccessType already checked). Returns the
    /// Exec's status: 200 when done synchronously, 202 when accepted and to
    /// be reported later by a Generic Alert carrying `req.correlator`, or an
    /// error. The default refuses with 405 (no handler for this node).
    fn exec(&mut self, tree: &mut Tree, req: &ExecRequest<'_>) -> StatusCode {
        let _ = (tree, req);
        StatusCode::COMMAND_NOT_ALLOWED
    }

    /// Called before a server-initiated change is applied, with the tree as
    /// it is before the change (for a TNDS Add, the nodes of the document
    /// added so far are already in place). `Err(status)` rejects the change:
    /// the command fails with that status and the tree is left unchanged.
    fn check_change(&mut self, tree: &Tree, change: &Change<'_>) -> Result<(), StatusCode> {
        let _ = (tree, change);
        Ok(())
    }

    /// Called right after a server-initiated change is made, before the
    /// command's Status is decided. The hook may edit the tree through the
    /// device-side API (e.g. SCOMO creates `Status`, `State`, `Data` and
    /// `Operations` under a new `Delivered/<x>`, so that a later `Replace`
    /// of `Data` in the same Atomic finds it); those edits are undone with
    /// the change if the command or its Atomic fails. `Err(status)` fails
    /// the command with that status and undoes the change. Do nothing here
    /// that cannot be undone (no I/O): use [`TreeHooks::changed`] for that.
    fn after_change(&mut self, tree: &mut Tree, event: &ChangeEvent) -> Result<(), StatusCode> {
        let _ = (tree, event);
        Ok(())
    }

    /// Called after a server-initiated change is committed: right after the
    /// command, or once the enclosing Atomic has succeeded (never for a
    /// rolled-back change). The hook may update the tree (e.g. create the
    /// `Operations` children of a new SCOMO entry).
    fn changed(&mut self, tree: &mut Tree, event: &ChangeEvent) {
        let _ = (tree, event);
    }

    /// An Alert the server sent (usually a UI alert, 1100–1104). The
    /// default answers 406 (no UI). Inside a Sequence, any reply other than
    /// 200/202 skips the rest of the Sequence (215); inside an Atomic it
    /// fails the Atomic. The session engine, which owns the UI, implements
    /// this (and may also override the returned status).
    fn alert(&mut self, alert: &Alert, ctx: &ServerCtx<'_>) -> AlertReply {
        let _ = (alert, ctx);
        AlertReply::new(StatusCode::OPTIONAL_FEATURE_NOT_SUPPORTED)
    }
}

/// Hooks that do nothing: every Exec is 405, every Alert 406, every change
/// accepted.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHooks;

impl TreeHooks for NoHooks {}

impl<T: TreeHooks + ?Sized> TreeHooks for &mut T {
    fn exec(&mut self, tree: &mut Tree, req: &ExecRequest<'_>) -> StatusCode {
        (**self).exec(tree, req)
    }

    fn check_change(&mut self, tree: &Tree, change: &Change<'_>) -> Result<(), StatusCode> {
        (**self).check_change(tree, change)
    }

    fn after_change(&mut self, tree: &mut Tree, event: &ChangeEvent) -> Result<(), StatusCode> {
        (**self).after_change(tree, event)
    }

    fn changed(&mut self, tree: &mut Tree, event: &ChangeEvent) {
        (**self).changed(tree, event);
    }

    fn alert(&mut self, alert: &Alert, ctx: &ServerCtx<'_>) -> AlertReply {
        (**self).alert(alert, ctx)
    }
}

impl<T: TreeHooks + ?Sized> TreeHooks for Box<T> {
    fn exec(&mut self, tree: &mut Tree, req: &ExecRequest<'_>) -> StatusCode {
        (**self).exec(tree, req)
    }

    fn check_change(&mut self, tree: &Tree, change: &Change<'_>) -> Result<(), StatusCode> {
        (**self).check_change(tree, change)
    }

    fn after_change(&mut self, tree: &mut Tree, event: &ChangeEvent) -> Result<(), StatusCode> {
        (**self).after_change(tree, event)
    }

    fn changed(&mut self, tree: &mut Tree, event: &ChangeEvent) {
        (**self).changed(tree, event);
    }

    fn alert(&mut self, alert: &Alert, ctx: &ServerCtx<'_>) -> AlertReply {
        (**self).alert(alert, ctx)
    }
}

/// An Exec to carry out.
#[derive(Clone, Copy, Debug)]
pub struct ExecRequest<'a> {
    /// The executed node.
    pub path: &'a Uri,
    /// The Item's `Data` (the argument; SCOMO 1.0 ignores it).
    pub data: Option<&'a Data>,
    /// The Item's Meta (merged with the command's).
    pub meta: Option<&'a Meta>,
    /// The Exec's `Correlator`, to echo in the Generic Alert that reports an
    /// asynchronous result.
    pub correlator: Option<&'a str>,
    /// The authenticated server.
    pub server_id: &'a str,
    /// The Exec's CmdID and the MsgID that carried it.
    pub cmd_id: u32,
    /// The MsgID of the message that carried the Exec.
    pub msg_ref: u32,
}

/// What a server change does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// A node is created (explicitly, implicitly as an ancestor, by TNDS, or
    /// as a Copy target).
    Add,
    /// A leaf value is replaced (Replace or Copy onto an existing leaf).
    Replace,
    /// A node and its sub-tree are deleted.
    Delete,
    /// The node is renamed (Replace `?prop=Name`) to this name.
    Rename(String),
    /// A property (ACL or Title) is replaced.
    Property(Property),
}

/// A proposed server change, for [`TreeHooks::check_change`].
#[derive(Clone, Copy, Debug)]
pub struct Change<'a> {
    /// What happens.
    pub kind: &'a ChangeKind,
    /// The node concerned (for Add, the node to be created).
    pub path: &'a Uri,
    /// The server making the change.
    pub server_id: &'a str,
    /// For Add/Replace: the node's format after the change.
    pub format: Option<Format>,
    /// For Add/Replace of a leaf: the new value (decoded bytes); for a
    /// property change: the new property text.
    pub value: Option<&'a [u8]>,
    /// For Add/Replace: the Type property after the change.
    pub mime: Option<&'a str>,
}

/// A server change that was made, for [`TreeHooks::after_change`] and
/// [`TreeHooks::changed`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeEvent {
    /// What happened.
    pub kind: ChangeKind,
    /// The node concerned (for a rename, its old path).
    pub path: Uri,
    /// The server that made the change.
    pub server_id: String,
}

/// The answer to an Alert: the Status code and any Items (e.g. the text
/// typed in reply to a 1102 TEXT INPUT alert).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertReply {
    /// The status.
    pub status: StatusCode,
    /// The Status's Items.
    pub items: Vec<Item>,
}

impl AlertReply {
    /// A reply with a status and no items.
    pub fn new(status: StatusCode) -> AlertReply {
        AlertReply {
            status,
            items: Vec::new(),
        }
    }
}

/// Routes hook calls to the hooks registered for the deepest subtree that
/// contains the node; Alerts and calls outside every subtree go to the
/// fallback (default: [`NoHooks`] behaviour).
#[derive(Default)]
pub struct HookRouter<'h> {
    routes: Vec<(Uri, Box<dyn TreeHooks + 'h>)>,
    fallback: Option<Box<dyn TreeHooks + 'h>>,
}

impl<'h> HookRouter<'h> {
    /// A router with no routes.
    pub fn new() -> HookRouter<'h> {
        HookRouter {
            routes: Vec::new(),
            fallback: None,
        }
    }

    /// Sends calls for `root` and below to `hooks`.
    pub fn route(
        mut self,
        root: &str,
        hooks: impl TreeHooks + 'h,
    ) -> Result<HookRouter<'h>, TreeError> {
        self.routes.push((Uri::parse(root)?, Box::new(hooks)));
        Ok(self)
    }

    /// Sends Alerts and calls outside every route to `hooks`.
    pub fn fallback(mut self, hooks: impl TreeHooks + 'h) -> HookRouter<'h> {
        self.fallback = Some(Box::new(hooks));
        self
    }

    fn target(&mut self, path: &Uri) -> Option<&mut (dyn TreeHooks + 'h)> {
        let best = self
            .routes
            .iter()
            .enumerate()
            .filter(|(_, (root, _))| path.starts_with(root))
            .max_by_key(|(_, (root, _))| root.depth())
            .map(|(i, _)| i);
        match best {
            Some(i) => self.routes.get_mut(i).map(|(_, h)| h.as_mut()),
            None => self.fallback.as_deref_mut(),
        }
    }
}

impl std::fmt::Debug for HookRouter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookRouter")
            .field(
                "routes",
                &self.routes.iter().map(|(r, _)| r).collect::<Vec<_>>(),
            )
            .field("fallback", &self.fallback.is_some())
            .finish()
    }
}

impl TreeHooks for HookRouter<'_> {
    fn exec(&mut self, tree: &mut Tree, req: &ExecRequest<'_>) -> StatusCode {
        match self.target(req.path) {
            Some(h) => h.exec(tree, req),
            None => NoHooks.exec(tree, req),
        }
    }

    fn check_change(&mut self, tree: &Tree, change: &Change<'_>) -> Result<(), StatusCode> {
        match self.target(change.path) {
            Some(h) => h.check_change(tree, change),
            None => Ok(()),
        }
    }

    fn after_change(&mut self, tree: &mut Tree, event: &ChangeEvent) -> Result<(), StatusCode> {
        match self.target(&event.path) {
            Some(h) => h.after_change(tree, event),
            None => Ok(()),
        }
    }

    fn changed(&mut self, tree: &mut Tree, event: &ChangeEvent) {
        if let Some(h) = self.target(&event.path) {
            h.changed(tree, event);
        }
    }

    fn alert(&mut self, alert: &Alert, ctx: &ServerCtx<'_>) -> AlertReply {
        match self.fallback.as_deref_mut() {
            Some(h) => h.alert(alert, ctx),
            None => NoHooks.alert(alert, ctx),
        }
    }
}
