//! The registry: challenges, listed workers, their load, expiry and the least-loaded order.
//!
//! Pure logic over a clock the caller passes in (`now`), so that it is tested without
//! sockets or sleeps. Everything is bounded: challenges by `max_challenges`, workers by
//! `max_workers`, the memory of unlisted workers by `max_workers`, each worker's token
//! window by its 60 one-second buckets. The registry vouches for nothing it lists: clients
//! verify every entry themselves; admission only keeps junk out.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use silk_protocol::network::Load;
use silk_protocol::receipt::SignedOffer;
use silk_protocol::{Claims, EvidenceBundle};

/// How long a challenge stays valid.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(60);
/// The window tokens per second are averaged over.
pub const TOKEN_WINDOW_SECS: u64 = 60;
/// How long an unlisted worker is remembered (so that its clients hear 503, not 404).
pub const REMEMBER_UNLISTED: Duration = Duration::from_secs(600);

/// The registry's bounds.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Most workers listed at once.
    pub max_workers: usize,
    /// Most challenges outstanding at once.
    pub max_challenges: usize,
    /// Requests in flight to one worker, through this router.
    pub worker_concurrency: u64,
    /// Workers re-register this often; two missed heartbeats unlist them.
    pub heartbeat: Duration,
}

/// Why a worker was taken off the list (a metric label and a log word).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// It did not re-register within two heartbeats.
    MissedHeartbeats,
    /// Its `/healthz` failed or did not answer 200.
    HealthCheck,
    /// A forwarded request could not connect to it.
    ForwardFailed,
}

impl Reason {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MissedHeartbeats => "missed_heartbeats",
            Reason::HealthCheck => "health_check",
            Reason::ForwardFailed => "forward_failed",
        }
    }
}

/// Why a challenge was not issued or not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    /// Too many challenges are outstanding, even after purging the expired ones.
    #[error("{0} challenges are outstanding, the most this router holds; retry later")]
    Full(usize),
    /// Never issued, or already used (challenges are single-use).
    #[error("the challenge is unknown or was already used; get a new one")]
    Unknown,
    /// Issued, but too long ago.
    #[error("the challenge expired; get a new one")]
    Expired,
}

/// Everything a successful registration lists (the router vouches for none of it).
#[derive(Clone, Debug)]
pub struct Listing {
    /// Hex SHA-256 of the base claims.
    pub id: String,
    /// The same, as bytes.
    pub id_bytes: [u8; 32],
    /// The served model's name.
    pub model: String,
    /// Evidence over the base claims.
    pub bundle: EvidenceBundle,
    /// The signed offer.
    pub offer: SignedOffer,
    /// The base claims (their receipt key checks receipts).
    pub claims: Claims,
    /// `host:port` of the worker's RA-TLS listener.
    pub address: String,
}

impl Listing {
    /// The first 16 hex digits of the id: enough to tell workers apart in logs and
    /// metric labels.
    pub fn short_id(&self) -> &str {
        self.id.get(..16).unwrap_or(&self.id)
    }
}

/// A worker's load as this router sees it; shared across re-registrations of one id, so
/// that requests in flight stay counted when the entry is refreshed.
#[derive(Debug)]
pub struct LoadState {
    in_flight: AtomicU64,
    queue: AtomicU64,
    limit: u64,
    epoch: Instant,
    /// Completion tokens by whole second since `epoch`, oldest first, at most the window.
    tokens: Mutex<VecDeque<(u64, u64)>>,
}

impl LoadState {
    /// Load state with this concurrency limit, measured from `now`.
    pub fn new(limit: u64, now: Instant) -> Self {
        Self {
            in_flight: AtomicU64::new(0),
            queue: AtomicU64::new(0),
            limit: limit.max(1),
            epoch: now,
            tokens: Mutex::new(VecDeque::new()),
        }
    }

    /// Takes one of the worker's request slots, or `None` at its limit. The slot is
    /// given back when the returned guard drops, however the request ends.
    pub fn try_begin(self: &Arc<Self>) -> Option<Slot> {
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(self.clone()))
    }

    /// Whether every slot is taken now (a hint: [`LoadState::try_begin`] decides).
    pub fn is_full(&self) -> bool {
        self.in_flight() >= self.limit
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Records the worker's own queue length (from its health report).
    pub fn set_queue(&self, waiting: u64) {
        self.queue.store(waiting, Ordering::Release);
    }

    /// Adds a receipt's completion tokens at `now`.
    pub fn record_tokens(&self, now: Instant, tokens: u64) {
        let sec = now.saturating_duration_since(self.epoch).as_secs();
        let mut w = lock(&self.tokens);
        match w.back_mut() {
            Some((s, n)) if *s == sec => *n = n.saturating_add(tokens),
            _ => w.push_back((sec, tokens)),
        }
        while w.front().is_some_and(|(s, _)| s + TOKEN_WINDOW_SECS <= sec) {
            w.pop_front();
        }
    }

    /// Completion tokens per second over the last minute before `now`.
    pub fn tokens_per_s(&self, now: Instant) -> f64 {
        let sec = now.saturating_duration_since(self.epoch).as_secs();
        let total: u64 = lock(&self.tokens)
            .iter()
            .filter(|(s, _)| s + TOKEN_WINDOW_SECS > sec)
            .map(|(_, n)| n)
            .sum();
        total as f64 / TOKEN_WINDOW_SECS as f64
    }

    /// The load figures a listing reports.
    pub fn load(&self, now: Instant) -> Load {
        Load {
            in_flight: self.in_flight(),
            queue: self.queue.load(Ordering::Acquire),
            tokens_per_s: self.tokens_per_s(now),
            limit: self.limit,
        }
    }
}

/// One request slot of a worker; dropping it gives the slot back.
#[derive(Debug)]
pub struct Slot(Arc<LoadState>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A listed worker: what it registered, its load, and `C`, the router's way of reaching
/// it (its connection pool; `()` in tests).
#[derive(Debug)]
pub struct Worker<C> {
    /// What it registered.
    pub listing: Listing,
    /// Its load.
    pub load: Arc<LoadState>,
    /// How to reach it.
    pub conn: Arc<C>,
}

/// What the registry knows of an id.
#[derive(Debug)]
pub enum Lookup<C> {
    /// Listed now.
    Listed(Arc<Worker<C>>),
    /// Listed until recently, taken off for this reason.
    Unlisted(Reason),
    /// Never seen, or forgotten.
    Unknown,
}

/// Why a registration was not listed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0} workers are listed, the most this router holds")]
pub struct Full(pub usize);

struct Entry<C> {
    worker: Arc<Worker<C>>,
    registered_at: Instant,
}

struct Inner<C> {
    /// Challenge → when it expires.
    challenges: HashMap<[u8; 32], Instant>,
    workers: HashMap<String, Entry<C>>,
    /// Unlisted id → why and when.
    unlisted: HashMap<String, (Reason, Instant)>,
}

/// Challenges and workers.
pub struct Registry<C> {
    limits: Limits,
    inner: Mutex<Inner<C>>,
}

/// A poisoned lock only means another thread panicked mid-update of plain data; the
/// data is still usable, and refusing all service over it would be worse.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<C> Registry<C> {
    /// An empty registry.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            inner: Mutex::new(Inner {
                challenges: HashMap::new(),
                workers: HashMap::new(),
                unlisted: HashMap::new(),
            }),
        }
    }

    /// The bounds.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Records `nonce` (random bytes from the caller) as a challenge valid from `now`.
    pub fn issue_challenge(&self, nonce: [u8; 32], now: Instant) -> Result<(), ChallengeError> {
        let mut g = lock(&self.inner);
        if g.challenges.len() >= self.limits.max_challenges {
            g.challenges.retain(|_, expires| *expires > now);
        }
        if g.challenges.len() >= self.limits.max_challenges {
            return Err(ChallengeError::Full(g.challenges.len()));
        }
        g.challenges.insert(nonce, now + CHALLENGE_TTL);
        Ok(())
    }

    /// Uses up a challenge: accepted once, within its lifetime.
    pub fn consume_challenge(&self, nonce: &[u8], now: Instant) -> Result<(), ChallengeError> {
        let key: [u8; 32] = nonce.try_into().map_err(|_| ChallengeError::Unknown)?;
        let expires = lock(&self.inner)
            .challenges
            .remove(&key)
            .ok_or(ChallengeError::Unknown)?;
        if expires <= now {
            return Err(ChallengeError::Expired);
        }
        Ok(())
    }

    /// Challenges outstanding (expired ones included until purged).
    pub fn challenges(&self) -> usize {
        lock(&self.inner).challenges.len()
    }

    /// What the registry knows of `id`.
    pub fn lookup(&self, id: &str) -> Lookup<C> {
        let g = lock(&self.inner);
        if let Some(e) = g.workers.get(id) {
            return Lookup::Listed(e.worker.clone());
        }
        match g.unlisted.get(id) {
            Some((reason, _)) => Lookup::Unlisted(*reason),
            None => Lookup::Unknown,
        }
    }

    /// Whether a registration for `id` could be listed now (it is listed already, or
    /// there is room): checked before the costly connection to the worker.
    pub fn has_room_for(&self, id: &str) -> bool {
        let g = lock(&self.inner);
        g.workers.contains_key(id) || g.workers.len() < self.limits.max_workers
    }

    /// Lists a worker, replacing the entry of the same id (a re-registration refreshes it
    /// and keeps its load). At the bound a new id is refused.
    pub fn list(
        &self,
        listing: Listing,
        conn: Arc<C>,
        now: Instant,
    ) -> Result<Arc<Worker<C>>, Full> {
        let mut g = lock(&self.inner);
        let load = match g.workers.get(&listing.id) {
            Some(e) => e.worker.load.clone(),
            None if g.workers.len() >= self.limits.max_workers => {
                return Err(Full(g.workers.len()))
            }
            None => Arc::new(LoadState::new(self.limits.worker_concurrency, now)),
        };
        g.unlisted.remove(&listing.id);
        let id = listing.id.clone();
        let worker = Arc::new(Worker {
            listing,
            load,
            conn,
        });
        g.workers.insert(
            id,
            Entry {
                worker: worker.clone(),
                registered_at: now,
            },
        );
        Ok(worker)
    }

    /// Takes `id` off the list for `reason`; returns the worker if it was listed. Only
    /// the entry that is `worker` is taken off when given, so that a check that raced a
    /// re-registration does not unlist the fresh entry.
    pub fn unlist(
        &self,
        id: &str,
        worker: Option<&Arc<Worker<C>>>,
        reason: Reason,
        now: Instant,
    ) -> Option<Arc<Worker<C>>> {
        let mut g = lock(&self.inner);
        let current = g.workers.get(id)?;
        if worker.is_some_and(|w| !Arc::ptr_eq(w, &current.worker)) {
            return None;
        }
        let removed = g.workers.remove(id)?;
        remember(&mut g, id, reason, now, self.limits.max_workers);
        Some(removed.worker)
    }

    /// Unlists every worker whose last registration is older than two heartbeats.
    pub fn expire(&self, now: Instant) -> Vec<Arc<Worker<C>>> {
        let max_age = self.limits.heartbeat * 2;
        let mut g = lock(&self.inner);
        let stale: Vec<String> = g
            .workers
            .iter()
            .filter(|(_, e)| now.saturating_duration_since(e.registered_at) > max_age)
            .map(|(id, _)| id.clone())
            .collect();
        let mut out = Vec::with_capacity(stale.len());
        for id in stale {
            if let Some(e) = g.workers.remove(&id) {
                remember(
                    &mut g,
                    &id,
                    Reason::MissedHeartbeats,
                    now,
                    self.limits.max_workers,
                );
                out.push(e.worker);
            }
        }
        g.unlisted
            .retain(|_, (_, at)| now.saturating_duration_since(*at) < REMEMBER_UNLISTED);
        out
    }

    /// Listed workers serving `model` (all when `None`), least loaded first: by
    /// (in flight + queue) / limit, then by tokens per second, then by id.
    pub fn workers(&self, model: Option<&str>, now: Instant) -> Vec<(Arc<Worker<C>>, Load)> {
        let mut out: Vec<_> = lock(&self.inner)
            .workers
            .values()
            .filter(|e| model.is_none_or(|m| e.worker.listing.model == m))
            .map(|e| (e.worker.clone(), e.worker.load.load(now)))
            .collect();
        let score = |l: &Load| (l.in_flight + l.queue) as f64 / l.limit.max(1) as f64;
        out.sort_by(|(wa, a), (wb, b)| {
            score(a)
                .total_cmp(&score(b))
                .then(a.tokens_per_s.total_cmp(&b.tokens_per_s))
                .then_with(|| wa.listing.id.cmp(&wb.listing.id))
        });
        out
    }

    /// Workers listed now.
    pub fn len(&self) -> usize {
        lock(&self.inner).workers.len()
    }

    /// Whether no worker is listed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Remembers an unlisted id, forgetting the oldest when the memory is full.
fn remember<C>(g: &mut Inner<C>, id: &str, reason: Reason, now: Instant, max: usize) {
    if g.unlisted.len() >= max.max(1) && !g.unlisted.contains_key(id) {
        let oldest = g
            .unlisted
            .iter()
            .min_by_key(|(_, (_, at))| *at)
            .map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            g.unlisted.remove(&k);
        }
    }
    g.unlisted.insert(id.to_owned(), (reason, now));
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
