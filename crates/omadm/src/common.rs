//! What both engines share: message intake, statuses, and the two halves of
//! DM authentication (proving who we are, verifying who the peer is).

use omadm_wire::model::{Chal, Command, Cred, Item, Meta, Status, SyncHdr, SyncMl};
use omadm_wire::{Encoding, Limits, StatusCode};

use crate::auth::{self, chal, cred_type, AuthType, Credentials, HmacHeader, Nonce, RandomSource};
use crate::error::{refused, SessionError};

/// One received HTTP body and the headers that matter to DM.
#[derive(Clone, Copy, Debug)]
pub struct Incoming<'a> {
    /// The body bytes.
    pub body: &'a [u8],
    /// `Content-Type`, if the transport had one (else the encoding is sniffed).
    pub content_type: Option<&'a str>,
    /// `x-syncml-hmac`, if present.
    pub hmac: Option<&'a str>,
}

impl<'a> Incoming<'a> {
    /// A body with no headers.
    pub fn new(body: &'a [u8]) -> Incoming<'a> {
        Incoming {
            body,
            content_type: None,
            hmac: None,
        }
    }

    /// Sets the Content-Type.
    pub fn content_type(mut self, content_type: &'a str) -> Incoming<'a> {
        self.content_type = Some(content_type);
        self
    }

    /// Sets the `x-syncml-hmac` header value.
    pub fn hmac(mut self, hmac: Option<&'a str>) -> Incoming<'a> {
        self.hmac = hmac;
        self
    }
}

/// The nonces a device account carries between sessions (DMAcc `AAuthData`
/// of the CLCRED and SRVCRED entries). Both engines expose theirs after
/// every message so the runtime can persist it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NonceState {
    /// Nonce of the client's credentials, issued by the server.
    pub client_nonce: Nonce,
    /// Nonce of the server's credentials (and of package 0), issued by the
    /// client.
    pub server_nonce: Nonce,
}

/// Which credentials one side checks or presents, with its type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthConfig {
    /// The authentication type.
    pub auth_type: AuthType,
    /// User name and secret.
    pub credentials: Credentials,
}

impl AuthConfig {
    /// An authentication config.
    pub fn new(auth_type: AuthType, credentials: Credentials) -> AuthConfig {
        AuthConfig {
            auth_type,
            credentials,
        }
    }
}

/// Decodes a received body in the encoding its Content-Type names (or the
/// one its first bytes suggest).
pub(crate) fn decode_incoming(
    incoming: &Incoming<'_>,
    limits: &Limits,
) -> Result<(SyncMl, Encoding), SessionError> {
    let encoding = incoming
        .content_type
        .and_then(Encoding::from_content_type)
        .or_else(|| Encoding::sniff(incoming.body))
        .ok_or_else(|| match incoming.content_type {
            Some(t) => SessionError::UnsupportedContentType(t.to_owned()),
            None => SessionError::UnknownEncoding,
        })?;
    let msg = omadm_wire::decode(incoming.body, encoding, limits)?;
    check_protocol(&msg.header)?;
    Ok((msg, encoding))
}

fn check_protocol(h: &SyncHdr) -> Result<(), SessionError> {
    let proto_ok = h.ver_proto.trim().to_ascii_uppercase().starts_with("DM/1.");
    let dtd_ok = h.ver_dtd.trim().starts_with("1.");
    if proto_ok && dtd_ok {
        Ok(())
    } else {
        Err(SessionError::UnsupportedProtocol {
            ver_proto: h.ver_proto.clone(),
            ver_dtd: h.ver_dtd.clone(),
        })
    }
}

/// The Status answering a received SyncHdr.
pub(crate) fn header_status(h: &SyncHdr, code: StatusCode, chal: Option<Chal>) -> Status {
    Status {
        cmd_id: 0,
        msg_ref: Some(h.msg_id),
        cmd_ref: 0,
        cmd: "SyncHdr".to_owned(),
        target_refs: vec![h.target.loc_uri.clone()],
        source_refs: vec![h.source.loc_uri.clone()],
        cred: None,
        chal,
        data: code,
        items: Vec::new(),
    }
}

/// A Status for a received command, echoing its items' Target/Source.
pub fn status_for(msg_id: u32, cmd: &Command, code: StatusCode) -> Status {
    let items: &[Item] = match cmd {
        Command::Add(c)
        | Command::Copy(c)
        | Command::Delete(c)
        | Command::Get(c)
        | Command::Replace(c) => &c.items,
        Command::Exec(c) => &c.items,
        _ => &[],
    };
    Status {
        cmd_id: 0,
        msg_ref: Some(msg_id),
        cmd_ref: cmd.cmd_id(),
        cmd: cmd.name().to_owned(),
        target_refs: items
            .iter()
            .filter_map(|i| i.target.as_ref().map(|t| t.loc_uri.clone()))
            .collect(),
        source_refs: items
            .iter()
            .filter_map(|i| i.source.as_ref().map(|s| s.loc_uri.clone()))
            .collect(),
        cred: None,
        chal: None,
        data: code,
        items: Vec::new(),
    }
}

/// `Meta` carrying this side's MaxMsgSize/MaxObjSize for the SyncHdr.
pub(crate) fn size_meta(max_msg_size: u64, max_obj_size: Option<u64>) -> Meta {
    Meta {
        max_msg_size: Some(max_msg_size),
        max_obj_size,
        ..Meta::default()
    }
}

/// Whether `cmd` is the SyncHdr status.
pub(crate) fn is_header_status(s: &Status) -> bool {
    s.cmd.eq_ignore_ascii_case("SyncHdr") || (s.cmd_ref == 0 && s.cmd.is_empty())
}

/// The outcome of checking a peer's credentials on one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Authenticated (or nothing to check): the SyncHdr status and an
    /// optional challenge carrying the next nonce. `fresh` is true the first
    /// time in the session.
    Ok {
        code: StatusCode,
        chal: Option<Chal>,
        fresh: bool,
    },
    /// Ask again: 401/407 with a challenge; execute nothing.
    Challenge { code: StatusCode, chal: Chal },
    /// Give up: 401, no challenge; end the session.
    Fail { attempts: u32 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum VerifyState {
    Pending,
    /// 212 given: no more credentials needed in this session.
    Session,
    /// 200 given: every message must carry credentials.
    PerMessage,
}

/// Checks the peer's credentials (`DM_Security` §5.4): the server checks the
/// client's, the client the server's.
#[derive(Clone, Debug)]
pub(crate) struct Verifier {
    expected: Option<AuthConfig>,
    /// The nonce the peer must use next.
    nonce: Nonce,
    /// A NextNonce issued in a Chal not yet sent; it takes effect when the
    /// message carrying it is built ([`Verifier::commit`]), so a session
    /// that ends without sending it keeps the nonce the peer knows.
    pending: Option<Nonce>,
    /// The nonce before the last rotation. The message carrying a new
    /// nonce may never have reached the peer (a transport failure, the
    /// device killed mid-session); until the peer proves itself with the new
    /// one, the previous one is accepted too, so one lost message cannot
    /// lock the two sides out of each other for good.
    previous: Option<Nonce>,
    state: VerifyState,
    per_message: bool,
    failures: u32,
    challenges: u32,
    max_failures: u32,
    max_challenges: u32,
    nonce_len: usize,
}

impl Verifier {
    pub(crate) fn new(
        expected: Option<AuthConfig>,
        nonce: Nonce,
        per_message: bool,
        max_failures: u32,
        nonce_len: usize,
    ) -> Verifier {
        Verifier {
            expected,
            nonce,
            pending: None,
            previous: None,
            state: VerifyState::Pending,
            per_message,
            failures: 0,
            challenges: 0,
            max_failures: max_failures.max(1),
            max_challenges: max_failures.max(1) + 2,
            nonce_len,
        }
    }

    pub(crate) fn nonce(&self) -> &Nonce {
        &self.nonce
    }

    /// The nonce the peer must use once the message being built is sent:
    /// the pending NextNonce, or the current one.
    pub(crate) fn next_nonce(&self) -> &Nonce {
        self.pending.as_ref().unwrap_or(&self.nonce)
    }

    /// The nonce still accepted beside the current one, if any.
    pub(crate) fn previous(&self) -> Option<&Nonce> {
        self.previous.as_ref()
    }

    /// Restores the previous nonce persisted by the runtime.
    pub(crate) fn set_previous(&mut self, previous: Option<Nonce>) {
        self.previous = previous.filter(|p| *p != self.nonce);
    }

    /// Whether the peer is authenticated, or no DM-level check is configured.
    pub(crate) fn trusted(&self) -> bool {
        self.expected.is_none() || self.state != VerifyState::Pending
    }

    /// Credentials checked and found wrong, plus challenges issued.
    pub(crate) fn failures(&self) -> u32 {
        self.failures + self.challenges
    }

    pub(crate) fn is_required(&self) -> bool {
        self.expected.is_some()
    }

    pub(crate) fn verify(
        &mut self,
        header: &SyncHdr,
        hmac: Option<&str>,
        body: &[u8],
        rng: &mut dyn RandomSource,
    ) -> Verdict {
        let Some(expected) = self.expected.clone() else {
            return Verdict::Ok {
                code: StatusCode::OK,
                chal: None,
                fresh: false,
            };
        };
        if self.state == VerifyState::Session {
            return Verdict::Ok {
                code: StatusCode::OK,
                chal: None,
                fresh: false,
            };
        }
        let want = expected.auth_type;
        let check = |nonce: &Nonce| match want {
            AuthType::Hmac => match hmac.map(HmacHeader::parse) {
                None => None,
                Some(Ok(h)) => Some(auth::verify_hmac(
                    &h,
                    body,
                    &expected.credentials,
                    nonce.as_bytes(),
                )),
                Some(Err(_)) => Some(false),
            },
            _ => header
                .cred
                .as_ref()
                .map(|c| cred_type(c) == Some(want) && check_cred(c, &expected, nonce)),
        };
        let mut outcome = check(&self.nonce);
        if outcome == Some(true) {
            // The peer has the current nonce: the previous one is done.
            self.previous = None;
        } else if outcome == Some(false) {
            if let Some(prev) = &self.previous {
                outcome = check(prev);
            }
        }
        match outcome {
            Some(true) => {
                let fresh = self.state == VerifyState::Pending;
                let (code, chal) = match want {
                    AuthType::Hmac => {
                        self.state = VerifyState::PerMessage;
                        (StatusCode::OK, Some(self.rotate(want, rng)))
                    }
                    AuthType::Basic if self.per_message => {
                        self.state = VerifyState::PerMessage;
                        (StatusCode::OK, None)
                    }
                    AuthType::Basic => {
                        self.state = VerifyState::Session;
                        (StatusCode::AUTHENTICATION_ACCEPTED, None)
                    }
                    AuthType::Md5 if self.per_message => {
                        self.state = VerifyState::PerMessage;
                        (StatusCode::OK, Some(self.rotate(want, rng)))
                    }
                    AuthType::Md5 => {
                        // 212 + NextNonce: the nonce is for the next session.
                        self.state = VerifyState::Session;
                        (
                            StatusCode::AUTHENTICATION_ACCEPTED,
                            Some(self.rotate(want, rng)),
                        )
                    }
                };
                Verdict::Ok { code, chal, fresh }
            }
            Some(false) => {
                self.failures += 1;
                if self.failures >= self.max_failures {
                    Verdict::Fail {
                        attempts: self.failures,
                    }
                } else {
                    self.challenge(StatusCode::INVALID_CREDENTIALS, want, rng)
                }
            }
            None if self.state == VerifyState::PerMessage => {
                self.failures += 1;
                if self.failures >= self.max_failures {
                    Verdict::Fail {
                        attempts: self.failures,
                    }
                } else {
                    self.challenge(StatusCode::INVALID_CREDENTIALS, want, rng)
                }
            }
            None => self.challenge(StatusCode::MISSING_CREDENTIALS, want, rng),
        }
    }

    fn challenge(
        &mut self,
        code: StatusCode,
        want: AuthType,
        rng: &mut dyn RandomSource,
    ) -> Verdict {
        self.challenges += 1;
        if self.challenges > self.max_challenges {
            return Verdict::Fail {
                attempts: self.challenges,
            };
        }
        // A failed peer may have used a stale nonce: challenge with a fresh one.
        Verdict::Challenge {
            code,
            chal: self.rotate(want, rng),
        }
    }

    fn rotate(&mut self, want: AuthType, rng: &mut dyn RandomSource) -> Chal {
        let n = Nonce::generate(rng, self.nonce_len);
        let c = chal(want, Some(&n));
        self.pending = Some(n);
        c
    }

    /// The message carrying the last Chal is being sent: its nonce is now
    /// the one the peer must use.
    pub(crate) fn commit(&mut self) {
        if let Some(n) = self.pending.take() {
            let old = std::mem::replace(&mut self.nonce, n);
            if !old.is_empty() {
                self.previous = Some(old);
            }
        }
    }
}

fn check_cred(c: &Cred, expected: &AuthConfig, nonce: &Nonce) -> bool {
    match expected.auth_type {
        AuthType::Basic => auth::verify_basic(&c.data, &expected.credentials),
        AuthType::Md5 => auth::verify_md5(&c.data, &expected.credentials, nonce.as_bytes()),
        AuthType::Hmac => false,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProveState {
    /// Credentials sent (or about to be) but not yet accepted.
    Unconfirmed,
    /// 212 received: stop sending credentials.
    Session,
    /// 200 received: keep sending them.
    PerMessage,
}

/// What a SyncHdr status did to our authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ProverReaction {
    /// Accepted (200/212), or a status that is not about authentication.
    Accepted,
    /// 401/407 with a usable challenge: resend the last message.
    Retry,
}

/// Presents our credentials to the peer.
#[derive(Clone, Debug)]
pub(crate) struct Prover {
    config: Option<AuthConfig>,
    /// Current type; a challenge may change it (never to a weaker one).
    auth_type: Option<AuthType>,
    /// The latest nonce the peer gave us (used at once, even from a peer not
    /// yet authenticated — `DM_Security` §5.4).
    nonce: Nonce,
    state: ProveState,
    retries: u32,
    max_retries: u32,
}

impl Prover {
    pub(crate) fn new(config: Option<AuthConfig>, nonce: Nonce, max_retries: u32) -> Prover {
        Prover {
            auth_type: config.as_ref().map(|c| c.auth_type),
            config,
            nonce,
            state: ProveState::Unconfirmed,
            retries: 0,
            max_retries,
        }
    }

    pub(crate) fn nonce(&self) -> &Nonce {
        &self.nonce
    }

    pub(crate) fn username(&self) -> Option<&str> {
        self.config
            .as_ref()
            .map(|c| c.credentials.username.as_str())
    }

    /// The `<Cred>` for the next message, if one is due.
    pub(crate) fn cred(&self) -> Result<Option<Cred>, SessionError> {
        let (Some(cfg), Some(t)) = (&self.config, self.auth_type) else {
            return Ok(None);
        };
        if self.state == ProveState::Session {
            return Ok(None);
        }
        Ok(cfg.credentials.cred(t, self.nonce.as_bytes())?)
    }

    /// The `x-syncml-hmac` value for an encoded body, if HMAC is in use.
    pub(crate) fn hmac(&self, body: &[u8]) -> Option<String> {
        match (&self.config, self.auth_type) {
            (Some(cfg), Some(AuthType::Hmac)) => Some(
                cfg.credentials
                    .hmac(self.nonce.as_bytes(), body)
                    .to_string(),
            ),
            _ => None,
        }
    }

    /// Takes the peer's Status for our SyncHdr.
    pub(crate) fn on_status(&mut self, s: &Status) -> Result<ProverReaction, SessionError> {
        let next = s
            .chal
            .as_ref()
            .and_then(|c| c.meta.next_nonce.as_deref())
            .map(Nonce::from_b64)
            .transpose()?;
        let code = s.data;
        if code == StatusCode::INVALID_CREDENTIALS || code == StatusCode::MISSING_CREDENTIALS {
            let Some(cfg) = &self.config else {
                return Err(SessionError::AuthenticationFailed { status: code });
            };
            let requested = s
                .chal
                .as_ref()
                .and_then(|c| c.meta.r#type.as_deref())
                .map(|t| {
                    AuthType::from_meta_type(t).ok_or_else(|| SessionError::AuthTypeRefused {
                        requested: t.to_owned(),
                    })
                })
                .transpose()?;
            if s.chal.is_none() {
                return Err(SessionError::AuthenticationFailed { status: code });
            }
            if let Some(t) = requested {
                // Never let a challenge downgrade us to clear-text basic.
                if t == AuthType::Basic && cfg.auth_type != AuthType::Basic {
                    return Err(refused(t));
                }
                self.auth_type = Some(t);
            }
            if let Some(n) = next {
                self.nonce = n;
            }
            self.retries += 1;
            if self.retries > self.max_retries {
                return Err(SessionError::AuthenticationFailed { status: code });
            }
            self.state = ProveState::Unconfirmed;
            return Ok(ProverReaction::Retry);
        }
        if let Some(n) = next {
            self.nonce = n;
        }
        if code == StatusCode::AUTHENTICATION_ACCEPTED {
            self.state = ProveState::Session;
        } else if code.is_success()
            && self.config.is_some()
            && self.state == ProveState::Unconfirmed
        {
            // 200 to a message with credentials: keep sending them. HMAC
            // always answers 200 and stays per message.
            self.state = ProveState::PerMessage;
        } else if !code.is_success() {
            return Err(SessionError::Rejected { status: code });
        }
        Ok(ProverReaction::Accepted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use omadm_wire::model::Location;

    fn rng() -> impl FnMut(&mut [u8]) {
        let mut n = 0u8;
        move |d: &mut [u8]| {
            for b in d {
                n = n.wrapping_add(7);
                *b = n;
            }
        }
    }

    fn hdr(cred: Option<Cred>) -> SyncHdr {
        let mut h = SyncHdr::new("1", 1, Location::uri("srv"), Location::uri("dev"));
        h.cred = cred;
        h
    }

    #[test]
    fn verifier_md5_flow() {
        let creds = Credentials::new("u", "p");
        let cfg = AuthConfig::new(AuthType::Md5, creds.clone());
        let mut v = Verifier::new(Some(cfg), Nonce::from_bytes(b"n1".to_vec()), false, 2, 16);
        let mut r = rng();
        // No credentials: 407 with a fresh nonce.
        let Verdict::Challenge { code, chal } = v.verify(&hdr(None), None, b"", &mut r) else {
            panic!("expected a challenge")
        };
        assert_eq!(code, StatusCode::MISSING_CREDENTIALS);
        let n = Nonce::from_b64(chal.meta.next_nonce.as_deref().unwrap()).unwrap();
        v.commit();
        assert_eq!(&n, v.nonce());
        // Right credentials with that nonce: 212 and a nonce for next time.
        let c = creds.cred(AuthType::Md5, n.as_bytes()).unwrap();
        let got = v.verify(&hdr(c), None, b"", &mut r);
        assert!(matches!(
            got,
            Verdict::Ok {
                code: StatusCode::AUTHENTICATION_ACCEPTED,
                chal: Some(_),
                fresh: true
            }
        ));
        assert!(v.trusted());
    }

    #[test]
    fn verifier_accepts_the_previous_nonce_until_the_new_one_is_used() {
        let creds = Credentials::new("srv", "pw");
        let cfg = AuthConfig::new(AuthType::Md5, creds.clone());
        let n1 = Nonce::from_bytes(b"n1".to_vec());
        let mut v = Verifier::new(Some(cfg.clone()), n1.clone(), false, 2, 16);
        let mut r = rng();
        let ok = creds.cred(AuthType::Md5, n1.as_bytes()).unwrap();
        let Verdict::Ok {
            chal: Some(chal), ..
        } = v.verify(&hdr(ok), None, b"", &mut r)
        else {
            panic!("n1 must verify")
        };
        v.commit(); // The message carrying n2 is sent...
        let n2 = Nonce::from_b64(chal.meta.next_nonce.as_deref().unwrap()).unwrap();
        assert_eq!((v.nonce(), v.previous()), (&n2, Some(&n1)));
        // ...but never arrived: next session, the peer still uses n1.
        let mut next = Verifier::new(Some(cfg.clone()), n2.clone(), false, 2, 16);
        next.set_previous(Some(n1.clone()));
        let old = creds.cred(AuthType::Md5, n1.as_bytes()).unwrap();
        assert!(matches!(
            next.verify(&hdr(old), None, b"", &mut r),
            Verdict::Ok { .. }
        ));
        // Once the peer proves itself with the current nonce, the previous
        // one is no longer accepted.
        let mut later = Verifier::new(Some(cfg), n2.clone(), false, 2, 16);
        later.set_previous(Some(n1.clone()));
        let new = creds.cred(AuthType::Md5, n2.as_bytes()).unwrap();
        assert!(matches!(
            later.verify(&hdr(new), None, b"", &mut r),
            Verdict::Ok { .. }
        ));
        assert_eq!(later.previous(), None);
        // A nonce that is neither is refused.
        let mut v3 = Verifier::new(
            Some(AuthConfig::new(AuthType::Md5, creds.clone())),
            n2,
            false,
            2,
            16,
        );
        v3.set_previous(Some(n1));
        let stale = creds.cred(AuthType::Md5, b"n0").unwrap();
        assert!(matches!(
            v3.verify(&hdr(stale), None, b"", &mut r),
            Verdict::Challenge { .. }
        ));
    }

    #[test]
    fn verifier_gives_up() {
        let cfg = AuthConfig::new(AuthType::Basic, Credentials::new("u", "p"));
        let mut v = Verifier::new(Some(cfg), Nonce::default(), false, 2, 16);
        let mut r = rng();
        let bad = Credentials::new("u", "x")
            .cred(AuthType::Basic, b"")
            .unwrap();
        assert!(matches!(
            v.verify(&hdr(bad.clone()), None, b"", &mut r),
            Verdict::Challenge { .. }
        ));
        assert!(matches!(
            v.verify(&hdr(bad), None, b"", &mut r),
            Verdict::Fail { attempts: 2 }
        ));
    }

    #[test]
    fn prover_refuses_downgrade() {
        let cfg = AuthConfig::new(AuthType::Md5, Credentials::new("u", "p"));
        let mut p = Prover::new(Some(cfg), Nonce::default(), 3);
        let mut s = header_status(
            &hdr(None),
            StatusCode::INVALID_CREDENTIALS,
            Some(chal(AuthType::Basic, None)),
        );
        assert!(matches!(
            p.on_status(&s),
            Err(SessionError::AuthTypeRefused { .. })
        ));
        s.chal = Some(chal(AuthType::Md5, Some(&Nonce::from_bytes(b"x".to_vec()))));
        assert_eq!(p.on_status(&s), Ok(ProverReaction::Retry));
        assert_eq!(p.nonce().as_bytes(), b"x");
    }
}
