//! How the executor reaches the management tree it shares with the DM
//! session.
//!
//! The session applies server commands with the tree locked and calls the
//! SCOMO hooks from inside [`omadm_tree::Tree::apply`]; the hooks get the
//! tree as an argument and never lock it again. The executor, running on
//! its own, edits the tree through [`TreeAccess::edit`], which locks it,
//! runs the edit and persists the tree before returning, so a Status or
//! State value is on disk before the executor acts on the next step.

use std::sync::{Mutex, MutexGuard};

use omadm_tree::Tree;

/// Shared, persisted access to the management tree.
pub trait TreeAccess: Send + Sync {
    /// Locks the tree, runs `f`, then persists the tree. Must not be called
    /// from inside a tree hook (the tree is already locked there).
    fn edit(&self, f: &mut dyn FnMut(&mut Tree));
}

/// Called with the tree after every executor edit, to persist it.
pub type PersistFn = Box<dyn Fn(&Tree) -> std::io::Result<()> + Send + Sync>;

/// A [`TreeAccess`] over a mutex, with an optional persist callback (the
/// agent passes one that writes its tree file; tests pass none).
pub struct SharedTree {
    tree: Mutex<Tree>,
    persist: Option<PersistFn>,
}

impl SharedTree {
    /// Wraps `tree`; `persist` runs after every [`TreeAccess::edit`].
    pub fn new(tree: Tree, persist: Option<PersistFn>) -> SharedTree {
        SharedTree {
            tree: Mutex::new(tree),
            persist,
        }
    }

    /// Locks the tree (for the session, which persists on its own).
    pub fn lock(&self) -> MutexGuard<'_, Tree> {
        self.tree.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the tree.
    pub fn snapshot(&self) -> Tree {
        self.lock().clone()
    }
}

impl std::fmt::Debug for SharedTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedTree")
            .field("persist", &self.persist.is_some())
            .finish()
    }
}

impl TreeAccess for SharedTree {
    fn edit(&self, f: &mut dyn FnMut(&mut Tree)) {
        let mut t = self.lock();
        f(&mut t);
        if let Some(p) = &self.persist {
            if let Err(e) = p(&t) {
                tracing::error!(error = %e, "persisting the management tree failed");
            }
        }
    }
}

/// Edits the tree either directly (inside a hook, where the session holds
/// the tree) or through [`TreeAccess`] (in the executor).
pub(crate) trait TreeEdit {
    fn edit(&mut self, f: &mut dyn FnMut(&mut Tree));
}

impl TreeEdit for &mut Tree {
    fn edit(&mut self, f: &mut dyn FnMut(&mut Tree)) {
        f(self);
    }
}

/// [`TreeEdit`] through a [`TreeAccess`].
pub(crate) struct Via<'a>(pub(crate) &'a dyn TreeAccess);

impl TreeEdit for Via<'_> {
    fn edit(&mut self, f: &mut dyn FnMut(&mut Tree)) {
        self.0.edit(f);
    }
}

/// Runs `f` through a [`TreeEdit`] and returns its result.
pub(crate) fn with_tree<R>(t: &mut dyn TreeEdit, f: impl FnOnce(&mut Tree) -> R) -> Option<R> {
    let mut f = Some(f);
    let mut out = None;
    t.edit(&mut |tree| {
        if let Some(f) = f.take() {
            out = Some(f(tree));
        }
    });
    out
}
