//! Every command against interior, leaf and missing nodes, with and without
//! ACL rights (digest §4, §6, §12.4).

use omadm_tree::{Acl, Format, Tree};
use omadm_wire::model::{Command, Data, Item, ItemCommand, Location, Meta};
use omadm_wire::StatusCode;

use crate::util::*;

/// `(what, server, command, expected status)`; each row runs on a fresh
/// fixture.
fn table() -> Vec<(&'static str, &'static str, Command, u16)> {
    vec![
        // Get
        ("get leaf", "s2", get("./Open/Leaf"), 200),
        ("get leaf w/o ./", "s2", get("Open/Leaf"), 200),
        ("get interior", "s2", get("./Open"), 200),
        ("get root", "s2", get("."), 200),
        ("get missing", "s2", get("./Open/Nope"), 404),
        ("get owned, owner", "s1", get("./Owned/Leaf"), 200),
        ("get owned leaf, other", "s2", get("./Owned/Leaf"), 425),
        ("get owned interior, other", "s2", get("./Owned"), 425),
        ("get Get-only leaf", "s2", get("./RO/Leaf"), 200),
        ("get no-Get leaf", "s2", get("./WO"), 405),
        // Add
        ("add leaf", "s2", add_leaf("./Open/New", "x"), 200),
        ("add interior", "s2", add_node("./Open/NewNode"), 200),
        (
            "add with ancestors",
            "s2",
            add_leaf("./Open/A/B/C", "x"),
            200,
        ),
        ("add existing leaf", "s2", add_leaf("./Open/Leaf", "x"), 418),
        ("add existing interior", "s2", add_node("./Open/Sub"), 418),
        ("add root", "s2", add_node("."), 418),
        ("add under leaf", "s2", add_leaf("./Open/Leaf/X", "x"), 405),
        (
            "add deep under leaf",
            "s2",
            add_leaf("./Open/Leaf/X/Y", "x"),
            405,
        ),
        ("add owned, owner", "s1", add_leaf("./Owned/New", "x"), 200),
        ("add owned, other", "s2", add_leaf("./Owned/New", "x"), 425),
        (
            "add owned deep, other",
            "s2",
            add_leaf("./Owned/A/B", "x"),
            425,
        ),
        ("add at root (Add=*)", "s2", add_node("./Top"), 200),
        (
            "add bad int",
            "s2",
            add("./Open/I", Some("int"), text("x")),
            415,
        ),
        (
            "add good int",
            "s2",
            add("./Open/I", Some("int"), text("-7")),
            200,
        ),
        (
            "add bad bool",
            "s2",
            add("./Open/B", Some("bool"), text("yes")),
            415,
        ),
        (
            "add unknown format",
            "s2",
            add("./Open/U", Some("string"), text("x")),
            415,
        ),
        (
            "add null with data",
            "s2",
            add("./Open/N", Some("null"), text("x")),
            415,
        ),
        ("add null", "s2", add("./Open/N", Some("null"), None), 200),
        (
            "add prop",
            "s2",
            add_leaf("./Open/Leaf?prop=Title", "t"),
            405,
        ),
        // The check order: rights before format.
        (
            "add unknown format, no rights",
            "s2",
            add("./Owned/U", Some("string"), text("x")),
            425,
        ),
        (
            "replace missing, unknown format",
            "s2",
            replace("./Open/Nope", Some("string"), text("x")),
            404,
        ),
        (
            "replace no rights, unknown format",
            "s2",
            replace("./Owned/Leaf", Some("string"), text("x")),
            425,
        ),
        // Replace
        ("replace leaf", "s2", replace_text("./Open/Leaf", "w"), 200),
        (
            "replace interior",
            "s2",
            replace_text("./Open/Sub", "w"),
            405,
        ),
        ("replace root", "s2", replace_text(".", "w"), 405),
        (
            "replace missing",
            "s2",
            replace_text("./Open/Nope", "w"),
            404,
        ),
        (
            "replace owned, owner",
            "s1",
            replace_text("./Owned/Leaf", "w"),
            200,
        ),
        (
            "replace owned, other",
            "s2",
            replace_text("./Owned/Leaf", "w"),
            425,
        ),
        (
            "replace Get-only",
            "s2",
            replace_text("./RO/Leaf", "w"),
            405,
        ),
        ("replace no-Get leaf", "s2", replace_text("./WO", "w"), 200),
        (
            "replace permanent leaf",
            "s2",
            replace_text("./Perm/Leaf", "w"),
            200,
        ),
        (
            "replace int keeps format",
            "s2",
            replace_text("./Open/Num", "x"),
            415,
        ),
        ("replace int ok", "s2", replace_text("./Open/Num", "6"), 200),
        (
            "replace to node",
            "s2",
            replace("./Open/Leaf", Some("node"), None),
            415,
        ),
        // Delete
        ("delete leaf", "s2", delete("./Open/Leaf"), 200),
        ("delete subtree", "s2", delete("./Open"), 200),
        ("delete root", "s2", delete("."), 405),
        ("delete missing", "s2", delete("./Open/Nope"), 404),
        ("delete permanent", "s2", delete("./Perm"), 405),
        ("delete permanent leaf", "s2", delete("./Perm/Leaf"), 405),
        ("delete owned, owner", "s1", delete("./Owned/Leaf"), 200),
        ("delete owned, other", "s2", delete("./Owned/Leaf"), 425),
        ("delete owned interior, other", "s2", delete("./Owned"), 425),
        ("delete Get-only leaf", "s2", delete("./RO/Leaf"), 405),
        ("delete parent of Get-only leaf", "s2", delete("./RO"), 200),
        ("delete prop", "s2", delete("./Open/Leaf?prop=ACL"), 405),
        // Exec (no handler: 405 after the checks)
        ("exec unhandled", "s2", exec("./Open/Leaf", None), 405),
        ("exec missing", "s2", exec("./Open/Nope", None), 404),
        ("exec owned, other", "s2", exec("./Owned/Leaf", None), 425),
        ("exec no-Exec node", "s2", exec("./RO/Leaf", None), 405),
        // Copy
        ("copy to new", "s2", copy("./Open/Leaf", "./Open/Copy"), 200),
        (
            "copy to existing",
            "s2",
            copy("./Open/Leaf", "./Open/Other"),
            200,
        ),
        (
            "copy interior",
            "s2",
            copy("./Open/Sub", "./Open/Copy"),
            405,
        ),
        (
            "copy onto interior",
            "s2",
            copy("./Open/Leaf", "./Open/Sub"),
            403,
        ),
        (
            "copy onto Get-only",
            "s2",
            copy("./Open/Leaf", "./RO/Leaf"),
            403,
        ),
        (
            "copy missing",
            "s2",
            copy("./Open/Nope", "./Open/Copy"),
            404,
        ),
        (
            "copy unreadable",
            "s2",
            copy("./Owned/Leaf", "./Open/Copy"),
            425,
        ),
        (
            "copy onto owned",
            "s2",
            copy("./Open/Leaf", "./Owned/Leaf"),
            425,
        ),
        (
            "copy into owned",
            "s2",
            copy("./Open/Leaf", "./Owned/New"),
            425,
        ),
        ("copy, owner", "s1", copy("./Open/Leaf", "./Owned/New"), 200),
        (
            "copy to missing parent",
            "s2",
            copy("./Open/Leaf", "./Open/X/Y"),
            404,
        ),
        // Malformed URIs
        ("bad uri", "s2", get("./Open/"), 400),
        ("dotdot uri", "s2", get("./Open/../Owned"), 400),
        ("unknown suffix", "s2", get("./Open?x=1"), 406),
    ]
}

#[test]
fn command_table() {
    let mut failures = Vec::new();
    for (what, sid, cmd, want) in table() {
        let mut t = fixture();
        let got = code(&mut t, sid, &cmd);
        if got != want {
            failures.push(format!("{what}: got {got}, want {want}"));
        }
        t.validate().unwrap();
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn failed_commands_change_nothing() {
    for (what, sid, cmd, want) in table() {
        if want < 300 {
            continue;
        }
        let mut t = fixture();
        let before = json(&t);
        run(&mut t, sid, &cmd);
        assert_eq!(json(&t), before, "{what}");
    }
}

#[test]
fn status_fields() {
    let mut t = fixture();
    let mut c = add_leaf("./Open/New", "x");
    c.set_cmd_id(42);
    let replies = run(&mut t, "s2", &c);
    let st = statuses(&replies)[0];
    assert_eq!(st.cmd, "Add");
    assert_eq!(st.cmd_ref, 42);
    assert_eq!(st.msg_ref, Some(MSG));
    assert_eq!(st.cmd_id, 0);
    assert_eq!(st.target_refs, ["./Open/New"]);
    let replies = run(&mut t, "s2", &copy("./Open/Leaf", "./Open/C"));
    let st = statuses(&replies)[0];
    assert_eq!(
        (st.target_refs.as_slice(), st.source_refs.as_slice()),
        (
            &["./Open/C".to_owned()][..],
            &["./Open/Leaf".to_owned()][..]
        )
    );
}

#[test]
fn get_results() {
    let mut t = fixture();
    let replies = run(&mut t, "s2", &get("./Open"));
    assert!(matches!(replies[0], omadm_tree::Reply::Status(_)));
    let r = replies[1].as_results().unwrap();
    assert_eq!(r.cmd_ref, 3);
    assert_eq!(r.msg_ref, Some(MSG));
    assert_eq!(r.items[0].source.as_ref().unwrap().loc_uri, "./Open");
    assert_eq!(
        r.items[0].data,
        Some(Data::Text("Leaf/Num/Other/Sub".into()))
    );
    assert_eq!(r.items[0].meta, Some(Meta::format("node")));
    // Empty interior: <Data/>.
    assert_eq!(
        get_data(&mut t, "s2", "./Open/Sub"),
        (Some(Data::Text(String::new())), Some(Meta::format("node")))
    );
    // chr leaf: no Meta; int leaf: Format int.
    assert_eq!(
        get_data(&mut t, "s2", "./Open/Leaf"),
        (Some(Data::Text("v".into())), None)
    );
    assert_eq!(
        get_data(&mut t, "s2", "Open/Num"),
        (Some(Data::Text("5".into())), Some(Meta::format("int")))
    );
    // The Results echo the URI as sent.
    let replies = run(&mut t, "s2", &get("Open/Num"));
    assert_eq!(
        replies[1].as_results().unwrap().items[0]
            .source
            .as_ref()
            .unwrap()
            .loc_uri,
        "Open/Num"
    );
}

#[test]
fn add_effects() {
    let mut t = fixture();
    assert_eq!(
        code(&mut t, "s2", &add("./Open/I", Some("int"), text("12"))),
        200
    );
    let n = t.node("./Open/I").unwrap();
    assert_eq!(
        (n.format(), n.value_str(), n.mime_type()),
        (Format::Int, Some("12"), "text/plain")
    );
    assert_eq!(n.tstamp(), Some(NOW));
    // Meta Type is kept.
    let mut c = add("./Open/X", Some("xml"), Some(Data::Xml("<a/>".into())));
    if let Command::Add(ic) = &mut c {
        ic.items[0].meta.as_mut().unwrap().r#type = Some("application/xml".into());
    }
    assert_eq!(code(&mut t, "s2", &c), 200);
    assert_eq!(t.node("./Open/X").unwrap().mime_type(), "application/xml");
    assert_eq!(
        get_data(&mut t, "s2", "./Open/X").1,
        Some(Meta::format_type("xml", "application/xml"))
    );
    // No Format, no Data: an empty chr leaf.
    assert_eq!(code(&mut t, "s2", &add("./Open/E", None, None)), 200);
    assert_eq!(t.value("./Open/E"), Some(&b""[..]));
    // Interior with <Data/> or without Data.
    assert_eq!(
        code(&mut t, "s2", &add("./Open/I1", Some("node"), text(""))),
        200
    );
    assert_eq!(
        code(&mut t, "s2", &add("./Open/I2", Some("node"), None)),
        200
    );
    assert!(t.node("./Open/I1").unwrap().is_interior());
    // Implicit ancestors are interior.
    assert_eq!(code(&mut t, "s2", &add_leaf("./Open/P/Q/R", "x")), 200);
    assert!(t.node("./Open/P/Q").unwrap().is_interior());
    // The parent's VerNo moved.
    assert!(t.node("./Open").unwrap().verno() > 0);
    t.validate().unwrap();
}

#[test]
fn command_meta_applies_to_items() {
    let mut t = fixture();
    let c = Command::Add(ItemCommand {
        cmd_id: 1,
        meta: Some(Meta::format("int")),
        items: vec![
            Item {
                target: Some(Location::uri("./Open/A")),
                data: text("1"),
                ..Item::default()
            },
            Item {
                target: Some(Location::uri("./Open/B")),
                meta: Some(Meta::format("chr")),
                data: text("b"),
                ..Item::default()
            },
            Item {
                target: Some(Location::uri("./Open/C")),
                data: text("c"),
                ..Item::default()
            },
        ],
        ..ItemCommand::default()
    });
    let replies = run(&mut t, "s2", &c);
    assert_eq!(
        codes(&replies),
        [
            ("Add".into(), 200),
            ("Add".into(), 200),
            ("Add".into(), 415)
        ]
    );
    assert_eq!(t.node("./Open/A").unwrap().format(), Format::Int);
    assert_eq!(t.node("./Open/B").unwrap().format(), Format::Chr);
    assert!(!t.exists("./Open/C"));
}

#[test]
fn incomplete_commands() {
    let mut t = fixture();
    let empty = Command::Get(ItemCommand {
        cmd_id: 1,
        ..ItemCommand::default()
    });
    assert_eq!(code(&mut t, "s2", &empty), 412);
    let no_target = Command::Delete(ItemCommand {
        cmd_id: 1,
        items: vec![Item::default()],
        ..ItemCommand::default()
    });
    assert_eq!(code(&mut t, "s2", &no_target), 412);
    let mut c = copy("./Open/Leaf", "./Open/C");
    if let Command::Copy(ic) = &mut c {
        ic.items[0].source = None;
    }
    assert_eq!(code(&mut t, "s2", &c), 412);
    // Status and Results from a server produce nothing.
    let st = statuses(&run(&mut t, "s2", &get("./Open")))[0].clone();
    assert!(run(&mut t, "s2", &Command::Status(st)).is_empty());
}

#[test]
fn binary_values() {
    let mut t = fixture();
    let bytes = vec![0u8, 159, 146, 150, 255];
    assert_eq!(
        code(
            &mut t,
            "s2",
            &add("./Open/Bin", Some("b64"), Some(Data::Binary(bytes.clone())))
        ),
        200
    );
    let n = t.node("./Open/Bin").unwrap();
    assert_eq!(
        (n.format(), n.value()),
        (Format::Bin, Some(bytes.as_slice()))
    );
    assert_eq!(get_text(&mut t, "s2", "./Open/Bin?prop=Format"), "bin");
    assert_eq!(get_text(&mut t, "s2", "./Open/Bin?prop=Size"), "5");
    assert_eq!(
        get_data(&mut t, "s2", "./Open/Bin"),
        (Some(Data::Binary(bytes.clone())), Some(Meta::format("bin")))
    );
    // b64 as text (hand-built model) is decoded.
    assert_eq!(
        code(
            &mut t,
            "s2",
            &add("./Open/Bin2", Some("b64"), text("AJ+Slv8="))
        ),
        200
    );
    assert_eq!(t.value("./Open/Bin2"), Some(bytes.as_slice()));
    assert_eq!(
        code(&mut t, "s2", &add("./Open/Bin3", Some("b64"), text("!!"))),
        415
    );
    // Replace a bin leaf without Meta keeps bin.
    assert_eq!(
        code(
            &mut t,
            "s2",
            &replace("./Open/Bin", None, Some(Data::Binary(vec![1])))
        ),
        200
    );
    assert_eq!(t.node("./Open/Bin").unwrap().format(), Format::Bin);
    // Copy carries format and bytes.
    assert_eq!(code(&mut t, "s2", &copy("./Open/Bin2", "./Open/Bin4")), 200);
    assert_eq!(
        t.node("./Open/Bin4").unwrap().value(),
        Some(bytes.as_slice())
    );
    assert_eq!(t.node("./Open/Bin4").unwrap().format(), Format::Bin);
}

#[test]
fn replace_never_creates() {
    let mut t = fixture();
    let before = json(&t);
    assert_eq!(code(&mut t, "s2", &replace_text("./Open/New", "x")), 404);
    assert_eq!(code(&mut t, "s2", &replace_text("./Open/A/B", "x")), 404);
    assert_eq!(json(&t), before);
}

#[test]
fn replace_effects() {
    let mut t = fixture();
    let v0 = t.node("./Open/Leaf").unwrap().verno();
    assert_eq!(
        code(
            &mut t,
            "s2",
            &replace("./Open/Leaf", Some("int"), text("9"))
        ),
        200
    );
    let n = t.node("./Open/Leaf").unwrap();
    assert_eq!(
        (n.format(), n.value_str(), n.verno(), n.tstamp()),
        (Format::Int, Some("9"), v0 + 1, Some(NOW))
    );
}

#[test]
fn copy_effects() {
    let mut t = fixture();
    assert_eq!(code(&mut t, "s2", &copy("./Open/Num", "./Open/Leaf")), 200);
    let n = t.node("./Open/Leaf").unwrap();
    assert_eq!((n.format(), n.value_str()), (Format::Int, Some("5")));
    assert_eq!(code(&mut t, "s2", &copy("./Open/Num", "./Open/Sub/N")), 200);
    assert_eq!(t.value_str("./Open/Sub/N"), Some("5"));
}

#[test]
fn delete_effects() {
    let mut t = fixture();
    let before = t.node_count();
    assert_eq!(code(&mut t, "s2", &delete("./Open")), 200);
    assert_eq!(t.node_count(), before - 5);
    assert!(!t.exists("./Open/Leaf"));
    // AccessType without Delete only protects a node addressed directly.
    assert_eq!(code(&mut t, "s2", &delete("./RO")), 200);
    t.validate().unwrap();
}

#[test]
fn new_interior_acl() {
    let mut t = fixture();
    // ./Open grants Replace to everyone: the new node inherits.
    assert_eq!(code(&mut t, "s2", &add_node("./Open/Mine")), 200);
    assert!(t.node("./Open/Mine").unwrap().acl().is_empty());
    // The root does not grant Replace: the adder gets its own rights.
    assert_eq!(code(&mut t, "s2", &add_node("./Top")), 200);
    assert_eq!(
        t.node("./Top").unwrap().acl().to_string(),
        "Add=s2&Delete=s2&Get=s2&Replace=s2"
    );
    assert_eq!(code(&mut t, "s3", &get("./Top")), 425);
    assert_eq!(code(&mut t, "s2", &add_leaf("./Top/L", "x")), 200);
    assert!(t.node("./Top/L").unwrap().acl().is_empty());
    // Implicit ancestors: only the first lacks inherited Replace.
    assert_eq!(code(&mut t, "s3", &add_leaf("./T3/A/L", "x")), 200);
    assert_eq!(
        t.node("./T3").unwrap().acl().to_string(),
        "Add=s3&Delete=s3&Get=s3&Replace=s3"
    );
    assert!(t.node("./T3/A").unwrap().acl().is_empty());
    // A new leaf never gets one.
    assert_eq!(code(&mut t, "s2", &add_leaf("./TopLeaf", "x")), 200);
    assert!(t.node("./TopLeaf").unwrap().acl().is_empty());
}

#[test]
fn acl_inheritance_is_all_or_nothing() {
    let mut t = fixture();
    t.set_acl("./Open/Sub", Acl::parse("Get=s9").unwrap())
        .unwrap();
    t.set_leaf("./Open/Sub/L", "x", Format::Chr).unwrap();
    // Sub's own ACL replaces Open's entirely: s2 may no longer Replace.
    assert_eq!(code(&mut t, "s2", &replace_text("./Open/Sub/L", "y")), 425);
    assert_eq!(code(&mut t, "s9", &get("./Open/Sub/L")), 200);
    assert_eq!(code(&mut t, "s9", &replace_text("./Open/Sub/L", "y")), 425);
    // `*` and named ids: `*` wins.
    t.set_acl("./Open/Sub", Acl::parse("Get=s9+*").unwrap())
        .unwrap();
    assert_eq!(code(&mut t, "s1", &get("./Open/Sub/L")), 200);
}

#[test]
fn rights_on_parent_do_not_grant_child_access() {
    let mut t = fixture();
    t.set_acl("./Open/Leaf", Acl::parse("Get=s9").unwrap())
        .unwrap();
    assert_eq!(code(&mut t, "s2", &get("./Open/Leaf")), 425);
    // ...but the parent's Replace lets s2 rewrite the leaf's ACL first.
    assert_eq!(
        code(
            &mut t,
            "s2",
            &replace_text("./Open/Leaf?prop=ACL", "Get=s2")
        ),
        200
    );
    assert_eq!(code(&mut t, "s2", &get("./Open/Leaf")), 200);
}

#[test]
fn status_for_failed_implicit_ancestor() {
    let mut t = Tree::default();
    t.register_schema(
        omadm_tree::MoSchema::new("./M")
            .interior("", omadm_tree::AccessType::GET)
            .interior("A", omadm_tree::AccessType::DYNAMIC)
            .leaf("A/L", Format::Chr, omadm_tree::AccessType::ALL),
    )
    .unwrap();
    t.ensure_interior("./M").unwrap();
    let replies = run(&mut t, "s1", &add_leaf("./M/X/L", "v"));
    let st = statuses(&replies)[0];
    assert_eq!(st.data, StatusCode::COMMAND_NOT_ALLOWED);
    assert_eq!(st.items[0].target.as_ref().unwrap().loc_uri, "./M/X");
    assert_eq!(code(&mut t, "s1", &add_leaf("./M/A/L", "v")), 200);
}
