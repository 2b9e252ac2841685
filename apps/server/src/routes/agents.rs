//! Agents: `/api/agent/*`. Configurations travel as `AgentConfigDTO` (camelCase); the agents
//! crate validates them and decides who may see or change what.

use actix_web::{HttpRequest, HttpResponse, web};
use agents::Language;
use platform::PageRequest;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::auth::{Caller, ModelCaller};
use crate::error::AppError;
use crate::extract::{ApiJson, ApiQuery};
use crate::response::{ApiOk, ApiResult, Envelope};
use crate::state::AppState;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    // Literal segments first: `/{agent_id}` would otherwise capture them.
    cfg.service(
        web::scope("/agent")
            .service(web::resource("/list").route(web::get().to(list_agents)))
            .service(
                web::resource("/template/default_system_prompt")
                    .route(web::get().to(default_prompt)),
            )
            .service(web::resource("/create").route(web::post().to(create_agent)))
            .service(web::resource("/auto-generate").route(web::post().to(auto_generate)))
            .service(
                web::resource("/auto-generate/submit").route(web::post().to(submit_auto_generate)),
            )
            .service(
                web::resource("/system-prompt/optimize/submit")
                    .route(web::post().to(submit_optimize)),
            )
            .service(web::resource("/tasks/{task_id}").route(web::get().to(get_task)))
            .service(web::resource("/tasks/{task_id}/cancel").route(web::post().to(cancel_task)))
            .service(
                web::resource("/system-prompt/optimize").route(web::post().to(optimize_prompt)),
            )
            .service(web::resource("/abilities").route(web::post().to(abilities)))
            .configure(crate::routes::workspaces::configure)
            .service(
                web::resource("/{agent_id}")
                    .route(web::get().to(get_agent))
                    .route(web::put().to(update_agent))
                    .route(web::delete().to(delete_agent)),
            )
            .service(
                web::resource("/{agent_id}/auth")
                    .route(web::get().to(get_grants))
                    .route(web::post().to(set_grants)),
            ),
    );
}

/// Body language, then `X-accept-language`, then `Accept-Language`, then English.
fn language(req: &HttpRequest, explicit: Option<&str>) -> Language {
    explicit
        .and_then(Language::from_tag)
        .or_else(|| {
            ["x-accept-language", "accept-language"]
                .iter()
                .find_map(|h| {
                    req.headers()
                        .get(*h)
                        .and_then(|v| v.to_str().ok())
                        .and_then(Language::from_tag)
                })
        })
        .unwrap_or(Language::En)
}

/// A list page's agents as assembled JSON (documented as `Vec<AgentConfigDto>`), shared
/// with the service's cache rather than copied.
#[derive(Debug, ToSchema)]
#[schema(value_type = Vec<AgentConfigFields>)]
pub(crate) struct RawAgents(std::sync::Arc<agents::JsonPage>);

impl Serialize for RawAgents {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.items.serialize(serializer)
    }
}

/// `AgentConfigDTO` as it travels (a validated JSON document; its published schema is
/// [`AgentConfigFields`]).
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[schema(value_type = AgentConfigFields)]
pub(crate) struct AgentConfigDto(Map<String, Value>);

/// `AgentConfigDTO` (camelCase; the snake_case spellings of the spec are read too; unknown
/// fields are dropped). The limits are the ones the server enforces (docs/agents.md).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"name": "Research helper", "systemPrefix": "You help with research.", "maxLoopCount": 10,
    "agentMode": "simple", "availableTools": ["web_search"], "deepThinking": false}))]
#[allow(dead_code)] // Documentation only: the document's schema of `AgentConfigDto`.
pub(crate) struct AgentConfigFields {
    #[schema(min_length = 1, max_length = 128, pattern = "\\S")]
    name: String,
    #[schema(minimum = 1, maximum = 10000)]
    max_loop_count: u32,
    #[schema(max_length = 10000)]
    description: Option<String>,
    #[schema(max_length = 65536)]
    system_prefix: Option<String>,
    /// Free-form context (at most 65,536 characters as JSON).
    system_context: Option<Map<String, Value>>,
    /// Workflow name → steps (at most 65,536 characters as JSON).
    available_workflows: Option<std::collections::BTreeMap<String, Vec<String>>>,
    #[schema(max_items = 200, inline)]
    available_tools: Option<Vec<ShortText>>,
    #[schema(max_items = 200, inline)]
    available_sub_agent_ids: Option<Vec<ShortText>>,
    /// `manual` or `auto_all`.
    #[schema(value_type = Option<String>, pattern = "^(manual|auto_all)$")]
    sub_agent_selection_mode: Option<String>,
    #[schema(max_items = 200, inline)]
    available_skills: Option<Vec<ShortText>>,
    #[schema(max_items = 200, inline)]
    available_knowledge_bases: Option<Vec<ShortText>>,
    /// `session` or `user`.
    #[schema(pattern = "^(session|user)$")]
    memory_type: Option<String>,
    deep_thinking: Option<bool>,
    #[schema(max_length = 256)]
    thinking_level: Option<String>,
    #[serde(rename = "llm_provider_id")]
    #[schema(max_length = 256)]
    llm_provider_id: Option<String>,
    #[serde(rename = "fast_llm_provider_id")]
    #[schema(max_length = 256)]
    fast_llm_provider_id: Option<String>,
    enable_multimodal: Option<bool>,
    multi_agent: Option<bool>,
    /// `simple` (also spelled `default`), `fibre` or `team`.
    #[schema(pattern = "^(simple|default|fibre|team)$")]
    agent_mode: Option<String>,
    #[serde(rename = "is_default")]
    is_default: Option<bool>,
    /// In answers: the agent's id.
    #[schema(read_only)]
    id: Option<String>,
    /// In answers: the owner.
    #[serde(rename = "user_id")]
    #[schema(read_only)]
    user_id: Option<String>,
    #[serde(rename = "created_at")]
    #[schema(read_only)]
    created_at: Option<String>,
    #[serde(rename = "updated_at")]
    #[schema(read_only)]
    updated_at: Option<String>,
}

/// A list entry of a configuration: at most 256 characters.
#[derive(Debug, Serialize, ToSchema)]
#[schema(max_length = 256)]
pub(crate) struct ShortText(String);

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AgentIdDto {
    agent_id: String,
}

/// The agent list's page size when the client names none: Sage's web UI asks without
/// parameters and shows what the first page holds.
const AGENT_PAGE_SIZE: u64 = platform::pagination::MAX_PAGE_SIZE;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AgentPageQuery {
    /// 1-based page (default 1; 0 means unset).
    #[param(minimum = 0, maximum = 1_000_000)]
    page: Option<u64>,
    /// Agents per page (default and most 100; 0 means unset).
    #[param(minimum = 0, maximum = 100)]
    page_size: Option<u64>,
}

/// Own and granted agents (admins: all), newest first, one page at a time. `data` stays
/// Sage's plain array; `X-Total-Count` gives the number of agents over all pages.
#[utoipa::path(get, path = "/api/agent/list", tag = "agent", params(AgentPageQuery),
    responses((status = 200, body = Envelope<Vec<AgentConfigDto>>,
        headers(("X-Total-Count" = u64, description = "Agents visible to the caller over all pages"))),
        (status = 422, description = "Page out of range")))]
pub(crate) async fn list_agents(
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<AgentPageQuery>,
) -> Result<HttpResponse, AppError> {
    let unset_zero = |v: Option<u64>| v.filter(|n| *n != 0);
    let page = PageRequest::new(
        unset_zero(query.0.page),
        unset_zero(query.0.page_size).or(Some(AGENT_PAGE_SIZE)),
    )
    .map_err(|e| AppError::validation("query", e.field(), &e.to_string()))?;
    // Each agent's JSON is assembled from its stored text, not parsed and re-serialised.
    let agents = state.agents.list_json(&caller.actor(), page).await?;
    let total = agents.total;
    let mut response = ApiOk(RawAgents(agents)).into_response();
    response.headers_mut().insert(
        actix_web::http::header::HeaderName::from_static("x-total-count"),
        actix_web::http::header::HeaderValue::from(total),
    );
    Ok(response)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct TemplateQuery {
    /// `en` or `zh` (else the request's language headers).
    language: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ContentDto {
    content: String,
}

/// The default system-prompt template.
#[utoipa::path(get, path = "/api/agent/template/default_system_prompt", tag = "agent", params(TemplateQuery),
    responses((status = 200, body = Envelope<ContentDto>)))]
pub(crate) async fn default_prompt(
    req: HttpRequest,
    _caller: Caller,
    query: ApiQuery<TemplateQuery>,
) -> ApiResult<ContentDto> {
    let lang = language(&req, query.0.language.as_deref());
    Ok(ApiOk(ContentDto {
        content: agents::default_system_prompt(lang, "Sage"),
    }))
}

/// Create an agent owned by the caller.
#[utoipa::path(post, path = "/api/agent/create", tag = "agent", request_body = AgentConfigDto,
    responses((status = 200, body = Envelope<AgentIdDto>), (status = 409, description = "Name taken"),
              (status = 422, description = "Invalid field (named)")))]
pub(crate) async fn create_agent(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<AgentConfigDto>,
) -> ApiResult<AgentIdDto> {
    let agent_id = state.agents.create(&caller.actor(), body.0.0).await?;
    Ok(ApiOk(AgentIdDto { agent_id }))
}

/// Read an agent (owner, grantee or admin; others 404).
#[utoipa::path(get, path = "/api/agent/{agent_id}", tag = "agent", params(("agent_id" = String, Path)),
    responses((status = 200, body = Envelope<AgentConfigDto>), (status = 404, description = "Unknown or not visible")))]
pub(crate) async fn get_agent(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<AgentConfigDto> {
    let agent = state
        .agents
        .get(&caller.actor(), &path.into_inner())
        .await?;
    Ok(ApiOk(AgentConfigDto(agent.to_dto())))
}

/// Replace an agent's configuration (owner or admin).
#[utoipa::path(put, path = "/api/agent/{agent_id}", tag = "agent", params(("agent_id" = String, Path)),
    request_body = AgentConfigDto,
    responses((status = 200, body = Envelope<AgentIdDto>), (status = 403, description = "Granted, not owned"),
              (status = 404, description = "Unknown or not visible")))]
pub(crate) async fn update_agent(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: ApiJson<AgentConfigDto>,
) -> ApiResult<AgentIdDto> {
    let agent_id = state
        .agents
        .update(&caller.actor(), &path.into_inner(), body.0.0)
        .await?;
    Ok(ApiOk(AgentIdDto { agent_id }))
}

/// Delete an agent (owner or admin).
#[utoipa::path(delete, path = "/api/agent/{agent_id}", tag = "agent", params(("agent_id" = String, Path)),
    responses((status = 200, body = Envelope<AgentIdDto>), (status = 403, description = "Granted, not owned"),
              (status = 404, description = "Unknown or not visible")))]
pub(crate) async fn delete_agent(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<AgentIdDto> {
    let agent_id = state
        .workspaces
        .delete_agent(&caller.actor(), &path.into_inner())
        .await?;
    Ok(ApiOk(AgentIdDto { agent_id }))
}

/// The users the agent is shared with (owner or admin).
#[utoipa::path(get, path = "/api/agent/{agent_id}/auth", tag = "agent", params(("agent_id" = String, Path)),
    responses((status = 200, body = Envelope<Vec<String>>)))]
pub(crate) async fn get_grants(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<Vec<String>> {
    let users = state
        .agents
        .grants(&caller.actor(), &path.into_inner())
        .await?;
    Ok(ApiOk(users))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct GrantsBody {
    user_ids: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct GrantsDto {
    user_ids: Vec<String>,
}

/// Replace the users the agent is shared with (owner or admin).
#[utoipa::path(post, path = "/api/agent/{agent_id}/auth", tag = "agent", params(("agent_id" = String, Path)),
    request_body = GrantsBody, responses((status = 200, body = Envelope<GrantsDto>)))]
pub(crate) async fn set_grants(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: ApiJson<GrantsBody>,
) -> ApiResult<GrantsDto> {
    let user_ids = state
        .agents
        .set_grants(&caller.actor(), &path.into_inner(), body.0.user_ids)
        .await?;
    Ok(ApiOk(GrantsDto { user_ids }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct AutoGenerateBody {
    agent_description: String,
    #[serde(default)]
    available_tools: Vec<String>,
    language: Option<String>,
}

/// A draft agent from a description, written by the caller's model.
#[utoipa::path(post, path = "/api/agent/auto-generate", tag = "agent", request_body = AutoGenerateBody,
    responses((status = 200, body = Envelope<Object>), (status = 409, description = "No provider configured"),
              (status = 502, description = "The model failed or answered unusably"),
              (status = 413, description = "Too much text for the model (`SAGE_MAX_PROMPT_CHARS`)"), (status = 429, description = "Model-call rate limit (`Retry-After`)")))]
pub(crate) async fn auto_generate(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: ModelCaller,
    body: ApiJson<AutoGenerateBody>,
) -> ApiResult<Value> {
    let b = body.0;
    let lang = language(&req, b.language.as_deref());
    let draft = state
        .agents
        .auto_generate(
            &caller.actor(),
            &b.agent_description,
            b.available_tools,
            lang,
        )
        .await?;
    Ok(ApiOk(draft))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct PromptOptimizeBody {
    original_prompt: String,
    #[serde(default)]
    optimization_goal: String,
    language: Option<String>,
}

/// An improved system prompt, written by the caller's model.
#[utoipa::path(post, path = "/api/agent/system-prompt/optimize", tag = "agent", request_body = PromptOptimizeBody,
    responses((status = 200, body = Envelope<Object>), (status = 409, description = "No provider configured"),
              (status = 502, description = "The model failed or answered unusably"),
              (status = 413, description = "Too much text for the model (`SAGE_MAX_PROMPT_CHARS`)"), (status = 429, description = "Model-call rate limit (`Retry-After`)")))]
pub(crate) async fn optimize_prompt(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: ModelCaller,
    body: ApiJson<PromptOptimizeBody>,
) -> ApiResult<Value> {
    let b = body.0;
    let lang = language(&req, b.language.as_deref());
    let result = state
        .agents
        .optimize_prompt(
            &caller.actor(),
            &b.original_prompt,
            &b.optimization_goal,
            lang,
        )
        .await?;
    Ok(ApiOk(result))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct AbilitiesBody {
    agent_id: String,
    #[allow(dead_code)] // Accepted for compatibility; abilities do not depend on a session yet.
    session_id: Option<String>,
    context: Option<Value>,
    language: Option<String>,
}

/// UI-facing ability cards for an agent the caller may use.
#[utoipa::path(post, path = "/api/agent/abilities", tag = "agent", request_body = AbilitiesBody,
    responses((status = 200, body = Envelope<Object>), (status = 404, description = "Unknown or not visible agent"),
              (status = 413, description = "Too much text for the model (`SAGE_MAX_PROMPT_CHARS`)"), (status = 429, description = "Model-call rate limit (`Retry-After`)")))]
pub(crate) async fn abilities(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: ModelCaller,
    body: ApiJson<AbilitiesBody>,
) -> ApiResult<Value> {
    let b = body.0;
    let lang = language(&req, b.language.as_deref());
    let context = match b.context {
        Some(Value::String(s)) => s,
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let cards = state
        .agents
        .abilities(&caller.actor(), &b.agent_id, &context, lang)
        .await?;
    Ok(ApiOk(cards))
}

/// An asynchronous job as its owner (or an admin) sees it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AgentJobDto {
    task_id: String,
    /// `agent_auto_generate` or `system_prompt_optimize`.
    task_type: String,
    /// `pending`, `running`, `completed`, `failed` or `cancelled`.
    status: &'static str,
    result: Option<Value>,
    /// `{message, code}` (`TASK_FAILED`, `TASK_CANCELLED`).
    error: Option<Value>,
    metadata: Value,
    /// Seconds since the epoch.
    created_at: f64,
    updated_at: f64,
}

impl From<agents::Job> for AgentJobDto {
    fn from(j: agents::Job) -> Self {
        let epoch = |t: chrono::DateTime<chrono::Utc>| t.timestamp_millis() as f64 / 1000.0;
        Self {
            task_id: j.id,
            task_type: j.task_type,
            status: j.status.as_str(),
            result: j.result,
            error: j.error,
            metadata: j.metadata,
            created_at: epoch(j.created_at),
            updated_at: epoch(j.updated_at),
        }
    }
}

/// Queue an agent draft; poll `GET /api/agent/tasks/{task_id}`.
#[utoipa::path(post, path = "/api/agent/auto-generate/submit", tag = "agent", request_body = AutoGenerateBody,
    responses((status = 200, body = Envelope<AgentJobDto>), (status = 413, description = "Too much text for the model (`SAGE_MAX_PROMPT_CHARS`)"), (status = 429, description = "Model-call rate limit (`Retry-After`)"),
              (status = 429, description = "`SAGE_MAX_PENDING_JOBS_PER_USER` unfinished jobs already")))]
pub(crate) async fn submit_auto_generate(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: ModelCaller,
    body: ApiJson<AutoGenerateBody>,
) -> ApiResult<AgentJobDto> {
    let b = body.0;
    let kind = agents::JobKind::AutoGenerate {
        language: language(&req, b.language.as_deref()),
        description: b.agent_description,
        tools: b.available_tools,
    };
    Ok(ApiOk(
        state.jobs.submit(&caller.actor(), kind).await?.into(),
    ))
}

/// Queue a prompt optimisation; poll `GET /api/agent/tasks/{task_id}`.
#[utoipa::path(post, path = "/api/agent/system-prompt/optimize/submit", tag = "agent", request_body = PromptOptimizeBody,
    responses((status = 200, body = Envelope<AgentJobDto>), (status = 413, description = "Too much text for the model (`SAGE_MAX_PROMPT_CHARS`)"), (status = 429, description = "Model-call rate limit (`Retry-After`)"),
              (status = 429, description = "`SAGE_MAX_PENDING_JOBS_PER_USER` unfinished jobs already")))]
pub(crate) async fn submit_optimize(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: ModelCaller,
    body: ApiJson<PromptOptimizeBody>,
) -> ApiResult<AgentJobDto> {
    let b = body.0;
    let kind = agents::JobKind::OptimizePrompt {
        language: language(&req, b.language.as_deref()),
        original: b.original_prompt,
        goal: b.optimization_goal,
    };
    Ok(ApiOk(
        state.jobs.submit(&caller.actor(), kind).await?.into(),
    ))
}

/// An asynchronous job (its owner or an admin; others 404).
#[utoipa::path(get, path = "/api/agent/tasks/{task_id}", tag = "agent", params(("task_id" = String, Path)),
    responses((status = 200, body = Envelope<AgentJobDto>), (status = 404, description = "Unknown or not the caller's")))]
pub(crate) async fn get_task(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<AgentJobDto> {
    Ok(ApiOk(
        state
            .jobs
            .get(&caller.actor(), &path.into_inner())
            .await?
            .into(),
    ))
}

/// Cancel a job (owner or admin): a pending one at once, a running one is stopped.
#[utoipa::path(post, path = "/api/agent/tasks/{task_id}/cancel", tag = "agent", params(("task_id" = String, Path)),
    responses((status = 200, body = Envelope<AgentJobDto>), (status = 404, description = "Unknown or not the caller's")))]
pub(crate) async fn cancel_task(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<AgentJobDto> {
    Ok(ApiOk(
        state
            .jobs
            .cancel(&caller.actor(), &path.into_inner())
            .await?
            .into(),
    ))
}
