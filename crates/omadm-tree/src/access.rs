//! DDF AccessType: which commands a node supports at all, independent of
//! its ACL (`DM_TND` §8.7.1). A command outside the AccessType is 405.

use std::fmt;
use std::ops::{BitOr, BitOrAssign};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::TreeError;

/// A set of the DDF AccessType commands: Add, Copy, Delete, Exec, Get,
/// Replace. Prints as `Add+Get` (`-` when empty).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AccessType(u8);

const NAMES: [(AccessType, &str); 6] = [
    (AccessType::ADD, "Add"),
    (AccessType::COPY, "Copy"),
    (AccessType::DELETE, "Delete"),
    (AccessType::EXEC, "Exec"),
    (AccessType::GET, "Get"),
    (AccessType::REPLACE, "Replace"),
];

impl AccessType {
    /// No command.
    pub const NONE: AccessType = AccessType(0);
    /// `Add`: the node may be created by a server.
    pub const ADD: AccessType = AccessType(1);
    /// `Copy`: the node may be the source of a Copy.
    pub const COPY: AccessType = AccessType(2);
    /// `Delete`: the node may be deleted when addressed directly.
    pub const DELETE: AccessType = AccessType(4);
    /// `Exec`: the node may be executed.
    pub const EXEC: AccessType = AccessType(8);
    /// `Get`: the node may be read.
    pub const GET: AccessType = AccessType(16);
    /// `Replace`: the node's value and properties may be replaced.
    pub const REPLACE: AccessType = AccessType(32);
    /// Every command: what nodes outside any registered schema get.
    pub const ALL: AccessType = AccessType(63);
    /// `Get` and `Replace`: a configurable leaf.
    pub const GET_REPLACE: AccessType = AccessType(16 | 32);
    /// `Add`, `Delete`, `Get`, `Replace`: a dynamic server-managed node.
    pub const DYNAMIC: AccessType = AccessType(1 | 4 | 16 | 32);

    /// Whether every command of `other` is in `self`.
    pub fn contains(self, other: AccessType) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no command is in the set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl BitOr for AccessType {
    type Output = AccessType;

    fn bitor(self, rhs: AccessType) -> AccessType {
        AccessType(self.0 | rhs.0)
    }
}

impl BitOrAssign for AccessType {
    fn bitor_assign(&mut self, rhs: AccessType) {
        self.0 |= rhs.0;
    }
}

impl fmt::Display for AccessType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("-");
        }
        let mut first = true;
        for (bit, name) in NAMES {
            if self.contains(bit) {
                if !first {
                    f.write_str("+")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for AccessType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccessType({self})")
    }
}

impl FromStr for AccessType {
    type Err = TreeError;

    fn from_str(s: &str) -> Result<AccessType, TreeError> {
        let mut at = AccessType::NONE;
        if s == "-" {
            return Ok(at);
        }
        for name in s.split('+') {
            let (bit, _) =
                NAMES
                    .iter()
                    .find(|(_, n)| *n == name)
                    .ok_or_else(|| TreeError::BadRequest {
                        reason: format!("unknown access type {name:?}"),
                    })?;
            at |= *bit;
        }
        Ok(at)
    }
}

impl Serialize for AccessType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AccessType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<AccessType, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip() {
        for at in [
            AccessType::NONE,
            AccessType::ALL,
            AccessType::GET,
            AccessType::DYNAMIC,
        ] {
            assert_eq!(at.to_string().parse::<AccessType>().unwrap(), at);
        }
        assert_eq!(AccessType::DYNAMIC.to_string(), "Add+Delete+Get+Replace");
        assert!(AccessType::ALL.contains(AccessType::EXEC | AccessType::COPY));
        assert!(!AccessType::GET.contains(AccessType::REPLACE));
        assert!("Get+Frob".parse::<AccessType>().is_err());
    }
}
