//! The kernel every Sage Server crate stands on: configuration, ids, the clock, error kinds,
//! pagination, the database and Redis connections, the two store abstractions (key-value with
//! TTL, append-only log with live subscription), the server secret, telemetry, and the
//! per-user limits on model spending (`spend`).
//!
//! Invariant: no business rules and no HTTP types live here. Domain crates depend on this crate
//! and on nothing of actix; the tidy test in `xtask` enforces it.

pub mod actor;
pub mod blobs;
pub mod clock;
pub mod config;
pub mod confined;
pub mod db;
pub mod error;
pub mod ids;
pub mod objects;
pub mod outbound;
pub mod pagination;
pub mod readiness;
pub mod redis_conn;
pub mod secret;
pub mod spend;
pub mod store;
pub mod telemetry;
pub mod tls;

pub use actor::{Actor, UserCleanup};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{AuthMode, Config, ConfigError, LogFormat};
pub use error::ErrorKind;
pub use pagination::{Page, PageRequest};

/// An error that stops the process at start (bad configuration, unreachable database or
/// Redis, unwritable data directory). Its `Display` is one line naming the cause.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

impl StartError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}
