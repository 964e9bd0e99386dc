//! Client configuration: where the store is, how to sign, how hard to push.

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use egress::{BodyLimit, Policy};

use crate::oauth::{AccessCredentials, SignatureForm, SignatureMethod};

/// The largest answer read from a store: a page of products is the biggest Magento sends
/// (300 products with long descriptions stay well below it).
pub const ANSWER_LIMIT: BodyLimit = BodyLimit::new("Magento answer", 32 * 1024 * 1024);

/// Everything a [`MagentoClient`](super::MagentoClient) needs for one store.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The store base URL, e.g. `https://shop.example/` or
    /// `https://shop.example/index.php/` (a trailing slash is added).
    pub base_url: String,
    pub credentials: AccessCredentials,
    pub signature_method: SignatureMethod,
    /// The base-string rules the store verifies with, as far as known; a signature the store
    /// calls invalid is tried once with the other rules (see [`MagentoClient::signature_form`]).
    pub signature_form: SignatureForm,
    /// Requests per second to this store, retries included. Magento sends
    /// no rate-limit headers, so this is the operator's promise to the store.
    pub requests_per_second: NonZeroU32,
    /// Ceiling for concurrent requests; the adaptive limit stays below it.
    pub max_concurrency: NonZeroUsize,
    /// Per attempt: sending the request and reading the whole body.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub retry: RetryPolicy,
    pub concurrency: AdaptiveConcurrencyConfig,
    /// The scheme Magento sees when a TLS-terminating proxy in front of it
    /// does not forward `X-Forwarded-Proto` (usually `http`).
    pub signed_scheme: Option<String>,
    /// Pages fetched at once by the product pager (1 = strictly sequential).
    pub page_concurrency: NonZeroUsize,
    /// `searchCriteria[pageSize]` when the caller sets none.
    pub default_page_size: NonZeroU32,
    pub user_agent: String,
    /// Where requests may go (public addresses only unless ranges are allowed).
    pub egress: Policy,
}

impl ClientConfig {
    /// Conservative defaults: HMAC-SHA256, 5 requests/s, 4 concurrent
    /// requests, 60 s per attempt, pages of 100, public addresses only.
    pub fn new(base_url: impl Into<String>, credentials: AccessCredentials) -> Self {
        ClientConfig {
            base_url: base_url.into(),
            credentials,
            signature_method: SignatureMethod::HmacSha256,
            signature_form: SignatureForm::default(),
            requests_per_second: NonZeroU32::new(5).unwrap_or(NonZeroU32::MIN),
            max_concurrency: NonZeroUsize::new(4).unwrap_or(NonZeroUsize::MIN),
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            concurrency: AdaptiveConcurrencyConfig::default(),
            signed_scheme: None,
            page_concurrency: NonZeroUsize::MIN,
            default_page_size: NonZeroU32::new(100).unwrap_or(NonZeroU32::MIN),
            user_agent: concat!("catalogd-magento/", env!("CARGO_PKG_VERSION")).to_owned(),
            egress: Policy::public_only(),
        }
    }
}

/// How failed attempts are retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total, the first one included.
    pub max_attempts: u32,
    /// Backoff before the first retry; doubles each time, with jitter.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// A 429/503 `Retry-After` longer than this is not waited for; the
    /// error is returned instead.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(20),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }
}

/// AIMD tuning for the concurrency limit.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptiveConcurrencyConfig {
    /// Starting limit; `None` starts at the ceiling.
    pub initial: Option<usize>,
    /// Multiplier applied on overload (timeouts, 5xx, 429, rising latency).
    pub decrease_factor: f64,
    /// Latency counts as rising when the recent average exceeds the
    /// long-run average by this factor.
    pub latency_tolerance: f64,
    /// Decreases closer together than this count as one (a burst of
    /// failures from the same overload should halve once, not collapse).
    pub decrease_cooldown: Duration,
}

impl Default for AdaptiveConcurrencyConfig {
    fn default() -> Self {
        AdaptiveConcurrencyConfig {
            initial: None,
            decrease_factor: 0.7,
            latency_tolerance: 2.0,
            decrease_cooldown: Duration::from_millis(500),
        }
    }
}
