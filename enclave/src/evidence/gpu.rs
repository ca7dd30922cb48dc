//! NVIDIA GPU evidence through NVML, loaded at run time by `nvml-wrapper`.
//!
//! `libnvidia-ml.so.1` is opened (`dlopen`) when GPU evidence is asked for, so the enclave
//! builds and runs without any NVIDIA library; a machine without one gets
//! [`GpuError::NoLibrary`]. For each GPU the enclave asks for the SPDM attestation report
//! over a 32-byte nonce (which the claims carry, binding the report to this boot's keys)
//! and for the device certificate chain, then returns them as
//! [`GpuEvidence`](silk_protocol::attestation::gpu::GpuEvidence) for the bundle.
//!
//! One call goes through `nvml-wrapper-sys`'s raw binding: `nvmlSystemGetConfComputeState`,
//! the only one that reports the confidential-computing environment (production or
//! simulated) with the feature and devtools flags on every CC driver (535 and later).
//! `nvml-wrapper` exposes the feature and devtools flags through
//! `nvmlSystemGetConfComputeSettings` (550 and later) without the environment, and its
//! combined check also requires the GPUs' ready state, which is set only after attestation
//! succeeded, so it would refuse before the evidence that lets a verifier set it exists.

use std::ffi::OsStr;
use std::panic::{catch_unwind, AssertUnwindSafe};

use nvml_wrapper::enums::device::DeviceArchitecture;
use nvml_wrapper::error::{nvml_try, NvmlError};
use nvml_wrapper_sys::bindings::{
    nvmlConfComputeSystemState_t, NVML_CC_SYSTEM_DEVTOOLS_MODE_OFF,
    NVML_CC_SYSTEM_ENVIRONMENT_PROD, NVML_CC_SYSTEM_FEATURE_ENABLED,
};
use silk_protocol::attestation::gpu::{GpuArch, GpuEvidence};

/// NVML's shared library, as the driver installs it.
pub const LIBRARY: &str = "libnvidia-ml.so.1";

/// The system's confidential-computing state (`nvmlConfComputeSystemState_t`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CcState {
    /// 0 unavailable, 1 simulated, 2 hardware (production).
    pub environment: u32,
    /// 1 when confidential computing is enabled.
    pub cc_feature: u32,
    /// 1 when devtools (debug) mode is on: not confidential.
    pub dev_tools_mode: u32,
}

impl CcState {
    /// Confidential computing on, in the hardware environment, devtools off: the only
    /// state whose evidence means the GPU's memory is protected.
    pub fn is_production(&self) -> bool {
        self.cc_feature == NVML_CC_SYSTEM_FEATURE_ENABLED
            && self.dev_tools_mode == NVML_CC_SYSTEM_DEVTOOLS_MODE_OFF
            && self.environment == NVML_CC_SYSTEM_ENVIRONMENT_PROD
    }
}

/// Why GPU evidence could not be collected.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// NVML is not installed (no NVIDIA driver): expected on CPU-only machines.
    #[error("{LIBRARY} could not be loaded (no NVIDIA driver?): {0}")]
    NoLibrary(String),
    /// The library lacks a function silk needs (a driver older than 535).
    #[error("{LIBRARY} has no {0} (confidential computing needs driver 535 or later)")]
    Missing(&'static str),
    /// An NVML call failed.
    #[error("{call} failed: {source}")]
    Nvml {
        /// The function.
        call: &'static str,
        /// NVML's error.
        #[source]
        source: NvmlError,
    },
    /// Confidential computing is off, simulated, or in devtools mode.
    #[error("confidential computing is not in production mode: {0:?}")]
    NotConfidential(CcState),
    /// NVML answered something inconsistent.
    #[error("NVML answered a malformed {0}")]
    Malformed(&'static str),
    /// The GPU is not a Hopper or Blackwell.
    #[error("GPU {index} has NVML architecture {arch}, not Hopper or Blackwell")]
    Architecture {
        /// The device index.
        index: u32,
        /// NVML's architecture, by name or number.
        arch: String,
    },
}

/// `call` failed with `e`; a function missing from the library is named as such.
fn fail(call: &'static str, e: NvmlError) -> GpuError {
    match e {
        NvmlError::FailedToLoadSymbol(_) | NvmlError::FunctionNotFound => GpuError::Missing(call),
        source => GpuError::Nvml { call, source },
    }
}

/// An initialized NVML; shut down when dropped.
pub struct Nvml {
    nvml: nvml_wrapper::Nvml,
}

impl Nvml {
    /// Loads and initializes NVML.
    pub fn load() -> Result<Self, GpuError> {
        Self::load_from(LIBRARY)
    }

    fn load_from(library: &str) -> Result<Self, GpuError> {
        nvml_wrapper::Nvml::builder()
            .lib_path(OsStr::new(library))
            .init()
            .map(|nvml| Self { nvml })
            .map_err(|e| match e {
                NvmlError::LibloadingError(e) => GpuError::NoLibrary(e.to_string()),
                e => fail("nvmlInit_v2", e),
            })
    }

    /// The system's confidential-computing state.
    pub fn cc_state(&self) -> Result<CcState, GpuError> {
        const CALL: &str = "nvmlSystemGetConfComputeState";
        let get = self
            .nvml
            .lib()
            .nvmlSystemGetConfComputeState
            .as_ref()
            .map_err(|_| GpuError::Missing(CALL))?;
        let mut state = nvmlConfComputeSystemState_t {
            environment: 0,
            ccFeature: 0,
            devToolsMode: 0,
        };
        // SAFETY: `get` is the library's nvmlSystemGetConfComputeState, looked up by
        // nvml-wrapper-sys with nvml.h's prototype; the library stays loaded and
        // initialized while `self.nvml` lives, and `state` is a valid, writable
        // nvmlConfComputeSystemState_t for the duration of the call.
        let rc = unsafe { get(&mut state) };
        nvml_try(rc).map_err(|e| fail(CALL, e))?;
        Ok(CcState {
            environment: state.environment,
            cc_feature: state.ccFeature,
            dev_tools_mode: state.devToolsMode,
        })
    }

    /// How many GPUs NVML sees.
    pub fn device_count(&self) -> Result<u32, GpuError> {
        self.nvml
            .device_count()
            .map_err(|e| fail("nvmlDeviceGetCount_v2", e))
    }

    /// Evidence from GPU `index` over `nonce`.
    pub fn evidence(&self, index: u32, nonce: &[u8; 32]) -> Result<GpuEvidence, GpuError> {
        let device = self
            .nvml
            .device_by_index(index)
            .map_err(|e| fail("nvmlDeviceGetHandleByIndex_v2", e))?;
        let arch = match device.architecture() {
            Ok(DeviceArchitecture::Hopper) => GpuArch::Hopper,
            Ok(DeviceArchitecture::Blackwell) => GpuArch::Blackwell,
            Ok(other) => {
                return Err(GpuError::Architecture {
                    index,
                    arch: other.to_string(),
                })
            }
            Err(NvmlError::UnexpectedVariant(n)) => {
                return Err(GpuError::Architecture {
                    index,
                    arch: format!("number {n}"),
                })
            }
            Err(e) => return Err(fail("nvmlDeviceGetArchitecture", e)),
        };
        let report = bounded("attestation report", || {
            device.confidential_compute_gpu_attestation_report(*nonce)
        })?
        .map_err(|e| fail("nvmlDeviceGetConfComputeGpuAttestationReport", e))?;
        let cert = bounded("attestation certificate chain", || {
            device.confidential_compute_gpu_certificate()
        })?
        .map_err(|e| fail("nvmlDeviceGetConfComputeGpuCertificate", e))?;
        Ok(GpuEvidence {
            arch,
            report: nonempty(report.attestation_report, "attestation report")?,
            cert_chain_pem: nonempty(cert.attestation_cert_chain, "attestation certificate chain")?,
        })
    }

    /// Evidence from every GPU over `nonce`, after checking that confidential computing is
    /// on in production mode (not devtools), which the report itself does not say.
    pub fn collect(&self, nonce: &[u8; 32]) -> Result<Vec<GpuEvidence>, GpuError> {
        let state = self.cc_state()?;
        if !state.is_production() {
            return Err(GpuError::NotConfidential(state));
        }
        (0..self.device_count()?)
            .map(|i| self.evidence(i, nonce))
            .collect()
    }
}

/// Runs `call`, refusing as [`GpuError::Malformed`] an answer that
/// nvml-wrapper cannot take apart: it slices NVML's fixed-size buffers by the sizes NVML
/// reports and panics when one exceeds its buffer. Such a driver answer must not take
/// the enclave down at start (the panic's message still reaches stderr).
fn bounded<T>(
    what: &'static str,
    call: impl FnOnce() -> Result<T, NvmlError>,
) -> Result<Result<T, NvmlError>, GpuError> {
    catch_unwind(AssertUnwindSafe(call)).map_err(|_| GpuError::Malformed(what))
}

/// `bytes`, which must not be empty.
fn nonempty(bytes: Vec<u8>, what: &'static str) -> Result<Vec<u8>, GpuError> {
    if bytes.is_empty() {
        return Err(GpuError::Malformed(what));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_production_cc_is_confidential() {
        let prod = CcState {
            environment: 2,
            cc_feature: 1,
            dev_tools_mode: 0,
        };
        assert!(prod.is_production());
        for not in [
            CcState {
                environment: 1,
                ..prod
            },
            CcState {
                cc_feature: 0,
                ..prod
            },
            CcState {
                dev_tools_mode: 1,
                ..prod
            },
            CcState::default(),
        ] {
            assert!(!not.is_production(), "{not:?}");
        }
    }

    #[test]
    fn empty_answers_are_malformed() {
        assert_eq!(nonempty(vec![1, 2], "x").unwrap(), vec![1, 2]);
        assert!(matches!(
            nonempty(Vec::new(), "report"),
            Err(GpuError::Malformed("report"))
        ));
    }

    #[test]
    fn a_machine_without_nvml_says_so() {
        // CI has no NVIDIA driver; where one exists, loading must succeed or name the call.
        match Nvml::load() {
            Ok(_) | Err(GpuError::Nvml { .. }) => {}
            Err(e) => assert!(matches!(e, GpuError::NoLibrary(_)), "{e}"),
        }
        let Err(e) = Nvml::load_from("/nonexistent/libnvidia-ml.so.1") else {
            panic!("a library that is not there loaded");
        };
        assert!(matches!(e, GpuError::NoLibrary(_)), "{e}");
        assert!(e
            .to_string()
            .contains("could not be loaded (no NVIDIA driver?)"));
    }

    #[test]
    fn a_library_without_nvml_names_the_missing_function() {
        // The C library loads but has no NVML functions: a driver too old, as far as the
        // enclave can tell.
        let Err(e) = Nvml::load_from("libc.so.6") else {
            panic!("libc initialized as NVML");
        };
        assert!(matches!(e, GpuError::Missing("nvmlInit_v2")), "{e}");
        assert!(e.to_string().contains("driver 535 or later"), "{e}");
    }
}
