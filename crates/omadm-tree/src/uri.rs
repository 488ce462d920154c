//! Device URIs (`OMA-TS-DM_TND-V1_2` §6, digest §12.1) and the `?prop=` /
//! `?list=` target suffixes (§7, §8.4).
//!
//! ```text
//!  "./SCOMO/Download/P1?prop=ACL"
//!   └────── Uri ───────┘└ Query ┘      = Target
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::TreeError;

/// A validated device URI: the root `.` and a list of node names.
///
/// `./A/B` and `A/B` parse to the same value; it prints as `./A/B` (the root
/// prints as `.`). Node names never contain `/` and are never empty, `.` or
/// `..`. Case is kept as written (names are case-sensitive here).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Uri {
    segments: Vec<String>,
}

impl Uri {
    /// The root node `.`.
    pub fn root() -> Uri {
        Uri {
            segments: Vec::new(),
        }
    }

    /// Parses a URI without query (`?`) suffix and without limits.
    pub fn parse(s: &str) -> Result<Uri, TreeError> {
        let bad = |reason| TreeError::MalformedUri {
            uri: s.to_owned(),
            reason,
        };
        if s == "." {
            return Ok(Uri::root());
        }
        let rest = s.strip_prefix("./").unwrap_or(s);
        if rest.is_empty() {
            return Err(bad("empty path"));
        }
        if rest.starts_with('/') {
            return Err(bad("absolute path"));
        }
        if rest.ends_with('/') {
            return Err(bad("trailing '/'"));
        }
        let mut segments = Vec::new();
        for seg in rest.split('/') {
            check_name(seg).map_err(bad)?;
            segments.push(seg.to_owned());
        }
        Ok(Uri { segments })
    }

    /// Builds a URI from node names, checking each one.
    pub fn from_segments<I, S>(names: I) -> Result<Uri, TreeError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut segments = Vec::new();
        for n in names {
            let n = n.into();
            check_name(&n).map_err(|reason| TreeError::MalformedUri {
                uri: n.clone(),
                reason,
            })?;
            segments.push(n);
        }
        Ok(Uri { segments })
    }

    /// The node names from the root down (empty for the root).
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// Number of names: 0 for the root, 2 for `./A/B`.
    pub fn depth(&self) -> usize {
        self.segments.len()
    }

    /// Whether this is the root `.`.
    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    /// The last node name (`None` for the root).
    pub fn name(&self) -> Option<&str> {
        self.segments.last().map(String::as_str)
    }

    /// The parent URI (`None` for the root).
    pub fn parent(&self) -> Option<Uri> {
        let (_, init) = self.segments.split_last()?;
        Some(Uri {
            segments: init.to_vec(),
        })
    }

    /// The child `name` of this node. Fails if `name` is not a valid node name.
    pub fn child(&self, name: &str) -> Result<Uri, TreeError> {
        check_name(name).map_err(|reason| TreeError::MalformedUri {
            uri: name.to_owned(),
            reason,
        })?;
        Ok(self.child_unchecked(name))
    }

    /// The descendant at the relative path `rel` (`A/B`), or `self` for `""`.
    pub fn join(&self, rel: &str) -> Result<Uri, TreeError> {
        if rel.is_empty() {
            return Ok(self.clone());
        }
        let rel = Uri::parse(rel)?;
        let mut segments = self.segments.clone();
        segments.extend(rel.segments);
        Ok(Uri { segments })
    }

    /// Whether `self` is `ancestor` or lies below it.
    pub fn starts_with(&self, ancestor: &Uri) -> bool {
        self.segments.starts_with(&ancestor.segments)
    }

    /// The names of `self` below `ancestor`, if it is one.
    pub fn strip_prefix(&self, ancestor: &Uri) -> Option<&[String]> {
        self.segments.strip_prefix(ancestor.segments.as_slice())
    }

    /// Checks this URI against the limits, given the length of the text it
    /// was parsed from.
    pub fn check_limits(&self, raw: &str, limits: &UriLimits) -> Result<(), TreeError> {
        let too_long = |limit, max| TreeError::UriTooLong {
            uri: raw.to_owned(),
            limit,
            max,
        };
        if limits.max_depth != 0 && self.depth() > limits.max_depth {
            return Err(too_long("MaxDepth", limits.max_depth));
        }
        if limits.max_tot_len != 0 && raw.chars().count() > limits.max_tot_len {
            return Err(too_long("MaxTotLen", limits.max_tot_len));
        }
        if limits.max_seg_len != 0
            && self
                .segments
                .iter()
                .any(|s| s.chars().count() > limits.max_seg_len)
        {
            return Err(too_long("MaxSegLen", limits.max_seg_len));
        }
        Ok(())
    }

    pub(crate) fn child_unchecked(&self, name: &str) -> Uri {
        let mut segments = self.segments.clone();
        segments.push(name.to_owned());
        Uri { segments }
    }

    pub(crate) fn with_name(&self, name: &str) -> Option<Uri> {
        let mut segments = self.segments.clone();
        *segments.last_mut()? = name.to_owned();
        Some(Uri { segments })
    }
}

/// Checks one node name (`DM_TND` §6: no `/`; we also refuse the `.`/`..`
/// segments, `?` which would start a query, and control characters).
pub(crate) fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("empty node name")
    } else if name == "." || name == ".." {
        Err("relative segment")
    } else if name.contains('/') {
        Err("'/' in node name")
    } else if name.contains('?') {
        Err("'?' in node name")
    } else if name.chars().any(char::is_control) {
        Err("control character in node name")
    } else {
        Ok(())
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(".")?;
        for s in &self.segments {
            f.write_str("/")?;
            f.write_str(s)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uri({self})")
    }
}

impl FromStr for Uri {
    type Err = TreeError;

    fn from_str(s: &str) -> Result<Uri, TreeError> {
        Uri::parse(s)
    }
}

impl Serialize for Uri {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Uri {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Uri, D::Error> {
        let s = String::deserialize(d)?;
        Uri::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Anything the device-side API accepts as a node path: `&str`, `String`
/// or [`Uri`] (and references to them).
pub trait ToUri {
    /// The parsed URI.
    fn to_uri(&self) -> Result<Uri, TreeError>;
}

impl ToUri for str {
    fn to_uri(&self) -> Result<Uri, TreeError> {
        Uri::parse(self)
    }
}

impl ToUri for String {
    fn to_uri(&self) -> Result<Uri, TreeError> {
        Uri::parse(self)
    }
}

impl ToUri for Uri {
    fn to_uri(&self) -> Result<Uri, TreeError> {
        Ok(self.clone())
    }
}

impl<T: ToUri + ?Sized> ToUri for &T {
    fn to_uri(&self) -> Result<Uri, TreeError> {
        (**self).to_uri()
    }
}

/// URI limits, as `./DevDetail/URI/MaxDepth`, `MaxTotLen` and `MaxSegLen`
/// report them (`DM_StdObj` §5.3). 0 means unlimited. Exceeding one is 414.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UriLimits {
    /// Most node names in a URI.
    pub max_depth: usize,
    /// Longest URI, in characters (the path part, without `?` suffix).
    pub max_tot_len: usize,
    /// Longest node name, in characters (also bounds the Name property).
    pub max_seg_len: usize,
}

impl UriLimits {
    /// Default `MaxDepth`: deep enough for SCOMO (`./SCOMO/Inventory/
    /// Delivered/<x>/Operations/InstallInactive` is 6) with room to spare.
    pub const DEFAULT_MAX_DEPTH: usize = 16;
    /// Default `MaxTotLen`.
    pub const DEFAULT_MAX_TOT_LEN: usize = 512;
    /// Default `MaxSegLen`.
    pub const DEFAULT_MAX_SEG_LEN: usize = 64;
    /// No limits at all.
    pub const UNLIMITED: UriLimits = UriLimits {
        max_depth: 0,
        max_tot_len: 0,
        max_seg_len: 0,
    };
}

impl Default for UriLimits {
    fn default() -> Self {
        UriLimits {
            max_depth: Self::DEFAULT_MAX_DEPTH,
            max_tot_len: Self::DEFAULT_MAX_TOT_LEN,
            max_seg_len: Self::DEFAULT_MAX_SEG_LEN,
        }
    }
}

/// A command target: a URI plus an optional `?prop=` or `?list=` suffix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The node.
    pub uri: Uri,
    /// The path part exactly as sent (without the `?` suffix), used to echo
    /// URIs back in Results.
    pub raw_path: String,
    /// The suffix, if any.
    pub query: Option<Query>,
}

impl Target {
    /// Parses a target LocURI and checks it against `limits`.
    ///
    /// Malformed → 400, over a limit → 414, unknown suffix, property or list
    /// attribute → 406.
    pub fn parse(s: &str, limits: &UriLimits) -> Result<Target, TreeError> {
        let (path, query) = match s.split_once('?') {
            Some((p, q)) => (p, Some(Query::parse(q)?)),
            None => (s, None),
        };
        let uri = Uri::parse(path)?;
        uri.check_limits(path, limits)?;
        Ok(Target {
            uri,
            raw_path: path.to_owned(),
            query,
        })
    }
}

/// What follows the `?` of a target URI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Query {
    /// `?prop=<Name>`: one property of the node.
    Prop(Property),
    /// `?list=<attr>`: a listing of the sub-tree.
    List(ListKind),
}

impl Query {
    fn parse(q: &str) -> Result<Query, TreeError> {
        if let Some(name) = q.strip_prefix("prop=") {
            Property::parse(name).map(Query::Prop)
        } else if let Some(attr) = q.strip_prefix("list=") {
            ListKind::parse(attr).map(Query::List)
        } else {
            Err(TreeError::NotSupported {
                feature: format!("uri suffix ?{q}"),
            })
        }
    }
}

/// A run-time node property (`DM_TND` §7, digest §12.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Property {
    /// `ACL`: access control list.
    Acl,
    /// `Format`: the value's format.
    Format,
    /// `Name`: the node name; Replace renames.
    Name,
    /// `Size`: leaf value length in bytes.
    Size,
    /// `Title`: human-readable name.
    Title,
    /// `TStamp`: time of last change.
    TStamp,
    /// `Type`: MIME type (leaf) or MO identifier (interior).
    Type,
    /// `VerNo`: 16-bit change counter.
    VerNo,
}

impl Property {
    /// Every property, in DDF order.
    pub const ALL: [Property; 8] = [
        Property::Acl,
        Property::Format,
        Property::Name,
        Property::Size,
        Property::Title,
        Property::TStamp,
        Property::Type,
        Property::VerNo,
    ];

    /// The property's name as URIs and DDF spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Property::Acl => "ACL",
            Property::Format => "Format",
            Property::Name => "Name",
            Property::Size => "Size",
            Property::Title => "Title",
            Property::TStamp => "TStamp",
            Property::Type => "Type",
            Property::VerNo => "VerNo",
        }
    }

    /// Parses a property name (ASCII case-insensitive: servers vary). An
    /// unknown name is 406.
    pub fn parse(name: &str) -> Result<Property, TreeError> {
        Property::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| TreeError::NotSupported {
                feature: format!("property {name:?}"),
            })
    }
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `?list=` attribute (`DM_TND` §8.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListKind {
    /// Structure only: one Results item per node.
    Struct,
    /// Structure and leaf values.
    StructData,
    /// One TNDS document with the selected properties.
    Tnds(TndsFields),
}

impl ListKind {
    fn parse(attr: &str) -> Result<ListKind, TreeError> {
        let unsupported = || TreeError::NotSupported {
            feature: format!("?list={attr}"),
        };
        if attr.eq_ignore_ascii_case("Struct") {
            return Ok(ListKind::Struct);
        }
        if attr.eq_ignore_ascii_case("StructData") {
            return Ok(ListKind::StructData);
        }
        let head = attr.get(..4).ok_or_else(unsupported)?;
        if !head.eq_ignore_ascii_case("TNDS") {
            return Err(unsupported());
        }
        let rest = attr.get(4..).unwrap_or("");
        TndsFields::parse_filter(rest)
            .map(ListKind::Tnds)
            .ok_or_else(unsupported)
    }
}

/// One field a TNDS listing can carry: a property or the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TndsField {
    /// A run-time property.
    Prop(Property),
    /// The leaf value (`<Value>`).
    Value,
}

/// The set of fields a `?list=TNDS` listing carries
/// (`?list=TNDS+ACL+Value` keeps only those, `?list=TNDS-Format` drops one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TndsFields(u16);

impl TndsFields {
    /// Every property and the value: what a plain `?list=TNDS` returns
    /// (UNCONFIRMED default; see the crate docs).
    pub const ALL: TndsFields = TndsFields(0x1FF);
    /// Nothing but the structure.
    pub const NONE: TndsFields = TndsFields(0);

    fn bit(field: TndsField) -> u16 {
        match field {
            TndsField::Prop(p) => 1 << (p as u16),
            TndsField::Value => 1 << 8,
        }
    }

    /// Whether the set holds `field`.
    pub fn contains(self, field: TndsField) -> bool {
        self.0 & Self::bit(field) != 0
    }

    /// The set with `field` added.
    pub fn with(self, field: TndsField) -> TndsFields {
        TndsFields(self.0 | Self::bit(field))
    }

    /// The set with `field` removed.
    pub fn without(self, field: TndsField) -> TndsFields {
        TndsFields(self.0 & !Self::bit(field))
    }

    /// Parses what follows `TNDS`: empty, `+A+B...` or `-A-B...` (no mixing).
    fn parse_filter(rest: &str) -> Option<TndsFields> {
        let Some(sign) = rest.chars().next() else {
            return Some(TndsFields::ALL);
        };
        let (mut set, add) = match sign {
            '+' => (TndsFields::NONE, true),
            '-' => (TndsFields::ALL, false),
            _ => return None,
        };
        for name in rest.get(1..)?.split(sign) {
            if name.contains(['+', '-']) {
                return None;
            }
            let field = if name.eq_ignore_ascii_case("Value") {
                TndsField::Value
            } else {
                TndsField::Prop(Property::parse(name).ok()?)
            };
            set = if add {
                set.with(field)
            } else {
                set.without(field)
            };
        }
        Some(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equivalent_forms() {
        assert_eq!(Uri::parse("./A/B").unwrap(), Uri::parse("A/B").unwrap());
        assert_eq!(Uri::parse("./A/B").unwrap().to_string(), "./A/B");
        assert_eq!(Uri::parse(".").unwrap(), Uri::root());
        assert_eq!(Uri::root().to_string(), ".");
    }

    #[test]
    fn malformed() {
        for bad in [
            "", "./", "A/", "/A", "A//B", "A/../B", "..", "./.", "A/./B", "A/\u{1}",
        ] {
            let e = Uri::parse(bad).unwrap_err();
            assert_eq!(e.status(), omadm_wire::StatusCode(400), "{bad:?}");
        }
    }

    #[test]
    fn limits() {
        let l = UriLimits {
            max_depth: 2,
            max_tot_len: 10,
            max_seg_len: 3,
        };
        let t = |s: &str| Target::parse(s, &l).map(|_| ()).map_err(|e| e.status().0);
        assert_eq!(t("./A/B"), Ok(()));
        assert_eq!(t("./A/B/C"), Err(414));
        assert_eq!(t("./ABCD"), Err(414));
        assert_eq!(t("./ABC/ABC"), Ok(()));
        assert_eq!(t("ABC/ABC/"), Err(400));
        assert_eq!(t("./ABC/ABCX"), Err(414));
        let l = UriLimits {
            max_depth: 0,
            max_tot_len: 5,
            max_seg_len: 0,
        };
        assert_eq!(Target::parse("./ABCD", &l).unwrap_err().status().0, 414);
    }

    #[test]
    fn queries() {
        let l = UriLimits::default();
        let t = Target::parse("./A?prop=ACL", &l).unwrap();
        assert_eq!(t.query, Some(Query::Prop(Property::Acl)));
        assert_eq!(t.raw_path, "./A");
        let t = Target::parse("A?list=Struct", &l).unwrap();
        assert_eq!(t.query, Some(Query::List(ListKind::Struct)));
        let t = Target::parse("A?list=TNDS+ACL+Value", &l).unwrap();
        let Some(Query::List(ListKind::Tnds(f))) = t.query else {
            panic!()
        };
        assert!(f.contains(TndsField::Value));
        assert!(f.contains(TndsField::Prop(Property::Acl)));
        assert!(!f.contains(TndsField::Prop(Property::Format)));
        let t = Target::parse("A?list=TNDS-Format-VerNo", &l).unwrap();
        let Some(Query::List(ListKind::Tnds(f))) = t.query else {
            panic!()
        };
        assert!(f.contains(TndsField::Value));
        assert!(!f.contains(TndsField::Prop(Property::Format)));
        assert!(!f.contains(TndsField::Prop(Property::VerNo)));
        for bad in [
            "A?prop=Colour",
            "A?list=Tree",
            "A?list=TNDS+ACL-Value",
            "A?x=1",
            "A?list=TNDSx",
        ] {
            assert_eq!(Target::parse(bad, &l).unwrap_err().status().0, 406, "{bad}");
        }
    }

    #[test]
    fn navigation() {
        let u = Uri::parse("./A/B").unwrap();
        assert_eq!(u.parent().unwrap().to_string(), "./A");
        assert_eq!(u.name(), Some("B"));
        assert_eq!(u.child("C").unwrap().to_string(), "./A/B/C");
        assert!(u.child("C/D").is_err());
        assert_eq!(Uri::root().join("A/B").unwrap(), u);
        assert!(u.starts_with(&Uri::parse("A").unwrap()));
        assert!(!Uri::parse("AB")
            .unwrap()
            .starts_with(&Uri::parse("A").unwrap()));
        assert_eq!(u.with_name("X").unwrap().to_string(), "./A/X");
        assert_eq!(Uri::root().parent(), None);
    }
}
