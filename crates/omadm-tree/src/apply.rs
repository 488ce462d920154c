//! Server commands: [`Tree::apply`] runs one SyncML DM command for an
//! authenticated server and returns the Status (and Results) it produces
//! (`OMA-TS-DM_Protocol-V1_2` §6.6, digest §4).
//!
//! Check order for every item, so the same situation always gives the same
//! code: URI syntax (400) → URI limits (414) → suffix (406) → existence
//! (404 / 418) → node kind, permanence, AccessType, schema (405) → ACL (425)
//! → format and value (415, 413) → room (420) → MO hook veto (its status).
//!
//! Every item is all-or-nothing on its own (a journal scope); an Atomic is
//! all-or-nothing as a whole (one scope around its members).

use omadm_wire::model::{Alert, Command, Container, Data, Exec, Item, ItemCommand, Location, Meta};
use omadm_wire::model::{Results, Status};
use omadm_wire::StatusCode;

use crate::access::AccessType;
use crate::acl::{Acl, AclCommand};
use crate::error::TreeError;
use crate::format::Format;
use crate::hooks::{Change, ChangeEvent, ChangeKind, ExecRequest, TreeHooks};
use crate::node::{Node, DEFAULT_LEAF_TYPE};
use crate::schema::SchemaMatch;
use crate::time::format_tstamp;
use crate::tnds::{decode_b64, TndsDoc, TndsNode, TNDS_WBXML_TYPE, TNDS_XML_TYPE};
use crate::tree::{NewKind, Tree};
use crate::uri::{ListKind, Property, Query, Target, Uri};

/// Longest Title property, in bytes (`DM_TND` §7.7.5).
pub const MAX_TITLE_LEN: usize = 255;

/// Who sent the command, in which message, and when.
#[derive(Clone, Copy, Debug)]
pub struct ServerCtx<'a> {
    /// The authenticated server's id (DMAcc `ServerID`), as ACLs name it.
    pub server_id: &'a str,
    /// MsgID of the message that carried the command (the Status's MsgRef).
    pub msg_ref: u32,
    /// Current time, unix seconds, stamped on changed nodes.
    pub now: u64,
}

/// One reply to a server command.
#[derive(Clone, Debug, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "mirrors omadm_wire::model::Command, which holds these unboxed"
)]
pub enum Reply {
    /// A Status.
    Status(Status),
    /// Results of a Get (always right after the Get's Status).
    Results(Results),
}

impl Reply {
    /// The Status, if this is one.
    pub fn as_status(&self) -> Option<&Status> {
        match self {
            Reply::Status(s) => Some(s),
            Reply::Results(_) => None,
        }
    }

    /// The Results, if this is one.
    pub fn as_results(&self) -> Option<&Results> {
        match self {
            Reply::Results(r) => Some(r),
            Reply::Status(_) => None,
        }
    }

    /// The reply as a command to send.
    pub fn into_command(self) -> Command {
        match self {
            Reply::Status(s) => Command::Status(s),
            Reply::Results(r) => Command::Results(r),
        }
    }
}

impl From<Reply> for Command {
    fn from(r: Reply) -> Command {
        r.into_command()
    }
}

/// A failure, with the ancestor that could not be created if that was the
/// problem (its URI goes into the Status as an Item Target, `DM_Protocol`
/// §6.6.1).
struct Fail {
    err: TreeError,
    at: Option<Uri>,
}

impl From<TreeError> for Fail {
    fn from(err: TreeError) -> Fail {
        Fail { err, at: None }
    }
}

/// How a command went, for Atomic and Sequence.
#[derive(Clone, Copy)]
struct Flow {
    /// Every Status it produced is a success.
    ok: bool,
    /// An Alert was answered with something other than 200/202: the rest of
    /// a Sequence is skipped, an Atomic fails.
    abort: bool,
}

impl Flow {
    const OK: Flow = Flow {
        ok: true,
        abort: false,
    };
    const FAILED: Flow = Flow {
        ok: false,
        abort: false,
    };
}

/// The per-call state threaded through command handling.
struct Cx<'a> {
    ctx: &'a ServerCtx<'a>,
    hooks: &'a mut dyn TreeHooks,
    /// Committed changes not yet reported to `hooks.changed`.
    events: &'a mut Vec<ChangeEvent>,
}

impl Cx<'_> {
    fn sid(&self) -> &str {
        self.ctx.server_id
    }
}

/// A Meta Format: absent, known, or unknown (415, reported only once the
/// existence, AccessType and ACL checks have passed).
type MetaFormat = Result<Option<Format>, TreeError>;

/// A node a server creates.
#[derive(Clone, Debug)]
struct NewNode {
    /// Format from Meta or TNDS (`None`: from the schema, else `chr`).
    format: MetaFormat,
    value: RawValue,
    mime: Option<String>,
    acl: Option<Acl>,
    title: Option<String>,
}

impl Default for NewNode {
    fn default() -> NewNode {
        NewNode {
            format: Ok(None),
            value: RawValue::None,
            mime: None,
            acl: None,
            title: None,
        }
    }
}

#[derive(Clone, Debug, Default)]
enum RawValue {
    #[default]
    None,
    Bytes(Vec<u8>),
    /// Text that is base64 when the format is `b64`.
    Text(String),
}

impl RawValue {
    fn from_data(data: Option<&Data>) -> RawValue {
        match data {
            None => RawValue::None,
            Some(Data::Binary(b)) => RawValue::Bytes(b.clone()),
            Some(Data::Text(s) | Data::Xml(s)) => RawValue::Text(s.clone()),
        }
    }

    fn decode(self, format: Format) -> Result<Vec<u8>, TreeError> {
        match self {
            RawValue::None => Ok(Vec::new()),
            RawValue::Bytes(b) => Ok(b),
            RawValue::Text(s) if format == Format::B64 => decode_b64(&s),
            RawValue::Text(s) => Ok(s.into_bytes()),
        }
    }
}

impl Tree {
    /// Runs one server command (Add, Alert, Atomic, Copy, Delete, Exec,
    /// Get, Replace, Sequence) for the authenticated `ctx.server_id` and
    /// returns its replies in order: the Status of the command (container
    /// first, then its members), each successful Get item's Results right
    /// after its Status. Item commands get one Status per Item, carrying
    /// the Item's Target (and, for Copy, Source) as TargetRef/SourceRef.
    /// CmdIDs of replies are 0: the session engine numbers them.
    ///
    /// `Status` and `Results` commands are the engine's business and
    /// produce no reply. `NoResp` is not honoured here (DM does not use it);
    /// the engine may drop the Status. Large objects are the engine's too:
    /// the tree sees complete values only (no 213, and Meta `Size` is not
    /// checked here).
    pub fn apply(
        &mut self,
        cmd: &Command,
        ctx: &ServerCtx<'_>,
        hooks: &mut dyn TreeHooks,
    ) -> Vec<Reply> {
        self.set_now(ctx.now);
        let mut out = Vec::new();
        let mut events = Vec::new();
        let mut cx = Cx {
            ctx,
            hooks,
            events: &mut events,
        };
        self.run(cmd, &mut cx, &mut out);
        self.flush(&mut cx);
        out
    }

    fn flush(&mut self, cx: &mut Cx<'_>) {
        for ev in std::mem::take(cx.events) {
            cx.hooks.changed(self, &ev);
        }
    }

    fn run(&mut self, cmd: &Command, cx: &mut Cx<'_>, out: &mut Vec<Reply>) -> Flow {
        match cmd {
            Command::Add(c) | Command::Copy(c) | Command::Delete(c) | Command::Replace(c) => {
                self.item_command(cmd.name(), c, cx, out)
            }
            Command::Get(c) => self.item_command("Get", c, cx, out),
            Command::Exec(e) => self.exec(e, cx, out),
            Command::Alert(a) => alert(a, cx, out),
            Command::Atomic(c) => self.atomic(c, cx, out),
            Command::Sequence(c) => self.sequence(c, cx, out),
            Command::Status(_) | Command::Results(_) => Flow::OK,
        }
    }

    // ---- containers ------------------------------------------------------------------

    /// Atomic: all or nothing (`DM_Protocol` §6.6.3). Get, Exec, Atomic and
    /// Sequence are not allowed inside: the Atomic is refused with 500
    /// without running anything (the offending members get 500, the others
    /// 215). On a failure, everything done is rolled back: successful
    /// member statuses become 216 (516 if the rollback failed), members not
    /// yet run get 215, and the Atomic gets 507.
    fn atomic(&mut self, c: &Container, cx: &mut Cx<'_>, out: &mut Vec<Reply>) -> Flow {
        let head = out.len();
        out.push(Reply::Status(status(
            cx.ctx,
            "Atomic",
            c.cmd_id,
            StatusCode::OK,
        )));
        let forbidden = |m: &Command| {
            matches!(
                m,
                Command::Get(_) | Command::Exec(_) | Command::Atomic(_) | Command::Sequence(_)
            )
        };
        if c.commands.iter().any(forbidden) {
            set_code(out, head, StatusCode::COMMAND_FAILED);
            for m in &c.commands {
                let code = if forbidden(m) {
                    StatusCode::COMMAND_FAILED
                } else {
                    StatusCode::NOT_EXECUTED
                };
                not_executed(m, code, cx.ctx, out);
            }
            return Flow::FAILED;
        }
        let mark = self.begin();
        let events_mark = cx.events.len();
        let mut failed = false;
        for m in &c.commands {
            if failed {
                not_executed(m, StatusCode::NOT_EXECUTED, cx.ctx, out);
                continue;
            }
            let flow = self.run(m, cx, out);
            failed = !flow.ok || flow.abort;
        }
        if failed {
            let restored = self.rollback(mark);
            cx.events.truncate(events_mark);
            let undone = if restored {
                StatusCode::ATOMIC_ROLLBACK_OK
            } else {
                StatusCode::ATOMIC_ROLLBACK_FAILED
            };
            for r in out.iter_mut().skip(head + 1) {
                if let Reply::Status(s) = r {
                    if s.data.is_success() && s.data != StatusCode::NOT_EXECUTED {
                        s.data = undone;
                    }
                }
            }
            set_code(out, head, StatusCode::ATOMIC_FAILED);
            Flow::FAILED
        } else {
            self.commit(mark);
            Flow::OK
        }
    }

    /// Sequence: members in order; its own status is 200 once started. An
    /// Alert answered with anything but 200/202 (user said no, cancelled,
    /// no UI) skips the remaining members with 215. A nested Sequence is
    /// refused with 500 (the SyncML DTD does not allow it).
    fn sequence(&mut self, c: &Container, cx: &mut Cx<'_>, out: &mut Vec<Reply>) -> Flow {
        out.push(Reply::Status(status(
            cx.ctx,
            "Sequence",
            c.cmd_id,
            StatusCode::OK,
        )));
        let mut aborted = false;
        for m in &c.commands {
            if aborted {
                not_executed(m, StatusCode::NOT_EXECUTED, cx.ctx, out);
                continue;
            }
            if matches!(m, Command::Sequence(_)) {
                not_executed(m, StatusCode::COMMAND_FAILED, cx.ctx, out);
                continue;
            }
            let flow = self.run(m, cx, out);
            self.flush(cx);
            aborted = flow.abort;
        }
        Flow::OK
    }

    // ---- item commands ---------------------------------------------------------------

    fn item_command(
        &mut self,
        name: &'static str,
        c: &ItemCommand,
        cx: &mut Cx<'_>,
        out: &mut Vec<Reply>,
    ) -> Flow {
        if c.items.is_empty() {
            out.push(Reply::Status(status(
                cx.ctx,
                name,
                c.cmd_id,
                StatusCode::INCOMPLETE_COMMAND,
            )));
            return Flow::FAILED;
        }
        let mut flow = Flow::OK;
        for item in &c.items {
            let meta = merge_meta(c.meta.as_ref(), item.meta.as_ref());
            let events_mark = cx.events.len();
            let mark = self.begin();
            let result = match name {
                "Add" => self.add_item(item, &meta, cx).map(|()| None),
                "Replace" => self.replace_item(item, &meta, cx).map(|()| None),
                "Delete" => self.delete_item(item, cx).map(|()| None),
                "Copy" => self.copy_item(item, cx).map(|()| None),
                _ => self.get_item(item, cx).map(Some),
            };
            if result.is_ok() {
                self.commit(mark);
            } else {
                self.rollback(mark);
                cx.events.truncate(events_mark);
            }
            let mut st = status(cx.ctx, name, c.cmd_id, StatusCode::OK);
            if let Some(t) = &item.target {
                st.target_refs.push(t.loc_uri.clone());
            }
            if let Some(s) = &item.source {
                st.source_refs.push(s.loc_uri.clone());
            }
            match result {
                Ok(results) => {
                    out.push(Reply::Status(st));
                    if let Some(items) = results {
                        out.push(Reply::Results(Results {
                            cmd_id: 0,
                            msg_ref: Some(cx.ctx.msg_ref),
                            cmd_ref: c.cmd_id,
                            meta: None,
                            target_ref: None,
                            source_ref: None,
                            items,
                        }));
                    }
                }
                Err(fail) => {
                    st.data = fail.err.status();
                    if let Some(at) = fail.at {
                        st.items.push(Item {
                            target: Some(Location::uri(at.to_string())),
                            ..Item::default()
                        });
                    }
                    out.push(Reply::Status(st));
                    flow.ok = false;
                }
            }
        }
        flow
    }

    fn add_item(&mut self, item: &Item, meta: &Meta, cx: &mut Cx<'_>) -> Result<(), Fail> {
        let target = self.target_of(item)?;
        if target.query.is_some() {
            return Err(
                TreeError::not_allowed("Add", &target.uri, "properties cannot be added").into(),
            );
        }
        if is_tnds(meta) {
            return self.tnds_write(false, &target.uri, item, cx);
        }
        let path = &target.uri;
        if self.node_at(path).is_some() {
            return Err(TreeError::AlreadyExists {
                path: path.to_string(),
            }
            .into());
        }
        // The nearest existing ancestor must be interior and grant Add.
        let mut missing = Vec::new();
        let mut anc = path.parent().unwrap_or_default();
        while self.node_at(&anc).is_none() {
            missing.push(anc.clone());
            anc = anc.parent().unwrap_or_default();
        }
        if self.node_at(&anc).is_some_and(Node::is_leaf) {
            return Err(TreeError::not_allowed("Add", &anc, "a leaf cannot have children").into());
        }
        let new = NewNode {
            format: meta_format(meta),
            value: RawValue::from_data(item.data.as_ref()),
            mime: meta.r#type.clone(),
            acl: None,
            title: None,
        };
        if self.config().max_nodes != 0
            && self.node_count() + missing.len() + 1 > self.config().max_nodes
        {
            return Err(TreeError::DeviceFull {
                limit: self.config().max_nodes,
            }
            .into());
        }
        // Implicit ancestors, top down (DM_Protocol §6.6.1).
        for a in missing.iter().rev() {
            let implicit = NewNode {
                format: Ok(Some(Format::Node)),
                ..NewNode::default()
            };
            self.server_add(a, implicit, cx).map_err(|err| Fail {
                err,
                at: Some(a.clone()),
            })?;
        }
        self.server_add(path, new, cx)?;
        Ok(())
    }

    fn replace_item(&mut self, item: &Item, meta: &Meta, cx: &mut Cx<'_>) -> Result<(), Fail> {
        let target = self.target_of(item)?;
        match target.query {
            Some(Query::Prop(p)) => return Ok(self.replace_prop(&target.uri, p, item, cx)?),
            Some(Query::List(_)) => {
                return Err(TreeError::not_allowed("Replace", &target.uri, "a listing").into())
            }
            None => {}
        }
        if is_tnds(meta) {
            return self.tnds_write(true, &target.uri, item, cx);
        }
        let value = RawValue::from_data(item.data.as_ref());
        self.server_replace(
            &target.uri,
            meta_format(meta),
            value,
            meta.r#type.clone(),
            cx,
        )?;
        Ok(())
    }

    fn delete_item(&mut self, item: &Item, cx: &mut Cx<'_>) -> Result<(), Fail> {
        let target = self.target_of(item)?;
        if target.query.is_some() {
            return Err(TreeError::not_allowed(
                "Delete",
                &target.uri,
                "properties cannot be deleted",
            )
            .into());
        }
        self.server_delete(&target.uri, cx)?;
        Ok(())
    }

    /// Copy, leaf to leaf only (`DM_Protocol` §6.6.4): needs Get on the
    /// source and Replace on an existing target (Add on its parent for a
    /// new one). An interior target, or one that does not support Replace,
    /// is 403.
    fn copy_item(&mut self, item: &Item, cx: &mut Cx<'_>) -> Result<(), Fail> {
        let target = self.target_of(item)?;
        let src_loc = item.source.as_ref().ok_or(TreeError::Incomplete {
            reason: "Copy item without Source",
        })?;
        let source = Target::parse(&src_loc.loc_uri, &self.config().uri_limits)?;
        if target.query.is_some() || source.query.is_some() {
            return Err(
                TreeError::not_allowed("Copy", &target.uri, "properties cannot be copied").into(),
            );
        }
        let (src, dst) = (&source.uri, &target.uri);
        let node = self.node_at(src).ok_or_else(|| TreeError::not_found(src))?;
        if node.is_interior() {
            return Err(TreeError::not_allowed("Copy", src, "only leaves can be copied").into());
        }
        if !node.access_type().contains(AccessType::COPY) {
            return Err(TreeError::not_allowed("Copy", src, "AccessType has no Copy").into());
        }
        self.require(src, AclCommand::Get, cx.sid())?;
        let node = self.node_at(src).ok_or_else(|| TreeError::not_found(src))?;
        let (format, mime) = (node.format(), node.mime_type().to_owned());
        let value = node.value().unwrap_or_default().to_vec();
        match self.node_at(dst) {
            Some(d) if d.is_interior() => Err(TreeError::Forbidden {
                path: dst.to_string(),
                reason: "target is interior",
            }
            .into()),
            Some(d) if !d.access_type().contains(AccessType::REPLACE) => {
                Err(TreeError::Forbidden {
                    path: dst.to_string(),
                    reason: "target cannot be overwritten",
                }
                .into())
            }
            Some(_) => {
                self.server_replace(
                    dst,
                    Ok(Some(format)),
                    RawValue::Bytes(value),
                    Some(mime),
                    cx,
                )?;
                Ok(())
            }
            None => {
                let new = NewNode {
                    format: Ok(Some(format)),
                    value: RawValue::Bytes(value),
                    mime: Some(mime),
                    acl: None,
                    title: None,
                };
                self.server_add(dst, new, cx)?;
                Ok(())
            }
        }
    }

    fn get_item(&mut self, item: &Item, cx: &mut Cx<'_>) -> Result<Vec<Item>, Fail> {
        let loc =
            item.target
                .as_ref()
                .map(|t| t.loc_uri.as_str())
                .ok_or(TreeError::Incomplete {
                    reason: "item without Target",
                })?;
        let target = Target::parse(loc, &self.config().uri_limits)?;
        let path = &target.uri;
        let node = self
            .node_at(path)
            .ok_or_else(|| TreeError::not_found(path))?;
        let sid = cx.sid();
        match target.query {
            Some(Query::Prop(p)) => {
                self.require(path, AclCommand::Get, sid)?;
                let value = prop_value(path, node, p)?;
                Ok(vec![Item {
                    source: Some(Location::uri(loc)),
                    data: Some(Data::Text(value)),
                    ..Item::default()
                }])
            }
            Some(Query::List(kind)) => {
                if !node.access_type().contains(AccessType::GET) {
                    return Err(TreeError::not_allowed("Get", path, "AccessType has no Get").into());
                }
                self.require(path, AclCommand::Get, sid)?;
                match kind {
                    ListKind::Struct | ListKind::StructData => {
                        let mut items = Vec::new();
                        let data = kind == ListKind::StructData;
                        self.list_struct(path, &target.raw_path, node, data, sid, &mut items);
                        Ok(items)
                    }
                    ListKind::Tnds(fields) => {
                        let doc = self.tnds(path, fields, Some(sid))?;
                        Ok(vec![Item {
                            source: Some(Location::uri(loc)),
                            meta: Some(Meta::format_type("xml", TNDS_XML_TYPE)),
                            data: Some(Data::Xml(doc.to_xml())),
                            ..Item::default()
                        }])
                    }
                }
            }
            None => {
                if !node.access_type().contains(AccessType::GET) {
                    return Err(TreeError::not_allowed("Get", path, "AccessType has no Get").into());
                }
                self.require(path, AclCommand::Get, sid)?;
                Ok(vec![plain_item(loc, node, true)])
            }
        }
    }

    /// `?list=Struct` / `StructData`: one item per node the server may Get
    /// (pre-order, the target first; a node without Get is left out with
    /// its sub-tree). Leaf values only with StructData and only when the
    /// node's AccessType has Get.
    fn list_struct(
        &self,
        path: &Uri,
        uri: &str,
        node: &Node,
        data: bool,
        sid: &str,
        items: &mut Vec<Item>,
    ) {
        if !self
            .effective_acl_at(path)
            .is_some_and(|a| a.allows(AclCommand::Get, sid))
        {
            return;
        }
        let mut item = plain_item(
            uri,
            node,
            data && node.access_type().contains(AccessType::GET),
        );
        if node.is_interior() || !data {
            item.data = None;
        }
        items.push(item);
        for (name, child) in node.children() {
            let curi = if uri == "." {
                format!("./{name}")
            } else {
                format!("{uri}/{name}")
            };
            self.list_struct(&path.child_unchecked(name), &curi, child, data, sid, items);
        }
    }

    // ---- Exec and Alert --------------------------------------------------------------

    fn exec(&mut self, e: &Exec, cx: &mut Cx<'_>, out: &mut Vec<Reply>) -> Flow {
        if e.items.is_empty() {
            out.push(Reply::Status(status(
                cx.ctx,
                "Exec",
                e.cmd_id,
                StatusCode::INCOMPLETE_COMMAND,
            )));
            return Flow::FAILED;
        }
        let mut flow = Flow::OK;
        for item in &e.items {
            let code = match self.exec_item(e, item, cx) {
                Ok(code) => code,
                Err(err) => err.status(),
            };
            let mut st = status(cx.ctx, "Exec", e.cmd_id, code);
            if let Some(t) = &item.target {
                st.target_refs.push(t.loc_uri.clone());
            }
            flow.ok &= code.is_success();
            out.push(Reply::Status(st));
        }
        flow
    }

    fn exec_item(
        &mut self,
        e: &Exec,
        item: &Item,
        cx: &mut Cx<'_>,
    ) -> Result<StatusCode, TreeError> {
        let target = self.target_of(item)?;
        let path = &target.uri;
        if target.query.is_some() {
            return Err(TreeError::not_allowed(
                "Exec",
                path,
                "properties cannot be executed",
            ));
        }
        let node = self
            .node_at(path)
            .ok_or_else(|| TreeError::not_found(path))?;
        if !node.access_type().contains(AccessType::EXEC) {
            return Err(TreeError::not_allowed(
                "Exec",
                path,
                "AccessType has no Exec",
            ));
        }
        self.require(path, AclCommand::Exec, cx.sid())?;
        let meta = merge_meta(e.meta.as_ref(), item.meta.as_ref());
        let req = ExecRequest {
            path,
            data: item.data.as_ref(),
            meta: (!meta.is_empty()).then_some(&meta),
            correlator: e.correlator.as_deref(),
            server_id: cx.ctx.server_id,
            cmd_id: e.cmd_id,
            msg_ref: cx.ctx.msg_ref,
        };
        Ok(cx.hooks.exec(self, &req))
    }

    // ---- core operations -------------------------------------------------------------

    fn target_of(&self, item: &Item) -> Result<Target, TreeError> {
        let loc =
            item.target
                .as_ref()
                .map(|t| t.loc_uri.as_str())
                .ok_or(TreeError::Incomplete {
                    reason: "item without Target",
                })?;
        Target::parse(loc, &self.config().uri_limits)
    }

    /// 425 unless the ACL governing `path` grants `cmd` to `sid`.
    fn require(&self, path: &Uri, cmd: AclCommand, sid: &str) -> Result<(), TreeError> {
        if self
            .effective_acl_at(path)
            .is_some_and(|a| a.allows(cmd, sid))
        {
            Ok(())
        } else {
            Err(TreeError::PermissionDenied {
                server_id: sid.to_owned(),
                command: cmd.as_str(),
                path: path.to_string(),
            })
        }
    }

    /// Creates one node for a server: the parent must exist and be interior.
    fn server_add(&mut self, path: &Uri, new: NewNode, cx: &mut Cx<'_>) -> Result<(), TreeError> {
        if self.node_at(path).is_some() {
            return Err(TreeError::AlreadyExists {
                path: path.to_string(),
            });
        }
        let parent = path.parent().ok_or(TreeError::AlreadyExists {
            path: path.to_string(),
        })?;
        match self.node_at(&parent) {
            None => return Err(TreeError::not_found(&parent)),
            Some(p) if p.is_leaf() => {
                return Err(TreeError::not_allowed(
                    "Add",
                    &parent,
                    "a leaf cannot have children",
                ))
            }
            Some(_) => {}
        }
        let spec = match self.schema_match(path) {
            SchemaMatch::Outside => None,
            SchemaMatch::Unknown => {
                return Err(TreeError::not_allowed(
                    "Add",
                    path,
                    "not a node of this management object",
                ))
            }
            SchemaMatch::Spec(s) if !s.access.contains(AccessType::ADD) => {
                return Err(TreeError::not_allowed("Add", path, "AccessType has no Add"))
            }
            SchemaMatch::Spec(s) => Some(s.clone()),
        };
        self.require(&parent, AclCommand::Add, cx.sid())?;
        let asked = new.format?;
        if let (Some(s), Some(f)) = (&spec, asked) {
            if !s.format.compatible(f) {
                return Err(TreeError::UnsupportedFormat {
                    reason: format!("{path} has format {}, not {f}", s.format),
                });
            }
        }
        let format = asked
            .or(spec.as_ref().map(|s| s.format))
            .unwrap_or(Format::Chr);
        let kind = if format == Format::Node {
            NewKind::Interior
        } else {
            let value = new.value.decode(format)?;
            format.validate(&value)?;
            NewKind::Leaf(value, format)
        };
        let mut node = self.new_node(path, kind, Some(cx.sid()))?;
        if let Some(m) = new.mime {
            node.props.mime = m;
        }
        if node.is_interior()
            && node.props.acl.is_empty()
            && !self
                .effective_acl_at(&parent)
                .is_some_and(|a| a.allows(AclCommand::Replace, cx.sid()))
        {
            // DM_TND §7.7.1: the adding server must be able to manage it.
            node.props.acl = Acl::granting(
                &[
                    AclCommand::Add,
                    AclCommand::Delete,
                    AclCommand::Replace,
                    AclCommand::Get,
                ],
                cx.sid(),
            );
        }
        if new.title.is_some() {
            node.props.title = new.title;
        }
        let change = Change {
            kind: &ChangeKind::Add,
            path,
            server_id: cx.ctx.server_id,
            format: Some(node.format()),
            value: node.value(),
            mime: Some(node.mime_type()),
        };
        self.veto(path, &change, cx)?;
        self.insert(path, node)?;
        self.touch_parent(path);
        self.done(ChangeKind::Add, path, cx)
    }

    /// Replaces a leaf's value for a server; never creates (404).
    fn server_replace(
        &mut self,
        path: &Uri,
        format: MetaFormat,
        value: RawValue,
        mime: Option<String>,
        cx: &mut Cx<'_>,
    ) -> Result<(), TreeError> {
        let node = self
            .node_at(path)
            .ok_or_else(|| TreeError::not_found(path))?;
        if node.is_interior() {
            return Err(TreeError::not_allowed(
                "Replace",
                path,
                "an interior node has no value",
            ));
        }
        if !node.access_type().contains(AccessType::REPLACE) {
            return Err(TreeError::not_allowed(
                "Replace",
                path,
                "AccessType has no Replace",
            ));
        }
        self.require(path, AclCommand::Replace, cx.sid())?;
        let format = format?;
        let current = node.format();
        let fixed = self.schema_match(path).spec().map(|s| s.format);
        let format = format.unwrap_or(current);
        if format == Format::Node || fixed.is_some_and(|f| !f.compatible(format)) {
            return Err(TreeError::UnsupportedFormat {
                reason: format!("{path} cannot take format {format}"),
            });
        }
        let value = value.decode(format)?;
        format.validate(&value)?;
        let mime = mime.unwrap_or_else(|| node.mime_type().to_owned());
        let change = Change {
            kind: &ChangeKind::Replace,
            path,
            server_id: cx.ctx.server_id,
            format: Some(format.stored()),
            value: Some(&value),
            mime: Some(&mime),
        };
        self.veto(path, &change, cx)?;
        self.set_value(path, value)?;
        let now = self.scratch.now;
        self.update_props(path, |p| {
            p.format = format.stored();
            p.mime = mime;
            p.touch(now);
        })?;
        self.done(ChangeKind::Replace, path, cx)
    }

    /// Deletes a node and its sub-tree for a server.
    fn server_delete(&mut self, path: &Uri, cx: &mut Cx<'_>) -> Result<(), TreeError> {
        if path.is_root() {
            return Err(TreeError::not_allowed(
                "Delete",
                path,
                "the root cannot be deleted",
            ));
        }
        let node = self
            .node_at(path)
            .ok_or_else(|| TreeError::not_found(path))?;
        if node.has_permanent() {
            return Err(TreeError::not_allowed("Delete", path, "permanent node"));
        }
        if !node.access_type().contains(AccessType::DELETE) {
            return Err(TreeError::not_allowed(
                "Delete",
                path,
                "AccessType has no Delete",
            ));
        }
        self.require(path, AclCommand::Delete, cx.sid())?;
        let change = Change {
            kind: &ChangeKind::Delete,
            path,
            server_id: cx.ctx.server_id,
            format: None,
            value: None,
            mime: None,
        };
        self.veto(path, &change, cx)?;
        self.remove(path)?;
        self.touch_parent(path);
        self.done(ChangeKind::Delete, path, cx)
    }

    fn veto(&self, path: &Uri, change: &Change<'_>, cx: &mut Cx<'_>) -> Result<(), TreeError> {
        cx.hooks
            .check_change(self, change)
            .map_err(|status| TreeError::Rejected {
                path: path.to_string(),
                status,
            })
    }

    /// Reports a change just made: `after_change` (which may fail the
    /// command), then queues it for `changed`.
    fn done(&mut self, kind: ChangeKind, path: &Uri, cx: &mut Cx<'_>) -> Result<(), TreeError> {
        let ev = ChangeEvent {
            kind,
            path: path.clone(),
            server_id: cx.ctx.server_id.to_owned(),
        };
        cx.hooks
            .after_change(self, &ev)
            .map_err(|status| TreeError::Rejected {
                path: path.to_string(),
                status,
            })?;
        cx.events.push(ev);
        Ok(())
    }

    /// Whether `sid` may replace the ACL of the node at `path` (`DM_TND`
    /// §7.7.1): an interior node with Replace on itself or its parent, a
    /// leaf with Replace on its parent only, the root with its own Replace.
    fn may_replace_acl(&self, path: &Uri, interior: bool, sid: &str) -> bool {
        let allows = |p: &Uri| {
            self.effective_acl_at(p)
                .is_some_and(|a| a.allows(AclCommand::Replace, sid))
        };
        let parent_ok = path.parent().is_some_and(|p| allows(&p));
        let own_ok = (interior || path.is_root()) && allows(path);
        parent_ok || own_ok
    }

    // ---- properties ------------------------------------------------------------------

    /// Replace `?prop=`: ACL, Name (rename) and Title can be replaced; the
    /// other properties are read-only (405).
    fn replace_prop(
        &mut self,
        path: &Uri,
        prop: Property,
        item: &Item,
        cx: &mut Cx<'_>,
    ) -> Result<(), TreeError> {
        let node = self
            .node_at(path)
            .ok_or_else(|| TreeError::not_found(path))?;
        let text = match &item.data {
            None => String::new(),
            Some(d) => d
                .as_str()
                .ok_or_else(|| TreeError::BadRequest {
                    reason: "property value is not text".into(),
                })?
                .to_owned(),
        };
        let sid = cx.sid().to_owned();
        match prop {
            Property::Acl => {
                let acl = Acl::parse(text.trim())?;
                if !self.may_replace_acl(path, node.is_interior(), &sid) {
                    return Err(TreeError::PermissionDenied {
                        server_id: sid,
                        command: "Replace",
                        path: path.to_string(),
                    });
                }
                if path.is_root() && !acl.grants_any(AclCommand::Add) {
                    return Err(TreeError::not_allowed(
                        "Replace",
                        path,
                        "the root's Add must stay *",
                    ));
                }
                let acl_text = acl.to_string();
                self.veto_prop(path, Property::Acl, acl_text.as_bytes(), cx)?;
                let now = self.scratch.now;
                self.update_props(path, |p| {
                    p.acl = acl;
                    p.touch(now);
                })?;
                self.done(ChangeKind::Property(Property::Acl), path, cx)?;
            }
            Property::Title => {
                if !node.access_type().contains(AccessType::REPLACE) {
                    return Err(TreeError::not_allowed(
                        "Replace",
                        path,
                        "AccessType has no Replace",
                    ));
                }
                self.require(path, AclCommand::Replace, &sid)?;
                if text.len() > MAX_TITLE_LEN {
                    return Err(TreeError::TooLarge {
                        what: "Title",
                        size: text.len(),
                        limit: MAX_TITLE_LEN,
                    });
                }
                self.veto_prop(path, Property::Title, text.as_bytes(), cx)?;
                let now = self.scratch.now;
                self.update_props(path, |p| {
                    p.title = (!text.is_empty()).then_some(text);
                    p.touch(now);
                })?;
                self.done(ChangeKind::Property(Property::Title), path, cx)?;
            }
            Property::Name => self.rename_node(path, text.trim(), cx)?,
            Property::Format
            | Property::Size
            | Property::TStamp
            | Property::Type
            | Property::VerNo => {
                return Err(TreeError::not_allowed(
                    "Replace",
                    path,
                    "read-only property",
                ));
            }
        }
        Ok(())
    }

    fn veto_prop(
        &self,
        path: &Uri,
        prop: Property,
        value: &[u8],
        cx: &mut Cx<'_>,
    ) -> Result<(), TreeError> {
        let kind = ChangeKind::Property(prop);
        let change = Change {
            kind: &kind,
            path,
            server_id: cx.ctx.server_id,
            format: None,
            value: Some(value),
            mime: None,
        };
        self.veto(path, &change, cx)
    }

    /// Replace `?prop=Name`: rename (`DM_TND` §7.7.3). Not for the root or
    /// permanent nodes (405); a sibling of that name is 418; inside an MO the
    /// new name must match the same schema pattern (405 otherwise).
    fn rename_node(&mut self, path: &Uri, name: &str, cx: &mut Cx<'_>) -> Result<(), TreeError> {
        let node = self
            .node_at(path)
            .ok_or_else(|| TreeError::not_found(path))?;
        if path.is_root() || node.is_permanent() {
            return Err(TreeError::not_allowed(
                "Replace",
                path,
                "permanent node cannot be renamed",
            ));
        }
        if !node.access_type().contains(AccessType::REPLACE) {
            return Err(TreeError::not_allowed(
                "Replace",
                path,
                "AccessType has no Replace",
            ));
        }
        self.require(path, AclCommand::Replace, cx.sid())?;
        crate::uri::check_name(name).map_err(|why| TreeError::BadRequest {
            reason: format!("name {name:?}: {why}"),
        })?;
        let limits = self.config().uri_limits;
        if limits.max_seg_len != 0 && name.chars().count() > limits.max_seg_len {
            return Err(TreeError::UriTooLong {
                uri: name.to_owned(),
                limit: "MaxSegLen",
                max: limits.max_seg_len,
            });
        }
        if path.name() == Some(name) {
            return Ok(());
        }
        let new_path = path
            .with_name(name)
            .ok_or_else(|| TreeError::not_found(path))?;
        if self.node_at(&new_path).is_some() {
            return Err(TreeError::AlreadyExists {
                path: new_path.to_string(),
            });
        }
        if self.schema_match(path) != self.schema_match(&new_path) {
            return Err(TreeError::not_allowed(
                "Replace",
                path,
                "the name is fixed by the MO",
            ));
        }
        let kind = ChangeKind::Rename(name.to_owned());
        let change = Change {
            kind: &kind,
            path,
            server_id: cx.ctx.server_id,
            format: None,
            value: Some(name.as_bytes()),
            mime: None,
        };
        self.veto(path, &change, cx)?;
        let new_path = self.rename(path, name)?;
        self.touch(&new_path);
        self.touch_parent(&new_path);
        self.done(kind, path, cx)
    }

    // ---- TNDS ------------------------------------------------------------------------

    /// Add or Replace with a TNDS document (`DM_TNDS` §9.1.3): the target is
    /// the existing interior node the document's top nodes go under (a
    /// top node's `Path`, if given, is absolute when it starts with `.` and
    /// relative to the target otherwise; a missing target named like the
    /// document's single top node is taken as that node). One status for the
    /// whole document, all or nothing. An ACL in the document is allowed
    /// where the server could set it with Replace `?prop=ACL` (a new interior
    /// node: always, it is the adder's). Replace replaces existing nodes,
    /// creates missing ones, and deletes children the document leaves out.
    fn tnds_write(
        &mut self,
        replace: bool,
        base: &Uri,
        item: &Item,
        cx: &mut Cx<'_>,
    ) -> Result<(), Fail> {
        let text = match &item.data {
            Some(Data::Xml(s) | Data::Text(s)) => s.as_str(),
            Some(Data::Binary(b)) => {
                std::str::from_utf8(b).map_err(|_| TreeError::UnsupportedFormat {
                    reason: format!("{} (binary) is not supported", TNDS_WBXML_TYPE),
                })?
            }
            None => {
                return Err(TreeError::Incomplete {
                    reason: "TNDS item without Data",
                }
                .into())
            }
        };
        let doc = TndsDoc::parse(text)?;
        // Tolerance: a Target naming the (missing) single top node itself,
        // rather than where it goes, is taken as its parent.
        let base = match (doc.nodes.as_slice(), base.parent()) {
            ([only], Some(parent))
                if only.path.is_none()
                    && base.name() == Some(only.name.as_str())
                    && self.node_at(base).is_none() =>
            {
                parent
            }
            _ => base.clone(),
        };
        let base = &base;
        match self.node_at(base) {
            None => return Err(TreeError::not_found(base).into()),
            Some(n) if n.is_leaf() => {
                return Err(
                    TreeError::not_allowed("Add", base, "a leaf cannot have children").into(),
                )
            }
            Some(_) => {}
        }

        let limits = self.config().uri_limits;
        for top in &doc.nodes {
            let parent = match top.path.as_deref() {
                None | Some("") => base.clone(),
                Some(p) if p == "." || p.starts_with("./") => Uri::parse(p)?,
                Some(p) => base.join(p)?,
            };
            let path = parent.child(&top.name).map_err(|e| TreeError::BadRequest {
                reason: e.to_string(),
            })?;
            path.check_limits(&path.to_string(), &limits)?;
            if replace {
                self.tnds_replace_node(&parent, top, cx)?;
            } else {
                self.tnds_add_node(&parent, top, cx)?;
            }
        }
        Ok(())
    }

    /// Sets an ACL from a TNDS document, under the rules of Replace
    /// `?prop=ACL`.
    fn tnds_set_acl(
        &mut self,
        path: &Uri,
        interior: bool,
        acl: Acl,
        cx: &mut Cx<'_>,
    ) -> Result<(), TreeError> {
        if !self.may_replace_acl(path, interior, cx.sid()) {
            return Err(TreeError::PermissionDenied {
                server_id: cx.sid().to_owned(),
                command: "Replace",
                path: path.to_string(),
            });
        }
        let text = acl.to_string();
        self.veto_prop(path, Property::Acl, text.as_bytes(), cx)?;
        self.update_props(path, |p| p.acl = acl)?;
        self.done(ChangeKind::Property(Property::Acl), path, cx)
    }

    fn tnds_add_node(
        &mut self,
        parent: &Uri,
        n: &TndsNode,
        cx: &mut Cx<'_>,
    ) -> Result<(), TreeError> {
        let path = parent.child(&n.name).map_err(|e| TreeError::BadRequest {
            reason: e.to_string(),
        })?;
        path.check_limits(&path.to_string(), &self.config().uri_limits)?;
        let mut new = tnds_new_node(n)?;
        let acl = new.acl.take();
        self.server_add(&path, new, cx)?;
        for c in &n.children {
            self.tnds_add_node(&path, c, cx)?;
        }
        // The document's ACL applies once its sub-tree is built, as if the
        // server had replaced it afterwards.
        match acl {
            Some(acl) => self.tnds_set_acl(&path, n.is_interior(), acl, cx),
            None => Ok(()),
        }
    }

    fn tnds_replace_node(
        &mut self,
        parent: &Uri,
        n: &TndsNode,
        cx: &mut Cx<'_>,
    ) -> Result<(), TreeError> {
        let path = parent.child(&n.name).map_err(|e| TreeError::BadRequest {
            reason: e.to_string(),
        })?;
        path.check_limits(&path.to_string(), &self.config().uri_limits)?;
        let Some(existing) = self.node_at(&path) else {
            return self.tnds_add_node(parent, n, cx);
        };
        let new = tnds_new_node(n)?;
        if existing.is_interior() != n.is_interior() {
            self.server_delete(&path, cx)?;
            return self.tnds_add_node(parent, n, cx);
        }
        if existing.is_leaf() {
            self.server_replace(&path, new.format, new.value, new.mime, cx)?;
        } else {
            let wanted: Vec<&str> = n.children.iter().map(|c| c.name.as_str()).collect();
            let gone: Vec<String> = existing
                .children()
                .map(|(name, _)| name)
                .filter(|name| !wanted.contains(name))
                .map(str::to_owned)
                .collect();
            for name in gone {
                self.server_delete(&path.child_unchecked(&name), cx)?;
            }
            for c in &n.children {
                self.tnds_replace_node(&path, c, cx)?;
            }
        }
        if let Some(acl) = new.acl {
            self.tnds_set_acl(&path, n.is_interior(), acl, cx)?;
        }
        if let Some(title) = new.title {
            self.veto_prop(&path, Property::Title, title.as_bytes(), cx)?;
            self.update_props(&path, |p| p.title = Some(title))?;
            self.done(ChangeKind::Property(Property::Title), &path, cx)?;
        }
        Ok(())
    }
}

// ---- helpers ----------------------------------------------------------------------------

fn alert(a: &Alert, cx: &mut Cx<'_>, out: &mut Vec<Reply>) -> Flow {
    let reply = cx.hooks.alert(a, cx.ctx);
    let mut st = status(cx.ctx, "Alert", a.cmd_id, reply.status);
    st.items = reply.items;
    out.push(Reply::Status(st));
    let done = reply.status == StatusCode::OK || reply.status == StatusCode::ACCEPTED;
    Flow {
        ok: done,
        abort: !done,
    }
}

fn status(ctx: &ServerCtx<'_>, cmd: &str, cmd_ref: u32, code: StatusCode) -> Status {
    Status {
        cmd_id: 0,
        msg_ref: Some(ctx.msg_ref),
        cmd_ref,
        cmd: cmd.to_owned(),
        target_refs: Vec::new(),
        source_refs: Vec::new(),
        cred: None,
        chal: None,
        data: code,
        items: Vec::new(),
    }
}

fn set_code(out: &mut [Reply], at: usize, code: StatusCode) {
    if let Some(Reply::Status(s)) = out.get_mut(at) {
        s.data = code;
    }
}

/// The statuses of a command that is not run: `code` for it (one per item),
/// and 215 for the members of a container.
fn not_executed(cmd: &Command, code: StatusCode, ctx: &ServerCtx<'_>, out: &mut Vec<Reply>) {
    let per_item = |items: &[Item], out: &mut Vec<Reply>| {
        if items.is_empty() {
            out.push(Reply::Status(status(ctx, cmd.name(), cmd.cmd_id(), code)));
        }
        for item in items {
            let mut st = status(ctx, cmd.name(), cmd.cmd_id(), code);
            if let Some(t) = &item.target {
                st.target_refs.push(t.loc_uri.clone());
            }
            if let Some(s) = &item.source {
                st.source_refs.push(s.loc_uri.clone());
            }
            out.push(Reply::Status(st));
        }
    };
    match cmd {
        Command::Add(c)
        | Command::Copy(c)
        | Command::Delete(c)
        | Command::Get(c)
        | Command::Replace(c) => per_item(&c.items, out),
        Command::Exec(e) => per_item(&e.items, out),
        Command::Alert(_) => out.push(Reply::Status(status(ctx, "Alert", cmd.cmd_id(), code))),
        Command::Atomic(c) | Command::Sequence(c) => {
            out.push(Reply::Status(status(ctx, cmd.name(), c.cmd_id, code)));
            for m in &c.commands {
                not_executed(m, StatusCode::NOT_EXECUTED, ctx, out);
            }
        }
        Command::Status(_) | Command::Results(_) => {}
    }
}

/// The item's Meta over the command's, field by field.
fn merge_meta(cmd: Option<&Meta>, item: Option<&Meta>) -> Meta {
    match (cmd, item) {
        (None, None) => Meta::default(),
        (Some(m), None) | (None, Some(m)) => m.clone(),
        (Some(c), Some(i)) => Meta {
            format: i.format.clone().or_else(|| c.format.clone()),
            r#type: i.r#type.clone().or_else(|| c.r#type.clone()),
            mark: i.mark.clone().or_else(|| c.mark.clone()),
            size: i.size.or(c.size),
            ..i.clone()
        },
    }
}

fn meta_format(meta: &Meta) -> Result<Option<Format>, TreeError> {
    meta.format.as_deref().map(str::parse).transpose()
}

fn is_tnds(meta: &Meta) -> bool {
    meta.r#type.as_deref().is_some_and(|t| {
        let t = t.trim();
        t.eq_ignore_ascii_case(TNDS_XML_TYPE) || t.eq_ignore_ascii_case(TNDS_WBXML_TYPE)
    })
}

fn tnds_new_node(n: &TndsNode) -> Result<NewNode, TreeError> {
    let interior = n.is_interior();
    if !interior && !n.children.is_empty() {
        return Err(TreeError::BadRequest {
            reason: format!("leaf {:?} has child nodes", n.name),
        });
    }
    let format = if interior {
        Format::Node
    } else {
        n.props.format.unwrap_or(Format::Chr)
    };
    let value = if interior {
        RawValue::None
    } else {
        RawValue::Bytes(n.value_bytes()?)
    };
    let mime = if interior {
        n.props.ddf_name.clone()
    } else {
        n.props.mime.clone()
    };
    Ok(NewNode {
        format: Ok(Some(format.stored())),
        value,
        mime,
        acl: n.props.acl.as_deref().map(Acl::parse).transpose()?,
        title: n.props.title.clone(),
    })
}

/// A Get's Results item for one node: interior → child names with Format
/// `node`; leaf → the value with Meta Format/Type when not the defaults.
fn plain_item(uri: &str, node: &Node, with_value: bool) -> Item {
    let mut item = Item {
        source: Some(Location::uri(uri)),
        ..Item::default()
    };
    if node.is_interior() {
        let names: Vec<&str> = node.children().map(|(n, _)| n).collect();
        item.meta = Some(Meta::format(Format::Node.as_str()));
        item.data = Some(Data::Text(names.join("/")));
        return item;
    }
    let mut meta = Meta::default();
    if node.format() != Format::Chr {
        meta.format = Some(node.format().as_str().to_owned());
    }
    if !node.mime_type().is_empty() && node.mime_type() != DEFAULT_LEAF_TYPE {
        meta.r#type = Some(node.mime_type().to_owned());
    }
    item.meta = (!meta.is_empty()).then_some(meta);
    if with_value {
        let v = node.value().unwrap_or_default();
        item.data = Some(match std::str::from_utf8(v) {
            Ok(s) if !node.format().is_binary() => Data::Text(s.to_owned()),
            _ => Data::Binary(v.to_vec()),
        });
    }
    item
}

/// The text of a property (`DM_TND` §7). Size of an interior node is 406.
fn prop_value(path: &Uri, node: &Node, prop: Property) -> Result<String, TreeError> {
    Ok(match prop {
        Property::Acl => node.acl().to_string(),
        Property::Format => node.format().as_str().to_owned(),
        Property::Name => path.name().unwrap_or(".").to_owned(),
        Property::Size => match node.size() {
            Some(n) => n.to_string(),
            None => {
                return Err(TreeError::NotSupported {
                    feature: "Size of an interior node".into(),
                })
            }
        },
        Property::Title => node.title().unwrap_or_default().to_owned(),
        Property::TStamp => node.tstamp().map(format_tstamp).unwrap_or_default(),
        Property::Type => node.mime_type().to_owned(),
        Property::VerNo => node.verno().to_string(),
    })
}
