//! The one builder both codecs share: events → model, model → events.
//!
//! Decoding is a recursive descent over [`Event`]s that accepts children in
//! any order (deployed stacks do not keep DTD order, `QUIRKS.md`) and skips
//! elements DM does not use. Encoding emits DTD order.

use std::borrow::Cow;

use base64::Engine as _;

use crate::codes::{AlertCode, StatusCode};
use crate::error::{DecodeError, DecodeErrorKind};
use crate::event::{Event, EventReader, EventWriter};
use crate::model::{
    Alert, Chal, Command, Container, Cred, Data, Exec, Item, ItemCommand, Location, Meta, Results,
    Status, SyncBody, SyncHdr, SyncMl,
};
use crate::tag::{Page, Tag};
use crate::wbxml::{TNDS_WBXML, TNDS_XML};

type Result<T> = std::result::Result<T, DecodeError>;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Decodes one SyncML message from an event stream.
pub(crate) fn decode_message<'a, R: EventReader<'a>>(reader: R) -> Result<SyncMl> {
    let mut p = Parser {
        reader,
        input: std::marker::PhantomData,
    };
    loop {
        match p.next()? {
            Event::Start(Tag::SYNCML) => break,
            Event::Start(t) => {
                return Err(p.error(DecodeErrorKind::NotSyncMl(format!(
                    "root element is <{t}>, expected <SyncML>"
                ))))
            }
            Event::StartUnknown(name) => {
                return Err(p.error(DecodeErrorKind::NotSyncMl(format!(
                    "root element <{name}> is not <SyncML> in the SYNCML:SYNCML1.2 namespace"
                ))))
            }
            Event::Text(t) if blank(&t) => continue,
            Event::Eof => {
                return Err(p.error(DecodeErrorKind::NotSyncMl("the document is empty".into())))
            }
            _ => {
                return Err(p.error(DecodeErrorKind::NotSyncMl(
                    "content before the root element".into(),
                )))
            }
        }
    }
    // Filled in place: a message is some 650 bytes, not worth moving
    // through every level of the descent.
    let mut msg = SyncMl {
        header: SyncHdr {
            ver_dtd: String::new(),
            ver_proto: String::new(),
            session_id: String::new(),
            msg_id: 0,
            target: Location::default(),
            source: Location::default(),
            resp_uri: None,
            no_resp: false,
            cred: None,
            meta: None,
        },
        body: SyncBody::default(),
    };
    p.syncml(&mut msg)?;
    loop {
        match p.next()? {
            Event::Eof => return Ok(msg),
            Event::Text(t) if blank(&t) => continue,
            _ => {
                return Err(p.error(DecodeErrorKind::NotSyncMl(
                    "content after the end of <SyncML>".into(),
                )))
            }
        }
    }
}

struct Parser<'a, R: EventReader<'a>> {
    reader: R,
    /// The input's lifetime, which the events borrow.
    input: std::marker::PhantomData<&'a ()>,
}

impl<'a, R: EventReader<'a>> Parser<'a, R> {
    fn next(&mut self) -> Result<Event<'a>> {
        self.reader.next_event()
    }

    fn error(&self, kind: DecodeErrorKind) -> DecodeError {
        DecodeError::new(self.reader.offset(), kind)
    }

    /// Visits the children of the element just opened until its End. `f`
    /// returns `false` for a child it does not handle; that child is skipped.
    fn children<F>(&mut self, parent: &'static str, mut f: F) -> Result<()>
    where
        F: FnMut(&mut Self, Tag) -> Result<bool>,
    {
        loop {
            self.reader.skip_blank_text();
            match self.next()? {
                Event::Start(t) => {
                    if !f(self, t)? {
                        self.skip()?;
                    }
                }
                Event::StartUnknown(_) => self.skip()?,
                Event::End => return Ok(()),
                // Character data between elements is insignificant here.
                Event::Text(_) | Event::Opaque(_) => {}
                Event::Eof => {
                    return Err(self.error(DecodeErrorKind::UnexpectedEof(format!("<{parent}>"))))
                }
            }
        }
    }

    /// Skips the rest of the element just opened.
    fn skip(&mut self) -> Result<()> {
        let mut depth = 1usize;
        while depth > 0 {
            match self.next()? {
                Event::Start(_) | Event::StartUnknown(_) => depth += 1,
                Event::End => depth -= 1,
                Event::Eof => {
                    return Err(self.error(DecodeErrorKind::UnexpectedEof("an element".into())))
                }
                Event::Text(_) | Event::Opaque(_) => {}
            }
        }
        Ok(())
    }

    /// The character content of the element just opened.
    fn text(&mut self, element: &'static str) -> Result<String> {
        Ok(self.text_cow(element)?.into_owned())
    }

    /// The character content without leading and trailing whitespace,
    /// allocated once.
    fn trimmed(&mut self, element: &'static str) -> Result<String> {
        Ok(match self.text_cow(element)? {
            Cow::Owned(s) if s.trim().len() == s.len() => s,
            t => t.trim().to_owned(),
        })
    }

    /// The character content, borrowed from the input when it came in one
    /// piece.
    fn text_cow(&mut self, element: &'static str) -> Result<Cow<'a, str>> {
        // Never holds NUL (see below).
        if let Some(text) = self.reader.leaf_text() {
            return Ok(Cow::Borrowed(text));
        }
        let mut out: Option<Cow<'a, str>> = None;
        loop {
            match self.next()? {
                Event::Text(t) => match &mut out {
                    None => out = Some(t),
                    Some(o) => o.to_mut().push_str(&t),
                },
                Event::Opaque(b) => {
                    let s = std::str::from_utf8(&b).map_err(|_| {
                        self.error(DecodeErrorKind::InvalidValue {
                            element,
                            value: format!("{} opaque bytes", b.len()),
                            expected: "expected UTF-8 text",
                        })
                    })?;
                    out.get_or_insert(Cow::Borrowed("")).to_mut().push_str(s);
                }
                Event::Start(_) | Event::StartUnknown(_) => self.skip()?,
                Event::End => {
                    // NUL has no XML form (see `escape_into`): dropped.
                    return Ok(match out {
                        Some(t) if t.contains('\0') => Cow::Owned(t.replace('\0', "")),
                        Some(t) => t,
                        None => Cow::Borrowed(""),
                    });
                }
                Event::Eof => {
                    return Err(self.error(DecodeErrorKind::UnexpectedEof(format!("<{element}>"))))
                }
            }
        }
    }

    fn number<T: std::str::FromStr>(&mut self, element: &'static str) -> Result<T> {
        let text = self.text_cow(element)?;
        text.trim().parse().map_err(|_| {
            self.error(DecodeErrorKind::InvalidValue {
                element,
                value: truncate(&text),
                expected: "expected a decimal number",
            })
        })
    }

    fn syncml(&mut self, msg: &mut SyncMl) -> Result<()> {
        let (mut header, mut body) = (false, false);
        self.children("SyncML", |p, t| {
            match t {
                Tag::SYNC_HDR => {
                    p.sync_hdr(&mut msg.header)?;
                    header = true;
                }
                Tag::SYNC_BODY => {
                    msg.body = SyncBody::default();
                    p.sync_body(&mut msg.body)?;
                    body = true;
                }
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        if !header {
            return Err(self.missing("SyncML", "SyncHdr"));
        }
        if !body {
            return Err(self.missing("SyncML", "SyncBody"));
        }
        Ok(())
    }

    fn missing(&self, parent: &'static str, missing: &'static str) -> DecodeError {
        self.error(DecodeErrorKind::Missing { parent, missing })
    }

    fn sync_hdr(&mut self, hdr: &mut SyncHdr) -> Result<()> {
        // A second SyncHdr replaces the first, as a whole.
        hdr.resp_uri = None;
        hdr.no_resp = false;
        hdr.cred = None;
        hdr.meta = None;
        let (mut ver_dtd, mut ver_proto, mut session_id, mut msg_id) = (None, None, None, None);
        let (mut target, mut source) = (None, None);
        self.children("SyncHdr", |p, t| {
            match t {
                Tag::VER_DTD => ver_dtd = Some(p.trimmed("VerDTD")?),
                Tag::VER_PROTO => ver_proto = Some(p.trimmed("VerProto")?),
                Tag::SESSION_ID => session_id = Some(p.trimmed("SessionID")?),
                Tag::MSG_ID => msg_id = Some(p.number("MsgID")?),
                Tag::TARGET => target = Some(p.location("Target")?),
                Tag::SOURCE => source = Some(p.location("Source")?),
                Tag::RESP_URI => hdr.resp_uri = Some(p.trimmed("RespURI")?),
                Tag::NO_RESP => flag(p, &mut hdr.no_resp)?,
                Tag::CRED => p.cred(&mut hdr.cred)?,
                Tag::META => p.meta(&mut hdr.meta)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        hdr.ver_dtd = ver_dtd.ok_or_else(|| self.missing("SyncHdr", "VerDTD"))?;
        hdr.ver_proto = ver_proto.ok_or_else(|| self.missing("SyncHdr", "VerProto"))?;
        hdr.session_id = session_id.ok_or_else(|| self.missing("SyncHdr", "SessionID"))?;
        hdr.msg_id = msg_id.ok_or_else(|| self.missing("SyncHdr", "MsgID"))?;
        hdr.target = target.ok_or_else(|| self.missing("SyncHdr", "Target"))?;
        hdr.source = source.ok_or_else(|| self.missing("SyncHdr", "Source"))?;
        Ok(())
    }

    fn location(&mut self, element: &'static str) -> Result<Location> {
        let mut loc_uri = None;
        let mut loc = Location::default();
        self.children(element, |p, t| {
            match t {
                Tag::LOC_URI => loc_uri = Some(p.trimmed("LocURI")?),
                Tag::LOC_NAME => loc.loc_name = Some(p.trimmed("LocName")?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        loc.loc_uri = loc_uri.ok_or_else(|| self.missing(element, "LocURI"))?;
        Ok(loc)
    }

    /// SourceParent / TargetParent: a LocURI only.
    fn parent_uri(&mut self, element: &'static str) -> Result<String> {
        Ok(self.location(element)?.loc_uri)
    }

    /// `<Cred>`, decoded into `slot` (in place).
    fn cred(&mut self, slot: &mut Option<Cred>) -> Result<()> {
        let cred = slot.insert(Cred::default());
        self.children("Cred", |p, t| {
            match t {
                Tag::META => p.meta(&mut cred.meta)?,
                Tag::DATA => cred.data = p.trimmed("Data")?,
                _ => return Ok(false),
            }
            Ok(true)
        })
    }

    /// `<Chal>`, decoded into `slot` (in place).
    fn chal(&mut self, slot: &mut Option<Chal>) -> Result<()> {
        let chal = slot.insert(Chal::default());
        self.children("Chal", |p, t| {
            if t == Tag::META {
                chal.meta = Meta::default();
                p.meta_into(&mut chal.meta, "Meta")?;
                return Ok(true);
            }
            Ok(false)
        })
    }

    /// `<Meta>`, decoded into `slot` (in place: a Meta is 200 bytes).
    fn meta(&mut self, slot: &mut Option<Meta>) -> Result<()> {
        self.meta_into(slot.insert(Meta::default()), "Meta")
    }

    fn meta_into(&mut self, meta: &mut Meta, element: &'static str) -> Result<()> {
        self.children(element, |p, t| {
            match t {
                Tag::FORMAT => meta.format = Some(normalize_format(&p.text_cow("Format")?)),
                Tag::TYPE => {
                    meta.r#type = Some(xml_form_type(p.text_cow("Type")?.trim()).to_owned())
                }
                Tag::MARK => meta.mark = Some(p.trimmed("Mark")?),
                Tag::SIZE => meta.size = Some(p.number("Size")?),
                Tag::NEXT_NONCE => meta.next_nonce = Some(p.trimmed("NextNonce")?),
                Tag::VERSION => meta.version = Some(p.trimmed("Version")?),
                Tag::MAX_MSG_SIZE => meta.max_msg_size = Some(p.number("MaxMsgSize")?),
                Tag::MAX_OBJ_SIZE => meta.max_obj_size = Some(p.number("MaxObjSize")?),
                Tag::EMI => meta.emi.push(p.text("EMI")?),
                Tag::FIELD_LEVEL => {
                    meta.field_level = true;
                    p.skip()?;
                }
                // Some encoders wrap the MetInf elements in <MetInf>.
                Tag::MET_INF => p.meta_into(meta, "MetInf")?,
                _ => return Ok(false),
            }
            Ok(true)
        })
    }

    fn sync_body(&mut self, body: &mut SyncBody) -> Result<()> {
        self.children("SyncBody", |p, t| {
            if t == Tag::FINAL {
                body.is_final = true;
                p.skip()?;
                return Ok(true);
            }
            p.command(t, &mut body.commands)
        })
    }

    /// Decodes the command whose start tag was just read onto the end of
    /// `out`, in place (a Command is over 500 bytes); `false`, with nothing
    /// pushed, for an element that is not a DM command (left for the caller
    /// to skip).
    fn command(&mut self, t: Tag, out: &mut Vec<Command>) -> Result<bool> {
        out.push(match t {
            Tag::ADD => Command::Add(ItemCommand::default()),
            Tag::COPY => Command::Copy(ItemCommand::default()),
            Tag::DELETE => Command::Delete(ItemCommand::default()),
            Tag::GET => Command::Get(ItemCommand::default()),
            Tag::REPLACE => Command::Replace(ItemCommand::default()),
            Tag::ALERT => Command::Alert(Alert {
                cmd_id: 0,
                no_resp: false,
                cred: None,
                data: None,
                correlator: None,
                items: Vec::new(),
            }),
            Tag::EXEC => Command::Exec(Exec::default()),
            Tag::ATOMIC => Command::Atomic(Container::default()),
            Tag::SEQUENCE => Command::Sequence(Container::default()),
            Tag::STATUS => Command::Status(Status {
                cmd_id: 0,
                msg_ref: None,
                cmd_ref: 0,
                cmd: String::new(),
                target_refs: Vec::new(),
                source_refs: Vec::new(),
                cred: None,
                chal: None,
                data: StatusCode(0),
                items: Vec::new(),
            }),
            Tag::RESULTS => Command::Results(Results::default()),
            _ => return Ok(false),
        });
        let Some(cmd) = out.last_mut() else {
            return Ok(true);
        };
        match cmd {
            Command::Add(c) => self.item_command("Add", c)?,
            Command::Copy(c) => self.item_command("Copy", c)?,
            Command::Delete(c) => self.item_command("Delete", c)?,
            Command::Get(c) => self.item_command("Get", c)?,
            Command::Replace(c) => self.item_command("Replace", c)?,
            Command::Alert(a) => self.alert(a)?,
            Command::Exec(e) => self.exec(e)?,
            Command::Atomic(c) => self.container("Atomic", c)?,
            Command::Sequence(c) => self.container("Sequence", c)?,
            Command::Status(st) => self.status(st)?,
            Command::Results(r) => self.results(r)?,
        }
        Ok(true)
    }

    fn item_command(&mut self, element: &'static str, c: &mut ItemCommand) -> Result<()> {
        let mut cmd_id = None;
        self.children(element, |p, t| {
            match t {
                Tag::CMD_ID => cmd_id = Some(p.number("CmdID")?),
                Tag::NO_RESP => flag(p, &mut c.no_resp)?,
                Tag::ARCHIVE => flag(p, &mut c.archive)?,
                Tag::SFT_DEL => flag(p, &mut c.sft_del)?,
                Tag::LANG => c.lang = Some(p.trimmed("Lang")?),
                Tag::CRED => p.cred(&mut c.cred)?,
                Tag::META => p.meta(&mut c.meta)?,
                Tag::ITEM => p.item(&mut c.items)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        c.cmd_id = cmd_id.ok_or_else(|| self.missing(element, "CmdID"))?;
        resolve_items(&mut c.items, c.meta.as_ref());
        Ok(())
    }

    fn alert(&mut self, a: &mut Alert) -> Result<()> {
        let mut cmd_id = None;
        self.children("Alert", |p, t| {
            match t {
                Tag::CMD_ID => cmd_id = Some(p.number("CmdID")?),
                Tag::NO_RESP => flag(p, &mut a.no_resp)?,
                Tag::CRED => p.cred(&mut a.cred)?,
                Tag::DATA => a.data = Some(AlertCode(p.number("Data")?)),
                Tag::CORRELATOR => a.correlator = Some(p.trimmed("Correlator")?),
                Tag::ITEM => p.item(&mut a.items)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        a.cmd_id = cmd_id.ok_or_else(|| self.missing("Alert", "CmdID"))?;
        resolve_items(&mut a.items, None);
        Ok(())
    }

    fn exec(&mut self, e: &mut Exec) -> Result<()> {
        let mut cmd_id = None;
        self.children("Exec", |p, t| {
            match t {
                Tag::CMD_ID => cmd_id = Some(p.number("CmdID")?),
                Tag::NO_RESP => flag(p, &mut e.no_resp)?,
                Tag::CRED => p.cred(&mut e.cred)?,
                Tag::META => p.meta(&mut e.meta)?,
                Tag::CORRELATOR => e.correlator = Some(p.trimmed("Correlator")?),
                Tag::ITEM => p.item(&mut e.items)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        e.cmd_id = cmd_id.ok_or_else(|| self.missing("Exec", "CmdID"))?;
        resolve_items(&mut e.items, e.meta.as_ref());
        Ok(())
    }

    fn container(&mut self, element: &'static str, c: &mut Container) -> Result<()> {
        let mut cmd_id = None;
        self.children(element, |p, t| {
            match t {
                Tag::CMD_ID => cmd_id = Some(p.number("CmdID")?),
                Tag::NO_RESP => flag(p, &mut c.no_resp)?,
                Tag::META => p.meta(&mut c.meta)?,
                _ => return p.command(t, &mut c.commands),
            }
            Ok(true)
        })?;
        c.cmd_id = cmd_id.ok_or_else(|| self.missing(element, "CmdID"))?;
        Ok(())
    }

    fn status(&mut self, s: &mut Status) -> Result<()> {
        let (mut cmd_id, mut cmd, mut data) = (None, None, None);
        self.children("Status", |p, t| {
            match t {
                Tag::CMD_ID => cmd_id = Some(p.number("CmdID")?),
                Tag::MSG_REF => s.msg_ref = Some(p.number("MsgRef")?),
                Tag::CMD_REF => s.cmd_ref = p.number("CmdRef")?,
                Tag::CMD => cmd = Some(p.trimmed("Cmd")?),
                Tag::TARGET_REF => s.target_refs.push(p.trimmed("TargetRef")?),
                Tag::SOURCE_REF => s.source_refs.push(p.trimmed("SourceRef")?),
                Tag::CRED => p.cred(&mut s.cred)?,
                Tag::CHAL => p.chal(&mut s.chal)?,
                Tag::DATA => data = Some(StatusCode(p.number("Data")?)),
                Tag::ITEM => p.item(&mut s.items)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        s.cmd_id = cmd_id.ok_or_else(|| self.missing("Status", "CmdID"))?;
        s.cmd = cmd.ok_or_else(|| self.missing("Status", "Cmd"))?;
        s.data = data.ok_or_else(|| self.missing("Status", "Data"))?;
        resolve_items(&mut s.items, None);
        Ok(())
    }

    fn results(&mut self, r: &mut Results) -> Result<()> {
        let (mut cmd_id, mut cmd_ref) = (None, None);
        self.children("Results", |p, t| {
            match t {
                Tag::CMD_ID => cmd_id = Some(p.number("CmdID")?),
                Tag::MSG_REF => r.msg_ref = Some(p.number("MsgRef")?),
                Tag::CMD_REF => cmd_ref = Some(p.number("CmdRef")?),
                Tag::META => p.meta(&mut r.meta)?,
                Tag::TARGET_REF => r.target_ref = Some(p.trimmed("TargetRef")?),
                Tag::SOURCE_REF => r.source_ref = Some(p.trimmed("SourceRef")?),
                Tag::ITEM => p.item(&mut r.items)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        r.cmd_id = cmd_id.ok_or_else(|| self.missing("Results", "CmdID"))?;
        r.cmd_ref = cmd_ref.ok_or_else(|| self.missing("Results", "CmdRef"))?;
        resolve_items(&mut r.items, r.meta.as_ref());
        Ok(())
    }

    /// An Item, decoded in place at the end of `items`. Its Data is
    /// provisional until [`resolve_items`]: what it means depends on the
    /// Meta Format, which may come after it (the command's, or the Item's).
    fn item(&mut self, items: &mut Vec<Item>) -> Result<()> {
        items.push(Item::default());
        let Some(item) = items.last_mut() else {
            return Ok(());
        };
        self.children("Item", |p, t| {
            match t {
                Tag::TARGET => item.target = Some(p.location("Target")?),
                Tag::SOURCE => item.source = Some(p.location("Source")?),
                Tag::SOURCE_PARENT => item.source_parent = Some(p.parent_uri("SourceParent")?),
                Tag::TARGET_PARENT => item.target_parent = Some(p.parent_uri("TargetParent")?),
                Tag::META => p.meta(&mut item.meta)?,
                Tag::DATA => item.data = Some(p.raw_data()?.provisional()),
                Tag::MORE_DATA => flag(p, &mut item.more_data)?,
                _ => return Ok(false),
            }
            Ok(true)
        })
    }

    /// The content of `<Data>` as received; what it means depends on the
    /// Meta Format, which may come after it, so it is resolved later.
    fn raw_data(&mut self) -> Result<RawData> {
        let mut raw = RawData::default();
        if let Some(text) = self.reader.leaf_text() {
            raw.text.push_str(text);
            return Ok(raw);
        }
        // Once markup has started, the text since the last element.
        let mut text: Option<Cow<'a, str>> = None;
        loop {
            match self.next()? {
                Event::Text(t) => match raw.markup {
                    Some(_) => join_text(&mut text, t),
                    None => raw.push_text(&t),
                },
                // Between elements of nested markup, OPAQUE is text like any
                // other (a WBXML writer sends text holding NUL as OPAQUE).
                Event::Opaque(b) => match raw.markup {
                    Some(_) => join_text(&mut text, opaque_text(b)),
                    None => raw.push_opaque(&b),
                },
                ev @ (Event::Start(_) | Event::StartUnknown(_)) => {
                    if raw.markup.is_none() {
                        let mut m = String::new();
                        markup_text(&mut m, &opaque_text(Cow::Borrowed(raw.content())));
                        raw.markup = Some(m);
                    }
                    let m = raw.markup.get_or_insert_with(String::new);
                    if let Some(t) = text.take() {
                        markup_text(m, &t);
                    }
                    self.capture(ev, m, Some(Page::SyncMl))?;
                }
                Event::End => {
                    if let (Some(m), Some(t)) = (&mut raw.markup, text) {
                        markup_text(m, &t);
                    }
                    return Ok(raw);
                }
                Event::Eof => {
                    return Err(self.error(DecodeErrorKind::UnexpectedEof("<Data>".into())))
                }
            }
        }
    }

    /// Writes the element just opened (and its subtree) as canonical XML.
    fn capture(&mut self, start: Event<'a>, out: &mut String, parent: Option<Page>) -> Result<()> {
        let start = known_by_name(start, parent);
        let page = match &start {
            Event::Start(t) => {
                out.push('<');
                out.push_str(t.name());
                if parent != Some(t.page) {
                    out.push_str(" xmlns=\"");
                    out.push_str(t.page.namespace());
                    out.push('"');
                }
                Some(t.page)
            }
            Event::StartUnknown(n) => {
                out.push('<');
                out.push_str(n);
                parent
            }
            _ => return Ok(()),
        };
        let mut has_content = false;
        let mut has_children = false;
        // Adjacent pieces (STR_I then OPAQUE, text then CDATA) are one text.
        let mut text: Option<Cow<'a, str>> = None;
        loop {
            match self.next()? {
                Event::End => break,
                Event::Eof => {
                    return Err(self.error(DecodeErrorKind::UnexpectedEof("<Data>".into())))
                }
                Event::Text(t) => join_text(&mut text, t),
                // OPAQUE in markup is text (see `raw_data`).
                Event::Opaque(b) => join_text(&mut text, opaque_text(b)),
                ev @ (Event::Start(_) | Event::StartUnknown(_)) => {
                    // Whitespace-only text next to child elements is
                    // indentation.
                    if let Some(t) = text.take().filter(|t| !blank(t)) {
                        open_content(out, &mut has_content);
                        // The WBXML writer maps a Type's text up to its
                        // first child: map it back here too.
                        let typed = !has_children && start == Event::Start(Tag::TYPE);
                        escape_into(out, if typed { xml_form_type(&t) } else { &t });
                    }
                    has_children = true;
                    open_content(out, &mut has_content);
                    self.capture(ev, out, page)?;
                }
            }
        }
        if !has_children && start == Event::Start(Tag::TYPE) {
            text = text.map(|t| {
                if t.eq_ignore_ascii_case(TNDS_WBXML) {
                    Cow::Borrowed(TNDS_XML)
                } else {
                    t
                }
            });
        }
        // ... but the value itself when it is all the element holds.
        if let Some(t) = text.filter(|t| !t.is_empty() && (!has_children || !blank(t))) {
            open_content(out, &mut has_content);
            escape_into(out, &t);
        }
        if has_content {
            out.push_str("</");
            match &start {
                Event::Start(t) => out.push_str(t.name()),
                Event::StartUnknown(n) => out.push_str(n),
                _ => {}
            }
            out.push('>');
        } else {
            out.push_str("/>");
        }
        Ok(())
    }
}

/// An unknown element whose local name a code page knows (an element in a
/// foreign namespace, or a WBXML LITERAL) is captured as that known element.
/// The canonical fragment cannot keep the foreign namespace, and the XML
/// reader resolves a bare name through the same pages (parent's first) when
/// the fragment is read back, so the first decode must already agree or
/// decode→encode→decode would not be stable (found by the fuzz targets).
fn known_by_name(start: Event<'_>, parent: Option<Page>) -> Event<'_> {
    if let Event::StartUnknown(name) = &start {
        let pages = [
            parent,
            Some(Page::SyncMl),
            Some(Page::MetInf),
            Some(Page::DmDdf),
        ];
        if let Some(tag) = pages
            .iter()
            .flatten()
            .find_map(|p| Tag::from_name(*p, name.as_bytes()))
        {
            return Event::Start(tag);
        }
    }
    start
}

fn open_content(out: &mut String, has_content: &mut bool) {
    if !*has_content {
        out.push('>');
        *has_content = true;
    }
}

fn flag<'a, R: EventReader<'a>>(p: &mut Parser<'a, R>, f: &mut bool) -> Result<()> {
    *f = true;
    p.skip()
}

/// A MetInf Type as the model holds it. In WBXML a TNDS object is itself
/// WBXML, so its Type says `+wbxml` where XML says `+xml` (libwbxml rewrites
/// the same way); the model keeps the XML form, as its `Data::Xml` is XML,
/// and the WBXML writer turns it back. Mapped here, on the joined text, so
/// that a Type split over several STR_I maps too (a fuzz finding: the
/// reader mapped each piece on its own).
fn xml_form_type(t: &str) -> &str {
    if t.eq_ignore_ascii_case(TNDS_WBXML) {
        TNDS_XML
    } else {
        t
    }
}

/// Whitespace only (NUL counts: it is dropped, so it must not make text
/// significant).
fn blank(text: &str) -> bool {
    text.chars().all(|c| c.is_whitespace() || c == '\0')
}

fn join_text<'a>(text: &mut Option<Cow<'a, str>>, piece: Cow<'a, str>) {
    // NUL has no XML form and is dropped (see `escape_into`); dropping it
    // here, before the whitespace rules, keeps decode→encode→decode stable.
    let piece = if piece.contains('\0') {
        Cow::Owned(piece.replace('\0', ""))
    } else {
        piece
    };
    match text {
        Some(t) => t.to_mut().push_str(&piece),
        None => *text = Some(piece),
    }
}

/// Text between the elements of nested markup: kept unless it is only
/// whitespace (indentation).
fn markup_text(out: &mut String, text: &str) {
    if !blank(text) {
        escape_into(out, text);
    }
}

/// Opaque bytes inside nested markup: text when UTF-8, base64 otherwise.
fn opaque_text(bytes: Cow<'_, [u8]>) -> Cow<'_, str> {
    match bytes {
        Cow::Borrowed(b) => match std::str::from_utf8(b) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => Cow::Owned(B64.encode(b)),
        },
        Cow::Owned(v) => match String::from_utf8(v) {
            Ok(s) => Cow::Owned(s),
            Err(e) => Cow::Owned(B64.encode(e.as_bytes())),
        },
    }
}

/// Appends `text` to `out` escaped as XML character data (`&`, `<`, `>`,
/// CR and the other C0 controls as references).
pub fn escape_into(out: &mut String, text: &str) {
    // Everything to escape is ASCII: copy the runs between such bytes
    // whole (most values have none) rather than push char by char.
    let mut rest = text;
    while let Some(i) = rest.bytes().position(needs_escape) {
        out.push_str(rest.get(..i).unwrap_or_default());
        let special = rest.as_bytes().get(i).copied().unwrap_or_default();
        match special {
            b'&' => out.push_str("&amp;"),
            // A literal CR would not survive a conforming XML parser, which
            // turns CR LF and lone CR into LF (XML 1.0 §2.11).
            b'\r' => out.push_str("&#13;"),
            b'<' => out.push_str("&lt;"),
            b'>' => out.push_str("&gt;"),
            // NUL has no XML form at all (not even `&#0;`): it is dropped,
            // here and when decoding, so both encodings agree.
            0 => {}
            // XML 1.0 has no way to carry the other C0 controls, which a
            // WBXML peer can send. A character reference keeps them (our
            // reader and other lenient parsers take it back) instead of
            // dropping data; strict XML 1.0 parsers refuse it, as they would
            // the raw byte.
            c => {
                out.push_str("&#");
                if c >= 10 {
                    out.push(char::from(b'0' + c / 10));
                }
                out.push(char::from(b'0' + c % 10));
                out.push(';');
            }
        }
        rest = rest.get(i + 1..).unwrap_or_default();
    }
    out.push_str(rest);
}

/// The bytes [`escape_into`] replaces: markup, CR and the C0 controls
/// other than tab and LF.
fn needs_escape(b: u8) -> bool {
    matches!(b, b'&' | b'<' | b'>') || (b < 0x20 && b != b'\t' && b != b'\n')
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Lower-cases the standard format names (`Chr` → `chr`, `QUIRKS.md`).
fn normalize_format(f: &str) -> String {
    const KNOWN: [&str; 11] = [
        "b64", "bin", "bool", "chr", "int", "node", "null", "xml", "date", "time", "float",
    ];
    let t = f.trim();
    match KNOWN.iter().find(|k| k.eq_ignore_ascii_case(t)) {
        Some(k) => (*k).to_owned(),
        None => t.to_owned(),
    }
}

#[derive(Default)]
struct RawData {
    /// The text pieces, while no OPAQUE has come: already UTF-8, so kept
    /// as a `String` that becomes the value without being checked again.
    text: String,
    /// Text and OPAQUE bytes in the order they came, once an OPAQUE has
    /// come (`text` moves in here).
    opaque: Option<Vec<u8>>,
    markup: Option<String>,
}

impl RawData {
    fn push_text(&mut self, t: &str) {
        match &mut self.opaque {
            Some(bytes) => bytes.extend_from_slice(t.as_bytes()),
            None => self.text.push_str(t),
        }
    }

    fn push_opaque(&mut self, b: &[u8]) {
        self.opaque
            .get_or_insert_with(|| std::mem::take(&mut self.text).into_bytes())
            .extend_from_slice(b);
    }

    fn content(&self) -> &[u8] {
        match &self.opaque {
            Some(bytes) => bytes,
            None => self.text.as_bytes(),
        }
    }

    /// The Data as received, before its Format is known: markup as
    /// `Xml`, OPAQUE (and the text around it) as `Binary`, text as `Text`.
    /// [`resolve_data`] makes it the model value.
    fn provisional(self) -> Data {
        match (self.markup, self.opaque) {
            (Some(m), _) => Data::Xml(m),
            (None, Some(bytes)) => Data::Binary(bytes),
            (None, None) => Data::Text(self.text),
        }
    }
}

/// Resolves the provisional Data of `items` (see `Parser::item`) under the
/// effective Format, in place (an Item is a few hundred bytes: not worth
/// moving again).
fn resolve_items(items: &mut [Item], cmd_meta: Option<&Meta>) {
    let cmd_format = cmd_meta.and_then(|m| m.format.as_deref());
    for item in items {
        if let Some(d) = item.data.take() {
            let format = item
                .meta
                .as_ref()
                .and_then(|m| m.format.as_deref())
                .or(cmd_format);
            item.data = Some(resolve_data(d, format));
        }
    }
}

fn effective_format<'m>(item: &'m Item, cmd_meta: Option<&'m Meta>) -> Option<&'m str> {
    item.meta
        .as_ref()
        .and_then(|m| m.format.as_deref())
        .or_else(|| cmd_meta.and_then(|m| m.format.as_deref()))
}

/// Turns received Data into its model value. Format `b64`/`bin` text is
/// base64 (as XML must carry binary); OPAQUE is raw bytes, except that under
/// Format `b64` it may hold base64 text (`QUIRKS.md`: some encoders put all
/// Data in OPAQUE) and under a text format it is text when it is UTF-8.
fn resolve_data(raw: Data, format: Option<&str>) -> Data {
    let binary = matches!(format, Some("b64" | "bin"));
    let bytes = match raw {
        Data::Xml(m) => return Data::Xml(m),
        Data::Binary(bytes) => bytes,
        Data::Text(mut text) => {
            // Strip the trailing NULs (`strip_nul`) before the base64 test, so
            // that the test sees what a re-encoding of the value would carry.
            while text.ends_with('\0') {
                text.pop();
            }
            if binary {
                if let Some(decoded) = decode_b64(text.as_bytes()) {
                    return Data::Binary(decoded);
                }
                // Under a binary Format, text that is not base64 stays text,
                // unless it holds NUL: WBXML carries that only as OPAQUE, which
                // is bytes here.
                if text.contains('\0') {
                    return Data::Binary(text.into_bytes());
                }
            }
            return Data::Text(strip_nul(text));
        }
    };
    if format == Some("b64") {
        if let Some(decoded) = decode_b64(&bytes) {
            return Data::Binary(decoded);
        }
    }
    if binary {
        return Data::Binary(bytes);
    }
    match String::from_utf8(bytes) {
        Ok(s) => Data::Text(strip_nul(s)),
        Err(e) => Data::Binary(e.into_bytes()),
    }
}

fn decode_b64(text: &[u8]) -> Option<Vec<u8>> {
    if !text.iter().any(u8::is_ascii_whitespace) {
        return B64.decode(text).ok();
    }
    let compact: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    B64.decode(compact).ok()
}

/// NULs: a trailing one after an interior node's child list (`QUIRKS.md`),
/// and any other, which XML cannot carry in any form.
fn strip_nul(s: String) -> String {
    if s.contains('\0') {
        s.replace('\0', "")
    } else {
        s
    }
}

/// A guess at the XML size of a message, so that the writers allocate
/// their output once or twice rather than grow it a dozen times. Per
/// command and item a fixed allowance for markup, plus the Data.
pub(crate) fn size_hint(msg: &SyncMl) -> usize {
    fn items(items: &[Item]) -> usize {
        items
            .iter()
            .map(|i| {
                let data = match &i.data {
                    Some(Data::Text(t)) => t.len(),
                    Some(Data::Binary(b)) => b.len() / 3 * 4 + 4,
                    Some(Data::Xml(x)) => x.len(),
                    None => 0,
                };
                let uri = i.target.as_ref().map_or(0, |l| l.loc_uri.len())
                    + i.source.as_ref().map_or(0, |l| l.loc_uri.len());
                160 + data + uri
            })
            .sum()
    }
    fn commands(list: &[Command]) -> usize {
        list.iter()
            .map(|c| {
                140 + match c {
                    Command::Add(c)
                    | Command::Copy(c)
                    | Command::Delete(c)
                    | Command::Get(c)
                    | Command::Replace(c) => items(&c.items),
                    Command::Alert(c) => items(&c.items),
                    Command::Exec(c) => items(&c.items),
                    Command::Status(c) => items(&c.items),
                    Command::Results(c) => items(&c.items),
                    Command::Atomic(c) | Command::Sequence(c) => commands(&c.commands),
                }
            })
            .sum()
    }
    400 + msg.header.target.loc_uri.len()
        + msg.header.source.loc_uri.len()
        + commands(&msg.body.commands)
}

/// Encodes a message as events, in DTD order.
pub(crate) fn encode_message<W: EventWriter + ?Sized>(msg: &SyncMl, w: &mut W) {
    w.start(Tag::SYNCML);
    let h = &msg.header;
    w.start(Tag::SYNC_HDR);
    text_el(w, Tag::VER_DTD, &h.ver_dtd);
    text_el(w, Tag::VER_PROTO, &h.ver_proto);
    text_el(w, Tag::SESSION_ID, &h.session_id);
    text_el(w, Tag::MSG_ID, &h.msg_id.to_string());
    location(w, Tag::TARGET, &h.target);
    location(w, Tag::SOURCE, &h.source);
    if let Some(r) = &h.resp_uri {
        text_el(w, Tag::RESP_URI, r);
    }
    flag_el(w, Tag::NO_RESP, h.no_resp);
    if let Some(c) = &h.cred {
        cred(w, c);
    }
    if let Some(m) = &h.meta {
        meta(w, m);
    }
    w.end();
    w.start(Tag::SYNC_BODY);
    for c in &msg.body.commands {
        command(w, c);
    }
    flag_el(w, Tag::FINAL, msg.body.is_final);
    w.end();
    w.end();
}

fn text_el<W: EventWriter + ?Sized>(w: &mut W, tag: Tag, text: &str) {
    if text.is_empty() {
        w.empty(tag);
    } else {
        w.start(tag);
        w.text(text);
        w.end();
    }
}

fn flag_el<W: EventWriter + ?Sized>(w: &mut W, tag: Tag, set: bool) {
    if set {
        w.empty(tag);
    }
}

fn location<W: EventWriter + ?Sized>(w: &mut W, tag: Tag, loc: &Location) {
    w.start(tag);
    text_el(w, Tag::LOC_URI, &loc.loc_uri);
    if let Some(n) = &loc.loc_name {
        text_el(w, Tag::LOC_NAME, n);
    }
    w.end();
}

fn cred<W: EventWriter + ?Sized>(w: &mut W, c: &Cred) {
    w.start(Tag::CRED);
    if let Some(m) = &c.meta {
        meta(w, m);
    }
    text_el(w, Tag::DATA, &c.data);
    w.end();
}

fn meta<W: EventWriter + ?Sized>(w: &mut W, m: &Meta) {
    if m.is_empty() {
        w.empty(Tag::META);
        return;
    }
    w.start(Tag::META);
    if let Some(v) = &m.format {
        text_el(w, Tag::FORMAT, v);
    }
    if let Some(v) = &m.r#type {
        text_el(w, Tag::TYPE, v);
    }
    if let Some(v) = &m.mark {
        text_el(w, Tag::MARK, v);
    }
    if let Some(v) = m.size {
        text_el(w, Tag::SIZE, &v.to_string());
    }
    if let Some(v) = &m.next_nonce {
        text_el(w, Tag::NEXT_NONCE, v);
    }
    if let Some(v) = &m.version {
        text_el(w, Tag::VERSION, v);
    }
    if let Some(v) = m.max_msg_size {
        text_el(w, Tag::MAX_MSG_SIZE, &v.to_string());
    }
    if let Some(v) = m.max_obj_size {
        text_el(w, Tag::MAX_OBJ_SIZE, &v.to_string());
    }
    for e in &m.emi {
        text_el(w, Tag::EMI, e);
    }
    flag_el(w, Tag::FIELD_LEVEL, m.field_level);
    w.end();
}

fn cmd_id<W: EventWriter + ?Sized>(w: &mut W, id: u32) {
    text_el(w, Tag::CMD_ID, &id.to_string());
}

fn command<W: EventWriter + ?Sized>(w: &mut W, c: &Command) {
    match c {
        Command::Add(c) => item_command(w, Tag::ADD, c),
        Command::Copy(c) => item_command(w, Tag::COPY, c),
        Command::Delete(c) => item_command(w, Tag::DELETE, c),
        Command::Get(c) => item_command(w, Tag::GET, c),
        Command::Replace(c) => item_command(w, Tag::REPLACE, c),
        Command::Alert(a) => {
            w.start(Tag::ALERT);
            cmd_id(w, a.cmd_id);
            flag_el(w, Tag::NO_RESP, a.no_resp);
            if let Some(c) = &a.cred {
                cred(w, c);
            }
            if let Some(d) = a.data {
                text_el(w, Tag::DATA, &d.0.to_string());
            }
            if let Some(c) = &a.correlator {
                text_el(w, Tag::CORRELATOR, c);
            }
            items(w, &a.items, None);
            w.end();
        }
        Command::Exec(e) => {
            w.start(Tag::EXEC);
            cmd_id(w, e.cmd_id);
            flag_el(w, Tag::NO_RESP, e.no_resp);
            if let Some(c) = &e.cred {
                cred(w, c);
            }
            if let Some(m) = &e.meta {
                meta(w, m);
            }
            if let Some(c) = &e.correlator {
                text_el(w, Tag::CORRELATOR, c);
            }
            items(w, &e.items, e.meta.as_ref());
            w.end();
        }
        Command::Atomic(c) => container(w, Tag::ATOMIC, c),
        Command::Sequence(c) => container(w, Tag::SEQUENCE, c),
        Command::Status(s) => {
            w.start(Tag::STATUS);
            cmd_id(w, s.cmd_id);
            if let Some(m) = s.msg_ref {
                text_el(w, Tag::MSG_REF, &m.to_string());
            }
            text_el(w, Tag::CMD_REF, &s.cmd_ref.to_string());
            text_el(w, Tag::CMD, &s.cmd);
            for r in &s.target_refs {
                text_el(w, Tag::TARGET_REF, r);
            }
            for r in &s.source_refs {
                text_el(w, Tag::SOURCE_REF, r);
            }
            if let Some(c) = &s.cred {
                cred(w, c);
            }
            if let Some(c) = &s.chal {
                w.start(Tag::CHAL);
                meta(w, &c.meta);
                w.end();
            }
            text_el(w, Tag::DATA, &s.data.0.to_string());
            items(w, &s.items, None);
            w.end();
        }
        Command::Results(r) => {
            w.start(Tag::RESULTS);
            cmd_id(w, r.cmd_id);
            if let Some(m) = r.msg_ref {
                text_el(w, Tag::MSG_REF, &m.to_string());
            }
            text_el(w, Tag::CMD_REF, &r.cmd_ref.to_string());
            if let Some(m) = &r.meta {
                meta(w, m);
            }
            if let Some(t) = &r.target_ref {
                text_el(w, Tag::TARGET_REF, t);
            }
            if let Some(s) = &r.source_ref {
                text_el(w, Tag::SOURCE_REF, s);
            }
            items(w, &r.items, r.meta.as_ref());
            w.end();
        }
    }
}

fn item_command<W: EventWriter + ?Sized>(w: &mut W, tag: Tag, c: &ItemCommand) {
    w.start(tag);
    cmd_id(w, c.cmd_id);
    flag_el(w, Tag::NO_RESP, c.no_resp);
    flag_el(w, Tag::ARCHIVE, c.archive);
    flag_el(w, Tag::SFT_DEL, c.sft_del);
    if let Some(l) = &c.lang {
        text_el(w, Tag::LANG, l);
    }
    if let Some(cr) = &c.cred {
        cred(w, cr);
    }
    if let Some(m) = &c.meta {
        meta(w, m);
    }
    items(w, &c.items, c.meta.as_ref());
    w.end();
}

fn container<W: EventWriter + ?Sized>(w: &mut W, tag: Tag, c: &Container) {
    w.start(tag);
    cmd_id(w, c.cmd_id);
    flag_el(w, Tag::NO_RESP, c.no_resp);
    if let Some(m) = &c.meta {
        meta(w, m);
    }
    for cmd in &c.commands {
        command(w, cmd);
    }
    w.end();
}

fn items<W: EventWriter + ?Sized>(w: &mut W, items: &[Item], cmd_meta: Option<&Meta>) {
    for item in items {
        w.start(Tag::ITEM);
        if let Some(t) = &item.target {
            location(w, Tag::TARGET, t);
        }
        if let Some(s) = &item.source {
            location(w, Tag::SOURCE, s);
        }
        if let Some(p) = &item.source_parent {
            location(w, Tag::SOURCE_PARENT, &Location::uri(p.clone()));
        }
        if let Some(p) = &item.target_parent {
            location(w, Tag::TARGET_PARENT, &Location::uri(p.clone()));
        }
        let mut format = effective_format(item, cmd_meta);
        // Binary Data under a text Format (OPAQUE from a WBXML peer that is
        // not UTF-8) has no XML form but base64, which only Format `b64`
        // tells a reader to decode: the Item's Meta says so, and the value
        // comes back byte for byte (issue #2).
        let labelled;
        let mut item_meta = item.meta.as_ref();
        if w.binary_as_base64()
            && matches!(item.data, Some(Data::Binary(_)))
            && !matches!(format, Some("b64" | "bin"))
        {
            labelled = Meta {
                format: Some("b64".to_owned()),
                ..item.meta.clone().unwrap_or_default()
            };
            item_meta = Some(&labelled);
            format = Some("b64");
        }
        if let Some(m) = item_meta {
            meta(w, m);
        }
        if let Some(d) = &item.data {
            data(w, d, format);
        }
        flag_el(w, Tag::MORE_DATA, item.more_data);
        w.end();
    }
}

fn data<W: EventWriter + ?Sized>(w: &mut W, d: &Data, format: Option<&str>) {
    match d {
        Data::Text(t) => text_el(w, Tag::DATA, t),
        Data::Binary(b) if b.is_empty() => w.empty(Tag::DATA),
        // Format b64 is base64 text in both encodings (WBXML.md §6).
        Data::Binary(b) if format == Some("b64") => text_el(w, Tag::DATA, &B64.encode(b)),
        Data::Binary(b) => {
            w.start(Tag::DATA);
            w.opaque(b);
            w.end();
        }
        Data::Xml(x) if x.is_empty() => w.empty(Tag::DATA),
        Data::Xml(x) => {
            w.start(Tag::DATA);
            w.xml_fragment(x);
            w.end();
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{Command, Data};
    use crate::wbxml::TNDS_XML;
    use crate::{decode_wbxml, decode_xml, encode_wbxml, encode_xml, Limits, SyncMl};

    /// A message whose one Results item carries `data` as its `<Data>`.
    fn with_data(data: &str) -> Vec<u8> {
        format!(
            "<SyncML xmlns=\"SYNCML:SYNCML1.2\"><SyncHdr><VerDTD>1.2</VerDTD>\
             <VerProto>DM/1.2</VerProto><SessionID>1</SessionID><MsgID>1</MsgID>\
             <Target><LocURI>s</LocURI></Target><Source><LocURI>c</LocURI></Source>\
             </SyncHdr><SyncBody><Results><CmdID>1</CmdID><CmdRef>1</CmdRef><Item>\
             <Data>{data}</Data></Item></Results></SyncBody></SyncML>"
        )
        .into_bytes()
    }

    fn first_data(msg: &SyncMl) -> &Data {
        let Command::Results(r) = &msg.body.commands[0] else {
            panic!("not a Results: {msg:?}");
        };
        r.items[0].data.as_ref().expect("data")
    }

    /// decode→encode→decode is the identity through both encodings.
    fn assert_stable(msg: &SyncMl) {
        let xml = encode_xml(msg);
        assert_eq!(&decode_xml(&xml, &Limits::default()).unwrap(), msg);
        let wbxml = encode_wbxml(msg);
        assert_eq!(&decode_wbxml(&wbxml, &Limits::default()).unwrap(), msg);
    }

    // Fuzz finding: a TNDS tree in an unknown namespace was captured as
    // `<MgmtTree>` (unknown, no xmlns), which reads back as the DDF tag.
    #[test]
    fn foreign_namespace_element_with_a_known_name_is_captured_as_known() {
        let input = with_data(
            "<MgmtTree xmlns=\"syncml:dmddf0.2\"><VerDTD>1.2</VerDTD>\
             <Node><NodeName>A</NodeName></Node></MgmtTree>",
        );
        let msg = decode_xml(&input, &Limits::default()).unwrap();
        assert_eq!(
            first_data(&msg),
            &Data::Xml(
                "<MgmtTree xmlns=\"syncml:dmddf1.2\"><VerDTD xmlns=\"SYNCML:SYNCML1.2\">1.2\
                 </VerDTD><Node><NodeName>A</NodeName></Node></MgmtTree>"
                    .into()
            )
        );
        assert_stable(&msg);
    }

    /// A WBXML message whose one Results item has `content` inside `<Data>`.
    fn wbxml_with_data(content: &[u8]) -> Vec<u8> {
        let mut item = vec![0x4F];
        item.extend_from_slice(content);
        item.push(0x01);
        wbxml_with_item(&item)
    }

    /// A WBXML message whose one Results item holds `content`.
    fn wbxml_with_item(content: &[u8]) -> Vec<u8> {
        let mut m = vec![0x02, 0xA4, 0x01, 0x6A, 0x00, 0x6D, 0x6C];
        for (tag, text) in [(0x71, "1.2"), (0x72, "DM/1.2"), (0x65, "1"), (0x5B, "1")] {
            m.push(tag);
            m.push(0x03);
            m.extend_from_slice(text.as_bytes());
            m.extend_from_slice(&[0x00, 0x01]);
        }
        m.extend_from_slice(&[0x6E, 0x57, 0x03, b's', 0x00, 0x01, 0x01]);
        m.extend_from_slice(&[0x67, 0x57, 0x03, b'c', 0x00, 0x01, 0x01, 0x01]);
        m.extend_from_slice(&[0x6B, 0x62, 0x4B, 0x03, b'1', 0x00, 0x01]);
        m.extend_from_slice(&[0x4C, 0x03, b'1', 0x00, 0x01, 0x54]);
        m.extend_from_slice(content);
        m.extend_from_slice(&[0x01, 0x01, 0x01, 0x01]);
        m
    }

    fn wbxml_data(content: &[u8]) -> Data {
        let msg = decode_wbxml(&wbxml_with_data(content), &Limits::default()).unwrap();
        assert_stable(&msg);
        first_data(&msg).clone()
    }

    // Fuzz finding: OPAQUE before the first element of nested markup was
    // dropped (only STR_I text was carried into the markup).
    #[test]
    fn opaque_before_markup_is_kept() {
        // OPAQUE "x", then <CmdID/>.
        assert_eq!(
            wbxml_data(&[0xC3, 0x01, b'x', 0x0B]),
            Data::Xml("x<CmdID/>".into())
        );
    }

    // Fuzz finding: whitespace-only OPAQUE between elements was kept while
    // the same STR_I was dropped, so the XML re-read lost it.
    #[test]
    fn opaque_whitespace_in_markup_is_indentation_like_text() {
        // <CmdID/>, then OPAQUE " ".
        assert_eq!(
            wbxml_data(&[0x0B, 0xC3, 0x01, b' ']),
            Data::Xml("<CmdID/>".into())
        );
    }

    // Adjacent STR_I pieces are one text (event.rs): a whitespace piece
    // between two others is part of the value.
    #[test]
    fn adjacent_text_pieces_in_markup_are_joined() {
        // <CmdID> "a" " " "b" </CmdID>
        let content = [
            0x4B, 0x03, b'a', 0x00, 0x03, b' ', 0x00, 0x03, b'b', 0x00, 0x01,
        ];
        assert_eq!(wbxml_data(&content), Data::Xml("<CmdID>a b</CmdID>".into()));
    }

    // Text and OPAQUE pieces of a plain value keep their order (they were
    // joined as all text, then all OPAQUE).
    #[test]
    fn text_and_opaque_pieces_keep_their_order() {
        // OPAQUE "a", STR_I "b".
        assert_eq!(
            wbxml_data(&[0xC3, 0x01, b'a', 0x03, b'b', 0x00]),
            Data::Text("ab".into())
        );
    }

    // Fuzz finding: `<Data>\0</Data>` under Format b64 was not base64, so
    // it became Text, and the NUL stripped: the empty text re-read as
    // base64 of nothing.
    #[test]
    fn trailing_nul_is_stripped_before_the_base64_test() {
        let input = String::from_utf8(with_data("Zm9v\0")).unwrap().replace(
            "<Item>",
            "<Item><Meta><Format xmlns=\"syncml:metinf\">b64</Format></Meta>",
        );
        let msg = decode_xml(input.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(first_data(&msg), &Data::Binary(b"foo".to_vec()));
        assert_stable(&msg);
    }

    // Fuzz finding: the reader mapped a TNDS Type `+wbxml` → `+xml` per
    // STR_I piece, so a Type split in two kept `+wbxml`, which the writer
    // sent as one piece and the reader then mapped.
    #[test]
    fn tnds_type_split_over_two_strings_maps_to_the_xml_form() {
        // Results > Item > Meta > Type "application/vnd.syncml.dmtnds+" "wbxml"
        let mut item = vec![0x5A, 0x00, 0x01, 0x53, 0x03];
        item.extend_from_slice(b"application/vnd.syncml.dmtnds+\0\x03wbxml\0");
        item.extend_from_slice(&[0x01, 0x01, 0x00, 0x00]);
        let input = wbxml_with_item(&item);
        let msg = decode_wbxml(&input, &Limits::default()).unwrap();
        let Command::Results(r) = &msg.body.commands[0] else {
            panic!("not a Results: {msg:?}");
        };
        let meta = r.items[0].meta.as_ref().expect("meta");
        assert_eq!(meta.r#type.as_deref(), Some(TNDS_XML));
        assert_stable(&msg);
    }

    // Fuzz finding: the WBXML writer mapped the TNDS Type text that comes
    // before a child element of the Type, the reader only a Type's text
    // without children, so such a Type came back `+wbxml`.
    #[test]
    fn tnds_type_text_before_a_child_maps_both_ways() {
        let input = with_data(
            "<Type xmlns=\"syncml:metinf\">application/vnd.syncml.dmtnds+xml<Final/></Type>",
        );
        let msg = decode_xml(&input, &Limits::default()).unwrap();
        assert_stable(&msg);
    }

    #[test]
    fn tnds_type_in_nested_markup_maps_to_the_xml_form() {
        let input =
            with_data("<Type xmlns=\"syncml:metinf\">application/vnd.syncml.dmtnds+WBXML</Type>");
        let msg = decode_xml(&input, &Limits::default()).unwrap();
        assert_eq!(
            first_data(&msg),
            &Data::Xml(format!("<Type xmlns=\"syncml:metinf\">{TNDS_XML}</Type>"))
        );
        assert_stable(&msg);
    }

    // Fuzz finding: non-base64 text holding NUL under Format b64 stayed
    // Text; WBXML can only send it as OPAQUE, which reads back as bytes.
    #[test]
    fn text_with_nul_under_a_binary_format_is_bytes() {
        let input = String::from_utf8(with_data("\0H")).unwrap().replace(
            "<Item>",
            "<Item><Meta><Format xmlns=\"syncml:metinf\">b64</Format></Meta>",
        );
        let msg = decode_xml(input.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(first_data(&msg), &Data::Binary(b"\0H".to_vec()));
        assert_stable(&msg);
        // Without NUL it stays text (a client that mislabels plain text).
        let input = input.replace("\0H", "not base64!");
        let msg = decode_xml(input.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(first_data(&msg), &Data::Text("not base64!".into()));
        assert_stable(&msg);
    }

    #[test]
    fn control_characters_survive_xml_as_character_references() {
        let input = with_data("a&#1;b&#27;c");
        let msg = decode_xml(&input, &Limits::default()).unwrap();
        assert_eq!(first_data(&msg), &Data::Text("a\u{1}b\u{1b}c".into()));
        let xml = String::from_utf8(encode_xml(&msg)).unwrap();
        assert!(xml.contains("a&#1;b&#27;c"), "{xml}");
        assert_stable(&msg);
    }

    // Fuzz findings: NUL written as `&#0;` (which our reader refuses), and
    // raw NULs inside nested markup. XML cannot carry U+0000 in any form, so
    // character data drops it on decode, whatever the encoding.
    #[test]
    fn nul_is_dropped_from_character_data() {
        let input = wbxml_with_data(&[0xC3, 0x02, 0x00, b'S']);
        let msg = decode_wbxml(&input, &Limits::default()).unwrap();
        assert_eq!(first_data(&msg), &Data::Text("S".into()));
        assert_stable(&msg);
        let input = with_data("<A>\u{1b}\0x</A>\0");
        let msg = decode_xml(&input, &Limits::default()).unwrap();
        assert_eq!(first_data(&msg), &Data::Xml("<A>&#27;x</A>".into()));
        assert_stable(&msg);
    }

    // Binary Data under a text Format (here non-UTF-8 OPAQUE under Format
    // chr) has no XML form but base64: the XML writer labels the Item
    // Format b64, so the bytes come back exactly; WBXML keeps OPAQUE and
    // the original Meta.
    #[test]
    fn binary_data_under_a_text_format_goes_to_xml_as_labelled_base64() {
        // Results > Item > Meta > Format "chr", then Data OPAQUE FF 00 80.
        let mut item = vec![0x5A, 0x00, 0x01, 0x47, 0x03];
        item.extend_from_slice(b"chr\0");
        item.extend_from_slice(&[
            0x01, 0x00, 0x00, 0x01, 0x4F, 0xC3, 0x03, 0xFF, 0x00, 0x80, 0x01,
        ]);
        let msg = decode_wbxml(&wbxml_with_item(&item), &Limits::default()).unwrap();
        assert_eq!(first_data(&msg), &Data::Binary(vec![0xFF, 0x00, 0x80]));
        let wbxml = encode_wbxml(&msg);
        assert_eq!(decode_wbxml(&wbxml, &Limits::default()).unwrap(), msg);

        let xml = encode_xml(&msg);
        let text = String::from_utf8(xml.clone()).unwrap();
        assert!(
            text.contains(
                "<Meta><Format xmlns=\"syncml:metinf\">b64</Format></Meta><Data>/wCA</Data>"
            ),
            "{text}"
        );
        let back = decode_xml(&xml, &Limits::default()).unwrap();
        assert_eq!(first_data(&back), first_data(&msg));
        let Command::Results(r) = &back.body.commands[0] else {
            panic!("not a Results: {back:?}");
        };
        let meta = r.items[0].meta.as_ref().expect("meta");
        assert_eq!(meta.format.as_deref(), Some("b64"));
        // Stable from there on, in both encodings.
        assert_eq!(encode_xml(&back), xml);
        assert_stable(&back);
    }

    // Without any Format, and empty: still labelled, so that the empty value
    // stays binary rather than becoming empty text.
    #[test]
    fn binary_data_without_a_format_goes_to_xml_as_labelled_base64() {
        for bytes in [vec![0xC3, 0x28], Vec::new()] {
            let mut msg = decode_xml(&with_data("x"), &Limits::default()).unwrap();
            let Command::Results(r) = &mut msg.body.commands[0] else {
                panic!("not a Results: {msg:?}");
            };
            r.items[0].data = Some(Data::Binary(bytes.clone()));
            let back = decode_xml(&encode_xml(&msg), &Limits::default()).unwrap();
            assert_eq!(first_data(&back), &Data::Binary(bytes));
            assert_stable(&back);
        }
    }

    #[test]
    fn unknown_elements_stay_unknown() {
        let input = with_data("<ResultCode>1200</ResultCode><Identifier>x</Identifier>");
        let msg = decode_xml(&input, &Limits::default()).unwrap();
        assert_eq!(
            first_data(&msg),
            &Data::Xml("<ResultCode>1200</ResultCode><Identifier>x</Identifier>".into())
        );
        assert_stable(&msg);
    }
}
