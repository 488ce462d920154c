//! The command queue: FIFO claims, outcomes, completion, crash recovery.

use std::collections::BTreeSet;

use omadm_wire::model::{Item, Results};
use omadm_wire::StatusCode;
use scomo_server::store::{
    BatchId, BatchState, Lease, NewBatch, RequeueReport, SessionEnd, SessionOutcome, StoreError,
};

use crate::harness::{atomic, device_session, exec, get, new_device, open_session, t, Db};

fn batch(device: &str, owner: &str, commands: Vec<omadm_wire::model::Command>) -> NewBatch {
    NewBatch {
        device_id: device.into(),
        owner: owner.into(),
        commands,
        idempotent: false,
    }
}

fn lease(consumer: &str, until: i64) -> Lease {
    Lease {
        consumer: consumer.into(),
        until: t(until),
    }
}

fn man_results() -> Vec<Results> {
    vec![Results {
        cmd_ref: 2,
        items: vec![Item {
            source: Some(omadm_wire::model::Location::uri("./DevInfo/Man")),
            data: Some(omadm_wire::model::Data::Text("Acme".into())),
            ..Item::default()
        }],
        ..Results::default()
    }]
}

pub(crate) async fn fifo_claim_outcomes_complete(db: &impl Db) {
    let store = db.open().await;
    let s = device_session(&*store, "dev-q", "node-a").await;
    let cmds_a = vec![
        get("./DevInfo/Man"),
        atomic(vec![
            get("./DevDetail/FwV"),
            exec("./SCOMO/Download/p1/Operations/Download", "corr-a"),
        ]),
    ];
    let a = store
        .enqueue_batch(&batch("dev-q", "job:1", cmds_a.clone()), t(2))
        .await
        .unwrap();
    let b = store
        .enqueue_batch(&batch("dev-q", "job:2", vec![get("./DevInfo/Mod")]), t(3))
        .await
        .unwrap();
    let c = store
        .enqueue_batch(&batch("dev-q", "job:1", vec![get("./DevInfo/Lang")]), t(4))
        .await
        .unwrap();
    assert!(a < b && b < c);

    let pending = store.batch(a).await.unwrap().unwrap();
    assert_eq!(pending.state, BatchState::Pending);
    assert_eq!(pending.commands, cmds_a);
    assert_eq!(pending.command_count, 4);
    assert_eq!(pending.created_at, t(2));

    // FIFO, limited.
    let first = store.claim_batches(s, 2, t(5)).await.unwrap();
    assert_eq!(first.iter().map(|b| b.id).collect::<Vec<_>>(), [a, b]);
    assert!(first.iter().all(|b| b.state == BatchState::InFlight
        && b.session == Some(s)
        && b.claimed_at == Some(t(5))
        && b.attempts == 1));
    assert_eq!(first[0].commands, cmds_a);
    let second = store.claim_batches(s, 10, t(5)).await.unwrap();
    assert_eq!(second.iter().map(|b| b.id).collect::<Vec<_>>(), [c]);
    assert!(store.claim_batches(s, 10, t(5)).await.unwrap().is_empty());

    // Statuses for every command of a (indices in pre-order), then complete.
    store.mark_batch_sent(a, s, t(6)).await.unwrap();
    store
        .record_outcome(a, s, 0, StatusCode(200), &man_results(), t(7))
        .await
        .unwrap();
    for i in 1..4 {
        store
            .record_outcome(a, s, i, StatusCode(202), &[], t(7))
            .await
            .unwrap();
    }
    // A repeat overwrites.
    store
        .record_outcome(a, s, 3, StatusCode(200), &[], t(8))
        .await
        .unwrap();
    assert!(matches!(
        store
            .record_outcome(a, s, 4, StatusCode(200), &[], t(8))
            .await,
        Err(StoreError::Invalid { .. })
    ));
    store.complete_batch(a, s, t(9)).await.unwrap();
    assert!(matches!(
        store.complete_batch(a, s, t(9)).await,
        Err(StoreError::NotInFlight { .. })
    ));
    assert!(matches!(
        store.complete_batch(BatchId(999_999), s, t(9)).await,
        Err(StoreError::UnknownBatch { .. })
    ));
    // b: an outcome without mark_batch_sent still counts as sent.
    store
        .record_outcome(b, s, 0, StatusCode(404), &[], t(9))
        .await
        .unwrap();
    assert_eq!(
        store.batch(b).await.unwrap().unwrap().state,
        BatchState::Sent
    );
    store.complete_batch(b, s, t(10)).await.unwrap();

    let done = store.batch(a).await.unwrap().unwrap();
    assert_eq!(done.state, BatchState::Completed);
    assert_eq!(done.sent_at, Some(t(6)));
    assert_eq!(done.finished_at, Some(t(9)));
    let statuses: Vec<(u32, u16)> = done
        .outcomes
        .iter()
        .map(|o| (o.index, o.status.0))
        .collect();
    assert_eq!(statuses, [(0, 200), (1, 202), (2, 202), (3, 200)]);
    assert_eq!(done.outcomes[0].results, man_results());
    assert_eq!(done.outcomes[3].recorded_at, t(8));

    // Owners poll their finished batches; c is still in flight.
    let job1 = store
        .poll_finished("job:1", &lease("node-a", 100), 10, t(11))
        .await
        .unwrap();
    assert_eq!(job1.iter().map(|b| b.id).collect::<Vec<_>>(), [a]);
    assert_eq!(job1[0].outcomes.len(), 4);
    let all = store
        .poll_finished("job:", &lease("node-a", 100), 10, t(11))
        .await
        .unwrap();
    assert_eq!(all.iter().map(|b| b.id).collect::<Vec<_>>(), [b]);
    assert_eq!(store.ack_finished(&[a, b], t(12)).await.unwrap(), 2);
    assert_eq!(store.ack_finished(&[a], t(12)).await.unwrap(), 0);
    assert!(store
        .poll_finished("", &lease("node-a", 1000), 10, t(500))
        .await
        .unwrap()
        .is_empty());

    let end = SessionEnd {
        outcome: SessionOutcome::Ok,
        messages_in: 3,
        messages_out: 3,
        detail: None,
    };
    // c was claimed but never sent: it goes back.
    let report = store.finish_session(s, &end, t(13)).await.unwrap();
    assert_eq!(report.requeued, 1);
    assert_eq!(
        store.batch(c).await.unwrap().unwrap().state,
        BatchState::Pending
    );
}

pub(crate) async fn rejects_bad_batches(db: &impl Db) {
    let store = db.open().await;
    store
        .provision_device(&new_device("dev-r"), t(0))
        .await
        .unwrap();
    let status = omadm_wire::model::Command::Status(omadm_wire::model::Status {
        cmd_id: 1,
        msg_ref: None,
        cmd_ref: 0,
        cmd: "SyncHdr".into(),
        target_refs: vec![],
        source_refs: vec![],
        cred: None,
        chal: None,
        data: StatusCode(200),
        items: vec![],
    });
    for commands in [vec![], vec![atomic(vec![get("./x"), status])]] {
        assert!(matches!(
            store
                .enqueue_batch(&batch("dev-r", "job:1", commands), t(1))
                .await,
            Err(StoreError::Invalid { .. })
        ));
    }
    assert!(matches!(
        store
            .enqueue_batch(&batch("dev-r", "", vec![get("./x")]), t(1))
            .await,
        Err(StoreError::Invalid { .. })
    ));
    assert!(matches!(
        store
            .enqueue_batch(&batch("nobody", "job:1", vec![get("./x")]), t(1))
            .await,
        Err(StoreError::UnknownDevice { .. })
    ));
}

pub(crate) async fn concurrent_claimers_never_share(db: &impl Db) {
    let store = db.open().await;
    let s1 = device_session(&*store, "dev-c", "node-a").await;
    let s2 = open_session(&*store, "dev-c", "node-b", t(1)).await;
    let mut all = BTreeSet::new();
    for i in 0..40 {
        let id = store
            .enqueue_batch(
                &batch("dev-c", "job:c", vec![get(&format!("./Node/{i}"))]),
                t(2),
            )
            .await
            .unwrap();
        all.insert(id);
    }
    let claimer = |session| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let claimed = store.claim_batches(session, 3, t(3)).await.unwrap();
                if claimed.is_empty() {
                    return got;
                }
                // Each claim is in FIFO order.
                assert!(claimed.windows(2).all(|w| w[0].id < w[1].id));
                got.extend(claimed.into_iter().map(|b| (b.id, b.session)));
                tokio::task::yield_now().await;
            }
        })
    };
    let (h1, h2) = (claimer(s1), claimer(s2));
    let (got1, got2) = (h1.await.unwrap(), h2.await.unwrap());
    assert!(got1.iter().all(|(_, s)| *s == Some(s1)));
    assert!(got2.iter().all(|(_, s)| *s == Some(s2)));
    let ids1: BTreeSet<BatchId> = got1.iter().map(|(id, _)| *id).collect();
    let ids2: BTreeSet<BatchId> = got2.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids1.len(), got1.len());
    assert_eq!(ids2.len(), got2.len());
    assert!(ids1.is_disjoint(&ids2), "a batch was claimed twice");
    assert_eq!(&ids1 | &ids2, all);
}

pub(crate) async fn restart_mid_batch_completes_once(db: &impl Db) {
    let id;
    {
        let store = db.open().await;
        let s1 = device_session(&*store, "dev-x", "node-a").await;
        id = store
            .enqueue_batch(
                &NewBatch {
                    device_id: "dev-x".into(),
                    owner: "job:9".into(),
                    commands: vec![get("./DevInfo/Man"), get("./DevInfo/Mod")],
                    idempotent: true,
                },
                t(2),
            )
            .await
            .unwrap();
        let claimed = store.claim_batches(s1, 10, t(3)).await.unwrap();
        assert_eq!(claimed.len(), 1);
        store.mark_batch_sent(id, s1, t(4)).await.unwrap();
        store
            .record_outcome(id, s1, 0, StatusCode(200), &man_results(), t(5))
            .await
            .unwrap();
        // Crash: no second status, no complete, no finish_session.
        store.close().await;
    }

    let store = db.open().await;
    // The batch is still held by the dead session: nobody else may claim it.
    let early = open_session(&*store, "dev-x", "node-b", t(6)).await;
    assert!(store
        .claim_batches(early, 10, t(6))
        .await
        .unwrap()
        .is_empty());
    // node-a comes back and closes what it held.
    let report = store.close_node_sessions("node-a", t(7)).await.unwrap();
    assert_eq!(
        report,
        RequeueReport {
            sessions_closed: 1,
            completed: 0,
            requeued: 1,
            unacknowledged: 0,
        }
    );
    let requeued = store.batch(id).await.unwrap().unwrap();
    assert_eq!(requeued.state, BatchState::Pending);
    assert!(requeued.outcomes.is_empty(), "partial outcomes are dropped");
    let old = requeued.attempts;

    // The device calls again; the batch is sent whole and completes.
    let s2 = open_session(&*store, "dev-x", "node-b", t(8)).await;
    let claimed = store.claim_batches(s2, 10, t(8)).await.unwrap();
    assert_eq!(claimed.iter().map(|b| b.id).collect::<Vec<_>>(), [id]);
    assert_eq!(claimed[0].attempts, old + 1);
    store.mark_batch_sent(id, s2, t(9)).await.unwrap();
    store
        .record_outcome(id, s2, 0, StatusCode(200), &man_results(), t(9))
        .await
        .unwrap();
    store
        .record_outcome(id, s2, 1, StatusCode(200), &[], t(9))
        .await
        .unwrap();
    store.complete_batch(id, s2, t(10)).await.unwrap();
    assert!(matches!(
        store.complete_batch(id, s2, t(10)).await,
        Err(StoreError::NotInFlight { .. })
    ));
    // Closing node-a again finds nothing.
    assert_eq!(
        store.close_node_sessions("node-a", t(11)).await.unwrap(),
        RequeueReport::default()
    );

    // Another restart before the owner polls: the completion is still there,
    // and it is delivered once.
    store.close().await;
    let store = db.open().await;
    let got = store
        .poll_finished("job:", &lease("owner", 100), 10, t(12))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, id);
    assert_eq!(got[0].state, BatchState::Completed);
    assert_eq!(got[0].outcomes.len(), 2);
    assert_eq!(store.ack_finished(&[id], t(13)).await.unwrap(), 1);
    assert!(store
        .poll_finished("job:", &lease("owner", 1000), 10, t(200))
        .await
        .unwrap()
        .is_empty());
}

pub(crate) async fn restart_settles_each_kind(db: &impl Db) {
    let (unsent, partial, full, resend);
    {
        let store = db.open().await;
        let s = device_session(&*store, "dev-k", "node-a").await;
        let enqueue = |idempotent: bool, n: usize| {
            let store = store.clone();
            async move {
                store
                    .enqueue_batch(
                        &NewBatch {
                            device_id: "dev-k".into(),
                            owner: "job:k".into(),
                            commands: (0..n).map(|i| get(&format!("./N/{i}"))).collect(),
                            idempotent,
                        },
                        t(2),
                    )
                    .await
                    .unwrap()
            }
        };
        partial = enqueue(false, 2).await;
        full = enqueue(false, 2).await;
        resend = enqueue(true, 2).await;
        unsent = enqueue(false, 1).await;
        assert_eq!(store.claim_batches(s, 10, t(3)).await.unwrap().len(), 4);
        for b in [partial, full, resend] {
            store.mark_batch_sent(b, s, t(4)).await.unwrap();
            store
                .record_outcome(b, s, 0, StatusCode(200), &[], t(5))
                .await
                .unwrap();
        }
        store
            .record_outcome(full, s, 1, StatusCode(200), &[], t(5))
            .await
            .unwrap();
        store.touch_session(s, t(5)).await.unwrap();
    }

    // Another node sweeps sessions idle for a minute.
    let store = db.open().await;
    let fresh = open_session(&*store, "dev-k", "node-b", t(60)).await;
    let report = store.close_idle_sessions(t(30), t(61)).await.unwrap();
    assert_eq!(
        report,
        RequeueReport {
            sessions_closed: 1,
            completed: 1,
            requeued: 2,
            unacknowledged: 1,
        }
    );
    let state = |b| {
        let store = store.clone();
        async move { store.batch(b).await.unwrap().unwrap().state }
    };
    assert_eq!(state(full).await, BatchState::Completed);
    assert_eq!(state(partial).await, BatchState::Unacknowledged);
    assert_eq!(state(resend).await, BatchState::Pending);
    assert_eq!(state(unsent).await, BatchState::Pending);
    // The fresh session was not idle and is untouched.
    assert_eq!(store.session(fresh).await.unwrap().unwrap().ended_at, None);
    let lost = store.sessions("dev-k", None, 10).await.unwrap();
    assert_eq!(lost[1].outcome, Some(SessionOutcome::Lost));

    // Requeued batches keep their FIFO place; the unacknowledged one is never
    // sent again.
    let claimed = store.claim_batches(fresh, 10, t(62)).await.unwrap();
    assert_eq!(
        claimed.iter().map(|b| b.id).collect::<Vec<_>>(),
        [resend, unsent]
    );
    // Owners hear of both finished batches, once.
    let got = store
        .poll_finished("job:k", &lease("owner", 200), 10, t(63))
        .await
        .unwrap();
    assert_eq!(
        got.iter().map(|b| b.id).collect::<Vec<_>>(),
        [partial, full]
    );
    assert_eq!(got[0].outcomes.len(), 1, "what arrived is kept");
    store.ack_finished(&[partial, full], t(64)).await.unwrap();
    assert!(store
        .poll_finished("job:k", &lease("owner", 2000), 10, t(1000))
        .await
        .unwrap()
        .is_empty());
}

pub(crate) async fn finished_lease_expires(db: &impl Db) {
    let store = db.open().await;
    let s = device_session(&*store, "dev-l", "node-a").await;
    let b = store
        .enqueue_batch(&batch("dev-l", "job:l", vec![get("./x")]), t(2))
        .await
        .unwrap();
    store.claim_batches(s, 1, t(3)).await.unwrap();
    store.complete_batch(b, s, t(4)).await.unwrap();

    let got = store
        .poll_finished("job:", &lease("c1", 100), 10, t(5))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    // Leased to c1: c2 sees nothing until the lease lapses (c1 died).
    assert!(store
        .poll_finished("job:", &lease("c2", 200), 10, t(50))
        .await
        .unwrap()
        .is_empty());
    let again = store
        .poll_finished("job:", &lease("c2", 300), 10, t(100))
        .await
        .unwrap();
    assert_eq!(again.iter().map(|b| b.id).collect::<Vec<_>>(), [b]);
    assert_eq!(store.ack_finished(&[b], t(101)).await.unwrap(), 1);
}

pub(crate) async fn cancel_and_owner_listing(db: &impl Db) {
    let store = db.open().await;
    let s = device_session(&*store, "dev-o", "node-a").await;
    let mut ids = Vec::new();
    for owner in ["job:1", "job:2", "job:10", "campaign:1", "job:1"] {
        ids.push(
            store
                .enqueue_batch(&batch("dev-o", owner, vec![get("./x")]), t(2))
                .await
                .unwrap(),
        );
    }
    let claimed = store.claim_batches(s, 1, t(3)).await.unwrap();
    assert_eq!(claimed[0].id, ids[0]);
    assert!(!store.cancel_batch(ids[0], t(4)).await.unwrap());
    assert!(store.cancel_batch(ids[1], t(4)).await.unwrap());
    assert!(!store.cancel_batch(ids[1], t(4)).await.unwrap());
    assert_eq!(
        store.batch(ids[1]).await.unwrap().unwrap().state,
        BatchState::Cancelled
    );
    // Cancelled batches are not claimed, nor reported back.
    let next = store.claim_batches(s, 1, t(5)).await.unwrap();
    assert_eq!(next[0].id, ids[2]);
    assert!(store
        .poll_finished("", &lease("c", 100), 10, t(6))
        .await
        .unwrap()
        .is_empty());

    let of = |prefix: &'static str, after: Option<BatchId>, limit| {
        let store = store.clone();
        async move {
            store
                .batches_by_owner(prefix, after, limit)
                .await
                .unwrap()
                .into_iter()
                .map(|b| b.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(of("job:1", None, 10).await, [ids[0], ids[2], ids[4]]);
    assert_eq!(of("job:", None, 10).await, [ids[0], ids[1], ids[2], ids[4]]);
    assert_eq!(of("job:", Some(ids[1]), 1).await, [ids[2]]);
    assert_eq!(of("campaign:", None, 10).await, [ids[3]]);
    assert_eq!(of("", None, 10).await, ids);
}

pub(crate) async fn outcomes_of_a_message_in_one_call(db: &impl Db) {
    use scomo_server::store::OutcomeWrite;
    let store = db.open().await;
    let s = device_session(&*store, "dev-o", "node-a").await;
    let a = store
        .enqueue_batch(
            &batch(
                "dev-o",
                "job:1",
                vec![get("./DevInfo/Man"), get("./DevInfo/Mod")],
            ),
            t(2),
        )
        .await
        .unwrap();
    let b = store
        .enqueue_batch(&batch("dev-o", "job:2", vec![get("./DevInfo/Lang")]), t(3))
        .await
        .unwrap();
    let claimed = store.claim_batches(s, 10, t(4)).await.unwrap();
    assert_eq!(claimed.len(), 2);
    let results = man_results();
    // First message: a's first status only.
    let r = store
        .record_outcomes(
            s,
            &[OutcomeWrite {
                batch: a,
                index: 0,
                status: StatusCode::OK,
                results: &results,
            }],
            &[],
            t(5),
        )
        .await
        .unwrap();
    assert!(r.completed.is_empty() && r.gone.is_empty(), "{r:?}");
    assert_eq!(
        store.batch(a).await.unwrap().unwrap().state,
        BatchState::Sent
    );
    // Second message: the rest of a and all of b; both complete.
    let r = store
        .record_outcomes(
            s,
            &[
                OutcomeWrite {
                    batch: a,
                    index: 1,
                    status: StatusCode::NOT_FOUND,
                    results: &[],
                },
                OutcomeWrite {
                    batch: b,
                    index: 0,
                    status: StatusCode::OK,
                    results: &[],
                },
            ],
            &[a, b],
            t(6),
        )
        .await
        .unwrap();
    assert_eq!(r.completed, vec![a, b]);
    let ba = store.batch(a).await.unwrap().unwrap();
    assert_eq!(ba.state, BatchState::Completed);
    assert_eq!(ba.finished_at, Some(t(6)));
    assert_eq!(ba.outcomes.len(), 2);
    assert_eq!(ba.outcomes[0].results, results);
    assert_eq!(ba.outcomes[1].status, StatusCode::NOT_FOUND);
    // A batch this session does not hold: reported, nothing written.
    let r = store
        .record_outcomes(
            s,
            &[OutcomeWrite {
                batch: a,
                index: 0,
                status: StatusCode::COMMAND_FAILED,
                results: &[],
            }],
            &[],
            t(7),
        )
        .await
        .unwrap();
    assert_eq!(r.gone, vec![a]);
    assert_eq!(
        store.batch(a).await.unwrap().unwrap().outcomes[0].status,
        StatusCode::OK
    );
    // An index past the batch's end is refused.
    let c = store
        .enqueue_batch(&batch("dev-o", "job:3", vec![get("./DevInfo/Lang")]), t(8))
        .await
        .unwrap();
    store.claim_batches(s, 10, t(9)).await.unwrap();
    let e = store
        .record_outcomes(
            s,
            &[OutcomeWrite {
                batch: c,
                index: 5,
                status: StatusCode::OK,
                results: &[],
            }],
            &[],
            t(10),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Invalid { .. }), "{e:?}");
}
