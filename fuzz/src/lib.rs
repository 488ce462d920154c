//! The property both fuzz targets check (STYLE.md point 12).
//!
//! ```text
//!  input ─decode(enc)─▶ first ─┬─encode_xml──▶ x ─decode_xml──▶ m ─encode_xml──▶ x'
//!                              └─encode_wbxml▶ w ─decode_wbxml▶ m ─encode_wbxml▶ w'
//!  assert: decoding never panics; m == first; x' == x and w' == w
//! ```
//!
//! Anything the decoder rejects is fine (hostile input is expected to fail);
//! anything it accepts must survive a trip through either encoding unchanged,
//! with one expected change: binary Data under a Format other than
//! `b64`/`bin` (WBXML OPAQUE that is not UTF-8) has no XML form but base64,
//! so the XML writer labels its Item Format `b64` ([`xml_form`]); the bytes
//! come back exactly.
#![warn(missing_docs)]

use omadm_wire::model::{Command, Data, Item, Meta};
use omadm_wire::{Encoding, Limits, SyncMl};

/// Decodes `input` as `encoding` with the default limits and, when that
/// succeeds, checks that the message round-trips through both encodings.
/// Panics (which libFuzzer records as a crash) on any violation.
pub fn check(input: &[u8], encoding: Encoding) {
    let Ok(first) = omadm_wire::decode(input, encoding, &Limits::default()) else {
        return;
    };
    roundtrip(&first, &xml_form(&first), Encoding::Xml);
    roundtrip(&first, &first, Encoding::Wbxml);
}

/// One encode → decode → encode trip of an accepted message, which must
/// decode to `expected`.
fn roundtrip(first: &SyncMl, expected: &SyncMl, enc: Encoding) {
    let bytes = omadm_wire::encode(first, enc);
    // Our own output may be larger than the input (base64 in XML), so the
    // size limits are relaxed; nesting and element counts are not.
    let second = match omadm_wire::decode(&bytes, enc, &relaxed()) {
        Ok(m) => m,
        Err(e) => panic!(
            "{enc:?} encoding of an accepted message does not decode: {e}\n\
             model: {first:#?}\nencoded: {}",
            show(&bytes, enc)
        ),
    };
    assert!(
        second == *expected,
        "{enc:?} round trip changed the model\nbefore: {first:#?}\nafter: {second:#?}\nencoded: {}",
        show(&bytes, enc)
    );
    let again = omadm_wire::encode(&second, enc);
    assert!(
        again == bytes,
        "{enc:?} re-encoding is not byte-identical\nfirst: {}\nsecond: {}",
        show(&bytes, enc),
        show(&again, enc)
    );
}

fn relaxed() -> Limits {
    Limits {
        max_message_size: usize::MAX,
        max_string_len: usize::MAX,
        ..Limits::default()
    }
}

/// Encoded bytes in a form a person can read in a crash report.
fn show(bytes: &[u8], enc: Encoding) -> String {
    match enc {
        Encoding::Xml => String::from_utf8_lossy(bytes).into_owned(),
        Encoding::Wbxml => bytes.iter().map(|b| format!("{b:02X} ")).collect(),
    }
}

/// `msg` as the XML encoding carries it: every Binary value that is not
/// under a binary Format gets Format `b64` on its Item's Meta (the builder's
/// rule for the effective Format: the Item's own, else its command's).
pub fn xml_form(msg: &SyncMl) -> SyncMl {
    let mut msg = msg.clone();
    label_commands(&mut msg.body.commands);
    msg
}

fn label_commands(commands: &mut [Command]) {
    for c in commands {
        match c {
            Command::Add(c)
            | Command::Copy(c)
            | Command::Delete(c)
            | Command::Get(c)
            | Command::Replace(c) => label_items(&mut c.items, c.meta.as_ref()),
            Command::Exec(c) => label_items(&mut c.items, c.meta.as_ref()),
            Command::Results(c) => label_items(&mut c.items, c.meta.as_ref()),
            Command::Alert(c) => label_items(&mut c.items, None),
            Command::Status(c) => label_items(&mut c.items, None),
            Command::Atomic(c) | Command::Sequence(c) => label_commands(&mut c.commands),
        }
    }
}

fn label_items(items: &mut [Item], cmd_meta: Option<&Meta>) {
    for item in items {
        let format = item
            .meta
            .as_ref()
            .and_then(|m| m.format.as_deref())
            .or_else(|| cmd_meta.and_then(|m| m.format.as_deref()));
        if matches!(item.data, Some(Data::Binary(_))) && !matches!(format, Some("b64" | "bin")) {
            item.meta.get_or_insert_with(Meta::default).format = Some("b64".to_owned());
        }
    }
}
