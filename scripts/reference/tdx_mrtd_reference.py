#!/usr/bin/env python3
"""A second, deliberately plain MRTD implementation for silk-images' TDX tests.

    python3 scripts/reference/tdx_mrtd_reference.py [--check]

No package on PyPI or crates.io computes MRTD from a TDVF image (searched for this
project: sev-snp-measure is SEV-only; pytdxmeasure/pytdxattest replay a running guest's
event log), so this is written from the specs by the project, not independent of it:
it catches slips in the Rust code's byte layout, not misreadings of the specs.

Spec: Intel TDX Module ABI, TDH.MEM.PAGE.ADD ("MEM.PAGE.ADD" || GPA in a 128-byte buffer)
and TDH.MR.EXTEND ("MR.EXTEND" || GPA in a 128-byte buffer, then 256 bytes of the page);
TDVF design guide, TDVF metadata. Writes images/tests/data/tdx/: synthetic-tdvf.fd and
golden.json (MRTD of it, and of Debian's /usr/share/ovmf/OVMF.fd with that file's SHA-256
when it is installed), in both page orders.
"""
import hashlib
import json
import os
import struct
import sys
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "images", "tests", "data", "tdx")
DEBIAN_OVMF = "/usr/share/ovmf/OVMF.fd"


def ovmf_table(img: bytes) -> dict:
    end = len(img) - 32
    size, g = struct.unpack("<H16s", img[end - 18:end])
    assert uuid.UUID(bytes_le=g) == uuid.UUID("96b582de-1fb2-45f7-baea-a366c55a082d")
    table = img[end - size:end - 18]
    out, off = {}, len(table)
    while off >= 18:
        s, g = struct.unpack("<H16s", table[off - 18:off])
        out[str(uuid.UUID(bytes_le=g))] = table[off - s:off - 18]
        off -= s
    return out


def sections(img: bytes) -> list:
    (from_end,) = struct.unpack("<I", ovmf_table(img)["e47a6535-984a-4798-865e-4685a7bf8ec2"][:4])
    start = len(img) - from_end
    sig, _length, version, count = struct.unpack("<4sIII", img[start:start + 16])
    assert sig == b"TDVF" and version == 1
    return [struct.unpack("<IIQQII", img[start + 16 + 32 * i:start + 48 + 32 * i]) for i in range(count)]


def mrtd(img: bytes, per_page: bool) -> str:
    h = hashlib.sha384()
    for data_off, raw, addr, size, _kind, attrs in sections(img):
        if attrs & 2:  # PAGE.AUG: added after boot, not measured
            continue
        mem = img[data_off:data_off + raw] + bytes(size - raw)
        def add(gpa):
            h.update(b"MEM.PAGE.ADD".ljust(16, b"\0") + struct.pack("<Q", gpa) + bytes(104))
        def extend(gpa, page):
            for c in range(0, 4096, 256):
                h.update(b"MR.EXTEND".ljust(16, b"\0") + struct.pack("<Q", gpa + c) + bytes(104))
                h.update(page[c:c + 256])
        pages = [(addr + i, mem[i:i + 4096]) for i in range(0, size, 4096)]
        for gpa, page in pages:
            add(gpa)
            if attrs & 1 and per_page:
                extend(gpa, page)
        if attrs & 1 and not per_page:
            for gpa, page in pages:
                extend(gpa, page)
    return h.hexdigest()


def synthetic() -> bytes:
    size = 64 * 1024
    filler = bytearray()
    i = 0
    while len(filler) < size:
        filler += hashlib.sha256(b"silk synthetic tdvf" + i.to_bytes(8, "little")).digest()
        i += 1
    img = bytearray(filler[:size])
    secs = [  # data offset, raw size, GPA, memory size, type, attributes
        (0x0000, 0x4000, 0xFFFF0000, 0x4000, 1, 0),  # CFV
        (0x4000, 0xC000, 0xFFFF4000, 0xC000, 0, 1),  # BFV, extended
        (0, 0, 0x800000, 0x3000, 3, 0),  # TempMem
        (0, 0, 0x809000, 0x2000, 2, 0),  # TD HOB
        (0x0100, 0x2000, 0x900000, 0x2000, 5, 1),  # payload, extended, unaligned in the file
        (0x3000, 0x0800, 0xA00000, 0x2000, 6, 0),  # payload params, zero-filled tail
        (0, 0, 0x1000000, 0x1000, 4, 2),  # PermMem, PAGE.AUG: not measured
    ]
    meta = b"TDVF" + struct.pack("<III", 16 + 32 * len(secs), 1, len(secs))
    meta += b"".join(struct.pack("<IIQQII", *s) for s in secs)
    meta_at = 0x2000
    img[meta_at:meta_at + len(meta)] = meta
    entries = [("e47a6535-984a-4798-865e-4685a7bf8ec2", struct.pack("<I", size - meta_at))]
    table = b""
    for g, data in reversed(entries):
        table += data + struct.pack("<H", len(data) + 18) + uuid.UUID(g).bytes_le
    table += struct.pack("<H", len(table) + 18) + uuid.UUID("96b582de-1fb2-45f7-baea-a366c55a082d").bytes_le
    img[size - 32 - len(table):size - 32] = table
    return bytes(img)


def main() -> int:
    check = "--check" in sys.argv[1:]
    os.makedirs(OUT, exist_ok=True)
    fd = os.path.join(OUT, "synthetic-tdvf.fd")
    img = synthetic()
    if check:
        with open(fd, "rb") as f:
            assert f.read() == img, f"{fd} differs from what this script generates"
    else:
        with open(fd, "wb") as f:
            f.write(img)
    assert len(sections(img)) == 7
    golden = {"synthetic-tdvf.fd": {"per_page": mrtd(img, True), "per_section": mrtd(img, False)}}
    if os.path.exists(DEBIAN_OVMF):
        with open(DEBIAN_OVMF, "rb") as f:
            deb = f.read()
        golden["debian-ovmf"] = {
            "path": DEBIAN_OVMF, "sha256": hashlib.sha256(deb).hexdigest(),
            "per_page": mrtd(deb, True), "per_section": mrtd(deb, False),
        }
    path = os.path.join(OUT, "golden.json")
    if check:
        with open(path) as f:
            old = json.load(f)
        for k, v in golden.items():
            if k in old and old[k] != v and not (k == "debian-ovmf" and old[k]["sha256"] != v["sha256"]):
                sys.exit(f"{k}: golden.json differs from this reference")
        print(f"{len(golden)} passed, 0 failed")
    else:
        with open(path, "w") as f:
            f.write(json.dumps(golden, indent=1) + "\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
