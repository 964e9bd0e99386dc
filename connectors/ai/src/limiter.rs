//! The limiter every request to one provider and model goes through.
//!
//! - Requests per minute: a `governor` GCRA with no burst and an emission interval 2 % longer
//!   than `window / rpm`, so any window of `window` holds at most `rpm` requests, however the
//!   requests are spread, and the limit is still used at ~98 %.
//! - Tokens per minute: a second GCRA over tokens, with a burst of a tenth of the limit and a
//!   rate of the remaining nine tenths, so a window never holds more than `tpm` tokens. Each
//!   request takes its estimate before it is sent; [`Limiter::charge_tokens`] takes what the
//!   provider reports beyond the estimate.
//! - At most `max_concurrency` requests in flight.
//! - What the provider says: `x-ratelimit-remaining-*: 0` with `x-ratelimit-reset-*` (Go
//!   durations: `20ms`, `1m30s`) or `anthropic-ratelimit-*-remaining: 0` with `-reset` (RFC
//!   3339) pause everyone until the reset; a 429 pauses for its `retry-after-ms` /
//!   `retry-after` (capped) and slows the request rate down by a quarter, recovering after a
//!   window's worth of successes.
//!
//! Time is tokio's (`governor` runs on a tokio clock), so tests can pause and advance it.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use reqwest::header::HeaderMap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// governor's clock on tokio time.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    type Instant = std::time::Instant;
    fn now(&self) -> std::time::Instant {
        Instant::now().into_std()
    }
}

type Gcra = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<std::time::Instant>>;

/// The request interval is this much longer than `window / rpm`: the margin that keeps a
/// window under the limit when requests reach the provider with a little jitter.
const SAFETY: f64 = 1.02;
/// A 429 multiplies the request rate by this; successes undo it step by step.
const SLOWDOWN: f64 = 0.75;
const MIN_FACTOR: f64 = 0.1;

/// Limits for one provider and model.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitConfig {
    /// Requests per window.
    pub rpm: u32,
    /// Tokens (input + output) per window, if limited.
    pub tpm: Option<u32>,
    pub max_concurrency: usize,
    /// One minute; tests scale it down.
    pub window: Duration,
    /// The longest pause a provider's `retry-after` or reset header can impose.
    pub max_retry_after: Duration,
}

impl Default for LimitConfig {
    fn default() -> Self {
        LimitConfig {
            rpm: 60,
            tpm: None,
            max_concurrency: 4,
            window: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

struct RequestGate {
    gcra: Arc<Gcra>,
    interval: Duration,
    factor: f64,
    successes: u32,
}

/// See the module documentation.
pub struct Limiter {
    config: LimitConfig,
    requests: Mutex<RequestGate>,
    tokens: Option<(Gcra, u32)>,
    paused_until: Mutex<Option<Instant>>,
    concurrency: Arc<Semaphore>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("config", &self.config)
            .finish()
    }
}

/// Held while a request is in flight.
#[derive(Debug)]
pub struct Permit {
    _slot: OwnedSemaphorePermit,
}

fn request_gate(config: &LimitConfig, factor: f64) -> RequestGate {
    let rpm = f64::from(config.rpm.max(1));
    let interval = config.window.mul_f64(SAFETY / (rpm * factor));
    let interval = interval.max(Duration::from_nanos(1));
    let quota = Quota::with_period(interval)
        .expect("a positive interval")
        .allow_burst(NonZeroU32::MIN);
    RequestGate {
        gcra: Arc::new(RateLimiter::direct_with_clock(quota, TokioClock)),
        interval,
        factor,
        successes: 0,
    }
}

impl Limiter {
    pub fn new(config: LimitConfig) -> Limiter {
        let tokens = config.tpm.filter(|t| *t > 1).map(|tpm| {
            let burst = (tpm / 10).max(1);
            let per_token = config.window / (tpm - burst);
            let quota = Quota::with_period(per_token.max(Duration::from_nanos(1)))
                .expect("a positive interval")
                .allow_burst(NonZeroU32::new(burst).expect("positive"));
            (RateLimiter::direct_with_clock(quota, TokioClock), burst)
        });
        Limiter {
            requests: Mutex::new(request_gate(&config, 1.0)),
            tokens,
            paused_until: Mutex::new(None),
            concurrency: Arc::new(Semaphore::new(config.max_concurrency.max(1))),
            config,
        }
    }

    pub fn config(&self) -> &LimitConfig {
        &self.config
    }

    /// The current request rate as a share of the configured one (below 1 after 429s).
    pub fn rate_factor(&self) -> f64 {
        self.requests.lock().expect("limiter lock").factor
    }

    /// Waits until a request estimated at `tokens` may be sent, and returns the permit to hold
    /// while it is in flight. The request slot is taken last, right before sending.
    pub async fn acquire(&self, tokens: u64) -> Permit {
        let slot = self
            .concurrency
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        self.wait_while_paused().await;
        self.take_tokens(tokens).await;
        loop {
            self.wait_while_paused().await;
            let gcra = self.requests.lock().expect("limiter lock").gcra.clone();
            match gcra.check() {
                Ok(()) => break,
                Err(not_until) => {
                    tokio::time::sleep(not_until.wait_time_from(TokioClock.now())).await
                }
            }
        }
        Permit { _slot: slot }
    }

    async fn take_tokens(&self, tokens: u64) {
        let Some((gcra, burst)) = &self.tokens else {
            return;
        };
        let n = NonZeroU32::new(tokens.clamp(1, u64::from(*burst)) as u32).expect("positive");
        loop {
            match gcra.check_n(n) {
                Ok(Ok(())) => return,
                Ok(Err(not_until)) => {
                    tokio::time::sleep(not_until.wait_time_from(TokioClock.now())).await
                }
                Err(_) => return,
            }
        }
    }

    /// Reconciles an estimate with the reported usage: tokens used beyond the estimate are
    /// taken now, so the next requests wait for them.
    pub async fn charge_tokens(&self, estimated: u64, used: u64) {
        let mut extra = used.saturating_sub(estimated);
        let Some((_, burst)) = &self.tokens else {
            return;
        };
        while extra > 0 {
            let n = extra.min(u64::from(*burst));
            self.take_tokens(n).await;
            extra -= n;
        }
    }

    async fn wait_while_paused(&self) {
        loop {
            let until = *self.paused_until.lock().expect("limiter lock");
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t).await,
                _ => return,
            }
        }
    }

    /// Holds every request back for `wait` (capped at `max_retry_after`).
    pub fn pause_for(&self, wait: Duration) {
        let until = Instant::now() + wait.min(self.config.max_retry_after);
        let mut paused = self.paused_until.lock().expect("limiter lock");
        if paused.is_none_or(|p| p < until) {
            *paused = Some(until);
        }
    }

    /// A 429: pause for `retry_after` and slow the request rate down.
    pub fn throttled(&self, retry_after: Duration) {
        let interval = {
            let mut gate = self.requests.lock().expect("limiter lock");
            let factor = (gate.factor * SLOWDOWN).max(MIN_FACTOR);
            *gate = request_gate(&self.config, factor);
            gate.interval
        };
        // The new GCRA starts empty; the pause keeps its first request one interval away.
        self.pause_for(retry_after.max(interval));
    }

    /// A success: after a window's worth of them the rate recovers by one step.
    pub fn succeeded(&self) {
        let mut gate = self.requests.lock().expect("limiter lock");
        if gate.factor >= 1.0 {
            return;
        }
        gate.successes += 1;
        let window_worth = (f64::from(self.config.rpm) * gate.factor).ceil() as u32;
        if gate.successes >= window_worth.max(1) {
            let factor = (gate.factor / SLOWDOWN).min(1.0);
            *gate = request_gate(&self.config, factor);
            let interval = gate.interval;
            drop(gate);
            self.pause_for(interval);
        }
    }

    /// Follows the provider's rate-limit headers: an exhausted limit pauses until its reset.
    pub fn observe(&self, headers: &HeaderMap) {
        if let Some(wait) = reported_wait(headers, chrono::Utc::now()) {
            self.pause_for(wait);
        }
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// How long the provider's headers say to wait: the latest reset among exhausted limits.
pub fn reported_wait(headers: &HeaderMap, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let mut wait: Option<Duration> = None;
    let mut later = |d: Duration| wait = Some(wait.map_or(d, |w| w.max(d)));
    for kind in ["requests", "tokens"] {
        let remaining = header(headers, &format!("x-ratelimit-remaining-{kind}"))
            .and_then(|v| v.parse::<f64>().ok());
        if remaining.is_some_and(|r| r < 1.0)
            && let Some(d) =
                header(headers, &format!("x-ratelimit-reset-{kind}")).and_then(parse_go_duration)
        {
            later(d);
        }
    }
    for kind in ["requests", "tokens", "input-tokens", "output-tokens"] {
        let remaining = header(headers, &format!("anthropic-ratelimit-{kind}-remaining"))
            .and_then(|v| v.parse::<f64>().ok());
        if remaining.is_some_and(|r| r < 1.0)
            && let Some(reset) = header(headers, &format!("anthropic-ratelimit-{kind}-reset"))
                .and_then(|v| chrono::DateTime::parse_from_rfc3339(v).ok())
        {
            let d = reset.with_timezone(&chrono::Utc) - now;
            later(d.to_std().unwrap_or_default());
        }
    }
    wait
}

/// A 429's wait: `retry-after-ms` (milliseconds), else `retry-after` (seconds or an HTTP date).
pub fn retry_after(headers: &HeaderMap, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    if let Some(ms) = header(headers, "retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = header(headers, "retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (date.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or_default(),
    )
}

/// Parses a Go duration (`20ms`, `1m30s`, `6m0s`, `1.5s`, `2h`, `0`). `20ms` is twenty
/// milliseconds: a unit is the whole run of letters, never its first letter alone.
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text == "0" {
        return Some(Duration::ZERO);
    }
    if text.is_empty() {
        return None;
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_end == 0 {
            return None;
        }
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" | "μs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += number * seconds_per;
    }
    total.is_finite().then(|| Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn go_durations_parse_with_whole_units() {
        assert_eq!(parse_go_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("250us"), Some(Duration::from_micros(250)));
        assert_eq!(
            parse_go_duration("1m0.5s"),
            Some(Duration::from_millis(60_500))
        );
        assert_eq!(parse_go_duration("ms"), None);
        assert_eq!(parse_go_duration("12"), None);
        assert_eq!(parse_go_duration("5 parsecs"), None);
    }

    #[test]
    fn exhausted_limits_in_headers_give_the_wait() {
        let now = chrono::Utc::now();
        let openai = headers(&[
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "20ms"),
            ("x-ratelimit-remaining-tokens", "5000"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]);
        assert_eq!(reported_wait(&openai, now), Some(Duration::from_millis(20)));
        let reset = (now + chrono::Duration::seconds(7)).to_rfc3339();
        let anthropic = headers(&[
            ("anthropic-ratelimit-tokens-remaining", "0"),
            ("anthropic-ratelimit-tokens-reset", &reset),
            ("anthropic-ratelimit-requests-remaining", "10"),
        ]);
        let wait = reported_wait(&anthropic, now).unwrap();
        assert!(
            wait > Duration::from_secs(6) && wait <= Duration::from_secs(7),
            "{wait:?}"
        );
        assert_eq!(reported_wait(&headers(&[]), now), None);
    }

    #[test]
    fn retry_after_prefers_milliseconds() {
        let now = chrono::Utc::now();
        assert_eq!(
            retry_after(
                &headers(&[("retry-after-ms", "250"), ("retry-after", "9")]),
                now
            ),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "2")]), now),
            Some(Duration::from_secs(2))
        );
        assert_eq!(retry_after(&headers(&[]), now), None);
    }

    /// Requests timed by tokio's paused clock, with 429 storms slowing the limiter down in the
    /// middle: no window of the configured length ever holds more than `rpm` requests.
    #[tokio::test(start_paused = true)]
    async fn no_window_holds_more_than_rpm_even_through_429_storms() {
        let config = LimitConfig {
            rpm: 30,
            tpm: None,
            max_concurrency: 8,
            ..LimitConfig::default()
        };
        let limiter = Arc::new(Limiter::new(config.clone()));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..120u32 {
            let limiter = limiter.clone();
            let sent = sent.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = limiter.acquire(1).await;
                sent.lock().unwrap().push(Instant::now());
                tokio::time::sleep(Duration::from_millis(300)).await;
                if i % 7 == 0 {
                    limiter.throttled(Duration::from_secs(2));
                } else {
                    limiter.succeeded();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let mut times = sent.lock().unwrap().clone();
        times.sort();
        assert_eq!(times.len(), 120);
        let limit = config.rpm as usize;
        for (i, t) in times.iter().enumerate() {
            let in_window = times[i..]
                .iter()
                .take_while(|u| u.duration_since(*t) < config.window)
                .count();
            assert!(
                in_window <= limit,
                "{in_window} requests in a window from {i}"
            );
        }
        // Without throttling 120 requests take four windows; the storms made it slower.
        assert!(Instant::now() - start > Duration::from_secs(4 * 60));
    }

    #[tokio::test(start_paused = true)]
    async fn the_limit_is_used_when_there_is_enough_work() {
        let config = LimitConfig {
            rpm: 600,
            max_concurrency: 16,
            ..LimitConfig::default()
        };
        let limiter = Arc::new(Limiter::new(config));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..600 {
            let limiter = limiter.clone();
            tasks.push(tokio::spawn(async move {
                let _p = limiter.acquire(1).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
                limiter.succeeded();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let elapsed = Instant::now() - start;
        // 600 requests at 600 per minute: just over a minute, never under.
        assert!(elapsed >= Duration::from_secs(60), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(63), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_per_window_are_respected_and_reconciled() {
        let config = LimitConfig {
            rpm: 10_000,
            tpm: Some(10_000),
            max_concurrency: 4,
            ..LimitConfig::default()
        };
        let limiter = Arc::new(Limiter::new(config.clone()));
        let log = Arc::new(Mutex::new(Vec::<(Instant, u64)>::new()));
        let mut tasks = Vec::new();
        for _ in 0..60 {
            let limiter = limiter.clone();
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                // Estimated 400, the provider reports 600.
                let _p = limiter.acquire(400).await;
                log.lock().unwrap().push((Instant::now(), 600));
                limiter.charge_tokens(400, 600).await;
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let mut log = log.lock().unwrap().clone();
        log.sort();
        for (i, (t, _)) in log.iter().enumerate() {
            let tokens: u64 = log[i..]
                .iter()
                .take_while(|(u, _)| u.duration_since(*t) < config.window)
                .map(|(_, n)| n)
                .sum();
            // Reported tokens are charged after the fact, so a window can exceed the limit by
            // at most the overruns of the requests in flight at its start.
            assert!(
                tokens <= 10_000 + 4 * 200,
                "{tokens} tokens in a window from {i}"
            );
        }
        // 36,000 tokens at 10,000 a minute: more than three minutes.
        assert!(log.last().unwrap().0 - log[0].0 > Duration::from_secs(180));
    }
}
