//! The standard objects seen through server commands (digest §9).

use omadm_tree::stdobj::{self, AppAddr, AppAuth, DevDetailConfig, DevInfoConfig, DmAccConfig};
use omadm_tree::{Tree, TreeConfig, UriLimits};
use omadm_wire::model::Data;

use crate::util::*;

fn device() -> Tree {
    let mut t = Tree::new(TreeConfig {
        uri_limits: UriLimits {
            max_depth: 8,
            max_tot_len: 200,
            max_seg_len: 32,
        },
        ..TreeConfig::default()
    });
    stdobj::install_dev_info(
        &mut t,
        &DevInfoConfig {
            dev_id: "IMEI:493005100592800".into(),
            man: "Acme".into(),
            model: "Rocket".into(),
            dm_v: "scomo 0.1".into(),
            lang: "en-US".into(),
        },
    )
    .unwrap();
    stdobj::install_dev_detail(
        &mut t,
        &DevDetailConfig {
            dev_typ: "gateway".into(),
            oem: "Acme".into(),
            fw_v: "1.0".into(),
            sw_v: "2.0".into(),
            hw_v: "3".into(),
            lrg_obj: true,
        },
    )
    .unwrap();
    for (acc, sid) in [("A", "srvA"), ("B", "srvB")] {
        stdobj::install_dm_account(
            &mut t,
            &DmAccConfig {
                account: acc.into(),
                server_id: sid.into(),
                name: Some(format!("Server {acc}")),
                addrs: vec![AppAddr {
                    name: "1".into(),
                    addr: format!("https://{sid}.example/dm"),
                    addr_type: "URI".into(),
                }],
                aauth_pref: Some("DIGEST".into()),
                auths: vec![
                    AppAuth {
                        name: "cl".into(),
                        level: "CLCRED".into(),
                        auth_type: "DIGEST".into(),
                        auth_name: Some("dev".into()),
                        secret: Some("pw".into()),
                        data: Some(b"nonce".to_vec()),
                    },
                    AppAuth {
                        name: "srv".into(),
                        level: "SRVCRED".into(),
                        auth_type: "DIGEST".into(),
                        auth_name: Some(sid.into()),
                        secret: Some("spw".into()),
                        data: None,
                    },
                ],
            },
        )
        .unwrap();
    }
    t
}

#[test]
fn devinfo_is_get_only() {
    let mut t = device();
    assert_eq!(
        get_text(&mut t, "anyone", "./DevInfo/DevId"),
        "IMEI:493005100592800"
    );
    assert_eq!(
        get_text(&mut t, "anyone", "./DevInfo"),
        "DevId/DmV/Lang/Man/Mod"
    );
    assert_eq!(
        get_text(&mut t, "anyone", "./DevInfo?prop=Type"),
        stdobj::DEVINFO_MO_ID
    );
    assert_eq!(
        code(&mut t, "srvA", &replace_text("./DevInfo/Man", "x")),
        405
    );
    assert_eq!(code(&mut t, "srvA", &delete("./DevInfo/Man")), 405);
    assert_eq!(code(&mut t, "srvA", &delete("./DevInfo")), 405);
    assert_eq!(code(&mut t, "srvA", &add_leaf("./DevInfo/Foo", "x")), 405);
    assert_eq!(code(&mut t, "srvA", &add_node("./DevInfo/Ext")), 405);
    let items = stdobj::dev_info_items(&t);
    assert_eq!(items.len(), 5);
    assert_eq!(items[0].source.as_ref().unwrap().loc_uri, "./DevInfo/DevId");
}

#[test]
fn devdetail_reports_the_limits() {
    let mut t = device();
    assert_eq!(get_text(&mut t, "x", "./DevDetail/URI/MaxDepth"), "8");
    assert_eq!(get_text(&mut t, "x", "./DevDetail/URI/MaxTotLen"), "200");
    assert_eq!(get_text(&mut t, "x", "./DevDetail/URI/MaxSegLen"), "32");
    let (data, meta) = get_data(&mut t, "x", "./DevDetail/LrgObj");
    assert_eq!(data, Some(Data::Text("true".into())));
    assert_eq!(meta, Some(omadm_wire::model::Meta::format("bool")));
    assert_eq!(
        get_text(&mut t, "x", "./DevDetail?prop=Type"),
        stdobj::DEVDETAIL_MO_ID
    );
    assert_eq!(
        code(&mut t, "srvA", &replace_text("./DevDetail/FwV", "9")),
        405
    );
}

#[test]
fn dmacc_is_private_to_its_server() {
    let mut t = device();
    assert_eq!(get_text(&mut t, "srvA", "./DMAcc/A/ServerID"), "srvA");
    assert_eq!(get_text(&mut t, "srvA", "./DMAcc/A/AppID"), "w7");
    assert_eq!(code(&mut t, "srvB", &get("./DMAcc/A/ServerID")), 425);
    assert_eq!(code(&mut t, "other", &get("./DMAcc")), 425);
    assert_eq!(get_text(&mut t, "srvB", "./DMAcc"), "A/B");
    // Secrets: no Get at all, but the owner may replace them.
    assert_eq!(
        code(&mut t, "srvA", &get("./DMAcc/A/AppAuth/cl/AAuthSecret")),
        405
    );
    assert_eq!(
        code(&mut t, "srvA", &get("./DMAcc/A/AppAuth/cl/AAuthData")),
        405
    );
    assert_eq!(
        code(
            &mut t,
            "srvA",
            &replace_text("./DMAcc/A/AppAuth/cl/AAuthSecret", "new")
        ),
        200
    );
    assert_eq!(
        code(
            &mut t,
            "srvB",
            &replace_text("./DMAcc/A/AppAuth/cl/AAuthSecret", "new")
        ),
        425
    );
    assert_eq!(
        code(&mut t, "srvA", &replace_text("./DMAcc/A/AppID", "w8")),
        405
    );
    assert_eq!(
        code(&mut t, "srvA", &replace_text("./DMAcc/A/ServerID", "x")),
        405
    );
    assert_eq!(code(&mut t, "srvA", &delete("./DMAcc/A")), 405);
    // Listings show the secret nodes but never their values.
    let replies = run(&mut t, "srvA", &get("./DMAcc/A?list=StructData"));
    let items = &replies[1].as_results().unwrap().items;
    let secret = items
        .iter()
        .find(|i| i.source.as_ref().unwrap().loc_uri == "./DMAcc/A/AppAuth/cl/AAuthSecret")
        .unwrap();
    assert_eq!(secret.data, None);
    let replies = run(&mut t, "srvA", &get("./DMAcc/A?list=TNDS"));
    let Some(Data::Xml(xml)) = &replies[1].as_results().unwrap().items[0].data else {
        panic!()
    };
    assert!(
        xml.contains("AAuthSecret") && !xml.contains(">new<") && !xml.contains("bm9uY2U"),
        "{xml}"
    );
    // The server may add an address, but not an unknown node.
    assert_eq!(
        code(
            &mut t,
            "srvA",
            &add_leaf("./DMAcc/A/AppAddr/2/Addr", "https://b")
        ),
        200
    );
    assert_eq!(code(&mut t, "srvA", &add_leaf("./DMAcc/A/Frob", "x")), 405);
    // The engine reads accounts back.
    let accounts = stdobj::dm_accounts(&t);
    assert_eq!(accounts.len(), 2);
    assert_eq!(accounts[0].auths[0].secret.as_deref(), Some("new"));
    assert_eq!(accounts[0].auths[0].data.as_deref(), Some(&b"nonce"[..]));
    assert_eq!(accounts[0].addrs.len(), 2);
    t.validate().unwrap();
}

#[test]
fn removing_a_server_id() {
    let mut t = device();
    t.remove_server_id("srvA");
    assert_eq!(t.node("./DMAcc").unwrap().acl().to_string(), "Get=srvB");
    assert!(t.node("./DMAcc/A").unwrap().acl().is_empty());
    assert_eq!(t.root().acl().to_string(), "Add=*&Get=*");
}
