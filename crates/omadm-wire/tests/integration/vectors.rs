//! The vector corpus: every `tests/vectors/<area>/<name>.xml` decodes, its
//! `.wbxml` twin is exactly what our encoder makes of it and decodes to the
//! same model, both encodings round-trip, and the corpus as a whole covers
//! every element and command DM uses.
//!
//! `SCOMO_BLESS=1 cargo test -p omadm-wire --test integration vectors`
//! rewrites the twins (see `tests/vectors/README.md`).

use omadm_wire::model::{Command, Data, Item};
use omadm_wire::{Limits, SyncMl};

use crate::support::{self, first_difference, Vector};
use crate::tree;

/// The issue asks for at least 40 vector messages.
const MIN_VECTORS: usize = 40;

#[test]
fn corpus_has_at_least_40_vectors() {
    let n = support::vectors().len();
    assert!(
        n >= MIN_VECTORS,
        "{n} vectors, at least {MIN_VECTORS} wanted"
    );
}

#[test]
fn every_twin_is_our_encoding() {
    let mut failures = Vec::new();
    for v in support::vectors() {
        let expected = omadm_wire::encode_wbxml(&v.model());
        let actual = std::fs::read(&v.wbxml_path).ok();
        if actual.as_deref() == Some(&expected[..]) {
            continue;
        }
        if support::bless() {
            std::fs::write(&v.wbxml_path, &expected).unwrap();
            eprintln!("blessed {}", v.wbxml_path.display());
            continue;
        }
        failures.push(match actual {
            None => format!("{}: no .wbxml twin", v.name),
            Some(actual) => format!("{}: {}", v.name, first_difference(&actual, &expected)),
        });
    }
    assert!(
        failures.is_empty(),
        "twins differ from our encoder (rerun with SCOMO_BLESS=1 if the change is intended):\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_twin_has_its_xml() {
    let dir = support::vectors_dir();
    for area in support::sorted_entries(&dir) {
        if !area.is_dir() {
            continue;
        }
        for file in support::sorted_entries(&area) {
            if file.extension().is_some_and(|e| e == "wbxml") {
                let quirk = area.ends_with("quirks");
                let clean = file.with_extension("xml");
                let twin = file.with_extension("clean.xml");
                assert!(
                    clean.exists() || (quirk && twin.exists()),
                    "{} has no XML counterpart",
                    file.display()
                );
            }
        }
    }
}

#[test]
fn twins_decode_to_the_same_model() {
    for v in support::vectors() {
        let from_wbxml = omadm_wire::decode_wbxml(&v.wbxml(), &Limits::default())
            .unwrap_or_else(|e| panic!("{}: twin does not decode: {e}", v.name));
        assert_eq!(from_wbxml, v.model(), "{}", v.name);
    }
}

#[test]
fn every_vector_round_trips() {
    for v in support::vectors() {
        round_trips(&v.name, &v.model());
    }
}

/// decode ∘ encode is the identity in both encodings and in the pretty XML
/// form, and encoding is canonical (encode ∘ decode ∘ encode = encode).
pub(crate) fn round_trips(name: &str, m: &SyncMl) {
    let limits = Limits::default();
    let xml = omadm_wire::encode_xml(m);
    let again = omadm_wire::decode_xml(&xml, &limits)
        .unwrap_or_else(|e| panic!("{name}: our XML does not decode: {e}"));
    assert_eq!(&again, m, "{name}: model → XML → model");
    assert_eq!(
        omadm_wire::encode_xml(&again),
        xml,
        "{name}: XML encoding is not canonical"
    );

    let wbxml = omadm_wire::encode_wbxml(m);
    let again = omadm_wire::decode_wbxml(&wbxml, &limits)
        .unwrap_or_else(|e| panic!("{name}: our WBXML does not decode: {e}"));
    assert_eq!(&again, m, "{name}: model → WBXML → model");
    assert_eq!(
        omadm_wire::encode_wbxml(&again),
        wbxml,
        "{name}: WBXML encoding is not canonical"
    );

    let pretty = omadm_wire::encode_xml_pretty(m);
    let again = omadm_wire::decode_xml(pretty.as_bytes(), &limits)
        .unwrap_or_else(|e| panic!("{name}: our pretty XML does not decode: {e}"));
    assert_eq!(&again, m, "{name}: model → pretty XML → model");
}

/// Every element and command the issue lists, each in at least one vector.
#[test]
fn corpus_covers_every_element() {
    const REQUIRED: &[&str] = &[
        // SyncHdr
        "SyncML",
        "SyncHdr",
        "VerDTD",
        "VerProto",
        "SessionID",
        "MsgID",
        "Target",
        "Source",
        "LocURI",
        "LocName",
        "RespURI",
        "NoResp",
        "Cred",
        "Meta",
        // SyncBody and the commands
        "SyncBody",
        "Add",
        "Alert",
        "Atomic",
        "Copy",
        "Delete",
        "Exec",
        "Get",
        "Replace",
        "Sequence",
        "Status",
        "Results",
        "Final",
        // Item and the rest
        "Item",
        "SourceParent",
        "TargetParent",
        "Data",
        "MoreData",
        "Chal",
        "Correlator",
        "CmdID",
        "CmdRef",
        "MsgRef",
        "TargetRef",
        "SourceRef",
        "Cmd",
        // MetInf
        "Format",
        "Type",
        "Size",
        "NextNonce",
        "MaxMsgSize",
        "MaxObjSize",
        "Mark",
        "EMI",
        "Version",
        "FieldLevel",
        // Nested payloads: TNDS and the SCOMO alert
        "MgmtTree",
        "Node",
        "NodeName",
        "RTProperties",
        "Value",
        "ResultCode",
        "Identifier",
    ];
    let mut seen = Vec::new();
    for v in support::vectors() {
        let doc = tree::parse(&v.xml()).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        doc.names(&mut seen);
    }
    let missing: Vec<_> = REQUIRED
        .iter()
        .filter(|r| !seen.iter().any(|s| s == *r))
        .collect();
    assert!(missing.is_empty(), "no vector has {missing:?}");
}

/// The situations the issue names, found in the decoded models.
#[test]
fn corpus_covers_every_situation() {
    let mut found = Features::default();
    for v in support::vectors() {
        found.message(&v);
    }
    let Features {
        atomic_in_sequence,
        sequence_in_sequence,
        more_data,
        chal_next_nonce,
        cred,
        generic_alert_xml,
        tnds,
        binary_bin,
        binary_b64,
        alert_correlator,
        exec_correlator,
    } = found;
    for (what, ok) in [
        ("Atomic inside Sequence", atomic_in_sequence),
        ("Sequence inside Sequence", sequence_in_sequence),
        ("a Large Object chunk (MoreData)", more_data),
        ("a Chal with NextNonce", chal_next_nonce),
        ("Cred", cred),
        ("a Generic Alert with nested XML Data", generic_alert_xml),
        ("TNDS in Data", tnds),
        ("Format bin data", binary_bin),
        ("Format b64 data", binary_b64),
        ("an Alert with Correlator", alert_correlator),
        ("an Exec with Correlator", exec_correlator),
    ] {
        assert!(ok, "no vector has {what}");
    }
}

#[derive(Default)]
struct Features {
    atomic_in_sequence: bool,
    sequence_in_sequence: bool,
    more_data: bool,
    chal_next_nonce: bool,
    cred: bool,
    generic_alert_xml: bool,
    tnds: bool,
    binary_bin: bool,
    binary_b64: bool,
    alert_correlator: bool,
    exec_correlator: bool,
}

impl Features {
    fn message(&mut self, v: &Vector) {
        let m = v.model();
        self.cred |= m.header.cred.is_some();
        self.commands(&m.body.commands, None);
    }

    fn commands(&mut self, commands: &[Command], parent: Option<&str>) {
        for c in commands {
            match c {
                Command::Atomic(a) => {
                    self.atomic_in_sequence |= parent == Some("Sequence");
                    self.commands(&a.commands, Some("Atomic"));
                }
                Command::Sequence(s) => {
                    self.sequence_in_sequence |= parent == Some("Sequence");
                    self.commands(&s.commands, Some("Sequence"));
                }
                Command::Alert(a) => {
                    self.alert_correlator |= a.correlator.is_some();
                    if a.data.map(|d| d.0) == Some(1226) {
                        self.generic_alert_xml |=
                            a.items.iter().any(|i| matches!(i.data, Some(Data::Xml(_))));
                    }
                    self.items(&a.items, None);
                }
                Command::Exec(e) => {
                    self.exec_correlator |= e.correlator.is_some();
                    self.items(&e.items, e.meta.as_ref().and_then(|m| m.format.as_deref()));
                }
                Command::Status(s) => {
                    self.chal_next_nonce |=
                        s.chal.as_ref().is_some_and(|c| c.meta.next_nonce.is_some());
                }
                Command::Results(r) => {
                    self.items(&r.items, r.meta.as_ref().and_then(|m| m.format.as_deref()));
                }
                Command::Add(c)
                | Command::Copy(c)
                | Command::Delete(c)
                | Command::Get(c)
                | Command::Replace(c) => {
                    self.items(&c.items, c.meta.as_ref().and_then(|m| m.format.as_deref()));
                }
            }
        }
    }

    fn items(&mut self, items: &[Item], cmd_format: Option<&str>) {
        for i in items {
            self.more_data |= i.more_data;
            let format = i
                .meta
                .as_ref()
                .and_then(|m| m.format.as_deref())
                .or(cmd_format);
            match &i.data {
                Some(Data::Xml(x)) if x.starts_with("<MgmtTree") => self.tnds = true,
                Some(Data::Binary(_)) if format == Some("bin") => self.binary_bin = true,
                Some(Data::Binary(_)) if format == Some("b64") => self.binary_b64 = true,
                _ => {}
            }
        }
    }
}
