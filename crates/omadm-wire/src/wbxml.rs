//! WBXML codec: bytes ⇄ [`Event`]s (`WBXML.md`, WAP-192-WBXML 1.3).
//!
//! ```text
//!  bytes ─▶ WbxmlReader::new   header: version publicid charset strtbl
//!            └─ next_event()    body:   *pi element *pi  ─▶ Event …, Eof
//!
//!  Event … ─▶ WbxmlWriter       body buffered, string table collected
//!            └─ finish()        header + strtbl + body ─▶ bytes
//! ```
//!
//! Code pages stay inside this module: the reader keeps the current tag page
//! and maps `(page, token)` to a [`Tag`], the writer switches page lazily
//! (only before a start tag on another page), as libwbxml and the SyncML RTK
//! do (`WBXML.md` §5). Attributes, processing instructions and string-table
//! references are accepted on input and never produced.
//!
//! The reader treats its input as hostile: every length and offset is
//! bounds-checked, the [`Limits`] are enforced through the shared budget, and
//! every malformed input is a [`DecodeError`] carrying the byte offset.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::fmt;

use crate::error::{DecodeError, DecodeErrorKind, Limits};
use crate::event::{replay_fragment, Budget, Event, EventReader, EventWriter};
use crate::tag::{Page, Tag};

// Global tokens, the same on every code page (`WBXML.md` §2).
const SWITCH_PAGE: u8 = 0x00;
const END: u8 = 0x01;
const ENTITY: u8 = 0x02;
const STR_I: u8 = 0x03;
const LITERAL: u8 = 0x04;
const EXT_I_0: u8 = 0x40;
const EXT_I_2: u8 = 0x42;
const PI: u8 = 0x43;
const LITERAL_C: u8 = 0x44;
const EXT_T_0: u8 = 0x80;
const EXT_T_2: u8 = 0x82;
const STR_T: u8 = 0x83;
const LITERAL_A: u8 = 0x84;
const EXT_0: u8 = 0xC0;
const EXT_2: u8 = 0xC2;
const OPAQUE: u8 = 0xC3;
const LITERAL_AC: u8 = 0xC4;

/// Tag-byte bit: the element has content, terminated by END.
const TAG_CONTENT: u8 = 0x40;
/// Tag-byte bit: the element has an attribute list, terminated by END.
const TAG_ATTRIBUTES: u8 = 0x80;
/// Tag-byte bits that identify the tag on its page.
const TAG_ID: u8 = 0x3F;

/// WBXML 1.2, what SyncML/DM encoders in the field emit (`WBXML.md` §1).
const VERSION_1_2: u8 = 0x02;
/// Oldest and newest accepted versions (1.1 to 1.3; the tokens are the same).
const VERSIONS: std::ops::RangeInclusive<u8> = 0x01..=0x03;
/// IANA MIBenum of UTF-8.
const CHARSET_UTF8: u32 = 106;
/// Charset 0 means "unknown"; DM documents are UTF-8 whatever they say.
const CHARSET_UNKNOWN: u32 = 0;
/// A public id of 0 is not an id: it introduces a string-table index.
const PUBLIC_ID_LITERAL: u32 = 0;
/// An mb_u_int32 carries 32 bits in at most 5 bytes of 7 bits.
const MB_U_INT32_MAX_LEN: usize = 5;

/// The document type of a WBXML document (`WBXML.md` §3): a well-known
/// numeric id, or a formal public identifier stored in the string table.
///
/// The two forms name the same DTDs: `Numeric(0x1201)` and
/// `Literal("-//SYNCML//DTD SyncML 1.2//EN")` are both SyncML 1.2; compare
/// through [`PublicId::fpi`] or the `is_*` helpers rather than with `==`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PublicId {
    /// A well-known numeric id (0x1201 = SyncML 1.2, 0x01 = unknown).
    Numeric(u32),
    /// A formal public identifier, written as `00` + string-table index.
    Literal(String),
}

impl PublicId {
    /// Unknown document type (id 0x01): rely on the root element instead.
    pub const UNKNOWN: PublicId = PublicId::Numeric(0x01);
    /// SyncML 1.2, the id of every DM 1.2 message (bytes `A4 01`).
    pub const SYNCML_1_2: PublicId = PublicId::Numeric(0x1201);
    /// Formal public identifier of SyncML 1.2.
    pub const SYNCML_1_2_FPI: &'static str = "-//SYNCML//DTD SyncML 1.2//EN";
    /// Formal public identifier of DM DDF 1.2 (DDF and TNDS documents), which
    /// has no numeric id and so always travels in the string table.
    pub const DM_DDF_1_2_FPI: &'static str = "-//OMA//DTD-DM-DDF 1.2//EN";

    /// The literal public id of DM DDF 1.2 / TNDS documents (`WBXML.md` §7.3).
    pub fn dm_ddf_1_2() -> PublicId {
        PublicId::Literal(Self::DM_DDF_1_2_FPI.to_owned())
    }

    /// The formal public identifier this id stands for, if it is a literal
    /// or a numeric id from the table of `WBXML.md` §3.
    pub fn fpi(&self) -> Option<&str> {
        match self {
            PublicId::Literal(fpi) => Some(fpi),
            PublicId::Numeric(id) => NUMERIC_IDS
                .iter()
                .find(|(known, _)| known == id)
                .map(|(_, fpi)| *fpi),
        }
    }

    /// Whether this is SyncML 1.2, in either form.
    pub fn is_syncml_1_2(&self) -> bool {
        self.fpi() == Some(Self::SYNCML_1_2_FPI)
    }

    /// Whether this is DM DDF 1.2 (a DDF or TNDS document).
    pub fn is_dm_ddf_1_2(&self) -> bool {
        self.fpi() == Some(Self::DM_DDF_1_2_FPI)
    }

    /// Whether the document does not say what it is (id 0x01, or a numeric
    /// id nobody registered for SyncML).
    pub fn is_unknown(&self) -> bool {
        self.fpi().is_none()
    }
}

impl fmt::Display for PublicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublicId::Numeric(id) => write!(f, "0x{id:04X}"),
            PublicId::Literal(fpi) => f.write_str(fpi),
        }
    }
}

/// Numeric public ids of the SyncML family (`WBXML.md` §3).
const NUMERIC_IDS: &[(u32, &str)] = &[
    (0x0FD1, "-//SYNCML//DTD SyncML 1.0//EN"),
    (0x0FD2, "-//SYNCML//DTD DevInf 1.0//EN"),
    (0x0FD3, "-//SYNCML//DTD SyncML 1.1//EN"),
    (0x0FD4, "-//SYNCML//DTD DevInf 1.1//EN"),
    (0x1201, PublicId::SYNCML_1_2_FPI),
    (0x1202, "-//SYNCML//DTD MetInf 1.2//EN"),
    (0x1203, "-//SYNCML//DTD DevInf 1.2//EN"),
];

/// Decodes a WBXML document into [`Event`]s.
///
/// [`WbxmlReader::new`] parses the header; [`EventReader::next_event`] then
/// yields the body. Strings are borrowed from the input where possible. An
/// element without content (`<Final/>`, bare token `12`) yields `Start` and
/// then `End` on the next call. Once an error is returned, every later call
/// returns the same error.
#[derive(Debug)]
pub struct WbxmlReader<'a> {
    input: &'a [u8],
    /// Offset of the next unread byte; never beyond `input.len()`.
    pos: usize,
    version: u8,
    public_id: PublicId,
    strtbl: &'a [u8],
    /// Current tag code page: sticky, changed only by SWITCH_PAGE.
    page: Page,
    budget: Budget,
    /// Open elements, innermost last; bounded by `Limits::max_depth`.
    open: Vec<Open<'a>>,
    /// The last start tag had no content: its `End` is due next.
    pending_end: bool,
    state: State,
    /// The limits, for a nested document in `Data`.
    limits: Limits,
    /// Events of a nested TNDS document still to be returned.
    nested: VecDeque<Event<'a>>,
}

/// An open element, kept to name it when the input ends inside it.
#[derive(Clone, Copy, Debug)]
enum Open<'a> {
    Known(Tag),
    Literal(&'a str),
}

impl Open<'_> {
    fn name(&self) -> &str {
        match self {
            Open::Known(tag) => tag.name(),
            Open::Literal(name) => name,
        }
    }
}

/// Where the reader is in `body = *pi element *pi`.
#[derive(Debug)]
enum State {
    /// Before the root element.
    Prolog,
    /// Inside the root element.
    Content,
    /// The root element has closed; only PIs may follow.
    Epilog,
    /// `Eof` has been returned.
    Done,
    /// An error has been returned; it is returned again.
    Failed(DecodeError),
}

impl<'a> WbxmlReader<'a> {
    /// Parses the header of `input` (`WBXML.md` §1): version 0x01–0x03, a
    /// numeric or literal public id, charset UTF-8 (106) or unknown (0), and
    /// the string table. The body is read by [`EventReader::next_event`].
    pub fn new(input: &'a [u8], limits: &Limits) -> Result<WbxmlReader<'a>, DecodeError> {
        let budget = Budget::new(limits);
        budget.message(input.len())?;

        let version = *input
            .first()
            .ok_or_else(|| wbxml(0, "empty input: no WBXML header"))?;
        if !VERSIONS.contains(&version) {
            return Err(wbxml(
                0,
                format!("unsupported WBXML version 0x{version:02X} (0x01 to 0x03 are accepted)"),
            ));
        }
        let mut pos = 1;

        let (raw_id, next) = header_mb(input, pos, "public id")?;
        pos = next;
        // The index of a literal id points into a table that comes later.
        let literal_index = if raw_id == PUBLIC_ID_LITERAL {
            let (index, next) = header_mb(input, pos, "public id index")?;
            let at = pos;
            pos = next;
            Some((index, at))
        } else {
            None
        };

        let charset_at = pos;
        let (charset, next) = header_mb(input, pos, "charset")?;
        pos = next;
        if charset != CHARSET_UTF8 && charset != CHARSET_UNKNOWN {
            return Err(wbxml(
                charset_at,
                format!(
                    "unsupported charset (MIBenum {charset}): only UTF-8 (106) or unknown (0) is accepted"
                ),
            ));
        }

        let strtbl_at = pos;
        let (len, next) = header_mb(input, pos, "string table length")?;
        pos = next;
        let strtbl = usize::try_from(len)
            .ok()
            .and_then(|len| pos.checked_add(len))
            .and_then(|end| input.get(pos..end))
            .ok_or_else(|| {
                wbxml(
                    strtbl_at,
                    format!(
                        "string table length {len} runs past the end of the input ({} bytes left)",
                        input.len().saturating_sub(pos)
                    ),
                )
            })?;
        pos += strtbl.len();

        let public_id = match literal_index {
            None => PublicId::Numeric(raw_id),
            Some((index, at)) => {
                PublicId::Literal(table_str(strtbl, index, at, "literal public id")?.to_owned())
            }
        };

        Ok(WbxmlReader {
            input,
            pos,
            version,
            public_id,
            strtbl,
            page: Page::SyncMl,
            budget,
            open: Vec::with_capacity(16),
            pending_end: false,
            state: State::Prolog,
            limits: limits.clone(),
            nested: VecDeque::new(),
        })
    }

    /// The version byte of the header (0x01 = 1.1, 0x02 = 1.2, 0x03 = 1.3).
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The document's public id, as the header gave it.
    pub fn public_id(&self) -> PublicId {
        self.public_id.clone()
    }

    fn step(&mut self) -> Result<Event<'a>, DecodeError> {
        if self.pending_end {
            self.pending_end = false;
            return Ok(self.close());
        }
        loop {
            let at = self.pos;
            let Some(&token) = self.input.get(at) else {
                return self.end_of_input();
            };
            self.pos = at + 1;

            if matches!(self.state, State::Epilog) {
                match token {
                    PI => {
                        self.skip_attributes("a processing instruction")?;
                        continue;
                    }
                    END => return Err(wbxml(at, "END with no open element")),
                    _ => {
                        return Err(wbxml(
                            at,
                            format!("trailing data after the root element (token 0x{token:02X})"),
                        ))
                    }
                }
            }

            match token {
                SWITCH_PAGE => self.switch_page(at)?,
                PI => self.skip_attributes("a processing instruction")?,
                END => {
                    if self.open.is_empty() {
                        return Err(wbxml(at, "END with no open element"));
                    }
                    return Ok(self.close());
                }
                STR_I => {
                    self.in_element(at, "STR_I")?;
                    let text = self.inline_str(at)?;
                    return Ok(Event::Text(Cow::Borrowed(text)));
                }
                STR_T => {
                    self.in_element(at, "STR_T")?;
                    let (index, index_at) = self.mb("STR_T")?;
                    let text = table_str(self.strtbl, index, index_at, "STR_T")?;
                    self.budget.string(text.len(), at)?;
                    return Ok(Event::Text(Cow::Borrowed(text)));
                }
                ENTITY => {
                    self.in_element(at, "ENTITY")?;
                    let (code, code_at) = self.mb("ENTITY")?;
                    // NUL is a scalar value but no XML character, and could
                    // not be written back as STR_I either.
                    let c = char::from_u32(code).filter(|&c| c != '\0').ok_or_else(|| {
                        wbxml(code_at, format!("ENTITY 0x{code:X} is not a character"))
                    })?;
                    return Ok(Event::Text(Cow::Owned(c.to_string())));
                }
                OPAQUE => {
                    self.in_element(at, "OPAQUE")?;
                    let bytes = self.opaque(at)?;
                    if let Some(events) = self.nested_document(bytes)? {
                        self.nested = events.into();
                        match self.nested.pop_front() {
                            Some(ev) => return Ok(ev),
                            None => continue,
                        }
                    }
                    return Ok(Event::Opaque(Cow::Borrowed(bytes)));
                }
                LITERAL | LITERAL_C | LITERAL_A | LITERAL_AC => {
                    return self.literal_element(at, token)
                }
                EXT_I_0..=EXT_I_2 | EXT_T_0..=EXT_T_2 | EXT_0..=EXT_2 => {
                    return Err(wbxml(
                        at,
                        format!("extension token 0x{token:02X} is not used by SyncML"),
                    ))
                }
                _ => return self.tag_element(at, token),
            }
        }
    }

    /// A TNDS tree in `Data` travels as OPAQUE holding a whole DM DDF 1.2
    /// WBXML document (`WBXML.md` §6, §7.3; libwbxml does the same): its
    /// events are spliced in, so the builder sees the tree as it would in
    /// XML. Anything else in OPAQUE, or OPAQUE outside `Data`, is data.
    /// `bytes` are the OPAQUE's, just read.
    fn nested_document(&self, bytes: &'a [u8]) -> Result<Option<Vec<Event<'a>>>, DecodeError> {
        if !matches!(self.open.last(), Some(Open::Known(Tag::DATA))) {
            return Ok(None);
        }
        // The nested tree counts towards the depth of the outer one.
        let limits = Limits {
            max_depth: self.limits.max_depth.saturating_sub(self.open.len()),
            ..self.limits.clone()
        };
        let Ok(mut reader) = WbxmlReader::new(bytes, &limits) else {
            return Ok(None);
        };
        if !reader.public_id().is_dm_ddf_1_2() {
            return Ok(None);
        }
        let base = self.pos - bytes.len();
        let mut events = Vec::new();
        loop {
            match reader.next_event() {
                Ok(Event::Eof) => return Ok(Some(events)),
                Ok(ev) => events.push(ev),
                Err(e) => {
                    let offset = e.offset();
                    let kind = match e.into_kind() {
                        DecodeErrorKind::Wbxml(m) => {
                            DecodeErrorKind::Wbxml(format!("nested TNDS document: {m}"))
                        }
                        kind => kind,
                    };
                    return Err(DecodeError::new(base + offset, kind));
                }
            }
        }
    }

    /// The input ended between tokens: fine after the root, an error before
    /// or inside it.
    fn end_of_input(&mut self) -> Result<Event<'a>, DecodeError> {
        if matches!(self.state, State::Epilog) {
            self.state = State::Done;
            return Ok(Event::Eof);
        }
        match self.open.last() {
            Some(open) => Err(DecodeError::new(
                self.pos,
                DecodeErrorKind::UnexpectedEof(format!("<{}>", open.name())),
            )),
            None => Err(wbxml(self.pos, "no root element")),
        }
    }

    /// Character data is content: it cannot precede the root element.
    fn in_element(&self, at: usize, what: &str) -> Result<(), DecodeError> {
        if self.open.is_empty() {
            return Err(wbxml(at, format!("{what} outside the root element")));
        }
        Ok(())
    }

    fn switch_page(&mut self, at: usize) -> Result<(), DecodeError> {
        let n = self.page_byte()?;
        self.page = Page::from_number(n).ok_or_else(|| {
            wbxml(
                at,
                format!("SWITCH_PAGE to unknown tag code page {n} (pages 0 to 2 are defined)"),
            )
        })?;
        Ok(())
    }

    /// The page number after a SWITCH_PAGE token.
    fn page_byte(&mut self) -> Result<u8, DecodeError> {
        let n = *self
            .input
            .get(self.pos)
            .ok_or_else(|| wbxml(self.input.len(), "input ends after SWITCH_PAGE"))?;
        self.pos += 1;
        Ok(n)
    }

    /// A tag token of the current page (`at` holds the tag byte).
    fn tag_element(&mut self, at: usize, token: u8) -> Result<Event<'a>, DecodeError> {
        let id = token & TAG_ID;
        let tag = Tag::from_token(self.page, id).ok_or_else(|| {
            wbxml(
                at,
                format!(
                    "unknown tag token 0x{id:02X} on code page {} ({})",
                    self.page as u8,
                    self.page.namespace()
                ),
            )
        })?;
        if token & TAG_ATTRIBUTES != 0 {
            self.skip_attributes("an attribute list")?;
        }
        self.open_element(at, Open::Known(tag), token & TAG_CONTENT != 0)
    }

    /// LITERAL, LITERAL_C, LITERAL_A or LITERAL_AC: the name comes from the
    /// string table, and the content/attribute bits are those of a tag byte.
    fn literal_element(&mut self, at: usize, token: u8) -> Result<Event<'a>, DecodeError> {
        let (index, index_at) = self.mb("literal tag name")?;
        let name = table_str(self.strtbl, index, index_at, "literal tag name")?;
        self.budget.string(name.len(), at)?;
        // The name reaches the XML writer verbatim: refuse anything that
        // would not be an element name there (markup injection).
        if !is_xml_name(name) {
            let shown: String = name.chars().take(40).collect();
            return Err(wbxml(
                index_at,
                format!("literal tag name {shown:?} is not an XML element name"),
            ));
        }
        // Some encoders spell known tags literally; the builder should not
        // have to care.
        let open = match Tag::from_name(self.page, name.as_bytes()) {
            Some(tag) => Open::Known(tag),
            None => Open::Literal(name),
        };
        if token & TAG_ATTRIBUTES != 0 {
            self.skip_attributes("an attribute list")?;
        }
        self.open_element(at, open, token & TAG_CONTENT != 0)
    }

    #[inline]
    fn open_element(
        &mut self,
        at: usize,
        open: Open<'a>,
        has_content: bool,
    ) -> Result<Event<'a>, DecodeError> {
        self.budget.open(at)?;
        self.open.push(open);
        self.state = State::Content;
        self.pending_end = !has_content;
        Ok(match open {
            Open::Known(tag) => Event::Start(tag),
            Open::Literal(name) => Event::StartUnknown(Cow::Borrowed(name)),
        })
    }

    fn close(&mut self) -> Event<'a> {
        self.open.pop();
        self.budget.close();
        if self.open.is_empty() {
            self.state = State::Epilog;
        }
        Event::End
    }

    /// Skips an attribute list or a PI up to and including its END. SyncML
    /// has no attributes, but a decoder must not choke on a document that
    /// carries some (`WBXML.md` §8). SWITCH_PAGE in here switches the
    /// attribute page, which is separate from the tag page, so it is ignored.
    fn skip_attributes(&mut self, what: &str) -> Result<(), DecodeError> {
        loop {
            let at = self.pos;
            let Some(&token) = self.input.get(at) else {
                return Err(wbxml(self.input.len(), format!("input ends inside {what}")));
            };
            self.pos = at + 1;
            match token {
                END => return Ok(()),
                SWITCH_PAGE => {
                    self.page_byte()?;
                }
                STR_I | EXT_I_0..=EXT_I_2 => {
                    self.inline_str(at)?;
                }
                ENTITY | STR_T | LITERAL | EXT_T_0..=EXT_T_2 => {
                    self.mb(what)?;
                }
                OPAQUE => {
                    self.opaque(at)?;
                }
                PI | LITERAL_C | LITERAL_A | LITERAL_AC => {
                    return Err(wbxml(
                        at,
                        format!("token 0x{token:02X} is not allowed inside {what}"),
                    ))
                }
                // ATTRSTART, ATTRVALUE and EXT_0..2 are single bytes.
                _ => {}
            }
        }
    }

    /// The NUL-terminated UTF-8 string after STR_I (or EXT_I_n) at `at`.
    fn inline_str(&mut self, at: usize) -> Result<&'a str, DecodeError> {
        let start = self.pos;
        let rest = self.input.get(start..).unwrap_or_default();
        let len = memchr::memchr(0, rest)
            .ok_or_else(|| wbxml(at, "inline string (STR_I) has no terminating NUL"))?;
        self.budget.string(len, at)?;
        let bytes = rest.get(..len).unwrap_or_default();
        let text = std::str::from_utf8(bytes).map_err(|e| {
            wbxml(
                start + e.valid_up_to(),
                "inline string (STR_I) is not valid UTF-8",
            )
        })?;
        self.pos = start + len + 1;
        Ok(text)
    }

    /// The length and bytes after OPAQUE at `at`.
    fn opaque(&mut self, at: usize) -> Result<&'a [u8], DecodeError> {
        let (len, _) = self.mb("OPAQUE length")?;
        let start = self.pos;
        let input = self.input;
        let bytes = usize::try_from(len)
            .ok()
            .and_then(|len| start.checked_add(len))
            .and_then(|end| input.get(start..end))
            .ok_or_else(|| {
                wbxml(
                    at,
                    format!(
                        "OPAQUE length {len} runs past the end of the input ({} bytes left)",
                        input.len().saturating_sub(start)
                    ),
                )
            })?;
        self.budget.string(bytes.len(), at)?;
        self.pos = start + bytes.len();
        Ok(bytes)
    }

    /// An mb_u_int32 at the current position, and where it started.
    fn mb(&mut self, what: &str) -> Result<(u32, usize), DecodeError> {
        let at = self.pos;
        let (value, next) = read_mb_u_int32(self.input, at).map_err(|e| in_context(e, what))?;
        self.pos = next;
        Ok((value, at))
    }
}

impl<'a> EventReader<'a> for WbxmlReader<'a> {
    fn next_event(&mut self) -> Result<Event<'a>, DecodeError> {
        if let Some(ev) = self.nested.pop_front() {
            return Ok(ev);
        }
        match &self.state {
            State::Done => return Ok(Event::Eof),
            State::Failed(err) => return Err(err.clone()),
            State::Prolog | State::Content | State::Epilog => {}
        }
        match self.step() {
            Ok(ev) => Ok(ev),
            Err(err) => {
                self.state = State::Failed(err.clone());
                Err(err)
            }
        }
    }

    fn offset(&self) -> usize {
        self.pos
    }

    /// `STR_I text END`, or the end of an element without content.
    fn leaf_text(&mut self) -> Option<&'a str> {
        if !self.nested.is_empty() || !matches!(self.state, State::Content) {
            return None;
        }
        if self.pending_end {
            self.pending_end = false;
            self.close();
            return Some("");
        }
        let start = self.pos.checked_add(1)?;
        if self.input.get(self.pos) != Some(&STR_I) {
            return None;
        }
        let rest = self.input.get(start..)?;
        let len = memchr::memchr(0, rest)?;
        // Over the limit, or not UTF-8: the event path reports it.
        if len > self.budget.max_string_len() || rest.get(len + 1) != Some(&END) {
            return None;
        }
        let text = std::str::from_utf8(rest.get(..len)?).ok()?;
        self.pos = start + len + 2;
        self.close();
        Some(text)
    }
}

/// Encodes [`Event`]s as a WBXML 1.2 document, UTF-8, no attributes.
///
/// The body is buffered because literal (unknown) element names go to the
/// string table, which precedes the body; [`WbxmlWriter::finish`] writes the
/// header, the table and the body. Text containing NUL cannot be STR_I and
/// is written as OPAQUE.
#[derive(Clone, Debug)]
pub struct WbxmlWriter {
    public_id: PublicId,
    strtbl: Vec<u8>,
    /// Offsets of the strings already in `strtbl`, so repeated literal names
    /// share one entry.
    strtbl_index: HashMap<String, u32>,
    /// The header for an empty string table, then the body: when no string
    /// table is needed (a message without unknown elements), this is the
    /// document, and `finish` hands it out without copying.
    body: Vec<u8>,
    /// Length of the header at the start of `body`.
    header_len: usize,
    /// Tag page the body is on; a decoder starts on page 0.
    page: Page,
    /// The innermost open element is a MetInf `Type` (see `text`).
    in_type: bool,
}

impl WbxmlWriter {
    /// A writer for a SyncML 1.2 message: version 0x02, public id 0x1201,
    /// UTF-8, empty string table unless unknown elements are written
    /// (`WBXML.md` §7.1).
    pub fn new() -> WbxmlWriter {
        WbxmlWriter::with_public_id(PublicId::SYNCML_1_2)
    }

    /// A SyncML 1.2 writer whose body starts with room for `bytes`.
    pub fn with_capacity(bytes: usize) -> WbxmlWriter {
        let mut writer = WbxmlWriter::new();
        writer.body.reserve(bytes);
        writer
    }

    /// A writer for a document with another public id, e.g.
    /// [`PublicId::dm_ddf_1_2`] for DDF and TNDS documents, whose literal id
    /// goes first in the string table (`WBXML.md` §7.3).
    /// `Numeric(0)` cannot be encoded (0 introduces a literal id) and is
    /// written as unknown (0x01).
    pub fn with_public_id(public_id: PublicId) -> WbxmlWriter {
        let mut writer = WbxmlWriter {
            public_id,
            strtbl: Vec::new(),
            strtbl_index: HashMap::new(),
            body: Vec::new(),
            header_len: 0,
            page: Page::SyncMl,
            in_type: false,
        };
        if let PublicId::Literal(fpi) = &writer.public_id {
            let fpi = fpi.clone();
            writer.intern(&fpi);
        }
        writer.body = writer.header(0);
        writer.header_len = writer.body.len();
        writer
    }

    /// The encoded document: header, string table, body.
    pub fn finish(mut self) -> Vec<u8> {
        if self.strtbl.is_empty() {
            return self.body;
        }
        let body = self.body.get(self.header_len..).unwrap_or_default();
        let mut out = self.header(self.strtbl.len());
        out.reserve(self.strtbl.len() + body.len());
        out.append(&mut self.strtbl);
        out.extend_from_slice(body);
        out
    }

    /// The header (`WBXML.md` §1) for a string table of `strtbl_len` bytes.
    fn header(&self, strtbl_len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        out.push(VERSION_1_2);
        match &self.public_id {
            PublicId::Numeric(PUBLIC_ID_LITERAL) => {
                write_mb_u_int32(&mut out, 0x01);
            }
            PublicId::Numeric(id) => write_mb_u_int32(&mut out, *id),
            PublicId::Literal(_) => {
                out.push(0x00);
                // Interned by `with_public_id` before anything else.
                write_mb_u_int32(&mut out, 0);
            }
        }
        write_mb_u_int32(&mut out, CHARSET_UTF8);
        write_mb_u_int32(&mut out, saturating_u32(strtbl_len));
        out
    }

    /// Lazy SWITCH_PAGE: only when the next start tag lives on another page.
    fn switch_to(&mut self, page: Page) {
        if page != self.page {
            self.body.push(SWITCH_PAGE);
            self.body.push(page as u8);
            self.page = page;
        }
    }

    /// The string-table offset of `s`, adding it on first use.
    fn intern(&mut self, s: &str) -> u32 {
        // A string-table entry ends at NUL; a name cannot contain one.
        let s = s.split('\0').next().unwrap_or_default();
        if let Some(&offset) = self.strtbl_index.get(s) {
            return offset;
        }
        let offset = saturating_u32(self.strtbl.len());
        self.strtbl.extend_from_slice(s.as_bytes());
        self.strtbl.push(0);
        self.strtbl_index.insert(s.to_owned(), offset);
        offset
    }
}

impl Default for WbxmlWriter {
    fn default() -> Self {
        WbxmlWriter::new()
    }
}

impl EventWriter for WbxmlWriter {
    fn start(&mut self, tag: Tag) {
        self.switch_to(tag.page);
        self.body.push(tag.token | TAG_CONTENT);
        self.in_type = tag == Tag::TYPE;
    }

    fn start_unknown(&mut self, name: &str) {
        self.in_type = false;
        let offset = self.intern(name);
        self.body.push(LITERAL_C);
        write_mb_u_int32(&mut self.body, offset);
    }

    fn end(&mut self) {
        self.in_type = false;
        self.body.push(END);
    }

    fn empty(&mut self, tag: Tag) {
        self.in_type = false;
        self.switch_to(tag.page);
        self.body.push(tag.token);
    }

    fn text(&mut self, text: &str) {
        // The TNDS object goes out as WBXML (`xml_fragment`), so its type
        // does too (the builder maps it back, `builder::xml_form_type`).
        let text = if self.in_type && text == TNDS_XML {
            TNDS_WBXML
        } else {
            text
        };
        if text.contains('\0') {
            self.opaque(text.as_bytes());
            return;
        }
        self.body.push(STR_I);
        self.body.extend_from_slice(text.as_bytes());
        self.body.push(0);
    }

    fn opaque(&mut self, bytes: &[u8]) {
        // WBXML cannot say more than 4 GiB; a message that large is far
        // beyond any MaxMsgSize, so cut rather than corrupt the length.
        let len = saturating_u32(bytes.len());
        let bytes = bytes.get(..len as usize).unwrap_or(bytes);
        self.body.push(OPAQUE);
        write_mb_u_int32(&mut self.body, len);
        self.body.extend_from_slice(bytes);
    }

    /// A TNDS tree (a fragment that is one DM DDF element) becomes a nested
    /// DM DDF 1.2 WBXML document in OPAQUE (`WBXML.md` §6, §7.3), which is
    /// how libwbxml and the RTK carry it; other markup (a SCOMO alert
    /// payload) is written in line, unknown names as literals.
    fn xml_fragment(&mut self, xml: &str) {
        if is_ddf_tree(xml) {
            let mut nested = WbxmlWriter::with_public_id(PublicId::dm_ddf_1_2());
            replay_fragment(xml, &mut nested);
            self.opaque(&nested.finish());
        } else {
            replay_fragment(xml, self);
        }
    }
}

/// Meta Type of a TNDS object in XML and in WBXML (`DM-PROTOCOL.md` §12.5).
pub(crate) const TNDS_XML: &str = "application/vnd.syncml.dmtnds+xml";
pub(crate) const TNDS_WBXML: &str = "application/vnd.syncml.dmtnds+wbxml";

/// Whether a canonical fragment is a single element on the DM DDF page.
fn is_ddf_tree(xml: &str) -> bool {
    let mut reader = crate::xml::XmlReader::fragment(xml.as_bytes(), &Limits::default());
    if !matches!(reader.next_event(), Ok(Event::Start(tag)) if tag.page == Page::DmDdf) {
        return false;
    }
    let mut depth = 1usize;
    while depth > 0 {
        match reader.next_event() {
            Ok(Event::Start(_) | Event::StartUnknown(_)) => depth += 1,
            Ok(Event::End) => depth -= 1,
            Ok(Event::Text(_) | Event::Opaque(_)) => {}
            Ok(Event::Eof) | Err(_) => return false,
        }
    }
    matches!(reader.next_event(), Ok(Event::Eof))
}

/// Appends `v` as an mb_u_int32: big-endian groups of 7 bits, 0x80 on every
/// byte but the last, 1 to 5 bytes (`WBXML.md` §1: 200 → `81 48`).
pub fn write_mb_u_int32(out: &mut Vec<u8>, v: u32) {
    let bits = u32::BITS - v.leading_zeros();
    let groups = bits.div_ceil(7).max(1);
    for group in (0..groups).rev() {
        let byte = ((v >> (7 * group)) & 0x7F) as u8;
        out.push(if group == 0 { byte } else { byte | 0x80 });
    }
}

/// Reads an mb_u_int32 starting at `pos` in `input`, returning the value and
/// the offset just after it. Errors (with the offset) if the input ends
/// inside it, it runs over 5 bytes, or it does not fit in 32 bits.
pub fn read_mb_u_int32(input: &[u8], pos: usize) -> Result<(u32, usize), DecodeError> {
    let mut value: u32 = 0;
    for i in 0..MB_U_INT32_MAX_LEN {
        let at = pos.saturating_add(i);
        let Some(&byte) = input.get(at) else {
            return Err(wbxml(input.len(), "input ends inside an mb_u_int32"));
        };
        if value > u32::MAX >> 7 {
            return Err(wbxml(pos, "mb_u_int32 overflows 32 bits"));
        }
        value = (value << 7) | u32::from(byte & 0x7F);
        if byte & 0x80 == 0 {
            return Ok((value, at + 1));
        }
    }
    Err(wbxml(pos, "mb_u_int32 is longer than 5 bytes"))
}

/// An mb_u_int32 of the header, its error naming the field.
fn header_mb(input: &[u8], pos: usize, field: &str) -> Result<(u32, usize), DecodeError> {
    read_mb_u_int32(input, pos).map_err(|e| in_context(e, &format!("header {field}")))
}

/// The NUL-terminated UTF-8 string at `index` of the string table; `at` is
/// where the reference was, for the error.
fn table_str<'t>(
    strtbl: &'t [u8],
    index: u32,
    at: usize,
    what: &str,
) -> Result<&'t str, DecodeError> {
    let entry = usize::try_from(index)
        .ok()
        .and_then(|index| strtbl.get(index..))
        .filter(|entry| !entry.is_empty())
        .ok_or_else(|| {
            wbxml(
                at,
                format!(
                    "{what}: string table index {index} is beyond the string table ({} bytes)",
                    strtbl.len()
                ),
            )
        })?;
    let len = entry.iter().position(|&b| b == 0).ok_or_else(|| {
        wbxml(
            at,
            format!("{what}: string table entry at {index} has no terminating NUL"),
        )
    })?;
    let bytes = entry.get(..len).unwrap_or_default();
    std::str::from_utf8(bytes).map_err(|_| {
        wbxml(
            at,
            format!("{what}: string table entry at {index} is not valid UTF-8"),
        )
    })
}

/// Whether a literal name can be written as an XML element name: an NCName
/// (no prefix, since no namespace would declare it).
pub(crate) fn is_xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_alphabetic() || first == '_')
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn saturating_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn wbxml(offset: usize, message: impl Into<String>) -> DecodeError {
    DecodeError::new(offset, DecodeErrorKind::Wbxml(message.into()))
}

/// Prefixes a WBXML error message with the field it was found in.
fn in_context(err: DecodeError, what: &str) -> DecodeError {
    let offset = err.offset();
    match err.into_kind() {
        DecodeErrorKind::Wbxml(message) => wbxml(offset, format!("{what}: {message}")),
        kind => DecodeError::new(offset, kind),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const PAGES: [Page; 3] = [Page::SyncMl, Page::MetInf, Page::DmDdf];

    /// Parses whitespace-separated hex bytes.
    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    /// Header of a SyncML 1.2 message without string table, then `body`.
    fn msg(body: &[u8]) -> Vec<u8> {
        [&[0x02, 0xA4, 0x01, 0x6A, 0x00][..], body].concat()
    }

    /// Reads all events up to `Eof`, or the first error.
    fn read_all(input: &[u8]) -> Result<Vec<Event<'_>>, DecodeError> {
        read_all_with(input, &Limits::default())
    }

    fn read_all_with<'a>(input: &'a [u8], limits: &Limits) -> Result<Vec<Event<'a>>, DecodeError> {
        let mut reader = WbxmlReader::new(input, limits)?;
        let mut events = Vec::new();
        // Every event consumes a byte or closes an element: this bounds the
        // loop even if the reader misbehaves.
        for _ in 0..=2 * input.len() + 2 {
            match reader.next_event()? {
                Event::Eof => {
                    assert_eq!(reader.next_event(), Ok(Event::Eof), "Eof is sticky");
                    return Ok(events);
                }
                ev => events.push(ev),
            }
        }
        panic!("reader did not reach Eof");
    }

    #[test]
    fn leaf_text_reads_one_inline_string_and_its_end() {
        // <SyncML><CmdID>"12"</CmdID><Final/><CmdID>"a" "b"</CmdID></SyncML>
        let input = msg(&hex("6D 4B 03 31 32 00 01 12 4B 03 61 00 03 62 00 01 01"));
        let mut r = WbxmlReader::new(&input, &Limits::default()).unwrap();
        assert_eq!(r.next_event(), Ok(Event::Start(Tag::SYNCML)));
        assert_eq!(r.next_event(), Ok(Event::Start(Tag::CMD_ID)));
        assert_eq!(r.leaf_text(), Some("12"));
        assert_eq!(r.next_event(), Ok(Event::Start(Tag::FINAL)));
        assert_eq!(r.leaf_text(), Some(""));
        assert_eq!(r.next_event(), Ok(Event::Start(Tag::CMD_ID)));
        // Two strings: left to the events, nothing consumed.
        assert_eq!(r.leaf_text(), None);
        assert_eq!(r.next_event(), Ok(Event::Text("a".into())));
        assert_eq!(r.next_event(), Ok(Event::Text("b".into())));
        assert_eq!(r.next_event(), Ok(Event::End));
        assert_eq!(r.next_event(), Ok(Event::End));
        assert_eq!(r.next_event(), Ok(Event::Eof));
    }

    /// The error message of a failed read (of a Wbxml error).
    fn wbxml_err(input: &[u8]) -> String {
        match read_all(input).map_err(DecodeError::into_kind) {
            Err(DecodeErrorKind::Wbxml(message)) => message,
            other => panic!("expected a WBXML error, got {other:?}"),
        }
    }

    /// Replays events into a writer, collapsing Start+End into an empty tag
    /// as the builder does.
    fn replay(events: &[Event<'_>], writer: &mut WbxmlWriter) {
        let mut iter = events.iter().peekable();
        while let Some(ev) = iter.next() {
            match ev {
                Event::Start(tag) if iter.peek() == Some(&&Event::End) => {
                    iter.next();
                    writer.empty(*tag);
                }
                Event::Start(tag) => writer.start(*tag),
                Event::StartUnknown(name) => writer.start_unknown(name),
                Event::End => writer.end(),
                Event::Text(text) => writer.text(text),
                Event::Opaque(bytes) => writer.opaque(bytes),
                Event::Eof => {}
            }
        }
    }

    fn t(text: &str) -> Event<'_> {
        Event::Text(Cow::Borrowed(text))
    }

    /// `<tag>text</tag>`
    fn leaf(tag: Tag, text: &str) -> Vec<Event<'_>> {
        vec![Event::Start(tag), t(text), Event::End]
    }

    /// `<outer><inner>text</inner></outer>`
    fn nested(outer: Tag, inner: Tag, text: &str) -> Vec<Event<'_>> {
        [
            vec![Event::Start(outer)],
            leaf(inner, text),
            vec![Event::End],
        ]
        .concat()
    }

    const EXAMPLE_7_1: &str =
        "02 A4 01 6A 00 6D 6C 71 03 31 2E 32 00 01 72 03 44 4D 2F 31 2E 32 00 01 65 03 31
        00 01 5B 03 31 00 01 6E 57 03 68 74 74 70 3A 2F 2F 73 2F 64 6D 00 01 01 67 57 03 49
        4D 45 49 3A 31 00 01 01 5A 00 01 4C 03 38 31 39 32 00 01 01 01 00 00 6B 46 4B 03 31
        00 01 4F 03 31 32 30 31 00 01 01 12 01 01";

    fn events_7_1() -> Vec<Event<'static>> {
        [
            vec![Event::Start(Tag::SYNCML), Event::Start(Tag::SYNC_HDR)],
            leaf(Tag::VER_DTD, "1.2"),
            leaf(Tag::VER_PROTO, "DM/1.2"),
            leaf(Tag::SESSION_ID, "1"),
            leaf(Tag::MSG_ID, "1"),
            nested(Tag::TARGET, Tag::LOC_URI, "http://s/dm"),
            nested(Tag::SOURCE, Tag::LOC_URI, "IMEI:1"),
            nested(Tag::META, Tag::MAX_MSG_SIZE, "8192"),
            vec![
                Event::End,
                Event::Start(Tag::SYNC_BODY),
                Event::Start(Tag::ALERT),
            ],
            leaf(Tag::CMD_ID, "1"),
            leaf(Tag::DATA, "1201"),
            vec![Event::End, Event::Start(Tag::FINAL), Event::End],
            vec![Event::End, Event::End],
        ]
        .concat()
    }

    // §1: mb_u_int32 examples.
    #[test]
    fn mb_u_int32_examples() {
        let cases: &[(u32, &str)] = &[
            (0, "00"),
            (106, "6A"),
            (200, "81 48"),
            (0x0FD3, "9F 53"),
            (0x1201, "A4 01"),
            (16384, "81 80 00"),
            (u32::MAX, "8F FF FF FF 7F"),
        ];
        for &(value, bytes) in cases {
            let bytes = hex(bytes);
            let mut out = Vec::new();
            write_mb_u_int32(&mut out, value);
            assert_eq!(out, bytes, "encoding {value}");
            assert_eq!(read_mb_u_int32(&bytes, 0), Ok((value, bytes.len())));
        }
        // Non-minimal padding is legal on input.
        assert_eq!(read_mb_u_int32(&hex("80 80 6A"), 0), Ok((106, 3)));
    }

    #[test]
    fn mb_u_int32_errors() {
        let err = read_mb_u_int32(&hex("80 80 80 80 80 01"), 0).unwrap_err();
        assert!(err.to_string().contains("longer than 5 bytes"), "{err}");
        let err = read_mb_u_int32(&hex("90 80 80 80 00"), 0).unwrap_err();
        assert!(err.to_string().contains("overflows"), "{err}");
        let err = read_mb_u_int32(&hex("81"), 0).unwrap_err();
        assert!(err.to_string().contains("ends inside"), "{err}");
        assert_eq!(err.offset(), 1);
    }

    // §7.1: package 1, decoded and re-encoded byte for byte.
    #[test]
    fn example_7_1_round_trip() {
        let bytes = hex(EXAMPLE_7_1);
        let reader = WbxmlReader::new(&bytes, &Limits::default()).unwrap();
        assert_eq!(reader.version(), 0x02);
        assert_eq!(reader.public_id(), PublicId::SYNCML_1_2);
        assert!(reader.public_id().is_syncml_1_2());

        let events = read_all(&bytes).unwrap();
        assert_eq!(events, events_7_1());

        let mut writer = WbxmlWriter::new();
        replay(&events, &mut writer);
        assert_eq!(writer.finish(), bytes);
    }

    // §7.2: Exec with Correlator, inside a minimal SyncML element.
    #[test]
    fn example_7_2_round_trip() {
        let uri = "./SCOMO/Download/p/Operations/Download";
        let bytes = msg(&[
            &[0x6D, 0x6B, 0x51, 0x4B, 0x03][..],
            b"3\0",
            &[0x01, 0x7C, 0x03],
            b"c1\0",
            &[0x01, 0x54, 0x6E, 0x57, 0x03],
            uri.as_bytes(),
            &[0x00, 0x01, 0x01, 0x01, 0x01, 0x12, 0x01, 0x01],
        ]
        .concat());
        let expected = [
            vec![Event::Start(Tag::SYNCML), Event::Start(Tag::SYNC_BODY)],
            vec![Event::Start(Tag::EXEC)],
            leaf(Tag::CMD_ID, "3"),
            leaf(Tag::CORRELATOR, "c1"),
            vec![Event::Start(Tag::ITEM)],
            nested(Tag::TARGET, Tag::LOC_URI, uri),
            vec![Event::End, Event::End],
            vec![Event::Start(Tag::FINAL), Event::End, Event::End, Event::End],
        ]
        .concat();
        let events = read_all(&bytes).unwrap();
        assert_eq!(events, expected);

        let mut writer = WbxmlWriter::new();
        replay(&events, &mut writer);
        assert_eq!(writer.finish(), bytes);
    }

    fn example_7_3() -> Vec<u8> {
        [
            &[0x02, 0x00, 0x00, 0x6A, 0x1B][..],
            b"-//OMA//DTD-DM-DDF 1.2//EN\0",
            &[0x00, 0x02, 0x60, 0x77, 0x03],
            b"1.2\0",
            &[0x01, 0x64, 0x66, 0x03],
            b"A\0",
            &[0x01, 0x6F, 0x5C, 0x0B, 0x01, 0x01, 0x76, 0x03],
            b"x\0",
            &[0x01, 0x01, 0x01],
        ]
        .concat()
    }

    // §7.3: TNDS document with a literal public id on page 2.
    #[test]
    fn example_7_3_round_trip() {
        let bytes = example_7_3();
        let reader = WbxmlReader::new(&bytes, &Limits::default()).unwrap();
        assert_eq!(reader.public_id(), PublicId::dm_ddf_1_2());
        assert!(reader.public_id().is_dm_ddf_1_2());

        let expected = [
            vec![Event::Start(Tag::DDF_MGMT_TREE)],
            leaf(Tag::DDF_VER_DTD, "1.2"),
            vec![Event::Start(Tag::DDF_NODE)],
            leaf(Tag::DDF_NODE_NAME, "A"),
            vec![
                Event::Start(Tag::DDF_RT_PROPERTIES),
                Event::Start(Tag::DDF_FORMAT),
            ],
            vec![
                Event::Start(Tag::DDF_CHR),
                Event::End,
                Event::End,
                Event::End,
            ],
            leaf(Tag::DDF_VALUE, "x"),
            vec![Event::End, Event::End],
        ]
        .concat();
        let events = read_all(&bytes).unwrap();
        assert_eq!(events, expected);

        let mut writer = WbxmlWriter::with_public_id(PublicId::dm_ddf_1_2());
        replay(&events, &mut writer);
        assert_eq!(writer.finish(), bytes);
    }

    #[test]
    fn lazy_and_eager_page_switches_read_the_same() {
        let lazy = hex(EXAMPLE_7_1);
        // Redundant switch before the root, switch back to page 0 right after
        // MaxMsgSize, and a redundant one before SyncBody.
        let eager = msg(&[&hex(
            "00 00 6D 6C 71 03 31 2E 32 00 01 72 03 44 4D 2F 31 2E 32 00 01 65 03 31
                00 01 5B 03 31 00 01 6E 57 03 68 74 74 70 3A 2F 2F 73 2F 64 6D 00 01 01 67 57 03 49
                4D 45 49 3A 31 00 01 01 5A 00 01 4C 03 38 31 39 32 00 01 00 00 01 01 00 00 6B 46 4B
                03 31 00 01 4F 03 31 32 30 31 00 01 01 12 01 01",
        )[..]]
        .concat());
        assert_eq!(read_all(&eager).unwrap(), read_all(&lazy).unwrap());
    }

    #[test]
    fn literal_public_id_unknown_id_and_versions() {
        let fpi = b"-//SYNCML//DTD SyncML 1.2//EN\0";
        let literal = [&[0x02, 0x00, 0x00, 0x6A, 0x1E][..], fpi, &[0x6D, 0x01]].concat();
        let reader = WbxmlReader::new(&literal, &Limits::default()).unwrap();
        assert_eq!(
            reader.public_id(),
            PublicId::Literal(PublicId::SYNCML_1_2_FPI.to_owned())
        );
        assert!(reader.public_id().is_syncml_1_2());
        assert_eq!(
            read_all(&literal).unwrap(),
            [Event::Start(Tag::SYNCML), Event::End]
        );

        let unknown = hex("03 01 00 00 6D 01");
        let reader = WbxmlReader::new(&unknown, &Limits::default()).unwrap();
        assert_eq!(reader.version(), 0x03);
        assert_eq!(reader.public_id(), PublicId::UNKNOWN);
        assert!(reader.public_id().is_unknown());
        assert_eq!(
            read_all(&unknown).unwrap(),
            [Event::Start(Tag::SYNCML), Event::End]
        );

        let v1_1 = hex("01 9F 53 6A 00 6D 01");
        let reader = WbxmlReader::new(&v1_1, &Limits::default()).unwrap();
        assert_eq!(reader.version(), 0x01);
        assert_eq!(
            reader.public_id().fpi(),
            Some("-//SYNCML//DTD SyncML 1.1//EN")
        );
        assert_eq!(reader.public_id().to_string(), "0x0FD3");
    }

    #[test]
    fn str_t_literal_tags_and_entities() {
        // strtbl: "ResultCode\0" at 0, "Data\0" at 11, "hello\0" at 16.
        let strtbl = b"ResultCode\0Data\0hello\0";
        let body = hex("6D 44 0B 83 10 01 44 00 03 31 00 01 04 00 45 02 81 48 C3 02 FF 00 01 01");
        let bytes = [&[0x02, 0xA4, 0x01, 0x6A, 0x16][..], strtbl, &body].concat();
        let events = read_all(&bytes).unwrap();
        assert_eq!(
            events,
            [
                Event::Start(Tag::SYNCML),
                // LITERAL_C naming a page-0 tag is that tag.
                Event::Start(Tag::DATA),
                t("hello"),
                Event::End,
                Event::StartUnknown(Cow::Borrowed("ResultCode")),
                t("1"),
                Event::End,
                // LITERAL: no content.
                Event::StartUnknown(Cow::Borrowed("ResultCode")),
                Event::End,
                // Tag 0x05 (Add) with content holding ENTITY 200 and OPAQUE.
                Event::Start(Tag::ADD),
                t("\u{C8}"),
                Event::Opaque(Cow::Borrowed(&[0xFF, 0x00][..])),
                Event::End,
                Event::End,
            ]
        );
    }

    #[test]
    fn attributes_and_pis_are_skipped() {
        // PI before the root, SyncML with attributes (ATTRSTART 05, STR_I
        // value, attribute page switch to 7, ATTRVALUE 85) and content, a PI
        // inside, Final with attributes only (0x92), a PI after the root.
        let body = hex("43 05 03 78 00 01
             ED 05 03 79 00 00 07 85 01
               43 06 C3 01 AA 01
               92 05 01
               C6 05 01 01
             01
             43 05 01");
        let bytes = msg(&body);
        let events = read_all(&bytes).unwrap();
        assert_eq!(
            events,
            [
                Event::Start(Tag::SYNCML),
                Event::Start(Tag::FINAL),
                Event::End,
                // The attribute page switch did not change the tag page: C5 is Alert.
                Event::Start(Tag::ALERT),
                Event::End,
                Event::End,
            ]
        );
    }

    #[test]
    fn limits_are_enforced() {
        let bytes = hex(EXAMPLE_7_1);
        let small = Limits {
            max_message_size: 10,
            ..Limits::default()
        };
        let err = WbxmlReader::new(&bytes, &small).unwrap_err();
        assert!(matches!(
            err.kind(),
            DecodeErrorKind::MessageTooLarge { .. }
        ));

        let shallow = Limits {
            max_depth: 2,
            ..Limits::default()
        };
        let err = read_all_with(&bytes, &shallow).unwrap_err();
        assert!(matches!(err.kind(), DecodeErrorKind::TooDeep { limit: 2 }));

        let few = Limits {
            max_elements: 5,
            ..Limits::default()
        };
        let err = read_all_with(&bytes, &few).unwrap_err();
        assert!(matches!(
            err.kind(),
            DecodeErrorKind::TooManyElements { limit: 5 }
        ));

        let short = Limits {
            max_string_len: 3,
            ..Limits::default()
        };
        let err = read_all_with(&bytes, &short).unwrap_err();
        assert!(matches!(
            err.kind(),
            DecodeErrorKind::StringTooLong { len: 6, .. }
        ));
        let err = read_all_with(&msg(&hex("6D C3 04 01 02 03 04 01")), &short).unwrap_err();
        assert!(matches!(
            err.kind(),
            DecodeErrorKind::StringTooLong { len: 4, .. }
        ));
    }

    #[test]
    fn bad_headers() {
        let cases: &[(&str, &str)] = &[
            ("", "empty input"),
            ("04 A4 01 6A 00 6D 01", "version 0x04"),
            ("00 A4 01 6A 00 6D 01", "version 0x00"),
            ("02", "header public id: input ends inside"),
            ("02 A4", "header public id: input ends inside"),
            ("02 A4 01", "header charset"),
            ("02 A4 01 04 00 6D 01", "charset (MIBenum 4)"),
            ("02 A4 01 6A", "header string table length"),
            ("02 A4 01 6A 05 41 00", "string table length 5 runs past"),
            (
                "02 A4 01 6A 8F FF FF FF 7F",
                "string table length 4294967295",
            ),
            (
                "02 00 05 6A 02 41 00 6D 01",
                "index 5 is beyond the string table",
            ),
            ("02 00 00 6A 02 41 42 6D 01", "no terminating NUL"),
            ("02 00 00 6A 02 FF 00 6D 01", "not valid UTF-8"),
            ("02 80 80 80 80 80 01 6A 00", "longer than 5 bytes"),
        ];
        for (bytes, expected) in cases {
            let message = wbxml_err(&hex(bytes));
            assert!(message.contains(expected), "{bytes}: {message}");
        }
    }

    #[test]
    fn bad_bodies() {
        let cases: &[(&str, &str)] = &[
            ("", "no root element"),
            ("43 05 01", "no root element"),
            ("01", "END with no open element"),
            ("6D 01 01", "END with no open element"),
            ("6D 01 55", "trailing data after the root element"),
            ("6D 01 6D 01", "trailing data after the root element"),
            ("03 61 00 6D 01", "STR_I outside the root element"),
            ("C3 00 6D 01", "OPAQUE outside the root element"),
            ("6D 70 01 01", "unknown tag token 0x30 on code page 0"),
            ("00 01 7F 01", "unknown tag token 0x3F on code page 1"),
            ("6D 00 05 4F 01 01", "unknown tag code page 5"),
            ("6D 00", "input ends after SWITCH_PAGE"),
            ("6D 03 61 62", "no terminating NUL"),
            ("6D 03 FF FE 00 01", "not valid UTF-8"),
            ("6D C3 05 01 02 01", "OPAQUE length 5 runs past"),
            (
                "6D C3 80 80 80 80 80 01",
                "OPAQUE length: mb_u_int32 is longer than 5 bytes",
            ),
            (
                "6D C3 90 80 80 80 00",
                "OPAQUE length: mb_u_int32 overflows",
            ),
            ("6D C3 81", "OPAQUE length: input ends inside an mb_u_int32"),
            ("6D 83 00 01", "STR_T: string table index 0 is beyond"),
            (
                "6D 44 03 01 01",
                "literal tag name: string table index 3 is beyond",
            ),
            ("6D 02 00 01", "ENTITY 0x0 is not a character"),
            ("6D 02 83 B0 00 01", "ENTITY 0xD800 is not a character"),
            ("6D 40 61 00 01", "extension token 0x40"),
            ("6D 80 00 01", "extension token 0x80"),
            ("6D C0 01", "extension token 0xC0"),
            ("ED 05 03 61 00", "input ends inside an attribute list"),
            ("ED 05 44 00 01 01", "not allowed inside an attribute list"),
            ("6D 43 05", "input ends inside a processing instruction"),
        ];
        for (bytes, expected) in cases {
            let message = wbxml_err(&msg(&hex(bytes)));
            assert!(message.contains(expected), "{bytes}: {message}");
        }
    }

    #[test]
    fn bad_literal_names() {
        for name in [&b"a b\0"[..], b"\0", b"<x\0", b"p:x\0", b"1a\0"] {
            let len = u8::try_from(name.len()).unwrap();
            let bytes = [
                &[0x02, 0xA4, 0x01, 0x6A, len][..],
                name,
                &[0x6D, 0x04, 0x00, 0x01],
            ]
            .concat();
            let message = wbxml_err(&bytes);
            assert!(message.contains("not an XML element name"), "{message}");
        }
    }

    #[test]
    fn unbalanced_document_names_the_open_element() {
        let err = read_all(&msg(&hex("6D 6C 71 03 31 00"))).unwrap_err();
        assert_eq!(
            *err.kind(),
            DecodeErrorKind::UnexpectedEof("<VerDTD>".into())
        );
        assert_eq!(err.offset(), 11);
        assert!(err.to_string().contains("inside <VerDTD>"));
    }

    #[test]
    fn truncated_anywhere_is_an_error() {
        let bytes = hex(EXAMPLE_7_1);
        for len in 0..bytes.len() {
            let prefix = &bytes[..len];
            let err = read_all(prefix).expect_err("a truncated document must not decode");
            assert!(
                err.offset() <= len,
                "offset {} beyond input {len}",
                err.offset()
            );
        }
    }

    #[test]
    fn errors_are_sticky() {
        let bytes = msg(&hex("6D 70 01"));
        let mut reader = WbxmlReader::new(&bytes, &Limits::default()).unwrap();
        assert_eq!(reader.next_event(), Ok(Event::Start(Tag::SYNCML)));
        let first = reader.next_event().unwrap_err();
        assert_eq!(first.offset(), 6);
        assert_eq!(reader.next_event(), Err(first));
    }

    #[test]
    fn writer_switches_pages_lazily_and_shares_literal_names() {
        let mut w = WbxmlWriter::new();
        w.start(Tag::META);
        w.start(Tag::TYPE);
        w.text("a");
        w.end();
        w.empty(Tag::SIZE);
        w.end();
        w.start_unknown("ResultCode");
        w.text("x\0y");
        w.end();
        w.start_unknown("ResultCode");
        w.end();
        w.empty(Tag::FINAL);
        let out = w.finish();
        let expected = [
            &[0x02, 0xA4, 0x01, 0x6A, 0x0B][..],
            b"ResultCode\0",
            &[0x5A, 0x00, 0x01, 0x53, 0x03, b'a', 0x00, 0x01, 0x12, 0x01],
            &[0x44, 0x00, 0xC3, 0x03, b'x', 0x00, b'y', 0x01],
            &[0x44, 0x00, 0x01, 0x00, 0x00, 0x12],
        ]
        .concat();
        assert_eq!(out, expected);
    }

    #[test]
    fn writer_never_writes_public_id_zero() {
        let out = WbxmlWriter::with_public_id(PublicId::Numeric(0)).finish();
        assert_eq!(out, hex("02 01 6A 00"));
    }

    /// A generated document tree.
    #[derive(Clone, Debug)]
    enum Node {
        Element(Tag, Vec<Node>),
        Empty(Tag),
        Unknown(String, Vec<Node>),
        Text(String),
        Opaque(Vec<u8>),
    }

    impl Node {
        fn write(&self, w: &mut WbxmlWriter) {
            match self {
                Node::Element(tag, children) => {
                    w.start(*tag);
                    children.iter().for_each(|c| c.write(w));
                    w.end();
                }
                Node::Empty(tag) => w.empty(*tag),
                Node::Unknown(name, children) => {
                    w.start_unknown(name);
                    children.iter().for_each(|c| c.write(w));
                    w.end();
                }
                Node::Text(text) => w.text(text),
                Node::Opaque(bytes) => w.opaque(bytes),
            }
        }

        fn events(&self, out: &mut Vec<Event<'static>>) {
            match self {
                Node::Element(tag, children) => {
                    out.push(Event::Start(*tag));
                    children.iter().for_each(|c| c.events(out));
                    out.push(Event::End);
                }
                Node::Empty(tag) => out.extend([Event::Start(*tag), Event::End]),
                Node::Unknown(name, children) => {
                    out.push(Event::StartUnknown(Cow::Owned(name.clone())));
                    children.iter().for_each(|c| c.events(out));
                    out.push(Event::End);
                }
                Node::Text(text) => out.push(Event::Text(Cow::Owned(text.clone()))),
                Node::Opaque(bytes) => out.push(Event::Opaque(Cow::Owned(bytes.clone()))),
            }
        }
    }

    fn any_tag() -> impl Strategy<Value = Tag> {
        let tags: Vec<Tag> = PAGES
            .iter()
            .flat_map(|&page| (0x05..=0x3F).filter_map(move |token| Tag::from_token(page, token)))
            .collect();
        proptest::sample::select(tags)
    }

    fn unknown_name() -> impl Strategy<Value = String> {
        "[A-Za-z_][A-Za-z0-9_.-]{0,10}".prop_filter("a name no page knows", |name| {
            PAGES
                .iter()
                .all(|&page| Tag::from_name(page, name.as_bytes()).is_none())
        })
    }

    fn any_node() -> impl Strategy<Value = Node> {
        let leaf = prop_oneof![
            any_tag().prop_map(Node::Empty),
            "[^\\x00]{0,12}".prop_map(Node::Text),
            proptest::collection::vec(any::<u8>(), 0..12).prop_map(Node::Opaque),
        ];
        leaf.prop_recursive(4, 48, 4, |inner| {
            prop_oneof![
                (any_tag(), proptest::collection::vec(inner.clone(), 0..4))
                    .prop_map(|(tag, children)| Node::Element(tag, children)),
                (unknown_name(), proptest::collection::vec(inner, 0..4))
                    .prop_map(|(name, children)| Node::Unknown(name, children)),
            ]
        })
    }

    fn any_root() -> impl Strategy<Value = Node> {
        prop_oneof![
            any_tag().prop_map(Node::Empty),
            (any_tag(), proptest::collection::vec(any_node(), 0..5))
                .prop_map(|(tag, children)| Node::Element(tag, children)),
            (unknown_name(), proptest::collection::vec(any_node(), 0..5))
                .prop_map(|(name, children)| Node::Unknown(name, children)),
        ]
    }

    /// Reads until Eof or an error, never more calls than the input allows.
    fn drain(input: &[u8]) {
        let Ok(mut reader) = WbxmlReader::new(input, &Limits::default()) else {
            return;
        };
        for _ in 0..=2 * input.len() + 2 {
            match reader.next_event() {
                Ok(Event::Eof) | Err(_) => return,
                Ok(_) => {}
            }
        }
        panic!("reader neither finished nor failed");
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            drain(&bytes);
            // Behind a valid header, the body parser gets the random bytes.
            drain(&msg(&bytes));
        }

        #[test]
        fn mutated_example_never_panics(
            edits in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let mut bytes = hex(EXAMPLE_7_1);
            for (index, byte) in edits {
                let i = index.index(bytes.len());
                bytes[i] = byte;
            }
            drain(&bytes);
        }

        #[test]
        fn written_events_read_back(root in any_root(), ddf in any::<bool>()) {
            let mut writer = if ddf {
                WbxmlWriter::with_public_id(PublicId::dm_ddf_1_2())
            } else {
                WbxmlWriter::new()
            };
            root.write(&mut writer);
            let bytes = writer.finish();
            let mut expected = Vec::new();
            root.events(&mut expected);
            prop_assert_eq!(read_all(&bytes).unwrap(), expected);
        }

        #[test]
        fn mb_u_int32_round_trips(v in any::<u32>()) {
            let mut out = Vec::new();
            write_mb_u_int32(&mut out, v);
            prop_assert!(out.len() <= MB_U_INT32_MAX_LEN);
            prop_assert_eq!(read_mb_u_int32(&out, 0).unwrap(), (v, out.len()));
        }
    }
}
