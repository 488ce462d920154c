//! Generic Alerts: recording, correlation, exactly-once draining.

use std::collections::BTreeSet;

use omadm_wire::model::Data;
use omadm_wire::AlertCode;
use scomo_server::store::{AlertId, Lease, NewAlert, NewBatch};

use crate::harness::{device_session, exec, t, Db};

const OPERATION_COMPLETE: &str = "urn:oma:at:scomo:1.0:OperationComplete";

fn alert(device: &str, correlator: Option<&str>) -> NewAlert {
    NewAlert {
        device_id: device.into(),
        session: None,
        code: AlertCode(1226),
        correlator: correlator.map(Into::into),
        alert_type: Some(OPERATION_COMPLETE.into()),
        format: Some("xml".into()),
        mark: Some("critical".into()),
        source_uri: Some("./SCOMO/Inventory/Deployed/p1/Operations/Activate".into()),
        target_uri: Some("./SCOMO/Inventory/Deployed/p1".into()),
        data: Some(Data::Xml("<ResultCode>1200</ResultCode>".into())),
    }
}

pub(crate) async fn record_list_correlate(db: &impl Db) {
    let store = db.open().await;
    let s = device_session(&*store, "dev-a", "node-a").await;
    let b = store
        .enqueue_batch(
            &NewBatch {
                device_id: "dev-a".into(),
                owner: "job:7".into(),
                commands: vec![exec("./SCOMO/Download/p1/Operations/Download", "corr-7")],
                idempotent: false,
            },
            t(2),
        )
        .await
        .unwrap();

    let mut with_session = alert("dev-a", Some("corr-7"));
    with_session.session = Some(s);
    let a1 = store.record_alert(&with_session, t(10)).await.unwrap();
    let mut plain = alert("dev-a", None);
    plain.data = Some(Data::Binary(vec![0, 1, 2, 254]));
    let a2 = store.record_alert(&plain, t(11)).await.unwrap();
    // A correlator no batch of this device carries.
    let a3 = store
        .record_alert(&alert("dev-a", Some("corr-unknown")), t(12))
        .await
        .unwrap();
    assert!(a1 < a2 && a2 < a3);

    let listed = store.alerts("dev-a", None, 10).await.unwrap();
    assert_eq!(
        listed.iter().map(|a| a.id).collect::<Vec<_>>(),
        [a3, a2, a1]
    );
    let first = &listed[2];
    assert_eq!(first.alert, with_session);
    assert_eq!(first.batch, Some(b));
    assert_eq!(first.owner.as_deref(), Some("job:7"));
    assert_eq!(first.received_at, t(10));
    assert_eq!(first.processed_at, None);
    assert_eq!(listed[1].alert.data, Some(Data::Binary(vec![0, 1, 2, 254])));
    assert_eq!(listed[1].batch, None);
    assert_eq!(listed[0].owner, None);
    let page = store.alerts("dev-a", Some(a3), 1).await.unwrap();
    assert_eq!(page.iter().map(|a| a.id).collect::<Vec<_>>(), [a2]);

    let by = store.alerts_by_correlator("corr-7").await.unwrap();
    assert_eq!(by.iter().map(|a| a.id).collect::<Vec<_>>(), [a1]);

    // Owners drain only their own alerts.
    let lease = Lease {
        consumer: "jobs".into(),
        until: t(100),
    };
    let mine = store
        .poll_alerts(Some("job:"), &lease, 10, t(20))
        .await
        .unwrap();
    assert_eq!(mine.iter().map(|a| a.id).collect::<Vec<_>>(), [a1]);
    assert_eq!(store.ack_alerts(&[a1], t(21)).await.unwrap(), 1);
    let rest = store.poll_alerts(None, &lease, 10, t(22)).await.unwrap();
    assert_eq!(rest.iter().map(|a| a.id).collect::<Vec<_>>(), [a2, a3]);
    let acked = store.alerts_by_correlator("corr-7").await.unwrap();
    assert_eq!(acked[0].processed_at, Some(t(21)));
    assert!(matches!(
        store.record_alert(&alert("nobody", None), t(30)).await,
        Err(scomo_server::store::StoreError::UnknownDevice { .. })
    ));
}

pub(crate) async fn drain_exactly_once_two_consumers(db: &impl Db) {
    let store = db.open().await;
    device_session(&*store, "dev-d", "node-a").await;
    let mut all = BTreeSet::new();
    for i in 0..30 {
        let id = store
            .record_alert(&alert("dev-d", Some(&format!("c{i}"))), t(i))
            .await
            .unwrap();
        all.insert(id);
    }
    let consumer = |name: &'static str| {
        let store = store.clone();
        tokio::spawn(async move {
            let lease = Lease {
                consumer: name.into(),
                until: t(1000),
            };
            let mut got: Vec<AlertId> = Vec::new();
            loop {
                let batch = store.poll_alerts(None, &lease, 4, t(100)).await.unwrap();
                if batch.is_empty() {
                    return got;
                }
                let ids: Vec<AlertId> = batch.iter().map(|a| a.id).collect();
                assert_eq!(
                    store.ack_alerts(&ids, t(101)).await.unwrap(),
                    ids.len() as u64
                );
                got.extend(ids);
                tokio::task::yield_now().await;
            }
        })
    };
    let (h1, h2) = (consumer("node-a"), consumer("node-b"));
    let (got1, got2) = (h1.await.unwrap(), h2.await.unwrap());
    let ids1: BTreeSet<AlertId> = got1.iter().copied().collect();
    let ids2: BTreeSet<AlertId> = got2.iter().copied().collect();
    assert_eq!(ids1.len() + ids2.len(), got1.len() + got2.len());
    assert!(ids1.is_disjoint(&ids2), "an alert was drained twice");
    assert_eq!(&ids1 | &ids2, all);
    // Drained means drained, also after the leases lapse.
    let late = Lease {
        consumer: "late".into(),
        until: t(5000),
    };
    assert!(store
        .poll_alerts(None, &late, 100, t(2000))
        .await
        .unwrap()
        .is_empty());
}
