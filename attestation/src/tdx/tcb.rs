//! The TCB status Intel's collateral assigns to a platform, in Intel's own spellings.

use std::fmt;
use std::str::FromStr;

/// The TCB status of a verified quote: the platform's TCB level merged with the QE's.
///
/// Spelled as Intel spells it in TCB info and QE identity JSON (`Display` and `FromStr`
/// use those spellings, e.g. `SWHardeningNeeded`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcbStatus {
    /// The platform is patched for every known issue.
    UpToDate,
    /// Patched, but software must also mitigate some issues (see the advisory ids).
    SwHardeningNeeded,
    /// Patched, but the platform's configuration needs changing (see the advisory ids).
    ConfigurationNeeded,
    /// Both of the above.
    ConfigurationAndSwHardeningNeeded,
    /// The platform lacks security updates.
    OutOfDate,
    /// Out of date, and the configuration needs changing.
    OutOfDateConfigurationNeeded,
    /// The platform's keys are revoked (`dcap-qvl` rejects these outright).
    Revoked,
    /// TDX 1.5 only: the TD launched on an out-of-date TDX module that has since been
    /// updated in place; relaunching the TD would bring it up to date.
    TdRelaunchAdvised,
    /// As [`TcbStatus::TdRelaunchAdvised`], with configuration changes needed too.
    TdRelaunchAdvisedConfigurationNeeded,
}

impl TcbStatus {
    /// Every status, for exhaustive tests and for listing allowed values.
    pub const ALL: [TcbStatus; 9] = [
        TcbStatus::UpToDate,
        TcbStatus::SwHardeningNeeded,
        TcbStatus::ConfigurationNeeded,
        TcbStatus::ConfigurationAndSwHardeningNeeded,
        TcbStatus::OutOfDate,
        TcbStatus::OutOfDateConfigurationNeeded,
        TcbStatus::Revoked,
        TcbStatus::TdRelaunchAdvised,
        TcbStatus::TdRelaunchAdvisedConfigurationNeeded,
    ];

    /// Intel's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TcbStatus::UpToDate => "UpToDate",
            TcbStatus::SwHardeningNeeded => "SWHardeningNeeded",
            TcbStatus::ConfigurationNeeded => "ConfigurationNeeded",
            TcbStatus::ConfigurationAndSwHardeningNeeded => "ConfigurationAndSWHardeningNeeded",
            TcbStatus::OutOfDate => "OutOfDate",
            TcbStatus::OutOfDateConfigurationNeeded => "OutOfDateConfigurationNeeded",
            TcbStatus::Revoked => "Revoked",
            TcbStatus::TdRelaunchAdvised => "TDRelaunchAdvised",
            TcbStatus::TdRelaunchAdvisedConfigurationNeeded => {
                "TDRelaunchAdvisedConfigurationNeeded"
            }
        }
    }
}

impl fmt::Display for TcbStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A TCB status string that is not one of Intel's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown TCB status {0:?}; expected one of Intel's spellings, e.g. \"UpToDate\"")]
pub struct UnknownTcbStatus(pub String);

impl FromStr for TcbStatus {
    type Err = UnknownTcbStatus;

    /// Exact, case-sensitive match: Intel's JSON is, and a near-miss is a typo to report.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TcbStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownTcbStatus(s.to_owned()))
    }
}

/// The TCB status of a verified quote and the Intel security advisories it is subject to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcbVerdict {
    /// The merged platform and QE status.
    pub status: TcbStatus,
    /// Intel advisory ids, e.g. `INTEL-SA-00615`, that apply at this status.
    pub advisory_ids: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_round_trips() {
        for status in TcbStatus::ALL {
            assert_eq!(status.to_string().parse::<TcbStatus>(), Ok(status));
        }
        assert_eq!(
            "ConfigurationAndSWHardeningNeeded".parse(),
            Ok(TcbStatus::ConfigurationAndSwHardeningNeeded)
        );
    }

    #[test]
    fn near_misses_are_refused() {
        for s in ["uptodate", "SwHardeningNeeded", "", "UpToDate "] {
            assert_eq!(s.parse::<TcbStatus>(), Err(UnknownTcbStatus(s.to_owned())));
        }
    }
}
