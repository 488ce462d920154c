//! Faults: wrong and stale credentials, a lying server, aborts, duplicate,
//! oversize and undecodable messages (digest §3, §10, STYLE "hostile input").

use omadm::auth::{AuthType, Credentials, Nonce};
use omadm::client::{ClientEvent, ClientOutcome};
use omadm::error::SessionError;
use omadm::server::{Handled, ServerEvent, ServerOutcome, ServerSession};
use omadm::{AuthConfig, Incoming};
use omadm_wire::model::{Command, Data};
use omadm_wire::StatusCode;

use crate::pair::{get, replace, Setup, ENCODINGS};

#[test]
fn wrong_password_is_refused_without_leaking() {
    for enc in ENCODINGS {
        for t in [AuthType::Basic, AuthType::Md5, AuthType::Hmac] {
            let mut s = Setup::new(enc).client_auth(t, "dev", "right");
            s.client_auth = Some(AuthConfig::new(t, Credentials::new("dev", "wrong")));
            s = s.server_auth(AuthType::Md5, "srv1", "server-secret");
            let mut p = s.build();
            p.script.push_back(vec![(
                1,
                replace("./DevInfo/DevId", Data::Text("pwned".into()), None),
            )]);
            p.run();
            assert!(
                matches!(
                    p.client.outcome(),
                    Some(ClientOutcome::Failed(
                        SessionError::AuthenticationFailed { .. }
                    ))
                ),
                "{t:?}: {:?}",
                p.client.outcome()
            );
            assert_eq!(
                p.server().outcome(),
                Some(&ServerOutcome::AuthenticationFailed)
            );
            // Bounded: pkg1 + one retry after the fresh challenge.
            assert!(
                p.to_server().len() <= 3,
                "{t:?}: {} requests",
                p.to_server().len()
            );
            // Nothing executed, nothing learnt.
            assert!(p.device.executed.is_empty());
            assert!(!p
                .server_events
                .iter()
                .any(|e| matches!(e, ServerEvent::DevInfo(_) | ServerEvent::Alert { .. })));
            for m in p.to_client() {
                assert!(
                    m.header.cred.is_none(),
                    "server credentials sent to an impostor"
                );
                for c in &m.body.commands {
                    let Command::Status(st) = c else {
                        panic!("{t:?}: a command went to an unauthenticated client")
                    };
                    assert!(matches!(st.data.0, 401 | 407), "{t:?}: {:?}", st.data);
                }
            }
        }
    }
}

#[test]
fn missing_credentials_get_a_407_then_succeed() {
    for enc in ENCODINGS {
        let mut s = Setup::new(enc).client_auth(AuthType::Md5, "dev", "pw");
        // The client has credentials but the server expects HMAC: it follows the challenge.
        s.server_expects = Some(AuthConfig::new(
            AuthType::Hmac,
            Credentials::new("dev", "pw"),
        ));
        let mut p = s.build();
        p.script.push_back(vec![(1, get("./DevDetail/FwV"))]);
        p.run();
        assert_eq!(p.client.outcome(), Some(&ClientOutcome::Completed));
        assert_eq!(p.statuses_for(1), vec![StatusCode::OK]);
        assert!(p
            .server_events
            .iter()
            .any(|e| matches!(e, ServerEvent::Challenged { .. })));
    }
}

#[test]
fn stale_nonce_recovers_with_one_fresh_challenge() {
    for enc in ENCODINGS {
        for t in [AuthType::Md5, AuthType::Hmac] {
            let mut s = Setup::new(enc).client_auth(t, "dev", "pw");
            s.client_nonces.client_nonce = Nonce::from_bytes(b"stale".to_vec());
            s.server_nonces.client_nonce = Nonce::from_bytes(b"fresh".to_vec());
            let mut p = s.build();
            p.script.push_back(vec![(1, get("./DevDetail/FwV"))]);
            p.run();
            assert_eq!(p.client.outcome(), Some(&ClientOutcome::Completed), "{t:?}");
            let challenges = p
                .server_events
                .iter()
                .filter(|e| matches!(e, ServerEvent::Challenged { status } if *status == StatusCode::INVALID_CREDENTIALS))
                .count();
            assert_eq!(challenges, 1, "{t:?}");
            assert_eq!(p.statuses_for(1), vec![StatusCode::OK]);
            assert_eq!(
                p.client.nonces().client_nonce,
                p.server().nonces().client_nonce
            );
        }
    }
}

#[test]
fn bad_server_credential_ends_the_client_session() {
    for enc in ENCODINGS {
        for t in [AuthType::Basic, AuthType::Md5, AuthType::Hmac] {
            let mut s = Setup::new(enc).server_auth(t, "srv1", "server-secret");
            s.server_presents = Some(AuthConfig::new(t, Credentials::new("srv1", "forged")));
            let mut p = s.build();
            p.script.push_back(vec![(
                1,
                replace("./DevInfo/DevId", Data::Text("pwned".into()), None),
            )]);
            p.run();
            assert!(
                matches!(
                    p.client.outcome(),
                    Some(ClientOutcome::Failed(
                        SessionError::PeerAuthenticationFailed { .. }
                    ))
                ),
                "{t:?} {:?}",
                p.client.outcome()
            );
            assert!(
                p.device.executed.is_empty(),
                "{t:?}: {:?}",
                p.device.executed
            );
            assert!(!p.client_events.contains(&ClientEvent::ServerAuthenticated));
            assert_eq!(
                p.device.get("./DevInfo/DevId"),
                Some(&Data::Text(crate::pair::DEVICE.into()))
            );
        }
    }
}

#[test]
fn server_without_credentials_is_challenged_then_refused() {
    let mut s = Setup::new(omadm_wire::Encoding::Xml).server_auth(AuthType::Md5, "srv1", "s");
    s.server_presents = None;
    let mut p = s.build();
    p.script.push_back(vec![(1, get("./DevDetail/FwV"))]);
    p.run();
    assert!(matches!(
        p.client.outcome(),
        Some(ClientOutcome::Failed(
            SessionError::PeerAuthenticationFailed { .. }
        ))
    ));
    assert!(p.device.executed.is_empty());
}

#[test]
fn stale_server_nonce_recovers() {
    for enc in ENCODINGS {
        let mut s = Setup::new(enc).server_auth(AuthType::Md5, "srv1", "s");
        s.client_nonces.server_nonce = Nonce::from_bytes(b"client-knows".to_vec());
        s.server_nonces.server_nonce = Nonce::from_bytes(b"server-thinks".to_vec());
        let mut p = s.build();
        p.script.push_back(vec![(1, get("./DevDetail/FwV"))]);
        p.run();
        assert_eq!(
            p.client.outcome(),
            Some(&ClientOutcome::Completed),
            "{:?}",
            p.client_events
        );
        assert_eq!(p.statuses_for(1), vec![StatusCode::OK]);
        assert_eq!(p.device.executed, vec!["Get ./DevDetail/FwV"]);
        assert_eq!(
            p.client.nonces().server_nonce,
            p.server().nonces().server_nonce
        );
    }
}

#[test]
fn unknown_device_gets_401_and_nothing_else() {
    let mut s = Setup::new(omadm_wire::Encoding::Xml);
    s.known_device = false;
    let mut p = s.build();
    p.run();
    assert!(matches!(
        p.client.outcome(),
        Some(ClientOutcome::Failed(
            SessionError::AuthenticationFailed { .. }
        ))
    ));
    assert_eq!(
        p.server().outcome(),
        Some(&ServerOutcome::AuthenticationFailed)
    );
    assert!(!p
        .server_events
        .iter()
        .any(|e| matches!(e, ServerEvent::DevInfo(_))));
}

#[test]
fn client_abort() {
    for enc in ENCODINGS {
        let mut p = Setup::new(enc).build();
        p.script.push_back(vec![(1, get("./DevDetail/FwV"))]);
        p.script.push_back(vec![(2, get("./DevDetail/FwV"))]);
        p.step();
        p.client.abort();
        p.run();
        assert_eq!(p.client.outcome(), Some(&ClientOutcome::AbortedByClient));
        assert_eq!(p.server().outcome(), Some(&ServerOutcome::AbortedByClient));
        let last_req = p.to_server().pop().unwrap();
        assert!(last_req.body.is_final);
        assert!(last_req.body.commands.iter().any(|c| matches!(c, Command::Alert(a) if a.data == Some(omadm_wire::AlertCode::SESSION_ABORT))));
        let last = p.to_client().pop().unwrap();
        assert!(last
            .body
            .commands
            .iter()
            .all(|c| matches!(c, Command::Status(_))));
        assert!(p.statuses_for(2).is_empty());
    }
}

#[test]
fn server_abort() {
    for enc in ENCODINGS {
        let mut p = Setup::new(enc).build();
        p.script.push_back(vec![(1, get("./DevDetail/FwV"))]);
        p.step();
        p.server.as_mut().unwrap().abort();
        p.run();
        assert_eq!(p.client.outcome(), Some(&ClientOutcome::AbortedByServer));
        assert_eq!(p.server().outcome(), Some(&ServerOutcome::AbortedByServer));
        // The client does not answer an abort.
        assert_eq!(p.to_server().len(), 2);
    }
}

#[test]
fn duplicate_message_gets_the_cached_response() {
    for enc in ENCODINGS {
        let mut p = Setup::new(enc).build();
        p.script.push_back(vec![(1, get("./DevDetail/FwV"))]);
        p.step();
        // Package 3 is sent, the response is "lost", the client re-sends it.
        let req = p.client.poll_transmit().unwrap();
        let server = p.server.as_mut().unwrap();
        let incoming = Incoming::new(&req.body).content_type(req.content_type);
        assert_eq!(
            server.handle_message(p.now, incoming, &mut p.rng).unwrap(),
            Handled::Processed
        );
        let first = server.poll_transmit().unwrap();
        let n_events = std::iter::from_fn(|| server.poll_event()).count();
        assert!(n_events > 0);
        assert_eq!(
            server.handle_message(p.now, incoming, &mut p.rng).unwrap(),
            Handled::Duplicate
        );
        let again = server.poll_transmit().unwrap();
        assert_eq!(first, again);
        assert!(
            server.poll_event().is_none(),
            "nothing re-executed or re-reported"
        );
        assert!(server.poll_transmit().is_none());
        p.client
            .handle_response(
                Incoming::new(&again.body).content_type(again.content_type),
                &mut p.device,
                &mut p.rng,
            )
            .unwrap();
        assert_eq!(p.client.outcome(), Some(&ClientOutcome::Completed));
        // An older message is refused.
        let e = p.server.as_mut().unwrap().handle_message(
            p.now,
            Incoming::new(&p.wire[0].body),
            &mut p.rng,
        );
        assert!(matches!(e, Err(SessionError::OutOfSequence { .. })));
    }
}

#[test]
fn oversize_message_is_413() {
    let mut p = Setup::new(omadm_wire::Encoding::Xml).build();
    p.server_cfg.max_msg_size = 300;
    let req = p.client.poll_transmit().unwrap();
    let e =
        ServerSession::accept(p.server_cfg.clone(), p.now, Incoming::new(&req.body)).unwrap_err();
    assert!(matches!(
        e,
        SessionError::MessageTooLarge { limit: 300, .. }
    ));
    assert_eq!(e.status(), StatusCode::REQUEST_ENTITY_TOO_LARGE);
    assert_eq!(e.http_status(), 413);

    // Mid-session too, without disturbing the session.
    let mut p = Setup::new(omadm_wire::Encoding::Xml).build();
    p.script.push_back(vec![(1, get("./DevDetail/FwV"))]);
    p.step();
    let server = p.server.as_mut().unwrap();
    let big = vec![b' '; 70 * 1024];
    let e = server
        .handle_message(p.now, Incoming::new(&big), &mut p.rng)
        .unwrap_err();
    assert_eq!(e.http_status(), 413);
    p.run();
    assert_eq!(p.client.outcome(), Some(&ClientOutcome::Completed));
    assert_eq!(p.statuses_for(1), vec![StatusCode::OK]);
}

#[test]
fn undecodable_body_is_400() {
    let p = Setup::new(omadm_wire::Encoding::Xml).build();
    for body in [
        &b"<SyncML><SyncHdr>"[..],
        b"\x02\x00\x00\x6a\xff\xff",
        b"hello",
        b"",
    ] {
        let e =
            ServerSession::accept(p.server_cfg.clone(), p.now, Incoming::new(body)).unwrap_err();
        assert_eq!(e.http_status(), 400, "{e}");
    }
    let e = ServerSession::accept(
        p.server_cfg.clone(),
        p.now,
        Incoming::new(b"<x/>").content_type("text/plain"),
    )
    .unwrap_err();
    assert!(matches!(e, SessionError::Decode(_)), "{e:?}");
}

#[test]
fn idle_expiry_uses_the_callers_clock() {
    let mut p = Setup::new(omadm_wire::Encoding::Xml).build();
    p.script.push_back(vec![(1, get("./DevDetail/FwV"))]);
    p.step();
    let s = p.server();
    assert!(!s.is_expired(p.now));
    assert!(s.is_expired(p.now + std::time::Duration::from_secs(301)));
}
