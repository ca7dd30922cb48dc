//! Request bodies read within bounds: a size limit, a share of the global budget of bodies
//! held at once (reserved up front), and the body deadline of the connection layer (a
//! grace period, then a minimum rate). Refused bodies are drained, not held, so that an
//! honest client still writing reads the refusal rather than a reset.

use crate::conn::Limits;
use axum::body::Body;
use axum::http::{header, HeaderMap};
use http_body_util::BodyExt;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

/// Why a body was not read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Declared or found larger than allowed.
    #[error("body over {max} bytes")]
    TooLarge {
        /// The bound.
        max: usize,
    },
    /// Too many bytes of other requests' bodies are held: come back later.
    #[error("request bodies in flight fill the budget of {budget} bytes; retry later")]
    Budget {
        /// The budget.
        budget: usize,
    },
    /// The body came too slowly.
    #[error("{0}")]
    Timeout(String),
    /// The connection failed while the body was read.
    #[error("the body could not be read: {0}")]
    Read(String),
}

/// The length a request declares, when it declares one that parses.
pub fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
}

/// Reads a body of at most `max` bytes under `limits`, holding `budget` permits (one a
/// byte: the declared length, else `max`) until the returned permit drops.
pub async fn read_body<'a>(
    budget: &'a Semaphore,
    limits: &Limits,
    max: usize,
    declared: Option<usize>,
    mut body: Body,
) -> Result<(Vec<u8>, SemaphorePermit<'a>), BodyError> {
    let start = Instant::now();
    let reserve = declared.unwrap_or(max);
    if reserve > max {
        drain(&mut body, declared, max, limits, start).await;
        return Err(BodyError::TooLarge { max });
    }
    let Some(permit) = u32::try_from(reserve.max(1))
        .ok()
        .and_then(|n| budget.try_acquire_many(n).ok())
    else {
        drain(&mut body, declared, max, limits, start).await;
        return Err(BodyError::Budget {
            budget: limits.body_budget,
        });
    };
    let mut buf = Vec::with_capacity(reserve.min(64 << 10));
    loop {
        let deadline = limits.body_deadline(start, buf.len());
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => {
                return Err(BodyError::Timeout(format!(
                    "request body timeout after {:.1} s: {} of {} bytes arrived, below the \
                     minimum rate of {} bytes/s after {:?}",
                    start.elapsed().as_secs_f64(),
                    buf.len(),
                    declared.map_or("?".to_owned(), |d| d.to_string()),
                    limits.body_min_rate,
                    limits.body_grace
                )))
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(BodyError::Read(e.to_string())),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > reserve {
                return Err(BodyError::TooLarge { max });
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok((buf, permit))
}

/// Reads and discards a refused body (holding none of it), bounded by the body deadline
/// and by twice `max`; a larger declared body is not read at all.
pub async fn drain(
    body: &mut Body,
    declared: Option<usize>,
    max: usize,
    limits: &Limits,
    start: Instant,
) {
    if declared.is_some_and(|d| d > 2 * max) {
        return;
    }
    let mut seen = 0usize;
    while seen <= 2 * max {
        match tokio::time::timeout_at(limits.body_deadline(start, seen), body.frame()).await {
            Ok(Some(Ok(frame))) => seen += frame.data_ref().map_or(0, |d| d.len()),
            _ => return,
        }
    }
}
