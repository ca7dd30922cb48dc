//! The registry of every check a verifier can report: its stable name, the [`Stage`] it
//! belongs to, what it means when it passes, the policy keys that govern it and the
//! source file that makes it.
//!
//! Code names a check only through these constants (`Check::pass(&snp::REPORT_SIGNATURE,
//! …)`), so a name is spelt once, here; the table in `docs/policy.md` is rendered from this
//! registry, and a test fails when the two disagree (`SILK_WRITE_DOCS=1` rewrites the
//! table). Names are public: `silk verify --json` prints them and users' scripts match
//! them, so an existing name never changes its spelling or its meaning.
//!
//! **Where a check lives.** A check `F.x` is made in a file under the directories its
//! family `F` names ([`Family::paths`]): `snp.*` in `attestation/src/snp/`, `tdx.*` and
//! `sgx.*` in `attestation/src/tdx/` (SGX quotes are DCAP quotes, verified by the same
//! code), `gpu.*` in `attestation/src/gpu/`, `sim.*` in `attestation/src/snp/simulated.rs`,
//! `policy.*` in `attestation/src/policy/`, `claims.*` where silk's claims are bound and
//! compared (`protocol/src/`, and the session in `client/src/`), and the usage checks
//! (`offer.*`, `receipt.*`, `ack.*`) in `protocol/src/receipt.rs` and where the router, the
//! client and `silk pay` apply them. Each entry records the
//! exact file ([`CheckId::source`]), and a test checks that the file lies under its
//! family's directories and names the constant as `family::CONSTANT`.

use std::fmt::Write as _;

use crate::verdict::Stage;

pub mod claims;
pub mod gpu;
pub mod policy;
pub mod runtime;
pub mod sgx;
pub mod sim;
pub mod snp;
pub mod tdx;
mod usage;

pub use usage::{ack, offer, receipt};

/// One check: everything a reader of a verdict, of the docs or of the code needs to find
/// it. Only this registry makes them.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckId {
    /// The stable name, e.g. `snp.report_signature`.
    pub name: &'static str,
    /// The family of checks it belongs to.
    pub stage: Stage,
    /// What it establishes when it passes, and when it runs.
    pub meaning: &'static str,
    /// The policy keys (see `policy::key`) that decide it; empty when no policy setting
    /// changes it (vendor signatures, formats, bindings).
    pub policy: &'static [&'static str],
    /// The file that makes it, from the workspace root.
    pub source: &'static str,
}

/// The checks that share a name prefix, and where their code lives.
#[derive(Debug)]
#[non_exhaustive]
pub struct Family {
    /// The name prefix, e.g. `snp`.
    pub prefix: &'static str,
    /// What the family covers, for headings.
    pub title: &'static str,
    /// The directories (ending in `/`) or files its checks' code lives in, from the
    /// workspace root.
    pub paths: &'static [&'static str],
    /// Its checks, in the order the docs list them.
    pub checks: &'static [&'static CheckId],
}

/// Defines a family's constants, each documented by its meaning, and the family itself.
macro_rules! family {
    (
        prefix: $prefix:literal, title: $title:literal, paths: [$($path:literal),+ $(,)?];
        $( $id:ident = $name:literal, $stage:ident, $source:literal, [$($key:expr),* $(,)?],
           $meaning:literal; )+
    ) => {
        $(
            #[doc = concat!("`", $name, "`: ", $meaning)]
            pub const $id: CheckId = CheckId {
                name: $name,
                stage: crate::verdict::Stage::$stage,
                meaning: $meaning,
                policy: &[$($key),*],
                source: $source,
            };
        )+
        /// The family, with its checks in the order the docs list them.
        pub const FAMILY: Family = Family {
            prefix: $prefix,
            title: $title,
            paths: &[$($path),+],
            checks: &[$(&$id),+],
        };
    };
}
pub(crate) use family;

impl std::fmt::Display for CheckId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// Every family, in the order the docs list them.
pub const FAMILIES: &[Family] = &[
    snp::FAMILY,
    sim::FAMILY,
    tdx::FAMILY,
    sgx::FAMILY,
    gpu::FAMILY,
    policy::FAMILY,
    claims::FAMILY,
    runtime::FAMILY,
    offer::FAMILY,
    receipt::FAMILY,
    ack::FAMILY,
];

/// Every check, family by family.
pub fn all() -> impl Iterator<Item = &'static CheckId> {
    FAMILIES.iter().flat_map(|f| f.checks.iter().copied())
}

/// The check with this name, if there is one.
pub fn by_name(name: &str) -> Option<&'static CheckId> {
    all().find(|c| c.name == name)
}

/// The Markdown tables `docs/policy.md` carries between its `checks:begin` and
/// `checks:end` markers: one per family, each check with its stage, policy keys, meaning
/// and source file (linked relative to `docs/`).
pub fn markdown_tables() -> String {
    let mut out = String::new();
    for (i, family) in FAMILIES.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let paths: Vec<String> = family.paths.iter().map(|p| format!("`{p}`")).collect();
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "### `{}.*` — {} ({})\n\n| check | stage | policy keys | meaning | code |\n| --- | --- | --- | --- | --- |",
            family.prefix,
            family.title,
            paths.join(", ")
        );
        for c in family.checks {
            let keys = if c.policy.is_empty() {
                "—".to_owned()
            } else {
                let keys: Vec<String> = c.policy.iter().map(|k| format!("`{k}`")).collect();
                keys.join(", ")
            };
            let file = c.source.rsplit('/').next().unwrap_or(c.source);
            let _ = writeln!(
                out,
                "| `{}` | {} | {keys} | {} | [`{file}`](../{}) |",
                c.name, c.stage, c.meaning, c.source
            );
        }
    }
    out
}

#[cfg(test)]
mod tests;
