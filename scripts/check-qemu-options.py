#!/usr/bin/env python3
"""Checks silk-host's QEMU command lines against a QEMU's own option tables.

For each QEMU given, and for the command lines `silk-host run --dry-run --json` prints
for --tee snp, tdx and none with a GPU, it asks that QEMU over QMP (started with
`-machine none -S`, so nothing boots and no KVM is needed) whether:

- every `-object` type exists and has each property silk passes (qom-list-properties
  creates an instance, so properties added at instance init count too: `-object
  sev-snp-guest,help` does not list cbitpos);
- every `-device` driver exists with each property silk passes (device-list-properties;
  `id` and `bus` are generic);
- every `-machine` key is a property of the q35 machine or, for the legacy
  `kernel-irqchip`, of the KVM accelerator it is handed to;
- the `-cpu` model exists (query-cpu-definitions);
- the `-netdev user,...` options are accepted (netdev_add with silk's options, on a free
  loopback port).

Usage: check-qemu-options.py --silk-host BIN [--record DIR] QEMU... (a QEMU may be a
wrapper script). Exit 0 when every check of every QEMU passed, 1 otherwise. --record
writes each QEMU's answers as DIR/<version>.json (the Rust test reads them).
"""

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile

GPU = "0000:41:00.0"


def image(d):
    """A throwaway image directory whose manifest silk-host verifies."""
    os.makedirs(d, exist_ok=True)
    files = {"firmware": ("OVMF.fd", b"\0" * 4096), "initrd": ("initrd.cpio", b"070701"),
             "kernel": ("vmlinuz", b"kernel")}
    comps = []
    for name, (path, data) in sorted(files.items()):
        with open(os.path.join(d, path), "wb") as f:
            f.write(data)
        comps.append({"name": name, "path": path, "sha256": hashlib.sha256(data).hexdigest(),
                      "size": len(data)})
    digest = hashlib.sha256(json.dumps(comps, separators=(",", ":")).encode()).hexdigest()
    manifest = {"components": comps, "inputs": [],
                "kernel_cmdline": f"console=ttyS0 silk.components={digest}",
                "schema": "silk-image/1", "source_date_epoch": 1700000000}
    with open(os.path.join(d, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    return d


def silk_args(silk_host, qemu, scratch, tee, extra):
    img = image(os.path.join(scratch, "image"))
    model = os.path.join(scratch, "model.img")
    with open(model, "wb") as f:
        f.write(b"model")
    argv = [silk_host, "run", "--dry-run", "--json", "--image", img, "--tee", tee,
            "--model", model, "--listen", "127.0.0.1:0", "--forward-port", "40123",
            "--gpu", GPU, "--qemu", qemu, "--host-root", scratch, "--sysfs",
            os.path.join(scratch, "sys"), *extra]
    p = subprocess.run(argv, capture_output=True, text=True)
    if p.returncode not in (0, 1):
        raise SystemExit(f"silk-host dry run failed ({p.returncode}): {p.stderr}")
    return json.loads(p.stdout)["qemu"]["args"]


def pairs(args):
    """[(option, value)] for the options that take a value."""
    out, i = [], 0
    while i < len(args):
        if i + 1 < len(args) and not args[i + 1].startswith("-"):
            out.append((args[i], args[i + 1]))
            i += 2
        else:
            i += 1
    return out


def keyvals(value):
    """QEMU's key=value,... syntax (or a JSON object) as (first, {key: value})."""
    if value.startswith("{"):
        obj = json.loads(value)
        return obj.pop("qom-type"), obj
    first, *rest = value.split(",")
    kv = dict(p.split("=", 1) if "=" in p else (p, "on") for p in rest)
    if "=" in first:
        k, v = first.split("=", 1)
        kv[k] = v
        first = None
    return first, kv


class Qmp:
    def __init__(self, qemu):
        self.p = subprocess.Popen(
            [qemu, "-machine", "none", "-nodefaults", "-display", "none", "-S", "-qmp", "stdio"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.p.stdout.readline()  # greeting
        self.cmd("qmp_capabilities")

    def cmd(self, name, **arguments):
        self.p.stdin.write(json.dumps({"execute": name, "arguments": arguments}) + "\n")
        self.p.stdin.flush()
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise RuntimeError(self.p.stderr.read())
            msg = json.loads(line)
            if "return" in msg or "error" in msg:
                return msg

    def close(self):
        try:
            self.cmd("quit")
        except (RuntimeError, BrokenPipeError):
            pass
        self.p.wait(timeout=10)


def names(msg):
    return sorted(p["name"] for p in msg.get("return", []))


def check(qemu, silk_host, record):
    version = subprocess.run([qemu, "--version"], capture_output=True, text=True).stdout.split()[3]
    results, answers = [], {"version": version, "objects": {}, "devices": {}, "machine": [],
                            "kvm_accel": [], "cpus": []}
    with tempfile.TemporaryDirectory() as scratch:
        lines = {
            "snp": silk_args(silk_host, qemu, scratch, "snp", ["--snp-policy", "0x30000"]),
            "tdx": silk_args(silk_host, qemu, scratch, "tdx", []),
            "tdx-unix": silk_args(silk_host, qemu, scratch, "tdx", ["--tdx-qgs", "unix:/run/qgs.sock"]),
            "none": silk_args(silk_host, qemu, scratch, "none", ["--accel", "kvm"]),
        }
    q = Qmp(qemu)
    machines = q.cmd("query-machines")["return"]
    q35 = next(m["name"] for m in machines if m.get("alias") == "q35" or m["name"] == "q35")
    answers["machine"] = names(q.cmd("qom-list-properties", typename=f"{q35}-machine"))
    answers["kvm_accel"] = names(q.cmd("qom-list-properties", typename="kvm-accel"))
    answers["cpus"] = sorted(c["name"] for c in q.cmd("query-cpu-definitions")["return"])

    def props(kind, typename):
        table = answers["objects" if kind == "object" else "devices"]
        if typename not in table:
            cmd = "qom-list-properties" if kind == "object" else "device-list-properties"
            msg = q.cmd(cmd, typename=typename)
            table[typename] = names(msg) if "return" in msg else None
        return table[typename]

    port = 40200
    for tee, args in lines.items():
        for opt, value in pairs(args):
            if opt in ("-object", "-device"):
                typ, kv = keyvals(value)
                have = props(opt[1:], typ)
                if have is None:
                    results.append((tee, f"{opt} {typ}", False, "no such type"))
                    continue
                generic = {"id", "bus"} if opt == "-device" else {"id"}
                lacking = [k for k in kv if k not in have and k not in generic]
                results.append((tee, f"{opt} {typ} {' '.join(sorted(kv))}", not lacking,
                                f"lacks {', '.join(lacking)}" if lacking else ""))
            elif opt == "-machine":
                typ, kv = keyvals(value)
                lacking = [k for k in kv if k not in answers["machine"]
                           and k not in answers["kvm_accel"]]
                results.append((tee, f"-machine {typ} {' '.join(sorted(kv))}", not lacking,
                                f"lacks {', '.join(lacking)}" if lacking else ""))
            elif opt == "-cpu":
                ok = value in answers["cpus"] or value in ("host", "max")
                results.append((tee, f"-cpu {value}", ok, "" if ok else "no such model"))
            elif opt == "-netdev":
                _, kv = keyvals(value)
                port += 1
                fwd = kv["hostfwd"].replace(":40123-", f":{port}-")
                msg = q.cmd("netdev_add", type="user", id=f"n{port}",
                            restrict=kv["restrict"] == "on", hostfwd=[{"str": fwd}])
                ok = "return" in msg
                results.append((tee, f"-netdev user {' '.join(sorted(kv))}", ok,
                                "" if ok else msg["error"]["desc"]))
    q.close()
    if record:
        os.makedirs(record, exist_ok=True)
        with open(os.path.join(record, f"{version}.json"), "w") as f:
            json.dump(answers, f, indent=1, sort_keys=True)
            f.write("\n")
    return version, results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--silk-host", required=True)
    ap.add_argument("--record")
    ap.add_argument("qemu", nargs="+")
    a = ap.parse_args()
    failed = 0
    for qemu in a.qemu:
        try:
            version, results = check(qemu, a.silk_host, a.record)
        except (RuntimeError, OSError, IndexError, ValueError) as e:
            print(f"{qemu}: cannot check: {e}")
            failed += 1
            continue
        bad = [r for r in results if not r[2]]
        print(f"== QEMU {version} ({qemu}): {len(results) - len(bad)}/{len(results)} pass")
        for tee, what, ok, why in results:
            print(f"  {'PASS' if ok else 'FAIL'}  {tee:9} {what}{'  -- ' + why if why else ''}")
        failed += len(bad)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
