//! The ./SCOMO management object: paths, node names, primitives (`SCOMO.md`
//! §2 and §5).

use std::fmt;
use std::str::FromStr;

/// MO identifier, the `Type` property of the SCOMO root.
pub const MO_ID: &str = "urn:oma:mo:oma-scomo:1.0";
/// Where our agent places the MO. A server must not assume it (Verizon uses
/// `./SCM`); it is configurable on both sides.
pub const DEFAULT_ROOT: &str = "./SCOMO";
/// Generic Alert type of every SCOMO result.
pub const ALERT_TYPE_OPERATION_COMPLETE: &str = "urn:oma:at:scomo:1.0:OperationComplete";

/// Leaf and interior node names under the entries.
pub mod node {
    /// `Download` (root child) and the primitive of the same name.
    pub const DOWNLOAD: &str = "Download";
    /// `Inventory`.
    pub const INVENTORY: &str = "Inventory";
    /// `Inventory/Delivered`.
    pub const DELIVERED: &str = "Delivered";
    /// `Inventory/Deployed`.
    pub const DEPLOYED: &str = "Deployed";
    /// Delivery package id.
    pub const PKG_ID: &str = "PkgID";
    /// Display name.
    pub const NAME: &str = "Name";
    /// URL of the package or of its download descriptor.
    pub const PKG_URL: &str = "PkgURL";
    /// Installer parameters.
    pub const INSTALL_PARAMS: &str = "InstallParams";
    /// Free text.
    pub const DESCRIPTION: &str = "Description";
    /// Operation status (device-written).
    pub const STATUS: &str = "Status";
    /// Entry state (device-written).
    pub const STATE: &str = "State";
    /// Execution environment type.
    pub const ENV_TYPE: &str = "EnvType";
    /// Package MIME type.
    pub const PKG_TYPE: &str = "PkgType";
    /// Parent of the primitives.
    pub const OPERATIONS: &str = "Operations";
    /// Vendor extensions.
    pub const EXT: &str = "Ext";
    /// Package bytes (direct delivery).
    pub const DATA: &str = "Data";
    /// Deployment component id.
    pub const ID: &str = "ID";
    /// PkgID of the package a component came from.
    pub const PKG_ID_REF: &str = "PkgIDRef";
    /// Component version.
    pub const VERSION: &str = "Version";
}

/// Which list an entry lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// `Download/<x>`: a package to fetch.
    Download,
    /// `Inventory/Delivered/<x>`: a package on the device.
    Delivered,
    /// `Inventory/Deployed/<x>`: an installed component.
    Deployed,
}

impl EntryKind {
    /// The interior node holding the entries, under `root`.
    pub fn list_uri(self, root: &str) -> String {
        match self {
            EntryKind::Download => format!("{root}/Download"),
            EntryKind::Delivered => format!("{root}/Inventory/Delivered"),
            EntryKind::Deployed => format!("{root}/Inventory/Deployed"),
        }
    }

    /// The URI of entry `name`.
    pub fn entry_uri(self, root: &str, name: &str) -> String {
        format!("{}/{name}", self.list_uri(root))
    }
}

/// A SCOMO primitive: the node a server Execs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Primitive {
    /// Fetch the package; it becomes Delivered.
    Download,
    /// Fetch, then install the components active.
    DownloadInstall,
    /// Fetch, then install the components inactive.
    DownloadInstallInactive,
    /// Install a delivered package's components active.
    Install,
    /// Install a delivered package's components inactive.
    InstallInactive,
    /// Delete a delivered package.
    RemoveDelivered,
    /// Activate an inactive component.
    Activate,
    /// Deactivate an active component.
    Deactivate,
    /// Uninstall a component.
    RemoveDeployed,
}

impl Primitive {
    /// Every primitive.
    pub const ALL: [Primitive; 9] = [
        Primitive::Download,
        Primitive::DownloadInstall,
        Primitive::DownloadInstallInactive,
        Primitive::Install,
        Primitive::InstallInactive,
        Primitive::RemoveDelivered,
        Primitive::Activate,
        Primitive::Deactivate,
        Primitive::RemoveDeployed,
    ];

    /// The primitive node's name (both removes are `Remove`).
    pub fn node_name(self) -> &'static str {
        match self {
            Primitive::Download => "Download",
            Primitive::DownloadInstall => "DownloadInstall",
            Primitive::DownloadInstallInactive => "DownloadInstallInactive",
            Primitive::Install => "Install",
            Primitive::InstallInactive => "InstallInactive",
            Primitive::RemoveDelivered | Primitive::RemoveDeployed => "Remove",
            Primitive::Activate => "Activate",
            Primitive::Deactivate => "Deactivate",
        }
    }

    /// The list whose entries carry this primitive.
    pub fn entry_kind(self) -> EntryKind {
        match self {
            Primitive::Download
            | Primitive::DownloadInstall
            | Primitive::DownloadInstallInactive => EntryKind::Download,
            Primitive::Install | Primitive::InstallInactive | Primitive::RemoveDelivered => {
                EntryKind::Delivered
            }
            Primitive::Activate | Primitive::Deactivate | Primitive::RemoveDeployed => {
                EntryKind::Deployed
            }
        }
    }

    /// The primitives an entry of `kind` offers under `Operations`.
    pub fn of_kind(kind: EntryKind) -> impl Iterator<Item = Primitive> {
        Self::ALL
            .into_iter()
            .filter(move |p| p.entry_kind() == kind)
    }

    /// Whether it fetches a package.
    pub fn downloads(self) -> bool {
        self.entry_kind() == EntryKind::Download
    }

    /// Whether it installs components, and then in which state.
    pub fn installs(self) -> Option<crate::state::DcState> {
        use crate::state::DcState;
        match self {
            Primitive::DownloadInstall | Primitive::Install => Some(DcState::Active),
            Primitive::DownloadInstallInactive | Primitive::InstallInactive => {
                Some(DcState::Inactive)
            }
            _ => None,
        }
    }

    /// The full URI of this primitive on entry `entry` under `root`.
    pub fn uri(self, root: &str, entry: &str) -> String {
        format!(
            "{}/Operations/{}",
            self.entry_kind().entry_uri(root, entry),
            self.node_name()
        )
    }
}

impl fmt::Display for Primitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Primitive::RemoveDelivered => "Remove (package)",
            Primitive::RemoveDeployed => "Remove (component)",
            p => p.node_name(),
        })
    }
}

/// A parsed primitive URI: which primitive on which entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PrimitiveTarget {
    /// The primitive.
    pub primitive: Primitive,
    /// The entry's node name (the `<x>`).
    pub entry: String,
}

impl PrimitiveTarget {
    /// Parses `<root>/{Download|Inventory/Delivered|Inventory/Deployed}/<x>/Operations/<P>`.
    /// `./` prefixes are optional on both `root` and `uri`.
    pub fn parse(root: &str, uri: &str) -> Option<PrimitiveTarget> {
        let root = strip_dot(root);
        let rest = strip_dot(uri).strip_prefix(root)?.strip_prefix('/')?;
        let (kind, rest) = if let Some(r) = rest.strip_prefix("Download/") {
            (EntryKind::Download, r)
        } else if let Some(r) = rest.strip_prefix("Inventory/Delivered/") {
            (EntryKind::Delivered, r)
        } else if let Some(r) = rest.strip_prefix("Inventory/Deployed/") {
            (EntryKind::Deployed, r)
        } else {
            return None;
        };
        let (entry, name) = rest.split_once("/Operations/")?;
        if entry.is_empty() || entry.contains('/') {
            return None;
        }
        let primitive = Primitive::of_kind(kind).find(|p| p.node_name() == name)?;
        Some(PrimitiveTarget {
            primitive,
            entry: entry.to_owned(),
        })
    }
}

/// `./A/B` and `A/B` are the same URI (`DM-PROTOCOL.md` §12.1).
pub fn strip_dot(uri: &str) -> &str {
    uri.strip_prefix("./").unwrap_or(uri)
}

/// The operation names users and the REST API speak (`scomo admin job create
/// --op`): the primitives plus Update, with Remove resolved by what it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Operation {
    /// Download only.
    Download,
    /// Download and install active.
    DownloadInstall,
    /// Download and install inactive.
    DownloadInstallInactive,
    /// Install a delivered package, active.
    Install,
    /// Install a delivered package, inactive.
    InstallInactive,
    /// DownloadInstall of a newer version of a deployed component.
    Update,
    /// Remove a package or a component.
    Remove,
    /// Activate a component.
    Activate,
    /// Deactivate a component.
    Deactivate,
}

impl Operation {
    /// Every operation, in the order the CLI lists them.
    pub const ALL: [Operation; 9] = [
        Operation::Download,
        Operation::DownloadInstall,
        Operation::DownloadInstallInactive,
        Operation::Install,
        Operation::InstallInactive,
        Operation::Update,
        Operation::Remove,
        Operation::Activate,
        Operation::Deactivate,
    ];

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Download => "Download",
            Operation::DownloadInstall => "DownloadInstall",
            Operation::DownloadInstallInactive => "DownloadInstallInactive",
            Operation::Install => "Install",
            Operation::InstallInactive => "InstallInactive",
            Operation::Update => "Update",
            Operation::Remove => "Remove",
            Operation::Activate => "Activate",
            Operation::Deactivate => "Deactivate",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An operation name that is not one of [`Operation::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown operation {0:?}; expected one of Download, DownloadInstall, DownloadInstallInactive, Install, InstallInactive, Update, Remove, Activate, Deactivate")]
pub struct UnknownOperation(pub String);

impl FromStr for Operation {
    type Err = UnknownOperation;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Operation::ALL
            .into_iter()
            .find(|o| o.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownOperation(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitive_uris_round_trip() {
        for p in Primitive::ALL {
            let uri = p.uri(DEFAULT_ROOT, "e1");
            let t = PrimitiveTarget::parse(DEFAULT_ROOT, &uri).expect(&uri);
            assert_eq!(
                t,
                PrimitiveTarget {
                    primitive: p,
                    entry: "e1".into()
                }
            );
            // Without the ./ prefix on either side.
            assert_eq!(PrimitiveTarget::parse("SCOMO", &uri).as_ref(), Some(&t));
            assert_eq!(
                PrimitiveTarget::parse(DEFAULT_ROOT, strip_dot(&uri)).as_ref(),
                Some(&t)
            );
        }
        assert_eq!(
            Primitive::RemoveDeployed.uri("./SCM", "c"),
            "./SCM/Inventory/Deployed/c/Operations/Remove"
        );
    }

    #[test]
    fn bad_primitive_uris() {
        for uri in [
            "./SCOMO/Download/x/Operations/Install",
            "./SCOMO/Inventory/Deployed/x/Operations/Download",
            "./SCOMO/Download//Operations/Download",
            "./SCOMO/Download/a/b/Operations/Download",
            "./Other/Download/x/Operations/Download",
            "./SCOMO/Download/x/Operations",
        ] {
            assert_eq!(PrimitiveTarget::parse(DEFAULT_ROOT, uri), None, "{uri}");
        }
    }

    #[test]
    fn operation_names() {
        assert_eq!(
            "downloadinstall".parse::<Operation>(),
            Ok(Operation::DownloadInstall)
        );
        assert!("Upgrade".parse::<Operation>().is_err());
    }
}
