//! The shared wire vectors (`tests/vectors/`), decoded by `omadm-wire` in
//! both encodings and applied to a tree: the tree understands what the
//! codecs produce.

use std::path::PathBuf;

use omadm_tree::{Acl, ChangeEvent, ChangeKind, Format, Reply, TndsDoc, TndsNode, Tree, TreeHooks};
use omadm_wire::model::{Command, Data, SyncMl};
use omadm_wire::{Limits, StatusCode};

use crate::util::*;

fn load(name: &str) -> Vec<SyncMl> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors");
    let xml = std::fs::read(dir.join(format!("{name}.xml"))).unwrap();
    let wbxml = std::fs::read(dir.join(format!("{name}.wbxml"))).unwrap();
    let a = omadm_wire::decode_xml(&xml, &Limits::default()).unwrap();
    let b = omadm_wire::decode_wbxml(&wbxml, &Limits::default()).unwrap();
    vec![a, b]
}

fn commands(msg: &SyncMl) -> Vec<Command> {
    msg.body.commands.clone()
}

fn apply_all(t: &mut Tree, sid: &str, msg: &SyncMl, hooks: &mut dyn TreeHooks) -> Vec<Reply> {
    let mut out = Vec::new();
    for c in commands(msg) {
        out.extend(t.apply(&c, &ctx(sid), hooks));
    }
    out
}

fn all_codes(replies: &[Reply]) -> Vec<u16> {
    statuses(replies).iter().map(|s| s.data.0).collect()
}

#[test]
fn tnds_add_and_replace_in_atomic() {
    for (add, replace) in load("tnds/add-subtree")
        .into_iter()
        .zip(load("tnds/replace-tnds-in-atomic"))
    {
        let mut t = Tree::default();
        let replies = apply_all(&mut t, "srv1", &add, &mut Recorder::default());
        assert_eq!(all_codes(&replies), [200], "{replies:?}");
        let vendor = t.node("./Vendor").unwrap();
        assert_eq!(vendor.acl().to_string(), "Get=*&Replace=srv1");
        assert_eq!(vendor.mime_type(), "com.example/1.0/Vendor");
        let name = t.node("./Vendor/Name").unwrap();
        assert_eq!(
            (name.value_str(), name.title()),
            (Some("Example"), Some("Display name"))
        );
        let interval = t.node("./Vendor/Interval").unwrap();
        assert_eq!(
            (interval.format(), interval.value_str()),
            (Format::Int, Some("60"))
        );
        assert_eq!(
            interval.verno(),
            0,
            "VerNo and TStamp are the device's, not the document's"
        );
        // The Replace creates `Empty`: that needs Add on ./Vendor.
        let before = json(&t);
        let replies = apply_all(&mut t, "srv1", &replace, &mut Recorder::default());
        assert_eq!(all_codes(&replies), [507, 425]);
        assert_eq!(json(&t), before);
        t.set_acl(
            "./Vendor",
            Acl::parse("Add=srv1&Get=*&Replace=srv1").unwrap(),
        )
        .unwrap();
        let replies = apply_all(&mut t, "srv1", &replace, &mut Recorder::default());
        assert_eq!(all_codes(&replies), [200, 200]);
        assert_eq!(t.value_str("./Vendor/Interval"), Some("120"));
        let empty = t.node("./Vendor/Empty").unwrap();
        assert_eq!(
            (empty.format(), empty.value()),
            (Format::Null, Some(&b""[..]))
        );
        assert_eq!(
            t.value_str("./Vendor/Name"),
            Some("Example"),
            "top-level siblings stay"
        );
    }
}

fn sorted(mut nodes: Vec<TndsNode>) -> Vec<TndsNode> {
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    nodes
        .into_iter()
        .map(|mut n| {
            n.children = sorted(n.children);
            n
        })
        .collect()
}

fn inventory() -> Tree {
    let mut t = Tree::default();
    t.set_leaf(
        "./SCOMO/Inventory/Deployed/comp1/ID",
        "com.example.maps",
        Format::Chr,
    )
    .unwrap();
    t.set_leaf(
        "./SCOMO/Inventory/Deployed/comp1/Version",
        "2.1",
        Format::Chr,
    )
    .unwrap();
    t.set_leaf("./SCOMO/Inventory/Deployed/comp1/State", "20", Format::Int)
        .unwrap();
    t.set_acl("./SCOMO/Inventory", Acl::parse("Get=*").unwrap())
        .unwrap();
    t.set_leaf("./Vendor/Interval", "60", Format::Int).unwrap();
    t
}

#[test]
fn get_list_tnds_matches_the_results_vector() {
    let expected: Vec<TndsDoc> = load("tnds/results-tnds")
        .iter()
        .map(|m| {
            let Some(Command::Results(r)) = m.body.commands.get(2) else {
                panic!("{m:?}")
            };
            let Some(Data::Xml(xml)) = &r.items[0].data else {
                panic!("{r:?}")
            };
            TndsDoc::parse(xml).unwrap()
        })
        .collect();
    for (get, want) in load("tnds/get-list-tnds").iter().zip(expected) {
        let mut t = inventory();
        let replies = apply_all(&mut t, "srv1", get, &mut Recorder::default());
        assert_eq!(all_codes(&replies), [200, 200]);
        let results: Vec<_> = replies.iter().filter_map(Reply::as_results).collect();
        assert_eq!(results[0].cmd_ref, 61);
        let item = &results[0].items[0];
        assert_eq!(
            item.source.as_ref().unwrap().loc_uri,
            "./SCOMO/Inventory?list=TNDS+Value+ACL"
        );
        let Some(Data::Xml(xml)) = &item.data else {
            panic!()
        };
        let got = TndsDoc::parse(xml).unwrap();
        assert_eq!(sorted(got.nodes), sorted(want.nodes));
        let Some(Data::Xml(xml)) = &results[1].items[0].data else {
            panic!()
        };
        assert!(
            !xml.contains("<Format>") && xml.contains("<Value>60</Value>"),
            "{xml}"
        );
    }
}

fn scomo_tree() -> Tree {
    let mut t = Tree::default();
    t.ensure_interior("./SCOMO/Download").unwrap();
    t.ensure_interior("./SCOMO/Inventory/Delivered").unwrap();
    t.set_acl(
        "./SCOMO",
        Acl::parse("Add=srv&Delete=srv&Exec=srv&Get=srv&Replace=srv").unwrap(),
    )
    .unwrap();
    t
}

#[test]
fn scomo_indirect_download_atomic() {
    for msg in load("scomo/indirect-add-download") {
        let mut t = scomo_tree();
        let replies = apply_all(&mut t, "srv", &msg, &mut Recorder::default());
        assert_eq!(
            all_codes(&replies),
            [200, 200, 200, 200, 200, 200, 200, 200]
        );
        assert_eq!(
            t.value_str("./SCOMO/Download/pkg1/PkgURL"),
            Some("https://dl.example.com/maps-2.1.dd?token=a1&v=2")
        );
        assert_eq!(
            t.node("./SCOMO/Download/pkg1/PkgType").unwrap().mime_type(),
            "text/plain"
        );
    }
}

/// Creates `Data` when a `Delivered/<x>` entry appears, as the SCOMO client
/// will.
struct DeliveredData;

impl TreeHooks for DeliveredData {
    fn after_change(&mut self, tree: &mut Tree, ev: &ChangeEvent) -> Result<(), StatusCode> {
        if ev.kind == ChangeKind::Add
            && ev
                .path
                .parent()
                .and_then(|p| p.name().map(str::to_owned))
                .as_deref()
                == Some("Delivered")
        {
            tree.set_leaf(ev.path.child("Data").unwrap(), Vec::new(), Format::Bin)
                .map_err(|e| e.status())?;
        }
        Ok(())
    }
}

#[test]
fn scomo_direct_delivery() {
    for msg in load("scomo/direct-delivery") {
        let mut t = scomo_tree();
        let replies = apply_all(&mut t, "srv", &msg, &mut DeliveredData);
        assert_eq!(all_codes(&replies), [200, 200, 200, 200]);
        let data = t.node("./SCOMO/Inventory/Delivered/dp1/Data").unwrap();
        assert_eq!(data.format(), Format::Bin);
        assert_eq!(data.mime_type(), "application/zip");
        let v = data.value().unwrap();
        assert_eq!((v.len(), &v[..4]), (64, &b"PK\x03\x04"[..]));
    }
}

#[test]
fn scomo_execs() {
    for msg in load("scomo/exec-download-install") {
        let mut t = scomo_tree();
        t.set_leaf(
            "./SCOMO/Download/pkg1/Operations/DownloadInstall",
            "",
            Format::Null,
        )
        .unwrap();
        let mut hooks = Recorder {
            exec_status: Some(StatusCode::ACCEPTED),
            ..Recorder::default()
        };
        let replies = apply_all(&mut t, "srv", &msg, &mut hooks);
        assert_eq!(all_codes(&replies), [202]);
        assert_eq!(statuses(&replies)[0].cmd_ref, 9);
        assert_eq!(hooks.execs[0].1.as_deref(), Some("op-4711"));
    }
    for msg in load("scomo/activate-remove-sequence") {
        let mut t = scomo_tree();
        for op in ["Deactivate", "Remove"] {
            t.set_leaf(
                format!("./SCOMO/Inventory/Deployed/comp2/Operations/{op}"),
                "",
                Format::Null,
            )
            .unwrap();
        }
        let mut hooks = Recorder::default();
        let replies = apply_all(&mut t, "srv", &msg, &mut hooks);
        assert_eq!(all_codes(&replies), [200, 200, 200, 200]);
        let correlators: Vec<_> = hooks.execs.iter().map(|e| e.1.clone().unwrap()).collect();
        assert_eq!(correlators, ["op-9", "op-10"]);
        assert!(replies.iter().any(|r| r.as_results().is_some()));
    }
}

#[test]
fn tnds_target_naming_the_node_itself() {
    // spec/tnds-object: Add Target ./A carrying a TNDS node named A.
    for msg in load("spec/tnds-object") {
        let mut t = Tree::default();
        let replies = apply_all(&mut t, "srv", &msg, &mut Recorder::default());
        assert_eq!(all_codes(&replies), [200]);
        assert_eq!(t.value_str("./A"), Some("x"));
        // Once ./A exists, the same Add means ./A/A — a leaf cannot have one.
        let replies = apply_all(&mut t, "srv", &msg, &mut Recorder::default());
        assert_eq!(all_codes(&replies), [405]);
    }
}
