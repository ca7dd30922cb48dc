"""NVIDIA GPU vectors (reports with their device chains, RIMs, nonces, NRAS JSON): the
Python verdict is byte for byte `silk verify --json`'s."""

import shutil

import pytest

from conftest import VECTORS, assert_same, check, cli, read, silk_verifier, status, text

GPU = VECTORS / "gpu"
SAMPLES = GPU / "nvidia-attestation-sdk/testdata/sample_attestation_data/gpu"
REPORT = SAMPLES / "hopperAttestationReport.txt"
CHAIN = SAMPLES / "hopperCertChain.txt"
NOW = "2025-06-01T00:00:00Z"
NONCE_535 = "27a328247bf7935c993341cf587be6f05986ccce4fe7ba2c54100bd616a58f66"
NONCE_590 = "e97b23a1718095a0e9e35edca810768c70a6a5a389b705e753b197912bc11576"
VBIOS_PROD = GPU / "nv-local-gpu-verifier-2.7.3/samples/1010_0200_882_96005E0001_PROD.swidtag"
VBIOS_MISMATCH = (
    GPU / "nvidia-attestation-sdk/testdata/sample_rims/"
    "NV_GPU_VBIOS_1010_0200_882_96005E0001_measurement_mismatch.xml"
)
DRIVER_TAMPERED = (
    GPU / "nvidia-attestation-sdk/testdata/sample_rims/"
    "NV_GPU_DRIVER_GH100_535.86.09_measurement_mismatch.xml"
)


def policy(tmp, extra=""):
    path = tmp / "gpu.toml"
    path.write_text(
        '[gpu]\narchitectures = ["hopper", "blackwell"]\nmin_driver_version = "535"\n'
        'min_vbios_version = "96.00.00.00.00"\nallow_missing_revocation = true\n' + extra
    )
    return path


def rim_dir(tmp, files):
    """A folder for `--gpu-rims`, and the same RIMs as Python takes them (name: XML)."""
    d = tmp / "rims"
    d.mkdir()
    for f in files:
        shutil.copy(f, d / f.name)
    return d, {f.name: read(f) for f in files}


def verify_535(tmp, pol, files):
    rims, by_name = rim_dir(tmp, files)
    out = silk_verifier.verify_evidence(
        read(REPORT),
        policy=pol.read_text(),
        now=NOW,
        format="gpu",
        source=str(REPORT),
        collateral={"gpu_chain": text(CHAIN), "gpu_nonce": NONCE_535, "gpu_rims": by_name},
    )
    args = ["gpu", REPORT, "--certs", CHAIN, "--nonce", NONCE_535, "--gpu-rims", rims,
            "--policy", pol, "--now", NOW]
    return args, out


def test_report_with_chain_nonce_and_vbios_rim_is_accepted(tmp):
    pol = policy(tmp, "allow_missing_rims = true\n")
    args, out = verify_535(tmp, pol, [VBIOS_PROD])
    v = assert_same(args, out, accepted=True)
    assert status(v, "gpu.vbios_rim") == "pass"
    assert "96.00.5E.00.01" in check(v, "gpu.vbios_rim")["found"]
    assert status(v, "gpu.measurements") == "pass"


def test_a_measurement_mismatch_rim_fails_naming_the_index(tmp):
    pol = policy(tmp, "allow_missing_rims = true\n")
    args, out = verify_535(tmp, pol, [VBIOS_MISMATCH])
    v = assert_same(args, out, accepted=False)
    assert "VBIOS index 9:" in check(v, "gpu.measurements")["outcome"]["reason"]


def test_a_tampered_driver_rim_is_refused(tmp):
    pol = policy(tmp)
    args, out = verify_535(tmp, pol, [DRIVER_TAMPERED, VBIOS_PROD])
    v = assert_same(args, out, accepted=False)
    assert status(v, "gpu.driver_rim") == "fail"
    assert status(v, "gpu.vbios_rim") == "pass"


def test_rims_may_be_given_as_pairs_or_dicts(tmp):
    pol = policy(tmp, "allow_missing_rims = true\n")
    _, as_dict = verify_535(tmp, pol, [VBIOS_PROD])
    for rims in (
        [(VBIOS_PROD.name, read(VBIOS_PROD))],
        [{"name": VBIOS_PROD.name, "xml": text(VBIOS_PROD)}],
    ):
        out = silk_verifier.verify_evidence(
            read(REPORT),
            policy=pol.read_text(),
            now=NOW,
            format="gpu",
            source=str(REPORT),
            collateral={"gpu_chain": read(CHAIN), "gpu_nonce": NONCE_535, "gpu_rims": rims},
        )
        assert out == as_dict


NRAS = GPU / "nvidia-attestation-sdk/testdata/evidence_hopper_590_12.json"


@pytest.mark.parametrize(
    "nonce,accepted",
    [(NONCE_590, True), ("00" * 32, False), (None, True)],  # None: --no-nonce
)
def test_nras_json_with_the_nonce_the_user_chose(tmp, nonce, accepted):
    pol = policy(tmp, "allow_missing_rims = true\nallow_protected_pcie = true\n")
    collateral = {"gpu_nonce": nonce} if nonce else {"no_nonce": True}
    out = silk_verifier.verify_evidence(
        read(NRAS), policy=pol.read_text(), now=NOW, source=str(NRAS), collateral=collateral
    )
    flag = ["--nonce", nonce] if nonce else ["--no-nonce"]
    v = assert_same([NRAS, "--policy", pol, "--now", NOW, *flag], out, accepted)
    assert status(v, "gpu.report_signature") == "pass"
    if nonce:
        assert status(v, "gpu.nonce") == ("pass" if accepted else "fail")


def test_nras_json_without_a_nonce_rule_is_an_input_error(tmp):
    pol = policy(tmp, "allow_missing_rims = true\nallow_protected_pcie = true\n")
    assert cli("verify", NRAS, "--policy", pol, "--now", NOW).returncode == 2
    with pytest.raises(silk_verifier.InputError, match="nonce"):
        silk_verifier.verify_evidence(read(NRAS), policy=pol.read_text(), now=NOW)
    with pytest.raises(silk_verifier.InputError, match="contradict"):
        silk_verifier.verify_evidence(
            read(NRAS), policy=pol.read_text(), now=NOW,
            collateral={"gpu_nonce": NONCE_590, "no_nonce": True},
        )
    with pytest.raises(silk_verifier.InputError, match="32 bytes"):
        silk_verifier.verify_evidence(
            read(NRAS), policy=pol.read_text(), now=NOW, collateral={"gpu_nonce": "abcd"}
        )


def test_nvidias_invalid_signature_sample_is_refused(tmp):
    pol = policy(tmp, "allow_missing_rims = true\n")
    bad = SAMPLES / "hopperAttestationReportInvalidSignature.txt"
    out = silk_verifier.verify_evidence(
        read(bad), policy=pol.read_text(), now=NOW, source=str(bad),
        collateral={"gpu_chain": read(CHAIN), "no_nonce": True},
    )
    v = assert_same([bad, "--certs", CHAIN, "--no-nonce", "--policy", pol, "--now", NOW],
                    out, accepted=False)
    assert status(v, "gpu.report_signature") == "fail"


@pytest.mark.parametrize("offset", [0, 3000])  # the request code; the middle
def test_a_damaged_report_is_refused_not_an_error(tmp, offset):
    pol = policy(tmp, "allow_missing_rims = true\n")
    report = bytearray(bytes.fromhex(text(REPORT).strip()))
    report[offset] ^= 0xFF
    damaged = tmp / "damaged.bin"
    damaged.write_bytes(report)
    out = silk_verifier.verify_evidence(
        report, policy=pol.read_text(), now=NOW, source=str(damaged),
        collateral={"gpu_chain": read(CHAIN), "gpu_nonce": NONCE_535},
    )
    assert_same([damaged, "--certs", CHAIN, "--nonce", NONCE_535, "--policy", pol,
                 "--now", NOW], out, accepted=False)


def test_a_report_without_its_chain_is_an_input_error(tmp):
    pol = policy(tmp, "allow_missing_rims = true\n")
    assert cli("verify", "gpu", REPORT, "--nonce", NONCE_535, "--policy", pol).returncode == 2
    with pytest.raises(silk_verifier.InputError):
        silk_verifier.verify_evidence(
            read(REPORT), policy=pol.read_text(), now=NOW, format="gpu",
            collateral={"gpu_nonce": NONCE_535},
        )
