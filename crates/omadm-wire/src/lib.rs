//! SyncML DM 1.2 messages: the typed model and its XML and WBXML codecs.
//!
//! ```text
//!   bytes ──decode(Encoding)──▶ model::SyncMl ──encode(Encoding)──▶ bytes
//! ```
//!
//! Both codecs go through one builder (`builder.rs`) over a shared event
//! stream ([`event`]), so XML and WBXML decode to the same model. No I/O:
//! callers hand in bytes and get bytes back. Every decoder is bounded by
//! [`Limits`] and reports a [`DecodeError`] with a byte offset and the
//! SyncML status it maps to.
#![warn(missing_docs)]

mod builder;
pub mod codes;
pub mod error;
pub mod event;
pub mod model;
pub mod tag;
pub mod wbxml;
pub mod xml;
mod xml_lex;

pub use codes::{AlertCode, StatusCode};
pub use error::{DecodeError, DecodeErrorKind, Limits};
pub use model::SyncMl;
pub use tag::{Page, Tag};
pub use wbxml::{PublicId, WbxmlReader, WbxmlWriter};
pub use xml::{XmlReader, XmlWriter};

use event::EventWriter;

/// The two encodings of DM-1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// `application/vnd.syncml.dm+xml`.
    Xml,
    /// `application/vnd.syncml.dm+wbxml`.
    Wbxml,
}

impl Encoding {
    /// The DM content type of this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Xml => "application/vnd.syncml.dm+xml",
            Encoding::Wbxml => "application/vnd.syncml.dm+wbxml",
        }
    }

    /// The encoding a Content-Type names. Accepts the DM types and the older
    /// DS types (`application/vnd.syncml+xml`, `QUIRKS.md`), with parameters.
    pub fn from_content_type(content_type: &str) -> Option<Encoding> {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/vnd.syncml.dm+xml" | "application/vnd.syncml+xml" => Some(Encoding::Xml),
            "application/vnd.syncml.dm+wbxml" | "application/vnd.syncml+wbxml" => {
                Some(Encoding::Wbxml)
            }
            _ => None,
        }
    }

    /// Guesses the encoding from the first bytes: WBXML starts with a
    /// version byte 0x01–0x03, XML with `<`, whitespace or a BOM.
    pub fn sniff(bytes: &[u8]) -> Option<Encoding> {
        match bytes.first()? {
            0x01..=0x03 => Some(Encoding::Wbxml),
            b'<' | b' ' | b'\t' | b'\r' | b'\n' | 0xEF => Some(Encoding::Xml),
            _ => None,
        }
    }
}

/// Decodes a message in the given encoding.
pub fn decode(input: &[u8], encoding: Encoding, limits: &Limits) -> Result<SyncMl, DecodeError> {
    match encoding {
        Encoding::Xml => decode_xml(input, limits),
        Encoding::Wbxml => decode_wbxml(input, limits),
    }
}

/// Encodes a message in the given encoding.
pub fn encode(msg: &SyncMl, encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Xml => encode_xml(msg),
        Encoding::Wbxml => encode_wbxml(msg),
    }
}

/// Decodes an XML message.
pub fn decode_xml(input: &[u8], limits: &Limits) -> Result<SyncMl, DecodeError> {
    builder::decode_message(xml::XmlReader::new(input, limits))
}

/// Decodes a WBXML message.
pub fn decode_wbxml(input: &[u8], limits: &Limits) -> Result<SyncMl, DecodeError> {
    builder::decode_message(wbxml::WbxmlReader::new(input, limits)?)
}

/// Encodes a message as compact, canonical XML.
pub fn encode_xml(msg: &SyncMl) -> Vec<u8> {
    let mut w = xml::XmlWriter::with_capacity(builder::size_hint(msg));
    builder::encode_message(msg, &mut w);
    w.finish().into_bytes()
}

/// Encodes a message as indented XML, for people.
pub fn encode_xml_pretty(msg: &SyncMl) -> String {
    let mut w = xml::XmlWriter::pretty();
    builder::encode_message(msg, &mut w);
    w.finish()
}

/// Encodes a message as WBXML 1.2 (numeric public id 0x1201, UTF-8, no
/// string table unless unknown elements need one).
pub fn encode_wbxml(msg: &SyncMl) -> Vec<u8> {
    // WBXML is about half the size of the XML.
    let mut w = wbxml::WbxmlWriter::with_capacity(builder::size_hint(msg) / 2);
    builder::encode_message(msg, &mut w);
    w.finish()
}

/// Writes a message to any [`EventWriter`].
pub fn write_events<W: EventWriter + ?Sized>(msg: &SyncMl, writer: &mut W) {
    builder::encode_message(msg, writer);
}
