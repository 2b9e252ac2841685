//! The planner as tools of a run (Sage's task-scheduler tools): `add_task`, `list_tasks`,
//! `get_task_details`, `update_task`, `delete_task`, `complete_task` and `enable_task`, acting
//! on the caller's own tasks through the planner service exactly as `/tasks/*` does. Ids are
//! Sage's `once_<id>` and `rec_<id>`. A run started by a scheduled task may read its tasks but
//! not add any (Sage says so in the task's message; here the tool refuses).

use std::sync::Arc;

use async_trait::async_trait;
use platform::{Actor, PageRequest};
use serde_json::{Value, json};
use tooling::{Tool, ToolContext, ToolError};

use crate::routes::tasks::{PlannerTaskDto, RecurringDto, TaskHistoryDto};

/// The agent id of runs that name no agent.
const NO_AGENT: &str = "default_agent";
/// History entries and instances `get_task_details` shows; characters of each response kept.
const DETAIL_ENTRIES: u64 = 10;
const RESPONSE_TAIL_CHARS: usize = 1000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Add,
    List,
    Details,
    Update,
    Delete,
    Complete,
    Enable,
}

const KINDS: [Kind; 7] = [
    Kind::Add,
    Kind::List,
    Kind::Details,
    Kind::Update,
    Kind::Delete,
    Kind::Complete,
    Kind::Enable,
];

/// Every task tool over `planner`.
pub(crate) fn all(planner: Arc<dyn planner::Planner>) -> Vec<Arc<dyn Tool>> {
    KINDS
        .iter()
        .map(|&kind| {
            Arc::new(TaskTool {
                kind,
                planner: planner.clone(),
            }) as Arc<dyn Tool>
        })
        .collect()
}

struct TaskTool {
    kind: Kind,
    planner: Arc<dyn planner::Planner>,
}

/// A task id of the tools: one-time or recurring.
enum TaskRef {
    Once(i64),
    Recurring(i64),
}

impl TaskRef {
    fn parse(args: &Value) -> Result<Self, ToolError> {
        let text = match &args["task_id"] {
            Value::String(s) => s.trim().to_owned(),
            Value::Number(n) => n.to_string(),
            _ => return Err(ToolError::Invalid("`task_id` is required".into())),
        };
        let (recurring, digits) = match text.strip_prefix("rec_") {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix("once_").unwrap_or(&text)),
        };
        let id = digits.parse::<i64>().map_err(|_| {
            ToolError::Invalid(format!("`{text}` is not a task id (once_<n> or rec_<n>)"))
        })?;
        Ok(if recurring {
            TaskRef::Recurring(id)
        } else {
            TaskRef::Once(id)
        })
    }
}

fn once_json(task: planner::Task) -> Value {
    let id = task.id;
    with_id(
        json!(PlannerTaskDto::from(task)),
        &format!("once_{id}"),
        "once",
    )
}

fn recurring_json(task: planner::RecurringTask) -> Value {
    let id = task.id;
    with_id(
        json!(RecurringDto::from(task)),
        &format!("rec_{id}"),
        "recurring",
    )
}

fn with_id(mut value: Value, task_id: &str, kind: &str) -> Value {
    value["task_id"] = json!(task_id);
    value["task_type"] = json!(kind);
    value
}

fn text(args: &Value, key: &str) -> Option<String> {
    args[key]
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn flag(args: &Value, key: &str) -> Option<bool> {
    match &args[key] {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// What the model reads for a planner refusal.
fn refused(e: planner::PlannerError) -> ToolError {
    match e {
        planner::PlannerError::Internal(e) => {
            tracing::error!(error = %e, "a task tool failed");
            ToolError::Failed("the task service failed; try again later".into())
        }
        other => ToolError::Failed(other.to_string()),
    }
}

impl TaskTool {
    /// The agent a new task runs: the one named, else the run's own.
    fn agent(args: &Value, ctx: &ToolContext) -> Result<String, ToolError> {
        match text(args, "agent_id") {
            Some(id) => Ok(id),
            None if ctx.agent_id != NO_AGENT => Ok(ctx.agent_id.clone()),
            None => Err(ToolError::Invalid(
                "`agent_id` is required: this run has no agent".into(),
            )),
        }
    }

    async fn add(
        &self,
        actor: &Actor,
        ctx: &ToolContext,
        args: &Value,
    ) -> Result<Value, ToolError> {
        if ctx.scheduled {
            return Err(ToolError::Failed(
                "a scheduled task's run may not schedule tasks".into(),
            ));
        }
        let name =
            text(args, "name").ok_or_else(|| ToolError::Invalid("`name` is required".into()))?;
        let schedule = text(args, "schedule")
            .ok_or_else(|| ToolError::Invalid("`schedule` is required".into()))?;
        let (description, timezone) = (text(args, "description"), text(args, "timezone"));
        let agent_id = Self::agent(args, ctx)?;
        let created = if flag(args, "is_recurring") == Some(true) {
            recurring_json(
                self.planner
                    .create_recurring(
                        actor,
                        planner::NewRecurring {
                            name,
                            description,
                            agent_id,
                            cron_expression: schedule,
                            timezone,
                            enabled: Some(true),
                        },
                    )
                    .await
                    .map_err(refused)?,
            )
        } else {
            once_json(
                self.planner
                    .create_one_time(
                        actor,
                        planner::NewOneTime {
                            name,
                            description,
                            agent_id,
                            execute_at: schedule,
                            timezone,
                        },
                    )
                    .await
                    .map_err(refused)?,
            )
        };
        Ok(json!({"status": "success", "task": created}))
    }

    async fn list(&self, actor: &Actor, args: &Value) -> Result<Value, ToolError> {
        let limit = args["limit"].as_u64().unwrap_or(50).clamp(1, 100);
        let page = PageRequest::new(Some(1), Some(limit)).unwrap_or_default();
        let agent = text(args, "agent_id");
        let status = text(args, "status");
        let mut tasks: Vec<Value> = self
            .planner
            .list_one_time(actor, agent.as_deref(), page)
            .await
            .map_err(refused)?
            .items
            .into_iter()
            .filter(|t| status.as_deref().is_none_or(|s| t.status.as_str() == s))
            .map(once_json)
            .collect();
        if flag(args, "include_recurring") != Some(false) {
            tasks.extend(
                self.planner
                    .list_recurring(actor, agent.as_deref(), page)
                    .await
                    .map_err(refused)?
                    .items
                    .into_iter()
                    .map(recurring_json),
            );
        }
        for task in &mut tasks {
            if let Some(t) = task.as_object_mut() {
                t.remove("description");
            }
        }
        tasks.truncate(usize::try_from(limit).unwrap_or(100));
        Ok(json!({"tasks": tasks}))
    }

    async fn details(&self, actor: &Actor, args: &Value) -> Result<Value, ToolError> {
        let tail = |text: Option<String>| {
            text.map(|t| {
                let n = t.chars().count();
                if n <= RESPONSE_TAIL_CHARS {
                    t
                } else {
                    let kept: String = t.chars().skip(n - RESPONSE_TAIL_CHARS).collect();
                    format!("...[truncated]{kept}")
                }
            })
        };
        match TaskRef::parse(args)? {
            TaskRef::Once(id) => {
                let task = self
                    .planner
                    .get_one_time(actor, id)
                    .await
                    .map_err(refused)?;
                let history: Vec<Value> = self
                    .planner
                    .one_time_history(actor, id, DETAIL_ENTRIES)
                    .await
                    .map_err(refused)?
                    .into_iter()
                    .map(|mut h| {
                        h.response = tail(h.response);
                        json!(TaskHistoryDto::from(h))
                    })
                    .collect();
                Ok(json!({"task": once_json(task), "history": history}))
            }
            TaskRef::Recurring(id) => {
                let task = self
                    .planner
                    .get_recurring(actor, id)
                    .await
                    .map_err(refused)?;
                let page = PageRequest::new(Some(1), Some(DETAIL_ENTRIES)).unwrap_or_default();
                let runs: Vec<Value> = self
                    .planner
                    .recurring_history(actor, id, page)
                    .await
                    .map_err(refused)?
                    .items
                    .into_iter()
                    .map(once_json)
                    .collect();
                Ok(json!({"task": recurring_json(task), "history": runs}))
            }
        }
    }

    async fn update(&self, actor: &Actor, args: &Value) -> Result<Value, ToolError> {
        let task = match TaskRef::parse(args)? {
            TaskRef::Once(id) => once_json(
                self.planner
                    .update_one_time(
                        actor,
                        id,
                        planner::OneTimeChanges {
                            name: text(args, "name"),
                            description: text(args, "description"),
                            agent_id: text(args, "agent_id"),
                            execute_at: text(args, "schedule"),
                            timezone: text(args, "timezone"),
                        },
                    )
                    .await
                    .map_err(refused)?,
            ),
            TaskRef::Recurring(id) => recurring_json(
                self.planner
                    .update_recurring(
                        actor,
                        id,
                        planner::RecurringChanges {
                            name: text(args, "name"),
                            description: text(args, "description"),
                            agent_id: text(args, "agent_id"),
                            cron_expression: text(args, "schedule"),
                            timezone: text(args, "timezone"),
                            enabled: flag(args, "enabled"),
                        },
                    )
                    .await
                    .map_err(refused)?,
            ),
        };
        Ok(json!({"status": "success", "task": task}))
    }

    async fn delete(&self, actor: &Actor, args: &Value) -> Result<Value, ToolError> {
        let task_id = match TaskRef::parse(args)? {
            TaskRef::Once(id) => {
                self.planner
                    .delete_one_time(actor, id)
                    .await
                    .map_err(refused)?;
                format!("once_{id}")
            }
            TaskRef::Recurring(id) => {
                self.planner
                    .delete_recurring(actor, id)
                    .await
                    .map_err(refused)?;
                format!("rec_{id}")
            }
        };
        Ok(json!({"status": "success", "deleted": task_id}))
    }

    /// A one-time task done by hand (no run); a recurring task's current fire counted as run.
    async fn complete(&self, actor: &Actor, args: &Value) -> Result<Value, ToolError> {
        // The owner's check first: the worker's protocol then records it.
        let worker = Actor::new("task_scheduler", true);
        let task = match TaskRef::parse(args)? {
            TaskRef::Once(id) => {
                let task = self
                    .planner
                    .get_one_time(actor, id)
                    .await
                    .map_err(refused)?;
                if task.status == planner::TaskStatus::Completed {
                    return Ok(json!({"status": "success", "task": once_json(task),
                                     "message": "the task was completed already"}));
                }
                once_json(
                    self.planner
                        .complete(&worker, id, Some("completed manually".into()))
                        .await
                        .map_err(refused)?,
                )
            }
            TaskRef::Recurring(id) => {
                self.planner
                    .get_recurring(actor, id)
                    .await
                    .map_err(refused)?;
                recurring_json(
                    self.planner
                        .complete_recurring(&worker, id)
                        .await
                        .map_err(refused)?,
                )
            }
        };
        Ok(json!({"status": "success", "task": task}))
    }

    async fn enable(&self, actor: &Actor, args: &Value) -> Result<Value, ToolError> {
        let TaskRef::Recurring(id) = TaskRef::parse(args)? else {
            return Err(ToolError::Invalid(
                "only recurring tasks (rec_<n>) can be enabled or disabled".into(),
            ));
        };
        let enabled = flag(args, "enabled").unwrap_or(true);
        let task = self
            .planner
            .update_recurring(
                actor,
                id,
                planner::RecurringChanges {
                    enabled: Some(enabled),
                    ..planner::RecurringChanges::default()
                },
            )
            .await
            .map_err(refused)?;
        Ok(json!({"status": "success", "task": recurring_json(task)}))
    }
}

#[async_trait]
impl Tool for TaskTool {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Add => "add_task",
            Kind::List => "list_tasks",
            Kind::Details => "get_task_details",
            Kind::Update => "update_task",
            Kind::Delete => "delete_task",
            Kind::Complete => "complete_task",
            Kind::Enable => "enable_task",
        }
    }

    fn builtin_server(&self) -> Option<&'static str> {
        Some("task_scheduler")
    }

    fn description(&self, language: &str) -> &str {
        let zh = language == "zh";
        match (self.kind, zh) {
            (Kind::Add, false) => {
                "Schedule a task for an agent (by default this one): once at a time (`schedule` in ISO 8601; without an offset it is read in `timezone`, else the deployment's zone), or recurring (`is_recurring: true`, `schedule` a cron expression such as \"0 9 * * *\"). The agent then runs the task's description as a message at that time."
            }
            (Kind::Add, true) => {
                "为智能体（默认是当前智能体）安排任务：一次性任务（schedule 为 ISO 8601 时间；不带时区偏移时按 timezone，否则按部署的时区解释），或周期任务（is_recurring 为 true，schedule 为 cron 表达式，如 \"0 9 * * *\"）。到时智能体会以任务描述作为消息执行。"
            }
            (Kind::List, false) => {
                "List your scheduled tasks (one-time `once_<n>` and recurring `rec_<n>`), optionally of one agent or one status (pending, processing, completed, failed)."
            }
            (Kind::List, true) => {
                "列出你的定时任务（一次性 once_<n> 与周期 rec_<n>），可按智能体或状态（pending、processing、completed、failed）筛选。"
            }
            (Kind::Details, false) => {
                "A task's details with its latest executions (responses cut to their last 1000 characters)."
            }
            (Kind::Details, true) => "查看任务详情及最近的执行记录（回复只保留最后 1000 个字符）。",
            (Kind::Update, false) => {
                "Change a task: name, description, agent, schedule (a time for once_<n>, a cron expression for rec_<n>), timezone, or enabled (recurring only). Fields left out stay."
            }
            (Kind::Update, true) => {
                "修改任务：名称、描述、智能体、schedule（once_<n> 为时间，rec_<n> 为 cron 表达式）、时区或 enabled（仅周期任务）。未给出的字段保持不变。"
            }
            (Kind::Delete, false) => {
                "Delete a task: a one-time task with its history, or a recurring task with its runs."
            }
            (Kind::Delete, true) => "删除任务：一次性任务连同执行记录，或周期任务连同其各次执行。",
            (Kind::Complete, false) => {
                "Mark a one-time task completed without running it, or count a recurring task's current fire as run."
            }
            (Kind::Complete, true) => {
                "把一次性任务标记为已完成（不执行），或把周期任务的本次触发记为已执行。"
            }
            (Kind::Enable, false) => {
                "Enable or disable a recurring task (rec_<n>); a disabled one schedules no runs."
            }
            (Kind::Enable, true) => "启用或停用周期任务（rec_<n>）；停用后不再安排执行。",
        }
    }

    fn parameters(&self) -> Value {
        let task_id = json!({"type": "string", "description": "once_<n> or rec_<n>"});
        match self.kind {
            Kind::Add => json!({"type": "object", "properties": {
                "name": {"type": "string"},
                "description": {"type": "string", "description": "What the agent is asked to do"},
                "agent_id": {"type": "string", "description": "Default: the current agent"},
                "schedule": {"type": "string", "description": "ISO 8601 time, or a cron expression when is_recurring"},
                "is_recurring": {"type": "boolean", "default": false},
                "timezone": {"type": "string", "description": "IANA zone, e.g. Asia/Shanghai"}
            }, "required": ["name", "schedule"]}),
            Kind::List => json!({"type": "object", "properties": {
                "agent_id": {"type": "string"},
                "status": {"type": "string", "enum": ["pending", "processing", "completed", "failed"]},
                "include_recurring": {"type": "boolean", "default": true},
                "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 50}
            }}),
            Kind::Details | Kind::Delete | Kind::Complete => json!({"type": "object",
                "properties": {"task_id": task_id}, "required": ["task_id"]}),
            Kind::Update => json!({"type": "object", "properties": {
                "task_id": task_id,
                "name": {"type": "string"},
                "description": {"type": "string"},
                "agent_id": {"type": "string"},
                "schedule": {"type": "string"},
                "timezone": {"type": "string"},
                "enabled": {"type": "boolean"}
            }, "required": ["task_id"]}),
            Kind::Enable => json!({"type": "object", "properties": {
                "task_id": task_id,
                "enabled": {"type": "boolean", "default": true}
            }, "required": ["task_id"]}),
        }
    }

    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        // The caller's own tasks, whoever the caller is: a tool never acts as an admin.
        let actor = Actor::new(ctx.user_id.clone(), false);
        match self.kind {
            Kind::Add => self.add(&actor, ctx, &args).await,
            Kind::List => self.list(&actor, &args).await,
            Kind::Details => self.details(&actor, &args).await,
            Kind::Update => self.update(&actor, &args).await,
            Kind::Delete => self.delete(&actor, &args).await,
            Kind::Complete => self.complete(&actor, &args).await,
            Kind::Enable => self.enable(&actor, &args).await,
        }
    }
}
