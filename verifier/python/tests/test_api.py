"""The Python surface: the package, its types, its errors, the time default."""

import json
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import EXAMPLES, VECTORS, cli, read, silk_verifier, text

REPORT = VECTORS / "snp/milan/report_milan.hex"
VCEK = VECTORS / "snp/milan/vcek_milan.der"
POLICY = EXAMPLES / "snp-milan-sample.toml"


def test_the_installed_package_has_its_version_stubs_and_py_typed():
    assert silk_verifier.__version__
    assert set(silk_verifier.__all__) == {
        "InputError", "__version__", "verify_bundle", "verify_evidence"}
    package = Path(silk_verifier.__file__).parent
    assert (package / "py.typed").is_file()
    assert (package / "_native.pyi").is_file()
    # The wheel is what is under test, not the source tree.
    assert "site-packages" in str(package)
    assert issubclass(silk_verifier.InputError, ValueError)


def test_without_now_the_current_time_is_used():
    before = datetime.now(timezone.utc).replace(microsecond=0)
    v = json.loads(silk_verifier.verify_evidence(
        read(REPORT), policy=text(POLICY), collateral={"vcek": read(VCEK)}))
    after = datetime.now(timezone.utc)
    at = datetime.fromisoformat(v["verified_at"].replace("Z", "+00:00"))
    assert before <= at <= after
    assert v["source"] == "evidence"


def test_bytes_like_inputs_are_all_accepted():
    kw = dict(policy=text(POLICY), now="2025-01-01T00:00:00Z")
    want = silk_verifier.verify_evidence(read(REPORT), collateral={"vcek": read(VCEK)}, **kw)
    for evidence in (bytearray(read(REPORT)), memoryview(read(REPORT))):
        for vcek in (bytearray(read(VCEK)), memoryview(read(VCEK))):
            got = silk_verifier.verify_evidence(evidence, collateral={"vcek": vcek}, **kw)
            assert got == want


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(policy="[snp]\nmeasurments = []\n"), "measurments"),
        (dict(policy="", now="yesterday"), "RFC 3339"),
        (dict(policy="", format="sev"), "format"),
    ],
)
def test_unusable_inputs_raise_input_error_with_the_reason(kwargs, message):
    with pytest.raises(silk_verifier.InputError, match=message):
        silk_verifier.verify_evidence(read(REPORT), collateral={"vcek": read(VCEK)}, **kwargs)


def test_junk_evidence_is_an_input_error_as_for_the_cli(tmp):
    junk = tmp / "junk.bin"
    junk.write_bytes(b"definitely not evidence")
    out = cli("verify", junk)
    assert out.returncode == 2
    with pytest.raises(silk_verifier.InputError, match="unrecognised evidence") as e:
        silk_verifier.verify_evidence(junk.read_bytes(), policy="")
    # The CLI prints the same reason after the file's name.
    assert str(e.value) in out.stderr.decode()


def test_wrong_python_types_raise_type_error():
    with pytest.raises(TypeError):
        silk_verifier.verify_evidence("not bytes", policy="")
    with pytest.raises(TypeError, match="unknown key"):
        silk_verifier.verify_evidence(read(REPORT), policy="", collateral={"vcke": b""})
    with pytest.raises(TypeError, match="dict"):
        silk_verifier.verify_evidence(read(REPORT), policy="", collateral=[b""])
    with pytest.raises(TypeError):
        silk_verifier.verify_evidence(read(REPORT), text(POLICY))  # policy is keyword-only


def test_verifications_run_in_threads_with_the_gil_released():
    kw = dict(policy=text(POLICY), now="2025-01-01T00:00:00Z", collateral={"vcek": read(VCEK)})
    want = silk_verifier.verify_evidence(read(REPORT), **kw)
    results = []

    def run():
        results.append(silk_verifier.verify_evidence(read(REPORT), **kw))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [want] * 4
