//! Chat runs: `/api/chat`, `/api/stream`, `/api/web-stream` (NDJSON), resume, interrupt,
//! task status and the running-session feed (SSE). The run itself lives in `chat-runtime`;
//! this file extracts, calls it, and frames its lines.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use bytes::Bytes;
use chat_runtime::{CustomSubAgent, InputMessage, LineStream, RunRequest, Source};
use futures_util::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Caller, ModelCaller};
use crate::extract::{ApiJson, ApiQuery};
use crate::middleware::{Locale, RequestContext};
use crate::response::{ApiOk, ApiResult, Envelope};
use crate::state::AppState;

/// Silence after which a manager-backed stream sends `: heartbeat` (not counted, not logged).
const HEARTBEAT_AFTER: Duration = Duration::from_secs(20);
/// The running-session feed sends a comment this often when nothing changed.
const SSE_HEARTBEAT: Duration = Duration::from_secs(15);
const NDJSON: &str = "text/plain; charset=utf-8";

/// Routes inside the `/api` scope.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/chat").route(web::post().to(chat)))
        .service(web::resource("/chat/optimize-input").route(web::post().to(optimize_input)))
        .service(
            web::resource("/chat/optimize-input/stream")
                .route(web::post().to(optimize_input_stream)),
        )
        .service(web::resource("/stream").route(web::post().to(stream)))
        .service(web::resource("/web-stream").route(web::post().to(web_stream)))
        .service(web::resource("/stream/active_sessions").route(web::get().to(active_sessions)))
        .service(web::resource("/stream/resume/{session_id}").route(web::get().to(resume)))
        .service(web::resource("/sessions/{session_id}/interrupt").route(web::post().to(interrupt)))
        .service(
            web::resource("/questionnaires/{questionnaire_id}/submit")
                .route(web::post().to(submit_questionnaire)),
        )
        .service(
            web::resource("/sessions/{session_id}/inject-user-message")
                .route(web::post().to(inject_guidance))
                .route(web::get().to(list_guidance)),
        )
        .service(
            web::resource("/sessions/{session_id}/inject-user-message/{guidance_id}")
                .route(web::patch().to(update_guidance))
                .route(web::delete().to(delete_guidance)),
        )
        .service(
            web::resource("/sessions/{session_id}/tasks_status")
                .route(web::post().to(tasks_status)),
        );
}

/// A message as the UI sends it.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct MessageDto {
    message_id: Option<String>,
    #[serde(default)]
    role: Option<String>,
    /// A string, or a list of `{type:"text",text}` / `{type:"image_url",image_url:{url}}`.
    #[schema(value_type = Object)]
    #[serde(default)]
    content: Value,
}

/// `StreamRequest` (the fields this server uses; others are accepted and ignored). Empty
/// optional values (`0`, `null`, `""`) count as unset.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct StreamBody {
    messages: Vec<MessageDto>,
    session_id: Option<String>,
    /// Admins only: run as this user.
    user_id: Option<String>,
    agent_id: Option<String>,
    /// One of the caller's own providers.
    provider_id: Option<String>,
    #[schema(value_type = Option<u32>)]
    max_loop_count: Option<Value>,
    agent_mode: Option<String>,
    system_prefix: Option<String>,
    #[schema(value_type = Option<Object>)]
    system_context: Option<Value>,
    available_tools: Option<Vec<String>>,
    /// More skills for this run: the caller's own (else the system's) of these names.
    #[schema(max_items = 64)]
    available_skills: Option<Vec<String>>,
    /// More knowledge bases for this run (the caller's own; others are left out).
    #[schema(max_items = 16)]
    available_knowledge_bases: Option<Vec<String>>,
    /// The sub-agents of a fibre or team run (agents the caller may use; empty: the agent's).
    #[schema(max_items = 20)]
    available_sub_agent_ids: Option<Vec<String>>,
    /// Ad-hoc sub-agents of a fibre or team run (with the run's model; their own tools, those
    /// the caller may use, else the run's).
    #[schema(max_items = 20)]
    custom_sub_agents: Option<Vec<CustomSubAgentDto>>,
    /// MCP servers for this run only, `{name: {streamable_http_url | url | sse_url,
    /// api_key?}}` (at most 4; reached through the outbound policy; their tools join the
    /// run's).
    #[schema(value_type = Option<Object>)]
    extra_mcp_config: Option<Value>,
}

/// One of `custom_sub_agents` (Sage's other keys are accepted and ignored).
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct CustomSubAgentDto {
    /// Its id in delegation calls (default `custom_<n>`).
    agent_id: Option<String>,
    #[schema(min_length = 1, max_length = 64)]
    name: String,
    #[schema(max_length = 500)]
    description: Option<String>,
    /// Its persona (default: the default agent prompt).
    #[schema(max_length = 8000)]
    system_prompt: Option<String>,
    available_tools: Option<Vec<String>>,
}

pub(crate) fn custom_sub_agents(list: Option<Vec<CustomSubAgentDto>>) -> Vec<CustomSubAgent> {
    list.unwrap_or_default()
        .into_iter()
        .map(|c| CustomSubAgent {
            agent_id: non_empty(c.agent_id),
            name: c.name,
            description: non_empty(c.description),
            system_prompt: non_empty(c.system_prompt),
            available_tools: c.available_tools,
        })
        .collect()
}

/// `ChatRequest`: the common fields and a required `agent_id`.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ChatBody {
    /// May be empty when guidance is pending for `session_id`: the guidance is the input.
    messages: Vec<MessageDto>,
    session_id: Option<String>,
    user_id: Option<String>,
    agent_id: String,
    provider_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    system_context: Option<Value>,
}

pub(crate) fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

pub(crate) fn loop_count(v: Option<Value>) -> Option<u32> {
    match v? {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|n| *n > 0)
}

pub(crate) fn language() -> String {
    match RequestContext::current().locale {
        Locale::ZhCn => "zh".into(),
        Locale::EnUs => "en".into(),
    }
}

/// The acting user: the caller, or for an admin the `user_id` they name.
fn actor(caller: &Caller, user_id: Option<String>) -> platform::Actor {
    let me = caller.actor();
    match non_empty(user_id) {
        Some(other) if me.is_admin && other != me.user_id => platform::Actor::new(other, true),
        _ => me,
    }
}

fn messages(dtos: Vec<MessageDto>) -> Vec<InputMessage> {
    dtos.into_iter()
        .map(|m| InputMessage {
            message_id: non_empty(m.message_id),
            role: non_empty(m.role).unwrap_or_else(|| "user".into()),
            content: m.content,
        })
        .collect()
}

fn context(v: Option<Value>) -> Map<String, Value> {
    match v {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

fn stream_request(source: Source, body: StreamBody) -> (Option<String>, RunRequest) {
    let request = RunRequest {
        source,
        messages: messages(body.messages),
        session_id: non_empty(body.session_id),
        agent_id: non_empty(body.agent_id),
        provider_id: non_empty(body.provider_id),
        max_loop_count: loop_count(body.max_loop_count),
        agent_mode: non_empty(body.agent_mode),
        system_prefix: non_empty(body.system_prefix),
        system_context: context(body.system_context),
        available_tools: body.available_tools,
        available_skills: body.available_skills,
        available_knowledge_bases: body.available_knowledge_bases,
        available_sub_agent_ids: body.available_sub_agent_ids,
        custom_sub_agents: custom_sub_agents(body.custom_sub_agents),
        extra_mcp_config: body.extra_mcp_config,
        language: language(),
    };
    (body.user_id, request)
}

/// Adds `: heartbeat` lines after silence.
pub(crate) fn with_heartbeat(lines: LineStream) -> LineStream {
    futures_util::stream::unfold(Some(lines), |state| async move {
        let mut lines = state?;
        match tokio::time::timeout(HEARTBEAT_AFTER, lines.next()).await {
            Ok(Some(line)) => Some((line, Some(lines))),
            Ok(None) => None,
            Err(_) => Some((b": heartbeat\n\n".to_vec(), Some(lines))),
        }
    })
    .boxed()
}

/// At most this much goes into one write of a stream.
const MAX_WRITE_BYTES: usize = 64 * 1024;

/// The lines of a stream as writes: after a line arrives the writer lets the run go on once
/// (the model's connection usually holds more chunks already) and takes every line that is
/// then ready, so a fast model costs one write per batch instead of one per line. A line that
/// arrives alone is written at once.
fn batched(lines: LineStream) -> impl futures_util::Stream<Item = Bytes> {
    futures_util::stream::unfold(Some(lines), |state| async move {
        let mut lines = state?;
        let mut batch = lines.next().await?;
        tokio::task::yield_now().await;
        let mut open = true;
        while batch.len() < MAX_WRITE_BYTES {
            match lines.next().now_or_never() {
                Some(Some(line)) => batch.extend_from_slice(&line),
                Some(None) => {
                    open = false;
                    break;
                }
                None => break,
            }
        }
        Some((Bytes::from(batch), open.then_some(lines)))
    })
}

pub(crate) fn ndjson(lines: LineStream) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(NDJSON)
        .insert_header(("x-accel-buffering", "no"))
        .streaming(batched(lines).map(Ok::<_, actix_web::Error>))
}

/// Start a run and stream it; the run stops when the client disconnects and does not resume
/// within `SAGE_STREAM_DISCONNECT_GRACE_SECS`.
#[utoipa::path(post, path = "/api/chat", tag = "chat", request_body = ChatBody,
    responses((status = 200, description = "NDJSON lines (docs/stream-protocol.md)", content_type = "text/plain"),
              (status = 404, description = "Unknown agent or session"), (status = 422, description = "No messages, and no guidance pending for the session")))]
pub(crate) async fn chat(
    state: web::Data<AppState>,
    ModelCaller(caller): ModelCaller,
    body: ApiJson<ChatBody>,
) -> Result<HttpResponse, crate::error::AppError> {
    let body = body.0;
    let who = actor(&caller, body.user_id.clone());
    let request = RunRequest {
        source: Source::Chat,
        messages: messages(body.messages),
        session_id: non_empty(body.session_id),
        agent_id: Some(body.agent_id),
        provider_id: non_empty(body.provider_id),
        max_loop_count: None,
        agent_mode: None,
        system_prefix: None,
        system_context: context(body.system_context),
        available_tools: None,
        available_skills: None,
        available_knowledge_bases: None,
        available_sub_agent_ids: None,
        custom_sub_agents: Vec::new(),
        extra_mcp_config: None,
        language: language(),
    };
    let run = state.chat.start(&who, request).await?;
    Ok(ndjson(run.lines))
}

/// Start a run with per-request overrides and stream it (with `tool_progress` lines); stops
/// when the client disconnects and does not resume within the grace period.
#[utoipa::path(post, path = "/api/stream", tag = "chat", request_body = StreamBody,
    responses((status = 200, description = "NDJSON lines (docs/stream-protocol.md)", content_type = "text/plain"),
              (status = 400, description = "No max_loop_count"), (status = 404, description = "Unknown agent or session")))]
pub(crate) async fn stream(
    state: web::Data<AppState>,
    ModelCaller(caller): ModelCaller,
    body: ApiJson<StreamBody>,
) -> Result<HttpResponse, crate::error::AppError> {
    let (user_id, request) = stream_request(Source::Stream, body.0);
    let run = state.chat.start(&actor(&caller, user_id), request).await?;
    Ok(ndjson(run.lines))
}

/// Start a run that survives the client (resume it with `/api/stream/resume`); a second
/// web-stream on a running session interrupts the first.
#[utoipa::path(post, path = "/api/web-stream", tag = "chat", request_body = StreamBody,
    responses((status = 200, description = "NDJSON lines (docs/stream-protocol.md)", content_type = "text/plain"),
              (status = 400, description = "No max_loop_count"), (status = 404, description = "Unknown agent or session")))]
pub(crate) async fn web_stream(
    state: web::Data<AppState>,
    ModelCaller(caller): ModelCaller,
    body: ApiJson<StreamBody>,
) -> Result<HttpResponse, crate::error::AppError> {
    let (user_id, request) = stream_request(Source::WebStream, body.0);
    let run = state.chat.start(&actor(&caller, user_id), request).await?;
    Ok(ndjson(with_heartbeat(run.lines)))
}

#[derive(Debug, Deserialize, IntoParams)]
pub(crate) struct ResumeQuery {
    /// Lines the client already has (default 0).
    last_index: Option<u64>,
}

/// Replay a session's lines after `last_index`, then follow the run live to its end.
#[utoipa::path(get, path = "/api/stream/resume/{session_id}", tag = "chat",
    params(("session_id" = String, Path), ResumeQuery),
    responses((status = 200, description = "NDJSON lines", content_type = "text/plain"),
              (status = 404, description = "Unknown session"), (status = 422, description = "Bad last_index")))]
pub(crate) async fn resume(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: ApiQuery<ResumeQuery>,
) -> Result<HttpResponse, crate::error::AppError> {
    let lines = state
        .chat
        .resume(
            &caller.actor(),
            &path.into_inner(),
            query.0.last_index.unwrap_or(0),
        )
        .await?;
    Ok(ndjson(with_heartbeat(lines)))
}

/// The caller's running sessions (admins: all) as server-sent events: the list now, then on
/// every change; a comment heartbeat meanwhile.
#[utoipa::path(get, path = "/api/stream/active_sessions", tag = "chat",
    responses((status = 200, description = "`data: <JSON array>` events", content_type = "text/event-stream")))]
pub(crate) async fn active_sessions(state: web::Data<AppState>, caller: Caller) -> HttpResponse {
    let changes = state.chat.watch_active_sessions(&caller.actor());
    let events = futures_util::stream::unfold(changes, |mut changes| async move {
        let frame = match tokio::time::timeout(SSE_HEARTBEAT, changes.next()).await {
            Ok(Some(list)) => format!("data: {}\n\n", chat_runtime::wire::to_py_json(&list)),
            Ok(None) => return None,
            Err(_) => ": heartbeat\n\n".to_owned(),
        };
        Some((Ok::<_, actix_web::Error>(Bytes::from(frame)), changes))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream; charset=utf-8")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(events)
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct InterruptDto {
    session_id: String,
    user_id: String,
    /// Whether a run was running (and was asked to stop).
    interrupted: bool,
}

/// Stop the session's run (from any replica); its partial answer is kept.
#[utoipa::path(post, path = "/api/sessions/{session_id}/interrupt", tag = "chat",
    params(("session_id" = String, Path)),
    responses((status = 200, body = Envelope<InterruptDto>), (status = 404, description = "Unknown session")))]
pub(crate) async fn interrupt(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<InterruptDto> {
    let actor = caller.actor();
    let session_id = path.into_inner();
    let interrupted = state.chat.interrupt(&actor, &session_id).await?;
    Ok(ApiOk(InterruptDto {
        session_id,
        user_id: actor.user_id,
        interrupted,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TasksDto {
    #[schema(value_type = Vec<Object>)]
    tasks: Vec<Value>,
}

/// The web UI's answers to a `questionnaire` form (its other keys are accepted and ignored).
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct QuestionnaireAnswersBody {
    /// The answers by question id.
    #[schema(value_type = Object)]
    answers: Map<String, Value>,
    /// Whether the form submitted itself at its time limit.
    is_auto_submit: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SubmittedDto {
    success: bool,
}

/// Answers the caller's questionnaire: the `questionnaire` tool of their run waiting for it
/// takes them (any replica). Answers go only to the caller's own questionnaires.
#[utoipa::path(post, path = "/api/questionnaires/{questionnaire_id}/submit", tag = "chat",
    params(("questionnaire_id" = String, Path, max_length = 128)),
    request_body = QuestionnaireAnswersBody,
    responses((status = 200, body = Envelope<SubmittedDto>),
              (status = 409, description = "Answers already submitted"),
              (status = 422, description = "Bad questionnaire id or answers")))]
pub(crate) async fn submit_questionnaire(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: ApiJson<QuestionnaireAnswersBody>,
) -> ApiResult<SubmittedDto> {
    let body = body.0;
    state
        .chat
        .submit_questionnaire(
            &caller.actor(),
            &path.into_inner(),
            body.answers,
            body.is_auto_submit.unwrap_or(false),
        )
        .await?;
    Ok(ApiOk(SubmittedDto { success: true }))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TasksStatusDto {
    session_id: String,
    tasks_status: TasksDto,
    user_id: String,
}

/// The session's task list (written by the `todo_write` tool).
#[utoipa::path(post, path = "/api/sessions/{session_id}/tasks_status", tag = "chat",
    params(("session_id" = String, Path)),
    responses((status = 200, body = Envelope<TasksStatusDto>), (status = 404, description = "Unknown session")))]
pub(crate) async fn tasks_status(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<TasksStatusDto> {
    let actor = caller.actor();
    let session_id = path.into_inner();
    let tasks = state.chat.tasks_status(&actor, &session_id).await?;
    Ok(ApiOk(TasksStatusDto {
        session_id,
        tasks_status: TasksDto { tasks },
        user_id: actor.user_id,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ChatHistoryDto {
    #[serde(default)]
    role: String,
    #[schema(value_type = Object)]
    #[serde(default)]
    content: Value,
}

/// A draft to improve.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct InputOptimizeBody {
    current_input: String,
    #[serde(default)]
    history_messages: Vec<ChatHistoryDto>,
    /// Accepted; the agent decides the model.
    #[allow(dead_code)]
    session_id: Option<String>,
    agent_id: Option<String>,
    /// `zh…` or `en…`; default: the request's locale.
    language: Option<String>,
}

fn optimize_request(body: InputOptimizeBody) -> chat_runtime::OptimizeRequest {
    let language = match non_empty(body.language).map(|l| l.to_ascii_lowercase()) {
        Some(l) if l.starts_with("zh") => "zh".to_owned(),
        Some(l) if l.starts_with("en") => "en".to_owned(),
        _ => language(),
    };
    chat_runtime::OptimizeRequest {
        current_input: body.current_input,
        history: body
            .history_messages
            .into_iter()
            .map(|m| {
                let text = match m.content {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                (m.role, text)
            })
            .collect(),
        agent_id: non_empty(body.agent_id),
        language,
    }
}

/// Rewrite the user's draft with the agent's (or the caller's) model; a model failure
/// answers the original with `status: "fallback"`.
#[utoipa::path(post, path = "/api/chat/optimize-input", tag = "chat", request_body = InputOptimizeBody,
    responses((status = 200, body = Envelope<Object>), (status = 422, description = "Empty current_input")))]
pub(crate) async fn optimize_input(
    state: web::Data<AppState>,
    ModelCaller(caller): ModelCaller,
    body: ApiJson<InputOptimizeBody>,
) -> ApiResult<Value> {
    let answer = state
        .chat
        .optimize_input(&caller.actor(), optimize_request(body.0))
        .await?;
    Ok(ApiOk(answer))
}

/// The same as NDJSON: `{type:"start"}`, `{type:"delta",content}`…, `{type:"done",…}`.
#[utoipa::path(post, path = "/api/chat/optimize-input/stream", tag = "chat", request_body = InputOptimizeBody,
    responses((status = 200, description = "NDJSON lines", content_type = "text/plain"),
              (status = 422, description = "Empty current_input")))]
pub(crate) async fn optimize_input_stream(
    state: web::Data<AppState>,
    ModelCaller(caller): ModelCaller,
    body: ApiJson<InputOptimizeBody>,
) -> Result<HttpResponse, crate::error::AppError> {
    let lines = state
        .chat
        .optimize_input_stream(&caller.actor(), optimize_request(body.0))
        .await?;
    Ok(ndjson(lines))
}

/// A message for the running session's next step.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct GuidanceBody {
    content: String,
    guidance_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct GuidanceAccepted {
    session_id: String,
    guidance_id: String,
    accepted: bool,
    user_id: String,
}

/// Queue a message for the running session; the run takes it before its next model call and
/// streams it back as a `user_input` line with `metadata.guidance_id`.
#[utoipa::path(post, path = "/api/sessions/{session_id}/inject-user-message", tag = "chat",
    params(("session_id" = String, Path)), request_body = GuidanceBody,
    responses((status = 200, body = Envelope<GuidanceAccepted>), (status = 404, description = "Unknown session"),
              (status = 409, description = "No run in progress")))]
pub(crate) async fn inject_guidance(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: ApiJson<GuidanceBody>,
) -> ApiResult<GuidanceAccepted> {
    let actor = caller.actor();
    let session_id = path.into_inner();
    let body = body.0;
    let guidance_id = state
        .chat
        .inject_guidance(
            &actor,
            &session_id,
            &body.content,
            non_empty(body.guidance_id),
            body.metadata.unwrap_or(Value::Null),
        )
        .await?;
    Ok(ApiOk(GuidanceAccepted {
        session_id,
        guidance_id,
        accepted: true,
        user_id: actor.user_id,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct GuidanceList {
    session_id: String,
    #[schema(value_type = Vec<Object>)]
    items: Vec<Value>,
}

/// The queued messages, oldest first.
#[utoipa::path(get, path = "/api/sessions/{session_id}/inject-user-message", tag = "chat",
    params(("session_id" = String, Path)),
    responses((status = 200, body = Envelope<GuidanceList>), (status = 404, description = "Unknown session")))]
pub(crate) async fn list_guidance(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<GuidanceList> {
    let session_id = path.into_inner();
    let items = state.chat.guidance(&caller.actor(), &session_id).await?;
    Ok(ApiOk(GuidanceList {
        session_id,
        items: items
            .into_iter()
            .map(|g| {
                serde_json::json!({"guidance_id": g.guidance_id, "content": g.content,
                                   "metadata": g.metadata, "created_at": g.created_at})
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct GuidanceUpdate {
    content: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct GuidanceChanged {
    session_id: String,
    guidance_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    updated: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted: Option<bool>,
}

/// Change a queued message before the run takes it.
#[utoipa::path(patch, path = "/api/sessions/{session_id}/inject-user-message/{guidance_id}", tag = "chat",
    params(("session_id" = String, Path), ("guidance_id" = String, Path)), request_body = GuidanceUpdate,
    responses((status = 200, body = Envelope<GuidanceChanged>), (status = 404, description = "Unknown session or message")))]
pub(crate) async fn update_guidance(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: ApiJson<GuidanceUpdate>,
) -> ApiResult<GuidanceChanged> {
    let (session_id, guidance_id) = path.into_inner();
    state
        .chat
        .update_guidance(&caller.actor(), &session_id, &guidance_id, &body.0.content)
        .await?;
    Ok(ApiOk(GuidanceChanged {
        session_id,
        guidance_id,
        updated: Some(true),
        deleted: None,
    }))
}

/// Withdraw a queued message.
#[utoipa::path(delete, path = "/api/sessions/{session_id}/inject-user-message/{guidance_id}", tag = "chat",
    params(("session_id" = String, Path), ("guidance_id" = String, Path)),
    responses((status = 200, body = Envelope<GuidanceChanged>), (status = 404, description = "Unknown session or message")))]
pub(crate) async fn delete_guidance(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<GuidanceChanged> {
    let (session_id, guidance_id) = path.into_inner();
    state
        .chat
        .delete_guidance(&caller.actor(), &session_id, &guidance_id)
        .await?;
    Ok(ApiOk(GuidanceChanged {
        session_id,
        guidance_id,
        updated: None,
        deleted: Some(true),
    }))
}
