//! The device side's seam to its management tree: [`DeviceHandler`].
//!
//! `ClientSession` owns the protocol (statuses for the header, NoResp,
//! large objects, 1222/1223, authentication); the handler only executes
//! management commands. `omadm-tree` implements it for the real tree;
//! [`MemoryDevice`] is a flat map for tests, benches and the simulator.

use std::collections::BTreeMap;

use omadm_wire::model::{
    Command, Container, Data, Item, ItemCommand, Location, Meta, Results, Status,
};
use omadm_wire::StatusCode;

use crate::common::status_for;

/// Executes the server's management commands on a device.
pub trait DeviceHandler {
    /// Executes one command from `server_id` (DMAcc ServerID, for ACLs):
    /// Add, Copy, Delete, Exec, Get, Replace, a UI Alert (1100–1104), or a
    /// whole Atomic/Sequence. Large objects arrive reassembled.
    ///
    /// Returns the command's Status (for Atomic/Sequence also one per nested
    /// command) and, for a Get, its Results, in sending order. CmdIDs are
    /// assigned by the session; a `None` MsgRef is filled in. A missing
    /// top-level Status becomes 500.
    fn execute(&mut self, server_id: &str, cmd: &Command) -> Vec<Command>;
}

/// A Status for `cmd` (MsgRef left for the session to fill).
pub fn status(cmd: &Command, code: StatusCode) -> Status {
    let mut s = status_for(0, cmd, code);
    s.msg_ref = None;
    s
}

/// Results answering the Get `cmd`.
pub fn results(cmd: &Command, items: Vec<Item>) -> Results {
    Results {
        cmd_ref: cmd.cmd_id(),
        items,
        ..Results::default()
    }
}

/// A node of [`MemoryDevice`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryNode {
    /// The value.
    pub data: Data,
    /// Meta Format it was written with (`chr` when absent).
    pub format: Option<String>,
}

/// A device whose tree is a flat map of leaf URIs: enough to run every
/// session shape in memory. Interior nodes exist implicitly as prefixes.
/// No ACLs, no properties.
#[derive(Clone, Debug, Default)]
pub struct MemoryDevice {
    /// Leaf values by URI (`./A/B`).
    pub nodes: BTreeMap<String, MemoryNode>,
    /// Every command executed, as `"<Cmd> <uri>"`, in order.
    pub executed: Vec<String>,
    /// Status returned for UI alerts (200 = accepted).
    pub ui_alert_status: Option<StatusCode>,
}

impl MemoryDevice {
    /// An empty device.
    pub fn new() -> MemoryDevice {
        MemoryDevice::default()
    }

    /// Sets a text leaf.
    pub fn set(&mut self, uri: impl Into<String>, value: impl Into<String>) {
        self.nodes.insert(
            normalize(&uri.into()),
            MemoryNode {
                data: Data::Text(value.into()),
                format: None,
            },
        );
    }

    /// A leaf's value.
    pub fn get(&self, uri: &str) -> Option<&Data> {
        self.nodes.get(&normalize(uri)).map(|n| &n.data)
    }

    fn children(&self, uri: &str) -> Vec<String> {
        let prefix = format!("{uri}/");
        let mut names: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter_map(|(k, _)| k.get(prefix.len()..)?.split('/').next().map(str::to_owned))
            .collect();
        names.dedup();
        names
    }

    fn exists(&self, uri: &str) -> bool {
        self.nodes.contains_key(uri) || !self.children(uri).is_empty() || uri == "."
    }

    fn item_op(&mut self, cmd: &Command, c: &ItemCommand) -> (StatusCode, Option<Results>) {
        let mut code = StatusCode::OK;
        let mut out_items = Vec::new();
        for item in &c.items {
            let uri = normalize(
                item.target
                    .as_ref()
                    .map(|t| t.loc_uri.as_str())
                    .unwrap_or(""),
            );
            self.executed.push(format!("{} {uri}", cmd.name()));
            let format = item
                .meta
                .as_ref()
                .and_then(|m| m.format.clone())
                .or_else(|| c.meta.as_ref().and_then(|m| m.format.clone()));
            let data = item.data.clone().unwrap_or(Data::Text(String::new()));
            code = match cmd {
                Command::Add(_) if self.exists(&uri) => StatusCode::ALREADY_EXISTS,
                Command::Add(_) => {
                    if format.as_deref() != Some("node") {
                        self.nodes.insert(uri, MemoryNode { data, format });
                    }
                    StatusCode::OK
                }
                Command::Replace(_) if !self.nodes.contains_key(&uri) => StatusCode::NOT_FOUND,
                Command::Replace(_) => {
                    self.nodes.insert(uri, MemoryNode { data, format });
                    StatusCode::OK
                }
                Command::Delete(_) if !self.exists(&uri) => StatusCode::NOT_FOUND,
                Command::Delete(_) => {
                    let prefix = format!("{uri}/");
                    self.nodes
                        .retain(|k, _| *k != uri && !k.starts_with(&prefix));
                    StatusCode::OK
                }
                Command::Copy(_) => {
                    let src = normalize(
                        item.source
                            .as_ref()
                            .map(|s| s.loc_uri.as_str())
                            .unwrap_or(""),
                    );
                    match self.nodes.get(&src).cloned() {
                        Some(n) => {
                            self.nodes.insert(uri, n);
                            StatusCode::OK
                        }
                        None => StatusCode::NOT_FOUND,
                    }
                }
                Command::Get(_) => match self.nodes.get(&uri) {
                    Some(n) => {
                        out_items.push(Item {
                            source: Some(Location::uri(uri.clone())),
                            meta: n.format.clone().map(Meta::format),
                            data: Some(n.data.clone()),
                            ..Item::default()
                        });
                        StatusCode::OK
                    }
                    None if self.exists(&uri) => {
                        out_items.push(Item {
                            source: Some(Location::uri(uri.clone())),
                            meta: Some(Meta::format("node")),
                            data: Some(Data::Text(self.children(&uri).join("/"))),
                            ..Item::default()
                        });
                        StatusCode::OK
                    }
                    None => StatusCode::NOT_FOUND,
                },
                _ => StatusCode::NOT_IMPLEMENTED,
            };
            if !code.is_success() {
                break;
            }
        }
        let results =
            (matches!(cmd, Command::Get(_)) && code.is_success()).then(|| results(cmd, out_items));
        (code, results)
    }

    fn container(
        &mut self,
        server_id: &str,
        cmd: &Command,
        c: &Container,
        atomic: bool,
    ) -> Vec<Command> {
        let snapshot = atomic.then(|| self.nodes.clone());
        let mut inner = Vec::new();
        let mut failed = false;
        for sub in &c.commands {
            if failed {
                inner.push(Command::Status(status(sub, StatusCode::NOT_EXECUTED)));
                continue;
            }
            let out = self.execute(server_id, sub);
            failed = out.iter().any(|o| {
                matches!(o, Command::Status(s) if s.cmd_ref == sub.cmd_id() && !s.data.is_success())
            });
            inner.extend(out);
        }
        let code = match (atomic, failed) {
            (true, true) => {
                if let Some(s) = snapshot {
                    self.nodes = s;
                }
                for o in &mut inner {
                    if let Command::Status(s) = o {
                        if s.data.is_success() {
                            s.data = StatusCode::ATOMIC_ROLLBACK_OK;
                        }
                    }
                }
                inner.retain(|o| !matches!(o, Command::Results(_)));
                StatusCode::ATOMIC_FAILED
            }
            _ => StatusCode::OK,
        };
        let mut out = vec![Command::Status(status(cmd, code))];
        out.extend(inner);
        out
    }
}

impl DeviceHandler for MemoryDevice {
    fn execute(&mut self, server_id: &str, cmd: &Command) -> Vec<Command> {
        match cmd {
            Command::Add(c)
            | Command::Replace(c)
            | Command::Delete(c)
            | Command::Copy(c)
            | Command::Get(c) => {
                let (code, results) = self.item_op(cmd, c);
                let mut out = vec![Command::Status(status(cmd, code))];
                out.extend(results.map(Command::Results));
                out
            }
            Command::Exec(e) => {
                for item in &e.items {
                    let uri = item
                        .target
                        .as_ref()
                        .map(|t| t.loc_uri.as_str())
                        .unwrap_or("");
                    self.executed.push(format!("Exec {}", normalize(uri)));
                }
                vec![Command::Status(status(cmd, StatusCode::OK))]
            }
            Command::Alert(a) => {
                self.executed
                    .push(format!("Alert {}", a.data.map(|d| d.0).unwrap_or(0)));
                let code = self.ui_alert_status.unwrap_or(StatusCode::OK);
                vec![Command::Status(status(cmd, code))]
            }
            Command::Atomic(c) => self.container(server_id, cmd, c, true),
            Command::Sequence(c) => self.container(server_id, cmd, c, false),
            Command::Status(_) | Command::Results(_) => Vec::new(),
        }
    }
}

/// `A/B` and `./A/B` name the same node (DM_TND §6).
fn normalize(uri: &str) -> String {
    let uri = uri.trim();
    if uri == "." || uri.starts_with("./") {
        uri.to_owned()
    } else {
        format!("./{uri}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item_cmd(uri: &str, data: Option<&str>) -> ItemCommand {
        ItemCommand {
            cmd_id: 3,
            items: vec![Item {
                target: Some(Location::uri(uri)),
                data: data.map(|d| Data::Text(d.into())),
                ..Item::default()
            }],
            ..ItemCommand::default()
        }
    }

    #[test]
    fn memory_device_basics() {
        let mut d = MemoryDevice::new();
        d.set("./A/B", "1");
        d.set("A/C", "2");
        let out = d.execute("srv", &Command::Get(item_cmd("./A", None)));
        let Command::Results(r) = &out[1] else {
            panic!()
        };
        assert_eq!(r.items[0].data, Some(Data::Text("B/C".into())));
        let out = d.execute("srv", &Command::Replace(item_cmd("./A/X", Some("v"))));
        assert!(matches!(&out[0], Command::Status(s) if s.data == StatusCode::NOT_FOUND));
        let out = d.execute("srv", &Command::Add(item_cmd("./A/X", Some("v"))));
        assert!(
            matches!(&out[0], Command::Status(s) if s.data == StatusCode::OK && s.cmd_ref == 3)
        );
        assert_eq!(d.get("A/X"), Some(&Data::Text("v".into())));
        let atomic = Command::Atomic(Container {
            cmd_id: 9,
            commands: vec![
                Command::Replace(item_cmd("./A/B", Some("new"))),
                Command::Replace(item_cmd("./Missing", Some("x"))),
            ],
            ..Container::default()
        });
        let out = d.execute("srv", &atomic);
        assert!(matches!(&out[0], Command::Status(s) if s.data == StatusCode::ATOMIC_FAILED));
        assert_eq!(d.get("./A/B"), Some(&Data::Text("1".into())));
    }
}
