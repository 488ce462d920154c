//! `POST /dm`: sessions, encodings, authentication, limits, the command
//! queue, alerts and crash safety.

use omadm::auth::{AuthType, Credentials};
use omadm::client::{ClientAlert, ClientOutcome, SessionKind, SessionStart};
use omadm::{AuthConfig, Incoming, NonceState};
use omadm_wire::model::Data;
use omadm_wire::{Encoding, Limits};
use serde_json::json;

use crate::harness::{enc, eventually, Builder, DmClient, TestApp};

#[tokio::test]
async fn xml_session_records_devinfo_devdetail_and_pins_resp_uri() {
    let app = TestApp::start().await;
    app.provision("IMEI:100", json!({})).await;
    let mut dev = DmClient::new(&app, "IMEI:100");
    let run = dev.run_session().await;
    assert_eq!(run.outcome, Some(ClientOutcome::Completed), "{run:?}");
    // The first message goes to /dm, every later one to this node's RespURI.
    assert_eq!(run.urls.first().unwrap(), &app.dm_url());
    let token_url = run.urls.get(1).expect("a second message");
    assert!(
        token_url.starts_with(&format!("{}/dm/", app.url)),
        "{token_url}"
    );
    assert!(run.urls.iter().skip(1).all(|u| u == token_url));
    assert!(run
        .content_types
        .iter()
        .all(|c| c == "application/vnd.syncml.dm+xml"));

    let (status, d) = app.get(&format!("/devices/{}", enc("IMEI:100"))).await;
    assert_eq!(status, 200);
    assert_eq!(d["man"], "Acme");
    assert_eq!(d["model"], "Rocket");
    assert_eq!(d["dev_typ"], "gateway");
    assert_eq!(d["nodes"]["./DevInfo/Lang"], "en");
    assert_eq!(d["nodes"]["./DevDetail/FwV"], "1.0");
    assert!(d["last_seen_at"].is_string());

    let (_, sessions) = app
        .get(&format!("/devices/{}/sessions", enc("IMEI:100")))
        .await;
    let s = &sessions[0];
    assert_eq!(s["outcome"], "ok");
    assert_eq!(s["initiation"], 1201);
    assert_eq!(s["node_id"], app.state.node_id());
    assert_eq!(s["messages_in"].as_u64(), Some(u64::from(run.messages)));
}

#[tokio::test]
async fn wbxml_session_is_answered_in_wbxml() {
    let app = TestApp::start().await;
    app.provision("IMEI:101", json!({})).await;
    let batch = app
        .enqueue(
            "IMEI:101",
            json!({"commands": [{"op": "get", "target": "./DevInfo/Man"}]}),
        )
        .await;
    let mut dev = DmClient::new(&app, "IMEI:101");
    dev.cfg.encoding = Encoding::Wbxml;
    let run = dev.run_session().await;
    assert_eq!(run.outcome, Some(ClientOutcome::Completed), "{run:?}");
    assert!(run
        .content_types
        .iter()
        .all(|c| c == "application/vnd.syncml.dm+wbxml"));
    let b = app.batch("IMEI:101", batch).await;
    assert_eq!(b["state"], "completed");
    assert_eq!(b["outcomes"][0]["results"][0]["data"], "Acme");
}

#[tokio::test]
async fn ds_content_types_of_older_clients_are_accepted() {
    let app = TestApp::start().await;
    app.provision("IMEI:102", json!({})).await;
    for encoding in [Encoding::Xml, Encoding::Wbxml] {
        let mut dev = DmClient::new(&app, "IMEI:102");
        dev.cfg.encoding = encoding;
        dev.ds_content_type = true;
        let run = dev.run_session().await;
        assert_eq!(run.outcome, Some(ClientOutcome::Completed), "{run:?}");
    }
}

#[tokio::test]
async fn basic_and_hmac_devices_authenticate_with_only_the_hash_stored() {
    let app = TestApp::start().await;
    // Basic credentials are `user:password`: a user name without a colon.
    for (id, user, auth, t) in [
        ("IMEI:103", "user103", "basic", AuthType::Basic),
        ("IMEI:104", "IMEI:104", "hmac", AuthType::Hmac),
    ] {
        app.provision(id, json!({ "auth": auth, "username": user }))
            .await;
        let mut dev = DmClient::new(&app, id);
        dev.cfg.client_auth = Some(AuthConfig::new(
            t,
            Credentials::new(user, crate::harness::password(id)),
        ));
        dev.cfg.server_auth = Some(AuthConfig::new(
            t,
            Credentials::new("scomo", crate::harness::SERVER_PASSWORD),
        ));
        let run = dev.run_session().await;
        assert_eq!(
            run.outcome,
            Some(ClientOutcome::Completed),
            "{auth}: {run:?}"
        );
    }
}

/// Posts one body to `/dm` and returns status, content type and body.
async fn post_dm(app: &TestApp, content_type: &str, body: Vec<u8>) -> (u16, String, Vec<u8>) {
    let r = app
        .http
        .post(app.dm_url())
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, r.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn wrong_credentials_get_401_statuses_and_nothing_else() {
    let app = TestApp::start().await;
    app.provision("IMEI:105", json!({})).await;
    let mut dev = DmClient::new(&app, "IMEI:105");
    dev.cfg.client_auth = Some(AuthConfig::new(
        AuthType::Md5,
        Credentials::new("IMEI:105", "wrong"),
    ));
    // Pre-set a nonce so package 1 carries credentials that are checked.
    dev.nonces = NonceState {
        client_nonce: omadm::auth::Nonce::from_bytes(b"0123456789abcdef".to_vec()),
        server_nonce: omadm::auth::Nonce::default(),
    };
    let mut session = dev.session("A1");
    let req = session.poll_transmit().unwrap();
    let (status, ct, body) = post_dm(&app, req.content_type, req.body).await;
    assert_eq!(status, 200, "a SyncML answer, with 401 inside");
    assert_eq!(ct, "application/vnd.syncml.dm+xml");
    let msg = omadm_wire::decode(&body, Encoding::Xml, &Limits::default()).unwrap();
    assert!(
        msg.header.cred.is_none(),
        "no server credentials to an unauthenticated device"
    );
    for c in &msg.body.commands {
        let omadm_wire::model::Command::Status(s) = c else {
            panic!("only statuses go to an unauthenticated device: {c:?}");
        };
        assert!(matches!(s.data.0, 401 | 407), "{s:?}");
    }
    // Let the client retry with its (wrong) credentials until it gives up.
    session
        .handle_response(
            Incoming::new(&body).content_type(&ct),
            &mut dev.device,
            &mut |b: &mut [u8]| getrandom::fill(b).unwrap(),
        )
        .unwrap();
    let run = dev.drive(&mut session, 10).await;
    assert!(
        matches!(run.outcome, Some(ClientOutcome::Failed(_))),
        "{run:?}"
    );
    // Nothing the device said was recorded.
    let (_, d) = app.get(&format!("/devices/{}", enc("IMEI:105"))).await;
    assert!(d["man"].is_null(), "{d}");
    assert_eq!(d["nodes"], json!({}));
    let (_, sessions) = app
        .get(&format!("/devices/{}/sessions", enc("IMEI:105")))
        .await;
    assert_eq!(sessions[0]["outcome"], "auth_failed");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("scomo_dm_auth_failures_total"),
        "{metrics}"
    );
}

#[tokio::test]
async fn unknown_devices_are_refused_unless_auto_registration_is_on() {
    let app = TestApp::start().await;
    let mut dev = DmClient::new(&app, "IMEI:106");
    let run = dev.run_session().await;
    assert!(
        matches!(run.outcome, Some(ClientOutcome::Failed(_))),
        "{run:?}"
    );
    let (status, _) = app.get(&format!("/devices/{}", enc("IMEI:106"))).await;
    assert_eq!(status, 404);

    let app = Builder::new()
        .configure(|c| c.devices.insecure_auto_register = true)
        .start()
        .await;
    let mut dev = DmClient::new(&app, "IMEI:107");
    dev.cfg.client_auth = None;
    dev.cfg.server_auth = None;
    let run = dev.run_session().await;
    assert_eq!(run.outcome, Some(ClientOutcome::Completed), "{run:?}");
    let (status, d) = app.get(&format!("/devices/{}", enc("IMEI:107"))).await;
    assert_eq!(status, 200);
    assert_eq!(d["origin"], "auto");
    assert_eq!(d["man"], "Acme");
}

#[tokio::test]
async fn oversize_undecodable_and_unknown_session_requests_get_json_errors() {
    let app = Builder::new()
        .configure(|c| c.dm.max_msg_size = 4096)
        .start()
        .await;
    let (status, ct, body) = post_dm(&app, "application/vnd.syncml.dm+xml", vec![b' '; 4097]).await;
    assert_eq!(status, 413);
    assert!(ct.starts_with("application/json"), "{ct}");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["code"], "payload_too_large");
    assert!(v["message"].as_str().unwrap().contains("4096"), "{v}");

    let (status, _, body) = post_dm(
        &app,
        "application/vnd.syncml.dm+xml",
        b"<SyncML><SyncHdr>".to_vec(),
    )
    .await;
    assert_eq!(status, 400);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["code"], "bad_request");

    let (status, _, body) = post_dm(
        &app,
        "application/vnd.syncml.dm+wbxml",
        vec![0x02, 0xff, 0xff],
    )
    .await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));

    let (status, _, _) = post_dm(&app, "image/png", vec![0x89, b'P', b'N', b'G']).await;
    assert_eq!(status, 415);

    let r = app
        .http
        .post(format!("{}/dm/no-such-token", app.url))
        .header("content-type", "application/vnd.syncml.dm+xml")
        .body("<SyncML/>")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["code"], "not_found");
}

#[tokio::test]
async fn a_batch_is_sent_and_every_outcome_recorded() {
    let app = TestApp::start().await;
    app.provision("IMEI:110", json!({})).await;
    let batch = app
        .enqueue(
            "IMEI:110",
            json!({"commands": [
                {"op": "get", "target": "./DevInfo/Man"},
                {"op": "atomic", "commands": [
                    {"op": "replace", "target": "./DevDetail/FwV", "data": "2.0"},
                    {"op": "get", "target": "./DevDetail/FwV"}
                ]},
                {"op": "get", "target": "./No/Such/Node"}
            ]}),
        )
        .await;
    let b = app.batch("IMEI:110", batch).await;
    assert_eq!(b["state"], "pending");
    assert_eq!(b["command_count"], 5);

    let mut dev = DmClient::new(&app, "IMEI:110");
    let run = dev.run_session().await;
    assert_eq!(run.outcome, Some(ClientOutcome::Completed), "{run:?}");
    let b = app.batch("IMEI:110", batch).await;
    assert_eq!(b["state"], "completed", "{b}");
    assert_eq!(b["attempts"], 1);
    let outcome = |i: u64| {
        b["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["index"] == i)
            .cloned()
            .unwrap_or_else(|| panic!("no outcome {i}: {b}"))
    };
    assert_eq!(outcome(0)["status"], 200);
    assert_eq!(outcome(0)["results"][0]["data"], "Acme");
    assert_eq!(outcome(0)["results"][0]["source"], "./DevInfo/Man");
    assert_eq!(outcome(1)["status"], 200);
    assert_eq!(outcome(2)["status"], 200);
    assert_eq!(outcome(3)["results"][0]["data"], "2.0");
    assert_eq!(outcome(4)["status"], 404);
    assert_eq!(
        dev.device.get("./DevDetail/FwV"),
        Some(&Data::Text("2.0".into()))
    );

    // Nothing left: the next session sends no batch.
    let run = dev.run_session().await;
    assert_eq!(run.outcome, Some(ClientOutcome::Completed));
    let b = app.batch("IMEI:110", batch).await;
    assert_eq!(b["attempts"], 1);
}

#[tokio::test]
async fn generic_alerts_are_stored_and_acknowledged() {
    let app = TestApp::start().await;
    app.provision("IMEI:111", json!({})).await;
    let mut dev = DmClient::new(&app, "IMEI:111");
    let mut session = omadm::client::ClientSession::new(
        dev.cfg.clone(),
        SessionStart {
            kind: SessionKind::ClientInitiated {
                session_id: "77".into(),
            },
            dev_info: vec![("./DevInfo/DevId".into(), "IMEI:111".into())],
            alerts: vec![ClientAlert::generic(
                9,
                "urn:oma:at:scomo:1.0:OperationComplete",
                "xml",
                Some("./SCOMO/Inventory/Deployed/app1"),
                Some("corr-1"),
                Data::Xml("<ResultCode>1200</ResultCode>".into()),
            )],
            nonces: NonceState::default(),
        },
    );
    let run = dev.drive(&mut session, 20).await;
    assert_eq!(run.outcome, Some(ClientOutcome::Completed), "{run:?}");
    let report = session.alert_report();
    assert_eq!(report.delivered.len(), 1, "{report:?}");
    let (_, alerts) = app
        .get(&format!("/devices/{}/alerts", enc("IMEI:111")))
        .await;
    let a = &alerts[0];
    assert_eq!(a["code"], 1226);
    assert_eq!(a["correlator"], "corr-1");
    assert_eq!(a["type"], "urn:oma:at:scomo:1.0:OperationComplete");
    assert_eq!(a["source"], "./SCOMO/Inventory/Deployed/app1");
    assert!(a["data"].as_str().unwrap().contains("1200"));
}

#[tokio::test]
async fn nonces_are_persisted_between_sessions() {
    let app = TestApp::start().await;
    app.provision("IMEI:112", json!({})).await;
    let mut dev = DmClient::new(&app, "IMEI:112");
    // A nonce the server never issued: package 1 is challenged.
    dev.nonces.client_nonce = omadm::auth::Nonce::from_bytes(b"stale-nonce-1234".to_vec());
    let first = dev.run_session().await;
    assert_eq!(first.outcome, Some(ClientOutcome::Completed));
    let stored = app.state.store().device("IMEI:112").await.unwrap().unwrap();
    assert_eq!(
        stored.nonces.client.as_deref(),
        Some(dev.nonces.client_nonce.as_bytes()),
        "the server keeps the nonce it gave the device"
    );
    assert_eq!(dev.nonces.client_nonce.as_bytes().len(), 16);
    // With the nonce known, package 1 authenticates at once: fewer messages.
    let second = dev.run_session().await;
    assert_eq!(second.outcome, Some(ClientOutcome::Completed));
    assert!(second.messages < first.messages, "{first:?} {second:?}");
}

/// Restart in the middle of a queued batch: the batch was sent, the node
/// died before the statuses came back; the new node settles the old
/// session at start, and the batch is sent again and completes once.
#[tokio::test]
async fn restart_mid_batch_completes_the_batch_exactly_once() {
    let app = TestApp::start().await;
    app.provision("IMEI:120", json!({})).await;
    let idempotent = app
        .enqueue(
            "IMEI:120",
            json!({"commands": [{"op": "get", "target": "./DevInfo/Man"}], "idempotent": true}),
        )
        .await;
    let once = app
        .enqueue(
            "IMEI:120",
            json!({"commands": [{"op": "replace", "target": "./DevDetail/HwV", "data": "B"}]}),
        )
        .await;
    let mut dev = DmClient::new(&app, "IMEI:120");
    let mut session = dev.session("B2");
    // One message at a time until the batches went out.
    for _ in 0..4 {
        let run = dev.drive(&mut session, 1).await;
        assert!(run.http_errors.is_empty(), "{run:?}");
        if app.batch("IMEI:120", idempotent).await["state"] == "sent" {
            break;
        }
    }
    assert_eq!(app.batch("IMEI:120", idempotent).await["state"], "sent");
    assert_eq!(app.batch("IMEI:120", once).await["state"], "sent");

    let dir = app.crash().await;
    let app = Builder::in_dir(dir).start().await;
    // The old session's follow-up finds no server.
    let run = dev.drive(&mut session, 5).await;
    assert!(
        !matches!(run.outcome, Some(ClientOutcome::Completed)),
        "{run:?}"
    );
    // The new node settled the session: idempotent back to pending, the
    // other one unacknowledged (the device may have applied it).
    assert_eq!(app.batch("IMEI:120", idempotent).await["state"], "pending");
    assert_eq!(app.batch("IMEI:120", once).await["state"], "unacknowledged");

    let mut dev2 = DmClient::new(&app, "IMEI:120");
    dev2.device = dev.device.clone();
    let run = dev2.run_session().await;
    assert_eq!(run.outcome, Some(ClientOutcome::Completed), "{run:?}");
    let b = app.batch("IMEI:120", idempotent).await;
    assert_eq!(b["state"], "completed", "{b}");
    assert_eq!(b["attempts"], 2);
    assert_eq!(b["outcomes"].as_array().unwrap().len(), 1);
    let b = app.batch("IMEI:120", once).await;
    assert_eq!(b["state"], "unacknowledged");
    assert_eq!(b["attempts"], 1, "never sent twice");
    let (_, sessions) = app
        .get(&format!("/devices/{}/sessions", enc("IMEI:120")))
        .await;
    assert_eq!(sessions[1]["outcome"], "lost", "{sessions}");
}

#[tokio::test]
async fn idle_sessions_expire_and_their_batches_are_settled() {
    let app = Builder::new()
        .configure(|c| c.dm.session_idle_timeout_secs = 1)
        .start()
        .await;
    app.provision("IMEI:121", json!({})).await;
    let batch = app
        .enqueue(
            "IMEI:121",
            json!({"commands": [{"op": "get", "target": "./DevInfo/Man"}], "idempotent": true}),
        )
        .await;
    let mut dev = DmClient::new(&app, "IMEI:121");
    let mut session = dev.session("C3");
    for _ in 0..3 {
        dev.drive(&mut session, 1).await;
        if app.batch("IMEI:121", batch).await["state"] == "sent" {
            break;
        }
    }
    assert_eq!(app.batch("IMEI:121", batch).await["state"], "sent");
    eventually(10, || async {
        let b = app.batch("IMEI:121", batch).await;
        (b["state"] == "pending").then_some(())
    })
    .await;
    let (_, sessions) = app
        .get(&format!("/devices/{}/sessions", enc("IMEI:121")))
        .await;
    assert_eq!(sessions[0]["outcome"], "aborted");
    assert_eq!(sessions[0]["detail"], "idle timeout");
}

#[tokio::test]
async fn graceful_shutdown_settles_the_sessions_it_held() {
    let app = TestApp::start().await;
    app.provision("IMEI:122", json!({})).await;
    let batch = app
        .enqueue(
            "IMEI:122",
            json!({"commands": [{"op": "get", "target": "./DevInfo/Man"}], "idempotent": true}),
        )
        .await;
    let mut dev = DmClient::new(&app, "IMEI:122");
    let mut session = dev.session("D4");
    for _ in 0..3 {
        dev.drive(&mut session, 1).await;
        if app.batch("IMEI:122", batch).await["state"] == "sent" {
            break;
        }
    }
    let store = app.state.store().clone();
    let _dir = app.stop().await;
    let b = store
        .batch(scomo_server::store::BatchId(batch))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.state, scomo_server::store::BatchState::Pending);
    let s = store.sessions("IMEI:122", None, 1).await.unwrap();
    assert_eq!(
        s[0].outcome,
        Some(scomo_server::store::SessionOutcome::Lost)
    );
    assert_eq!(s[0].detail.as_deref(), Some("server shut down"));
}

/// A package 1 as deployed clients write it (QUIRKS.md): single-quoted
/// namespace, a Generic Alert before Alert 1201 with its Correlator before
/// Data, a duplicate CmdID, `<Final />`, the DS content type, no LocName.
#[tokio::test]
async fn a_quirky_package1_is_taken_as_meant() {
    let app = Builder::new()
        .configure(|c| c.devices.insecure_auto_register = true)
        .start()
        .await;
    let pkg1 = "<SyncML xmlns='SYNCML:SYNCML1.2'><SyncHdr><VerDTD>1.2</VerDTD>\
        <VerProto>DM/1.2</VerProto><SessionID>1A2B</SessionID><MsgID>1</MsgID>\
        <Target><LocURI>http://dm.example/dm</LocURI></Target>\
        <Source><LocURI>IMEI:quirk</LocURI></Source></SyncHdr><SyncBody>\
        <Alert><CmdID>1</CmdID><Correlator>c9</Correlator><Data>1226</Data><Item>\
        <Source><LocURI>./SCOMO/Inventory/Deployed/x</LocURI></Source>\
        <Meta><Type xmlns='syncml:metinf'>urn:oma:at:scomo:1.0:OperationComplete</Type>\
        <Format xmlns='syncml:metinf'>chr</Format></Meta><Data>1200</Data></Item></Alert>\
        <Alert><CmdID>1</CmdID><Data>1201</Data></Alert>\
        <Replace><CmdID>2</CmdID><Item><Source><LocURI>./DevInfo/Man</LocURI></Source>\
        <Data>Quirky</Data></Item></Replace><Final /></SyncBody></SyncML>";
    let (status, ct, body) = post_dm(&app, "application/vnd.syncml+xml", pkg1.into()).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(ct, "application/vnd.syncml.dm+xml");
    let msg = omadm_wire::decode(&body, Encoding::Xml, &Limits::default()).unwrap();
    assert!(msg
        .header
        .resp_uri
        .as_deref()
        .unwrap()
        .starts_with(&format!("{}/dm/", app.url)));
    let statuses: Vec<(u32, String, u16)> = msg
        .body
        .commands
        .iter()
        .filter_map(|c| match c {
            omadm_wire::model::Command::Status(s) => Some((s.cmd_ref, s.cmd.clone(), s.data.0)),
            _ => None,
        })
        .collect();
    assert_eq!(
        statuses,
        [
            (0, "SyncHdr".into(), 200),
            (1, "Alert".into(), 200),
            (1, "Alert".into(), 200),
            (2, "Replace".into(), 200)
        ]
    );
    let (_, alerts) = app
        .get(&format!("/devices/{}/alerts", enc("IMEI:quirk")))
        .await;
    assert_eq!(alerts[0]["correlator"], "c9");
    assert_eq!(alerts[0]["data"], "1200");
    let (_, d) = app.get(&format!("/devices/{}", enc("IMEI:quirk"))).await;
    assert_eq!(d["man"], "Quirky");
}
