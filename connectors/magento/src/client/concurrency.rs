//! An adaptive concurrency limit (AIMD).
//!
//! Magento announces no limits, and each list call builds full product
//! objects, so the safe parallelism differs per store and per hour. The
//! limit grows by one per "window" of successful requests (additive
//! increase) and shrinks by a factor on timeouts, 5xx, 429 and when latency
//! climbs well above its long-run average (multiplicative decrease). It never
//! goes above the configured ceiling or below one.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::config::AdaptiveConcurrencyConfig;

/// Weight of a new latency sample in the fast ("recent") average.
const RECENT_WEIGHT: f64 = 0.3;
/// Weight of a new latency sample in the slow ("baseline") average.
const BASELINE_WEIGHT: f64 = 0.05;

/// What one finished request says about the store's load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Signal {
    /// Answered normally (2xx or an ordinary 4xx) after this long.
    Answered(Duration),
    /// Timed out, 5xx, 429 or the connection failed.
    Overloaded,
    /// Tells nothing about load (e.g. the request was never sent).
    Neutral,
}

#[derive(Debug)]
struct State {
    limit: f64,
    in_flight: usize,
    baseline: Option<f64>,
    recent: Option<f64>,
    cooldown_until: Option<Instant>,
}

#[derive(Debug)]
pub(crate) struct AdaptiveLimiter {
    state: Mutex<State>,
    released: Notify,
    ceiling: usize,
    config: AdaptiveConcurrencyConfig,
}

impl AdaptiveLimiter {
    pub(crate) fn new(ceiling: usize, config: AdaptiveConcurrencyConfig) -> Arc<Self> {
        let ceiling = ceiling.max(1);
        let initial = config.initial.unwrap_or(ceiling).clamp(1, ceiling);
        Arc::new(AdaptiveLimiter {
            state: Mutex::new(State {
                limit: initial as f64,
                in_flight: 0,
                baseline: None,
                recent: None,
                cooldown_until: None,
            }),
            released: Notify::new(),
            ceiling,
            config,
        })
    }

    /// The state is plain numbers, valid after any panic, so a poisoned
    /// lock is simply reused.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current limit (whole requests).
    pub(crate) fn limit(&self) -> usize {
        whole(self.lock().limit)
    }

    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        self.lock().in_flight
    }

    /// Waits for a free slot under the current limit.
    pub(crate) async fn acquire(self: &Arc<Self>) -> Permit {
        loop {
            let notified = self.released.notified();
            tokio::pin!(notified);
            // Register before checking, so a release between the check and
            // the await cannot be missed.
            notified.as_mut().enable();
            {
                let mut state = self.lock();
                if state.in_flight < whole(state.limit) {
                    state.in_flight += 1;
                    return Permit {
                        limiter: Arc::clone(self),
                        signal: Signal::Neutral,
                    };
                }
            }
            notified.await;
        }
    }

    fn finish(&self, signal: Signal) {
        {
            let mut state = self.lock();
            state.in_flight = state.in_flight.saturating_sub(1);
            self.adjust(&mut state, signal, Instant::now());
        }
        self.released.notify_waiters();
    }

    fn adjust(&self, state: &mut State, signal: Signal, now: Instant) {
        let ceiling = self.ceiling as f64;
        match signal {
            Signal::Neutral => {}
            Signal::Overloaded => self.decrease(state, now),
            Signal::Answered(latency) => {
                let sample = latency.as_secs_f64();
                let baseline = ewma(state.baseline, sample, BASELINE_WEIGHT);
                let recent = ewma(state.recent, sample, RECENT_WEIGHT);
                state.baseline = Some(baseline);
                state.recent = Some(recent);
                if recent > baseline * self.config.latency_tolerance {
                    self.decrease(state, now);
                    // Start measuring afresh at the new level.
                    state.recent = Some(baseline);
                } else {
                    // +1 per `limit` answered requests: one step per window.
                    state.limit = (state.limit + 1.0 / state.limit.max(1.0)).min(ceiling);
                }
            }
        }
    }

    fn decrease(&self, state: &mut State, now: Instant) {
        if state.cooldown_until.is_some_and(|until| now < until) {
            return;
        }
        state.limit = (state.limit * self.config.decrease_factor).max(1.0);
        state.cooldown_until = Some(now + self.config.decrease_cooldown);
    }
}

fn ewma(previous: Option<f64>, sample: f64, weight: f64) -> f64 {
    match previous {
        Some(previous) => previous + weight * (sample - previous),
        None => sample,
    }
}

#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "the limit is kept within 1..=ceiling"
)]
fn whole(limit: f64) -> usize {
    limit.floor().max(1.0) as usize
}

/// A slot; dropping it frees the slot and feeds its signal to the limiter.
pub(crate) struct Permit {
    limiter: Arc<AdaptiveLimiter>,
    signal: Signal,
}

impl Permit {
    pub(crate) fn record(&mut self, signal: Signal) {
        self.signal = signal;
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limiter.finish(self.signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(ceiling: usize) -> Arc<AdaptiveLimiter> {
        AdaptiveLimiter::new(
            ceiling,
            AdaptiveConcurrencyConfig {
                decrease_cooldown: Duration::ZERO,
                ..AdaptiveConcurrencyConfig::default()
            },
        )
    }

    async fn answer(limiter: &Arc<AdaptiveLimiter>, signal: Signal) {
        let mut permit = limiter.acquire().await;
        permit.record(signal);
    }

    #[tokio::test]
    async fn overload_halves_and_success_climbs_back_to_the_ceiling_only() {
        let limiter = limiter(8);
        assert_eq!(limiter.limit(), 8);
        answer(&limiter, Signal::Overloaded).await;
        assert_eq!(limiter.limit(), 5);
        answer(&limiter, Signal::Overloaded).await;
        assert_eq!(limiter.limit(), 3);
        for _ in 0..200 {
            answer(&limiter, Signal::Answered(Duration::from_millis(50))).await;
        }
        assert_eq!(limiter.limit(), 8);
        for _ in 0..20 {
            answer(&limiter, Signal::Overloaded).await;
        }
        assert_eq!(limiter.limit(), 1);
    }

    #[tokio::test]
    async fn rising_latency_decreases_the_limit() {
        let limiter = limiter(8);
        for _ in 0..20 {
            answer(&limiter, Signal::Answered(Duration::from_millis(20))).await;
        }
        assert_eq!(limiter.limit(), 8);
        for _ in 0..5 {
            answer(&limiter, Signal::Answered(Duration::from_millis(400))).await;
        }
        assert!(limiter.limit() < 8, "limit stayed at {}", limiter.limit());
    }

    #[tokio::test]
    async fn cooldown_merges_a_burst_of_failures() {
        let limiter = AdaptiveLimiter::new(10, AdaptiveConcurrencyConfig::default());
        for _ in 0..5 {
            answer(&limiter, Signal::Overloaded).await;
        }
        assert_eq!(limiter.limit(), 7);
    }

    #[tokio::test]
    async fn waiters_get_slots_as_they_free_up() {
        let limiter = limiter(2);
        let first = limiter.acquire().await;
        let _second = limiter.acquire().await;
        assert_eq!(limiter.in_flight(), 2);
        let waiting = tokio::spawn({
            let limiter = Arc::clone(&limiter);
            async move {
                let _third = limiter.acquire().await;
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        drop(first);
        tokio::time::timeout(Duration::from_secs(2), waiting)
            .await
            .expect("third permit granted after a release")
            .expect("task did not panic");
    }
}
