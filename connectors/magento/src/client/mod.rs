//! The Magento REST client.
//!
//! Every call — product pages, single reads, writes, media, bulk — goes
//! through [`MagentoClient::send`]: adaptive concurrency slot → per-store
//! rate limit → fresh signature → timeout → error mapping → retry decision.
//! Endpoint groups live in their own modules (`products`, `media`, `stores`,
//! `catalog`, `bulk`) and only describe calls.

mod bulk;
mod by_sku;
mod call;
mod catalog;
mod concurrency;
mod config;
mod decode;
mod media;
mod paging;
mod products;
mod retry;
mod stores;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue, LOCATION, RETRY_AFTER};
use tracing::Instrument as _;
use url::Url;

pub use by_sku::{MAX_LIST_BYTES, MAX_SKUS_PER_LIST, SkuLists, sku_lists, travels_in_list};
pub use call::Call;
pub use config::{ANSWER_LIMIT, AdaptiveConcurrencyConfig, ClientConfig, RetryPolicy};

pub use paging::{PageStreamOptions, RawPage};

use self::concurrency::{AdaptiveLimiter, Signal};
use self::retry::{Decision, Failure};
use crate::error::{MagentoError, MagentoMessage};
use crate::oauth::{ProtocolValues, SignatureForm, Signer};

/// A client for one Magento store. Cheap to clone; clones share the rate
/// limit and the concurrency limit.
#[derive(Clone)]
pub struct MagentoClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: egress::HttpClient,
    base: Url,
    signer: Signer,
    /// The store verifies with the 2.4.7+ rules (else Laminas'): starts as configured, flips
    /// when a call signed the other way is accepted after an invalid-signature 401.
    magento247: AtomicBool,
    rate: DefaultDirectRateLimiter,
    concurrency: Arc<AdaptiveLimiter>,
    retry: RetryPolicy,
    timeout: Duration,
    page_concurrency: usize,
    default_page_size: NonZeroU32,
}

impl std::fmt::Debug for MagentoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MagentoClient")
            .field("base_url", &self.inner.base.as_str())
            .field("signature_method", &self.inner.signer.signature_method())
            .finish_non_exhaustive()
    }
}

impl MagentoClient {
    pub fn new(config: ClientConfig) -> Result<Self, MagentoError> {
        let base = normalise_base_url(&config.base_url)?;
        // The egress client follows no redirect: one would be re-sent to a URL the signature
        // does not cover (and lose the Authorization header across hosts), and could lead
        // where the egress policy refuses to go.
        let http = config
            .egress
            .client()
            .connect_timeout(config.connect_timeout)
            .user_agent(config.user_agent.clone())
            .build()
            .map_err(|error| MagentoError::InvalidConfig(format!("HTTP client: {error}")))?;
        // Burst 1: requests are spaced evenly, so no one-second window ever
        // holds more than `requests_per_second` of them.
        let quota = Quota::per_second(config.requests_per_second).allow_burst(NonZeroU32::MIN);
        let signer = Signer::for_access(&config.credentials, config.signature_method)
            .with_signed_scheme(config.signed_scheme.clone());
        Ok(MagentoClient {
            inner: Arc::new(Inner {
                http,
                base,
                magento247: AtomicBool::new(config.signature_form == SignatureForm::Magento247),
                signer,
                rate: RateLimiter::direct(quota),
                concurrency: AdaptiveLimiter::new(
                    config.max_concurrency.get(),
                    config.concurrency.clone(),
                ),
                retry: config.retry.clone(),
                timeout: config.timeout,
                page_concurrency: config.page_concurrency.get(),
                default_page_size: config.default_page_size,
            }),
        })
    }

    /// The store base URL, with a trailing slash.
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    /// The base-string rules the store accepts, as learned so far.
    pub fn signature_form(&self) -> SignatureForm {
        if self.inner.magento247.load(Ordering::Relaxed) {
            SignatureForm::Magento247
        } else {
            SignatureForm::Laminas
        }
    }

    /// The adaptive concurrency limit right now.
    pub fn concurrency_limit(&self) -> usize {
        self.inner.concurrency.limit()
    }

    /// The absolute URL a call goes to.
    pub fn url_for(&self, call: &Call) -> Result<Url, MagentoError> {
        let mut url = self.inner.base.join(&call.path()).map_err(|error| {
            MagentoError::InvalidRequest(format!("cannot build URL for {call}: {error}"))
        })?;
        if !call.query.is_empty() {
            url.set_query(Some(&call.query.encode()));
        }
        Ok(url)
    }

    /// The signed HTTP request for a call, as it would be sent now (fresh
    /// nonce and timestamp). The Authorization header is marked sensitive,
    /// so `Debug` output of the request does not show it.
    pub fn prepare(&self, call: &Call) -> Result<reqwest::Request, MagentoError> {
        self.prepare_in(self.signature_form(), call)
    }

    fn prepare_in(
        &self,
        form: SignatureForm,
        call: &Call,
    ) -> Result<reqwest::Request, MagentoError> {
        let url = self.url_for(call)?;
        let header = self.inner.signer.authorization_header_in(
            form,
            call.method.as_str(),
            &url,
            &ProtocolValues::fresh(),
        );
        let mut authorization = HeaderValue::from_str(&header).map_err(|_| {
            MagentoError::InvalidRequest("authorization header is not ASCII".to_owned())
        })?;
        authorization.set_sensitive(true);
        let mut builder = self
            .inner
            .http
            .request(call.method.clone(), url)
            .header(AUTHORIZATION, authorization)
            .header(ACCEPT, "application/json");
        if let Some(body) = &call.body {
            builder = builder.json(body);
        }
        builder
            .build()
            .map_err(|error| MagentoError::InvalidRequest(format!("cannot build {call}: {error}")))
    }

    /// Sends a call through the whole pipeline and returns the raw body.
    pub async fn send(&self, call: &Call) -> Result<Bytes, MagentoError> {
        let span = tracing::info_span!(
            "magento_call",
            method = %call.method,
            store = %call.scope,
            path = %call.path(),
        );
        async {
            let mut attempt = 0;
            let mut form = self.signature_form();
            let mut other_form_tried = false;
            loop {
                attempt += 1;
                let failure = match self.attempt(form, call).await {
                    Ok(body) => {
                        if other_form_tried {
                            self.learn_form(form);
                        }
                        return Ok(body);
                    }
                    Err(failure) => failure,
                };
                // Magento 2.4.7 changed how the signed path is normalised: a store that calls
                // the signature invalid gets the same call signed the other way, once.
                if failure.error.is_invalid_signature() && !other_form_tried {
                    other_form_tried = true;
                    form = form.other();
                    tracing::info!(form = form.as_str(), "invalid signature; signing the other way");
                    continue;
                }
                match retry::decide(&self.inner.retry, &failure, attempt, call.idempotent) {
                    Decision::RetryAfter(delay) => {
                        tracing::warn!(attempt, ?delay, error = %failure.error, "retrying Magento call");
                        tokio::time::sleep(delay).await;
                    }
                    Decision::GiveUp => {
                        tracing::debug!(attempt, error = %failure.error, "Magento call failed");
                        return Err(failure.error);
                    }
                }
            }
        }
        .instrument(span)
        .await
    }

    /// One attempt: slot, rate token, signature, timeout, mapping.
    /// Remembers the rules the store accepted (a concurrent call may have learned them too).
    fn learn_form(&self, form: SignatureForm) {
        let magento247 = form == SignatureForm::Magento247;
        if self.inner.magento247.swap(magento247, Ordering::Relaxed) != magento247 {
            tracing::info!(
                form = form.as_str(),
                "the store verifies signatures this way"
            );
        }
    }

    async fn attempt(&self, form: SignatureForm, call: &Call) -> Result<Bytes, Failure> {
        let mut permit = self.inner.concurrency.acquire().await;
        self.inner.rate.until_ready().await;
        // Signed after waiting: Magento refuses timestamps from the future,
        // and every attempt needs its own nonce.
        let request = self.prepare_in(form, call).map_err(Failure::new)?;
        let started = Instant::now();
        let exchange = async {
            let response = self
                .inner
                .http
                .execute(request)
                .await
                .map_err(send_failure)?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(retry::parse_retry_after);
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
            if status.is_success() {
                let body = response.bytes(ANSWER_LIMIT).await.map_err(read_failure)?;
                return Ok((status, retry_after, location, Answer::Body(body)));
            }
            let answer = Answer::Error(response.error_answer().await);
            Ok::<_, Failure>((status, retry_after, location, answer))
        };
        let outcome = tokio::time::timeout(self.inner.timeout, exchange).await;
        let elapsed = started.elapsed();
        match outcome {
            Err(_) => {
                permit.record(Signal::Overloaded);
                Err(Failure::new(MagentoError::Timeout(self.inner.timeout)))
            }
            Ok(Err(failure)) => {
                if matches!(failure.error, MagentoError::Connection(_)) {
                    permit.record(Signal::Overloaded);
                }
                Err(failure)
            }
            Ok(Ok((status, retry_after, location, answer))) => {
                tracing::debug!(
                    status = status.as_u16(),
                    elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
                    "Magento answered"
                );
                let answer = match answer {
                    Answer::Body(body) => {
                        permit.record(Signal::Answered(elapsed));
                        return Ok(body);
                    }
                    Answer::Error(answer) => answer,
                };
                let code = status.as_u16();
                permit.record(if code == 429 || status.is_server_error() {
                    Signal::Overloaded
                } else {
                    Signal::Answered(elapsed)
                });
                let error = if status.is_redirection() {
                    MagentoError::Rejected {
                        status: code,
                        message: MagentoMessage::plain(format!(
                            "redirected to {} (check the store base URL and scheme; redirects are not followed)",
                            location
                                .as_deref()
                                .map_or("an unknown location".into(), redirect_target)
                        )),
                    }
                } else {
                    MagentoError::from_status(
                        code,
                        MagentoMessage::from_answer(&answer),
                        retry_after,
                    )
                };
                Err(Failure::new(error))
            }
        }
    }

    /// Sends a call and returns the body as JSON.
    pub async fn send_json(&self, call: &Call) -> Result<serde_json::Value, MagentoError> {
        let body = self.send(call).await?;
        decode::json(&body)
    }
}

/// The base URL with a trailing slash (so relative joins keep `index.php/`
/// or a sub-directory) and without query or fragment.
fn normalise_base_url(text: &str) -> Result<Url, MagentoError> {
    let invalid =
        || MagentoError::InvalidConfig(format!("base URL {text:?} is not an http(s) URL"));
    let mut url = Url::parse(text.trim()).map_err(|_| invalid())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid());
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// A successful answer's body, or a failed answer read for its message.
enum Answer {
    Body(Bytes),
    Error(egress::ErrorAnswer),
}

fn send_failure(error: egress::SendError) -> Failure {
    let not_sent = error.is_connect();
    let error = match error {
        egress::SendError::Refused(refusal) => MagentoError::Refused(refusal),
        egress::SendError::Invalid(message) => MagentoError::InvalidRequest(message),
        egress::SendError::Timeout => MagentoError::Connection("connecting timed out".to_owned()),
        egress::SendError::Transport { message, .. } => MagentoError::Connection(message),
    };
    Failure { error, not_sent }
}

fn read_failure(error: egress::ReadError) -> Failure {
    Failure::new(match error {
        egress::ReadError::TooLarge { what, max_bytes } => {
            MagentoError::TooLarge { what, max_bytes }
        }
        egress::ReadError::Timeout => {
            MagentoError::Connection("reading the answer timed out".to_owned())
        }
        egress::ReadError::Transport(message) => MagentoError::Connection(message),
    })
}

/// A redirect's target as the store owner may see it: the URL without its query (which
/// can carry anything), or nothing when it is not a URL.
fn redirect_target(location: &str) -> String {
    match Url::parse(location) {
        Ok(mut url) => {
            url.set_query(None);
            url.set_fragment(None);
            url.to_string().chars().take(200).collect()
        }
        Err(_) => "a location that is not a URL".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::AccessCredentials;
    use crate::scope::{Route, StoreScope};

    fn client(base: &str) -> MagentoClient {
        MagentoClient::new(ClientConfig::new(
            base,
            AccessCredentials::new("ck", "cs", "at", "ats"),
        ))
        .expect("valid config")
    }

    #[test]
    fn base_urls_keep_index_php_and_gain_a_slash() {
        let call = Call::get(StoreScope::All, Route::new().lit("store/websites"));
        assert_eq!(
            client("https://shop.example/index.php")
                .url_for(&call)
                .expect("url")
                .as_str(),
            "https://shop.example/index.php/rest/all/V1/store/websites"
        );
        assert_eq!(
            client("https://shop.example/")
                .url_for(&call)
                .expect("url")
                .as_str(),
            "https://shop.example/rest/all/V1/store/websites"
        );
        assert!(
            MagentoClient::new(ClientConfig::new(
                "ftp://x/",
                AccessCredentials::new("a", "b", "c", "d")
            ))
            .is_err()
        );
    }

    #[test]
    fn prepared_requests_hide_the_authorization_header() {
        let client = client("https://shop.example/");
        let call = Call::get(
            StoreScope::DefaultStoreView,
            Route::new().lit("store/storeViews"),
        );
        let request = client.prepare(&call).expect("request");
        let header = request.headers().get(AUTHORIZATION).expect("signed");
        assert!(header.is_sensitive());
        assert!(!format!("{request:?}").contains("oauth_signature"));
    }
}
