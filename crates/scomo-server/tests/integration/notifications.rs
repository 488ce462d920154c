//! Package 0 notifications: due times, claims, backoff, cancellation.

use std::collections::BTreeSet;
use std::time::Duration;

use scomo_server::store::{Backoff, Lease, NotificationId, NotificationState, StoreError};

use crate::harness::{new_device, t, Db};

fn lease(consumer: &str, until: i64) -> Lease {
    Lease {
        consumer: consumer.into(),
        until: t(until),
    }
}

pub(crate) async fn due_backoff_cancel(db: &impl Db) {
    let store = db.open().await;
    store
        .provision_device(&new_device("dev-p"), t(0))
        .await
        .unwrap();
    let backoff = Backoff {
        initial: Duration::from_secs(10),
        factor: 2,
        max_delay: Duration::from_secs(25),
        max_attempts: 4,
    };

    let n = store
        .enqueue_notification("dev-p", t(100), t(1))
        .await
        .unwrap();
    // Asking again never delays it, but may bring it forward.
    assert_eq!(
        store
            .enqueue_notification("dev-p", t(200), t(2))
            .await
            .unwrap(),
        n
    );
    assert_eq!(
        store
            .notification(n)
            .await
            .unwrap()
            .unwrap()
            .next_attempt_at,
        t(100)
    );
    assert_eq!(
        store
            .enqueue_notification("dev-p", t(50), t(3))
            .await
            .unwrap(),
        n
    );

    assert!(store
        .claim_due_notifications(&lease("node-a", 80), 10, t(49))
        .await
        .unwrap()
        .is_empty());
    let got = store
        .claim_due_notifications(&lease("node-a", 80), 10, t(50))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, n);
    assert_eq!(got[0].device_id, "dev-p");
    assert_eq!(got[0].next_attempt_at, t(80));
    // Claimed: another node skips it until the claim lapses.
    assert!(store
        .claim_due_notifications(&lease("node-b", 90), 10, t(60))
        .await
        .unwrap()
        .is_empty());

    // Attempt 1 at t=61 → next at 71; attempt 2 → +20; attempt 3 → +25 (cap).
    let after = store
        .record_notification_attempt(n, Some("udp send failed"), &backoff, t(61))
        .await
        .unwrap();
    assert_eq!(after.state, NotificationState::Pending);
    assert_eq!(after.attempts, 1);
    assert_eq!(after.next_attempt_at, t(71));
    assert_eq!(after.last_attempt_at, Some(t(61)));
    assert_eq!(after.last_error.as_deref(), Some("udp send failed"));
    assert!(store
        .claim_due_notifications(&lease("node-b", 100), 10, t(70))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .claim_due_notifications(&lease("node-b", 100), 10, t(71))
            .await
            .unwrap()
            .len(),
        1
    );
    let after = store
        .record_notification_attempt(n, None, &backoff, t(72))
        .await
        .unwrap();
    assert_eq!((after.attempts, after.next_attempt_at), (2, t(92)));
    assert_eq!(after.last_error, None);
    let after = store
        .record_notification_attempt(n, None, &backoff, t(92))
        .await
        .unwrap();
    assert_eq!((after.attempts, after.next_attempt_at), (3, t(117)));
    let after = store
        .record_notification_attempt(n, None, &backoff, t(117))
        .await
        .unwrap();
    assert_eq!(
        (after.attempts, after.state),
        (4, NotificationState::Expired)
    );
    assert!(store
        .claim_due_notifications(&lease("node-a", 2000), 10, t(1000))
        .await
        .unwrap()
        .is_empty());

    // A new request after expiry starts afresh; the device calling cancels it.
    let m = store
        .enqueue_notification("dev-p", t(300), t(300))
        .await
        .unwrap();
    assert_ne!(m, n);
    assert_eq!(
        store.cancel_notifications("dev-p", t(301)).await.unwrap(),
        1
    );
    assert_eq!(
        store.cancel_notifications("dev-p", t(301)).await.unwrap(),
        0
    );
    // An attempt recorded after the cancel (the sender was mid-flight) does
    // not resurrect it.
    let after = store
        .record_notification_attempt(m, None, &backoff, t(302))
        .await
        .unwrap();
    assert_eq!(after.state, NotificationState::Cancelled);
    assert_eq!(after.attempts, 0);
    assert!(store
        .claim_due_notifications(&lease("node-a", 2000), 10, t(1000))
        .await
        .unwrap()
        .is_empty());

    assert!(matches!(
        store.enqueue_notification("nobody", t(1), t(1)).await,
        Err(StoreError::UnknownDevice { .. })
    ));
    assert!(matches!(
        store
            .claim_due_notifications(&lease("node-a", 10), 10, t(10))
            .await,
        Err(StoreError::Invalid { .. })
    ));
}

pub(crate) async fn concurrent_claims_never_share(db: &impl Db) {
    let store = db.open().await;
    let mut all = BTreeSet::new();
    for i in 0..24 {
        let id = format!("dev-{i:02}");
        store
            .provision_device(&new_device(&id), t(0))
            .await
            .unwrap();
        all.insert(store.enqueue_notification(&id, t(i), t(0)).await.unwrap());
    }
    let claimer = |name: &'static str| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut got: Vec<NotificationId> = Vec::new();
            loop {
                let claimed = store
                    .claim_due_notifications(&lease(name, 500), 5, t(100))
                    .await
                    .unwrap();
                if claimed.is_empty() {
                    return got;
                }
                got.extend(claimed.iter().map(|n| n.id));
                tokio::task::yield_now().await;
            }
        })
    };
    let (h1, h2) = (claimer("node-a"), claimer("node-b"));
    let (got1, got2) = (h1.await.unwrap(), h2.await.unwrap());
    let ids1: BTreeSet<_> = got1.iter().copied().collect();
    let ids2: BTreeSet<_> = got2.iter().copied().collect();
    assert_eq!(ids1.len() + ids2.len(), got1.len() + got2.len());
    assert!(ids1.is_disjoint(&ids2), "a notification was claimed twice");
    assert_eq!(&ids1 | &ids2, all);
}
