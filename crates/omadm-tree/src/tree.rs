//! The tree itself: storage, the device-side building API (no ACL checks),
//! and the undo journal that makes Atomic and TNDS all-or-nothing.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::access::AccessType;
use crate::acl::{Acl, AclCommand, ANY_SERVER};
use crate::error::TreeError;
use crate::format::Format;
use crate::node::{Content, Node, Props, DEFAULT_LEAF_TYPE};
use crate::schema::{self, CompiledSchema, MoSchema, SchemaMatch};
use crate::uri::{ToUri, Uri, UriLimits};

/// Limits and factory settings of a tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeConfig {
    /// URI limits (414 when exceeded); report them in `./DevDetail/URI`.
    pub uri_limits: UriLimits,
    /// Most nodes the tree may hold (420 beyond; 0 = unlimited).
    pub max_nodes: usize,
    /// Longest leaf value in bytes (413 beyond; 0 = unlimited).
    pub max_value_len: usize,
    /// The root's factory ACL. The root's `Add` must stay `*`.
    pub root_acl: Acl,
}

impl TreeConfig {
    /// Default node limit: far more than DevInfo, DevDetail, DMAcc and a
    /// SCOMO inventory of a few hundred components need.
    pub const DEFAULT_MAX_NODES: usize = 20_000;
    /// Default value limit: a delivery package pushed into
    /// `Delivered/<x>/Data` fits.
    pub const DEFAULT_MAX_VALUE_LEN: usize = 64 * 1024 * 1024;
}

impl Default for TreeConfig {
    fn default() -> Self {
        let mut root_acl = Acl::new();
        root_acl.grant(AclCommand::Add, ANY_SERVER);
        root_acl.grant(AclCommand::Get, ANY_SERVER);
        TreeConfig {
            uri_limits: UriLimits::default(),
            max_nodes: Self::DEFAULT_MAX_NODES,
            max_value_len: Self::DEFAULT_MAX_VALUE_LEN,
            root_acl,
        }
    }
}

/// The device's management tree.
///
/// Two APIs share it:
/// * the device-side building API (`ensure_interior`, `set_leaf`,
///   `set_acl`, `value`, ...), used by the agent and the MO clients, which
///   checks no ACL;
/// * [`Tree::apply`], which runs one server command for an authenticated
///   server id and returns its Status and Results.
///
/// Serializes (serde) to a self-contained value: nodes, config and
/// registered schemas. The clock and the undo journal are not persisted.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(from = "TreeRepr")]
pub struct Tree {
    root: Node,
    config: TreeConfig,
    /// Shared between clones: a tree cloned from a template (the fleet
    /// simulator builds one per session) copies no schema.
    schemas: Vec<Arc<CompiledSchema>>,
    #[serde(skip)]
    pub(crate) scratch: Scratch,
}

#[derive(Deserialize)]
struct TreeRepr {
    root: Node,
    config: TreeConfig,
    schemas: Vec<Arc<CompiledSchema>>,
}

impl From<TreeRepr> for Tree {
    fn from(r: TreeRepr) -> Tree {
        let count = r.root.count();
        Tree {
            root: r.root,
            config: r.config,
            schemas: r.schemas,
            scratch: Scratch {
                count,
                ..Scratch::default()
            },
        }
    }
}

impl PartialEq for Tree {
    fn eq(&self, other: &Tree) -> bool {
        self.root == other.root && self.config == other.config && self.schemas == other.schemas
    }
}

impl Eq for Tree {}

impl Default for Tree {
    fn default() -> Self {
        Tree::new(TreeConfig::default())
    }
}

/// Run-time state that is not part of the tree's value.
#[derive(Clone, Debug, Default)]
pub(crate) struct Scratch {
    /// The time changes are stamped with (set by `set_now` and `apply`).
    pub(crate) now: Option<u64>,
    /// Undo entries, newest last, while `depth > 0`.
    journal: Vec<Undo>,
    depth: u32,
    count: usize,
}

/// How to undo one primitive change.
#[derive(Clone, Debug)]
enum Undo {
    Remove(Uri),
    Insert(Uri, Node),
    Props(Uri, Props),
    Value(Uri, Vec<u8>),
    Rename { now_at: Uri, old_name: String },
}

/// Which kind of node to create.
#[derive(Clone, Debug)]
pub(crate) enum NewKind {
    Interior,
    Leaf(Vec<u8>, Format),
}

impl Tree {
    /// A tree holding only the root `.`, with the factory root ACL.
    pub fn new(config: TreeConfig) -> Tree {
        let mut root = Node::interior(String::new());
        root.props.acl = config.root_acl.clone();
        root.props.permanent = true;
        Tree {
            root,
            config,
            schemas: Vec::new(),
            scratch: Scratch {
                count: 1,
                ..Scratch::default()
            },
        }
    }

    /// The configuration.
    pub fn config(&self) -> &TreeConfig {
        &self.config
    }

    /// Replaces the URI limits (e.g. after `./DevDetail/URI` changed).
    pub fn set_uri_limits(&mut self, limits: UriLimits) {
        self.config.uri_limits = limits;
    }

    /// Sets the time (unix seconds) device-side changes are stamped with
    /// until the next call (or the next [`Tree::apply`], which uses its own
    /// `now`).
    pub fn set_now(&mut self, now: u64) {
        self.scratch.now = Some(now);
    }

    /// Registers an MO schema, replacing any schema with the same root.
    /// Existing nodes are not changed.
    pub fn register_schema(&mut self, schema: MoSchema) -> Result<(), TreeError> {
        let compiled = schema.compile()?;
        self.schemas.retain(|s| s.root != compiled.root);
        self.schemas.push(Arc::new(compiled));
        Ok(())
    }

    /// The registered schemas.
    pub fn schemas(&self) -> impl Iterator<Item = &MoSchema> {
        self.schemas.iter().map(|s| &s.schema)
    }

    /// How `path` relates to the registered schemas.
    pub fn schema_match(&self, path: &Uri) -> SchemaMatch<'_> {
        schema::lookup(&self.schemas, path)
    }

    /// The root node.
    pub fn root(&self) -> &Node {
        &self.root
    }

    /// The node at `path`, if any (an unparsable path has no node).
    pub fn node(&self, path: impl ToUri) -> Option<&Node> {
        let path = path.to_uri().ok()?;
        self.node_at(&path)
    }

    /// Whether a node exists at `path`.
    pub fn exists(&self, path: impl ToUri) -> bool {
        self.node(path).is_some()
    }

    /// The value of the leaf at `path`.
    pub fn value(&self, path: impl ToUri) -> Option<&[u8]> {
        self.node(path)?.value()
    }

    /// The value of the leaf at `path` as text.
    pub fn value_str(&self, path: impl ToUri) -> Option<&str> {
        self.node(path)?.value_str()
    }

    /// The names of the children of the interior node at `path`, in order.
    pub fn child_names(&self, path: impl ToUri) -> Option<Vec<&str>> {
        let n = self.node(path)?;
        n.children_map()
            .map(|m| m.keys().map(String::as_str).collect())
    }

    /// Number of nodes, the root included.
    pub fn node_count(&self) -> usize {
        self.scratch.count
    }

    /// Creates the interior node at `path` and any missing ancestors (with
    /// their schema defaults). Succeeds if it already exists as an interior
    /// node.
    pub fn ensure_interior(&mut self, path: impl ToUri) -> Result<(), TreeError> {
        let path = path.to_uri()?;
        self.ensure_ancestors(&path)?;
        match self.node_at(&path) {
            Some(n) if n.is_interior() => Ok(()),
            Some(_) => Err(TreeError::not_allowed(
                "ensure_interior",
                &path,
                "a leaf is there",
            )),
            None => {
                let node = self.new_node(&path, NewKind::Interior, None)?;
                self.insert(&path, node)?;
                self.touch_parent(&path);
                Ok(())
            }
        }
    }

    /// Creates or updates the leaf at `path` (creating missing interior
    /// ancestors). An existing leaf keeps its properties but takes the new
    /// value and format; VerNo and TStamp move only if something changed.
    /// The value must be valid for the format (415 otherwise).
    pub fn set_leaf(
        &mut self,
        path: impl ToUri,
        value: impl Into<Vec<u8>>,
        format: Format,
    ) -> Result<(), TreeError> {
        let path = path.to_uri()?;
        let value = value.into();
        if format == Format::Node {
            return Err(TreeError::UnsupportedFormat {
                reason: "a leaf cannot be node".into(),
            });
        }
        format.validate(&value)?;
        let format = format.stored();
        match self.node_at(&path) {
            Some(n) if n.is_interior() => Err(TreeError::not_allowed(
                "set_leaf",
                &path,
                "an interior node is there",
            )),
            Some(n) => {
                if n.value() == Some(value.as_slice()) && n.format() == format {
                    return Ok(());
                }
                self.set_value(&path, value)?;
                let now = self.scratch.now;
                self.update_props(&path, |p| {
                    p.format = format;
                    p.touch(now);
                })
            }
            None => {
                self.ensure_ancestors(&path)?;
                let node = self.new_node(&path, NewKind::Leaf(value, format), None)?;
                self.insert(&path, node)?;
                self.touch_parent(&path);
                Ok(())
            }
        }
    }

    /// Deletes the node at `path` and its sub-tree (no permanence check; the
    /// root cannot be deleted).
    pub fn delete(&mut self, path: impl ToUri) -> Result<(), TreeError> {
        let path = path.to_uri()?;
        if path.is_root() {
            return Err(TreeError::not_allowed("delete", &path, "the root"));
        }
        self.remove(&path)?;
        self.touch_parent(&path);
        Ok(())
    }

    /// Sets the node's own ACL (empty: inherit). The root's ACL must keep
    /// `Add=*`.
    pub fn set_acl(&mut self, path: impl ToUri, acl: Acl) -> Result<(), TreeError> {
        let path = path.to_uri()?;
        if path.is_root() && !acl.grants_any(AclCommand::Add) {
            return Err(TreeError::not_allowed(
                "set_acl",
                &path,
                "the root's Add must stay *",
            ));
        }
        let now = self.scratch.now;
        self.update_props(&path, |p| {
            if p.acl != acl {
                p.acl = acl;
                p.touch(now);
            }
        })
    }

    /// Sets the Type property (MIME type, or MO identifier of an interior
    /// node).
    pub fn set_type(&mut self, path: impl ToUri, mime: impl Into<String>) -> Result<(), TreeError> {
        let path = path.to_uri()?;
        let mime = mime.into();
        self.update_props(&path, |p| p.mime = mime)
    }

    /// Sets the Title property.
    pub fn set_title(&mut self, path: impl ToUri, title: Option<String>) -> Result<(), TreeError> {
        let path = path.to_uri()?;
        self.update_props(&path, |p| p.title = title)
    }

    /// Marks the node permanent (servers cannot delete or rename it) or
    /// dynamic.
    pub fn set_permanent(&mut self, path: impl ToUri, permanent: bool) -> Result<(), TreeError> {
        let path = path.to_uri()?;
        self.update_props(&path, |p| p.permanent = permanent)
    }

    /// Sets the commands the node supports at all.
    pub fn set_access_type(
        &mut self,
        path: impl ToUri,
        access: AccessType,
    ) -> Result<(), TreeError> {
        let path = path.to_uri()?;
        self.update_props(&path, |p| p.access = access)
    }

    /// The ACL that governs `path`: its own, or the nearest ancestor's that
    /// is not empty (inheritance is all or nothing).
    pub fn effective_acl(&self, path: impl ToUri) -> Option<&Acl> {
        let path = path.to_uri().ok()?;
        self.effective_acl_at(&path)
    }

    /// Whether the ACL governing `path` grants `command` to `server_id`.
    pub fn allows(&self, path: impl ToUri, command: AclCommand, server_id: &str) -> bool {
        self.effective_acl(path)
            .is_some_and(|a| a.allows(command, server_id))
    }

    /// Removes a server id from every ACL (`DM_TND` §7.7.1, when a DMAcc
    /// account goes away). A root command left without ids falls back to
    /// the factory root ACL's ids for it. Note that a non-root ACL left
    /// empty then inherits, as the standard defines.
    pub fn remove_server_id(&mut self, server_id: &str) {
        let factory = self.config.root_acl.clone();
        let mut paths = Vec::new();
        collect_paths(&self.root, &Uri::root(), &mut paths);
        for path in paths {
            let is_root = path.is_root();
            let _ = self.update_props(&path, |p| {
                let emptied = p.acl.remove_server(server_id);
                if is_root {
                    for cmd in emptied {
                        p.acl.set(cmd, factory.ids(cmd).to_vec());
                    }
                }
            });
        }
    }

    /// Checks the tree's invariants (after loading a persisted tree, or in
    /// tests): interior nodes are `node`, leaves are not and hold values
    /// valid for their format, names are valid, the root keeps `Add=*`.
    pub fn validate(&self) -> Result<(), TreeError> {
        fn walk(n: &Node, path: &Uri) -> Result<(), TreeError> {
            let bad = |why: &str| TreeError::Failed {
                reason: format!("{path}: {why}"),
            };
            match &n.content {
                Content::Interior(m) => {
                    if n.props.format != Format::Node {
                        return Err(bad("interior node not of format node"));
                    }
                    for (name, child) in m {
                        walk(child, &path.child(name)?)?;
                    }
                }
                Content::Leaf(v) => {
                    if n.props.format == Format::Node || n.props.format == Format::B64 {
                        return Err(bad("leaf of format node or b64"));
                    }
                    n.props.format.validate(v)?;
                }
            }
            Ok(())
        }
        walk(&self.root, &Uri::root())?;
        if !self.root.props.acl.grants_any(AclCommand::Add) {
            return Err(TreeError::Failed {
                reason: "root ACL lost Add=*".into(),
            });
        }
        if self.root.count() != self.scratch.count {
            return Err(TreeError::Failed {
                reason: "node count out of step".into(),
            });
        }
        Ok(())
    }

    // ---- crate-internal helpers -------------------------------------------------

    pub(crate) fn node_at(&self, path: &Uri) -> Option<&Node> {
        let mut n = &self.root;
        for seg in path.segments() {
            n = n.child(seg)?;
        }
        Some(n)
    }

    fn node_mut(&mut self, path: &Uri) -> Option<&mut Node> {
        let mut n = &mut self.root;
        for seg in path.segments() {
            n = n.children_map_mut()?.get_mut(seg)?;
        }
        Some(n)
    }

    pub(crate) fn effective_acl_at(&self, path: &Uri) -> Option<&Acl> {
        let mut n = &self.root;
        let mut acl = &n.props.acl;
        for seg in path.segments() {
            n = n.child(seg)?;
            if !n.props.acl.is_empty() {
                acl = &n.props.acl;
            }
        }
        Some(acl)
    }

    /// Creates missing interior ancestors of `path` (device side).
    fn ensure_ancestors(&mut self, path: &Uri) -> Result<(), TreeError> {
        let mut cur = Uri::root();
        for seg in path.segments().iter().take(path.depth().saturating_sub(1)) {
            cur = cur.child_unchecked(seg);
            match self.node_at(&cur) {
                Some(n) if n.is_interior() => {}
                Some(_) => return Err(TreeError::not_allowed("add", &cur, "a leaf is in the way")),
                None => {
                    let node = self.new_node(&cur, NewKind::Interior, None)?;
                    self.insert(&cur, node)?;
                    self.touch_parent(&cur);
                }
            }
        }
        Ok(())
    }

    /// A new node for `path` with its schema defaults. `server` is the id of
    /// the server creating it (`None`: the device), which decides
    /// permanence.
    pub(crate) fn new_node(
        &self,
        path: &Uri,
        kind: NewKind,
        server: Option<&str>,
    ) -> Result<Node, TreeError> {
        if self.config.max_nodes != 0 && self.scratch.count >= self.config.max_nodes {
            return Err(TreeError::DeviceFull {
                limit: self.config.max_nodes,
            });
        }
        let spec = self.schema_match(path).spec();
        let mut node = match kind {
            NewKind::Interior => Node::interior(String::new()),
            NewKind::Leaf(value, format) => {
                if self.config.max_value_len != 0 && value.len() > self.config.max_value_len {
                    return Err(TreeError::TooLarge {
                        what: "value",
                        size: value.len(),
                        limit: self.config.max_value_len,
                    });
                }
                Node::leaf(value, format, DEFAULT_LEAF_TYPE.to_owned())
            }
        };
        if let Some(spec) = spec {
            node.props.access = spec.access;
            if let Some(acl) = &spec.acl {
                node.props.acl = acl.clone();
            }
            if let Some(mime) = &spec.mime {
                node.props.mime = mime.clone();
            }
            node.props.permanent = spec.permanent && server.is_none();
        }
        node.props.tstamp = self.scratch.now;
        Ok(node)
    }

    /// Bumps the VerNo/TStamp of the parent of `path` (a child came or went).
    pub(crate) fn touch_parent(&mut self, path: &Uri) {
        if let Some(parent) = path.parent() {
            self.touch(&parent);
        }
    }

    /// Bumps the VerNo/TStamp of `path`.
    pub(crate) fn touch(&mut self, path: &Uri) {
        let now = self.scratch.now;
        let _ = self.update_props(path, |p| p.touch(now));
    }

    // ---- journaled primitives ----------------------------------------------------

    /// Inserts `node` at `path`; the parent must exist and be interior and
    /// the name must be free.
    pub(crate) fn insert(&mut self, path: &Uri, node: Node) -> Result<(), TreeError> {
        self.raw_insert(path, node)?;
        self.record(Undo::Remove(path.clone()));
        Ok(())
    }

    /// Removes the node at `path` with its sub-tree.
    pub(crate) fn remove(&mut self, path: &Uri) -> Result<(), TreeError> {
        let node = self.raw_remove(path)?;
        self.record(Undo::Insert(path.clone(), node));
        Ok(())
    }

    /// Changes the properties of the node at `path`.
    pub(crate) fn update_props(
        &mut self,
        path: &Uri,
        f: impl FnOnce(&mut Props),
    ) -> Result<(), TreeError> {
        let journaling = self.scratch.depth > 0;
        let node = self
            .node_mut(path)
            .ok_or_else(|| TreeError::not_found(path))?;
        let old = journaling.then(|| node.props.clone());
        f(&mut node.props);
        if let Some(old) = old {
            if old != node.props {
                self.record(Undo::Props(path.clone(), old));
            }
        }
        Ok(())
    }

    /// Replaces the value of the leaf at `path`.
    pub(crate) fn set_value(&mut self, path: &Uri, value: Vec<u8>) -> Result<(), TreeError> {
        if self.config.max_value_len != 0 && value.len() > self.config.max_value_len {
            return Err(TreeError::TooLarge {
                what: "value",
                size: value.len(),
                limit: self.config.max_value_len,
            });
        }
        let node = self
            .node_mut(path)
            .ok_or_else(|| TreeError::not_found(path))?;
        let Content::Leaf(v) = &mut node.content else {
            return Err(TreeError::not_allowed("Replace", path, "interior node"));
        };
        let old = std::mem::replace(v, value);
        self.record(Undo::Value(path.clone(), old));
        Ok(())
    }

    /// Renames the node at `path`; returns its new path.
    pub(crate) fn rename(&mut self, path: &Uri, new_name: &str) -> Result<Uri, TreeError> {
        let old_name = path
            .name()
            .ok_or_else(|| TreeError::not_allowed("Replace", path, "root"))?;
        let new_path = path
            .with_name(new_name)
            .ok_or_else(|| TreeError::not_found(path))?;
        if self.node_at(&new_path).is_some() {
            return Err(TreeError::AlreadyExists {
                path: new_path.to_string(),
            });
        }
        let old_name = old_name.to_owned();
        let node = self.raw_remove(path)?;
        self.raw_insert(&new_path, node)?;
        self.record(Undo::Rename {
            now_at: new_path.clone(),
            old_name,
        });
        Ok(new_path)
    }

    fn record(&mut self, undo: Undo) {
        if self.scratch.depth > 0 {
            self.scratch.journal.push(undo);
        }
    }

    fn raw_insert(&mut self, path: &Uri, node: Node) -> Result<(), TreeError> {
        let (name, parent) = match (path.name(), path.parent()) {
            (Some(n), Some(p)) => (n.to_owned(), p),
            _ => {
                return Err(TreeError::AlreadyExists {
                    path: path.to_string(),
                })
            }
        };
        let added = node.count();
        let parent_node = self
            .node_mut(&parent)
            .ok_or_else(|| TreeError::not_found(&parent))?;
        let map = parent_node
            .children_map_mut()
            .ok_or_else(|| TreeError::not_allowed("Add", &parent, "parent is a leaf"))?;
        if map.contains_key(&name) {
            return Err(TreeError::AlreadyExists {
                path: path.to_string(),
            });
        }
        map.insert(name, node);
        self.scratch.count += added;
        Ok(())
    }

    fn raw_remove(&mut self, path: &Uri) -> Result<Node, TreeError> {
        let (name, parent) = match (path.name(), path.parent()) {
            (Some(n), Some(p)) => (n, p),
            _ => return Err(TreeError::not_allowed("Delete", path, "the root")),
        };
        let node = self
            .node_mut(&parent)
            .and_then(Node::children_map_mut)
            .and_then(|m| m.remove(name))
            .ok_or_else(|| TreeError::not_found(path))?;
        self.scratch.count = self.scratch.count.saturating_sub(node.count());
        Ok(node)
    }

    // ---- journal scopes ----------------------------------------------------------

    /// Opens a journal scope; returns the mark to commit or roll back to.
    pub(crate) fn begin(&mut self) -> usize {
        self.scratch.depth += 1;
        self.scratch.journal.len()
    }

    /// Closes a scope, keeping its changes.
    pub(crate) fn commit(&mut self, mark: usize) {
        let _ = mark;
        self.scratch.depth = self.scratch.depth.saturating_sub(1);
        if self.scratch.depth == 0 {
            self.scratch.journal.clear();
        }
    }

    /// Closes a scope, undoing its changes. Returns false if an undo step
    /// failed (which would be a bug; the Atomic then reports 516).
    pub(crate) fn rollback(&mut self, mark: usize) -> bool {
        let mut ok = true;
        while self.scratch.journal.len() > mark {
            let Some(undo) = self.scratch.journal.pop() else {
                break;
            };
            ok &= self.undo(undo).is_ok();
        }
        self.scratch.depth = self.scratch.depth.saturating_sub(1);
        if self.scratch.depth == 0 {
            self.scratch.journal.clear();
        }
        ok
    }

    fn undo(&mut self, undo: Undo) -> Result<(), TreeError> {
        match undo {
            Undo::Remove(path) => self.raw_remove(&path).map(drop),
            Undo::Insert(path, node) => self.raw_insert(&path, node),
            Undo::Props(path, props) => {
                let n = self
                    .node_mut(&path)
                    .ok_or_else(|| TreeError::not_found(&path))?;
                n.props = props;
                Ok(())
            }
            Undo::Value(path, value) => {
                let n = self
                    .node_mut(&path)
                    .ok_or_else(|| TreeError::not_found(&path))?;
                match &mut n.content {
                    Content::Leaf(v) => {
                        *v = value;
                        Ok(())
                    }
                    Content::Interior(_) => Err(TreeError::not_found(&path)),
                }
            }
            Undo::Rename { now_at, old_name } => {
                let node = self.raw_remove(&now_at)?;
                let back = now_at
                    .with_name(&old_name)
                    .ok_or_else(|| TreeError::not_found(&now_at))?;
                self.raw_insert(&back, node)
            }
        }
    }
}

fn collect_paths(n: &Node, path: &Uri, out: &mut Vec<Uri>) {
    out.push(path.clone());
    for (name, child) in n.children() {
        collect_paths(child, &path.child_unchecked(name), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn building() {
        let mut t = Tree::default();
        t.set_now(100);
        t.set_leaf("./A/B/C", "v", Format::Chr).unwrap();
        assert_eq!(t.value_str("A/B/C"), Some("v"));
        assert!(t.node("./A/B").unwrap().is_interior());
        assert_eq!(t.node_count(), 4);
        assert_eq!(t.node("./A/B/C").unwrap().tstamp(), Some(100));
        assert_eq!(t.child_names(".").unwrap(), ["A"]);
        t.set_leaf("./A/B/C", "v", Format::Chr).unwrap();
        assert_eq!(t.node("./A/B/C").unwrap().verno(), 0);
        t.set_leaf("./A/B/C", "w", Format::Chr).unwrap();
        assert_eq!(t.node("./A/B/C").unwrap().verno(), 1);
        assert!(t.ensure_interior("./A/B/C").is_err());
        assert!(t.set_leaf("./A/B", "x", Format::Chr).is_err());
        assert!(t.set_leaf("./A/B/C/D", "x", Format::Chr).is_err());
        assert!(t.set_leaf("./A/N", "x", Format::Int).is_err());
        t.delete("./A/B").unwrap();
        assert_eq!(t.node_count(), 2);
        assert!(t.delete(".").is_err());
        t.validate().unwrap();
    }

    #[test]
    fn acl_inheritance() {
        let mut t = Tree::default();
        t.ensure_interior("./A/B").unwrap();
        t.set_acl("./A", Acl::parse("Get=s1").unwrap()).unwrap();
        assert_eq!(t.effective_acl("./A/B").unwrap().to_string(), "Get=s1");
        assert!(t.allows("./A/B", AclCommand::Get, "s1"));
        assert!(!t.allows("./A/B", AclCommand::Add, "s1"));
        assert!(t.allows("./X", AclCommand::Add, "s1") == t.effective_acl("./X").is_some());
        assert!(t.set_acl(".", Acl::parse("Get=*").unwrap()).is_err());
    }

    #[test]
    fn journal_rolls_back_everything() {
        let mut t = Tree::default();
        t.set_leaf("./A/L", "1", Format::Int).unwrap();
        let before = t.clone();
        let mark = t.begin();
        t.set_leaf("./A/L", "2", Format::Int).unwrap();
        t.set_leaf("./B/M", "x", Format::Chr).unwrap();
        t.rename(&Uri::parse("./A").unwrap(), "Z").unwrap();
        t.set_acl("./Z", Acl::parse("Get=s").unwrap()).unwrap();
        t.delete("./B").unwrap();
        assert!(t.rollback(mark));
        assert_eq!(t, before);
        assert_eq!(t.node_count(), before.node_count());
        t.validate().unwrap();
    }

    #[test]
    fn remove_server_id() {
        let mut t = Tree::new(TreeConfig {
            root_acl: Acl::parse("Add=*&Get=*").unwrap(),
            ..TreeConfig::default()
        });
        t.set_acl(".", Acl::parse("Add=*&Get=*&Replace=s1").unwrap())
            .unwrap();
        t.ensure_interior("./A").unwrap();
        t.set_acl("./A", Acl::parse("Get=s1+s2").unwrap()).unwrap();
        t.remove_server_id("s1");
        assert_eq!(t.root().acl().to_string(), "Add=*&Get=*");
        assert_eq!(t.node("./A").unwrap().acl().to_string(), "Get=s2");
    }

    #[test]
    fn serde_round_trip() {
        let mut t = Tree::default();
        t.set_leaf("./A/Bin", vec![0u8, 255], Format::Bin).unwrap();
        t.set_leaf("./A/I", "5", Format::Int).unwrap();
        let json = serde_json::to_string(&t).unwrap();
        let back: Tree = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.node_count(), t.node_count());
        back.validate().unwrap();
    }
}
