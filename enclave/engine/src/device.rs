//! Where a model runs, as an operator names it: `cpu`, `cuda` or `cuda:N`.

use std::fmt;
use std::str::FromStr;

use candle_core::Device;

/// A compute device by name. The CPU is the default; CUDA devices need a build with the
/// `cuda` feature (candle's CUDA backend through cudarc) and an NVIDIA driver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceSpec {
    /// The CPU, with silk's own kernels.
    #[default]
    Cpu,
    /// The CUDA GPU with this ordinal.
    Cuda(usize),
}

/// Why a device name or device could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// Not `cpu`, `cuda` or `cuda:N`.
    #[error("unknown device `{0}` (expected cpu, cuda or cuda:N)")]
    Unknown(String),
    /// A CUDA device was asked of a build without CUDA.
    #[error("{0}: this build has no CUDA support (build with `--features cuda`)")]
    NoCudaSupport(DeviceSpec),
    /// The device could not be opened (no driver, no such GPU, ...).
    #[error("{spec}: {reason}")]
    Open {
        /// The device asked for.
        spec: DeviceSpec,
        /// What candle or the driver said.
        reason: String,
    },
}

impl FromStr for DeviceSpec {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| DeviceError::Unknown(s.to_owned())),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl DeviceSpec {
    /// Opens the device.
    pub fn open(self) -> Result<Device, DeviceError> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(_) if !cfg!(feature = "cuda") => Err(DeviceError::NoCudaSupport(self)),
            Self::Cuda(n) => Device::new_cuda(n).map_err(|e| DeviceError::Open {
                spec: self,
                // candle appends a backtrace (under RUST_BACKTRACE): the first line says it.
                reason: e.to_string().lines().next().unwrap_or_default().to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print_back() {
        for (name, spec) in [
            ("cpu", DeviceSpec::Cpu),
            ("cuda", DeviceSpec::Cuda(0)),
            ("cuda:3", DeviceSpec::Cuda(3)),
        ] {
            assert_eq!(name.parse::<DeviceSpec>().unwrap(), spec);
        }
        assert_eq!(DeviceSpec::Cuda(2).to_string(), "cuda:2");
        for bad in [
            "", "gpu", "cuda:", "cuda:-1", "cuda:x", "cuda:+1", "CPU", "cuda:1:2",
        ] {
            let err = bad.parse::<DeviceSpec>().unwrap_err();
            assert!(matches!(err, DeviceError::Unknown(_)), "{bad}: {err}");
        }
    }

    #[test]
    fn the_cpu_opens_and_cuda_says_why_not() {
        assert!(DeviceSpec::Cpu.open().unwrap().is_cpu());
        let err = DeviceSpec::Cuda(0).open().unwrap_err();
        if cfg!(feature = "cuda") {
            // Without a driver or GPU the error names the device.
            assert!(err.to_string().starts_with("cuda:0"), "{err}");
        } else {
            assert!(matches!(err, DeviceError::NoCudaSupport(_)), "{err}");
            assert!(err.to_string().contains("--features cuda"), "{err}");
        }
    }
}
