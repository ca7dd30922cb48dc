//! One item fetched with retries: the rules a polite client of KDS and PCS follows, each
//! bounded so that a hostile or broken service makes the enclave give up, never wait
//! without end.

use std::time::{Duration, SystemTime};

use silk_net::fetch::{self, FetchError, FetchLimits, Fetched};

/// Bounds and retries for collateral requests.
#[derive(Clone, Copy, Debug)]
pub struct FetchPolicy {
    /// Each request's connect, exchange and size limits.
    pub limits: FetchLimits,
    /// Requests per item, the first included.
    pub attempts: u32,
    /// The longest Retry-After honoured; a service asking for longer is given up on.
    pub max_retry_wait: Duration,
    /// The first backoff after a failure without Retry-After; doubled each time.
    pub backoff: Duration,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        Self {
            limits: FetchLimits {
                connect: Duration::from_secs(10),
                exchange: Duration::from_secs(30),
                // The largest PCS answer (a PCK CRL) is tens of kilobytes.
                max_body: 1 << 20,
            },
            attempts: 3,
            max_retry_wait: Duration::from_secs(30),
            backoff: Duration::from_secs(1),
        }
    }
}

/// Why an item could not be fetched, naming it, its URL and the rule that ended it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchFailure {
    /// The service does not have it (404): final.
    #[error("{what}: {url} answered 404 Not Found")]
    NotFound {
        /// The item, e.g. `TCB info`.
        what: &'static str,
        /// Its URL.
        url: String,
    },
    /// Another status that is not worth retrying.
    #[error("{what}: {url} answered HTTP {status}")]
    Status {
        /// The item.
        what: &'static str,
        /// Its URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The service asked to come back later than the policy waits.
    #[error(
        "{what}: {url} answered {status} with Retry-After {asked:?}, longer than the \
         {limit:?} the fetcher waits"
    )]
    RetryTooLate {
        /// The item.
        what: &'static str,
        /// Its URL.
        url: String,
        /// 429 or 503.
        status: u16,
        /// What the service asked for.
        asked: Duration,
        /// [`FetchPolicy::max_retry_wait`].
        limit: Duration,
    },
    /// Every attempt failed; the last failure is given.
    #[error("{what}: {url}: gave up after {attempts} attempts; the last: {last}")]
    GaveUp {
        /// The item.
        what: &'static str,
        /// Its URL.
        url: String,
        /// How many were made.
        attempts: u32,
        /// The last attempt's failure.
        last: String,
    },
    /// A failure no retry can mend (a bad URL, an answer over the size limit).
    #[error("{what}: {source}")]
    Fetch {
        /// The item.
        what: &'static str,
        /// What went wrong.
        source: FetchError,
    },
}

/// GETs `url`, retrying as [`FetchPolicy`] says; returns only a 200 answer.
pub async fn get(
    policy: &FetchPolicy,
    what: &'static str,
    url: &str,
) -> Result<Fetched, FetchFailure> {
    let attempts = policy.attempts.max(1);
    let mut backoff = policy.backoff;
    let mut last = String::new();
    for attempt in 1..=attempts {
        let wait = match fetch::get(url, &policy.limits).await {
            Ok(got) if got.status == 200 => return Ok(got),
            Ok(got) if got.status == 404 => {
                return Err(FetchFailure::NotFound {
                    what,
                    url: url.to_owned(),
                })
            }
            Ok(got) if matches!(got.status, 429 | 503) => {
                last = format!("HTTP {}", got.status);
                match got.header("retry-after").and_then(retry_after) {
                    Some(asked) if asked > policy.max_retry_wait => {
                        return Err(FetchFailure::RetryTooLate {
                            what,
                            url: url.to_owned(),
                            status: got.status,
                            asked,
                            limit: policy.max_retry_wait,
                        })
                    }
                    Some(asked) => asked,
                    None => backoff,
                }
            }
            Ok(got) if got.status >= 500 => {
                last = format!("HTTP {}", got.status);
                backoff
            }
            Ok(got) => {
                return Err(FetchFailure::Status {
                    what,
                    url: url.to_owned(),
                    status: got.status,
                })
            }
            Err(e @ (FetchError::Url { .. } | FetchError::TooLarge { .. })) => {
                return Err(FetchFailure::Fetch { what, source: e })
            }
            Err(e) => {
                last = e.to_string();
                backoff
            }
        };
        if attempt < attempts {
            tracing::info!(
                what,
                url,
                attempt,
                "fetch failed ({last}); retrying in {wait:?}"
            );
            tokio::time::sleep(wait).await;
            backoff = backoff.saturating_mul(2).min(policy.max_retry_wait);
        }
    }
    Err(FetchFailure::GaveUp {
        what,
        url: url.to_owned(),
        attempts,
        last,
    })
}

/// Retry-After as delta-seconds or an HTTP-date (RFC 9110 §10.2.3); a date in the past
/// means now. `None` when it is neither.
fn retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3600));
        let d = retry_after(&later).expect("date");
        assert!(
            d > Duration::from_secs(3500) && d <= Duration::from_secs(3600),
            "{d:?}"
        );
        assert_eq!(retry_after("soon"), None);
        assert_eq!(retry_after("-5"), None);
    }
}
