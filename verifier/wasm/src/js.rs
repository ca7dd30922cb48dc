//! Reading the JS arguments (plain objects, strings, `Uint8Array`s) into a [`Request`],
//! and the host's clock (wasm32 only).

use js_sys::{Array, Reflect, Uint8Array};
use time::OffsetDateTime;
use wasm_bindgen::{JsCast, JsValue};

use crate::options::{Collateral, Request, Rim};

/// The host's clock: `Date.now()`, whole milliseconds since the Unix epoch.
pub(crate) fn host_now() -> OffsetDateTime {
    let ms = js_sys::Date::now();
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn present(v: JsValue) -> Option<JsValue> {
    (!v.is_undefined() && !v.is_null()).then_some(v)
}

/// `obj[key]`, or `None` when `obj` or the value is undefined or null.
fn field(obj: &JsValue, key: &str) -> Option<JsValue> {
    present(obj.clone())?;
    Reflect::get(obj, &JsValue::from_str(key))
        .ok()
        .and_then(present)
}

fn string(obj: &JsValue, key: &str, what: &str) -> Result<Option<String>, String> {
    match field(obj, key) {
        None => Ok(None),
        Some(v) => v
            .as_string()
            .map(Some)
            .ok_or_else(|| format!("{what} must be a string")),
    }
}

/// A `Uint8Array` (a Node `Buffer` is one) or a string (its UTF-8 bytes).
pub(crate) fn bytes_or_string(v: &JsValue, what: &str) -> Result<Option<Vec<u8>>, String> {
    let Some(v) = present(v.clone()) else {
        return Ok(None);
    };
    if let Some(text) = v.as_string() {
        return Ok(Some(text.into_bytes()));
    }
    match v.dyn_into::<Uint8Array>() {
        Ok(array) => Ok(Some(array.to_vec())),
        Err(_) => Err(format!("{what} must be a Uint8Array or a string")),
    }
}

fn bytes_field(obj: &JsValue, key: &str, what: &str) -> Result<Option<Vec<u8>>, String> {
    match field(obj, key) {
        None => Ok(None),
        Some(v) => bytes_or_string(&v, what),
    }
}

fn array_field(obj: &JsValue, key: &str, what: &str) -> Result<Vec<JsValue>, String> {
    match field(obj, key) {
        None => Ok(Vec::new()),
        Some(v) if Array::is_array(&v) => Ok(Array::from(&v).iter().collect()),
        Some(_) => Err(format!("{what} must be an array")),
    }
}

fn collateral(opts: &JsValue) -> Result<Collateral, String> {
    let Some(c) = field(opts, "collateral") else {
        return Ok(Collateral::default());
    };
    let b = |key: &str| bytes_field(&c, key, &format!("collateral.{key}"));
    let mut gpu_rims = Vec::new();
    for (i, rim) in array_field(&c, "gpuRims", "collateral.gpuRims")?
        .iter()
        .enumerate()
    {
        let what = format!("collateral.gpuRims[{i}]");
        let name = string(rim, "name", &format!("{what}.name"))?
            .ok_or_else(|| format!("{what}.name is missing"))?;
        let xml = bytes_field(rim, "xml", &format!("{what}.xml"))?
            .ok_or_else(|| format!("{what}.xml is missing"))?;
        gpu_rims.push(Rim { name, xml });
    }
    let mut ocsp = Vec::new();
    for (i, response) in array_field(&c, "ocsp", "collateral.ocsp")?
        .iter()
        .enumerate()
    {
        let what = format!("collateral.ocsp[{i}]");
        ocsp.push(bytes_or_string(response, &what)?.ok_or_else(|| format!("{what} is empty"))?);
    }
    let no_nonce = match field(&c, "noNonce") {
        None => false,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| "collateral.noNonce must be a boolean".to_owned())?,
    };
    Ok(Collateral {
        vcek: b("vcek")?,
        ask: b("ask")?,
        ark: b("ark")?,
        cert_chain: b("certChain")?,
        tdx: b("tdx")?,
        gpu_chain: b("gpuChain")?,
        gpu_rims,
        ocsp,
        gpu_nonce: string(&c, "gpuNonce", "collateral.gpuNonce")?,
        no_nonce,
    })
}

/// `maxAgeSecs`: a whole, non-negative number of seconds.
fn max_age(opts: &JsValue) -> Result<Option<u64>, String> {
    let Some(v) = field(opts, "maxAgeSecs") else {
        return Ok(None);
    };
    match v.as_f64() {
        Some(n) if n >= 0.0 && n.fract() == 0.0 && n <= u64::MAX as f64 => Ok(Some(n as u64)),
        _ => Err("maxAgeSecs must be a whole number of seconds, 0 or more".into()),
    }
}

/// `verifyEvidence`'s options.
pub(crate) fn evidence_request(opts: &JsValue) -> Result<Request, String> {
    let policy = string(opts, "policy", "opts.policy")?
        .ok_or_else(|| "opts.policy (the policy's TOML) is required".to_owned())?;
    Ok(Request {
        policy,
        now: string(opts, "now", "opts.now")?,
        format: string(opts, "format", "opts.format")?,
        source: string(opts, "source", "opts.source")?,
        collateral: collateral(opts)?,
        challenge: None,
        max_age_secs: None,
    })
}

/// `verifyBundle`'s policy and options.
pub(crate) fn bundle_request(policy: String, opts: &JsValue) -> Result<Request, String> {
    Ok(Request {
        policy,
        now: string(opts, "now", "opts.now")?,
        format: Some("bundle".into()),
        source: string(opts, "source", "opts.source")?,
        collateral: collateral(opts)?,
        challenge: string(opts, "nonce", "opts.nonce")?,
        max_age_secs: max_age(opts)?,
    })
}
