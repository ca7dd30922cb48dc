#!/usr/bin/env python3
"""The checks of scripts/check-deploy.sh that need a parser: systemd command lines,
the OCI recipe's stages, and the Kubernetes manifests' cross-references, security
settings and flags, each run through the built binaries. Runs in the venv that
check-deploy.sh makes (PyYAML comes with kubernetes-validate).

    check-deploy.py systemd UNIT BIN [NAME=VALUE...]
    check-deploy.py oci CONTAINERFILE BIN
    check-deploy.py k8s DIR BIN

Each prints what it checked and exits 1 with a message naming the file and the rule
that failed.
"""

import json
import re
import shlex
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
# Where the units and recipes install the binaries; the checks run the built ones.
INSTALLED = "/usr/local/bin/"


class Failed(Exception):
    """A check failed; the message says which and where."""


def check_parses(what, argv, timeout=5):
    """Runs argv and fails when clap, the binaries' argument parser, refused it: exit
    status 2 with a message starting with "error:". The program's own errors (a missing
    image or policy file) come after parsing and pass; so does still running at the
    timeout (the arguments were accepted and it started)."""
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return
    if p.returncode == 2 and p.stderr.startswith("error:"):
        # clap's message: the "error:" paragraph (a list of missing arguments follows it).
        first = p.stderr.split("\n\n")[0].strip()
        raise Failed(f"{what}: its command line is refused by the parser: {first}\n"
                     f"  command: {shlex.join(argv)}")


def built(path, bindir):
    """The built binary for an installed path (/usr/local/bin/X -> BIN/X)."""
    if not path.startswith(INSTALLED):
        raise Failed(f"{path}: expected a binary under {INSTALLED}")
    exe = Path(bindir) / path[len(INSTALLED):]
    if not exe.is_file():
        raise Failed(f"{path}: no such built binary {exe}")
    return str(exe)


# --- systemd ---------------------------------------------------------------------------

def unit_settings(text):
    """(key, value) of every setting of a unit file, continuation lines joined."""
    settings, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line[0] in "#;["):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        key, _, value = line.partition("=")
        settings.append((key.strip(), value.strip()))
    return settings


def expand_exec(unit, bindir, overrides):
    """The unit's ExecStart= as systemd would run it with the unit's own Environment=
    defaults (EnvironmentFile= values given as overrides): `${X}` is one word, `$X` is
    split at whitespace into zero or more words, %S is /var/lib."""
    env, execs = {}, []
    for key, value in unit_settings(Path(unit).read_text()):
        if key == "Environment":
            for assignment in shlex.split(value):
                name, _, val = assignment.partition("=")
                env[name] = val
        elif key == "ExecStart":
            execs.append(value)
    if len(execs) != 1:
        raise Failed(f"{unit}: expected one ExecStart=, found {len(execs)}")
    env.update(overrides)

    def var(name):
        if name not in env:
            raise Failed(f"{unit}: ExecStart= uses ${name}, which has no value")
        return env[name]

    argv = []
    for word in shlex.split(execs[0]):
        word = word.replace("%S", "/var/lib")
        whole = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if whole:
            argv.extend(var(whole.group(1)).split())
            continue
        argv.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: var(m.group(1)), word))
    argv[0] = built(argv[0], bindir)
    return argv


def check_systemd(unit, bindir, *assignments):
    overrides = dict(a.split("=", 1) for a in assignments)
    argv = expand_exec(unit, bindir, overrides)
    # Never launch anything: silk-host only plans with --dry-run.
    if Path(argv[0]).name == "silk-host":
        argv.append("--dry-run")
    check_parses(Path(unit).name, argv)
    print(f"{unit}: ExecStart= parses: {shlex.join(argv[1:])}")


# --- OCI ---------------------------------------------------------------------------------

def containerfile_stages(text):
    """{stage: {"from": base, "ENTRYPOINT": [...], "CMD": [...], "RUN": [...]}}."""
    logical, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages, current, args = {}, None, {}
    for line in logical:
        op, _, rest = line.partition(" ")
        op = op.upper()
        if op == "ARG" and current is None:
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip()
        elif op == "FROM":
            m = re.fullmatch(r"(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", rest.strip(), re.I)
            if not m or not m.group(2):
                raise Failed(f"every stage must be named (FROM ... AS NAME): {line}")
            current = m.group(2)
            stages[current] = {"from": m.group(1), "RUN": []}
        elif current is not None and op in ("ENTRYPOINT", "CMD"):
            try:
                stages[current][op] = json.loads(rest)
            except json.JSONDecodeError as e:
                raise Failed(f"{op} of stage {current} must be a JSON array: {e}") from e
        elif current is not None and op == "RUN":
            stages[current]["RUN"].append(rest)
    return stages, args


def inherited(stages, name, key):
    while name in stages:
        if key in stages[name]:
            return stages[name][key]
        name = stages[name]["from"]
    return None


def workspace():
    meta = json.loads(subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=ROOT, check=True, capture_output=True, text=True).stdout)
    bins = {t["name"] for p in meta["packages"] for t in p["targets"] if "bin" in t["kind"]}
    members = [Path(p["manifest_path"]).parent.relative_to(ROOT) for p in meta["packages"]]
    return bins, members


def dockerignored(path, patterns):
    parts = Path(path).parts
    for p in patterns:
        if p.startswith("**/"):
            if p[3:] in parts:
                return True
        elif parts and parts[0] == p.strip("/"):
            return True
    return False


# The upstream of the proxy image is the user's to give (its CMD has none).
OCI_EXTRA_ARGS = {"proxy": ["--router", "http://127.0.0.1:9"]}


def check_oci(containerfile, bindir):
    stages, args = containerfile_stages(Path(containerfile).read_text())
    for want in ("router", "proxy"):
        if want not in stages:
            raise Failed(f"{containerfile}: no stage named {want}")
    rust = args.get("RUST_VERSION")
    cargo = (ROOT / "Cargo.toml").read_text()
    msrv = re.search(r'^rust-version\s*=\s*"([^"]+)"', cargo, re.M).group(1)
    if rust != msrv:
        raise Failed(f"{containerfile}: ARG RUST_VERSION={rust}, but the workspace's "
                     f"rust-version is {msrv}")
    bins, members = workspace()
    for run in stages["build"]["RUN"]:
        for name in re.findall(r"--bin\s+(\S+)", run):
            if name not in bins:
                raise Failed(f"{containerfile}: builds --bin {name}, which no workspace "
                             f"package has (binaries: {', '.join(sorted(bins))})")
    ignore = ROOT / ".dockerignore"
    patterns = [l.strip() for l in ignore.read_text().splitlines()
                if l.strip() and not l.startswith("#")]
    for path in [*members, Path("Cargo.toml"), Path("Cargo.lock")]:
        if dockerignored(path, patterns):
            raise Failed(f".dockerignore leaves {path} out of the build context")
    for name in stages:
        entry = inherited(stages, name, "ENTRYPOINT")
        if not entry:
            continue
        cmd = inherited(stages, name, "CMD") or []
        argv = [built(entry[0], bindir), *entry[1:], *cmd, *OCI_EXTRA_ARGS.get(name, [])]
        check_parses(f"{containerfile} stage {name}", argv)
        print(f"{containerfile}: stage {name}: {shlex.join(argv[1:])} parses")


# --- Kubernetes -------------------------------------------------------------------------

# The one container allowed to be privileged: the device plugin (device-plugin.yaml says
# why). Everything else runs without privilege, escalation or capabilities.
PRIVILEGED_ALLOWED = {("DaemonSet", "silk-device-plugin")}
WORKLOADS = ("Deployment", "DaemonSet")


def quantity(q):
    """Kubernetes quantity -> bytes or cores (the suffixes these files use)."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "m": 1e-3, "": 1}
    m = re.fullmatch(r"([0-9.]+)(Ki|Mi|Gi|Ti|m|)", str(q))
    if not m:
        raise Failed(f"cannot read the quantity {q!r}")
    return float(m.group(1)) * units[m.group(2)]


def guest_memory(v):
    """silk-host's --memory (M, G or T) -> bytes."""
    m = re.fullmatch(r"([0-9]+)([MGT])", v)
    if not m:
        raise Failed(f"cannot read --memory {v}")
    return int(m.group(1)) * {"M": 2**20, "G": 2**30, "T": 2**40}[m.group(2)]


def flag(args, name):
    return args[args.index(name) + 1] if name in args else None


def load_manifests(directory):
    kust = yaml.safe_load((directory / "kustomization.yaml").read_text())
    allowed = {"apiVersion", "kind", "resources"}
    if set(kust) - allowed:
        raise Failed(f"kustomization.yaml: keys {sorted(set(kust) - allowed)} are not "
                     "checked here; add their check to scripts/check-deploy.py")
    if (kust.get("apiVersion"), kust.get("kind")) != (
            "kustomize.config.k8s.io/v1beta1", "Kustomization"):
        raise Failed("kustomization.yaml: not a kustomize.config.k8s.io/v1beta1 Kustomization")
    files = {p.name for p in directory.glob("*.yaml")} - {"kustomization.yaml"}
    listed = set(kust.get("resources", []))
    if listed != files:
        raise Failed(f"kustomization.yaml: resources {sorted(listed)} differ from the "
                     f"manifests {sorted(files)}")
    objects = {}
    for name in sorted(files):
        for doc in yaml.safe_load_all((directory / name).read_text()):
            if doc is None:
                continue
            meta = doc["metadata"]
            key = (doc["kind"], meta.get("namespace"), meta["name"])
            if key in objects:
                raise Failed(f"{name}: {key} is defined twice")
            objects[key] = (name, doc)
    return objects


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_pod(where, kind, name, pod, objects, namespace):
    spec = pod["spec"]
    privileged_ok = (kind, name) in PRIVILEGED_ALLOWED
    if spec.get("automountServiceAccountToken") is not False:
        raise Failed(f"{where}: automountServiceAccountToken must be false (no API access)")
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            raise Failed(f"{where}: {key} is set")
    pod_sc = spec.get("securityContext", {})
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for v in volumes.values():
        if "configMap" in v and ("ConfigMap", namespace, v["configMap"]["name"]) not in objects:
            raise Failed(f"{where}: volume {v['name']} names a ConfigMap that is not defined")
    for c in spec["containers"]:
        cw = f"{where} container {c['name']}"
        sc = c.get("securityContext", {})
        if sc.get("privileged") and not privileged_ok:
            raise Failed(f"{cw}: privileged (only the device plugin may be)")
        if not privileged_ok:
            if sc.get("allowPrivilegeEscalation") is not False:
                raise Failed(f"{cw}: allowPrivilegeEscalation must be false")
            if "ALL" not in sc.get("capabilities", {}).get("drop", []):
                raise Failed(f"{cw}: capabilities must drop ALL")
            if sc.get("capabilities", {}).get("add"):
                raise Failed(f"{cw}: adds capabilities")
            if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
                raise Failed(f"{cw}: runAsNonRoot must be true")
            if pod_sc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
                raise Failed(f"{where}: seccompProfile must be RuntimeDefault")
        if sc.get("readOnlyRootFilesystem") is not True:
            raise Failed(f"{cw}: readOnlyRootFilesystem must be true")
        for m in c.get("volumeMounts", []):
            if m["name"] not in volumes:
                raise Failed(f"{cw}: mounts {m['name']}, which is no volume")
        ports = {p.get("name") for p in c.get("ports", [])}
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            port = c.get(probe, {}).get("httpGet", {}).get("port")
            if isinstance(port, str) and port not in ports:
                raise Failed(f"{cw}: {probe} uses port {port}, which the container lacks")
        if not c.get("resources", {}).get("requests"):
            raise Failed(f"{cw}: no resource requests")


def check_host(where, c, bindir, tee_resources):
    args = c["args"]
    argv = [str(Path(bindir) / "silk-host"), *args, "--dry-run"]
    check_parses(where, argv)
    print(f"{where}: silk-host {shlex.join(args)} parses")
    tee = flag(args, "--tee")
    res = c["resources"]
    mem = guest_memory(flag(args, "--memory") or "2G")
    # QEMU's own memory and the relay come on top of the guest's.
    if quantity(res["requests"]["memory"]) < mem + 512 * 2**20:
        raise Failed(f"{where}: requests.memory {res['requests']['memory']} is not above "
                     f"the guest's --memory {flag(args, '--memory')} plus 512Mi")
    if quantity(res["limits"].get("memory", "0")) < quantity(res["requests"]["memory"]):
        raise Failed(f"{where}: limits.memory is below requests.memory")
    if quantity(res["requests"]["cpu"]) < int(flag(args, "--vcpus") or 2):
        raise Failed(f"{where}: requests.cpu is below --vcpus")
    for r in tee_resources[tee]:
        if r not in res.get("limits", {}):
            raise Failed(f"{where}: --tee {tee} needs the device resource {r} in limits")


def start_router(where, spec, c, objects, namespace, bindir, scratch):
    """Starts the built silk-router with the container's arguments, the ConfigMap's
    admission policy and a loopback port, and asks each probe path for a 200."""
    args = list(c["args"])
    check_parses(where, [str(Path(bindir) / "silk-router"), *args])
    admission = flag(args, "--admission")
    if admission is None or flag(args, "--listen") is None:
        raise Failed(f"{where}: silk-router needs --admission and --listen here")
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    directory, _, key = admission.rpartition("/")
    if directory not in mounts:
        raise Failed(f"{where}: --admission {admission} is not on a mounted volume")
    volume = next(v for v in spec["template"]["spec"]["volumes"]
                  if v["name"] == mounts[directory])
    data = objects[("ConfigMap", namespace, volume["configMap"]["name"])][1]["data"]
    if key not in data:
        raise Failed(f"{where}: --admission {admission}: the ConfigMap has no key {key}")
    policy = Path(scratch) / "admission.toml"
    policy.write_text(data[key])
    args[args.index("--admission") + 1] = str(policy)
    args[args.index("--listen") + 1] = "127.0.0.1:0"
    proc = subprocess.Popen([str(Path(bindir) / "silk-router"), *args], text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        # It prints this line once it listens, or exits with its reason on stderr.
        line = proc.stdout.readline()
        if not line.startswith("listening http://"):
            proc.kill()
            raise Failed(f"{where}: silk-router did not start with these arguments and the "
                         f"ConfigMap's admission policy:\n{proc.stderr.read()}")
        addr = line.split("http://", 1)[1].strip()
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            path = c.get(probe, {}).get("httpGet", {}).get("path")
            if path is None:
                continue
            try:
                status = urllib.request.urlopen(f"http://{addr}{path}", timeout=5).status
            except urllib.error.HTTPError as e:
                status = e.code
            except OSError as e:
                status = e
            if status != 200:
                raise Failed(f"{where}: {probe} asks {path}; silk-router answered {status}")
            print(f"{where}: silk-router answers 200 at {path} ({probe})")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def check_k8s(directory, bindir):
    directory = Path(directory)
    objects = load_manifests(directory)
    namespaces = {n for (k, _, n) in objects if k == "Namespace"}
    workloads = {}
    for (kind, ns, name), (file, doc) in objects.items():
        where = f"{file}: {kind} {name}"
        if kind != "Namespace" and ns not in namespaces:
            raise Failed(f"{where}: namespace {ns!r} is not defined here")
        if kind in WORKLOADS:
            spec = doc["spec"]
            labels = spec["template"]["metadata"]["labels"]
            if not matches(spec["selector"]["matchLabels"], labels):
                raise Failed(f"{where}: the selector does not match the pod's labels")
            check_pod(where, kind, name, spec["template"], objects, ns)
            workloads[(kind, ns, name)] = (where, labels, spec)
    tee_resources = {"snp": ["silk.dev/kvm", "silk.dev/sev"], "tdx": ["silk.dev/kvm"],
                     "none": []}
    router_seen = host_seen = False
    with tempfile.TemporaryDirectory() as scratch:
        for (kind, ns, name), (where, labels, spec) in workloads.items():
            for c in spec["template"]["spec"]["containers"]:
                image = c["image"].rsplit("/", 1)[-1].split(":")[0].split("@")[0]
                if image == "silk-router":
                    start_router(where, spec, c, objects, ns, bindir, scratch)
                    router_seen = True
                elif image == "silk-host":
                    check_host(where, c, bindir, tee_resources)
                    host_seen = True
    if not (router_seen and host_seen):
        raise Failed("expected a silk-router Deployment and silk-host DaemonSets")
    for (kind, ns, name), (file, doc) in objects.items():
        where = f"{file}: {kind} {name}"
        if kind == "Service":
            targets = [w for (k, n, _), w in workloads.items()
                       if n == ns and matches(doc["spec"]["selector"], w[1])]
            if not targets:
                raise Failed(f"{where}: the selector matches no workload")
            for port in doc["spec"]["ports"]:
                names = {p.get("name") for c in targets[0][2]["template"]["spec"]["containers"]
                         for p in c.get("ports", [])}
                if isinstance(port["targetPort"], str) and port["targetPort"] not in names:
                    raise Failed(f"{where}: targetPort {port['targetPort']} is no container port")
        elif kind == "HorizontalPodAutoscaler":
            ref = doc["spec"]["scaleTargetRef"]
            target = workloads.get((ref["kind"], ns, ref["name"]))
            if target is None:
                raise Failed(f"{where}: scales {ref['kind']} {ref['name']}, which is not defined")
            if "replicas" in target[2]:
                raise Failed(f"{target[0]}: sets replicas, which the autoscaler owns")
            for c in target[2]["template"]["spec"]["containers"]:
                if "cpu" not in c["resources"]["requests"]:
                    raise Failed(f"{target[0]}: no CPU request for the autoscaler to measure")
        elif kind == "PodDisruptionBudget":
            sel = doc["spec"]["selector"]["matchLabels"]
            if not any(n == ns and matches(sel, w[1]) for (_, n, _), w in workloads.items()):
                raise Failed(f"{where}: the selector matches no workload")
    print(f"{directory}: {len(objects)} objects, cross-references and security settings hold")


def main(argv):
    try:
        if len(argv) >= 3 and argv[0] == "systemd":
            check_systemd(*argv[1:])
        elif len(argv) == 3 and argv[0] == "oci":
            check_oci(argv[1], argv[2])
        elif len(argv) == 3 and argv[0] == "k8s":
            check_k8s(argv[1], argv[2])
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except Failed as e:
        print(f"[check-deploy] FAILED: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
