//! Tree and Description Serialization (`OMA-TS-DM_TNDS-V1_2`, digest
//! §12.5): a sub-tree as a DDF `MgmtTree` document.
//!
//! ```xml
//! <MgmtTree xmlns="syncml:dmddf1.2"><VerDTD>1.2</VerDTD>
//!   <Node><NodeName>A</NodeName><Path>.</Path>
//!     <RTProperties><Format><node/></Format><Type><DDFName>urn:x</DDFName></Type></RTProperties>
//!     <Node><NodeName>L</NodeName><RTProperties>…</RTProperties><Value>v</Value></Node>
//!   </Node>
//! </MgmtTree>
//! ```
//!
//! [`TndsDoc`] is the parsed document (also useful to a server reading a
//! device's `?list=TNDS` answer); [`Tree::tnds`] serializes a sub-tree.
//! Following TNDS §9.2.1, the RTProperties written are ACL, Format, Title,
//! TStamp, Type and VerNo (Name and Size are not valid in a TNDS file).
//! Binary leaves are written with Format `b64` and a base64 `Value`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use quick_xml::events::Event;
use quick_xml::Reader;

use crate::acl::AclCommand;
use crate::error::TreeError;
use crate::format::Format;
use crate::node::Node;
use crate::time::format_tstamp;
use crate::tree::Tree;
use crate::uri::{Property, TndsField, TndsFields, Uri};

/// MIME type of a TNDS document in XML.
pub const TNDS_XML_TYPE: &str = "application/vnd.syncml.dmtnds+xml";
/// MIME type of a TNDS document in WBXML.
pub const TNDS_WBXML_TYPE: &str = "application/vnd.syncml.dmtnds+wbxml";
/// The DDF namespace TNDS documents use.
pub const DDF_NAMESPACE: &str = "syncml:dmddf1.2";
/// Deepest element nesting a parsed TNDS document may have.
pub const TNDS_MAX_DEPTH: usize = 96;
/// Most elements a parsed TNDS document may have.
pub const TNDS_MAX_ELEMENTS: usize = 200_000;

/// A TNDS document: the top-level nodes of a `MgmtTree`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TndsDoc {
    /// Top-level nodes; each may carry a `Path` saying where it goes.
    pub nodes: Vec<TndsNode>,
}

/// One `<Node>` of a TNDS document.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TndsNode {
    /// `<NodeName>`.
    pub name: String,
    /// `<Path>`: where the node sits (the URI of its parent).
    pub path: Option<String>,
    /// `<RTProperties>`.
    pub props: TndsProps,
    /// `<Value>` (leaves).
    pub value: Option<String>,
    /// Child `<Node>`s (interior nodes).
    pub children: Vec<TndsNode>,
}

/// The `<RTProperties>` of a TNDS node, as text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TndsProps {
    /// `<ACL>`.
    pub acl: Option<String>,
    /// `<Format>`.
    pub format: Option<Format>,
    /// `<Title>`.
    pub title: Option<String>,
    /// `<TStamp>`.
    pub tstamp: Option<String>,
    /// `<Type><MIME>`.
    pub mime: Option<String>,
    /// `<Type><DDFName>`.
    pub ddf_name: Option<String>,
    /// `<VerNo>`.
    pub verno: Option<String>,
}

impl TndsNode {
    /// Whether the node describes an interior node: Format `node`, or no
    /// Format and either children or no Value (TNDS §9.2.3.1.5).
    pub fn is_interior(&self) -> bool {
        match self.props.format {
            Some(f) => f == Format::Node,
            None => !self.children.is_empty() || self.value.is_none(),
        }
    }

    /// The node's value decoded for its format: base64 for `b64`/`bin`.
    pub fn value_bytes(&self) -> Result<Vec<u8>, TreeError> {
        let v = self.value.as_deref().unwrap_or("");
        if self.props.format.is_some_and(Format::is_binary) {
            decode_b64(v)
        } else {
            Ok(v.as_bytes().to_vec())
        }
    }
}

pub(crate) fn decode_b64(text: &str) -> Result<Vec<u8>, TreeError> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD
        .decode(compact)
        .map_err(|e| TreeError::UnsupportedFormat {
            reason: format!("bad base64 value: {e}"),
        })
}

impl TndsDoc {
    /// Parses a TNDS document (XML; namespace prefixes are ignored).
    /// Malformed XML or a node without NodeName is 400, an unknown Format
    /// 415.
    pub fn parse(xml: &str) -> Result<TndsDoc, TreeError> {
        let root = parse_dom(xml).map_err(|reason| TreeError::BadRequest {
            reason: format!("tnds document: {reason}"),
        })?;
        if root.name != "MgmtTree" {
            return Err(TreeError::BadRequest {
                reason: format!("tnds document root is <{}>, not <MgmtTree>", root.name),
            });
        }
        let mut doc = TndsDoc::default();
        for el in root.elements() {
            if el.name == "Node" {
                doc.nodes.push(parse_node(el)?);
            }
        }
        Ok(doc)
    }

    /// Writes the document as a canonical XML fragment (no declaration, no
    /// whitespace, `xmlns` on `MgmtTree`).
    pub fn to_xml(&self) -> String {
        let mut w = String::new();
        w.push_str("<MgmtTree xmlns=\"");
        w.push_str(DDF_NAMESPACE);
        w.push_str("\"><VerDTD>1.2</VerDTD>");
        for n in &self.nodes {
            write_node(n, &mut w);
        }
        w.push_str("</MgmtTree>");
        w
    }
}

impl Tree {
    /// Serializes the sub-tree at `path` as a TNDS document carrying
    /// `fields`. With `server_id`, only nodes whose ACL grants that server
    /// Get are included (a node without Get is left out with its
    /// sub-tree), and values only for nodes whose AccessType has Get;
    /// without it, everything (device view).
    ///
    /// The top node is the target itself with `Path` = its parent's URI;
    /// for the root, its children are the top nodes with `Path` `.`.
    pub fn tnds(
        &self,
        path: &Uri,
        fields: TndsFields,
        server_id: Option<&str>,
    ) -> Result<TndsDoc, TreeError> {
        let node = self
            .node_at(path)
            .ok_or_else(|| TreeError::not_found(path))?;
        let mut doc = TndsDoc::default();
        match (path.name(), path.parent()) {
            (Some(name), Some(parent)) => {
                if let Some(mut n) = self.tnds_node(path, name, node, fields, server_id) {
                    n.path = Some(parent.to_string());
                    doc.nodes.push(n);
                }
            }
            _ => {
                for (name, child) in node.children() {
                    let cpath = path.child_unchecked(name);
                    if let Some(mut n) = self.tnds_node(&cpath, name, child, fields, server_id) {
                        n.path = Some(path.to_string());
                        doc.nodes.push(n);
                    }
                }
            }
        }
        Ok(doc)
    }

    fn tnds_node(
        &self,
        path: &Uri,
        name: &str,
        node: &Node,
        fields: TndsFields,
        server_id: Option<&str>,
    ) -> Option<TndsNode> {
        if let Some(id) = server_id {
            if !self
                .effective_acl_at(path)
                .is_some_and(|a| a.allows(AclCommand::Get, id))
            {
                return None;
            }
        }
        let has = |p| fields.contains(TndsField::Prop(p));
        let wire_format = if node.format() == Format::Bin {
            Format::B64
        } else {
            node.format()
        };
        let props = TndsProps {
            acl: (has(Property::Acl) && !node.acl().is_empty()).then(|| node.acl().to_string()),
            format: has(Property::Format).then_some(wire_format),
            title: if has(Property::Title) {
                node.title().map(str::to_owned)
            } else {
                None
            },
            tstamp: if has(Property::TStamp) {
                node.tstamp().map(format_tstamp)
            } else {
                None
            },
            mime: (has(Property::Type) && node.is_leaf()).then(|| node.mime_type().to_owned()),
            ddf_name: (has(Property::Type) && node.is_interior() && !node.mime_type().is_empty())
                .then(|| node.mime_type().to_owned()),
            verno: has(Property::VerNo).then(|| node.verno().to_string()),
        };
        let readable = server_id.is_none() || node.access_type().contains(crate::AccessType::GET);
        let value = match node.value() {
            Some(v) if fields.contains(TndsField::Value) && readable => {
                Some(if node.format().is_binary() {
                    STANDARD.encode(v)
                } else {
                    String::from_utf8_lossy(v).into_owned()
                })
            }
            _ => None,
        };
        let children = node
            .children()
            .filter_map(|(cname, child)| {
                self.tnds_node(
                    &path.child_unchecked(cname),
                    cname,
                    child,
                    fields,
                    server_id,
                )
            })
            .collect();
        Some(TndsNode {
            name: name.to_owned(),
            path: None,
            props,
            value,
            children,
        })
    }
}

// ---- parsing ------------------------------------------------------------------------

/// A minimal element tree; TNDS documents are small and fully buffered.
#[derive(Debug)]
struct El {
    name: String,
    children: Vec<XNode>,
}

#[derive(Debug)]
enum XNode {
    El(El),
    Text(String),
}

impl El {
    fn elements(&self) -> impl Iterator<Item = &El> {
        self.children.iter().filter_map(|c| match c {
            XNode::El(e) => Some(e),
            XNode::Text(_) => None,
        })
    }

    fn text(&self) -> String {
        self.children
            .iter()
            .filter_map(|c| match c {
                XNode::Text(t) => Some(t.as_str()),
                XNode::El(_) => None,
            })
            .collect()
    }
}

fn parse_dom(xml: &str) -> Result<El, String> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<El> = Vec::new();
    let mut root: Option<El> = None;
    let mut elements = 0usize;
    let local = |name: &[u8]| String::from_utf8(name.to_vec()).map_err(|e| e.to_string());
    loop {
        let event = reader.read_event().map_err(|e| e.to_string())?;
        let finished = match event {
            Event::Start(e) => {
                elements += 1;
                if stack.len() >= TNDS_MAX_DEPTH || elements > TNDS_MAX_ELEMENTS {
                    return Err("document too deep or too large".into());
                }
                stack.push(El {
                    name: local(e.local_name().as_ref())?,
                    children: Vec::new(),
                });
                None
            }
            Event::Empty(e) => {
                elements += 1;
                if elements > TNDS_MAX_ELEMENTS {
                    return Err("document too large".into());
                }
                Some(El {
                    name: local(e.local_name().as_ref())?,
                    children: Vec::new(),
                })
            }
            Event::End(_) => Some(stack.pop().ok_or("unbalanced end tag")?),
            Event::Text(t) => {
                let s = t.unescape().map_err(|e| e.to_string())?;
                push_text(&mut stack, &s)?;
                None
            }
            Event::CData(c) => {
                let s =
                    String::from_utf8(c.into_inner().into_owned()).map_err(|e| e.to_string())?;
                push_text(&mut stack, &s)?;
                None
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => None,
        };
        if let Some(el) = finished {
            match stack.last_mut() {
                Some(parent) => parent.children.push(XNode::El(el)),
                None if root.is_none() => root = Some(el),
                None => return Err("more than one root element".into()),
            }
        }
    }
    if !stack.is_empty() {
        return Err("unclosed element".into());
    }
    root.ok_or_else(|| "no root element".into())
}

fn push_text(stack: &mut [El], s: &str) -> Result<(), String> {
    match stack.last_mut() {
        Some(top) => {
            top.children.push(XNode::Text(s.to_owned()));
            Ok(())
        }
        None if s.trim().is_empty() => Ok(()),
        None => Err("text outside the root element".into()),
    }
}

fn parse_node(el: &El) -> Result<TndsNode, TreeError> {
    let mut node = TndsNode::default();
    let mut has_name = false;
    for c in el.elements() {
        match c.name.as_str() {
            "NodeName" => {
                node.name = c.text().trim().to_owned();
                has_name = true;
            }
            "Path" => node.path = Some(c.text().trim().to_owned()),
            "RTProperties" => node.props = parse_props(c)?,
            "Value" => node.value = Some(c.text()),
            "Node" => node.children.push(parse_node(c)?),
            // DFProperties and anything unknown: not run-time data.
            _ => {}
        }
    }
    if !has_name {
        return Err(TreeError::BadRequest {
            reason: "tnds node without <NodeName>".into(),
        });
    }
    Ok(node)
}

fn parse_props(el: &El) -> Result<TndsProps, TreeError> {
    let mut p = TndsProps::default();
    for c in el.elements() {
        match c.name.as_str() {
            "ACL" => p.acl = Some(c.text().trim().to_owned()),
            "Format" => {
                let name = c
                    .elements()
                    .next()
                    .map(|f| f.name.clone())
                    .unwrap_or_else(|| c.text());
                p.format = Some(name.parse()?);
            }
            "Title" => p.title = Some(c.text()),
            "TStamp" => p.tstamp = Some(c.text().trim().to_owned()),
            "Type" => {
                for t in c.elements() {
                    match t.name.as_str() {
                        "MIME" => p.mime = Some(t.text().trim().to_owned()),
                        "DDFName" => p.ddf_name = Some(t.text().trim().to_owned()),
                        _ => {}
                    }
                }
            }
            "VerNo" => p.verno = Some(c.text().trim().to_owned()),
            // Name and Size are not valid in TNDS files; ignore them.
            _ => {}
        }
    }
    Ok(p)
}

// ---- writing ------------------------------------------------------------------------

fn write_node(n: &TndsNode, w: &mut String) {
    w.push_str("<Node>");
    elem(w, "NodeName", &n.name);
    if let Some(p) = &n.path {
        elem(w, "Path", p);
    }
    let p = &n.props;
    let any_prop = p.acl.is_some()
        || p.format.is_some()
        || p.title.is_some()
        || p.tstamp.is_some()
        || p.mime.is_some()
        || p.ddf_name.is_some()
        || p.verno.is_some();
    if any_prop {
        w.push_str("<RTProperties>");
        if let Some(acl) = &p.acl {
            elem(w, "ACL", acl);
        }
        if let Some(f) = p.format {
            w.push_str("<Format><");
            w.push_str(f.as_str());
            w.push_str("/></Format>");
        }
        if let Some(t) = &p.title {
            elem(w, "Title", t);
        }
        if let Some(t) = &p.tstamp {
            elem(w, "TStamp", t);
        }
        if let Some(m) = &p.mime {
            w.push_str("<Type>");
            elem(w, "MIME", m);
            w.push_str("</Type>");
        } else if let Some(d) = &p.ddf_name {
            w.push_str("<Type>");
            elem(w, "DDFName", d);
            w.push_str("</Type>");
        }
        if let Some(v) = &p.verno {
            elem(w, "VerNo", v);
        }
        w.push_str("</RTProperties>");
    }
    if let Some(v) = &n.value {
        elem(w, "Value", v);
    }
    for c in &n.children {
        write_node(c, w);
    }
    w.push_str("</Node>");
}

fn elem(w: &mut String, name: &str, text: &str) {
    w.push('<');
    w.push_str(name);
    if text.is_empty() {
        w.push_str("/>");
        return;
    }
    w.push('>');
    escape_into(w, text);
    w.push_str("</");
    w.push_str(name);
    w.push('>');
}

fn escape_into(w: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => w.push_str("&amp;"),
            '<' => w.push_str("&lt;"),
            '>' => w.push_str("&gt;"),
            // Keep CR through a parse (XML normalises a literal CR away).
            '\r' => w.push_str("&#13;"),
            c => w.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::Acl;

    #[test]
    fn spec_example_parses() {
        let xml = r#"<MgmtTree xmlns='syncml:dmddf1.2'>
            <VerDTD>1.2</VerDTD>
            <Node>
              <NodeName>E-Mail</NodeName>
              <RTProperties ><Format><node/></Format>
                <Type><DDFName>com.operatorX.dm/1.0/EMail</DDFName></Type></RTProperties>
              <Node>
                <NodeName>POP3</NodeName>
                <Node>
                  <NodeName>POPServer</NodeName>
                  <RTProperties ><Format><chr/></Format><Type ><MIME>text/plain</MIME></Type></RTProperties >
                  <Value >mail.Operatorx.com</Value>
                </Node>
              </Node>
            </Node>
        </MgmtTree>"#;
        let doc = TndsDoc::parse(xml).unwrap();
        let email = &doc.nodes[0];
        assert_eq!(email.name, "E-Mail");
        assert!(email.is_interior());
        assert_eq!(
            email.props.ddf_name.as_deref(),
            Some("com.operatorX.dm/1.0/EMail")
        );
        let pop3 = &email.children[0];
        assert!(pop3.is_interior());
        let srv = &pop3.children[0];
        assert!(!srv.is_interior());
        assert_eq!(srv.value.as_deref(), Some("mail.Operatorx.com"));
        assert_eq!(srv.props.mime.as_deref(), Some("text/plain"));
    }

    #[test]
    fn malformed_documents() {
        for bad in [
            "",
            "<MgmtTree>",
            "<Other/>",
            "<MgmtTree><Node></Node></MgmtTree>",
            "<a/><b/>",
        ] {
            assert_eq!(TndsDoc::parse(bad).unwrap_err().status().0, 400, "{bad}");
        }
        let unknown = "<MgmtTree><Node><NodeName>a</NodeName><RTProperties><Format><str/></Format></RTProperties></Node></MgmtTree>";
        assert_eq!(TndsDoc::parse(unknown).unwrap_err().status().0, 415);
    }

    #[test]
    fn round_trip_through_xml() {
        let mut t = Tree::default();
        t.set_now(994_869_497);
        t.set_leaf("./A/Name", "a <b> & c\r\n", Format::Chr)
            .unwrap();
        t.set_leaf("./A/Bin", vec![0u8, 1, 255], Format::Bin)
            .unwrap();
        t.set_leaf("./A/Empty", "", Format::Chr).unwrap();
        t.ensure_interior("./A/Sub").unwrap();
        t.set_acl("./A", Acl::parse("Get=s1").unwrap()).unwrap();
        t.set_type("./A", "urn:x").unwrap();
        let doc = t
            .tnds(&Uri::parse("./A").unwrap(), TndsFields::ALL, None)
            .unwrap();
        let xml = doc.to_xml();
        assert!(xml.starts_with("<MgmtTree xmlns=\"syncml:dmddf1.2\"><VerDTD>1.2</VerDTD><Node><NodeName>A</NodeName><Path>.</Path><RTProperties><ACL>Get=s1</ACL><Format><node/></Format>"), "{xml}");
        assert!(xml.contains("<TStamp>20010711T163817Z</TStamp>"));
        let back = TndsDoc::parse(&xml).unwrap();
        assert_eq!(back, doc);
        let a = &back.nodes[0];
        let bin = a.children.iter().find(|n| n.name == "Bin").unwrap();
        assert_eq!(bin.props.format, Some(Format::B64));
        assert_eq!(bin.value_bytes().unwrap(), vec![0u8, 1, 255]);
        let name = a.children.iter().find(|n| n.name == "Name").unwrap();
        assert_eq!(name.value_bytes().unwrap(), b"a <b> & c\r\n");
        let sub = a.children.iter().find(|n| n.name == "Sub").unwrap();
        assert!(sub.is_interior());
    }

    #[test]
    fn filters_and_acl_pruning() {
        let mut t = Tree::default();
        t.set_leaf("./A/Open", "1", Format::Int).unwrap();
        t.set_leaf("./A/Closed/X", "2", Format::Chr).unwrap();
        t.set_acl("./A", Acl::parse("Get=s1").unwrap()).unwrap();
        t.set_acl("./A/Closed", Acl::parse("Get=s2").unwrap())
            .unwrap();
        let fields = TndsFields::NONE.with(TndsField::Value);
        let doc = t
            .tnds(&Uri::parse("./A").unwrap(), fields, Some("s1"))
            .unwrap();
        let xml = doc.to_xml();
        assert!(!xml.contains("Closed"), "{xml}");
        assert!(!xml.contains("RTProperties"), "{xml}");
        assert!(xml.contains("<Value>1</Value>"));
        let root = t.tnds(&Uri::root(), TndsFields::ALL, None).unwrap();
        assert_eq!(root.nodes[0].path.as_deref(), Some("."));
    }
}
