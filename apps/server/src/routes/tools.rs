//! The tool catalogue and direct calls: `GET /api/tools`, `POST /api/tools/exec`.

use actix_web::web;
use chat_runtime::{ExecRequest, ToolEntry};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::extract::{ApiJson, ApiQuery};
use crate::response::{ApiOk, ApiResult, Envelope};
use crate::routes::chat::{language, non_empty};
use crate::state::AppState;

/// Routes inside the `/api` scope.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/tools").route(web::get().to(list_tools)))
        .service(web::resource("/tools/exec").route(web::post().to(exec_tool)));
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ToolsQuery {
    /// Only tools of this type (`basic`, `mcp`, `sage_mcp`); empty or absent: all.
    #[serde(rename = "type")]
    #[param(rename = "type", max_length = 32)]
    kind: Option<String>,
    /// `zh`, `en` or `pt` (default: the request's locale).
    #[param(max_length = 16)]
    language: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ToolDto {
    name: String,
    description: String,
    /// The schema's `properties`.
    #[schema(value_type = Object)]
    parameters: Value,
    required: Vec<String>,
    /// The whole JSON schema of the arguments.
    #[schema(value_type = Object)]
    input_schema: Value,
    /// `basic` for the built-in tools, `sage_mcp` for the tools of the built-in MCP server
    /// `task_scheduler` (the planner's), `mcp` for the tools of MCP servers.
    #[serde(rename = "type")]
    kind: String,
    /// Where the tool comes from, in the request's language.
    source: String,
    /// The owner of an MCP tool; empty for built-ins.
    user_id: String,
    /// `anytool` or `external` for MCP tools; empty for built-ins.
    server_kind: String,
    /// Whether `/api/tools/exec` of this tool needs an admin (it changes files).
    admin_only: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ToolsDto {
    tools: Vec<ToolDto>,
}

/// `zh`, `en` or `pt` from the query, else the request's locale.
fn catalogue_language(requested: Option<String>) -> &'static str {
    match non_empty(requested).map(|l| l.to_ascii_lowercase()) {
        Some(l) if l.starts_with("zh") => "zh",
        Some(l) if l.starts_with("pt") => "pt",
        Some(l) if l.starts_with("en") => "en",
        _ if language() == "zh" => "zh",
        _ => "en",
    }
}

fn basic_source(language: &str) -> &'static str {
    match language {
        "zh" => "基础工具",
        "pt" => "Ferramentas básicas",
        _ => "Basic tools",
    }
}

fn tool_dto(t: ToolEntry, language: &str) -> ToolDto {
    let parameters = t
        .input_schema
        .get("properties")
        .cloned()
        .unwrap_or_else(|| Value::Object(serde_json::Map::new()));
    let required = t
        .input_schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    ToolDto {
        name: t.name,
        description: t.description,
        parameters,
        required,
        input_schema: t.input_schema,
        kind: t.kind.to_owned(),
        source: match &t.server {
            Some((server, _)) if t.server_kind == "anytool" || t.kind == "sage_mcp" => {
                format!("内置MCP: {server}")
            }
            Some((server, _)) => format!("MCP Server: {server}"),
            None => basic_source(language).to_owned(),
        },
        server_kind: t.server_kind.to_owned(),
        user_id: t.server.map(|(_, owner)| owner).unwrap_or_default(),
        admin_only: t.admin_only,
    }
}

/// The tools of this deployment (the built-ins; MCP servers add theirs with their routes).
#[utoipa::path(get, path = "/api/tools", tag = "tools", params(ToolsQuery),
    responses((status = 200, body = Envelope<ToolsDto>)))]
pub(crate) async fn list_tools(
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<ToolsQuery>,
) -> ApiResult<ToolsDto> {
    let query = query.0;
    let lang = catalogue_language(query.language);
    let descriptions = if lang == "zh" { "zh" } else { "en" };
    let kind = non_empty(query.kind);
    let tools = state
        .tools
        .tools(&caller.actor(), kind.as_deref(), descriptions)
        .await?;
    Ok(ApiOk(ToolsDto {
        tools: tools.into_iter().map(|t| tool_dto(t, lang)).collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ExecBody {
    #[schema(min_length = 1, max_length = 128)]
    tool_name: String,
    /// The arguments (a JSON object).
    #[schema(value_type = Option<Object>)]
    tool_params: Option<Value>,
    /// The same as `tool_params` (an object or its JSON text), when that is absent.
    #[schema(value_type = Option<Object>)]
    arguments: Option<Value>,
    /// Run in the caller's workspace of this agent (default: the workspace of chats that
    /// name no agent).
    #[schema(max_length = 64)]
    agent_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ExecDto {
    /// The output as text (JSON text unless the tool answered a string).
    raw_text: String,
    /// The output with JSON text inside it decoded, up to three levels deep.
    parsed: Value,
    /// The same as `raw_text`.
    content: String,
    /// `parsed`, pretty-printed.
    formatted_text: String,
    /// The output as the tool returned it.
    tool_response: Value,
}

/// The arguments: `tool_params`, else `arguments` (an object or its JSON text); Sage's UI
/// sends `null` or `""` for none. `session_id` and `user_id` are never taken from them.
fn exec_arguments(body: &ExecBody) -> Value {
    let chosen = match (&body.tool_params, &body.arguments) {
        (Some(v), _) if !is_unset(v) => v.clone(),
        (_, Some(Value::String(text))) if !text.trim().is_empty() => {
            serde_json::from_str(text).unwrap_or(Value::String(text.clone()))
        }
        (_, Some(v)) if !is_unset(v) => v.clone(),
        _ => Value::Object(serde_json::Map::new()),
    };
    match chosen {
        Value::Object(mut map) => {
            map.remove("session_id");
            map.remove("user_id");
            Value::Object(map)
        }
        other => other,
    }
}

fn is_unset(v: &Value) -> bool {
    v.is_null() || v.as_str().is_some_and(|s| s.trim().is_empty())
}

/// JSON text inside `v` decoded, `depth` levels deep.
fn decode(v: Value, depth: u8) -> Value {
    if depth == 0 {
        return v;
    }
    match v {
        Value::String(s) => match serde_json::from_str::<Value>(&s) {
            Ok(inner @ (Value::Object(_) | Value::Array(_))) => decode(inner, depth - 1),
            _ => Value::String(s),
        },
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|i| decode(i, depth - 1)).collect())
        }
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, i)| (k, decode(i, depth - 1)))
                .collect(),
        ),
        other => other,
    }
}

fn exec_dto(output: Value) -> ExecDto {
    let raw_text = match &output {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let parsed = decode(output.clone(), 3);
    let formatted_text = match &parsed {
        Value::String(s) => s.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_else(|_| raw_text.clone()),
    };
    ExecDto {
        content: raw_text.clone(),
        raw_text,
        parsed,
        formatted_text,
        tool_response: output,
    }
}

/// Run one tool directly, in the caller's workspace. Tools that change files need an admin.
#[utoipa::path(post, path = "/api/tools/exec", tag = "tools", request_body = ExecBody,
    responses((status = 200, body = Envelope<ExecDto>),
        (status = 403, description = "`tool.use_forbidden`: the tool changes files and the caller is not an admin"),
        (status = 404, description = "`tool.not_found`, or `agent.not_found`"),
        (status = 422, description = "Bad arguments, or `tool.failed`: the tool reported an error")))]
pub(crate) async fn exec_tool(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<ExecBody>,
) -> ApiResult<ExecDto> {
    let body = body.0;
    let request = ExecRequest {
        arguments: exec_arguments(&body),
        tool_name: body.tool_name.trim().to_owned(),
        agent_id: non_empty(body.agent_id),
        language: language(),
    };
    let output = state.tools.exec(&caller.actor(), request).await?;
    Ok(ApiOk(exec_dto(output)))
}
