//! Property tests over the whole model: model → XML → model,
//! model → WBXML → model, model → pretty XML → model, and
//! XML → WBXML → XML byte for byte.
//!
//! The strategies generate what the codecs can carry and what a decoder
//! gives back, so the properties are identities:
//! * values the decoder trims (LocURI, SessionID, Cmd, Type, ...) are
//!   generated without leading or trailing whitespace; Data and EMI keep
//!   theirs;
//! * text never holds NUL or other C0 controls but TAB, LF and CR (XML 1.0
//!   cannot carry them);
//! * `Data::Binary` only where the effective Meta Format is `b64` or `bin`
//!   (elsewhere bytes are text), `Data::Text` only where it is not (there
//!   the text would be read as base64);
//! * `Data::Xml` is a canonical fragment, as the decoder writes it: no
//!   whitespace between elements, `xmlns` only where the code page
//!   changes, `& < >` and CR escaped, empty elements as `<x/>`;
//! * Format values are lower case (the decoder lower-cases known names).

use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};

use omadm_wire::model::{
    Alert, Chal, Command, Container, Cred, Data, Exec, Item, ItemCommand, Location, Meta, Results,
    Status, SyncBody, SyncHdr, SyncMl,
};
use omadm_wire::{AlertCode, Limits, StatusCode};

/// A value that decoders keep as is: no surrounding whitespace.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => "[A-Za-z0-9./:?=&+_-]{1,12}",
        1 => "[A-Za-z0-9][A-Za-z0-9 ./<>&'\"é日-]{0,10}[A-Za-z0-9>'\"]",
        1 => Just(String::new()),
    ]
}

/// Free text, as Data carries it: surrounding whitespace, newlines, CR,
/// markup characters, and strings that look like markup or escapes.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[ -~]{0,16}",
        4 => "[ \t\r\na-z<>&'\"é€日]{0,16}",
        1 => prop::sample::select(vec![
            " \n ",
            "]]>",
            "<![CDATA[x]]>",
            "&#13;&amp;",
            "<ResultCode>1200</ResultCode>",
            "\u{FEFF}bom",
            "\u{2028}\u{85}",
            "\u{10FFFF}",
            "a\r\nb\rc",
            "application/vnd.syncml.dmtnds+xml",
        ])
        .prop_map(str::to_owned),
    ]
}

/// A Meta Type: MIME types, auth and alert types, the TNDS type (which our
/// WBXML writes as `…+wbxml`). `…dmtnds+wbxml` itself is left out: the
/// decoder maps it to `…+xml`, the model's spelling.
fn meta_type() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => token(),
        1 => prop::sample::select(vec![
            "application/vnd.syncml.dmtnds+xml",
            "text/plain",
            "syncml:auth-md5",
            "urn:oma:at:scomo:1.0:OperationComplete",
            "Reversed-Domain-Name: org.example.alert",
        ])
        .prop_map(str::to_owned),
    ]
}

fn opt<T: std::fmt::Debug + Clone>(
    s: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<T>> {
    prop::option::weighted(0.3, s)
}

fn location() -> impl Strategy<Value = Location> {
    (token(), opt(token())).prop_map(|(loc_uri, loc_name)| Location { loc_uri, loc_name })
}

fn format() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "chr",
        "int",
        "bool",
        "node",
        "null",
        "xml",
        "date",
        "time",
        "float",
        "b64",
        "bin",
        "text/plain",
    ])
    .prop_map(str::to_owned)
}

fn meta() -> impl Strategy<Value = Meta> {
    (
        (
            opt(format()),
            opt(meta_type()),
            opt(token()),
            opt(any::<u64>()),
        ),
        (
            opt(token()),
            opt(token()),
            opt(any::<u64>()),
            opt(any::<u64>()),
        ),
        (prop::collection::vec(text(), 0..3), any::<bool>()),
    )
        .prop_map(
            |(
                (format, r#type, mark, size),
                (next_nonce, version, max_msg_size, max_obj_size),
                (emi, field_level),
            )| Meta {
                format,
                r#type,
                mark,
                size,
                next_nonce,
                version,
                max_msg_size,
                max_obj_size,
                emi,
                field_level,
            },
        )
}

fn cred() -> impl Strategy<Value = Cred> {
    (opt(meta()), token()).prop_map(|(meta, data)| Cred { meta, data })
}

/// Escapes text as the canonical fragment does.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\r', "&#13;")
}

/// Element text in a fragment: not empty, and not only whitespace next to
/// child elements (that would be indentation).
fn leaf_text() -> impl Strategy<Value = String> {
    "[ a-zA-Z0-9&<>'\"é/.=-]{0,10}".prop_map(|s| escape(&s))
}

/// A canonical TNDS tree (`DM-PROTOCOL.md` §12.5).
fn tnds() -> impl Strategy<Value = String> {
    let node = (
        "[A-Za-z0-9]{1,8}",
        prop::sample::select(vec!["chr", "int", "node", "bool", "b64", "null"]),
        opt(leaf_text()),
        opt(leaf_text()),
        opt("[a-z]{1,6}"),
    )
        .prop_map(|(name, fmt, acl, value, path)| {
            let mut s = format!("<Node><NodeName>{name}</NodeName>");
            if let Some(p) = path {
                s.push_str(&format!("<Path>./{p}</Path>"));
            }
            s.push_str(&format!("<RTProperties><Format><{fmt}/></Format>"));
            match acl {
                Some(a) if a.is_empty() => s.push_str("<ACL/>"),
                Some(a) => s.push_str(&format!("<ACL>{a}</ACL>")),
                None => {}
            }
            s.push_str("<Type><MIME>text/plain</MIME></Type></RTProperties>");
            match value {
                Some(v) if v.is_empty() => s.push_str("<Value/>"),
                Some(v) => s.push_str(&format!("<Value>{v}</Value>")),
                None => {}
            }
            s.push_str("</Node>");
            s
        });
    prop::collection::vec(node, 0..4).prop_map(|nodes| {
        format!(
            "<MgmtTree xmlns=\"syncml:dmddf1.2\"><VerDTD>1.2</VerDTD>{}</MgmtTree>",
            nodes.concat()
        )
    })
}

/// A SCOMO alert payload (`SCOMO.md` §7.2), or other unknown elements.
fn payload() -> impl Strategy<Value = String> {
    let unknown = prop::collection::vec(
        (
            prop::sample::select(vec!["ResultCode", "Identifier", "Extra", "x-vendor.Info"]),
            leaf_text(),
        ),
        1..4,
    )
    .prop_map(|els| {
        els.into_iter()
            .map(|(n, t)| {
                if t.is_empty() {
                    format!("<{n}/>")
                } else {
                    format!("<{n}>{t}</{n}>")
                }
            })
            .collect::<String>()
    })
    .boxed();
    prop_oneof![
        ("1[2-5][0-9][0-9]", "[a-z.]{1,12}").prop_map(|(code, id)| format!(
            "<ResultCode>{code}</ResultCode><Identifier>{id}</Identifier>"
        )),
        unknown.clone(),
        // Unknown elements nested in each other, and a known MetInf one.
        (unknown, leaf_text()).prop_map(|(inner, t)| format!(
            "<Outer>{inner}</Outer><Type xmlns=\"syncml:metinf\">{t}x</Type>"
        )),
    ]
}

/// Data as the decoder gives it back under the effective `format`.
fn data(format: Option<String>) -> BoxedStrategy<Data> {
    let markup = prop_oneof![tnds(), payload()].prop_map(Data::Xml);
    if matches!(format.as_deref(), Some("b64" | "bin")) {
        prop_oneof![
            4 => prop::collection::vec(any::<u8>(), 0..24).prop_map(Data::Binary),
            1 => markup,
        ]
        .boxed()
    } else {
        prop_oneof![4 => text().prop_map(Data::Text), 1 => markup].boxed()
    }
}

fn item(cmd_format: Option<String>) -> impl Strategy<Value = Item> {
    (
        (opt(location()), opt(location()), opt(token()), opt(token())),
        opt(meta()),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_flat_map(
            move |((target, source, source_parent, target_parent), meta, has_data, more_data)| {
                let format = meta
                    .as_ref()
                    .and_then(|m| m.format.clone())
                    .or_else(|| cmd_format.clone());
                let data = if has_data {
                    data(format).prop_map(Some).boxed()
                } else {
                    Just(None).boxed()
                };
                data.prop_map(move |data| Item {
                    target: target.clone(),
                    source: source.clone(),
                    source_parent: source_parent.clone(),
                    target_parent: target_parent.clone(),
                    meta: meta.clone(),
                    data,
                    more_data,
                })
            },
        )
}

/// Items whose effective format comes from `cmd_meta` where they have none.
fn items(cmd_meta: Option<&Meta>) -> impl Strategy<Value = Vec<Item>> {
    let format = cmd_meta.and_then(|m| m.format.clone());
    prop::collection::vec(item(format), 0..3)
}

fn item_command() -> impl Strategy<Value = ItemCommand> {
    (
        (any::<u32>(), any::<bool>(), any::<bool>(), any::<bool>()),
        (opt(token()), opt(cred()), opt(meta())),
    )
        .prop_flat_map(
            |((cmd_id, no_resp, archive, sft_del), (lang, cred, meta))| {
                items(meta.as_ref()).prop_map(move |items| ItemCommand {
                    cmd_id,
                    no_resp,
                    archive,
                    sft_del,
                    lang: lang.clone(),
                    cred: cred.clone(),
                    meta: meta.clone(),
                    items,
                })
            },
        )
}

fn alert() -> impl Strategy<Value = Alert> {
    (
        any::<u32>(),
        any::<bool>(),
        opt(cred()),
        opt(any::<u16>()),
        opt(token()),
        items(None),
    )
        .prop_map(|(cmd_id, no_resp, cred, data, correlator, items)| Alert {
            cmd_id,
            no_resp,
            cred,
            data: data.map(AlertCode),
            correlator,
            items,
        })
}

fn exec() -> impl Strategy<Value = Exec> {
    (
        any::<u32>(),
        any::<bool>(),
        opt(cred()),
        opt(meta()),
        opt(token()),
    )
        .prop_flat_map(|(cmd_id, no_resp, cred, meta, correlator)| {
            items(meta.as_ref()).prop_map(move |items| Exec {
                cmd_id,
                no_resp,
                cred: cred.clone(),
                meta: meta.clone(),
                correlator: correlator.clone(),
                items,
            })
        })
}

fn status() -> impl Strategy<Value = Status> {
    (
        (any::<u32>(), opt(any::<u32>()), any::<u32>(), token()),
        (
            prop::collection::vec(token(), 0..3),
            prop::collection::vec(token(), 0..3),
        ),
        (opt(cred()), opt(meta()), any::<u16>(), items(None)),
    )
        .prop_map(
            |(
                (cmd_id, msg_ref, cmd_ref, cmd),
                (target_refs, source_refs),
                (cred, chal, data, items),
            )| {
                Status {
                    cmd_id,
                    msg_ref,
                    cmd_ref,
                    cmd,
                    target_refs,
                    source_refs,
                    cred,
                    chal: chal.map(|meta| Chal { meta }),
                    data: StatusCode(data),
                    items,
                }
            },
        )
}

fn results() -> impl Strategy<Value = Results> {
    (
        (any::<u32>(), opt(any::<u32>()), any::<u32>()),
        (opt(meta()), opt(token()), opt(token())),
    )
        .prop_flat_map(
            |((cmd_id, msg_ref, cmd_ref), (meta, target_ref, source_ref))| {
                items(meta.as_ref()).prop_map(move |items| Results {
                    cmd_id,
                    msg_ref,
                    cmd_ref,
                    meta: meta.clone(),
                    target_ref: target_ref.clone(),
                    source_ref: source_ref.clone(),
                    items,
                })
            },
        )
}

/// Any command, Atomic and Sequence nesting up to three deep.
fn command() -> impl Strategy<Value = Command> {
    let leaf = prop_oneof![
        item_command().prop_map(Command::Add),
        item_command().prop_map(Command::Copy),
        item_command().prop_map(Command::Delete),
        item_command().prop_map(Command::Get),
        item_command().prop_map(Command::Replace),
        alert().prop_map(Command::Alert),
        exec().prop_map(Command::Exec),
        status().prop_map(Command::Status),
        results().prop_map(Command::Results),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        let container = (
            any::<u32>(),
            any::<bool>(),
            opt(meta()),
            prop::collection::vec(inner, 0..4),
        )
            .prop_map(|(cmd_id, no_resp, meta, commands)| Container {
                cmd_id,
                no_resp,
                meta,
                commands,
            })
            .boxed();
        prop_oneof![
            container.clone().prop_map(Command::Atomic),
            container.prop_map(Command::Sequence),
        ]
    })
}

fn message() -> impl Strategy<Value = SyncMl> {
    (
        (token(), token(), token(), any::<u32>()),
        (location(), location(), opt(token()), any::<bool>()),
        (opt(cred()), opt(meta())),
        (prop::collection::vec(command(), 0..5), any::<bool>()),
    )
        .prop_map(
            |(
                (ver_dtd, ver_proto, session_id, msg_id),
                (target, source, resp_uri, no_resp),
                (cred, meta),
                (commands, is_final),
            )| SyncMl {
                header: SyncHdr {
                    ver_dtd,
                    ver_proto,
                    session_id,
                    msg_id,
                    target,
                    source,
                    resp_uri,
                    no_resp,
                    cred,
                    meta,
                },
                body: SyncBody { commands, is_final },
            },
        )
}

/// Runs a property over [`message`] on a thread with a large stack: the
/// nested strategies and value trees recurse deeply in debug builds.
fn check(property: fn(&SyncMl) -> Result<(), TestCaseError>) {
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || {
            // PROPTEST_CASES=… runs more (a longer hunt); CI runs 256.
            let cases = std::env::var("PROPTEST_CASES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(256);
            let config = ProptestConfig {
                cases,
                failure_persistence: None,
                ..ProptestConfig::default()
            };
            let mut runner = TestRunner::new(config);
            if let Err(e) = runner.run(&message(), |m| property(&m)) {
                panic!("{e}");
            }
        })
        .unwrap()
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
}

#[test]
fn model_xml_model() {
    check(|m| {
        let xml = omadm_wire::encode_xml(m);
        let back = omadm_wire::decode_xml(&xml, &Limits::default());
        prop_assert_eq!(back.as_ref(), Ok(m), "{}", String::from_utf8_lossy(&xml));
        Ok(())
    });
}

#[test]
fn model_wbxml_model() {
    check(|m| {
        let wbxml = omadm_wire::encode_wbxml(m);
        let back = omadm_wire::decode_wbxml(&wbxml, &Limits::default());
        prop_assert_eq!(back.as_ref(), Ok(m));
        Ok(())
    });
}

#[test]
fn model_pretty_xml_model() {
    check(|m| {
        let xml = omadm_wire::encode_xml_pretty(m);
        let back = omadm_wire::decode_xml(xml.as_bytes(), &Limits::default());
        prop_assert_eq!(back.as_ref(), Ok(m), "{}", xml);
        Ok(())
    });
}

#[test]
fn xml_wbxml_xml() {
    check(|m| {
        let limits = Limits::default();
        let xml = omadm_wire::encode_xml(m);
        let via_xml = omadm_wire::decode_xml(&xml, &limits).unwrap();
        let wbxml = omadm_wire::encode_wbxml(&via_xml);
        let via_wbxml = omadm_wire::decode_wbxml(&wbxml, &limits).unwrap();
        let again = omadm_wire::encode_xml(&via_wbxml);
        prop_assert_eq!(
            String::from_utf8_lossy(&again),
            String::from_utf8_lossy(&xml)
        );
        Ok(())
    });
}
