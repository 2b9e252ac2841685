//! The tool contract: a name, a localised description, a JSON schema and an async call.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use platform::store::KvStore;
use serde_json::Value;

/// A cancellation signal: set once, seen by every clone.
#[derive(Clone)]
pub struct Cancel(tokio::sync::watch::Receiver<bool>);

impl Cancel {
    /// A signal and the sender that raises it.
    pub fn new() -> (tokio::sync::watch::Sender<bool>, Cancel) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (tx, Cancel(rx))
    }

    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once cancelled (never, if the sender is dropped without cancelling).
    pub async fn cancelled(&self) {
        let mut rx = self.0.clone();
        if rx.wait_for(|c| *c).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// A note from a running call: `tool_progress` lines on `/api/stream`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressNote {
    pub tool_call_id: String,
    pub text: String,
    /// `stdout`, `stderr` or `info`.
    pub stream: &'static str,
    /// The last note of the call (the runtime sends it when the call returns).
    pub closed: bool,
}

/// Where a call reports progress; silent when the caller does not listen.
#[derive(Clone, Default)]
pub struct Progress {
    tx: Option<tokio::sync::mpsc::UnboundedSender<ProgressNote>>,
    tool_call_id: String,
}

impl Progress {
    /// Notes of call `tool_call_id` go to `tx`.
    pub fn new(
        tx: tokio::sync::mpsc::UnboundedSender<ProgressNote>,
        tool_call_id: impl Into<String>,
    ) -> Self {
        Self {
            tx: Some(tx),
            tool_call_id: tool_call_id.into(),
        }
    }

    /// A note nobody hears.
    pub fn silent() -> Self {
        Self::default()
    }

    fn send(&self, text: String, stream: &'static str, closed: bool) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(ProgressNote {
                tool_call_id: self.tool_call_id.clone(),
                text,
                stream,
                closed,
            });
        }
    }

    /// An `info` note.
    pub fn info(&self, text: impl Into<String>) {
        self.send(text.into(), "info", false);
    }

    /// A piece of the call's standard output.
    pub fn stdout(&self, text: impl Into<String>) {
        self.send(text.into(), "stdout", false);
    }

    /// A piece of the call's standard error.
    pub fn stderr(&self, text: impl Into<String>) {
        self.send(text.into(), "stderr", false);
    }

    /// The closing note (empty `info`, `closed: true`).
    pub fn close(&self) {
        self.send(String::new(), "info", true);
    }
}

/// What a call may touch.
#[derive(Clone)]
pub struct ToolContext {
    /// The agent's workspace root (exists); file tools never leave it.
    pub workspace: PathBuf,
    pub session_id: String,
    pub user_id: String,
    /// The agent the call runs for (`default_agent` when none).
    pub agent_id: String,
    /// Whether the run was started by a scheduled task (which may not schedule more).
    pub scheduled: bool,
    /// `en` or `zh`.
    pub language: String,
    /// Session state shared by replicas (the todo list).
    pub kv: Arc<dyn KvStore>,
    pub cancel: Cancel,
    /// Progress notes of this call (long-running tools report as they go).
    pub progress: Progress,
}

/// Why a call failed; the model sees the message.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("invalid arguments: {0}")]
    Invalid(String),
    #[error("{0}")]
    Failed(String),
    #[error("the tool did not finish within {0} seconds")]
    TimedOut(u64),
    #[error("the call was cancelled")]
    Cancelled,
    #[error("no such tool: {0}")]
    Unknown(String),
}

impl From<platform::confined::InvalidPath> for ToolError {
    fn from(e: platform::confined::InvalidPath) -> Self {
        ToolError::Invalid(e.0)
    }
}

impl From<platform::confined::ConfinedError> for ToolError {
    fn from(e: platform::confined::ConfinedError) -> Self {
        use platform::confined::ConfinedError as E;
        match e {
            E::Symlink => ToolError::Failed(
                "the path goes through a symbolic link: symbolic links in the workspace are \
                 refused, never followed, even when they point inside it"
                    .into(),
            ),
            E::BadName => ToolError::Failed("the path is not a regular file or directory".into()),
            E::Io(e) => ToolError::Failed(e.to_string()),
            other => ToolError::Failed(other.to_string()),
        }
    }
}

/// A finished call: the JSON the model sees, and whether it failed.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutput {
    pub content: Value,
    pub is_error: bool,
}

/// One tool.
#[async_trait]
pub trait Tool: Send + Sync {
    fn name(&self) -> &str;
    /// The description in `language` (`en` or `zh`; anything else is `en`).
    fn description(&self, language: &str) -> &str;
    /// The JSON schema of the arguments (an object schema).
    fn parameters(&self) -> Value;
    /// Whether the tool changes files (a direct call of it needs an admin).
    fn writes(&self) -> bool {
        false
    }
    /// The built-in MCP server Sage lists the tool under (`task_scheduler` for the planner's
    /// tools): the catalogue shows such tools as `sage_mcp`; `None` for the basic tools.
    fn builtin_server(&self) -> Option<&'static str> {
        None
    }
    /// How long one call may take, when not the registry's limit (a tool that waits for
    /// the user).
    fn time_limit(&self) -> Option<std::time::Duration> {
        None
    }
    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<Value, ToolError>;
}

/// The session todo list (`todo_write`, `todo_read`, `tasks_status`).
pub mod todos {
    use platform::store::{KvStore, StoreError};
    use serde_json::Value;

    /// How long a session's list is kept after its last change.
    pub const TTL: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

    pub fn key(session_id: &str) -> String {
        format!("chat:todos:{session_id}")
    }

    /// The stored tasks (`[]` when none).
    pub async fn load(kv: &dyn KvStore, session_id: &str) -> Result<Vec<Value>, StoreError> {
        Ok(kv
            .get(&key(session_id))
            .await?
            .and_then(|b| serde_json::from_slice::<Vec<Value>>(&b).ok())
            .unwrap_or_default())
    }

    pub async fn save(
        kv: &dyn KvStore,
        session_id: &str,
        tasks: &[Value],
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(tasks).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        kv.set(&key(session_id), &bytes, Some(TTL)).await
    }
}
