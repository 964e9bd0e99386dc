//! Rate limits on login attempts, per account and per client address.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Keys not seen for a while are forgotten once the map grows past this many entries.
const FORGET_ABOVE: usize = 50_000;

pub struct LoginLimiter {
    per_account: DefaultKeyedRateLimiter<String>,
    per_client: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl LoginLimiter {
    pub fn new(per_account_per_minute: u32, per_client_per_minute: u32) -> LoginLimiter {
        let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        LoginLimiter {
            per_account: RateLimiter::keyed(quota(per_account_per_minute)),
            per_client: RateLimiter::keyed(quota(per_client_per_minute)),
            clock: DefaultClock::default(),
        }
    }

    /// Counts an attempt; `Err(seconds)` says how long until the next one is allowed.
    pub fn check(&self, email: &str, client: Option<IpAddr>) -> Result<(), u64> {
        if self.per_account.len() > FORGET_ABOVE {
            self.per_account.retain_recent();
        }
        if self.per_client.len() > FORGET_ABOVE {
            self.per_client.retain_recent();
        }
        let now = self.clock.now();
        let wait = |not_until: governor::NotUntil<_>| not_until.wait_time_from(now).as_secs() + 1;
        if let Some(ip) = client {
            self.per_client.check_key(&ip).map_err(wait)?;
        }
        self.per_account
            .check_key(&email.to_lowercase())
            .map_err(wait)
    }
}
