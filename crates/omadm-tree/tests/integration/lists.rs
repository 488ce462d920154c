//! `?list=Struct|StructData|TNDS` and TNDS Add/Replace (digest §12.5).

use omadm_tree::{Acl, Format, TndsDoc, Tree, TNDS_XML_TYPE};
use omadm_wire::model::{Command, Data, Item, ItemCommand, Location, Meta};

use crate::util::*;

fn list(t: &mut Tree, sid: &str, uri: &str) -> Vec<Item> {
    let replies = run(t, sid, &get(uri));
    assert_eq!(statuses(&replies)[0].data.0, 200, "{replies:?}");
    replies[1].as_results().unwrap().items.clone()
}

fn uris(items: &[Item]) -> Vec<&str> {
    items
        .iter()
        .map(|i| i.source.as_ref().unwrap().loc_uri.as_str())
        .collect()
}

#[test]
fn struct_listing() {
    let mut t = fixture();
    let items = list(&mut t, "s2", "./Open?list=Struct");
    assert_eq!(
        uris(&items),
        [
            "./Open",
            "./Open/Leaf",
            "./Open/Num",
            "./Open/Other",
            "./Open/Sub"
        ]
    );
    assert_eq!(items[0].meta, Some(Meta::format("node")));
    assert_eq!(items[1].meta, None);
    assert_eq!(items[2].meta, Some(Meta::format("int")));
    assert!(items.iter().all(|i| i.data.is_none()));
    // Relative form is echoed as written.
    let items = list(&mut t, "s2", "Open/Sub?list=Struct");
    assert_eq!(uris(&items), ["Open/Sub"]);
}

#[test]
fn struct_data_listing() {
    let mut t = fixture();
    let items = list(&mut t, "s2", "./Open?list=StructData");
    assert_eq!(items[0].data, None);
    assert_eq!(items[1].data, Some(Data::Text("v".into())));
    assert_eq!(items[2].data, Some(Data::Text("5".into())));
}

#[test]
fn listings_leave_out_what_the_server_cannot_get() {
    let mut t = fixture();
    let items = list(&mut t, "s2", ".?list=StructData");
    let all = uris(&items);
    assert_eq!(all[0], ".");
    assert!(all.contains(&"./Open/Leaf"));
    assert!(!all.iter().any(|u| u.starts_with("./Owned")), "{all:?}");
    // Nodes without Get in their AccessType are listed without value.
    let wo = items
        .iter()
        .find(|i| i.source.as_ref().unwrap().loc_uri == "./WO")
        .unwrap();
    assert_eq!(wo.data, None);
    let items = list(&mut t, "s1", ".?list=Struct");
    assert!(uris(&items).contains(&"./Owned/Leaf"));
    assert_eq!(code(&mut t, "s2", &get("./Owned?list=Struct")), 425);
    assert_eq!(code(&mut t, "s2", &get("./WO?list=Struct")), 405);
    assert_eq!(code(&mut t, "s2", &get("./Open?list=Tree")), 406);
    assert_eq!(code(&mut t, "s2", &get("./Open?list=TNDS+Value-ACL")), 406);
    assert_eq!(
        code(&mut t, "s2", &replace_text("./Open?list=Struct", "x")),
        405
    );
    assert_eq!(code(&mut t, "s2", &get("./Nope?list=Struct")), 404);
}

#[test]
fn tnds_listing() {
    let mut t = fixture();
    let items = list(&mut t, "s2", "./Open?list=TNDS+Value+Format");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].meta, Some(Meta::format_type("xml", TNDS_XML_TYPE)));
    assert_eq!(
        items[0].source.as_ref().unwrap().loc_uri,
        "./Open?list=TNDS+Value+Format"
    );
    let Some(Data::Xml(xml)) = &items[0].data else {
        panic!("{:?}", items[0].data)
    };
    assert!(xml.starts_with("<MgmtTree xmlns=\"syncml:dmddf1.2\"><VerDTD>1.2</VerDTD><Node><NodeName>Open</NodeName><Path>.</Path><RTProperties><Format><node/></Format></RTProperties>"), "{xml}");
    assert!(xml.contains("<Node><NodeName>Num</NodeName><RTProperties><Format><int/></Format></RTProperties><Value>5</Value></Node>"), "{xml}");
    assert!(!xml.contains("<ACL>"));
    let doc = TndsDoc::parse(xml).unwrap();
    assert_eq!(doc.nodes[0].children.len(), 4);
    // Without filter: every property.
    let items = list(&mut t, "s2", "./Open?list=TNDS");
    let Some(Data::Xml(xml)) = &items[0].data else {
        panic!()
    };
    for want in [
        "<ACL>",
        "<TStamp>",
        "<VerNo>",
        "<MIME>text/plain</MIME>",
        "<Value>v</Value>",
    ] {
        assert!(xml.contains(want), "{want} in {xml}");
    }
    // ACL pruning applies to TNDS too.
    let items = list(&mut t, "s2", ".?list=TNDS");
    let Some(Data::Xml(xml)) = &items[0].data else {
        panic!()
    };
    assert!(!xml.contains("secret") && !xml.contains("Owned"), "{xml}");
}

fn tnds_cmd(replace: bool, target: &str, xml: &str) -> Command {
    let c = ItemCommand {
        cmd_id: 8,
        items: vec![Item {
            target: Some(Location::uri(target)),
            meta: Some(Meta::format_type("xml", TNDS_XML_TYPE)),
            data: Some(Data::Xml(xml.to_owned())),
            ..Item::default()
        }],
        ..ItemCommand::default()
    };
    if replace {
        Command::Replace(c)
    } else {
        Command::Add(c)
    }
}

const EMAIL: &str = r#"<MgmtTree xmlns="syncml:dmddf1.2"><VerDTD>1.2</VerDTD>
  <Node><NodeName>E-Mail</NodeName>
    <RTProperties><Format><node/></Format><Type><DDFName>com.operatorX.dm/1.0/EMail</DDFName></Type></RTProperties>
    <Node><NodeName>POP3</NodeName>
      <Node><NodeName>POPServer</NodeName>
        <RTProperties><Format><chr/></Format><Type><MIME>text/plain</MIME></Type></RTProperties>
        <Value>mail.Operatorx.com</Value></Node>
      <Node><NodeName>Port</NodeName>
        <RTProperties><Format><int/></Format></RTProperties><Value>110</Value></Node>
      <Node><NodeName>Key</NodeName>
        <RTProperties><Format><b64/></Format></RTProperties><Value>AAEC</Value></Node>
    </Node>
  </Node>
</MgmtTree>"#;

#[test]
fn tnds_add_creates_the_subtree() {
    let mut t = fixture();
    let replies = run(&mut t, "s2", &tnds_cmd(false, "./Open", EMAIL));
    assert_eq!(codes(&replies), [("Add".to_owned(), 200)]);
    assert_eq!(
        t.node("./Open/E-Mail").unwrap().mime_type(),
        "com.operatorX.dm/1.0/EMail"
    );
    assert!(t.node("./Open/E-Mail/POP3").unwrap().is_interior());
    assert_eq!(
        t.value_str("./Open/E-Mail/POP3/POPServer"),
        Some("mail.Operatorx.com")
    );
    assert_eq!(
        t.node("./Open/E-Mail/POP3/Port").unwrap().format(),
        Format::Int
    );
    assert_eq!(t.value("./Open/E-Mail/POP3/Key"), Some(&[0u8, 1, 2][..]));
    assert_eq!(
        t.node("./Open/E-Mail/POP3/Key").unwrap().format(),
        Format::Bin
    );
    t.validate().unwrap();
}

#[test]
fn tnds_add_is_all_or_nothing() {
    let mut t = fixture();
    // The second top node clashes with an existing node.
    let xml = r#"<MgmtTree><VerDTD>1.2</VerDTD>
        <Node><NodeName>Fresh</NodeName><Node><NodeName>L</NodeName><Value>x</Value></Node></Node>
        <Node><NodeName>Leaf</NodeName><Value>y</Value></Node></MgmtTree>"#;
    let before = json(&t);
    assert_eq!(code(&mut t, "s2", &tnds_cmd(false, "./Open", xml)), 418);
    assert_eq!(json(&t), before);
    // A bad value deep inside.
    let xml = r#"<MgmtTree><Node><NodeName>Fresh</NodeName><Node><NodeName>N</NodeName>
        <RTProperties><Format><int/></Format></RTProperties><Value>x</Value></Node></Node></MgmtTree>"#;
    assert_eq!(code(&mut t, "s2", &tnds_cmd(false, "./Open", xml)), 415);
    assert_eq!(json(&t), before);
    // Malformed, missing target, leaf target, no rights.
    assert_eq!(
        code(&mut t, "s2", &tnds_cmd(false, "./Open", "<MgmtTree><Node>")),
        400
    );
    assert_eq!(code(&mut t, "s2", &tnds_cmd(false, "./Nope", EMAIL)), 404);
    assert_eq!(
        code(&mut t, "s2", &tnds_cmd(false, "./Open/Leaf", EMAIL)),
        405
    );
    assert_eq!(code(&mut t, "s2", &tnds_cmd(false, "./Owned", EMAIL)), 425);
    assert_eq!(json(&t), before);
}

#[test]
fn tnds_acls_follow_the_acl_replace_rules() {
    let mut t = fixture();
    t.set_acl("./Open/Sub", Acl::parse("Add=*&Get=*").unwrap())
        .unwrap();
    // A new interior node is the adder's: it may carry an ACL anywhere the
    // server may add.
    let interior = r#"<MgmtTree><Node><NodeName>A</NodeName>
        <RTProperties><ACL>Get=s2</ACL><Format><node/></Format></RTProperties></Node></MgmtTree>"#;
    assert_eq!(
        code(&mut t, "s2", &tnds_cmd(false, "./Open/Sub", interior)),
        200
    );
    assert_eq!(t.node("./Open/Sub/A").unwrap().acl().to_string(), "Get=s2");
    // A leaf's ACL needs Replace on its parent.
    let leaf = r#"<MgmtTree><Node><NodeName>L</NodeName>
        <RTProperties><ACL>Get=s2</ACL></RTProperties><Value>v</Value></Node></MgmtTree>"#;
    assert_eq!(
        code(&mut t, "s2", &tnds_cmd(false, "./Open/Sub", leaf)),
        425
    );
    assert_eq!(code(&mut t, "s2", &tnds_cmd(false, "./Open", leaf)), 200);
    assert_eq!(t.node("./Open/L").unwrap().acl().to_string(), "Get=s2");
    // Under a new interior node from the same document, the adder has Replace.
    let nested = r#"<MgmtTree><Node><NodeName>B</NodeName>
        <Node><NodeName>L</NodeName><RTProperties><ACL>Get=*</ACL></RTProperties><Value>v</Value></Node>
        </Node></MgmtTree>"#;
    assert_eq!(
        code(&mut t, "s2", &tnds_cmd(false, "./Open/Sub", nested)),
        200
    );
    // Malformed ACL text.
    let bad = interior.replace("Get=s2", "Get=").replace(">A<", ">C<");
    assert_eq!(code(&mut t, "s2", &tnds_cmd(false, "./Open", &bad)), 400);
}

#[test]
fn tnds_path_places_top_nodes() {
    let mut t = fixture();
    let xml = r#"<MgmtTree>
        <Node><NodeName>R</NodeName><Path>Sub</Path><Value>rel</Value></Node>
        <Node><NodeName>A</NodeName><Path>./Open/Sub</Path><Value>abs</Value></Node>
        </MgmtTree>"#;
    assert_eq!(code(&mut t, "s2", &tnds_cmd(false, "./Open", xml)), 200);
    assert_eq!(t.value_str("./Open/Sub/R"), Some("rel"));
    assert_eq!(t.value_str("./Open/Sub/A"), Some("abs"));
}

#[test]
fn tnds_out_and_back_in() {
    let mut src = fixture();
    src.set_leaf("./Open/Sub/Bin", vec![0u8, 255, 10], Format::Bin)
        .unwrap();
    src.set_leaf("./Open/Sub/Esc", "<&>\r\n", Format::Chr)
        .unwrap();
    src.set_title("./Open/Sub/Esc", Some("t".into())).unwrap();
    let items = list(
        &mut src,
        "s2",
        "./Open/Sub?list=TNDS+Value+Format+Type+Title",
    );
    let Some(Data::Xml(xml)) = &items[0].data else {
        panic!()
    };
    // Load it under another node of a fresh tree.
    let mut dst = fixture();
    dst.ensure_interior("./Open/Copy").unwrap();
    let xml = xml.replace("<Path>./Open</Path>", "<Path>./Open/Copy</Path>");
    assert_eq!(
        code(&mut dst, "s2", &tnds_cmd(false, "./Open/Copy", &xml)),
        200
    );
    for leaf in ["Bin", "Esc"] {
        let a = src.node(format!("./Open/Sub/{leaf}")).unwrap();
        let b = dst.node(format!("./Open/Copy/Sub/{leaf}")).unwrap();
        assert_eq!(
            (a.value(), a.format(), a.mime_type(), a.title()),
            (b.value(), b.format(), b.mime_type(), b.title())
        );
    }
}

#[test]
fn tnds_replace() {
    let mut t = fixture();
    let xml = r#"<MgmtTree><Node><NodeName>Open</NodeName>
        <Node><NodeName>Leaf</NodeName><Value>new</Value></Node>
        <Node><NodeName>Num</NodeName><RTProperties><Format><int/></Format></RTProperties><Value>6</Value></Node>
        <Node><NodeName>Added</NodeName><Value>a</Value></Node>
        <Node><NodeName>Sub</NodeName><Value>now a leaf</Value></Node>
        </Node></MgmtTree>"#;
    assert_eq!(code(&mut t, "s2", &tnds_cmd(true, ".", xml)), 200);
    assert_eq!(t.value_str("./Open/Leaf"), Some("new"));
    assert_eq!(t.value_str("./Open/Num"), Some("6"));
    assert_eq!(t.value_str("./Open/Added"), Some("a"));
    assert!(t.node("./Open/Sub").unwrap().is_leaf());
    assert!(!t.exists("./Open/Other"), "absent children are deleted");
    // A node that may not be deleted makes the whole Replace fail.
    let before = json(&t);
    let xml = r#"<MgmtTree><Node><NodeName>Perm</NodeName></Node></MgmtTree>"#;
    t.set_leaf("./Perm/Extra", "e", Format::Chr).unwrap();
    t.set_permanent("./Perm/Extra", true).unwrap();
    let before2 = json(&t);
    assert_ne!(before, before2);
    assert_eq!(code(&mut t, "s2", &tnds_cmd(true, ".", xml)), 405);
    assert_eq!(json(&t), before2);
}
