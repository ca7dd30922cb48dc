//! dm-verity trees checked byte for byte against Linux's `veritysetup format` (Debian
//! package `cryptsetup-bin`, installed by scripts/setup.sh). These tests fail, not skip,
//! when veritysetup is missing: the root hash is a model's identity.

use silk_images::verity::{self, build_model_disk, ModelDiskOptions, VerityParams, BLOCK_SIZE};
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn veritysetup(args: &[&str]) -> Output {
    let bin = ["veritysetup", "/usr/sbin/veritysetup", "/sbin/veritysetup"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok())
        .expect("veritysetup not found: install Debian's cryptsetup-bin (scripts/setup.sh does)");
    Command::new(bin).args(args).output().unwrap()
}

/// Runs `veritysetup format` and returns the root hash it prints.
fn format_root(args: &[&str]) -> String {
    let out = veritysetup(&[&["format"], args].concat());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "veritysetup format {args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .find_map(|l| l.strip_prefix("Root hash:"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|| panic!("no root hash in: {text}"))
}

/// Deterministic, non-repeating test data.
fn data(len: usize, seed: u8) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut out = Vec::with_capacity(len + 32);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(
            &Sha256::new()
                .chain_update([seed])
                .chain_update(i.to_le_bytes())
                .finalize(),
        );
        i += 1;
    }
    out.truncate(len);
    out
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

const UUID: &str = "01234567-89ab-cdef-0123-456789abcdef";
const UUID_BYTES: [u8; 16] = [
    0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
];

#[test]
fn separate_hash_device_matches_veritysetup_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    // 1 block (no hash levels), a partial block, one full hash block of digests, one more
    // than that (two levels), and three levels (128*128 + 1 blocks = 64 MiB).
    let sizes = [
        BLOCK_SIZE,
        10_000,
        128 * BLOCK_SIZE,
        129 * BLOCK_SIZE,
        (128 * 128 + 1) * BLOCK_SIZE,
    ];
    let salts: [&[u8]; 3] = [&[0x5a; 32], &[], &[1, 2, 3]];
    for (i, &len) in sizes.iter().enumerate() {
        let salt = salts[i % salts.len()];
        let bytes = data(len, i as u8);
        let params = VerityParams {
            salt: salt.to_vec(),
            uuid: UUID_BYTES,
        };
        let mut ours = Vec::new();
        let info = verity::format(&mut &bytes[..], &mut ours, &params).unwrap();

        let data_file = dir.path().join(format!("data{i}"));
        let mut padded = bytes.clone();
        padded.resize(len.div_ceil(BLOCK_SIZE) * BLOCK_SIZE, 0);
        fs::write(&data_file, &padded).unwrap();
        let hash_file = dir.path().join(format!("hash{i}"));
        fs::write(&hash_file, b"").unwrap();
        let salt_arg = if salt.is_empty() {
            "-".to_string()
        } else {
            hex::encode(salt)
        };
        let root = format_root(&[
            p(&data_file),
            p(&hash_file),
            "--hash=sha256",
            "--format=1",
            "--data-block-size=4096",
            "--hash-block-size=4096",
            &format!("--salt={salt_arg}"),
            &format!("--uuid={UUID}"),
        ]);
        assert_eq!(info.root_hex(), root, "{len} bytes");
        assert_eq!(info.data_blocks, padded.len() as u64 / 4096);
        assert_eq!(info.data_size, len as u64);
        let theirs = fs::read(&hash_file).unwrap();
        assert_eq!(ours.len() as u64, info.hash_size);
        assert!(
            ours == theirs,
            "{len} bytes: hash device differs from veritysetup's"
        );
    }
}

#[test]
fn model_disk_matches_veritysetup_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.gguf");
    let bytes = data(300 * BLOCK_SIZE + 123, 9);
    fs::write(&model, &bytes).unwrap();
    let disk = dir.path().join("model.disk");
    let built = build_model_disk(&model, &disk, &ModelDiskOptions::default()).unwrap();
    let v = &built.verity;
    assert_eq!(built.model_size, bytes.len() as u64);
    assert_eq!(v.data_blocks, 301);
    assert_eq!(v.hash_offset, 301 * 4096);
    let ours = fs::read(&disk).unwrap();
    assert_eq!(ours.len() as u64, built.disk_size);
    assert_eq!(&ours[..bytes.len()], &bytes[..]);

    // veritysetup over the same data in one file with --hash-offset writes the same bytes.
    let theirs_path = dir.path().join("theirs.disk");
    let mut theirs = bytes.clone();
    theirs.resize(v.hash_offset as usize, 0);
    fs::write(&theirs_path, &theirs).unwrap();
    let root = format_root(&[
        p(&theirs_path),
        p(&theirs_path),
        "--data-blocks=301",
        &format!("--hash-offset={}", v.hash_offset),
        &format!("--salt={}", hex::encode(&v.salt)),
        &format!("--uuid={}", v.uuid_text()),
    ]);
    assert_eq!(v.root_hex(), root);
    assert!(
        fs::read(&theirs_path).unwrap() == ours,
        "model disk differs from veritysetup's"
    );

    // Userspace verification of our disk passes, and fails after a one-byte change.
    let verify = |path: &Path| {
        veritysetup(&[
            "verify",
            p(path),
            p(path),
            &v.root_hex(),
            &format!("--hash-offset={}", v.hash_offset),
        ])
        .status
        .success()
    };
    assert!(verify(&disk));
    let mut tampered = ours.clone();
    tampered[4096 * 200 + 7] ^= 1;
    fs::write(&theirs_path, &tampered).unwrap();
    assert!(
        !verify(&theirs_path),
        "a changed data byte must fail verification"
    );

    // Reproducible: the same model gives the same disk; another model another root.
    let again = dir.path().join("again.disk");
    let built2 = build_model_disk(&model, &again, &ModelDiskOptions::default()).unwrap();
    assert_eq!(built2, built);
    assert!(fs::read(&again).unwrap() == ours);
    let mut other = bytes.clone();
    other[5] ^= 0x80;
    fs::write(&model, &other).unwrap();
    let built3 = build_model_disk(&model, &again, &ModelDiskOptions::default()).unwrap();
    assert_ne!(built3.verity.root_hash, built.verity.root_hash);
}
