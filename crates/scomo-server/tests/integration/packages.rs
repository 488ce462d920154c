//! The package repository and download tokens.

use scomo_server::store::{Package, PackageComponent, StoreError};

use crate::harness::{t, Db};

fn package(id: &str, sha: char) -> Package {
    Package {
        pkg_id: id.to_owned(),
        name: format!("{id} name"),
        version: Some("1.0.0".into()),
        env_type: "archive".into(),
        pkg_type: "application/gzip".into(),
        size: 1234,
        sha256: sha.to_string().repeat(64),
        signature: None,
        components: vec![PackageComponent {
            id: format!("{id}.c"),
            name: "C".into(),
            version: "1.0.0".into(),
        }],
        file: format!("packages/{}.pkg", sha.to_string().repeat(64)),
        created_at: t(1),
    }
}

pub(crate) async fn insert_get_list_delete(db: &impl Db) {
    let store = db.open().await;
    let mut b = package("pkg.b", 'b');
    b.signature = Some("c2ln".into());
    b.version = None;
    b.size = 5 << 30;
    store.insert_package(&b).await.unwrap();
    store.insert_package(&package("pkg.a", 'a')).await.unwrap();
    store.insert_package(&package("pkg.c", 'c')).await.unwrap();
    let err = store
        .insert_package(&package("pkg.a", 'd'))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::PackageExists { ref pkg_id } if pkg_id == "pkg.a"),
        "{err}"
    );
    // The first one stays.
    assert_eq!(
        store.package("pkg.a").await.unwrap(),
        Some(package("pkg.a", 'a'))
    );
    assert_eq!(store.package("pkg.b").await.unwrap(), Some(b.clone()));
    assert_eq!(store.package("nope").await.unwrap(), None);

    let ids = |v: Vec<Package>| v.into_iter().map(|p| p.pkg_id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list_packages(None, 10).await.unwrap()),
        ["pkg.a", "pkg.b", "pkg.c"]
    );
    assert_eq!(
        ids(store.list_packages(None, 2).await.unwrap()),
        ["pkg.a", "pkg.b"]
    );
    assert_eq!(
        ids(store.list_packages(Some("pkg.b"), 2).await.unwrap()),
        ["pkg.c"]
    );
    assert!(store
        .list_packages(Some("pkg.c"), 2)
        .await
        .unwrap()
        .is_empty());

    assert!(store.delete_package("pkg.b").await.unwrap());
    assert!(!store.delete_package("pkg.b").await.unwrap());
    assert_eq!(store.package("pkg.b").await.unwrap(), None);
    assert_eq!(
        ids(store.list_packages(None, 10).await.unwrap()),
        ["pkg.a", "pkg.c"]
    );
}

pub(crate) async fn tokens_use_and_records(db: &impl Db) {
    let store = db.open().await;
    store.insert_package(&package("pkg.a", 'a')).await.unwrap();
    store.insert_package(&package("pkg.b", 'b')).await.unwrap();
    assert!(!store.package_in_use("pkg.a", t(10)).await.unwrap());

    let err = store
        .create_download_token("nope", None, t(100), t(10))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownPackage { .. }), "{err}");

    let tok = store
        .create_download_token("pkg.a", Some(7), t(100), t(10))
        .await
        .unwrap();
    assert_eq!(tok.token.len(), 32);
    assert!(tok.token.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(!format!("{tok:?}").contains(&tok.token));
    let other = store
        .create_download_token("pkg.a", Some(7), t(50), t(11))
        .await
        .unwrap();
    assert_ne!(tok.token, other.token);
    let unrelated = store
        .create_download_token("pkg.b", None, t(100), t(12))
        .await
        .unwrap();

    assert_eq!(
        store.download_token(&tok.token).await.unwrap(),
        Some(tok.clone())
    );
    assert_eq!(store.download_token("00").await.unwrap(), None);
    let for_job = store.download_tokens_for_job(7).await.unwrap();
    assert_eq!(for_job, vec![tok.clone(), other.clone()]);
    assert!(store.download_tokens_for_job(8).await.unwrap().is_empty());

    // In use while a token is live.
    assert!(store.package_in_use("pkg.a", t(99)).await.unwrap());
    assert!(!store.package_in_use("pkg.a", t(100)).await.unwrap());
    assert!(tok.is_live(t(99)) && !tok.is_live(t(100)));

    // Progress, an abort, a completion.
    assert!(store
        .record_download(&tok.token, 100, false, None, t(20))
        .await
        .unwrap());
    assert!(store
        .record_download(
            &tok.token,
            50,
            false,
            Some("stopped after 50 of 1234 bytes"),
            t(21)
        )
        .await
        .unwrap());
    let r = store.download_token(&tok.token).await.unwrap().unwrap();
    assert_eq!((r.bytes_served, r.downloads_completed), (150, 0));
    assert_eq!(
        r.last_error.as_deref(),
        Some("stopped after 50 of 1234 bytes")
    );
    assert!(store
        .record_download(&tok.token, 1234, true, None, t(22))
        .await
        .unwrap());
    let r = store.download_token(&tok.token).await.unwrap().unwrap();
    assert_eq!((r.bytes_served, r.downloads_completed), (1384, 1));
    assert_eq!(r.last_error, None);
    assert!(!store
        .record_download("ffff", 1, true, None, t(22))
        .await
        .unwrap());
    // The other token of the same job is untouched.
    assert_eq!(
        store.download_token(&other.token).await.unwrap(),
        Some(other.clone())
    );

    assert!(store
        .record_install_notify(&tok.token, 900, t(30))
        .await
        .unwrap());
    assert!(!store
        .record_install_notify("ffff", 900, t(30))
        .await
        .unwrap());
    let r = store.download_token(&tok.token).await.unwrap().unwrap();
    assert_eq!((r.notify_status, r.notify_at), (Some(900), Some(t(30))));

    // Deleting the package takes its tokens along, not other packages'.
    assert!(store.delete_package("pkg.a").await.unwrap());
    assert_eq!(store.download_token(&tok.token).await.unwrap(), None);
    assert!(store.download_tokens_for_job(7).await.unwrap().is_empty());
    assert!(store
        .download_token(&unrelated.token)
        .await
        .unwrap()
        .is_some());
}

/// A job update that enqueues its batch, creates its download token and
/// queues a package 0 writes all three with the job row, and an update
/// that no longer applies writes none of them.
pub(crate) async fn job_update_writes_its_batch_token_and_notification(db: &impl Db) {
    use scomo_server::store::{
        new_download_token, Delivery, JobOp, JobOrigin, JobState, JobUpdate, Lease, NewBatch,
        NewDownloadToken, NewJob,
    };

    let store = db.open().await;
    store
        .provision_device(&crate::harness::new_device("d1"), t(1))
        .await
        .unwrap();
    store.insert_package(&package("pkg.j", 'j')).await.unwrap();
    let job = store
        .create_job(
            &NewJob {
                device_id: "d1".into(),
                op: JobOp::Download,
                pkg_id: Some("pkg.j".into()),
                component_id: None,
                delivery: Delivery::Http,
                origin: JobOrigin::Api,
                state: JobState::Queued,
                plan: "{}".into(),
                locks: vec![],
                wake_at: None,
                deadline_at: None,
            },
            t(2),
        )
        .await
        .unwrap();
    let step = |token: &str, owner: &str| JobUpdate {
        plan: "{\"step\":0}".into(),
        enqueue: Some(NewBatch {
            device_id: "d1".into(),
            owner: owner.into(),
            commands: vec![crate::harness::exec(
                "./SCOMO/Download/x/Operations/Download",
                "c1",
            )],
            idempotent: false,
        }),
        token: Some(NewDownloadToken {
            token: token.into(),
            pkg_id: "pkg.j".into(),
            job_id: Some(job.id.0),
            expires_at: t(100),
        }),
        notify: true,
        ..JobUpdate::keep(&job)
    };
    let first = new_download_token().unwrap();
    assert_eq!(first.len(), 32);
    let moved = store
        .update_job(job.id, job.rev, &step(&first, "job:1:exec"), t(3))
        .await
        .unwrap()
        .unwrap();
    let batch = moved
        .batch_id
        .expect("the job waits on the batch it enqueued");
    let b = store.batch(batch).await.unwrap().unwrap();
    assert_eq!(
        (b.owner.as_str(), b.device_id.as_str()),
        ("job:1:exec", "d1")
    );
    let tok = store.download_token(&first).await.unwrap().unwrap();
    assert_eq!((tok.pkg_id.as_str(), tok.job_id), ("pkg.j", Some(job.id.0)));
    let lease = Lease {
        consumer: "n1".into(),
        until: t(60),
    };
    let due = store
        .claim_due_notifications(&lease, 10, t(3))
        .await
        .unwrap();
    assert_eq!(
        due.iter().map(|n| n.device_id.as_str()).collect::<Vec<_>>(),
        ["d1"]
    );

    // The same update again is fenced (the revision moved): no second
    // batch, no token, no notification.
    let second = new_download_token().unwrap();
    assert!(store
        .update_job(job.id, job.rev, &step(&second, "job:1:again"), t(4))
        .await
        .unwrap()
        .is_none());
    assert!(store
        .batches_by_owner("job:1:again", None, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store.download_token(&second).await.unwrap().is_none());
    // The claimed package 0 is next due when its lease ends (t(60)): had
    // the fenced update queued one, it would be due now.
    let lease = Lease {
        consumer: "n1".into(),
        until: t(200),
    };
    assert!(store
        .claim_due_notifications(&lease, 10, t(10))
        .await
        .unwrap()
        .is_empty());

    // A token for a package that is not there fails the whole update.
    let mut bad = step(&new_download_token().unwrap(), "job:1:bad");
    if let Some(t) = bad.token.as_mut() {
        t.pkg_id = "nope".into();
    }
    let err = store
        .update_job(job.id, moved.rev, &bad, t(5))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::UnknownPackage { ref pkg_id } if pkg_id == "nope"),
        "{err}"
    );
    assert!(store
        .batches_by_owner("job:1:bad", None, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.job(job.id).await.unwrap().unwrap().rev, moved.rev);
}
