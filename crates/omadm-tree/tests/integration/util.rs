//! Command builders and a fixture tree shared by the integration tests.

use omadm_tree::{
    Acl, AlertReply, ChangeEvent, ExecRequest, Format, NoHooks, Reply, ServerCtx, Tree, TreeHooks,
};
use omadm_wire::model::{
    Alert, Command, Container, Data, Exec, Item, ItemCommand, Location, Meta, Status,
};
use omadm_wire::{AlertCode, StatusCode};

pub(crate) const NOW: u64 = 994_869_497; // 2001-07-11T16:38:17Z
pub(crate) const MSG: u32 = 7;

pub(crate) fn ctx(sid: &str) -> ServerCtx<'_> {
    ServerCtx {
        server_id: sid,
        msg_ref: MSG,
        now: NOW,
    }
}

fn item(target: &str, format: Option<&str>, data: Option<Data>) -> Item {
    Item {
        target: Some(Location::uri(target)),
        meta: format.map(Meta::format),
        data,
        ..Item::default()
    }
}

fn cmd(items: Vec<Item>) -> ItemCommand {
    ItemCommand {
        cmd_id: 3,
        items,
        ..ItemCommand::default()
    }
}

pub(crate) fn text(s: &str) -> Option<Data> {
    Some(Data::Text(s.to_owned()))
}

pub(crate) fn add(target: &str, format: Option<&str>, data: Option<Data>) -> Command {
    Command::Add(cmd(vec![item(target, format, data)]))
}

pub(crate) fn add_leaf(target: &str, value: &str) -> Command {
    add(target, None, text(value))
}

pub(crate) fn add_node(target: &str) -> Command {
    add(target, Some("node"), None)
}

pub(crate) fn replace(target: &str, format: Option<&str>, data: Option<Data>) -> Command {
    Command::Replace(cmd(vec![item(target, format, data)]))
}

pub(crate) fn replace_text(target: &str, value: &str) -> Command {
    replace(target, None, text(value))
}

pub(crate) fn get(target: &str) -> Command {
    Command::Get(cmd(vec![item(target, None, None)]))
}

pub(crate) fn delete(target: &str) -> Command {
    Command::Delete(cmd(vec![item(target, None, None)]))
}

pub(crate) fn copy(source: &str, target: &str) -> Command {
    let mut it = item(target, None, None);
    it.source = Some(Location::uri(source));
    Command::Copy(cmd(vec![it]))
}

pub(crate) fn exec(target: &str, correlator: Option<&str>) -> Command {
    Command::Exec(Exec {
        cmd_id: 4,
        correlator: correlator.map(str::to_owned),
        items: vec![item(target, None, text("arg"))],
        ..Exec::default()
    })
}

pub(crate) fn alert(code: u16) -> Command {
    let mut a = Alert::new(AlertCode(code));
    a.cmd_id = 5;
    Command::Alert(a)
}

pub(crate) fn atomic(commands: Vec<Command>) -> Command {
    Command::Atomic(Container {
        cmd_id: 10,
        commands,
        ..Container::default()
    })
}

pub(crate) fn sequence(commands: Vec<Command>) -> Command {
    Command::Sequence(Container {
        cmd_id: 11,
        commands,
        ..Container::default()
    })
}

/// Numbers the commands 1, 2, ... (as a message would).
pub(crate) fn numbered(mut commands: Vec<Command>) -> Vec<Command> {
    for (i, c) in commands.iter_mut().enumerate() {
        c.set_cmd_id(u32::try_from(i).unwrap() + 20);
    }
    commands
}

pub(crate) fn run(tree: &mut Tree, sid: &str, c: &Command) -> Vec<Reply> {
    tree.apply(c, &ctx(sid), &mut NoHooks)
}

pub(crate) fn run_with(
    tree: &mut Tree,
    sid: &str,
    c: &Command,
    hooks: &mut dyn TreeHooks,
) -> Vec<Reply> {
    tree.apply(c, &ctx(sid), hooks)
}

pub(crate) fn statuses(replies: &[Reply]) -> Vec<&Status> {
    replies.iter().filter_map(Reply::as_status).collect()
}

/// `(Cmd, code)` of every Status.
pub(crate) fn codes(replies: &[Reply]) -> Vec<(String, u16)> {
    statuses(replies)
        .iter()
        .map(|s| (s.cmd.clone(), s.data.0))
        .collect()
}

/// The code of the one Status a one-item command produced.
pub(crate) fn code(tree: &mut Tree, sid: &str, c: &Command) -> u16 {
    let replies = run(tree, sid, c);
    let st = statuses(&replies);
    assert_eq!(st.len(), 1, "{replies:?}");
    st[0].data.0
}

/// The data of the first Results item of a Get.
pub(crate) fn get_data(tree: &mut Tree, sid: &str, uri: &str) -> (Option<Data>, Option<Meta>) {
    let replies = run(tree, sid, &get(uri));
    assert_eq!(statuses(&replies)[0].data, StatusCode::OK, "{replies:?}");
    let r = replies.iter().find_map(Reply::as_results).expect("results");
    (r.items[0].data.clone(), r.items[0].meta.clone())
}

pub(crate) fn get_text(tree: &mut Tree, sid: &str, uri: &str) -> String {
    match get_data(tree, sid, uri).0 {
        Some(Data::Text(s) | Data::Xml(s)) => s,
        other => panic!("not text: {other:?}"),
    }
}

pub(crate) fn json(tree: &Tree) -> String {
    serde_json::to_string(tree).unwrap()
}

pub(crate) const ALL_S1: &str = "Add=s1&Delete=s1&Exec=s1&Get=s1&Replace=s1";
pub(crate) const ALL_ANY: &str = "Add=*&Delete=*&Exec=*&Get=*&Replace=*";

/// ```text
/// .            Add=*&Get=*
/// ├── Open     everything to everyone
/// │   ├── Leaf   chr "v"
/// │   ├── Other  chr "o"
/// │   ├── Num    int "5"
/// │   └── Sub/   (empty interior)
/// ├── Owned    everything to s1 only
/// │   ├── Leaf   chr "secret"
/// │   └── Sub/
/// ├── Perm     permanent, everything to everyone
/// │   └── Leaf   permanent
/// ├── RO       everything to everyone; RO/Leaf AccessType Get
/// │   └── Leaf
/// └── WO       AccessType Replace only (no Get), everything to everyone
/// ```
pub(crate) fn fixture() -> Tree {
    let mut t = Tree::default();
    t.set_now(1);
    t.set_leaf("./Open/Leaf", "v", Format::Chr).unwrap();
    t.set_leaf("./Open/Other", "o", Format::Chr).unwrap();
    t.set_leaf("./Open/Num", "5", Format::Int).unwrap();
    t.ensure_interior("./Open/Sub").unwrap();
    t.set_acl("./Open", Acl::parse(ALL_ANY).unwrap()).unwrap();
    t.set_leaf("./Owned/Leaf", "secret", Format::Chr).unwrap();
    t.ensure_interior("./Owned/Sub").unwrap();
    t.set_acl("./Owned", Acl::parse(ALL_S1).unwrap()).unwrap();
    t.set_leaf("./Perm/Leaf", "p", Format::Chr).unwrap();
    t.set_permanent("./Perm", true).unwrap();
    t.set_permanent("./Perm/Leaf", true).unwrap();
    t.set_acl("./Perm", Acl::parse(ALL_ANY).unwrap()).unwrap();
    t.set_leaf("./RO/Leaf", "r", Format::Chr).unwrap();
    t.set_access_type("./RO/Leaf", omadm_tree::AccessType::GET)
        .unwrap();
    t.set_acl("./RO", Acl::parse(ALL_ANY).unwrap()).unwrap();
    t.set_leaf("./WO", "w", Format::Chr).unwrap();
    t.set_access_type("./WO", omadm_tree::AccessType::REPLACE)
        .unwrap();
    t.set_acl("./WO", Acl::parse(ALL_ANY).unwrap()).unwrap();
    t
}

/// Hooks that record what they see and answer with fixed codes.
#[derive(Default)]
pub(crate) struct Recorder {
    pub(crate) execs: Vec<(String, Option<String>, Option<String>, String)>,
    pub(crate) events: Vec<ChangeEvent>,
    pub(crate) exec_status: Option<StatusCode>,
    pub(crate) veto: Option<(String, StatusCode)>,
    pub(crate) alert_status: Option<StatusCode>,
}

impl TreeHooks for Recorder {
    fn exec(&mut self, tree: &mut Tree, req: &ExecRequest<'_>) -> StatusCode {
        self.execs.push((
            req.path.to_string(),
            req.correlator.map(str::to_owned),
            req.data.and_then(Data::as_str).map(str::to_owned),
            req.server_id.to_owned(),
        ));
        // Exec handlers may update the tree.
        let status = req.path.parent().unwrap().child("LastExec").unwrap();
        tree.set_leaf(&status, req.path.to_string(), Format::Chr)
            .unwrap();
        self.exec_status.unwrap_or(StatusCode::OK)
    }

    fn check_change(
        &mut self,
        _tree: &Tree,
        change: &omadm_tree::Change<'_>,
    ) -> Result<(), StatusCode> {
        match &self.veto {
            Some((path, code)) if change.path.to_string() == *path => Err(*code),
            _ => Ok(()),
        }
    }

    fn changed(&mut self, _tree: &mut Tree, event: &ChangeEvent) {
        self.events.push(event.clone());
    }

    fn alert(&mut self, _alert: &Alert, _ctx: &ServerCtx<'_>) -> AlertReply {
        AlertReply::new(self.alert_status.unwrap_or(StatusCode::OK))
    }
}
