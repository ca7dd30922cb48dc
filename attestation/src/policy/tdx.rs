//! Intel TDX and SGX rules and their evaluation against a verified quote.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{debug_check, default_statuses, one_of, Age, HexBytes, PolicyError, StatusRule};
use crate::tdx::{SgxReport, TcbVerdict, TdReport, TdxCollateral};
use crate::verdict::{Check, Stage, Verdict};

/// One accepted TDX measurement: an MRTD and, where given, RTMR values. An RTMR left out
/// is not compared (say so explicitly by leaving it out; the verdict warns).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TdxMeasurement {
    /// The TD's build-time measurement (48 bytes).
    pub mrtd: HexBytes<48>,
    /// RTMR0 (firmware configuration, VMM-dependent).
    pub rtmr0: Option<HexBytes<48>>,
    /// RTMR1 (kernel).
    pub rtmr1: Option<HexBytes<48>>,
    /// RTMR2 (kernel command line and initrd).
    pub rtmr2: Option<HexBytes<48>>,
    /// RTMR3 (runtime, e.g. application measurements).
    pub rtmr3: Option<HexBytes<48>>,
}

impl TdxMeasurement {
    fn rtmrs(&self) -> [Option<&HexBytes<48>>; 4] {
        [
            self.rtmr0.as_ref(),
            self.rtmr1.as_ref(),
            self.rtmr2.as_ref(),
            self.rtmr3.as_ref(),
        ]
    }

    /// `Ok` when `report` matches; otherwise which register differs.
    fn compare(&self, report: &TdReport) -> Result<(), String> {
        if self.mrtd.0 != report.mr_td {
            return Err("MRTD".into());
        }
        for (i, want) in self.rtmrs().iter().enumerate() {
            if want.is_some_and(|w| w.0 != report.rtmr[i]) {
                return Err(format!("RTMR{i}"));
            }
        }
        Ok(())
    }
}

impl std::fmt::Display for TdxMeasurement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "mrtd={}", self.mrtd)?;
        for (i, r) in self.rtmrs().iter().enumerate() {
            match r {
                Some(r) => write!(f, " rtmr{i}={r}")?,
                None => write!(f, " rtmr{i}=*")?,
            }
        }
        Ok(())
    }
}

/// Rules for Intel TDX quotes.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TdxPolicy {
    /// Accepted measurements (MRTD with optional RTMRs).
    #[serde(default)]
    pub measurements: Vec<TdxMeasurement>,
    /// Accept any measurement. For experiments only: every verdict warns about it.
    #[serde(default)]
    pub allow_any_measurement: bool,
    /// Accept TDs with the DEBUG attribute.
    #[serde(default)]
    pub allow_debug: bool,
    /// TCB statuses accepted (Intel's spellings); default `["UpToDate"]` only.
    #[serde(default = "default_statuses")]
    pub allowed_tcb_statuses: Vec<StatusRule>,
    /// When set, every advisory id the TCB status carries must be in this list.
    pub allowed_advisory_ids: Option<Vec<String>>,
    /// Minimum TEE_TCB_SVN, compared byte by byte (32 hex digits).
    pub min_tee_tcb_svn: Option<HexBytes<16>>,
    /// REPORT_DATA that the quote must carry exactly.
    pub report_data: Option<HexBytes<64>>,
    /// Exact MRCONFIGID.
    pub mr_config_id: Option<HexBytes<48>>,
    /// Exact MROWNER.
    pub mr_owner: Option<HexBytes<48>>,
    /// Exact MROWNERCONFIG.
    pub mr_owner_config: Option<HexBytes<48>>,
    /// Accepted MRSEAM values (the TDX module's measurement); empty accepts any.
    #[serde(default)]
    pub mr_seam: Vec<HexBytes<48>>,
    /// Oldest acceptable collateral, counted from its TCB info issue date.
    pub max_collateral_age: Option<Age>,
}

/// Rules for Intel SGX quotes.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SgxPolicy {
    /// Accepted MRENCLAVE values.
    #[serde(default)]
    pub mr_enclave: Vec<HexBytes<32>>,
    /// Accepted MRSIGNER values; empty accepts any signer of an allowed MRENCLAVE.
    #[serde(default)]
    pub mr_signer: Vec<HexBytes<32>>,
    /// Accept any MRENCLAVE. For experiments only.
    #[serde(default)]
    pub allow_any_measurement: bool,
    /// Accept debug enclaves.
    #[serde(default)]
    pub allow_debug: bool,
    /// Minimum ISV SVN.
    pub min_isv_svn: Option<u16>,
    /// TCB statuses accepted; default `["UpToDate"]` only.
    #[serde(default = "default_statuses")]
    pub allowed_tcb_statuses: Vec<StatusRule>,
    /// When set, every advisory id must be in this list.
    pub allowed_advisory_ids: Option<Vec<String>>,
    /// REPORT_DATA that the quote must carry exactly.
    pub report_data: Option<HexBytes<64>>,
    /// Oldest acceptable collateral.
    pub max_collateral_age: Option<Age>,
}

impl TdxPolicy {
    pub(super) fn validate(&self) -> Result<(), PolicyError> {
        if self.allowed_tcb_statuses.is_empty() {
            return Err(PolicyError::Invalid {
                rule: "tdx.allowed_tcb_statuses",
                reason: "empty: no quote could ever pass; leave it out for [\"UpToDate\"]".into(),
            });
        }
        Ok(())
    }

    /// Checks a verified TD quote against these rules.
    pub fn evaluate(
        &self,
        report: &TdReport,
        tcb: Option<&TcbVerdict>,
        collateral: &TdxCollateral,
        now: OffsetDateTime,
        verdict: &mut Verdict,
    ) {
        // Any TUD bit (debug or its profiling variants) opens the TD to the host.
        let debug = report.td_attributes.under_debug();
        debug_check("tdx.debug", self.allow_debug, debug, "the TD", verdict);
        tcb_checks(
            &TDX,
            &self.allowed_tcb_statuses,
            self.allowed_advisory_ids.as_deref(),
            tcb,
            verdict,
        );
        if let Some(min) = &self.min_tee_tcb_svn {
            let below: Vec<String> = (0..16)
                .filter(|&i| report.tee_tcb_svn[i] < min.0[i])
                .map(|i| format!("byte {i}: {} < {}", report.tee_tcb_svn[i], min.0[i]))
                .collect();
            verdict.push(Check::from_bool(
                "tdx.tee_tcb_svn",
                Stage::Platform,
                below.is_empty(),
                format!(">= {min}"),
                hex::encode(report.tee_tcb_svn),
                || format!("TEE_TCB_SVN below minimum ({})", below.join(", ")),
            ));
        }
        if !self.mr_seam.is_empty() {
            verdict.push(Check::from_bool(
                "tdx.mr_seam",
                Stage::Platform,
                self.mr_seam.iter().any(|m| m.0 == report.mr_seam),
                one_of(&self.mr_seam),
                hex::encode(report.mr_seam),
                || "the TDX module's measurement (MRSEAM) is not allowed".into(),
            ));
        }
        self.measurement_check(report, verdict);
        for (name, want, found) in [
            ("tdx.mr_config_id", &self.mr_config_id, &report.mr_config_id),
            ("tdx.mr_owner", &self.mr_owner, &report.mr_owner),
            (
                "tdx.mr_owner_config",
                &self.mr_owner_config,
                &report.mr_owner_config,
            ),
        ] {
            if let Some(want) = want {
                verdict.push(exact(name, Stage::Measurement, &want.0, found));
            }
        }
        report_data_check(
            &TDX,
            self.report_data.as_ref(),
            &report.report_data,
            verdict,
        );
        collateral_age_check(&TDX, self.max_collateral_age, collateral, now, verdict);
    }

    fn measurement_check(&self, report: &TdReport, verdict: &mut Verdict) {
        let found = format!(
            "mrtd={} rtmr0={} rtmr1={} rtmr2={} rtmr3={}",
            hex::encode(report.mr_td),
            hex::encode(report.rtmr[0]),
            hex::encode(report.rtmr[1]),
            hex::encode(report.rtmr[2]),
            hex::encode(report.rtmr[3]),
        );
        if self.allow_any_measurement {
            verdict.warn("policy accepts ANY measurement: the TD's code is not checked");
            verdict.push(Check::pass(
                "tdx.measurement",
                Stage::Measurement,
                "any (!)",
                found,
            ));
            return;
        }
        let results: Vec<Result<(), String>> = self
            .measurements
            .iter()
            .map(|m| m.compare(report))
            .collect();
        let matched = results.iter().position(Result::is_ok);
        if let Some(i) = matched {
            if self.measurements[i].rtmrs().iter().any(Option::is_none) {
                verdict.warn("the matching TDX measurement leaves some RTMRs unchecked");
            }
        }
        let reason = || {
            if self.measurements.is_empty() {
                return "the policy allows no measurement (add [[tdx.measurements]])".to_owned();
            }
            // Name the register that differs for the entries whose MRTD matched, since
            // that is what an operator has to look at.
            let partial: Vec<String> = results
                .iter()
                .enumerate()
                .filter_map(|(i, r)| match r {
                    Err(reg) if reg != "MRTD" => Some(format!("entry {}: {reg} differs", i + 1)),
                    _ => None,
                })
                .collect();
            if partial.is_empty() {
                "MRTD is not in the policy's allowlist".to_owned()
            } else {
                partial.join("; ")
            }
        };
        verdict.push(Check::from_bool(
            "tdx.measurement",
            Stage::Measurement,
            matched.is_some(),
            one_of(&self.measurements),
            found,
            reason,
        ));
    }
}

impl SgxPolicy {
    /// Checks a verified SGX quote against these rules.
    pub fn evaluate(
        &self,
        report: &SgxReport,
        tcb: Option<&TcbVerdict>,
        collateral: &TdxCollateral,
        now: OffsetDateTime,
        verdict: &mut Verdict,
    ) {
        debug_check(
            "sgx.debug",
            self.allow_debug,
            report.debug(),
            "the enclave",
            verdict,
        );
        tcb_checks(
            &SGX,
            &self.allowed_tcb_statuses,
            self.allowed_advisory_ids.as_deref(),
            tcb,
            verdict,
        );
        if let Some(min) = self.min_isv_svn {
            verdict.push(Check::from_bool(
                "sgx.isv_svn",
                Stage::Platform,
                report.isv_svn >= min,
                format!(">= {min}"),
                report.isv_svn.to_string(),
                || "ISV SVN below minimum".into(),
            ));
        }
        let found = hex::encode(report.mr_enclave);
        if self.allow_any_measurement {
            verdict.warn("policy accepts ANY MRENCLAVE");
            verdict.push(Check::pass(
                "sgx.mr_enclave",
                Stage::Measurement,
                "any (!)",
                found,
            ));
        } else {
            verdict.push(Check::from_bool(
                "sgx.mr_enclave",
                Stage::Measurement,
                self.mr_enclave.iter().any(|m| m.0 == report.mr_enclave),
                one_of(&self.mr_enclave),
                found,
                || "MRENCLAVE is not in the policy's allowlist".into(),
            ));
        }
        if !self.mr_signer.is_empty() {
            verdict.push(Check::from_bool(
                "sgx.mr_signer",
                Stage::Measurement,
                self.mr_signer.iter().any(|m| m.0 == report.mr_signer),
                one_of(&self.mr_signer),
                hex::encode(report.mr_signer),
                || "MRSIGNER is not allowed".into(),
            ));
        }
        report_data_check(
            &SGX,
            self.report_data.as_ref(),
            &report.report_data,
            verdict,
        );
        collateral_age_check(&SGX, self.max_collateral_age, collateral, now, verdict);
    }
}

/// The names of the checks TDX and SGX quotes share.
struct QuoteChecks {
    tcb_status: &'static str,
    advisories: &'static str,
    report_data: &'static str,
    collateral_age: &'static str,
}

const TDX: QuoteChecks = QuoteChecks {
    tcb_status: "tdx.tcb_status",
    advisories: "tdx.advisories",
    report_data: "tdx.report_data",
    collateral_age: "tdx.collateral_age",
};

const SGX: QuoteChecks = QuoteChecks {
    tcb_status: "sgx.tcb_status",
    advisories: "sgx.advisories",
    report_data: "sgx.report_data",
    collateral_age: "sgx.collateral_age",
};

fn exact(name: &'static str, stage: Stage, want: &[u8], found: &[u8]) -> Check {
    Check::from_bool(
        name,
        stage,
        want == found,
        hex::encode(want),
        hex::encode(found),
        || format!("{name} differs from the policy's value"),
    )
}

fn tcb_checks(
    names: &QuoteChecks,
    allowed: &[StatusRule],
    advisories: Option<&[String]>,
    tcb: Option<&TcbVerdict>,
    verdict: &mut Verdict,
) {
    let (status_name, advisory_name) = (names.tcb_status, names.advisories);
    let expected = one_of(&allowed.iter().map(|s| s.0.to_string()).collect::<Vec<_>>());
    let Some(tcb) = tcb else {
        verdict.push(Check::fail(
            status_name,
            Stage::Platform,
            expected,
            "unknown",
            "the TCB status could not be established because quote verification failed",
        ));
        return;
    };
    let ok = allowed.iter().any(|s| s.0 == tcb.status);
    let found = if tcb.advisory_ids.is_empty() {
        tcb.status.to_string()
    } else {
        format!("{} ({})", tcb.status, tcb.advisory_ids.join(", "))
    };
    verdict.push(Check::from_bool(
        status_name,
        Stage::Platform,
        ok,
        expected,
        found,
        || format!("TCB status {} is not allowed by the policy", tcb.status),
    ));
    if let Some(list) = advisories {
        let unlisted: Vec<&str> = tcb
            .advisory_ids
            .iter()
            .filter(|a| !list.contains(a))
            .map(String::as_str)
            .collect();
        verdict.push(Check::from_bool(
            advisory_name,
            Stage::Platform,
            unlisted.is_empty(),
            one_of(list),
            tcb.advisory_ids.join(", "),
            || {
                format!(
                    "advisories not accepted by the policy: {}",
                    unlisted.join(", ")
                )
            },
        ));
    }
}

fn report_data_check(
    names: &QuoteChecks,
    want: Option<&HexBytes<64>>,
    found: &[u8; 64],
    verdict: &mut Verdict,
) {
    let name = names.report_data;
    match want {
        Some(want) => verdict.push(Check::from_bool(
            name,
            Stage::Binding,
            &want.0 == found,
            want.to_string(),
            hex::encode(found),
            || "REPORT_DATA differs: the quote is not bound to the expected claims".into(),
        )),
        None => verdict.warn("REPORT_DATA not checked: the quote is not bound to any key or nonce"),
    }
}

fn collateral_age_check(
    names: &QuoteChecks,
    max: Option<Age>,
    collateral: &TdxCollateral,
    now: OffsetDateTime,
    verdict: &mut Verdict,
) {
    let Some(max) = max else { return };
    let name = names.collateral_age;
    let issued = collateral.tcb_info_issue_date();
    let age = now - issued;
    let ok = age <= time::Duration::try_from(max.0).unwrap_or(time::Duration::MAX);
    verdict.push(Check::from_bool(
        name,
        Stage::Freshness,
        ok,
        format!("issued within {max}"),
        format!(
            "issued {} ({}h old)",
            crate::format_time(issued),
            age.whole_hours()
        ),
        || "the collateral is older than the policy allows".into(),
    ));
}
