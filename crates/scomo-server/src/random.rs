//! Randomness for nonces, session tokens and package 0 session ids: the OS
//! generator, handed to the sans-IO engines as a [`RandomSource`].

use base64::Engine as _;
use omadm::auth::RandomSource;

/// Fills `buf` from the operating system's generator.
///
/// # Panics
///
/// When the OS has no randomness: nonces and session tokens must not be
/// guessable, and there is no safe fallback.
pub(crate) fn fill(buf: &mut [u8]) {
    #[expect(clippy::expect_used, reason = "no secure fallback exists")]
    getrandom::fill(buf).expect("the operating system's random generator failed");
}

/// The engines' random source.
pub(crate) struct OsRandom;

impl RandomSource for OsRandom {
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        fill(dest);
    }
}

/// A session token for `RespURI`: 128 random bits, base64url.
pub(crate) fn session_token() -> String {
    let mut b = [0u8; 16];
    fill(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// A package 0 session id (never 0).
pub(crate) fn notification_session_id() -> u16 {
    let mut b = [0u8; 2];
    fill(&mut b);
    u16::from_be_bytes(b).max(1)
}
