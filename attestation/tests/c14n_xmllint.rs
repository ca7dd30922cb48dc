//! silk's Canonical XML 1.1 against libxml2's (`xmllint --c14n11`), on every RIM in
//! `vectors/gpu` (the `*.swidtag` and `*.xml` files).
//!
//! silk canonicalizes two node-sets of a RIM (see `gpu/rim.rs`), and this test compares
//! each with xmllint's output byte for byte:
//!
//! 1. The enveloped reference (`URI=""` with the enveloped-signature transform): the whole
//!    document without its `ds:Signature` element. xmllint is given the file's bytes with
//!    exactly that element's bytes cut out (its start tag to its end tag, located by
//!    quick-xml, not by silk's parser); the whitespace text around it stays, as the
//!    transform leaves it.
//! 2. The `ds:SignedInfo` subtree. xmllint canonicalizes whole documents only, so it is
//!    given SignedInfo's bytes as a document of their own, with every namespace in scope
//!    at SignedInfo (declared on the root and on `ds:Signature`, not redeclared by
//!    SignedInfo itself) declared on its start tag. Inclusive C14N renders exactly those
//!    declarations on the apex of a subtree, so both sides canonicalize the same node-set.
//!    (The RIMs carry no `xml:` attributes, which C14N 1.1 would also inherit; silk
//!    refuses documents that have them.)
//!
//! xmllint comes from Debian's `libxml2-utils`, which `scripts/setup.sh` installs; without
//! it this test fails, naming the package, rather than passing having compared nothing.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use quick_xml::events::Event;
use quick_xml::Reader;
use silk_attestation::gpu::c14n::{self, scope_of, Element, Scope};

const V: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../vectors/gpu");
const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";

/// Every RIM under `vectors/gpu`, sorted.
fn rims() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![PathBuf::from(V)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("swidtag" | "xml")
            ) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// `xmllint --c14n11` of `doc`.
fn xmllint_c14n11(doc: &[u8], what: &str) -> Vec<u8> {
    let mut child = match Command::new("xmllint")
        .args(["--c14n11", "--nonet", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => panic!(
            "xmllint could not be started ({e}): install Debian's libxml2-utils \
             (scripts/setup.sh does); this test compares silk's C14N with it"
        ),
    };
    let mut stdin = child.stdin.take().expect("xmllint's stdin");
    stdin.write_all(doc).expect("writing to xmllint");
    drop(stdin);
    let out = child.wait_with_output().expect("xmllint runs");
    assert!(
        out.status.success(),
        "xmllint --c14n11 failed on {what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Byte ranges in a RIM, found by quick-xml.
struct Ranges {
    /// The root's `ds:Signature` element, start tag to end tag.
    signature: std::ops::Range<usize>,
    /// The `ds:SignedInfo` element inside it.
    signed_info: std::ops::Range<usize>,
    /// The length of SignedInfo's qualified name as written (`ds:SignedInfo`).
    signed_info_qname: usize,
    /// Namespace declarations in scope at SignedInfo's parent, innermost winning, as
    /// written: prefix ("" for the default) and raw (still escaped) value.
    inherited: Vec<(String, String)>,
    /// The prefixes SignedInfo declares itself.
    own: Vec<String>,
}

fn ns_decls(s: &quick_xml::events::BytesStart<'_>) -> Vec<(String, String)> {
    s.attributes()
        .map(|a| a.expect("a well-formed attribute"))
        .filter_map(|a| {
            let key = String::from_utf8(a.key.as_ref().to_vec()).expect("UTF-8");
            let value = String::from_utf8(a.value.to_vec()).expect("UTF-8");
            if key == "xmlns" {
                Some((String::new(), value))
            } else {
                key.strip_prefix("xmlns:").map(|p| (p.to_owned(), value))
            }
        })
        .collect()
}

fn local(name: &[u8]) -> &[u8] {
    name.rsplit(|b| *b == b':').next().unwrap_or(name)
}

fn ranges(xml: &[u8]) -> Ranges {
    let mut reader = Reader::from_reader(xml);
    // The declarations of the open elements, outermost first.
    let mut open: Vec<Vec<(String, String)>> = Vec::new();
    let mut signature = None;
    let mut signed_info = None;
    let mut signed_info_qname = 0;
    let mut inherited = Vec::new();
    let mut own = Vec::new();
    let mut buf = Vec::new();
    loop {
        let start = usize::try_from(reader.buffer_position()).expect("a small file");
        let event = reader.read_event_into(&mut buf).expect("well-formed XML");
        let end = usize::try_from(reader.buffer_position()).expect("a small file");
        match event {
            Event::Start(s) => {
                let depth = open.len();
                if depth == 1 && local(s.name().as_ref()) == b"Signature" {
                    signature = Some(start..0);
                }
                if depth == 2 && signature.is_some() && local(s.name().as_ref()) == b"SignedInfo" {
                    signed_info = Some(start..0);
                    signed_info_qname = s.name().as_ref().len();
                    let mut scope = std::collections::BTreeMap::new();
                    for (p, v) in open.iter().flatten() {
                        scope.insert(p.clone(), v.clone());
                    }
                    inherited = scope.into_iter().collect();
                    own = ns_decls(&s).into_iter().map(|(p, _)| p).collect();
                }
                open.push(ns_decls(&s));
            }
            Event::End(e) => {
                open.pop();
                let depth = open.len();
                if depth == 2 && local(e.name().as_ref()) == b"SignedInfo" {
                    if let Some(r) = signed_info.as_mut().filter(|r| r.end == 0) {
                        r.end = end;
                    }
                }
                if depth == 1 && local(e.name().as_ref()) == b"Signature" {
                    if let Some(r) = signature.as_mut().filter(|r| r.end == 0) {
                        r.end = end;
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ranges {
        signature: signature.expect("a ds:Signature under the root"),
        signed_info: signed_info.expect("a ds:SignedInfo in the Signature"),
        signed_info_qname,
        inherited,
        own,
    }
}

/// silk's two canonical forms of the RIM: the document without its Signature, and
/// SignedInfo as a subtree.
fn silk_c14n(xml: &[u8], what: &str) -> (String, String) {
    let root = c14n::parse(xml).unwrap_or_else(|e| panic!("silk cannot parse {what}: {e:?}"));
    let root_scope = scope_of(&Scope::new(), &root);
    let (pos, signature) = root
        .elements()
        .enumerate()
        .find(|(_, e)| e.local() == "Signature" && c14n::element_ns(&root_scope, e) == DSIG_NS)
        .unwrap_or_else(|| panic!("{what} has no ds:Signature"));
    let sig_scope = scope_of(&root_scope, signature);
    let signed_info: &Element = signature
        .elements()
        .find(|e| e.local() == "SignedInfo")
        .unwrap_or_else(|| panic!("{what} has no ds:SignedInfo"));
    (
        c14n::canonicalize_document(&root, Some(&[pos])),
        c14n::canonicalize_subtree(signed_info, &sig_scope),
    )
}

/// The first differing byte and the text around it, for a readable failure.
fn first_difference(ours: &[u8], theirs: &[u8]) -> String {
    let at = ours
        .iter()
        .zip(theirs)
        .position(|(a, b)| a != b)
        .unwrap_or(ours.len().min(theirs.len()));
    let around = |s: &[u8]| {
        String::from_utf8_lossy(&s[at.saturating_sub(60)..(at + 60).min(s.len())]).into_owned()
    };
    format!(
        "lengths silk {} / xmllint {}; first difference at byte {at}:\n  silk:    {:?}\n  xmllint: {:?}",
        ours.len(),
        theirs.len(),
        around(ours),
        around(theirs)
    )
}

fn compare(path: &Path) -> Vec<String> {
    let what = path.strip_prefix(V).unwrap_or(path).display().to_string();
    let xml = std::fs::read(path).unwrap_or_else(|e| panic!("{what}: {e}"));
    let (silk_doc, silk_signed_info) = silk_c14n(&xml, &what);
    let r = ranges(&xml);
    let mut failures = Vec::new();

    let mut without_signature = xml[..r.signature.start].to_vec();
    without_signature.extend_from_slice(&xml[r.signature.end..]);
    let theirs = xmllint_c14n11(&without_signature, &what);
    if silk_doc.as_bytes() != theirs {
        failures.push(format!(
            "{what}, document without its Signature: {}",
            first_difference(silk_doc.as_bytes(), &theirs)
        ));
    }

    // SignedInfo's start tag, with the inherited declarations it does not override
    // inserted right after its name.
    let si = &xml[r.signed_info.clone()];
    let name_end = 1 + r.signed_info_qname;
    let mut alone = si[..name_end].to_vec();
    for (prefix, value) in r.inherited.iter().filter(|(p, _)| !r.own.contains(p)) {
        if prefix.is_empty() {
            alone.extend_from_slice(format!(" xmlns=\"{value}\"").as_bytes());
        } else {
            alone.extend_from_slice(format!(" xmlns:{prefix}=\"{value}\"").as_bytes());
        }
    }
    alone.extend_from_slice(&si[name_end..]);
    let theirs = xmllint_c14n11(&alone, &what);
    if silk_signed_info.as_bytes() != theirs {
        failures.push(format!(
            "{what}, SignedInfo: {}",
            first_difference(silk_signed_info.as_bytes(), &theirs)
        ));
    }
    failures
}

#[test]
fn silk_c14n_equals_xmllint_on_every_rim() {
    let rims = rims();
    // The vectors README lists 26 swidtags and 3 RIM XML files; fewer means a path broke.
    assert!(rims.len() >= 29, "only {} RIMs found under {V}", rims.len());
    let failures: Vec<String> = rims.iter().flat_map(|p| compare(p)).collect();
    assert!(
        failures.is_empty(),
        "silk's C14N differs from xmllint --c14n11 on {} node-sets:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The node-set built for xmllint matters: SignedInfo cut out without the namespaces it
/// inherits canonicalizes differently from silk's subtree, which renders them (so the
/// comparison above would catch a silk that dropped them).
#[test]
fn signed_info_alone_lacks_the_inherited_namespaces() {
    let path = rims().into_iter().next().expect("a RIM");
    let xml = std::fs::read(&path).expect("readable");
    let (_, signed_info) = silk_c14n(&xml, "the first RIM");
    let r = ranges(&xml);
    assert!(
        !r.inherited.is_empty(),
        "the RIM declares namespaces above SignedInfo"
    );
    let bare = xmllint_c14n11(
        &xml[r.signed_info.clone()],
        "the first RIM's bare SignedInfo",
    );
    assert_ne!(signed_info.as_bytes(), bare);
    assert!(
        signed_info.contains(" xmlns=\"http://standards.iso.org/iso/19770/-2/2015/schema.xsd\"")
    );
}
