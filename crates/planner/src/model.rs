//! Tasks as the service hands them out and takes them in.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// Where a task is in its life: `pending → processing` (claimed) `→ completed | pending
/// (a retry) | failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    Pending,
    Processing,
    Completed,
    Failed,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Processing => "processing",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => TaskStatus::Pending,
            "processing" => TaskStatus::Processing,
            "completed" => TaskStatus::Completed,
            "failed" => TaskStatus::Failed,
            _ => return None,
        })
    }
}

/// A one-time task: stand-alone, or an instance a recurring task spawned
/// (`recurring_task_id` > 0).
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: i64,
    pub user_id: String,
    pub name: String,
    pub description: Option<String>,
    pub agent_id: String,
    pub session_id: String,
    pub execute_at: DateTime<Utc>,
    /// The zone the task's times are shown in.
    pub timezone: Tz,
    pub status: TaskStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub retry_count: i32,
    pub max_retries: i32,
    /// 0 for a stand-alone task.
    pub recurring_task_id: i64,
}

/// A recurring task: a cron template that spawns one-time instances.
#[derive(Debug, Clone, PartialEq)]
pub struct RecurringTask {
    pub id: i64,
    pub user_id: String,
    pub name: String,
    pub description: Option<String>,
    pub session_id: String,
    pub agent_id: String,
    /// As the user wrote it (5 fields, or 6 with seconds).
    pub cron_expression: String,
    /// The zone the cron expression is evaluated in.
    pub timezone: Tz,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The spawn cursor: fires up to here have been materialised.
    pub last_executed_at: Option<DateTime<Utc>>,
}

/// One execution of a task.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    pub id: i64,
    pub task_id: i64,
    pub executed_at: DateTime<Utc>,
    /// `completed` or `failed`.
    pub status: TaskStatus,
    pub response: Option<String>,
    pub error_message: Option<String>,
}

/// A new one-time task. Times are RFC 3339; one without an offset is read in `timezone`.
#[derive(Debug, Clone, Default)]
pub struct NewOneTime {
    pub name: String,
    pub description: Option<String>,
    pub agent_id: String,
    pub execute_at: String,
    /// An IANA zone; the deployment's when absent.
    pub timezone: Option<String>,
}

/// Changes to a one-time task; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct OneTimeChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub agent_id: Option<String>,
    pub execute_at: Option<String>,
    pub timezone: Option<String>,
}

/// A new recurring task.
#[derive(Debug, Clone, Default)]
pub struct NewRecurring {
    pub name: String,
    pub description: Option<String>,
    pub agent_id: String,
    pub cron_expression: String,
    pub timezone: Option<String>,
    /// Enabled unless told otherwise.
    pub enabled: Option<bool>,
}

/// Changes to a recurring task; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct RecurringChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub agent_id: Option<String>,
    pub cron_expression: Option<String>,
    pub timezone: Option<String>,
    pub enabled: Option<bool>,
}
