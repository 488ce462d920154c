//! Malformed input: every case is a clear error — the right kind, a
//! plausible byte offset, a message that names the problem, and the
//! SyncML status the receiver answers with (400, or 413 for oversize).

use std::ops::RangeInclusive;

use omadm_wire::{DecodeError, DecodeErrorKind, Encoding, Limits, StatusCode};

use crate::support::{self, hex};

/// The expectation for one bad input.
struct Case<'a> {
    what: &'a str,
    input: Vec<u8>,
    encoding: Encoding,
    limits: Limits,
    /// The kind, checked by a predicate (kinds carry context fields).
    kind: fn(&DecodeErrorKind) -> bool,
    /// Where the problem is.
    offset: RangeInclusive<usize>,
    /// Words the message must contain.
    message: &'a [&'a str],
    status: StatusCode,
}

fn check(c: &Case<'_>) {
    let err: DecodeError = match omadm_wire::decode(&c.input, c.encoding, &c.limits) {
        Ok(m) => panic!("{}: decoded to {m:#?}", c.what),
        Err(e) => e,
    };
    let text = err.to_string();
    assert!(
        (c.kind)(err.kind()),
        "{}: unexpected kind {:?}",
        c.what,
        err.kind()
    );
    assert!(
        c.offset.contains(&err.offset()),
        "{}: offset {} not in {:?} ({text})",
        c.what,
        err.offset(),
        c.offset
    );
    assert!(
        err.offset() <= c.input.len(),
        "{}: offset beyond the input",
        c.what
    );
    for word in c.message {
        assert!(
            text.contains(word),
            "{}: {text:?} does not say {word:?}",
            c.what
        );
    }
    assert!(
        text.ends_with(&format!("(at byte {})", err.offset())),
        "{}: {text:?} does not give the offset",
        c.what
    );
    assert_eq!(err.status(), c.status, "{}: {text}", c.what);
}

fn pkg1_wbxml() -> Vec<u8> {
    support::read(&support::vectors_dir().join("spec/pkg1-client-init.wbxml"))
}

fn pkg1_xml() -> Vec<u8> {
    support::read(&support::vectors_dir().join("spec/pkg1-client-init.xml"))
}

/// A SyncML 1.2 WBXML message without string table around `body`.
fn wbxml(body: &str) -> Vec<u8> {
    [hex("02 A4 01 6A 00"), hex(body)].concat()
}

fn is_wbxml(k: &DecodeErrorKind) -> bool {
    matches!(k, DecodeErrorKind::Wbxml(_))
}

fn is_xml(k: &DecodeErrorKind) -> bool {
    matches!(k, DecodeErrorKind::Xml(_))
}

fn is_eof(k: &DecodeErrorKind) -> bool {
    matches!(k, DecodeErrorKind::UnexpectedEof(_))
}

fn is_not_syncml(k: &DecodeErrorKind) -> bool {
    matches!(k, DecodeErrorKind::NotSyncMl(_))
}

fn case<'a>(
    what: &'a str,
    encoding: Encoding,
    input: Vec<u8>,
    kind: fn(&DecodeErrorKind) -> bool,
    offset: RangeInclusive<usize>,
    message: &'a [&'a str],
) -> Case<'a> {
    Case {
        what,
        input,
        encoding,
        limits: Limits::default(),
        kind,
        offset,
        message,
        status: StatusCode::BAD_REQUEST,
    }
}

#[test]
fn truncated_wbxml_anywhere() {
    let full = pkg1_wbxml();
    for len in 0..full.len() {
        let input = &full[..len];
        let err = omadm_wire::decode_wbxml(input, &Limits::default())
            .expect_err("a truncated message must not decode");
        assert!(err.offset() <= len, "prefix {len}: offset {}", err.offset());
        assert_eq!(err.status(), StatusCode::BAD_REQUEST, "prefix {len}: {err}");
        let text = err.to_string();
        assert!(
            text.contains("end of input")
                || text.contains("input ends")
                || text.contains("no terminating NUL")
                || text.contains("no root element")
                || text.contains("empty input"),
            "prefix {len}: {text:?} does not say the input is cut short"
        );
    }
}

#[test]
fn truncated_wbxml_names_the_open_element() {
    let full = pkg1_wbxml();
    // Without the last END, the root is still open.
    check(&case(
        "missing final END",
        Encoding::Wbxml,
        full[..full.len() - 1].to_vec(),
        is_eof,
        full.len() - 1..=full.len() - 1,
        &["unexpected end of input", "<SyncML>"],
    ));
    // Cut right after `<SyncHdr>` (bytes 5, 6 are SyncML, SyncHdr).
    check(&case(
        "cut after <SyncHdr>",
        Encoding::Wbxml,
        full[..7].to_vec(),
        is_eof,
        7..=7,
        &["<SyncHdr>"],
    ));
    // Cut inside the STR_I of VerDTD.
    check(&case(
        "cut inside a string",
        Encoding::Wbxml,
        full[..10].to_vec(),
        is_wbxml,
        8..=10,
        &["STR_I", "no terminating NUL"],
    ));
}

#[test]
fn bad_mb_u_int32() {
    check(&case(
        "public id of six bytes",
        Encoding::Wbxml,
        hex("02 80 80 80 80 80 01 6A 00 6D 01"),
        is_wbxml,
        1..=1,
        &["public id", "mb_u_int32", "longer than 5 bytes"],
    ));
    check(&case(
        "OPAQUE length over 32 bits",
        Encoding::Wbxml,
        wbxml("6D 6B 46 4F C3 90 80 80 80 00 01 01 01 01"),
        is_wbxml,
        10..=10,
        &["OPAQUE length", "overflows 32 bits"],
    ));
    check(&case(
        "OPAQUE length past the end",
        Encoding::Wbxml,
        wbxml("6D 6B 46 4F C3 20 41 42 01 01 01 01"),
        is_wbxml,
        9..=9,
        &["OPAQUE length 32 runs past the end"],
    ));
    check(&case(
        "string table length past the end",
        Encoding::Wbxml,
        hex("02 A4 01 6A 8F FF FF FF 7F 6D 01"),
        is_wbxml,
        4..=4,
        &["string table length 4294967295"],
    ));
    check(&case(
        "input ends inside an mb_u_int32",
        Encoding::Wbxml,
        hex("02 A4 01 6A 00 6D 6B 46 4F C3 81"),
        is_wbxml,
        11..=11,
        &["OPAQUE length", "input ends inside an mb_u_int32"],
    ));
}

#[test]
fn unknown_tokens_and_pages() {
    // 0x70 = token 0x30 (reserved on page 0) with content.
    check(&case(
        "reserved token 0x30 on page 0",
        Encoding::Wbxml,
        wbxml("6D 6B 70 01 01 01"),
        is_wbxml,
        7..=7,
        &["unknown tag token 0x30 on code page 0"],
    ));
    check(&case(
        "undefined token 0x3F on page 1 (MetInf)",
        Encoding::Wbxml,
        wbxml("6D 6C 5A 00 01 7F 01 01 01 01"),
        is_wbxml,
        10..=10,
        &["unknown tag token 0x3F on code page 1", "syncml:metinf"],
    ));
    check(&case(
        "switch to page 5",
        Encoding::Wbxml,
        wbxml("6D 00 05 6B 01 01"),
        is_wbxml,
        6..=6,
        &["SWITCH_PAGE", "unknown tag code page 5"],
    ));
    for (what, token, offset) in [
        ("EXT_I_0", "40 41 00", 7),
        ("EXT_T_1", "81 00", 7),
        ("EXT_2", "C2", 7),
    ] {
        check(&case(
            what,
            Encoding::Wbxml,
            wbxml(&format!("6D 6B {token} 01 01")),
            is_wbxml,
            offset..=offset,
            &["extension token"],
        ));
    }
    check(&case(
        "STR_T beyond the string table",
        Encoding::Wbxml,
        wbxml("6D 6B 46 4F 83 05 01 01 01 01"),
        is_wbxml,
        10..=10,
        &["STR_T", "string table index 5 is beyond"],
    ));
    check(&case(
        "END with nothing open",
        Encoding::Wbxml,
        wbxml("01"),
        is_wbxml,
        5..=5,
        &["END with no open element"],
    ));
    check(&case(
        "trailing data after the root",
        Encoding::Wbxml,
        [pkg1_wbxml(), hex("6B 01")].concat(),
        is_wbxml,
        97..=97,
        &["trailing data after the root element"],
    ));
}

#[test]
fn bad_wbxml_headers() {
    check(&case(
        "empty input",
        Encoding::Wbxml,
        Vec::new(),
        is_wbxml,
        0..=0,
        &["empty input"],
    ));
    check(&case(
        "version 0x04",
        Encoding::Wbxml,
        hex("04 A4 01 6A 00 6D 01"),
        is_wbxml,
        0..=0,
        &["unsupported WBXML version 0x04"],
    ));
    check(&case(
        "charset Latin-1",
        Encoding::Wbxml,
        hex("02 A4 01 04 00 6D 01"),
        is_wbxml,
        3..=3,
        &["unsupported charset", "MIBenum 4"],
    ));
    check(&case(
        "WBXML whose root is not SyncML",
        Encoding::Wbxml,
        wbxml("12"),
        is_not_syncml,
        5..=7,
        &["not a SyncML message", "<Final>"],
    ));
}

#[test]
fn unterminated_and_malformed_xml() {
    let full = pkg1_xml();
    let end = full.len();
    let body_end = full
        .windows(9)
        .position(|w| w == b"</SyncML>")
        .expect("</SyncML>");
    check(&case(
        "no </SyncML>",
        Encoding::Xml,
        full[..body_end].to_vec(),
        is_eof,
        body_end..=body_end,
        &["unexpected end of input inside <SyncML>"],
    ));
    let cut = full.windows(6).position(|w| w == b"<Alert").unwrap() + 3;
    check(&case(
        "cut inside a start tag",
        Encoding::Xml,
        full[..cut].to_vec(),
        is_xml,
        cut - 3..=cut,
        &["malformed XML"],
    ));
    let mut mismatched = full.clone();
    let at = mismatched
        .windows(8)
        .position(|w| w == b"</Alert>")
        .unwrap();
    mismatched[at + 2..at + 7].copy_from_slice(b"Aleru");
    check(&case(
        "mismatched end tag",
        Encoding::Xml,
        mismatched,
        is_xml,
        at..=at + 8,
        &["malformed XML", "Aleru"],
    ));
    check(&case(
        "empty document",
        Encoding::Xml,
        Vec::new(),
        is_not_syncml,
        0..=0,
        &["the document is empty"],
    ));
    check(&case(
        "text after the root",
        Encoding::Xml,
        [&full[..], b"junk"].concat(),
        is_xml,
        end..=end + 4,
        &["text outside the root element"],
    ));
    check(&case(
        "undeclared prefix",
        Encoding::Xml,
        b"<x:SyncML><x:SyncHdr/></x:SyncML>".to_vec(),
        is_xml,
        0..=10,
        &["undeclared namespace prefix"],
    ));
    let mut latin1 = full.clone();
    let at = latin1.windows(6).position(|w| w == b"IMEI:1").unwrap();
    latin1[at] = 0xC9;
    check(&case(
        "bytes that are not UTF-8",
        Encoding::Xml,
        latin1,
        |k| matches!(k, DecodeErrorKind::Xml(_)),
        at - 8..=at + 16,
        &["malformed XML"],
    ));
}

#[test]
fn wrong_namespace() {
    let full = String::from_utf8(pkg1_xml()).unwrap();
    check(&case(
        "SyncML in a foreign namespace",
        Encoding::Xml,
        full.replace("SYNCML:SYNCML1.2", "urn:example:other")
            .into_bytes(),
        is_not_syncml,
        0..=45,
        &["not a SyncML message", "SYNCML:SYNCML1.2 namespace"],
    ));
    check(&case(
        "a root that is not SyncML",
        Encoding::Xml,
        b"<MgmtTree xmlns=\"syncml:dmddf1.2\"><VerDTD>1.2</VerDTD></MgmtTree>".to_vec(),
        is_not_syncml,
        0..=34,
        &["root element is <MgmtTree>"],
    ));
}

/// `n` nested Sequences inside SyncBody, as XML.
fn deep_xml(n: usize) -> Vec<u8> {
    let hdr = "<SyncML xmlns=\"SYNCML:SYNCML1.2\"><SyncHdr><VerDTD>1.2</VerDTD><VerProto>DM/1.2</VerProto>\
               <SessionID>1</SessionID><MsgID>1</MsgID><Target><LocURI>a</LocURI></Target>\
               <Source><LocURI>b</LocURI></Source></SyncHdr><SyncBody>";
    let mut s = hdr.to_owned();
    s.push_str(&"<Sequence><CmdID>1</CmdID>".repeat(n));
    s.push_str(&"</Sequence>".repeat(n));
    s.push_str("</SyncBody></SyncML>");
    s.into_bytes()
}

#[test]
fn over_deep_nesting() {
    let limit = Limits::DEFAULT_MAX_DEPTH;
    // SyncML, SyncBody and the innermost CmdID take three levels.
    let at_limit = deep_xml(limit - 3);
    let model = omadm_wire::decode_xml(&at_limit, &Limits::default()).expect("at the limit");
    let too_deep = deep_xml(limit - 2);
    let xml_err = omadm_wire::decode_xml(&too_deep, &Limits::default()).unwrap_err();
    // The same depth in WBXML, against a limit one lower.
    let wbxml = omadm_wire::encode_wbxml(&model);
    let tight = Limits {
        max_depth: limit - 1,
        ..Limits::default()
    };
    omadm_wire::decode_wbxml(&wbxml, &Limits::default()).expect("at the limit");
    let wbxml_err = omadm_wire::decode_wbxml(&wbxml, &tight).unwrap_err();
    // The offsets point at the innermost CmdID, the element one too deep.
    assert!(
        too_deep[..xml_err.offset()].ends_with(b"<CmdID>"),
        "XML: offset {}",
        xml_err.offset()
    );
    assert_eq!(
        wbxml[wbxml_err.offset()],
        0x4B,
        "WBXML: offset {}",
        wbxml_err.offset()
    );
    for (what, err) in [("XML", xml_err), ("WBXML", wbxml_err)] {
        assert!(
            matches!(err.kind(), DecodeErrorKind::TooDeep { .. }),
            "{what}: {err:?}"
        );
        assert!(
            err.to_string().contains("nest deeper than the limit"),
            "{what}: {err}"
        );
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    }
}

#[test]
fn oversize_message() {
    let small = Limits {
        max_message_size: 64,
        ..Limits::default()
    };
    for (encoding, input) in [(Encoding::Xml, pkg1_xml()), (Encoding::Wbxml, pkg1_wbxml())] {
        let err = omadm_wire::decode(&input, encoding, &small).unwrap_err();
        assert_eq!(
            *err.kind(),
            DecodeErrorKind::MessageTooLarge {
                size: input.len(),
                limit: 64
            }
        );
        assert_eq!(err.offset(), 0);
        assert_eq!(err.status(), StatusCode::REQUEST_ENTITY_TOO_LARGE);
        assert!(err.to_string().contains(&format!(
            "message of {} bytes exceeds the limit of 64 bytes",
            input.len()
        )));
    }
    // A single value over the string limit is also "too large".
    let short = Limits {
        max_string_len: 8,
        ..Limits::default()
    };
    for (encoding, input) in [(Encoding::Xml, pkg1_xml()), (Encoding::Wbxml, pkg1_wbxml())] {
        let err = omadm_wire::decode(&input, encoding, &short).unwrap_err();
        assert!(
            matches!(
                err.kind(),
                DecodeErrorKind::StringTooLong { len: 11, limit: 8 }
            ),
            "{encoding:?}: {err:?}"
        );
        assert_eq!(err.status(), StatusCode::REQUEST_ENTITY_TOO_LARGE);
        assert!(err
            .to_string()
            .contains("a value of 11 bytes exceeds the limit of 8 bytes"));
    }
    // Too many elements is a bad request, not an oversize one.
    let few = Limits {
        max_elements: 10,
        ..Limits::default()
    };
    for (encoding, input) in [(Encoding::Xml, pkg1_xml()), (Encoding::Wbxml, pkg1_wbxml())] {
        let err = omadm_wire::decode(&input, encoding, &few).unwrap_err();
        assert_eq!(*err.kind(), DecodeErrorKind::TooManyElements { limit: 10 });
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert!(err.to_string().contains("more than 10 elements"));
    }
}

#[test]
fn missing_and_invalid_values() {
    let full = String::from_utf8(pkg1_xml()).unwrap();
    let cases: &[(&str, String, &str)] = &[
        (
            "SyncHdr without MsgID",
            full.replace("<MsgID>1</MsgID>", ""),
            "<SyncHdr> is missing <MsgID>",
        ),
        (
            "Alert without CmdID",
            full.replace("<CmdID>1</CmdID>", ""),
            "<Alert> is missing <CmdID>",
        ),
        (
            "no SyncBody",
            full.replace(
                "<SyncBody><Alert><CmdID>1</CmdID><Data>1201</Data></Alert><Final/></SyncBody>",
                "",
            ),
            "<SyncML> is missing <SyncBody>",
        ),
        (
            "MsgID not a number",
            full.replace("<MsgID>1</MsgID>", "<MsgID>one</MsgID>"),
            "<MsgID> holds \"one\", expected a decimal number",
        ),
        (
            "alert code out of range",
            full.replace("<Data>1201</Data>", "<Data>99999</Data>"),
            "<Data> holds \"99999\", expected a decimal number",
        ),
        (
            "MaxMsgSize negative",
            full.replace(">8192<", ">-1<"),
            "<MaxMsgSize> holds \"-1\"",
        ),
    ];
    for (what, xml, message) in cases {
        let err = omadm_wire::decode_xml(xml.as_bytes(), &Limits::default()).unwrap_err();
        assert!(
            matches!(
                err.kind(),
                DecodeErrorKind::Missing { .. } | DecodeErrorKind::InvalidValue { .. }
            ),
            "{what}: {err:?}"
        );
        assert!(err.to_string().contains(message), "{what}: {err}");
        assert!(
            err.offset() > 0 && err.offset() <= xml.len(),
            "{what}: {err}"
        );
        assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{what}");
    }
}

/// A nested TNDS document (`WBXML.md` §6) that is itself malformed: the
/// error says so and points into the outer message.
#[test]
fn malformed_nested_tnds_document() {
    let doc = hex(r#"02 00 00 6A 1B "-//OMA//DTD-DM-DDF 1.2//EN" 00 00 02 60 7F 01 01"#);
    let outer = [
        hex("02 A4 01 6A 00 6D 6B 45 4B 03 31 00 01 54 4F C3"),
        vec![u8::try_from(doc.len()).unwrap()],
        doc.clone(),
        hex("01 01 01 01 01"),
    ]
    .concat();
    let doc_at = 17;
    assert_eq!(&outer[doc_at..doc_at + doc.len()], &doc[..]);
    check(&case(
        "unknown token in a nested TNDS document",
        Encoding::Wbxml,
        outer,
        is_wbxml,
        doc_at + 35..=doc_at + 35,
        &[
            "nested TNDS document",
            "unknown tag token 0x3F on code page 2",
        ],
    ));
}
