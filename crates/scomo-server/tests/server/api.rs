//! The REST API: tokens, validation, the device registry, /metrics.

use serde_json::{json, Value};

use crate::harness::{enc, status_json, DmClient, TestApp};

#[tokio::test]
async fn every_api_route_needs_a_valid_token() {
    let app = TestApp::start().await;
    // Every token-checked endpoint, and an unknown API path.
    let mut routes: Vec<(&str, String)> = scomo_server::api::ENDPOINTS
        .iter()
        .filter(|e| e.token)
        .map(|e| {
            let path = e.path.replace("{id}", "x").replace("{batch}", "1");
            (e.method, path)
        })
        .collect();
    assert!(routes.len() >= 10);
    routes.push(("GET", "/nothing/here".into()));
    for (method, path) in &routes {
        for auth in [None, Some("Bearer scomo_wrong"), Some("Basic abc")] {
            let mut r = app
                .http
                .request(method.parse().unwrap(), app.api(path))
                .header("content-type", "application/json")
                .body("{}");
            if let Some(a) = auth {
                r = r.header("authorization", a);
            }
            let (status, v) = status_json(r.send().await.unwrap()).await;
            assert_eq!(status, 401, "{method} {path} {auth:?}: {v}");
            assert_eq!(v["code"], "unauthorized");
            assert!(v["message"].is_string());
        }
    }
    // The admin token from admin.token works.
    let (status, v) = app.get("/devices").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["devices"], json!([]));
    // The token file is the owner's only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(app.data_dir().join("admin.token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test]
async fn provisioning_validates_and_never_shows_secrets() {
    let app = TestApp::start().await;
    let bad: [(Value, &str); 8] = [
        (json!({"id": "a", "username": "u"}), "password"),
        (json!({"id": "", "username": "u", "password": "p"}), "id"),
        (
            json!({"id": "a", "username": "u", "password": "p", "auth": "digest"}),
            "digest",
        ),
        (
            json!({"id": "a", "username": "u", "password": "p", "notify_addr": "sms:1"}),
            "notify_addr",
        ),
        (
            json!({"id": "a", "username": "u", "password": "p", "colour": "red"}),
            "colour",
        ),
        (
            json!({"id": "a", "username": "u", "password": "p", "server_password": ""}),
            "server_password",
        ),
        (json!("a string"), "invalid type"),
        (
            json!({"id": "a", "username": "u:v", "password": "p", "auth": "basic"}),
            "colon",
        ),
    ];
    for (body, word) in bad {
        let (status, v) = app.post("/devices", body.clone()).await;
        assert_eq!(status, 400, "{body}: {v}");
        assert_eq!(v["code"], "bad_request");
        let msg = v["message"].as_str().unwrap();
        assert!(msg.contains(word), "{body}: {msg:?} does not name {word:?}");
    }
    let r = app
        .http
        .post(app.api("/devices"))
        .bearer_auth(&app.token)
        .header("content-type", "application/json")
        .body("{\"id\": ")
        .send()
        .await
        .unwrap();
    let (status, v) = status_json(r).await;
    assert_eq!(status, 400, "{v}");

    let d = app
        .provision(
            "IMEI:1",
            json!({"server_password": "srv-pw-1", "notify_addr": "udp://127.0.0.1:9999", "labels": {"site": "x"}}),
        )
        .await;
    assert_eq!(d["id"], "IMEI:1");
    assert_eq!(d["auth"], "md5");
    assert_eq!(d["username"], "IMEI:1");
    assert_eq!(d["own_server_password"], true);
    assert_eq!(d["labels"]["site"], "x");
    let text = d.to_string();
    assert!(
        !text.contains("secret-IMEI:1") && !text.contains("srv-pw-1"),
        "{text}"
    );

    let (status, v) = app
        .post(
            "/devices",
            json!({"id": "IMEI:1", "username": "u", "password": "p"}),
        )
        .await;
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["code"], "conflict");

    let (status, v) = app.get(&format!("/devices/{}", enc("IMEI:1"))).await;
    assert_eq!(status, 200);
    assert_eq!(v["nodes"], json!({}));
    assert!(!v.to_string().contains("srv-pw-1"));

    let (status, v) = app.get("/devices/IMEI%3A404").await;
    assert_eq!(status, 404);
    assert_eq!(v["code"], "not_found");
}

#[tokio::test]
async fn devices_are_listed_page_by_page_updated_and_deleted() {
    let app = TestApp::start().await;
    for i in 0..5 {
        app.provision(&format!("dev-{i}"), json!({})).await;
    }
    let (_, p1) = app.get("/devices?limit=2").await;
    assert_eq!(p1["devices"].as_array().unwrap().len(), 2);
    assert_eq!(p1["next_after"], "dev-1");
    let (_, p3) = app.get("/devices?limit=2&after=dev-3").await;
    assert_eq!(p3["devices"][0]["id"], "dev-4");
    assert!(p3["next_after"].is_null());
    let (status, v) = app.get("/devices?limit=0").await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = app.get("/devices?limt=3").await;
    assert_eq!(status, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("limt"), "{v}");

    let r = app
        .http
        .patch(app.api("/devices/dev-0"))
        .bearer_auth(&app.token)
        .json(&json!({"notify_addr": "http://127.0.0.1:7000/p0"}))
        .send()
        .await
        .unwrap();
    let (status, v) = status_json(r).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["notify_addr"], "http://127.0.0.1:7000/p0");
    let r = app
        .http
        .patch(app.api("/devices/dev-0"))
        .bearer_auth(&app.token)
        .json(&json!({"notify_addr": null, "password": "only-half"}))
        .send()
        .await
        .unwrap();
    let (status, v) = status_json(r).await;
    assert_eq!(status, 400, "{v}");

    let r = app
        .http
        .delete(app.api("/devices/dev-0"))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let r = app
        .http
        .delete(app.api("/devices/dev-0"))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let (_, all) = app.get("/devices").await;
    assert_eq!(all["devices"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn bad_batches_are_refused_with_the_place_named() {
    let app = TestApp::start().await;
    app.provision("d1", json!({})).await;
    let cases: [(Value, &str); 5] = [
        (json!({"commands": []}), "empty"),
        (json!({"commands": [{"op": "get"}]}), "commands[0]"),
        (
            json!({"commands": [{"op": "get", "target": "./a"}, {"op": "fly", "target": "./b"}]}),
            "commands[1]",
        ),
        (
            json!({"commands": [{"op": "atomic", "commands": [{"op": "exec"}]}]}),
            "commands[0].commands[0]",
        ),
        (
            json!({"commands": [{"op": "get", "target": "./a", "extra": 1}]}),
            "extra",
        ),
    ];
    for (body, word) in cases {
        let (status, v) = app.post("/devices/d1/commands", body.clone()).await;
        assert_eq!(status, 400, "{body}: {v}");
        assert!(v["message"].as_str().unwrap().contains(word), "{body}: {v}");
    }
    let (status, _) = app
        .post(
            "/devices/nope/commands",
            json!({"commands": [{"op": "get", "target": "./a"}]}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app.get("/devices/d1/commands/999999").await;
    assert_eq!(status, 404);
    let (status, v) = app.post("/devices/d1/notify", json!({})).await;
    assert_eq!(status, 409, "no notification address: {v}");
}

#[tokio::test]
async fn metrics_and_health_are_served() {
    let app = TestApp::start().await;
    let r = app
        .http
        .get(format!("{}/healthz", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["node"], app.state.node_id());

    app.provision("m1", json!({})).await;
    let mut dev = DmClient::new(&app, "m1");
    let run = dev.run_session().await;
    assert_eq!(run.outcome, Some(omadm::client::ClientOutcome::Completed));
    let r = app
        .http
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap();
    assert!(r
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = r.text().await.unwrap();
    for name in [
        "scomo_dm_sessions_started_total{initiation=\"client\"}",
        "scomo_dm_sessions_ended_total{outcome=\"ok\"}",
        "scomo_dm_messages_received_total{encoding=\"xml\"}",
        "scomo_dm_messages_sent_total",
        "scomo_dm_statuses_total{code=\"200\"}",
        "scomo_dm_message_duration_seconds_bucket",
        "scomo_dm_session_duration_seconds_count",
        "# HELP scomo_dm_sessions_started_total",
    ] {
        assert!(text.contains(name), "/metrics lacks {name}:\n{text}");
    }
}

#[tokio::test]
async fn bulk_provisioning_answers_per_device() {
    let app = TestApp::start().await;
    let dev = |id: &str| json!({"id": id, "username": id, "password": "pw", "labels": {"m": "X"}});
    let (status, v) = app
        .post(
            "/devices/bulk",
            json!({"devices": [
                dev("b-1"),
                dev("b-2"),
                dev("b-1"),
                {"id": "b-3", "username": "u", "password": ""},
                {"id": "b-4", "username": "u", "password": "p", "notify_addr": "udp://h"},
            ]}),
        )
        .await;
    assert_eq!(status, 207, "{v}");
    assert_eq!(
        (&v["created"], &v["exists"], &v["invalid"]),
        (&json!(2), &json!(1), &json!(2))
    );
    let statuses: Vec<u64> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [201, 201, 409, 400, 400]);
    assert!(v["results"][3]["message"]
        .as_str()
        .unwrap()
        .contains("password"));
    assert_eq!(v["results"][4]["id"], "b-4");
    let (status, v) = app.get("/devices/b-2").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["labels"]["m"], "X");
    // More than the limit is refused whole.
    let many: Vec<Value> = (0..1001).map(|i| dev(&format!("m-{i}"))).collect();
    let (status, v) = app.post("/devices/bulk", json!({ "devices": many })).await;
    assert_eq!(status, 400, "{v}");
    let (_, v) = app.get("/devices?prefix=m-").await;
    assert_eq!(v["devices"], json!([]));
}
