//! AMD chain and report signature: the real Milan report and VCEK, the Turin VCEK against a
//! synthetic report, wrong roots, and every single-byte change to the signed bytes.

use silk_attestation::checks::{self, snp};
use silk_attestation::snp::certs::{pem_bundle, pinned_ark, CertError, VekExtensions};
use silk_attestation::snp::report::{
    AttestationReport, ProductLine, TcbParts, TcbVersion, REPORT_SIZE, SIGNED_LEN,
};
use silk_attestation::snp::{verify_signature_chain, SnpCertificates};
use silk_attestation::{CheckId, Platform, Verdict};
use time::macros::datetime;
use time::OffsetDateTime;

/// Inside every vector certificate's validity (latest notBefore: Turin VCEK, 2024-11-06).
const NOW: OffsetDateTime = datetime!(2025-06-01 0:00 UTC);

const ALL_CHECKS: [&CheckId; 10] = [
    &snp::PRODUCT_LINE,
    &snp::ARK_PINNED,
    &snp::ARK_SELF_SIGNED,
    &snp::ASK_SIGNED_BY_ARK,
    &snp::VEK_SIGNED_BY_ASK,
    &snp::CERT_VALIDITY,
    &snp::SIGNING_KEY,
    &snp::REPORT_SIGNATURE,
    &snp::VEK_TCB,
    &snp::VEK_CHIP_ID,
];

fn vector(rel: &str) -> Vec<u8> {
    let path = format!("{}/../vectors/snp/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn milan_report() -> Vec<u8> {
    let text = String::from_utf8(vector("milan/report_milan.hex")).expect("hex text");
    hex::decode(text.trim()).expect("hex")
}

fn milan_certs() -> SnpCertificates {
    SnpCertificates::from_vek_and_chain(
        &vector("milan/vcek_milan.der"),
        &vector("milan/cert_chain.pem"),
    )
    .expect("Milan certs load")
}

fn turin_certs() -> SnpCertificates {
    SnpCertificates::from_vek_and_chain(
        &vector("turin/vcek_turin.der"),
        &vector("turin/cert_chain.pem"),
    )
    .expect("Turin certs load")
}

fn verify(
    raw: &[u8],
    certs: &SnpCertificates,
    now: OffsetDateTime,
) -> (Verdict, Option<ProductLine>) {
    let report = AttestationReport::from_bytes(raw).expect("report parses");
    let mut verdict = Verdict::new(Platform::SevSnp);
    let line = verify_signature_chain(raw, &report, certs, now, &mut verdict);
    (verdict, line)
}

fn failed(v: &Verdict) -> Vec<&'static CheckId> {
    v.failures()
        .map(|c| checks::by_name(c.name).expect("a registered check"))
        .collect()
}

fn assert_all_checks_ran(v: &Verdict) {
    let names: Vec<_> = v.checks.iter().map(|c| c.name).collect();
    assert_eq!(names, ALL_CHECKS.map(|c| c.name));
}

#[test]
fn milan_report_verifies_with_supplied_chain() {
    let (v, line) = verify(&milan_report(), &milan_certs(), NOW);
    assert_all_checks_ran(&v);
    assert!(v.accepted(), "failures: {:#?}", failed(&v));
    assert_eq!(line, Some(ProductLine::Milan));
}

#[test]
fn milan_report_verifies_with_built_in_chain() {
    let certs = SnpCertificates::from_vek(&vector("milan/vcek_milan.der")).expect("VCEK loads");
    assert_eq!((certs.ask.as_ref(), certs.ark.as_ref()), (None, None));
    let (v, line) = verify(&milan_report(), &certs, NOW);
    assert_all_checks_ran(&v);
    assert!(
        v.accepted(),
        "failures: {:#?}",
        v.failures().collect::<Vec<_>>()
    );
    assert_eq!(line, Some(ProductLine::Milan));
    assert!(v
        .check(&snp::ARK_PINNED)
        .is_some_and(|c| c.found.contains("built-in")));
}

#[test]
fn milan_report_against_turin_vcek_fails_signature_tcb_and_chip_id() {
    let (v, line) = verify(&milan_report(), &turin_certs(), NOW);
    assert_all_checks_ran(&v);
    assert!(!v.accepted());
    assert_eq!(
        failed(&v),
        [&snp::REPORT_SIGNATURE, &snp::VEK_TCB, &snp::VEK_CHIP_ID]
    );
    // The chain itself is a sound Turin chain; only its binding to this report fails.
    assert_eq!(line, Some(ProductLine::Turin));
}

#[test]
fn genoa_ark_in_a_milan_chain_is_rejected() {
    let mut certs = milan_certs();
    certs.ark = Some(pinned_ark(ProductLine::Genoa).expect("built-in"));
    let (v, _) = verify(&milan_report(), &certs, NOW);
    assert_all_checks_ran(&v);
    assert_eq!(failed(&v), [&snp::ARK_PINNED, &snp::ASK_SIGNED_BY_ARK]);
    let pinned = v.check(&snp::ARK_PINNED).expect("ran");
    assert!(
        format!("{:?}", pinned.outcome).contains("Genoa"),
        "{pinned:?}"
    );
}

#[test]
fn turin_chain_for_a_milan_vcek_is_rejected() {
    let milan = milan_certs();
    let turin = turin_certs();
    let certs = SnpCertificates {
        vek: milan.vek,
        ask: turin.ask,
        ark: turin.ark,
    };
    let (v, _) = verify(&milan_report(), &certs, NOW);
    assert_all_checks_ran(&v);
    assert!(!v.accepted());
    let failures = failed(&v);
    assert!(failures.contains(&&snp::ARK_PINNED), "{failures:?}");
    assert!(failures.contains(&&snp::VEK_SIGNED_BY_ASK), "{failures:?}");
}

#[test]
fn a_self_made_ark_is_not_pinned() {
    // The Milan ASK passed off as the ARK: not the pinned root and not self-signed.
    let mut certs = milan_certs();
    certs.ark = certs.ask.clone();
    let (v, _) = verify(&milan_report(), &certs, NOW);
    let failures = failed(&v);
    assert!(failures.contains(&&snp::ARK_PINNED), "{failures:?}");
    assert!(failures.contains(&&snp::ARK_SELF_SIGNED), "{failures:?}");
}

/// Every single-byte change to the signed part of the report is rejected, either by the
/// parser or by the signature check; nothing else in the chain could notice it.
#[test]
fn every_signed_byte_is_covered() {
    let raw = milan_report();
    let certs = milan_certs();
    for pos in 0..SIGNED_LEN {
        for mask in [0x01u8, 0xFF] {
            let mut bad = raw.clone();
            bad[pos] ^= mask;
            let Ok(report) = AttestationReport::from_bytes(&bad) else {
                continue;
            };
            let mut v = Verdict::new(Platform::SevSnp);
            verify_signature_chain(&bad, &report, &certs, NOW, &mut v);
            assert!(!v.accepted(), "byte {pos:#x} ^ {mask:#04x} accepted");
            assert!(
                failed(&v).contains(&&snp::REPORT_SIGNATURE),
                "byte {pos:#x} ^ {mask:#04x}: {:?}",
                failed(&v)
            );
        }
    }
}

#[test]
fn every_signature_byte_is_covered() {
    let raw = milan_report();
    let certs = milan_certs();
    for pos in SIGNED_LEN..REPORT_SIZE {
        for mask in [0x01u8, 0xFF] {
            let mut bad = raw.clone();
            bad[pos] ^= mask;
            let Ok(report) = AttestationReport::from_bytes(&bad) else {
                assert!(
                    pos >= SIGNED_LEN + 144,
                    "R/S byte {pos:#x} rejected by the parser"
                );
                continue;
            };
            let mut v = Verdict::new(Platform::SevSnp);
            verify_signature_chain(&bad, &report, &certs, NOW, &mut v);
            assert_eq!(
                failed(&v),
                [&snp::REPORT_SIGNATURE],
                "byte {pos:#x} ^ {mask:#04x}"
            );
        }
    }
}

#[test]
fn raw_bytes_must_match_the_parsed_report() {
    let raw = milan_report();
    let mut report = AttestationReport::from_bytes(&raw).expect("parses");
    report.vmpl = 3;
    let mut v = Verdict::new(Platform::SevSnp);
    verify_signature_chain(&raw, &report, &milan_certs(), NOW, &mut v);
    assert_eq!(failed(&v), [&snp::REPORT_SIGNATURE]);
}

#[test]
fn certificates_outside_their_validity_are_rejected() {
    let raw = milan_report();
    for now in [
        datetime!(2023-01-01 0:00 UTC),
        datetime!(2031-01-01 0:00 UTC),
    ] {
        let (v, _) = verify(&raw, &milan_certs(), now);
        assert_eq!(failed(&v), [&snp::CERT_VALIDITY], "at {now}");
    }
    let (v, _) = verify(&raw, &milan_certs(), datetime!(2046-01-01 0:00 UTC));
    let check = v.check(&snp::CERT_VALIDITY).expect("ran");
    let reason = format!("{:?}", check.outcome);
    assert!(
        reason.contains("VEK") && reason.contains("ASK") && reason.contains("ARK"),
        "{reason}"
    );
}

#[test]
fn signing_key_must_match_the_certificate() {
    // SIGNING_KEY lives in the signed bytes, so the signature fails too; the point here is
    // that signing_key fails on its own account.
    for (flags, why) in [
        (1u32 << 2, "VLEK"),
        (7 << 2, "not signed"),
        (3 << 2, "reserved"),
        (0b10, "MASK_CHIP_KEY"),
    ] {
        let mut raw = milan_report();
        raw[0x48..0x4C].copy_from_slice(&flags.to_le_bytes());
        let (v, _) = verify(&raw, &milan_certs(), NOW);
        assert_eq!(
            failed(&v),
            [&snp::SIGNING_KEY, &snp::REPORT_SIGNATURE],
            "{flags:#x}"
        );
        let reason = format!("{:?}", v.check(&snp::SIGNING_KEY).expect("ran").outcome);
        assert!(reason.contains(why), "{reason}");
    }
}

#[test]
fn cpuid_naming_another_line_fails_product_line() {
    let mut raw = milan_report();
    raw[0..4].copy_from_slice(&3u32.to_le_bytes());
    raw[0x188..0x18B].copy_from_slice(&[0x19, 0x11, 0x01]); // Genoa
    let (v, line) = verify(&raw, &milan_certs(), NOW);
    assert_eq!(failed(&v), [&snp::PRODUCT_LINE, &snp::REPORT_SIGNATURE]);
    assert_eq!(line, None);
    raw[0x188..0x18B].copy_from_slice(&[0x19, 0x01, 0x01]); // Milan: agrees
    let (v, line) = verify(&raw, &milan_certs(), NOW);
    assert_eq!(failed(&v), [&snp::REPORT_SIGNATURE]);
    assert_eq!(line, Some(ProductLine::Milan));
}

#[test]
fn masked_chip_id_fails_vek_chip_id() {
    let mut raw = milan_report();
    raw[0x1A0..0x1E0].fill(0);
    let (v, _) = verify(&raw, &milan_certs(), NOW);
    assert_eq!(failed(&v), [&snp::REPORT_SIGNATURE, &snp::VEK_CHIP_ID]);
    let reason = format!("{:?}", v.check(&snp::VEK_CHIP_ID).expect("ran").outcome);
    assert!(reason.contains("masked"), "{reason}");
}

#[test]
fn vek_extensions_per_line() {
    let milan = VekExtensions::from_der(&vector("milan/vcek_milan.der")).expect("parses");
    assert_eq!(milan.product_name.as_deref(), Some("Milan-B0"));
    assert_eq!(milan.hw_id.as_ref().map(Vec::len), Some(64));
    assert_eq!(
        milan
            .tcb_parts(ProductLine::Milan)
            .expect("Milan layout")
            .to_string(),
        "bl=3 tee=0 snp=8 ucode=115"
    );
    assert!(matches!(
        milan.tcb_parts(ProductLine::Turin),
        Err(CertError::MissingExtension { name: "fmcSPL", .. })
    ));

    let turin = VekExtensions::from_der(&vector("turin/vcek_turin.der")).expect("parses");
    assert_eq!(turin.product_name.as_deref(), Some("Turin"));
    assert_eq!(turin.hw_id.as_ref().map(Vec::len), Some(8));
    assert_eq!(
        turin.tcb_parts(ProductLine::Turin).expect("Turin layout"),
        TcbParts {
            fmc: Some(0),
            bootloader: 0,
            tee: 0,
            snp: 0,
            microcode: 9
        }
    );
    assert!(matches!(
        turin.tcb_parts(ProductLine::Milan),
        Err(CertError::UnexpectedExtension { name: "fmcSPL", .. })
    ));
}

/// DER of an AMD SPL extension's OID 1.3.6.1.4.1.3704.1.3.`arc` followed by its value's
/// OCTET STRING header and a one-byte INTEGER.
fn spl_prefix(arc: u8) -> Vec<u8> {
    let mut p = vec![
        0x06, 0x0A, 0x2B, 0x06, 0x01, 0x04, 0x01, 0x9C, 0x78, 0x01, 0x03, arc,
    ];
    p.extend([0x04, 0x03, 0x02, 0x01]);
    p
}

/// A copy of `der` with the one-byte SPL of extension `arc` set to `value` (< 0x80).
fn set_spl(der: &mut [u8], arc: u8, value: u8) {
    let prefix = spl_prefix(arc);
    let at = der
        .windows(prefix.len())
        .position(|w| w == prefix.as_slice())
        .unwrap_or_else(|| panic!("SPL .3.{arc} not found"));
    der[at + prefix.len()] = value;
}

/// A synthetic v3 Turin report for `vek`: its REPORTED_TCB is `tcb` and its CHIP_ID the
/// VCEK's 8-byte hwID. No one signed it.
fn turin_report(tcb: TcbVersion, hw_id: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; REPORT_SIZE];
    b[0..4].copy_from_slice(&3u32.to_le_bytes());
    b[0x34..0x38].copy_from_slice(&1u32.to_le_bytes());
    b[0x180..0x188].copy_from_slice(&tcb.0.to_le_bytes());
    b[0x188..0x18B].copy_from_slice(&[0x1A, 0x02, 0x00]);
    b[0x1A0..0x1A0 + hw_id.len()].copy_from_slice(hw_id);
    b[0x2A0] = 1; // a non-zero R and S, so the signature is well-formed but wrong
    b[0x2E8] = 1;
    b
}

#[test]
fn turin_vcek_tcb_uses_the_turin_layout() {
    let certs = turin_certs();
    let ext = VekExtensions::from_der(&certs.vek).expect("parses");
    let hw_id = ext.hw_id.clone().expect("hwID");
    let parts = ext.tcb_parts(ProductLine::Turin).expect("Turin layout");
    let raw = turin_report(TcbVersion::from_parts(parts, ProductLine::Turin), &hw_id);
    let (v, line) = verify(&raw, &certs, NOW);
    assert_all_checks_ran(&v);
    assert_eq!(failed(&v), [&snp::REPORT_SIGNATURE]);
    assert_eq!(line, Some(ProductLine::Turin));
}

#[test]
fn turin_tcb_with_distinct_spls_passes_only_in_the_turin_layout() {
    // The vector's SPLs are all zero but microcode, where both layouts agree; give each a
    // distinct value in a copy (its ASK signature breaks, which vek_tcb does not depend on).
    let mut certs = turin_certs();
    for (arc, value) in [(9, 4), (1, 1), (2, 2), (3, 3), (8, 0x40)] {
        set_spl(&mut certs.vek, arc, value);
    }
    let ext = VekExtensions::from_der(&certs.vek).expect("parses");
    let parts = ext.tcb_parts(ProductLine::Turin).expect("Turin layout");
    assert_eq!(
        parts,
        TcbParts {
            fmc: Some(4),
            bootloader: 1,
            tee: 2,
            snp: 3,
            microcode: 0x40
        }
    );
    let hw_id = ext.hw_id.clone().expect("hwID");

    let turin = turin_report(TcbVersion::from_parts(parts, ProductLine::Turin), &hw_id);
    let (v, _) = verify(&turin, &certs, NOW);
    assert_eq!(
        failed(&v),
        [&snp::VEK_SIGNED_BY_ASK, &snp::REPORT_SIGNATURE]
    );

    let milan = turin_report(TcbVersion::from_parts(parts, ProductLine::Milan), &hw_id);
    let (v, _) = verify(&milan, &certs, NOW);
    assert_eq!(
        failed(&v),
        [
            &snp::VEK_SIGNED_BY_ASK,
            &snp::REPORT_SIGNATURE,
            &snp::VEK_TCB
        ]
    );
}

#[test]
fn turin_chip_id_must_be_the_hw_id_then_zeros() {
    let certs = turin_certs();
    let ext = VekExtensions::from_der(&certs.vek).expect("parses");
    let hw_id = ext.hw_id.clone().expect("hwID");
    let tcb = TcbVersion::from_parts(
        ext.tcb_parts(ProductLine::Turin).expect("layout"),
        ProductLine::Turin,
    );
    let mut raw = turin_report(tcb, &hw_id);
    raw[0x1A0 + 8] = 1;
    let (v, _) = verify(&raw, &certs, NOW);
    assert_eq!(failed(&v), [&snp::REPORT_SIGNATURE, &snp::VEK_CHIP_ID]);
    let mut raw = turin_report(tcb, &hw_id);
    raw[0x1A0] ^= 1;
    let (v, _) = verify(&raw, &certs, NOW);
    assert_eq!(failed(&v), [&snp::REPORT_SIGNATURE, &snp::VEK_CHIP_ID]);
}

#[test]
fn certificate_loading() {
    let der = vector("milan/vcek_milan.der");
    let chain = vector("milan/cert_chain.pem");
    assert_eq!(pem_bundle(&chain, "chain").expect("two certs").len(), 2);
    // A bundle must hold exactly ASK then ARK.
    let ark_only = vector("roots/milan/ark.pem");
    assert!(matches!(
        SnpCertificates::from_vek_and_chain(&der, &ark_only),
        Err(CertError::BundleSize {
            expected: 2,
            found: 1,
            ..
        })
    ));
    assert!(matches!(
        SnpCertificates::from_vek(b"not a certificate"),
        Err(CertError::Parse { what: "VEK", .. })
    ));
    let mut truncated = der.clone();
    truncated.pop();
    assert!(SnpCertificates::from_vek(&truncated).is_err());
    // PEM and DER of the same certificate load to the same DER.
    let ark_der = pinned_ark(ProductLine::Milan).expect("built-in");
    let certs = SnpCertificates::from_vek(&ark_only).expect("PEM loads");
    assert_eq!(certs.vek, ark_der);
}

#[test]
fn an_unparseable_vek_fails_every_check_that_needs_it() {
    let certs = SnpCertificates {
        vek: b"junk".to_vec(),
        ask: None,
        ark: None,
    };
    let (v, line) = verify(&milan_report(), &certs, NOW);
    assert_all_checks_ran(&v);
    assert_eq!(failed(&v), ALL_CHECKS);
    assert_eq!(line, None);
}
