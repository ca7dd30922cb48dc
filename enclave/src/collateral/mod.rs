//! What a verifier needs beside the hardware's report, fetched by the enclave so that
//! clients verify with no network round trip: the VCEK from AMD's KDS (when the host's
//! certificate table lacks it) and the DCAP collateral from Intel's PCS (or a PCCS).
//!
//! Nothing fetched is trusted: a client checks the VCEK and the collateral against the
//! vendor roots pinned in its own binary, so KDS, PCS, any proxy on the path and the cache
//! on disk can make collateral unavailable or stale, never make bad evidence verify. What
//! is guarded here is availability and bounds: every request has the connect, exchange
//! and size limits of [`silk_net::fetch`]; 429 and 503 answers are retried after their
//! Retry-After when that is within [`FetchPolicy::max_retry_wait`], other failures a few
//! times with backoff; a 404 is final. Fetched items are cached on disk (written whole or
//! not at all) and TDX collateral is fetched again before its `nextUpdate`.

mod boot;
mod cache;
mod retry;

use std::path::PathBuf;
use std::time::Duration;

use silk_protocol::attestation::snp::kds::{self, KdsError};
use silk_protocol::attestation::snp::{AttestationReport, ProductLine};
use silk_protocol::attestation::tdx::pcs::{self, Answer, PcsAnswers, PcsError};
use silk_protocol::attestation::tdx::TdxCollateral;
use time::OffsetDateTime;

pub use boot::prepare;
pub use retry::{FetchFailure, FetchPolicy};

/// Where collateral comes from and how it is kept.
#[derive(Clone, Debug)]
pub struct CollateralConfig {
    /// AMD's KDS, or a cache of it.
    pub kds: String,
    /// Intel's PCS, or a PCCS.
    pub pcs: String,
    /// Where fetched items are kept across restarts; `None`: in memory only.
    pub cache: Option<PathBuf>,
    /// Bounds and retries.
    pub policy: FetchPolicy,
    /// The product line, for version 2 SNP reports that do not name it.
    pub snp_product: Option<ProductLine>,
    /// TDX collateral is fetched again this long before its earliest `nextUpdate`.
    pub refresh_before: Duration,
}

impl Default for CollateralConfig {
    fn default() -> Self {
        Self {
            kds: kds::AMD_KDS.to_owned(),
            pcs: pcs::INTEL_PCS.to_owned(),
            cache: None,
            policy: FetchPolicy::default(),
            snp_product: None,
            refresh_before: Duration::from_secs(24 * 3600),
        }
    }
}

/// Why collateral could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CollateralError {
    /// The report names no VCEK that KDS could serve.
    #[error("VCEK: {0}")]
    Kds(#[from] KdsError),
    /// The quote names no platform, or PCS's answers do not make collateral.
    #[error("TDX collateral: {0}")]
    Pcs(#[from] PcsError),
    /// The SNP report does not parse.
    #[error("the SNP report does not parse: {0}")]
    Report(String),
    /// A request failed for good.
    #[error(transparent)]
    Fetch(#[from] retry::FetchFailure),
    /// KDS answered something that is not a certificate.
    #[error("{url} answered something that is not a DER certificate: {detail}")]
    NotACertificate {
        /// What was asked.
        url: String,
        /// The parser's message.
        detail: String,
    },
}

/// Fetches (or takes from the cache) the VCEK that signed `report`.
pub async fn vcek(config: &CollateralConfig, report: &[u8]) -> Result<Vec<u8>, CollateralError> {
    let parsed = AttestationReport::from_bytes(report)
        .map_err(|e| CollateralError::Report(e.to_string()))?;
    let url = kds::vcek_url(&config.kds, &parsed, config.snp_product)?;
    // Named by what names the VCEK (product, chip, TCB), not by the service it came from.
    let item = url
        .strip_prefix(config.kds.trim_end_matches('/'))
        .unwrap_or(&url);
    let name = cache::name("vcek", item, "der");
    if let Some(der) = cache::read(config.cache.as_deref(), &name) {
        if is_certificate(&der) {
            return Ok(der);
        }
        tracing::warn!(file = %name, "cached VCEK does not parse; fetching it again");
    }
    let got = retry::get(&config.policy, "VCEK", &url).await?;
    if !is_certificate(&got.body) {
        return Err(CollateralError::NotACertificate {
            url,
            detail: "not one DER X.509 certificate".into(),
        });
    }
    cache::write(config.cache.as_deref(), &name, &got.body);
    Ok(got.body)
}

fn is_certificate(der: &[u8]) -> bool {
    silk_protocol::attestation::snp::certs::cert_der(der, "VCEK").is_ok_and(|d| d == der)
}

/// Fetches the DCAP collateral for `quote`'s platform, or takes it from the cache while
/// it is more than [`CollateralConfig::refresh_before`] from its `nextUpdate` at `now`.
///
/// When fetching fails and the cache holds collateral that is still within its window,
/// that is returned (and the failure logged): a verifier accepts it until `nextUpdate`.
pub async fn tdx(
    config: &CollateralConfig,
    quote: &[u8],
    now: OffsetDateTime,
) -> Result<Vec<u8>, CollateralError> {
    let req = pcs::requests(&config.pcs, quote)?;
    let name = format!("tdx-{}-{}.json", req.fmspc, req.ca.as_query());
    let cached = cache::read(config.cache.as_deref(), &name)
        .and_then(|json| TdxCollateral::from_json(&json).ok().map(|c| (json, c)));
    if let Some((json, c)) = &cached {
        if now < refresh_time(c, config.refresh_before) {
            return Ok(json.clone());
        }
    }
    match fetch_tdx(&config.policy, &req).await {
        Ok(json) => {
            cache::write(config.cache.as_deref(), &name, &json);
            Ok(json)
        }
        Err(e) => match cached {
            Some((json, c)) if now < c.earliest_next_update() => {
                tracing::warn!(
                    "fetching TDX collateral failed ({e}); serving the cached one, valid until {}",
                    c.earliest_next_update()
                );
                Ok(json)
            }
            _ => Err(e),
        },
    }
}

/// When collateral should be fetched again.
pub fn refresh_time(c: &TdxCollateral, before: Duration) -> OffsetDateTime {
    c.earliest_next_update() - before
}

async fn fetch_tdx(
    policy: &FetchPolicy,
    req: &pcs::PcsRequests,
) -> Result<Vec<u8>, CollateralError> {
    let pck = retry::get(policy, "PCK CRL", &req.pck_crl).await?;
    let tcb = retry::get(policy, "TCB info", &req.tcb_info).await?;
    let qe = retry::get(policy, "QE identity", &req.qe_identity).await?;
    let root = retry::get(policy, "root CA CRL", &req.root_ca_crl).await?;
    let pck_h = |n: &str| pck.header(n).map(str::to_owned);
    let tcb_h = |n: &str| tcb.header(n).map(str::to_owned);
    let qe_h = |n: &str| qe.header(n).map(str::to_owned);
    Ok(pcs::assemble(&PcsAnswers {
        pck_crl: Answer {
            body: &pck.body,
            header: &pck_h,
        },
        tcb_info: Answer {
            body: &tcb.body,
            header: &tcb_h,
        },
        qe_identity: Answer {
            body: &qe.body,
            header: &qe_h,
        },
        root_ca_crl: &root.body,
    })?)
}

/// What was fetched for verifiers, put into every bundle served. The TDX collateral is
/// replaced when it is refreshed; the VCEK stays for the boot (its TCB cannot change
/// without a reboot of the platform).
#[derive(Debug, Default)]
pub struct Served {
    vcek: std::sync::OnceLock<Vec<u8>>,
    tdx: std::sync::RwLock<Option<Vec<u8>>>,
}

impl Served {
    /// Serves `der` as the VCEK of SNP reports whose certificate table lacks one.
    pub fn set_vcek(&self, der: Vec<u8>) {
        let _ = self.vcek.set(der);
    }

    /// The VCEK fetched for this boot.
    pub fn vcek(&self) -> Option<&[u8]> {
        self.vcek.get().map(Vec::as_slice)
    }

    /// Serves `json` as the collateral of every TDX quote from now on.
    pub fn set_tdx(&self, json: Vec<u8>) {
        if let Ok(mut slot) = self.tdx.write() {
            *slot = Some(json);
        }
    }

    /// The TDX collateral served now, read.
    pub fn tdx_collateral(&self) -> Option<TdxCollateral> {
        let json = self.tdx.read().ok()?.clone()?;
        TdxCollateral::from_json(&json).ok()
    }

    /// Puts the current TDX collateral into `platform` (a TDX quote's), replacing what
    /// it had.
    pub fn apply(&self, platform: &mut silk_protocol::PlatformEvidence) {
        if let silk_protocol::PlatformEvidence::Tdx { collateral, .. } = platform {
            if let Some(json) = self.tdx.read().ok().and_then(|s| s.clone()) {
                *collateral = Some(silk_protocol::bundle::Bytes(json));
            }
        }
    }
}
