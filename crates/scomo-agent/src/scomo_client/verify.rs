//! Package validation (`1407` on failure): SHA-256 and Ed25519.
//!
//! The expected values come from vendor leaves the server adds beside the
//! package (under `Download/<x>/Ext` or `Inventory/Delivered/<x>/Ext`):
//!
//! * `Ext/SHA256`: the package's SHA-256, 64 hex digits (any case);
//! * `Ext/Signature`: base64 of the Ed25519 signature **of the 32-byte
//!   SHA-256 digest** of the package (not of the raw bytes: the agent hashes
//!   while it streams the package to disk and never reads it twice to
//!   verify). Sign with `sign(key, sha256(package))`.
//!
//! When the agent trusts no key, `Signature` is ignored; when it trusts
//! any, a package without a valid signature by one of them is refused.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use base64::Engine as _;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

/// Leaf under `<entry>/Ext` holding the expected SHA-256.
pub const EXT_SHA256: &str = "SHA256";
/// Leaf under `<entry>/Ext` holding the base64 Ed25519 signature.
pub const EXT_SIGNATURE: &str = "Signature";

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// Parses 64 hex digits.
pub(crate) fn parse_sha256(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Decodes a trusted key (base64 of 32 bytes).
pub(crate) fn parse_key(s: &str) -> Option<VerifyingKey> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()?;
    let arr: [u8; 32] = bytes.try_into().ok()?;
    VerifyingKey::from_bytes(&arr).ok()
}

/// SHA-256 of a file, read in chunks.
pub(crate) fn sha256_file(path: &Path) -> io::Result<[u8; 32]> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(buf.get(..n).unwrap_or_default());
    }
    Ok(h.finalize().into())
}

/// What the package must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Expected {
    pub(crate) sha256: Option<String>,
    pub(crate) signature: Option<String>,
}

/// Checks a package digest against the expectations and the trusted keys.
/// The error says why, for the log.
pub(crate) fn check(
    digest: &[u8; 32],
    expected: &Expected,
    require_sha256: bool,
    keys: &[VerifyingKey],
) -> Result<(), String> {
    match expected
        .sha256
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(text) => {
            let want = parse_sha256(text)
                .ok_or_else(|| format!("Ext/{EXT_SHA256} {text:?} is not 64 hex digits"))?;
            if &want != digest {
                return Err(format!(
                    "SHA-256 mismatch: package has {}, expected {}",
                    hex(digest),
                    text.to_ascii_lowercase()
                ));
            }
        }
        None if require_sha256 => return Err(format!("no Ext/{EXT_SHA256} given")),
        None => {}
    }
    if keys.is_empty() {
        return Ok(());
    }
    let sig_text = expected
        .signature
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("no Ext/{EXT_SIGNATURE} and a trusted key is configured"))?;
    let sig_bytes = base64::engine::general_purpose::STANDARD
        .decode(sig_text)
        .map_err(|_| format!("Ext/{EXT_SIGNATURE} is not base64"))?;
    let sig = Signature::from_slice(&sig_bytes)
        .map_err(|_| format!("Ext/{EXT_SIGNATURE} is not a 64-byte Ed25519 signature"))?;
    if keys.iter().any(|k| k.verify(digest, &sig).is_ok()) {
        Ok(())
    } else {
        Err("signature does not verify with any trusted key".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    #[test]
    fn hex_round_trip() {
        let d: [u8; 32] = Sha256::digest(b"abc").into();
        let h = hex(&d);
        assert_eq!(
            h,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(parse_sha256(&h.to_ascii_uppercase()), Some(d));
        assert_eq!(parse_sha256("zz"), None);
    }

    /// A key and signature made with the `openssl` recipe of
    /// `docs/integrator-guide.md` (`openssl pkey -pubout -outform DER | tail
    /// -c 32 | base64`; `openssl dgst -sha256 -binary | openssl pkeyutl
    /// -sign -rawin | base64`) over the bytes `package bytes\n`.
    #[test]
    fn openssl_recipe_verifies() {
        let d: [u8; 32] = Sha256::digest(b"package bytes\n").into();
        let key = parse_key("7Bvmp+PPYT/7RE+qSg2qU3KrAYqb/Ou6s4fKx2F7Baw=").unwrap();
        let expected = Expected {
            sha256: Some(
                "40fa264148fd4b9e9bea4447cc4504f68832044997ab4921af95356d05556031".into(),
            ),
            signature: Some(
                "GoQDD9y4k84um29rV9UTEwnphqvdcBlHrMSNfnj/baSr2VaI47Auell+rS/whzFUBIUTi2OU7vD4ewflRT9LDA=="
                    .into(),
            ),
        };
        assert_eq!(check(&d, &expected, true, &[key]), Ok(()));
        let other: [u8; 32] = Sha256::digest(b"other bytes\n").into();
        let no_hash = Expected {
            sha256: None,
            ..expected
        };
        assert!(check(&other, &no_hash, false, &[key]).is_err());
    }

    #[test]
    fn checks() {
        let d: [u8; 32] = Sha256::digest(b"package").into();
        let sk = SigningKey::from_bytes(&[7u8; 32]);
        let keys = vec![sk.verifying_key()];
        let sig = base64::engine::general_purpose::STANDARD.encode(sk.sign(&d).to_bytes());
        let ok = Expected {
            sha256: Some(hex(&d)),
            signature: Some(sig.clone()),
        };
        assert_eq!(check(&d, &ok, true, &keys), Ok(()));
        assert_eq!(check(&d, &Expected::default(), false, &[]), Ok(()));
        assert!(check(&d, &Expected::default(), true, &[]).is_err());
        let wrong = Expected {
            sha256: Some(hex(&[0u8; 32])),
            ..ok.clone()
        };
        assert!(check(&d, &wrong, false, &keys)
            .unwrap_err()
            .contains("mismatch"));
        let unsigned = Expected {
            signature: None,
            ..ok.clone()
        };
        assert!(check(&d, &unsigned, false, &keys).is_err());
        // Signatures are ignored without trusted keys.
        assert_eq!(check(&d, &unsigned, false, &[]), Ok(()));
        let other = SigningKey::from_bytes(&[8u8; 32]);
        let bad_sig = Expected {
            signature: Some(
                base64::engine::general_purpose::STANDARD.encode(other.sign(&d).to_bytes()),
            ),
            ..ok
        };
        assert!(check(&d, &bad_sig, false, &keys).is_err());
        assert!(parse_key(&crate::scomo_client::config::encode_key(
            sk.verifying_key().as_bytes()
        ))
        .is_some());
    }
}
