//! Fitting a package into messages no bigger than the peer's MaxMsgSize
//! (`OMA-TS-DM_Protocol-V1_2` §6.1.8, digest §7).
//!
//! ```text
//!   head (SyncHdr status, control alerts) ─┐
//!   queue: cmd cmd cmd [big item] cmd ... ─┼─▶ one message ≤ limit
//!                                          │   (Final only once the queue is empty)
//!   a command too big for any message ─────┘─▶ split: its single item's Data in
//!                                              chunks (MoreData, Size on the first),
//!                                              or a multi-item Results by items
//! ```
//!
//! CmdIDs are assigned here, per message, nested commands included.

use std::collections::VecDeque;
use std::sync::OnceLock;

use omadm_wire::model::{
    Command, Data, Item, ItemCommand, Location, Meta, SyncBody, SyncHdr, SyncMl,
};
use omadm_wire::{Encoding, StatusCode};

use crate::error::SessionError;

/// Bytes kept free under the limit for what per-command estimates miss.
const MARGIN: usize = 16;
/// Per-command slack for WBXML code-page switches that depend on context.
const WBXML_SLACK: usize = 4;
/// The smallest chunk worth sending.
const MIN_CHUNK: usize = 1;

/// A command waiting to be sent, with the caller's tag.
#[derive(Clone, Debug)]
pub(crate) struct OutCmd<T> {
    pub(crate) cmd: Command,
    pub(crate) tag: T,
    /// The remainder of a chunked item whose first chunk already went (so
    /// no `Size` is added again).
    pub(crate) continuation: bool,
}

impl<T> OutCmd<T> {
    pub(crate) fn new(cmd: Command, tag: T) -> OutCmd<T> {
        OutCmd {
            cmd,
            tag,
            continuation: false,
        }
    }
}

/// A command placed in a message.
#[derive(Clone, Debug)]
pub(crate) struct Placed<T> {
    /// As sent (numbered, possibly a chunk).
    pub(crate) out: OutCmd<T>,
    /// Every CmdID in it with the path of nested indexes (empty = itself).
    pub(crate) ids: Vec<(Vec<usize>, u32)>,
    /// Its item carries `<MoreData/>`: more chunks follow.
    pub(crate) more_data: bool,
}

/// What could not be sent at all.
#[derive(Clone, Debug)]
pub(crate) struct Unsendable<T> {
    pub(crate) out: OutCmd<T>,
    pub(crate) status: StatusCode,
}

/// One assembled message.
#[derive(Debug)]
pub(crate) struct Packed<T> {
    pub(crate) body: Vec<u8>,
    pub(crate) placed: Vec<Placed<T>>,
    pub(crate) unsendable: Vec<Unsendable<T>>,
}

/// Limits for one message.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Budget {
    pub(crate) encoding: Encoding,
    /// The peer's MaxMsgSize.
    pub(crate) max_msg_size: Option<usize>,
    /// The peer's MaxObjSize.
    pub(crate) max_obj_size: Option<u64>,
}

/// Builds the next message: `head`, then as much of `queue` as fits.
///
/// Nothing is cloned on the way: the message owns the commands while it is
/// encoded, then they go back to [`Placed`]; an attempt that does not fit
/// puts them back in the queue.
pub(crate) fn pack<T: Clone>(
    header: SyncHdr,
    head: Vec<Command>,
    queue: &mut VecDeque<OutCmd<T>>,
    final_if_drained: bool,
    budget: Budget,
) -> Result<Packed<T>, SessionError> {
    let mut unsendable = Vec::new();
    if let Some(max_obj) = budget.max_obj_size {
        let mut kept = VecDeque::with_capacity(queue.len());
        for oc in queue.drain(..) {
            if !oc.continuation && object_size(&oc.cmd).is_some_and(|s| s > max_obj) {
                unsendable.push(Unsendable {
                    out: oc,
                    status: StatusCode::REQUEST_ENTITY_TOO_LARGE,
                });
            } else {
                kept.push_back(oc);
            }
        }
        *queue = kept;
    }
    let mut msg = SyncMl {
        header,
        body: SyncBody {
            commands: head,
            is_final: false,
        },
    };
    let mut first_id = 1u32;
    for c in &mut msg.body.commands {
        number(c, &mut first_id);
    }
    let mut attempt = Attempt {
        head_len: msg.body.commands.len(),
        msg,
        first_id,
        final_if_drained,
    };
    // Most messages fit whole: try that first, with one encoding.
    if let Some(limit) = budget.max_msg_size {
        let data: usize = queue.iter().map(|oc| data_len(&oc.cmd)).sum();
        if data < limit {
            let unlimited = Budget {
                max_msg_size: None,
                ..budget
            };
            let (mut packed, undo) = attempt.run(queue, unlimited, 0)?;
            if packed.body.len() <= limit {
                packed.unsendable.extend(unsendable);
                return Ok(packed);
            }
            undo.apply(queue, packed.placed, packed.unsendable);
        }
    }
    let mut slack = 0usize;
    loop {
        let (mut packed, undo) = attempt.run(queue, budget, slack)?;
        match budget.max_msg_size {
            Some(limit) if packed.body.len() > limit && !packed.placed.is_empty() => {
                // The estimate missed: put everything back and retry tighter.
                slack += packed.body.len() - limit + MARGIN;
                undo.apply(queue, packed.placed, packed.unsendable);
            }
            _ => {
                packed.unsendable.extend(unsendable);
                return Ok(packed);
            }
        }
    }
}

/// How to restore the queue after an attempt that did not fit: what the
/// attempt did to it, replayed backwards. Restored commands keep the CmdIDs
/// the attempt gave them; every attempt numbers afresh.
struct Undo<T> {
    log: Vec<Op<T>>,
}

enum Op<T> {
    /// A command placed whole: it is the next one of `Packed::placed`, from
    /// the end.
    Placed,
    /// A chunk placed: dropped (the original is logged before it).
    Chunk,
    /// A command judged unsendable: the next of `Packed::unsendable`.
    Unsendable,
    /// A command taken from the queue and replaced by what follows it.
    Popped(Box<OutCmd<T>>),
    /// A command pushed to the front of the queue.
    Pushed,
}

impl<T> Undo<T> {
    fn push(&mut self, queue: &mut VecDeque<OutCmd<T>>, oc: OutCmd<T>) {
        queue.push_front(oc);
        self.log.push(Op::Pushed);
    }

    fn apply(
        self,
        queue: &mut VecDeque<OutCmd<T>>,
        mut placed: Vec<Placed<T>>,
        mut unsendable: Vec<Unsendable<T>>,
    ) {
        for op in self.log.into_iter().rev() {
            match op {
                Op::Placed => {
                    if let Some(p) = placed.pop() {
                        queue.push_front(p.out);
                    }
                }
                Op::Chunk => {
                    placed.pop();
                }
                Op::Unsendable => {
                    if let Some(u) = unsendable.pop() {
                        queue.push_front(u.out);
                    }
                }
                Op::Popped(oc) => queue.push_front(*oc),
                Op::Pushed => {
                    queue.pop_front();
                }
            }
        }
    }
}

/// The message being assembled: the numbered head, then what is placed.
struct Attempt {
    msg: SyncMl,
    head_len: usize,
    /// The CmdID after the head's.
    first_id: u32,
    final_if_drained: bool,
}

impl Attempt {
    fn run<T: Clone>(
        &mut self,
        queue: &mut VecDeque<OutCmd<T>>,
        budget: Budget,
        slack: usize,
    ) -> Result<(Packed<T>, Undo<T>), SessionError> {
        let enc = budget.encoding;
        let head_len = self.head_len;
        let mut next_id = self.first_id;
        let mut placed = Vec::new();
        let mut unsendable = Vec::new();
        let mut undo = Undo { log: Vec::new() };
        let commands = &mut self.msg.body.commands;
        commands.truncate(head_len);

        match budget.max_msg_size {
            None => {
                while let Some(oc) = queue.pop_front() {
                    place(oc, &mut next_id, commands, &mut placed);
                    undo.log.push(Op::Placed);
                }
            }
            Some(limit) => {
                self.msg.body.is_final = true;
                let base = omadm_wire::encode(&self.msg, enc).len();
                let commands = &mut self.msg.body.commands;
                let cap = limit.saturating_sub(MARGIN + slack);
                let per_cmd = if enc == Encoding::Wbxml {
                    WBXML_SLACK
                } else {
                    0
                };
                let mut used = base;
                while let Some(oc) = queue.pop_front() {
                    let mut probe = oc.cmd.clone();
                    let mut id = next_id;
                    number(&mut probe, &mut id);
                    let size = cmd_len(&probe, enc) + per_cmd;
                    if used + size <= cap {
                        used += size;
                        place(oc, &mut next_id, commands, &mut placed);
                        undo.log.push(Op::Placed);
                        continue;
                    }
                    let fits_alone = base + size <= cap;
                    if fits_alone && !placed.is_empty() {
                        queue.push_front(oc);
                        break;
                    }
                    // Too big for any message of this peer: split it.
                    let room = cap.saturating_sub(used + per_cmd);
                    match split(&oc, room, next_id, enc) {
                        Some(Split::Separate(parts)) => {
                            let tag = oc.tag.clone();
                            let continuation = oc.continuation;
                            undo.log.push(Op::Popped(Box::new(oc)));
                            for cmd in parts.into_iter().rev() {
                                let part = OutCmd {
                                    cmd,
                                    tag: tag.clone(),
                                    continuation,
                                };
                                undo.push(queue, part);
                            }
                        }
                        Some(Split::Parts(first, rest)) => {
                            let chunked = first.more_data_flag();
                            let first = OutCmd {
                                cmd: *first,
                                tag: oc.tag.clone(),
                                continuation: oc.continuation,
                            };
                            let rest = OutCmd {
                                cmd: *rest,
                                tag: oc.tag.clone(),
                                continuation: chunked || oc.continuation,
                            };
                            undo.log.push(Op::Popped(Box::new(oc)));
                            place(first, &mut next_id, commands, &mut placed);
                            undo.log.push(Op::Chunk);
                            undo.push(queue, rest);
                            // Nothing may follow a chunk in its message.
                            break;
                        }
                        None if !placed.is_empty() => {
                            queue.push_front(oc);
                            break;
                        }
                        None if is_splittable(&oc.cmd) => {
                            queue.push_front(oc);
                            self.hand_back(&mut placed);
                            undo.apply(queue, placed, unsendable);
                            return Err(SessionError::MaxMsgSizeTooSmall { limit });
                        }
                        None => {
                            unsendable.push(Unsendable {
                                out: oc,
                                status: StatusCode::REQUEST_ENTITY_TOO_LARGE,
                            });
                            undo.log.push(Op::Unsendable);
                        }
                    }
                }
            }
        }
        Ok((self.finish(enc, placed, unsendable, queue), undo))
    }

    /// Encodes the message, then hands the placed commands back.
    fn finish<T>(
        &mut self,
        enc: Encoding,
        mut placed: Vec<Placed<T>>,
        unsendable: Vec<Unsendable<T>>,
        queue: &VecDeque<OutCmd<T>>,
    ) -> Packed<T> {
        self.msg.body.is_final = self.final_if_drained && queue.is_empty();
        let body = omadm_wire::encode(&self.msg, enc);
        self.hand_back(&mut placed);
        Packed {
            body,
            placed,
            unsendable,
        }
    }

    /// Moves the placed commands out of the message back to their
    /// [`Placed`] entries, leaving the head.
    fn hand_back<T>(&mut self, placed: &mut [Placed<T>]) {
        for (p, cmd) in placed
            .iter_mut()
            .zip(self.msg.body.commands.drain(self.head_len..))
        {
            p.out.cmd = cmd;
        }
    }
}

/// Numbers `oc` and moves its command into the message; the [`Placed`]
/// entry gets it back once the message is encoded.
fn place<T>(
    mut oc: OutCmd<T>,
    next_id: &mut u32,
    commands: &mut Vec<Command>,
    placed: &mut Vec<Placed<T>>,
) {
    let ids = number(&mut oc.cmd, next_id);
    let more_data = oc.cmd.more_data_flag();
    commands.push(std::mem::replace(
        &mut oc.cmd,
        Command::Get(ItemCommand::default()),
    ));
    placed.push(Placed {
        out: oc,
        ids,
        more_data,
    });
}

/// Numbers a command and everything nested in it, depth first.
pub(crate) fn number(cmd: &mut Command, next: &mut u32) -> Vec<(Vec<usize>, u32)> {
    let mut ids = Vec::new();
    number_into(cmd, next, &mut Vec::new(), &mut ids);
    ids
}

fn number_into(
    cmd: &mut Command,
    next: &mut u32,
    path: &mut Vec<usize>,
    ids: &mut Vec<(Vec<usize>, u32)>,
) {
    cmd.set_cmd_id(*next);
    ids.push((path.clone(), *next));
    *next += 1;
    if let Command::Atomic(c) | Command::Sequence(c) = cmd {
        for (i, inner) in c.commands.iter_mut().enumerate() {
            path.push(i);
            number_into(inner, next, path, ids);
            path.pop();
        }
    }
}

fn tiny_header() -> SyncHdr {
    SyncHdr::new("1", 1, Location::uri("t"), Location::uri("s"))
}

fn encoded_len(header: &SyncHdr, commands: &[Command], is_final: bool, enc: Encoding) -> usize {
    let msg = SyncMl {
        header: header.clone(),
        body: SyncBody {
            commands: commands.to_vec(),
            is_final,
        },
    };
    omadm_wire::encode(&msg, enc).len()
}

/// Encoded size of one command inside a message.
pub(crate) fn cmd_len(cmd: &Command, enc: Encoding) -> usize {
    static EMPTY: [OnceLock<usize>; 2] = [OnceLock::new(), OnceLock::new()];
    let h = tiny_header();
    let with = encoded_len(&h, std::slice::from_ref(cmd), false, enc);
    let slot = match enc {
        Encoding::Xml => &EMPTY[0],
        Encoding::Wbxml => &EMPTY[1],
    };
    let without = *slot.get_or_init(|| encoded_len(&h, &[], false, enc));
    with.saturating_sub(without)
}

/// Bytes of item data in a command (a lower bound of its encoded size).
fn data_len(cmd: &Command) -> usize {
    items(cmd).map_or(0, |items| {
        items
            .iter()
            .filter_map(|i| i.data.as_ref().map(Data::len))
            .sum()
    })
}

trait MoreData {
    fn more_data_flag(&self) -> bool;
}

impl MoreData for Command {
    fn more_data_flag(&self) -> bool {
        items(self).is_some_and(|items| items.iter().any(|i| i.more_data))
    }
}

fn items(cmd: &Command) -> Option<&Vec<Item>> {
    match cmd {
        Command::Add(c) | Command::Replace(c) => Some(&c.items),
        Command::Alert(a) => Some(&a.items),
        Command::Results(r) => Some(&r.items),
        _ => None,
    }
}

fn items_mut(cmd: &mut Command) -> Option<&mut Vec<Item>> {
    match cmd {
        Command::Add(c) | Command::Replace(c) => Some(&mut c.items),
        Command::Alert(a) => Some(&mut a.items),
        Command::Results(r) => Some(&mut r.items),
        _ => None,
    }
}

fn cmd_meta(cmd: &Command) -> Option<&Meta> {
    match cmd {
        Command::Add(c) | Command::Replace(c) => c.meta.as_ref(),
        Command::Results(r) => r.meta.as_ref(),
        _ => None,
    }
}

fn is_splittable(cmd: &Command) -> bool {
    match items(cmd) {
        Some(items) if items.len() > 1 => matches!(cmd, Command::Results(_)),
        Some(items) => items
            .first()
            .is_some_and(|i| i.data.as_ref().is_some_and(|d| d.len() > 1)),
        None => false,
    }
}

fn effective_format<'a>(cmd: &'a Command, item: &'a Item) -> Option<&'a str> {
    item.meta
        .as_ref()
        .and_then(|m| m.format.as_deref())
        .or_else(|| cmd_meta(cmd).and_then(|m| m.format.as_deref()))
}

/// The size an item announces in `Meta/Size`: bytes as transmitted, which
/// for Format b64 is the base64 text length (digest §7).
fn wire_size(cmd: &Command, item: &Item) -> Option<u64> {
    let d = item.data.as_ref()?;
    let n = d.len() as u64;
    Some(match d {
        Data::Binary(_) if effective_format(cmd, item) == Some("b64") => n.div_ceil(3) * 4,
        _ => n,
    })
}

/// The object size MaxObjSize limits: the largest item's.
fn object_size(cmd: &Command) -> Option<u64> {
    items(cmd)?.iter().filter_map(|i| wire_size(cmd, i)).max()
}

/// Splits a command that fits no message: a multi-item Results by items, a
/// single item by chunking its Data. Returns the part that fits in `room`
/// bytes (numbered from `first_id`) and the rest.
fn split(oc: &OutCmd<impl Clone>, room: usize, first_id: u32, enc: Encoding) -> Option<Split> {
    let items = items(&oc.cmd)?;
    if items.len() > 1 {
        if !matches!(oc.cmd, Command::Results(_)) {
            return None;
        }
        // Largest k items that fit; if not even one, split the first item.
        let fits = |k: usize| {
            let mut c = oc.cmd.clone();
            if let Some(v) = items_mut(&mut c) {
                v.truncate(k);
            }
            let mut id = first_id;
            number(&mut c, &mut id);
            cmd_len(&c, enc) <= room
        };
        let k = largest(1, items.len() - 1, fits);
        let mut first = oc.cmd.clone();
        let mut rest = oc.cmd.clone();
        match k {
            Some(k) => {
                if let Some(v) = items_mut(&mut first) {
                    v.truncate(k);
                }
                if let Some(v) = items_mut(&mut rest) {
                    v.drain(..k);
                }
                Some(Split::Parts(Box::new(first), Box::new(rest)))
            }
            None => {
                // Not even one item fits whole: send the first one as its own
                // Results (to be chunked) and the others after it.
                if let Some(v) = items_mut(&mut first) {
                    v.truncate(1);
                }
                if let Some(v) = items_mut(&mut rest) {
                    v.drain(..1);
                }
                Some(Split::Separate(vec![first, rest]))
            }
        }
    } else {
        chunk(oc, room, first_id, enc).map(|(a, b)| Split::Parts(Box::new(a), Box::new(b)))
    }
}

enum Split {
    /// The part that fits and the rest.
    Parts(Box<Command>, Box<Command>),
    /// Commands to put in the queue instead, then try again.
    Separate(Vec<Command>),
}

/// Splits a single item's Data at the largest prefix that fits `room`.
fn chunk(
    oc: &OutCmd<impl Clone>,
    room: usize,
    first_id: u32,
    enc: Encoding,
) -> Option<(Command, Command)> {
    let item = items(&oc.cmd)?.first()?;
    let data = item.data.as_ref()?;
    let total = wire_size(&oc.cmd, item)?;
    let b64 = matches!(data, Data::Binary(_)) && effective_format(&oc.cmd, item) == Some("b64");
    // XML markup cannot be cut; it travels as text.
    let text: Option<&str> = match data {
        Data::Text(s) | Data::Xml(s) => Some(s),
        Data::Binary(_) => None,
    };
    let n = data.len();
    let align = |l: usize| -> usize {
        if b64 {
            l / 3 * 3
        } else if let Some(s) = text {
            let mut l = l.min(s.len());
            while l > 0 && !s.is_char_boundary(l) {
                l -= 1;
            }
            l
        } else {
            l
        }
    };
    let make = |l: usize, first: bool| -> Command {
        let mut c = oc.cmd.clone();
        if let Some(it) = items_mut(&mut c).and_then(|v| v.first_mut()) {
            let part = match data {
                Data::Binary(b) => Data::Binary(if first {
                    b.get(..l).unwrap_or_default().to_vec()
                } else {
                    b.get(l..).unwrap_or_default().to_vec()
                }),
                Data::Text(s) | Data::Xml(s) => Data::Text(if first {
                    s.get(..l).unwrap_or_default().to_owned()
                } else {
                    s.get(l..).unwrap_or_default().to_owned()
                }),
            };
            it.data = Some(part);
            if first {
                it.more_data = true;
                if !oc.continuation {
                    it.meta.get_or_insert_with(Meta::default).size = Some(total);
                }
            } else if let Some(m) = it.meta.as_mut() {
                m.size = None;
                if m.is_empty() {
                    it.meta = None;
                }
            }
        }
        c
    };
    // Search in units that keep every cut valid: whole base64 quads (3
    // bytes), whole characters of text.
    let unit = if b64 { 3 } else { 1 };
    let lo = match text {
        Some(s) => s.chars().next().map_or(1, char::len_utf8),
        None => unit,
    };
    let fits = |k: usize| {
        let l = align(k * unit);
        if l < MIN_CHUNK {
            return false;
        }
        let mut c = make(l, true);
        let mut id = first_id;
        number(&mut c, &mut id);
        cmd_len(&c, enc) <= room
    };
    let k = largest(lo.div_ceil(unit), n.checked_sub(1)? / unit, fits)?;
    let l = align(k * unit);
    if l < MIN_CHUNK || l >= n {
        return None;
    }
    let first = make(l, true);
    let mut rest = make(l, false);
    // The rest keeps the original's MoreData (re-chunking a chunk).
    if let Some(it) = items_mut(&mut rest).and_then(|v| v.first_mut()) {
        it.more_data = item.more_data;
    }
    Some((first, rest))
}

/// The largest `x` in `lo..=hi` with `ok(x)`, for a monotone `ok`.
fn largest(lo: usize, hi: usize, ok: impl Fn(usize) -> bool) -> Option<usize> {
    if hi < lo || !ok(lo) {
        return None;
    }
    let (mut good, mut bad) = (lo, hi + 1);
    while bad - good > 1 {
        let mid = good + (bad - good) / 2;
        if ok(mid) {
            good = mid;
        } else {
            bad = mid;
        }
    }
    Some(good)
}

#[cfg(test)]
mod tests {
    use super::*;
    use omadm_wire::model::Results;

    fn replace(uri: &str, data: Data, format: Option<&str>) -> Command {
        Command::Replace(ItemCommand {
            items: vec![Item {
                target: Some(Location::uri(uri)),
                meta: format.map(Meta::format),
                data: Some(data),
                ..Item::default()
            }],
            ..ItemCommand::default()
        })
    }

    fn hdr() -> SyncHdr {
        SyncHdr::new(
            "1",
            1,
            Location::uri("http://s/dm"),
            Location::uri("IMEI:1"),
        )
    }

    fn msg(p: &Packed<u32>, enc: Encoding) -> SyncMl {
        omadm_wire::decode(&p.body, enc, &Default::default()).unwrap()
    }

    fn drain(queue: &mut VecDeque<OutCmd<u32>>, limit: usize, enc: Encoding) -> Vec<Packed<u32>> {
        let mut out = Vec::new();
        let budget = Budget {
            encoding: enc,
            max_msg_size: Some(limit),
            max_obj_size: None,
        };
        while !queue.is_empty() {
            let p = pack(hdr(), vec![], queue, true, budget).unwrap();
            assert!(p.body.len() <= limit, "{} > {limit}", p.body.len());
            out.push(p);
            assert!(out.len() < 1000);
        }
        out
    }

    #[test]
    fn commands_spread_over_messages_with_final_last() {
        for enc in [Encoding::Xml, Encoding::Wbxml] {
            let mut q: VecDeque<_> = (0..40)
                .map(|i| {
                    OutCmd::new(
                        replace(&format!("./A/{i}"), Data::Text("v".repeat(20)), None),
                        i,
                    )
                })
                .collect();
            let msgs = drain(&mut q, 600, enc);
            assert!(msgs.len() > 2);
            let tags: Vec<u32> = msgs
                .iter()
                .flat_map(|m| m.placed.iter().map(|p| p.out.tag))
                .collect();
            assert_eq!(tags, (0..40).collect::<Vec<_>>());
            for (i, m) in msgs.iter().enumerate() {
                let m = msg(m, enc);
                assert_eq!(m.body.is_final, i + 1 == msgs.len());
                let ids: Vec<u32> = m.body.commands.iter().map(Command::cmd_id).collect();
                assert_eq!(ids, (1..=ids.len() as u32).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn big_items_are_chunked_and_reassemble() {
        for enc in [Encoding::Xml, Encoding::Wbxml] {
            for (data, fmt) in [
                (
                    Data::Binary((0..5000u32).map(|i| (i % 251) as u8).collect()),
                    Some("b64"),
                ),
                (
                    Data::Binary((0..5000u32).map(|i| (i % 251) as u8).collect()),
                    Some("bin"),
                ),
                (Data::Text("héllo wörld <&> ".repeat(300)), None),
            ] {
                let mut q =
                    VecDeque::from([OutCmd::new(replace("./Big", data.clone(), fmt), 7u32)]);
                let msgs = drain(&mut q, 700, enc);
                assert!(msgs.len() > 3);
                let mut bytes = Vec::new();
                for (i, p) in msgs.iter().enumerate() {
                    let m = msg(p, enc);
                    let Command::Replace(c) = &m.body.commands[0] else {
                        panic!()
                    };
                    let it = &c.items[0];
                    assert_eq!(it.more_data, i + 1 < msgs.len());
                    assert_eq!(it.meta.as_ref().and_then(|m| m.size).is_some(), i == 0);
                    // Decode what the peer would see.
                    let back = omadm_wire::decode(&p.body, enc, &Default::default()).unwrap();
                    let Command::Replace(c) = &back.body.commands[0] else {
                        panic!()
                    };
                    bytes.extend_from_slice(c.items[0].data.as_ref().unwrap().as_bytes());
                }
                assert_eq!(bytes, data.as_bytes());
            }
        }
    }

    #[test]
    fn multi_item_results_split_by_items() {
        let items: Vec<Item> = (0..30)
            .map(|i| Item {
                source: Some(Location::uri(format!("./N/{i}"))),
                data: Some(Data::Text("x".repeat(40))),
                ..Item::default()
            })
            .collect();
        let r = Command::Results(Results {
            cmd_ref: 4,
            msg_ref: Some(2),
            items,
            ..Results::default()
        });
        let mut q = VecDeque::from([OutCmd::new(r, 0u32)]);
        let msgs = drain(&mut q, 700, Encoding::Xml);
        let n: usize = msgs
            .iter()
            .map(|m| match &msg(m, Encoding::Xml).body.commands[0] {
                Command::Results(r) => r.items.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(n, 30);
        assert!(msgs.len() > 2);
    }

    #[test]
    fn over_max_obj_size_is_unsendable() {
        let mut q = VecDeque::from([OutCmd::new(
            replace("./Big", Data::Text("x".repeat(100)), None),
            1u32,
        )]);
        let budget = Budget {
            encoding: Encoding::Xml,
            max_msg_size: None,
            max_obj_size: Some(50),
        };
        let p = pack(hdr(), vec![], &mut q, true, budget).unwrap();
        assert_eq!(p.unsendable.len(), 1);
        assert!(p.placed.is_empty());
        assert!(msg(&p, Encoding::Xml).body.is_final);
    }

    #[test]
    fn placed_commands_are_the_ones_sent_and_the_rest_stay_queued_unchanged() {
        for (enc, limit) in [(Encoding::Xml, 900), (Encoding::Wbxml, 450)] {
            let original: Vec<Command> = (0..12)
                .map(|i| replace(&format!("./A/{i}"), Data::Text("v".repeat(30)), None))
                .collect();
            let mut q: VecDeque<_> = original
                .iter()
                .cloned()
                .enumerate()
                .map(|(i, c)| OutCmd::new(c, i as u32))
                .collect();
            let head = vec![Command::Status(crate::common::header_status(
                &hdr(),
                StatusCode::OK,
                None,
            ))];
            // The data fits the limit, the markup does not: the whole-message
            // attempt is undone, then the message is filled one by one.
            let budget = Budget {
                encoding: enc,
                max_msg_size: Some(limit),
                max_obj_size: None,
            };
            let p = pack(hdr(), head, &mut q, true, budget).unwrap();
            assert!(p.body.len() <= limit);
            let sent = msg(&p, enc);
            assert!(!sent.body.is_final);
            assert_eq!(sent.body.commands.len(), 1 + p.placed.len());
            for (pl, c) in p.placed.iter().zip(&sent.body.commands[1..]) {
                assert_eq!(&pl.out.cmd, c);
                assert_eq!(pl.ids, vec![(vec![], c.cmd_id())]);
            }
            let n = p.placed.len();
            assert!(n > 0 && n < 12);
            // Every attempt numbers afresh: CmdIDs aside, the rest is as queued.
            let rest: Vec<Command> = q
                .iter()
                .map(|oc| {
                    let mut c = oc.cmd.clone();
                    c.set_cmd_id(0);
                    c
                })
                .collect();
            assert_eq!(rest, original[n..]);
            let tags: Vec<u32> = q.iter().map(|oc| oc.tag).collect();
            assert_eq!(tags, (n as u32..12).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_limit_too_small_for_any_chunk_leaves_the_queue_as_it_was() {
        let cmd = replace("./Big", Data::Text("x".repeat(100)), None);
        let mut q = VecDeque::from([OutCmd::new(cmd.clone(), 9u32)]);
        let budget = Budget {
            encoding: Encoding::Xml,
            max_msg_size: Some(150),
            max_obj_size: None,
        };
        let e = pack(hdr(), vec![], &mut q, true, budget).unwrap_err();
        assert!(
            matches!(e, SessionError::MaxMsgSizeTooSmall { limit: 150 }),
            "{e}"
        );
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].tag, 9);
        // CmdIDs aside (every attempt numbers afresh), the command is as queued.
        let mut back = q[0].cmd.clone();
        back.set_cmd_id(0);
        assert_eq!(back, cmd);
    }

    #[test]
    fn nested_commands_are_numbered() {
        let mut c = Command::Sequence(omadm_wire::model::Container {
            commands: vec![
                replace("./a", Data::Text("1".into()), None),
                replace("./b", Data::Text("2".into()), None),
            ],
            ..Default::default()
        });
        let mut next = 5;
        let ids = number(&mut c, &mut next);
        assert_eq!(ids, vec![(vec![], 5), (vec![0], 6), (vec![1], 7)]);
        assert_eq!(next, 8);
    }
}
