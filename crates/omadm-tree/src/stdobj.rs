//! The standard management objects (`OMA-TS-DM_StdObj-V1_2`, digest §9):
//! `./DevInfo`, `./DevDetail` and `./DMAcc/<x>`, built from plain config
//! structs, with their schemas registered so AccessTypes are enforced.
//!
//! | MO | ACL | AccessType |
//! |---|---|---|
//! | `./DevInfo/*`, `./DevDetail/**` | `Get=*` | Get only (Replace → 405) |
//! | `./DMAcc` | `Get=<every installed ServerID>` | Get |
//! | `./DMAcc/<x>` | `Add+Delete+Get+Replace=<its ServerID>` | see [`dmacc_schema`] |
//! | `…/AppAuth/<x>/AAuthSecret`, `AAuthData` | inherited | Add, Replace: **no Get** |
//!
//! Nodes created here are permanent, except the `AppAddr/<x>` and
//! `AppAuth/<x>` entries, which a server may manage.

use omadm_wire::model::{Data, Item, Location, Meta};
use serde::{Deserialize, Serialize};

use crate::access::AccessType;
use crate::acl::{Acl, AclCommand, ANY_SERVER};
use crate::error::TreeError;
use crate::format::Format;
use crate::schema::{MoSchema, NodeSpec};
use crate::tree::Tree;
use crate::uri::Uri;

/// MO identifier of DevInfo.
pub const DEVINFO_MO_ID: &str = "urn:oma:mo:oma-dm-devinfo:1.0";
/// MO identifier of DevDetail.
pub const DEVDETAIL_MO_ID: &str = "urn:oma:mo:oma-dm-devdetail:1.0";
/// MO identifier of DMAcc.
pub const DMACC_MO_ID: &str = "urn:oma:mo:oma-dm-dmacc:1.0";
/// The only valid `AppID` of a DM account.
pub const DMACC_APP_ID: &str = "w7";

/// `./DevInfo` values (`DM_StdObj` §5.1).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevInfoConfig {
    /// `DevId`: unique device id in URN form (`IMEI:…`); also the SyncHdr
    /// Source.
    pub dev_id: String,
    /// `Man`: manufacturer.
    pub man: String,
    /// `Mod`: model.
    pub model: String,
    /// `DmV`: DM client version.
    pub dm_v: String,
    /// `Lang`: current language (RFC 1766 tag).
    pub lang: String,
}

/// `./DevDetail` values (`DM_StdObj` §5.3). The `URI/Max*` leaves come from
/// the tree's [`UriLimits`](crate::UriLimits).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevDetailConfig {
    /// `DevTyp`: device type.
    pub dev_typ: String,
    /// `OEM`.
    pub oem: String,
    /// `FwV`: firmware version.
    pub fw_v: String,
    /// `SwV`: software version.
    pub sw_v: String,
    /// `HwV`: hardware version.
    pub hw_v: String,
    /// `LrgObj`: large-object support.
    pub lrg_obj: bool,
}

/// One `./DMAcc/<x>` account (`DM_StdObj` §5.2).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DmAccConfig {
    /// The `<x>` node name of the account.
    pub account: String,
    /// `ServerID`: the server's identifier, used in ACLs.
    pub server_id: String,
    /// `Name`: display name.
    #[serde(default)]
    pub name: Option<String>,
    /// `AppAddr/<x>`: server addresses.
    pub addrs: Vec<AppAddr>,
    /// `AAuthPref`: preferred authentication type.
    #[serde(default)]
    pub aauth_pref: Option<String>,
    /// `AppAuth/<x>`: credential sets.
    pub auths: Vec<AppAuth>,
}

/// One `AppAddr/<x>` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppAddr {
    /// The `<x>` node name.
    pub name: String,
    /// `Addr`: the server URI.
    pub addr: String,
    /// `AddrType`: `URI`, `IPv4` or `IPv6`.
    pub addr_type: String,
}

/// One `AppAuth/<x>` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppAuth {
    /// The `<x>` node name.
    pub name: String,
    /// `AAuthLevel`: `CLCRED`, `SRVCRED`, `OBEX`, `HTTP`.
    pub level: String,
    /// `AAuthType`: `BASIC`, `DIGEST`, `HMAC`, ...
    pub auth_type: String,
    /// `AAuthName`.
    #[serde(default)]
    pub auth_name: Option<String>,
    /// `AAuthSecret` (never readable by a server).
    #[serde(default)]
    pub secret: Option<String>,
    /// `AAuthData`: the nonce bytes (never readable by a server).
    #[serde(default)]
    pub data: Option<Vec<u8>>,
}

/// The schema of `./DevInfo`.
pub fn devinfo_schema() -> MoSchema {
    let leaf = |p: &str| NodeSpec::new(p, Format::Chr, AccessType::GET).permanent();
    MoSchema::new("./DevInfo")
        .node(
            NodeSpec::interior("", AccessType::GET)
                .mime(DEVINFO_MO_ID)
                .permanent(),
        )
        .node(leaf("DevId"))
        .node(leaf("Man"))
        .node(leaf("Mod"))
        .node(leaf("DmV"))
        .node(leaf("Lang"))
        .node(NodeSpec::interior("Bearer", AccessType::GET).permanent())
        .node(NodeSpec::interior("Ext", AccessType::GET).permanent())
}

/// The schema of `./DevDetail`.
pub fn devdetail_schema() -> MoSchema {
    let leaf = |p: &str| NodeSpec::new(p, Format::Chr, AccessType::GET).permanent();
    MoSchema::new("./DevDetail")
        .node(
            NodeSpec::interior("", AccessType::GET)
                .mime(DEVDETAIL_MO_ID)
                .permanent(),
        )
        .node(NodeSpec::interior("URI", AccessType::GET).permanent())
        .node(leaf("URI/MaxDepth"))
        .node(leaf("URI/MaxTotLen"))
        .node(leaf("URI/MaxSegLen"))
        .node(leaf("DevTyp"))
        .node(leaf("OEM"))
        .node(leaf("FwV"))
        .node(leaf("SwV"))
        .node(leaf("HwV"))
        .node(NodeSpec::new("LrgObj", Format::Bool, AccessType::GET).permanent())
        .node(NodeSpec::interior("Bearer", AccessType::GET).permanent())
        .node(NodeSpec::interior("Ext", AccessType::GET).permanent())
}

/// The schema of `./DMAcc`.
pub fn dmacc_schema() -> MoSchema {
    let rw = AccessType::ADD | AccessType::GET_REPLACE;
    let secret = AccessType::ADD | AccessType::REPLACE;
    let fixed = |p: &str, f: Format, a: AccessType| NodeSpec::new(p, f, a).permanent();
    MoSchema::new("./DMAcc")
        .node(NodeSpec::interior("", AccessType::GET).permanent())
        .node(
            NodeSpec::interior("*", AccessType::GET)
                .mime(DMACC_MO_ID)
                .permanent(),
        )
        .node(fixed("*/AppID", Format::Chr, AccessType::GET))
        .node(fixed("*/ServerID", Format::Chr, AccessType::GET))
        .node(fixed("*/Name", Format::Chr, rw))
        .node(fixed("*/PrefConRef", Format::Chr, rw))
        .node(fixed("*/AAuthPref", Format::Chr, rw))
        .node(NodeSpec::interior("*/AppAddr", AccessType::GET).permanent())
        .node(NodeSpec::interior("*/AppAddr/*", AccessType::DYNAMIC))
        .leaf("*/AppAddr/*/Addr", Format::Chr, rw)
        .leaf("*/AppAddr/*/AddrType", Format::Chr, rw)
        .node(NodeSpec::interior("*/AppAddr/*/Port", AccessType::DYNAMIC))
        .node(NodeSpec::interior(
            "*/AppAddr/*/Port/*",
            AccessType::DYNAMIC,
        ))
        .leaf("*/AppAddr/*/Port/*/PortNbr", Format::Chr, rw)
        .node(NodeSpec::interior("*/AppAuth", AccessType::GET).permanent())
        .node(NodeSpec::interior("*/AppAuth/*", AccessType::DYNAMIC))
        .leaf("*/AppAuth/*/AAuthLevel", Format::Chr, rw)
        .leaf("*/AppAuth/*/AAuthType", Format::Chr, rw)
        .leaf("*/AppAuth/*/AAuthName", Format::Chr, rw)
        .leaf("*/AppAuth/*/AAuthSecret", Format::Chr, secret)
        .leaf("*/AppAuth/*/AAuthData", Format::Bin, secret)
        .node(NodeSpec::interior("*/Ext", AccessType::GET).permanent())
}

/// Creates `./DevInfo` (Get-only, `Get=*`). Re-running updates the values.
pub fn install_dev_info(tree: &mut Tree, cfg: &DevInfoConfig) -> Result<(), TreeError> {
    tree.register_schema(devinfo_schema())?;
    tree.ensure_interior("./DevInfo")?;
    tree.set_acl("./DevInfo", get_for_all())?;
    for (leaf, value) in [
        ("DevId", &cfg.dev_id),
        ("Man", &cfg.man),
        ("Mod", &cfg.model),
        ("DmV", &cfg.dm_v),
        ("Lang", &cfg.lang),
    ] {
        tree.set_leaf(format!("./DevInfo/{leaf}"), value.as_str(), Format::Chr)?;
    }
    Ok(())
}

/// Creates `./DevDetail` (Get-only, `Get=*`), with `URI/Max*` from the
/// tree's URI limits. Re-running updates the values.
pub fn install_dev_detail(tree: &mut Tree, cfg: &DevDetailConfig) -> Result<(), TreeError> {
    tree.register_schema(devdetail_schema())?;
    tree.ensure_interior("./DevDetail/URI")?;
    tree.set_acl("./DevDetail", get_for_all())?;
    let l = tree.config().uri_limits;
    let lrg = if cfg.lrg_obj { "true" } else { "false" };
    for (leaf, value, format) in [
        ("DevTyp", cfg.dev_typ.clone(), Format::Chr),
        ("OEM", cfg.oem.clone(), Format::Chr),
        ("FwV", cfg.fw_v.clone(), Format::Chr),
        ("SwV", cfg.sw_v.clone(), Format::Chr),
        ("HwV", cfg.hw_v.clone(), Format::Chr),
        ("LrgObj", lrg.to_owned(), Format::Bool),
        ("URI/MaxDepth", l.max_depth.to_string(), Format::Chr),
        ("URI/MaxTotLen", l.max_tot_len.to_string(), Format::Chr),
        ("URI/MaxSegLen", l.max_seg_len.to_string(), Format::Chr),
    ] {
        tree.set_leaf(format!("./DevDetail/{leaf}"), value, format)?;
    }
    Ok(())
}

/// Creates (or updates) the account `./DMAcc/<cfg.account>`. Its ACL
/// grants Add, Delete, Get and Replace to its own ServerID only; `./DMAcc`
/// grants Get to every installed ServerID. Secrets (`AAuthSecret`,
/// `AAuthData`) have no Get in their AccessType.
pub fn install_dm_account(tree: &mut Tree, cfg: &DmAccConfig) -> Result<(), TreeError> {
    tree.register_schema(dmacc_schema())?;
    let acc = Uri::root().child("DMAcc")?.child(&cfg.account)?;
    tree.ensure_interior(acc.child("AppAddr")?)?;
    tree.ensure_interior(acc.child("AppAuth")?)?;
    let own = Acl::granting(
        &[
            AclCommand::Add,
            AclCommand::Delete,
            AclCommand::Get,
            AclCommand::Replace,
        ],
        &cfg.server_id,
    );
    tree.set_acl(&acc, own)?;
    tree.set_leaf(acc.child("AppID")?, DMACC_APP_ID, Format::Chr)?;
    tree.set_leaf(acc.child("ServerID")?, cfg.server_id.as_str(), Format::Chr)?;
    if let Some(name) = &cfg.name {
        tree.set_leaf(acc.child("Name")?, name.as_str(), Format::Chr)?;
    }
    if let Some(pref) = &cfg.aauth_pref {
        tree.set_leaf(acc.child("AAuthPref")?, pref.as_str(), Format::Chr)?;
    }
    for a in &cfg.addrs {
        let at = acc.child("AppAddr")?.child(&a.name)?;
        tree.set_leaf(at.child("Addr")?, a.addr.as_str(), Format::Chr)?;
        tree.set_leaf(at.child("AddrType")?, a.addr_type.as_str(), Format::Chr)?;
    }
    for a in &cfg.auths {
        let at = acc.child("AppAuth")?.child(&a.name)?;
        tree.set_leaf(at.child("AAuthLevel")?, a.level.as_str(), Format::Chr)?;
        tree.set_leaf(at.child("AAuthType")?, a.auth_type.as_str(), Format::Chr)?;
        if let Some(n) = &a.auth_name {
            tree.set_leaf(at.child("AAuthName")?, n.as_str(), Format::Chr)?;
        }
        if let Some(s) = &a.secret {
            tree.set_leaf(at.child("AAuthSecret")?, s.as_str(), Format::Chr)?;
        }
        if let Some(d) = &a.data {
            tree.set_leaf(at.child("AAuthData")?, d.clone(), Format::Bin)?;
        }
    }
    let mut dmacc_acl = Acl::new();
    for account in dm_accounts(tree) {
        dmacc_acl.grant(AclCommand::Get, &account.server_id);
    }
    tree.set_acl("./DMAcc", dmacc_acl)?;
    Ok(())
}

/// Reads every `./DMAcc/<x>` account back (for the session engine: server
/// URI, credentials, nonces).
pub fn dm_accounts(tree: &Tree) -> Vec<DmAccConfig> {
    let Some(dmacc) = tree.node("./DMAcc") else {
        return Vec::new();
    };
    let text = |n: Option<&crate::Node>| n.and_then(crate::Node::value_str).map(str::to_owned);
    dmacc
        .children()
        .map(|(account, acc)| DmAccConfig {
            account: account.to_owned(),
            server_id: text(acc.child("ServerID")).unwrap_or_default(),
            name: text(acc.child("Name")),
            aauth_pref: text(acc.child("AAuthPref")),
            addrs: acc
                .child("AppAddr")
                .into_iter()
                .flat_map(|n| n.children())
                .map(|(name, a)| AppAddr {
                    name: name.to_owned(),
                    addr: text(a.child("Addr")).unwrap_or_default(),
                    addr_type: text(a.child("AddrType")).unwrap_or_default(),
                })
                .collect(),
            auths: acc
                .child("AppAuth")
                .into_iter()
                .flat_map(|n| n.children())
                .map(|(name, a)| AppAuth {
                    name: name.to_owned(),
                    level: text(a.child("AAuthLevel")).unwrap_or_default(),
                    auth_type: text(a.child("AAuthType")).unwrap_or_default(),
                    auth_name: text(a.child("AAuthName")),
                    secret: text(a.child("AAuthSecret")),
                    data: a
                        .child("AAuthData")
                        .and_then(crate::Node::value)
                        .map(<[u8]>::to_vec),
                })
                .collect(),
        })
        .collect()
}

/// The Items of the package-1 `Replace` of DevInfo (`DM_Protocol` §8.3):
/// one per leaf, `Source/LocURI` = the node URI, Meta when not `chr`.
pub fn dev_info_items(tree: &Tree) -> Vec<Item> {
    let Some(devinfo) = tree.node("./DevInfo") else {
        return Vec::new();
    };
    devinfo
        .children()
        .filter(|(_, n)| n.is_leaf())
        .map(|(name, n)| Item {
            source: Some(Location::uri(format!("./DevInfo/{name}"))),
            meta: (n.format() != Format::Chr).then(|| Meta::format(n.format().as_str())),
            data: Some(Data::Text(n.value_str().unwrap_or_default().to_owned())),
            ..Item::default()
        })
        .collect()
}

fn get_for_all() -> Acl {
    Acl::granting(&[AclCommand::Get], ANY_SERVER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devinfo_and_accounts() {
        let mut t = Tree::default();
        install_dev_info(
            &mut t,
            &DevInfoConfig {
                dev_id: "IMEI:1".into(),
                man: "M".into(),
                model: "X".into(),
                dm_v: "1".into(),
                lang: "en".into(),
            },
        )
        .unwrap();
        assert_eq!(t.value_str("./DevInfo/DevId"), Some("IMEI:1"));
        assert!(t.node("./DevInfo").unwrap().is_permanent());
        assert_eq!(t.node("./DevInfo").unwrap().mime_type(), DEVINFO_MO_ID);
        assert_eq!(dev_info_items(&t).len(), 5);
        let acc = DmAccConfig {
            account: "srv".into(),
            server_id: "srv1".into(),
            name: Some("Server".into()),
            addrs: vec![AppAddr {
                name: "1".into(),
                addr: "https://dm.example/dm".into(),
                addr_type: "URI".into(),
            }],
            aauth_pref: Some("DIGEST".into()),
            auths: vec![AppAuth {
                name: "c".into(),
                level: "CLCRED".into(),
                auth_type: "DIGEST".into(),
                auth_name: Some("dev".into()),
                secret: Some("pw".into()),
                data: Some(vec![1, 2]),
            }],
        };
        install_dm_account(&mut t, &acc).unwrap();
        assert_eq!(dm_accounts(&t), vec![acc]);
        assert_eq!(t.node("./DMAcc").unwrap().acl().to_string(), "Get=srv1");
        t.validate().unwrap();
    }
}
