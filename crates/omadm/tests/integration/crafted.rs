//! One engine against hand-made peer messages: the cases a well-behaved
//! peer engine never produces (interrupted objects, quirks).

use omadm::client::{ClientConfig, ClientOutcome, ClientSession, SessionKind, SessionStart};
use omadm::handler::MemoryDevice;
use omadm::server::{ServerConfig, ServerEvent, ServerSession};
use omadm::Incoming;
use omadm_wire::model::{
    Alert, Command, Data, Item, ItemCommand, Location, Meta, Results, Status, SyncBody, SyncHdr,
    SyncMl,
};
use omadm_wire::{AlertCode, Limits, StatusCode};

use crate::pair::{TestRng, DEVICE, SERVER};

fn server_msg(msg_id: u32, commands: Vec<Command>, is_final: bool) -> Vec<u8> {
    let mut header = SyncHdr::new("42", msg_id, Location::uri(DEVICE), Location::uri(SERVER));
    header.meta = Some(Meta {
        max_msg_size: Some(100_000),
        ..Meta::default()
    });
    omadm_wire::encode_xml(&SyncMl {
        header,
        body: SyncBody { commands, is_final },
    })
}

fn hdr_status(msg_ref: u32) -> Command {
    Command::Status(Status {
        cmd_id: 1,
        msg_ref: Some(msg_ref),
        cmd_ref: 0,
        cmd: "SyncHdr".into(),
        target_refs: vec![],
        source_refs: vec![],
        cred: None,
        chal: None,
        data: StatusCode::OK,
        items: vec![],
    })
}

fn chunk(cmd_id: u32, uri: &str, data: &str, size: Option<u64>, more: bool) -> Command {
    Command::Replace(ItemCommand {
        cmd_id,
        items: vec![Item {
            target: Some(Location::uri(uri)),
            meta: size.map(|s| Meta {
                size: Some(s),
                ..Meta::default()
            }),
            data: Some(Data::Text(data.into())),
            more_data: more,
            ..Item::default()
        }],
        ..ItemCommand::default()
    })
}

fn client(max_obj: Option<u64>) -> (ClientSession, MemoryDevice, TestRng) {
    let mut cfg = ClientConfig::new(DEVICE, SERVER, "srv1");
    cfg.max_obj_size = max_obj;
    let c = ClientSession::new(
        cfg,
        SessionStart {
            kind: SessionKind::ClientInitiated {
                session_id: "42".into(),
            },
            dev_info: vec![],
            alerts: vec![],
            nonces: Default::default(),
        },
    );
    let mut dev = MemoryDevice::new();
    dev.set("./Obj", "old");
    dev.set("./Other", "old");
    (c, dev, TestRng(5))
}

fn reply(c: &mut ClientSession) -> SyncMl {
    let r = c.poll_transmit().expect("a reply");
    omadm_wire::decode_xml(&r.body, &Limits::default()).expect("decodable reply")
}

fn statuses(m: &SyncMl) -> Vec<(String, u32, StatusCode)> {
    m.body
        .commands
        .iter()
        .filter_map(|c| match c {
            Command::Status(s) => Some((s.cmd.clone(), s.cmd_ref, s.data)),
            _ => None,
        })
        .collect()
}

#[test]
fn interrupted_object_gets_1225() {
    let (mut c, mut dev, mut rng) = client(None);
    c.poll_transmit().unwrap();
    let m = server_msg(
        1,
        vec![hdr_status(1), chunk(2, "./Obj", "abc", Some(6), true)],
        false,
    );
    c.handle_response(Incoming::new(&m), &mut dev, &mut rng)
        .unwrap();
    let r = reply(&mut c);
    assert!(!r.body.is_final);
    assert!(statuses(&r).contains(&("Replace".into(), 2, StatusCode::CHUNK_ACCEPTED)));
    assert!(r
        .body
        .commands
        .iter()
        .any(|c| matches!(c, Command::Alert(a) if a.data == Some(AlertCode::NEXT_MESSAGE))));

    // A new command before the last chunk.
    let m = server_msg(
        2,
        vec![hdr_status(2), chunk(2, "./Other", "new", None, false)],
        true,
    );
    c.handle_response(Incoming::new(&m), &mut dev, &mut rng)
        .unwrap();
    let r = reply(&mut c);
    let alert = r
        .body
        .commands
        .iter()
        .find_map(|c| match c {
            Command::Alert(a) if a.data == Some(AlertCode::NO_END_OF_DATA) => Some(a.clone()),
            _ => None,
        })
        .expect("Alert 1225");
    assert_eq!(alert.items[0].target.as_ref().unwrap().loc_uri, "./Obj");
    assert!(statuses(&r).contains(&("Replace".into(), 2, StatusCode::OK)));
    assert_eq!(
        dev.get("./Obj"),
        Some(&Data::Text("old".into())),
        "not committed"
    );
    assert_eq!(dev.get("./Other"), Some(&Data::Text("new".into())));
    assert!(r.body.is_final);
}

#[test]
fn chunks_reassemble_and_size_is_checked() {
    let (mut c, mut dev, mut rng) = client(None);
    c.poll_transmit().unwrap();
    let m = server_msg(
        1,
        vec![hdr_status(1), chunk(2, "./Obj", "abc", Some(6), true)],
        false,
    );
    c.handle_response(Incoming::new(&m), &mut dev, &mut rng)
        .unwrap();
    reply(&mut c);
    let m = server_msg(
        2,
        vec![hdr_status(2), chunk(2, "./Obj", "def", None, false)],
        true,
    );
    c.handle_response(Incoming::new(&m), &mut dev, &mut rng)
        .unwrap();
    let r = reply(&mut c);
    assert!(statuses(&r).contains(&("Replace".into(), 2, StatusCode::OK)));
    assert_eq!(dev.get("./Obj"), Some(&Data::Text("abcdef".into())));
    // The server ends; the client stops.
    let m = server_msg(3, vec![hdr_status(3)], true);
    c.handle_response(Incoming::new(&m), &mut dev, &mut rng)
        .unwrap();
    assert_eq!(c.outcome(), Some(&ClientOutcome::Completed));
    assert!(c.poll_transmit().is_none());
}

#[test]
fn base64_split_inside_a_quad_reassembles() {
    let (mut c, mut dev, mut rng) = client(None);
    c.poll_transmit().unwrap();
    // "hello!" = aGVsbG8h, cut after 5 characters; Format b64; Size = 8 (text length).
    let mut first = chunk(2, "./Obj", "aGVsb", Some(8), true);
    let mut last = chunk(2, "./Obj", "G8h", None, false);
    for c in [&mut first, &mut last] {
        if let Command::Replace(r) = c {
            r.meta = Some(Meta::format("b64"));
        }
    }
    let m = server_msg(1, vec![hdr_status(1), first], false);
    c.handle_response(Incoming::new(&m), &mut dev, &mut rng)
        .unwrap();
    reply(&mut c);
    let m = server_msg(2, vec![hdr_status(2), last], true);
    c.handle_response(Incoming::new(&m), &mut dev, &mut rng)
        .unwrap();
    let r = reply(&mut c);
    assert!(
        statuses(&r).contains(&("Replace".into(), 2, StatusCode::OK)),
        "{:?}",
        statuses(&r)
    );
    assert_eq!(dev.get("./Obj"), Some(&Data::Binary(b"hello!".to_vec())));
}

#[test]
fn object_over_our_max_obj_size_is_413() {
    let (mut c, mut dev, mut rng) = client(Some(4));
    c.poll_transmit().unwrap();
    let m = server_msg(
        1,
        vec![hdr_status(1), chunk(2, "./Obj", "abc", Some(600), true)],
        false,
    );
    c.handle_response(Incoming::new(&m), &mut dev, &mut rng)
        .unwrap();
    let r = reply(&mut c);
    assert!(statuses(&r).contains(&("Replace".into(), 2, StatusCode::REQUEST_ENTITY_TOO_LARGE)));
    // Without a Size the bound still holds.
    let m = server_msg(
        2,
        vec![hdr_status(2), chunk(3, "./Other", "abcd", None, true)],
        false,
    );
    c.handle_response(Incoming::new(&m), &mut dev, &mut rng)
        .unwrap();
    reply(&mut c);
    let m = server_msg(
        3,
        vec![hdr_status(3), chunk(3, "./Other", "e", None, false)],
        true,
    );
    c.handle_response(Incoming::new(&m), &mut dev, &mut rng)
        .unwrap();
    let r = reply(&mut c);
    assert!(
        statuses(&r).contains(&("Replace".into(), 3, StatusCode::REQUEST_ENTITY_TOO_LARGE)),
        "{:?}",
        statuses(&r)
    );
    assert_eq!(dev.get("./Other"), Some(&Data::Text("old".into())));
}

fn client_msg(msg_id: u32, commands: Vec<Command>, is_final: bool) -> Vec<u8> {
    let header = SyncHdr::new("77", msg_id, Location::uri(SERVER), Location::uri(DEVICE));
    omadm_wire::encode_xml(&SyncMl {
        header,
        body: SyncBody { commands, is_final },
    })
}

fn alert(cmd_id: u32, code: AlertCode) -> Command {
    let mut a = Alert::new(code);
    a.cmd_id = cmd_id;
    Command::Alert(a)
}

#[test]
fn server_accepts_alerts_before_1201_and_checks_result_sizes() {
    let now = std::time::Instant::now();
    let mut rng = TestRng(9);
    let mut generic = Alert::new(AlertCode::GENERIC_ALERT);
    generic.cmd_id = 1;
    generic.items.push(Item {
        meta: Some(Meta::format_type(
            "chr",
            "org.openmobilealliance.dm.firmwareupdate.download",
        )),
        data: Some(Data::Text("200".into())),
        ..Item::default()
    });
    let body = client_msg(
        1,
        vec![
            Command::Alert(generic),
            alert(2, AlertCode::CLIENT_INITIATED_MGMT),
        ],
        true,
    );
    let acc = ServerSession::accept(ServerConfig::new(SERVER), now, Incoming::new(&body)).unwrap();
    assert_eq!(acc.initiation(), omadm::server::Initiation::ClientInitiated);
    let mut s = acc.into_session(
        Some(omadm::server::DeviceAccount {
            client_auth: None,
            server_auth: None,
            nonces: Default::default(),
        }),
        &mut rng,
    );
    let events: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(events.iter().any(|e| matches!(e, ServerEvent::Alert { alert, .. } if alert.data == Some(AlertCode::GENERIC_ALERT))));
    assert!(s.is_ready_for_commands());
    s.queue_command(
        5,
        Command::Get(ItemCommand {
            items: vec![Item {
                target: Some(Location::uri("./Big")),
                ..Item::default()
            }],
            ..ItemCommand::default()
        }),
    );
    let resp = s.poll_transmit().unwrap();
    let m = omadm_wire::decode_xml(&resp.body, &Limits::default()).unwrap();
    let get_id = m
        .body
        .commands
        .iter()
        .find(|c| matches!(c, Command::Get(_)))
        .unwrap()
        .cmd_id();

    // Results in two chunks with a wrong Size.
    let results = |data: &str, size: Option<u64>, more: bool| {
        Command::Results(Results {
            cmd_id: 2,
            msg_ref: Some(1),
            cmd_ref: get_id,
            items: vec![Item {
                source: Some(Location::uri("./Big")),
                meta: size.map(|s| Meta {
                    size: Some(s),
                    ..Meta::default()
                }),
                data: Some(Data::Text(data.into())),
                more_data: more,
                ..Item::default()
            }],
            ..Results::default()
        })
    };
    let status_ok = Command::Status(Status {
        cmd_id: 1,
        msg_ref: Some(1),
        cmd_ref: 0,
        cmd: "SyncHdr".into(),
        target_refs: vec![],
        source_refs: vec![],
        cred: None,
        chal: None,
        data: StatusCode::OK,
        items: vec![],
    });
    let body = client_msg(
        2,
        vec![status_ok.clone(), results("abc", Some(99), true)],
        false,
    );
    s.handle_message(now, Incoming::new(&body), &mut rng)
        .unwrap();
    let resp = s.poll_transmit().unwrap();
    let m = omadm_wire::decode_xml(&resp.body, &Limits::default()).unwrap();
    assert!(statuses(&m).contains(&("Results".into(), 2, StatusCode::CHUNK_ACCEPTED)));
    assert!(m
        .body
        .commands
        .iter()
        .any(|c| matches!(c, Command::Alert(a) if a.data == Some(AlertCode::NEXT_MESSAGE))));
    assert!(!m.body.is_final);
    let mut st = status_ok;
    if let Command::Status(x) = &mut st {
        x.msg_ref = Some(2);
    }
    let body = client_msg(3, vec![st, results("def", None, false)], true);
    s.handle_message(now, Incoming::new(&body), &mut rng)
        .unwrap();
    let resp = s.poll_transmit().unwrap();
    let m = omadm_wire::decode_xml(&resp.body, &Limits::default()).unwrap();
    assert!(
        statuses(&m).contains(&("Results".into(), 2, StatusCode::SIZE_MISMATCH)),
        "{:?}",
        statuses(&m)
    );
    assert!(
        !std::iter::from_fn(|| s.poll_event()).any(|e| matches!(e, ServerEvent::Results { .. }))
    );
}
