//! `SeaOrmJobs`: the job table and the worker that runs it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::Utc;
use platform::Actor;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait,
    QueryFilter, QuerySelect, Set, Statement, TransactionTrait,
};
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore, watch};

use super::entities::agent_jobs;
use crate::jobs::{Job, JobKind, JobSettings, JobStatus};
use crate::service::Agents;
use crate::{AgentError, Language};

/// Submitting, reading and cancelling jobs.
#[async_trait]
pub trait AgentJobs: Send + Sync {
    async fn submit(&self, actor: &Actor, kind: JobKind) -> Result<Job, AgentError>;
    /// The job, to its owner or an admin (others: `NotFound`).
    async fn get(&self, actor: &Actor, id: &str) -> Result<Job, AgentError>;
    /// Requests cancellation (owner or admin); a pending job is cancelled at once, a running
    /// one is stopped.
    async fn cancel(&self, actor: &Actor, id: &str) -> Result<Job, AgentError>;
}

pub struct SeaOrmJobs {
    db: platform::db::Db,
    agents: Arc<dyn Agents>,
    settings: JobSettings,
    worker_id: String,
    wake: Notify,
    running: Mutex<HashMap<String, Arc<Notify>>>,
}

fn lang_tag(l: Language) -> &'static str {
    match l {
        Language::En => "en",
        Language::Zh => "zh",
    }
}

fn encode(kind: &JobKind) -> Value {
    match kind {
        JobKind::AutoGenerate {
            description,
            tools,
            language,
        } => {
            json!({"agent_description": description, "available_tools": tools, "language": lang_tag(*language)})
        }
        JobKind::OptimizePrompt {
            original,
            goal,
            language,
        } => {
            json!({"original_prompt": original, "optimization_goal": goal, "language": lang_tag(*language)})
        }
    }
}

fn decode(task_type: &str, input: &str) -> Option<JobKind> {
    let v: Value = serde_json::from_str(input).ok()?;
    let language =
        Language::from_tag(v["language"].as_str().unwrap_or("en")).unwrap_or(Language::En);
    match task_type {
        "agent_auto_generate" => Some(JobKind::AutoGenerate {
            description: v["agent_description"].as_str()?.to_owned(),
            tools: v["available_tools"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            language,
        }),
        "system_prompt_optimize" => Some(JobKind::OptimizePrompt {
            original: v["original_prompt"].as_str()?.to_owned(),
            goal: v["optimization_goal"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            language,
        }),
        _ => None,
    }
}

fn to_job(row: agent_jobs::Model) -> Job {
    let parse = |t: &Option<String>| t.as_deref().and_then(|s| serde_json::from_str(s).ok());
    Job {
        status: JobStatus::parse(&row.status),
        result: parse(&row.result),
        error: parse(&row.error),
        metadata: serde_json::from_str(&row.metadata).unwrap_or(Value::Null),
        id: row.id,
        task_type: row.task_type,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

fn lease_until(settings: &JobSettings) -> chrono::DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(settings.lease).unwrap_or(chrono::Duration::seconds(60))
}

impl SeaOrmJobs {
    pub fn new(db: platform::db::Db, agents: Arc<dyn Agents>, settings: JobSettings) -> Self {
        Self {
            db,
            agents,
            settings,
            worker_id: platform::ids::new_prefixed_id("worker_", 12),
            wake: Notify::new(),
            running: Mutex::new(HashMap::new()),
        }
    }

    async fn owned(&self, actor: &Actor, id: &str) -> Result<agent_jobs::Model, AgentError> {
        if !platform::ids::is_safe_id(id) {
            return Err(AgentError::TaskNotFound);
        }
        let mut query = agent_jobs::Entity::find_by_id(id.to_owned());
        if !actor.is_admin {
            query = query.filter(agent_jobs::Column::UserId.eq(actor.user_id.clone()));
        }
        query.one(&self.db).await?.ok_or(AgentError::TaskNotFound)
    }

    /// Claims one due job: pending, or running with an expired lease. The conditional update
    /// makes the claim exclusive across workers and replicas.
    async fn claim(&self) -> Result<Option<agent_jobs::Model>, AgentError> {
        let now = Utc::now();
        let due = platform::db::lease_due(
            agent_jobs::Column::Status,
            agent_jobs::Column::LockedUntil,
            "pending",
            "running",
            now,
        );
        let candidates = super::fair::fair_order(agent_jobs::Entity::find().filter(due.clone()))
            .limit(8)
            .all(&self.db)
            .await?;
        for candidate in candidates {
            let claimed = agent_jobs::Entity::update_many()
                .col_expr(agent_jobs::Column::Status, Expr::value("running"))
                .col_expr(
                    agent_jobs::Column::LockedBy,
                    Expr::value(self.worker_id.clone()),
                )
                .col_expr(
                    agent_jobs::Column::LockedUntil,
                    Expr::value(lease_until(&self.settings)),
                )
                .col_expr(
                    agent_jobs::Column::Attempts,
                    Expr::value(candidate.attempts + 1),
                )
                .col_expr(agent_jobs::Column::ClaimedAt, Expr::value(now))
                .col_expr(agent_jobs::Column::UpdatedAt, Expr::value(now))
                .filter(agent_jobs::Column::Id.eq(candidate.id.clone()))
                .filter(agent_jobs::Column::Attempts.eq(candidate.attempts))
                .filter(due.clone())
                .exec(&self.db)
                .await?;
            if claimed.rows_affected == 1 {
                let mut row = candidate;
                row.attempts += 1;
                row.locked_by = Some(self.worker_id.clone());
                return Ok(Some(row));
            }
        }
        Ok(None)
    }

    /// Ends a job this worker still holds.
    async fn finish(
        &self,
        id: &str,
        status: JobStatus,
        result: Option<Value>,
        error: Option<Value>,
    ) -> Result<(), AgentError> {
        agent_jobs::Entity::update_many()
            .col_expr(agent_jobs::Column::Status, Expr::value(status.as_str()))
            .col_expr(
                agent_jobs::Column::Result,
                Expr::value(result.map(|r| r.to_string())),
            )
            .col_expr(
                agent_jobs::Column::Error,
                Expr::value(error.map(|e| e.to_string())),
            )
            .col_expr(
                agent_jobs::Column::LockedUntil,
                Expr::value(Option::<chrono::DateTime<Utc>>::None),
            )
            .col_expr(agent_jobs::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(agent_jobs::Column::Id.eq(id.to_owned()))
            .filter(agent_jobs::Column::Status.eq("running"))
            .filter(agent_jobs::Column::LockedBy.eq(self.worker_id.clone()))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Renews the lease; `true` when cancellation was requested meanwhile.
    async fn heartbeat(&self, id: &str) -> Result<bool, AgentError> {
        agent_jobs::Entity::update_many()
            .col_expr(
                agent_jobs::Column::LockedUntil,
                Expr::value(lease_until(&self.settings)),
            )
            .filter(agent_jobs::Column::Id.eq(id.to_owned()))
            .filter(agent_jobs::Column::LockedBy.eq(self.worker_id.clone()))
            .filter(agent_jobs::Column::Status.eq("running"))
            .exec(&self.db)
            .await?;
        Ok(agent_jobs::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await?
            .is_some_and(|r| r.cancel_requested))
    }

    async fn run(self: Arc<Self>, job: agent_jobs::Model) {
        let id = job.id.clone();
        if job.attempts > self.settings.max_attempts {
            let message = format!(
                "the job was interrupted {} times and is not retried",
                job.attempts - 1
            );
            let _ = self
                .finish(
                    &id,
                    JobStatus::Failed,
                    None,
                    Some(json!({"message": message, "code": "TASK_FAILED"})),
                )
                .await;
            return;
        }
        let Some(kind) = decode(&job.task_type, &job.input) else {
            let _ = self
                .finish(
                    &id,
                    JobStatus::Failed,
                    None,
                    Some(json!({"message": "the job input is unreadable", "code": "TASK_FAILED"})),
                )
                .await;
            return;
        };
        let stop = Arc::new(Notify::new());
        if let Ok(mut running) = self.running.lock() {
            running.insert(id.clone(), stop.clone());
        }
        let actor = Actor::new(job.user_id.clone(), false);
        let work = async {
            match kind {
                JobKind::AutoGenerate {
                    description,
                    tools,
                    language,
                } => {
                    self.agents
                        .auto_generate(&actor, &description, tools, language)
                        .await
                }
                JobKind::OptimizePrompt {
                    original,
                    goal,
                    language,
                } => {
                    self.agents
                        .optimize_prompt(&actor, &original, &goal, language)
                        .await
                }
            }
        };
        let watcher = async {
            let mut tick = tokio::time::interval(self.settings.lease / 3);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = stop.notified() => return,
                    _ = tick.tick() => {
                        if self.heartbeat(&id).await.unwrap_or(false) {
                            return;
                        }
                    }
                }
            }
        };
        let outcome = tokio::select! {
            result = work => Some(result),
            () = watcher => None,
        };
        if let Ok(mut running) = self.running.lock() {
            running.remove(&id);
        }
        let finished = match outcome {
            None => {
                self.finish(
                    &id,
                    JobStatus::Cancelled,
                    None,
                    Some(json!({"message": "the job was cancelled", "code": "TASK_CANCELLED"})),
                )
                .await
            }
            Some(Ok(result)) => {
                self.finish(&id, JobStatus::Completed, Some(result), None)
                    .await
            }
            Some(Err(e)) => {
                let app_message = format!("{}: {e}", e.kind().status());
                self.finish(
                    &id,
                    JobStatus::Failed,
                    None,
                    Some(json!({"message": app_message, "code": "TASK_FAILED", "key": e.key()})),
                )
                .await
            }
        };
        if let Err(e) = finished {
            tracing::error!(job = %id, error = %e, "cannot record the end of a job; its lease will expire");
        }
    }

    async fn purge(&self) -> Result<(), AgentError> {
        let cutoff = Utc::now()
            - chrono::Duration::from_std(self.settings.retention)
                .unwrap_or(chrono::Duration::minutes(30));
        agent_jobs::Entity::delete_many()
            .filter(agent_jobs::Column::Status.is_in(["completed", "failed", "cancelled"]))
            .filter(agent_jobs::Column::UpdatedAt.lt(cutoff))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Runs due jobs until `shutdown` turns true. Then it claims nothing more, lets running
    /// jobs finish within `shutdown_grace`, and hands back the lease of any still running.
    pub async fn work(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let permits = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        let mut last_purge = std::time::Instant::now();
        loop {
            while tasks.try_join_next().is_some() {}
            if *shutdown.borrow() {
                self.drain(tasks).await;
                return;
            }
            loop {
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    break;
                };
                match self.claim().await {
                    Ok(Some(job)) => {
                        let me = self.clone();
                        tasks.spawn(async move {
                            me.run(job).await;
                            drop(permit);
                        });
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "claiming jobs failed");
                        break;
                    }
                }
            }
            let purge_every = self.settings.retention.clamp(
                std::time::Duration::from_secs(1),
                std::time::Duration::from_secs(60),
            );
            if last_purge.elapsed() >= purge_every {
                last_purge = std::time::Instant::now();
                if let Err(e) = self.purge().await {
                    tracing::warn!(error = %e, "purging finished jobs failed");
                }
            }
            tokio::select! {
                _ = shutdown.changed() => {}
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.settings.poll) => {}
            }
        }
    }

    /// Shutdown: waits up to `shutdown_grace` for running jobs, then stops the rest and makes
    /// them pending again with their attempt not counted, so another worker claims them at once
    /// instead of waiting for the lease to expire.
    async fn drain(&self, mut tasks: tokio::task::JoinSet<()>) {
        let all_done = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(self.settings.shutdown_grace, all_done)
            .await
            .is_ok()
        {
            return;
        }
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        if let Ok(mut map) = self.running.lock() {
            map.clear();
        }
        let released = agent_jobs::Entity::update_many()
            .col_expr(agent_jobs::Column::Status, Expr::value("pending"))
            .col_expr(
                agent_jobs::Column::LockedBy,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                agent_jobs::Column::LockedUntil,
                Expr::value(Option::<chrono::DateTime<Utc>>::None),
            )
            .col_expr(
                agent_jobs::Column::Attempts,
                sea_orm::sea_query::ExprTrait::sub(Expr::col(agent_jobs::Column::Attempts), 1),
            )
            .col_expr(agent_jobs::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(agent_jobs::Column::Status.eq("running"))
            .filter(agent_jobs::Column::LockedBy.eq(self.worker_id.clone()))
            .exec(&self.db)
            .await;
        match released {
            Ok(r) => tracing::info!(
                jobs = r.rows_affected,
                "handed back unfinished jobs at shutdown"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "cannot hand back unfinished jobs; their leases will expire")
            }
        }
    }
}

#[async_trait]
impl AgentJobs for SeaOrmJobs {
    async fn submit(&self, actor: &Actor, kind: JobKind) -> Result<Job, AgentError> {
        let metadata = match &kind {
            JobKind::AutoGenerate { description, .. } => {
                if description.trim().is_empty() {
                    return Err(AgentError::invalid("agent_description", "is required"));
                }
                json!({"agent_description": description.chars().take(120).collect::<String>()})
            }
            JobKind::OptimizePrompt { original, .. } => {
                if original.trim().is_empty() {
                    return Err(AgentError::invalid("original_prompt", "is required"));
                }
                json!({"original_length": original.chars().count()})
            }
        };
        crate::generate::job_messages(&kind, self.settings.max_input_chars)?;
        // The cap holds under concurrent submits: the row is inserted first and the count
        // taken in the same transaction, so on SQLite (one writer at a time) each submit sees
        // every earlier one; on PostgreSQL a per-user advisory lock orders them the same way.
        let limit = self.settings.max_unfinished_per_user;
        let txn = self.db.begin().await?;
        if txn.get_database_backend() == DbBackend::Postgres {
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                [format!("agent_jobs:{}", actor.user_id).into()],
            ))
            .await?;
        }
        let now = Utc::now();
        let row = agent_jobs::ActiveModel {
            id: Set(platform::ids::new_prefixed_id("task_", 12)),
            user_id: Set(actor.user_id.clone()),
            task_type: Set(kind.task_type().to_owned()),
            status: Set("pending".to_owned()),
            input: Set(encode(&kind).to_string()),
            result: Set(None),
            error: Set(None),
            metadata: Set(metadata.to_string()),
            attempts: Set(0),
            cancel_requested: Set(false),
            locked_by: Set(None),
            locked_until: Set(None),
            claimed_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await?;
        let unfinished = agent_jobs::Entity::find()
            .filter(agent_jobs::Column::UserId.eq(actor.user_id.clone()))
            .filter(agent_jobs::Column::Status.is_in(["pending", "running"]))
            .count(&txn)
            .await?;
        if unfinished > u64::from(limit) {
            txn.rollback().await?;
            return Err(AgentError::TooManyJobs { limit });
        }
        txn.commit().await?;
        self.wake.notify_one();
        Ok(to_job(row))
    }

    async fn get(&self, actor: &Actor, id: &str) -> Result<Job, AgentError> {
        Ok(to_job(self.owned(actor, id).await?))
    }

    async fn cancel(&self, actor: &Actor, id: &str) -> Result<Job, AgentError> {
        let row = self.owned(actor, id).await?;
        let now = Utc::now();
        // A pending job is cancelled at once; a running one is flagged and stopped.
        agent_jobs::Entity::update_many()
            .col_expr(agent_jobs::Column::Status, Expr::value("cancelled"))
            .col_expr(
                agent_jobs::Column::Error,
                Expr::value(Some(
                    json!({"message": "the job was cancelled", "code": "TASK_CANCELLED"})
                        .to_string(),
                )),
            )
            .col_expr(agent_jobs::Column::UpdatedAt, Expr::value(now))
            .filter(agent_jobs::Column::Id.eq(row.id.clone()))
            .filter(agent_jobs::Column::Status.eq("pending"))
            .exec(&self.db)
            .await?;
        agent_jobs::Entity::update_many()
            .col_expr(agent_jobs::Column::CancelRequested, Expr::value(true))
            .filter(agent_jobs::Column::Id.eq(row.id.clone()))
            .exec(&self.db)
            .await?;
        let local = self
            .running
            .lock()
            .ok()
            .and_then(|r| r.get(&row.id).cloned());
        if let Some(stop) = local {
            stop.notify_one();
        }
        let updated = agent_jobs::Entity::find_by_id(row.id.clone())
            .one(&self.db)
            .await?
            .ok_or(AgentError::TaskNotFound)?;
        Ok(to_job(updated))
    }
}

/// A deleted user's unfinished jobs are cancelled: pending ones at once, running ones are
/// stopped (here at once, on other replicas at their next heartbeat).
#[async_trait]
impl platform::UserCleanup for SeaOrmJobs {
    async fn user_deleted(&self, user_id: &str) -> Result<(), platform::actor::CleanupError> {
        agent_jobs::Entity::update_many()
            .col_expr(agent_jobs::Column::Status, Expr::value("cancelled"))
            .col_expr(
                agent_jobs::Column::Error,
                Expr::value(Some(
                    json!({"message": "the job was cancelled: its owner was deleted", "code": "TASK_CANCELLED"})
                        .to_string(),
                )),
            )
            .col_expr(agent_jobs::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(agent_jobs::Column::UserId.eq(user_id.to_owned()))
            .filter(agent_jobs::Column::Status.eq("pending"))
            .exec(&self.db)
            .await?;
        agent_jobs::Entity::update_many()
            .col_expr(agent_jobs::Column::CancelRequested, Expr::value(true))
            .filter(agent_jobs::Column::UserId.eq(user_id.to_owned()))
            .filter(agent_jobs::Column::Status.is_in(["pending", "running"]))
            .exec(&self.db)
            .await?;
        // Read after flagging, so a job claimed meanwhile is stopped here too.
        let running: Vec<String> = agent_jobs::Entity::find()
            .filter(agent_jobs::Column::UserId.eq(user_id.to_owned()))
            .filter(agent_jobs::Column::Status.eq("running"))
            .select_only()
            .column(agent_jobs::Column::Id)
            .into_tuple()
            .all(&self.db)
            .await?;
        let stops: Vec<Arc<Notify>> = self
            .running
            .lock()
            .map(|r| running.iter().filter_map(|id| r.get(id).cloned()).collect())
            .unwrap_or_default();
        for stop in stops {
            stop.notify_one();
        }
        Ok(())
    }
}
