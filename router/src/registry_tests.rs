use super::*;
use silk_protocol::bundle::Bytes;
use silk_protocol::PlatformEvidence;

fn limits() -> Limits {
    Limits {
        max_workers: 3,
        max_challenges: 2,
        worker_concurrency: 2,
        heartbeat: Duration::from_secs(10),
    }
}

fn listing(n: u8, model: &str) -> Listing {
    let id_bytes = [n; 32];
    Listing {
        id: hex::encode(id_bytes),
        id_bytes,
        model: model.into(),
        bundle: EvidenceBundle {
            version: 1,
            platform: PlatformEvidence::Tdx {
                quote: Bytes(vec![]),
                collateral: None,
                event_log: None,
            },
            claims: Bytes(vec![n]),
            gpus: vec![],
        },
        offer: SignedOffer {
            body: Bytes(vec![n]),
            signature: Bytes(vec![]),
        },
        claims: Claims {
            hpke_public_key: [n; 32],
            tls_spki_sha256: [n; 32],
            image_digest: [0; 32],
            model: "sha256:00".into(),
            gpu_nonce: vec![],
            challenge: vec![],
            created_at: 0,
            software_version: "test".into(),
            receipt_public_key: [0; 32],
            payout_address: String::new(),
            evidence_provider: "simulated".into(),
            gpu_policy_sha256: Vec::new(),
        },
        address: format!("127.0.0.1:{}", 1000 + u16::from(n)),
    }
}

fn registry() -> Registry<()> {
    Registry::new(limits())
}

#[test]
fn challenges_are_single_use_expire_and_are_bounded() {
    let r = registry();
    let t0 = Instant::now();
    r.issue_challenge([1; 32], t0).unwrap();
    r.issue_challenge([2; 32], t0).unwrap();
    // Full: both are still valid.
    assert_eq!(r.issue_challenge([3; 32], t0), Err(ChallengeError::Full(2)));
    assert_eq!(r.consume_challenge(&[1; 32], t0), Ok(()));
    // Single use.
    assert_eq!(
        r.consume_challenge(&[1; 32], t0),
        Err(ChallengeError::Unknown)
    );
    // Never issued, or the wrong length.
    assert_eq!(
        r.consume_challenge(&[9; 32], t0),
        Err(ChallengeError::Unknown)
    );
    assert_eq!(
        r.consume_challenge(&[2; 3], t0),
        Err(ChallengeError::Unknown)
    );
    // Expired.
    let late = t0 + CHALLENGE_TTL + Duration::from_secs(1);
    assert_eq!(
        r.consume_challenge(&[2; 32], late),
        Err(ChallengeError::Expired)
    );
    // At the bound, expired challenges are purged to make room.
    r.issue_challenge([4; 32], t0).unwrap();
    r.issue_challenge([5; 32], t0).unwrap();
    assert!(r.issue_challenge([6; 32], t0).is_err());
    r.issue_challenge([6; 32], late).unwrap();
    assert_eq!(r.challenges(), 1);
}

#[test]
fn listing_is_least_loaded_first_and_filters_by_model() {
    let r = registry();
    let t0 = Instant::now();
    let a = r.list(listing(1, "m"), Arc::new(()), t0).unwrap();
    let b = r.list(listing(2, "m"), Arc::new(()), t0).unwrap();
    let _c = r.list(listing(3, "other"), Arc::new(()), t0).unwrap();
    // Ties are broken by id.
    let ids = |v: Vec<(Arc<Worker<()>>, Load)>| {
        v.iter()
            .map(|(w, _)| w.listing.id_bytes[0])
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(r.workers(Some("m"), t0)), vec![1, 2]);
    // One in flight on a: b is less loaded.
    let _slot = a.load.try_begin().unwrap();
    assert_eq!(ids(r.workers(Some("m"), t0)), vec![2, 1]);
    // b's own queue of 3 outweighs a's one request.
    b.load.set_queue(3);
    let listed = r.workers(Some("m"), t0);
    assert_eq!(ids(listed), vec![1, 2]);
    let listed = r.workers(Some("m"), t0);
    assert_eq!(listed[1].1.queue, 3);
    assert_eq!(listed[0].1.in_flight, 1);
    assert_eq!(listed[0].1.limit, 2);
    assert_eq!(r.workers(None, t0).len(), 3);
    assert!(r.workers(Some("none"), t0).is_empty());
}

#[test]
fn workers_expire_after_two_missed_heartbeats() {
    let r = registry();
    let t0 = Instant::now();
    r.list(listing(1, "m"), Arc::new(()), t0).unwrap();
    r.list(listing(2, "m"), Arc::new(()), t0 + Duration::from_secs(15))
        .unwrap();
    assert!(r.expire(t0 + Duration::from_secs(20)).is_empty());
    let gone = r.expire(t0 + Duration::from_secs(21));
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].listing.id_bytes[0], 1);
    assert!(matches!(
        r.lookup(&listing(1, "m").id),
        Lookup::Unlisted(Reason::MissedHeartbeats)
    ));
    assert!(matches!(r.lookup(&listing(2, "m").id), Lookup::Listed(_)));
    assert!(matches!(r.lookup(&listing(9, "m").id), Lookup::Unknown));
    // Remembered for a while, then forgotten.
    r.expire(t0 + REMEMBER_UNLISTED + Duration::from_secs(22));
    assert!(matches!(r.lookup(&listing(1, "m").id), Lookup::Unknown));
}

#[test]
fn re_registration_replaces_the_entry_and_keeps_its_load() {
    let r = registry();
    let t0 = Instant::now();
    let first = r.list(listing(1, "m"), Arc::new(()), t0).unwrap();
    let slot = first.load.try_begin().unwrap();
    let mut moved = listing(1, "m");
    moved.address = "10.0.0.1:9".into();
    let t1 = t0 + Duration::from_secs(15);
    let second = r.list(moved, Arc::new(()), t1).unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(second.listing.address, "10.0.0.1:9");
    assert_eq!(second.load.in_flight(), 1, "the load carries over");
    drop(slot);
    assert_eq!(second.load.in_flight(), 0);
    // Refreshed: not expired at t0 + 21.
    assert!(r.expire(t0 + Duration::from_secs(21)).is_empty());
    // A check that raced the re-registration does not unlist the new entry.
    assert!(r
        .unlist(&second.listing.id, Some(&first), Reason::HealthCheck, t1)
        .is_none());
    assert!(r
        .unlist(&second.listing.id, Some(&second), Reason::HealthCheck, t1)
        .is_some());
    assert!(matches!(
        r.lookup(&second.listing.id),
        Lookup::Unlisted(Reason::HealthCheck)
    ));
    // Listing it again clears the memory of the unlisting.
    r.list(listing(1, "m"), Arc::new(()), t1).unwrap();
    assert!(matches!(r.lookup(&second.listing.id), Lookup::Listed(_)));
}

#[test]
fn concurrency_limit_is_counted_and_returned_on_drop() {
    let r = registry();
    let t0 = Instant::now();
    let w = r.list(listing(1, "m"), Arc::new(()), t0).unwrap();
    let a = w.load.try_begin().expect("first slot");
    let b = w.load.try_begin().expect("second slot");
    assert!(w.load.try_begin().is_none(), "limit is 2");
    assert_eq!(w.load.in_flight(), 2);
    drop(a);
    assert_eq!(w.load.in_flight(), 1);
    let c = w.load.try_begin().expect("a slot came back");
    // A forward that is dropped mid-way (its future or body dropped) gives the slot back.
    let fut = async move {
        let _held = c;
        std::future::pending::<()>().await;
    };
    drop(fut);
    drop(b);
    assert_eq!(w.load.in_flight(), 0);
}

#[test]
fn max_workers_refuses_new_ids_but_not_re_registration() {
    let r = registry();
    let t0 = Instant::now();
    for n in 1..=3 {
        r.list(listing(n, "m"), Arc::new(()), t0).unwrap();
    }
    assert!(!r.has_room_for(&listing(4, "m").id));
    assert!(r.has_room_for(&listing(1, "m").id));
    assert_eq!(
        r.list(listing(4, "m"), Arc::new(()), t0).err(),
        Some(Full(3))
    );
    assert!(r.list(listing(2, "m"), Arc::new(()), t0).is_ok());
    r.unlist(&listing(3, "m").id, None, Reason::ForwardFailed, t0);
    assert!(r.list(listing(4, "m"), Arc::new(()), t0).is_ok());
}

#[test]
fn tokens_per_second_cover_the_last_minute() {
    let t0 = Instant::now();
    let l = LoadState::new(4, t0);
    l.record_tokens(t0, 60);
    l.record_tokens(t0 + Duration::from_millis(500), 60);
    l.record_tokens(t0 + Duration::from_secs(30), 120);
    assert!((l.tokens_per_s(t0 + Duration::from_secs(30)) - 4.0).abs() < 1e-9);
    // The first second's tokens leave the window at 60 s.
    assert!((l.tokens_per_s(t0 + Duration::from_secs(60)) - 2.0).abs() < 1e-9);
    assert_eq!(l.tokens_per_s(t0 + Duration::from_secs(200)), 0.0);
    // The window holds at most a minute of buckets.
    for s in 0..500 {
        l.record_tokens(t0 + Duration::from_secs(s), 1);
    }
    assert!(lock(&l.tokens).len() <= TOKEN_WINDOW_SECS as usize);
}
