//! Exec dispatch, change veto and change notification (how MOs plug in).

use omadm_tree::{ChangeKind, HookRouter, NoHooks, Property, Tree, TreeHooks, Uri};
use omadm_wire::StatusCode;

use crate::util::*;

#[test]
fn exec_reaches_the_hook_with_its_arguments() {
    let mut t = fixture();
    let mut hooks = Recorder {
        exec_status: Some(StatusCode::ACCEPTED),
        ..Recorder::default()
    };
    let replies = run_with(
        &mut t,
        "s2",
        &exec("./Open/Leaf", Some("corr-1")),
        &mut hooks,
    );
    let st = statuses(&replies)[0];
    assert_eq!((st.cmd.as_str(), st.cmd_ref, st.data.0), ("Exec", 4, 202));
    assert_eq!(st.target_refs, ["./Open/Leaf"]);
    assert_eq!(
        hooks.execs,
        [(
            "./Open/Leaf".to_owned(),
            Some("corr-1".to_owned()),
            Some("arg".to_owned()),
            "s2".to_owned()
        )]
    );
    // The handler updated the tree.
    assert_eq!(t.value_str("./Open/LastExec"), Some("./Open/Leaf"));
    // Checks come first: the hook never sees a denied Exec.
    let replies = run_with(&mut t, "s2", &exec("./Owned/Leaf", None), &mut hooks);
    assert_eq!(statuses(&replies)[0].data.0, 425);
    assert_eq!(hooks.execs.len(), 1);
}

#[test]
fn veto_leaves_the_tree_unchanged() {
    let mut t = fixture();
    let before = json(&t);
    let mut hooks = Recorder {
        veto: Some(("./Open/Leaf".into(), StatusCode(1402))),
        ..Recorder::default()
    };
    for c in [
        replace_text("./Open/Leaf", "x"),
        delete("./Open/Leaf"),
        replace_text("./Open/Leaf?prop=Name", "L2"),
        replace_text("./Open/Leaf?prop=ACL", "Get=*"),
        copy("./Open/Num", "./Open/Leaf"),
    ] {
        let replies = run_with(&mut t, "s2", &c, &mut hooks);
        assert_eq!(statuses(&replies)[0].data.0, 1402, "{c:?}");
    }
    // Vetoing one node of a multi-node Add (an implicit ancestor) undoes it all.
    hooks.veto = Some(("./Open/A/B".into(), StatusCode::FORBIDDEN));
    let replies = run_with(&mut t, "s2", &add_leaf("./Open/A/B/C", "x"), &mut hooks);
    assert_eq!(statuses(&replies)[0].data.0, 403);
    assert_eq!(json(&t), before);
    assert!(hooks.events.is_empty());
}

#[test]
fn change_events_after_commit() {
    let mut t = fixture();
    let mut hooks = Recorder::default();
    run_with(&mut t, "s2", &add_leaf("./Open/A/B", "x"), &mut hooks);
    run_with(&mut t, "s2", &replace_text("./Open/A/B", "y"), &mut hooks);
    run_with(
        &mut t,
        "s2",
        &replace_text("./Open/A?prop=Name", "Z"),
        &mut hooks,
    );
    run_with(
        &mut t,
        "s2",
        &replace_text("./Open/Z?prop=Title", "t"),
        &mut hooks,
    );
    run_with(&mut t, "s2", &delete("./Open/Z"), &mut hooks);
    let got: Vec<(ChangeKind, String)> = hooks
        .events
        .iter()
        .map(|e| (e.kind.clone(), e.path.to_string()))
        .collect();
    assert_eq!(
        got,
        [
            (ChangeKind::Add, "./Open/A".into()),
            (ChangeKind::Add, "./Open/A/B".into()),
            (ChangeKind::Replace, "./Open/A/B".into()),
            (ChangeKind::Rename("Z".into()), "./Open/A".into()),
            (ChangeKind::Property(Property::Title), "./Open/Z".into()),
            (ChangeKind::Delete, "./Open/Z".into()),
        ]
    );
    assert!(hooks.events.iter().all(|e| e.server_id == "s2"));
}

/// An MO client that reacts to changes by updating the tree.
struct Scomoish;

impl TreeHooks for Scomoish {
    fn check_change(
        &mut self,
        _tree: &Tree,
        change: &omadm_tree::Change<'_>,
    ) -> Result<(), StatusCode> {
        // Validate PkgURL writes.
        if change.path.name() == Some("PkgURL")
            && !change.value.is_some_and(|v| v.starts_with(b"https://"))
        {
            return Err(StatusCode::UNSUPPORTED_MEDIA_TYPE);
        }
        Ok(())
    }

    fn after_change(
        &mut self,
        tree: &mut Tree,
        event: &omadm_tree::ChangeEvent,
    ) -> Result<(), StatusCode> {
        // Device-managed children of a new entry, created at once.
        if event.kind == ChangeKind::Add && event.path.depth() == 3 {
            let ops = event.path.child("Operations").unwrap();
            tree.ensure_interior(&ops).map_err(|e| e.status())?;
            tree.set_leaf(ops.child("Download").unwrap(), "", omadm_tree::Format::Null)
                .map_err(|e| e.status())?;
            tree.set_leaf(
                event.path.child("Data").unwrap(),
                Vec::new(),
                omadm_tree::Format::Bin,
            )
            .map_err(|e| e.status())?;
        }
        // Refuse to lose the last entry (to show Err undoes the change).
        if event.kind == ChangeKind::Delete && event.path.name() == Some("Last") {
            return Err(StatusCode::FORBIDDEN);
        }
        Ok(())
    }

    fn exec(&mut self, _tree: &mut Tree, _req: &omadm_tree::ExecRequest<'_>) -> StatusCode {
        StatusCode::ACCEPTED
    }
}

#[test]
fn router_dispatches_by_subtree() {
    let mut t = fixture();
    t.ensure_interior("./Open/MO").unwrap();
    let mut other = Recorder::default();
    let mut alerts = Recorder {
        alert_status: Some(StatusCode::OK),
        ..Recorder::default()
    };
    {
        let mut router = HookRouter::new()
            .route("./Open/MO", Scomoish)
            .unwrap()
            .route("./Open", &mut other)
            .unwrap()
            .fallback(&mut alerts);
        let r = &mut router;
        assert_eq!(
            t.apply(&add_node("./Open/MO/P1"), &ctx("s2"), r)[0]
                .as_status()
                .unwrap()
                .data
                .0,
            200
        );
        assert!(
            t.exists("./Open/MO/P1/Operations/Download"),
            "the MO reacted"
        );
        assert_eq!(
            t.apply(&add_leaf("./Open/MO/P1/PkgURL", "ftp://x"), &ctx("s2"), r)[0]
                .as_status()
                .unwrap()
                .data
                .0,
            415
        );
        assert_eq!(
            t.apply(
                &exec("./Open/MO/P1/Operations/Download", None),
                &ctx("s2"),
                r
            )[0]
            .as_status()
            .unwrap()
            .data
            .0,
            202
        );
        assert_eq!(
            t.apply(&exec("./Open/Leaf", None), &ctx("s2"), r)[0]
                .as_status()
                .unwrap()
                .data
                .0,
            200
        );
        assert_eq!(
            t.apply(&alert(1101), &ctx("s2"), r)[0]
                .as_status()
                .unwrap()
                .data
                .0,
            200
        );
        // Outside every route: the fallback.
        assert_eq!(
            t.apply(&exec("./RO", None), &ctx("s2"), r)[0]
                .as_status()
                .unwrap()
                .data
                .0,
            200
        );
    }
    assert_eq!(other.execs.len(), 1);
    assert_eq!(other.events.len(), 0, "MO events went to the MO route");
    assert_eq!(alerts.execs.len(), 1);
    // Without a fallback, unrouted Execs are 405.
    let mut router = HookRouter::new().route("./Open/MO", Scomoish).unwrap();
    assert_eq!(
        t.apply(&exec("./RO", None), &ctx("s2"), &mut router)[0]
            .as_status()
            .unwrap()
            .data
            .0,
        405
    );
}

#[test]
fn no_hooks_defaults() {
    let mut t = fixture();
    let replies = t.apply(&exec("./Open/Leaf", None), &ctx("s2"), &mut NoHooks);
    assert_eq!(statuses(&replies)[0].data, StatusCode::COMMAND_NOT_ALLOWED);
    let _ = Uri::root();
}

#[test]
fn after_change_edits_are_part_of_the_command() {
    let mut t = fixture();
    t.ensure_interior("./Open/MO").unwrap();
    let mut router = HookRouter::new().route("./Open/MO", Scomoish).unwrap();
    // Add + Replace of the device-created Data in one Atomic.
    let c = atomic(vec![
        add_node("./Open/MO/D1"),
        replace(
            "./Open/MO/D1/Data",
            Some("b64"),
            Some(omadm_wire::model::Data::Binary(vec![1, 2])),
        ),
    ]);
    let replies = t.apply(&c, &ctx("s2"), &mut router);
    assert_eq!(
        codes(&replies).iter().map(|(_, c)| *c).collect::<Vec<_>>(),
        [200, 200, 200]
    );
    assert_eq!(t.value("./Open/MO/D1/Data"), Some(&[1u8, 2][..]));
    // A failing Atomic undoes the hook's edits too.
    let before = json(&t);
    let c = atomic(vec![add_node("./Open/MO/D2"), delete("./Open/Nope")]);
    let replies = t.apply(&c, &ctx("s2"), &mut router);
    assert_eq!(statuses(&replies)[0].data, StatusCode::ATOMIC_FAILED);
    assert_eq!(json(&t), before);
    // after_change refusing: the change is undone.
    t.ensure_interior("./Open/MO/Last").unwrap();
    let before = json(&t);
    let replies = t.apply(&delete("./Open/MO/Last"), &ctx("s2"), &mut router);
    assert_eq!(statuses(&replies)[0].data, StatusCode::FORBIDDEN);
    assert_eq!(json(&t), before);
}
