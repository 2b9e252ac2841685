//! The planner: `/tasks/one-time*`, `/tasks/recurring*` and the worker's `/tasks/internal/*`.
//! Plain JSON answers (no envelope); failures are `{"detail", "code"}` (the scope's
//! middleware renders every error so). The work lives in `planner`.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{Next, from_fn};
use actix_web::web;
use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use planner::{HistoryEntry, RecurringTask, Task};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::{AppError, plain_error_response};
use crate::extract::{ApiJson, ApiQuery, parse_json};
use crate::routes::conversations::query_number;
use crate::state::AppState;

/// The `/tasks` scope.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/tasks")
            .wrap(from_fn(plain_errors))
            .service(
                web::resource("/one-time")
                    .route(web::get().to(list_one_time))
                    .route(web::post().to(create_one_time)),
            )
            .service(
                web::resource("/one-time/{task_id}")
                    .route(web::get().to(get_one_time))
                    .route(web::put().to(update_one_time))
                    .route(web::delete().to(delete_one_time)),
            )
            .service(
                web::resource("/one-time/{task_id}/history").route(web::get().to(one_time_history)),
            )
            .service(
                web::resource("/recurring")
                    .route(web::get().to(list_recurring))
                    .route(web::post().to(create_recurring)),
            )
            .service(
                web::resource("/recurring/{task_id}")
                    .route(web::get().to(get_recurring))
                    .route(web::put().to(update_recurring))
                    .route(web::delete().to(delete_recurring)),
            )
            .service(
                web::resource("/recurring/{task_id}/toggle")
                    .route(web::post().to(toggle_recurring)),
            )
            .service(
                web::resource("/recurring/{task_id}/history")
                    .route(web::get().to(recurring_history)),
            )
            .service(web::resource("/internal/spawn-due").route(web::post().to(spawn_due)))
            .service(web::resource("/internal/due").route(web::get().to(due)))
            .service(
                web::resource("/internal/one-time/{task_id}/claim").route(web::post().to(claim)),
            )
            .service(
                web::resource("/internal/one-time/{task_id}/complete")
                    .route(web::post().to(complete)),
            )
            .service(web::resource("/internal/one-time/{task_id}/fail").route(web::post().to(fail)))
            .service(
                web::resource("/internal/recurring/{task_id}/complete")
                    .route(web::post().to(complete_recurring)),
            ),
    );
}

/// Every failure under `/tasks` answers `{"detail", "code"}`, extractor failures included.
async fn plain_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let res = next.call(req).await?;
    let plain = res
        .response()
        .error()
        .and_then(|e| e.as_error::<AppError>())
        .map(plain_error_response);
    Ok(match plain {
        Some(body) => res.into_response(body),
        None => res.map_into_boxed_body(),
    })
}

type TaskResult<T> = Result<web::Json<T>, AppError>;

/// A task id from the path; one that cannot exist is as missing as an unknown one.
fn task_id(path: web::Path<String>) -> Result<i64, AppError> {
    path.into_inner()
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| AppError::from(planner::PlannerError::NotFound))
}

fn page_of(
    page: Option<String>,
    page_size: Option<String>,
) -> Result<platform::PageRequest, AppError> {
    let page = query_number("page", page, 1..=platform::pagination::MAX_PAGE)?;
    let page_size = query_number(
        "page_size",
        page_size,
        1..=platform::pagination::MAX_PAGE_SIZE,
    )?;
    platform::PageRequest::new(page, page_size)
        .map_err(|e| AppError::validation("query", e.field(), &e.to_string()))
}

fn non_empty(v: Option<String>) -> Option<String> {
    crate::routes::chat::non_empty(v)
}

fn time_in(at: DateTime<Utc>, zone: Tz) -> String {
    at.with_timezone(&zone)
        .to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

// DTOs

/// A one-time task (or an instance a recurring task spawned: `recurring_task_id` > 0).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PlannerTaskDto {
    id: i64,
    user_id: String,
    name: String,
    description: Option<String>,
    agent_id: String,
    session_id: String,
    /// RFC 3339 in the task's `timezone`.
    execute_at: String,
    /// IANA zone.
    timezone: String,
    /// `pending`, `processing`, `completed` or `failed`.
    status: String,
    created_at: String,
    updated_at: String,
    completed_at: Option<String>,
    retry_count: i32,
    max_retries: i32,
    /// 0 for a stand-alone task.
    recurring_task_id: i64,
}

impl From<Task> for PlannerTaskDto {
    fn from(t: Task) -> Self {
        let zone = t.timezone;
        Self {
            id: t.id,
            user_id: t.user_id,
            name: t.name,
            description: t.description,
            agent_id: t.agent_id,
            session_id: t.session_id,
            execute_at: time_in(t.execute_at, zone),
            timezone: zone.name().to_owned(),
            status: t.status.as_str().to_owned(),
            created_at: time_in(t.created_at, zone),
            updated_at: time_in(t.updated_at, zone),
            completed_at: t.completed_at.map(|at| time_in(at, zone)),
            retry_count: t.retry_count,
            max_retries: t.max_retries,
            recurring_task_id: t.recurring_task_id,
        }
    }
}

/// A recurring (cron) task.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RecurringDto {
    id: i64,
    user_id: String,
    name: String,
    description: Option<String>,
    session_id: String,
    agent_id: String,
    /// Minute hour day month weekday, evaluated in `timezone`.
    cron_expression: String,
    timezone: String,
    enabled: bool,
    created_at: String,
    updated_at: String,
    /// Fires up to here have been run.
    last_executed_at: Option<String>,
}

impl From<RecurringTask> for RecurringDto {
    fn from(t: RecurringTask) -> Self {
        let zone = t.timezone;
        Self {
            id: t.id,
            user_id: t.user_id,
            name: t.name,
            description: t.description,
            session_id: t.session_id,
            agent_id: t.agent_id,
            cron_expression: t.cron_expression,
            timezone: zone.name().to_owned(),
            enabled: t.enabled,
            created_at: time_in(t.created_at, zone),
            updated_at: time_in(t.updated_at, zone),
            last_executed_at: t.last_executed_at.map(|at| time_in(at, zone)),
        }
    }
}

/// One execution of a task.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TaskHistoryDto {
    id: i64,
    task_id: i64,
    executed_at: String,
    /// `completed` or `failed`.
    status: String,
    response: Option<String>,
    error_message: Option<String>,
}

impl From<HistoryEntry> for TaskHistoryDto {
    fn from(h: HistoryEntry) -> Self {
        Self {
            id: h.id,
            task_id: h.task_id,
            executed_at: h.executed_at.to_rfc3339_opts(SecondsFormat::AutoSi, false),
            status: h.status.as_str().to_owned(),
            response: h.response,
            error_message: h.error_message,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TaskPageDto {
    items: Vec<PlannerTaskDto>,
    total: u64,
    page: u64,
    page_size: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RecurringPageDto {
    items: Vec<RecurringDto>,
    total: u64,
    page: u64,
    page_size: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TaskItemsDto {
    items: Vec<PlannerTaskDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SuccessDto {
    success: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ClaimDto {
    claimed: bool,
}

/// A `/tasks` failure.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TaskErrorDto {
    /// A sentence in the caller's language.
    detail: String,
    /// The stable key (docs/errors.md).
    code: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// From 1 (default 1).
    page: Option<String>,
    /// 1 to 100 (default 20).
    page_size: Option<String>,
    /// Only this agent's tasks.
    agent_id: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageParams {
    /// From 1 (default 1).
    page: Option<String>,
    /// 1 to 100 (default 20).
    page_size: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LimitParams {
    /// 1 to 100 (default 20).
    limit: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DueParams {
    /// 1 to 500 (default 100).
    limit: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct OneTimeCreate {
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    #[schema(max_length = 10000)]
    description: Option<String>,
    agent_id: String,
    /// RFC 3339; without an offset it is read in `timezone`.
    execute_at: String,
    /// IANA zone (default: the deployment's, `SAGE_TIMEZONE`).
    timezone: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct OneTimeUpdate {
    #[schema(min_length = 1, max_length = 200)]
    name: Option<String>,
    #[schema(max_length = 10000)]
    description: Option<String>,
    agent_id: Option<String>,
    /// A new time schedules a finished task again.
    execute_at: Option<String>,
    timezone: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct RecurringCreate {
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    #[schema(max_length = 10000)]
    description: Option<String>,
    agent_id: String,
    /// 5 fields (minute hour day month weekday), or 6 with seconds first.
    #[schema(min_length = 1, max_length = 256)]
    cron_expression: String,
    timezone: Option<String>,
    /// Default true.
    enabled: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct RecurringUpdate {
    #[schema(min_length = 1, max_length = 200)]
    name: Option<String>,
    #[schema(max_length = 10000)]
    description: Option<String>,
    agent_id: Option<String>,
    #[schema(min_length = 1, max_length = 256)]
    cron_expression: Option<String>,
    timezone: Option<String>,
    enabled: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ToggleBody {
    enabled: bool,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub(crate) struct CompleteBody {
    response: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub(crate) struct FailBody {
    error_message: Option<String>,
}

/// An optional JSON body: none (or an empty one) is the default.
fn optional_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, AppError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        parse_json(body)
    }
}

// One-time tasks

/// The caller's stand-alone one-time tasks, newest first (admins: everyone's).
#[utoipa::path(get, path = "/tasks/one-time", tag = "planner", params(ListParams),
    responses((status = 200, body = TaskPageDto), (status = 422, body = TaskErrorDto)))]
pub(crate) async fn list_one_time(
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<ListParams>,
) -> TaskResult<TaskPageDto> {
    let q = query.0;
    let page = page_of(q.page, q.page_size)?;
    let agent = non_empty(q.agent_id);
    let found = state
        .planner
        .list_one_time(&caller.actor(), agent.as_deref(), page)
        .await?;
    Ok(web::Json(TaskPageDto {
        items: found.items.into_iter().map(PlannerTaskDto::from).collect(),
        total: found.total,
        page: page.page(),
        page_size: page.page_size(),
    }))
}

/// One task (spawned instances included).
#[utoipa::path(get, path = "/tasks/one-time/{task_id}", tag = "planner", params(("task_id" = String, Path)),
    responses((status = 200, body = PlannerTaskDto), (status = 404, body = TaskErrorDto)))]
pub(crate) async fn get_one_time(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> TaskResult<PlannerTaskDto> {
    let id = task_id(path)?;
    let task = state.planner.get_one_time(&caller.actor(), id).await?;
    Ok(web::Json(task.into()))
}

/// Create a one-time task for one of the caller's agents.
#[utoipa::path(post, path = "/tasks/one-time", tag = "planner", request_body = OneTimeCreate,
    responses((status = 200, body = PlannerTaskDto), (status = 404, description = "Unknown agent", body = TaskErrorDto),
              (status = 409, description = "`task.quota_exceeded`", body = TaskErrorDto),
              (status = 422, body = TaskErrorDto)))]
pub(crate) async fn create_one_time(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<OneTimeCreate>,
) -> TaskResult<PlannerTaskDto> {
    let b = body.0;
    let new = planner::NewOneTime {
        name: b.name,
        description: b.description,
        agent_id: b.agent_id,
        execute_at: b.execute_at,
        timezone: b.timezone,
    };
    let task = state.planner.create_one_time(&caller.actor(), new).await?;
    Ok(web::Json(task.into()))
}

/// Change a stand-alone one-time task (absent fields are kept).
#[utoipa::path(put, path = "/tasks/one-time/{task_id}", tag = "planner", params(("task_id" = String, Path)),
    request_body = OneTimeUpdate,
    responses((status = 200, body = PlannerTaskDto), (status = 404, body = TaskErrorDto), (status = 422, body = TaskErrorDto)))]
pub(crate) async fn update_one_time(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: ApiJson<OneTimeUpdate>,
) -> TaskResult<PlannerTaskDto> {
    let id = task_id(path)?;
    let b = body.0;
    let changes = planner::OneTimeChanges {
        name: b.name,
        description: b.description,
        agent_id: b.agent_id,
        execute_at: b.execute_at,
        timezone: b.timezone,
    };
    let task = state
        .planner
        .update_one_time(&caller.actor(), id, changes)
        .await?;
    Ok(web::Json(task.into()))
}

/// Delete a stand-alone one-time task and its history.
#[utoipa::path(delete, path = "/tasks/one-time/{task_id}", tag = "planner", params(("task_id" = String, Path)),
    responses((status = 200, body = SuccessDto), (status = 404, body = TaskErrorDto)))]
pub(crate) async fn delete_one_time(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> TaskResult<SuccessDto> {
    let id = task_id(path)?;
    state.planner.delete_one_time(&caller.actor(), id).await?;
    Ok(web::Json(SuccessDto { success: true }))
}

/// A task's executions, newest first.
#[utoipa::path(get, path = "/tasks/one-time/{task_id}/history", tag = "planner",
    params(("task_id" = String, Path), LimitParams),
    responses((status = 200, body = Vec<TaskHistoryDto>), (status = 404, body = TaskErrorDto), (status = 422, body = TaskErrorDto)))]
pub(crate) async fn one_time_history(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: ApiQuery<LimitParams>,
) -> TaskResult<Vec<TaskHistoryDto>> {
    let id = task_id(path)?;
    let limit = query_number("limit", query.0.limit, 1..=100)?.unwrap_or(20);
    let entries = state
        .planner
        .one_time_history(&caller.actor(), id, limit)
        .await?;
    Ok(web::Json(
        entries.into_iter().map(TaskHistoryDto::from).collect(),
    ))
}

// Recurring tasks

/// The caller's recurring tasks, newest first (admins: everyone's).
#[utoipa::path(get, path = "/tasks/recurring", tag = "planner", params(ListParams),
    responses((status = 200, body = RecurringPageDto), (status = 422, body = TaskErrorDto)))]
pub(crate) async fn list_recurring(
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<ListParams>,
) -> TaskResult<RecurringPageDto> {
    let q = query.0;
    let page = page_of(q.page, q.page_size)?;
    let agent = non_empty(q.agent_id);
    let found = state
        .planner
        .list_recurring(&caller.actor(), agent.as_deref(), page)
        .await?;
    Ok(web::Json(RecurringPageDto {
        items: found.items.into_iter().map(RecurringDto::from).collect(),
        total: found.total,
        page: page.page(),
        page_size: page.page_size(),
    }))
}

#[utoipa::path(get, path = "/tasks/recurring/{task_id}", tag = "planner", params(("task_id" = String, Path)),
    responses((status = 200, body = RecurringDto), (status = 404, body = TaskErrorDto)))]
pub(crate) async fn get_recurring(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> TaskResult<RecurringDto> {
    let id = task_id(path)?;
    let task = state.planner.get_recurring(&caller.actor(), id).await?;
    Ok(web::Json(task.into()))
}

/// Create a recurring task; an invalid cron expression or zone is a 422.
#[utoipa::path(post, path = "/tasks/recurring", tag = "planner", request_body = RecurringCreate,
    responses((status = 200, body = RecurringDto), (status = 404, description = "Unknown agent", body = TaskErrorDto),
              (status = 409, description = "`task.quota_exceeded`", body = TaskErrorDto),
              (status = 422, body = TaskErrorDto)))]
pub(crate) async fn create_recurring(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<RecurringCreate>,
) -> TaskResult<RecurringDto> {
    let b = body.0;
    let new = planner::NewRecurring {
        name: b.name,
        description: b.description,
        agent_id: b.agent_id,
        cron_expression: b.cron_expression,
        timezone: b.timezone,
        enabled: b.enabled,
    };
    let task = state.planner.create_recurring(&caller.actor(), new).await?;
    Ok(web::Json(task.into()))
}

/// Change a recurring task; a new schedule fires from now on.
#[utoipa::path(put, path = "/tasks/recurring/{task_id}", tag = "planner", params(("task_id" = String, Path)),
    request_body = RecurringUpdate,
    responses((status = 200, body = RecurringDto), (status = 404, body = TaskErrorDto), (status = 422, body = TaskErrorDto)))]
pub(crate) async fn update_recurring(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: ApiJson<RecurringUpdate>,
) -> TaskResult<RecurringDto> {
    let id = task_id(path)?;
    let b = body.0;
    let changes = planner::RecurringChanges {
        name: b.name,
        description: b.description,
        agent_id: b.agent_id,
        cron_expression: b.cron_expression,
        timezone: b.timezone,
        enabled: b.enabled,
    };
    let task = state
        .planner
        .update_recurring(&caller.actor(), id, changes)
        .await?;
    Ok(web::Json(task.into()))
}

/// Delete a recurring task with its instances and their history.
#[utoipa::path(delete, path = "/tasks/recurring/{task_id}", tag = "planner", params(("task_id" = String, Path)),
    responses((status = 200, body = SuccessDto), (status = 404, body = TaskErrorDto)))]
pub(crate) async fn delete_recurring(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> TaskResult<SuccessDto> {
    let id = task_id(path)?;
    state.planner.delete_recurring(&caller.actor(), id).await?;
    Ok(web::Json(SuccessDto { success: true }))
}

/// Enable or disable a recurring task (re-enabling fires from now on, not retroactively).
#[utoipa::path(post, path = "/tasks/recurring/{task_id}/toggle", tag = "planner", params(("task_id" = String, Path)),
    request_body = ToggleBody,
    responses((status = 200, body = RecurringDto), (status = 404, body = TaskErrorDto), (status = 422, body = TaskErrorDto)))]
pub(crate) async fn toggle_recurring(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: ApiJson<ToggleBody>,
) -> TaskResult<RecurringDto> {
    let id = task_id(path)?;
    let changes = planner::RecurringChanges {
        enabled: Some(body.0.enabled),
        ..planner::RecurringChanges::default()
    };
    let task = state
        .planner
        .update_recurring(&caller.actor(), id, changes)
        .await?;
    Ok(web::Json(task.into()))
}

/// The instances a recurring task spawned, latest first.
#[utoipa::path(get, path = "/tasks/recurring/{task_id}/history", tag = "planner",
    params(("task_id" = String, Path), PageParams),
    responses((status = 200, body = TaskPageDto), (status = 404, body = TaskErrorDto), (status = 422, body = TaskErrorDto)))]
pub(crate) async fn recurring_history(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: ApiQuery<PageParams>,
) -> TaskResult<TaskPageDto> {
    let id = task_id(path)?;
    let q = query.0;
    let page = page_of(q.page, q.page_size)?;
    let found = state
        .planner
        .recurring_history(&caller.actor(), id, page)
        .await?;
    Ok(web::Json(TaskPageDto {
        items: found.items.into_iter().map(PlannerTaskDto::from).collect(),
        total: found.total,
        page: page.page(),
        page_size: page.page_size(),
    }))
}

// The worker's protocol (admins and the worker token)

/// Materialise due fires of recurring tasks into pending instances.
#[utoipa::path(post, path = "/tasks/internal/spawn-due", tag = "planner",
    responses((status = 200, body = TaskItemsDto), (status = 403, body = TaskErrorDto)))]
pub(crate) async fn spawn_due(
    state: web::Data<AppState>,
    caller: Caller,
) -> TaskResult<TaskItemsDto> {
    let spawned = state.planner.spawn_due(&caller.actor()).await?;
    Ok(web::Json(TaskItemsDto {
        items: spawned.into_iter().map(PlannerTaskDto::from).collect(),
    }))
}

/// Pending tasks whose time has come, oldest first.
#[utoipa::path(get, path = "/tasks/internal/due", tag = "planner", params(DueParams),
    responses((status = 200, body = TaskItemsDto), (status = 403, body = TaskErrorDto), (status = 422, body = TaskErrorDto)))]
pub(crate) async fn due(
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<DueParams>,
) -> TaskResult<TaskItemsDto> {
    let limit = query_number("limit", query.0.limit, 1..=500)?.unwrap_or(100);
    let found = state.planner.due(&caller.actor(), limit).await?;
    Ok(web::Json(TaskItemsDto {
        items: found.into_iter().map(PlannerTaskDto::from).collect(),
    }))
}

/// Take a task (`pending → processing`); `claimed` is false when another worker was first.
#[utoipa::path(post, path = "/tasks/internal/one-time/{task_id}/claim", tag = "planner",
    params(("task_id" = String, Path)),
    responses((status = 200, body = ClaimDto), (status = 403, body = TaskErrorDto), (status = 404, body = TaskErrorDto)))]
pub(crate) async fn claim(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> TaskResult<ClaimDto> {
    let id = task_id(path)?;
    let claimed = state.planner.claim(&caller.actor(), id).await?;
    Ok(web::Json(ClaimDto { claimed }))
}

/// Record a success.
#[utoipa::path(post, path = "/tasks/internal/one-time/{task_id}/complete", tag = "planner",
    params(("task_id" = String, Path)), request_body(content = CompleteBody, description = "Optional"),
    responses((status = 200, body = PlannerTaskDto), (status = 403, body = TaskErrorDto), (status = 404, body = TaskErrorDto)))]
pub(crate) async fn complete(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Bytes,
) -> TaskResult<PlannerTaskDto> {
    let id = task_id(path)?;
    let b: CompleteBody = optional_body(&body)?;
    let task = state
        .planner
        .complete(&caller.actor(), id, b.response)
        .await?;
    Ok(web::Json(task.into()))
}

/// Record a failure: pending again while retries remain, else failed.
#[utoipa::path(post, path = "/tasks/internal/one-time/{task_id}/fail", tag = "planner",
    params(("task_id" = String, Path)), request_body(content = FailBody, description = "Optional"),
    responses((status = 200, body = PlannerTaskDto), (status = 403, body = TaskErrorDto), (status = 404, body = TaskErrorDto)))]
pub(crate) async fn fail(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Bytes,
) -> TaskResult<PlannerTaskDto> {
    let id = task_id(path)?;
    let b: FailBody = optional_body(&body)?;
    let task = state
        .planner
        .fail(&caller.actor(), id, b.error_message)
        .await?;
    Ok(web::Json(task.into()))
}

/// Mark a run of a recurring task done (`last_executed_at` = now).
#[utoipa::path(post, path = "/tasks/internal/recurring/{task_id}/complete", tag = "planner",
    params(("task_id" = String, Path)),
    responses((status = 200, body = RecurringDto), (status = 403, body = TaskErrorDto), (status = 404, body = TaskErrorDto)))]
pub(crate) async fn complete_recurring(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> TaskResult<RecurringDto> {
    let id = task_id(path)?;
    let task = state
        .planner
        .complete_recurring(&caller.actor(), id)
        .await?;
    Ok(web::Json(task.into()))
}
