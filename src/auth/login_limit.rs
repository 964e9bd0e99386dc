//! Rate limits on password checks (per account and per client address) and on registrations
//! (per client address): each costs a bcrypt hash, and the per-account budget bounds guessing.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

/// Keys not seen for a while are forgotten once the map grows past this many entries.
const FORGET_ABOVE: usize = 50_000;

/// Whose budget a password check spends.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AccountKey {
    /// A known account: every spelling of its address shares one budget.
    Account(Uuid),
    /// An address no account uses, as the lookup compares it (trimmed, case-insensitive).
    Address(String),
}

impl AccountKey {
    pub fn address(email: &str) -> AccountKey {
        AccountKey::Address(email.trim().to_lowercase())
    }
}

pub struct LoginLimiter {
    per_account: DefaultKeyedRateLimiter<AccountKey>,
    per_client: DefaultKeyedRateLimiter<IpAddr>,
    registrations: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

fn quota(per_minute: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN))
}

impl LoginLimiter {
    pub fn new(
        per_account_per_minute: u32,
        per_client_per_minute: u32,
        registrations_per_client_per_minute: u32,
    ) -> LoginLimiter {
        LoginLimiter {
            per_account: RateLimiter::keyed(quota(per_account_per_minute)),
            per_client: RateLimiter::keyed(quota(per_client_per_minute)),
            registrations: RateLimiter::keyed(quota(registrations_per_client_per_minute)),
            clock: DefaultClock::default(),
        }
    }

    /// Counts a login attempt from `client`; `Err(seconds)` says how long until the next one
    /// is allowed. Checked before the account is looked up.
    pub fn check_client(&self, client: Option<IpAddr>) -> Result<(), u64> {
        match client {
            Some(ip) => self.spend(&self.per_client, &ip),
            None => Ok(()),
        }
    }

    /// Counts a password check against an account (or an unknown address).
    pub fn check_account(&self, key: &AccountKey) -> Result<(), u64> {
        self.spend(&self.per_account, key)
    }

    /// Counts a registration from `client`.
    pub fn check_registration(&self, client: Option<IpAddr>) -> Result<(), u64> {
        match client {
            Some(ip) => self.spend(&self.registrations, &ip),
            None => Ok(()),
        }
    }

    fn spend<K: Clone + Eq + std::hash::Hash>(
        &self,
        limiter: &DefaultKeyedRateLimiter<K>,
        key: &K,
    ) -> Result<(), u64> {
        if limiter.len() > FORGET_ABOVE {
            limiter.retain_recent();
        }
        let now = self.clock.now();
        limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(now).as_secs() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_an_address_shares_one_budget() {
        let limiter = LoginLimiter::new(2, 100, 100);
        assert!(
            limiter
                .check_account(&AccountKey::address("ana@x.io"))
                .is_ok()
        );
        assert!(
            limiter
                .check_account(&AccountKey::address(" ANA@x.io\t"))
                .is_ok()
        );
        assert!(
            limiter
                .check_account(&AccountKey::address("Ana@X.io"))
                .is_err()
        );
        assert!(
            limiter
                .check_account(&AccountKey::address("bob@x.io"))
                .is_ok()
        );
    }

    #[test]
    fn registrations_have_their_own_budget_per_address() {
        let limiter = LoginLimiter::new(100, 100, 1);
        let a: IpAddr = "203.0.113.1".parse().unwrap();
        let b: IpAddr = "203.0.113.2".parse().unwrap();
        assert!(limiter.check_registration(Some(a)).is_ok());
        let wait = limiter.check_registration(Some(a)).unwrap_err();
        assert!((1..=60).contains(&wait), "{wait}");
        assert!(limiter.check_registration(Some(b)).is_ok());
        // Logins from the same address are not spent by registrations.
        assert!(limiter.check_client(Some(a)).is_ok());
    }
}
