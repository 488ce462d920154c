//! `?prop=` access: Get of every property, Replace of ACL, Name and Title
//! (digest §12.3, §12.4).

use omadm_tree::{Acl, Format};

use crate::util::*;

#[test]
fn get_every_property() {
    let mut t = fixture();
    t.set_now(994_869_497);
    t.set_leaf("./Open/Leaf", "value", Format::Chr).unwrap();
    t.set_title("./Open/Leaf", Some("A leaf".into())).unwrap();
    t.set_type("./Open", "urn:oma:mo:test:1.0").unwrap();
    let p = |t: &mut omadm_tree::Tree, uri: &str| get_text(t, "s2", uri);
    assert_eq!(p(&mut t, "./Open/Leaf?prop=ACL"), "");
    assert_eq!(p(&mut t, "./Open?prop=ACL"), ALL_ANY);
    assert_eq!(p(&mut t, "./Open/Leaf?prop=Format"), "chr");
    assert_eq!(p(&mut t, "./Open?prop=Format"), "node");
    assert_eq!(p(&mut t, "./Open/Leaf?prop=Name"), "Leaf");
    assert_eq!(p(&mut t, "./Open/Leaf?prop=Size"), "5");
    assert_eq!(p(&mut t, "./Open/Leaf?prop=Title"), "A leaf");
    assert_eq!(p(&mut t, "./Open/Leaf?prop=TStamp"), "20010711T163817Z");
    assert_eq!(p(&mut t, "./Open/Leaf?prop=Type"), "text/plain");
    assert_eq!(p(&mut t, "./Open?prop=Type"), "urn:oma:mo:test:1.0");
    assert_eq!(p(&mut t, "./Open/Leaf?prop=VerNo"), "1");
    assert_eq!(p(&mut t, ".?prop=ACL"), "Add=*&Get=*");
    assert_eq!(p(&mut t, ".?prop=Name"), ".");
    // Results echo the whole target, suffix included.
    let replies = run(&mut t, "s2", &get("./Open/Leaf?prop=Size"));
    let item = &replies[1].as_results().unwrap().items[0];
    assert_eq!(
        item.source.as_ref().unwrap().loc_uri,
        "./Open/Leaf?prop=Size"
    );
    assert_eq!(item.meta, None);
}

#[test]
fn property_errors() {
    let mut t = fixture();
    assert_eq!(code(&mut t, "s2", &get("./Open?prop=Size")), 406);
    assert_eq!(code(&mut t, "s2", &get("./Open?prop=Colour")), 406);
    assert_eq!(code(&mut t, "s2", &get("./Nope?prop=ACL")), 404);
    assert_eq!(code(&mut t, "s2", &get("./Owned/Leaf?prop=Format")), 425);
    // Reading properties needs the ACL's Get, not the AccessType's.
    assert_eq!(code(&mut t, "s2", &get("./WO?prop=Size")), 200);
    for ro in ["Format", "Size", "TStamp", "Type", "VerNo"] {
        let uri = format!("./Open/Leaf?prop={ro}");
        assert_eq!(code(&mut t, "s2", &replace_text(&uri, "x")), 405, "{ro}");
    }
    assert_eq!(
        code(&mut t, "s2", &add_leaf("./Open/Leaf?prop=ACL", "Get=*")),
        405
    );
    assert_eq!(code(&mut t, "s2", &delete("./Open/Leaf?prop=Title")), 405);
    assert_eq!(
        code(&mut t, "s2", &exec("./Open/Leaf?prop=Title", None)),
        405
    );
}

#[test]
fn replace_title() {
    let mut t = fixture();
    assert_eq!(
        code(
            &mut t,
            "s2",
            &replace_text("./Open/Leaf?prop=Title", "Hello")
        ),
        200
    );
    assert_eq!(t.node("./Open/Leaf").unwrap().title(), Some("Hello"));
    assert_eq!(get_text(&mut t, "s2", "./Open/Leaf?prop=Title"), "Hello");
    let long = "x".repeat(256);
    assert_eq!(
        code(&mut t, "s2", &replace_text("./Open/Leaf?prop=Title", &long)),
        413
    );
    assert_eq!(
        code(&mut t, "s2", &replace_text("./Owned/Leaf?prop=Title", "x")),
        425
    );
    assert_eq!(
        code(&mut t, "s2", &replace_text("./RO/Leaf?prop=Title", "x")),
        405
    );
    assert_eq!(
        code(&mut t, "s2", &replace_text("./Open/Leaf?prop=Title", "")),
        200
    );
    assert_eq!(t.node("./Open/Leaf").unwrap().title(), None);
}

#[test]
fn replace_acl_rules() {
    let mut t = fixture();
    // Interior: Replace on the node itself is enough...
    t.set_acl("./Open/Sub", Acl::parse("Replace=s5").unwrap())
        .unwrap();
    t.set_acl("./Open", Acl::parse("Get=*&Add=*").unwrap())
        .unwrap();
    assert_eq!(
        code(
            &mut t,
            "s5",
            &replace_text("./Open/Sub?prop=ACL", "Replace=s5&Get=s5")
        ),
        200
    );
    assert_eq!(
        t.node("./Open/Sub").unwrap().acl().to_string(),
        "Get=s5&Replace=s5"
    );
    // ...and so is Replace on the parent.
    t.set_acl("./Open", Acl::parse("Replace=s6").unwrap())
        .unwrap();
    assert_eq!(
        code(&mut t, "s6", &replace_text("./Open/Sub?prop=ACL", "Get=*")),
        200
    );
    // Neither: 425.
    assert_eq!(
        code(&mut t, "s7", &replace_text("./Open/Sub?prop=ACL", "Get=s7")),
        425
    );
    // Leaf: only the parent's Replace counts, not the leaf's own.
    t.set_acl("./Open/Leaf", Acl::parse("Replace=s8").unwrap())
        .unwrap();
    assert_eq!(
        code(
            &mut t,
            "s8",
            &replace_text("./Open/Leaf?prop=ACL", "Get=s8")
        ),
        425
    );
    assert_eq!(
        code(
            &mut t,
            "s8",
            &replace_text("./Open/Leaf", "own value is fine")
        ),
        200
    );
    assert_eq!(
        code(
            &mut t,
            "s6",
            &replace_text("./Open/Leaf?prop=ACL", "Get=s8")
        ),
        200
    );
    // An empty ACL makes the node inherit again.
    assert_eq!(
        code(&mut t, "s6", &replace_text("./Open/Leaf?prop=ACL", "")),
        200
    );
    assert!(t.node("./Open/Leaf").unwrap().acl().is_empty());
    // Malformed ACL text.
    assert_eq!(
        code(&mut t, "s6", &replace_text("./Open/Leaf?prop=ACL", "Get=")),
        400
    );
    assert_eq!(
        code(
            &mut t,
            "s6",
            &replace_text("./Open/Leaf?prop=ACL", "Copy=s1")
        ),
        400
    );
    assert_eq!(
        code(&mut t, "s6", &replace_text("./Open/Nope?prop=ACL", "Get=*")),
        404
    );
}

#[test]
fn root_acl_keeps_add_star() {
    let mut t = fixture();
    assert_eq!(
        code(
            &mut t,
            "s1",
            &replace_text(".?prop=ACL", "Add=*&Get=*&Replace=s1")
        ),
        425
    );
    t.set_acl(".", Acl::parse("Add=*&Get=*&Replace=s1").unwrap())
        .unwrap();
    assert_eq!(
        code(
            &mut t,
            "s1",
            &replace_text(".?prop=ACL", "Get=*&Replace=s1")
        ),
        405
    );
    assert_eq!(
        code(
            &mut t,
            "s1",
            &replace_text(".?prop=ACL", "Add=s1&Get=*&Replace=s1")
        ),
        405
    );
    assert_eq!(
        code(
            &mut t,
            "s1",
            &replace_text(".?prop=ACL", "Add=*&Get=s1&Replace=s1")
        ),
        200
    );
    assert_eq!(t.root().acl().to_string(), "Add=*&Get=s1&Replace=s1");
}

#[test]
fn rename() {
    let mut t = fixture();
    let v0 = t.node("./Open/Sub").unwrap().verno();
    assert_eq!(
        code(
            &mut t,
            "s2",
            &replace_text("./Open/Sub?prop=Name", "Renamed")
        ),
        200
    );
    assert!(!t.exists("./Open/Sub"));
    let n = t.node("./Open/Renamed").unwrap();
    assert!(n.is_interior());
    assert_eq!(n.verno(), v0 + 1);
    assert_eq!(
        get_text(&mut t, "s2", "./Open/Renamed?prop=Name"),
        "Renamed"
    );
    // Same name: nothing to do.
    assert_eq!(
        code(&mut t, "s2", &replace_text("./Open/Leaf?prop=Name", "Leaf")),
        200
    );
    // Clash with a sibling.
    assert_eq!(
        code(
            &mut t,
            "s2",
            &replace_text("./Open/Leaf?prop=Name", "Other")
        ),
        418
    );
    // Permanent nodes and the root cannot be renamed.
    assert_eq!(
        code(&mut t, "s2", &replace_text("./Perm?prop=Name", "P2")),
        405
    );
    assert_eq!(
        code(&mut t, "s2", &replace_text("./Perm/Leaf?prop=Name", "L2")),
        405
    );
    assert_eq!(
        code(&mut t, "s2", &replace_text(".?prop=Name", "root")),
        405
    );
    // ACL.
    assert_eq!(
        code(&mut t, "s2", &replace_text("./Owned/Leaf?prop=Name", "L2")),
        425
    );
    assert_eq!(
        code(&mut t, "s1", &replace_text("./Owned/Leaf?prop=Name", "L2")),
        200
    );
    // Bad and too long names.
    assert_eq!(
        code(&mut t, "s2", &replace_text("./Open/Leaf?prop=Name", "a/b")),
        400
    );
    assert_eq!(
        code(&mut t, "s2", &replace_text("./Open/Leaf?prop=Name", "")),
        400
    );
    assert_eq!(
        code(&mut t, "s2", &replace_text("./Open/Leaf?prop=Name", "..")),
        400
    );
    let long = "n".repeat(65);
    assert_eq!(
        code(&mut t, "s2", &replace_text("./Open/Leaf?prop=Name", &long)),
        414
    );
    assert_eq!(
        code(&mut t, "s2", &replace_text("./Nope?prop=Name", "x")),
        404
    );
    t.validate().unwrap();
}

#[test]
fn verno_and_tstamp() {
    let mut t = fixture();
    let before = t.node("./Open/Leaf").unwrap().verno();
    for i in 0..3 {
        assert_eq!(
            code(&mut t, "s2", &replace_text("./Open/Leaf", &i.to_string())),
            200
        );
    }
    assert_eq!(t.node("./Open/Leaf").unwrap().verno(), before + 3);
    assert_eq!(
        get_text(&mut t, "s2", "./Open/Leaf?prop=TStamp"),
        "20010711T163817Z"
    );
    // 16-bit wrap.
    let mut t = fixture();
    for _ in 0..(u32::from(u16::MAX) + 1 - u32::from(before)) {
        t.set_leaf(
            "./Open/Leaf",
            if t.value_str("./Open/Leaf") == Some("a") {
                "b"
            } else {
                "a"
            },
            Format::Chr,
        )
        .unwrap();
    }
    assert_eq!(t.node("./Open/Leaf").unwrap().verno(), 0);
}
