//! silk-host's QEMU arguments against what Debian's QEMU builds say they accept, recorded
//! over QMP by scripts/check-qemu-options.sh (`--record host/tests/data/qemu`): every
//! `-object` type and `-device` driver with each property silk passes, every `-machine`
//! key, and the `-cpu` model. QEMU 11.1.3 (trixie-backports) takes all three platforms'
//! lines; 10.0.2 (bookworm-backports, and trixie's 10.0 likewise) takes SEV-SNP's and
//! lacks `tdx-guest`.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

use serde_json::Value;
use silk_host::qemu::{Accel, BootFiles, QemuVersion, QuoteSocket, Tee, VmPlan};

fn recorded(version: &str) -> Value {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/qemu"))
        .join(format!("{version}.json"));
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn args(tee: Tee, version: QemuVersion) -> Vec<String> {
    VmPlan {
        tee,
        accel: Accel::Kvm,
        qemu_version: version,
        vcpus: 2,
        memory_mib: 2048,
        boot: BootFiles {
            firmware: "/img/OVMF.fd".into(),
            kernel: "/img/vmlinuz".into(),
            initrd: "/img/initrd.cpio".into(),
            cmdline: "console=ttyS0".into(),
        },
        model_disk: "/img/model.img".into(),
        gpus: vec!["0000:41:00.0".parse().unwrap()],
        forward: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 40123),
        guest_outbound: false,
    }
    .args()
    .unwrap()
}

/// `type,key=value,...` (or QEMU's JSON object form) as the type and its keys.
fn keys(value: &str) -> (String, Vec<String>) {
    if value.starts_with('{') {
        let v: BTreeMap<String, Value> = serde_json::from_str(value).unwrap();
        let ty = v["qom-type"].as_str().unwrap().to_owned();
        return (ty, v.into_keys().filter(|k| k != "qom-type").collect());
    }
    let mut parts = value.split(',');
    let ty = parts.next().unwrap_or_default().to_owned();
    let keys = parts
        .map(|p| p.split_once('=').map_or(p, |(k, _)| k).to_owned())
        .collect();
    (ty, keys)
}

fn list<'a>(v: &'a Value, path: &[&str]) -> Option<Vec<&'a str>> {
    let mut v = v;
    for p in path {
        v = v.get(p)?;
    }
    Some(v.as_array()?.iter().filter_map(Value::as_str).collect())
}

/// Everything in `args` that `qemu` (its recorded answers) lacks, as readable lines.
fn lacking(qemu: &Value, args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for pair in args.windows(2) {
        let (opt, value) = (pair[0].as_str(), pair[1].as_str());
        match opt {
            "-object" | "-device" => {
                let (ty, keys) = keys(value);
                let table = if opt == "-object" {
                    "objects"
                } else {
                    "devices"
                };
                let Some(have) = list(qemu, &[table, &ty]) else {
                    out.push(format!("{opt} {ty}: no such type"));
                    continue;
                };
                for k in keys {
                    if !have.contains(&k.as_str()) && k != "id" && k != "bus" {
                        out.push(format!("{opt} {ty}: no property {k}"));
                    }
                }
            }
            "-machine" => {
                let (_, keys) = keys(value);
                let machine = list(qemu, &["machine"]).unwrap();
                let accel = list(qemu, &["kvm_accel"]).unwrap();
                for k in keys {
                    if !machine.contains(&k.as_str()) && !accel.contains(&k.as_str()) {
                        out.push(format!("-machine: no property {k}"));
                    }
                }
            }
            "-cpu"
                if value != "host"
                    && value != "max"
                    && !list(qemu, &["cpus"]).unwrap().contains(&value) =>
            {
                out.push(format!("-cpu {value}: no such model"));
            }
            _ => {}
        }
    }
    out
}

fn tees() -> [(&'static str, Tee); 4] {
    [
        (
            "snp",
            Tee::Snp {
                cbitpos: 51,
                reduced_phys_bits: 1,
                policy: Some(0x30000),
            },
        ),
        ("tdx", Tee::tdx()),
        (
            "tdx-unix",
            Tee::Tdx {
                quote_socket: Some(QuoteSocket::Unix("/run/qgs.sock".into())),
            },
        ),
        ("none", Tee::None),
    ]
}

#[test]
fn trixie_backports_qemu_11_takes_every_platforms_command_line() {
    let q = recorded("11.1.3");
    for (name, tee) in tees() {
        let a = args(tee, QemuVersion::new(11, 1, 3));
        assert_eq!(lacking(&q, &a), Vec::<String>::new(), "{name}: {a:?}");
    }
}

#[test]
fn bookworm_backports_qemu_10_0_takes_snp_but_has_no_tdx_guest() {
    let q = recorded("10.0.2");
    for (name, tee) in tees() {
        let tdx = matches!(tee, Tee::Tdx { .. });
        let a = args(tee, QemuVersion::new(11, 1, 3));
        let l = lacking(&q, &a);
        if tdx {
            assert_eq!(l, ["-object tdx-guest: no such type"], "{name}");
        } else {
            assert_eq!(l, Vec::<String>::new(), "{name}: {a:?}");
        }
    }
}

#[test]
fn the_recorded_tables_catch_a_misspelt_property() {
    let q = recorded("11.1.3");
    let mut a = args(Tee::snp(), QemuVersion::new(11, 1, 3));
    for s in &mut a {
        *s = s
            .replace("cbitpos", "cbit-pos")
            .replace("iommu_platform", "iommu-platform");
    }
    assert_eq!(
        lacking(&q, &a),
        [
            "-object sev-snp-guest: no property cbit-pos",
            "-device virtio-blk-pci: no property iommu-platform",
            "-device virtio-net-pci: no property iommu-platform"
        ]
    );
}

#[test]
fn bookworms_qemu_7_2_lacks_the_snp_object_and_cpu_model_and_tdx() {
    let q = recorded("7.2.22");
    let snp = lacking(&q, &args(Tee::snp(), QemuVersion::new(11, 1, 3)));
    assert_eq!(
        snp,
        [
            "-cpu EPYC-v4: no such model",
            "-object sev-snp-guest: no such type"
        ]
    );
    let tdx = lacking(&q, &args(Tee::tdx(), QemuVersion::new(11, 1, 3)));
    assert_eq!(tdx, ["-object tdx-guest: no such type"]);
    assert!(lacking(&q, &args(Tee::None, QemuVersion::new(7, 2, 22))).is_empty());
}
