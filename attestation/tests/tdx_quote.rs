//! TDX and SGX DCAP quotes from the shared vectors, verified with their Intel collateral.

use silk_attestation::tdx::{
    self, CollateralError, Quote, QuoteBody, QuoteError, TcbStatus, TdxCollateral, TeeType,
};
use silk_attestation::{checks, CheckId, Platform, Stage, Verdict};
use time::{Duration, OffsetDateTime};

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../vectors");

fn read(path: &str) -> Vec<u8> {
    let full = format!("{VECTORS}/{path}");
    std::fs::read(&full).unwrap_or_else(|e| panic!("reading {full}: {e}"))
}

fn read_hex(path: &str) -> Vec<u8> {
    let text = String::from_utf8(read(path)).expect("hex vector is text");
    let text = text.trim();
    hex::decode(text.strip_prefix("0x").unwrap_or(text)).expect("hex vector decodes")
}

fn collateral(path: &str) -> TdxCollateral {
    TdxCollateral::from_json(&read(path)).expect("collateral parses")
}

/// A `now` at which every part of the collateral is valid.
fn valid_now(c: &TdxCollateral) -> OffsetDateTime {
    c.latest_issue_date()
}

fn verify_at(
    raw: &[u8],
    c: &TdxCollateral,
    now: OffsetDateTime,
) -> (
    Verdict,
    Result<(Quote, Option<tdx::TcbVerdict>), QuoteError>,
) {
    let mut verdict = Verdict::new(Platform::Tdx);
    let result = tdx::verify(raw, c, now, &mut verdict);
    (verdict, result)
}

fn passed(v: &Verdict, id: &CheckId) -> bool {
    v.check(id)
        .unwrap_or_else(|| panic!("check {} did not run: {v:?}", id.name))
        .passed()
}

#[test]
fn tdx_quote_verifies_within_its_collateral_window() {
    let raw = read("tdx/tdx_quote");
    let c = collateral("tdx/tdx_quote_collateral.json");
    assert!(c.tcb_info_issue_date() <= c.latest_issue_date());
    assert!(c.earliest_next_update() <= c.tcb_info_next_update());
    assert!(c.latest_issue_date() < c.earliest_next_update());

    let (verdict, result) = verify_at(&raw, &c, valid_now(&c));
    let (quote, tcb) = result.expect("parses");
    assert!(verdict.accepted(), "{verdict:#?}");
    let sig = verdict.check(&checks::tdx::QUOTE_SIGNATURE).expect("ran");
    assert_eq!(sig.stage, Stage::Signature);
    let window = verdict.check(&checks::tdx::COLLATERAL_WINDOW).expect("ran");
    assert_eq!(window.stage, Stage::Freshness);

    let tcb = tcb.expect("status reported when the signature verifies");
    assert_eq!(tcb.status, TcbStatus::UpToDate);
    assert!(tcb.advisory_ids.is_empty());

    assert_eq!((quote.version, quote.tee_type), (4, TeeType::Tdx));
    let td = quote.td_report().expect("TD body");
    assert_ne!(td.mr_td, [0; 48]);
    assert_ne!(td.mr_seam, [0; 48]);
    assert!(!td.td_attributes.debug());
    assert!(td.td_attributes.sept_ve_disable());
    assert_eq!(td.tee_tcb_svn2, None, "a v4 quote has a TDX 1.0 body");
    assert_eq!(quote.report_data(), &td.report_data);
}

#[test]
fn tdx_quote_is_rejected_one_second_after_the_collateral_goes_stale() {
    let raw = read("tdx/tdx_quote");
    let c = collateral("tdx/tdx_quote_collateral.json");
    let (verdict, result) = verify_at(&raw, &c, c.earliest_next_update() + Duration::seconds(1));
    let (_, tcb) = result.expect("still parses");
    assert!(!verdict.accepted());
    assert!(!passed(&verdict, &checks::tdx::COLLATERAL_WINDOW));
    let window = verdict.check(&checks::tdx::COLLATERAL_WINDOW).expect("ran");
    assert!(
        format!("{:?}", window.outcome).contains("stale"),
        "{window:?}"
    );
    // dcap-qvl rejects it too, for its own reason (an expired CRL or JSON item).
    assert!(!passed(&verdict, &checks::tdx::QUOTE_SIGNATURE));
    assert!(tcb.is_none());

    // At the earliest nextUpdate itself the collateral is still usable.
    let (verdict, _) = verify_at(&raw, &c, c.earliest_next_update());
    assert!(passed(&verdict, &checks::tdx::COLLATERAL_WINDOW));
}

#[test]
fn tdx_quote_is_rejected_before_its_collateral_was_issued() {
    let raw = read("tdx/tdx_quote");
    let c = collateral("tdx/tdx_quote_collateral.json");
    let (verdict, _) = verify_at(&raw, &c, c.latest_issue_date() - Duration::seconds(1));
    assert!(!passed(&verdict, &checks::tdx::COLLATERAL_WINDOW));
    assert!(!verdict.accepted());
}

/// The "outdated" vector's platform TCB is below every level its TCB info lists, so
/// dcap-qvl 0.7.1 finds no TCB level at all (Intel's QVL: TCB not supported) rather than
/// `OutOfDate`; its own tests only reach a status by overriding the TCB info. Every
/// signature step runs before that match, so the signature check passes and the failure
/// is named `tdx.tcb_level`.
#[test]
fn outdated_quote_is_a_v5_td15_quote_without_a_matching_tcb_level() {
    let raw = read("tdx/tdx_quote_outdated");
    let c = collateral("tdx/tdx_quote_outdated_collateral.json");
    let (verdict, result) = verify_at(&raw, &c, valid_now(&c));
    let (quote, tcb) = result.expect("parses");
    assert!(passed(&verdict, &checks::tdx::COLLATERAL_WINDOW));
    assert!(
        passed(&verdict, &checks::tdx::QUOTE_SIGNATURE),
        "{verdict:#?}"
    );
    let level = verdict.check(&checks::tdx::TCB_LEVEL).expect("ran");
    assert_eq!(level.stage, Stage::Platform);
    assert!(
        format!("{:?}", level.outcome).contains("No matching TCB level found"),
        "{level:?}"
    );
    assert!(tcb.is_none());
    assert!(!verdict.accepted());

    assert_eq!((quote.version, quote.tee_type), (5, TeeType::Tdx));
    let td = quote.td_report().expect("TD body");
    assert!(
        td.tee_tcb_svn2.is_some(),
        "body type 3 carries TEE_TCB_SVN2"
    );
    assert_eq!(td.mr_service_td, Some([0; 48]));
    assert_ne!(td.mr_td, [0; 48]);
    assert_ne!(td.tee_tcb_svn, [0; 16]);
}

#[test]
fn mismatching_collateral_is_rejected() {
    // The good quote's platform (FMSPC B0C06F000000) with another platform's collateral.
    let raw = read("tdx/tdx_quote");
    let other = collateral("tdx/tdx_quote_outdated_collateral.json");
    let (verdict, result) = verify_at(&raw, &other, valid_now(&other));
    let (_, tcb) = result.expect("parses");
    // Both collaterals are genuinely Intel-signed, so the signatures verify; the TCB
    // info is for another FMSPC, which the TCB-level step names with both values.
    let level = verdict.check(&checks::tdx::TCB_LEVEL).expect("ran");
    let text = format!("{:?}", level.outcome);
    assert!(
        text.contains("the FMSPCs differ")
            && text.contains("B0C06F000000")
            && text.contains("90C06F000000"),
        "{level:?}"
    );
    assert!(tcb.is_none());
    assert!(!verdict.accepted());

    // SGX collateral (QE identity "QE", SGX TCB info) for a TDX quote.
    let sgx = collateral("sgx/sgx_quote_collateral.json");
    let (verdict, _) = verify_at(&raw, &sgx, valid_now(&sgx));
    assert!(!verdict.accepted(), "{verdict:#?}");
    assert!(verdict
        .failures()
        .any(|c| c.is(&checks::tdx::QUOTE_SIGNATURE) || c.is(&checks::tdx::TCB_LEVEL)));
}

#[test]
fn collateral_with_a_tampered_tcb_info_is_rejected() {
    let raw = read("tdx/tdx_quote");
    let json = String::from_utf8(read("tdx/tdx_quote_collateral.json")).expect("utf-8");
    // Claim a later TCB evaluation than Intel signed (the first hit is inside tcb_info,
    // whose JSON the collateral carries as an escaped string).
    let tampered = json.replacen(
        r#"\"tcbEvaluationDataNumber\":17"#,
        r#"\"tcbEvaluationDataNumber\":18"#,
        1,
    );
    assert_ne!(tampered, json, "the tamper must change the collateral");
    let c = TdxCollateral::from_json(tampered.as_bytes()).expect("still well-formed");
    let (verdict, _) = verify_at(&raw, &c, valid_now(&c));
    assert!(
        !passed(&verdict, &checks::tdx::QUOTE_SIGNATURE),
        "{verdict:#?}"
    );
}

#[test]
fn hex_quotes_parse_with_their_fields_exposed() {
    for path in ["tdx/tdx-quote.hex", "tdx/quote-from-tappd.hex"] {
        let quote = Quote::from_bytes(&read_hex(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(quote.tee_type, TeeType::Tdx, "{path}");
        let QuoteBody::Td(td) = &quote.body else {
            panic!("{path}: not a TD body");
        };
        assert_ne!(td.mr_td, [0; 48], "{path}: MRTD");
        assert_ne!(td.mr_seam, [0; 48], "{path}: MRSEAM");
        assert_ne!(td.tee_tcb_svn, [0; 16], "{path}: TEE_TCB_SVN");
        assert!(td.rtmr.iter().any(|r| *r != [0; 48]), "{path}: RTMRs");
        assert_ne!(td.xfam, 0, "{path}: XFAM");
    }
}

#[test]
fn sgx_quote_verifies_and_parses_as_sgx() {
    let raw = read("sgx/sgx_quote");
    let c = collateral("sgx/sgx_quote_collateral.json");
    let mut verdict = Verdict::new(Platform::Sgx);
    let (quote, tcb) = tdx::verify(&raw, &c, valid_now(&c), &mut verdict).expect("parses");
    assert!(verdict.accepted(), "{verdict:#?}");
    assert_eq!((quote.version, quote.tee_type), (3, TeeType::Sgx));
    let QuoteBody::Sgx(sgx) = &quote.body else {
        panic!("not an SGX body");
    };
    assert_ne!(sgx.mr_enclave, [0; 32]);
    assert_ne!(sgx.mr_signer, [0; 32]);
    assert!(!sgx.debug());
    let tcb = tcb.expect("status");
    assert_eq!(tcb.status, TcbStatus::ConfigurationAndSwHardeningNeeded);
    assert_eq!(tcb.advisory_ids, ["INTEL-SA-00289", "INTEL-SA-00615"]);
}

#[test]
fn collateral_that_is_not_json_is_refused() {
    assert!(matches!(
        TdxCollateral::from_json(b"not json"),
        Err(CollateralError::Json { .. })
    ));
}

#[test]
fn truncated_quote_is_a_parse_error() {
    let raw = read("tdx/tdx_quote");
    for len in [0, 47, 48, 631, 632, 700, 4935] {
        assert!(Quote::from_bytes(&raw[..len]).is_err(), "length {len}");
    }
}

#[test]
fn zero_padding_is_allowed_and_other_trailing_bytes_are_not() {
    let mut raw = read("tdx/tdx_quote");
    let parsed = Quote::from_bytes(&raw).expect("parses");
    raw.extend_from_slice(&[0; 16]);
    assert_eq!(Quote::from_bytes(&raw), Ok(parsed));
    let last = raw.len() - 1;
    raw[last] = 0x01;
    assert!(matches!(
        Quote::from_bytes(&raw),
        Err(QuoteError::TrailingBytes { offset, end: 4936 }) if offset == last
    ));
}

#[test]
fn unsigned_signature_data_fields_have_one_encoding() {
    let raw = read("tdx/tdx_quote");
    // Offsets in tdx_quote: header 0..48, TD body 48..632, signature data length 632..636,
    // ECDSA signature and key 636..764, certification data type 764 and size 766, QE
    // report certification data from 770, PCK chain PEM 1258..4936, zero padding after.
    let cases: [(usize, &str); 5] = [
        (632, "signature_data_len"),
        (764, "certification_data.type"),
        (1285, "pck_cert_chain"), // the line feed after "-----BEGIN CERTIFICATE-----"
        (4500, "pck_cert_chain"), // inside the root CA copy
        (4935, "pck_cert_chain"), // the chain's NUL terminator
    ];
    for (offset, field) in cases {
        let mut mutated = raw.clone();
        mutated[offset] ^= 0x01;
        match Quote::from_bytes(&mutated) {
            Err(QuoteError::NonCanonical { field: f, .. }) => assert_eq!(f, field, "byte {offset}"),
            other => panic!("byte {offset}: expected NonCanonical {field}, got {other:?}"),
        }
    }
}
