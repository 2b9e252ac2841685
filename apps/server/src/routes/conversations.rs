//! Conversation history: list, messages, title, delete, edit-and-rerun, sharing, a session's
//! files and download, and usage statistics. The work lives in `conversations` (storage,
//! authorisation) and `chat-runtime` (anything touching a live run or a workspace); this
//! file extracts, calls one service and shapes the answer.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use bytes::Bytes;
use chat_runtime::{InputMessage, RunRequest, Source};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use conversations::{Dimension, ListQuery, SortBy, TokenFigures, TokenStatsQuery};
use futures_util::StreamExt;
use md5::Digest;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Caller, ModelCaller};
use crate::error::AppError;
use crate::extract::{ApiJson, ApiQuery};
use crate::response::{ApiOk, ApiResult, Envelope};
use crate::routes::workspaces::{DeletedFileDto, ListingDto, download_response, listing_depth};
use crate::state::AppState;

/// Routes inside the `/api` scope.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/conversations").route(web::get().to(list)))
        .service(web::resource("/conversations/{session_id}").route(web::delete().to(delete)))
        .service(
            web::resource("/conversations/{session_id}/messages").route(web::get().to(messages)),
        )
        .service(web::resource("/conversations/{session_id}/title").route(web::post().to(title)))
        .service(
            web::resource("/conversations/{session_id}/edit-last-user-message")
                .route(web::post().to(edit_last_user_message)),
        )
        .service(
            web::resource("/conversations/{session_id}/rerun-stream")
                .route(web::post().to(rerun_stream)),
        )
        .service(web::resource("/conversations/{session_id}/share").route(web::post().to(share)))
        .service(
            web::resource("/share/conversations/{session_id}/messages")
                .route(web::get().to(shared_messages)),
        )
        .service(
            web::resource("/sessions/{session_id}/file_workspace")
                .route(web::post().to(list_session_files)),
        )
        .service(
            web::resource("/sessions/{session_id}/file_workspace/download")
                .route(web::get().to(download_session_file)),
        )
        .service(
            web::resource("/sessions/{session_id}/file_workspace/delete")
                .route(web::delete().to(delete_session_file)),
        )
        .service(web::resource("/sessions/{session_id}/download").route(web::get().to(download)))
        .service(web::resource("/system/agent/usage-stats").route(web::post().to(usage_stats)))
        .service(web::resource("/token-usage/stats").route(web::post().to(token_stats)));
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// A whole number from the query within `range`; `None` when absent or empty.
pub(crate) fn query_number(
    name: &str,
    value: Option<String>,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Option<u64>, AppError> {
    let Some(text) = non_empty(value) else {
        return Ok(None);
    };
    match text.parse::<u64>() {
        Ok(n) if range.contains(&n) => Ok(Some(n)),
        _ => Err(AppError::validation(
            "query",
            name,
            &format!(
                "must be a whole number from {} to {}",
                range.start(),
                range.end()
            ),
        )),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// From 1 (default 1).
    page: Option<String>,
    /// 1 to 100 (default 10).
    page_size: Option<String>,
    /// Case-insensitive part of the title or the session id (`%` and `_` are literal).
    search: Option<String>,
    agent_id: Option<String>,
    /// Admins only: one user's conversations (ignored for everyone else).
    user_id: Option<String>,
    /// `date` (last updated first, the default), `title` (A→Z) or `messages` (most first).
    sort_by: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConversationItem {
    session_id: String,
    agent_id: String,
    agent_name: String,
    title: String,
    /// Visible messages.
    message_count: u64,
    /// Visible messages from the user.
    user_count: u64,
    /// Visible messages from agents.
    agent_count: u64,
    created_at: String,
    updated_at: String,
    user_id: String,
    /// md5 of the session id, as Sage's.
    trace_id: String,
    /// Whether the share link answers.
    shared: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConversationList {
    list: Vec<ConversationItem>,
    total: u64,
    page: u64,
    page_size: u64,
    total_pages: u64,
    has_next: bool,
    has_prev: bool,
    /// The caller (absent for admins, who see everyone's).
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
}

fn item(c: conversations::Conversation) -> ConversationItem {
    let trace_id: String = md5::Md5::digest(c.session_id.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    ConversationItem {
        trace_id,
        created_at: c.created_at.to_rfc3339(),
        updated_at: c.updated_at.to_rfc3339(),
        session_id: c.session_id,
        agent_id: c.agent_id,
        agent_name: c.agent_name,
        title: c.title,
        message_count: c.message_count,
        user_count: c.user_count,
        agent_count: c.agent_count,
        user_id: c.user_id,
        shared: c.shared,
    }
}

/// The caller's conversations (admins: everyone's, or one user's), paged, searched, sorted.
#[utoipa::path(get, path = "/api/conversations", tag = "conversations", params(ListParams),
    responses((status = 200, body = Envelope<ConversationList>), (status = 422, description = "Bad page, page_size or sort_by")))]
pub(crate) async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<ListParams>,
) -> ApiResult<ConversationList> {
    let q = query.0;
    let page = query_number("page", q.page, 1..=1_000_000)?.unwrap_or(1);
    let page_size = query_number("page_size", q.page_size, 1..=100)?.unwrap_or(10);
    let sort_by = match non_empty(q.sort_by).as_deref() {
        None | Some("date") => SortBy::Date,
        Some("title") => SortBy::Title,
        Some("messages") => SortBy::Messages,
        Some(_) => {
            return Err(AppError::validation(
                "query",
                "sort_by",
                "must be `date`, `title` or `messages`",
            ));
        }
    };
    let actor = caller.actor();
    let found = state
        .conversations
        .list(
            &actor,
            ListQuery {
                page,
                page_size,
                search: q.search.filter(|s| !s.trim().is_empty()),
                agent_id: non_empty(q.agent_id),
                user_id: non_empty(q.user_id),
                sort_by,
            },
        )
        .await?;
    let total_pages = found.total.div_ceil(page_size);
    Ok(ApiOk(ConversationList {
        list: found.items.into_iter().map(item).collect(),
        total: found.total,
        page,
        page_size,
        total_pages,
        has_next: page < total_pages,
        has_prev: page > 1,
        user_id: (!actor.is_admin).then_some(actor.user_id),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MessagesDto {
    conversation_id: String,
    /// Whole messages in order (deltas merged), hidden ones withheld.
    #[schema(value_type = Vec<Object>)]
    messages: Vec<Value>,
    message_count: u64,
    /// Lines already in the live run's replay log (resume from here); 0 when idle.
    next_stream_index: u64,
    #[schema(value_type = Object)]
    conversation_info: Value,
}

fn messages_dto(view: chat_runtime::ConversationView) -> MessagesDto {
    let c = &view.conversation;
    let messages: Vec<Value> = view
        .messages
        .iter()
        .map(|m| chat_runtime::message_json(m, &c.session_id))
        .collect();
    MessagesDto {
        conversation_id: c.session_id.clone(),
        message_count: messages.len() as u64,
        messages,
        next_stream_index: view.next_stream_index,
        conversation_info: chat_runtime::conversation_info(c),
    }
}

/// A conversation's messages (what is stored so far while a run goes on).
#[utoipa::path(get, path = "/api/conversations/{session_id}/messages", tag = "conversations",
    params(("session_id" = String, Path)),
    responses((status = 200, body = Envelope<MessagesDto>), (status = 404, description = "Unknown conversation")))]
pub(crate) async fn messages(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<MessagesDto> {
    let view = state
        .chat
        .conversation(&caller.actor(), &path.into_inner())
        .await?;
    Ok(ApiOk(messages_dto(view)))
}

/// A shared conversation's messages, for anyone (no login) while its owner shares it.
#[utoipa::path(get, path = "/api/share/conversations/{session_id}/messages", tag = "conversations",
    params(("session_id" = String, Path)), security(()),
    responses((status = 200, body = Envelope<MessagesDto>), (status = 404, description = "Unknown or not shared")))]
pub(crate) async fn shared_messages(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<MessagesDto> {
    let view = state.chat.shared_conversation(&path.into_inner()).await?;
    Ok(ApiOk(messages_dto(view)))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct TitleBody {
    title: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TitleDto {
    session_id: String,
    title: String,
}

/// Rename a conversation.
#[utoipa::path(post, path = "/api/conversations/{session_id}/title", tag = "conversations",
    params(("session_id" = String, Path)), request_body = TitleBody,
    responses((status = 200, body = Envelope<TitleDto>), (status = 404, description = "Unknown conversation"),
              (status = 422, description = "Empty or too long title")))]
pub(crate) async fn title(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: ApiJson<TitleBody>,
) -> ApiResult<TitleDto> {
    let c = state
        .conversations
        .rename(&caller.actor(), &path.into_inner(), &body.0.title)
        .await?;
    Ok(ApiOk(TitleDto {
        session_id: c.session_id,
        title: c.title,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConversationDeletedDto {
    session_id: String,
}

/// Delete a conversation: a live run is stopped first; its messages, replay log and share
/// state go with it (its token usage stays in the totals, unlinked).
#[utoipa::path(delete, path = "/api/conversations/{session_id}", tag = "conversations",
    params(("session_id" = String, Path)),
    responses((status = 200, body = Envelope<ConversationDeletedDto>), (status = 404, description = "Unknown conversation")))]
pub(crate) async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<ConversationDeletedDto> {
    let session_id = path.into_inner();
    state
        .chat
        .delete_conversation(&caller.actor(), &session_id)
        .await?;
    Ok(ApiOk(ConversationDeletedDto { session_id }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct EditBody {
    content: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EditedDto {
    session_id: String,
    title: String,
    message_count: u64,
    #[schema(value_type = Object)]
    last_user_message: Value,
}

/// Replace the text of the last user message and drop everything after it (a live run is
/// stopped first); then call `rerun-stream`.
#[utoipa::path(post, path = "/api/conversations/{session_id}/edit-last-user-message", tag = "conversations",
    params(("session_id" = String, Path)), request_body = EditBody,
    responses((status = 200, body = Envelope<EditedDto>), (status = 404, description = "Unknown conversation"),
              (status = 409, description = "No user message"), (status = 422, description = "Empty content")))]
pub(crate) async fn edit_last_user_message(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: ApiJson<EditBody>,
) -> ApiResult<EditedDto> {
    let edited = state
        .chat
        .edit_last_user_message(&caller.actor(), &path.into_inner(), &body.0.content)
        .await?;
    let c = &edited.conversation;
    Ok(ApiOk(EditedDto {
        session_id: c.session_id.clone(),
        title: c.title.clone(),
        message_count: edited.message_count,
        last_user_message: chat_runtime::message_json(&edited.last_user_message, &c.session_id),
    }))
}

/// `RerunStreamRequest`: every field optional; other keys are ignored.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct RerunBody {
    /// Default: the conversation's agent.
    agent_id: Option<String>,
    agent_mode: Option<String>,
    #[schema(value_type = Option<u32>)]
    max_loop_count: Option<Value>,
    /// Appended as a new user message before the run.
    guidance_content: Option<String>,
    guidance_id: Option<String>,
    /// The sub-agents of a fibre or team run (empty: the agent's).
    #[schema(max_items = 20)]
    available_sub_agent_ids: Option<Vec<String>>,
    /// Ad-hoc sub-agents, as on `/api/web-stream`.
    #[schema(max_items = 20)]
    custom_sub_agents: Option<Vec<crate::routes::chat::CustomSubAgentDto>>,
    /// MCP servers for this run only, as on `/api/web-stream`.
    #[schema(value_type = Option<Object>)]
    extra_mcp_config: Option<Value>,
}

/// Run the conversation again from its stored history (after `edit-last-user-message`, or
/// with `guidance_content` as a new user message); NDJSON like `/api/web-stream`.
#[utoipa::path(post, path = "/api/conversations/{session_id}/rerun-stream", tag = "conversations",
    params(("session_id" = String, Path)), request_body = RerunBody,
    responses((status = 200, description = "NDJSON lines (docs/stream-protocol.md)", content_type = "text/plain"),
              (status = 404, description = "Unknown conversation"), (status = 409, description = "No user message")))]
pub(crate) async fn rerun_stream(
    state: web::Data<AppState>,
    ModelCaller(caller): ModelCaller,
    path: web::Path<String>,
    body: ApiJson<RerunBody>,
) -> Result<HttpResponse, AppError> {
    let b = body.0;
    let guidance = non_empty(b.guidance_content);
    let mut context = Map::new();
    context.insert("rerun_from_edit_last_user_message".into(), json!(true));
    context.insert("rerun_from_guidance".into(), json!(guidance.is_some()));
    let messages = guidance
        .map(|content| InputMessage {
            message_id: non_empty(b.guidance_id),
            role: "user".into(),
            content: json!(content),
        })
        .into_iter()
        .collect();
    let request = RunRequest {
        source: Source::Rerun,
        messages,
        session_id: Some(path.into_inner()),
        agent_id: non_empty(b.agent_id),
        provider_id: None,
        max_loop_count: crate::routes::chat::loop_count(b.max_loop_count),
        agent_mode: non_empty(b.agent_mode),
        system_prefix: None,
        system_context: context,
        available_tools: None,
        available_skills: None,
        available_knowledge_bases: None,
        available_sub_agent_ids: b.available_sub_agent_ids,
        custom_sub_agents: crate::routes::chat::custom_sub_agents(b.custom_sub_agents),
        extra_mcp_config: b.extra_mcp_config,
        language: crate::routes::chat::language(),
    };
    let run = state.chat.start(&caller.actor(), request).await?;
    Ok(crate::routes::chat::ndjson(
        crate::routes::chat::with_heartbeat(run.lines),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ShareBody {
    shared: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SharedDto {
    session_id: String,
    shared: bool,
    /// Where the conversation can be read without login (while shared).
    share_path: String,
}

/// Turn the conversation's share link on or off (the owner only).
#[utoipa::path(post, path = "/api/conversations/{session_id}/share", tag = "conversations",
    params(("session_id" = String, Path)), request_body = ShareBody,
    responses((status = 200, body = Envelope<SharedDto>), (status = 404, description = "Unknown conversation")))]
pub(crate) async fn share(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: ApiJson<ShareBody>,
) -> ApiResult<SharedDto> {
    let c = state
        .conversations
        .set_shared(&caller.actor(), &path.into_inner(), body.0.shared)
        .await?;
    Ok(ApiOk(SharedDto {
        share_path: format!("/api/share/conversations/{}/messages", c.session_id),
        session_id: c.session_id,
        shared: c.shared,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SessionListQuery {
    /// Directory to list, relative to the conversation's workspace (default: its root).
    path: Option<String>,
    /// Levels to descend (default 5, at most 20).
    max_depth: Option<u32>,
}

/// List the files of the conversation's run workspace (the owner's workspace of its agent),
/// in the agent workspace listing's shape: the web UI's file panel calls it with the session
/// id. Owner or admin; others 404.
#[utoipa::path(post, path = "/api/sessions/{session_id}/file_workspace", tag = "conversations",
    params(("session_id" = String, Path), SessionListQuery),
    responses((status = 200, body = Envelope<ListingDto>), (status = 400, description = "Path outside the workspace"),
              (status = 404, description = "Unknown conversation")))]
pub(crate) async fn list_session_files(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: ApiQuery<SessionListQuery>,
) -> ApiResult<ListingDto> {
    let q = query.0;
    let depth = listing_depth(q.max_depth);
    let dir = q.path.unwrap_or_default();
    let files = state
        .chat
        .session_files(&caller.actor(), &path.into_inner(), &dir, depth)
        .await?;
    Ok(ApiOk(ListingDto::new(
        files.listing,
        files.agent_id,
        files.user_id,
        dir,
        depth,
    )))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SessionDownloadQuery {
    /// File or directory, relative to the conversation's workspace.
    file_path: String,
}

/// Download a file (streamed) or a directory (as a zip) of the conversation's run workspace.
#[utoipa::path(get, path = "/api/sessions/{session_id}/file_workspace/download", tag = "conversations",
    params(("session_id" = String, Path), SessionDownloadQuery),
    responses((status = 200, description = "The file's bytes"), (status = 400, description = "Path outside the workspace"),
              (status = 404, description = "Unknown conversation or file")))]
pub(crate) async fn download_session_file(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: ApiQuery<SessionDownloadQuery>,
) -> Result<HttpResponse, AppError> {
    let download = state
        .chat
        .download_session_file(&caller.actor(), &path.into_inner(), &query.0.file_path)
        .await?;
    Ok(download_response(download))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SessionFileQuery {
    /// File or directory, relative to the conversation's workspace.
    file_path: String,
    /// Deleting a missing path succeeds (default false).
    #[serde(default)]
    missing_ok: bool,
}

/// Delete a file or directory of the conversation's run workspace (as the agent workspace
/// delete, for conversations the file panel has no agent id for).
#[utoipa::path(delete, path = "/api/sessions/{session_id}/file_workspace/delete", tag = "conversations",
    params(("session_id" = String, Path), SessionFileQuery),
    responses((status = 200, body = Envelope<DeletedFileDto>), (status = 400, description = "Path outside the workspace"),
              (status = 404, description = "Unknown conversation or file")))]
pub(crate) async fn delete_session_file(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: ApiQuery<SessionFileQuery>,
) -> ApiResult<DeletedFileDto> {
    let q = query.0;
    state
        .chat
        .delete_session_file(
            &caller.actor(),
            &path.into_inner(),
            &q.file_path,
            q.missing_ok,
        )
        .await?;
    Ok(ApiOk(DeletedFileDto::new(q.file_path, true)))
}

/// The conversation as a zip (streamed): `messages.json`, `transcript.md` and the run
/// workspace's files under `workspace/`. Owner or admin.
#[utoipa::path(get, path = "/api/sessions/{session_id}/download", tag = "conversations",
    params(("session_id" = String, Path)),
    responses((status = 200, description = "`<session_id>.zip`", content_type = "application/zip"),
              (status = 404, description = "Unknown conversation")))]
pub(crate) async fn download(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let zip = state
        .chat
        .download_session(&caller.actor(), &path.into_inner())
        .await?;
    let pieces = futures_util::stream::unfold(zip.chunks, |mut rx| async move {
        let piece = rx.recv().await?;
        Some((
            piece
                .map(Bytes::from)
                .map_err(actix_web::error::ErrorInternalServerError),
            rx,
        ))
    });
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/zip"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            crate::routes::workspaces::attachment(&zip.name),
        ))
        .streaming(pieces.boxed()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct UsageStatsBody {
    /// 1 to 365 (default 7).
    #[schema(value_type = Option<u32>)]
    #[serde(default, deserialize_with = "crate::lenient::count")]
    days: Option<i64>,
    agent_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UsageStatsDto {
    /// Tool name → calls.
    usage: std::collections::BTreeMap<String, u64>,
}

/// Tool calls per tool in the caller's conversations updated in the last `days` days.
#[utoipa::path(post, path = "/api/system/agent/usage-stats", tag = "conversations", request_body = UsageStatsBody,
    responses((status = 200, body = Envelope<UsageStatsDto>), (status = 422, description = "days outside 1..365")))]
pub(crate) async fn usage_stats(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<UsageStatsBody>,
) -> ApiResult<UsageStatsDto> {
    let b = body.0;
    let days = b.days.unwrap_or(7);
    if !(1..=365).contains(&days) {
        return Err(AppError::validation(
            "body",
            "days",
            "must be from 1 to 365",
        ));
    }
    let since = Utc::now() - chrono::Duration::days(days);
    let usage = state
        .conversations
        .tool_usage(&caller.actor(), since, non_empty(b.agent_id).as_deref())
        .await?;
    Ok(ApiOk(UsageStatsDto { usage }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenStatsBody {
    /// `agent`, `user` or `session`.
    dimension: String,
    /// Admins only (everyone else sees their own runs).
    user_id: Option<String>,
    agent_id: Option<String>,
    session_id: Option<String>,
    /// `api/chat`, `api/stream`, `api/web-stream` or `api/conversations/rerun-stream`.
    request_source: Option<String>,
    /// `YYYY-MM-DD` (or RFC 3339); with `end_date`; required unless `dimension` is
    /// `session` and `session_id` is given.
    start_date: Option<String>,
    /// Inclusive: a date covers its whole day (UTC).
    end_date: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TokenSummaryDto {
    session_count: u64,
    input_tokens: u64,
    output_tokens: u64,
    total_tokens: u64,
    average_tokens_per_session: f64,
    model_call_count: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TokenStatsDto {
    summary: TokenSummaryDto,
    /// Per agent, user or session (named `agent_id`, `user_id` or `session_id`), largest
    /// total first: `session_count, run_count, input_tokens, output_tokens, total_tokens,
    /// cached_tokens, reasoning_tokens, model_call_count`.
    #[schema(value_type = Vec<Object>)]
    items: Vec<Value>,
}

/// A date (`YYYY-MM-DD`, the day's start or, for an end, the next day's start) or an
/// instant (RFC 3339, or `YYYY-MM-DD HH:MM:SS` in UTC).
fn instant(field: &str, text: &str, end: bool) -> Result<DateTime<Utc>, AppError> {
    let text = text.trim();
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let day = if end {
            day.succ_opt().unwrap_or(day)
        } else {
            day
        };
        return Ok(day.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .map(|t| t.and_utc())
        .map_err(|_| AppError::validation("body", field, "use YYYY-MM-DD or an RFC 3339 time"))
}

fn figures_json(key_name: &str, key: &str, f: &TokenFigures) -> Value {
    json!({key_name: key, "session_count": f.session_count, "run_count": f.run_count,
           "input_tokens": f.input_tokens, "output_tokens": f.output_tokens,
           "total_tokens": f.total_tokens, "cached_tokens": f.cached_tokens,
           "reasoning_tokens": f.reasoning_tokens, "model_call_count": f.model_call_count})
}

/// Token usage of runs, grouped by agent, user or session (non-admins: their own runs).
#[utoipa::path(post, path = "/api/token-usage/stats", tag = "conversations", request_body = TokenStatsBody,
    responses((status = 200, body = Envelope<TokenStatsDto>), (status = 422, description = "Bad dimension, dates or extra keys")))]
pub(crate) async fn token_stats(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<TokenStatsBody>,
) -> ApiResult<TokenStatsDto> {
    let b = body.0;
    let (dimension, key_name) = match b.dimension.trim() {
        "agent" => (Dimension::Agent, "agent_id"),
        "user" => (Dimension::User, "user_id"),
        "session" => (Dimension::Session, "session_id"),
        _ => {
            return Err(AppError::validation(
                "body",
                "dimension",
                "must be `agent`, `user` or `session`",
            ));
        }
    };
    let session_id = non_empty(b.session_id);
    let (from, until) = match (non_empty(b.start_date), non_empty(b.end_date)) {
        (Some(s), Some(e)) => (
            Some(instant("start_date", &s, false)?),
            Some(instant("end_date", &e, true)?),
        ),
        (None, None) if dimension == Dimension::Session && session_id.is_some() => (None, None),
        (None, None) => {
            return Err(AppError::validation(
                "body",
                "start_date",
                "start_date and end_date are required (unless dimension is session with a session_id)",
            ));
        }
        _ => {
            return Err(AppError::validation(
                "body",
                "end_date",
                "give start_date and end_date together",
            ));
        }
    };
    if let (Some(f), Some(u)) = (from, until)
        && f >= u
    {
        return Err(AppError::validation(
            "body",
            "end_date",
            "must not be before start_date",
        ));
    }
    let stats = state
        .conversations
        .token_stats(
            &caller.actor(),
            TokenStatsQuery {
                dimension,
                user_id: non_empty(b.user_id),
                agent_id: non_empty(b.agent_id),
                session_id,
                request_source: non_empty(b.request_source),
                from,
                until,
            },
        )
        .await?;
    let s = &stats.summary;
    let average = if s.session_count == 0 {
        0.0
    } else {
        s.total_tokens as f64 / s.session_count as f64
    };
    Ok(ApiOk(TokenStatsDto {
        summary: TokenSummaryDto {
            session_count: s.session_count,
            input_tokens: s.input_tokens,
            output_tokens: s.output_tokens,
            total_tokens: s.total_tokens,
            average_tokens_per_session: average,
            model_call_count: s.model_call_count,
        },
        items: stats
            .items
            .iter()
            .map(|g| figures_json(key_name, &g.key, &g.figures))
            .collect(),
    }))
}
