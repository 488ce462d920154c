//! DM-level authentication (`OMA-TS-DM_Security-V1_2` §5, digest §10).
//!
//! ```text
//!   syncml:auth-basic   Cred/Data = B64(user ":" password)
//!   syncml:auth-md5     Cred/Data = B64(MD5(B64(MD5(user ":" password)) ":" nonce))
//!   syncml:auth-MAC     x-syncml-hmac: algorithm=MD5, username="user",
//!                         mac=B64(MD5(B64(MD5(user ":" password)) ":" nonce ":" B64(MD5(body))))
//! ```
//!
//! `nonce` is always the raw bytes of a base64 `NextNonce`. Verifiers also
//! accept digests computed over the nonce's base64 *text* (`QUIRKS.md`), and
//! an HMAC `mac` that is base64 of the lowercase hex digest (the spec's own
//! example). A verifier may hold only `MD5(user ":" password)` instead of the
//! password ([`Secret::Md5Hash`]); basic credentials are then checked by
//! hashing what the peer sent.

use std::fmt;

use base64::Engine as _;
use md5::{Digest as _, Md5};
use omadm_wire::model::{Chal, Cred, Meta};

/// Standard base64 with padding, as DM uses everywhere.
pub(crate) const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A source of unpredictable bytes (nonces, session ids). The engines never
/// touch OS randomness: the runtime passes one in (`ARCHITECTURE.md`).
pub trait RandomSource {
    /// Fills `dest` with random bytes.
    fn fill_bytes(&mut self, dest: &mut [u8]);
}

impl<F: FnMut(&mut [u8])> RandomSource for F {
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self(dest)
    }
}

/// A DM authentication type (`Meta/Type` of `Cred` and `Chal`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthType {
    /// `syncml:auth-basic`: user and password in base64 (insecure without TLS).
    Basic,
    /// `syncml:auth-md5`: nonce-salted MD5 digest.
    Md5,
    /// `syncml:auth-MAC`: per-message HMAC in the `x-syncml-hmac` header.
    Hmac,
}

impl AuthType {
    /// `Meta/Type` of basic credentials.
    pub const BASIC: &'static str = "syncml:auth-basic";
    /// `Meta/Type` of MD5 credentials.
    pub const MD5: &'static str = "syncml:auth-md5";
    /// `Meta/Type` of an HMAC challenge.
    pub const HMAC: &'static str = "syncml:auth-MAC";

    /// The `Meta/Type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::Basic => Self::BASIC,
            AuthType::Md5 => Self::MD5,
            AuthType::Hmac => Self::HMAC,
        }
    }

    /// Parses a `Meta/Type` (case-insensitive, trimmed).
    pub fn from_meta_type(s: &str) -> Option<AuthType> {
        let s = s.trim();
        if s.eq_ignore_ascii_case(Self::BASIC) {
            Some(AuthType::Basic)
        } else if s.eq_ignore_ascii_case(Self::MD5) {
            Some(AuthType::Md5)
        } else if s.eq_ignore_ascii_case(Self::HMAC) {
            Some(AuthType::Hmac)
        } else {
            None
        }
    }

    /// The DMAcc `AAuthType` value (`BASIC`, `DIGEST`, `HMAC`; DM_StdObj §5.3).
    pub fn dmacc_name(self) -> &'static str {
        match self {
            AuthType::Basic => "BASIC",
            AuthType::Md5 => "DIGEST",
            AuthType::Hmac => "HMAC",
        }
    }

    /// Parses a DMAcc `AAuthType` value (case-insensitive).
    pub fn from_dmacc_name(s: &str) -> Option<AuthType> {
        match s.trim().to_ascii_uppercase().as_str() {
            "BASIC" => Some(AuthType::Basic),
            "DIGEST" => Some(AuthType::Md5),
            "HMAC" => Some(AuthType::Hmac),
            _ => None,
        }
    }

    /// Whether this type sends the password itself (readable by anyone who
    /// sees the message).
    pub fn is_insecure(self) -> bool {
        self == AuthType::Basic
    }
}

impl fmt::Display for AuthType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why credentials could not be built or parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Basic credentials need the clear-text password, not just its hash.
    #[error("syncml:auth-basic needs the password; only MD5(user:password) is stored")]
    PasswordRequired,
    /// A base64 value (nonce, credential) is not base64.
    #[error("{what} is not valid base64: {value:?}")]
    InvalidBase64 {
        /// What held it.
        what: &'static str,
        /// The value (truncated).
        value: String,
    },
    /// The `x-syncml-hmac` header cannot be parsed.
    #[error("malformed x-syncml-hmac header: {0}")]
    MalformedHmacHeader(&'static str),
    /// An HMAC algorithm other than MD5.
    #[error("unsupported x-syncml-hmac algorithm {0:?}, expected MD5")]
    UnsupportedAlgorithm(String),
}

/// A nonce: raw bytes, carried as base64 in `NextNonce`.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Nonce(Vec<u8>);

impl Nonce {
    /// Length of generated nonces: 128 bits as DM_Security recommends, and
    /// not a length whose base64 trips the client bug in `QUIRKS.md`
    /// (16 mod 3 = 1).
    pub const DEFAULT_LEN: usize = 16;

    /// A fresh nonce of `len` bytes from the caller's randomness.
    pub fn generate(rng: &mut dyn RandomSource, len: usize) -> Nonce {
        let mut bytes = vec![0u8; len];
        rng.fill_bytes(&mut bytes);
        Nonce(bytes)
    }

    /// A nonce from its raw bytes.
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Nonce {
        Nonce(bytes.into())
    }

    /// A nonce from a received `NextNonce` (base64, whitespace ignored).
    pub fn from_b64(text: &str) -> Result<Nonce, AuthError> {
        let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        B64.decode(compact.as_bytes())
            .map(Nonce)
            .map_err(|_| AuthError::InvalidBase64 {
                what: "NextNonce",
                value: truncate(text),
            })
    }

    /// The package-0 fallback nonce of the spec text: four zero bytes
    /// (`DM_Notification` §6.2; digest §11).
    pub fn zero() -> Nonce {
        Nonce(vec![0; 4])
    }

    /// The package-0 fallback nonce as libdmclient spells it: the ten
    /// characters `0x00000000`.
    pub fn zero_text() -> Nonce {
        Nonce(b"0x00000000".to_vec())
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The base64 form for `NextNonce` or DMAcc `AAuthData` exchange.
    pub fn to_b64(&self) -> String {
        B64.encode(&self.0)
    }

    /// Whether the nonce has no bytes (no nonce known yet).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Nonce({})", self.to_b64())
    }
}

/// What a party knows of a secret: the password, or only
/// `MD5(user ":" password)` (DM_Security §5.3 lets an authenticator store
/// just the hash).
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// The clear-text password.
    Password(String),
    /// `MD5(user ":" password)`, bound to the user name it was made with.
    Md5Hash([u8; 16]),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Password(_) => f.write_str("Secret::Password(<redacted>)"),
            Secret::Md5Hash(_) => f.write_str("Secret::Md5Hash(<redacted>)"),
        }
    }
}

/// A user name and its secret: one DMAcc `AppAuth` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// `AAuthName` (the client's user name, or the server's id).
    pub username: String,
    /// `AAuthSecret`, or its MD5.
    pub secret: Secret,
}

impl Credentials {
    /// Credentials with a clear-text password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Credentials {
        Credentials {
            username: username.into(),
            secret: Secret::Password(password.into()),
        }
    }

    /// Credentials holding only `MD5(user ":" password)`.
    pub fn with_hash(username: impl Into<String>, user_hash: [u8; 16]) -> Credentials {
        Credentials {
            username: username.into(),
            secret: Secret::Md5Hash(user_hash),
        }
    }

    /// `MD5(user ":" password)`.
    pub fn user_hash(&self) -> [u8; 16] {
        match &self.secret {
            Secret::Password(p) => user_hash(&self.username, p),
            Secret::Md5Hash(h) => *h,
        }
    }

    /// `B64(user ":" password)` for `syncml:auth-basic`.
    pub fn basic(&self) -> Result<String, AuthError> {
        match &self.secret {
            Secret::Password(p) => Ok(basic_credential(&self.username, p)),
            Secret::Md5Hash(_) => Err(AuthError::PasswordRequired),
        }
    }

    /// The `syncml:auth-md5` digest for `nonce`.
    pub fn md5(&self, nonce: &[u8]) -> String {
        md5_credential_from_hash(&self.user_hash(), nonce)
    }

    /// The `x-syncml-hmac` header for a message body.
    pub fn hmac(&self, nonce: &[u8], body: &[u8]) -> HmacHeader {
        HmacHeader {
            algorithm: Some("MD5".to_owned()),
            username: self.username.clone(),
            mac: hmac_mac(&self.user_hash(), nonce, body),
        }
    }

    /// A `<Cred>` of the given type (not HMAC, which lives in a header).
    pub fn cred(&self, auth_type: AuthType, nonce: &[u8]) -> Result<Option<Cred>, AuthError> {
        let data = match auth_type {
            AuthType::Basic => self.basic()?,
            AuthType::Md5 => self.md5(nonce),
            AuthType::Hmac => return Ok(None),
        };
        Ok(Some(Cred {
            meta: Some(Meta::format_type("b64", auth_type.as_str())),
            data,
        }))
    }
}

/// `MD5(user ":" password)`.
pub fn user_hash(username: &str, password: &str) -> [u8; 16] {
    md5_parts(&[username.as_bytes(), b":", password.as_bytes()])
}

/// `B64(user ":" password)`: the `syncml:auth-basic` credential.
pub fn basic_credential(username: &str, password: &str) -> String {
    B64.encode(format!("{username}:{password}"))
}

/// `B64(MD5(B64(MD5(user ":" password)) ":" nonce))`: the `syncml:auth-md5`
/// credential.
pub fn md5_credential(username: &str, password: &str, nonce: &[u8]) -> String {
    md5_credential_from_hash(&user_hash(username, password), nonce)
}

/// The `syncml:auth-md5` credential from a stored `MD5(user ":" password)`.
pub fn md5_credential_from_hash(user_hash: &[u8; 16], nonce: &[u8]) -> String {
    B64.encode(md5_raw(user_hash, nonce))
}

/// The HMAC `mac`: `B64(MD5(B64(H) ":" nonce ":" B64(MD5(body))))` with
/// `H = MD5(user ":" password)`.
pub fn hmac_mac(user_hash: &[u8; 16], nonce: &[u8], body: &[u8]) -> String {
    B64.encode(hmac_raw(user_hash, nonce, body))
}

fn md5_raw(user_hash: &[u8; 16], nonce: &[u8]) -> [u8; 16] {
    let h = B64.encode(user_hash);
    md5_parts(&[h.as_bytes(), b":", nonce])
}

fn hmac_raw(user_hash: &[u8; 16], nonce: &[u8], body: &[u8]) -> [u8; 16] {
    let h = B64.encode(user_hash);
    let b = B64.encode(md5_parts(&[body]));
    md5_parts(&[h.as_bytes(), b":", nonce, b":", b.as_bytes()])
}

pub(crate) fn md5_parts(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Compares without an early exit, so timing does not reveal how much of a
/// guessed credential was right.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The nonce forms a verifier tries: the raw bytes, then (tolerance,
/// `QUIRKS.md`) the base64 text of those bytes as if it were the nonce.
fn nonce_forms(nonce: &[u8]) -> [Vec<u8>; 2] {
    [nonce.to_vec(), B64.encode(nonce).into_bytes()]
}

/// Checks `syncml:auth-basic` data against expected credentials. The user
/// name inside the credential must match too.
pub fn verify_basic(cred_data: &str, expected: &Credentials) -> bool {
    let Ok(decoded) = B64.decode(cred_data.trim().as_bytes()) else {
        return false;
    };
    let Some(colon) = decoded.iter().position(|&b| b == b':') else {
        return false;
    };
    let (user, rest) = decoded.split_at(colon);
    let password = rest.get(1..).unwrap_or_default();
    if !ct_eq(user, expected.username.as_bytes()) {
        return false;
    }
    match &expected.secret {
        Secret::Password(p) => ct_eq(password, p.as_bytes()),
        Secret::Md5Hash(h) => ct_eq(&md5_parts(&[user, b":", password]), h),
    }
}

/// Checks `syncml:auth-md5` data for `nonce` (also accepting a digest over
/// the nonce's base64 text).
pub fn verify_md5(cred_data: &str, expected: &Credentials, nonce: &[u8]) -> bool {
    let Ok(got) = B64.decode(cred_data.trim().as_bytes()) else {
        return false;
    };
    let hash = expected.user_hash();
    nonce_forms(nonce)
        .iter()
        .any(|n| ct_eq(&got, &md5_raw(&hash, n)))
}

/// Checks an `x-syncml-hmac` header against the body it came with. The
/// algorithm must be MD5 (or absent) and the user name must match; the mac
/// may be base64 of the raw digest (normal) or of its hex text (tolerated).
pub fn verify_hmac(header: &HmacHeader, body: &[u8], expected: &Credentials, nonce: &[u8]) -> bool {
    if let Some(a) = &header.algorithm {
        if !a.eq_ignore_ascii_case("MD5") {
            return false;
        }
    }
    if header.username != expected.username {
        return false;
    }
    let Ok(got) = B64.decode(header.mac.trim().as_bytes()) else {
        return false;
    };
    let hash = expected.user_hash();
    nonce_forms(nonce).iter().any(|n| {
        let raw = hmac_raw(&hash, n, body);
        ct_eq(&got, &raw) || ct_eq(&got, hex(&raw).as_bytes())
    })
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `x-syncml-hmac` transport header (DM_Security §5.5.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HmacHeader {
    /// `algorithm=`; absent means MD5.
    pub algorithm: Option<String>,
    /// `username="…"`: the SyncHdr `Source/LocName`.
    pub username: String,
    /// `mac=`: base64 digest.
    pub mac: String,
}

impl HmacHeader {
    /// The HTTP header name.
    pub const NAME: &'static str = "x-syncml-hmac";

    /// Parses a header value: comma-separated `name=value`, values optionally
    /// quoted (`\"` and `\\` escapes), names case-insensitive, unknown
    /// names ignored.
    pub fn parse(value: &str) -> Result<HmacHeader, AuthError> {
        let mut algorithm = None;
        let mut username = None;
        let mut mac = None;
        let mut rest = value.trim();
        while !rest.is_empty() {
            let eq = rest
                .find('=')
                .ok_or(AuthError::MalformedHmacHeader("a parameter has no '='"))?;
            let (name, after) = rest.split_at(eq);
            let name = name.trim().trim_start_matches(',').trim();
            let after = after.get(1..).unwrap_or_default().trim_start();
            let (val, tail) = if let Some(quoted) = after.strip_prefix('"') {
                parse_quoted(quoted)?
            } else {
                match after.find(',') {
                    Some(i) => (
                        after.get(..i).unwrap_or_default().trim().to_owned(),
                        after.get(i..).unwrap_or_default(),
                    ),
                    None => (after.trim().to_owned(), ""),
                }
            };
            match name.to_ascii_lowercase().as_str() {
                "algorithm" => algorithm = Some(val),
                "username" => username = Some(val),
                "mac" => mac = Some(val),
                _ => {}
            }
            rest = tail.trim_start().trim_start_matches(',').trim_start();
        }
        if let Some(a) = &algorithm {
            if !a.eq_ignore_ascii_case("MD5") {
                return Err(AuthError::UnsupportedAlgorithm(a.clone()));
            }
        }
        Ok(HmacHeader {
            algorithm,
            username: username.ok_or(AuthError::MalformedHmacHeader("no username"))?,
            mac: mac.ok_or(AuthError::MalformedHmacHeader("no mac"))?,
        })
    }
}

fn parse_quoted(s: &str) -> Result<(String, &str), AuthError> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, e)) => out.push(e),
                None => break,
            },
            '"' => return Ok((out, s.get(i + 1..).unwrap_or_default())),
            c => out.push(c),
        }
    }
    Err(AuthError::MalformedHmacHeader("unterminated quoted value"))
}

impl fmt::Display for HmacHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(a) = &self.algorithm {
            write!(f, "algorithm={a}, ")?;
        }
        f.write_str("username=\"")?;
        for c in self.username.chars() {
            if c == '"' || c == '\\' {
                f.write_str("\\")?;
            }
            write!(f, "{c}")?;
        }
        write!(f, "\", mac={}", self.mac)
    }
}

/// A `<Chal>` asking for `auth_type`, with an optional `NextNonce`.
pub fn chal(auth_type: AuthType, next_nonce: Option<&Nonce>) -> Chal {
    let mut meta = Meta::format_type("b64", auth_type.as_str());
    meta.next_nonce = next_nonce.map(Nonce::to_b64);
    Chal { meta }
}

/// The authentication type of a received `<Cred>`: its `Meta/Type`, basic
/// when absent (SyncML MetInf default).
pub fn cred_type(cred: &Cred) -> Option<AuthType> {
    match cred.meta.as_ref().and_then(|m| m.r#type.as_deref()) {
        Some(t) => AuthType::from_meta_type(t),
        None => Some(AuthType::Basic),
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_vector() {
        assert_eq!(
            basic_credential("Bruce2", "OhBehave"),
            "QnJ1Y2UyOk9oQmVoYXZl"
        );
        let c = Credentials::new("Bruce2", "OhBehave");
        assert!(verify_basic("QnJ1Y2UyOk9oQmVoYXZl", &c));
        let hashed = Credentials::with_hash("Bruce2", user_hash("Bruce2", "OhBehave"));
        assert!(verify_basic("QnJ1Y2UyOk9oQmVoYXZl", &hashed));
        assert!(!verify_basic(&basic_credential("Bruce2", "nope"), &c));
        assert!(!verify_basic(&basic_credential("Bruce3", "OhBehave"), &c));
        assert!(!verify_basic("!!!", &c));
        assert_eq!(hashed.basic(), Err(AuthError::PasswordRequired));
    }

    #[test]
    fn md5_vector() {
        assert_eq!(
            md5_credential("Bruce2", "OhBehave", b"Nonce"),
            "Zz6EivR3yeaaENcRN6lpAQ=="
        );
        let c = Credentials::new("Bruce2", "OhBehave");
        assert!(verify_md5("Zz6EivR3yeaaENcRN6lpAQ==", &c, b"Nonce"));
        let hashed = Credentials::with_hash("Bruce2", c.user_hash());
        assert!(verify_md5("Zz6EivR3yeaaENcRN6lpAQ==", &hashed, b"Nonce"));
        assert!(!verify_md5("Zz6EivR3yeaaENcRN6lpAQ==", &c, b"Other"));
    }

    #[test]
    fn md5_tolerates_nonce_as_base64_text() {
        let c = Credentials::new("dev", "secret");
        let nonce = [1u8, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
        let quirky = c.md5(B64.encode(nonce).as_bytes());
        assert!(verify_md5(&quirky, &c, &nonce));
    }

    #[test]
    fn hmac_vector() {
        let c = Credentials::new("user", "pass");
        let h = c.hmac(b"nonce", b"<SyncML/>");
        assert_eq!(h.mac, "BzE6dDP0ZGNGys1kp3A54Q==");
        assert_eq!(
            h.to_string(),
            "algorithm=MD5, username=\"user\", mac=BzE6dDP0ZGNGys1kp3A54Q=="
        );
        assert!(verify_hmac(&h, b"<SyncML/>", &c, b"nonce"));
        assert!(!verify_hmac(&h, b"<SyncML />", &c, b"nonce"));
        assert!(!verify_hmac(&h, b"<SyncML/>", &c, b"other"));
    }

    #[test]
    fn hmac_accepts_b64_of_hex() {
        let c = Credentials::new("user", "pass");
        let raw = hmac_raw(&c.user_hash(), b"nonce", b"<SyncML/>");
        let h = HmacHeader {
            algorithm: None,
            username: "user".into(),
            mac: B64.encode(hex(&raw)),
        };
        assert!(verify_hmac(&h, b"<SyncML/>", &c, b"nonce"));
    }

    #[test]
    fn hmac_header_parse() {
        let h = HmacHeader::parse(r#"algorithm=MD5, username="Robert \"Jordan", mac=NTI2OTJhMDA="#)
            .unwrap();
        assert_eq!(h.username, "Robert \"Jordan");
        assert_eq!(h.mac, "NTI2OTJhMDA=");
        assert_eq!(HmacHeader::parse(&h.to_string()).unwrap(), h);
        let h = HmacHeader::parse("MAC=abc,Username=\"x, y\"").unwrap();
        assert_eq!(
            (h.username.as_str(), h.mac.as_str(), h.algorithm),
            ("x, y", "abc", None)
        );
        assert!(HmacHeader::parse("username=\"u\"").is_err());
        assert!(HmacHeader::parse("algorithm=SHA1, username=\"u\", mac=x").is_err());
        assert!(HmacHeader::parse("username=\"u").is_err());
    }

    #[test]
    fn nonce_forms_and_types() {
        let n = Nonce::from_b64(" bm9u\nY2U= ").unwrap();
        assert_eq!(n.as_bytes(), b"nonce");
        assert!(Nonce::from_b64("***").is_err());
        let mut counter = 0u8;
        let mut rng = |d: &mut [u8]| {
            for b in d {
                counter = counter.wrapping_add(1);
                *b = counter;
            }
        };
        assert_eq!(Nonce::generate(&mut rng, 3).as_bytes(), &[1, 2, 3]);
        assert_eq!(
            AuthType::from_meta_type(" SYNCML:AUTH-MAC "),
            Some(AuthType::Hmac)
        );
        assert_eq!(AuthType::from_dmacc_name("digest"), Some(AuthType::Md5));
        assert_eq!(cred_type(&Cred::default()), Some(AuthType::Basic));
        assert!(format!("{:?}", Secret::Password("pw".into())).contains("redacted"));
    }
}
