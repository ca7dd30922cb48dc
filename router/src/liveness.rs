//! Liveness: every half heartbeat, unlist workers that missed two heartbeats and
//! health-check the rest over their pooled connections. A failed check unlists the worker
//! until it registers again (a check that only timed out while the worker has requests in
//! flight through this router does not: it is busy, not gone); a passing one refreshes
//! its queue length.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::pool::FetchError;
use crate::registry::Reason;
use crate::server::{probe, AppState};

/// Health checks in flight at once.
pub const CHECKS_AT_ONCE: usize = 64;

/// The period of the liveness pass for a heartbeat.
pub fn period(heartbeat: Duration) -> Duration {
    (heartbeat / 2).max(Duration::from_millis(100))
}

/// Runs the liveness passes until the task is dropped.
pub async fn run(s: Arc<AppState>, heartbeat: Duration) {
    let mut tick = tokio::time::interval(period(heartbeat));
    // A slow pass delays the next rather than queueing a burst of them.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        pass(&s).await;
    }
}

/// One pass: expiry, then health checks (at most [`CHECKS_AT_ONCE`] at a time).
pub async fn pass(s: &Arc<AppState>) {
    for w in s.registry.expire(Instant::now()) {
        s.unlisted(
            &w,
            Reason::MissedHeartbeats,
            "no registration within two heartbeats",
        );
    }
    let limit = Arc::new(Semaphore::new(CHECKS_AT_ONCE));
    let mut checks = JoinSet::new();
    for (worker, _) in s.registry.workers(None, Instant::now()) {
        let (s, limit) = (s.clone(), limit.clone());
        checks.spawn(async move {
            let Ok(_permit) = limit.acquire().await else {
                return;
            };
            match probe(&s, &worker.conn).await {
                Ok(waiting) => worker.load.set_queue(waiting),
                // A worker answering requests through this router is alive: a slow health
                // answer means it is busy, and unlisting it would turn load into failures.
                // A dead one fails its in-flight answers and its next forward instead.
                Err(FetchError::Timeout(after)) if worker.load.in_flight() > 0 => {
                    tracing::debug!(
                        worker = worker.listing.short_id(),
                        "health check slow ({after:?}) while serving; kept listed"
                    );
                }
                Err(e) => s.unlist(&worker, Reason::HealthCheck, &e.to_string()),
            }
        });
    }
    while checks.join_next().await.is_some() {}
}
