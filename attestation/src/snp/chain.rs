//! Verifying AMD's certificate chain up to the pinned root, one named check at a time:
//! `snp.product_line`, `snp.ark_pinned`, the three `snp.*_signed_by_*` signatures and
//! `snp.cert_validity`. The checks that tie the report to the VEK are in [`super::vek`].

use der::Decode;
use time::OffsetDateTime;
use x509_cert::Certificate;

use super::certs::{
    common_name, issuer_line, pinned_ark, pinned_ask, vek_kind, CertError, SnpCertificates, VekKind,
};
use super::report::{AttestationReport, ProductLine};
use super::vek;
use crate::checks::{snp, CheckId};
use crate::signature::{self, AMD_CERTIFICATES};
use crate::verdict::{Check, Verdict};

/// A certificate as used in the chain: parsed, with where it came from.
pub(super) struct Link {
    pub(super) cert: Certificate,
    der: Vec<u8>,
    pub(super) source: &'static str,
}

/// Why a certificate of the chain is not at hand; every check that needs it fails with
/// this reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The bytes are not a certificate.
    #[error("{what} is not a DER X.509 certificate: {source}")]
    NotCertificate {
        /// Which certificate, and where it came from.
        what: &'static str,
        /// The decoder's error.
        source: der::Error,
    },
    /// A built-in certificate could not be loaded.
    #[error(transparent)]
    BuiltIn(#[from] CertError),
    /// No ARK was supplied and none can be chosen.
    #[error("no ARK supplied and the VEK names no known product line")]
    NoArk,
    /// A VLEK without its ASVK.
    #[error("no ASVK supplied; a VLEK is signed by the ASVK, which is not built in")]
    NoAsvk,
    /// No ASK was supplied and none can be chosen.
    #[error("no ASK supplied and the VEK's line or kind is unknown")]
    NoAsk,
}

impl Link {
    fn parse(der: &[u8], source: &'static str) -> Result<Self, LinkError> {
        Certificate::from_der(der)
            .map(|cert| Link {
                cert,
                der: der.to_vec(),
                source,
            })
            .map_err(|e| LinkError::NotCertificate {
                what: source,
                source: e,
            })
    }

    pub(super) fn cn(&self) -> String {
        common_name(&self.cert.tbs_certificate.subject).unwrap_or_else(|| "<no CN>".into())
    }
}

/// Verifies `report` (parsed from `raw`) against AMD's chain: VEK → ASK/ASVK → ARK, the ARK
/// pinned per product line, and the report's signature with the VEK. Pushes one [`Check`]
/// per step (all at [`crate::Stage::Signature`]) to `verdict`, whatever fails before it,
/// so that a reader sees every problem at once:
///
/// `snp.product_line`, `snp.ark_pinned`, `snp.ark_self_signed`, `snp.ask_signed_by_ark`,
/// `snp.vek_signed_by_ask`, `snp.cert_validity`, then the VEK checks `snp.signing_key`,
/// `snp.report_signature`, `snp.vek_tcb`, `snp.vek_chip_id`.
///
/// A missing ASK or ARK in `certs` is taken from the built-ins for the VEK's line. Returns the
/// product line when `snp.product_line` passed, for decoding TCB values; acceptance is still
/// only [`Verdict::accepted`].
pub fn verify_signature_chain(
    raw: &[u8],
    report: &AttestationReport,
    certs: &SnpCertificates,
    now: OffsetDateTime,
    verdict: &mut Verdict,
) -> Option<ProductLine> {
    let vek = Link::parse(&certs.vek, "VEK");
    let issuer = vek.as_ref().ok().and_then(|v| issuer_line(&v.cert));
    let line = issuer.map(|(line, _)| line);
    let kind = vek.as_ref().ok().and_then(|v| vek_kind(&v.cert));

    let line_ok = check_product_line(report, &vek, issuer, verdict);

    let ark = match (&certs.ark, line) {
        (Some(der), _) => Link::parse(der, "supplied ARK"),
        (None, Some(line)) => pinned_ark(line)
            .map_err(LinkError::from)
            .and_then(|der| Link::parse(&der, "built-in ARK")),
        (None, None) => Err(LinkError::NoArk),
    };
    let ask = match (&certs.ask, line, kind) {
        (Some(der), _, _) => Link::parse(der, "supplied ASK"),
        (None, Some(line), Some(VekKind::Vcek)) => pinned_ask(line)
            .map_err(LinkError::from)
            .and_then(|der| Link::parse(&der, "built-in ASK")),
        (None, _, Some(VekKind::Vlek)) => Err(LinkError::NoAsvk),
        (None, _, _) => Err(LinkError::NoAsk),
    };

    check_ark_pinned(&ark, line, verdict);
    verdict.push(signed_by_check(
        &snp::ARK_SELF_SIGNED,
        "the ARK",
        &ark,
        &ark,
    ));
    verdict.push(signed_by_check(
        &snp::ASK_SIGNED_BY_ARK,
        "the ASK",
        &ark,
        &ask,
    ));
    verdict.push(signed_by_check(
        &snp::VEK_SIGNED_BY_ASK,
        "the VEK",
        &ask,
        &vek,
    ));
    check_validity(now, [("VEK", &vek), ("ASK", &ask), ("ARK", &ark)], verdict);
    vek::check_signing_key(report, kind, verdict);
    vek::check_report_signature(raw, report, &vek, verdict);
    vek::check_vek_tcb(report, &vek, line, verdict);
    vek::check_chip_id(report, &vek, kind, line, verdict);

    line.filter(|_| line_ok)
}

fn check_product_line(
    report: &AttestationReport,
    vek: &Result<Link, LinkError>,
    issuer: Option<(ProductLine, VekKind)>,
    verdict: &mut Verdict,
) -> bool {
    let name = &snp::PRODUCT_LINE;
    let expected =
        "the VEK's issuer names Milan, Genoa or Turin, and the report's CPUID (v3+) agrees";
    let from_cpuid = match report.cpuid {
        None => "no CPUID (v2 report)".to_string(),
        Some(c) => match c.product_line() {
            Some(l) => format!("CPUID {c} ({l})"),
            None => format!("CPUID {c} (unknown line)"),
        },
    };
    let check = match (vek, issuer) {
        (Err(e), _) => Check::fail(name, expected, from_cpuid, e.to_string()),
        (Ok(v), None) => {
            let cn = common_name(&v.cert.tbs_certificate.issuer).unwrap_or_default();
            let reason = format!("VEK issuer CN {cn:?} names no known product line");
            Check::fail(name, expected, from_cpuid, reason)
        }
        (Ok(_), Some((line, _))) => {
            let found = format!("chain {line}; {from_cpuid}");
            match report.cpuid.map(|c| c.product_line()) {
                None => Check::pass(name, expected, found),
                Some(Some(l)) if l == line => Check::pass(name, expected, found),
                Some(Some(l)) => Check::fail(
                    name,
                    expected,
                    found,
                    format!("the report's CPU is {l} but the VEK is a {line} key"),
                ),
                Some(None) => Check::fail(
                    name,
                    expected,
                    found,
                    "the report's CPUID names no known product line",
                ),
            }
        }
    };
    let passed = check.passed();
    verdict.push(check);
    passed
}

fn check_ark_pinned(
    ark: &Result<Link, LinkError>,
    line: Option<ProductLine>,
    verdict: &mut Verdict,
) {
    let name = &snp::ARK_PINNED;
    let expected = match line {
        Some(line) => format!("AMD's pinned ARK-{line}"),
        None => "AMD's pinned ARK for the VEK's product line".into(),
    };
    let check = match (ark, line) {
        (Err(e), _) => Check::fail(name, expected, "no ARK", e.to_string()),
        (Ok(a), None) => Check::fail(
            name,
            expected,
            a.cn(),
            "the product line is unknown, so there is no pinned ARK to compare with",
        ),
        (Ok(a), Some(line)) => {
            let found = format!("{} {}", a.source, a.cn());
            match pinned_ark(line) {
                Err(e) => Check::fail(name, expected, found, e.to_string()),
                Ok(pinned) if pinned == a.der => Check::pass(name, expected, found),
                Ok(_) => {
                    let other = ProductLine::ALL
                        .into_iter()
                        .find(|l| pinned_ark(*l).is_ok_and(|p| p == a.der));
                    let reason = match other {
                        Some(other) => format!("the ARK is AMD's {other} root, not {line}'s"),
                        None => "the ARK is not AMD's pinned root certificate".into(),
                    };
                    Check::fail(name, expected, found, reason)
                }
            }
        }
    };
    verdict.push(check);
}

/// `subject` names `issuer` as its issuer and carries a valid RSASSA-PSS signature by it.
fn signed_by_check(
    name: &'static CheckId,
    what: &str,
    issuer: &Result<Link, LinkError>,
    subject: &Result<Link, LinkError>,
) -> Check {
    let (issuer, subject) = match (issuer, subject) {
        (Ok(i), Ok(s)) => (i, s),
        (Err(e), _) | (_, Err(e)) => {
            return Check::fail(
                name,
                format!("{what} signed by its issuer"),
                "",
                e.to_string(),
            )
        }
    };
    let expected = format!("{what} signed by {} ({})", issuer.cn(), issuer.source);
    let found = format!("{} ({})", subject.cn(), subject.source);
    match signature::verify_certificate(&subject.cert, &issuer.cert, AMD_CERTIFICATES) {
        Ok(_) => Check::pass(name, expected, found),
        Err(reason) => Check::fail(name, expected, found, reason.to_string()),
    }
}

fn check_validity<const N: usize>(
    now: OffsetDateTime,
    links: [(&str, &Result<Link, LinkError>); N],
    verdict: &mut Verdict,
) {
    let name = &snp::CERT_VALIDITY;
    let expected = format!("VEK, ASK and ARK valid at {}", crate::format_time(now));
    let mut found = Vec::new();
    let mut problems = Vec::new();
    let now_s = now.unix_timestamp();
    for (what, link) in links {
        let link = match link {
            Ok(l) => l,
            Err(e) => {
                problems.push(format!("{what}: {e}"));
                continue;
            }
        };
        let v = &link.cert.tbs_certificate.validity;
        let secs = |t: x509_cert::time::Time| {
            i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
        };
        let (from, to) = (secs(v.not_before), secs(v.not_after));
        found.push(format!("{what} {} to {}", v.not_before, v.not_after));
        if now_s < from {
            problems.push(format!("{what} is not valid before {}", v.not_before));
        } else if now_s > to {
            problems.push(format!("{what} expired at {}", v.not_after));
        }
    }
    let found = found.join("; ");
    verdict.push(if problems.is_empty() {
        Check::pass(name, expected, found)
    } else {
        Check::fail(name, expected, found, problems.join("; "))
    });
}
