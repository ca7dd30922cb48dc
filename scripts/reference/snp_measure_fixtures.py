#!/usr/bin/env python3
"""Golden SEV-SNP launch digests for silk-images, computed by virtee's sev-snp-measure.

    pip install -r scripts/reference/requirements.txt
    python3 scripts/reference/snp_measure_fixtures.py [--check]

Writes images/tests/data/snp/: a synthetic AmdSev-style firmware (with an SVSM CAA section
and the hashes table at another page offset than edk2's), a small kernel and initrd, and
golden.json, which lists each case's inputs and the digest sev-snp-measure printed for
them. With --check it recomputes every case and fails on any difference (the Rust test
images/tests/snp.rs does the same live when sev-snp-measure is on PATH).

The firmware images ovmf_AmdSev_suffix.bin and ovmf_OvmfX64_suffix.bin are the last
page of real edk2 builds, from the sev crate's test data (vectors/snp/measurement).
"""
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "images", "tests", "data", "snp")
VECTORS = os.path.join(ROOT, "..", "shared", "vectors", "snp", "measurement")


def stream(label: bytes, n: int) -> bytes:
    """Deterministic filler bytes: SHA-256 in counter mode over a label."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(label + i.to_bytes(8, "little")).digest()
        i += 1
    return bytes(out[:n])


def guid(s: str) -> bytes:
    return uuid.UUID(s).bytes_le


def synthetic_firmware() -> bytes:
    size = 64 * 1024
    # SEV metadata: (gpa, size, type) as edk2's OvmfSevMetadata.asm lays it out.
    sections = [
        (0x800000, 0x4000, 1),  # SNP_SEC_MEM
        (0x804000, 0x1000, 2),  # SNP_SECRETS
        (0x805000, 0x1000, 3),  # CPUID
        (0x806000, 0x1000, 4),  # SVSM_CAA
        (0x807000, 0x1000, 0x10),  # SNP_KERNEL_HASHES
        (0x808000, 0x2000, 1),  # SNP_SEC_MEM
    ]
    meta = b"ASEV" + struct.pack("<III", 16 + 12 * len(sections), 1, len(sections))
    meta += b"".join(struct.pack("<III", *s) for s in sections)
    meta_at = 0x1000  # offset from the start of the image
    entries = [  # nearest the footer first
        ("00f771de-1a7e-4fcb-890e-68c77e2fb44e", struct.pack("<I", 0x00FFF004)),
        ("7255371f-3a3b-4b04-927b-1da6efa8d454", struct.pack("<II", 0x807400, 0x400)),
        ("dc886566-984a-4798-a75e-5585a7bf67cc", struct.pack("<I", size - meta_at)),
    ]
    table = b""
    for g, data in reversed(entries):
        table += data + struct.pack("<H", len(data) + 18) + guid(g)
    table += struct.pack("<H", len(table) + 18) + guid("96b582de-1fb2-45f7-baea-a366c55a082d")
    img = bytearray(stream(b"silk synthetic amdsev firmware", size))
    img[meta_at:meta_at + len(meta)] = meta
    end = size - 32
    img[end - len(table):end] = table
    return bytes(img)


CMDLINE = "console=ttyS0 root=/dev/vda ro dm-mod.create=x"
# (name, firmware, vcpus, vcpu type, vmm, guest features, kernel, initrd, cmdline)
CASES = [
    ("amdsev-1-milan-qemu", "ovmf_AmdSev_suffix.bin", 1, "EPYC-Milan", "QEMU", 0x1, True, True, CMDLINE),
    ("amdsev-4-genoa-qemu-debugswap", "ovmf_AmdSev_suffix.bin", 4, "EPYC-Genoa", "QEMU", 0x21, True, True, CMDLINE),
    ("amdsev-16-rome-qemu-nocmdline", "ovmf_AmdSev_suffix.bin", 16, "EPYC-Rome", "QEMU", 0x1, True, False, None),
    ("amdsev-2-epyc-ec2", "ovmf_AmdSev_suffix.bin", 2, "EPYC", "ec2", 0x1, True, True, CMDLINE),
    ("amdsev-64-turin-qemu", "ovmf_AmdSev_suffix.bin", 64, "EPYC-Turin", "QEMU", 0x1, True, True, CMDLINE),
    ("ovmfx64-1-milan-qemu-nokernel", "ovmf_OvmfX64_suffix.bin", 1, "EPYC-Milan", "QEMU", 0x1, False, False, None),
    ("ovmfx64-8-genoa-ec2-nokernel", "ovmf_OvmfX64_suffix.bin", 8, "EPYC-Genoa", "ec2", 0x21, False, False, None),
    ("synthetic-1-turin-qemu", "synthetic-amdsev.fd", 1, "EPYC-Turin", "QEMU", 0x1, True, True, CMDLINE),
    ("synthetic-32-milan-gce", "synthetic-amdsev.fd", 32, "EPYC-Milan", "gce", 0x1, True, True, CMDLINE),
    ("synthetic-3-epycv4-qemu-nokernel", "synthetic-amdsev.fd", 3, "EPYC-v4", "QEMU", 0x21, False, False, None),
]


def firmware_path(name: str) -> str:
    local = os.path.join(OUT, name)
    return local if os.path.exists(local) else os.path.join(VECTORS, name)


def measure(case) -> str:
    name, fw, vcpus, vtype, vmm, feats, kernel, initrd, cmdline = case
    cmd = ["sev-snp-measure", "--mode", "snp", "--vcpus", str(vcpus), "--vcpu-type", vtype,
           "--ovmf", firmware_path(fw), "--guest-features", hex(feats), "--output-format", "hex"]
    if vmm != "QEMU":
        cmd += ["--vmm-type", vmm]
    if kernel:
        cmd += ["--kernel", os.path.join(OUT, "kernel.bin")]
    if initrd:
        cmd += ["--initrd", os.path.join(OUT, "initrd.bin")]
    if cmdline is not None:
        cmd += ["--append", cmdline]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


def main() -> int:
    if shutil.which("sev-snp-measure") is None:
        sys.exit("sev-snp-measure is not installed: pip install -r scripts/reference/requirements.txt")
    check = "--check" in sys.argv[1:]
    os.makedirs(OUT, exist_ok=True)
    files = {
        "synthetic-amdsev.fd": synthetic_firmware(),
        "kernel.bin": stream(b"silk test kernel", 12345),
        "initrd.bin": stream(b"silk test initrd", 5000),
    }
    for name, data in files.items():
        path = os.path.join(OUT, name)
        if check:
            with open(path, "rb") as f:
                if f.read() != data:
                    sys.exit(f"{path} differs from what this script generates")
        else:
            with open(path, "wb") as f:
                f.write(data)
    out = []
    for case in CASES:
        name, fw, vcpus, vtype, vmm, feats, kernel, initrd, cmdline = case
        out.append({
            "name": name, "firmware": fw, "vcpus": vcpus, "vcpu_type": vtype,
            "vmm": vmm.lower(), "guest_features": feats, "kernel": kernel, "initrd": initrd,
            "cmdline": cmdline, "digest": measure(case),
        })
    golden = os.path.join(OUT, "golden.json")
    text = json.dumps({"tool": "sev-snp-measure " + version(), "cases": out}, indent=1) + "\n"
    if check:
        with open(golden) as f:
            if json.load(f)["cases"] != out:
                sys.exit("golden.json differs from what sev-snp-measure computes now")
        print(f"{len(out)} passed, 0 failed")
    else:
        with open(golden, "w") as f:
            f.write(text)
        print(f"wrote {golden} ({len(out)} cases)")
    return 0


def version() -> str:
    from importlib.metadata import version as v
    return v("sev-snp-measure")


if __name__ == "__main__":
    sys.exit(main())
