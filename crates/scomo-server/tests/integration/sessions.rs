//! DM session audit log.

use scomo_server::store::{
    BatchState, NewBatch, NewSession, RequeueReport, SessionEnd, SessionKey, SessionOutcome,
    StoreError,
};

use crate::harness::{get, new_device, open_session, t, Db};

pub(crate) async fn session_audit(db: &impl Db) {
    let store = db.open().await;
    store
        .provision_device(&new_device("dev-s"), t(0))
        .await
        .unwrap();
    let s1 = store
        .start_session(
            &NewSession {
                device_id: "dev-s".into(),
                session_id: "1A".into(),
                node_id: "node-a".into(),
                initiation: omadm_wire::AlertCode(1200),
            },
            t(10),
        )
        .await
        .unwrap();
    store.touch_session(s1, t(11)).await.unwrap();
    let report = store
        .finish_session(
            s1,
            &SessionEnd {
                outcome: SessionOutcome::AuthFailed,
                messages_in: 2,
                messages_out: 2,
                detail: Some("bad digest".into()),
            },
            t(12),
        )
        .await
        .unwrap();
    assert_eq!(
        report,
        RequeueReport {
            sessions_closed: 1,
            ..RequeueReport::default()
        }
    );
    let s2 = open_session(&*store, "dev-s", "node-b", t(20)).await;
    store
        .finish_session(
            s2,
            &SessionEnd {
                outcome: SessionOutcome::Ok,
                messages_in: 3,
                messages_out: 3,
                detail: None,
            },
            t(25),
        )
        .await
        .unwrap();
    let s3 = open_session(&*store, "dev-s", "node-b", t(30)).await;

    let r1 = store.session(s1).await.unwrap().unwrap();
    assert_eq!(r1.device_id, "dev-s");
    assert_eq!(r1.session_id, "1A");
    assert_eq!(r1.node_id, "node-a");
    assert_eq!(r1.initiation, omadm_wire::AlertCode(1200));
    assert_eq!(r1.started_at, t(10));
    assert_eq!(r1.ended_at, Some(t(12)));
    assert_eq!(r1.outcome, Some(SessionOutcome::AuthFailed));
    assert_eq!((r1.messages_in, r1.messages_out), (2, 2));
    assert_eq!(r1.detail.as_deref(), Some("bad digest"));

    let all = store.sessions("dev-s", None, 10).await.unwrap();
    let keys: Vec<SessionKey> = all.iter().map(|s| s.key).collect();
    assert_eq!(keys, [s3, s2, s1]);
    assert_eq!(all[0].ended_at, None);
    assert_eq!(all[0].outcome, None);
    let older = store.sessions("dev-s", Some(s3), 1).await.unwrap();
    assert_eq!(older.len(), 1);
    assert_eq!(older[0].key, s2);

    let end = SessionEnd {
        outcome: SessionOutcome::Ok,
        messages_in: 0,
        messages_out: 0,
        detail: None,
    };
    assert!(matches!(
        store.finish_session(s1, &end, t(40)).await,
        Err(StoreError::SessionEnded { .. })
    ));
    assert!(matches!(
        store.touch_session(s1, t(40)).await,
        Err(StoreError::SessionEnded { .. })
    ));
    assert!(matches!(
        store.finish_session(SessionKey(999_999), &end, t(40)).await,
        Err(StoreError::UnknownSession { .. })
    ));
    let unknown = NewSession {
        device_id: "nobody".into(),
        session_id: "1".into(),
        node_id: "node-a".into(),
        initiation: omadm_wire::AlertCode(1201),
    };
    assert!(matches!(
        store.start_session(&unknown, t(40)).await,
        Err(StoreError::UnknownDevice { .. })
    ));
}

pub(crate) async fn finish_requeues_unsent(db: &impl Db) {
    let store = db.open().await;
    store
        .provision_device(&new_device("dev-f"), t(0))
        .await
        .unwrap();
    let b = store
        .enqueue_batch(
            &NewBatch {
                device_id: "dev-f".into(),
                owner: "job:1".into(),
                commands: vec![get("./DevInfo/Mod")],
                idempotent: false,
            },
            t(1),
        )
        .await
        .unwrap();
    let s1 = open_session(&*store, "dev-f", "node-a", t(2)).await;
    assert_eq!(store.claim_batches(s1, 10, t(3)).await.unwrap().len(), 1);
    // The session dies before the batch went out: it goes back, even though
    // it is not idempotent, and keeps its attempt count.
    let report = store
        .finish_session(
            s1,
            &SessionEnd {
                outcome: SessionOutcome::Error,
                messages_in: 1,
                messages_out: 0,
                detail: Some("oversize message".into()),
            },
            t(4),
        )
        .await
        .unwrap();
    assert_eq!(report.requeued, 1);
    let batch = store.batch(b).await.unwrap().unwrap();
    assert_eq!(batch.state, BatchState::Pending);
    assert_eq!(batch.session, None);
    assert_eq!(batch.attempts, 1);
    assert!(matches!(
        store.claim_batches(s1, 10, t(5)).await,
        Err(StoreError::SessionEnded { .. })
    ));
    let s2 = open_session(&*store, "dev-f", "node-b", t(6)).await;
    let claimed = store.claim_batches(s2, 10, t(6)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, b);
    assert_eq!(claimed[0].attempts, 2);
    assert_eq!(claimed[0].session, Some(s2));
}
