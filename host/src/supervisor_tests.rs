//! Supervision with `sh` standing in for QEMU.

use super::*;

fn sup(script: &str, metrics: Arc<Metrics>) -> Supervisor {
    Supervisor {
        program: "sh".into(),
        args: vec!["-c".into(), script.into()],
        backoff: Backoff::new(
            Duration::from_millis(10),
            Duration::from_millis(40),
            Duration::from_secs(60),
        ),
        stop_grace: Duration::from_secs(5),
        metrics,
    }
}

async fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn backoff_doubles_caps_and_resets() {
    let mut b = Backoff::new(
        Duration::from_secs(1),
        Duration::from_secs(5),
        Duration::from_secs(30),
    );
    let short = Duration::from_secs(2);
    let delays: Vec<u64> = (0..5).map(|_| b.next_delay(short).as_secs()).collect();
    assert_eq!(delays, [1, 2, 4, 5, 5]);
    assert_eq!(b.next_delay(Duration::from_secs(31)).as_secs(), 1);
    assert_eq!(b.next_delay(short).as_secs(), 2);
}

#[test]
fn health_lines_and_console_cleaning() {
    assert_eq!(health("silk-health: ready 0.0.0.0:8443"), Some(true));
    assert_eq!(health("  silk-health: down enclave exited 1"), Some(false));
    assert_eq!(health("something silk-health: ready"), None);
    assert_eq!(clean(b"\x1b[2J\x1b[01;01Hhello\r"), "hello");
    assert_eq!(clean(b"a\x07b\tc"), "ab\tc");
    assert_eq!(clean(&[0xff, b'x']), "\u{fffd}x");
}

#[tokio::test]
async fn restarts_a_dying_vm_and_tracks_health() {
    let m = Arc::new(Metrics::default());
    let (tx, rx) = watch::channel(false);
    let task =
        tokio::spawn(sup("echo 'silk-health: ready'; sleep 0.05; exit 3", m.clone()).run(rx));
    wait_until("three restarts", || m.vm_restarts.get() >= 3).await;
    assert!(m.console_lines.get() >= 3);
    tx.send(true).unwrap();
    task.await.unwrap().unwrap();
    assert_eq!(m.vm_up.get(), 0);
    assert_eq!(m.guest_ready.get(), 0);
    assert_eq!(m.vm_starts.get(), m.vm_restarts.get() + 1);
}

#[tokio::test]
async fn stops_cleanly_with_sigterm() {
    let m = Arc::new(Metrics::default());
    let (tx, rx) = watch::channel(false);
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("terminated");
    let script = format!(
        "trap 'echo term > {}; exit 0' TERM; echo 'silk-health: ready'; while :; do sleep 0.05; done",
        marker.display()
    );
    let task = tokio::spawn(sup(&script, m.clone()).run(rx));
    wait_until("guest ready", || m.healthy()).await;
    assert_ne!(m.vm_pid.get(), 0);
    let t = Instant::now();
    tx.send(true).unwrap();
    task.await.unwrap().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "took {:?}",
        t.elapsed()
    );
    assert!(marker.exists(), "the child saw SIGTERM");
    assert_eq!(m.vm_restarts.get(), 0);
    assert!(!m.healthy());
}

#[tokio::test]
async fn kills_a_child_that_ignores_sigterm() {
    let m = Arc::new(Metrics::default());
    let (tx, rx) = watch::channel(false);
    let mut s = sup(
        "trap '' TERM; echo 'silk-health: ready'; while :; do sleep 0.05; done",
        m.clone(),
    );
    s.stop_grace = Duration::from_millis(200);
    let task = tokio::spawn(s.run(rx));
    wait_until("guest ready", || m.healthy()).await;
    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stopped after the grace period")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_missing_program_is_an_error_not_a_restart_loop() {
    let m = Arc::new(Metrics::default());
    let (_tx, rx) = watch::channel(false);
    let mut s = sup("", m.clone());
    s.program = "/nonexistent/qemu-system-x86_64".into();
    let err = s.run(rx).await.unwrap_err();
    assert!(err.to_string().contains("/nonexistent/qemu-system-x86_64"));
    assert_eq!(m.vm_starts.get(), 0);
}
