//! The stream hub: each session's replay log (platform `LogStore`) and the run registry in the
//! `KvStore` (which run holds a session, interrupt flags, the running sessions), so every
//! replica sees the same state when Redis is configured.

use std::sync::Arc;
use std::time::Duration;

use platform::store::{KvStore, LogReader, LogStore, StoreError};
use serde::{Deserialize, Serialize};

/// How long a run's lock lives without renewal (a crashed replica frees its sessions).
pub(crate) const LOCK_LEASE: Duration = Duration::from_secs(30);
/// How long a running session's record lives without renewal.
const RECORD_TTL: Duration = Duration::from_secs(3600);
const INTERRUPT_TTL: Duration = Duration::from_secs(60);
const RUNS_KEY: &str = "chat:runs";

/// A running session as `active_sessions` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveSession {
    pub session_id: String,
    pub created_at: f64,
    pub is_completed: bool,
    pub status: String,
    pub last_activity: f64,
    pub query: String,
    /// The owner (not sent to clients).
    #[serde(skip_serializing, default)]
    pub user_id: String,
    #[serde(skip_serializing, default)]
    pub run_id: String,
}

#[derive(Serialize, Deserialize)]
struct Record {
    #[serde(flatten)]
    session: ActiveSession,
    user_id: String,
    run_id: String,
}

#[derive(Clone)]
pub(crate) struct Hub {
    kv: Arc<dyn KvStore>,
    logs: Arc<dyn LogStore>,
}

fn log_name(session_id: &str) -> String {
    format!("chat:stream:{session_id}")
}
fn lock_key(session_id: &str) -> String {
    format!("chat:lock:{session_id}")
}
fn record_key(session_id: &str) -> String {
    format!("chat:run:{session_id}")
}
fn resumed_key(session_id: &str) -> String {
    format!("chat:resumed:{session_id}")
}
fn interrupt_key(session_id: &str) -> String {
    format!("chat:interrupt:{session_id}")
}

impl Hub {
    pub(crate) fn new(kv: Arc<dyn KvStore>, logs: Arc<dyn LogStore>) -> Self {
        Self { kv, logs }
    }

    pub(crate) fn kv(&self) -> Arc<dyn KvStore> {
        self.kv.clone()
    }

    /// Takes the session for `run_id`; `false` when another run holds it.
    pub(crate) async fn try_lock(
        &self,
        session_id: &str,
        run_id: &str,
    ) -> Result<bool, StoreError> {
        self.kv
            .set_if_absent(&lock_key(session_id), run_id.as_bytes(), Some(LOCK_LEASE))
            .await
    }

    /// The run holding the session, if any.
    pub(crate) async fn holder(&self, session_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .kv
            .get(&lock_key(session_id))
            .await?
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    pub(crate) async fn renew(&self, session_id: &str) -> Result<(), StoreError> {
        self.kv.expire(&lock_key(session_id), LOCK_LEASE).await?;
        self.kv.expire(&record_key(session_id), RECORD_TTL).await?;
        Ok(())
    }

    /// Asks the run `run_id` to stop (seen by whichever replica runs it).
    pub(crate) async fn request_interrupt(
        &self,
        session_id: &str,
        run_id: &str,
    ) -> Result<(), StoreError> {
        self.kv
            .set(
                &interrupt_key(session_id),
                run_id.as_bytes(),
                Some(INTERRUPT_TTL),
            )
            .await
    }

    pub(crate) async fn interrupt_requested(
        &self,
        session_id: &str,
        run_id: &str,
    ) -> Result<bool, StoreError> {
        Ok(self
            .kv
            .get(&interrupt_key(session_id))
            .await?
            .is_some_and(|v| v == run_id.as_bytes()))
    }

    /// Notes that a client resumed the run `run_id` (any replica): a `/api/chat` or
    /// `/api/stream` run whose client went then keeps going.
    pub(crate) async fn mark_resumed(
        &self,
        session_id: &str,
        run_id: &str,
    ) -> Result<(), StoreError> {
        self.kv
            .set(
                &resumed_key(session_id),
                run_id.as_bytes(),
                Some(INTERRUPT_TTL),
            )
            .await
    }

    pub(crate) async fn was_resumed(
        &self,
        session_id: &str,
        run_id: &str,
    ) -> Result<bool, StoreError> {
        Ok(self
            .kv
            .get(&resumed_key(session_id))
            .await?
            .is_some_and(|v| v == run_id.as_bytes()))
    }

    /// A new run's log starts empty; the previous run's log (and its readers) ends.
    pub(crate) async fn begin(&self, session: ActiveSession) -> Result<(), StoreError> {
        let sid = session.session_id.clone();
        self.logs.delete(&log_name(&sid)).await?;
        let record = Record {
            user_id: session.user_id.clone(),
            run_id: session.run_id.clone(),
            session,
        };
        let bytes = serde_json::to_vec(&record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.kv
            .set(&record_key(&sid), &bytes, Some(RECORD_TTL))
            .await?;
        self.kv.set_add(RUNS_KEY, &sid, RECORD_TTL).await
    }

    /// Appends one line to the replay log; its index (from 1).
    pub(crate) async fn append(&self, session_id: &str, line: &[u8]) -> Result<u64, StoreError> {
        self.logs.append(&log_name(session_id), line).await
    }

    /// Ends the run: the log is closed (kept `ttl`), the session released.
    pub(crate) async fn finish(
        &self,
        session_id: &str,
        run_id: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let closed = self.logs.close(&log_name(session_id), ttl).await;
        self.kv.set_remove(RUNS_KEY, session_id).await?;
        if self.holder(session_id).await?.as_deref() == Some(run_id) {
            self.kv.delete(&record_key(session_id)).await?;
        }
        self.kv.delete(&interrupt_key(session_id)).await?;
        self.kv
            .delete_if_equals(&lock_key(session_id), run_id.as_bytes())
            .await?;
        closed
    }

    /// Lines after `after` (replay, then live until the run ends); `None` when no log exists.
    pub(crate) async fn read(
        &self,
        session_id: &str,
        after: u64,
    ) -> Result<Option<LogReader>, StoreError> {
        self.logs.read(&log_name(session_id), after).await
    }

    /// Lines in the replay log of the run holding the session; 0 when none is running.
    pub(crate) async fn live_length(&self, session_id: &str) -> Result<u64, StoreError> {
        if self.holder(session_id).await?.is_none() {
            return Ok(0);
        }
        Ok(self
            .logs
            .info(&log_name(session_id))
            .await?
            .map_or(0, |info| info.len))
    }

    /// Removes the session's replay log (its readers end).
    pub(crate) async fn delete_log(&self, session_id: &str) -> Result<(), StoreError> {
        self.logs.delete(&log_name(session_id)).await
    }

    /// Every running session (records that expired are dropped from the index).
    pub(crate) async fn running(&self) -> Result<Vec<ActiveSession>, StoreError> {
        let mut out = Vec::new();
        for sid in self.kv.set_members(RUNS_KEY).await? {
            match self.kv.get(&record_key(&sid)).await? {
                Some(bytes) => {
                    if let Ok(record) = serde_json::from_slice::<Record>(&bytes) {
                        let mut s = record.session;
                        s.user_id = record.user_id;
                        s.run_id = record.run_id;
                        out.push(s);
                    }
                }
                None => self.kv.set_remove(RUNS_KEY, &sid).await?,
            }
        }
        out.sort_by(|a, b| {
            a.created_at
                .total_cmp(&b.created_at)
                .then_with(|| a.session_id.cmp(&b.session_id))
        });
        Ok(out)
    }

    /// The running record of one session.
    pub(crate) async fn running_session(
        &self,
        session_id: &str,
    ) -> Result<Option<ActiveSession>, StoreError> {
        Ok(self
            .running()
            .await?
            .into_iter()
            .find(|s| s.session_id == session_id))
    }
}
