//! The ./SCOMO subtree: its schema (node formats and AccessTypes,
//! `SCOMO.md` §2.1), the device-created nodes of each entry, and the
//! `Inventory/Deployed` mirror of the component inventory. Pure tree code.
//!
//! Access rules (what the server may do; the device writes anything):
//!
//! | Nodes | AccessType |
//! |---|---|
//! | root, `Download`, `Inventory`, `Inventory/Delivered`, `Inventory/Deployed` | Get (permanent) |
//! | `Download/<x>`, `Inventory/Delivered/<x>` | Add Delete Get Replace |
//! | their `PkgID`, `Name`, `PkgURL`, `InstallParams`, `Description`, `EnvType`, `PkgType` | Add Delete Get Replace |
//! | `…/Status`, `…/State` (every entry) | Get |
//! | `Inventory/Delivered/<x>/Data` | Add Replace (no Get) |
//! | `…/Operations` | Get; primitives Exec Get (format `null`) |
//! | `Inventory/Deployed/<x>` and all below (but the primitives) | Get: created and removed by the device only |
//! | `Ext` of the root, of Download and Delivered entries, and their leaves | Add Delete Get Replace (`chr` leaves, e.g. `Ext/SHA256`) |
//! | `Inventory/Deployed/<x>/Ext` | Get |

use omadm_tree::{AccessType, Acl, Format, MoSchema, NodeSpec, Tree, TreeError, Uri};
use scomo::mo::{node, EntryKind, MO_ID};
use scomo::state::{DeliveredStatus, DeployedStatus, DownloadStatus, DpState};
use scomo::Primitive;

use super::store::ComponentRecord;
use super::verify::{EXT_SHA256, EXT_SIGNATURE};

/// Server-writable leaves of Download and Delivered entries.
const SERVER_LEAVES_DOWNLOAD: [&str; 7] = [
    node::PKG_ID,
    node::NAME,
    node::PKG_URL,
    node::INSTALL_PARAMS,
    node::DESCRIPTION,
    node::ENV_TYPE,
    node::PKG_TYPE,
];
const SERVER_LEAVES_DELIVERED: [&str; 6] = [
    node::PKG_ID,
    node::NAME,
    node::DESCRIPTION,
    node::INSTALL_PARAMS,
    node::ENV_TYPE,
    node::PKG_TYPE,
];

/// The schema of the SCOMO MO rooted at `root`.
pub fn schema(root: &str) -> MoSchema {
    let server_rw = AccessType::ADD | AccessType::DELETE | AccessType::GET | AccessType::REPLACE;
    let prim = AccessType::EXEC | AccessType::GET;
    let mut s = MoSchema::new(root)
        .node(
            NodeSpec::interior("", AccessType::GET)
                .mime(MO_ID)
                .permanent(),
        )
        .node(NodeSpec::interior(node::DOWNLOAD, AccessType::GET).permanent())
        .node(NodeSpec::interior(node::INVENTORY, AccessType::GET).permanent())
        .node(NodeSpec::interior("Inventory/Delivered", AccessType::GET).permanent())
        .node(NodeSpec::interior("Inventory/Deployed", AccessType::GET).permanent())
        .interior("Ext", server_rw)
        .leaf("Ext/*", Format::Chr, server_rw);
    for (list, leaves, ops) in [
        (
            "Download/*",
            &SERVER_LEAVES_DOWNLOAD[..],
            EntryKind::Download,
        ),
        (
            "Inventory/Delivered/*",
            &SERVER_LEAVES_DELIVERED[..],
            EntryKind::Delivered,
        ),
    ] {
        s = s.interior(list, AccessType::DYNAMIC);
        for leaf in leaves {
            s = s.leaf(&format!("{list}/{leaf}"), Format::Chr, server_rw);
        }
        s = s
            .leaf(&format!("{list}/Status"), Format::Int, AccessType::GET)
            .interior(&format!("{list}/Operations"), AccessType::GET)
            .interior(&format!("{list}/Ext"), server_rw)
            .leaf(&format!("{list}/Ext/*"), Format::Chr, server_rw);
        for p in Primitive::of_kind(ops) {
            s = s.leaf(
                &format!("{list}/Operations/{}", p.node_name()),
                Format::Null,
                prim,
            );
        }
    }
    s = s
        .leaf("Inventory/Delivered/*/State", Format::Int, AccessType::GET)
        .leaf(
            "Inventory/Delivered/*/Data",
            Format::Bin,
            AccessType::ADD | AccessType::REPLACE,
        )
        .interior("Inventory/Deployed/*", AccessType::GET);
    for leaf in [
        node::ID,
        node::PKG_ID_REF,
        node::NAME,
        node::DESCRIPTION,
        node::VERSION,
    ] {
        s = s.leaf(
            &format!("Inventory/Deployed/*/{leaf}"),
            Format::Chr,
            AccessType::GET,
        );
    }
    s = s
        .leaf("Inventory/Deployed/*/State", Format::Int, AccessType::GET)
        .leaf("Inventory/Deployed/*/Status", Format::Int, AccessType::GET)
        .interior("Inventory/Deployed/*/Operations", AccessType::GET)
        .interior("Inventory/Deployed/*/Ext", AccessType::GET)
        .leaf("Inventory/Deployed/*/Ext/*", Format::Chr, AccessType::GET);
    for p in Primitive::of_kind(EntryKind::Deployed) {
        s = s.leaf(
            &format!("Inventory/Deployed/*/Operations/{}", p.node_name()),
            Format::Null,
            prim,
        );
    }
    s
}

/// Registers the schema and creates the MO's fixed nodes (idempotent).
pub(crate) fn install(tree: &mut Tree, root: &str, acl: &Acl) -> Result<(), TreeError> {
    tree.register_schema(schema(root))?;
    let fresh = !tree.exists(root);
    tree.ensure_interior(root)?;
    tree.set_type(root, MO_ID)?;
    if fresh || tree.node(root).is_some_and(|n| n.acl().is_empty()) {
        tree.set_acl(root, acl.clone())?;
    }
    for kind in [
        EntryKind::Download,
        EntryKind::Delivered,
        EntryKind::Deployed,
    ] {
        tree.ensure_interior(kind.list_uri(root))?;
    }
    // Entries that predate this version (or a tree restored from elsewhere)
    // get their device-created nodes.
    for name in entries(tree, root, EntryKind::Download) {
        init_entry(tree, root, EntryKind::Download, &name)?;
    }
    for name in entries(tree, root, EntryKind::Delivered) {
        init_entry(tree, root, EntryKind::Delivered, &name)?;
    }
    Ok(())
}

/// The names of the entries of one list.
pub(crate) fn entries(tree: &Tree, root: &str, kind: EntryKind) -> Vec<String> {
    tree.child_names(kind.list_uri(root))
        .map(|v| v.into_iter().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Creates the device-owned nodes of a Download or Delivered entry the
/// server (or the device) just added: Status (IDLE), State and Data
/// (Delivered), and the primitives. Existing values are kept.
pub(crate) fn init_entry(
    tree: &mut Tree,
    root: &str,
    kind: EntryKind,
    name: &str,
) -> Result<(), TreeError> {
    let entry = kind.entry_uri(root, name);
    let status = format!("{entry}/{}", node::STATUS);
    if !tree.exists(&status) {
        let idle = match kind {
            EntryKind::Download => DownloadStatus::Idle.value(),
            EntryKind::Delivered => DeliveredStatus::Idle.value(),
            EntryKind::Deployed => DeployedStatus::Idle.value(),
        };
        tree.set_leaf(&status, idle.to_string(), Format::Int)?;
    }
    if kind == EntryKind::Delivered {
        let state = format!("{entry}/{}", node::STATE);
        if !tree.exists(&state) {
            tree.set_leaf(&state, DpState::Delivered.to_string(), Format::Int)?;
        }
        let data = format!("{entry}/{}", node::DATA);
        if !tree.exists(&data) {
            tree.set_leaf(&data, Vec::new(), Format::Bin)?;
        }
    }
    for p in Primitive::of_kind(kind) {
        let path = format!("{entry}/{}/{}", node::OPERATIONS, p.node_name());
        if !tree.exists(&path) {
            tree.set_leaf(&path, Vec::new(), Format::Null)?;
        }
    }
    Ok(())
}

/// Where a node lies in the MO.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Located {
    pub(crate) kind: EntryKind,
    pub(crate) entry: String,
    /// Names below the entry (empty for the entry itself).
    pub(crate) rest: Vec<String>,
}

/// Finds the entry `path` belongs to, if any.
pub(crate) fn locate(root: &Uri, path: &Uri) -> Option<Located> {
    let rel = path.strip_prefix(root)?;
    let (kind, tail) = match rel {
        [d, tail @ ..] if d == node::DOWNLOAD => (EntryKind::Download, tail),
        [i, l, tail @ ..] if i == node::INVENTORY && l == node::DELIVERED => {
            (EntryKind::Delivered, tail)
        }
        [i, l, tail @ ..] if i == node::INVENTORY && l == node::DEPLOYED => {
            (EntryKind::Deployed, tail)
        }
        _ => return None,
    };
    let (entry, rest) = tail.split_first()?;
    Some(Located {
        kind,
        entry: entry.clone(),
        rest: rest.to_vec(),
    })
}

/// The server-provided leaves of a Download or Delivered entry, read when
/// an operation starts.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct EntryLeaves {
    pub(crate) pkg_id: String,
    pub(crate) name: Option<String>,
    pub(crate) pkg_url: Option<String>,
    pub(crate) install_params: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) env_type: Option<String>,
    pub(crate) pkg_type: Option<String>,
    pub(crate) sha256: Option<String>,
    pub(crate) signature: Option<String>,
}

impl EntryLeaves {
    pub(crate) fn read(tree: &Tree, root: &str, kind: EntryKind, name: &str) -> EntryLeaves {
        let entry = kind.entry_uri(root, name);
        let get = |leaf: &str| {
            tree.value_str(format!("{entry}/{leaf}"))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        EntryLeaves {
            pkg_id: get(node::PKG_ID).unwrap_or_default(),
            name: get(node::NAME),
            pkg_url: get(node::PKG_URL),
            install_params: get(node::INSTALL_PARAMS),
            description: get(node::DESCRIPTION),
            env_type: get(node::ENV_TYPE),
            pkg_type: get(node::PKG_TYPE),
            sha256: get(&format!("{}/{EXT_SHA256}", node::EXT)),
            signature: get(&format!("{}/{EXT_SIGNATURE}", node::EXT)),
        }
    }

    /// Writes the leaves into a Delivered entry the device creates after a
    /// Download (`SCOMO.md` §4.1: copied over from the Download entry).
    pub(crate) fn write_delivered(
        &self,
        tree: &mut Tree,
        root: &str,
        name: &str,
    ) -> Result<(), TreeError> {
        let entry = EntryKind::Delivered.entry_uri(root, name);
        tree.ensure_interior(&entry)?;
        tree.set_leaf(
            format!("{entry}/{}", node::PKG_ID),
            self.pkg_id.as_str(),
            Format::Chr,
        )?;
        for (leaf, v) in [
            (node::NAME.to_owned(), &self.name),
            (node::DESCRIPTION.to_owned(), &self.description),
            (node::INSTALL_PARAMS.to_owned(), &self.install_params),
            (node::ENV_TYPE.to_owned(), &self.env_type),
            (node::PKG_TYPE.to_owned(), &self.pkg_type),
            (format!("{}/{EXT_SHA256}", node::EXT), &self.sha256),
            (format!("{}/{EXT_SIGNATURE}", node::EXT), &self.signature),
        ] {
            if let Some(v) = v {
                tree.set_leaf(format!("{entry}/{leaf}"), v.as_str(), Format::Chr)?;
            }
        }
        init_entry(tree, root, EntryKind::Delivered, name)
    }
}

/// Sets an entry's Status, if the entry exists.
pub(crate) fn set_status(
    tree: &mut Tree,
    root: &str,
    kind: EntryKind,
    name: &str,
    value: u16,
) -> Result<(), TreeError> {
    let entry = kind.entry_uri(root, name);
    if !tree.exists(&entry) {
        return Ok(());
    }
    tree.set_leaf(
        format!("{entry}/{}", node::STATUS),
        value.to_string(),
        Format::Int,
    )
}

/// Sets a Delivered entry's State, if the entry exists.
pub(crate) fn set_dp_state(
    tree: &mut Tree,
    root: &str,
    name: &str,
    state: DpState,
) -> Result<(), TreeError> {
    let entry = EntryKind::Delivered.entry_uri(root, name);
    if !tree.exists(&entry) {
        return Ok(());
    }
    tree.set_leaf(
        format!("{entry}/{}", node::STATE),
        state.to_string(),
        Format::Int,
    )
}

/// An entry's Status value, if readable.
pub(crate) fn status(tree: &Tree, root: &str, kind: EntryKind, name: &str) -> Option<u16> {
    tree.value_str(format!("{}/{}", kind.entry_uri(root, name), node::STATUS))
        .and_then(|s| s.trim().parse().ok())
}

/// Makes `Inventory/Deployed` show exactly `components`: missing entries
/// are created (Status IDLE), stale ones deleted, leaves updated. Status
/// values of surviving entries are kept.
pub(crate) fn reflect_deployed<'a>(
    tree: &mut Tree,
    root: &str,
    components: impl IntoIterator<Item = &'a ComponentRecord>,
) -> Result<(), TreeError> {
    let list = EntryKind::Deployed.list_uri(root);
    tree.ensure_interior(&list)?;
    let mut keep = std::collections::BTreeSet::new();
    for c in components {
        keep.insert(c.id.clone());
        write_deployed(tree, root, c)?;
    }
    for name in entries(tree, root, EntryKind::Deployed) {
        if !keep.contains(&name) {
            tree.delete(EntryKind::Deployed.entry_uri(root, &name))?;
        }
    }
    Ok(())
}

fn write_deployed(tree: &mut Tree, root: &str, c: &ComponentRecord) -> Result<(), TreeError> {
    let entry = EntryKind::Deployed.entry_uri(root, &c.id);
    tree.ensure_interior(&entry)?;
    let leaf = |n: &str| format!("{entry}/{n}");
    tree.set_leaf(leaf(node::ID), c.id.as_str(), Format::Chr)?;
    tree.set_leaf(leaf(node::NAME), c.name.as_str(), Format::Chr)?;
    tree.set_leaf(leaf(node::VERSION), c.version.as_str(), Format::Chr)?;
    for (n, v) in [
        (node::PKG_ID_REF, &c.pkg_id_ref),
        (node::DESCRIPTION, &c.description),
    ] {
        match v {
            Some(v) => tree.set_leaf(leaf(n), v.as_str(), Format::Chr)?,
            None if tree.exists(leaf(n)) => tree.delete(leaf(n))?,
            None => {}
        }
    }
    tree.set_leaf(leaf(node::STATE), c.state.to_string(), Format::Int)?;
    let status = leaf(node::STATUS);
    let keep = tree
        .value_str(&status)
        .and_then(DeployedStatus::parse)
        .is_some();
    if !keep {
        tree.set_leaf(&status, DeployedStatus::Idle.to_string(), Format::Int)?;
    }
    for p in Primitive::of_kind(EntryKind::Deployed) {
        let path = format!("{entry}/{}/{}", node::OPERATIONS, p.node_name());
        if !tree.exists(&path) {
            tree.set_leaf(&path, Vec::new(), Format::Null)?;
        }
    }
    Ok(())
}

/// The State a Deployed entry shows.
#[cfg(test)]
pub(crate) fn dc_state(tree: &Tree, root: &str, id: &str) -> Option<scomo::state::DcState> {
    tree.value_str(format!(
        "{}/{}",
        EntryKind::Deployed.entry_uri(root, id),
        node::STATE
    ))
    .and_then(scomo::state::DcState::parse)
}

#[cfg(test)]
mod tests {
    use super::*;
    use omadm_tree::SchemaMatch;

    fn spec_of(tree: &Tree, path: &str) -> omadm_tree::NodeSpec {
        match tree.schema_match(&Uri::parse(path).unwrap()) {
            SchemaMatch::Spec(s) => s.clone(),
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn install_is_idempotent() {
        let mut t = Tree::default();
        let acl = Acl::parse("Get=*&Exec=*").unwrap();
        install(&mut t, "./SCOMO", &acl).unwrap();
        let once = t.clone();
        install(&mut t, "./SCOMO", &acl).unwrap();
        assert_eq!(t, once);
        assert_eq!(t.node("./SCOMO").unwrap().mime_type(), MO_ID);
        assert!(t.node("./SCOMO/Inventory/Deployed").unwrap().is_permanent());
        t.validate().unwrap();
    }

    #[test]
    fn access_rules() {
        let mut t = Tree::default();
        install(&mut t, "./SCOMO", &Acl::new()).unwrap();
        let at = |p: &str| spec_of(&t, p).access;
        assert!(at("./SCOMO/Download/x").contains(AccessType::ADD));
        assert!(at("./SCOMO/Download/x/PkgURL").contains(AccessType::REPLACE));
        assert_eq!(at("./SCOMO/Download/x/Status"), AccessType::GET);
        assert_eq!(at("./SCOMO/Inventory/Delivered/x/State"), AccessType::GET);
        assert!(!at("./SCOMO/Inventory/Delivered/x/Data").contains(AccessType::GET));
        assert_eq!(at("./SCOMO/Inventory/Deployed/x"), AccessType::GET);
        assert_eq!(
            at("./SCOMO/Inventory/Deployed/x/Operations/Activate"),
            AccessType::EXEC | AccessType::GET
        );
        assert!(at("./SCOMO/Download/x/Ext/SHA256").contains(AccessType::ADD));
        assert_eq!(
            spec_of(&t, "./SCOMO/Inventory/Delivered/x/Data").format,
            Format::Bin
        );
    }

    #[test]
    fn locate_paths() {
        let root = Uri::parse("./SCOMO").unwrap();
        let l = locate(
            &root,
            &Uri::parse("./SCOMO/Inventory/Delivered/p/Data").unwrap(),
        )
        .unwrap();
        assert_eq!(
            (l.kind, l.entry.as_str(), l.rest.as_slice()),
            (EntryKind::Delivered, "p", &["Data".to_owned()][..])
        );
        assert_eq!(
            locate(&root, &Uri::parse("./SCOMO/Download").unwrap()),
            None
        );
        assert_eq!(
            locate(&root, &Uri::parse("./Other/Download/x").unwrap()),
            None
        );
    }

    #[test]
    fn deployed_mirror() {
        use scomo::state::DcState;
        let mut t = Tree::default();
        install(&mut t, "./SCOMO", &Acl::new()).unwrap();
        let mut c = ComponentRecord {
            id: "c1".into(),
            name: "C".into(),
            version: "1".into(),
            description: Some("d".into()),
            pkg_id_ref: None,
            env_type: "archive".into(),
            state: DcState::Inactive,
            activate: None,
            deactivate: None,
            install_params: None,
        };
        reflect_deployed(&mut t, "./SCOMO", [&c]).unwrap();
        assert_eq!(dc_state(&t, "./SCOMO", "c1"), Some(DcState::Inactive));
        set_status(&mut t, "./SCOMO", EntryKind::Deployed, "c1", 40).unwrap();
        c.state = DcState::Active;
        c.description = None;
        reflect_deployed(&mut t, "./SCOMO", [&c]).unwrap();
        assert_eq!(status(&t, "./SCOMO", EntryKind::Deployed, "c1"), Some(40));
        assert!(!t.exists("./SCOMO/Inventory/Deployed/c1/Description"));
        assert!(t.exists("./SCOMO/Inventory/Deployed/c1/Operations/Remove"));
        reflect_deployed(&mut t, "./SCOMO", []).unwrap();
        assert!(!t.exists("./SCOMO/Inventory/Deployed/c1"));
        t.validate().unwrap();
    }
}
