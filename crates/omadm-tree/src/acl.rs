//! Access control lists (`DM_TND` §7.7.1, digest §12.4).
//!
//! ```text
//! acl        = "" | entry *( "&" entry )
//! entry      = command "=" server-ids
//! server-ids = server-id *( "+" server-id )
//! command    = "Add" | "Delete" | "Exec" | "Get" | "Replace"
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::TreeError;

/// The ACL wildcard: any server.
pub const ANY_SERVER: &str = "*";

/// A command an ACL can grant. There is no `Copy` entry: Copy needs the
/// equivalent Get/Add/Replace rights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AclCommand {
    /// `Add`: add children to this node.
    Add,
    /// `Delete`: delete this node.
    Delete,
    /// `Exec`: execute this node.
    Exec,
    /// `Get`: read this node.
    Get,
    /// `Replace`: replace this node's value and properties.
    Replace,
}

impl AclCommand {
    /// Every command, in canonical order.
    pub const ALL: [AclCommand; 5] = [
        AclCommand::Add,
        AclCommand::Delete,
        AclCommand::Exec,
        AclCommand::Get,
        AclCommand::Replace,
    ];

    /// The command's name in ACL text.
    pub fn as_str(self) -> &'static str {
        match self {
            AclCommand::Add => "Add",
            AclCommand::Delete => "Delete",
            AclCommand::Exec => "Exec",
            AclCommand::Get => "Get",
            AclCommand::Replace => "Replace",
        }
    }

    fn parse(s: &str) -> Option<AclCommand> {
        AclCommand::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for AclCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An ACL: for each command, the server ids it is granted to.
///
/// An empty ACL means "inherit the nearest ancestor's ACL" (all or nothing,
/// never merged). Formats canonically: commands in the order Add, Delete,
/// Exec, Get, Replace; ids in the order granted, without duplicates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Acl {
    entries: BTreeMap<AclCommand, Vec<String>>,
}

impl Acl {
    /// The empty ACL (inherits).
    pub fn new() -> Acl {
        Acl::default()
    }

    /// Parses ACL text. Malformed text (unknown command, command without
    /// ids, bad id characters) is 400.
    pub fn parse(s: &str) -> Result<Acl, TreeError> {
        let bad = |why: String| TreeError::BadRequest {
            reason: format!("acl {s:?}: {why}"),
        };
        let mut acl = Acl::new();
        if s.is_empty() {
            return Ok(acl);
        }
        for entry in s.split('&') {
            let (cmd, ids) = entry
                .split_once('=')
                .ok_or_else(|| bad(format!("entry {entry:?} has no '='")))?;
            let cmd =
                AclCommand::parse(cmd).ok_or_else(|| bad(format!("unknown command {cmd:?}")))?;
            for id in ids.split('+') {
                check_server_id(id).map_err(|why| bad(format!("server id {id:?}: {why}")))?;
                acl.grant(cmd, id);
            }
        }
        Ok(acl)
    }

    /// An ACL granting every listed command to `server_id`.
    pub fn granting(commands: &[AclCommand], server_id: &str) -> Acl {
        let mut acl = Acl::new();
        for c in commands {
            acl.grant(*c, server_id);
        }
        acl
    }

    /// Whether no command is listed (the node inherits).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `command` is granted to `server_id` (`*` grants everyone).
    pub fn allows(&self, command: AclCommand, server_id: &str) -> bool {
        self.entries
            .get(&command)
            .is_some_and(|ids| ids.iter().any(|id| id == ANY_SERVER || id == server_id))
    }

    /// Whether `command` is granted to every server (`*`).
    pub fn grants_any(&self, command: AclCommand) -> bool {
        self.ids(command).iter().any(|id| id == ANY_SERVER)
    }

    /// The ids `command` is granted to.
    pub fn ids(&self, command: AclCommand) -> &[String] {
        self.entries.get(&command).map_or(&[], Vec::as_slice)
    }

    /// Grants `command` to `server_id` (no-op if already granted).
    pub fn grant(&mut self, command: AclCommand, server_id: &str) {
        let ids = self.entries.entry(command).or_default();
        if !ids.iter().any(|id| id == server_id) {
            ids.push(server_id.to_owned());
        }
    }

    /// Removes `server_id` from every command; commands left without ids
    /// disappear. Returns the commands that became empty.
    pub fn remove_server(&mut self, server_id: &str) -> Vec<AclCommand> {
        let mut emptied = Vec::new();
        self.entries.retain(|cmd, ids| {
            let before = ids.len();
            ids.retain(|id| id != server_id);
            if ids.is_empty() && before > 0 {
                emptied.push(*cmd);
                false
            } else {
                true
            }
        });
        emptied
    }

    /// Replaces the ids of `command` (an empty list removes the command).
    pub fn set(&mut self, command: AclCommand, ids: Vec<String>) {
        if ids.is_empty() {
            self.entries.remove(&command);
        } else {
            self.entries.insert(command, ids);
        }
    }
}

/// Server ids: printable, no whitespace, none of `= & * +` (`*` alone is the
/// wildcard).
fn check_server_id(id: &str) -> Result<(), &'static str> {
    if id == ANY_SERVER {
        Ok(())
    } else if id.is_empty() {
        Err("empty")
    } else if id
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "=&*+".contains(c))
    {
        Err("contains whitespace or one of = & * +")
    } else {
        Ok(())
    }
}

impl fmt::Display for Acl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (cmd, ids)) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str("&")?;
            }
            write!(f, "{cmd}=")?;
            for (j, id) in ids.iter().enumerate() {
                if j > 0 {
                    f.write_str("+")?;
                }
                f.write_str(id)?;
            }
        }
        Ok(())
    }
}

impl FromStr for Acl {
    type Err = TreeError;

    fn from_str(s: &str) -> Result<Acl, TreeError> {
        Acl::parse(s)
    }
}

impl Serialize for Acl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Acl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Acl, D::Error> {
        let s = String::deserialize(d)?;
        Acl::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_format() {
        let acl = Acl::parse("Add=srvA&Delete=srvA&Replace=srvA+srvB&Get=*").unwrap();
        assert_eq!(
            acl.to_string(),
            "Add=srvA&Delete=srvA&Get=*&Replace=srvA+srvB"
        );
        assert!(acl.allows(AclCommand::Get, "anyone"));
        assert!(acl.allows(AclCommand::Replace, "srvB"));
        assert!(!acl.allows(AclCommand::Add, "srvB"));
        assert!(!acl.allows(AclCommand::Exec, "srvA"));
        assert_eq!(Acl::parse("").unwrap(), Acl::new());
        assert_eq!(Acl::parse("Get=a&Get=b+a").unwrap().to_string(), "Get=a+b");
    }

    #[test]
    fn star_wins() {
        let acl = Acl::parse("Get=a+*").unwrap();
        assert!(acl.allows(AclCommand::Get, "zzz"));
    }

    #[test]
    fn malformed() {
        for bad in [
            "Get", "Get=", "Copy=a", "Get=a&", "Get=a b", "Get=a++b", "get=a", "Get=a*",
        ] {
            assert_eq!(Acl::parse(bad).unwrap_err().status().0, 400, "{bad}");
        }
    }

    #[test]
    fn remove_server() {
        let mut acl = Acl::parse("Add=a&Get=a+b").unwrap();
        assert_eq!(acl.remove_server("a"), vec![AclCommand::Add]);
        assert_eq!(acl.to_string(), "Get=b");
        assert_eq!(acl.remove_server("b"), vec![AclCommand::Get]);
        assert!(acl.is_empty());
    }
}
