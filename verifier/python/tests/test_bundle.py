"""A silk evidence bundle (what `GET /v1/attestation` serves; here from the simulated
enclave, tests/data): verify_bundle's verdict is byte for byte `silk verify --json`'s, and
the challenge and age rules (`--nonce`, `--max-age`) are applied."""

import base64
import json

import pytest

from conftest import DATA, assert_same, cli, read, silk_verifier, status, text

BUNDLE = DATA / "sim-bundle.json"
POLICY = DATA / "sim-policy.toml"
NOW = "2026-12-08T03:00:00Z"
CHALLENGE = "5e" * 32  # the nonce the bundle was fetched with


def test_the_simulated_bundle_is_accepted_and_marked_simulated():
    out = silk_verifier.verify_bundle(read(BUNDLE), text(POLICY), now=NOW, source=str(BUNDLE))
    v = assert_same([BUNDLE, "--policy", POLICY, "--now", NOW], out, accepted=True)
    assert v["simulated"] is True and v["warnings"]
    assert status(v, "claims.report_data") == "pass"
    # A bundle also goes through verify_evidence, detected or named.
    for fmt in (None, "bundle"):
        assert out == silk_verifier.verify_evidence(
            read(BUNDLE), policy=text(POLICY), now=NOW, format=fmt, source=str(BUNDLE)
        )
    # JSON text and bytes are the same bundle.
    assert out == silk_verifier.verify_bundle(text(BUNDLE), text(POLICY), now=NOW,
                                              source=str(BUNDLE))


def test_a_policy_without_allow_simulated_refuses_it(tmp):
    strict = tmp / "strict.toml"
    strict.write_text(text(POLICY).replace("allow_simulated = true", ""))
    out = silk_verifier.verify_bundle(read(BUNDLE), strict.read_text(), now=NOW,
                                      source=str(BUNDLE))
    v = assert_same([BUNDLE, "--policy", strict, "--now", NOW], out, accepted=False)
    assert status(v, "sim.allowed") == "fail"


def rewrite(tmp, change):
    bundle = json.loads(text(BUNDLE))
    change(bundle)
    path = tmp / "changed.json"
    path.write_text(json.dumps(bundle))
    return path


def test_other_claims_under_the_same_report_are_refused(tmp):
    def swap_model(bundle):
        claims = base64.b64decode(bundle["claims"])
        at = claims.index(b"sha256:") + len(b"sha256:")
        claims = claims[:at] + (b"0" if claims[at:at + 1] != b"0" else b"1") + claims[at + 1:]
        bundle["claims"] = base64.b64encode(claims).decode()

    changed = rewrite(tmp, swap_model)
    out = silk_verifier.verify_bundle(read(changed), text(POLICY), now=NOW, source=str(changed))
    v = assert_same([changed, "--policy", POLICY, "--now", NOW], out, accepted=False)
    assert status(v, "claims.report_data") == "fail"


def test_one_flipped_byte_of_the_report_is_refused(tmp):
    def flip(bundle):
        report = bytearray(base64.b64decode(bundle["platform"]["report"]))
        report[0x90] ^= 0x01  # the measurement
        bundle["platform"]["report"] = base64.b64encode(bytes(report)).decode()

    changed = rewrite(tmp, flip)
    out = silk_verifier.verify_bundle(read(changed), text(POLICY), now=NOW, source=str(changed))
    v = assert_same([changed, "--policy", POLICY, "--now", NOW], out, accepted=False)
    assert status(v, "sim.report_signature") == "fail"


@pytest.mark.parametrize("nonce,accepted", [(CHALLENGE, True), ("00" * 32, False)])
def test_the_challenge_must_be_the_one_sent(nonce, accepted):
    out = silk_verifier.verify_bundle(read(BUNDLE), text(POLICY), now=NOW, nonce=nonce,
                                      source=str(BUNDLE))
    v = assert_same([BUNDLE, "--policy", POLICY, "--now", NOW, "--nonce", nonce], out,
                    accepted=accepted)
    assert status(v, "claims.challenge") == ("pass" if accepted else "fail")


@pytest.mark.parametrize("max_age,accepted", [(60, False), (10**9, True)])
def test_old_claims_are_refused_under_a_max_age(max_age, accepted):
    out = silk_verifier.verify_bundle(read(BUNDLE), text(POLICY), now=NOW,
                                      max_age_secs=max_age, source=str(BUNDLE))
    v = assert_same([BUNDLE, "--policy", POLICY, "--now", NOW, "--max-age", str(max_age)], out,
                    accepted=accepted)
    assert status(v, "claims.fresh") == ("pass" if accepted else "fail")


def test_a_bundle_that_does_not_parse_is_an_input_error(tmp):
    junk = tmp / "junk.json"
    junk.write_text('{"version": 1}')
    code = cli("verify", "bundle", junk, "--policy", POLICY).returncode
    assert code == 2
    with pytest.raises(silk_verifier.InputError, match="platform"):
        silk_verifier.verify_bundle(junk.read_text(), text(POLICY), now=NOW)
    with pytest.raises(silk_verifier.InputError, match="not hex"):
        silk_verifier.verify_bundle(read(BUNDLE), text(POLICY), now=NOW, nonce="xyz")
