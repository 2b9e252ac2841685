//! The two store abstractions every stateful feature builds on, each with an in-process and a
//! Redis implementation that pass the same test suite:
//!
//! * [`KvStore`]: a key-value store with TTLs and atomic operations (sessions, codes, rate
//!   limits, locks);
//! * [`LogStore`]: an append-only log per name with live subscription (stream replay).
//!
//! In-process stores serve one replica; Redis lets several replicas share state.

mod kv;
mod log;
mod memory;
mod redis;

#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use self::kv::{Counter, KvStore, Rate, Taken};
pub use self::log::{LogEntry, LogInfo, LogReader, LogStore};
pub use self::memory::{MemoryKvStore, MemoryLogStore};
pub use self::redis::{RedisKvStore, RedisLogStore};

use crate::redis_conn::RedisHandle;

/// A store operation failed; the stores' backend is unavailable or refused the command.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store backend failed: {0}")]
    Backend(String),
    #[error("the log `{0}` is closed")]
    Closed(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            StoreError::Backend(_) => crate::ErrorKind::Unavailable,
            StoreError::Closed(_) => crate::ErrorKind::Conflict,
            StoreError::Corrupt(_) => crate::ErrorKind::Internal,
        }
    }
}

impl From<::redis::RedisError> for StoreError {
    fn from(e: ::redis::RedisError) -> Self {
        StoreError::Backend(e.to_string())
    }
}

/// Both stores, built for the configured backend.
#[derive(Clone)]
pub struct Stores {
    pub kv: Arc<dyn KvStore>,
    pub logs: Arc<dyn LogStore>,
}

impl Stores {
    /// In-process stores (the embedded default).
    pub fn in_memory() -> Self {
        Self {
            kv: Arc::new(MemoryKvStore::new()),
            logs: Arc::new(MemoryLogStore::new()),
        }
    }

    /// Redis-backed stores sharing one connection.
    pub fn redis(handle: &RedisHandle) -> Self {
        Self {
            kv: Arc::new(RedisKvStore::new(handle.clone())),
            logs: Arc::new(RedisLogStore::new(handle.clone())),
        }
    }
}
