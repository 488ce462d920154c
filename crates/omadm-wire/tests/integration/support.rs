//! Shared helpers: where the vectors are, how to read them, hex.

use std::path::{Path, PathBuf};

use omadm_wire::{Limits, SyncMl};

/// The repository's `tests/vectors` directory.
pub(crate) fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors")
}

/// Whether `SCOMO_BLESS=1` asks to rewrite the `.wbxml` twins.
pub(crate) fn bless() -> bool {
    std::env::var("SCOMO_BLESS").is_ok_and(|v| v == "1")
}

/// A vector message: `<area>/<name>.xml` and its `.wbxml` twin.
#[derive(Clone, Debug)]
pub(crate) struct Vector {
    /// Path relative to `tests/vectors`, e.g. `spec/pkg1-client-init.xml`.
    pub(crate) name: String,
    pub(crate) xml_path: PathBuf,
    pub(crate) wbxml_path: PathBuf,
}

impl Vector {
    pub(crate) fn xml(&self) -> Vec<u8> {
        read(&self.xml_path)
    }

    pub(crate) fn wbxml(&self) -> Vec<u8> {
        read(&self.wbxml_path)
    }

    /// The model of the XML vector.
    pub(crate) fn model(&self) -> SyncMl {
        omadm_wire::decode_xml(&self.xml(), &Limits::default())
            .unwrap_or_else(|e| panic!("{}: does not decode: {e}", self.name))
    }
}

/// Every clean vector (all areas but `quirks/`), sorted by name.
pub(crate) fn vectors() -> Vec<Vector> {
    let dir = vectors_dir();
    let mut out = Vec::new();
    for area in sorted_entries(&dir) {
        if !area.is_dir() || area.file_name().is_some_and(|n| n == "quirks") {
            continue;
        }
        for file in sorted_entries(&area) {
            if file.extension().is_some_and(|e| e == "xml") {
                let name = file
                    .strip_prefix(&dir)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push(Vector {
                    name,
                    wbxml_path: file.with_extension("wbxml"),
                    xml_path: file,
                });
            }
        }
    }
    assert!(!out.is_empty(), "no vectors under {}", dir.display());
    out
}

/// The entries of a directory, sorted.
pub(crate) fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    entries
}

pub(crate) fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Parses whitespace-separated hex bytes; `"text"` inserts the text's UTF-8
/// bytes (the notation of `WBXML.md` §7).
pub(crate) fn hex(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return out;
        }
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').expect("closing quote");
            out.extend_from_slice(&quoted.as_bytes()[..end]);
            rest = &quoted[end + 1..];
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            out.push(u8::from_str_radix(&rest[..end], 16).expect("hex byte"));
            rest = &rest[end..];
        }
    }
}

/// Bytes as spaced hex, for failure messages.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The first offset where two byte strings differ, with some context.
pub(crate) fn first_difference(a: &[u8], b: &[u8]) -> String {
    let at = a
        .iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let from = at.saturating_sub(8);
    format!(
        "lengths {} and {}, first difference at byte {at}:\n  {}\n  {}",
        a.len(),
        b.len(),
        to_hex(&a[from..a.len().min(at + 16)]),
        to_hex(&b[from..b.len().min(at + 16)])
    )
}
