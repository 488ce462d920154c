//! The tree hooks of the SCOMO MO: register them with
//! `HookRouter::route(root, client.hooks())`.
//!
//! * `exec` on a primitive: checks it (busy → 409, no PkgURL / no Data →
//!   412, unknown component → 404), journals it, answers 202 and queues it
//!   for the executor — or, for primitives configured synchronous, runs it
//!   there and answers 200 or the SCOMO result code;
//! * `check_change`: changes to an entry with an operation running are
//!   refused (409), renames of entries too (405), a pushed `Data` larger
//!   than allowed is 413 and one that does not fit is 420;
//! * `after_change`: a new Download or Delivered entry gets its Status,
//!   State, Data and Operations nodes;
//! * `changed`: a pushed `Data` (the large object complete) goes to the
//!   package file and the tree keeps an empty value; deleting a Delivered
//!   entry deletes its package file.

use std::sync::Arc;

use omadm_tree::{Change, ChangeEvent, ExecRequest, Tree, TreeHooks};
use omadm_wire::StatusCode;

use super::executor::Shared;

/// The SCOMO [`TreeHooks`].
#[derive(Clone)]
pub struct ScomoHooks {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for ScomoHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScomoHooks")
            .field("root", &self.shared.root)
            .finish()
    }
}

impl TreeHooks for ScomoHooks {
    fn exec(&mut self, tree: &mut Tree, req: &ExecRequest<'_>) -> StatusCode {
        self.shared.exec(tree, req)
    }

    fn check_change(&mut self, _tree: &Tree, change: &Change<'_>) -> Result<(), StatusCode> {
        self.shared.check_change(change)
    }

    fn after_change(&mut self, tree: &mut Tree, event: &ChangeEvent) -> Result<(), StatusCode> {
        self.shared.after_change(tree, event)
    }

    fn changed(&mut self, tree: &mut Tree, event: &ChangeEvent) {
        self.shared.changed(tree, event);
    }
}
