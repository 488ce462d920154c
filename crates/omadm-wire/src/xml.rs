//! XML codec: SyncML DM 1.2 as deployed clients write it, and canonical
//! compact XML out.
//!
//! Accepted on input (`QUIRKS.md`): XML declaration, DOCTYPE, a UTF-8 BOM,
//! the SyncML namespace in any case and in single quotes, `syncml:metinf`
//! declared on each Meta child or once, prefixed names, CDATA, the standard
//! entities, comments and processing instructions, and insignificant
//! whitespace. Elements whose namespace is inherited are looked up on the
//! parent's code page first, so a TNDS tree or MetInf child with no `xmlns`
//! still resolves.

use std::borrow::Cow;

use base64::Engine as _;
use quick_xml::events::{BytesStart, Event as XEvent};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

use crate::builder::escape_into;
use crate::error::{DecodeError, DecodeErrorKind, Limits};
use crate::event::{Budget, Event, EventReader, EventWriter};
use crate::tag::{Page, Tag};

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The namespace an element resolved to.
enum Ns {
    Known(Page),
    Other,
    Unbound,
    UnknownPrefix(String),
}

/// Reads XML into [`Event`]s.
pub struct XmlReader<'a> {
    reader: NsReader<&'a [u8]>,
    budget: Budget,
    /// Offset of the reader's input in the caller's input (the BOM).
    base: usize,
    /// Code page of each open element (`None` for unknown elements, which
    /// keep their parent's page for lookups).
    pages: Vec<(Option<Page>, &'static str)>,
    /// A fragment may have several roots and text at top level.
    fragment: bool,
    done: bool,
    root_closed: bool,
    /// Whether the input is known to fit the message limit.
    checked: Result<(), DecodeError>,
}

impl std::fmt::Debug for XmlReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XmlReader")
            .field("offset", &self.offset())
            .finish()
    }
}

impl<'a> XmlReader<'a> {
    /// A reader for a whole document.
    pub fn new(input: &'a [u8], limits: &Limits) -> XmlReader<'a> {
        Self::with_mode(input, limits, false)
    }

    /// A reader for a fragment (the content of `Data`): several top-level
    /// elements and text are allowed.
    pub fn fragment(input: &'a [u8], limits: &Limits) -> XmlReader<'a> {
        Self::with_mode(input, limits, true)
    }

    fn with_mode(input: &'a [u8], limits: &Limits, fragment: bool) -> XmlReader<'a> {
        let budget = Budget::new(limits);
        let checked = budget.message(input.len());
        let (base, body) = match input.strip_prefix(BOM) {
            Some(rest) => (BOM.len(), rest),
            None => (0, input),
        };
        let mut reader = NsReader::from_reader(body);
        let config = reader.config_mut();
        config.trim_text(false);
        config.expand_empty_elements = true;
        config.check_end_names = true;
        config.check_comments = false;
        XmlReader {
            reader,
            budget,
            base,
            pages: Vec::new(),
            fragment,
            done: false,
            root_closed: false,
            checked,
        }
    }

    fn err(&self, kind: DecodeErrorKind) -> DecodeError {
        DecodeError::new(self.offset(), kind)
    }

    fn xml_err(&self, e: impl std::fmt::Display) -> DecodeError {
        self.err(DecodeErrorKind::Xml(e.to_string()))
    }

    fn start(&mut self, ns: Ns, e: &BytesStart<'a>) -> Result<Event<'a>, DecodeError> {
        let offset = self.offset();
        if self.root_closed && !self.fragment {
            return Err(self.err(DecodeErrorKind::Xml("a second root element".into())));
        }
        self.budget.open(offset)?;
        let local = e.local_name();
        let local = local.as_ref();
        let declared = match ns {
            Ns::Known(p) => Some(p),
            Ns::Other | Ns::Unbound => None,
            Ns::UnknownPrefix(p) => {
                return Err(self.err(DecodeErrorKind::Xml(format!(
                    "undeclared namespace prefix {p:?}"
                ))))
            }
        };
        // An explicit declaration on this element (or a prefix) wins; an
        // inherited namespace defers to the parent's page first.
        let explicit = e.name().prefix().is_some()
            || e.attributes().flatten().any(|a| a.key.as_ref() == b"xmlns");
        let parent = self.pages.last().and_then(|(p, _)| *p);
        let bound_to_other = matches!(ns, Ns::Other);
        let tag = if bound_to_other && (explicit || parent.is_none()) {
            // A namespace we do not know: not one of ours.
            None
        } else {
            let mut order: [Option<Page>; 5] = [None; 5];
            if explicit {
                order[0] = declared;
            } else {
                order[0] = parent;
                order[1] = declared;
            }
            order[2] = Some(Page::SyncMl);
            order[3] = Some(Page::MetInf);
            order[4] = Some(Page::DmDdf);
            order
                .iter()
                .flatten()
                .find_map(|p| Tag::from_name(*p, local))
        };
        self.pages.push((
            tag.map(|t| t.page).or(parent),
            tag.map_or("an unknown element", Tag::name),
        ));
        Ok(match tag {
            Some(t) => Event::Start(t),
            None => {
                let name = std::str::from_utf8(local).map_err(|e| self.xml_err(e))?;
                // quick-xml takes any bytes up to whitespace or `>` as a
                // name; the writers copy the name verbatim, and the WBXML
                // reader refuses a LITERAL that is not a name.
                if !crate::wbxml::is_xml_name(name) {
                    let shown: String = name.chars().take(40).collect();
                    return Err(self.err(DecodeErrorKind::Xml(format!(
                        "{shown:?} is not an XML element name"
                    ))));
                }
                Event::StartUnknown(Cow::Owned(name.to_owned()))
            }
        })
    }
}

impl<'a> EventReader<'a> for XmlReader<'a> {
    fn next_event(&mut self) -> Result<Event<'a>, DecodeError> {
        self.checked.clone()?;
        if self.done {
            return Ok(Event::Eof);
        }
        loop {
            let (ns, ev) = match self.reader.read_resolved_event() {
                Ok(r) => r,
                Err(e) => {
                    let kind = DecodeErrorKind::Xml(e.to_string());
                    let at = self.base + self.reader.error_position() as usize;
                    return Err(DecodeError::new(at, kind));
                }
            };
            match ev {
                XEvent::Start(e) => {
                    let ns = match ns {
                        ResolveResult::Bound(n) => match Page::from_namespace(n.as_ref()) {
                            Some(p) => Ns::Known(p),
                            None => Ns::Other,
                        },
                        ResolveResult::Unbound => Ns::Unbound,
                        ResolveResult::Unknown(p) => {
                            Ns::UnknownPrefix(String::from_utf8_lossy(&p).into_owned())
                        }
                    };
                    return self.start(ns, &e);
                }
                XEvent::End(_) => {
                    self.budget.close();
                    self.pages.pop();
                    if self.pages.is_empty() {
                        self.root_closed = true;
                    }
                    return Ok(Event::End);
                }
                XEvent::Empty(_) => unreachable!("expand_empty_elements is set"),
                XEvent::Text(t) => {
                    if self.pages.is_empty() && !self.fragment {
                        // Whitespace (or a NUL, QUIRKS.md) outside the root.
                        if t.iter().all(|b| b.is_ascii_whitespace() || *b == 0) {
                            continue;
                        }
                        return Err(
                            self.err(DecodeErrorKind::Xml("text outside the root element".into()))
                        );
                    }
                    let offset = self.offset();
                    self.budget.string(t.len(), offset)?;
                    let text = if t.contains(&b'\r') {
                        let raw = String::from_utf8(normalize_line_ends(&t))
                            .map_err(|e| self.xml_err(e))?;
                        let text =
                            quick_xml::escape::unescape(&raw).map_err(|e| self.xml_err(e))?;
                        Cow::Owned(text.into_owned())
                    } else {
                        t.unescape().map_err(|e| self.xml_err(e))?
                    };
                    return Ok(Event::Text(text));
                }
                XEvent::CData(c) if c.contains(&b'\r') => {
                    let offset = self.offset();
                    self.budget.string(c.len(), offset)?;
                    let text =
                        String::from_utf8(normalize_line_ends(&c)).map_err(|e| self.xml_err(e))?;
                    return Ok(Event::Text(Cow::Owned(text)));
                }
                XEvent::CData(c) => {
                    let offset = self.offset();
                    self.budget.string(c.len(), offset)?;
                    let text = match c.into_inner() {
                        Cow::Borrowed(b) => {
                            Cow::Borrowed(std::str::from_utf8(b).map_err(|e| self.xml_err(e))?)
                        }
                        Cow::Owned(b) => {
                            Cow::Owned(String::from_utf8(b).map_err(|e| self.xml_err(e))?)
                        }
                    };
                    return Ok(Event::Text(text));
                }
                XEvent::Decl(_) | XEvent::PI(_) | XEvent::DocType(_) | XEvent::Comment(_) => {}
                XEvent::Eof => {
                    if let Some((_, name)) = self.pages.last() {
                        return Err(self.err(DecodeErrorKind::UnexpectedEof(format!("<{name}>"))));
                    }
                    self.done = true;
                    return Ok(Event::Eof);
                }
            }
        }
    }

    fn offset(&self) -> usize {
        self.base + self.reader.buffer_position() as usize
    }
}

/// XML 1.0 §2.11: a processor passes CR LF and a lone CR on as LF, so a
/// message means the same to us as to any other parser (libwbxml's expat).
/// A CR written as `&#13;` is a reference, resolved after this, and stays.
fn normalize_line_ends(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter().copied().peekable();
    while let Some(b) = bytes.next() {
        match b {
            b'\r' if bytes.peek() == Some(&b'\n') => {}
            b'\r' => out.push(b'\n'),
            b => out.push(b),
        }
    }
    out
}

/// Writes [`Event`]s as XML: compact and canonical, or indented for people.
#[derive(Debug, Default)]
pub struct XmlWriter {
    out: String,
    /// Name and page of each open element (the page places `xmlns` where it
    /// changes).
    open: Vec<(Cow<'static, str>, Option<Page>)>,
    pretty: bool,
    last: Last,
}

#[derive(Debug, Default, PartialEq, Eq, Clone, Copy)]
enum Last {
    #[default]
    Nothing,
    Start,
    End,
    Text,
}

impl XmlWriter {
    /// A compact writer (no whitespace between elements).
    pub fn new() -> XmlWriter {
        XmlWriter::default()
    }

    /// An indenting writer, for `scomo wire inspect`.
    pub fn pretty() -> XmlWriter {
        XmlWriter {
            pretty: true,
            ..XmlWriter::default()
        }
    }

    /// The document written so far.
    pub fn finish(self) -> String {
        self.out
    }

    fn indent(&mut self) {
        if self.pretty && self.last != Last::Nothing {
            self.out.push('\n');
            for _ in 0..self.open.len() {
                self.out.push_str("  ");
            }
        }
    }

    fn open(&mut self, name: &str, page: Option<Page>) {
        if self.last != Last::Text {
            self.indent();
        }
        let parent = self.open.last().and_then(|(_, p)| *p);
        self.out.push('<');
        self.out.push_str(name);
        if let Some(p) = page {
            if parent != Some(p) {
                self.out.push_str(" xmlns=\"");
                self.out.push_str(p.namespace());
                self.out.push('"');
            }
        }
    }
}

impl EventWriter for XmlWriter {
    fn start(&mut self, tag: Tag) {
        self.open(tag.name(), Some(tag.page));
        self.out.push('>');
        self.open.push((Cow::Borrowed(tag.name()), Some(tag.page)));
        self.last = Last::Start;
    }

    fn start_unknown(&mut self, name: &str) {
        self.open(name, None);
        self.out.push('>');
        let inherited = self.open.last().and_then(|(_, p)| *p);
        self.open.push((Cow::Owned(name.to_owned()), inherited));
        self.last = Last::Start;
    }

    fn end(&mut self) {
        let Some((name, _)) = self.open.pop() else {
            return;
        };
        if self.last == Last::End {
            self.indent();
        }
        self.out.push_str("</");
        self.out.push_str(&name);
        self.out.push('>');
        self.last = Last::End;
    }

    fn empty(&mut self, tag: Tag) {
        self.open(tag.name(), Some(tag.page));
        self.out.push_str("/>");
        self.last = Last::End;
    }

    fn text(&mut self, text: &str) {
        escape_into(&mut self.out, text);
        self.last = Last::Text;
    }

    fn opaque(&mut self, bytes: &[u8]) {
        self.out
            .push_str(&base64::engine::general_purpose::STANDARD.encode(bytes));
        self.last = Last::Text;
    }

    fn xml_fragment(&mut self, xml: &str) {
        self.out.push_str(xml);
        self.last = Last::Text;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(xml: &str) -> Result<Vec<Event<'_>>, DecodeError> {
        let mut reader = XmlReader::fragment(xml.as_bytes(), &Limits::default());
        let mut out = Vec::new();
        loop {
            match reader.next_event()? {
                Event::Eof => return Ok(out),
                ev => out.push(ev),
            }
        }
    }

    // Fuzz finding: `<\x06/>` was read as an unknown element named "\x06",
    // which the WBXML writer then sent as a LITERAL the reader refuses.
    #[test]
    fn unknown_element_names_must_be_xml_names() {
        let err = events("<Node><\u{6}/></Node>").unwrap_err();
        assert!(
            matches!(&err.kind, DecodeErrorKind::Xml(m) if m.contains("not an XML element name")),
            "{err}"
        );
        assert_eq!(
            events("<ResultCode/>").unwrap(),
            [Event::StartUnknown("ResultCode".into()), Event::End]
        );
    }
}
