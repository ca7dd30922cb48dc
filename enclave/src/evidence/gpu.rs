//! NVIDIA GPU evidence through NVML, loaded at run time.
//!
//! `libnvidia-ml.so.1` is opened with `dlopen` when GPU evidence is asked for, so the
//! enclave builds and runs without any NVIDIA library; a machine without one gets
//! [`GpuError::NoLibrary`]. For each GPU the enclave asks for the SPDM attestation report
//! over a 32-byte nonce (which the claims carry, binding the report to this boot's keys)
//! and for the device certificate chain, then returns them as
//! [`GpuEvidence`](silk_protocol::attestation::gpu::GpuEvidence) for the bundle.
//!
//! The C structures below copy `nvml.h` (driver 535 and later) field for field; their
//! sizes and offsets are tested, since a mismatch would have NVML write past our buffers.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr};

use silk_protocol::attestation::gpu::{GpuArch, GpuEvidence};

/// NVML's shared library, as the driver installs it.
pub const LIBRARY: &str = "libnvidia-ml.so.1";

const NONCE_SIZE: usize = 0x20;
const ATTESTATION_REPORT_SIZE: usize = 0x2000;
const CEC_ATTESTATION_REPORT_SIZE: usize = 0x1000;
const CERT_CHAIN_SIZE: usize = 0x1000;
const ATTESTATION_CERT_CHAIN_SIZE: usize = 0x1400;
const NVML_SUCCESS: c_int = 0;
const ARCH_HOPPER: c_uint = 9;
const ARCH_BLACKWELL: c_uint = 10;

/// `nvmlConfComputeGpuAttestationReport_t`. The caller writes `nonce`; NVML fills the rest.
#[repr(C)]
pub struct NvmlAttestationReport {
    /// Whether `cec_attestation_report` holds a report (CEC, Blackwell).
    pub is_cec_attestation_report_present: c_uint,
    /// Bytes used in `attestation_report`.
    pub attestation_report_size: c_uint,
    /// Bytes used in `cec_attestation_report`.
    pub cec_attestation_report_size: c_uint,
    /// The requester's nonce, signed into the report.
    pub nonce: [u8; NONCE_SIZE],
    /// The SPDM GET_MEASUREMENTS request and response.
    pub attestation_report: [u8; ATTESTATION_REPORT_SIZE],
    /// The CEC's report, when present.
    pub cec_attestation_report: [u8; CEC_ATTESTATION_REPORT_SIZE],
}

/// `nvmlConfComputeGpuCertificate_t`.
#[repr(C)]
pub struct NvmlGpuCertificate {
    /// Bytes used in `cert_chain`.
    pub cert_chain_size: c_uint,
    /// Bytes used in `attestation_cert_chain`.
    pub attestation_cert_chain_size: c_uint,
    /// The device identity chain.
    pub cert_chain: [u8; CERT_CHAIN_SIZE],
    /// The attestation key's chain (PEM, leaf first): what verifies the report.
    pub attestation_cert_chain: [u8; ATTESTATION_CERT_CHAIN_SIZE],
}

/// `nvmlConfComputeSystemState_t`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NvmlCcState {
    /// 0 unavailable, 1 simulated, 2 hardware.
    pub environment: c_uint,
    /// 1 when confidential computing is enabled.
    pub cc_feature: c_uint,
    /// 1 when devtools (debug) mode is on: not confidential.
    pub dev_tools_mode: c_uint,
}

type Device = *mut c_void;
type FnVoid = unsafe extern "C" fn() -> c_int;
type FnCount = unsafe extern "C" fn(*mut c_uint) -> c_int;
type FnHandle = unsafe extern "C" fn(c_uint, *mut Device) -> c_int;
type FnArch = unsafe extern "C" fn(Device, *mut c_uint) -> c_int;
type FnReport = unsafe extern "C" fn(Device, *mut NvmlAttestationReport) -> c_int;
type FnCert = unsafe extern "C" fn(Device, *mut NvmlGpuCertificate) -> c_int;
type FnState = unsafe extern "C" fn(*mut NvmlCcState) -> c_int;
type FnError = unsafe extern "C" fn(c_int) -> *const c_char;

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
    #[error("{call} failed: NVML error {code} ({message})")]
    Nvml {
        /// The function.
        call: &'static str,
        /// NVML's return code.
        code: c_int,
        /// `nvmlErrorString`'s text.
        message: String,
    },
    /// Confidential computing is off, or in devtools mode.
    #[error("confidential computing is not in production mode: {0:?}")]
    NotConfidential(NvmlCcState),
    /// NVML answered something inconsistent.
    #[error("NVML answered a malformed {0}")]
    Malformed(&'static str),
    /// The GPU is not a Hopper or Blackwell.
    #[error("GPU {index} has NVML architecture {arch}, not Hopper (9) or Blackwell (10)")]
    Architecture {
        /// The device index.
        index: u32,
        /// NVML's architecture number.
        arch: c_uint,
    },
}

/// An initialized NVML; shut down when dropped.
pub struct Nvml {
    // Function pointers below point into the library, so it is kept loaded with them.
    _lib: libloading::Library,
    shutdown: FnVoid,
    count: FnCount,
    handle: FnHandle,
    arch: FnArch,
    report: FnReport,
    cert: FnCert,
    state: FnState,
    error: FnError,
}

impl Nvml {
    /// Loads and initializes NVML.
    pub fn load() -> Result<Self, GpuError> {
        // SAFETY: loading NVML runs its initializers, which only set up its own state.
        let lib = unsafe { libloading::Library::new(LIBRARY) }
            .map_err(|e| GpuError::NoLibrary(e.to_string()))?;
        // SAFETY: each symbol is looked up with the prototype nvml.h declares for it.
        let nvml = unsafe {
            let init: FnVoid = symbol(&lib, b"nvmlInit_v2\0", "nvmlInit_v2")?;
            let nvml = Self {
                shutdown: symbol(&lib, b"nvmlShutdown\0", "nvmlShutdown")?,
                count: symbol(&lib, b"nvmlDeviceGetCount_v2\0", "nvmlDeviceGetCount_v2")?,
                handle: symbol(
                    &lib,
                    b"nvmlDeviceGetHandleByIndex_v2\0",
                    "nvmlDeviceGetHandleByIndex_v2",
                )?,
                arch: symbol(
                    &lib,
                    b"nvmlDeviceGetArchitecture\0",
                    "nvmlDeviceGetArchitecture",
                )?,
                report: symbol(
                    &lib,
                    b"nvmlDeviceGetConfComputeGpuAttestationReport\0",
                    "nvmlDeviceGetConfComputeGpuAttestationReport",
                )?,
                cert: symbol(
                    &lib,
                    b"nvmlDeviceGetConfComputeGpuCertificate\0",
                    "nvmlDeviceGetConfComputeGpuCertificate",
                )?,
                state: symbol(
                    &lib,
                    b"nvmlSystemGetConfComputeState\0",
                    "nvmlSystemGetConfComputeState",
                )?,
                error: symbol(&lib, b"nvmlErrorString\0", "nvmlErrorString")?,
                _lib: lib,
            };
            let rc = init();
            if rc != NVML_SUCCESS {
                return Err(nvml.fail("nvmlInit_v2", rc));
            }
            nvml
        };
        Ok(nvml)
    }

    fn fail(&self, call: &'static str, code: c_int) -> GpuError {
        // SAFETY: nvmlErrorString returns a static NUL-terminated string (or null).
        let ptr = unsafe { (self.error)(code) };
        let message = if ptr.is_null() {
            String::new()
        } else {
            // SAFETY: non-null, NUL-terminated, static.
            unsafe { CStr::from_ptr(ptr) }
                .to_string_lossy()
                .into_owned()
        };
        GpuError::Nvml {
            call,
            code,
            message,
        }
    }

    /// The system's confidential-computing state.
    pub fn cc_state(&self) -> Result<NvmlCcState, GpuError> {
        let mut state = NvmlCcState::default();
        // SAFETY: `state` is a valid, writable nvmlConfComputeSystemState_t.
        let rc = unsafe { (self.state)(&mut state) };
        if rc != NVML_SUCCESS {
            return Err(self.fail("nvmlSystemGetConfComputeState", rc));
        }
        Ok(state)
    }

    /// How many GPUs NVML sees.
    pub fn device_count(&self) -> Result<u32, GpuError> {
        let mut n: c_uint = 0;
        // SAFETY: `n` is writable.
        let rc = unsafe { (self.count)(&mut n) };
        if rc != NVML_SUCCESS {
            return Err(self.fail("nvmlDeviceGetCount_v2", rc));
        }
        Ok(n)
    }

    /// Evidence from GPU `index` over `nonce`.
    pub fn evidence(&self, index: u32, nonce: &[u8; 32]) -> Result<GpuEvidence, GpuError> {
        let mut device: Device = std::ptr::null_mut();
        // SAFETY: `device` is writable; NVML checks the index.
        let rc = unsafe { (self.handle)(index, &mut device) };
        if rc != NVML_SUCCESS {
            return Err(self.fail("nvmlDeviceGetHandleByIndex_v2", rc));
        }
        let mut arch_code: c_uint = 0;
        // SAFETY: `device` came from NVML; `arch_code` is writable.
        let rc = unsafe { (self.arch)(device, &mut arch_code) };
        if rc != NVML_SUCCESS {
            return Err(self.fail("nvmlDeviceGetArchitecture", rc));
        }
        let arch = match arch_code {
            ARCH_HOPPER => GpuArch::Hopper,
            ARCH_BLACKWELL => GpuArch::Blackwell,
            arch => return Err(GpuError::Architecture { index, arch }),
        };

        // SAFETY: all-zero bytes are a valid value of these plain C structures; they are
        // boxed because together they are 21 KiB.
        let mut report: Box<NvmlAttestationReport> = Box::new(unsafe { std::mem::zeroed() });
        report.nonce = *nonce;
        // SAFETY: `report` is a valid, writable structure of the size NVML expects.
        let rc = unsafe { (self.report)(device, &mut *report) };
        if rc != NVML_SUCCESS {
            return Err(self.fail("nvmlDeviceGetConfComputeGpuAttestationReport", rc));
        }
        let mut cert: Box<NvmlGpuCertificate> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: as above.
        let rc = unsafe { (self.cert)(device, &mut *cert) };
        if rc != NVML_SUCCESS {
            return Err(self.fail("nvmlDeviceGetConfComputeGpuCertificate", rc));
        }
        Ok(GpuEvidence {
            arch,
            report: used(
                &report.attestation_report,
                report.attestation_report_size,
                "attestation report",
            )?,
            cert_chain_pem: used(
                &cert.attestation_cert_chain,
                cert.attestation_cert_chain_size,
                "attestation certificate chain",
            )?,
        })
    }

    /// Evidence from every GPU over `nonce`, after checking that confidential computing is
    /// on in production mode (not devtools), which the report itself does not say.
    pub fn collect(&self, nonce: &[u8; 32]) -> Result<Vec<GpuEvidence>, GpuError> {
        let state = self.cc_state()?;
        if state.cc_feature != 1 || state.dev_tools_mode != 0 || state.environment != 2 {
            return Err(GpuError::NotConfidential(state));
        }
        (0..self.device_count()?)
            .map(|i| self.evidence(i, nonce))
            .collect()
    }
}

impl Drop for Nvml {
    fn drop(&mut self) {
        // SAFETY: NVML was initialized in `load`; shutdown pairs with that init.
        unsafe {
            (self.shutdown)();
        }
    }
}

/// Looks `name` up in `lib` as a `T`.
///
/// # Safety
/// `T` must be the function's true type.
unsafe fn symbol<T: Copy>(
    lib: &libloading::Library,
    name: &[u8],
    what: &'static str,
) -> Result<T, GpuError> {
    // SAFETY: the caller guarantees the type.
    unsafe { lib.get::<T>(name) }
        .map(|s| *s)
        .map_err(|_| GpuError::Missing(what))
}

/// The first `size` bytes of `buf`, which must hold them and not be empty.
fn used(buf: &[u8], size: c_uint, what: &'static str) -> Result<Vec<u8>, GpuError> {
    let size = usize::try_from(size).map_err(|_| GpuError::Malformed(what))?;
    match buf.get(..size) {
        Some(bytes) if !bytes.is_empty() => Ok(bytes.to_vec()),
        _ => Err(GpuError::Malformed(what)),
    }
}

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use super::*;

    #[test]
    fn structures_match_nvml_h() {
        assert_eq!(
            size_of::<NvmlAttestationReport>(),
            12 + 0x20 + 0x2000 + 0x1000
        );
        assert_eq!(
            offset_of!(NvmlAttestationReport, attestation_report_size),
            4
        );
        assert_eq!(
            offset_of!(NvmlAttestationReport, cec_attestation_report_size),
            8
        );
        assert_eq!(offset_of!(NvmlAttestationReport, nonce), 12);
        assert_eq!(offset_of!(NvmlAttestationReport, attestation_report), 44);
        assert_eq!(
            offset_of!(NvmlAttestationReport, cec_attestation_report),
            44 + 0x2000
        );
        assert_eq!(size_of::<NvmlGpuCertificate>(), 8 + 0x1000 + 0x1400);
        assert_eq!(
            offset_of!(NvmlGpuCertificate, attestation_cert_chain_size),
            4
        );
        assert_eq!(offset_of!(NvmlGpuCertificate, cert_chain), 8);
        assert_eq!(
            offset_of!(NvmlGpuCertificate, attestation_cert_chain),
            8 + 0x1000
        );
        assert_eq!(size_of::<NvmlCcState>(), 12);
        assert_eq!(offset_of!(NvmlCcState, dev_tools_mode), 8);
    }

    #[test]
    fn used_bytes_are_bounded() {
        let buf = [1u8; 8];
        assert_eq!(used(&buf, 3, "x").unwrap(), vec![1, 1, 1]);
        assert!(used(&buf, 0, "x").is_err());
        assert!(used(&buf, 9, "x").is_err());
    }

    #[test]
    fn a_machine_without_nvml_says_so() {
        // CI has no NVIDIA driver; where one exists, loading must succeed or name the call.
        match Nvml::load() {
            Ok(_) | Err(GpuError::Nvml { .. }) => {}
            Err(e) => assert!(matches!(e, GpuError::NoLibrary(_)), "{e}"),
        }
    }
}
