//! TDX MRTD and RTMR1/RTMR2 predictions. MRTD is checked against the plain reference in
//! scripts/reference/tdx_mrtd_reference.py (the project's own, from the specs: no registry
//! package computes MRTD); the kernel's Authenticode hash against Google's `authenticode`
//! crate; the RTMR event lists field by field.

use silk_images::pe::{self, QemuMemory};
use silk_images::tdx::{self, DirectBoot, PageOrder, TdvfSectionType};
use std::path::Path;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tdx");

fn golden() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(Path::new(DATA).join("golden.json")).unwrap()).unwrap()
}

#[test]
fn mrtd_of_synthetic_tdvf_matches_reference() {
    let fd = std::fs::read(Path::new(DATA).join("synthetic-tdvf.fd")).unwrap();
    let g = &golden()["synthetic-tdvf.fd"];
    let per_page = hex::encode(tdx::mrtd(&fd, PageOrder::PerPage).unwrap());
    let per_section = hex::encode(tdx::mrtd(&fd, PageOrder::PerSection).unwrap());
    assert_eq!(per_page, g["per_page"].as_str().unwrap());
    assert_eq!(per_section, g["per_section"].as_str().unwrap());
    assert_ne!(per_page, per_section);
    let s = tdx::tdvf_sections(&fd).unwrap();
    assert_eq!(s.len(), 7);
    assert_eq!(s[1].kind, TdvfSectionType::Bfv);
    assert_eq!(
        (s[1].data_offset, s[1].memory_address),
        (0x4000, 0xffff_4000)
    );
    assert_eq!(s[6].attributes, tdx::ATTR_PAGE_AUG);
    assert_eq!((s[5].raw_data_size, s[5].memory_data_size), (0x800, 0x2000));

    // One byte in an extended section changes MRTD; one in the unextended CFV does not.
    let mut bfv = fd.clone();
    bfv[0x5000] ^= 1;
    assert_ne!(
        tdx::mrtd(&bfv, PageOrder::PerPage).unwrap(),
        tdx::mrtd(&fd, PageOrder::PerPage).unwrap()
    );
    let mut cfv = fd.clone();
    cfv[0x10] ^= 1;
    assert_eq!(
        tdx::mrtd(&cfv, PageOrder::PerPage).unwrap(),
        tdx::mrtd(&fd, PageOrder::PerPage).unwrap()
    );
}

#[test]
fn mrtd_of_debian_ovmf_when_installed() {
    let g = &golden()["debian-ovmf"];
    let path = g["path"].as_str().unwrap();
    let Ok(fd) = std::fs::read(path) else {
        eprintln!("!!! {path} absent (Debian package ovmf): its MRTD was not checked");
        return;
    };
    use sha2::Digest;
    if hex::encode(sha2::Sha256::digest(&fd)) != g["sha256"].as_str().unwrap() {
        eprintln!("!!! {path} is another build than golden.json's: rerun scripts/reference/tdx_mrtd_reference.py");
        return;
    }
    assert_eq!(
        hex::encode(tdx::mrtd(&fd, PageOrder::PerPage).unwrap()),
        g["per_page"].as_str().unwrap()
    );
    assert_eq!(
        hex::encode(tdx::mrtd(&fd, PageOrder::PerSection).unwrap()),
        g["per_section"].as_str().unwrap()
    );
}

/// A minimal EFI-stub bzImage: MZ + PE32+ headers below the setup header at 0x1f1, three
/// sections, trailing bytes and (optionally) a certificate table at the end.
fn bzimage(certs: usize) -> Vec<u8> {
    let mut k: Vec<u8> = (0..0x6100u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    k[..0x200].fill(0);
    k[..2].copy_from_slice(b"MZ");
    k[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
    k[0x40..0x44].copy_from_slice(b"PE\0\0");
    let coff = 0x44;
    k[coff..coff + 2].copy_from_slice(&0x8664u16.to_le_bytes());
    k[coff + 2..coff + 4].copy_from_slice(&3u16.to_le_bytes());
    k[coff + 16..coff + 18].copy_from_slice(&240u16.to_le_bytes());
    let opt = coff + 20;
    k[opt..opt + 2].copy_from_slice(&0x20bu16.to_le_bytes());
    k[opt + 32..opt + 36].copy_from_slice(&0x1000u32.to_le_bytes()); // SectionAlignment
    k[opt + 36..opt + 40].copy_from_slice(&0x200u32.to_le_bytes()); // FileAlignment
    k[opt + 56..opt + 60].copy_from_slice(&0x7000u32.to_le_bytes()); // SizeOfImage
    k[opt + 60..opt + 64].copy_from_slice(&0x200u32.to_le_bytes()); // SizeOfHeaders
    k[opt + 64..opt + 68].copy_from_slice(&0xdeadbeefu32.to_le_bytes()); // CheckSum
    k[opt + 108..opt + 112].copy_from_slice(&16u32.to_le_bytes());
    let table = opt + 240;
    for (i, (name, va, size, ptr)) in [
        (b".setup\0\0", 0x1000u32, 0xe00u32, 0x200u32),
        (b".text\0\0\0", 0x2000, 0x4000, 0x1000),
        (b".data\0\0\0", 0x6000, 0x1000, 0x5000),
    ]
    .iter()
    .enumerate()
    {
        let s = table + 40 * i;
        k[s..s + 8].copy_from_slice(*name);
        k[s + 8..s + 12].copy_from_slice(&size.to_le_bytes());
        k[s + 12..s + 16].copy_from_slice(&va.to_le_bytes());
        k[s + 16..s + 20].copy_from_slice(&size.to_le_bytes());
        k[s + 20..s + 24].copy_from_slice(&ptr.to_le_bytes());
    }
    assert!(table + 120 < 0x1f1);
    k[0x1f1] = 7; // setup_sects
    k[0x202..0x206].copy_from_slice(b"HdrS");
    k[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    k[0x210] = 0;
    k[0x211] = 0x01; // LOADED_HIGH
    k[0x218..0x228].fill(0);
    k[0x228..0x22c].fill(0);
    k[0x22c..0x230].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    k[0x236..0x238].copy_from_slice(&0x7fu16.to_le_bytes());
    if certs > 0 {
        let at = k.len() as u32;
        k.resize(k.len() + certs, 0xcc);
        let dir = opt + 112 + 4 * 8;
        k[dir..dir + 4].copy_from_slice(&at.to_le_bytes());
        k[dir + 4..dir + 8].copy_from_slice(&(certs as u32).to_le_bytes());
    }
    k
}

fn crate_authenticode(image: &[u8]) -> [u8; 48] {
    use sha2::Digest;
    let pe = object::read::pe::PeFile64::parse(image).unwrap();
    let mut h = sha2::Sha384::new();
    authenticode::authenticode_digest(&pe, &mut h).unwrap();
    h.finalize().into()
}

#[test]
fn authenticode_matches_google_crate() {
    let mem = QemuMemory::q35(2 << 30);
    for certs in [0, 0x80] {
        let k = bzimage(certs);
        assert_eq!(
            pe::authenticode_sha384(&k).unwrap(),
            crate_authenticode(&k),
            "certs {certs}"
        );
        let patched = pe::qemu_patch_bzimage(&k, Some(5000), "ro", mem).unwrap();
        assert_eq!(
            pe::authenticode_sha384(&patched).unwrap(),
            crate_authenticode(&patched)
        );
        // The checksum and the certificates are not covered.
        let mut c = k.clone();
        c[0x40 + 24 + 64] ^= 0xff;
        if certs > 0 {
            let n = c.len();
            c[n - 1] ^= 0xff;
        }
        assert_eq!(
            pe::authenticode_sha384(&c).unwrap(),
            pe::authenticode_sha384(&k).unwrap()
        );
    }
}

/// Any real kernel (SILK_TEST_KERNEL=path, or /boot/vmlinuz) is hashed by both.
#[test]
fn authenticode_of_a_real_kernel_when_present() {
    let path = std::env::var("SILK_TEST_KERNEL").unwrap_or_else(|_| "/boot/vmlinuz".into());
    let Ok(k) = std::fs::read(&path) else {
        eprintln!("!!! no kernel at {path}: real-kernel Authenticode check skipped");
        return;
    };
    assert_eq!(pe::authenticode_sha384(&k).unwrap(), crate_authenticode(&k));
    let patched = pe::qemu_patch_bzimage(
        &k,
        Some(30 << 20),
        "console=ttyS0",
        QemuMemory::q35(8 << 30),
    )
    .unwrap();
    assert_eq!(
        pe::authenticode_sha384(&patched).unwrap(),
        crate_authenticode(&patched)
    );
}

#[test]
fn qemu_header_patch_fields() {
    let k = bzimage(0);
    // 2 GiB of RAM: initrd ceiling is 2 GiB - 0x28000 - 1, the initrd goes just below.
    let p = pe::qemu_patch_bzimage(&k, Some(5000), "ro", QemuMemory::q35(2 << 30)).unwrap();
    let u32_at = |at: usize| u32::from_le_bytes(p[at..at + 4].try_into().unwrap());
    assert_eq!(p[0x210], 0xb0);
    assert_eq!(p[0x211], 0x81);
    assert_eq!(&p[0x224..0x226], &0xfe00u16.to_le_bytes());
    assert_eq!(u32_at(0x228), 0x20000);
    assert_eq!(
        u32_at(0x218),
        ((0x8000_0000u64 - 0x28000 - 1 - 5000) & !4095) as u32
    );
    assert_eq!(u32_at(0x21c), 5000);
    let changed: Vec<usize> = (0..k.len()).filter(|&i| k[i] != p[i]).collect();
    assert!(
        changed.iter().all(|&i| (0x210..0x22c).contains(&i)),
        "{changed:x?}"
    );
    // No initrd: the ramdisk fields stay as in the file.
    let p = pe::qemu_patch_bzimage(&k, None, "ro", QemuMemory::q35(2 << 30)).unwrap();
    assert_eq!(&p[0x218..0x220], &[0; 8]);
    assert!(pe::qemu_patch_bzimage(&k, None, "vga=791", QemuMemory::q35(2 << 30)).is_err());
    assert!(pe::qemu_patch_bzimage(&k, Some(3 << 30), "", QemuMemory::q35(2 << 30)).is_err());
}

#[test]
fn rtmr_events_and_one_byte_changes() {
    let kernel = bzimage(0);
    let initrd = vec![7u8; 10_000];
    let boot = DirectBoot {
        kernel: &kernel,
        initrd: Some(&initrd),
        cmdline: "console=hvc0 root=/dev/vda",
        memory: QemuMemory::q35(4 << 30),
    };
    let ev = tdx::direct_boot_events(&boot).unwrap();
    let patched = pe::qemu_patch_bzimage(&kernel, Some(10_000), boot.cmdline, boot.memory).unwrap();
    assert_eq!(ev.rtmr1[0], pe::authenticode_sha384(&patched).unwrap());
    assert_eq!(
        ev.rtmr1[1],
        tdx::sha384(b"Calling EFI Application from Boot Option")
    );
    assert_eq!(ev.rtmr1[2], tdx::sha384(&[0, 0, 0, 0]));
    assert_eq!(ev.rtmr1.len(), 5);
    let utf16: Vec<u8> = "console=hvc0 root=/dev/vda initrd=initrd\0"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    assert_eq!(ev.rtmr2, vec![tdx::sha384(&utf16), tdx::sha384(&initrd)]);

    let base = tdx::rtmrs(&boot).unwrap();
    assert_eq!(base, (tdx::replay(&ev.rtmr1), tdx::replay(&ev.rtmr2)));
    let mut k2 = kernel.clone();
    k2[0x3000] ^= 1;
    assert_ne!(
        tdx::rtmrs(&DirectBoot {
            kernel: &k2,
            ..boot.clone()
        })
        .unwrap()
        .0,
        base.0
    );
    let mut i2 = initrd.clone();
    i2[0] ^= 1;
    assert_ne!(
        tdx::rtmrs(&DirectBoot {
            initrd: Some(&i2),
            ..boot.clone()
        })
        .unwrap()
        .1,
        base.1
    );
    let c2 = tdx::rtmrs(&DirectBoot {
        cmdline: "console=hvc1 root=/dev/vda",
        ..boot.clone()
    })
    .unwrap();
    assert_ne!(c2.1, base.1);
    // Neither a command line nor an initrd: OVMF passes no load options, nothing is measured.
    let bare = tdx::direct_boot_events(&DirectBoot {
        cmdline: "",
        initrd: None,
        ..boot.clone()
    })
    .unwrap();
    assert!(bare.rtmr2.is_empty());
    let only_initrd = tdx::direct_boot_events(&DirectBoot {
        cmdline: "",
        ..boot.clone()
    })
    .unwrap();
    let utf16: Vec<u8> = " initrd=initrd\0"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    assert_eq!(only_initrd.rtmr2[0], tdx::sha384(&utf16));
    // The initrd's size is in the patched kernel header, so it moves RTMR1 too.
    let i3 = vec![7u8; 20_000];
    assert_ne!(
        tdx::rtmrs(&DirectBoot {
            initrd: Some(&i3),
            ..boot.clone()
        })
        .unwrap()
        .0,
        base.0
    );
}
