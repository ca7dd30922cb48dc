//! Intel DCAP collateral (TCB info, QE identity, CRLs and their signing chains) and the
//! time window in which it may be used.

use dcap_qvl::QuoteCollateralV3;
use der::Decode as _;
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use x509_cert::crl::CertificateList;

use crate::checks::tdx;
use crate::format_time as fmt_time;
use crate::verdict::Check;

/// Why collateral could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CollateralError {
    /// The document is not collateral JSON with hex-encoded CRLs and signatures.
    #[error("collateral is not PCS collateral JSON: {source}")]
    Json {
        /// The JSON decoder's error.
        source: serde_json::Error,
    },
    /// An embedded JSON document (TCB info or QE identity) lacks its dates.
    #[error("collateral field {field} is not JSON with issueDate and nextUpdate: {source}")]
    InnerJson {
        /// The collateral field, e.g. `tcb_info`.
        field: &'static str,
        /// The JSON decoder's error.
        source: serde_json::Error,
    },
    /// A date is not RFC 3339.
    #[error("collateral field {field} is {value:?}, not an RFC 3339 date: {source}")]
    Date {
        /// The field, e.g. `tcb_info.nextUpdate`.
        field: &'static str,
        /// What the field holds.
        value: String,
        /// The date parser's error.
        source: time::error::Parse,
    },
    /// A CRL is not DER.
    #[error("collateral field {field} is not a DER CRL: {source}")]
    Crl {
        /// The collateral field, e.g. `pck_crl`.
        field: &'static str,
        /// The DER decoder's error.
        source: der::Error,
    },
    /// A CRL date lies outside what a timestamp can hold.
    #[error("collateral field {field} has a date out of range ({secs} s after the epoch)")]
    CrlDate {
        /// The field, e.g. `root_ca_crl.nextUpdate`.
        field: &'static str,
        /// The date as seconds after the Unix epoch.
        secs: u64,
    },
}

/// The validity of a signed JSON item, which always has both dates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct JsonValidity {
    issued: OffsetDateTime,
    next_update: OffsetDateTime,
}

/// The validity of a CRL, whose nextUpdate is optional in X.509.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CrlValidity {
    issued: OffsetDateTime,
    next_update: Option<OffsetDateTime>,
}

/// The two dates Intel puts at the top of TCB info and QE identity JSON.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Dated {
    issue_date: String,
    next_update: String,
}

/// DCAP collateral for one quote's platform, as Intel's PCS (or a PCCS) serves it, with
/// the dates it is valid between already read.
#[derive(Clone, Debug)]
pub struct TdxCollateral {
    inner: QuoteCollateralV3,
    tcb_info: JsonValidity,
    qe_identity: JsonValidity,
    root_ca_crl: CrlValidity,
    pck_crl: CrlValidity,
}

impl TdxCollateral {
    /// Reads collateral JSON: the object `dcap-qvl` and Phala's PCCS client write, with
    /// `tcb_info`, `qe_identity`, their signatures and issuer chains, and the hex-encoded
    /// root CA and PCK CRLs.
    ///
    /// Signatures are not checked here; [`verify`](super::verify) checks them.
    pub fn from_json(bytes: &[u8]) -> Result<Self, CollateralError> {
        let inner: QuoteCollateralV3 =
            serde_json::from_slice(bytes).map_err(|source| CollateralError::Json { source })?;
        Ok(Self {
            tcb_info: json_validity(&inner.tcb_info, "tcb_info", TCB_INFO_DATES)?,
            qe_identity: json_validity(&inner.qe_identity, "qe_identity", QE_IDENTITY_DATES)?,
            root_ca_crl: crl_validity(&inner.root_ca_crl, "root_ca_crl", ROOT_CRL_DATES)?,
            pck_crl: crl_validity(&inner.pck_crl, "pck_crl", PCK_CRL_DATES)?,
            inner,
        })
    }

    /// TCB info `issueDate`.
    pub fn tcb_info_issue_date(&self) -> OffsetDateTime {
        self.tcb_info.issued
    }

    /// TCB info `nextUpdate`: after it, Intel may have published a newer TCB evaluation.
    pub fn tcb_info_next_update(&self) -> OffsetDateTime {
        self.tcb_info.next_update
    }

    /// QE identity `issueDate`.
    pub fn qe_identity_issue_date(&self) -> OffsetDateTime {
        self.qe_identity.issued
    }

    /// QE identity `nextUpdate`.
    pub fn qe_identity_next_update(&self) -> OffsetDateTime {
        self.qe_identity.next_update
    }

    /// The latest issue date over TCB info, QE identity and both CRLs' thisUpdate: before
    /// it, some part of the collateral did not exist yet.
    pub fn latest_issue_date(&self) -> OffsetDateTime {
        [self.root_ca_crl.issued, self.pck_crl.issued]
            .into_iter()
            .fold(
                self.tcb_info.issued.max(self.qe_identity.issued),
                OffsetDateTime::max,
            )
    }

    /// The earliest nextUpdate over TCB info, QE identity and both CRLs: after it, some
    /// part of the collateral is stale.
    pub fn earliest_next_update(&self) -> OffsetDateTime {
        [self.root_ca_crl.next_update, self.pck_crl.next_update]
            .into_iter()
            .flatten()
            .fold(
                self.tcb_info.next_update.min(self.qe_identity.next_update),
                OffsetDateTime::min,
            )
    }

    /// Each part's name (`TCB info`, `QE identity`, `PCK CRL`, `root CA CRL`), issue date
    /// and next update (a CRL may have none), so that a window failure can name the part.
    pub fn parts(&self) -> [(&'static str, OffsetDateTime, Option<OffsetDateTime>); 4] {
        [
            (
                "TCB info",
                self.tcb_info.issued,
                Some(self.tcb_info.next_update),
            ),
            (
                "QE identity",
                self.qe_identity.issued,
                Some(self.qe_identity.next_update),
            ),
            ("PCK CRL", self.pck_crl.issued, self.pck_crl.next_update),
            (
                "root CA CRL",
                self.root_ca_crl.issued,
                self.root_ca_crl.next_update,
            ),
        ]
    }

    /// The FMSPC the TCB info is for (hex, as Intel writes it), if it says.
    pub fn tcb_info_fmspc(&self) -> Option<String> {
        serde_json::from_str::<serde_json::Value>(&self.inner.tcb_info)
            .ok()?
            .get("fmspc")?
            .as_str()
            .map(str::to_owned)
    }

    /// `dcap-qvl`'s form, for its verifier.
    pub(crate) fn as_dcap(&self) -> &QuoteCollateralV3 {
        &self.inner
    }
}

impl TdxCollateral {
    /// `tdx.collateral_window`: `now` lies within every part's validity, and a failure names
    /// the parts that are not yet valid or stale.
    pub(super) fn window_check(&self, now: OffsetDateTime) -> Check {
        let collateral = self;
        let issued = collateral.latest_issue_date();
        let next_update = collateral.earliest_next_update();
        let expected = format!(
            "now within the collateral's validity [{}, {}]",
            fmt_time(issued),
            fmt_time(next_update)
        );
        let found = fmt_time(now);
        Check::from_bool(
            &tdx::COLLATERAL_WINDOW,
            issued <= now && now <= next_update,
            expected,
            found,
            || {
                let parts = collateral.parts();
                if now < issued {
                    let early: Vec<String> = parts
                        .iter()
                        .filter(|(_, issue, _)| now < *issue)
                        .map(|(part, issue, _)| {
                            format!("the {part} was issued {}", fmt_time(*issue))
                        })
                        .collect();
                    format!("collateral is not yet valid: {}", early.join(", "))
                } else {
                    let stale: Vec<String> = parts
                        .iter()
                        .filter_map(|(part, _, next)| {
                            next.filter(|n| *n < now).map(|n| {
                                format!("the {part}'s next update was due {}", fmt_time(n))
                            })
                        })
                        .collect();
                    format!("collateral is stale: {}", stale.join(", "))
                }
            },
        )
    }
}

/// Field names for error messages, as (issue, next update).
type DateFields = (&'static str, &'static str);
const TCB_INFO_DATES: DateFields = ("tcb_info.issueDate", "tcb_info.nextUpdate");
const QE_IDENTITY_DATES: DateFields = ("qe_identity.issueDate", "qe_identity.nextUpdate");
const ROOT_CRL_DATES: DateFields = ("root_ca_crl.thisUpdate", "root_ca_crl.nextUpdate");
const PCK_CRL_DATES: DateFields = ("pck_crl.thisUpdate", "pck_crl.nextUpdate");

fn json_validity(
    json: &str,
    field: &'static str,
    (issue_field, next_field): DateFields,
) -> Result<JsonValidity, CollateralError> {
    let dated: Dated = serde_json::from_str(json)
        .map_err(|source| CollateralError::InnerJson { field, source })?;
    Ok(JsonValidity {
        issued: rfc3339(&dated.issue_date, issue_field)?,
        next_update: rfc3339(&dated.next_update, next_field)?,
    })
}

fn rfc3339(value: &str, field: &'static str) -> Result<OffsetDateTime, CollateralError> {
    OffsetDateTime::parse(value, &Rfc3339).map_err(|source| CollateralError::Date {
        field,
        value: value.to_owned(),
        source,
    })
}

fn crl_validity(
    der: &[u8],
    field: &'static str,
    (this_field, next_field): DateFields,
) -> Result<CrlValidity, CollateralError> {
    let crl =
        CertificateList::from_der(der).map_err(|source| CollateralError::Crl { field, source })?;
    let tbs = &crl.tbs_cert_list;
    Ok(CrlValidity {
        issued: unix(tbs.this_update.to_unix_duration().as_secs(), this_field)?,
        next_update: tbs
            .next_update
            .map(|t| unix(t.to_unix_duration().as_secs(), next_field))
            .transpose()?,
    })
}

fn unix(secs: u64, field: &'static str) -> Result<OffsetDateTime, CollateralError> {
    i64::try_from(secs)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .ok_or(CollateralError::CrlDate { field, secs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_json_names_the_field() {
        let err = json_validity(
            r#"{"issueDate":"yesterday","nextUpdate":"x"}"#,
            "tcb_info",
            TCB_INFO_DATES,
        )
        .unwrap_err();
        assert!(
            matches!(&err, CollateralError::Date { field: "tcb_info.issueDate", value, .. } if value == "yesterday"),
            "{err}"
        );
        let err = json_validity("{}", "qe_identity", QE_IDENTITY_DATES).unwrap_err();
        assert!(matches!(
            err,
            CollateralError::InnerJson {
                field: "qe_identity",
                ..
            }
        ));
    }

    #[test]
    fn not_collateral_is_a_json_error() {
        assert!(matches!(
            TdxCollateral::from_json(b"{\"tcb_info\": 1}"),
            Err(CollateralError::Json { .. })
        ));
    }

    #[test]
    fn garbage_crl_names_the_field() {
        assert!(matches!(
            crl_validity(&[0x30, 0x03, 1, 2], "pck_crl", PCK_CRL_DATES),
            Err(CollateralError::Crl {
                field: "pck_crl",
                ..
            })
        ));
    }
}
