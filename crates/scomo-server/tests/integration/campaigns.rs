//! Campaign rows, leases, operator commands and members.

use scomo_server::store::{
    CampaignUpdate, Delivery, DeviceFilter, InventoryEntry, InventoryKind, JobOp, JobOrigin,
    JobState, JobUpdate, LabelFilter, MemberOutcome, NewCampaign, NewJob,
};

use crate::harness::{new_device, t, Db};

fn new_campaign(name: &str) -> NewCampaign {
    NewCampaign {
        name: name.into(),
        definition: "{}".into(),
        state: "scheduled".into(),
    }
}

fn update(state: &str, finished: bool) -> CampaignUpdate {
    CampaignUpdate {
        state: state.into(),
        reason: None,
        current_stage: Some(0),
        epoch: 1,
        status: "{\"initial\":3}".into(),
        finished,
    }
}

pub(crate) async fn leases_commands_and_saves(db: &impl Db) {
    let store = db.open().await;
    let a = store
        .create_campaign(&new_campaign("a"), t(1))
        .await
        .unwrap();
    let b = store
        .create_campaign(&new_campaign("b"), t(2))
        .await
        .unwrap();
    assert_eq!(a.state, "scheduled");
    let listed = store.list_campaigns(None, 10).await.unwrap();
    assert_eq!(
        listed.iter().map(|c| c.id).collect::<Vec<_>>(),
        [b.id, a.id]
    );
    assert_eq!(store.list_campaigns(Some(b.id), 10).await.unwrap().len(), 1);

    // Node 1 takes both; node 2 gets none until the lease runs out.
    let got = store.claim_campaigns("n1", t(30), t(3)).await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].owner.as_deref(), Some("n1"));
    assert!(store
        .claim_campaigns("n2", t(40), t(10))
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .save_campaign(a.id, "n1", &update("running", false), t(11))
        .await
        .unwrap());
    assert!(!store
        .save_campaign(a.id, "n2", &update("paused", false), t(11))
        .await
        .unwrap());
    let got = store.claim_campaigns("n2", t(80), t(31)).await.unwrap();
    assert_eq!(got.len(), 2);
    assert!(!store
        .save_campaign(a.id, "n1", &update("paused", false), t(32))
        .await
        .unwrap());
    let row = store.campaign(a.id).await.unwrap().unwrap();
    assert_eq!(
        (row.state.as_str(), row.epoch, row.current_stage),
        ("running", 1, Some(0))
    );
    assert_eq!(row.status.as_deref(), Some("{\"initial\":3}"));

    // Operator commands: left by anyone, taken once by the owner.
    assert!(store
        .request_campaign_command(a.id, "pause", t(33))
        .await
        .unwrap());
    assert_eq!(store.take_campaign_command(a.id, "n1").await.unwrap(), None);
    assert_eq!(
        store
            .take_campaign_command(a.id, "n2")
            .await
            .unwrap()
            .as_deref(),
        Some("pause")
    );
    assert_eq!(store.take_campaign_command(a.id, "n2").await.unwrap(), None);

    // A finished campaign is released and takes no commands.
    assert!(store
        .save_campaign(a.id, "n2", &update("completed", true), t(34))
        .await
        .unwrap());
    let row = store.campaign(a.id).await.unwrap().unwrap();
    assert_eq!((row.finished_at, row.owner), (Some(t(34)), None));
    assert!(!store
        .request_campaign_command(a.id, "resume", t(35))
        .await
        .unwrap());
    let got = store.claim_campaigns("n1", t(200), t(100)).await.unwrap();
    assert_eq!(got.iter().map(|c| c.id).collect::<Vec<_>>(), [b.id]);
}

pub(crate) async fn members_selection_and_outcomes(db: &impl Db) {
    let store = db.open().await;
    for id in ["d3", "d1", "d2", "x9"] {
        store.provision_device(&new_device(id), t(0)).await.unwrap();
    }
    for id in ["d1", "d2", "d3"] {
        store.set_label(id, "ring", "beta", t(0)).await.unwrap();
    }
    let c = store
        .create_campaign(&new_campaign("c"), t(1))
        .await
        .unwrap();
    let filter = DeviceFilter {
        labels: vec![LabelFilter {
            key: "ring".into(),
            value: Some("beta".into()),
        }],
        ..DeviceFilter::default()
    };
    let ids = store.select_new_devices(c.id, &filter, 10).await.unwrap();
    assert_eq!(ids, ["d1", "d2", "d3"]);
    // Members keep the order given; ones already there are not added again.
    let added = store
        .add_members(c.id, &["d2".to_owned(), "d1".to_owned()], t(2))
        .await
        .unwrap();
    assert_eq!(added, ["d2", "d1"]);
    let added = store.add_members(c.id, &ids, t(3)).await.unwrap();
    assert_eq!(added, ["d3"]);
    assert!(store
        .select_new_devices(c.id, &filter, 10)
        .await
        .unwrap()
        .is_empty());
    let m = store.members(c.id, None, 10).await.unwrap();
    assert_eq!(
        m.iter().map(|m| m.device_id.as_str()).collect::<Vec<_>>(),
        ["d2", "d1", "d3"]
    );
    assert_eq!(
        store.members(c.id, Some(m[0].seq), 1).await.unwrap()[0].device_id,
        "d1"
    );

    // A started job's outcome shows up once the job is over.
    let job = store.create_job(&campaign_job("d2"), t(4)).await.unwrap();
    store
        .start_members(c.id, &[("d2".into(), 0)], t(4))
        .await
        .unwrap();
    let m = store.members(c.id, None, 1).await.unwrap();
    assert_eq!(
        (m[0].stage, m[0].started_at, m[0].job_id),
        (Some(0), Some(t(4)), None)
    );
    store
        .set_member_jobs(c.id, &[("d2".into(), job.id)])
        .await
        .unwrap();
    assert!(store
        .finished_member_jobs(c.id, 10)
        .await
        .unwrap()
        .is_empty());
    let mut u = JobUpdate::keep(&job);
    u.state = JobState::Failed;
    u.result_code = Some(1401);
    store
        .update_job(job.id, job.rev, &u, t(5))
        .await
        .unwrap()
        .unwrap();
    let done = store.finished_member_jobs(c.id, 10).await.unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(
        (
            done[0].device_id.as_str(),
            done[0].state,
            done[0].result_code
        ),
        ("d2", JobState::Failed, Some(1401))
    );
    let o = MemberOutcome {
        outcome: "failed".into(),
        result_code: Some(1401),
        class: Some("user_declined".into()),
        epoch: 0,
    };
    let rows = [("d2".to_owned(), o.clone())];
    assert_eq!(store.finish_members(c.id, &rows, t(6)).await.unwrap(), 1);
    assert_eq!(store.finish_members(c.id, &rows, t(7)).await.unwrap(), 0);
    assert!(store
        .finished_member_jobs(c.id, 10)
        .await
        .unwrap()
        .is_empty());
    let m = store.members(c.id, None, 1).await.unwrap();
    assert_eq!(m[0].outcome.as_deref(), Some("failed"));
    assert_eq!(m[0].class.as_deref(), Some("user_declined"));
    assert_eq!(
        (m[0].stage, m[0].epoch, m[0].finished_at),
        (Some(0), Some(0), Some(t(6)))
    );

    // A member whose device (and so its job) is deleted counts as cancelled.
    let job = store.create_job(&campaign_job("d1"), t(8)).await.unwrap();
    store
        .start_members(c.id, &[("d1".into(), 0)], t(8))
        .await
        .unwrap();
    store
        .set_member_jobs(c.id, &[("d1".into(), job.id)])
        .await
        .unwrap();
    assert!(store.delete_device("d1").await.unwrap());
    let done = store.finished_member_jobs(c.id, 10).await.unwrap();
    assert_eq!(
        (done[0].device_id.as_str(), done[0].state),
        ("d1", JobState::Cancelled)
    );

    // A job over before it is recorded for its member counts all the same.
    let job = store.create_job(&campaign_job("d3"), t(9)).await.unwrap();
    store
        .start_members(c.id, &[("d3".into(), 0)], t(9))
        .await
        .unwrap();
    let mut u = JobUpdate::keep(&job);
    u.state = JobState::Succeeded;
    store
        .update_job(job.id, job.rev, &u, t(10))
        .await
        .unwrap()
        .unwrap();
    store
        .set_member_jobs(c.id, &[("d3".into(), job.id)])
        .await
        .unwrap();
    let done = store.finished_member_jobs(c.id, 10).await.unwrap();
    let got: Vec<_> = done
        .iter()
        .map(|d| (d.device_id.as_str(), d.job_id, d.state))
        .collect();
    assert_eq!(
        got[1..],
        [("d3", job.id, JobState::Succeeded)],
        "after d1: {got:?}"
    );
    // Each is reported until its outcome is recorded, then never again.
    let rows: Vec<_> = ["d1", "d3"].map(|d| (d.to_owned(), o.clone())).into();
    assert_eq!(store.finish_members(c.id, &rows, t(11)).await.unwrap(), 2);
    assert!(store
        .finished_member_jobs(c.id, 10)
        .await
        .unwrap()
        .is_empty());

    // Deployed versions of a component, for version filters.
    let entry = |v: Option<&str>| InventoryEntry {
        kind: Some(InventoryKind::Deployed),
        entry: "c1".into(),
        item_id: Some("app".into()),
        name: None,
        version: v.map(str::to_owned),
        state: Some(20),
        status: None,
        pkg_id_ref: None,
        env_type: None,
    };
    store
        .replace_inventory("d3", &[entry(Some("1.0"))], "struct-data", t(9))
        .await
        .unwrap();
    store
        .replace_inventory("x9", &[entry(None)], "struct-data", t(9))
        .await
        .unwrap();
    let mut v = store.deployed_versions("app").await.unwrap();
    v.sort();
    assert_eq!(
        v,
        [
            ("d3".to_owned(), Some("1.0".to_owned())),
            ("x9".to_owned(), None)
        ]
    );
}

/// A queued campaign job for `device` (Activate of component `app`).
fn campaign_job(device: &str) -> NewJob {
    NewJob {
        device_id: device.into(),
        op: JobOp::Activate,
        pkg_id: None,
        component_id: Some("app".into()),
        delivery: Delivery::None,
        origin: JobOrigin::Campaign,
        state: JobState::Queued,
        plan: "{}".into(),
        locks: vec![],
        wake_at: None,
        deadline_at: None,
    }
}
