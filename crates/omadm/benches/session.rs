//! A whole DM session in memory, package 1 to package 4: the client opens,
//! the server sends 20 Gets and 20 Replaces, the client answers, the server
//! ends. Throughput is sessions per second (criterion's elements/s).

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use omadm::auth::{AuthType, Credentials, RandomSource};
use omadm::client::{ClientConfig, ClientSession, SessionKind, SessionStart};
use omadm::handler::MemoryDevice;
use omadm::server::{DeviceAccount, ServerConfig, ServerSession};
use omadm::{AuthConfig, Incoming, NonceState};
use omadm_wire::model::{Command, Data, Item, ItemCommand, Location};
use omadm_wire::Encoding;

struct Rng(u64);

impl RandomSource for Rng {
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for b in dest {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = (self.0 >> 56) as u8;
        }
    }
}

fn item_cmd(uri: &str, data: Option<String>) -> ItemCommand {
    ItemCommand {
        items: vec![Item {
            target: Some(Location::uri(uri)),
            data: data.map(Data::Text),
            ..Item::default()
        }],
        ..ItemCommand::default()
    }
}

struct Fixture {
    client_cfg: ClientConfig,
    start: SessionStart,
    server_cfg: ServerConfig,
    account: DeviceAccount,
    device: MemoryDevice,
    commands: Vec<Command>,
}

fn fixture(encoding: Encoding, auth: Option<AuthType>) -> Fixture {
    let mut client_cfg =
        ClientConfig::new("IMEI:493005100592800", "https://dm.example.com/dm", "srv1");
    client_cfg.encoding = encoding;
    let creds = auth.map(|t| AuthConfig::new(t, Credentials::new("dev", "secret")));
    client_cfg.client_auth = creds.clone();
    let nonces = NonceState::default();
    let start = SessionStart {
        kind: SessionKind::ClientInitiated {
            session_id: "1".into(),
        },
        dev_info: vec![
            ("./DevInfo/DevId".into(), "IMEI:493005100592800".into()),
            ("./DevInfo/Man".into(), "Acme".into()),
            ("./DevInfo/Mod".into(), "Rocket".into()),
            ("./DevInfo/DmV".into(), "1.0".into()),
            ("./DevInfo/Lang".into(), "en-US".into()),
        ],
        alerts: Vec::new(),
        nonces: nonces.clone(),
    };
    let mut device = MemoryDevice::new();
    let mut commands = Vec::new();
    for i in 0..20 {
        let uri = format!("./Vendor/Node{i}");
        device.set(uri.clone(), format!("value {i}"));
        commands.push(Command::Get(item_cmd(&uri, None)));
        commands.push(Command::Replace(item_cmd(
            &uri,
            Some(format!("new value {i}")),
        )));
    }
    Fixture {
        client_cfg,
        start,
        server_cfg: ServerConfig::new("https://dm.example.com/dm"),
        account: DeviceAccount {
            client_auth: creds,
            server_auth: None,
            nonces,
        },
        device,
        commands,
    }
}

/// Runs one session to its end; returns the number of messages exchanged.
fn session(f: &Fixture, rng: &mut Rng) -> usize {
    let now = Instant::now();
    let mut device = f.device.clone();
    let mut client = ClientSession::new(f.client_cfg.clone(), f.start.clone());
    let mut server: Option<ServerSession> = None;
    let mut sent_package = false;
    let mut messages = 0;
    while let Some(req) = client.poll_transmit() {
        let incoming = Incoming::new(&req.body)
            .content_type(req.content_type)
            .hmac(req.hmac.as_deref());
        let s = match server.as_mut() {
            None => {
                let acc = ServerSession::accept(f.server_cfg.clone(), now, incoming).expect("pkg1");
                server.insert(acc.into_session(Some(f.account.clone()), rng))
            }
            Some(s) => {
                s.handle_message(now, incoming, rng).expect("message");
                s
            }
        };
        while s.poll_event().is_some() {}
        if s.is_ready_for_commands() && !sent_package {
            sent_package = true;
            for (i, c) in f.commands.iter().enumerate() {
                s.queue_command(i as u64, c.clone());
            }
        }
        let resp = s.poll_transmit().expect("response");
        while s.poll_event().is_some() {}
        let incoming = Incoming::new(&resp.body)
            .content_type(resp.content_type)
            .hmac(resp.hmac.as_deref());
        client
            .handle_response(incoming, &mut device, rng)
            .expect("client");
        messages += 2;
    }
    assert!(client.is_finished());
    messages
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("session_pkg1_to_pkg4_20_gets_20_replaces");
    group.throughput(Throughput::Elements(1));
    for (name, enc, auth) in [
        ("xml", Encoding::Xml, None),
        ("wbxml", Encoding::Wbxml, None),
        ("xml_md5", Encoding::Xml, Some(AuthType::Md5)),
        ("wbxml_hmac", Encoding::Wbxml, Some(AuthType::Hmac)),
    ] {
        let f = fixture(enc, auth);
        let mut rng = Rng(1);
        assert_eq!(session(&f, &mut rng), 4, "pkg1..pkg4");
        group.bench_function(name, |b| b.iter(|| black_box(session(&f, &mut rng))));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
