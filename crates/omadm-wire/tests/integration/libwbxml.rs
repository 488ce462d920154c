//! Cross-check with libwbxml (`libwbxml2-utils`: `xml2wbxml`, `wbxml2xml`),
//! an independent WBXML implementation, on every vector:
//!
//! * **ours → libwbxml**: our WBXML, turned into XML by `wbxml2xml`, is the
//!   same document as our XML (parsed trees compared, not bytes);
//! * **libwbxml → ours**: `xml2wbxml`'s WBXML of our XML (and of the vector
//!   file as written) decodes with our codec to the same model;
//! * **bytes**: where libwbxml has no encoding choices of its own (no
//!   Add/Replace data, no literal names), its WBXML is byte for byte ours;
//! * **WBXML quirks**: the hand-made WBXML tolerance vectors read, in
//!   `wbxml2xml`, as the document their clean twin is.
//!
//! The tools are required: a missing tool fails the test with the install
//! command (CI sets `SCOMO_REQUIRE_LIBWBXML=1`; the test fails without the
//! tools whether or not it is set, it never skips).
//!
//! What libwbxml does differently, and how each difference is normalised
//! (measured in `docs/research/libwbxml.md`; section numbers refer to it):
//!
//! ours → libwbxml (trees, [`normalise_tree`]):
//! * N1 (§4) `wbxml2xml` prints an XML declaration and DOCTYPE, `xmlns`
//!   only where the code page changes, CDATA in Add/Replace Data, and
//!   `<X></X>` for whitespace-only text. The tree parser ignores the
//!   prolog, resolves namespaces (elements compare as namespace + local
//!   name), reads CDATA as text and treats empty text as no text.
//! * N2 (§4) `-m 0` strips leading and trailing whitespace from every text
//!   that it does not write as CDATA, i.e. everywhere but Data under
//!   Add/Replace: text is trimmed there on both sides before comparing.
//! * N3 (§4) binary OPAQUE is written raw (no base64) where our XML carries
//!   base64 text (Format `bin`, `WBXML.md` §6): our side's Data text is
//!   base64-decoded when the effective Meta Format is `bin`.
//! * N4 (WBXML quirks only) a trailing NUL in OPAQUE Data is kept by
//!   libwbxml and dropped by our decoder (`QUIRKS.md`): dropped on its side.
//!
//! libwbxml → ours (models, [`normalise_model`]):
//! * M1 (§2) `xml2wbxml` rewrites every LF to CR LF in Data under
//!   Add/Replace (a vCard hack): CR LF is mapped back to LF on its side.
//! * M2 (§2) it never base64-decodes: under Add/Replace, Format `bin` data
//!   reaches us as OPAQUE holding the base64 text, so our decoder yields
//!   the text's bytes; its side is base64-decoded.
//! * M3 (§2) in STR_I contexts (all Data but Add/Replace) it strips leading
//!   and trailing whitespace: Data text and EMI outside Add/Replace are
//!   trimmed on both sides.
//! * M4 (§3) SCOMO payloads (`<ResultCode>`) are unknown elements, which
//!   `xml2wbxml -n` cannot encode (exit 100): vectors whose Data holds
//!   unknown elements are encoded *with* a string table (LITERAL_C).
//!
//! No normalisation is needed for TNDS: our encoder writes the tree as a
//! nested DM DDF document in OPAQUE and the Type as `…dmtnds+wbxml`, as
//! libwbxml does, and our decoder reads both back (`WBXML.md` §6).
//! Vectors libwbxml cannot process at all are listed, with the reason, in
//! `tests/vectors/libwbxml-exclusions.txt` (empty today). The corpus stays
//! clear of what libwbxml gets wrong rather than normalising it away:
//! binary data holding `]]>`, text split over several WBXML pieces in
//! Add/Replace Data (it writes nested CDATA sections), `…dmtnds+xml` as a
//! value outside Type (it rewrites any such text), PIs named by ATTRSTART
//! ("Attribute Table Undefined"), and C0 control characters (expat refuses
//! them: XML 1.0 cannot carry them at all).

use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use omadm_wire::event::{Event, EventReader};
use omadm_wire::model::{Command, Data, Item, SyncMl};
use omadm_wire::{Limits, XmlReader};

use crate::support::{self, first_difference};
use crate::tree::{self, Element, Node};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

const INSTALL: &str = "the libwbxml cross-check needs xml2wbxml and wbxml2xml: \
                       install them with `apt-get install libwbxml2-utils` (Debian/Ubuntu); \
                       this test never skips";

/// Fails (never skips) when the tools are missing.
fn require_tools() {
    for tool in ["xml2wbxml", "wbxml2xml"] {
        match Process::new(tool).arg("-h").output() {
            Ok(_) => {}
            Err(e) => panic!(
                "{tool}: {e} (SCOMO_REQUIRE_LIBWBXML={}); {INSTALL}",
                std::env::var("SCOMO_REQUIRE_LIBWBXML").unwrap_or_default()
            ),
        }
    }
}

#[test]
fn libwbxml_tools_are_installed() {
    require_tools();
}

/// One message to cross-check.
struct Case {
    name: String,
    model: SyncMl,
    /// The XML as a person wrote it, when there is such a file.
    written: Option<Vec<u8>>,
}

/// The clean vectors and the clean twins of the quirk vectors. The quirky
/// inputs themselves test our tolerance, not libwbxml's.
fn cases() -> Vec<Case> {
    let mut out: Vec<Case> = support::vectors()
        .into_iter()
        .map(|v| Case {
            name: v.name.clone(),
            model: v.model(),
            written: Some(v.xml()),
        })
        .collect();
    let quirks = support::vectors_dir().join("quirks");
    for file in support::sorted_entries(&quirks) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".clean.xml") {
            let bytes = support::read(&file);
            out.push(Case {
                name: format!("quirks/{name}"),
                model: omadm_wire::decode_xml(&bytes, &Limits::default())
                    .unwrap_or_else(|e| panic!("quirks/{name}: {e}")),
                written: Some(bytes),
            });
        }
    }
    out
}

/// `tests/vectors/libwbxml-exclusions.txt`: `<vector> <direction> <reason>`.
struct Exclusions(Vec<(String, String)>);

impl Exclusions {
    fn load() -> Exclusions {
        let path = support::vectors_dir().join("libwbxml-exclusions.txt");
        let text = String::from_utf8(support::read(&path)).unwrap();
        let names: Vec<String> = cases().into_iter().map(|c| c.name).collect();
        let mut out = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.splitn(3, char::is_whitespace);
            let (Some(name), Some(direction), Some(reason)) =
                (parts.next(), parts.next(), parts.next())
            else {
                panic!("{}: bad line {line:?}", path.display());
            };
            assert!(
                names.iter().any(|n| n == name),
                "{}: no vector {name}",
                path.display()
            );
            assert!(
                ["wbxml2xml", "xml2wbxml", "bytes"].contains(&direction),
                "{}: unknown direction {direction}",
                path.display()
            );
            assert!(
                !reason.trim().is_empty(),
                "{}: {name} needs a reason",
                path.display()
            );
            out.push((name.to_owned(), direction.to_owned()));
        }
        Exclusions(out)
    }

    fn excludes(&self, name: &str, direction: &str) -> bool {
        self.0.iter().any(|(n, d)| n == name && d == direction)
    }
}

/// A scratch file name under the test target's tmp dir.
fn scratch(ext: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("libwbxml");
    std::fs::create_dir_all(&dir).unwrap();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("{}-{n}.{ext}", std::process::id()))
}

/// Runs a tool on `input` and returns its output file. The exit status
/// alone is not enough (`Failed to open X` exits 0), so the output must
/// also exist and be non-empty.
fn run(
    tool: &str,
    args: &[&str],
    input: &[u8],
    in_ext: &str,
    out_ext: &str,
) -> Result<Vec<u8>, String> {
    require_tools();
    let input_path = scratch(in_ext);
    let output_path = scratch(out_ext);
    std::fs::write(&input_path, input).unwrap();
    let out = Process::new(tool)
        .args(args)
        .arg("-o")
        .arg(&output_path)
        .arg(&input_path)
        .output()
        .map_err(|e| format!("{tool}: {e}; {INSTALL}"))?;
    let result = std::fs::read(&output_path).ok().filter(|b| !b.is_empty());
    let _ = std::fs::remove_file(&input_path);
    let _ = std::fs::remove_file(&output_path);
    match (out.status.success(), result) {
        (true, Some(bytes)) => Ok(bytes),
        (ok, _) => Err(format!(
            "{tool} {} failed (status {}, output {}): {}",
            args.join(" "),
            out.status,
            if ok { "missing or empty" } else { "not used" },
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// `wbxml2xml -m 0`: compact XML, no indentation (`-m 1` adds whitespace
/// inside Data around nested TNDS).
fn wbxml2xml(wbxml: &[u8]) -> Result<Vec<u8>, String> {
    run("wbxml2xml", &["-m", "0"], wbxml, "wbxml", "xml")
}

/// The WBXML quirk vectors are hand-made bytes: libwbxml must read each as
/// the document its clean twin is, so they are WBXML that an independent
/// decoder accepts, not only our idea of it. Public id 0x01 needs the
/// language forced (`-l SYNCML12`, research notes §5). Normalisations as
/// for our own WBXML (N1–N3), and N4: a trailing NUL in OPAQUE Data
/// (`QUIRKS.md`) is dropped from libwbxml's text, as our decoder drops it.
#[test]
fn wbxml_quirks_read_as_their_clean_twin_in_libwbxml() {
    let dir = support::vectors_dir().join("quirks");
    let mut failures = Vec::new();
    let mut checked = 0;
    for file in support::sorted_entries(&dir) {
        if file.extension().is_none_or(|e| e != "wbxml") {
            continue;
        }
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let input = support::read(&file);
        let args: &[&str] = if name == "wbxml-public-id-unknown.wbxml" {
            &["-m", "0", "-l", "SYNCML12"]
        } else {
            &["-m", "0"]
        };
        let theirs = match run("wbxml2xml", args, &input, "wbxml", "xml") {
            Ok(x) => x,
            Err(e) => {
                failures.push(format!("quirks/{name}: {e}"));
                continue;
            }
        };
        let mut theirs = match tree::parse(&theirs) {
            Ok(t) => t,
            Err(e) => {
                failures.push(format!("quirks/{name}: unparsable output ({e})"));
                continue;
            }
        };
        let mut clean = tree::parse(&support::read(&file.with_extension("clean.xml"))).unwrap();
        normalise_tree(&mut clean, Side::Ours);
        normalise_tree(&mut theirs, Side::Libwbxml);
        strip_trailing_nul(&mut theirs);
        if let Some(d) = tree::difference(&clean, &theirs) {
            failures.push(format!(
                "quirks/{name}: {d}\n--- clean twin\n{}--- wbxml2xml\n{}",
                clean.render(),
                theirs.render()
            ));
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(checked >= 8, "only {checked} WBXML quirks");
}

/// N4: drops the NULs that end a Data text.
fn strip_trailing_nul(e: &mut Element) {
    let is_data = e.name == "Data";
    for n in e.children.iter_mut() {
        match n {
            Node::Element(child) => strip_trailing_nul(child),
            Node::Text(t) if is_data => {
                while t.last() == Some(&0) {
                    t.pop();
                }
            }
            Node::Text(_) => {}
        }
    }
}

/// `xml2wbxml -v 1.2 [-n]`: WBXML 1.2 like ours; no string table unless the
/// message has unknown elements (M4).
fn xml2wbxml(xml: &[u8], string_table: bool) -> Result<Vec<u8>, String> {
    let args: &[&str] = if string_table {
        &["-v", "1.2"]
    } else {
        &["-n", "-v", "1.2"]
    };
    run("xml2wbxml", args, xml, "xml", "wbxml")
}

#[test]
fn our_wbxml_reads_as_our_xml_in_libwbxml() {
    let exclusions = Exclusions::load();
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in cases() {
        if exclusions.excludes(&case.name, "wbxml2xml") {
            continue;
        }
        let ours_xml = omadm_wire::encode_xml(&case.model);
        let ours_wbxml = omadm_wire::encode_wbxml(&case.model);
        let theirs = match wbxml2xml(&ours_wbxml) {
            Ok(x) => x,
            Err(e) => {
                failures.push(format!("{}: {e}", case.name));
                continue;
            }
        };
        let mut theirs = match tree::parse(&theirs) {
            Ok(t) => t,
            Err(e) => {
                failures.push(format!(
                    "{}: wbxml2xml wrote unparsable XML ({e}):\n{}",
                    case.name,
                    String::from_utf8_lossy(&theirs)
                ));
                continue;
            }
        };
        let mut ours = tree::parse(&ours_xml).unwrap();
        normalise_tree(&mut ours, Side::Ours);
        normalise_tree(&mut theirs, Side::Libwbxml);
        if let Some(d) = tree::difference(&ours, &theirs) {
            failures.push(format!(
                "{}: {d}\n--- ours\n{}--- wbxml2xml\n{}",
                case.name,
                ours.render(),
                theirs.render()
            ));
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(checked >= 40, "only {checked} vectors checked");
}

#[test]
fn libwbxml_wbxml_decodes_to_our_model() {
    let exclusions = Exclusions::load();
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in cases() {
        if exclusions.excludes(&case.name, "xml2wbxml") {
            continue;
        }
        let string_table = has_unknown_elements(&case.model);
        let inputs = [
            ("our XML", Some(omadm_wire::encode_xml(&case.model))),
            ("the vector file", case.written.clone()),
        ];
        for (what, xml) in inputs {
            let Some(xml) = xml else { continue };
            let wbxml = match xml2wbxml(&xml, string_table) {
                Ok(w) => w,
                Err(e) => {
                    failures.push(format!("{} ({what}): {e}", case.name));
                    continue;
                }
            };
            let mut theirs = match omadm_wire::decode_wbxml(&wbxml, &Limits::default()) {
                Ok(m) => m,
                Err(e) => {
                    failures.push(format!(
                        "{} ({what}): our decoder rejects xml2wbxml's output: {e}\n{}",
                        case.name,
                        support::to_hex(&wbxml)
                    ));
                    continue;
                }
            };
            let mut ours = case.model.clone();
            normalise_model(&mut ours, Side::Ours);
            normalise_model(&mut theirs, Side::Libwbxml);
            if theirs != ours {
                failures.push(format!(
                    "{} ({what}): models differ\n--- ours\n{ours:#?}\n--- via xml2wbxml\n{theirs:#?}",
                    case.name
                ));
            }
            checked += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(checked >= 80, "only {checked} inputs checked");
}

/// Research notes §6.5: apart from Add/Replace data (OPAQUE, CR LF) and
/// literal names (string table), `xml2wbxml -n -v 1.2` and our encoder
/// make the same choices, down to the lazy page switches: compare bytes.
#[test]
fn libwbxml_bytes_equal_ours_where_it_has_no_choice() {
    let exclusions = Exclusions::load();
    let mut failures = Vec::new();
    let mut checked = Vec::new();
    for case in cases() {
        if exclusions.excludes(&case.name, "bytes")
            || has_unknown_elements(&case.model)
            || has_add_replace_data(&case.model.body.commands)
        {
            continue;
        }
        let ours = omadm_wire::encode_wbxml(&case.model);
        match xml2wbxml(&omadm_wire::encode_xml(&case.model), false) {
            Ok(theirs) if theirs == ours => checked.push(case.name),
            Ok(theirs) => failures.push(format!(
                "{}: {}",
                case.name,
                first_difference(&ours, &theirs)
            )),
            Err(e) => failures.push(format!("{}: {e}", case.name)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        checked.len() >= 20,
        "only {} vectors compared byte for byte: {checked:?}",
        checked.len()
    );
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Ours,
    Libwbxml,
}

/// N2 and N3 on a parsed tree (N1 is the parser's).
fn normalise_tree(e: &mut Element, side: Side) {
    let cmd_format = meta_format(e);
    let verbatim = matches!(e.name.as_str(), "Add" | "Replace");
    for child in e.children.iter_mut() {
        let Node::Element(child) = child else {
            continue;
        };
        if child.name == "Item" {
            let format = meta_format(child).or_else(|| cmd_format.clone());
            normalise_item(child, format.as_deref(), verbatim, side);
        } else {
            normalise_tree(child, side);
        }
    }
    trim_texts(e);
}

fn normalise_item(item: &mut Element, format: Option<&[u8]>, verbatim: bool, side: Side) {
    for child in item.children.iter_mut() {
        let Node::Element(child) = child else {
            continue;
        };
        if child.name != "Data" {
            normalise_tree(child, side);
            continue;
        }
        for n in child.children.iter_mut() {
            if let Node::Element(nested) = n {
                normalise_tree(nested, side);
            }
        }
        // N2: only Add/Replace Data is CDATA, and kept whole, in wbxml2xml.
        if !verbatim {
            trim_texts(child);
        }
        // N3: Format bin is base64 text in our XML, raw bytes in theirs.
        if side == Side::Ours && format == Some(b"bin") {
            let text = child.text();
            let bytes = B64
                .decode(&text)
                .expect("Format bin Data is base64 in our XML");
            child.children.retain(|n| matches!(n, Node::Element(_)));
            if !bytes.is_empty() {
                child.children.push(Node::Text(bytes));
            }
        }
    }
    trim_texts(item);
}

/// The text of `<Meta><Format>` under `e`, trimmed.
fn meta_format(e: &Element) -> Option<Vec<u8>> {
    let text = e.child("Meta")?.child("Format")?.text();
    Some(text.trim_ascii().to_vec())
}

/// Trims every text child; drops the ones left empty.
fn trim_texts(e: &mut Element) {
    for n in e.children.iter_mut() {
        if let Node::Text(t) = n {
            *t = t.trim_ascii().to_vec();
        }
    }
    e.children
        .retain(|n| !matches!(n, Node::Text(t) if t.is_empty()));
}

/// M1–M3 on a decoded model.
fn normalise_model(m: &mut SyncMl, side: Side) {
    normalise_commands(&mut m.body.commands, side);
}

fn normalise_commands(commands: &mut [Command], side: Side) {
    for c in commands {
        match c {
            Command::Add(c) | Command::Replace(c) => {
                let format = c.meta.as_ref().and_then(|m| m.format.clone());
                normalise_items(&mut c.items, format.as_deref(), true, side);
            }
            Command::Copy(c) | Command::Delete(c) | Command::Get(c) => {
                let format = c.meta.as_ref().and_then(|m| m.format.clone());
                normalise_items(&mut c.items, format.as_deref(), false, side);
            }
            Command::Exec(e) => {
                let format = e.meta.as_ref().and_then(|m| m.format.clone());
                normalise_items(&mut e.items, format.as_deref(), false, side);
            }
            Command::Results(r) => {
                let format = r.meta.as_ref().and_then(|m| m.format.clone());
                normalise_items(&mut r.items, format.as_deref(), false, side);
            }
            Command::Alert(a) => normalise_items(&mut a.items, None, false, side),
            Command::Status(s) => normalise_items(&mut s.items, None, false, side),
            Command::Atomic(c) | Command::Sequence(c) => normalise_commands(&mut c.commands, side),
        }
    }
}

fn normalise_items(items: &mut [Item], cmd_format: Option<&str>, verbatim: bool, side: Side) {
    for item in items {
        if let Some(meta) = &mut item.meta {
            // M3 for EMI.
            for emi in &mut meta.emi {
                *emi = emi.trim().to_owned();
            }
        }
        let format = item
            .meta
            .as_ref()
            .and_then(|m| m.format.clone())
            .or_else(|| cmd_format.map(str::to_owned));
        match (&mut item.data, verbatim, side) {
            // M1: LF became CR LF.
            (Some(Data::Text(t)), true, Side::Libwbxml) => *t = t.replace("\r\n", "\n"),
            // M2: the base64 text, not decoded.
            (Some(Data::Binary(b)), true, Side::Libwbxml) if format.as_deref() == Some("bin") => {
                if let Ok(decoded) = B64.decode(&*b) {
                    *b = decoded;
                }
            }
            // M3: STR_I text is trimmed.
            (Some(Data::Text(t)), false, _) => *t = t.trim().to_owned(),
            _ => {}
        }
    }
}

/// Whether some Data holds elements no code page knows (M4).
fn has_unknown_elements(m: &SyncMl) -> bool {
    let mut fragments = Vec::new();
    collect_xml(&m.body.commands, &mut fragments);
    fragments.iter().any(|x| {
        let mut reader = XmlReader::fragment(x.as_bytes(), &Limits::default());
        loop {
            match reader.next_event() {
                Ok(Event::StartUnknown(_)) => return true,
                Ok(Event::Eof) | Err(_) => return false,
                Ok(_) => {}
            }
        }
    })
}

fn collect_xml(commands: &[Command], out: &mut Vec<String>) {
    for c in commands {
        let items = match c {
            Command::Add(c)
            | Command::Copy(c)
            | Command::Delete(c)
            | Command::Get(c)
            | Command::Replace(c) => &c.items,
            Command::Alert(a) => &a.items,
            Command::Exec(e) => &e.items,
            Command::Status(s) => &s.items,
            Command::Results(r) => &r.items,
            Command::Atomic(c) | Command::Sequence(c) => {
                collect_xml(&c.commands, out);
                continue;
            }
        };
        for i in items {
            if let Some(Data::Xml(x)) = &i.data {
                out.push(x.clone());
            }
        }
    }
}

/// Whether an Add or Replace carries non-empty Data (which libwbxml writes
/// as OPAQUE, and we as STR_I).
fn has_add_replace_data(commands: &[Command]) -> bool {
    commands.iter().any(|c| match c {
        Command::Add(c) | Command::Replace(c) => c
            .items
            .iter()
            .any(|i| i.data.as_ref().is_some_and(|d| !d.is_empty())),
        Command::Atomic(c) | Command::Sequence(c) => has_add_replace_data(&c.commands),
        _ => false,
    })
}
