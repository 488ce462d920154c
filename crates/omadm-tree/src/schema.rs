//! Management object schemas: what a DDF says about the nodes of one MO,
//! reduced to what the tree enforces.
//!
//! A [`MoSchema`] is rooted at a URI (e.g. `./SCOMO`) and lists node
//! patterns relative to that root, where `*` or any `<...>` segment stands
//! for one dynamic node name (`Download/<x>/PkgID`). A node that matches a
//! pattern gets that pattern's AccessType, Format, default ACL and Type when
//! it is created (by the server or by the device).
//!
//! Inside a registered subtree, a server Add of a node that matches **no**
//! pattern is refused with 405: the MO does not define such a node, so the
//! device does not support adding it. (A device-side creation of such a node
//! is allowed and gets the defaults of an unschema'd node.)

use serde::{Deserialize, Serialize};

use crate::access::AccessType;
use crate::acl::Acl;
use crate::error::TreeError;
use crate::format::Format;
use crate::uri::{check_name, Uri};

/// What a schema says about the nodes matching one pattern.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// Pattern relative to the schema root (`""` is the root itself).
    pub pattern: String,
    /// Commands the node supports (405 for others).
    pub access: AccessType,
    /// Format of the node (`node` for interior nodes). A server Add or
    /// Replace must use it (415 otherwise); `b64` and `bin` are equivalent.
    pub format: Format,
    /// ACL given to a new node (`None`: empty, inherited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<Acl>,
    /// Type property of a new node (`None`: `text/plain` for leaves, empty
    /// for interior nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime: Option<String>,
    /// Whether nodes the device creates here are permanent. Nodes a server
    /// adds are never permanent.
    #[serde(default)]
    pub permanent: bool,
}

impl NodeSpec {
    /// A spec for nodes matching `pattern`.
    pub fn new(pattern: impl Into<String>, format: Format, access: AccessType) -> NodeSpec {
        NodeSpec {
            pattern: pattern.into(),
            access,
            format: format.stored(),
            acl: None,
            mime: None,
            permanent: false,
        }
    }

    /// An interior node spec.
    pub fn interior(pattern: impl Into<String>, access: AccessType) -> NodeSpec {
        NodeSpec::new(pattern, Format::Node, access)
    }

    /// Sets the default ACL.
    pub fn acl(mut self, acl: Acl) -> NodeSpec {
        self.acl = Some(acl);
        self
    }

    /// Sets the Type property (MIME type, or MO identifier for interior
    /// nodes).
    pub fn mime(mut self, mime: impl Into<String>) -> NodeSpec {
        self.mime = Some(mime.into());
        self
    }

    /// Marks device-created nodes here as permanent.
    pub fn permanent(mut self) -> NodeSpec {
        self.permanent = true;
        self
    }
}

/// The schema of one management object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoSchema {
    /// Where the MO is rooted (`./SCOMO`).
    pub root: String,
    /// The node specs.
    pub nodes: Vec<NodeSpec>,
}

impl MoSchema {
    /// An empty schema rooted at `root`.
    pub fn new(root: impl Into<String>) -> MoSchema {
        MoSchema {
            root: root.into(),
            nodes: Vec::new(),
        }
    }

    /// Adds a node spec.
    pub fn node(mut self, spec: NodeSpec) -> MoSchema {
        self.nodes.push(spec);
        self
    }

    /// Adds a leaf spec.
    pub fn leaf(self, pattern: &str, format: Format, access: AccessType) -> MoSchema {
        self.node(NodeSpec::new(pattern, format, access))
    }

    /// Adds an interior node spec.
    pub fn interior(self, pattern: &str, access: AccessType) -> MoSchema {
        self.node(NodeSpec::interior(pattern, access))
    }

    pub(crate) fn compile(self) -> Result<CompiledSchema, TreeError> {
        let root = Uri::parse(&self.root)?;
        let mut patterns = Vec::with_capacity(self.nodes.len());
        for spec in &self.nodes {
            patterns.push(parse_pattern(&spec.pattern)?);
        }
        Ok(CompiledSchema {
            root,
            patterns,
            schema: self,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Seg {
    Lit(String),
    Any,
}

fn parse_pattern(p: &str) -> Result<Vec<Seg>, TreeError> {
    let p = p.strip_prefix("./").unwrap_or(p);
    if p.is_empty() || p == "." {
        return Ok(Vec::new());
    }
    p.split('/')
        .map(|s| {
            if s == "*" || (s.starts_with('<') && s.ends_with('>')) {
                Ok(Seg::Any)
            } else {
                check_name(s)
                    .map(|()| Seg::Lit(s.to_owned()))
                    .map_err(|reason| TreeError::MalformedUri {
                        uri: p.to_owned(),
                        reason,
                    })
            }
        })
        .collect()
}

/// A registered schema with its patterns parsed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CompiledSchema {
    pub(crate) root: Uri,
    patterns: Vec<Vec<Seg>>,
    pub(crate) schema: MoSchema,
}

impl CompiledSchema {
    /// The spec of the best-matching pattern for `rel` (names below the
    /// root): most literal segments wins, then the first registered.
    fn lookup(&self, rel: &[String]) -> Option<&NodeSpec> {
        let mut best: Option<(usize, &NodeSpec)> = None;
        for (pat, spec) in self.patterns.iter().zip(&self.schema.nodes) {
            if pat.len() != rel.len() {
                continue;
            }
            let mut literals = 0;
            let matches = pat.iter().zip(rel).all(|(seg, name)| match seg {
                Seg::Any => true,
                Seg::Lit(l) => {
                    literals += 1;
                    l == name
                }
            });
            if matches && best.is_none_or(|(b, _)| literals > b) {
                best = Some((literals, spec));
            }
        }
        best.map(|(_, s)| s)
    }
}

/// Where a path stands with respect to the registered schemas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemaMatch<'a> {
    /// Outside every registered MO: defaults apply.
    Outside,
    /// Inside an MO, matching this spec.
    Spec(&'a NodeSpec),
    /// Inside an MO but matching no pattern.
    Unknown,
}

impl<'a> SchemaMatch<'a> {
    /// The matching spec, if any.
    pub fn spec(self) -> Option<&'a NodeSpec> {
        match self {
            SchemaMatch::Spec(s) => Some(s),
            SchemaMatch::Outside | SchemaMatch::Unknown => None,
        }
    }
}

/// Finds how `path` relates to the schemas: the deepest schema root that
/// contains it decides.
pub(crate) fn lookup<'a>(
    schemas: &'a [std::sync::Arc<CompiledSchema>],
    path: &Uri,
) -> SchemaMatch<'a> {
    let Some(schema) = schemas
        .iter()
        .filter(|s| path.starts_with(&s.root))
        .max_by_key(|s| s.root.depth())
    else {
        return SchemaMatch::Outside;
    };
    let rel = path.strip_prefix(&schema.root).unwrap_or_default();
    match schema.lookup(rel) {
        Some(spec) => SchemaMatch::Spec(spec),
        None => SchemaMatch::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schemas() -> Vec<std::sync::Arc<CompiledSchema>> {
        vec![std::sync::Arc::new(
            MoSchema::new("./SCOMO")
                .interior("", AccessType::GET)
                .interior("Download", AccessType::GET)
                .interior("Download/<x>", AccessType::DYNAMIC)
                .leaf("Download/*/PkgID", Format::Chr, AccessType::GET_REPLACE)
                .leaf("Download/*/Status", Format::Int, AccessType::GET)
                .leaf("Download/Special/Status", Format::Chr, AccessType::GET)
                .compile()
                .unwrap(),
        )]
    }

    #[test]
    fn matching() {
        let s = schemas();
        let at = |p: &str| lookup(&s, &Uri::parse(p).unwrap());
        assert_eq!(at("./Other"), SchemaMatch::Outside);
        assert_eq!(at("./SCOMO").spec().unwrap().access, AccessType::GET);
        assert_eq!(
            at("./SCOMO/Download/P1").spec().unwrap().access,
            AccessType::DYNAMIC
        );
        assert_eq!(
            at("./SCOMO/Download/P1/PkgID").spec().unwrap().format,
            Format::Chr
        );
        assert_eq!(
            at("./SCOMO/Download/P1/Status").spec().unwrap().format,
            Format::Int
        );
        assert_eq!(
            at("./SCOMO/Download/Special/Status").spec().unwrap().format,
            Format::Chr
        );
        assert_eq!(at("./SCOMO/Download/P1/Frob"), SchemaMatch::Unknown);
        assert_eq!(at("./SCOMOX"), SchemaMatch::Outside);
    }

    #[test]
    fn bad_pattern() {
        assert!(MoSchema::new("./X")
            .leaf("a//b", Format::Chr, AccessType::GET)
            .compile()
            .is_err());
        assert!(MoSchema::new("X/").compile().is_err());
    }
}
