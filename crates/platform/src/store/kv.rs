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
