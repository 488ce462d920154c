//! Atomic (all or nothing), Sequence (in order) and Alerts inside them
//! (digest §4).

use omadm_tree::{Acl, Format};
use omadm_wire::StatusCode;

use crate::util::*;

fn s(cmd: &str, code: u16) -> (String, u16) {
    (cmd.to_owned(), code)
}

#[test]
fn atomic_success_commits() {
    let mut t = fixture();
    let c = atomic(numbered(vec![
        add_node("./Open/New"),
        add_leaf("./Open/New/L", "x"),
        replace_text("./Open/Leaf", "y"),
        delete("./Open/Other"),
    ]));
    let replies = run(&mut t, "s2", &c);
    assert_eq!(
        codes(&replies),
        [
            s("Atomic", 200),
            s("Add", 200),
            s("Add", 200),
            s("Replace", 200),
            s("Delete", 200)
        ]
    );
    assert_eq!(statuses(&replies)[0].cmd_ref, 10);
    assert_eq!(t.value_str("./Open/New/L"), Some("x"));
    assert_eq!(t.value_str("./Open/Leaf"), Some("y"));
    assert!(!t.exists("./Open/Other"));
}

#[test]
fn atomic_failure_rolls_back_exactly() {
    let mut t = fixture();
    let before = json(&t);
    let c = atomic(numbered(vec![
        add_node("./Open/New"),
        add_leaf("./Open/New/L", "x"),
        replace_text("./Open/Leaf", "y"),
        replace_text("./Open/Sub?prop=Name", "Moved"),
        replace_text("./Open/Num?prop=ACL", "Get=s9"),
        replace_text("./Open/Leaf?prop=Title", "T"),
        copy("./Open/Leaf", "./Open/Copied"),
        delete("./Open/Other"),
        replace_text("./Open/Missing", "z"), // 404: the Atomic fails here
        add_leaf("./Open/After", "never"),
    ]));
    let replies = run(&mut t, "s2", &c);
    assert_eq!(
        codes(&replies),
        [
            s("Atomic", 507),
            s("Add", 216),
            s("Add", 216),
            s("Replace", 216),
            s("Replace", 216),
            s("Replace", 216),
            s("Replace", 216),
            s("Copy", 216),
            s("Delete", 216),
            s("Replace", 404),
            s("Add", 215),
        ]
    );
    assert_eq!(json(&t), before);
    t.validate().unwrap();
}

#[test]
fn atomic_rolls_back_tnds_and_deep_deletes() {
    let mut t = fixture();
    let before = json(&t);
    let c = atomic(numbered(vec![
        delete("./Open"),
        delete("./RO"),
        add_leaf("./Perm/Leaf", "dup"),
    ]));
    let replies = run(&mut t, "s2", &c);
    assert_eq!(
        codes(&replies),
        [
            s("Atomic", 507),
            s("Delete", 216),
            s("Delete", 216),
            s("Add", 418)
        ]
    );
    assert_eq!(json(&t), before);
}

#[test]
fn forbidden_members_refuse_the_whole_atomic() {
    for bad in [
        get("./Open"),
        exec("./Open/Leaf", None),
        atomic(vec![add_node("./Open/X")]),
        sequence(vec![]),
    ] {
        let mut t = fixture();
        let before = json(&t);
        let name = bad.name();
        let replies = run(&mut t, "s2", &atomic(vec![add_node("./Open/New"), bad]));
        let got = codes(&replies);
        assert_eq!(got[0], s("Atomic", 500), "{name}");
        assert_eq!(got[1], s("Add", 215), "{name}");
        assert_eq!(got[2], s(name, 500), "{name}");
        assert_eq!(json(&t), before, "{name}");
    }
}

#[test]
fn atomic_alerts() {
    // "No" to a confirmation fails the Atomic.
    let mut t = fixture();
    let before = json(&t);
    let mut hooks = Recorder {
        alert_status: Some(StatusCode::NOT_MODIFIED),
        ..Recorder::default()
    };
    let c = atomic(numbered(vec![
        add_node("./Open/New"),
        alert(1101),
        add_node("./Open/New2"),
    ]));
    let replies = run_with(&mut t, "s2", &c, &mut hooks);
    assert_eq!(
        codes(&replies),
        [
            s("Atomic", 507),
            s("Add", 216),
            s("Alert", 304),
            s("Add", 215)
        ]
    );
    assert_eq!(json(&t), before);
    assert!(
        hooks.events.is_empty(),
        "no events for a rolled-back Atomic"
    );
    // "Yes" lets it through, and change events arrive after the commit.
    let mut hooks = Recorder::default();
    let replies = run_with(&mut t, "s2", &c, &mut hooks);
    assert_eq!(
        codes(&replies),
        [
            s("Atomic", 200),
            s("Add", 200),
            s("Alert", 200),
            s("Add", 200)
        ]
    );
    assert_eq!(hooks.events.len(), 2);
}

#[test]
fn sequence_runs_in_order() {
    let mut t = fixture();
    let c = sequence(numbered(vec![
        add_node("./Open/S"),
        add_leaf("./Open/S/L", "1"),
        replace_text("./Open/S/L", "2"),
        copy("./Open/S/L", "./Open/S/M"),
        get("./Open/S/M"),
        replace_text("./Open/Missing", "x"), // fails; the Sequence goes on
        delete("./Open/S/L"),
    ]));
    let replies = run(&mut t, "s2", &c);
    assert_eq!(
        codes(&replies),
        [
            s("Sequence", 200),
            s("Add", 200),
            s("Add", 200),
            s("Replace", 200),
            s("Copy", 200),
            s("Get", 200),
            s("Replace", 404),
            s("Delete", 200),
        ]
    );
    let results = replies
        .iter()
        .find_map(omadm_tree::Reply::as_results)
        .unwrap();
    assert_eq!(results.items[0].data, text("2"));
    assert_eq!(results.cmd_ref, 24);
    assert!(!t.exists("./Open/S/L"));
}

#[test]
fn sequence_alert_abort_skips_the_rest() {
    let mut t = fixture();
    let mut hooks = Recorder {
        alert_status: Some(StatusCode::NOT_MODIFIED),
        ..Recorder::default()
    };
    let c = sequence(numbered(vec![
        add_node("./Open/A"),
        alert(1101),
        add_node("./Open/B"),
        atomic(vec![add_node("./Open/C")]),
    ]));
    let replies = run_with(&mut t, "s2", &c, &mut hooks);
    assert_eq!(
        codes(&replies),
        [
            s("Sequence", 200),
            s("Add", 200),
            s("Alert", 304),
            s("Add", 215),
            s("Atomic", 215),
            s("Add", 215)
        ]
    );
    assert!(t.exists("./Open/A") && !t.exists("./Open/B"));
    // Without an alert handler, UI alerts are 406 — which also stops the Sequence.
    let replies = run(
        &mut t,
        "s2",
        &sequence(vec![alert(1100), add_node("./Open/D")]),
    );
    assert_eq!(
        codes(&replies),
        [s("Sequence", 200), s("Alert", 406), s("Add", 215)]
    );
}

#[test]
fn sequence_with_atomic_and_exec() {
    let mut t = fixture();
    let mut hooks = Recorder {
        exec_status: Some(StatusCode::ACCEPTED),
        ..Recorder::default()
    };
    let c = sequence(numbered(vec![
        atomic(vec![add_node("./Open/X"), delete("./Open/Nope")]),
        exec("./Open/Leaf", Some("c1")),
        sequence(vec![add_node("./Open/Y")]),
        add_node("./Open/Z"),
    ]));
    let replies = run_with(&mut t, "s2", &c, &mut hooks);
    assert_eq!(
        codes(&replies),
        [
            s("Sequence", 200),
            s("Atomic", 507),
            s("Add", 216),
            s("Delete", 404),
            s("Exec", 202),
            s("Sequence", 500),
            s("Add", 215),
            s("Add", 200),
        ]
    );
    assert!(!t.exists("./Open/X") && !t.exists("./Open/Y") && t.exists("./Open/Z"));
}

#[test]
fn top_level_alert_goes_to_the_hook() {
    let mut t = fixture();
    assert_eq!(code(&mut t, "s2", &alert(1100)), 406);
    let mut hooks = Recorder::default();
    let replies = run_with(&mut t, "s2", &alert(1101), &mut hooks);
    let st = statuses(&replies)[0];
    assert_eq!((st.cmd.as_str(), st.cmd_ref, st.data.0), ("Alert", 5, 200));
}

#[test]
fn rollback_restores_acl_inheritance_and_counts() {
    let mut t = fixture();
    t.set_acl(
        "./Open/Sub",
        Acl::parse("Get=*&Add=*&Replace=*&Delete=*").unwrap(),
    )
    .unwrap();
    t.set_leaf("./Open/Sub/V", "1", Format::Int).unwrap();
    let count = t.node_count();
    let before = json(&t);
    let c = atomic(numbered(vec![
        replace_text("./Open/Sub?prop=ACL", ""),
        add_leaf("./Open/Sub/A/B/C", "x"),
        replace_text("./Open/Sub/V", "bad"),
    ]));
    let replies = run(&mut t, "s2", &c);
    assert_eq!(codes(&replies)[0], s("Atomic", 507));
    assert_eq!(json(&t), before);
    assert_eq!(t.node_count(), count);
}
