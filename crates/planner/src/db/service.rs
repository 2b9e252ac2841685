//! `SeaOrmPlanner`: tasks, recurring templates and history in three tables.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, SubsecRound, Utc};
use chrono_tz::Tz;
use platform::clock::{Clock, SystemClock};
use platform::{Actor, Page, PageRequest};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};

use super::entities::{history, recurring, tasks};
use crate::schedule::{latest_fire, parse_cron, parse_time, parse_zone};
use crate::{
    AgentCheck, HistoryEntry, NewOneTime, NewRecurring, OneTimeChanges, Planner, PlannerError,
    RecurringChanges, RecurringTask, Task, TaskStatus,
};

/// Retries a failed task gets unless configured otherwise (4 attempts in all, as Sage).
pub const DEFAULT_MAX_RETRIES: i32 = 3;
const MAX_NAME_CHARS: usize = 200;
const MAX_DESCRIPTION_CHARS: usize = 10_000;
const MAX_RESPONSE_CHARS: usize = 100_000;

pub struct SeaOrmPlanner {
    db: platform::db::Db,
    agents: Arc<dyn AgentCheck>,
    clock: Arc<dyn Clock>,
    zone: Tz,
    lease: Duration,
    max_per_user: u64,
}

/// Unfinished stand-alone tasks plus recurring tasks one user may have, unless configured.
pub const DEFAULT_MAX_TASKS_PER_USER: u64 = 200;

impl SeaOrmPlanner {
    pub fn new(db: platform::db::Db, agents: Arc<dyn AgentCheck>) -> Self {
        Self {
            db,
            agents,
            clock: Arc::new(SystemClock),
            zone: Tz::UTC,
            lease: Duration::minutes(30),
            max_per_user: DEFAULT_MAX_TASKS_PER_USER,
        }
    }

    /// Unfinished (pending or running) stand-alone tasks plus recurring tasks one user may
    /// have (`SAGE_MAX_TASKS_PER_USER`); a new one past it is refused.
    pub fn with_quota(mut self, max_per_user: u64) -> Self {
        self.max_per_user = max_per_user;
        self
    }

    /// Refuses a new task when the caller's unfinished and recurring tasks reach the quota.
    async fn check_quota(&self, actor: &Actor) -> Result<(), PlannerError> {
        let unfinished = tasks::Entity::find()
            .filter(tasks::Column::UserId.eq(actor.user_id.clone()))
            .filter(tasks::Column::RecurringTaskId.is_null())
            .filter(tasks::Column::Status.is_in([
                TaskStatus::Pending.as_str(),
                TaskStatus::Processing.as_str(),
            ]))
            .count(&self.db)
            .await?;
        let recurring = recurring::Entity::find()
            .filter(recurring::Column::UserId.eq(actor.user_id.clone()))
            .count(&self.db)
            .await?;
        if unfinished + recurring >= self.max_per_user {
            return Err(PlannerError::QuotaExceeded {
                limit: self.max_per_user,
            });
        }
        Ok(())
    }

    /// The zone of tasks created without one (`SAGE_TIMEZONE`).
    pub fn with_zone(mut self, zone: Tz) -> Self {
        self.zone = zone;
        self
    }

    /// How long a claim holds before another worker may take the task again.
    pub fn with_lease(mut self, lease: std::time::Duration) -> Self {
        self.lease = Duration::from_std(lease).unwrap_or(self.lease);
        self
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Now, at the precision every backend stores (so a value read back compares equal).
    fn now(&self) -> DateTime<Utc> {
        self.clock.now().trunc_subsecs(6)
    }

    fn zone_or_default(&self, name: Option<&str>) -> Result<Tz, PlannerError> {
        match name.map(str::trim).filter(|s| !s.is_empty()) {
            Some(name) => parse_zone(name).map_err(|r| PlannerError::invalid("timezone", r)),
            None => Ok(self.zone),
        }
    }

    async fn check_agent(&self, actor: &Actor, agent_id: &str) -> Result<String, PlannerError> {
        let agent_id = agent_id.trim();
        if agent_id.is_empty() {
            return Err(PlannerError::invalid("agent_id", "must not be empty"));
        }
        if !platform::ids::is_safe_id(agent_id) || !self.agents.usable(actor, agent_id).await? {
            return Err(PlannerError::AgentNotFound);
        }
        Ok(agent_id.to_owned())
    }

    async fn own_task(&self, actor: &Actor, id: i64) -> Result<tasks::Model, PlannerError> {
        tasks::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .filter(|row| actor.is_admin || row.user_id == actor.user_id)
            .ok_or(PlannerError::NotFound)
    }

    async fn own_standalone(&self, actor: &Actor, id: i64) -> Result<tasks::Model, PlannerError> {
        let row = self.own_task(actor, id).await?;
        if row.recurring_task_id.is_some() {
            return Err(PlannerError::NotFound);
        }
        Ok(row)
    }

    async fn own_recurring(
        &self,
        actor: &Actor,
        id: i64,
    ) -> Result<recurring::Model, PlannerError> {
        recurring::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .filter(|row| actor.is_admin || row.user_id == actor.user_id)
            .ok_or(PlannerError::NotFound)
    }

    fn require_worker(actor: &Actor) -> Result<(), PlannerError> {
        if actor.is_admin {
            Ok(())
        } else {
            Err(PlannerError::Forbidden)
        }
    }

    async fn task_by_id(&self, id: i64) -> Result<tasks::Model, PlannerError> {
        tasks::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or(PlannerError::NotFound)
    }

    /// Spawns one instance of a recurring task if its latest fire is past the cursor.
    async fn spawn_one(
        &self,
        row: recurring::Model,
        now: DateTime<Utc>,
    ) -> Result<Option<Task>, PlannerError> {
        let (Ok(schedule), Ok(zone)) =
            (parse_cron(&row.cron_expression), parse_zone(&row.timezone))
        else {
            return Ok(None);
        };
        let Some(cursor) = row.last_executed_at else {
            // First sighting: start the cursor now, so nothing before it is backfilled.
            recurring::Entity::update_many()
                .col_expr(recurring::Column::LastExecutedAt, Expr::value(now))
                .filter(recurring::Column::Id.eq(row.id))
                .filter(recurring::Column::LastExecutedAt.is_null())
                .exec(&self.db)
                .await?;
            return Ok(None);
        };
        let Some(fire) = latest_fire(&schedule, zone, now).filter(|fire| *fire > cursor) else {
            return Ok(None);
        };
        let open = tasks::Entity::find()
            .filter(tasks::Column::RecurringTaskId.eq(row.id))
            .filter(tasks::Column::Status.is_in(["pending", "processing"]))
            .count(&self.db)
            .await?;
        if open > 0 {
            return Ok(None);
        }
        let txn = self.db.begin().await?;
        // The cursor moves by compare-and-set: of several replicas, one spawns.
        let moved = recurring::Entity::update_many()
            .col_expr(recurring::Column::LastExecutedAt, Expr::value(fire))
            .filter(recurring::Column::Id.eq(row.id))
            .filter(recurring::Column::LastExecutedAt.eq(cursor))
            .exec(&txn)
            .await?;
        if moved.rows_affected != 1 {
            return Ok(None);
        }
        let instance = tasks::ActiveModel {
            user_id: Set(row.user_id.clone()),
            name: Set(row.name.clone()),
            description: Set(row.description.clone()),
            agent_id: Set(row.agent_id.clone()),
            session_id: Set(row.session_id.clone()),
            execute_at: Set(fire),
            timezone: Set(row.timezone.clone()),
            status: Set(TaskStatus::Pending.as_str().to_owned()),
            created_at: Set(now),
            updated_at: Set(now),
            completed_at: Set(None),
            retry_count: Set(0),
            max_retries: Set(DEFAULT_MAX_RETRIES),
            recurring_task_id: Set(Some(row.id)),
            locked_until: Set(None),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        Ok(Some(to_task(instance)))
    }

    /// Ends a task with a history entry, in one transaction.
    async fn finish(
        &self,
        row: tasks::Model,
        status: TaskStatus,
        completed_at: Option<DateTime<Utc>>,
        retry_count: i32,
        response: Option<String>,
        error_message: Option<String>,
    ) -> Result<Task, PlannerError> {
        let now = self.now();
        let history_status = if status == TaskStatus::Completed {
            TaskStatus::Completed
        } else {
            TaskStatus::Failed
        };
        let txn = self.db.begin().await?;
        let mut active: tasks::ActiveModel = row.into();
        active.status = Set(status.as_str().to_owned());
        active.completed_at = Set(completed_at);
        active.retry_count = Set(retry_count);
        active.locked_until = Set(None);
        active.updated_at = Set(now);
        let updated = active.update(&txn).await?;
        history::ActiveModel {
            task_id: Set(updated.id),
            executed_at: Set(now),
            status: Set(history_status.as_str().to_owned()),
            response: Set(response.map(|r| bounded(r, MAX_RESPONSE_CHARS))),
            error_message: Set(error_message.map(|r| bounded(r, MAX_RESPONSE_CHARS))),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        Ok(to_task(updated))
    }

    /// Removes tasks (and their history) matching `filter`.
    async fn delete_tasks<C: sea_orm::ConnectionTrait>(
        conn: &C,
        filter: Condition,
    ) -> Result<(), PlannerError> {
        let ids: Vec<i64> = tasks::Entity::find()
            .select_only()
            .column(tasks::Column::Id)
            .filter(filter.clone())
            .into_tuple()
            .all(conn)
            .await?;
        for chunk in ids.chunks(500) {
            history::Entity::delete_many()
                .filter(history::Column::TaskId.is_in(chunk.iter().copied()))
                .exec(conn)
                .await?;
        }
        tasks::Entity::delete_many()
            .filter(filter)
            .exec(conn)
            .await?;
        Ok(())
    }
}

/// One page of an ordered query and the total it pages over.
async fn fetch_page<E>(
    db: &platform::db::Db,
    query: sea_orm::Select<E>,
    page: PageRequest,
) -> Result<(Vec<E::Model>, u64), PlannerError>
where
    E: EntityTrait,
    E::Model: Sync,
{
    let total = query.clone().count(db).await?;
    let rows = query
        .offset(page.offset())
        .limit(page.page_size())
        .all(db)
        .await?;
    Ok((rows, total))
}

fn bounded(mut text: String, max_chars: usize) -> String {
    if let Some((cut, _)) = text.char_indices().nth(max_chars) {
        text.truncate(cut);
    }
    text
}

fn zone_of(name: &str) -> Tz {
    parse_zone(name).unwrap_or(Tz::UTC)
}

fn to_task(row: tasks::Model) -> Task {
    Task {
        id: row.id,
        user_id: row.user_id,
        name: row.name,
        description: row.description,
        agent_id: row.agent_id,
        session_id: row.session_id,
        execute_at: row.execute_at,
        timezone: zone_of(&row.timezone),
        status: TaskStatus::parse(&row.status).unwrap_or(TaskStatus::Failed),
        created_at: row.created_at,
        updated_at: row.updated_at,
        completed_at: row.completed_at,
        retry_count: row.retry_count,
        max_retries: row.max_retries,
        recurring_task_id: row.recurring_task_id.unwrap_or(0),
    }
}

fn to_recurring(row: recurring::Model) -> RecurringTask {
    RecurringTask {
        id: row.id,
        user_id: row.user_id,
        name: row.name,
        description: row.description,
        session_id: row.session_id,
        agent_id: row.agent_id,
        cron_expression: row.cron_expression,
        timezone: zone_of(&row.timezone),
        enabled: row.enabled,
        created_at: row.created_at,
        updated_at: row.updated_at,
        last_executed_at: row.last_executed_at,
    }
}

fn to_history(row: history::Model) -> HistoryEntry {
    HistoryEntry {
        id: row.id,
        task_id: row.task_id,
        executed_at: row.executed_at,
        status: TaskStatus::parse(&row.status).unwrap_or(TaskStatus::Failed),
        response: row.response,
        error_message: row.error_message,
    }
}

/// A task name: trimmed, 1 to 200 characters, no control characters.
fn name(text: &str) -> Result<String, PlannerError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(PlannerError::invalid("name", "must not be empty"));
    }
    if text.chars().count() > MAX_NAME_CHARS {
        return Err(PlannerError::invalid(
            "name",
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(PlannerError::invalid(
            "name",
            "must not contain control characters",
        ));
    }
    Ok(text.to_owned())
}

/// An optional description: empty means none; at most 10,000 characters, no NUL.
fn description(text: Option<&str>) -> Result<Option<String>, PlannerError> {
    let Some(text) = text.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if text.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(PlannerError::invalid(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    if text.contains('\0') {
        return Err(PlannerError::invalid(
            "description",
            "must not contain NUL characters",
        ));
    }
    Ok(Some(text.to_owned()))
}

fn cron_of(expression: &str) -> Result<String, PlannerError> {
    parse_cron(expression).map_err(|r| PlannerError::invalid("cron_expression", r))?;
    Ok(expression.trim().to_owned())
}

fn session_id(prefix: &str, now: DateTime<Utc>) -> String {
    platform::ids::new_prefixed_id(&format!("{prefix}-{}-", now.timestamp()), 8)
}

fn owned_by(actor: &Actor, column: impl ColumnTrait) -> Condition {
    let mut condition = Condition::all();
    if !actor.is_admin {
        condition = condition.add(column.eq(actor.user_id.clone()));
    }
    condition
}

#[async_trait]
impl Planner for SeaOrmPlanner {
    async fn list_one_time(
        &self,
        actor: &Actor,
        agent_id: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<Task>, PlannerError> {
        let mut filter =
            owned_by(actor, tasks::Column::UserId).add(tasks::Column::RecurringTaskId.is_null());
        if let Some(agent_id) = agent_id {
            filter = filter.add(tasks::Column::AgentId.eq(agent_id));
        }
        let query = tasks::Entity::find()
            .filter(filter)
            .order_by_desc(tasks::Column::Id);
        let (rows, total) = fetch_page(&self.db, query, page).await?;
        Ok(Page {
            items: rows.into_iter().map(to_task).collect(),
            total,
        })
    }

    async fn get_one_time(&self, actor: &Actor, id: i64) -> Result<Task, PlannerError> {
        Ok(to_task(self.own_task(actor, id).await?))
    }

    async fn create_one_time(&self, actor: &Actor, new: NewOneTime) -> Result<Task, PlannerError> {
        let name = name(&new.name)?;
        let description = description(new.description.as_deref())?;
        let zone = self.zone_or_default(new.timezone.as_deref())?;
        let execute_at = parse_time(&new.execute_at, zone)
            .map_err(|r| PlannerError::invalid("execute_at", r))?;
        let agent_id = self.check_agent(actor, &new.agent_id).await?;
        self.check_quota(actor).await?;
        let now = self.now();
        let row = tasks::ActiveModel {
            user_id: Set(actor.user_id.clone()),
            name: Set(name),
            description: Set(description),
            agent_id: Set(agent_id),
            session_id: Set(session_id("one-time", now)),
            execute_at: Set(execute_at.trunc_subsecs(6)),
            timezone: Set(zone.name().to_owned()),
            status: Set(TaskStatus::Pending.as_str().to_owned()),
            created_at: Set(now),
            updated_at: Set(now),
            completed_at: Set(None),
            retry_count: Set(0),
            max_retries: Set(DEFAULT_MAX_RETRIES),
            recurring_task_id: Set(None),
            locked_until: Set(None),
            ..Default::default()
        }
        .insert(&self.db)
        .await?;
        Ok(to_task(row))
    }

    async fn update_one_time(
        &self,
        actor: &Actor,
        id: i64,
        changes: OneTimeChanges,
    ) -> Result<Task, PlannerError> {
        let row = self.own_standalone(actor, id).await?;
        let zone = match changes.timezone.as_deref() {
            Some(name) => self.zone_or_default(Some(name))?,
            None => zone_of(&row.timezone),
        };
        let mut active: tasks::ActiveModel = row.clone().into();
        if let Some(text) = changes.name.as_deref() {
            active.name = Set(name(text)?);
        }
        if let Some(text) = changes.description.as_deref() {
            active.description = Set(description(Some(text))?);
        }
        if let Some(text) = changes
            .execute_at
            .as_deref()
            .filter(|s| !s.trim().is_empty())
        {
            let at = parse_time(text, zone).map_err(|r| PlannerError::invalid("execute_at", r))?;
            let at = at.trunc_subsecs(6);
            if at != row.execute_at && row.status != TaskStatus::Processing.as_str() {
                // A new time schedules the task again.
                active.status = Set(TaskStatus::Pending.as_str().to_owned());
                active.retry_count = Set(0);
                active.completed_at = Set(None);
            }
            active.execute_at = Set(at);
        }
        if let Some(agent_id) = changes.agent_id.as_deref().filter(|s| !s.trim().is_empty()) {
            active.agent_id = Set(self.check_agent(actor, agent_id).await?);
        }
        active.timezone = Set(zone.name().to_owned());
        active.updated_at = Set(self.now());
        Ok(to_task(active.update(&self.db).await?))
    }

    async fn delete_one_time(&self, actor: &Actor, id: i64) -> Result<(), PlannerError> {
        let row = self.own_standalone(actor, id).await?;
        let txn = self.db.begin().await?;
        Self::delete_tasks(&txn, Condition::all().add(tasks::Column::Id.eq(row.id))).await?;
        txn.commit().await?;
        Ok(())
    }

    async fn one_time_history(
        &self,
        actor: &Actor,
        id: i64,
        limit: u64,
    ) -> Result<Vec<HistoryEntry>, PlannerError> {
        let row = self.own_task(actor, id).await?;
        let rows = history::Entity::find()
            .filter(history::Column::TaskId.eq(row.id))
            .order_by_desc(history::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(to_history).collect())
    }

    async fn list_recurring(
        &self,
        actor: &Actor,
        agent_id: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<RecurringTask>, PlannerError> {
        let mut filter = owned_by(actor, recurring::Column::UserId);
        if let Some(agent_id) = agent_id {
            filter = filter.add(recurring::Column::AgentId.eq(agent_id));
        }
        let query = recurring::Entity::find()
            .filter(filter)
            .order_by_desc(recurring::Column::Id);
        let (rows, total) = fetch_page(&self.db, query, page).await?;
        Ok(Page {
            items: rows.into_iter().map(to_recurring).collect(),
            total,
        })
    }

    async fn get_recurring(&self, actor: &Actor, id: i64) -> Result<RecurringTask, PlannerError> {
        Ok(to_recurring(self.own_recurring(actor, id).await?))
    }

    async fn create_recurring(
        &self,
        actor: &Actor,
        new: NewRecurring,
    ) -> Result<RecurringTask, PlannerError> {
        let name = name(&new.name)?;
        let description = description(new.description.as_deref())?;
        let cron_expression = cron_of(&new.cron_expression)?;
        let zone = self.zone_or_default(new.timezone.as_deref())?;
        let agent_id = self.check_agent(actor, &new.agent_id).await?;
        self.check_quota(actor).await?;
        let now = self.now();
        let row = recurring::ActiveModel {
            user_id: Set(actor.user_id.clone()),
            name: Set(name),
            description: Set(description),
            session_id: Set(session_id("recurring", now)),
            agent_id: Set(agent_id),
            cron_expression: Set(cron_expression),
            timezone: Set(zone.name().to_owned()),
            enabled: Set(new.enabled.unwrap_or(true)),
            created_at: Set(now),
            updated_at: Set(now),
            // Fires from now on; nothing before creation is run.
            last_executed_at: Set(Some(now)),
            ..Default::default()
        }
        .insert(&self.db)
        .await?;
        Ok(to_recurring(row))
    }

    async fn update_recurring(
        &self,
        actor: &Actor,
        id: i64,
        changes: RecurringChanges,
    ) -> Result<RecurringTask, PlannerError> {
        let row = self.own_recurring(actor, id).await?;
        let now = self.now();
        let mut rescheduled = false;
        let mut active: recurring::ActiveModel = row.clone().into();
        if let Some(text) = changes.name.as_deref() {
            active.name = Set(name(text)?);
        }
        if let Some(text) = changes.description.as_deref() {
            active.description = Set(description(Some(text))?);
        }
        if let Some(text) = changes.cron_expression.as_deref() {
            let expression = cron_of(text)?;
            rescheduled |= expression != row.cron_expression;
            active.cron_expression = Set(expression);
        }
        if let Some(text) = changes.timezone.as_deref().filter(|s| !s.trim().is_empty()) {
            let zone = self.zone_or_default(Some(text))?;
            rescheduled |= zone.name() != row.timezone;
            active.timezone = Set(zone.name().to_owned());
        }
        if let Some(agent_id) = changes.agent_id.as_deref().filter(|s| !s.trim().is_empty()) {
            active.agent_id = Set(self.check_agent(actor, agent_id).await?);
        }
        if let Some(enabled) = changes.enabled {
            rescheduled |= enabled && !row.enabled;
            active.enabled = Set(enabled);
        }
        if rescheduled {
            // A new schedule (or a re-enabled one) fires from now on, never retroactively.
            active.last_executed_at = Set(Some(now));
        }
        active.updated_at = Set(now);
        Ok(to_recurring(active.update(&self.db).await?))
    }

    async fn delete_recurring(&self, actor: &Actor, id: i64) -> Result<(), PlannerError> {
        let row = self.own_recurring(actor, id).await?;
        let txn = self.db.begin().await?;
        Self::delete_tasks(
            &txn,
            Condition::all().add(tasks::Column::RecurringTaskId.eq(row.id)),
        )
        .await?;
        recurring::Entity::delete_by_id(row.id).exec(&txn).await?;
        txn.commit().await?;
        Ok(())
    }

    async fn recurring_history(
        &self,
        actor: &Actor,
        id: i64,
        page: PageRequest,
    ) -> Result<Page<Task>, PlannerError> {
        let row = self.own_recurring(actor, id).await?;
        let query = tasks::Entity::find()
            .filter(tasks::Column::RecurringTaskId.eq(row.id))
            .order_by_desc(tasks::Column::ExecuteAt)
            .order_by_desc(tasks::Column::Id);
        let (rows, total) = fetch_page(&self.db, query, page).await?;
        Ok(Page {
            items: rows.into_iter().map(to_task).collect(),
            total,
        })
    }

    async fn spawn_due(&self, actor: &Actor) -> Result<Vec<Task>, PlannerError> {
        Self::require_worker(actor)?;
        let now = self.now();
        let templates = recurring::Entity::find()
            .filter(recurring::Column::Enabled.eq(true))
            .order_by_asc(recurring::Column::Id)
            .all(&self.db)
            .await?;
        let mut spawned = Vec::new();
        for row in templates {
            if let Some(task) = self.spawn_one(row, now).await? {
                spawned.push(task);
            }
        }
        Ok(spawned)
    }

    async fn due(&self, actor: &Actor, limit: u64) -> Result<Vec<Task>, PlannerError> {
        Self::require_worker(actor)?;
        let now = self.now();
        let rows = tasks::Entity::find()
            .filter(due_condition(now))
            .order_by_asc(tasks::Column::ExecuteAt)
            .order_by_asc(tasks::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(to_task).collect())
    }

    async fn claim(&self, actor: &Actor, id: i64) -> Result<bool, PlannerError> {
        Self::require_worker(actor)?;
        let now = self.now();
        self.task_by_id(id).await?;
        // Pending (whatever its time, as Sage), or claimed by a worker whose lease ran out.
        let claimable = platform::db::lease_due(
            tasks::Column::Status,
            tasks::Column::LockedUntil,
            TaskStatus::Pending.as_str(),
            TaskStatus::Processing.as_str(),
            now,
        );
        let claimed = tasks::Entity::update_many()
            .col_expr(
                tasks::Column::Status,
                Expr::value(TaskStatus::Processing.as_str()),
            )
            .col_expr(tasks::Column::LockedUntil, Expr::value(now + self.lease))
            .col_expr(tasks::Column::UpdatedAt, Expr::value(now))
            .filter(tasks::Column::Id.eq(id))
            .filter(claimable)
            .exec(&self.db)
            .await?;
        Ok(claimed.rows_affected == 1)
    }

    async fn complete(
        &self,
        actor: &Actor,
        id: i64,
        response: Option<String>,
    ) -> Result<Task, PlannerError> {
        Self::require_worker(actor)?;
        let row = self.task_by_id(id).await?;
        let retries = row.retry_count;
        let now = self.now();
        self.finish(
            row,
            TaskStatus::Completed,
            Some(now),
            retries,
            response,
            None,
        )
        .await
    }

    async fn fail(
        &self,
        actor: &Actor,
        id: i64,
        error_message: Option<String>,
    ) -> Result<Task, PlannerError> {
        Self::require_worker(actor)?;
        let row = self.task_by_id(id).await?;
        let retries = row.retry_count.saturating_add(1);
        let status = if retries <= row.max_retries {
            TaskStatus::Pending
        } else {
            TaskStatus::Failed
        };
        self.finish(row, status, None, retries, None, error_message)
            .await
    }

    async fn complete_recurring(
        &self,
        actor: &Actor,
        id: i64,
    ) -> Result<RecurringTask, PlannerError> {
        Self::require_worker(actor)?;
        let row = recurring::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or(PlannerError::NotFound)?;
        let now = self.now();
        let mut active: recurring::ActiveModel = row.into();
        active.last_executed_at = Set(Some(now));
        active.updated_at = Set(now);
        Ok(to_recurring(active.update(&self.db).await?))
    }
}

fn due_condition(now: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(
            Condition::all()
                .add(tasks::Column::Status.eq(TaskStatus::Pending.as_str()))
                .add(tasks::Column::ExecuteAt.lte(now)),
        )
        .add(
            Condition::all()
                .add(tasks::Column::Status.eq(TaskStatus::Processing.as_str()))
                .add(tasks::Column::LockedUntil.lt(now)),
        )
}

#[async_trait]
impl platform::UserCleanup for SeaOrmPlanner {
    async fn user_deleted(&self, user_id: &str) -> Result<(), platform::actor::CleanupError> {
        let txn = self.db.begin().await?;
        Self::delete_tasks(
            &txn,
            Condition::all().add(tasks::Column::UserId.eq(user_id)),
        )
        .await
        .map_err(Box::new)?;
        recurring::Entity::delete_many()
            .filter(recurring::Column::UserId.eq(user_id))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }
}
