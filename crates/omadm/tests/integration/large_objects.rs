//! Large objects both ways, size mismatch (424), interruption (1225),
//! MaxObjSize (digest §7).

use omadm::client::ClientOutcome;
use omadm::server::{ServerEvent, ServerOutcome};
use omadm_wire::model::{Command, Data};
use omadm_wire::StatusCode;

use crate::pair::{get, replace, Setup, ENCODINGS};

fn blob(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 256) as u8).collect()
}

#[test]
fn large_object_server_to_client() {
    for enc in ENCODINGS {
        for fmt in ["b64", "bin"] {
            let mut s = Setup::new(enc);
            s.client_max_msg = 1500;
            let mut p = s.build();
            p.device.set("./SCOMO/Download/1/Data", "");
            let data = blob(20_000);
            p.script.push_back(vec![
                (
                    1,
                    replace(
                        "./SCOMO/Download/1/Data",
                        Data::Binary(data.clone()),
                        Some(fmt),
                    ),
                ),
                (2, get("./DevDetail/FwV")),
            ]);
            p.run();
            assert_eq!(
                p.client.outcome(),
                Some(&ClientOutcome::Completed),
                "{enc:?} {fmt}"
            );
            assert_eq!(
                p.statuses_for(1),
                vec![StatusCode::OK],
                "one final status, 213s hidden: {:?}",
                p.server_events
            );
            assert_eq!(p.statuses_for(2), vec![StatusCode::OK]);
            assert_eq!(
                p.device.get("./SCOMO/Download/1/Data"),
                Some(&Data::Binary(data))
            );
            assert!(p.wire.len() > 20, "chunked over many messages");
            // Each chunk was answered with 213.
            let n213 = p
                .to_server()
                .iter()
                .flat_map(|m| m.body.commands.clone())
                .filter(|c| matches!(c, Command::Status(s) if s.data == StatusCode::CHUNK_ACCEPTED))
                .count();
            assert!(n213 > 10);
        }
    }
}

#[test]
fn large_object_client_to_server() {
    for enc in ENCODINGS {
        let mut s = Setup::new(enc);
        s.server_max_msg = 1500;
        let mut p = s.build();
        let text = "inventory-line;".repeat(800);
        p.device.set("./SCOMO/Inventory/Big", text.clone());
        p.script.push_back(vec![(1, get("./SCOMO/Inventory/Big"))]);
        p.run();
        assert_eq!(
            p.client.outcome(),
            Some(&ClientOutcome::Completed),
            "{enc:?} {:?}",
            p.server_errors
        );
        let r = p.results_for(1);
        assert_eq!(r.len(), 1, "reassembled once");
        assert_eq!(r[0].items[0].data, Some(Data::Text(text)));
        assert!(p.wire.iter().all(|w| w.body.len() <= 1500));
    }
}

#[test]
fn large_object_size_mismatch_is_424() {
    for enc in ENCODINGS {
        let mut s = Setup::new(enc);
        s.client_max_msg = 1500;
        let mut p = s.build();
        p.device.set("./Obj", "");
        p.script.push_back(vec![(
            1,
            replace("./Obj", Data::Binary(blob(5000)), Some("bin")),
        )]);
        // Lie about the size in the first chunk.
        p.tamper_response = Some(Box::new(|_, msg| {
            for c in &mut msg.body.commands {
                if let Command::Replace(r) = c {
                    if let Some(m) = r.items[0].meta.as_mut() {
                        if let Some(s) = m.size.as_mut() {
                            *s += 1;
                        }
                    }
                }
            }
        }));
        p.run();
        assert_eq!(p.client.outcome(), Some(&ClientOutcome::Completed));
        assert_eq!(p.statuses_for(1), vec![StatusCode::SIZE_MISMATCH]);
        assert_eq!(
            p.device.get("./Obj"),
            Some(&Data::Text(String::new())),
            "not committed"
        );
    }
}

#[test]
fn object_over_device_max_obj_size_is_not_sent() {
    let mut s = Setup::new(omadm_wire::Encoding::Xml);
    s.client_max_obj = Some(1000);
    let mut p = s.build();
    p.device.set("./Obj", "");
    p.script.push_back(vec![
        (1, replace("./Obj", Data::Binary(blob(5000)), Some("bin"))),
        (2, get("./DevDetail/FwV")),
    ]);
    p.run();
    assert_eq!(p.client.outcome(), Some(&ClientOutcome::Completed));
    assert!(p
        .server_events
        .iter()
        .any(|e| matches!(e, ServerEvent::NotSent { id: 1, status } if *status == StatusCode::REQUEST_ENTITY_TOO_LARGE)));
    assert_eq!(p.statuses_for(2), vec![StatusCode::OK]);
    assert_eq!(p.server().outcome(), Some(&ServerOutcome::Completed));
}

#[test]
fn generic_alert_bigger_than_a_message_is_chunked() {
    for enc in ENCODINGS {
        let mut s = Setup::new(enc);
        s.server_max_msg = 1500;
        s.assumed_server_max = Some(1500);
        let payload = "<ResultCode>1200</ResultCode>".repeat(200);
        s.alerts = vec![omadm::client::ClientAlert::generic(
            3,
            "urn:oma:at:scomo:1.0:OperationComplete",
            "xml",
            Some("./SCOMO/Download/1"),
            Some("c-9"),
            Data::Text(payload.clone()),
        )];
        let mut p = s.build();
        p.script.push_back(vec![(1, get("./DevDetail/FwV"))]);
        p.run();
        assert_eq!(p.client.outcome(), Some(&ClientOutcome::Completed));
        let alerts: Vec<_> = p
            .server_events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::Alert { alert, .. } => Some(alert.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(alerts.len(), 1, "{enc:?}");
        assert_eq!(alerts[0].correlator.as_deref(), Some("c-9"));
        assert_eq!(
            alerts[0].items[0].data.as_ref().and_then(|d| d.as_str()),
            Some(payload.as_str())
        );
        assert_eq!(p.client.alert_report().delivered, vec![(3, StatusCode::OK)]);
    }
}
