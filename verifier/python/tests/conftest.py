"""What the tests share: the repository's vectors, and `silk verify --json` to compare with.

The wheel under test is the one installed in this (fresh) venv; the native CLI is the
workspace's debug build (``SILK_BIN``, default ``target/debug/silk``), which
``scripts/test.sh`` builds before it runs these tests.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

import silk_verifier

ROOT = Path(os.environ.get("SILK_ROOT", Path(__file__).resolve().parents[3]))
VECTORS = ROOT / "vectors"
EXAMPLES = ROOT / "docs" / "examples"
DATA = Path(__file__).resolve().parent / "data"
SILK = Path(os.environ.get("SILK_BIN", ROOT / "target" / "debug" / "silk"))


def read(path):
    return Path(path).read_bytes()


def text(path):
    return Path(path).read_text()


def cli(*args):
    """Runs the native ``silk`` with ``args`` (paths as given); returns the process."""
    assert SILK.is_file(), f"{SILK} is missing: cargo build --workspace --bins"
    return subprocess.run([str(SILK), *map(str, args)], capture_output=True)


def cli_json(*args):
    """``silk verify ARGS --json``: its exit status and stdout (the verdict JSON)."""
    out = cli("verify", *args, "--json")
    assert out.returncode in (0, 1), (
        f"silk verify exited {out.returncode}: {out.stderr.decode(errors='replace')}"
    )
    return out.returncode, out.stdout.decode()


def assert_same(cli_args, python_json, accepted):
    """The Python verdict is byte for byte the CLI's, and accepted (or not) as expected."""
    code, native = cli_json(*cli_args)
    assert python_json == native
    verdict = json.loads(python_json)
    assert verdict["accepted"] is accepted, python_json
    assert code == (0 if accepted else 1)
    return verdict


def check(verdict, name):
    """The check called ``name`` in a verdict."""
    for c in verdict["checks"]:
        if c["name"] == name:
            return c
    raise AssertionError(f"no check {name} in {json.dumps(verdict, indent=1)}")


def status(verdict, name):
    return check(verdict, name)["outcome"]["status"]


@pytest.fixture
def tmp(tmp_path):
    return tmp_path


__all__ = [
    "ROOT", "VECTORS", "EXAMPLES", "DATA", "SILK", "read", "text", "cli", "cli_json",
    "assert_same", "check", "status", "silk_verifier",
]
