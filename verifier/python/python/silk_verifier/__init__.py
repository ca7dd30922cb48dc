"""silk's attestation verifier: AMD SEV-SNP reports, Intel TDX and SGX quotes, NVIDIA GPU
reports and silk evidence bundles, checked against a policy.

``verify_evidence`` and ``verify_bundle`` return the verdict as the JSON that
``silk verify --json`` prints, byte for byte: both run the same Rust function
(silk-verifier). A refused verdict is returned (``"accepted": false``); inputs that
cannot be used at all raise ``InputError``.
"""

from ._native import InputError, __version__, verify_bundle, verify_evidence

__all__ = ["InputError", "__version__", "verify_bundle", "verify_evidence"]
