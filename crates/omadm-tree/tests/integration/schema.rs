//! An MO registered as a schema (the shape SCOMO will use): AccessType and
//! Format per pattern, dynamic `<x>` nodes, no Add outside the patterns.

use omadm_tree::{AccessType, Acl, Format, MoSchema, NodeSpec, SchemaMatch, Tree, Uri};

use crate::util::*;

fn scomo() -> Tree {
    let get = AccessType::GET;
    let rw = AccessType::ADD | AccessType::GET_REPLACE;
    let schema = MoSchema::new("./SCOMO")
        .node(
            NodeSpec::interior("", get)
                .mime("urn:oma:mo:oma-scomo:1.0")
                .permanent(),
        )
        .node(NodeSpec::interior("Download", get).permanent())
        .interior("Download/<x>", AccessType::DYNAMIC)
        .leaf("Download/<x>/PkgID", Format::Chr, rw)
        .leaf("Download/<x>/PkgURL", Format::Chr, rw)
        .leaf("Download/<x>/Status", Format::Int, get)
        .interior("Download/<x>/Operations", get)
        .leaf(
            "Download/<x>/Operations/Download",
            Format::Null,
            AccessType::EXEC | get,
        )
        .node(NodeSpec::interior("Inventory", get).permanent())
        .node(NodeSpec::interior("Inventory/Deployed", get).permanent())
        .interior("Inventory/Deployed/*", get)
        .leaf("Inventory/Deployed/*/State", Format::Int, get)
        .node(NodeSpec::interior("Inventory/Delivered", get).permanent())
        .interior("Inventory/Delivered/*", AccessType::DYNAMIC)
        .leaf(
            "Inventory/Delivered/*/Data",
            Format::Bin,
            AccessType::ADD | AccessType::REPLACE,
        );
    let mut t = Tree::default();
    t.register_schema(schema).unwrap();
    t.ensure_interior("./SCOMO/Download").unwrap();
    t.ensure_interior("./SCOMO/Inventory/Deployed").unwrap();
    t.ensure_interior("./SCOMO/Inventory/Delivered").unwrap();
    t.set_acl(
        "./SCOMO",
        Acl::parse("Add=srv&Delete=srv&Exec=srv&Get=srv&Replace=srv").unwrap(),
    )
    .unwrap();
    t.set_leaf("./SCOMO/Inventory/Deployed/C1/State", "20", Format::Int)
        .unwrap();
    t
}

#[test]
fn device_built_nodes_get_their_spec() {
    let t = scomo();
    let root = t.node("./SCOMO").unwrap();
    assert_eq!(root.mime_type(), "urn:oma:mo:oma-scomo:1.0");
    assert!(root.is_permanent());
    assert_eq!(root.access_type(), AccessType::GET);
    let dc = t.node("./SCOMO/Inventory/Deployed/C1").unwrap();
    assert!(!dc.is_permanent());
    assert_eq!(dc.access_type(), AccessType::GET);
    assert!(matches!(
        t.schema_match(&Uri::parse("./SCOMO/Download/X/Frob").unwrap()),
        SchemaMatch::Unknown
    ));
    assert_eq!(t.schemas().count(), 1);
}

#[test]
fn server_adds_follow_the_schema() {
    let mut t = scomo();
    // Format comes from the schema when Meta has none: an interior node.
    assert_eq!(
        code(&mut t, "srv", &add("./SCOMO/Download/P1", None, None)),
        200
    );
    let p1 = t.node("./SCOMO/Download/P1").unwrap();
    assert!(p1.is_interior());
    assert_eq!(p1.access_type(), AccessType::DYNAMIC);
    assert!(!p1.is_permanent());
    assert_eq!(
        code(
            &mut t,
            "srv",
            &add_leaf("./SCOMO/Download/P1/PkgURL", "https://x/p")
        ),
        200
    );
    assert_eq!(
        t.node("./SCOMO/Download/P1/PkgURL").unwrap().access_type(),
        AccessType::ADD | AccessType::GET_REPLACE
    );
    // Implicit <x> ancestor.
    assert_eq!(
        code(&mut t, "srv", &add_leaf("./SCOMO/Download/P2/PkgID", "id")),
        200
    );
    assert!(t.node("./SCOMO/Download/P2").unwrap().is_interior());
    // Not a node of the MO.
    assert_eq!(
        code(&mut t, "srv", &add_leaf("./SCOMO/Download/P1/Frob", "x")),
        405
    );
    assert_eq!(code(&mut t, "srv", &add_leaf("./SCOMO/Frob", "x")), 405);
    // Not addable: Status, Deployed entries.
    assert_eq!(
        code(
            &mut t,
            "srv",
            &add("./SCOMO/Download/P1/Status", Some("int"), text("10"))
        ),
        405
    );
    assert_eq!(
        code(&mut t, "srv", &add_node("./SCOMO/Inventory/Deployed/C2")),
        405
    );
    // Wrong format for the node.
    assert_eq!(
        code(
            &mut t,
            "srv",
            &add("./SCOMO/Download/P1/PkgID", Some("int"), text("1"))
        ),
        415
    );
    assert_eq!(
        code(
            &mut t,
            "srv",
            &add("./SCOMO/Download/P3", Some("chr"), text("x"))
        ),
        415
    );
    // The MO's own ACL still applies.
    assert_eq!(code(&mut t, "other", &add_node("./SCOMO/Download/P9")), 425);
    t.validate().unwrap();
}

#[test]
fn device_only_nodes() {
    let mut t = scomo();
    t.set_leaf("./SCOMO/Download/P1/Status", "10", Format::Int)
        .unwrap();
    assert_eq!(
        code(
            &mut t,
            "srv",
            &replace_text("./SCOMO/Download/P1/Status", "40")
        ),
        405
    );
    assert_eq!(
        code(
            &mut t,
            "srv",
            &replace_text("./SCOMO/Inventory/Deployed/C1/State", "10")
        ),
        405
    );
    assert_eq!(
        code(&mut t, "srv", &delete("./SCOMO/Inventory/Deployed/C1")),
        405
    );
    assert_eq!(code(&mut t, "srv", &delete("./SCOMO/Download")), 405);
    assert_eq!(code(&mut t, "srv", &get("./SCOMO/Download/P1/Status")), 200);
    // Server-managed entries can go.
    assert_eq!(code(&mut t, "srv", &delete("./SCOMO/Download/P1")), 200);
}

#[test]
fn direct_delivery_data() {
    let mut t = scomo();
    assert_eq!(
        code(&mut t, "srv", &add_node("./SCOMO/Inventory/Delivered/D1")),
        200
    );
    let bytes = vec![0x50u8, 0x4b, 3, 4];
    assert_eq!(
        code(
            &mut t,
            "srv",
            &add("./SCOMO/Inventory/Delivered/D1/Data", Some("bin"), None)
        ),
        200
    );
    let c = replace(
        "./SCOMO/Inventory/Delivered/D1/Data",
        Some("b64"),
        Some(omadm_wire::model::Data::Binary(bytes.clone())),
    );
    assert_eq!(code(&mut t, "srv", &c), 200);
    assert_eq!(
        t.value("./SCOMO/Inventory/Delivered/D1/Data"),
        Some(bytes.as_slice())
    );
    // No Get on the package bytes.
    assert_eq!(
        code(&mut t, "srv", &get("./SCOMO/Inventory/Delivered/D1/Data")),
        405
    );
    // A chr value where the schema says bin.
    assert_eq!(
        code(
            &mut t,
            "srv",
            &replace(
                "./SCOMO/Inventory/Delivered/D1/Data",
                Some("chr"),
                text("x")
            )
        ),
        415
    );
}

#[test]
fn exec_on_primitive() {
    let mut t = scomo();
    assert_eq!(code(&mut t, "srv", &add_node("./SCOMO/Download/P1")), 200);
    t.ensure_interior("./SCOMO/Download/P1/Operations").unwrap();
    t.set_leaf("./SCOMO/Download/P1/Operations/Download", "", Format::Null)
        .unwrap();
    let mut hooks = Recorder {
        exec_status: Some(omadm_wire::StatusCode::ACCEPTED),
        ..Recorder::default()
    };
    let replies = run_with(
        &mut t,
        "srv",
        &exec("./SCOMO/Download/P1/Operations/Download", Some("c")),
        &mut hooks,
    );
    assert_eq!(statuses(&replies)[0].data.0, 202);
    assert_eq!(hooks.execs[0].1.as_deref(), Some("c"));
    // Exec on a node whose AccessType has no Exec.
    assert_eq!(code(&mut t, "srv", &exec("./SCOMO/Download/P1", None)), 405);
    // Get on a null primitive: empty value.
    assert_eq!(
        get_data(&mut t, "srv", "./SCOMO/Download/P1/Operations/Download").0,
        text("")
    );
}

#[test]
fn renames_inside_the_mo() {
    let mut t = scomo();
    assert_eq!(
        code(&mut t, "srv", &add_leaf("./SCOMO/Download/P1/PkgID", "id")),
        200
    );
    // A dynamic <x> node may be renamed; a fixed name may not.
    assert_eq!(
        code(
            &mut t,
            "srv",
            &replace_text("./SCOMO/Download/P1?prop=Name", "P2")
        ),
        200
    );
    assert_eq!(t.value_str("./SCOMO/Download/P2/PkgID"), Some("id"));
    assert_eq!(
        code(
            &mut t,
            "srv",
            &replace_text("./SCOMO/Download/P2/PkgID?prop=Name", "Other")
        ),
        405
    );
}
