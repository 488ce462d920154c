//! MaxMsgSize: packages over several messages, Final on the last, 1222 to
//! pull the next one (digest §7).

use omadm::client::ClientOutcome;
use omadm::server::ServerOutcome;
use omadm_wire::model::{Command, Data, SyncMl};
use omadm_wire::{AlertCode, StatusCode};

use crate::pair::{get, replace, Dir, Setup, ENCODINGS};

fn has_1222(m: &SyncMl) -> bool {
    m.body
        .commands
        .iter()
        .any(|c| matches!(c, Command::Alert(a) if a.data == Some(AlertCode::NEXT_MESSAGE)))
}

#[test]
fn tiny_max_msg_size_both_ways() {
    for enc in ENCODINGS {
        let mut s = Setup::new(enc);
        s.client_max_msg = 1100;
        s.server_max_msg = 1500;
        let mut p = s.build();
        let mut pkg = Vec::new();
        for i in 0..20u64 {
            pkg.push((
                i,
                replace(
                    &format!("./DevInfo/Ext/N{i}"),
                    Data::Text(format!("value-{i}")),
                    None,
                ),
            ));
        }
        // Make the nodes exist first so the Replaces succeed.
        for i in 0..20u64 {
            p.device.set(format!("./DevInfo/Ext/N{i}"), "old");
        }
        for i in 0..20u64 {
            pkg.push((100 + i, get(&format!("./DevInfo/Ext/N{i}"))));
        }
        p.script.push_back(pkg);
        p.run();
        assert_eq!(
            p.client.outcome(),
            Some(&ClientOutcome::Completed),
            "{enc:?} {:?} {:?}",
            p.client_errors,
            p.server_errors
        );
        assert_eq!(p.server().outcome(), Some(&ServerOutcome::Completed));
        for w in &p.wire {
            let limit = if w.dir == Dir::ToClient { 1100 } else { 1500 };
            assert!(
                w.body.len() <= limit,
                "{:?} message of {} bytes",
                w.dir,
                w.body.len()
            );
        }
        for i in 0..20u64 {
            assert_eq!(p.statuses_for(i), vec![StatusCode::OK], "{enc:?} {i}");
            let r = p.results_for(100 + i);
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].items[0].data, Some(Data::Text(format!("value-{i}"))));
        }
        let to_client = p.to_client();
        let to_server = p.to_server();
        assert!(
            to_client.iter().any(|m| !m.body.is_final),
            "server package split"
        );
        assert!(
            to_server.iter().skip(1).any(|m| !m.body.is_final),
            "client package split"
        );
        assert!(to_server.iter().any(has_1222), "client pulled with 1222");
        assert!(to_client.iter().any(has_1222), "server pulled with 1222");
        // CmdIDs restart in every message.
        for m in to_client.iter().chain(to_server.iter()) {
            let ids: Vec<u32> = m.body.commands.iter().map(Command::cmd_id).collect();
            assert_eq!(ids, (1..=ids.len() as u32).collect::<Vec<_>>());
        }
    }
}

#[test]
fn split_client_package_1() {
    for enc in ENCODINGS {
        let mut s = Setup::new(enc);
        s.alerts = (0..6)
            .map(|i| {
                omadm::client::ClientAlert::generic(
                    i,
                    "urn:oma:at:scomo:1.0:OperationComplete",
                    "xml",
                    Some("./SCOMO/Inventory/Deployed/1"),
                    Some("correlator"),
                    Data::Text("<ResultCode>1200</ResultCode><Identifier>x</Identifier>".into()),
                )
            })
            .collect();
        let mut p = s.build();
        let mut cfg =
            omadm::client::ClientConfig::new(crate::pair::DEVICE, crate::pair::SERVER, "srv1");
        cfg.encoding = enc;
        cfg.assumed_server_max_msg_size = Some(700);
        // Rebuild the client with a small assumed server limit.
        p.client = omadm::client::ClientSession::new(
            cfg,
            omadm::client::SessionStart {
                kind: omadm::client::SessionKind::ClientInitiated {
                    session_id: "42".into(),
                },
                dev_info: vec![("./DevInfo/DevId".into(), crate::pair::DEVICE.into())],
                alerts: (0..6)
                    .map(|i| {
                        omadm::client::ClientAlert::generic(
                            i,
                            "t",
                            "chr",
                            None,
                            None,
                            Data::Text("x".repeat(150)),
                        )
                    })
                    .collect(),
                nonces: Default::default(),
            },
        );
        p.script.push_back(vec![(1, get("./DevDetail/FwV"))]);
        p.run();
        assert_eq!(p.client.outcome(), Some(&ClientOutcome::Completed));
        let report = p.client.alert_report();
        assert_eq!(report.delivered.len(), 6, "{report:?}");
        assert!(!p.to_server()[0].body.is_final);
        assert_eq!(p.statuses_for(1), vec![StatusCode::OK]);
    }
}
