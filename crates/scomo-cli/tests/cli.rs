//! `scomo wire` as a user runs it: the real binary on the vector files,
//! on standard input, and on malformed input (exit status 1 and a message
//! naming the byte offset).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use omadm_wire::Limits;

fn vector(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/vectors")
        .join(name)
}

/// Runs `scomo wire <args>` with `stdin` as standard input.
fn scomo(args: &[&str], stdin: &[u8]) -> Output {
    run(&[&["wire"], args].concat(), stdin)
}

/// Runs `scomo ARGS...` with `stdin`.
fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_scomo"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> &[u8] {
    assert!(
        out.status.success(),
        "exit {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    &out.stdout
}

/// The tool failed with status 1 and said `words` on standard error.
fn failed(out: &Output, words: &[&str]) -> String {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty(), "nothing on stdout after an error");
    let err = String::from_utf8(out.stderr.clone()).unwrap();
    for w in words {
        assert!(err.contains(w), "{err:?} does not say {w:?}");
    }
    err
}

fn pkg1(ext: &str) -> (String, Vec<u8>) {
    let path = vector(&format!("spec/pkg1-client-init.{ext}"));
    let bytes = std::fs::read(&path).unwrap();
    (path.to_string_lossy().into_owned(), bytes)
}

#[test]
fn xml2wbxml_on_a_vector_writes_its_twin() {
    let (xml, _) = pkg1("xml");
    let (_, wbxml) = pkg1("wbxml");
    assert_eq!(ok(&scomo(&["xml2wbxml", &xml], b"")), wbxml);
}

#[test]
fn wbxml2xml_on_a_vector_writes_compact_xml() {
    let (wbxml, _) = pkg1("wbxml");
    let (_, xml) = pkg1("xml");
    let out = scomo(&["wbxml2xml", &wbxml], b"");
    // The vector is written in our compact form, newline included.
    assert_eq!(
        String::from_utf8_lossy(ok(&out)),
        String::from_utf8_lossy(&xml)
    );
}

#[test]
fn conversions_of_every_vector_agree_with_the_library() {
    let root = vector("");
    let mut checked = 0;
    for area in std::fs::read_dir(&root).unwrap() {
        let area = area.unwrap().path();
        if !area.is_dir() || area.ends_with("quirks") {
            continue;
        }
        for file in std::fs::read_dir(&area).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_none_or(|e| e != "xml") {
                continue;
            }
            let name = path.display().to_string();
            let model =
                omadm_wire::decode_xml(&std::fs::read(&path).unwrap(), &Limits::default()).unwrap();
            let wbxml = ok(&scomo(&["xml2wbxml", &name], b"")).to_vec();
            assert_eq!(wbxml, omadm_wire::encode_wbxml(&model), "{name}");
            let xml = ok(&scomo(&["wbxml2xml"], &wbxml)).to_vec();
            let mut expected = omadm_wire::encode_xml(&model);
            expected.push(b'\n');
            assert_eq!(xml, expected, "{name}");
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} vectors");
}

#[test]
fn inspect_prints_the_message_and_a_summary() {
    for ext in ["xml", "wbxml"] {
        let (path, bytes) = pkg1(ext);
        let out = scomo(&["inspect", &path], b"");
        let text = String::from_utf8(ok(&out).to_vec()).unwrap();
        assert!(
            text.starts_with("<SyncML xmlns=\"SYNCML:SYNCML1.2\">\n  <SyncHdr>"),
            "{text}"
        );
        let encoding = if ext == "xml" { "XML" } else { "WBXML" };
        assert!(
            text.contains(&format!(
                "{encoding} message, {} bytes: session 1 msg 1 from IMEI:1 to http://s/dm, final\n",
                bytes.len()
            )),
            "{text}"
        );
        assert!(text.contains("    1 Alert 1201"), "{text}");
    }
    // Nested commands are indented under their container.
    let out = scomo(
        &[
            "inspect",
            vector("commands/sequence-nested-atomic.xml")
                .to_str()
                .unwrap(),
        ],
        b"",
    );
    let text = String::from_utf8(ok(&out).to_vec()).unwrap();
    assert!(
        text.contains("   24 Sequence\n     25 Atomic\n       26 Add ./Vendor/A"),
        "{text}"
    );
}

#[test]
fn standard_input_when_no_file_or_dash() {
    let (_, xml) = pkg1("xml");
    let (_, wbxml) = pkg1("wbxml");
    assert_eq!(ok(&scomo(&["xml2wbxml"], &xml)), wbxml);
    assert_eq!(ok(&scomo(&["xml2wbxml", "-"], &xml)), wbxml);
    assert_eq!(ok(&scomo(&["wbxml2xml", "-"], &wbxml)), xml);
    let out = scomo(&["inspect"], &wbxml);
    assert!(String::from_utf8_lossy(ok(&out)).contains("WBXML message, 97 bytes"));
}

#[test]
fn malformed_input_exits_1_naming_the_byte_offset() {
    // A WBXML file cut after 50 bytes: the decoder says where and inside
    // which element the input ended.
    let (_, wbxml) = pkg1("wbxml");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let cut = dir.join(format!("cli-truncated-{}.wbxml", std::process::id()));
    std::fs::write(&cut, &wbxml[..50]).unwrap();
    let cut_name = cut.to_string_lossy().into_owned();
    for sub in ["wbxml2xml", "inspect"] {
        let out = scomo(&[sub, &cut_name], b"");
        failed(
            &out,
            &[
                &cut_name,
                "WBXML",
                "unexpected end of input inside <Target>",
                "(at byte 50)",
            ],
        );
    }
    std::fs::remove_file(&cut).unwrap();

    // An unknown token, on standard input.
    let mut bad = wbxml.clone();
    bad[7] = 0x70;
    let out = scomo(&["wbxml2xml"], &bad);
    failed(
        &out,
        &[
            "standard input",
            "unknown tag token 0x30 on code page 0",
            "(at byte 7)",
        ],
    );

    // Unterminated XML.
    let out = scomo(
        &["xml2wbxml", "-"],
        b"<SyncML xmlns=\"SYNCML:SYNCML1.2\"><SyncHdr>",
    );
    failed(
        &out,
        &[
            "standard input",
            "SyncML XML",
            "inside <SyncHdr>",
            "(at byte 42)",
        ],
    );

    // WBXML given to the XML converter is not silently accepted either.
    let out = scomo(&["xml2wbxml"], &wbxml);
    failed(&out, &["cannot decode", "at byte"]);
}

#[test]
fn unusable_input_exits_1() {
    failed(
        &scomo(&["inspect"], b"hello"),
        &["neither XML nor WBXML", "0x68"],
    );
    failed(&scomo(&["wbxml2xml"], b""), &["standard input is empty"]);
    failed(
        &scomo(&["xml2wbxml", "/nonexistent/msg.xml"], b""),
        &["cannot read /nonexistent/msg.xml"],
    );
}

/// Every agent configuration key can be given on the command line: the
/// named flags, and `--set KEY=VALUE` for the rest (checked like the file).
#[test]
fn agent_init_takes_every_key_as_a_flag() {
    let out = run(
        &[
            "agent",
            "init",
            "--device-id",
            "IMEI:7",
            "--username",
            "u",
            "--password",
            "p",
            "--auth",
            "hmac",
            "--mod",
            "M1",
            "--set",
            "device.fwv=2.1",
            "--set",
            "scomo.sync_operations=[\"Activate\"]",
            "--set",
            "agent.max_obj_size=1000",
        ],
        b"",
    );
    let text = String::from_utf8(ok(&out).to_vec()).unwrap();
    for line in [
        "id = \"IMEI:7\"",
        "mod = \"M1\"",
        "auth = \"hmac\"",
        "fwv = \"2.1\"",
        "max_obj_size = 1000",
        "sync_operations = [\"Activate\"]",
    ] {
        assert!(
            text.lines().any(|l| l.trim() == line),
            "{line} missing in:\n{text}"
        );
    }
    let out = run(&["agent", "init", "--set", "device.nope=1"], b"");
    failed(&out, &["nope"]);
}
