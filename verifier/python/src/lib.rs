//! silk's attestation verifier for Python: `silk_verifier.verify_evidence` and
//! `silk_verifier.verify_bundle`, over [`silk_verifier::verify`].
//!
//! The verdict is the JSON `silk verify --json` prints, byte for byte: both come from
//! [`silk_verifier::verdict_json`] over the same [`silk_verifier::verify`]. Inputs that
//! cannot be used (the CLI's exit status 2) raise `silk_verifier.InputError`, a
//! `ValueError`, with the core's message. The Python package around this module
//! (`python/silk_verifier`) carries the type stubs.

mod args;

use pyo3::prelude::*;

pyo3::create_exception!(
    silk_verifier,
    InputError,
    pyo3::exceptions::PyValueError,
    "The inputs could not be used at all (what `silk verify` exits 2 for): a policy that \
     does not parse, an unknown evidence format, missing or unreadable certificates or \
     collateral. A refused verdict is not an error: it is returned, with `accepted: false`."
);

/// The extension module, `silk_verifier._native`; `silk_verifier` re-exports it.
#[pymodule]
mod _native {
    use pyo3::prelude::*;

    use crate::args::{self, Collateral};

    #[pymodule_export]
    use super::InputError;

    /// The package version (the silk workspace's).
    #[pymodule_export]
    #[allow(non_upper_case_globals)] // Python's name for it
    const __version__: &str = env!("CARGO_PKG_VERSION");

    /// Verifies attestation evidence and returns the verdict as `silk verify --json`
    /// prints it (pretty JSON and a newline).
    #[pyfunction]
    #[pyo3(signature = (evidence, *, policy, now = None, format = None, source = "evidence", collateral = None))]
    fn verify_evidence(
        py: Python<'_>,
        evidence: &Bound<'_, PyAny>,
        policy: &str,
        now: Option<&str>,
        format: Option<&str>,
        source: &str,
        collateral: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        let evidence = args::bytes(evidence, "evidence", false)?;
        let format = format.map(args::format).transpose()?;
        let collateral = Collateral::from_py(collateral)?;
        let inputs = args::inputs(policy, now, collateral)?;
        args::run(py, &evidence, format, &inputs, source)
    }

    /// Verifies a silk evidence bundle (`GET /v1/attestation`, JSON) and returns the
    /// verdict as `silk verify --json` prints it.
    #[pyfunction]
    #[pyo3(signature = (bundle, policy, *, now = None, source = "evidence", nonce = None, max_age_secs = None, collateral = None))]
    #[allow(clippy::too_many_arguments)] // the Python signature
    fn verify_bundle(
        py: Python<'_>,
        bundle: &Bound<'_, PyAny>,
        policy: &str,
        now: Option<&str>,
        source: &str,
        nonce: Option<&str>,
        max_age_secs: Option<u64>,
        collateral: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        let bundle = args::bytes(bundle, "bundle", true)?;
        let collateral = Collateral::from_py(collateral)?;
        let mut inputs = args::inputs(policy, now, collateral)?;
        if let Some(nonce) = nonce {
            inputs.challenge = Some(args::hex_bytes(nonce, "nonce")?);
        }
        inputs.max_age_secs = max_age_secs;
        args::run(
            py,
            &bundle,
            Some(silk_verifier::Format::Bundle),
            &inputs,
            source,
        )
    }
}
