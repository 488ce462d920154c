//! URI limits (414), room (420), value size (413).

use omadm_tree::{Acl, Format, Tree, TreeConfig, UriLimits};

use crate::util::*;

fn small() -> Tree {
    let mut t = Tree::new(TreeConfig {
        uri_limits: UriLimits {
            max_depth: 3,
            max_tot_len: 15,
            max_seg_len: 5,
        },
        max_nodes: 6,
        max_value_len: 8,
        root_acl: Acl::parse(crate::util::ALL_ANY).unwrap(),
    });
    t.set_leaf("./A/B", "x", Format::Chr).unwrap();
    t
}

#[test]
fn uri_limits_on_every_command() {
    let deep = "./A/B/C/D";
    let long_seg = "./A/ABCDEF";
    let long = "./AAAAA/BBBBB/CC";
    for uri in [deep, long_seg, long] {
        let mut t = small();
        for c in [
            get(uri),
            add_leaf(uri, "x"),
            replace_text(uri, "x"),
            delete(uri),
            exec(uri, None),
            copy("./A/B", uri),
            copy(uri, "./A/C"),
            get(&format!("{uri}?prop=ACL")),
        ] {
            assert_eq!(code(&mut t, "s", &c), 414, "{c:?}");
        }
    }
    // Exactly at the limits is fine.
    let mut t = small();
    assert_eq!(code(&mut t, "s", &add_leaf("./A/BBBBB/C", "x")), 200);
    // The ?prop suffix does not count toward MaxTotLen.
    assert_eq!(code(&mut t, "s", &get("./A/BBBBB/C?prop=Format")), 200);
    // Unlimited.
    let mut t = Tree::new(TreeConfig {
        uri_limits: UriLimits::UNLIMITED,
        ..TreeConfig::default()
    });
    let deep = format!("./{}", vec!["n"; 40].join("/"));
    assert_eq!(code(&mut t, "s", &add_leaf(&deep, "x")), 200);
}

#[test]
fn device_full_and_large_values() {
    let mut t = small();
    assert_eq!(t.node_count(), 3);
    assert_eq!(code(&mut t, "s", &add_leaf("./A/C", "x")), 200);
    assert_eq!(code(&mut t, "s", &add_leaf("./X/Y/Z", "x")), 420);
    assert_eq!(code(&mut t, "s", &add_leaf("./X/Y", "x")), 200);
    assert_eq!(code(&mut t, "s", &add_leaf("./A/D", "x")), 420);
    assert_eq!(code(&mut t, "s", &replace_text("./A/B", "123456789")), 413);
    assert_eq!(code(&mut t, "s", &replace_text("./A/B", "12345678")), 200);
    let mut t = small();
    assert_eq!(code(&mut t, "s", &add_leaf("./A/C", "123456789")), 413);
    t.validate().unwrap();
}
