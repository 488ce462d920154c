//! Receiving large objects (`OMA-TS-DM_Protocol-V1_2` §7, digest §7): one
//! item's Data split over consecutive messages, every chunk but the last
//! flagged `<MoreData/>`, the first carrying `Meta/Size`.
//!
//! ```text
//!   chunk 1 (Size, MoreData) ─▶ 213 ┐
//!   chunk 2 (MoreData)       ─▶ 213 ├─ bytes go to an ObjectSink
//!   chunk n                  ─▶ size check ─▶ 424, or the whole command
//!   anything else before n   ─▶ Alert 1225, object dropped
//! ```
//!
//! Where the bytes go is pluggable ([`ObjectSink`]); the default
//! [`MemorySink`] is bounded by the receiver's MaxObjSize.

use std::fmt;

use base64::Engine as _;
use omadm_wire::model::{Alert, Command, Data, Item, Meta};
use omadm_wire::{AlertCode, StatusCode};

use crate::auth::B64;

/// Where a large object's bytes go while it arrives. The engines call
/// `begin`, then `append` per chunk, then `finish` (or `discard`). Errors are
/// the status the chunk is answered with (e.g. 413, 420 device full).
pub trait ObjectSink: Send {
    /// A new object starts; `declared_size` is the first chunk's `Meta/Size`.
    fn begin(&mut self, declared_size: Option<u64>) -> Result<(), StatusCode>;
    /// The next decoded bytes.
    fn append(&mut self, bytes: &[u8]) -> Result<(), StatusCode>;
    /// The object is complete: its bytes, which become the command's Data.
    fn finish(&mut self) -> Result<Vec<u8>, StatusCode>;
    /// The object was interrupted or refused: drop what was buffered.
    fn discard(&mut self);
}

/// An in-memory [`ObjectSink`] that refuses objects over `limit` bytes.
pub struct MemorySink {
    limit: u64,
    buf: Vec<u8>,
}

impl MemorySink {
    /// A sink holding at most `limit` bytes.
    pub fn new(limit: u64) -> MemorySink {
        MemorySink {
            limit,
            buf: Vec::new(),
        }
    }
}

impl fmt::Debug for MemorySink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemorySink")
            .field("limit", &self.limit)
            .field("buffered", &self.buf.len())
            .finish()
    }
}

impl ObjectSink for MemorySink {
    fn begin(&mut self, declared_size: Option<u64>) -> Result<(), StatusCode> {
        self.buf.clear();
        if declared_size.is_some_and(|s| s > self.limit.saturating_mul(4) / 3 + 4) {
            // Even as base64 text this would be over the limit.
            return Err(StatusCode::REQUEST_ENTITY_TOO_LARGE);
        }
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> Result<(), StatusCode> {
        if self.buf.len() as u64 + bytes.len() as u64 > self.limit {
            self.buf = Vec::new();
            return Err(StatusCode::REQUEST_ENTITY_TOO_LARGE);
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    fn finish(&mut self) -> Result<Vec<u8>, StatusCode> {
        Ok(std::mem::take(&mut self.buf))
    }

    fn discard(&mut self) {
        self.buf = Vec::new();
    }
}

/// What became of one received command.
#[derive(Debug)]
pub(crate) enum Fed {
    /// Not (part of) a large object: process it as it is.
    Whole(Command),
    /// A chunk was buffered: answer 213.
    Buffered,
    /// The last chunk arrived: the reassembled command.
    Complete(Command),
    /// The chunk or object is refused with this status.
    Refused(StatusCode),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct LoKey {
    name: &'static str,
    target: Option<String>,
    source: Option<String>,
}

impl LoKey {
    fn of(cmd: &Command, item: &Item) -> LoKey {
        LoKey {
            name: cmd.name(),
            target: item.target.as_ref().map(|t| t.loc_uri.clone()),
            source: item.source.as_ref().map(|s| s.loc_uri.clone()),
        }
    }
}

struct InProgress {
    key: LoKey,
    /// The first chunk's command, Data removed.
    template: Command,
    declared: Option<u64>,
    b64: bool,
    /// Length as transmitted (base64 text length for Format b64).
    wire_len: u64,
    /// Decoded length.
    byte_len: u64,
    /// Base64 text not yet decoded (a chunk boundary inside a quad).
    pending_b64: String,
    all_text: bool,
}

/// Reassembles incoming large objects for one session.
pub(crate) struct Assembler {
    sink: Box<dyn ObjectSink>,
    current: Option<InProgress>,
    rejected: Option<LoKey>,
}

impl fmt::Debug for Assembler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Assembler")
            .field("in_progress", &self.current.as_ref().map(|c| &c.key))
            .field("rejected", &self.rejected)
            .finish()
    }
}

impl Assembler {
    pub(crate) fn new(sink: Box<dyn ObjectSink>) -> Assembler {
        Assembler {
            sink,
            current: None,
            rejected: None,
        }
    }

    pub(crate) fn set_sink(&mut self, sink: Box<dyn ObjectSink>) {
        self.reset();
        self.sink = sink;
    }

    /// Drops any object in progress (session end, abort).
    pub(crate) fn reset(&mut self) {
        if self.current.take().is_some() {
            self.sink.discard();
        }
        self.rejected = None;
    }

    /// Takes one received command (not Status, not Alert 1222/1223). Returns
    /// an Alert 1225 to send first when it interrupts an object in progress.
    pub(crate) fn feed(&mut self, cmd: Command) -> (Option<Alert>, Fed) {
        let (key, more) = match single_item_ref(&cmd) {
            Some(item) => (Some(LoKey::of(&cmd, item)), item.more_data),
            None => (None, false),
        };

        if let Some(rej) = &self.rejected {
            if key.as_ref() == Some(rej) {
                if !more {
                    self.rejected = None;
                }
                return (None, Fed::Refused(StatusCode::REQUEST_ENTITY_TOO_LARGE));
            }
            self.rejected = None;
        }

        let mut interrupted = None;
        if let Some(cur) = &self.current {
            if key.as_ref() == Some(&cur.key) {
                return (None, self.continue_object(cmd, more));
            }
            interrupted = Some(no_end_of_data(&cur.key));
            self.reset();
        }

        if !more {
            if has_more_data(&cmd) {
                // Several items with one chunked: DM allows only single-item
                // chunking.
                return (interrupted, Fed::Refused(StatusCode::INCOMPLETE_COMMAND));
            }
            return (interrupted, Fed::Whole(cmd));
        }
        let Some(key) = key else {
            return (interrupted, Fed::Refused(StatusCode::INCOMPLETE_COMMAND));
        };
        (interrupted, self.start_object(key, cmd))
    }

    fn start_object(&mut self, key: LoKey, mut cmd: Command) -> Fed {
        let declared = declared_size(&cmd);
        let b64 = is_b64(&cmd);
        let data = single_item(&mut cmd).and_then(|i| i.data.take());
        if let Err(code) = self.sink.begin(declared) {
            self.rejected = Some(key);
            return Fed::Refused(code);
        }
        self.current = Some(InProgress {
            key: key.clone(),
            template: cmd,
            declared,
            b64,
            wire_len: 0,
            byte_len: 0,
            pending_b64: String::new(),
            all_text: true,
        });
        match self.take(data) {
            Ok(()) => Fed::Buffered,
            Err(code) => {
                self.reset();
                self.rejected = Some(key);
                Fed::Refused(code)
            }
        }
    }

    fn continue_object(&mut self, mut cmd: Command, more: bool) -> Fed {
        let last_cmd_id = cmd.cmd_id();
        let data = single_item(&mut cmd).and_then(|i| i.data.take());
        if let Err(code) = self.take(data) {
            let key = self.current.as_ref().map(|c| c.key.clone());
            self.reset();
            if more {
                self.rejected = key;
            }
            return Fed::Refused(code);
        }
        if more {
            return Fed::Buffered;
        }
        let Some(cur) = self.current.take() else {
            return Fed::Refused(StatusCode::COMMAND_FAILED);
        };
        if !cur.pending_b64.is_empty() {
            self.sink.discard();
            return Fed::Refused(StatusCode::SIZE_MISMATCH);
        }
        let bytes = match self.sink.finish() {
            Ok(b) => b,
            Err(code) => return Fed::Refused(code),
        };
        if let Some(size) = cur.declared {
            let b64_len = (bytes.len() as u64).div_ceil(3) * 4;
            if size != cur.wire_len && size != cur.byte_len && size != b64_len {
                return Fed::Refused(StatusCode::SIZE_MISMATCH);
            }
        }
        let data = if cur.b64 || !cur.all_text {
            Data::Binary(bytes)
        } else {
            match String::from_utf8(bytes) {
                Ok(s) => Data::Text(s),
                Err(e) => Data::Binary(e.into_bytes()),
            }
        };
        // The Status answers the last chunk's command.
        let mut whole = cur.template;
        whole.set_cmd_id(last_cmd_id);
        if let Some(item) = single_item(&mut whole) {
            item.data = Some(data);
            item.more_data = false;
        }
        Fed::Complete(whole)
    }

    fn take(&mut self, data: Option<Data>) -> Result<(), StatusCode> {
        let Some(cur) = self.current.as_mut() else {
            return Err(StatusCode::COMMAND_FAILED);
        };
        let Some(data) = data else { return Ok(()) };
        match data {
            Data::Binary(b) => {
                if !cur.pending_b64.is_empty() {
                    return Err(StatusCode::PARTIAL_ITEM_NOT_ACCEPTED);
                }
                cur.all_text = false;
                cur.wire_len += if cur.b64 {
                    (b.len() as u64).div_ceil(3) * 4
                } else {
                    b.len() as u64
                };
                cur.byte_len += b.len() as u64;
                self.sink.append(&b)
            }
            Data::Text(t) | Data::Xml(t) => {
                if cur.b64 {
                    // Base64 split at a point that is not a quad boundary:
                    // decode whole quads, keep the rest for the next chunk.
                    cur.pending_b64
                        .extend(t.chars().filter(|c| !c.is_ascii_whitespace()));
                    let whole = cur.pending_b64.len() / 4 * 4;
                    let rest = cur.pending_b64.split_off(whole);
                    let quads = std::mem::replace(&mut cur.pending_b64, rest);
                    cur.wire_len += quads.len() as u64;
                    let decoded = B64
                        .decode(quads.as_bytes())
                        .map_err(|_| StatusCode::BAD_REQUEST)?;
                    cur.byte_len += decoded.len() as u64;
                    self.sink.append(&decoded)
                } else {
                    cur.wire_len += t.len() as u64;
                    cur.byte_len += t.len() as u64;
                    self.sink.append(t.as_bytes())
                }
            }
        }
    }
}

fn single_item(cmd: &mut Command) -> Option<&mut Item> {
    let items = match cmd {
        Command::Add(c) | Command::Replace(c) | Command::Copy(c) => &mut c.items,
        Command::Alert(a) => &mut a.items,
        Command::Results(r) => &mut r.items,
        Command::Exec(e) => &mut e.items,
        _ => return None,
    };
    match items.as_mut_slice() {
        [one] => Some(one),
        _ => None,
    }
}

fn single_item_ref(cmd: &Command) -> Option<&Item> {
    match cmd {
        Command::Add(_)
        | Command::Replace(_)
        | Command::Copy(_)
        | Command::Alert(_)
        | Command::Results(_)
        | Command::Exec(_) => match items_of(cmd) {
            [one] => Some(one),
            _ => None,
        },
        _ => None,
    }
}

fn items_of(cmd: &Command) -> &[Item] {
    match cmd {
        Command::Add(c)
        | Command::Replace(c)
        | Command::Copy(c)
        | Command::Get(c)
        | Command::Delete(c) => &c.items,
        Command::Alert(a) => &a.items,
        Command::Results(r) => &r.items,
        Command::Exec(e) => &e.items,
        _ => &[],
    }
}

fn has_more_data(cmd: &Command) -> bool {
    items_of(cmd).iter().any(|i| i.more_data)
}

fn cmd_meta(cmd: &Command) -> Option<&Meta> {
    match cmd {
        Command::Add(c) | Command::Replace(c) | Command::Copy(c) => c.meta.as_ref(),
        Command::Results(r) => r.meta.as_ref(),
        Command::Exec(e) => e.meta.as_ref(),
        _ => None,
    }
}

fn declared_size(cmd: &Command) -> Option<u64> {
    let item = items_of(cmd).first()?;
    item.meta
        .as_ref()
        .and_then(|m| m.size)
        .or_else(|| cmd_meta(cmd).and_then(|m| m.size))
}

fn is_b64(cmd: &Command) -> bool {
    let Some(item) = items_of(cmd).first() else {
        return false;
    };
    item.meta
        .as_ref()
        .and_then(|m| m.format.as_deref())
        .or_else(|| cmd_meta(cmd).and_then(|m| m.format.as_deref()))
        == Some("b64")
}

fn no_end_of_data(key: &LoKey) -> Alert {
    let mut a = Alert::new(AlertCode::NO_END_OF_DATA);
    a.items.push(Item {
        target: key.target.clone().map(omadm_wire::model::Location::uri),
        source: key.source.clone().map(omadm_wire::model::Location::uri),
        ..Item::default()
    });
    a
}
