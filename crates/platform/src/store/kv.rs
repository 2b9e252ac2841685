//! The key-value store contract.

use std::time::Duration;

use async_trait::async_trait;

use super::StoreError;

/// The value and remaining lifetime of a counter after an increment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    pub value: i64,
    /// Time until the counter expires; `None` only if it has no expiry.
    pub ttl: Option<Duration>,
}

/// A token bucket: up to `burst` tokens, refilled at one per `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub burst: u32,
    pub interval: Duration,
}

/// The outcome of taking tokens from a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// Whether the tokens were taken (nothing is taken when refused).
    pub allowed: bool,
    /// Tokens left after this call.
    pub remaining: u32,
    /// When refused: how long until the same call would be allowed; zero when allowed.
    pub retry_after: Duration,
}

/// A key-value store with TTLs and atomic operations. Keys are namespaced by the
/// implementation (deployment prefix), values are bytes. TTLs have millisecond precision.
#[async_trait]
pub trait KvStore: Send + Sync {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Stores `value`, replacing any previous one; `ttl: None` keeps it until deleted.
    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError>;

    /// Stores `value` only when `key` is absent; `true` when this call stored it (locks,
    /// idempotency keys). Exactly one of many concurrent callers wins.
    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError>;

    /// Removes and returns the value in one step, so a single-use record is used once.
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// `true` when something was deleted.
    async fn delete(&self, key: &str) -> Result<bool, StoreError>;

    /// Deletes `key` only while it still holds `expected` (releasing a lock one owns).
    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError>;

    /// Adds `by` to the integer at `key`, creating it at 0 with `ttl` when absent (the TTL is
    /// not extended by later increments: a fixed window for rate limits).
    async fn incr(&self, key: &str, by: i64, ttl: Duration) -> Result<Counter, StoreError>;

    /// Takes `cost` tokens from the bucket at `key` (full when absent) if it holds that many;
    /// atomic across callers and replicas (GCRA: one stored timestamp, read and written in
    /// one step, on the backend's clock). The key expires once the bucket is full again.
    async fn take_tokens(&self, key: &str, rate: Rate, cost: u32) -> Result<Taken, StoreError>;

    /// Remaining lifetime; `None` when the key is absent or has no expiry.
    async fn ttl(&self, key: &str) -> Result<Option<Duration>, StoreError>;

    /// Sets a new lifetime; `false` when the key is absent.
    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, StoreError>;

    /// Adds `member` to the set at `key` and sets the set's lifetime to at least `ttl`
    /// (indexes such as "sessions of a user").
    async fn set_add(&self, key: &str, member: &str, ttl: Duration) -> Result<(), StoreError>;

    async fn set_remove(&self, key: &str, member: &str) -> Result<(), StoreError>;

    async fn set_members(&self, key: &str) -> Result<Vec<String>, StoreError>;
}

/// One GCRA step in microseconds: the bucket's theoretical arrival time `tat` (absent: full)
/// at `now`; returns the outcome and the new `tat` to store when allowed. The Redis script
/// computes the same in Lua.
pub(crate) fn gcra(tat: Option<i64>, now: i64, rate: Rate, cost: u32) -> (Taken, Option<i64>) {
    let interval = i64::try_from(rate.interval.as_micros())
        .unwrap_or(i64::MAX)
        .max(1);
    let tau = interval.saturating_mul(i64::from(rate.burst.max(1)));
    let tat = tat.unwrap_or(now).max(now);
    let new_tat = tat.saturating_add(interval.saturating_mul(i64::from(cost.max(1))));
    let remaining = |used: i64| u32::try_from((tau - used).max(0) / interval).unwrap_or(u32::MAX);
    if new_tat - now > tau {
        let wait = u64::try_from(new_tat - now - tau).unwrap_or(0);
        (
            Taken {
                allowed: false,
                remaining: remaining(tat - now),
                retry_after: Duration::from_micros(wait),
            },
            None,
        )
    } else {
        (
            Taken {
                allowed: true,
                remaining: remaining(new_tat - now),
                retry_after: Duration::ZERO,
            },
            Some(new_tat),
        )
    }
}
