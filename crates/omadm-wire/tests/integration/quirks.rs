//! Tolerance vectors (`QUIRKS.md`): every variant deployed stacks send
//! decodes to the model of its clean twin, and our encoders still emit
//! clean DM 1.2.
//!
//! `tests/vectors/quirks/<name>.xml` or `<name>.wbxml` is the input as a
//! peer sends it; `<name>.clean.xml` is the intended message, written
//! exactly as our XML encoder writes it.

use omadm_wire::{Encoding, Limits, SyncMl};

use crate::support::{self, first_difference};

/// Each `QUIRKS.md` variant and the vector that covers it.
const COVERED: &[(&str, &str)] = &[
    ("xmlns in single quotes", "xml-single-quoted-xmlns.xml"),
    (
        "metinf declared once on Meta, or not at all",
        "xml-metinf-declared-once.xml",
    ),
    ("element names with a prefix", "xml-prefixed-names.xml"),
    ("namespaces in odd case", "xml-namespace-case.xml"),
    (
        "DOCTYPE, XML declaration, BOM, comments, PIs",
        "xml-prolog-doctype-bom.xml",
    ),
    ("CDATA", "xml-cdata.xml"),
    (
        "CDATA around a SCOMO payload (SCOMO.md §7.2)",
        "xml-cdata-scomo-payload.xml",
    ),
    ("entities and character references", "xml-entities.xml"),
    (
        "CR LF and CR line ends (read as LF, XML 1.0 §2.11)",
        "xml-crlf-line-ends.xml",
    ),
    (
        "Alert Correlator before Data",
        "alert-correlator-before-data.xml",
    ),
    (
        "Status Data before TargetRef/SourceRef, any order",
        "status-data-before-refs.xml",
    ),
    (
        "SyncHdr Status without CmdRef",
        "status-synchdr-without-cmdref.xml",
    ),
    ("duplicate CmdIDs", "duplicate-cmdids.xml"),
    ("Format in odd case (Chr)", "format-odd-case.xml"),
    (
        "<Final /> and other empty elements with a space",
        "empty-elements-with-space.xml",
    ),
    (
        "whitespace and newlines in Data and around elements",
        "whitespace-and-newlines.xml",
    ),
    ("a trailing NUL in Data", "data-trailing-nul.xml"),
    (
        "Generic Alert Format chr/text/plain/xml and test-tool variants",
        "generic-alert-variants.xml",
    ),
    ("SessionID in hex", "hex-session-id.xml"),
    ("MetInf wrapped in <MetInf>", "metinf-wrapper.xml"),
    ("WBXML version 0x03", "wbxml-version-1-3.wbxml"),
    ("WBXML version 0x01", "wbxml-version-1-1.wbxml"),
    ("public id 0x01 (unknown)", "wbxml-public-id-unknown.wbxml"),
    (
        "literal public id (02 00 00 6A 1E …)",
        "wbxml-literal-public-id.wbxml",
    ),
    ("charset 0 (unknown)", "wbxml-charset-unknown.wbxml"),
    (
        "Data as OPAQUE, also for text; trailing NUL in OPAQUE",
        "wbxml-opaque-data.wbxml",
    ),
    (
        "string-table references (STR_T)",
        "wbxml-string-table.wbxml",
    ),
    (
        "text split over STR_I, ENTITY and STR_T",
        "wbxml-split-text.wbxml",
    ),
    (
        "eager and redundant SWITCH_PAGE",
        "wbxml-eager-switch-page.wbxml",
    ),
    (
        "PI and attributes (ignored)",
        "wbxml-pi-and-attributes.wbxml",
    ),
];

struct Quirk {
    name: String,
    input: Vec<u8>,
    encoding: Encoding,
    clean: Vec<u8>,
}

fn quirks() -> Vec<Quirk> {
    let dir = support::vectors_dir().join("quirks");
    let mut out = Vec::new();
    for file in support::sorted_entries(&dir) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".clean.xml") {
            continue;
        }
        let encoding = match file.extension().and_then(|e| e.to_str()) {
            Some("xml") => Encoding::Xml,
            Some("wbxml") => Encoding::Wbxml,
            _ => panic!("quirks/{name}: not .xml or .wbxml"),
        };
        let clean = file.with_extension("clean.xml");
        assert!(clean.exists(), "quirks/{name} has no clean twin");
        out.push(Quirk {
            input: support::read(&file),
            clean: support::read(&clean),
            name,
            encoding,
        });
    }
    out
}

#[test]
fn every_listed_quirk_has_a_vector() {
    let names: Vec<String> = quirks().into_iter().map(|q| q.name).collect();
    for (what, file) in COVERED {
        assert!(names.iter().any(|n| n == file), "{what}: no quirks/{file}");
    }
    for n in &names {
        assert!(
            COVERED.iter().any(|(_, f)| f == n),
            "quirks/{n} is not listed in COVERED"
        );
    }
}

#[test]
fn quirks_decode_to_the_clean_model() {
    let limits = Limits::default();
    let mut failures = Vec::new();
    for q in quirks() {
        let clean: SyncMl = omadm_wire::decode_xml(&q.clean, &limits)
            .unwrap_or_else(|e| panic!("quirks/{}: clean twin: {e}", q.name));
        let decoded = match omadm_wire::decode(&q.input, q.encoding, &limits) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{}: rejected: {e}", q.name));
                continue;
            }
        };
        if decoded != clean {
            failures.push(format!(
                "{}: decodes to\n{decoded:#?}\nintended\n{clean:#?}",
                q.name
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn quirks_encode_clean() {
    let limits = Limits::default();
    for q in quirks() {
        let Ok(m) = omadm_wire::decode(&q.input, q.encoding, &limits) else {
            continue; // reported by quirks_decode_to_the_clean_model
        };
        let xml = omadm_wire::encode_xml(&m);
        let clean = q.clean.strip_suffix(b"\n").unwrap_or(&q.clean);
        assert!(
            xml == clean,
            "{}: our XML is not the clean twin: {}\n{}",
            q.name,
            first_difference(&xml, clean),
            String::from_utf8_lossy(&xml)
        );
        let clean_model = omadm_wire::decode_xml(clean, &limits).unwrap();
        let wbxml = omadm_wire::encode_wbxml(&m);
        assert_eq!(wbxml, omadm_wire::encode_wbxml(&clean_model), "{}", q.name);
        // Clean DM 1.2: version 1.2, public id 0x1201, UTF-8.
        assert_eq!(&wbxml[..4], [0x02, 0xA4, 0x01, 0x6A], "{}", q.name);
    }
}

/// `QUIRKS.md`: the DS content types of older clients select the encoding
/// like the DM ones.
#[test]
fn ds_content_types_are_accepted() {
    for (ct, enc) in [
        ("application/vnd.syncml.dm+xml", Encoding::Xml),
        ("application/vnd.syncml.dm+wbxml", Encoding::Wbxml),
        ("application/vnd.syncml+xml", Encoding::Xml),
        ("application/vnd.syncml+wbxml", Encoding::Wbxml),
        (
            "Application/Vnd.SyncML.DM+WBXML; charset=utf-8",
            Encoding::Wbxml,
        ),
    ] {
        assert_eq!(Encoding::from_content_type(ct), Some(enc), "{ct}");
    }
    assert_eq!(Encoding::from_content_type("text/xml"), None);
    // And our replies carry the DM types.
    assert_eq!(
        Encoding::Xml.content_type(),
        "application/vnd.syncml.dm+xml"
    );
    assert_eq!(
        Encoding::Wbxml.content_type(),
        "application/vnd.syncml.dm+wbxml"
    );
}

/// Sniffing picks the right decoder for every quirk input.
#[test]
fn sniffing_finds_the_encoding() {
    for q in quirks() {
        assert_eq!(Encoding::sniff(&q.input), Some(q.encoding), "{}", q.name);
    }
}
