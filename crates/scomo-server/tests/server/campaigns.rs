//! Campaigns end to end: the REST API creates them, the node's campaign
//! driver starts the jobs stage by stage, real agents (in-process, over
//! HTTP) carry them out, and the counts, states and thresholds follow.

use scomo_agent::scomo_client::ConfirmPolicy;
use scomo_agent::Agent;
use serde_json::{json, Value};

use crate::agent::agent_config;
use crate::harness::{eventually, Builder, TestApp};
use crate::jobs::{job, package, run_job, upload_ok};
use scomo_server::store::Timestamp;

async fn create(app: &TestApp, body: Value) -> Value {
    let (status, v) = app.post("/campaigns", body).await;
    assert_eq!(status, 201, "{v}");
    v
}

async fn campaign(app: &TestApp, id: &Value) -> Value {
    let (status, v) = app.get(&format!("/campaigns/{id}")).await;
    assert_eq!(status, 200, "{v}");
    v
}

async fn members(app: &TestApp, id: &Value) -> Vec<Value> {
    let (status, v) = app.get(&format!("/campaigns/{id}/devices")).await;
    assert_eq!(status, 200, "{v}");
    v.as_array().unwrap().clone()
}

/// Waits until the campaign has started a job on `device`; returns its id.
async fn job_of(app: &TestApp, id: &Value, device: &str) -> Value {
    eventually(20, || async {
        members(app, id)
            .await
            .into_iter()
            .find(|m| m["device_id"] == device && m.get("job_id").is_some())
            .map(|m| m["job_id"].clone())
    })
    .await
}

/// Waits until the campaign is in `state`.
async fn reaches(app: &TestApp, id: &Value, state: &str) -> Value {
    eventually(20, || async {
        let c = campaign(app, id).await;
        (c["state"] == state).then_some(c)
    })
    .await
}

async fn device(
    app: &TestApp,
    id: &str,
    labels: Value,
    decline: bool,
) -> (Agent, tempfile::TempDir) {
    app.provision(id, json!({ "labels": labels })).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = agent_config(app, id, dir.path());
    if decline {
        config.scomo.confirm.default = ConfirmPolicy::Decline;
    }
    (Agent::new(config).unwrap(), dir)
}

fn fast() -> Builder {
    Builder::new().configure(|c| c.scomo.campaign_rejoin_ms = 50)
}

#[tokio::test]
async fn staged_campaign_pauses_on_a_decline_and_completes_when_resumed() {
    let app = fast().start().await;
    upload_ok(&app, package("hello-1.0", "hello", "1.0", "archive")).await;
    let mut agents = Vec::new();
    for (id, decline) in [
        ("IMEI:700", false),
        ("IMEI:701", true),
        ("IMEI:702", false),
        ("IMEI:703", false),
    ] {
        agents.push((
            id,
            device(&app, id, json!({"ring": "canary"}), decline).await,
        ));
    }
    // Not selected: another ring.
    app.provision("IMEI:799", json!({"labels": {"ring": "stable"}}))
        .await;

    let c = create(
        &app,
        json!({
            "name": "hello to canaries",
            "job": {"op": "DownloadInstall", "package": "hello-1.0"},
            "select": {"labels": ["ring=canary"]},
            "stages": [{"count": 1}, {"count": 1}, {"percent": 100}],
            "success_threshold_pct": 100,
            "error_thresholds": [
                {"class": "user_declined", "max_pct": 0, "min_finished": 1, "action": "pause"}
            ],
            "rate_per_sec": 100,
            "max_concurrency": 10
        }),
    )
    .await;
    let id = c["id"].clone();
    assert_eq!(c["state"], "scheduled", "{c}");

    // Stage 1: the first device only.
    let j = job_of(&app, &id, "IMEI:700").await;
    let c = campaign(&app, &id).await;
    assert_eq!(c["progress"]["totals"]["devices"], 4, "{c}");
    assert_eq!(c["progress"]["stages"][1]["opened"], false, "{c}");
    let agent = &agents[0].1 .0;
    assert_eq!(run_job(&app, agent, &j).await["state"], "succeeded");

    // Stage 2 opens: its device declines, the threshold pauses the campaign.
    let j = job_of(&app, &id, "IMEI:701").await;
    let done = run_job(&app, &agents[1].1 .0, &j).await;
    assert_eq!(done["state"], "failed", "{done}");
    assert_eq!(done["result_code"], 1401, "{done}");
    let c = reaches(&app, &id, "paused").await;
    assert_eq!(c["reason"]["kind"], "error_threshold", "{c}");
    assert_eq!(c["reason"]["class"], "user_declined", "{c}");
    assert_eq!(c["progress"]["totals"]["user_declined"], 1, "{c}");
    assert_eq!(c["progress"]["totals"]["pending"], 2, "{c}");

    // Resuming clears the error count, but the stage still missed its
    // success threshold: paused again, for that reason.
    let (status, v) = app
        .post(&format!("/campaigns/{id}/resume"), json!({}))
        .await;
    assert_eq!(status, 202, "{v}");
    let c = eventually(20, || async {
        let c = campaign(&app, &id).await;
        (c["state"] == "paused" && c["reason"]["kind"] == "success_threshold_not_met").then_some(c)
    })
    .await;
    assert_eq!(c["reason"]["stage"], 1, "{c}");
    assert!(
        c["reason_text"].as_str().unwrap().contains("only 0 of 1"),
        "{c}"
    );

    // The operator lets it go on: the last stage runs to completion.
    let (status, _) = app
        .post(&format!("/campaigns/{id}/resume"), json!({}))
        .await;
    assert_eq!(status, 202);
    for n in [2, 3] {
        let (dev, (agent, _)) = (&agents[n].0, &agents[n].1);
        let j = job_of(&app, &id, dev).await;
        assert_eq!(run_job(&app, agent, &j).await["state"], "succeeded");
    }
    let c = reaches(&app, &id, "completed").await;
    let t = &c["progress"]["totals"];
    assert_eq!(
        (
            t["devices"].as_u64(),
            t["succeeded"].as_u64(),
            t["user_declined"].as_u64(),
            t["pending"].as_u64()
        ),
        (Some(4), Some(3), Some(1), Some(0)),
        "{c}"
    );
    assert!(c["finished_at"].is_string(), "{c}");
    let m = members(&app, &id).await;
    let outcomes: Vec<(&str, &str)> = m
        .iter()
        .map(|m| {
            (
                m["device_id"].as_str().unwrap(),
                m["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("IMEI:700", "succeeded"),
            ("IMEI:701", "failed"),
            ("IMEI:702", "succeeded"),
            ("IMEI:703", "succeeded")
        ]
    );
    assert_eq!(m[1]["class"], "user_declined");
    // Campaign jobs say where they come from.
    let j = job(&app, &m[0]["job_id"]).await;
    assert_eq!(j["origin"], "campaign", "{j}");
    // A finished campaign takes no more commands.
    let (status, v) = app.post(&format!("/campaigns/{id}/pause"), json!({})).await;
    assert_eq!(status, 409, "{v}");
}

#[tokio::test]
async fn late_joiners_and_component_versions_select_devices() {
    let app = fast().start().await;
    upload_ok(&app, package("hello-1.0", "hello", "1.0", "archive")).await;
    upload_ok(&app, package("hello-2.0", "hello", "2.0", "archive")).await;
    let (a, _da) = device(&app, "IMEI:710", json!({}), false).await;
    let (b, _db) = device(&app, "IMEI:711", json!({}), false).await;
    // IMEI:710 has hello 1.0; IMEI:711 has nothing.
    let (status, j) = app
        .post(
            "/jobs",
            json!({"device": "IMEI:710", "op": "DownloadInstall", "package": "hello-1.0"}),
        )
        .await;
    assert_eq!(status, 201, "{j}");
    assert_eq!(run_job(&app, &a, &j["id"]).await["state"], "succeeded");

    // Update every device whose hello is older than 2.0.
    let c = create(
        &app,
        json!({
            "name": "hello 2.0",
            "job": {"op": "Update", "package": "hello-2.0"},
            "select": {"man": "AgentCo", "component": {"id": "hello", "below": "2.0"}},
            "rate_per_sec": 100
        }),
    )
    .await;
    let id = c["id"].clone();
    let j = job_of(&app, &id, "IMEI:710").await;
    assert_eq!(run_job(&app, &a, &j).await["state"], "succeeded");
    let c = reaches(&app, &id, "completed").await;
    assert_eq!(c["progress"]["totals"]["succeeded"], 1, "{c}");
    assert_eq!(members(&app, &id).await.len(), 1);

    // A filter on labels keeps taking devices that start matching.
    let c = create(
        &app,
        json!({
            "name": "tagged",
            "job": {"op": "DownloadInstall", "package": "hello-1.0"},
            "select": {"labels": ["wave"]},
            "start_at": 4_000_000_000i64,
        }),
    )
    .await;
    let id = c["id"].clone();
    app.state
        .store()
        .set_label(
            "IMEI:711",
            "wave",
            "",
            scomo_server::store::Timestamp::now(),
        )
        .await
        .unwrap();
    let c = eventually(20, || async {
        let c = campaign(&app, &id).await;
        (c["progress"]["totals"]["devices"] == 1).then_some(c)
    })
    .await;
    assert_eq!(c["state"], "scheduled", "{c}");
    let (status, _) = app
        .post(&format!("/campaigns/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, 202);
    let c = reaches(&app, &id, "cancelled").await;
    assert_eq!(c["progress"]["totals"]["pending"], 1, "{c}");
    drop(b);
}

#[tokio::test]
async fn cancel_stops_starts_and_cancels_jobs_in_flight() {
    let app = fast().start().await;
    upload_ok(&app, package("hello-1.0", "hello", "1.0", "archive")).await;
    for id in ["IMEI:720", "IMEI:721"] {
        app.provision(id, json!({})).await;
    }
    let c = create(
        &app,
        json!({
            "name": "one at a time",
            "job": {"op": "DownloadInstall", "package": "hello-1.0"},
            "select": {"devices": ["IMEI:720", "IMEI:721"]},
            "max_concurrency": 1,
            "rate_per_sec": 100
        }),
    )
    .await;
    let id = c["id"].clone();
    let j = job_of(&app, &id, "IMEI:720").await;
    let (status, _) = app
        .post(&format!("/campaigns/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, 202);
    reaches(&app, &id, "cancelled").await;
    assert_eq!(job(&app, &j).await["state"], "cancelled");
    let c = eventually(20, || async {
        let c = campaign(&app, &id).await;
        (c["progress"]["totals"]["cancelled"] == 1).then_some(c)
    })
    .await;
    assert_eq!(c["progress"]["totals"]["pending"], 1, "{c}");
    let m = members(&app, &id).await;
    assert!(m[1].get("job_id").is_none(), "{m:?}");
}

#[tokio::test]
async fn a_restarted_node_carries_on_with_its_campaign() {
    let app = fast().start().await;
    upload_ok(&app, package("hello-1.0", "hello", "1.0", "archive")).await;
    let (a, _da) = device(&app, "IMEI:730", json!({}), false).await;
    let (b, _db) = device(&app, "IMEI:731", json!({}), false).await;
    let c = create(
        &app,
        json!({
            "name": "survives",
            // Direct delivery: the restarted test server listens on another
            // port, and an http PkgURL names the old one.
            "job": {"op": "DownloadInstall", "package": "hello-1.0", "delivery": "direct"},
            "select": {"devices": ["IMEI:730", "IMEI:731"]},
            "stages": [{"count": 1}, {"count": 1}],
            "rate_per_sec": 100
        }),
    )
    .await;
    let id = c["id"].clone();
    let j = job_of(&app, &id, "IMEI:730").await;
    let started = Timestamp::from_unix_millis(Timestamp::now().unix_millis() - 60_000);
    let dir = app.crash().await;
    // As if the node had died between creating the job and recording it:
    // the member is started, its job unknown. The restarted node finds it.
    {
        use scomo_server::store::{CampaignId, CampaignStore as _, SqlStore, StoreConfig};
        let url = format!("sqlite://{}", dir.path().join("scomo.db").display());
        let store = SqlStore::open(&StoreConfig::new(&url)).await.unwrap();
        let cid = CampaignId(id.as_i64().unwrap());
        store
            // Started before its job was created, as the driver does it.
            .start_members(cid, &[("IMEI:730".into(), 0)], started)
            .await
            .unwrap();
        assert_eq!(store.members(cid, None, 1).await.unwrap()[0].job_id, None);
        store.close().await;
    }
    let app = Builder::in_dir(dir)
        .configure(|c| c.scomo.campaign_rejoin_ms = 50)
        .start()
        .await;
    // The restarted node's agent config points at the new address.
    let a = Agent::new(agent_config(
        &app,
        "IMEI:730",
        a.config().agent.data_dir.as_path(),
    ))
    .unwrap();
    let b = Agent::new(agent_config(
        &app,
        "IMEI:731",
        b.config().agent.data_dir.as_path(),
    ))
    .unwrap();
    let done = run_job(&app, &a, &j).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let j2 = job_of(&app, &id, "IMEI:731").await;
    assert_eq!(run_job(&app, &b, &j2).await["state"], "succeeded");
    let c = reaches(&app, &id, "completed").await;
    assert_eq!(c["progress"]["totals"]["succeeded"], 2, "{c}");
    assert_eq!(c["progress"]["stages"][0]["succeeded"], 1, "{c}");
    let m = members(&app, &id).await;
    assert_eq!(m[0]["job_id"], j, "the job found again: {m:?}");
}
