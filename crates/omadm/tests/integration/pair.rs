//! The in-memory pair: a client engine, a server engine, a `MemoryDevice`,
//! a deterministic RNG and a simulated clock. Every message is kept.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use omadm::auth::{AuthType, Credentials};
use omadm::client::{
    ClientAlert, ClientConfig, ClientEvent, ClientSession, SessionKind, SessionStart,
};
use omadm::handler::MemoryDevice;
use omadm::server::{DeviceAccount, ServerConfig, ServerEvent, ServerSession};
use omadm::{AuthConfig, Incoming, NonceState};
use omadm_wire::model::{Command, Data, Item, ItemCommand, Location, Meta, SyncMl};
use omadm_wire::{Encoding, Limits};

pub(crate) const DEVICE: &str = "IMEI:493005100592800";
pub(crate) const SERVER: &str = "https://dm.example.com/dm";
pub(crate) const SERVER_ID: &str = "srv1";

/// A deterministic RNG (xorshift) so runs are reproducible.
pub(crate) struct TestRng(pub(crate) u64);

impl TestRng {
    pub(crate) fn fill(&mut self, dest: &mut [u8]) {
        for b in dest {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = self.0 as u8;
        }
    }
}

impl omadm::auth::RandomSource for TestRng {
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.fill(dest)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    ToServer,
    ToClient,
}

/// A message as it went over the "wire".
#[derive(Clone, Debug)]
pub(crate) struct Wire {
    pub(crate) dir: Dir,
    pub(crate) body: Vec<u8>,
    pub(crate) encoding: Encoding,
}

impl Wire {
    pub(crate) fn msg(&self) -> SyncMl {
        omadm_wire::decode(&self.body, self.encoding, &Limits::default()).expect("decodable")
    }
}

pub(crate) type Tamper = Box<dyn FnMut(usize, &mut SyncMl)>;

pub(crate) struct Pair {
    pub(crate) client: ClientSession,
    pub(crate) server: Option<ServerSession>,
    pub(crate) device: MemoryDevice,
    pub(crate) account: Option<DeviceAccount>,
    pub(crate) server_cfg: ServerConfig,
    /// Packages the server sends, one each time it is ready for commands.
    pub(crate) script: VecDeque<Vec<(u64, Command)>>,
    pub(crate) server_events: Vec<ServerEvent>,
    pub(crate) client_events: Vec<ClientEvent>,
    pub(crate) wire: Vec<Wire>,
    pub(crate) now: Instant,
    pub(crate) rng: TestRng,
    /// Rewrites the n-th server response before the client sees it.
    pub(crate) tamper_response: Option<Tamper>,
    pub(crate) server_errors: Vec<omadm::error::SessionError>,
    pub(crate) client_errors: Vec<omadm::error::SessionError>,
}

/// Builder for the usual setups.
#[derive(Clone)]
pub(crate) struct Setup {
    pub(crate) encoding: Encoding,
    pub(crate) kind: SessionKind,
    pub(crate) client_auth: Option<AuthConfig>,
    pub(crate) server_expects: Option<AuthConfig>,
    pub(crate) server_presents: Option<AuthConfig>,
    pub(crate) client_expects: Option<AuthConfig>,
    pub(crate) client_nonces: NonceState,
    pub(crate) server_nonces: NonceState,
    pub(crate) client_max_msg: u64,
    pub(crate) client_max_obj: Option<u64>,
    pub(crate) server_max_msg: u64,
    pub(crate) alerts: Vec<ClientAlert>,
    pub(crate) known_device: bool,
    /// The client's guess of the server's MaxMsgSize before package 2.
    pub(crate) assumed_server_max: Option<u64>,
}

impl Setup {
    pub(crate) fn new(encoding: Encoding) -> Setup {
        Setup {
            encoding,
            kind: SessionKind::ClientInitiated {
                session_id: "42".into(),
            },
            client_auth: None,
            server_expects: None,
            server_presents: None,
            client_expects: None,
            client_nonces: NonceState::default(),
            server_nonces: NonceState::default(),
            client_max_msg: 64 * 1024,
            client_max_obj: Some(1024 * 1024),
            server_max_msg: 64 * 1024,
            alerts: Vec::new(),
            known_device: true,
            assumed_server_max: None,
        }
    }

    /// Same credentials configured on both sides for the client.
    pub(crate) fn client_auth(mut self, t: AuthType, user: &str, pw: &str) -> Setup {
        self.client_auth = Some(AuthConfig::new(t, Credentials::new(user, pw)));
        self.server_expects = Some(AuthConfig::new(t, Credentials::new(user, pw)));
        self
    }

    /// Same credentials on both sides for the server.
    pub(crate) fn server_auth(mut self, t: AuthType, user: &str, pw: &str) -> Setup {
        self.server_presents = Some(AuthConfig::new(t, Credentials::new(user, pw)));
        self.client_expects = Some(AuthConfig::new(t, Credentials::new(user, pw)));
        self
    }

    pub(crate) fn build(self) -> Pair {
        let mut cfg = ClientConfig::new(DEVICE, SERVER, SERVER_ID);
        cfg.encoding = self.encoding;
        cfg.client_auth = self.client_auth;
        cfg.server_auth = self.client_expects;
        cfg.max_msg_size = self.client_max_msg;
        cfg.max_obj_size = self.client_max_obj;
        cfg.assumed_server_max_msg_size = self.assumed_server_max;
        let start = SessionStart {
            kind: self.kind,
            dev_info: vec![
                ("./DevInfo/DevId".into(), DEVICE.into()),
                ("./DevInfo/Man".into(), "Acme".into()),
                ("./DevInfo/Mod".into(), "Rocket".into()),
                ("./DevInfo/DmV".into(), "scomo-0.1".into()),
                ("./DevInfo/Lang".into(), "en-US".into()),
            ],
            alerts: self.alerts,
            nonces: self.client_nonces,
        };
        let mut server_cfg = ServerConfig::new(SERVER);
        server_cfg.max_msg_size = self.server_max_msg;
        server_cfg.resp_uri = Some(format!("{SERVER}?s=42"));
        let account = self.known_device.then_some(DeviceAccount {
            client_auth: self.server_expects,
            server_auth: self.server_presents,
            nonces: self.server_nonces,
        });
        let mut device = MemoryDevice::new();
        device.set("./DevInfo/DevId", DEVICE);
        device.set("./DevDetail/FwV", "1.0");
        Pair {
            client: ClientSession::new(cfg, start),
            server: None,
            device,
            account,
            server_cfg,
            script: VecDeque::new(),
            server_events: Vec::new(),
            client_events: Vec::new(),
            wire: Vec::new(),
            now: Instant::now(),
            rng: TestRng(0x9E37_79B9_7F4A_7C15),
            tamper_response: None,
            server_errors: Vec::new(),
            client_errors: Vec::new(),
        }
    }
}

impl Pair {
    /// One round trip. Returns false when the client has nothing to send.
    pub(crate) fn step(&mut self) -> bool {
        let Some(req) = self.client.poll_transmit() else {
            return false;
        };
        self.now += Duration::from_millis(20);
        let enc = Encoding::from_content_type(req.content_type).expect("dm type");
        assert_eq!(
            req.url,
            if self.server.is_some() {
                format!("{SERVER}?s=42")
            } else {
                SERVER.to_owned()
            }
        );
        self.wire.push(Wire {
            dir: Dir::ToServer,
            body: req.body.clone(),
            encoding: enc,
        });
        let incoming = Incoming::new(&req.body)
            .content_type(req.content_type)
            .hmac(req.hmac.as_deref());
        match &mut self.server {
            None => match ServerSession::accept(self.server_cfg.clone(), self.now, incoming) {
                Ok(acc) => {
                    assert_eq!(acc.device_id(), DEVICE);
                    self.server = Some(acc.into_session(self.account.clone(), &mut self.rng));
                }
                Err(e) => {
                    self.server_errors.push(e);
                    self.client.transport_failed("server refused the request");
                    return false;
                }
            },
            Some(s) => {
                if let Err(e) = s.handle_message(self.now, incoming, &mut self.rng) {
                    self.server_errors.push(e);
                    self.client.transport_failed("server refused the request");
                    return false;
                }
            }
        }
        let server = self.server.as_mut().expect("server");
        while let Some(ev) = server.poll_event() {
            self.server_events.push(ev);
        }
        if server.is_ready_for_commands() {
            if let Some(pkg) = self.script.pop_front() {
                for (id, cmd) in pkg {
                    server.queue_command(id, cmd);
                }
            }
        }
        // What a runtime may persist before building the response is what
        // the response leaves.
        let announced = server.nonces_after_response();
        let resp = server
            .poll_transmit()
            .expect("a response for every request");
        assert_eq!(
            server.nonces(),
            &announced,
            "nonces_after_response before poll_transmit"
        );
        while let Some(ev) = server.poll_event() {
            self.server_events.push(ev);
        }
        let mut body = resp.body.clone();
        let n = self.wire.iter().filter(|w| w.dir == Dir::ToClient).count();
        if let Some(t) = &mut self.tamper_response {
            let mut msg = omadm_wire::decode(&body, enc, &Limits::default()).expect("decodable");
            t(n, &mut msg);
            body = omadm_wire::encode(&msg, enc);
        }
        self.wire.push(Wire {
            dir: Dir::ToClient,
            body: body.clone(),
            encoding: enc,
        });
        self.now += Duration::from_millis(20);
        let incoming = Incoming::new(&body)
            .content_type(resp.content_type)
            .hmac(resp.hmac.as_deref());
        if let Err(e) = self
            .client
            .handle_response(incoming, &mut self.device, &mut self.rng)
        {
            self.client_errors.push(e);
        }
        while let Some(ev) = self.client.poll_event() {
            self.client_events.push(ev);
        }
        true
    }

    /// Runs until the client stops sending (bounded).
    pub(crate) fn run(&mut self) -> &mut Pair {
        for _ in 0..500 {
            if !self.step() {
                return self;
            }
        }
        panic!("session did not end in 500 round trips");
    }

    pub(crate) fn server(&self) -> &ServerSession {
        self.server.as_ref().expect("server session")
    }

    pub(crate) fn to_client(&self) -> Vec<SyncMl> {
        self.wire
            .iter()
            .filter(|w| w.dir == Dir::ToClient)
            .map(Wire::msg)
            .collect()
    }

    pub(crate) fn to_server(&self) -> Vec<SyncMl> {
        self.wire
            .iter()
            .filter(|w| w.dir == Dir::ToServer)
            .map(Wire::msg)
            .collect()
    }

    pub(crate) fn statuses_for(&self, id: u64) -> Vec<omadm_wire::StatusCode> {
        self.server_events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::Status {
                    id: i,
                    path,
                    status,
                } if *i == id && path.is_empty() => Some(status.data),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn results_for(&self, id: u64) -> Vec<omadm_wire::model::Results> {
        self.server_events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::Results { id: i, results, .. } if *i == id => Some(results.clone()),
                _ => None,
            })
            .collect()
    }
}

pub(crate) fn get(uri: &str) -> Command {
    Command::Get(ItemCommand {
        items: vec![Item {
            target: Some(Location::uri(uri)),
            ..Item::default()
        }],
        ..ItemCommand::default()
    })
}

pub(crate) fn replace(uri: &str, data: Data, format: Option<&str>) -> Command {
    Command::Replace(ItemCommand {
        items: vec![Item {
            target: Some(Location::uri(uri)),
            meta: format.map(Meta::format),
            data: Some(data),
            ..Item::default()
        }],
        ..ItemCommand::default()
    })
}

pub(crate) fn add(uri: &str, value: &str) -> Command {
    Command::Add(ItemCommand {
        items: vec![Item {
            target: Some(Location::uri(uri)),
            data: Some(Data::Text(value.into())),
            ..Item::default()
        }],
        ..ItemCommand::default()
    })
}

pub(crate) const ENCODINGS: [Encoding; 2] = [Encoding::Xml, Encoding::Wbxml];
