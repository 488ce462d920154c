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
use quick_xml::Reader;

pub use crate::builder::escape_into;
use crate::error::{DecodeError, DecodeErrorKind, Limits};
use crate::event::{Budget, Event, EventReader, EventWriter};
use crate::tag::{Page, Tag};

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The namespace an element resolved to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ns {
    Known(Page),
    Other,
    Unbound,
}

/// A namespace declaration in scope: `xmlns` (empty prefix) or `xmlns:p`.
///
/// The reader keeps these itself rather than use quick-xml's `NsReader`,
/// whose general resolver cost a quarter of the decode time; a message
/// declares a handful, and only the page (or "another namespace") matters.
#[derive(Debug)]
struct Binding {
    /// Depth of the element that declared it (its index in `pages`).
    depth: usize,
    prefix: Vec<u8>,
    ns: Ns,
}

/// Reads XML into [`Event`]s.
pub struct XmlReader<'a> {
    reader: Reader<&'a [u8]>,
    budget: Budget,
    /// Offset of the reader's input in the caller's input (the BOM).
    base: usize,
    /// Code page of each open element (`None` for unknown elements, which
    /// keep their parent's page for lookups), and its tag for messages.
    pages: Vec<(Option<Page>, Option<Tag>)>,
    /// Namespaces already resolved to a page. A message uses two or three,
    /// so this saves a case-insensitive comparison per element; bounded, so
    /// a hostile input with many namespaces only misses the cache.
    namespaces: Vec<(Vec<u8>, Option<Page>)>,
    /// Namespace declarations in scope, innermost last.
    bindings: Vec<Binding>,
    /// A fragment may have several roots and text at top level.
    fragment: bool,
    /// The fragment starts with U+FEFF, still to be returned as text.
    leading_feff: bool,
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
        // A BOM starts a document; at the start of a fragment (the content
        // of `Data`) U+FEFF is text, which quick-xml would drop (a fuzz
        // finding: replaying such a fragment into WBXML lost it).
        let leading_feff = fragment && base > 0;
        let mut reader = Reader::from_reader(body);
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
            namespaces: Vec::new(),
            bindings: Vec::new(),
            fragment,
            leading_feff,
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

    /// Takes in the namespace declarations of an element at `depth`, and
    /// says whether it declares the default namespace.
    fn declare(&mut self, e: &BytesStart<'a>, depth: usize) -> bool {
        if e.attributes_raw().trim_ascii().is_empty() {
            return false;
        }
        let mut default = false;
        for a in e.attributes().flatten() {
            let prefix = match a.key.as_ref().strip_prefix(b"xmlns") {
                Some([]) => &[][..],
                Some([b':', prefix @ ..]) => prefix,
                _ => continue,
            };
            default |= prefix.is_empty();
            let ns = if a.value.trim_ascii().is_empty() {
                Ns::Unbound
            } else {
                match page_of(&mut self.namespaces, &a.value) {
                    Some(p) => Ns::Known(p),
                    None => Ns::Other,
                }
            };
            self.bindings.push(Binding {
                depth,
                prefix: prefix.to_vec(),
                ns,
            });
        }
        default
    }

    /// The namespace of an element with this prefix (empty: none), by the
    /// innermost declaration in scope.
    fn resolve(&self, prefix: &[u8]) -> Option<Ns> {
        match self.bindings.iter().rev().find(|b| b.prefix == prefix) {
            Some(b) => Some(b.ns),
            None if prefix.is_empty() => Some(Ns::Unbound),
            // Bound by definition (Namespaces in XML 1.0 §3).
            None if prefix == b"xml" => Some(Ns::Other),
            None => None,
        }
    }

    fn start(&mut self, e: &BytesStart<'a>) -> Result<Event<'a>, DecodeError> {
        let offset = self.offset();
        if self.root_closed && !self.fragment {
            return Err(self.err(DecodeErrorKind::Xml("a second root element".into())));
        }
        self.budget.open(offset)?;
        let declares_default = self.declare(e, self.pages.len());
        let qname = e.name().into_inner();
        let (prefix, local) = match qname.iter().position(|&b| b == b':') {
            Some(colon) => (
                qname.get(..colon).unwrap_or_default(),
                qname.get(colon + 1..).unwrap_or_default(),
            ),
            None => (&[][..], qname),
        };
        let Some(ns) = self.resolve(prefix) else {
            return Err(self.err(DecodeErrorKind::Xml(format!(
                "undeclared namespace prefix {:?}",
                String::from_utf8_lossy(prefix)
            ))));
        };
        let declared = match ns {
            Ns::Known(p) => Some(p),
            Ns::Other | Ns::Unbound => None,
        };
        // An explicit declaration on this element (or a prefix) wins; an
        // inherited namespace defers to the parent's page first.
        let explicit = !prefix.is_empty() || declares_default;
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
            // Each page once: an unknown name would otherwise be looked up
            // on the same page up to three times.
            let mut tried = [false; 3];
            order
                .iter()
                .flatten()
                .filter(|p| {
                    tried
                        .get_mut(**p as usize)
                        .is_none_or(|t| !std::mem::replace(t, true))
                })
                .find_map(|p| Tag::from_name(*p, local))
        };
        self.pages.push((tag.map(|t| t.page).or(parent), tag));
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
        if std::mem::take(&mut self.leading_feff) {
            return Ok(Event::Text(Cow::Borrowed("\u{feff}")));
        }
        loop {
            let ev = match self.reader.read_event() {
                Ok(r) => r,
                Err(e) => {
                    let kind = DecodeErrorKind::Xml(e.to_string());
                    let at = self.base + self.reader.error_position() as usize;
                    return Err(DecodeError::new(at, kind));
                }
            };
            match ev {
                XEvent::Start(e) => return self.start(&e),
                XEvent::End(_) => {
                    self.budget.close();
                    self.pages.pop();
                    let depth = self.pages.len();
                    while self.bindings.last().is_some_and(|b| b.depth >= depth) {
                        self.bindings.pop();
                    }
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
                    if let Some((_, tag)) = self.pages.last() {
                        let name = tag.map_or("an unknown element", Tag::name);
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

/// [`Page::from_namespace`], through the reader's cache.
fn page_of(cache: &mut Vec<(Vec<u8>, Option<Page>)>, ns: &[u8]) -> Option<Page> {
    const CACHED: usize = 4;
    if let Some((_, page)) = cache.iter().find(|(n, _)| n == ns) {
        return *page;
    }
    let page = Page::from_namespace(ns);
    if cache.len() < CACHED {
        cache.push((ns.to_vec(), page));
    }
    page
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
        let name = tag.name();
        self.open(name, Some(tag.page));
        self.out.push('>');
        self.open.push((Cow::Borrowed(name), Some(tag.page)));
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

    // The reader keeps namespace declarations itself (not quick-xml's
    // NsReader): a prefix is bound from its declaration to the end of the
    // declaring element, and the default namespace likewise.
    #[test]
    fn namespace_declarations_are_scoped_to_their_element() {
        assert_eq!(
            events(
                "<a:SyncML xmlns:a='SYNCML:SYNCML1.2'><a:SyncHdr>\
                 <m:MaxMsgSize xmlns:m='syncml:metinf'/></a:SyncHdr></a:SyncML>"
            )
            .unwrap(),
            [
                Event::Start(Tag::SYNCML),
                Event::Start(Tag::SYNC_HDR),
                Event::Start(Tag::MAX_MSG_SIZE),
                Event::End,
                Event::End,
                Event::End,
            ]
        );
        let err = events("<Meta><m:Format xmlns:m='syncml:metinf'/><m:Type/></Meta>").unwrap_err();
        assert!(
            matches!(&err.kind, DecodeErrorKind::Xml(m) if m.contains("undeclared namespace prefix")),
            "{err}"
        );
        // A foreign default namespace ends with its element.
        assert_eq!(
            events("<x xmlns='urn:other'/><Final/>").unwrap(),
            [
                Event::StartUnknown("x".into()),
                Event::End,
                Event::Start(Tag::FINAL),
                Event::End,
            ]
        );
    }

    #[test]
    fn a_fragment_keeps_a_leading_feff_as_text() {
        assert_eq!(
            events("\u{feff}<l/>").unwrap(),
            [
                Event::Text("\u{feff}".into()),
                Event::StartUnknown("l".into()),
                Event::End,
            ]
        );
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
