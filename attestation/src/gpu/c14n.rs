//! The XML that NVIDIA's RIMs need: a small document tree and inclusive XML
//! canonicalization (Canonical XML 1.0 and 1.1 without comments, which agree on documents
//! without `xml:` attributes).
//!
//! Why by hand: every RIM NVIDIA publishes declares `http://www.w3.org/2006/12/xml-c14n11`
//! (inclusive, not exclusive, C14N) for both its SignedInfo and its enveloped reference,
//! and no maintained, permissively licensed Rust crate implements C14N 1.1 (the crates
//! that exist bind libxml2/xmlsec, which this pure crate avoids). quick-xml reads the
//! bytes; this module keeps exactly what canonicalization needs — each element's raw
//! prefix, its namespace declarations, its attributes and text — and writes the canonical
//! form of the whole document minus one element (the enveloped-signature transform) or of
//! one subtree with the namespaces it inherits (SignedInfo). Documents outside that subset
//! (a DTD, processing instructions, `xml:` attributes, entities other than the five
//! predefined ones) are refused rather than canonicalized approximately.

use std::collections::BTreeMap;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// One element: its raw qualified name, namespace declarations, attributes and children.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Element {
    /// The qualified name as written (`ns0:Meta`).
    pub qname: String,
    /// Namespace declarations on this element: prefix (empty for the default) and URI.
    pub ns_decls: Vec<(String, String)>,
    /// Other attributes: qualified name as written and normalized value.
    pub attrs: Vec<(String, String)>,
    /// Child nodes in document order.
    pub children: Vec<Node>,
}

/// A child node. Comments are dropped when reading: C14N without comments omits them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// A child element.
    Element(Element),
    /// Character data (CDATA sections included, as C14N renders them).
    Text(String),
}

/// Why bytes are not XML that silk canonicalizes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum XmlError {
    /// Not UTF-8.
    #[error("not UTF-8: {0}")]
    NotUtf8(#[from] std::str::Utf8Error),
    /// Not well-formed, as quick-xml reads it.
    #[error("at byte {position}: {reason}")]
    Syntax {
        /// Where the reader stopped.
        position: u64,
        /// quick-xml's description.
        reason: String,
    },
    /// A second root element.
    #[error("a second root element <{0}>")]
    SecondRoot(String),
    /// An end tag without its start.
    #[error("an end tag without a start")]
    UnmatchedEnd,
    /// A processing instruction.
    #[error("processing instructions are not supported")]
    ProcessingInstruction,
    /// A document type declaration.
    #[error("a DTD is not allowed")]
    Dtd,
    /// The document ends inside an element.
    #[error("the document ends inside an element")]
    Unclosed,
    /// No root element.
    #[error("no root element")]
    NoRoot,
    /// Non-whitespace text outside the root.
    #[error("text outside the root element")]
    TextOutsideRoot,
    /// A malformed attribute.
    #[error("<{element}>: {reason}")]
    Attribute {
        /// The element's qualified name.
        element: String,
        /// quick-xml's description.
        reason: String,
    },
    /// An attribute value that does not unescape.
    #[error("<{element} {attribute}>: {reason}")]
    AttributeValue {
        /// The element's qualified name.
        element: String,
        /// The attribute's qualified name.
        attribute: String,
        /// What is wrong with the value.
        reason: Box<XmlError>,
    },
    /// `xmlns:p=""` (legal in XML 1.1 only).
    #[error("<{element}> undeclares prefix {prefix} (XML 1.1 only)")]
    Undeclares {
        /// The element.
        element: String,
        /// The prefix.
        prefix: String,
    },
    /// An `xml:` attribute, which changes what C14N writes.
    #[error("<{element}> has {attribute}, which is not supported")]
    XmlAttribute {
        /// The element.
        element: String,
        /// The attribute.
        attribute: String,
    },
    /// A prefix without a declaration in scope.
    #[error("<{element}> uses the undeclared prefix {prefix}")]
    UndeclaredPrefix {
        /// The element (and attribute, when it is an attribute's prefix).
        element: String,
        /// The prefix.
        prefix: String,
    },
    /// Two attributes with one expanded name.
    #[error("<{element}> has attribute {{{uri}}}{local} twice")]
    DuplicateAttribute {
        /// The element.
        element: String,
        /// The attribute's namespace.
        uri: String,
        /// Its local name.
        local: String,
    },
    /// A literal `<` in text or a value.
    #[error("a literal '<'")]
    LiteralLt,
    /// `&` without `;`.
    #[error("an unterminated reference")]
    UnterminatedReference,
    /// An entity other than the five predefined ones.
    #[error("the undefined entity &{0};")]
    UndefinedEntity(String),
    /// A character reference to no character.
    #[error("the bad character reference &{0};")]
    BadCharacterReference(String),
}

/// The namespace URI of the XML prefix, bound by definition.
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

fn split(qname: &str) -> (&str, &str) {
    match qname.split_once(':') {
        Some((p, l)) => (p, l),
        None => ("", qname),
    }
}

impl Element {
    /// The local part of the name.
    pub fn local(&self) -> &str {
        split(&self.qname).1
    }

    /// Child elements in order.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The value of the unprefixed attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The concatenated text content of this element's direct text children.
    pub fn text(&self) -> String {
        self.children
            .iter()
            .filter_map(|n| match n {
                Node::Text(t) => Some(t.as_str()),
                Node::Element(_) => None,
            })
            .collect()
    }
}

/// In-scope namespaces: prefix to URI ("" is the default namespace).
pub type Scope = BTreeMap<String, String>;

/// The scope inside `e`, given the scope of its parent.
pub fn scope_of(parent: &Scope, e: &Element) -> Scope {
    let mut scope = parent.clone();
    for (p, uri) in &e.ns_decls {
        scope.insert(p.clone(), uri.clone());
    }
    scope
}

/// The namespace URI of `e`'s name, given the scope of its parent (or its own scope:
/// its declarations are applied either way).
pub fn element_ns(scope: &Scope, e: &Element) -> String {
    let (prefix, _) = split(&e.qname);
    e.ns_decls
        .iter()
        .rev()
        .find(|(p, _)| p == prefix)
        .map(|(_, uri)| uri.clone())
        .or_else(|| scope.get(prefix).cloned())
        .unwrap_or_default()
}

/// The value of the attribute whose namespace is `uri` and local name `local`.
pub fn attr_ns<'a>(scope: &Scope, e: &'a Element, uri: &str, local: &str) -> Option<&'a str> {
    e.attrs.iter().find_map(|(k, v)| {
        let (p, l) = split(k);
        (!p.is_empty() && l == local && scope.get(p).map(String::as_str) == Some(uri))
            .then_some(v.as_str())
    })
}

/// Parses `bytes` (UTF-8) into the root element.
pub fn parse(bytes: &[u8]) -> Result<Element, XmlError> {
    let text = std::str::from_utf8(bytes)?;
    // XML 1.0 section 2.11: line ends are normalized before parsing.
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut reader = Reader::from_str(&text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut scopes: Vec<Scope> = vec![Scope::new()];
    loop {
        let event = reader.read_event().map_err(|e| XmlError::Syntax {
            position: reader.error_position(),
            reason: e.to_string(),
        })?;
        match event {
            Event::Start(s) | Event::Empty(s) if root.is_some() => {
                return Err(XmlError::SecondRoot(
                    String::from_utf8_lossy(s.name().as_ref()).into_owned(),
                ))
            }
            Event::Start(s) => {
                let e = start(&s)?;
                let scope = scope_of(scopes.last().unwrap_or(&Scope::new()), &e);
                check_prefixes(&scope, &e)?;
                scopes.push(scope);
                stack.push(e);
            }
            Event::Empty(s) => {
                let e = start(&s)?;
                let scope = scope_of(scopes.last().unwrap_or(&Scope::new()), &e);
                check_prefixes(&scope, &e)?;
                close(e, &mut stack, &mut root);
            }
            Event::End(_) => {
                scopes.pop();
                let e = stack.pop().ok_or(XmlError::UnmatchedEnd)?;
                close(e, &mut stack, &mut root);
            }
            Event::Text(t) => {
                let raw = std::str::from_utf8(&t)?;
                let value = unescape(raw, false)?;
                text_node(&mut stack, value)?;
            }
            Event::GeneralRef(r) => {
                let raw = std::str::from_utf8(&r)?;
                let value = unescape(&format!("&{raw};"), false)?;
                text_node(&mut stack, value)?;
            }
            Event::CData(c) => {
                let value = std::str::from_utf8(&c)?;
                text_node(&mut stack, value.to_owned())?;
            }
            Event::Comment(_) | Event::Decl(_) => {}
            Event::PI(_) => return Err(XmlError::ProcessingInstruction),
            Event::DocType(_) => return Err(XmlError::Dtd),
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Unclosed);
    }
    root.ok_or(XmlError::NoRoot)
}

fn close(e: Element, stack: &mut [Element], root: &mut Option<Element>) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(Node::Element(e)),
        None => *root = Some(e),
    }
}

fn text_node(stack: &mut [Element], value: String) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(parent) => {
            // Adjacent text (split by references or CDATA) is one text node.
            if let Some(Node::Text(prev)) = parent.children.last_mut() {
                prev.push_str(&value);
            } else {
                parent.children.push(Node::Text(value));
            }
            Ok(())
        }
        None if value.chars().all(|c| matches!(c, ' ' | '\t' | '\n')) => Ok(()),
        None => Err(XmlError::TextOutsideRoot),
    }
}

fn start(s: &BytesStart<'_>) -> Result<Element, XmlError> {
    let qname = std::str::from_utf8(s.name().as_ref())?.to_owned();
    let mut ns_decls = Vec::new();
    let mut attrs = Vec::new();
    for a in s.attributes().with_checks(true) {
        let a = a.map_err(|e| XmlError::Attribute {
            element: qname.clone(),
            reason: e.to_string(),
        })?;
        let key = std::str::from_utf8(a.key.as_ref())?.to_owned();
        let raw = std::str::from_utf8(&a.value)?;
        let value = unescape(raw, true).map_err(|e| XmlError::AttributeValue {
            element: qname.clone(),
            attribute: key.clone(),
            reason: Box::new(e),
        })?;
        if key == "xmlns" {
            ns_decls.push((String::new(), value));
        } else if let Some(p) = key.strip_prefix("xmlns:") {
            if value.is_empty() {
                return Err(XmlError::Undeclares {
                    element: qname,
                    prefix: p.to_owned(),
                });
            }
            ns_decls.push((p.to_owned(), value));
        } else if key.starts_with("xml:") {
            // xml:lang/space/base/id change C14N's output (inheritance, fix-ups);
            // NVIDIA's RIMs use none, so refuse rather than canonicalize approximately.
            return Err(XmlError::XmlAttribute {
                element: qname,
                attribute: key,
            });
        } else {
            attrs.push((key, value));
        }
    }
    Ok(Element {
        qname,
        ns_decls,
        attrs,
        children: Vec::new(),
    })
}

/// Every prefix used must be declared, and no two attributes may name the same expanded
/// name (quick-xml only compares qualified names).
fn check_prefixes(scope: &Scope, e: &Element) -> Result<(), XmlError> {
    let (p, _) = split(&e.qname);
    if !p.is_empty() && !scope.contains_key(p) {
        return Err(XmlError::UndeclaredPrefix {
            element: e.qname.clone(),
            prefix: p.to_owned(),
        });
    }
    let mut seen = Vec::new();
    for (k, _) in &e.attrs {
        let (p, l) = split(k);
        let uri = if p.is_empty() {
            ""
        } else {
            scope
                .get(p)
                .map(String::as_str)
                .ok_or_else(|| XmlError::UndeclaredPrefix {
                    element: format!("{} {k}", e.qname),
                    prefix: p.to_owned(),
                })?
        };
        if seen.contains(&(uri, l)) {
            return Err(XmlError::DuplicateAttribute {
                element: e.qname.clone(),
                uri: uri.to_owned(),
                local: l.to_owned(),
            });
        }
        seen.push((uri, l));
    }
    Ok(())
}

/// Replaces the five predefined entities and character references; in attribute values
/// (`attr`), literal tabs and newlines become spaces (XML 1.0 section 3.3.3).
fn unescape(raw: &str, attr: bool) -> Result<String, XmlError> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find(['&', '<', '\t', '\n']) {
        out.push_str(&rest[..i]);
        let c = rest[i..].chars().next().unwrap_or('&');
        rest = &rest[i + 1..];
        match c {
            '<' => return Err(XmlError::LiteralLt),
            '\t' | '\n' => out.push(if attr { ' ' } else { c }),
            _ => {
                let end = rest.find(';').ok_or(XmlError::UnterminatedReference)?;
                let name = &rest[..end];
                rest = &rest[end + 1..];
                out.push(match name {
                    "amp" => '&',
                    "lt" => '<',
                    "gt" => '>',
                    "quot" => '"',
                    "apos" => '\'',
                    _ => {
                        let code = if let Some(h) = name.strip_prefix("#x") {
                            u32::from_str_radix(h, 16).ok()
                        } else if let Some(d) = name.strip_prefix('#') {
                            d.parse().ok()
                        } else {
                            return Err(XmlError::UndefinedEntity(name.to_owned()));
                        };
                        code.and_then(char::from_u32)
                            .ok_or_else(|| XmlError::BadCharacterReference(name.to_owned()))?
                    }
                });
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The canonical form of the document whose root is `root`, omitting the subtree of the
/// element at `skip` (a path of child-element indices from the root), as the
/// enveloped-signature transform does.
pub fn canonicalize_document(root: &Element, skip: Option<&[usize]>) -> String {
    let mut out = String::new();
    write_element(root, &Scope::new(), &Scope::new(), skip, &mut out);
    out
}

/// The canonical form of the subtree `e` of a document, where `inherited` is the scope of
/// its parent: as an apex, it carries every namespace in scope (inclusive C14N).
pub fn canonicalize_subtree(e: &Element, inherited: &Scope) -> String {
    let mut out = String::new();
    write_element(e, inherited, &Scope::new(), None, &mut out);
    out
}

/// `parent_scope`: namespaces in scope at the parent in the document; `rendered`:
/// namespaces in effect in the output at the parent.
fn write_element(
    e: &Element,
    parent_scope: &Scope,
    rendered: &Scope,
    skip: Option<&[usize]>,
    out: &mut String,
) {
    let scope = scope_of(parent_scope, e);
    let mut now_rendered = rendered.clone();
    let mut decls: Vec<(&String, &String)> = Vec::new();
    for (prefix, uri) in &scope {
        if uri == XML_NS && prefix == "xml" {
            continue;
        }
        let before = rendered.get(prefix).map(String::as_str).unwrap_or("");
        // xmlns="" matters only to undo a default namespace rendered above.
        if before != uri {
            decls.push((prefix, uri));
            now_rendered.insert(prefix.clone(), uri.clone());
        }
    }
    out.push('<');
    out.push_str(&e.qname);
    // The scope is a BTreeMap, so "" (the default) comes first, then prefixes in order.
    for (prefix, uri) in decls {
        if prefix.is_empty() {
            out.push_str(" xmlns=\"");
        } else {
            out.push_str(" xmlns:");
            out.push_str(prefix);
            out.push_str("=\"");
        }
        escape_attr(uri, out);
        out.push('"');
    }
    let mut attrs: Vec<(String, &str, &String, &String)> = e
        .attrs
        .iter()
        .map(|(k, v)| {
            let (p, l) = split(k);
            let uri = if p.is_empty() {
                String::new()
            } else {
                scope.get(p).cloned().unwrap_or_default()
            };
            (uri, l, k, v)
        })
        .collect();
    attrs.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    for (_, _, k, v) in attrs {
        out.push(' ');
        out.push_str(k);
        out.push_str("=\"");
        escape_attr(v, out);
        out.push('"');
    }
    out.push('>');
    let mut element_index = 0;
    for child in &e.children {
        match child {
            Node::Text(t) => escape_text(t, out),
            Node::Element(c) => {
                let here = element_index;
                element_index += 1;
                let child_skip = match skip {
                    Some([first]) if *first == here => continue,
                    Some([first, rest @ ..]) if *first == here => Some(rest),
                    _ => None,
                };
                write_element(c, &scope, &now_rendered, child_skip, out);
            }
        }
    }
    out.push_str("</");
    out.push_str(&e.qname);
    out.push('>');
}

fn escape_text(t: &str, out: &mut String) {
    for c in t.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

fn escape_attr(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c14n(xml: &str) -> String {
        canonicalize_document(&parse(xml.as_bytes()).unwrap(), None)
    }

    #[test]
    fn w3c_c14n_examples() {
        // Canonical XML 1.0, section 3.2-3.4 (whitespace, start/end tags, character
        // modifications), reduced to what this implementation supports.
        assert_eq!(
            c14n("<?xml version=\"1.0\"?>\n<!-- c -->\n<doc>\n   <e1   />\n   <e2   ></e2>\n</doc>\n"),
            "<doc>\n   <e1></e1>\n   <e2></e2>\n</doc>"
        );
        assert_eq!(
            c14n("<doc xmlns:b=\"http://www.ietf.org\" xmlns:a=\"http://www.w3.org\" xmlns=\"http://example.org\"><e5 a:attr=\"out\" b:attr=\"sorted\" attr2=\"all\" attr=\"I'm\" xmlns:b=\"http://www.ietf.org\"/></doc>"),
            "<doc xmlns=\"http://example.org\" xmlns:a=\"http://www.w3.org\" xmlns:b=\"http://www.ietf.org\"><e5 attr=\"I'm\" attr2=\"all\" b:attr=\"sorted\" a:attr=\"out\"></e5></doc>"
        );
        assert_eq!(
            c14n("<doc><text>First line&#x0d;&#10;Second line</text><value>&#x32;</value><compute><![CDATA[value>\"0\" && value<\"10\" ?\"valid\":\"error\"]]></compute><norm attr=' &apos;   &#x20;&#13;&#xa;&#9;   &apos; '/></doc>"),
            "<doc><text>First line&#xD;\nSecond line</text><value>2</value><compute>value&gt;\"0\" &amp;&amp; value&lt;\"10\" ?\"valid\":\"error\"</compute><norm attr=\" '    &#xD;&#xA;&#x9;   ' \"></norm></doc>"
        );
    }

    #[test]
    fn subtree_carries_inherited_namespaces() {
        let root = parse(b"<r xmlns=\"u:d\" xmlns:a=\"u:a\"><a:s xmlns:b=\"u:b\"><a:x/></a:s></r>")
            .unwrap();
        let scope = scope_of(&Scope::new(), &root);
        let Some(Node::Element(s)) = root.children.first() else {
            panic!()
        };
        assert_eq!(
            canonicalize_subtree(s, &scope),
            "<a:s xmlns=\"u:d\" xmlns:a=\"u:a\" xmlns:b=\"u:b\"><a:x></a:x></a:s>"
        );
    }

    #[test]
    fn skip_omits_one_subtree() {
        let root = parse(b"<r><a/>\n<b><c/></b></r>").unwrap();
        assert_eq!(canonicalize_document(&root, Some(&[1])), "<r><a></a>\n</r>");
        assert_eq!(
            canonicalize_document(&root, Some(&[1, 0])),
            "<r><a></a>\n<b></b></r>"
        );
    }

    #[test]
    fn refuses_what_it_cannot_canonicalize() {
        for bad in [
            "<!DOCTYPE r [<!ENTITY e \"x\">]><r>&e;</r>",
            "<r><?pi x?></r>",
            "<r xml:lang=\"en\"/>",
            "<r>&e;</r>",
            "<a:r/>",
            "<r/><r/>",
            "<r a=\"1\" a=\"2\"/>",
            "<r xmlns:p=\"u\" xmlns:q=\"u\" p:a=\"1\" q:a=\"2\"/>",
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
