//! When to try a failed call again, and after how long.
//!
//! Retried: 5xx, timeouts and dropped connections (REFERENCE §8 — CDNs and
//! proxies produce most of these), 429 (honouring `Retry-After`), and
//! Magento's temporary database errors, which arrive as 400 (§2.4). Never
//! retried: 401 (the store needs re-authorisation, not persistence) and
//! every other 4xx.
//!
//! Calls that are not idempotent (creating an image, submitting a bulk) are
//! retried only when the store surely did not act on the first attempt: the
//! connection was never made, 429, 503 (maintenance/overload answers are
//! produced before any work), or a rolled-back database transaction.

use std::time::{Duration, SystemTime};

use rand::Rng as _;

use super::config::RetryPolicy;
use crate::error::MagentoError;

/// How a failed attempt ended, as far as retrying is concerned.
#[derive(Debug)]
pub(crate) struct Failure {
    pub error: MagentoError,
    /// The connection was never established: nothing reached the store.
    pub not_sent: bool,
}

impl Failure {
    pub(crate) fn new(error: MagentoError) -> Self {
        Failure {
            error,
            not_sent: false,
        }
    }
}

#[derive(Debug, PartialEq)]
pub(crate) enum Decision {
    RetryAfter(Duration),
    GiveUp,
}

/// `attempt` is the number of the attempt that just failed (1-based).
pub(crate) fn decide(
    policy: &RetryPolicy,
    failure: &Failure,
    attempt: u32,
    idempotent: bool,
) -> Decision {
    if attempt >= policy.max_attempts {
        return Decision::GiveUp;
    }
    let backoff = backoff(policy, attempt);
    let safe = idempotent || failure.not_sent;
    match &failure.error {
        MagentoError::RateLimited { retry_after, .. } => honour(policy, *retry_after, backoff),
        MagentoError::Server { status: 503, .. } => honour(policy, None, backoff),
        MagentoError::Server { .. } | MagentoError::Timeout(_) | MagentoError::Connection(_)
            if safe =>
        {
            Decision::RetryAfter(backoff)
        }
        error if error.is_temporary_database_error() => Decision::RetryAfter(backoff),
        _ => Decision::GiveUp,
    }
}

fn honour(policy: &RetryPolicy, retry_after: Option<Duration>, backoff: Duration) -> Decision {
    match retry_after {
        Some(wait) if wait > policy.max_retry_after => Decision::GiveUp,
        Some(wait) => Decision::RetryAfter(wait.max(Duration::from_millis(1))),
        None => Decision::RetryAfter(backoff),
    }
}

/// Exponential backoff with "equal jitter": half fixed, half random, so
/// retries spread out but still grow.
pub(crate) fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(30);
    let ceiling = policy
        .base_delay
        .saturating_mul(1u32 << exponent)
        .min(policy.max_delay);
    let half = ceiling / 2;
    let jitter_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(rand::rng().random_range(0..=jitter_nanos))
}

/// `Retry-After`: delta-seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(at.timestamp()).ok()?);
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::MagentoMessage;

    fn policy() -> RetryPolicy {
        RetryPolicy::default()
    }

    fn server(status: u16) -> Failure {
        Failure::new(MagentoError::Server {
            status,
            message: MagentoMessage::default(),
        })
    }

    #[test]
    fn server_errors_retry_only_when_safe() {
        assert!(matches!(
            decide(&policy(), &server(502), 1, true),
            Decision::RetryAfter(_)
        ));
        assert_eq!(decide(&policy(), &server(502), 1, false), Decision::GiveUp);
        assert!(matches!(
            decide(&policy(), &server(503), 1, false),
            Decision::RetryAfter(_)
        ));
        let not_sent = Failure {
            error: MagentoError::Connection("refused".to_owned()),
            not_sent: true,
        };
        assert!(matches!(
            decide(&policy(), &not_sent, 1, false),
            Decision::RetryAfter(_)
        ));
    }

    #[test]
    fn attempts_are_bounded() {
        assert_eq!(decide(&policy(), &server(500), 5, true), Decision::GiveUp);
        assert!(matches!(
            decide(&policy(), &server(500), 4, true),
            Decision::RetryAfter(_)
        ));
    }

    #[test]
    fn client_errors_are_final_except_database_hiccups() {
        let unauthorized = Failure::new(MagentoError::Unauthorized {
            message: MagentoMessage::default(),
        });
        assert_eq!(decide(&policy(), &unauthorized, 1, true), Decision::GiveUp);
        let invalid = Failure::new(MagentoError::Rejected {
            status: 400,
            message: MagentoMessage::plain("URL key for specified store already exists."),
        });
        assert_eq!(decide(&policy(), &invalid, 1, true), Decision::GiveUp);
        let deadlock = Failure::new(MagentoError::Rejected {
            status: 400,
            message: MagentoMessage::plain("Database deadlock found when trying to get lock"),
        });
        assert!(matches!(
            decide(&policy(), &deadlock, 1, false),
            Decision::RetryAfter(_)
        ));
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let limited = |seconds| {
            Failure::new(MagentoError::RateLimited {
                retry_after: Some(Duration::from_secs(seconds)),
                message: MagentoMessage::default(),
            })
        };
        assert_eq!(
            decide(&policy(), &limited(3), 1, false),
            Decision::RetryAfter(Duration::from_secs(3))
        );
        assert_eq!(decide(&policy(), &limited(3600), 1, true), Decision::GiveUp);
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let policy = policy();
        for attempt in 1..=12 {
            let ceiling = policy
                .base_delay
                .saturating_mul(1 << (attempt - 1))
                .min(policy.max_delay);
            let delay = backoff(&policy, attempt);
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "attempt {attempt}: {delay:?}"
            );
        }
    }

    #[test]
    fn parses_both_retry_after_forms() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
