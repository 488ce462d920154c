//! Nodes: interior or leaf, with their run-time properties (`DM_TND` §6–7).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::access::AccessType;
use crate::acl::Acl;
use crate::format::Format;

/// The default MIME type of a leaf (MetInf default).
pub const DEFAULT_LEAF_TYPE: &str = "text/plain";

/// One node of the management tree.
///
/// The node's Name property is its key in the parent; Size is the length of
/// its value. Everything else is held here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub(crate) props: Props,
    pub(crate) content: Content,
}

/// The properties of a node other than Name and Size, and the device-side
/// attributes (permanent, AccessType).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Props {
    pub(crate) format: Format,
    /// Type property: MIME type of a leaf, MO identifier of an interior
    /// node (may be empty).
    #[serde(rename = "type")]
    pub(crate) mime: String,
    pub(crate) acl: Acl,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tstamp: Option<u64>,
    pub(crate) verno: u16,
    pub(crate) permanent: bool,
    pub(crate) access: AccessType,
}

impl Props {
    pub(crate) fn touch(&mut self, now: Option<u64>) {
        self.verno = self.verno.wrapping_add(1);
        if now.is_some() {
            self.tstamp = now;
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Content {
    Leaf(#[serde(with = "crate::bytes")] Vec<u8>),
    Interior(BTreeMap<String, Node>),
}

impl Node {
    pub(crate) fn interior(mime: String) -> Node {
        Node {
            props: Props {
                format: Format::Node,
                mime,
                acl: Acl::new(),
                title: None,
                tstamp: None,
                verno: 0,
                permanent: false,
                access: AccessType::ALL,
            },
            content: Content::Interior(BTreeMap::new()),
        }
    }

    pub(crate) fn leaf(value: Vec<u8>, format: Format, mime: String) -> Node {
        Node {
            props: Props {
                format: format.stored(),
                mime,
                acl: Acl::new(),
                title: None,
                tstamp: None,
                verno: 0,
                permanent: false,
                access: AccessType::ALL,
            },
            content: Content::Leaf(value),
        }
    }

    /// Whether this is a leaf.
    pub fn is_leaf(&self) -> bool {
        matches!(self.content, Content::Leaf(_))
    }

    /// Whether this is an interior node.
    pub fn is_interior(&self) -> bool {
        !self.is_leaf()
    }

    /// The Format property (`node` for interior nodes).
    pub fn format(&self) -> Format {
        self.props.format
    }

    /// The leaf's value (`None` for interior nodes).
    pub fn value(&self) -> Option<&[u8]> {
        match &self.content {
            Content::Leaf(v) => Some(v),
            Content::Interior(_) => None,
        }
    }

    /// The leaf's value as UTF-8 text, if it is a leaf and the value is text.
    pub fn value_str(&self) -> Option<&str> {
        self.value().and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The Size property: the leaf value's length (`None` for interior nodes).
    pub fn size(&self) -> Option<usize> {
        self.value().map(<[u8]>::len)
    }

    /// The Type property: the leaf's MIME type or the interior node's MO
    /// identifier (possibly empty).
    pub fn mime_type(&self) -> &str {
        &self.props.mime
    }

    /// The node's own ACL (empty = inherited).
    pub fn acl(&self) -> &Acl {
        &self.props.acl
    }

    /// The Title property.
    pub fn title(&self) -> Option<&str> {
        self.props.title.as_deref()
    }

    /// The TStamp property as unix seconds (`None` if never stamped).
    pub fn tstamp(&self) -> Option<u64> {
        self.props.tstamp
    }

    /// The VerNo property.
    pub fn verno(&self) -> u16 {
        self.props.verno
    }

    /// Whether the node is permanent (a server can neither delete nor rename
    /// it).
    pub fn is_permanent(&self) -> bool {
        self.props.permanent
    }

    /// The commands the node supports at all.
    pub fn access_type(&self) -> AccessType {
        self.props.access
    }

    /// The children, in name order (empty for leaves).
    pub fn children(&self) -> impl Iterator<Item = (&str, &Node)> {
        let map = match &self.content {
            Content::Interior(m) => Some(m),
            Content::Leaf(_) => None,
        };
        map.into_iter()
            .flat_map(|m| m.iter().map(|(k, v)| (k.as_str(), v)))
    }

    /// The child called `name`.
    pub fn child(&self, name: &str) -> Option<&Node> {
        match &self.content {
            Content::Interior(m) => m.get(name),
            Content::Leaf(_) => None,
        }
    }

    pub(crate) fn children_map(&self) -> Option<&BTreeMap<String, Node>> {
        match &self.content {
            Content::Interior(m) => Some(m),
            Content::Leaf(_) => None,
        }
    }

    pub(crate) fn children_map_mut(&mut self) -> Option<&mut BTreeMap<String, Node>> {
        match &mut self.content {
            Content::Interior(m) => Some(m),
            Content::Leaf(_) => None,
        }
    }

    /// Number of nodes in this sub-tree, this one included.
    pub fn count(&self) -> usize {
        1 + self.children().map(|(_, c)| c.count()).sum::<usize>()
    }

    /// Whether this node or a descendant is permanent.
    pub(crate) fn has_permanent(&self) -> bool {
        self.props.permanent || self.children().any(|(_, c)| c.has_permanent())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_and_interior() {
        let l = Node::leaf(b"x".to_vec(), Format::B64, DEFAULT_LEAF_TYPE.into());
        assert!(l.is_leaf());
        assert_eq!(l.format(), Format::Bin);
        assert_eq!(l.size(), Some(1));
        assert_eq!(l.children().count(), 0);
        let mut i = Node::interior(String::new());
        i.children_map_mut().unwrap().insert("a".into(), l);
        assert_eq!(i.count(), 2);
        assert_eq!(i.size(), None);
        assert_eq!(i.children().map(|(n, _)| n).collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn verno_wraps() {
        let mut p = Node::interior(String::new()).props;
        p.verno = u16::MAX;
        p.touch(Some(5));
        assert_eq!(p.verno, 0);
        assert_eq!(p.tstamp, Some(5));
        p.touch(None);
        assert_eq!(p.tstamp, Some(5));
    }
}
