//! The byte examples of `WBXML.md`, reproduced byte for byte by our encoder
//! and read back by our decoder.

use omadm_wire::event::EventReader;
use omadm_wire::wbxml::{read_mb_u_int32, write_mb_u_int32};
use omadm_wire::{Limits, PublicId, WbxmlReader};

use crate::support::{self, first_difference, hex};

/// `WBXML.md` §7.1, "Raw".
const PKG1_7_1: &str =
    "02 A4 01 6A 00 6D 6C 71 03 31 2E 32 00 01 72 03 44 4D 2F 31 2E 32 00 01 65 03 31
    00 01 5B 03 31 00 01 6E 57 03 68 74 74 70 3A 2F 2F 73 2F 64 6D 00 01 01 67 57 03 49
    4D 45 49 3A 31 00 01 01 5A 00 01 4C 03 38 31 39 32 00 01 01 01 00 00 6B 46 4B 03 31
    00 01 4F 03 31 32 30 31 00 01 01 12 01 01";

/// `WBXML.md` §7.2: the SyncBody of an Exec with Correlator.
const EXEC_7_2: &str = r#"6B 51 4B 03 "3" 00 01 7C 03 "c1" 00 01 54 6E 57 03
    "./SCOMO/Download/p/Operations/Download" 00 01 01 01 01 12 01 01"#;

/// `WBXML.md` §7.3: a TNDS document, literal public id, code page 2.
const TNDS_7_3: &str = r#"02 00 00 6A 1B "-//OMA//DTD-DM-DDF 1.2//EN" 00
    00 02
    60 77 03 "1.2" 00 01
    64 66 03 "A" 00 01
    6F 5C 0B 01 01
    76 03 "x" 00 01
    01 01"#;

fn vector(name: &str) -> support::Vector {
    support::vectors()
        .into_iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no vector {name}"))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn mb_u_int32_examples_of_section_1() {
    for (value, bytes) in [
        (0, "00"),
        (106, "6A"),
        (200, "81 48"),
        (0x0FD3, "9F 53"),
        (0x1201, "A4 01"),
        (16384, "81 80 00"),
    ] {
        let bytes = hex(bytes);
        let mut out = Vec::new();
        write_mb_u_int32(&mut out, value);
        assert_eq!(out, bytes, "{value}");
        assert_eq!(read_mb_u_int32(&bytes, 0).unwrap(), (value, bytes.len()));
    }
}

#[test]
fn package_1_of_section_7_1() {
    let v = vector("spec/pkg1-client-init.xml");
    let expected = hex(PKG1_7_1);
    let ours = omadm_wire::encode_wbxml(&v.model());
    assert!(ours == expected, "{}", first_difference(&ours, &expected));
    // The decoder reads the example to the same message, and our XML of it
    // is the example's XML (which the vector holds in compact form).
    let decoded = omadm_wire::decode_wbxml(&expected, &Limits::default()).unwrap();
    assert_eq!(decoded, v.model());
    let xml = omadm_wire::encode_xml(&decoded);
    assert_eq!(
        String::from_utf8(xml).unwrap(),
        String::from_utf8(v.xml()).unwrap().trim_end()
    );
}

#[test]
fn exec_with_correlator_of_section_7_2() {
    let v = vector("spec/exec-correlator.xml");
    let ours = omadm_wire::encode_wbxml(&v.model());
    let body = hex(EXEC_7_2);
    assert!(
        ours.ends_with(&body),
        "the SyncBody is not the bytes of §7.2: {}",
        first_difference(&ours[ours.len().saturating_sub(body.len())..], &body)
    );
}

#[test]
fn tnds_document_of_section_7_3() {
    let doc = hex(TNDS_7_3);
    let reader = WbxmlReader::new(&doc, &Limits::default()).unwrap();
    assert_eq!(reader.public_id(), PublicId::dm_ddf_1_2());

    // Inside a message the TNDS object is that very document in OPAQUE
    // (`WBXML.md` §6): Data, OPAQUE, length, the document, END.
    let v = vector("spec/tnds-object.xml");
    let ours = omadm_wire::encode_wbxml(&v.model());
    let mut expected = vec![0x4F, 0xC3];
    write_mb_u_int32(&mut expected, u32::try_from(doc.len()).unwrap());
    expected.extend_from_slice(&doc);
    expected.push(0x01);
    assert!(
        contains(&ours, &expected),
        "no Data OPAQUE holding the §7.3 document in\n{}",
        support::to_hex(&ours)
    );
    // And the Meta Type says what the OPAQUE holds (libwbxml's rewrite).
    assert!(contains(
        &ours,
        &hex(r#"53 03 "application/vnd.syncml.dmtnds+wbxml" 00 01"#)
    ));
}

#[test]
fn standalone_tnds_document_reads_as_events() {
    let doc = hex(TNDS_7_3);
    let mut reader = WbxmlReader::new(&doc, &Limits::default()).unwrap();
    let mut names = Vec::new();
    loop {
        match reader.next_event().unwrap() {
            omadm_wire::event::Event::Start(t) => names.push(t.name()),
            omadm_wire::event::Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(
        names,
        [
            "MgmtTree",
            "VerDTD",
            "Node",
            "NodeName",
            "RTProperties",
            "Format",
            "chr",
            "Value"
        ]
    );
}

/// §5: MetInf on page 1 inside a page-0 Meta, switched lazily.
#[test]
fn metinf_embedding_of_section_5() {
    let v = vector("auth/md5-cred.xml");
    let ours = omadm_wire::encode_wbxml(&v.model());
    let cred = hex(
        r#"4E 5A 00 01 47 03 "b64" 00 01 53 03 "syncml:auth-md5" 00 01 01
           00 00 4F 03 "Zz6EivR3yeaaENcRN6lpAQ==" 00 01 01"#,
    );
    assert!(contains(&ours, &cred), "{}", support::to_hex(&ours));
}

/// §2 and §6: empty elements are bare tokens; Format bin data is OPAQUE.
#[test]
fn empty_elements_and_opaque_of_sections_2_and_6() {
    let ours = omadm_wire::encode_wbxml(&vector("commands/add-interior-node.xml").model());
    assert!(contains(
        &ours,
        &hex(r#"5A 00 01 47 03 "node" 00 01 01 00 00 0F 01"#)
    ));

    let ours = omadm_wire::encode_wbxml(&vector("large-object/chunk-bin.xml").model());
    assert!(contains(
        &ours,
        &hex("4F C3 0C 00 01 FF 80 41 42 7F 10 C3 A9 20 0A 01 34 01")
    ));

    let ours = omadm_wire::encode_wbxml(&vector("commands/metinf-all.xml").model());
    assert!(
        contains(&ours, &hex(r#"46 03 "vendor-ext-2" 00 01 16 01"#)),
        "FieldLevel is the bare token 16"
    );
}
