//! The whole path through a real VM: the guest image with `silk-enclave` boots under QEMU
//! (TCG, `--tee none`, simulated evidence from the image's development chain), and a
//! client gets a verified, sealed answer from the default model through `silk-host`'s
//! relay. Killing QEMU makes silk-host restart it: the request in flight fails clearly,
//! the client attests the new boot (new keys, new evidence) and carries on.
//!
//! The model disk is a dm-verity disk whose root the image's (measured) command line
//! carries; the claims name the model by that root. When the host changes one byte of the
//! model on the disk and the VM restarts, the enclave fails to load the model (read errors
//! through dm-verity) and the guest never reports ready: no answer from another model.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;
use silk_client::session::{ClientError, Session};
use silk_host::app::run_until;
use silk_protocol::attestation::snp::simulated::SimulatedPlatform;
use silk_tests::vm::{
    build_image, dev_run_options, flip_byte, free_addr, http_get, metric, model_disk, repo_root,
    require_qemu, target_dir, wait_for,
};
use silk_tools::demo::{demo_policy, file_sha384};

const BOOT_TIMEOUT: Duration = Duration::from_secs(300);

fn enclave_binary(dir: &std::path::Path) -> PathBuf {
    let built = target_dir().join("debug/silk-enclave");
    assert!(
        built.is_file(),
        "{} is missing: cargo build --bin silk-enclave",
        built.display()
    );
    // Stripped, so that the initramfs (and the TCG boot) stays small.
    let copy = dir.join("silk-enclave");
    let ok = std::process::Command::new("strip")
        .arg("-o")
        .arg(&copy)
        .arg(&built)
        .status()
        .expect("run strip (binutils)");
    assert!(ok.success(), "strip failed");
    copy
}

async fn ask(session: &Session, max_tokens: usize) -> Result<String, ClientError> {
    let body = json!({
        "messages": [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}],
        "max_tokens": max_tokens, "temperature": 0,
    });
    let plain = session
        .send(body.to_string().as_bytes())
        .await?
        .collect()
        .await?;
    let v: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    Ok(v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

/// The guest console as silk-host logs it (target `silk_host::guest`), kept for asserts.
#[derive(Clone, Default)]
struct Console(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Console {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        std::io::stderr().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Console {
    fn install() -> Self {
        let c = Console::default();
        let writer = c.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("silk_host::guest=info"))
            .with_writer(move || writer.clone())
            .try_init();
        c
    }
    fn text(&self) -> String {
        self.0
            .lock()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vm_sealed_chat_through_silk_host_survives_a_qemu_kill() {
    require_qemu();
    let console = Console::install();
    let dir = tempfile::tempdir().unwrap();
    let enclave = enclave_binary(dir.path());
    let measurement = file_sha384(&enclave).unwrap();
    let platform = SimulatedPlatform::generate().unwrap();
    let chain = dir.path().join("dev-chain.pem");
    std::fs::write(&chain, platform.to_pem().unwrap().as_bytes()).unwrap();
    let policy = demo_policy(&platform.chain().root_digest(), &measurement).unwrap();

    let disk = dir.path().join("model.img");
    let model = repo_root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let verity = model_disk(&disk, &model);
    let root = verity
        .split_whitespace()
        .find_map(|w| w.strip_prefix("silk.verity="))
        .expect("the fragment carries the root hash")
        .to_owned();

    let image = dir.path().join("image");
    let enclave_arg = enclave.to_string_lossy().into_owned();
    let chain_arg = chain.to_string_lossy().into_owned();
    let (image_c, args) = (
        image.clone(),
        [
            "--enclave".to_owned(),
            enclave_arg,
            "--evidence".to_owned(),
            "simulated".to_owned(),
            "--sim-chain".to_owned(),
            chain_arg,
            "--model-verity".to_owned(),
            verity,
        ],
    );
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        build_image(&image_c, &args)
    })
    .await
    .unwrap();

    let (listen, admin) = (free_addr(), free_addr());
    let opts = dev_run_options(image, disk.clone(), 1536, listen, admin);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let host = tokio::spawn(run_until(opts, stopped));
    let healthy = move || {
        http_get(admin, "/healthz")
            .ok()
            .filter(|(code, _)| *code == 200)
    };
    let metrics = move || {
        http_get(admin, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
    };
    let wait_ready = |what: &'static str| {
        tokio::task::spawn_blocking(move || wait_for(what, BOOT_TIMEOUT, healthy))
    };

    let t0 = Instant::now();
    wait_ready("the enclave in the VM").await.unwrap();
    eprintln!(
        "boot to ready under TCG: {:.1}s",
        t0.elapsed().as_secs_f64()
    );

    let session = Session::connect(&format!("https://{listen}"), policy)
        .await
        .expect("the VM's enclave verifies under the policy");
    let first = session.verified().unwrap();
    assert!(first.verdict.simulated);
    assert_eq!(
        first.claims.model,
        format!("verity:{root}"),
        "the claims name the model by its dm-verity root"
    );
    let t1 = Instant::now();
    let answer = ask(&session, 12)
        .await
        .expect("a sealed answer from the VM");
    eprintln!("answer in {:.1}s: {answer}", t1.elapsed().as_secs_f64());
    assert!(answer.contains("Paris"), "{answer}");

    // A long request is in flight when QEMU dies.
    let pid = metric(&metrics(), "silk_host_vm_pid").expect("QEMU's pid");
    let in_flight = {
        let body = json!({
            "messages": [{"role": "user", "content": "Write a long story about a lighthouse."}],
            "max_tokens": 400, "temperature": 0, "stream": true,
        })
        .to_string();
        let mut answer = session.send(body.as_bytes()).await.unwrap();
        answer.next_chunk().await.expect("the first chunk arrives");
        answer
    };
    assert!(std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let mut cut = in_flight;
    let outcome = loop {
        match cut.next_chunk().await {
            Ok(Some(_)) => continue,
            other => break other,
        }
    };
    match outcome {
        Err(ClientError::Integrity { check, .. }) => assert_eq!(check, "seal.stream_complete"),
        other => panic!("a request cut by the VM's death must fail clearly, got {other:?}"),
    }

    // silk-host restarts the VM; the client attests the new boot and continues.
    tokio::task::spawn_blocking(move || {
        wait_for("the restart", Duration::from_secs(60), || {
            (metric(&metrics(), "silk_host_vm_restarts_total") == Some(1)).then_some(())
        })
    })
    .await
    .unwrap();
    wait_ready("the restarted enclave").await.unwrap();
    let again = ask(&session, 12)
        .await
        .expect("an answer from the new boot");
    assert!(again.contains("Paris"), "{again}");
    let second = session.verified().unwrap();
    assert_ne!(
        second.claims.hpke_public_key, first.claims.hpke_public_key,
        "the new boot has new keys, and the session attested them"
    );

    // The host changes one bit of the model (inside a tensor, past the GGUF header) and
    // restarts the VM: the enclave's reads through dm-verity fail, it exits, the guest
    // powers off and silk-host restarts it again; it never reports ready.
    let size = std::fs::metadata(&model).unwrap().len();
    flip_byte(&disk, size / 2);
    let pid = metric(&metrics(), "silk_host_vm_pid").expect("QEMU's pid");
    assert!(std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let t2 = Instant::now();
    let saw_ready = tokio::task::spawn_blocking(move || {
        // Restart 2 boots the changed disk (readiness counts only from then: until
        // silk-host notices the kill, the gauge still shows the old boot); restart 3
        // means that boot ended by itself.
        wait_for(
            "the restart on the changed disk",
            Duration::from_secs(60),
            || (metric(&metrics(), "silk_host_vm_restarts_total") >= Some(2)).then_some(()),
        );
        let mut saw_ready = false;
        wait_for("the changed-disk boot to fail", BOOT_TIMEOUT * 2, || {
            saw_ready |= healthy().is_some();
            (metric(&metrics(), "silk_host_vm_restarts_total") >= Some(3)).then_some(())
        });
        saw_ready
    })
    .await
    .unwrap();
    eprintln!(
        "changed model disk: boot failed by itself in {:.1}s",
        t2.elapsed().as_secs_f64()
    );
    assert!(
        !saw_ready,
        "a guest with a changed model disk reported ready"
    );
    let log = console.text();
    assert!(
        log.contains("verity") && log.contains("corrupted"),
        "the guest's console names the dm-verity failure:\n{log}"
    );
    assert!(
        session.attest().await.is_err() || ask(&session, 4).await.is_err(),
        "nothing answers from a changed model"
    );

    stop.send(true).unwrap();
    host.await.unwrap().unwrap();
}
