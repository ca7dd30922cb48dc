//! The SEV-SNP report wire format: every field at its ABI offset, version differences,
//! rejected inputs, and the real Milan report.

use silk_attestation::snp::report::*;

fn vector(rel: &str) -> Vec<u8> {
    let path = format!("{}/../vectors/snp/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn milan_report() -> Vec<u8> {
    let text = String::from_utf8(vector("milan/report_milan.hex")).expect("hex text");
    hex::decode(text.trim()).expect("hex")
}

/// A blank report of `version` with the one valid signature algorithm.
fn blank(version: u32) -> Vec<u8> {
    let mut b = vec![0u8; REPORT_SIZE];
    b[0..4].copy_from_slice(&version.to_le_bytes());
    b[0x34..0x38].copy_from_slice(&1u32.to_le_bytes());
    b
}

/// Fills `len` bytes at `off` with `start, start+1, ...` so misplaced reads show.
fn pattern(b: &mut [u8], off: usize, len: usize, start: u8) -> Vec<u8> {
    for i in 0..len {
        b[off + i] = start.wrapping_add(i as u8);
    }
    b[off..off + len].to_vec()
}

fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// Every field of the version-independent part, each with a distinct value.
#[test]
fn every_common_field_at_its_offset() {
    let mut b = blank(2);
    put_u32(&mut b, 0x04, 0x0A0B_0C0D);
    put_u64(&mut b, 0x08, 0x0003_0000 | 0x1F);
    let family_id = pattern(&mut b, 0x10, 16, 0x10);
    let image_id = pattern(&mut b, 0x20, 16, 0x20);
    put_u32(&mut b, 0x30, 3);
    put_u64(&mut b, 0x38, 0x1111_1111_1111_1111);
    put_u64(&mut b, 0x40, 0x25);
    put_u32(&mut b, 0x48, 0b0_0101); // AUTHOR_KEY_EN, SIGNING_KEY = VLEK
    let report_data = pattern(&mut b, 0x50, 64, 0x50);
    let measurement = pattern(&mut b, 0x90, 48, 0x90);
    let host_data = pattern(&mut b, 0xC0, 32, 0xC0);
    let id_key_digest = pattern(&mut b, 0xE0, 48, 0xE0);
    let author_key_digest = pattern(&mut b, 0x110, 48, 0x11);
    let report_id = pattern(&mut b, 0x140, 32, 0x40);
    let report_id_ma = pattern(&mut b, 0x160, 32, 0x60);
    put_u64(&mut b, 0x180, 0x2222_2222_2222_2222);
    let chip_id = pattern(&mut b, 0x1A0, 64, 0xA0);
    put_u64(&mut b, 0x1E0, 0x3333_3333_3333_3333);
    b[0x1E8..0x1EB].copy_from_slice(&[7, 52, 1]); // build, minor, major
    b[0x1EC..0x1EF].copy_from_slice(&[3, 51, 1]);
    put_u64(&mut b, 0x1F0, 0x4444_4444_4444_4444);
    let r = pattern(&mut b, 0x2A0, 72, 1);
    let s = pattern(&mut b, 0x2E8, 72, 101);

    let rep = AttestationReport::from_bytes(&b).expect("parses");
    assert_eq!(rep.version, 2);
    assert_eq!(rep.guest_svn, 0x0A0B_0C0D);
    assert_eq!(rep.policy, GuestPolicy(0x0003_001F));
    assert_eq!(rep.family_id.to_vec(), family_id);
    assert_eq!(rep.image_id.to_vec(), image_id);
    assert_eq!(rep.vmpl, 3);
    assert_eq!(rep.signature_algo, 1);
    assert_eq!(rep.current_tcb, TcbVersion(0x1111_1111_1111_1111));
    assert_eq!(rep.platform_info, PlatformInfo(0x25));
    assert!(rep.author_key_en);
    assert!(!rep.mask_chip_key);
    assert_eq!(rep.signing_key, SigningKey::Vlek);
    assert_eq!(rep.report_data.to_vec(), report_data);
    assert_eq!(rep.measurement.to_vec(), measurement);
    assert_eq!(rep.host_data.to_vec(), host_data);
    assert_eq!(rep.id_key_digest.to_vec(), id_key_digest);
    assert_eq!(rep.author_key_digest.to_vec(), author_key_digest);
    assert_eq!(rep.report_id.to_vec(), report_id);
    assert_eq!(rep.report_id_ma.to_vec(), report_id_ma);
    assert_eq!(rep.reported_tcb, TcbVersion(0x2222_2222_2222_2222));
    assert_eq!(rep.chip_id.to_vec(), chip_id);
    assert_eq!(rep.committed_tcb, TcbVersion(0x3333_3333_3333_3333));
    let v = |major, minor, build| FirmwareVersion {
        major,
        minor,
        build,
    };
    assert_eq!(rep.current_version, v(1, 52, 7));
    assert_eq!(rep.committed_version, v(1, 51, 3));
    assert_eq!(rep.current_version.to_string(), "1.52.7");
    assert_eq!(rep.launch_tcb, TcbVersion(0x4444_4444_4444_4444));
    assert_eq!(rep.signature.r.to_vec(), r);
    assert_eq!(rep.signature.s.to_vec(), s);
    // Version 2 has neither CPUID nor mitigation vectors.
    assert_eq!(rep.cpuid, None);
    assert_eq!(rep.product_line(), None);
    assert_eq!(rep.launch_mitigation_vector, None);
    assert_eq!(rep.current_mitigation_vector, None);
}

#[test]
fn key_flags() {
    let parse = |flags: u32| {
        let mut b = blank(2);
        put_u32(&mut b, 0x48, flags);
        AttestationReport::from_bytes(&b)
    };
    let r = parse(0).unwrap();
    assert!(!r.author_key_en && !r.mask_chip_key);
    assert_eq!(r.signing_key, SigningKey::Vcek);
    let r = parse(0b10).unwrap();
    assert!(r.mask_chip_key && !r.author_key_en);
    assert_eq!(parse(7 << 2).unwrap().signing_key, SigningKey::None);
    for v in 2..=6u8 {
        assert_eq!(
            parse(u32::from(v) << 2).unwrap().signing_key,
            SigningKey::Reserved(v)
        );
    }
    assert_eq!(
        parse(1 << 5),
        Err(ReportError::ReservedNotZero {
            field: "key flags bits 31:5",
            offset: 0x48
        })
    );
}

#[test]
fn v3_and_v4_have_cpuid_but_no_mitigation_vectors() {
    for version in [3, 4] {
        let mut b = blank(version);
        b[0x188..0x18B].copy_from_slice(&[0x19, 0x11, 0x01]);
        put_u64(&mut b, 0x1F0, 9);
        let r = AttestationReport::from_bytes(&b).expect("parses");
        assert_eq!(r.version, version);
        assert_eq!(
            r.cpuid,
            Some(Cpuid {
                family: 0x19,
                model: 0x11,
                stepping: 0x01
            })
        );
        assert_eq!(r.product_line(), Some(ProductLine::Genoa));
        assert_eq!(r.launch_tcb, TcbVersion(9));
        assert_eq!(r.launch_mitigation_vector, None);
        assert_eq!(r.current_mitigation_vector, None);
        // The mitigation vector bytes are reserved before version 5.
        b[0x1F8] = 1;
        assert_eq!(
            AttestationReport::from_bytes(&b),
            Err(ReportError::ReservedNotZero {
                field: "reserved before SIGNATURE",
                offset: 0x1F8
            })
        );
    }
}

#[test]
fn v5_has_cpuid_and_mitigation_vectors() {
    let mut b = blank(5);
    b[0x188..0x18B].copy_from_slice(&[0x1A, 0x02, 0x00]);
    put_u64(&mut b, 0x1F8, 0x0102_0304_0506_0708);
    put_u64(&mut b, 0x200, 0x1112_1314_1516_1718);
    let r = AttestationReport::from_bytes(&b).expect("parses");
    assert_eq!(
        r.cpuid,
        Some(Cpuid {
            family: 0x1A,
            model: 0x02,
            stepping: 0
        })
    );
    assert_eq!(r.product_line(), Some(ProductLine::Turin));
    assert_eq!(r.launch_mitigation_vector, Some(0x0102_0304_0506_0708));
    assert_eq!(r.current_mitigation_vector, Some(0x1112_1314_1516_1718));
    b[0x208] = 1;
    assert!(matches!(
        AttestationReport::from_bytes(&b),
        Err(ReportError::ReservedNotZero { offset: 0x208, .. })
    ));
}

#[test]
fn wrong_lengths_are_rejected() {
    for len in [0, 1, REPORT_SIZE - 1, REPORT_SIZE + 1, 2 * REPORT_SIZE] {
        let mut b = blank(2);
        b.resize(len, 0);
        assert_eq!(
            AttestationReport::from_bytes(&b),
            Err(ReportError::WrongLength {
                expected: REPORT_SIZE,
                found: len
            })
        );
    }
}

#[test]
fn unknown_versions_are_rejected() {
    for version in [0, 1, 6, 0x100, u32::MAX] {
        assert_eq!(
            AttestationReport::from_bytes(&blank(version)),
            Err(ReportError::UnsupportedVersion { found: version })
        );
    }
}

#[test]
fn signature_algorithms_other_than_ecdsa_p384_are_rejected() {
    for algo in [0, 2, u32::MAX] {
        let mut b = blank(2);
        put_u32(&mut b, 0x34, algo);
        assert_eq!(
            AttestationReport::from_bytes(&b),
            Err(ReportError::UnsupportedSignatureAlgorithm {
                expected: 1,
                found: algo
            })
        );
    }
}

/// Every byte the spec reserves, per version, must be zero.
#[test]
fn reserved_bytes_must_be_zero() {
    let reserved = |version: u32| -> Vec<usize> {
        let cpuid_end = if version >= 3 { 0x18B } else { 0x188 };
        let tail = if version >= 5 { 0x208 } else { 0x1F8 };
        (0x4C..0x50)
            .chain(cpuid_end..0x1A0)
            .chain([0x1EB, 0x1EF])
            .chain(tail..0x2A0)
            .chain(0x330..REPORT_SIZE)
            .collect()
    };
    for version in [2, 3, 5] {
        for off in reserved(version) {
            let mut b = blank(version);
            b[off] = 0x80;
            match AttestationReport::from_bytes(&b) {
                Err(ReportError::ReservedNotZero { offset, .. }) => assert_eq!(offset, off),
                other => panic!("v{version} byte {off:#x}: {other:?}"),
            }
        }
    }
}

/// A bit position and the accessor that reads it.
type Flag<T> = (u32, fn(T) -> bool);

#[test]
fn guest_policy_bits() {
    let p = GuestPolicy(0x0000_0000_0000_3402);
    assert_eq!((p.abi_major(), p.abi_minor()), (0x34, 0x02));
    let flags: [Flag<GuestPolicy>; 9] = [
        (16, GuestPolicy::smt_allowed),
        (18, GuestPolicy::migrate_ma_allowed),
        (19, GuestPolicy::debug_allowed),
        (20, GuestPolicy::single_socket_required),
        (21, GuestPolicy::cxl_allowed),
        (22, GuestPolicy::mem_aes_256_xts_required),
        (23, GuestPolicy::rapl_disabled),
        (24, GuestPolicy::ciphertext_hiding_required),
        (25, GuestPolicy::page_swap_disabled),
    ];
    for (bit, get) in flags {
        assert!(get(GuestPolicy(1 << bit)), "bit {bit}");
        assert!(!get(GuestPolicy(!(1 << bit))), "bit {bit} alone");
    }
}

#[test]
fn platform_info_bits() {
    let flags: [Flag<PlatformInfo>; 7] = [
        (0, PlatformInfo::smt_enabled),
        (1, PlatformInfo::tsme_enabled),
        (2, PlatformInfo::ecc_enabled),
        (3, PlatformInfo::rapl_disabled),
        (4, PlatformInfo::ciphertext_hiding_enabled),
        (5, PlatformInfo::alias_check_complete),
        (7, PlatformInfo::tio_enabled),
    ];
    for (bit, get) in flags {
        assert!(get(PlatformInfo(1 << bit)), "bit {bit}");
        assert!(!get(PlatformInfo(!(1 << bit))), "bit {bit} alone");
    }
}

#[test]
fn tcb_layouts_per_product_line() {
    let raw = TcbVersion(u64::from_le_bytes([1, 2, 3, 4, 5, 6, 7, 8]));
    for line in [ProductLine::Milan, ProductLine::Genoa] {
        let p = raw.parts(line);
        assert_eq!(
            p,
            TcbParts {
                fmc: None,
                bootloader: 1,
                tee: 2,
                snp: 7,
                microcode: 8
            }
        );
        assert_eq!(p.to_string(), "bl=1 tee=2 snp=7 ucode=8");
    }
    let p = raw.parts(ProductLine::Turin);
    assert_eq!(
        p,
        TcbParts {
            fmc: Some(1),
            bootloader: 2,
            tee: 3,
            snp: 4,
            microcode: 8
        }
    );
    assert_eq!(p.to_string(), "fmc=1 bl=2 tee=3 snp=4 ucode=8");
    for line in ProductLine::ALL {
        let parts = raw.parts(line);
        assert_eq!(TcbVersion::from_parts(parts, line).parts(line), parts);
    }
    assert_eq!(
        TcbVersion(0x7308_0000_0000_0003)
            .parts(ProductLine::Milan)
            .to_string(),
        "bl=3 tee=0 snp=8 ucode=115"
    );
}

#[test]
fn cpuid_product_lines() {
    let line = |family, model| {
        Cpuid {
            family,
            model,
            stepping: 1,
        }
        .product_line()
    };
    assert_eq!(line(0x19, 0x01), Some(ProductLine::Milan));
    assert_eq!(line(0x19, 0x0F), Some(ProductLine::Milan));
    assert_eq!(line(0x19, 0x11), Some(ProductLine::Genoa));
    assert_eq!(line(0x19, 0xA0), Some(ProductLine::Genoa));
    assert_eq!(line(0x1A, 0x02), Some(ProductLine::Turin));
    assert_eq!(line(0x1A, 0x11), Some(ProductLine::Turin));
    assert_eq!(line(0x19, 0x21), None); // a client Zen 3 part
    assert_eq!(line(0x1A, 0x50), None); // Venice: no pinned root
    assert_eq!(line(0x17, 0x31), None); // Rome has no SNP
}

#[test]
fn product_line_names() {
    for line in ProductLine::ALL {
        assert_eq!(ProductLine::from_name(&line.to_string()), Some(line));
        assert_eq!(
            ProductLine::from_name(&line.to_string().to_uppercase()),
            Some(line)
        );
    }
    assert_eq!(ProductLine::Milan.to_string(), "Milan");
    assert_eq!(ProductLine::from_name("Rome"), None);
    assert_eq!(ProductLine::from_name(""), None);
}

#[test]
fn milan_vector_fields() {
    let r = AttestationReport::from_bytes(&milan_report()).expect("the Milan vector parses");
    assert_eq!(r.version, 2);
    assert_eq!(r.guest_svn, 0);
    assert_eq!(r.policy, GuestPolicy(0x30000));
    assert!(r.policy.smt_allowed() && !r.policy.debug_allowed());
    assert_eq!(r.vmpl, 0);
    assert_eq!(r.signing_key, SigningKey::Vcek);
    assert!(r.platform_info.smt_enabled());
    assert_eq!(
        hex::encode(r.measurement),
        "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f"
    );
    assert_eq!(r.reported_tcb, TcbVersion(0x7308_0000_0000_0003));
    assert_eq!(
        r.reported_tcb.parts(ProductLine::Milan).to_string(),
        "bl=3 tee=0 snp=8 ucode=115"
    );
    assert_eq!(
        r.current_version,
        FirmwareVersion {
            major: 1,
            minor: 52,
            build: 4
        }
    );
    assert!(hex::encode(r.chip_id).starts_with("d49554ec717f4e5b"));
    assert_eq!(r.cpuid, None);
    assert_eq!(r.launch_mitigation_vector, None);
}
