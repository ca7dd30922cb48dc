//! Each policy rule in both directions: a report that meets it passes that check, one that
//! does not fails it by name. Reports are the real vectors, parsed, with the one field under
//! test changed in the parsed struct (policy evaluation is separate from signatures).

use silk_attestation::checks::{snp, tdx};
use silk_attestation::policy::{Policy, SnpPolicy, TdxPolicy};
use silk_attestation::snp::report::{AttestationReport, GuestPolicy, PlatformInfo, ProductLine};
use silk_attestation::tdx::{Quote, QuoteBody, TcbStatus, TcbVerdict, TdReport, TdxCollateral};
use silk_attestation::{CheckId, Platform, Verdict};
use time::macros::datetime;
use time::OffsetDateTime;

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../vectors");

fn milan() -> AttestationReport {
    let text = std::fs::read_to_string(format!("{VECTORS}/snp/milan/report_milan.hex")).unwrap();
    AttestationReport::from_bytes(&hex::decode(text.trim()).unwrap()).unwrap()
}

const MILAN_MEASUREMENT: &str = "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f";

fn snp_policy(extra: &str) -> SnpPolicy {
    let text = format!(
        "[snp]\nmeasurements = [\"{MILAN_MEASUREMENT}\"]\n\
         min_tcb = {{ bootloader = 0, tee = 0, snp = 0, microcode = 0 }}\n{extra}"
    );
    Policy::from_toml(&text).unwrap().snp.unwrap()
}

/// Evaluates and returns whether the named check passed (panics if it did not run).
fn snp_check(policy: &SnpPolicy, report: &AttestationReport, id: &CheckId) -> bool {
    let mut v = Verdict::new(Platform::SevSnp);
    policy.evaluate(report, Some(ProductLine::Milan), &mut v);
    v.check(id)
        .unwrap_or_else(|| panic!("check {} did not run: {:?}", id.name, v.checks))
        .passed()
}

#[test]
fn baseline_policy_accepts_the_milan_report() {
    let mut v = Verdict::new(Platform::SevSnp);
    snp_policy("").evaluate(&milan(), Some(ProductLine::Milan), &mut v);
    assert!(
        v.failures().next().is_none(),
        "{:?}",
        v.failures().collect::<Vec<_>>()
    );
}

#[test]
fn snp_measurement_allowlist() {
    let r = milan();
    assert!(snp_check(&snp_policy(""), &r, &snp::MEASUREMENT));
    let other = Policy::from_toml(&format!(
        "[snp]\nmeasurements = [\"{}\"]\nmin_tcb = {{}}\n",
        "00".repeat(48)
    ))
    .unwrap()
    .snp
    .unwrap();
    assert!(!snp_check(&other, &r, &snp::MEASUREMENT));
    let empty = Policy::from_toml("[snp]\nmin_tcb = {}\n")
        .unwrap()
        .snp
        .unwrap();
    assert!(!snp_check(&empty, &r, &snp::MEASUREMENT));
}

#[test]
fn snp_any_measurement_passes_but_warns() {
    let p = Policy::from_toml("[snp]\nallow_any_measurement = true\nmin_tcb = {}\n")
        .unwrap()
        .snp
        .unwrap();
    let mut v = Verdict::new(Platform::SevSnp);
    p.evaluate(&milan(), Some(ProductLine::Milan), &mut v);
    assert!(v.check(&snp::MEASUREMENT).unwrap().passed());
    assert!(v.warnings.iter().any(|w| w.contains("ANY measurement")));
}

#[test]
fn snp_debug_forbidden_unless_allowed() {
    let mut r = milan();
    assert!(snp_check(&snp_policy(""), &r, &snp::DEBUG));
    r.policy = GuestPolicy(r.policy.0 | 1 << 19);
    assert!(!snp_check(&snp_policy(""), &r, &snp::DEBUG));
    assert!(snp_check(
        &snp_policy("allow_debug = true"),
        &r,
        &snp::DEBUG
    ));
}

#[test]
fn snp_min_tcb_each_component() {
    let r = milan(); // bl=3 tee=0 snp=8 ucode=115
    let at = |tcb: &str| {
        let text = format!("[snp]\nmeasurements = [\"{MILAN_MEASUREMENT}\"]\nmin_tcb = {tcb}\n");
        Policy::from_toml(&text).unwrap().snp.unwrap()
    };
    let exact = at("{ bootloader = 3, tee = 0, snp = 8, microcode = 115 }");
    assert!(snp_check(&exact, &r, &snp::MIN_TCB));
    for above in [
        "{ bootloader = 4 }",
        "{ tee = 1 }",
        "{ snp = 9 }",
        "{ microcode = 116 }",
        "{ fmc = 0 }", // Milan has no FMC component
    ] {
        assert!(!snp_check(&at(above), &r, &snp::MIN_TCB), "{above}");
    }
    // No min_tcb at all is a failure, not an acceptance by default.
    let none = Policy::from_toml(&format!(
        "[snp]\nmeasurements = [\"{MILAN_MEASUREMENT}\"]\n"
    ))
    .unwrap()
    .snp
    .unwrap();
    assert!(!snp_check(&none, &r, &snp::MIN_TCB));
    // Without a known product line the TCB cannot be decoded.
    let mut v = Verdict::new(Platform::SevSnp);
    snp_policy("").evaluate(&r, None, &mut v);
    assert!(!v.check(&snp::MIN_TCB).unwrap().passed());
}

#[test]
fn snp_report_data() {
    let r = milan();
    let good = hex::encode(r.report_data);
    let p = snp_policy(&format!("report_data = \"{good}\""));
    assert!(snp_check(&p, &r, &snp::REPORT_DATA));
    let p = snp_policy(&format!("report_data = \"{}\"", "11".repeat(64)));
    assert!(!snp_check(&p, &r, &snp::REPORT_DATA));
    // Without the rule the verdict says the report is bound to nothing.
    let mut v = Verdict::new(Platform::SevSnp);
    snp_policy("").evaluate(&r, Some(ProductLine::Milan), &mut v);
    assert!(v
        .warnings
        .iter()
        .any(|w| w.contains("REPORT_DATA not checked")));
}

#[test]
fn snp_host_data() {
    let r = milan();
    let good = hex::encode(r.host_data);
    assert!(snp_check(
        &snp_policy(&format!("host_data = \"{good}\"")),
        &r,
        &snp::HOST_DATA
    ));
    let bad = snp_policy(&format!("host_data = \"{}\"", "11".repeat(32)));
    assert!(!snp_check(&bad, &r, &snp::HOST_DATA));
}

#[test]
fn snp_smt_rule() {
    let mut r = milan();
    let strict = snp_policy("allow_smt = false");
    assert!(snp_check(&snp_policy(""), &r, &snp::SMT));
    r.policy = GuestPolicy(r.policy.0 | 1 << 16);
    r.platform_info = PlatformInfo(1);
    assert!(!snp_check(&strict, &r, &snp::SMT));
    r.policy = GuestPolicy(r.policy.0 & !(1 << 16));
    assert!(!snp_check(&strict, &r, &snp::SMT), "platform SMT on");
    r.platform_info = PlatformInfo(0);
    assert!(snp_check(&strict, &r, &snp::SMT));
}

#[test]
fn snp_migration_agent_rule() {
    let mut r = milan();
    assert!(snp_check(&snp_policy(""), &r, &snp::MIGRATION_AGENT));
    r.policy = GuestPolicy(r.policy.0 | 1 << 18);
    assert!(!snp_check(&snp_policy(""), &r, &snp::MIGRATION_AGENT));
    let allow = snp_policy("allow_migration_agent = true");
    assert!(snp_check(&allow, &r, &snp::MIGRATION_AGENT));
}

#[test]
fn snp_single_socket_rule() {
    let mut r = milan();
    let p = snp_policy("require_single_socket = true");
    assert!(!snp_check(&p, &r, &snp::SINGLE_SOCKET));
    r.policy = GuestPolicy(r.policy.0 | 1 << 20);
    assert!(snp_check(&p, &r, &snp::SINGLE_SOCKET));
}

#[test]
fn snp_vmpl_rule() {
    let mut r = milan();
    assert!(snp_check(&snp_policy(""), &r, &snp::VMPL));
    r.vmpl = 2;
    assert!(!snp_check(&snp_policy(""), &r, &snp::VMPL));
    assert!(snp_check(&snp_policy("max_vmpl = 2"), &r, &snp::VMPL));
    assert!(Policy::from_toml("[snp]\nmax_vmpl = 4\n").is_err());
}

#[test]
fn snp_id_and_author_keys() {
    let mut r = milan();
    let digest = "ab".repeat(48);
    let p = snp_policy(&format!(
        "id_key_digests = [\"{digest}\"]\nauthor_key_digests = [\"{digest}\"]"
    ));
    assert!(!snp_check(&p, &r, &snp::ID_KEY));
    assert!(!snp_check(&p, &r, &snp::AUTHOR_KEY));
    r.id_key_digest = [0xab; 48];
    r.author_key_digest = [0xab; 48];
    assert!(snp_check(&p, &r, &snp::ID_KEY));
    assert!(!snp_check(&p, &r, &snp::AUTHOR_KEY), "AUTHOR_KEY_EN is off");
    r.author_key_en = true;
    assert!(snp_check(&p, &r, &snp::AUTHOR_KEY));
}

#[test]
fn snp_guest_svn_and_product() {
    let r = milan();
    assert!(snp_check(
        &snp_policy("min_guest_svn = 0"),
        &r,
        &snp::GUEST_SVN
    ));
    let above = snp_policy(&format!("min_guest_svn = {}", r.guest_svn + 1));
    assert!(!snp_check(&above, &r, &snp::GUEST_SVN));
    assert!(snp_check(
        &snp_policy("products = [\"Milan\"]"),
        &r,
        &snp::PRODUCT
    ));
    let others = snp_policy("products = [\"Genoa\", \"Turin\"]");
    assert!(!snp_check(&others, &r, &snp::PRODUCT));
    assert!(Policy::from_toml("[snp]\nproducts = [\"Naples\"]\n").is_err());
}

// ---- TDX ----

fn tdx_quote() -> TdReport {
    let raw = std::fs::read(format!("{VECTORS}/tdx/tdx_quote")).unwrap();
    match Quote::from_bytes(&raw).unwrap().body {
        QuoteBody::Td(td) => td,
        QuoteBody::Sgx(_) => panic!("tdx_quote is a TD quote"),
    }
}

fn collateral() -> TdxCollateral {
    let json = std::fs::read(format!("{VECTORS}/tdx/tdx_quote_collateral.json")).unwrap();
    TdxCollateral::from_json(&json).unwrap()
}

const NOW: OffsetDateTime = datetime!(2025-06-20 0:00 UTC);

fn tdx_policy(extra: &str) -> TdxPolicy {
    let td = tdx_quote();
    let text = format!(
        "[tdx]\n{extra}\n[[tdx.measurements]]\nmrtd = \"{}\"\nrtmr1 = \"{}\"\n",
        hex::encode(td.mr_td),
        hex::encode(td.rtmr[1])
    );
    Policy::from_toml(&text).unwrap().tdx.unwrap()
}

fn up_to_date() -> TcbVerdict {
    TcbVerdict {
        status: TcbStatus::UpToDate,
        advisory_ids: vec![],
    }
}

fn tdx_verdict(policy: &TdxPolicy, td: &TdReport, tcb: Option<&TcbVerdict>) -> Verdict {
    let mut v = Verdict::new(Platform::Tdx);
    policy.evaluate(td, tcb, &collateral(), NOW, &mut v);
    v
}

fn tdx_check(policy: &TdxPolicy, td: &TdReport, tcb: Option<&TcbVerdict>, id: &CheckId) -> bool {
    let v = tdx_verdict(policy, td, tcb);
    v.check(id)
        .unwrap_or_else(|| panic!("check {} did not run: {:?}", id.name, v.checks))
        .passed()
}

#[test]
fn tdx_measurement_names_the_differing_register() {
    let mut td = tdx_quote();
    let ok = up_to_date();
    let p = tdx_policy("");
    assert!(tdx_check(&p, &td, Some(&ok), &tdx::MEASUREMENT));
    td.rtmr[1][0] ^= 1;
    let v = tdx_verdict(&p, &td, Some(&ok));
    let c = v.check(&tdx::MEASUREMENT).unwrap();
    assert!(
        format!("{:?}", c.outcome).contains("RTMR1 differs"),
        "{c:?}"
    );
    td.mr_td[0] ^= 1;
    assert!(!tdx_check(&p, &td, Some(&ok), &tdx::MEASUREMENT));
    let empty = Policy::from_toml("[tdx]\n").unwrap().tdx.unwrap();
    assert!(!tdx_check(
        &empty,
        &tdx_quote(),
        Some(&ok),
        &tdx::MEASUREMENT
    ));
}

#[test]
fn tdx_debug_attribute() {
    let mut td = tdx_quote();
    let ok = up_to_date();
    assert!(tdx_check(&tdx_policy(""), &td, Some(&ok), &tdx::DEBUG));
    td.td_attributes.0 |= 1;
    assert!(!tdx_check(&tdx_policy(""), &td, Some(&ok), &tdx::DEBUG));
    let allow = tdx_policy("allow_debug = true");
    assert!(tdx_check(&allow, &td, Some(&ok), &tdx::DEBUG));
}

#[test]
fn tdx_tcb_status_default_is_up_to_date_only() {
    let td = tdx_quote();
    let outdated = TcbVerdict {
        status: TcbStatus::OutOfDate,
        advisory_ids: vec!["INTEL-SA-00837".into()],
    };
    assert!(tdx_check(
        &tdx_policy(""),
        &td,
        Some(&up_to_date()),
        &tdx::TCB_STATUS
    ));
    assert!(!tdx_check(
        &tdx_policy(""),
        &td,
        Some(&outdated),
        &tdx::TCB_STATUS
    ));
    assert!(!tdx_check(&tdx_policy(""), &td, None, &tdx::TCB_STATUS));
    let allow = tdx_policy("allowed_tcb_statuses = [\"UpToDate\", \"OutOfDate\"]");
    assert!(tdx_check(&allow, &td, Some(&outdated), &tdx::TCB_STATUS));
    let listed = tdx_policy(
        "allowed_tcb_statuses = [\"OutOfDate\"]\nallowed_advisory_ids = [\"INTEL-SA-00837\"]",
    );
    assert!(tdx_check(&listed, &td, Some(&outdated), &tdx::ADVISORIES));
    let unlisted = tdx_policy("allowed_tcb_statuses = [\"OutOfDate\"]\nallowed_advisory_ids = []");
    assert!(!tdx_check(
        &unlisted,
        &td,
        Some(&outdated),
        &tdx::ADVISORIES
    ));
    assert!(Policy::from_toml("[tdx]\nallowed_tcb_statuses = []\n").is_err());
}

#[test]
fn tdx_min_tee_tcb_svn() {
    let td = tdx_quote();
    let ok = up_to_date();
    let same = tdx_policy(&format!(
        "min_tee_tcb_svn = \"{}\"",
        hex::encode(td.tee_tcb_svn)
    ));
    assert!(tdx_check(&same, &td, Some(&ok), &tdx::TEE_TCB_SVN));
    let mut higher = td.tee_tcb_svn;
    higher[0] = higher[0].saturating_add(1);
    let p = tdx_policy(&format!("min_tee_tcb_svn = \"{}\"", hex::encode(higher)));
    assert!(!tdx_check(&p, &td, Some(&ok), &tdx::TEE_TCB_SVN));
}

#[test]
fn tdx_exact_registers_and_report_data() {
    let td = tdx_quote();
    let ok = up_to_date();
    for (key, name, value) in [
        (
            "mr_config_id",
            &tdx::MR_CONFIG_ID,
            hex::encode(td.mr_config_id),
        ),
        ("mr_owner", &tdx::MR_OWNER, hex::encode(td.mr_owner)),
        (
            "mr_owner_config",
            &tdx::MR_OWNER_CONFIG,
            hex::encode(td.mr_owner_config),
        ),
        (
            "report_data",
            &tdx::REPORT_DATA,
            hex::encode(td.report_data),
        ),
    ] {
        let same = tdx_policy(&format!("{key} = \"{value}\""));
        assert!(tdx_check(&same, &td, Some(&ok), name), "{key}");
        let other = tdx_policy(&format!("{key} = \"{}\"", "5a".repeat(value.len() / 2)));
        assert!(!tdx_check(&other, &td, Some(&ok), name), "{key}");
    }
    let seam = tdx_policy(&format!("mr_seam = [\"{}\"]", hex::encode(td.mr_seam)));
    assert!(tdx_check(&seam, &td, Some(&ok), &tdx::MR_SEAM));
    let other = tdx_policy(&format!("mr_seam = [\"{}\"]", "00".repeat(48)));
    assert!(!tdx_check(&other, &td, Some(&ok), &tdx::MR_SEAM));
}

#[test]
fn tdx_collateral_age() {
    let td = tdx_quote();
    let ok = up_to_date();
    // Issued 2025-06-19T10:16:03Z; NOW is about 14 hours later.
    let day = tdx_policy("max_collateral_age = \"1d\"");
    assert!(tdx_check(&day, &td, Some(&ok), &tdx::COLLATERAL_AGE));
    let hour = tdx_policy("max_collateral_age = \"1h\"");
    assert!(!tdx_check(&hour, &td, Some(&ok), &tdx::COLLATERAL_AGE));
}
