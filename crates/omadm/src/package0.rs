//! Package 0: the server's notification that asks a device to open a
//! session (`OMA-TS-DM_Notification-V1_2` §6, digest §11).
//!
//! ```text
//!   0        16                         24            24+len
//!   ┌────────┬──────────────────────────┬─────────────┬────────────┐
//!   │ digest │ version|ui|init|0|sid|len│ server id   │ vendor ... │
//!   └────────┴──────────────────────────┴─────────────┴────────────┘
//!            └──────────────── trigger ────────────────────────────┘
//!   digest = MD5(B64(MD5(server-id ":" password)) ":" nonce ":" B64(MD5(trigger)))
//! ```
//!
//! Emits version 11; accepts 11 and 12 (`QUIRKS.md`). Verification falls back
//! to the special zero nonces when the stored one fails (§6.2).

use std::fmt;

use crate::auth::{ct_eq, hmac_mac, md5_parts, Credentials, Nonce, B64};
use base64::Engine as _;

/// Length of the digest at the start of a notification.
pub const DIGEST_LEN: usize = 16;
/// Length of the fixed header after the digest.
pub const HEADER_LEN: usize = 8;

/// Why a notification could not be built, parsed or verified.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Package0Error {
    /// Shorter than its fixed part or its announced server id.
    #[error("notification of {len} bytes is truncated, at least {needed} bytes expected")]
    Truncated {
        /// Bytes received.
        len: usize,
        /// Bytes the header announced.
        needed: usize,
    },
    /// A version other than 1.1/1.2 (values 11 and 12).
    #[error("unsupported notification version {0} (expected 11, or 12)")]
    UnsupportedVersion(u16),
    /// A server id longer than 255 bytes cannot be encoded.
    #[error("server id of {0} bytes is longer than 255")]
    ServerIdTooLong(usize),
    /// The server id is not UTF-8 text.
    #[error("server id is not text")]
    InvalidServerId,
    /// The digest matches neither the stored nonce nor the fallback nonces.
    #[error("notification digest does not verify for server {server_id:?}")]
    InvalidDigest {
        /// The server id the notification names.
        server_id: String,
    },
}

/// `ui-mode` (2 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UiMode {
    /// 0: not specified.
    NotSpecified,
    /// 1: background, no user interaction.
    Background,
    /// 2: informative: show that a session runs.
    Informative,
    /// 3: user interaction: ask the user first.
    UserInteraction,
}

impl UiMode {
    fn bits(self) -> u64 {
        match self {
            UiMode::NotSpecified => 0,
            UiMode::Background => 1,
            UiMode::Informative => 2,
            UiMode::UserInteraction => 3,
        }
    }

    fn from_bits(b: u64) -> UiMode {
        match b & 3 {
            1 => UiMode::Background,
            2 => UiMode::Informative,
            3 => UiMode::UserInteraction,
            _ => UiMode::NotSpecified,
        }
    }
}

/// `initiator` (1 bit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Initiator {
    /// 0: the user or the client asked for the session.
    Client,
    /// 1: the server did.
    Server,
}

/// A package-0 notification.
#[derive(Clone, PartialEq, Eq)]
pub struct Notification {
    /// The 10-bit version field (11 = DM 1.2's value).
    pub version: u16,
    /// How much the user should see.
    pub ui_mode: UiMode,
    /// Who asked for the session.
    pub initiator: Initiator,
    /// The session id the device puts (as hex) in `SessionID`.
    pub session_id: u16,
    /// DMAcc `ServerID`.
    pub server_id: String,
    /// Vendor-specific bytes after the server id.
    pub vendor: Vec<u8>,
}

impl fmt::Debug for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notification")
            .field("version", &self.version)
            .field("ui_mode", &self.ui_mode)
            .field("initiator", &self.initiator)
            .field("session_id", &format_args!("{:#06x}", self.session_id))
            .field("server_id", &self.server_id)
            .field("vendor", &crate::auth::hex(&self.vendor))
            .finish()
    }
}

const VERSION_SHIFT: u32 = 54;
const UI_SHIFT: u32 = 52;
const INITIATOR_SHIFT: u32 = 51;
const SESSION_SHIFT: u32 = 8;

impl Notification {
    /// The version value DM 1.2 mandates.
    pub const VERSION: u16 = 11;
    /// The other version value some servers send (accepted, never emitted).
    pub const VERSION_TOLERATED: u16 = 12;

    /// A server-initiated notification, version 11, ui-mode not specified.
    pub fn new(session_id: u16, server_id: impl Into<String>) -> Notification {
        Notification {
            version: Self::VERSION,
            ui_mode: UiMode::NotSpecified,
            initiator: Initiator::Server,
            session_id,
            server_id: server_id.into(),
            vendor: Vec::new(),
        }
    }

    /// The trigger: everything after the digest.
    pub fn trigger(&self) -> Result<Vec<u8>, Package0Error> {
        let len = u8::try_from(self.server_id.len())
            .map_err(|_| Package0Error::ServerIdTooLong(self.server_id.len()))?;
        let initiator = match self.initiator {
            Initiator::Client => 0u64,
            Initiator::Server => 1,
        };
        let header = (u64::from(self.version & 0x3FF) << VERSION_SHIFT)
            | (self.ui_mode.bits() << UI_SHIFT)
            | (initiator << INITIATOR_SHIFT)
            | (u64::from(self.session_id) << SESSION_SHIFT)
            | u64::from(len);
        let mut out = Vec::with_capacity(HEADER_LEN + self.server_id.len() + self.vendor.len());
        out.extend_from_slice(&header.to_be_bytes());
        out.extend_from_slice(self.server_id.as_bytes());
        out.extend_from_slice(&self.vendor);
        Ok(out)
    }

    /// The whole message, digest ‖ trigger. `credentials` are the server's
    /// (DMAcc SRVCRED; the name is the server id), `nonce` the SRVCRED nonce.
    pub fn encode(
        &self,
        credentials: &Credentials,
        nonce: &[u8],
    ) -> Result<Vec<u8>, Package0Error> {
        let trigger = self.trigger()?;
        let mut out = digest(credentials, nonce, &trigger).to_vec();
        out.extend_from_slice(&trigger);
        Ok(out)
    }

    /// Parses a received notification (the digest is not checked here; see
    /// [`ReceivedNotification::verify`]).
    pub fn parse(bytes: &[u8]) -> Result<ReceivedNotification, Package0Error> {
        let truncated = |needed| Package0Error::Truncated {
            len: bytes.len(),
            needed,
        };
        let fixed = DIGEST_LEN + HEADER_LEN;
        let digest: [u8; DIGEST_LEN] = bytes
            .get(..DIGEST_LEN)
            .and_then(|d| d.try_into().ok())
            .ok_or_else(|| truncated(fixed))?;
        let header: [u8; HEADER_LEN] = bytes
            .get(DIGEST_LEN..fixed)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| truncated(fixed))?;
        let header = u64::from_be_bytes(header);
        // Masks as in the spec's bit layout; the 27 future-use bits are ignored.
        let version = ((header >> VERSION_SHIFT) & 0x3FF) as u16;
        if version != Self::VERSION && version != Self::VERSION_TOLERATED {
            return Err(Package0Error::UnsupportedVersion(version));
        }
        let len = usize::from((header & 0xFF) as u8);
        let server_id = bytes
            .get(fixed..fixed + len)
            .ok_or_else(|| truncated(fixed + len))?;
        let server_id =
            String::from_utf8(server_id.to_vec()).map_err(|_| Package0Error::InvalidServerId)?;
        let notification = Notification {
            version,
            ui_mode: UiMode::from_bits(header >> UI_SHIFT),
            initiator: if (header >> INITIATOR_SHIFT) & 1 == 1 {
                Initiator::Server
            } else {
                Initiator::Client
            },
            session_id: ((header >> SESSION_SHIFT) & 0xFFFF) as u16,
            server_id,
            vendor: bytes.get(fixed + len..).unwrap_or_default().to_vec(),
        };
        Ok(ReceivedNotification {
            notification,
            digest,
            trigger: bytes.get(DIGEST_LEN..).unwrap_or_default().to_vec(),
        })
    }

    /// The `SessionID` of the session that answers this notification.
    pub fn session_id_hex(&self) -> String {
        session_id_hex(self.session_id)
    }
}

/// A parsed notification with the digest it came with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedNotification {
    /// The decoded fields.
    pub notification: Notification,
    /// The digest as received.
    pub digest: [u8; DIGEST_LEN],
    /// The bytes the digest covers.
    pub trigger: Vec<u8>,
}

/// Which nonce made a notification verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonceUsed {
    /// The stored SRVCRED nonce.
    Stored,
    /// The fallback of four zero bytes. Both sides must issue new nonces in
    /// the session (run it with the zero nonce as the server nonce).
    ZeroBytes,
    /// The fallback `"0x00000000"` text (libdmclient's reading).
    ZeroText,
}

impl NonceUsed {
    /// The nonce bytes this names (for `Stored`, the one passed in).
    pub fn nonce(self, stored: &[u8]) -> Nonce {
        match self {
            NonceUsed::Stored => Nonce::from_bytes(stored),
            NonceUsed::ZeroBytes => Nonce::zero(),
            NonceUsed::ZeroText => Nonce::zero_text(),
        }
    }
}

impl ReceivedNotification {
    /// Verifies the digest with the server's credentials (name = server id
    /// or SRVCRED `AAuthName`; try the server id first) and the stored
    /// nonce, then with the two fallback nonces.
    pub fn verify(
        &self,
        credentials: &Credentials,
        nonce: &[u8],
    ) -> Result<NonceUsed, Package0Error> {
        let candidates = [
            (NonceUsed::Stored, nonce.to_vec()),
            (NonceUsed::ZeroBytes, Nonce::zero().as_bytes().to_vec()),
            (NonceUsed::ZeroText, Nonce::zero_text().as_bytes().to_vec()),
        ];
        for (used, n) in candidates {
            if ct_eq(&digest(credentials, &n, &self.trigger), &self.digest) {
                return Ok(used);
            }
        }
        Err(Package0Error::InvalidDigest {
            server_id: self.notification.server_id.clone(),
        })
    }
}

/// The package-0 digest over a trigger (the HMAC formula with the trigger
/// as body).
pub fn digest(credentials: &Credentials, nonce: &[u8], trigger: &[u8]) -> [u8; DIGEST_LEN] {
    let h = B64.encode(credentials.user_hash());
    let t = B64.encode(md5_parts(&[trigger]));
    md5_parts(&[h.as_bytes(), b":", nonce, b":", t.as_bytes()])
}

/// Same value as [`digest`], base64 (for logs and cross-checks).
pub fn digest_b64(credentials: &Credentials, nonce: &[u8], trigger: &[u8]) -> String {
    hmac_mac(&credentials.user_hash(), nonce, trigger)
}

/// A session id as `SessionID`: upper-case hex without leading zeros
/// (0x00A1 → `A1`, 0 → `0`).
pub fn session_id_hex(session_id: u16) -> String {
    format!("{session_id:X}")
}

/// Whether a received `SessionID` answers the notification that carried
/// `notified`: the canonical hex form, any case or zero padding, or the
/// byte-swapped id some clients read (0x1234 → `3412`, `QUIRKS.md`).
pub fn session_id_matches(notified: u16, session_id: &str) -> bool {
    let s = session_id.trim();
    if s.is_empty() || s.len() > 4 {
        return false;
    }
    match u16::from_str_radix(s, 16) {
        Ok(v) => v == notified || v == notified.swap_bytes(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hexs(b: &[u8]) -> String {
        crate::auth::hex(b)
    }

    #[test]
    fn worked_example() {
        let n = Notification::new(0x1234, "srv1");
        let trigger = n.trigger().unwrap();
        assert_eq!(hexs(&trigger), "02c800000012340473727631");
        assert_eq!(hexs(&trigger[..8]), "02c8000000123404");
        let creds = Credentials::new("srv1", "pw");
        let msg = n.encode(&creds, b"nonce").unwrap();
        assert_eq!(hexs(&msg[..16]), "9aed57afafa3464bb1f89e5dceafa301");
        assert_eq!(&msg[16..], &trigger[..]);

        let got = Notification::parse(&msg).unwrap();
        assert_eq!(got.notification, n);
        assert_eq!(got.verify(&creds, b"nonce"), Ok(NonceUsed::Stored));
        assert_eq!(n.session_id_hex(), "1234");
    }

    #[test]
    fn bad_digest_is_a_typed_error() {
        let creds = Credentials::new("srv1", "pw");
        let mut msg = Notification::new(7, "srv1")
            .encode(&creds, b"nonce")
            .unwrap();
        msg[0] ^= 1;
        let got = Notification::parse(&msg).unwrap();
        assert_eq!(
            got.verify(&creds, b"nonce"),
            Err(Package0Error::InvalidDigest {
                server_id: "srv1".into()
            })
        );
        let good = Notification::new(7, "srv1")
            .encode(&creds, b"nonce")
            .unwrap();
        let got = Notification::parse(&good).unwrap();
        assert!(got
            .verify(&Credentials::new("srv1", "wrong"), b"nonce")
            .is_err());
        assert!(got.verify(&creds, b"stale").is_err());
    }

    #[test]
    fn fallback_nonces() {
        let creds = Credentials::new("srv1", "pw");
        let n = Notification::new(1, "srv1");
        let zero = Notification::parse(&n.encode(&creds, &[0; 4]).unwrap()).unwrap();
        assert_eq!(zero.verify(&creds, b"stale"), Ok(NonceUsed::ZeroBytes));
        let text = Notification::parse(&n.encode(&creds, b"0x00000000").unwrap()).unwrap();
        assert_eq!(text.verify(&creds, b"stale"), Ok(NonceUsed::ZeroText));
        assert_eq!(NonceUsed::ZeroBytes.nonce(b"x"), Nonce::zero());
    }

    #[test]
    fn fields_and_versions() {
        let creds = Credentials::new("s", "p");
        let mut n = Notification::new(0xBEEF, "server-x");
        n.ui_mode = UiMode::UserInteraction;
        n.initiator = Initiator::Client;
        n.vendor = vec![1, 2, 3];
        let got = Notification::parse(&n.encode(&creds, b"n").unwrap()).unwrap();
        assert_eq!(got.notification, n);

        n.version = 12;
        let got = Notification::parse(&n.encode(&creds, b"n").unwrap()).unwrap();
        assert_eq!(got.notification.version, 12);

        n.version = 10;
        assert_eq!(
            Notification::parse(&n.encode(&creds, b"n").unwrap()),
            Err(Package0Error::UnsupportedVersion(10))
        );
    }

    #[test]
    fn truncated_and_bad_input() {
        assert!(matches!(
            Notification::parse(&[0; 23]),
            Err(Package0Error::Truncated {
                len: 23,
                needed: 24
            })
        ));
        let creds = Credentials::new("s", "p");
        let msg = Notification::new(1, "srv1").encode(&creds, b"n").unwrap();
        assert!(matches!(
            Notification::parse(&msg[..26]),
            Err(Package0Error::Truncated { needed: 28, .. })
        ));
        let long = Notification::new(1, "x".repeat(256));
        assert_eq!(long.trigger(), Err(Package0Error::ServerIdTooLong(256)));
        let mut bad = msg.clone();
        bad[24] = 0xFF;
        assert_eq!(
            Notification::parse(&bad),
            Err(Package0Error::InvalidServerId)
        );
    }

    #[test]
    fn session_ids() {
        assert_eq!(session_id_hex(0x00A1), "A1");
        assert_eq!(session_id_hex(0), "0");
        assert!(session_id_matches(0x1234, "1234"));
        assert!(session_id_matches(0x1234, "3412"));
        assert!(session_id_matches(0x00A1, "a1"));
        assert!(session_id_matches(0x00A1, "00A1"));
        assert!(session_id_matches(0x00A1, "A100"));
        assert!(!session_id_matches(0x1234, "1235"));
        assert!(!session_id_matches(0x1234, "x"));
        assert!(!session_id_matches(0x1234, "01234"));
    }
}
