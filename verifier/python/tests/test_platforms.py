"""SEV-SNP, TDX and SGX vectors: each Python verdict is byte for byte the JSON that
`silk verify --json` prints for the same files (``source`` = the path the CLI was given)."""

import pytest

from conftest import EXAMPLES, VECTORS, assert_same, cli, read, silk_verifier, status, text

SNP_REPORT = VECTORS / "snp/milan/report_milan.hex"
SNP_CERTS = VECTORS / "snp/milan"
SNP_POLICY = EXAMPLES / "snp-milan-sample.toml"
TDX_QUOTE = VECTORS / "tdx/tdx_quote"
TDX_POLICY = EXAMPLES / "tdx-sample.toml"
IN_WINDOW = "2025-06-20T00:00:00Z"
AFTER_WINDOW = "2025-08-01T00:00:00Z"
SNP_NOW = "2025-01-01T00:00:00Z"


def snp_collateral():
    """What `--certs vectors/snp/milan` reads: the VCEK and AMD's cert_chain."""
    return {
        "vcek": read(SNP_CERTS / "vcek_milan.der"),
        "cert_chain": text(SNP_CERTS / "cert_chain.pem"),
    }


def test_milan_report_with_its_certificates_is_accepted():
    out = silk_verifier.verify_evidence(
        read(SNP_REPORT),
        policy=text(SNP_POLICY),
        now=SNP_NOW,
        source=str(SNP_REPORT),
        collateral=snp_collateral(),
    )
    v = assert_same(
        [SNP_REPORT, "--certs", SNP_CERTS, "--policy", SNP_POLICY, "--now", SNP_NOW],
        out,
        accepted=True,
    )
    assert v["platform"] == "sev_snp"
    assert all(c["outcome"]["status"] == "pass" for c in v["checks"])


def test_milan_report_with_the_vcek_alone_uses_the_pinned_amd_chain():
    out = silk_verifier.verify_evidence(
        read(SNP_REPORT),
        policy=text(SNP_POLICY),
        now=SNP_NOW,
        format="snp",
        source=str(SNP_REPORT),
        collateral={"vcek": read(SNP_CERTS / "vcek_milan.der")},
    )
    assert_same(
        ["snp", SNP_REPORT, "--vcek", SNP_CERTS / "vcek_milan.der", "--policy", SNP_POLICY,
         "--now", SNP_NOW],
        out,
        accepted=True,
    )


def test_a_turin_vcek_fails_the_milan_reports_signature():
    turin = VECTORS / "snp/turin/vcek_turin.der"
    out = silk_verifier.verify_evidence(
        read(SNP_REPORT),
        policy=text(SNP_POLICY),
        now=SNP_NOW,
        source=str(SNP_REPORT),
        collateral={"vcek": read(turin)},
    )
    v = assert_same(
        [SNP_REPORT, "--vcek", turin, "--policy", SNP_POLICY, "--now", SNP_NOW],
        out,
        accepted=False,
    )
    assert status(v, "snp.report_signature") == "fail"


def test_a_policy_that_refuses_the_measurement(tmp):
    policy = tmp / "other.toml"
    policy.write_text('[snp]\nmeasurements = ["' + "ab" * 48 + '"]\nmin_tcb = {}\n')
    out = silk_verifier.verify_evidence(
        read(SNP_REPORT),
        policy=policy.read_text(),
        now=SNP_NOW,
        source=str(SNP_REPORT),
        collateral=snp_collateral(),
    )
    v = assert_same(
        [SNP_REPORT, "--certs", SNP_CERTS, "--policy", policy, "--now", SNP_NOW],
        out,
        accepted=False,
    )
    assert status(v, "snp.measurement") == "fail"
    assert status(v, "snp.report_signature") == "pass"


@pytest.mark.parametrize("offset", [0x90, 0x2A0])  # the measurement; the signature
def test_one_flipped_byte_is_refused(tmp, offset):
    report = bytearray(bytes.fromhex(text(SNP_REPORT).strip()))
    report[offset] ^= 0x01
    damaged = tmp / "damaged.bin"
    damaged.write_bytes(report)
    out = silk_verifier.verify_evidence(
        bytes(report),
        policy=text(SNP_POLICY),
        now=SNP_NOW,
        source=str(damaged),
        collateral=snp_collateral(),
    )
    v = assert_same(
        [damaged, "--certs", SNP_CERTS, "--policy", SNP_POLICY, "--now", SNP_NOW],
        out,
        accepted=False,
    )
    assert status(v, "snp.report_signature") == "fail"


@pytest.mark.parametrize("now,accepted", [(IN_WINDOW, True), (AFTER_WINDOW, False)])
def test_tdx_quote_with_its_collateral(now, accepted):
    # The CLI finds tdx_quote_collateral.json beside the quote; Python is handed it.
    out = silk_verifier.verify_evidence(
        read(TDX_QUOTE),
        policy=text(TDX_POLICY),
        now=now,
        source=str(TDX_QUOTE),
        collateral={"tdx": read(VECTORS / "tdx/tdx_quote_collateral.json")},
    )
    v = assert_same([TDX_QUOTE, "--policy", TDX_POLICY, "--now", now], out, accepted)
    assert v["platform"] == "tdx"
    assert status(v, "tdx.collateral_window") == ("pass" if accepted else "fail")


def test_outdated_tdx_quote_fails_the_tcb_level(tmp):
    policy = tmp / "p.toml"
    policy.write_text("[tdx]\nallow_any_measurement = true\n")
    quote = VECTORS / "tdx/tdx_quote_outdated"
    out = silk_verifier.verify_evidence(
        read(quote),
        policy=policy.read_text(),
        now="2026-02-19T00:00:00Z",
        format="tdx",
        source=str(quote),
        collateral={"tdx": text(VECTORS / "tdx/tdx_quote_outdated_collateral.json")},
    )
    v = assert_same(
        ["tdx", quote, "--policy", policy, "--now", "2026-02-19T00:00:00Z"], out, False
    )
    assert status(v, "tdx.quote_signature") == "pass"
    assert status(v, "tdx.tcb_level") == "fail"


@pytest.mark.parametrize(
    "rules,accepted",
    [
        ("", False),
        ('allowed_tcb_statuses = ["UpToDate", "ConfigurationAndSWHardeningNeeded"]\n', True),
    ],
)
def test_sgx_quote_is_decided_by_the_tcb_status_rule(tmp, rules, accepted):
    policy = tmp / "sgx.toml"
    policy.write_text("[sgx]\nallow_any_measurement = true\n" + rules)
    quote = VECTORS / "sgx/sgx_quote"
    out = silk_verifier.verify_evidence(
        read(quote),
        policy=policy.read_text(),
        now=IN_WINDOW,
        source=str(quote),
        collateral={"tdx": read(VECTORS / "sgx/sgx_quote_collateral.json")},
    )
    v = assert_same([quote, "--policy", policy, "--now", IN_WINDOW], out, accepted)
    assert status(v, "sgx.tcb_status") == ("pass" if accepted else "fail")


def test_a_quote_without_collateral_is_an_input_error():
    quote = VECTORS / "tdx/tdx-quote.hex"
    assert cli("verify", quote, "--policy", TDX_POLICY, "--now", IN_WINDOW).returncode == 2
    with pytest.raises(silk_verifier.InputError, match="collateral"):
        silk_verifier.verify_evidence(read(quote), policy=text(TDX_POLICY), now=IN_WINDOW)


def test_an_snp_report_without_its_vcek_is_an_input_error():
    assert cli("verify", SNP_REPORT, "--policy", SNP_POLICY).returncode == 2
    with pytest.raises(silk_verifier.InputError, match="VCEK"):
        silk_verifier.verify_evidence(read(SNP_REPORT), policy=text(SNP_POLICY), now=SNP_NOW)
