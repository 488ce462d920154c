//! A generic XML element tree, independent of the codec under test: the
//! libwbxml cross-check parses both sides into it, normalises and compares.
//!
//! Text is kept as bytes (libwbxml writes binary OPAQUE data raw into its
//! XML output), entities are resolved here rather than by quick-xml so that
//! bytes that are not UTF-8 survive, and CDATA is plain text.

use std::fmt::Write as _;

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

/// An element: its namespace (resolved, as written), local name and content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Element {
    pub(crate) ns: String,
    pub(crate) name: String,
    pub(crate) children: Vec<Node>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Node {
    Element(Element),
    Text(Vec<u8>),
}

impl Element {
    /// The first child element with this local name.
    pub(crate) fn child(&self, name: &str) -> Option<&Element> {
        self.elements().find(|e| e.name == name)
    }

    pub(crate) fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The element's text (all text children joined).
    pub(crate) fn text(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for n in &self.children {
            if let Node::Text(t) = n {
                out.extend_from_slice(t);
            }
        }
        out
    }

    /// Every local name in the tree, this element included.
    pub(crate) fn names(&self, out: &mut Vec<String>) {
        out.push(self.name.clone());
        for e in self.elements() {
            e.names(out);
        }
    }

    /// An indented rendering, one node per line, for failure messages.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out, 0);
        out
    }

    fn render_into(&self, out: &mut String, depth: usize) {
        let pad = "  ".repeat(depth);
        writeln!(out, "{pad}<{}> {{{}}}", self.name, self.ns).unwrap();
        for n in &self.children {
            match n {
                Node::Element(e) => e.render_into(out, depth + 1),
                Node::Text(t) => {
                    writeln!(out, "{pad}  {:?}", String::from_utf8_lossy(t)).unwrap();
                }
            }
        }
    }
}

/// Parses a whole document (prolog, DOCTYPE and comments are skipped).
pub(crate) fn parse(xml: &[u8]) -> Result<Element, String> {
    let mut reader = NsReader::from_reader(xml);
    let config = reader.config_mut();
    config.trim_text(false);
    config.expand_empty_elements = true;
    config.check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root = None;
    loop {
        let (ns, ev) = match reader.read_resolved_event() {
            Ok(r) => r,
            Err(e) => {
                let e = e.to_string();
                return Err(format!("at byte {}: {e}", reader.error_position()));
            }
        };
        match ev {
            Event::Start(e) => {
                let ns = match ns {
                    ResolveResult::Bound(n) => String::from_utf8_lossy(n.as_ref()).into_owned(),
                    ResolveResult::Unbound => String::new(),
                    ResolveResult::Unknown(p) => {
                        return Err(format!("unknown prefix {}", String::from_utf8_lossy(&p)))
                    }
                };
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                stack.push(Element {
                    ns,
                    name,
                    children: Vec::new(),
                });
            }
            Event::End(_) => {
                let done = stack.pop().ok_or("unbalanced end tag")?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(Node::Element(done)),
                    None => root = Some(done),
                }
            }
            Event::Text(t) => {
                if let Some(parent) = stack.last_mut() {
                    push_text(parent, unescape(&t)?);
                }
            }
            Event::CData(c) => {
                if let Some(parent) = stack.last_mut() {
                    push_text(parent, c.into_inner().into_owned());
                }
            }
            Event::Eof => break,
            Event::Empty(_) => unreachable!("expand_empty_elements is set"),
            Event::Decl(_) | Event::PI(_) | Event::DocType(_) | Event::Comment(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(format!("unclosed <{}>", stack.last().unwrap().name));
    }
    root.ok_or_else(|| "no root element".to_owned())
}

fn push_text(parent: &mut Element, text: Vec<u8>) {
    if let Some(Node::Text(t)) = parent.children.last_mut() {
        t.extend_from_slice(&text);
    } else {
        parent.children.push(Node::Text(text));
    }
}

/// Resolves the predefined entities and character references, on bytes.
fn unescape(raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != b'&' {
            out.push(raw[i]);
            i += 1;
            continue;
        }
        let end = raw[i..]
            .iter()
            .position(|&b| b == b';')
            .ok_or("unterminated entity")?;
        let entity = std::str::from_utf8(&raw[i + 1..i + end]).map_err(|e| e.to_string())?;
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(h) = entity.strip_prefix("#x") {
                    u32::from_str_radix(h, 16)
                } else if let Some(d) = entity.strip_prefix('#') {
                    d.parse()
                } else {
                    return Err(format!("unknown entity &{entity};"));
                };
                code.ok()
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("bad character reference &{entity};"))?
            }
        };
        let mut buf = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        i += end + 1;
    }
    Ok(out)
}

/// Where two trees first differ, as a path and both renderings.
pub(crate) fn difference(a: &Element, b: &Element) -> Option<String> {
    fn walk(a: &Element, b: &Element, path: &str) -> Option<String> {
        let path = format!("{path}/{}", a.name);
        if a.name != b.name || a.ns != b.ns {
            return Some(format!(
                "{path}: element <{}> {{{}}} vs <{}> {{{}}}",
                a.name, a.ns, b.name, b.ns
            ));
        }
        for (i, pair) in a.children.iter().zip(&b.children).enumerate() {
            match pair {
                (Node::Element(x), Node::Element(y)) => {
                    if let Some(d) = walk(x, y, &path) {
                        return Some(d);
                    }
                }
                (Node::Text(x), Node::Text(y)) if x == y => {}
                (x, y) => {
                    return Some(format!(
                        "{path}: child {i} differs: {} vs {}",
                        show(x),
                        show(y)
                    ));
                }
            }
        }
        if a.children.len() != b.children.len() {
            return Some(format!(
                "{path}: {} children vs {}",
                a.children.len(),
                b.children.len()
            ));
        }
        None
    }
    fn show(n: &Node) -> String {
        match n {
            Node::Element(e) => format!("<{}>", e.name),
            Node::Text(t) => format!("text {:?}", String::from_utf8_lossy(t)),
        }
    }
    if a == b {
        return None;
    }
    Some(walk(a, b, "").unwrap_or_else(|| "trees differ".to_owned()))
}
