from collections.abc import Mapping, Sequence
from typing import Literal, Optional, Tuple, TypedDict, Union

__version__: str

_Bytes = Union[bytes, bytearray, memoryview]
_Text = Union[_Bytes, str]

class Rim(TypedDict):
    name: str
    xml: _Text

class Collateral(TypedDict, total=False):
    """Certificates and collateral; every key optional."""

    vcek: _Text
    """SNP: the VCEK or VLEK that signed the report (DER or PEM). Alias: ``vlek``."""
    vlek: _Text
    ask: _Text
    """SNP: the ASK or ASVK (DER or PEM); AMD's pinned one when absent. Alias: ``asvk``."""
    asvk: _Text
    ark: _Text
    """SNP: the ARK (DER or PEM); AMD's pinned one when absent."""
    cert_chain: _Text
    """SNP: AMD's cert_chain PEM (ASK then ARK), as KDS serves it."""
    tdx: _Text
    """TDX/SGX: Intel PCS collateral (JSON)."""
    gpu_chain: _Text
    """GPU: the device certificate chain (PEM, leaf first) of a standalone report."""
    gpu_rims: Union[Mapping[str, _Text], Sequence[Union[Tuple[str, _Text], Rim]]]
    """GPU: NVIDIA's driver and VBIOS RIMs (XML), by file name."""
    ocsp: Sequence[_Bytes]
    """GPU: saved DER OCSP responses for the device chain."""
    gpu_nonce: str
    """GPU: the nonce (64 hex digits) a standalone report was requested with."""
    no_nonce: bool
    """GPU: accept a standalone report whatever its nonce (it may be a replay)."""

Format = Literal["snp", "tdx", "sgx", "gpu", "bundle"]

class InputError(ValueError):
    """The inputs could not be used at all (what ``silk verify`` exits 2 for)."""

def verify_evidence(
    evidence: _Bytes,
    *,
    policy: str,
    now: Optional[str] = None,
    format: Optional[Format] = None,
    source: str = "evidence",
    collateral: Optional[Collateral] = None,
) -> str:
    """Verifies attestation evidence under ``policy`` (TOML) as of ``now`` (RFC 3339;
    the current time when None) and returns the verdict JSON of ``silk verify --json``,
    with ``source`` as the evidence's name. Raises InputError when inputs are unusable."""

def verify_bundle(
    bundle: _Text,
    policy: str,
    *,
    now: Optional[str] = None,
    source: str = "evidence",
    nonce: Optional[str] = None,
    max_age_secs: Optional[int] = None,
    collateral: Optional[Collateral] = None,
) -> str:
    """Verifies a silk evidence bundle (``GET /v1/attestation``) and returns the verdict
    JSON. ``nonce``: the challenge sent (hex), which the bundle's claims must carry;
    ``max_age_secs``: the oldest acceptable claims."""
