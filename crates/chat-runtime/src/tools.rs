//! Tools called directly, outside a run (`/api/tools`, `/api/tools/exec`): the deployment's
//! catalogue, and one call in the caller's workspace of an agent they may use (the
//! agentless chat workspace when none is named), within the registry's limits.

use async_trait::async_trait;
use platform::Actor;
use serde_json::Value;
use tooling::{Cancel, Progress, ToolContext, ToolError};

use crate::ChatError;
use crate::runtime::Runtime;

/// The agent id of conversations, runs and direct calls that name no agent (and so of
/// their workspace).
pub(crate) const AGENTLESS_WORKSPACE: &str = "default_agent";

/// One tool of the catalogue.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolEntry {
    pub name: String,
    pub description: String,
    /// The JSON schema of the arguments (an object schema).
    pub input_schema: Value,
    /// `basic` for the built-ins, `sage_mcp` for the built-in MCP servers' tools (the
    /// planner's), `mcp` for the tools of MCP servers.
    pub kind: &'static str,
    /// Whether a direct call needs an admin (the tool changes files).
    pub admin_only: bool,
    /// The MCP server offering it, and its owner (none for basic tools; a built-in server
    /// has no owner).
    pub server: Option<(String, String)>,
    /// `external` or `anytool` for MCP tools, empty for the built-ins.
    pub server_kind: &'static str,
}

/// One direct call.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    pub tool_name: String,
    /// A JSON object.
    pub arguments: Value,
    /// The agent whose workspace (the caller's) the call runs in.
    pub agent_id: Option<String>,
    /// `en` or `zh`.
    pub language: String,
}

/// The deployment's tools, and running one directly.
#[async_trait]
pub trait DirectTools: Send + Sync {
    /// Every tool the caller may see, of `kind` when given, in name order.
    async fn tools(
        &self,
        actor: &Actor,
        kind: Option<&str>,
        language: &str,
    ) -> Result<Vec<ToolEntry>, ChatError>;

    /// Runs one call and returns the tool's output. Unknown tool → `ToolNotFound`; a tool
    /// that changes files, for a non-admin → `ToolForbidden`; an unknown or foreign agent →
    /// not found; a failing call → `ToolFailed` with the tool's message.
    async fn exec(&self, actor: &Actor, request: ExecRequest) -> Result<Value, ChatError>;
}

#[async_trait]
impl DirectTools for Runtime {
    async fn tools(
        &self,
        actor: &Actor,
        kind: Option<&str>,
        language: &str,
    ) -> Result<Vec<ToolEntry>, ChatError> {
        let mut entries: Vec<ToolEntry> = self
            .registry()
            .catalogue(language)
            .into_iter()
            .map(|t| ToolEntry {
                name: t.name,
                description: t.description,
                input_schema: t.parameters,
                kind: if t.builtin_server.is_some() {
                    "sage_mcp"
                } else {
                    "basic"
                },
                admin_only: t.writes,
                server: t.builtin_server.map(|s| (s.to_owned(), String::new())),
                server_kind: "",
            })
            .filter(|t| kind.is_none_or(|k| k == t.kind))
            .collect();
        if kind.is_none_or(|k| k == "mcp") {
            let servers = self
                .mcp()
                .list(actor)
                .await
                .map_err(|e| ChatError::Internal(e.into()))?;
            for server in servers.into_iter().filter(|s| !s.disabled) {
                for tool in server.tools {
                    entries.push(ToolEntry {
                        name: tool.name,
                        description: tool.description,
                        input_schema: tool.input_schema,
                        kind: "mcp",
                        admin_only: false,
                        server: Some((server.name.clone(), server.user_id.clone())),
                        server_kind: server.kind,
                    });
                }
            }
        }
        Ok(entries)
    }

    async fn exec(&self, actor: &Actor, request: ExecRequest) -> Result<Value, ChatError> {
        let registry = self
            .tools_for(actor, std::slice::from_ref(&request.tool_name))
            .await?;
        let writes = registry
            .writes(&request.tool_name)
            .ok_or(ChatError::ToolNotFound)?;
        if writes && !actor.is_admin {
            return Err(ChatError::ToolForbidden);
        }
        if request.tool_name == tooling::questionnaire::blocking::TOOL_NAME {
            // It waits for a form the web UI shows only inside a chat.
            return Err(ChatError::Invalid {
                field: "tool_name",
                reason: "this tool waits for the user's answers; it runs only inside a chat".into(),
            });
        }
        if !request.arguments.is_object() {
            return Err(ChatError::Invalid {
                field: "tool_params",
                reason: "must be a JSON object".into(),
            });
        }
        let agent_id = match request.agent_id.as_deref() {
            Some(id) => self.agent_service().get(actor, id).await?.id,
            None => AGENTLESS_WORKSPACE.to_owned(),
        };
        let workspace = self.workspaces().root_of(&actor.user_id, &agent_id)?;
        std::fs::create_dir_all(&workspace).map_err(|e| ChatError::Internal(e.into()))?;
        // A direct call is never cancelled; its time limit still holds.
        let (_cancel_tx, cancel) = Cancel::new();
        let ctx = ToolContext {
            workspace,
            // A direct call's todo list is the caller's own, apart from every session's.
            session_id: format!("direct-{}", actor.user_id),
            user_id: actor.user_id.clone(),
            agent_id,
            scheduled: false,
            language: request.language,
            kv: self.hub().kv().clone(),
            cancel,
            progress: Progress::silent(),
        };
        registry
            .call(&ctx, &request.tool_name, request.arguments)
            .await
            .map_err(|e| match e {
                ToolError::Unknown(_) => ChatError::ToolNotFound,
                ToolError::Invalid(reason) => ChatError::Invalid {
                    field: "tool_params",
                    reason,
                },
                other => ChatError::ToolFailed(other.to_string()),
            })
    }
}
