//! The planner service: what users do with their tasks, and the protocol the worker speaks.

use async_trait::async_trait;
use platform::{Actor, Page, PageRequest};

use crate::{
    HistoryEntry, NewOneTime, NewRecurring, OneTimeChanges, PlannerError, RecurringChanges,
    RecurringTask, Task,
};

/// Whether the caller may run an agent (implemented by the application over the agents
/// crate, which this crate does not depend on).
#[async_trait]
pub trait AgentCheck: Send + Sync {
    async fn usable(&self, actor: &Actor, agent_id: &str) -> Result<bool, anyhow::Error>;
}

#[async_trait]
pub trait Planner: Send + Sync {
    /// Stand-alone one-time tasks, newest first (admins: everyone's).
    async fn list_one_time(
        &self,
        actor: &Actor,
        agent_id: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<Task>, PlannerError>;

    /// One task, a spawned instance included.
    async fn get_one_time(&self, actor: &Actor, id: i64) -> Result<Task, PlannerError>;

    async fn create_one_time(&self, actor: &Actor, new: NewOneTime) -> Result<Task, PlannerError>;

    /// Changes a stand-alone task (instances belong to their recurring task: `NotFound`).
    async fn update_one_time(
        &self,
        actor: &Actor,
        id: i64,
        changes: OneTimeChanges,
    ) -> Result<Task, PlannerError>;

    /// Deletes a stand-alone task and its history.
    async fn delete_one_time(&self, actor: &Actor, id: i64) -> Result<(), PlannerError>;

    /// A task's executions, newest first.
    async fn one_time_history(
        &self,
        actor: &Actor,
        id: i64,
        limit: u64,
    ) -> Result<Vec<HistoryEntry>, PlannerError>;

    async fn list_recurring(
        &self,
        actor: &Actor,
        agent_id: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<RecurringTask>, PlannerError>;

    async fn get_recurring(&self, actor: &Actor, id: i64) -> Result<RecurringTask, PlannerError>;

    /// Creates a recurring task; an invalid cron expression or zone is refused here.
    async fn create_recurring(
        &self,
        actor: &Actor,
        new: NewRecurring,
    ) -> Result<RecurringTask, PlannerError>;

    async fn update_recurring(
        &self,
        actor: &Actor,
        id: i64,
        changes: RecurringChanges,
    ) -> Result<RecurringTask, PlannerError>;

    /// Deletes a recurring task with its instances and their history.
    async fn delete_recurring(&self, actor: &Actor, id: i64) -> Result<(), PlannerError>;

    /// The instances a recurring task spawned, latest `execute_at` first.
    async fn recurring_history(
        &self,
        actor: &Actor,
        id: i64,
        page: PageRequest,
    ) -> Result<Page<Task>, PlannerError>;

    // The worker's protocol (admins and the worker only).

    /// Materialises due fires: per enabled recurring task, the first sighting only sets the
    /// cursor (no backfill); afterwards the latest fire past the cursor becomes one pending
    /// instance unless one is still pending or running (missed fires collapse into one).
    async fn spawn_due(&self, actor: &Actor) -> Result<Vec<Task>, PlannerError>;

    /// Pending tasks whose time has come (and claimed ones whose lease ran out), oldest first.
    async fn due(&self, actor: &Actor, limit: u64) -> Result<Vec<Task>, PlannerError>;

    /// Atomically takes a due task (`pending → processing`, with a lease); false when another
    /// worker was first or the task is not due.
    async fn claim(&self, actor: &Actor, id: i64) -> Result<bool, PlannerError>;

    /// Records a success: `completed`, with its history entry.
    async fn complete(
        &self,
        actor: &Actor,
        id: i64,
        response: Option<String>,
    ) -> Result<Task, PlannerError>;

    /// Records a failure: back to `pending` while retries remain, else `failed`.
    async fn fail(
        &self,
        actor: &Actor,
        id: i64,
        error_message: Option<String>,
    ) -> Result<Task, PlannerError>;

    /// Marks a run of a recurring task done (`last_executed_at` = now).
    async fn complete_recurring(
        &self,
        actor: &Actor,
        id: i64,
    ) -> Result<RecurringTask, PlannerError>;
}
