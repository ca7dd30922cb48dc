//! At start: ask the hardware for one report, fetch what verifiers need for it, and keep
//! the TDX collateral fresh for as long as the enclave serves.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use silk_protocol::attestation::snp::{Cpuid, ProductLine};

use super::{refresh_time, CollateralConfig, Served};
use crate::evidence::sev_guest::{parse_cert_table, CertKind};
use crate::evidence::{EvidenceProvider, Platform};

/// How long to wait before trying again after a refresh failed.
const RETRY_REFRESH: Duration = Duration::from_secs(600);

/// Fetches what verifiers need for the platform `provider` reports on into `served`,
/// before returning: the VCEK (SNP, when the host's certificate table lacks a VEK; no SNP
/// bundle can be made without one) or the DCAP collateral (TDX). For TDX it returns the
/// task that fetches the collateral again before each `nextUpdate`.
///
/// Failures are logged, not fatal: the enclave still serves its evidence, and verifiers
/// say what is missing (an SNP bundle cannot be made without a VEK, which identity
/// creation then reports).
pub async fn prepare(
    provider: &dyn EvidenceProvider,
    config: &CollateralConfig,
    served: &Arc<Served>,
) -> Option<tokio::task::JoinHandle<()>> {
    if provider.simulated_chain().is_some() {
        return None;
    }
    let raw = match provider.report(&[0u8; 64]) {
        Ok(raw) => raw,
        Err(e) => {
            tracing::error!("no report to fetch collateral for: {e}");
            return None;
        }
    };
    match raw.platform {
        Platform::SevSnp => {
            let has_vek = raw
                .certificates
                .as_deref()
                .and_then(|t| parse_cert_table(t).ok())
                .is_some_and(|certs| {
                    certs
                        .iter()
                        .any(|(k, _)| matches!(k, CertKind::Vcek | CertKind::Vlek))
                });
            if has_vek {
                return None;
            }
            // A version 2 report does not name its CPU; this guest's CPUID does (and a
            // wrong guess only makes KDS answer 404, or the VCEK fail verification).
            let mut config = config.clone();
            config.snp_product = config.snp_product.or_else(|| {
                std::fs::read_to_string("/proc/cpuinfo")
                    .ok()
                    .and_then(|text| cpuinfo_product(&text))
            });
            match super::vcek(&config, &raw.evidence).await {
                Ok(der) => {
                    tracing::info!(kds = %config.kds, "serving the VCEK fetched from KDS");
                    served.set_vcek(der);
                }
                Err(e) => tracing::error!("the host gave no VEK and fetching the VCEK failed: {e}"),
            }
            None
        }
        // The first fetch before serving: the RA-TLS certificate is made once, with the
        // collateral there is then (an enclave that cannot reach PCS still starts, after
        // the fetch policy's bounded retries, and verifiers say the bundle lacks it).
        // Later fetches replace what `/v1/attestation` serves.
        Platform::Tdx => {
            let quote = raw.evidence;
            refresh_once(config, &quote, served).await;
            let (config, served) = (config.clone(), served.clone());
            Some(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(next_refresh(&served, config.refresh_before)).await;
                    refresh_once(&config, &quote, &served).await;
                }
            }))
        }
        Platform::Simulated | Platform::TdxReport => None,
    }
}

/// One fetch of the TDX collateral into `served`; a failure keeps what is served.
async fn refresh_once(config: &CollateralConfig, quote: &[u8], served: &Served) {
    match super::tdx(config, quote, OffsetDateTime::now_utc()).await {
        Ok(json) => {
            tracing::info!(pcs = %config.pcs, "serving TDX collateral with every quote");
            served.set_tdx(json);
        }
        Err(e) => tracing::error!("TDX collateral not fetched: {e}"),
    }
}

/// The product line of the first CPU in `/proc/cpuinfo` (its decimal `cpu family` and
/// `model`), if it is one with an AMD root.
fn cpuinfo_product(text: &str) -> Option<ProductLine> {
    let field = |name: &str| {
        text.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
            .and_then(|l| l.split(':').nth(1))
            .and_then(|v| v.trim().parse::<u8>().ok())
    };
    Cpuid {
        family: field("cpu family")?,
        model: field("model")?,
        stepping: field("stepping").unwrap_or(0),
    }
    .product_line()
}

/// How long until the served collateral should be fetched again: its refresh time, or a
/// retry interval when there is none yet or that time has passed.
fn next_refresh(served: &Served, before: Duration) -> Duration {
    let now = OffsetDateTime::now_utc();
    served
        .tdx_collateral()
        .map(|c| refresh_time(&c, before) - now)
        .and_then(|d| Duration::try_from(d).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(RETRY_REFRESH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuinfo_names_the_product_line() {
        let milan = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\nmodel name\t: AMD EPYC 7B13\nstepping\t: 0\n";
        assert_eq!(cpuinfo_product(milan), Some(ProductLine::Milan));
        let genoa = milan.replace("model\t\t: 1\n", "model\t\t: 17\n");
        assert_eq!(cpuinfo_product(&genoa), Some(ProductLine::Genoa));
        let turin = milan
            .replace("cpu family\t: 25", "cpu family\t: 26")
            .replace("model\t\t: 1\n", "model\t\t: 2\n");
        assert_eq!(cpuinfo_product(&turin), Some(ProductLine::Turin));
        let intel = milan.replace("cpu family\t: 25", "cpu family\t: 6");
        assert_eq!(cpuinfo_product(&intel), None);
        assert_eq!(cpuinfo_product(""), None);
    }
}
