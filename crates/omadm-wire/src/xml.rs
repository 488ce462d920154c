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

pub use crate::builder::escape_into;
use crate::error::{DecodeError, DecodeErrorKind, Limits};
use crate::event::{Budget, Event, EventReader, EventWriter};
use crate::tag::{Page, Tag};
use crate::xml_lex::{namespace_declarations, normalize_line_ends, unescape, Lexer, Token};

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
/// The reader keeps these itself: a message declares a handful, and only
/// the page (or "another namespace") matters.
#[derive(Debug)]
struct Binding<'a> {
    /// Depth of the element that declared it (its index in `open`).
    depth: usize,
    prefix: &'a str,
    ns: Ns,
}

/// An open element.
#[derive(Debug)]
struct Open<'a> {
    /// Its code page (`None` for unknown elements, which keep their
    /// parent's page for lookups).
    page: Option<Page>,
    /// Its tag, for messages.
    tag: Option<Tag>,
    /// The qualified name, which the end tag must repeat.
    qname: &'a str,
}

/// Reads XML into [`Event`]s.
///
/// The input is checked to be UTF-8 once, up front; names and text are then
/// handed out as slices of it, borrowed unless a reference or a CR has to be
/// resolved.
pub struct XmlReader<'a> {
    lexer: Lexer<'a>,
    budget: Budget,
    /// Offset of the lexer's input in the caller's input (the BOM).
    base: usize,
    /// Open elements, innermost last.
    open: Vec<Open<'a>>,
    /// Namespaces already resolved to a page. A message uses two or three,
    /// so this saves a case-insensitive comparison per element; bounded, so
    /// a hostile input with many namespaces only misses the cache.
    namespaces: Vec<(&'a str, Option<Page>)>,
    /// Namespace declarations in scope, innermost last.
    bindings: Vec<Binding<'a>>,
    /// The default namespace in scope: the innermost `xmlns` of `bindings`
    /// (or unbound), kept at hand for the common unprefixed element.
    default_ns: Ns,
    /// The last start tag was an empty-element tag: its `End` is due next.
    pending_end: bool,
    /// A fragment may have several roots and text at top level.
    fragment: bool,
    /// The fragment starts with U+FEFF, still to be returned as text.
    leading_feff: bool,
    done: bool,
    root_closed: bool,
    /// Whether the input is known to fit the message limit and be UTF-8.
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
        let mut checked = budget.message(input.len());
        let (base, body) = match input.strip_prefix(BOM) {
            Some(rest) => (BOM.len(), rest),
            None => (0, input),
        };
        // A BOM starts a document; at the start of a fragment (the content
        // of `Data`) U+FEFF is text, to be kept (a fuzz finding: replaying
        // such a fragment into WBXML lost it).
        let leading_feff = fragment && base > 0;
        // XML 1.0 §2.2: the whole document is characters. Checked once here,
        // so that no name or text needs checking again.
        let body = match std::str::from_utf8(body) {
            Ok(body) => body,
            Err(e) => {
                if checked.is_ok() {
                    checked = Err(DecodeError::new(
                        base + e.valid_up_to(),
                        DecodeErrorKind::Xml("the document is not valid UTF-8".into()),
                    ));
                }
                ""
            }
        };
        XmlReader {
            lexer: Lexer::new(body),
            budget,
            base,
            // Room for the depth of a typical message and its few
            // namespaces: grown from empty, they would be reallocated
            // three times per message.
            open: Vec::with_capacity(16),
            namespaces: Vec::with_capacity(4),
            bindings: Vec::with_capacity(4),
            default_ns: Ns::Unbound,
            pending_end: false,
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
    fn declare(&mut self, attrs: &'a str, depth: usize) -> bool {
        if attrs.trim_ascii().is_empty() {
            return false;
        }
        let mut default = false;
        for (prefix, value) in namespace_declarations(attrs) {
            let ns = if value.trim_ascii().is_empty() {
                Ns::Unbound
            } else {
                match page_of(&mut self.namespaces, value) {
                    Some(p) => Ns::Known(p),
                    None => Ns::Other,
                }
            };
            if prefix.is_empty() {
                default = true;
                self.default_ns = ns;
            }
            self.bindings.push(Binding { depth, prefix, ns });
        }
        default
    }

    /// The namespace of an element with this prefix (empty: none), by the
    /// innermost declaration in scope.
    fn resolve(&self, prefix: &str) -> Option<Ns> {
        if prefix.is_empty() {
            return Some(self.default_ns);
        }
        match self.bindings.iter().rev().find(|b| b.prefix == prefix) {
            Some(b) => Some(b.ns),
            None if prefix.is_empty() => Some(Ns::Unbound),
            // Bound by definition (Namespaces in XML 1.0 §3).
            None if prefix == "xml" => Some(Ns::Other),
            None => None,
        }
    }

    fn start(
        &mut self,
        qname: &'a str,
        local_at: usize,
        attrs: &'a str,
    ) -> Result<Event<'a>, DecodeError> {
        let offset = self.offset();
        if self.root_closed && !self.fragment {
            return Err(self.err(DecodeErrorKind::Xml("a second root element".into())));
        }
        self.budget.open(offset)?;
        let parent = self.open.last().and_then(|o| o.page);
        // Most elements: no attribute, no prefix, so the namespace is the
        // default one in scope, inherited (the rules below, specialized).
        if attrs.is_empty() && local_at == 0 {
            let tag = match self.default_ns {
                Ns::Other if parent.is_none() => None,
                Ns::Known(p) => lookup(qname.as_bytes(), parent, Some(p)),
                Ns::Other | Ns::Unbound => lookup(qname.as_bytes(), parent, None),
            };
            return self.opened(tag, parent, qname, qname);
        }
        let declares_default = self.declare(attrs, self.open.len());
        let (prefix, local) = match local_at {
            0 => ("", qname),
            at => (
                qname.get(..at - 1).unwrap_or_default(),
                qname.get(at..).unwrap_or_default(),
            ),
        };
        let Some(ns) = self.resolve(prefix) else {
            return Err(self.err(DecodeErrorKind::Xml(format!(
                "undeclared namespace prefix {prefix:?}"
            ))));
        };
        let declared = match ns {
            Ns::Known(p) => Some(p),
            Ns::Other | Ns::Unbound => None,
        };
        // An explicit declaration on this element (or a prefix) wins; an
        // inherited namespace defers to the parent's page first.
        let explicit = !prefix.is_empty() || declares_default;
        let bound_to_other = matches!(ns, Ns::Other);
        let tag = if bound_to_other && (explicit || parent.is_none()) {
            // A namespace we do not know: not one of ours.
            None
        } else if explicit {
            lookup(local.as_bytes(), declared, None)
        } else {
            lookup(local.as_bytes(), parent, declared)
        };
        self.opened(tag, parent, qname, local)
    }

    /// Pushes the element just started, with its tag if it has one.
    fn opened(
        &mut self,
        tag: Option<Tag>,
        parent: Option<Page>,
        qname: &'a str,
        local: &'a str,
    ) -> Result<Event<'a>, DecodeError> {
        self.open.push(Open {
            page: tag.map(|t| t.page).or(parent),
            tag,
            qname,
        });
        Ok(match tag {
            Some(t) => Event::Start(t),
            None => {
                // The writers copy the name verbatim, and the WBXML reader
                // refuses a LITERAL that is not a name.
                if !crate::wbxml::is_xml_name(local) {
                    let shown: String = local.chars().take(40).collect();
                    return Err(self.err(DecodeErrorKind::Xml(format!(
                        "{shown:?} is not an XML element name"
                    ))));
                }
                Event::StartUnknown(Cow::Borrowed(local))
            }
        })
    }

    fn end(&mut self) -> Event<'a> {
        self.budget.close();
        self.open.pop();
        let depth = self.open.len();
        let mut default_ended = false;
        while let Some(b) = self.bindings.pop_if(|b| b.depth >= depth) {
            default_ended |= b.prefix.is_empty();
        }
        if default_ended {
            self.default_ns = self
                .bindings
                .iter()
                .rev()
                .find(|b| b.prefix.is_empty())
                .map_or(Ns::Unbound, |b| b.ns);
        }
        if self.open.is_empty() {
            self.root_closed = true;
        }
        Event::End
    }

    /// Character data: line ends normalized, references resolved (unless
    /// the lexer saw it is `plain`).
    fn text(&self, raw: &'a str, plain: bool) -> Result<Event<'a>, DecodeError> {
        self.budget.string(raw.len(), self.offset())?;
        if plain {
            return Ok(Event::Text(Cow::Borrowed(raw)));
        }
        let text = unescape(normalize_line_ends(raw)).map_err(|e| self.xml_err(e))?;
        Ok(Event::Text(text))
    }
}

impl<'a> EventReader<'a> for XmlReader<'a> {
    fn next_event(&mut self) -> Result<Event<'a>, DecodeError> {
        if let Err(e) = &self.checked {
            return Err(e.clone());
        }
        if self.done {
            return Ok(Event::Eof);
        }
        if std::mem::take(&mut self.pending_end) {
            return Ok(self.end());
        }
        if std::mem::take(&mut self.leading_feff) {
            return Ok(Event::Text(Cow::Borrowed("\u{feff}")));
        }
        loop {
            let expected = self.open.last().map_or("", |o| o.qname);
            let token = self
                .lexer
                .next_token(expected)
                .map_err(|e| DecodeError::new(self.base + e.at, DecodeErrorKind::Xml(e.message)))?;
            match token {
                Token::Start {
                    name,
                    local,
                    attrs,
                    empty,
                } => {
                    let ev = self.start(name, local, attrs)?;
                    self.pending_end = empty;
                    return Ok(ev);
                }
                Token::End { name, expected } => {
                    let Some(open) = self.open.last() else {
                        return Err(self.err(DecodeErrorKind::Xml(format!(
                            "unexpected end tag </{name}> with no open element"
                        ))));
                    };
                    if !expected {
                        let shown: String = name.chars().take(40).collect();
                        return Err(self.err(DecodeErrorKind::Xml(format!(
                            "expecting </{}> but found </{shown}>",
                            open.qname
                        ))));
                    }
                    return Ok(self.end());
                }
                Token::Text { raw, plain } => {
                    if self.open.is_empty() && !self.fragment {
                        // Whitespace (or a NUL, QUIRKS.md) outside the root.
                        if raw.bytes().all(|b| b.is_ascii_whitespace() || b == 0) {
                            continue;
                        }
                        return Err(
                            self.err(DecodeErrorKind::Xml("text outside the root element".into()))
                        );
                    }
                    return self.text(raw, plain);
                }
                Token::CData(c) => {
                    self.budget.string(c.len(), self.offset())?;
                    return Ok(Event::Text(normalize_line_ends(c)));
                }
                Token::Eof => {
                    if let Some(open) = self.open.last() {
                        let name = open.tag.map_or("an unknown element", Tag::name);
                        return Err(self.err(DecodeErrorKind::UnexpectedEof(format!("<{name}>"))));
                    }
                    self.done = true;
                    return Ok(Event::Eof);
                }
            }
        }
    }

    fn offset(&self) -> usize {
        self.base + self.lexer.position()
    }

    fn skip_blank_text(&mut self) {
        // After an empty-element tag the whitespace is its parent's content.
        if !self.open.is_empty() && !self.leading_feff && !self.pending_end {
            self.lexer.skip_blank(self.budget.max_string_len());
        }
    }

    fn leaf_text(&mut self) -> Option<&'a str> {
        if self.checked.is_err() || self.leading_feff {
            return None;
        }
        if self.pending_end {
            self.pending_end = false;
            self.end();
            return Some("");
        }
        let qname = self.open.last()?.qname;
        // Over the limit, the text is left for the event path to report.
        let text = self.lexer.leaf_text(qname, self.budget.max_string_len())?;
        self.end();
        Some(text)
    }
}

/// The tag named `local` on page `first`, else on `second`, else on any
/// page, each page tried once.
fn lookup(local: &[u8], first: Option<Page>, second: Option<Page>) -> Option<Tag> {
    if let Some(tag) = first.and_then(|p| Tag::from_name(p, local)) {
        return Some(tag);
    }
    if second != first {
        if let Some(tag) = second.and_then(|p| Tag::from_name(p, local)) {
            return Some(tag);
        }
    }
    [Page::SyncMl, Page::MetInf, Page::DmDdf]
        .into_iter()
        .filter(|&p| Some(p) != first && Some(p) != second)
        .find_map(|p| Tag::from_name(p, local))
}

/// [`Page::from_namespace`], through the reader's cache.
fn page_of<'a>(cache: &mut Vec<(&'a str, Option<Page>)>, ns: &'a str) -> Option<Page> {
    const CACHED: usize = 4;
    if let Some((_, page)) = cache.iter().find(|(n, _)| *n == ns) {
        return *page;
    }
    let page = Page::from_namespace(ns.as_bytes());
    if cache.len() < CACHED {
        cache.push((ns, page));
    }
    page
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

    /// A compact writer whose output starts with room for `bytes`.
    pub fn with_capacity(bytes: usize) -> XmlWriter {
        XmlWriter {
            out: String::with_capacity(bytes),
            open: Vec::with_capacity(16),
            ..XmlWriter::default()
        }
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

    fn binary_as_base64(&self) -> bool {
        true
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
            matches!(err.kind(), DecodeErrorKind::Xml(m) if m.contains("undeclared namespace prefix")),
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

    // The default namespace in scope is restored when an element that
    // redeclared it ends.
    #[test]
    fn a_redeclared_default_namespace_ends_with_its_element() {
        assert_eq!(
            events("<x xmlns='urn:o'><Type xmlns='syncml:metinf'/><Final/></x><Final/>").unwrap(),
            [
                Event::StartUnknown("x".into()),
                Event::Start(Tag::TYPE),
                Event::End,
                Event::StartUnknown("Final".into()),
                Event::End,
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
            matches!(err.kind(), DecodeErrorKind::Xml(m) if m.contains("not an XML element name")),
            "{err}"
        );
        assert_eq!(
            events("<ResultCode/>").unwrap(),
            [Event::StartUnknown("ResultCode".into()), Event::End]
        );
    }
}
