//! The event stream both codecs speak.
//!
//! ```text
//!  XML bytes  ──XmlReader──┐                      ┌──XmlWriter──▶ XML bytes
//!                          ├─ Event ─▶ builder ◀──┤
//!  WBXML bytes ─WbxmlReader┘   (model::SyncMl)    └─WbxmlWriter─▶ WBXML bytes
//! ```
//!
//! A reader turns bytes into [`Event`]s, the builder (in `builder.rs`) turns
//! events into the message model, and back out through an [`EventWriter`].
//! Code pages, namespaces, opaque data and string tables stay inside the
//! codecs.

use std::borrow::Cow;

use crate::error::{DecodeError, DecodeErrorKind, Limits};
use crate::tag::Tag;

/// One step of a decoded document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// Start of a known element. Empty elements are `Start` then `End`.
    Start(Tag),
    /// Start of an element no code page knows (only legal inside `Data`,
    /// e.g. `<ResultCode>` of a SCOMO alert payload).
    StartUnknown(Cow<'a, str>),
    /// End of the innermost open element.
    End,
    /// Character data, already unescaped. Adjacent `Text` events are
    /// possible (WBXML STR_I then STR_T, XML text then CDATA); consumers join
    /// them.
    Text(Cow<'a, str>),
    /// Opaque bytes (WBXML `OPAQUE`); never produced by the XML reader.
    Opaque(Cow<'a, [u8]>),
    /// End of the document.
    Eof,
}

/// A source of events: one per encoding.
pub trait EventReader<'a> {
    /// The next event. After `Eof`, keeps returning `Eof`.
    fn next_event(&mut self) -> Result<Event<'a>, DecodeError>;
    /// Byte offset of the reader in its input, for error messages.
    fn offset(&self) -> usize;
    /// A shortcut for the most common element, a leaf holding only text:
    /// called just after the `Start` of an element, returns its character
    /// data and consumes its `End` when the content is one piece of text
    /// that needs no resolving and holds no NUL. `None` otherwise, with
    /// nothing consumed: the caller then reads the content as events. Never
    /// an error (the events report any).
    fn leaf_text(&mut self) -> Option<&'a str> {
        None
    }
    /// Skips whitespace-only character data that runs up to the next markup,
    /// for a caller that ignores text there (indentation between elements).
    /// Skips nothing that `next_event` would have reported as an error.
    fn skip_blank_text(&mut self) {}
}

/// A sink of events: one per encoding.
pub trait EventWriter {
    /// Open a known element that will have content.
    fn start(&mut self, tag: Tag);
    /// Open an element no code page knows (nested payloads only).
    fn start_unknown(&mut self, name: &str);
    /// Close the innermost open element.
    fn end(&mut self);
    /// A known element with no content (`<Final/>`).
    fn empty(&mut self, tag: Tag);
    /// Character data (the writer escapes it).
    fn text(&mut self, text: &str);
    /// Binary data: OPAQUE in WBXML, base64 text in XML.
    fn opaque(&mut self, bytes: &[u8]);
    /// Whether this encoding carries binary Data only as base64 text, which
    /// a reader decodes only under Format `b64` (XML); the builder then
    /// labels such Data. WBXML has OPAQUE.
    fn binary_as_base64(&self) -> bool {
        false
    }
    /// A canonical XML fragment (nested markup inside `Data`). The XML writer
    /// copies it; other writers replay it as events.
    fn xml_fragment(&mut self, xml: &str) {
        replay_fragment(xml, self);
    }
}

/// Replays a canonical XML fragment into `writer` as events. The fragment
/// came out of our own builder, so it is well-formed; if it is not (a
/// hand-built model), it is written as text rather than lost.
pub(crate) fn replay_fragment<W: EventWriter + ?Sized>(xml: &str, writer: &mut W) {
    let mut events = Vec::new();
    let mut reader = crate::xml::XmlReader::fragment(xml.as_bytes(), &Limits::default());
    loop {
        match reader.next_event() {
            Ok(Event::Eof) => break,
            Ok(ev) => events.push(ev),
            Err(_) => {
                writer.text(xml);
                return;
            }
        }
    }
    let mut pending: Option<Event<'_>> = None;
    for ev in events {
        // Collapse Start+End into an empty element, as both encodings prefer.
        match (pending.take(), ev) {
            (Some(Event::Start(t)), Event::End) => writer.empty(t),
            (Some(p), ev) => {
                emit(writer, p);
                pending = Some(ev);
            }
            (None, ev) => pending = Some(ev),
        }
    }
    if let Some(p) = pending {
        emit(writer, p);
    }
}

fn emit<W: EventWriter + ?Sized>(writer: &mut W, ev: Event<'_>) {
    match ev {
        Event::Start(t) => writer.start(t),
        Event::StartUnknown(n) => writer.start_unknown(&n),
        Event::End => writer.end(),
        Event::Text(t) => writer.text(&t),
        Event::Opaque(b) => writer.opaque(&b),
        Event::Eof => {}
    }
}

/// Depth and element-count accounting shared by the readers.
#[derive(Debug)]
pub(crate) struct Budget {
    limits: Limits,
    depth: usize,
    elements: usize,
}

impl Budget {
    pub(crate) fn new(limits: &Limits) -> Budget {
        Budget {
            limits: limits.clone(),
            depth: 0,
            elements: 0,
        }
    }

    /// Call when an element opens.
    pub(crate) fn open(&mut self, offset: usize) -> Result<(), DecodeError> {
        self.depth += 1;
        self.elements += 1;
        if self.depth > self.limits.max_depth {
            return Err(DecodeError::new(
                offset,
                DecodeErrorKind::TooDeep {
                    limit: self.limits.max_depth,
                },
            ));
        }
        if self.elements > self.limits.max_elements {
            return Err(DecodeError::new(
                offset,
                DecodeErrorKind::TooManyElements {
                    limit: self.limits.max_elements,
                },
            ));
        }
        Ok(())
    }

    /// Call when an element closes.
    pub(crate) fn close(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// The longest string or opaque value allowed.
    pub(crate) fn max_string_len(&self) -> usize {
        self.limits.max_string_len
    }

    /// Check a string or opaque length.
    pub(crate) fn string(&self, len: usize, offset: usize) -> Result<(), DecodeError> {
        if len > self.limits.max_string_len {
            return Err(DecodeError::new(
                offset,
                DecodeErrorKind::StringTooLong {
                    len,
                    limit: self.limits.max_string_len,
                },
            ));
        }
        Ok(())
    }

    /// Check the whole input size up front.
    pub(crate) fn message(&self, size: usize) -> Result<(), DecodeError> {
        if size > self.limits.max_message_size {
            return Err(DecodeError::new(
                0,
                DecodeErrorKind::MessageTooLarge {
                    size,
                    limit: self.limits.max_message_size,
                },
            ));
        }
        Ok(())
    }
}
