//! The append-only log contract (stream replay buffers).

use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::BoxStream;

use super::StoreError;

/// One entry; indexes start at 1 and increase by one per append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub index: u64,
    pub data: Vec<u8>,
}

/// The state of a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogInfo {
    /// Number of entries (= index of the last one).
    pub len: u64,
    pub closed: bool,
}

/// Entries after a given index, then live ones as they are appended, ending once the log is
/// closed and read to its end (or has expired).
pub type LogReader = BoxStream<'static, Result<LogEntry, StoreError>>;

/// Append-only logs by name with live subscription.
///
/// An open log lives for `open_ttl` after its last append, so an abandoned writer does not
/// leak it; a closed log lives for the TTL given to [`LogStore::close`].
#[async_trait]
pub trait LogStore: Send + Sync {
    /// Appends `data`, creating the log when needed; returns the new entry's index.
    /// Appending to a closed log is [`StoreError::Closed`].
    async fn append(&self, log: &str, data: &[u8]) -> Result<u64, StoreError>;

    /// Marks the log finished: readers end after its last entry. Kept for `ttl`, then gone.
    async fn close(&self, log: &str, ttl: Duration) -> Result<(), StoreError>;

    /// `None` when the log does not exist (never written, expired or deleted).
    async fn info(&self, log: &str) -> Result<Option<LogInfo>, StoreError>;

    /// Reads entries with index > `after`, then follows live until closed. No entry appended
    /// after this call returns is missed, and none is delivered twice. `None` when the log
    /// does not exist.
    async fn read(&self, log: &str, after: u64) -> Result<Option<LogReader>, StoreError>;

    /// Removes the log; live readers end.
    async fn delete(&self, log: &str) -> Result<(), StoreError>;
}

/// How long an open log outlives its last append.
pub(crate) const OPEN_LOG_TTL: Duration = Duration::from_secs(24 * 3600);
