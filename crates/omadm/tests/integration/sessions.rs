//! Session shapes that end well: client- and server-initiated, each auth
//! type, nonce rotation, generic alerts (digest §3, §8, §10).

use omadm::auth::{AuthType, Nonce};
use omadm::client::{ClientAlert, ClientEvent, ClientOutcome, SessionKind};
use omadm::package0;
use omadm::server::{Initiation, ServerEvent, ServerOutcome};
use omadm::NonceState;
use omadm_wire::model::{Command, Data};
use omadm_wire::{AlertCode, StatusCode};

use crate::pair::{add, get, replace, Pair, Setup, ENCODINGS};

fn management_script(p: &mut Pair) {
    p.script.push_back(vec![
        (1, get("./DevDetail/FwV")),
        (
            2,
            replace("./DevInfo/DevId", Data::Text("changed".into()), None),
        ),
        (3, add("./SCOMO/Download/1/PkgID", "pkg-1")),
    ]);
    p.script.push_back(vec![
        (4, get("./SCOMO/Download/1/PkgID")),
        (5, get("./Missing")),
    ]);
}

fn assert_clean_end(p: &Pair) {
    assert_eq!(
        p.client.outcome(),
        Some(&ClientOutcome::Completed),
        "client events {:?}",
        p.client_events
    );
    assert_eq!(p.server().outcome(), Some(&ServerOutcome::Completed));
    assert!(p.server().is_finished());
    assert!(p.client_errors.is_empty() && p.server_errors.is_empty());
    // The last server message is Status + Final, no commands.
    let last = p.to_client().pop().expect("a server message");
    assert!(last.body.is_final);
    assert!(last
        .body
        .commands
        .iter()
        .all(|c| matches!(c, Command::Status(_))));
}

fn assert_management_done(p: &Pair) {
    assert_eq!(p.statuses_for(1), vec![StatusCode::OK]);
    let r = p.results_for(1);
    assert_eq!(r[0].items[0].data, Some(Data::Text("1.0".into())));
    assert_eq!(p.statuses_for(2), vec![StatusCode::OK]);
    assert_eq!(p.statuses_for(3), vec![StatusCode::OK]);
    assert_eq!(
        p.results_for(4)[0].items[0].data,
        Some(Data::Text("pkg-1".into()))
    );
    assert_eq!(p.statuses_for(5), vec![StatusCode::NOT_FOUND]);
    assert!(p.results_for(5).is_empty());
    assert_eq!(
        p.device.get("./DevInfo/DevId"),
        Some(&Data::Text("changed".into()))
    );
}

#[test]
fn client_initiated_session() {
    for enc in ENCODINGS {
        let mut p = Setup::new(enc).build();
        management_script(&mut p);
        p.run();
        assert_clean_end(&p);
        assert_management_done(&p);
        assert_eq!(p.wire.len(), 6, "pkg1..pkg6 in {enc:?}");
        let dev_info = p.server().dev_info();
        assert!(dev_info.contains(&("./DevInfo/Man".to_owned(), "Acme".to_owned())));
        // Every message the client sent after pkg1 starts with the SyncHdr status.
        for m in p.to_server().iter().skip(1) {
            let Command::Status(s) = &m.body.commands[0] else {
                panic!("no SyncHdr status")
            };
            assert_eq!((s.cmd_ref, s.cmd.as_str()), (0, "SyncHdr"));
        }
        // No Status 200 for Results is ever sent (server side: none at all).
        for m in p.to_client() {
            assert!(m
                .body
                .commands
                .iter()
                .all(|c| !matches!(c, Command::Status(s) if s.cmd == "Results")));
        }
    }
}

#[test]
fn server_initiated_session() {
    for enc in ENCODINGS {
        let mut s = Setup::new(enc);
        s.kind = SessionKind::ServerInitiated { session_id: 0x1234 };
        let mut p = s.build();
        management_script(&mut p);
        p.step();
        let first = p.to_server().remove(0);
        assert_eq!(first.header.session_id, "1234");
        assert!(package0::session_id_matches(
            0x1234,
            &first.header.session_id
        ));
        assert!(
            matches!(&first.body.commands[0], Command::Alert(a) if a.data == Some(AlertCode::SERVER_INITIATED_MGMT))
        );
        p.run();
        assert_clean_end(&p);
        assert_management_done(&p);
    }
}

#[test]
fn server_initiated_accept_reports_initiation() {
    let mut s = Setup::new(omadm_wire::Encoding::Xml);
    s.kind = SessionKind::ServerInitiated { session_id: 0xA1 };
    let mut p = s.build();
    let req = p.client.poll_transmit().unwrap();
    let acc = omadm::server::ServerSession::accept(
        p.server_cfg.clone(),
        p.now,
        omadm::Incoming::new(&req.body).content_type(req.content_type),
    )
    .unwrap();
    assert_eq!(acc.initiation(), Initiation::ServerInitiated);
    assert_eq!(acc.session_id(), "A1");
}

#[test]
fn every_auth_type_succeeds() {
    for enc in ENCODINGS {
        for t in [AuthType::Basic, AuthType::Md5, AuthType::Hmac] {
            let mut s = Setup::new(enc).client_auth(t, "dev-user", "dev-secret");
            s.client_nonces.client_nonce = Nonce::from_bytes(b"shared".to_vec());
            s.server_nonces.client_nonce = Nonce::from_bytes(b"shared".to_vec());
            let mut p = s.build();
            management_script(&mut p);
            p.run();
            assert_clean_end(&p);
            assert_management_done(&p);
            assert!(
                p.server_events.iter().any(
                    |e| matches!(e, ServerEvent::Authenticated { auth_type: Some(x) } if *x == t)
                ),
                "{t:?} {enc:?}"
            );
            assert!(
                !p.server_events
                    .iter()
                    .any(|e| matches!(e, ServerEvent::Challenged { .. })),
                "{t:?}"
            );
            let expected = if t == AuthType::Hmac {
                StatusCode::OK
            } else {
                StatusCode::AUTHENTICATION_ACCEPTED
            };
            assert!(
                p.client_events
                    .contains(&ClientEvent::Authenticated { status: expected }),
                "{t:?}"
            );
            // HMAC: every client message carries credentials in the header only.
            if t == AuthType::Hmac {
                assert!(p.to_server().iter().all(|m| m.header.cred.is_none()));
            }
        }
    }
}

#[test]
fn mutual_authentication() {
    for enc in ENCODINGS {
        for t in [AuthType::Basic, AuthType::Md5, AuthType::Hmac] {
            let mut s = Setup::new(enc)
                .client_auth(AuthType::Md5, "dev-user", "dev-secret")
                .server_auth(t, SERVER_ID_NAME, "server-secret");
            s.client_nonces.server_nonce = Nonce::from_bytes(b"srvnonce".to_vec());
            s.server_nonces.server_nonce = Nonce::from_bytes(b"srvnonce".to_vec());
            let mut p = s.build();
            management_script(&mut p);
            p.run();
            assert_clean_end(&p);
            assert_management_done(&p);
            assert!(
                p.client_events.contains(&ClientEvent::ServerAuthenticated),
                "{t:?} {:?}",
                p.client_events
            );
            // The server's nonce was rotated by the client and both agree.
            assert_eq!(p.client.nonces(), p.server().nonces(), "{t:?}");
            if t != AuthType::Basic {
                assert_ne!(
                    p.client.nonces().server_nonce.as_bytes(),
                    b"srvnonce",
                    "{t:?}"
                );
            }
        }
    }
}

const SERVER_ID_NAME: &str = "srv1";

#[test]
fn nonce_rotation_across_two_sessions() {
    for enc in ENCODINGS {
        let mut s = Setup::new(enc).client_auth(AuthType::Md5, "u", "p");
        s.client_nonces.client_nonce = Nonce::from_bytes(b"n0".to_vec());
        s.server_nonces.client_nonce = Nonce::from_bytes(b"n0".to_vec());
        let mut p1 = s.clone().build();
        p1.run();
        assert_clean_end(&p1);
        let (c1, s1) = (p1.client.nonces().clone(), p1.server().nonces().clone());
        assert_eq!(c1, s1);
        assert_ne!(c1.client_nonce.as_bytes(), b"n0");
        assert!(p1
            .client_events
            .iter()
            .any(|e| matches!(e, ClientEvent::NoncesChanged(_))));

        let mut s2 = s;
        s2.client_nonces = c1.clone();
        s2.server_nonces = s1;
        let mut p2 = s2.build();
        p2.rng = crate::pair::TestRng(77);
        management_script(&mut p2);
        p2.run();
        assert_clean_end(&p2);
        assert!(!p2
            .server_events
            .iter()
            .any(|e| matches!(e, ServerEvent::Challenged { .. })));
        assert_ne!(p2.client.nonces().client_nonce, c1.client_nonce);
        assert_eq!(p2.client.nonces(), p2.server().nonces());
    }
}

#[test]
fn per_message_auth_200() {
    for enc in ENCODINGS {
        let mut s = Setup::new(enc).client_auth(AuthType::Md5, "u", "p");
        s.client_nonces = NonceState::default();
        let mut p = s.build();
        p.server_cfg.auth_per_message = true;
        management_script(&mut p);
        p.run();
        assert_clean_end(&p);
        assert_management_done(&p);
        // Credentials in every client message.
        assert!(p.to_server().iter().all(|m| m.header.cred.is_some()));
        assert!(p.client_events.contains(&ClientEvent::Authenticated {
            status: StatusCode::OK
        }));
    }
}

#[test]
fn generic_alerts_are_reported_with_their_status() {
    for enc in ENCODINGS {
        let mut s = Setup::new(enc);
        s.alerts = vec![
            ClientAlert::generic(
                11,
                "urn:oma:at:scomo:1.0:OperationComplete",
                "xml",
                Some("./SCOMO/Download/1/Operations/DownloadInstall"),
                Some("corr-1"),
                Data::Text("<ResultCode>1200</ResultCode>".into()),
            ),
            ClientAlert::generic(
                12,
                "x-unsupported",
                "chr",
                None,
                None,
                Data::Text("hi".into()),
            ),
        ];
        let mut p = s.build();
        // The server accepts the first alert and refuses the other's type.
        p.step();
        let refs: Vec<_> = p
            .server_events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::Alert { at, alert } => Some((*at, alert.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(refs.len(), 2);
        assert_eq!(refs[0].1.correlator.as_deref(), Some("corr-1"));
        assert_eq!(refs[0].1.data, Some(AlertCode::GENERIC_ALERT));
        // Status changes after poll_transmit come too late; this run checks 200s.
        p.run();
        let report = p.client.alert_report();
        assert_eq!(
            report.delivered,
            vec![(11, StatusCode::OK), (12, StatusCode::OK)]
        );
        assert!(report.failed.is_empty() && report.pending.is_empty());
    }
}

#[test]
fn alert_status_can_be_changed_before_transmit() {
    let mut s = Setup::new(omadm_wire::Encoding::Xml);
    s.alerts = vec![ClientAlert::generic(
        7,
        "x-bad",
        "chr",
        None,
        None,
        Data::Text("x".into()),
    )];
    let mut p = s.build();
    let req = p.client.poll_transmit().unwrap();
    let acc = omadm::server::ServerSession::accept(
        p.server_cfg.clone(),
        p.now,
        omadm::Incoming::new(&req.body),
    )
    .unwrap();
    let mut server = acc.into_session(p.account.clone(), &mut p.rng);
    let mut at = None;
    while let Some(e) = server.poll_event() {
        if let ServerEvent::Alert { at: a, .. } = e {
            at = Some(a);
        }
    }
    assert!(server.set_status(at.unwrap(), StatusCode::UNSUPPORTED_MEDIA_TYPE));
    let resp = server.poll_transmit().unwrap();
    p.client
        .handle_response(omadm::Incoming::new(&resp.body), &mut p.device, &mut p.rng)
        .unwrap();
    assert_eq!(
        p.client.alert_report().failed,
        vec![(7, StatusCode::UNSUPPORTED_MEDIA_TYPE)]
    );
    assert_eq!(p.client.outcome(), Some(&ClientOutcome::Completed));
}

#[test]
fn atomic_and_sequence_statuses_map_to_nested_paths() {
    use omadm_wire::model::Container;
    for enc in ENCODINGS {
        let mut p = Setup::new(enc).build();
        p.script.push_back(vec![
            (
                1,
                Command::Sequence(Container {
                    commands: vec![add("./X/a", "1"), get("./X/a")],
                    ..Container::default()
                }),
            ),
            (
                2,
                Command::Atomic(Container {
                    commands: vec![
                        add("./Y/a", "1"),
                        replace("./Nope", Data::Text("x".into()), None),
                    ],
                    ..Container::default()
                }),
            ),
        ]);
        p.run();
        assert_clean_end(&p);
        let nested: Vec<_> = p
            .server_events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::Status { id, path, status } => Some((*id, path.clone(), status.data)),
                _ => None,
            })
            .collect();
        assert!(nested.contains(&(1, vec![], StatusCode::OK)));
        assert!(nested.contains(&(1, vec![0], StatusCode::OK)));
        assert!(nested.contains(&(1, vec![1], StatusCode::OK)));
        assert!(nested.contains(&(2, vec![], StatusCode::ATOMIC_FAILED)));
        assert!(nested.contains(&(2, vec![0], StatusCode::ATOMIC_ROLLBACK_OK)));
        assert!(nested.contains(&(2, vec![1], StatusCode::NOT_FOUND)));
        let r: Vec<_> = p
            .server_events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::Results {
                    id: 1,
                    path,
                    results,
                } => Some((path.clone(), results.items[0].data.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(r, vec![(vec![1], Some(Data::Text("1".into())))]);
        assert_eq!(p.device.get("./Y/a"), None);
    }
}

#[test]
fn no_resp_commands_get_no_status() {
    let mut p = Setup::new(omadm_wire::Encoding::Xml).build();
    let mut cmd = add("./Quiet", "1");
    if let Command::Add(c) = &mut cmd {
        c.no_resp = true;
    }
    p.script.push_back(vec![(1, cmd), (2, add("./Loud", "1"))]);
    p.run();
    assert_clean_end(&p);
    assert!(p.statuses_for(1).is_empty());
    assert_eq!(p.statuses_for(2), vec![StatusCode::OK]);
    assert_eq!(p.device.get("./Quiet"), Some(&Data::Text("1".into())));
}
