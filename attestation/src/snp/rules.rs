//! The `[snp]` rules of a policy, evaluated against a parsed report: platform settings,
//! measurements and REPORT_DATA binding.

use crate::checks::{snp, CheckId};
use crate::policy::{debug_check, one_of, MinTcb, SnpPolicy};
use crate::verdict::{Check, Verdict};

use super::report::{AttestationReport, ProductLine, TcbParts};

impl MinTcb {
    /// Names the components of `found` below this minimum; empty when it is met.
    fn shortfalls(&self, found: &TcbParts) -> Vec<String> {
        let mut short = Vec::new();
        let mut cmp = |name: &str, have: u8, need: u8| {
            if have < need {
                short.push(format!("{name} {have} < {need}"));
            }
        };
        cmp("bootloader", found.bootloader, self.bootloader);
        cmp("tee", found.tee, self.tee);
        cmp("snp", found.snp, self.snp);
        cmp("microcode", found.microcode, self.microcode);
        if let Some(need) = self.fmc {
            match found.fmc {
                Some(have) => cmp("fmc", have, need),
                None => short.push("fmc required but this product line has none".to_owned()),
            }
        }
        short
    }
}

impl SnpPolicy {
    /// Checks `report` against these rules. `line` is the product line the signature
    /// chain established; the TCB cannot be decoded without it.
    pub fn evaluate(
        &self,
        report: &AttestationReport,
        line: Option<ProductLine>,
        verdict: &mut Verdict,
    ) {
        self.platform_checks(report, line, verdict);
        self.measurement_checks(report, verdict);
        self.binding_checks(report, verdict);
    }

    fn platform_checks(
        &self,
        report: &AttestationReport,
        line: Option<ProductLine>,
        verdict: &mut Verdict,
    ) {
        let policy = report.policy;
        debug_check(
            &snp::DEBUG,
            self.allow_debug,
            policy.debug_allowed(),
            "the guest",
            verdict,
        );

        let smt_policy = policy.smt_allowed();
        let smt_on = report.platform_info.smt_enabled();
        verdict.push(Check::from_bool(
            &snp::SMT,
            self.allow_smt || (!smt_policy && !smt_on),
            if self.allow_smt {
                "SMT allowed"
            } else {
                "SMT forbidden by guest policy and off"
            },
            format!(
                "guest policy SMT={}, platform SMT={}",
                bit(smt_policy),
                bit(smt_on)
            ),
            || "the policy forbids SMT but the guest may run, or runs, with SMT".into(),
        ));

        let ma = policy.migrate_ma_allowed();
        verdict.push(Check::from_bool(
            &snp::MIGRATION_AGENT,
            self.allow_migration_agent || !ma,
            if self.allow_migration_agent {
                "migration agent allowed"
            } else {
                "no migration agent"
            },
            format!("MIGRATE_MA={}", bit(ma)),
            || "the guest policy allows a migration agent, which can export guest state".into(),
        ));

        let single = policy.single_socket_required();
        verdict.push(Check::from_bool(
            &snp::SINGLE_SOCKET,
            !self.require_single_socket || single,
            if self.require_single_socket {
                "SINGLE_SOCKET=1"
            } else {
                "any"
            },
            format!("SINGLE_SOCKET={}", bit(single)),
            || "the policy requires single-socket guests".into(),
        ));

        verdict.push(Check::from_bool(
            &snp::VMPL,
            report.vmpl <= self.max_vmpl,
            format!("VMPL <= {}", self.max_vmpl),
            format!("VMPL {}", report.vmpl),
            || {
                format!(
                    "the report was requested at VMPL {}, less privileged than allowed",
                    report.vmpl
                )
            },
        ));

        if !self.products.is_empty() {
            let found = line.map_or_else(|| "unknown".to_owned(), |l| l.to_string());
            let ok = line.is_some_and(|l| {
                self.products
                    .iter()
                    .any(|p| ProductLine::from_name(p) == Some(l))
            });
            verdict.push(Check::from_bool(
                &snp::PRODUCT,
                ok,
                one_of(&self.products),
                found,
                || "the processor's product line is not allowed".into(),
            ));
        }

        verdict.push(self.tcb_check(report, line));

        if let Some(min) = self.min_guest_svn {
            verdict.push(Check::from_bool(
                &snp::GUEST_SVN,
                report.guest_svn >= min,
                format!(">= {min}"),
                report.guest_svn.to_string(),
                || "the guest SVN is below the minimum".into(),
            ));
        }
    }

    fn tcb_check(&self, report: &AttestationReport, line: Option<ProductLine>) -> Check {
        const NAME: &CheckId = &snp::MIN_TCB;
        let Some(min) = self.min_tcb else {
            return Check::fail(
                NAME,
                "a minimum TCB",
                "policy sets none",
                "the policy has no snp.min_tcb; write zeros to accept any TCB explicitly",
            );
        };
        let Some(line) = line else {
            return Check::fail(
                NAME,
                min.to_string(),
                format!("raw {:#018x}", report.reported_tcb.0),
                "the product line is unknown, so the TCB cannot be decoded",
            );
        };
        let parts = report.reported_tcb.parts(line);
        let short = min.shortfalls(&parts);
        Check::from_bool(
            NAME,
            short.is_empty(),
            min.to_string(),
            parts.to_string(),
            || format!("reported TCB below minimum: {}", short.join(", ")),
        )
    }

    fn measurement_checks(&self, report: &AttestationReport, verdict: &mut Verdict) {
        let found = hex::encode(report.measurement);
        if self.allow_any_measurement {
            verdict.warn("policy accepts ANY measurement: the guest's code is not checked");
            verdict.push(Check::pass(&snp::MEASUREMENT, "any (!)", found));
        } else {
            let ok = self.measurements.iter().any(|m| m.0 == report.measurement);
            verdict.push(Check::from_bool(
                &snp::MEASUREMENT,
                ok,
                one_of(&self.measurements),
                found,
                || {
                    if self.measurements.is_empty() {
                        "the policy allows no measurement (set snp.measurements)".into()
                    } else {
                        "the launch measurement is not in the policy's allowlist".into()
                    }
                },
            ));
        }

        if !self.id_key_digests.is_empty() {
            let ok = self
                .id_key_digests
                .iter()
                .any(|d| d.0 == report.id_key_digest);
            verdict.push(Check::from_bool(
                &snp::ID_KEY,
                ok,
                one_of(&self.id_key_digests),
                hex::encode(report.id_key_digest),
                || "the ID key digest is not allowed".into(),
            ));
        }
        if !self.author_key_digests.is_empty() {
            let ok = report.author_key_en
                && self
                    .author_key_digests
                    .iter()
                    .any(|d| d.0 == report.author_key_digest);
            verdict.push(Check::from_bool(
                &snp::AUTHOR_KEY,
                ok,
                one_of(&self.author_key_digests),
                if report.author_key_en {
                    hex::encode(report.author_key_digest)
                } else {
                    "no author key".to_owned()
                },
                || "the author key digest is not allowed".into(),
            ));
        }
        if let Some(host_data) = &self.host_data {
            verdict.push(Check::from_bool(
                &snp::HOST_DATA,
                host_data.0 == report.host_data,
                host_data.to_string(),
                hex::encode(report.host_data),
                || "HOST_DATA differs from the policy's".into(),
            ));
        }
    }

    fn binding_checks(&self, report: &AttestationReport, verdict: &mut Verdict) {
        match &self.report_data {
            Some(want) => verdict.push(Check::from_bool(
                &snp::REPORT_DATA,
                want.0 == report.report_data,
                want.to_string(),
                hex::encode(report.report_data),
                || "REPORT_DATA differs: the report is not bound to the expected claims".into(),
            )),
            None => {
                verdict.warn("REPORT_DATA not checked: the report is not bound to any key or nonce")
            }
        }
    }
}

fn bit(b: bool) -> u8 {
    u8::from(b)
}
