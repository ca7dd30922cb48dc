//! The registry against the code and the docs: every entry's file lies where its family
//! says and names it, no check name is spelt anywhere else, and `docs/policy.md` carries
//! the table this registry renders.

use std::path::{Path, PathBuf};

use super::*;
use crate::policy::key;

/// The workspace root (this crate is one directory below it).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate lies in the workspace")
        .to_path_buf()
}

/// The constant's name the registry's convention gives a check: the part after the
/// family's dot, upper-cased (`snp.report_signature` is `snp::REPORT_SIGNATURE`).
fn constant(check: &CheckId) -> String {
    check
        .name
        .split_once('.')
        .map(|(_, rest)| rest.to_ascii_uppercase())
        .unwrap_or_default()
}

#[test]
fn names_are_unique_well_formed_and_in_their_family() {
    let mut seen = std::collections::BTreeSet::new();
    for family in FAMILIES {
        assert!(!family.checks.is_empty(), "{}", family.prefix);
        for check in family.checks {
            assert!(seen.insert(check.name), "{} twice", check.name);
            let (prefix, rest) = check.name.split_once('.').expect(check.name);
            assert_eq!(prefix, family.prefix, "{}", check.name);
            assert!(
                !rest.is_empty() && rest.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{}",
                check.name
            );
            assert!(
                !check.meaning.contains('|'),
                "{}: breaks the table",
                check.name
            );
            assert_eq!(by_name(check.name), Some(*check));
        }
    }
    assert_eq!(by_name("snp.no_such_check"), None);
}

#[test]
fn policy_keys_are_the_policy_s() {
    for check in all() {
        for k in check.policy {
            assert!(
                key::ALL.contains(k),
                "{}: unknown policy key {k}",
                check.name
            );
        }
    }
}

/// The rule in the module docs: a check's file lies under its family's paths, exists, and
/// names the check as `family::CONSTANT`.
#[test]
fn each_check_lives_where_its_name_leads() {
    let root = workspace();
    for family in FAMILIES {
        for check in family.checks {
            assert!(
                family.paths.iter().any(|p| check.source.starts_with(p)),
                "{} is made in {}, outside {:?}",
                check.name,
                check.source,
                family.paths
            );
            let path = root.join(check.source);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {}: {e}", check.name, path.display()));
            let named = format!("{}::{}", family.prefix, constant(check));
            assert!(
                text.contains(&named),
                "{} does not name {named}",
                check.source
            );
        }
    }
}

/// Every `.rs` file of the workspace, outside build output and the registry itself.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if !matches!(
                name.as_ref(),
                "target" | ".git" | "vectors" | "node_modules"
            ) && !name.starts_with('.')
            {
                sources(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// A check name appears in code only through the registry: no string literal is a name
/// (`"snp.report_signature"`) or starts with one and a colon (`"claims.tls_key: …"`).
/// Policy keys that share a check's spelling are spelt in `policy/key.rs`.
#[test]
fn no_check_name_is_spelt_outside_the_registry() {
    let root = workspace();
    let exempt = [
        root.join("attestation/src/checks"),
        root.join("attestation/src/policy/key.rs"),
    ];
    let mut files = Vec::new();
    sources(&root, &mut files);
    assert!(files.len() > 50, "found only {} sources", files.len());
    let mut bare = Vec::new();
    for file in files
        .iter()
        .filter(|f| !exempt.iter().any(|e| f.starts_with(e)))
    {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for check in all() {
            for spelling in [format!("\"{}\"", check.name), format!("\"{}:", check.name)] {
                if text.contains(&spelling) {
                    let rel = file.strip_prefix(&root).unwrap_or(file);
                    bare.push(format!("{}: {spelling}", rel.display()));
                }
            }
        }
    }
    assert!(bare.is_empty(), "bare check names:\n{}", bare.join("\n"));
}

const BEGIN: &str = "<!-- checks:begin (generated from attestation/src/checks; SILK_WRITE_DOCS=1 rewrites it) -->\n";
const END: &str = "<!-- checks:end -->";

/// `docs/policy.md` carries, between its markers, the tables [`markdown_tables`] renders.
/// With `SILK_WRITE_DOCS=1` the test rewrites that part of the file instead of failing.
#[test]
fn docs_table_matches_the_registry() {
    let path = workspace().join("docs/policy.md");
    let doc = std::fs::read_to_string(&path).expect("docs/policy.md");
    let start = doc
        .find(BEGIN)
        .expect("docs/policy.md has the checks:begin marker")
        + BEGIN.len();
    let end = doc[start..]
        .find(END)
        .expect("docs/policy.md has the checks:end marker")
        + start;
    let want = format!("\n{}\n", markdown_tables());
    if doc[start..end] == want {
        return;
    }
    if std::env::var_os("SILK_WRITE_DOCS").is_some_and(|v| v == "1") {
        let updated = format!("{}{want}{}", &doc[..start], &doc[end..]);
        std::fs::write(&path, updated).expect("write docs/policy.md");
        return;
    }
    panic!(
        "docs/policy.md's table of checks differs from the registry; run \
         `SILK_WRITE_DOCS=1 cargo test -p silk-attestation docs_table` and commit the result"
    );
}
