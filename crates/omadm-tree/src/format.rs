//! Node formats (`DM_TND` §7.3 Format property, DDF `DFFormat`; MetInf
//! `Format`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::TreeError;

/// The format of a node's value. Interior nodes are always [`Format::Node`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    /// Base64 text (over the wire). Values written with Format `b64` are
    /// decoded and stored as [`Format::Bin`] (digest §12.2).
    B64,
    /// Raw bytes.
    Bin,
    /// `true` / `false`.
    Bool,
    /// Character data (the default).
    #[default]
    Chr,
    /// Signed 32-bit decimal.
    Int,
    /// Interior node.
    Node,
    /// No value (e.g. SCOMO primitive leaves).
    Null,
    /// XML text.
    Xml,
    /// ISO 8601 date.
    Date,
    /// ISO 8601 time.
    Time,
    /// XML Schema float.
    Float,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 11] = [
        Format::B64,
        Format::Bin,
        Format::Bool,
        Format::Chr,
        Format::Int,
        Format::Node,
        Format::Null,
        Format::Xml,
        Format::Date,
        Format::Time,
        Format::Float,
    ];

    /// The name MetInf and DDF use.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::B64 => "b64",
            Format::Bin => "bin",
            Format::Bool => "bool",
            Format::Chr => "chr",
            Format::Int => "int",
            Format::Node => "node",
            Format::Null => "null",
            Format::Xml => "xml",
            Format::Date => "date",
            Format::Time => "time",
            Format::Float => "float",
        }
    }

    /// Parses a format name (trimmed, ASCII case-insensitive).
    pub fn parse(s: &str) -> Option<Format> {
        let s = s.trim();
        Format::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(s))
    }

    /// Whether values of this format are bytes rather than text.
    pub fn is_binary(self) -> bool {
        matches!(self, Format::B64 | Format::Bin)
    }

    /// The format a value is stored with: `b64` becomes `bin` (the bytes
    /// were decoded on the way in).
    pub fn stored(self) -> Format {
        if self == Format::B64 {
            Format::Bin
        } else {
            self
        }
    }

    /// Whether a leaf of format `self` may take a value sent as `other`
    /// (`b64` and `bin` are the same value in two encodings).
    pub fn compatible(self, other: Format) -> bool {
        self.stored() == other.stored()
    }

    /// Checks that `value` is a valid value of this format. Failure is 415.
    pub fn validate(self, value: &[u8]) -> Result<(), TreeError> {
        let bad = |why: &str| {
            Err(TreeError::UnsupportedFormat {
                reason: format!("{why} for format {self}"),
            })
        };
        if self.is_binary() {
            return Ok(());
        }
        if self == Format::Node {
            return if value.is_empty() {
                Ok(())
            } else {
                bad("a value")
            };
        }
        let Ok(text) = std::str::from_utf8(value) else {
            return bad("non-UTF-8 value");
        };
        let ok = match self {
            Format::Null => text.is_empty(),
            Format::Bool => text == "true" || text == "false",
            Format::Int => text.parse::<i32>().is_ok(),
            Format::Float => text.parse::<f32>().is_ok(),
            Format::Date => {
                !text.is_empty() && text.chars().all(|c| c.is_ascii_digit() || c == '-')
            }
            Format::Time => {
                !text.is_empty()
                    && text
                        .chars()
                        .all(|c| c.is_ascii_digit() || ":.+-TZ".contains(c))
            }
            Format::Chr | Format::Xml | Format::B64 | Format::Bin | Format::Node => true,
        };
        if ok {
            Ok(())
        } else {
            bad(&format!("value {text:?} is not valid"))
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = TreeError;

    fn from_str(s: &str) -> Result<Format, TreeError> {
        Format::parse(s).ok_or_else(|| TreeError::UnsupportedFormat {
            reason: format!("unknown format {s:?}"),
        })
    }
}

impl Serialize for Format {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Format {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Format, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in Format::ALL {
            assert_eq!(Format::parse(f.as_str()), Some(f));
        }
        assert_eq!(Format::parse(" B64 "), Some(Format::B64));
        assert_eq!(Format::parse("string"), None);
        assert_eq!(Format::B64.stored(), Format::Bin);
        assert!(Format::Bin.compatible(Format::B64));
        assert!(!Format::Chr.compatible(Format::Int));
    }

    #[test]
    fn validation() {
        let ok = |f: Format, v: &str| f.validate(v.as_bytes()).is_ok();
        assert!(ok(Format::Int, "-2147483648"));
        assert!(!ok(Format::Int, "2147483648"));
        assert!(!ok(Format::Int, "1.5"));
        assert!(ok(Format::Bool, "true"));
        assert!(!ok(Format::Bool, "yes"));
        assert!(ok(Format::Float, "1.5e3"));
        assert!(!ok(Format::Float, "x"));
        assert!(ok(Format::Null, ""));
        assert!(!ok(Format::Null, "x"));
        assert!(ok(Format::Date, "2001-07-11"));
        assert!(ok(Format::Time, "16:38:17Z"));
        assert!(!ok(Format::Date, "July"));
        assert!(Format::Chr.validate(&[0xff]).is_err());
        assert!(Format::Bin.validate(&[0xff]).is_ok());
        assert_eq!(Format::Int.validate(b"x").unwrap_err().status().0, 415);
    }
}
