//! The digest's vectors, byte for byte (DM-PROTOCOL.md §10, §11).

use omadm::auth::{self, Credentials, HmacHeader};
use omadm::package0::{self, Initiator, NonceUsed, Notification, Package0Error, UiMode};

#[test]
fn basic_md5_hmac_vectors() {
    assert_eq!(
        auth::basic_credential("Bruce2", "OhBehave"),
        "QnJ1Y2UyOk9oQmVoYXZl"
    );
    assert_eq!(
        auth::md5_credential("Bruce2", "OhBehave", b"Nonce"),
        "Zz6EivR3yeaaENcRN6lpAQ=="
    );
    let h = Credentials::new("user", "pass").hmac(b"nonce", b"<SyncML/>");
    assert_eq!(h.mac, "BzE6dDP0ZGNGys1kp3A54Q==");
    let parsed = HmacHeader::parse(&h.to_string()).unwrap();
    assert!(auth::verify_hmac(
        &parsed,
        b"<SyncML/>",
        &Credentials::new("user", "pass"),
        b"nonce"
    ));
    // A verifier holding only MD5(user:pass).
    let stored = Credentials::with_hash("Bruce2", auth::user_hash("Bruce2", "OhBehave"));
    assert!(auth::verify_md5(
        "Zz6EivR3yeaaENcRN6lpAQ==",
        &stored,
        b"Nonce"
    ));
    assert!(auth::verify_basic("QnJ1Y2UyOk9oQmVoYXZl", &stored));
}

#[test]
fn package0_worked_example() {
    let n = Notification {
        version: 11,
        ui_mode: UiMode::NotSpecified,
        initiator: Initiator::Server,
        session_id: 0x1234,
        server_id: "srv1".into(),
        vendor: Vec::new(),
    };
    let creds = Credentials::new("srv1", "pw");
    let msg = n.encode(&creds, b"nonce").unwrap();
    let hex: String = msg.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "9aed57afafa3464bb1f89e5dceafa301".to_owned() + "02c8000000123404" + "73727631"
    );
    let got = Notification::parse(&msg).unwrap();
    assert_eq!(got.notification, n);
    assert_eq!(got.verify(&creds, b"nonce"), Ok(NonceUsed::Stored));
    assert_eq!(got.notification.session_id_hex(), "1234");
}

#[test]
fn package0_bad_digests() {
    let creds = Credentials::new("srv1", "pw");
    let msg = Notification::new(0x1234, "srv1")
        .encode(&creds, b"nonce")
        .unwrap();
    let got = Notification::parse(&msg).unwrap();
    for (c, n) in [
        (Credentials::new("srv1", "pw2"), &b"nonce"[..]),
        (Credentials::new("srv2", "pw"), b"nonce"),
        (creds.clone(), b"nonce2"),
    ] {
        assert!(matches!(
            got.verify(&c, n),
            Err(Package0Error::InvalidDigest { .. })
        ));
    }
    // A flipped bit anywhere in the trigger breaks the digest.
    for i in 16..msg.len() {
        let mut m = msg.clone();
        m[i] ^= 0x01;
        if let Ok(r) = Notification::parse(&m) {
            assert!(r.verify(&creds, b"nonce").is_err(), "byte {i}");
        }
    }
    // Version 12 is accepted, 13 is not.
    let mut v12 = Notification::new(1, "srv1");
    v12.version = 12;
    assert!(Notification::parse(&v12.encode(&creds, b"n").unwrap()).is_ok());
    v12.version = 13;
    assert_eq!(
        Notification::parse(&v12.encode(&creds, b"n").unwrap()),
        Err(Package0Error::UnsupportedVersion(13))
    );
}

#[test]
fn package0_fallback_nonces_and_swapped_session_ids() {
    let creds = Credentials::new("srv1", "pw");
    let n = Notification::new(0x1234, "srv1");
    let zero = Notification::parse(&n.encode(&creds, &[0, 0, 0, 0]).unwrap()).unwrap();
    assert_eq!(zero.verify(&creds, b"whatever"), Ok(NonceUsed::ZeroBytes));
    let text = Notification::parse(&n.encode(&creds, b"0x00000000").unwrap()).unwrap();
    assert_eq!(text.verify(&creds, b"whatever"), Ok(NonceUsed::ZeroText));
    assert!(package0::session_id_matches(0x1234, "3412"));
    assert!(package0::session_id_matches(0x1234, "1234"));
}
