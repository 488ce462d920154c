//! Device registry: provisioning, listing, DevInfo, nonces, labels.

use std::collections::BTreeMap;

use scomo_server::store::{
    AuthType, ClientCredentials, DeviceFilter, DeviceOrigin, DevicePageRequest, DeviceUpdate,
    LabelFilter, NewBatch, NonceUpdate, StoreError, DEVDETAIL_DEV_TYP, DEVINFO_MAN, DEVINFO_MOD,
};

use crate::harness::{device_session, get, new_device, t, Db};

pub(crate) async fn provision_get_delete(db: &impl Db) {
    let store = db.open().await;
    let mut dev = new_device("IMEI:490154203237518");
    dev.labels.insert("site".into(), "berlin".into());
    dev.labels.insert("beta".into(), String::new());
    let stored = store.provision_device(&dev, t(5)).await.unwrap();
    assert_eq!(stored.id, dev.id);
    assert_eq!(stored.origin, DeviceOrigin::Provisioned);
    assert_eq!(stored.client_credentials, dev.client_credentials);
    assert_eq!(stored.server_credentials, dev.server_credentials);
    assert_eq!(stored.notify_addr.as_deref(), Some("udp://127.0.0.1:4000"));
    assert_eq!(stored.labels, dev.labels);
    assert_eq!(stored.created_at, t(5));
    assert_eq!(stored.first_seen_at, None);
    assert_eq!(stored.last_seen_at, None);
    assert!(stored.nonces.client.is_none() && stored.nonces.server.is_none());

    // Only MD5(user:pass) is kept, and it verifies the password.
    let creds = stored.client_credentials.as_ref().unwrap();
    assert!(creds.matches_password(&dev.id, "device-secret"));
    let shown = format!("{stored:?}");
    assert!(!shown.contains("device-secret") && !shown.contains("server-secret"));

    assert_eq!(store.device(&dev.id).await.unwrap(), Some(stored));
    assert!(matches!(
        store.provision_device(&dev, t(6)).await,
        Err(StoreError::DeviceExists { .. })
    ));
    let mut bad = new_device("dev-bad-addr");
    bad.notify_addr = Some("ftp://x".into());
    assert!(matches!(
        store.provision_device(&bad, t(6)).await,
        Err(StoreError::Invalid { .. })
    ));
    assert!(matches!(
        store.provision_device(&new_device(""), t(6)).await,
        Err(StoreError::Invalid { .. })
    ));

    assert!(store.delete_device(&dev.id).await.unwrap());
    assert_eq!(store.device(&dev.id).await.unwrap(), None);
    assert!(!store.delete_device(&dev.id).await.unwrap());
    assert_eq!(
        store.count_devices(&DeviceFilter::default()).await.unwrap(),
        0
    );
}

pub(crate) async fn list_pages_and_filters(db: &impl Db) {
    let store = db.open().await;
    // ids chosen so byte order is the obvious order; "a_%" checks the prefix
    // filter has no LIKE wildcards.
    let fleet = [
        ("a_%1", "Acme", "X1", "phone", Some(("ring", "1"))),
        ("a_b2", "Acme", "X1", "phone", Some(("ring", "2"))),
        ("acme-03", "Acme", "X2", "meter", Some(("ring", "1"))),
        ("acme-04", "Acme", "X2", "meter", None),
        ("beta-05", "Beta", "B", "meter", Some(("ring", "1"))),
        ("beta-06", "Beta", "B", "phone", None),
        ("zeta-07", "Zeta", "Z", "gateway", Some(("canary", ""))),
    ];
    for (id, man, model, typ, label) in fleet {
        store.provision_device(&new_device(id), t(0)).await.unwrap();
        let nodes = BTreeMap::from([
            (DEVINFO_MAN.to_owned(), man.to_owned()),
            (DEVINFO_MOD.to_owned(), model.to_owned()),
            (DEVDETAIL_DEV_TYP.to_owned(), typ.to_owned()),
        ]);
        store.record_device_info(id, &nodes, t(1)).await.unwrap();
        if let Some((k, v)) = label {
            store.set_label(id, k, v, t(1)).await.unwrap();
        }
    }

    // Keyset paging over everything.
    let all = DeviceFilter::default();
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = store
            .list_devices(&all, &DevicePageRequest { after, limit: 3 })
            .await
            .unwrap();
        pages += 1;
        assert!(page.devices.len() <= 3);
        seen.extend(page.devices.iter().map(|d| d.id.clone()));
        match page.next_after {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let ids: Vec<&str> = fleet.iter().map(|f| f.0).collect();
    assert_eq!(seen, ids);
    assert_eq!(store.count_devices(&all).await.unwrap(), 7);

    let ids_of = |f: DeviceFilter| {
        let store = store.clone();
        async move {
            let page = store
                .list_devices(
                    &f,
                    &DevicePageRequest {
                        after: None,
                        limit: 100,
                    },
                )
                .await
                .unwrap();
            assert_eq!(
                store.count_devices(&f).await.unwrap(),
                page.devices.len() as u64
            );
            page.devices.into_iter().map(|d| d.id).collect::<Vec<_>>()
        }
    };
    let man = |m: &str| DeviceFilter {
        man: Some(m.into()),
        ..DeviceFilter::default()
    };
    assert_eq!(
        ids_of(man("Acme")).await,
        ["a_%1", "a_b2", "acme-03", "acme-04"]
    );
    assert_eq!(
        ids_of(DeviceFilter {
            man: Some("Acme".into()),
            model: Some("X2".into()),
            ..DeviceFilter::default()
        })
        .await,
        ["acme-03", "acme-04"]
    );
    assert_eq!(
        ids_of(DeviceFilter {
            dev_typ: Some("meter".into()),
            ..DeviceFilter::default()
        })
        .await,
        ["acme-03", "acme-04", "beta-05"]
    );
    let label = |k: &str, v: Option<&str>| DeviceFilter {
        labels: vec![LabelFilter {
            key: k.into(),
            value: v.map(Into::into),
        }],
        ..DeviceFilter::default()
    };
    assert_eq!(
        ids_of(label("ring", None)).await,
        ["a_%1", "a_b2", "acme-03", "beta-05"]
    );
    assert_eq!(
        ids_of(label("ring", Some("1"))).await,
        ["a_%1", "acme-03", "beta-05"]
    );
    assert_eq!(ids_of(label("canary", Some(""))).await, ["zeta-07"]);
    let prefix = |p: &str| DeviceFilter {
        id_prefix: Some(p.into()),
        ..DeviceFilter::default()
    };
    assert_eq!(ids_of(prefix("a_%")).await, ["a_%1"]);
    assert_eq!(
        ids_of(prefix("a")).await,
        ["a_%1", "a_b2", "acme-03", "acme-04"]
    );
    assert_eq!(ids_of(prefix("A")).await, Vec::<String>::new());
    assert_eq!(ids_of(prefix("beta-0")).await, ["beta-05", "beta-06"]);
    assert_eq!(
        ids_of(DeviceFilter {
            man: Some("Beta".into()),
            labels: vec![LabelFilter {
                key: "ring".into(),
                value: None,
            }],
            id_prefix: Some("beta".into()),
            ..DeviceFilter::default()
        })
        .await,
        ["beta-05"]
    );

    // Paging composes with filters, and labels come with listed devices.
    let page = store
        .list_devices(
            &man("Acme"),
            &DevicePageRequest {
                after: Some("a_b2".into()),
                limit: 1,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.devices.len(), 1);
    assert_eq!(page.devices[0].id, "acme-03");
    assert_eq!(
        page.devices[0].labels.get("ring").map(String::as_str),
        Some("1")
    );
    assert_eq!(page.devices[0].man.as_deref(), Some("Acme"));
    assert_eq!(page.next_after.as_deref(), Some("acme-03"));
}

pub(crate) async fn device_info_and_seen(db: &impl Db) {
    let store = db.open().await;
    assert!(store.auto_register("auto-1", t(10)).await.unwrap());
    assert!(!store.auto_register("auto-1", t(11)).await.unwrap());
    let dev = store.device("auto-1").await.unwrap().unwrap();
    assert_eq!(dev.origin, DeviceOrigin::AutoRegistered);
    assert_eq!(dev.client_credentials, None);
    assert_eq!(dev.created_at, t(10));

    let first = BTreeMap::from([
        (DEVINFO_MAN.to_owned(), "Acme".to_owned()),
        (DEVINFO_MOD.to_owned(), "X1".to_owned()),
        ("./DevInfo/Lang".to_owned(), "en".to_owned()),
    ]);
    store
        .record_device_info("auto-1", &first, t(20))
        .await
        .unwrap();
    let second = BTreeMap::from([
        (DEVINFO_MOD.to_owned(), "X1-rev2".to_owned()),
        ("./DevDetail/FwV".to_owned(), "2.0".to_owned()),
    ]);
    store
        .record_device_info("auto-1", &second, t(30))
        .await
        .unwrap();

    let dev = store.device("auto-1").await.unwrap().unwrap();
    assert_eq!(dev.first_seen_at, Some(t(20)));
    assert_eq!(dev.last_seen_at, Some(t(30)));
    assert_eq!(dev.man.as_deref(), Some("Acme"));
    assert_eq!(dev.model.as_deref(), Some("X1-rev2"));
    assert_eq!(dev.dev_typ, None);
    let nodes = store.device_nodes("auto-1").await.unwrap();
    assert_eq!(
        nodes,
        BTreeMap::from([
            (DEVINFO_MAN.to_owned(), "Acme".to_owned()),
            (DEVINFO_MOD.to_owned(), "X1-rev2".to_owned()),
            ("./DevInfo/Lang".to_owned(), "en".to_owned()),
            ("./DevDetail/FwV".to_owned(), "2.0".to_owned()),
        ])
    );
    assert!(matches!(
        store.record_device_info("nobody", &first, t(30)).await,
        Err(StoreError::UnknownDevice { .. })
    ));
    assert!(store.device_nodes("nobody").await.unwrap().is_empty());
}

pub(crate) async fn nonces_credentials_labels(db: &impl Db) {
    let store = db.open().await;
    store
        .provision_device(&new_device("dev-n"), t(0))
        .await
        .unwrap();

    store
        .update_nonces(
            "dev-n",
            &NonceUpdate {
                client: Some(vec![1, 2, 3, 0, 255]),
                server: None,
            },
            t(1),
        )
        .await
        .unwrap();
    store
        .update_nonces(
            "dev-n",
            &NonceUpdate {
                client: None,
                server: Some(b"device-issued".to_vec()),
            },
            t(2),
        )
        .await
        .unwrap();
    let dev = store.device("dev-n").await.unwrap().unwrap();
    assert_eq!(dev.nonces.client.as_deref(), Some(&[1u8, 2, 3, 0, 255][..]));
    assert_eq!(dev.nonces.server.as_deref(), Some(&b"device-issued"[..]));
    assert!(matches!(
        store
            .update_nonces("nobody", &NonceUpdate::default(), t(2))
            .await,
        Err(StoreError::UnknownDevice { .. })
    ));

    let hmac = ClientCredentials::from_password(AuthType::Hmac, "dev-n", "new-secret");
    store
        .update_device(
            "dev-n",
            &DeviceUpdate {
                client_credentials: Some(Some(hmac.clone())),
                server_credentials: Some(None),
                notify_addr: Some(Some("http://10.0.0.1:8080/push".into())),
            },
            t(3),
        )
        .await
        .unwrap();
    let dev = store.device("dev-n").await.unwrap().unwrap();
    assert_eq!(dev.client_credentials, Some(hmac));
    assert_eq!(dev.server_credentials, None);
    assert_eq!(
        dev.notify_addr.as_deref(),
        Some("http://10.0.0.1:8080/push")
    );
    assert_eq!(dev.nonces.server.as_deref(), Some(&b"device-issued"[..]));
    store
        .update_device(
            "dev-n",
            &DeviceUpdate {
                notify_addr: Some(None),
                ..DeviceUpdate::default()
            },
            t(4),
        )
        .await
        .unwrap();
    let dev = store.device("dev-n").await.unwrap().unwrap();
    assert_eq!(dev.notify_addr, None);
    assert!(dev.client_credentials.is_some());
    assert!(matches!(
        store
            .update_device("nobody", &DeviceUpdate::default(), t(4))
            .await,
        Err(StoreError::UnknownDevice { .. })
    ));

    store
        .set_label("dev-n", "site", "berlin", t(5))
        .await
        .unwrap();
    store
        .set_label("dev-n", "site", "paris", t(6))
        .await
        .unwrap();
    store.set_label("dev-n", "beta", "", t(6)).await.unwrap();
    let dev = store.device("dev-n").await.unwrap().unwrap();
    assert_eq!(
        dev.labels,
        BTreeMap::from([
            ("beta".to_owned(), String::new()),
            ("site".to_owned(), "paris".to_owned())
        ])
    );
    assert!(store.remove_label("dev-n", "beta").await.unwrap());
    assert!(!store.remove_label("dev-n", "beta").await.unwrap());
    assert!(matches!(
        store.set_label("nobody", "k", "v", t(7)).await,
        Err(StoreError::UnknownDevice { .. })
    ));
}

pub(crate) async fn delete_cascades(db: &impl Db) {
    let store = db.open().await;
    let s = device_session(&*store, "dev-del", "node-a").await;
    let b = store
        .enqueue_batch(
            &NewBatch {
                device_id: "dev-del".into(),
                owner: "job:1".into(),
                commands: vec![get("./DevInfo/Man")],
                idempotent: true,
            },
            t(2),
        )
        .await
        .unwrap();
    let n = store
        .enqueue_notification("dev-del", t(3), t(2))
        .await
        .unwrap();
    assert!(store.delete_device("dev-del").await.unwrap());
    assert_eq!(store.batch(b).await.unwrap(), None);
    assert_eq!(store.session(s).await.unwrap(), None);
    assert_eq!(store.notification(n).await.unwrap(), None);
    assert!(matches!(
        store
            .enqueue_batch(
                &NewBatch {
                    device_id: "dev-del".into(),
                    owner: "job:1".into(),
                    commands: vec![get("./DevInfo/Man")],
                    idempotent: true,
                },
                t(4),
            )
            .await,
        Err(StoreError::UnknownDevice { .. })
    ));
}

pub(crate) async fn bulk_provision(db: &impl Db) {
    use scomo_server::store::BulkOutcome;
    let store = db.open().await;
    store
        .provision_device(&new_device("bulk-taken"), t(1))
        .await
        .unwrap();
    let mut labelled = new_device("bulk-1");
    labelled.labels.insert("model".into(), "M1".into());
    let mut bad = new_device("bulk-bad");
    bad.notify_addr = Some("ftp://x".into());
    let devices = [
        new_device("bulk-0"),
        labelled.clone(),
        new_device("bulk-taken"),
        bad,
        new_device("bulk-0"),
        new_device(""),
    ];
    let out = store.provision_devices(&devices, t(2)).await.unwrap();
    assert_eq!(out.len(), 6);
    assert_eq!(
        &out[..3],
        &[
            BulkOutcome::Created,
            BulkOutcome::Created,
            BulkOutcome::Exists
        ]
    );
    assert!(matches!(&out[3], BulkOutcome::Invalid(m) if m.contains("notify address")));
    assert_eq!(out[4], BulkOutcome::Exists);
    assert!(matches!(&out[5], BulkOutcome::Invalid(_)));
    let stored = store.device("bulk-1").await.unwrap().unwrap();
    assert_eq!(stored.labels, labelled.labels);
    assert_eq!(stored.client_credentials, labelled.client_credentials);
    assert_eq!(stored.created_at, t(2));
    // The taken one is unchanged; nothing invalid was written.
    assert_eq!(
        store
            .device("bulk-taken")
            .await
            .unwrap()
            .unwrap()
            .created_at,
        t(1)
    );
    assert_eq!(store.device("bulk-bad").await.unwrap(), None);
    assert_eq!(
        store.count_devices(&DeviceFilter::default()).await.unwrap(),
        3
    );
    // Only refused devices: nothing to write, still one outcome each.
    let out = store
        .provision_devices(&[new_device("")], t(3))
        .await
        .unwrap();
    assert!(matches!(&out[..], [BulkOutcome::Invalid(_)]));
    assert_eq!(store.provision_devices(&[], t(3)).await.unwrap(), vec![]);
}
