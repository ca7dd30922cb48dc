//! Python values into [`silk_verifier::Inputs`], and the call itself.
//!
//! Wrong Python types raise `TypeError`; values of the right type that cannot be used (a
//! policy that does not parse, a nonce that is not hex, an unknown format) raise
//! `InputError` with the core's message, as `silk verify` exits 2 with it.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyMapping, PyString};
use silk_verifier::{Format, GpuNonce, Inputs};
use time::OffsetDateTime;

use crate::InputError;

/// An [`InputError`] carrying `message`.
pub(crate) fn input_error(message: impl std::fmt::Display) -> PyErr {
    InputError::new_err(message.to_string())
}

/// The bytes of `value`: `bytes`, `bytearray` or `memoryview`, and `str` (as UTF-8) where
/// `text` allows it (PEM, JSON, XML, hex).
pub(crate) fn bytes(value: &Bound<'_, PyAny>, what: &str, text: bool) -> PyResult<Vec<u8>> {
    if let Ok(b) = value.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    if let Ok(b) = value.cast::<PyByteArray>() {
        return Ok(b.to_vec());
    }
    if text {
        if let Ok(s) = value.cast::<PyString>() {
            return Ok(s.to_cow()?.as_bytes().to_vec());
        }
    }
    if value.hasattr("tobytes")? && value.get_type().name()? == "memoryview" {
        let b = value.call_method0("tobytes")?;
        return Ok(b.cast::<PyBytes>()?.as_bytes().to_vec());
    }
    let wanted = if text {
        "bytes or str"
    } else {
        "bytes, bytearray or memoryview"
    };
    Err(PyTypeError::new_err(format!(
        "{what}: expected {wanted}, got {}",
        value.get_type().name()?
    )))
}

/// A format's name: `snp`, `tdx` (or `sgx`), `gpu`, `bundle`.
pub(crate) fn format(name: &str) -> PyResult<Format> {
    Format::from_name(name).ok_or_else(|| {
        input_error(format!(
            "format {name:?} is none silk knows: snp, tdx (or sgx), gpu or bundle"
        ))
    })
}

/// Hex text (`0x` allowed) as bytes.
pub(crate) fn hex_bytes(text: &str, what: &str) -> PyResult<Vec<u8>> {
    let digits = text.trim();
    let digits = digits.strip_prefix("0x").unwrap_or(digits);
    hex::decode(digits).map_err(|e| input_error(format!("{what} {text:?} is not hex: {e}")))
}

/// The `collateral` dictionary: certificates and collateral for the evidence.
#[derive(Default)]
pub(crate) struct Collateral {
    vcek: Option<Vec<u8>>,
    ask: Option<Vec<u8>>,
    ark: Option<Vec<u8>>,
    cert_chain: Option<Vec<u8>>,
    tdx: Option<Vec<u8>>,
    gpu_chain: Option<Vec<u8>>,
    gpu_rims: Vec<(String, Vec<u8>)>,
    ocsp: Vec<Vec<u8>>,
    gpu_nonce: Option<String>,
    no_nonce: bool,
}

/// The keys `collateral` may have.
const KEYS: &str =
    "vcek, ask, ark, cert_chain, tdx, gpu_chain, gpu_rims, ocsp, gpu_nonce, no_nonce";

impl Collateral {
    /// Reads the dictionary (`None`: nothing given).
    pub(crate) fn from_py(value: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let mut c = Collateral::default();
        let Some(value) = value.filter(|v| !v.is_none()) else {
            return Ok(c);
        };
        let dict = value.cast::<PyDict>().map_err(|_| {
            PyTypeError::new_err(format!(
                "collateral: expected a dict, got {}",
                value
                    .get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        })?;
        for (key, value) in dict.iter() {
            let key: String = key
                .extract()
                .map_err(|_| PyTypeError::new_err("collateral: keys must be str"))?;
            if value.is_none() {
                continue;
            }
            let what = format!("collateral[{key:?}]");
            match key.as_str() {
                "vcek" | "vlek" => c.vcek = Some(bytes(&value, &what, true)?),
                "ask" | "asvk" => c.ask = Some(bytes(&value, &what, true)?),
                "ark" => c.ark = Some(bytes(&value, &what, true)?),
                "cert_chain" => c.cert_chain = Some(bytes(&value, &what, true)?),
                "tdx" => c.tdx = Some(bytes(&value, &what, true)?),
                "gpu_chain" => c.gpu_chain = Some(bytes(&value, &what, true)?),
                "gpu_rims" => c.gpu_rims = rims(&value)?,
                "ocsp" => {
                    for item in value.try_iter()? {
                        c.ocsp.push(bytes(&item?, &what, false)?);
                    }
                }
                "gpu_nonce" => c.gpu_nonce = Some(value.extract()?),
                "no_nonce" => c.no_nonce = value.extract()?,
                other => {
                    return Err(PyTypeError::new_err(format!(
                        "collateral: unknown key {other:?} (known: {KEYS})"
                    )))
                }
            }
        }
        Ok(c)
    }
}

/// NVIDIA RIMs: a dict `{file name: XML}`, or a list of `(name, xml)` pairs or of
/// `{"name": ..., "xml": ...}` dicts.
fn rims(value: &Bound<'_, PyAny>) -> PyResult<Vec<(String, Vec<u8>)>> {
    const WHAT: &str = "collateral[\"gpu_rims\"]";
    let mut out = Vec::new();
    if let Ok(map) = value.cast::<PyMapping>() {
        for item in map.items()?.iter() {
            let (name, xml): (String, Bound<'_, PyAny>) = item.extract()?;
            let xml = bytes(&xml, &format!("{WHAT}[{name:?}]"), true)?;
            out.push((name, xml));
        }
        return Ok(out);
    }
    for item in value.try_iter()? {
        let item = item?;
        let (name, xml): (String, Bound<'_, PyAny>) = if let Ok(d) = item.cast::<PyDict>() {
            let get = |k: &str| {
                d.get_item(k)?.ok_or_else(|| {
                    PyTypeError::new_err(format!("{WHAT}: each RIM needs \"name\" and \"xml\""))
                })
            };
            (get("name")?.extract()?, get("xml")?)
        } else {
            item.extract().map_err(|_| {
                PyTypeError::new_err(format!(
                    "{WHAT}: expected a dict of name: xml, or (name, xml) pairs"
                ))
            })?
        };
        let xml = bytes(&xml, &format!("{WHAT}[{name:?}]"), true)?;
        out.push((name, xml));
    }
    Ok(out)
}

/// The core's inputs: the policy parsed, the time (now when not given), the collateral.
pub(crate) fn inputs(policy: &str, now: Option<&str>, c: Collateral) -> PyResult<Inputs> {
    let policy = silk_verifier::parse_policy(policy).map_err(input_error)?;
    let now = match now {
        Some(text) => silk_verifier::parse_time(text).map_err(input_error)?,
        None => OffsetDateTime::now_utc(),
    };
    let mut inputs = Inputs::new(policy, now);
    inputs.snp.vek = c.vcek;
    inputs.snp.ask = c.ask;
    inputs.snp.ark = c.ark;
    inputs.snp.chain = c.cert_chain;
    inputs.tdx_collateral = c.tdx;
    inputs.gpu_chain = c.gpu_chain;
    inputs.gpu_rims = c.gpu_rims;
    inputs.ocsp = c.ocsp;
    inputs.gpu_nonce = match (c.gpu_nonce, c.no_nonce) {
        (Some(_), true) => {
            return Err(input_error(
                "collateral: gpu_nonce and no_nonce contradict each other: pass one",
            ))
        }
        (Some(text), false) => {
            let bytes = hex_bytes(&text, "gpu_nonce")?;
            let nonce: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                input_error(format!(
                    "gpu_nonce is {} bytes; a GPU report's nonce is 32 bytes (64 hex digits)",
                    bytes.len()
                ))
            })?;
            GpuNonce::Expect(nonce)
        }
        (None, true) => GpuNonce::AcceptReplay,
        (None, false) => GpuNonce::Unset,
    };
    Ok(inputs)
}

/// Verifies (without holding the GIL: other Python threads run meanwhile) and renders the
/// verdict as `silk verify --json` does.
pub(crate) fn run(
    py: Python<'_>,
    evidence: &[u8],
    format: Option<Format>,
    inputs: &Inputs,
    source: &str,
) -> PyResult<String> {
    let outcome = py
        .detach(|| silk_verifier::verify(evidence, format, inputs))
        .map_err(input_error)?;
    Ok(silk_verifier::verdict_json(
        &outcome.verdict,
        outcome.kind,
        source,
        inputs.now,
    ))
}
