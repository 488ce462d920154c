//! Random command sequences: no panic, invariants hold, persistence round
//! trips, and Atomic is exactly "all members or nothing".

use omadm_tree::{Acl, Format, Reply, Tree};
use omadm_wire::model::{Command, Data};
use omadm_wire::StatusCode;
use proptest::prelude::*;

use crate::util::*;

const NAMES: [&str; 3] = ["a", "b", "c"];

fn path() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::sample::select(&NAMES[..]), 1..=3),
        any::<bool>(),
    )
        .prop_map(|(segs, dot)| {
            let p = segs.join("/");
            if dot {
                format!("./{p}")
            } else {
                p
            }
        })
}

fn acl() -> impl Strategy<Value = String> {
    prop::sample::select(
        &[
            "",
            "Get=*",
            "Add=*&Delete=*&Get=*&Replace=*",
            "Add=s1&Delete=s1&Get=s1&Replace=s1",
            "Get=s2&Replace=s1+s2",
            "Bad=",
        ][..],
    )
    .prop_map(str::to_owned)
}

/// Commands allowed inside an Atomic.
fn atomic_member() -> impl Strategy<Value = Command> {
    prop_oneof![
        path().prop_map(|p| add_node(&p)),
        (path(), "[a-z]{0,3}").prop_map(|(p, v)| add_leaf(&p, &v)),
        (path(), any::<i32>()).prop_map(|(p, v)| add(&p, Some("int"), text(&v.to_string()))),
        (path(), prop::collection::vec(any::<u8>(), 0..4)).prop_map(|(p, v)| add(
            &p,
            Some("b64"),
            Some(Data::Binary(v))
        )),
        (path(), "[a-z0-9]{0,3}").prop_map(|(p, v)| replace_text(&p, &v)),
        path().prop_map(|p| delete(&p)),
        (path(), path()).prop_map(|(s, d)| copy(&s, &d)),
        (path(), acl()).prop_map(|(p, a)| replace_text(&format!("{p}?prop=ACL"), &a)),
        (path(), prop::sample::select(&NAMES[..]))
            .prop_map(|(p, n)| replace_text(&format!("{p}?prop=Name"), n)),
        (path(), "[a-z]{0,4}").prop_map(|(p, v)| replace_text(&format!("{p}?prop=Title"), &v)),
        Just(alert(1101)),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    let simple = prop_oneof![
        4 => atomic_member(),
        1 => path().prop_map(|p| get(&p)),
        1 => path().prop_map(|p| get(&format!("{p}?list=TNDS"))),
        1 => path().prop_map(|p| get(&format!("{p}?list=StructData"))),
        1 => path().prop_map(|p| get(&format!("{p}?prop=VerNo"))),
        1 => path().prop_map(|p| exec(&p, Some("c"))),
    ];
    simple.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(atomic),
            prop::collection::vec(inner, 0..4).prop_map(sequence),
        ]
    })
}

fn server() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&["s1", "s2"][..])
}

fn start() -> Tree {
    let mut t = Tree::default();
    t.set_leaf("./a/a", "x", Format::Chr).unwrap();
    t.set_acl(
        "./a",
        Acl::parse("Add=*&Delete=*&Exec=*&Get=*&Replace=*").unwrap(),
    )
    .unwrap();
    t.set_leaf("./b", "1", Format::Int).unwrap();
    t
}

fn check_replies(cmd: &Command, replies: &[Reply]) -> Result<(), TestCaseError> {
    let sts = statuses(replies);
    prop_assert!(!sts.is_empty(), "no status for {cmd:?}");
    prop_assert_eq!(&sts[0].cmd, cmd.name());
    prop_assert_eq!(sts[0].cmd_ref, cmd.cmd_id());
    for r in replies {
        if let Reply::Results(res) = r {
            prop_assert!(!res.items.is_empty());
        }
    }
    Ok(())
}

fn all_ok(replies: &[Reply]) -> bool {
    statuses(replies)
        .iter()
        .all(|s| s.data == StatusCode::OK || s.data == StatusCode::ACCEPTED)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_commands_keep_the_tree_sound(
        cmds in prop::collection::vec((server(), command()), 1..25)
    ) {
        let mut t = start();
        let mut hooks = Recorder::default();
        for (sid, cmd) in &cmds {
            let replies = run_with(&mut t, sid, cmd, &mut hooks);
            check_replies(cmd, &replies)?;
            prop_assert!(t.validate().is_ok(), "{:?} after {cmd:?}", t.validate());
        }
        let back: Tree = serde_json::from_str(&json(&t)).unwrap();
        prop_assert_eq!(&back, &t);
        prop_assert_eq!(back.node_count(), t.node_count());
    }

    #[test]
    fn atomic_is_all_members_or_nothing(
        setup in prop::collection::vec((server(), atomic_member()), 0..15),
        members in prop::collection::vec(atomic_member(), 1..6),
        sid in server(),
    ) {
        let mut t = start();
        let mut hooks = Recorder::default();
        for (s, c) in &setup {
            run_with(&mut t, s, c, &mut hooks);
        }
        let before = json(&t);
        // The members one by one, on a copy.
        let mut one_by_one = t.clone();
        let mut ok = true;
        for m in &members {
            ok &= all_ok(&run_with(&mut one_by_one, sid, m, &mut hooks));
            if !ok { break; }
        }
        let replies = run_with(&mut t, sid, &atomic(members.clone()), &mut hooks);
        let head = statuses(&replies)[0].data;
        if ok {
            prop_assert_eq!(head, StatusCode::OK);
            prop_assert_eq!(json(&t), json(&one_by_one));
        } else {
            prop_assert_eq!(head, StatusCode::ATOMIC_FAILED);
            prop_assert_eq!(json(&t), before.clone());
        }
        // And a member that surely fails undoes everything.
        let mut failing = members;
        failing.push(replace_text("./zz/q", "x"));
        let before = json(&t);
        let replies = run_with(&mut t, sid, &atomic(failing), &mut hooks);
        prop_assert_eq!(statuses(&replies)[0].data, StatusCode::ATOMIC_FAILED);
        prop_assert!(statuses(&replies).iter().skip(1).all(|s| matches!(s.data.0, 215 | 216) || !s.data.is_success()));
        prop_assert_eq!(json(&t), before);
        prop_assert!(t.validate().is_ok());
    }
}
