//! Durable asynchronous agent jobs: rows with a status, attempts, a lease and a cancel flag.
//! Workers claim with a conditional update (only one replica wins), renew the lease while they
//! run, and finish only a job they still hold. A worker that dies leaves a lease that expires;
//! the job is then claimed again, and after too many attempts it fails with a reason. Nothing
//! stays `running` forever.

use std::time::Duration;

use serde_json::Value;

/// `pending → running → completed | failed | cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Pending,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> JobStatus {
        match text {
            "running" => JobStatus::Running,
            "completed" => JobStatus::Completed,
            "failed" => JobStatus::Failed,
            "cancelled" => JobStatus::Cancelled,
            _ => JobStatus::Pending,
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

/// What a job does.
#[derive(Debug, Clone, PartialEq)]
pub enum JobKind {
    AutoGenerate {
        description: String,
        tools: Vec<String>,
        language: crate::Language,
    },
    OptimizePrompt {
        original: String,
        goal: String,
        language: crate::Language,
    },
}

impl JobKind {
    pub fn task_type(&self) -> &'static str {
        match self {
            JobKind::AutoGenerate { .. } => "agent_auto_generate",
            JobKind::OptimizePrompt { .. } => "system_prompt_optimize",
        }
    }
}

/// A job as its owner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: String,
    pub task_type: String,
    pub status: JobStatus,
    pub result: Option<Value>,
    /// `{message, code}`.
    pub error: Option<Value>,
    pub metadata: Value,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// Worker tunables.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// How long a claim lasts without renewal.
    pub lease: Duration,
    /// Claims after which an interrupted job fails instead of running again.
    pub max_attempts: i32,
    /// Finished jobs are deleted this long after they finished.
    pub retention: Duration,
    /// Jobs run at once by one worker.
    pub concurrency: usize,
    /// How often an idle worker looks for due jobs.
    pub poll: Duration,
    /// Unfinished (pending or running) jobs one user may have; more answer 429.
    pub max_unfinished_per_user: u32,
    /// Largest text, in characters, a job may send to the model (`SAGE_MAX_PROMPT_CHARS`).
    pub max_input_chars: usize,
    /// At shutdown, how long running jobs may take to finish before their leases are handed
    /// back (pending again, claimable at once by another worker).
    pub shutdown_grace: Duration,
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(60),
            max_attempts: 3,
            retention: Duration::from_secs(30 * 60),
            concurrency: 4,
            poll: Duration::from_secs(1),
            max_unfinished_per_user: 20,
            max_input_chars: 64_000,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}
