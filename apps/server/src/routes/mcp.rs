//! MCP servers under `/api/mcp`: register (after the server answered), list, delete, refresh
//! the tool list, and switch a server's tools off and on. Servers are the caller's own.

use actix_web::web;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tooling::mcp::{McpServer, NewMcpServer};
use utoipa::ToSchema;

use crate::auth::{Caller, ModelCaller};
use crate::error::AppError;
use crate::extract::ApiJson;
use crate::response::{ApiOk, ApiResult, Envelope};
use crate::routes::chat::non_empty;
use crate::state::AppState;

/// Routes inside the `/api` scope (literal segments before `{server_name}`).
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/mcp/add").route(web::post().to(add)))
        .service(web::resource("/mcp/list").route(web::get().to(list)))
        .service(web::resource("/mcp/anytool/preview-draft").route(web::post().to(preview_draft)))
        .service(web::resource("/mcp/anytool/tool").route(web::post().to(upsert_tool)))
        .service(
            web::resource("/mcp/anytool/tool/{tool_name}").route(web::delete().to(delete_tool)),
        )
        .service(
            web::resource("/mcp/{server_name}")
                .route(web::put().to(update))
                .route(web::delete().to(delete)),
        )
        .service(web::resource("/mcp/{server_name}/preview").route(web::post().to(preview)))
        .service(web::resource("/mcp/{server_name}/refresh").route(web::post().to(refresh)))
        .service(web::resource("/mcp/{server_name}/toggle").route(web::put().to(toggle)));
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct AddMcpBody {
    #[schema(min_length = 1, max_length = 64)]
    name: String,
    /// `streamable_http` or `sse` (`stdio` is refused).
    #[serde(default)]
    #[schema(max_length = 32)]
    protocol: Option<String>,
    /// `external` (a remote server), or `anytool` (the caller's AnyTool server: `tools` and
    /// `simulator` replace its definitions and model settings; its name stays `AnyTool`).
    #[serde(default)]
    #[schema(max_length = 32)]
    kind: Option<String>,
    /// AnyTool only: the tool definitions (`name`, `description`, `parameters`, `returns`,
    /// `prompt_template`, `example_input`, `example_output`, `notes`).
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>, max_items = 100)]
    tools: Option<Vec<Value>>,
    /// AnyTool only: the model's settings (`system_prompt`, `temperature`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    simulator: Option<Value>,
    /// The server's MCP endpoint (streamable HTTP).
    #[serde(default)]
    #[schema(max_length = 2048)]
    streamable_http_url: Option<String>,
    /// The same as `streamable_http_url`.
    #[serde(default)]
    #[schema(max_length = 2048)]
    url: Option<String>,
    /// The legacy HTTP+SSE transport's event stream (used when no streamable URL is given).
    #[serde(default)]
    #[schema(max_length = 2048)]
    sse_url: Option<String>,
    /// Sent as `Authorization: Bearer`; stored sealed, listed masked.
    #[serde(default)]
    #[schema(max_length = 4096)]
    api_key: Option<String>,
    /// A local command (stdio transport): refused (422), a server never starts programs.
    #[serde(default)]
    #[schema(max_length = 1024)]
    command: Option<String>,
    #[serde(default)]
    #[schema(max_length = 2000)]
    description: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct McpStatusDto {
    server_name: String,
    /// `success` (add), `refreshed` or `failed` (refresh).
    status: &'static str,
}

/// Register an MCP server: it must answer `initialize` and `tools/list` first.
#[utoipa::path(post, path = "/api/mcp/add", tag = "mcp", request_body = AddMcpBody,
    responses((status = 200, body = Envelope<McpStatusDto>), (status = 409, description = "`mcp.server_exists`"),
              (status = 422, description = "A field, an address the outbound policy refuses, or an unsupported transport"),
              (status = 502, description = "`mcp.server_register_failed`: the server did not answer as MCP says")))]
pub(crate) async fn add(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<AddMcpBody>,
) -> ApiResult<McpStatusDto> {
    let server = state.mcp.add(&caller.actor(), new_server(body.0)?).await?;
    Ok(ApiOk(McpStatusDto {
        server_name: server.name,
        status: "success",
    }))
}

/// The settings of a body, with the transport inferred as Sage does it.
fn new_server(b: AddMcpBody) -> Result<NewMcpServer, AppError> {
    if non_empty(b.command).is_some() {
        return Err(AppError::validation(
            "body",
            "command",
            "local (stdio) MCP servers cannot run on the server; give a streamable_http_url",
        ));
    }
    match non_empty(b.kind).as_deref() {
        None | Some("external") => {}
        Some("anytool") => {
            return Ok(NewMcpServer {
                name: tooling::mcp::ANYTOOL.to_owned(),
                description: b.description.unwrap_or_default(),
                anytool: Some(tooling::mcp::NewAnyTool {
                    tools: b.tools.unwrap_or_default(),
                    simulator: b.simulator,
                }),
                ..NewMcpServer::default()
            });
        }
        Some(kind) => {
            return Err(AppError::validation(
                "body",
                "kind",
                &format!("`{kind}` servers are not supported; use external or anytool"),
            ));
        }
    }
    // A streamable URL wins; else `sse_url` means the SSE transport.
    let (url, sse) = match (
        non_empty(b.streamable_http_url).or(non_empty(b.url)),
        non_empty(b.sse_url),
    ) {
        (Some(url), _) => (url, false),
        (None, Some(url)) => (url, true),
        (None, None) => {
            return Err(AppError::validation(
                "body",
                "streamable_http_url",
                "is required (or sse_url)",
            ));
        }
    };
    if let Some(p) = non_empty(b.protocol).filter(|p| {
        !matches!(
            p.as_str(),
            "streamable_http" | "streamable-http" | "http" | "sse"
        )
    }) {
        return Err(AppError::validation(
            "body",
            "protocol",
            &format!("`{p}` is not supported; use streamable_http or sse"),
        ));
    }
    Ok(NewMcpServer {
        name: b.name,
        url,
        sse,
        api_key: non_empty(b.api_key),
        description: b.description.unwrap_or_default(),
        anytool: None,
    })
}

/// Replace a server's settings (a new name too); only once the server answered, else nothing
/// changes. An empty `api_key` keeps the stored one.
#[utoipa::path(put, path = "/api/mcp/{server_name}", tag = "mcp",
    params(("server_name" = String, Path)), request_body = AddMcpBody,
    responses((status = 200, body = Envelope<McpStatusDto>), (status = 404, description = "`mcp.server_not_found`"),
              (status = 409, description = "`mcp.server_exists`: the new name is taken"),
              (status = 502, description = "`mcp.server_register_failed`")))]
pub(crate) async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: ApiJson<AddMcpBody>,
) -> ApiResult<McpStatusDto> {
    let server = state
        .mcp
        .update(&caller.actor(), &path.into_inner(), new_server(body.0)?)
        .await?;
    Ok(ApiOk(McpStatusDto {
        server_name: server.name,
        status: "success",
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct McpPreviewBody {
    #[schema(min_length = 1, max_length = 128)]
    tool_name: String,
    /// The tool's arguments (an object); absent: `{}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    arguments: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct McpPreviewDto {
    server_name: String,
    tool_name: String,
    /// The MCP `result` (`content`, `isError`, …); for AnyTool, the simulated result.
    #[schema(value_type = Object)]
    result: Value,
    /// AnyTool only: the model, its raw answer, the JSON read from it (`parsed`), the tool's
    /// definition and the arguments played.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    simulation: serde_json::Map<String, Value>,
}

/// The preview answer: an AnyTool simulation is flattened into it (Sage's shape), with
/// `result` its parsed JSON.
fn preview_dto(server_name: String, tool_name: String, result: Value) -> McpPreviewDto {
    match result {
        Value::Object(simulation) if simulation.contains_key("raw_text") => McpPreviewDto {
            result: simulation.get("parsed").cloned().unwrap_or(Value::Null),
            server_name,
            tool_name,
            simulation,
        },
        result => McpPreviewDto {
            server_name,
            tool_name,
            result,
            simulation: serde_json::Map::new(),
        },
    }
}

/// Call one tool of the caller's server (the UI's "try it"); on the AnyTool server, the
/// caller's model plays it.
#[utoipa::path(post, path = "/api/mcp/{server_name}/preview", tag = "mcp",
    params(("server_name" = String, Path)), request_body = McpPreviewBody,
    responses((status = 200, body = Envelope<McpPreviewDto>), (status = 404, description = "`mcp.server_not_found`"),
              (status = 422, description = "Not a tool of this server"),
              (status = 502, description = "`mcp.server_register_failed`: the server failed")))]
pub(crate) async fn preview(
    state: web::Data<AppState>,
    caller: ModelCaller,
    path: web::Path<String>,
    body: ApiJson<McpPreviewBody>,
) -> ApiResult<McpPreviewDto> {
    let server_name = path.into_inner();
    let b = body.0;
    let result = state
        .mcp
        .preview(
            &caller.actor(),
            &server_name,
            &b.tool_name,
            b.arguments
                .unwrap_or_else(|| Value::Object(serde_json::Map::new())),
        )
        .await?;
    Ok(ApiOk(preview_dto(server_name, b.tool_name, result)))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct AnyToolDraftBody {
    /// The definition to play (not saved).
    #[schema(value_type = Object)]
    tool_definition: Value,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    arguments: Option<Value>,
    /// Model settings for this try (`system_prompt`, `temperature`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    simulator: Option<Value>,
    /// Shown in the answer only.
    #[serde(default)]
    #[schema(max_length = 64)]
    server_name: Option<String>,
}

/// Play an AnyTool definition that is not saved yet (the editor's "try it").
#[utoipa::path(post, path = "/api/mcp/anytool/preview-draft", tag = "mcp", request_body = AnyToolDraftBody,
    responses((status = 200, body = Envelope<McpPreviewDto>), (status = 422, description = "An invalid definition"),
              (status = 502, description = "The model failed")))]
pub(crate) async fn preview_draft(
    state: web::Data<AppState>,
    caller: ModelCaller,
    body: ApiJson<AnyToolDraftBody>,
) -> ApiResult<McpPreviewDto> {
    let b = body.0;
    let result = state
        .mcp
        .anytool_preview_draft(
            &caller.actor(),
            b.tool_definition,
            b.arguments
                .unwrap_or_else(|| Value::Object(serde_json::Map::new())),
            b.simulator,
        )
        .await?;
    let tool_name = result["tool_name"].as_str().unwrap_or_default().to_owned();
    let server_name = non_empty(b.server_name).unwrap_or_else(|| "draft".to_owned());
    Ok(ApiOk(preview_dto(server_name, tool_name, result)))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct AnyToolUpsertBody {
    #[schema(value_type = Object)]
    tool_definition: Value,
    /// The tool this definition replaces (renaming it); absent: a new tool.
    #[serde(default)]
    #[schema(max_length = 64)]
    original_name: Option<String>,
    /// Accepted for compatibility: always the caller's `AnyTool` server.
    #[serde(default)]
    #[schema(max_length = 64)]
    #[allow(dead_code)]
    server_name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AnyToolSavedDto {
    server_name: String,
    tool_name: String,
    original_name: String,
}

/// Add a tool to the caller's AnyTool server, or replace one.
#[utoipa::path(post, path = "/api/mcp/anytool/tool", tag = "mcp", request_body = AnyToolUpsertBody,
    responses((status = 200, body = Envelope<AnyToolSavedDto>), (status = 404, description = "`mcp.anytool_tool_not_found`: no such original"),
              (status = 422, description = "An invalid definition, or its name is taken")))]
pub(crate) async fn upsert_tool(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<AnyToolUpsertBody>,
) -> ApiResult<AnyToolSavedDto> {
    let b = body.0;
    let original = non_empty(b.original_name);
    let tool_name = state
        .mcp
        .anytool_upsert(&caller.actor(), b.tool_definition, original.as_deref())
        .await?;
    Ok(ApiOk(AnyToolSavedDto {
        server_name: tooling::mcp::ANYTOOL.to_owned(),
        original_name: original.unwrap_or_else(|| tool_name.clone()),
        tool_name,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AnyToolDeletedDto {
    server_name: String,
    tool_name: String,
}

/// Remove a tool from the caller's AnyTool server.
#[utoipa::path(delete, path = "/api/mcp/anytool/tool/{tool_name}", tag = "mcp",
    params(("tool_name" = String, Path, max_length = 64)),
    responses((status = 200, body = Envelope<AnyToolDeletedDto>), (status = 404, description = "`mcp.anytool_tool_not_found`")))]
pub(crate) async fn delete_tool(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<AnyToolDeletedDto> {
    let tool_name = path.into_inner();
    state
        .mcp
        .anytool_delete(&caller.actor(), &tool_name)
        .await?;
    Ok(ApiOk(AnyToolDeletedDto {
        server_name: tooling::mcp::ANYTOOL.to_owned(),
        tool_name,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct McpToolDto {
    name: String,
    description: String,
    #[schema(value_type = Object)]
    input_schema: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct McpServerDto {
    name: String,
    /// `streamable_http` or `sse`.
    protocol: String,
    /// `external`, or `anytool` for the caller's AnyTool server.
    kind: &'static str,
    disabled: bool,
    /// The streamable HTTP endpoint (empty for an SSE server).
    streamable_http_url: String,
    /// The event stream of an SSE server.
    sse_url: Option<String>,
    /// Masked (`abcd***wxyz`), empty when none.
    api_key: String,
    /// Always null: servers never run local commands.
    command: Option<String>,
    args: Vec<String>,
    #[schema(value_type = Object)]
    env: Value,
    /// `{name, description, input_schema}` per tool; for AnyTool, its definitions.
    #[schema(value_type = Vec<Object>)]
    tools: Vec<Value>,
    /// AnyTool's model settings (null for other servers).
    #[schema(value_type = Option<Object>)]
    simulator: Option<Value>,
    description: String,
    /// The owner.
    user_id: String,
    /// RFC 3339.
    created_at: String,
}

impl From<McpServer> for McpServerDto {
    fn from(s: McpServer) -> Self {
        Self {
            name: s.name,
            kind: s.kind,
            disabled: s.disabled,
            streamable_http_url: if s.protocol == "sse" {
                String::new()
            } else {
                s.url.clone()
            },
            sse_url: (s.protocol == "sse").then_some(s.url),
            // AnyTool speaks streamable HTTP in Sage; here it is played in process.
            protocol: if s.kind == "anytool" {
                "streamable_http".to_owned()
            } else {
                s.protocol
            },
            api_key: s.api_key_masked,
            command: None,
            args: Vec::new(),
            env: Value::Object(serde_json::Map::new()),
            tools: if s.kind == "anytool" {
                s.definitions
                    .iter()
                    .filter_map(|d| serde_json::to_value(d).ok())
                    .collect()
            } else {
                s.tools
                    .into_iter()
                    .filter_map(|t| {
                        serde_json::to_value(McpToolDto {
                            name: t.name,
                            description: t.description,
                            input_schema: t.input_schema,
                        })
                        .ok()
                    })
                    .collect()
            },
            simulator: (s.kind == "anytool").then_some(s.simulator),
            description: s.description,
            user_id: s.user_id,
            created_at: s.created_at.to_rfc3339(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct McpServersDto {
    servers: Vec<McpServerDto>,
}

/// The caller's MCP servers (admins: everyone's), keys masked.
#[utoipa::path(get, path = "/api/mcp/list", tag = "mcp",
    responses((status = 200, body = Envelope<McpServersDto>)))]
pub(crate) async fn list(state: web::Data<AppState>, caller: Caller) -> ApiResult<McpServersDto> {
    let servers = state.mcp.list(&caller.actor()).await?;
    Ok(ApiOk(McpServersDto {
        servers: servers.into_iter().map(McpServerDto::from).collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct McpNameDto {
    server_name: String,
}

/// Remove one of the caller's servers.
#[utoipa::path(delete, path = "/api/mcp/{server_name}", tag = "mcp",
    params(("server_name" = String, Path)),
    responses((status = 200, body = Envelope<McpNameDto>), (status = 404, description = "`mcp.server_not_found`")))]
pub(crate) async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<McpNameDto> {
    let name = path.into_inner();
    state.mcp.delete(&caller.actor(), &name).await?;
    Ok(ApiOk(McpNameDto { server_name: name }))
}

/// List the server's tools again; `status` is `failed` when it did not answer (its tools stay).
#[utoipa::path(post, path = "/api/mcp/{server_name}/refresh", tag = "mcp",
    params(("server_name" = String, Path)),
    responses((status = 200, body = Envelope<McpStatusDto>), (status = 404, description = "`mcp.server_not_found`")))]
pub(crate) async fn refresh(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<McpStatusDto> {
    let name = path.into_inner();
    let ok = state.mcp.refresh(&caller.actor(), &name).await?;
    Ok(ApiOk(McpStatusDto {
        server_name: name,
        status: if ok { "refreshed" } else { "failed" },
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct McpToggleBody {
    /// The new state; absent: the opposite of the current one.
    #[serde(default)]
    disabled: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct McpToggleDto {
    server_name: String,
    disabled: bool,
}

/// Switch a server's tools off or on (the caller's own server).
#[utoipa::path(put, path = "/api/mcp/{server_name}/toggle", tag = "mcp",
    params(("server_name" = String, Path)), request_body(content = Option<McpToggleBody>),
    responses((status = 200, body = Envelope<McpToggleDto>), (status = 404, description = "`mcp.server_not_found`")))]
pub(crate) async fn toggle(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: Option<ApiJson<McpToggleBody>>,
) -> ApiResult<McpToggleDto> {
    let name = path.into_inner();
    let disabled = body.and_then(|b| b.0.disabled);
    let disabled = state.mcp.toggle(&caller.actor(), &name, disabled).await?;
    Ok(ApiOk(McpToggleDto {
        server_name: name,
        disabled,
    }))
}
