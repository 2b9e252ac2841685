//! MCP servers: each user's registered servers (streamable HTTP), their tools, and those
//! tools as [`crate::Tool`]s that runs and direct calls use by name.
//!
//! A server is registered only after it answered `initialize` and `tools/list`; its API key
//! is sealed at rest and never shown whole. Ownership: a user sees and changes only their own
//! servers (admins list everyone's); anything else is [`McpError::NotFound`].

pub mod anytool;
mod client;
mod store;
mod tool;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use platform::{Actor, ErrorKind};

pub use anytool::{ANYTOOL, AnyToolDef, Simulator, SimulatorError};
pub use client::{Endpoint, McpClient, ToolDef};
pub use store::SeaOrmMcp;

/// A registered server as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct McpServer {
    pub name: String,
    pub user_id: String,
    /// `streamable_http` or `sse`.
    pub protocol: String,
    pub url: String,
    /// `abcd***wxyz`, or empty when none.
    pub api_key_masked: String,
    pub description: String,
    pub disabled: bool,
    pub tools: Vec<ToolDef>,
    /// `external`, or `anytool` for the caller's AnyTool server.
    pub kind: &'static str,
    /// An AnyTool server's tool definitions (empty otherwise).
    pub definitions: Vec<AnyToolDef>,
    /// An AnyTool server's model settings (`{}` otherwise).
    pub simulator: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// A server to register.
#[derive(Debug, Clone, Default)]
pub struct NewMcpServer {
    pub name: String,
    /// The streamable HTTP endpoint, or with `sse` the event stream's address.
    pub url: String,
    /// The legacy HTTP+SSE transport.
    pub sse: bool,
    pub api_key: Option<String>,
    pub description: String,
    /// Settings of the caller's AnyTool server instead of a remote server (its name is
    /// always [`ANYTOOL`]).
    pub anytool: Option<NewAnyTool>,
}

/// What an AnyTool server holds.
#[derive(Debug, Clone, Default)]
pub struct NewAnyTool {
    /// Tool definitions as sent (checked by [`anytool::normalize_all`]).
    pub tools: Vec<serde_json::Value>,
    /// Model settings (`system_prompt`, `temperature`).
    pub simulator: Option<serde_json::Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// Unknown, or another user's.
    #[error("no such MCP server")]
    NotFound,
    #[error("an MCP server of this name exists")]
    Exists,
    /// The caller's AnyTool server can be switched off, not deleted or renamed.
    #[error("AnyTool can only be switched off")]
    AnyToolFixed,
    /// No tool of that name in the AnyTool server.
    #[error("no such AnyTool tool")]
    ToolNotFound,
    /// The caller has no model to play AnyTool tools.
    #[error("no LLM provider is configured")]
    NoModel,
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// The outbound policy refuses the address.
    #[error(transparent)]
    Refused(platform::outbound::OutboundError),
    /// The server did not answer as MCP says.
    #[error("the MCP server failed: {0}")]
    Server(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl McpError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            McpError::NotFound | McpError::ToolNotFound => ErrorKind::NotFound,
            McpError::Exists | McpError::NoModel => ErrorKind::Conflict,
            McpError::AnyToolFixed => ErrorKind::Forbidden,
            McpError::Invalid { .. } | McpError::Refused(_) => ErrorKind::Invalid,
            McpError::Server(_) => ErrorKind::Upstream,
            McpError::Internal(_) => ErrorKind::Internal,
        }
    }

    pub fn key(&self) -> &'static str {
        match self {
            McpError::NotFound => "mcp.server_not_found",
            McpError::Exists => "mcp.server_exists",
            McpError::AnyToolFixed => "mcp.anytool_fixed",
            McpError::ToolNotFound => "mcp.anytool_tool_not_found",
            McpError::NoModel => "provider.none_configured",
            McpError::Invalid { .. } | McpError::Refused(_) => "request.validation",
            McpError::Server(_) => "mcp.server_register_failed",
            McpError::Internal(_) => "internal",
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        McpError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

impl From<sea_orm::DbErr> for McpError {
    fn from(e: sea_orm::DbErr) -> Self {
        McpError::Internal(anyhow::Error::new(e))
    }
}

/// The MCP server service.
#[async_trait::async_trait]
pub trait McpServers: Send + Sync {
    /// Connects, lists the tools, then stores the server (the caller's).
    async fn add(&self, actor: &Actor, new: NewMcpServer) -> Result<McpServer, McpError>;
    /// The caller's servers (admins: everyone's), by name.
    async fn list(&self, actor: &Actor) -> Result<Vec<McpServer>, McpError>;
    async fn delete(&self, actor: &Actor, name: &str) -> Result<(), McpError>;
    /// Replaces a server's settings (a new name too); like `add`, only once the server
    /// answered, else nothing changes.
    async fn update(
        &self,
        actor: &Actor,
        name: &str,
        new: NewMcpServer,
    ) -> Result<McpServer, McpError>;
    /// Calls one tool of the caller's server (the UI's "try it"); the MCP `result`.
    async fn preview(
        &self,
        actor: &Actor,
        name: &str,
        tool: &str,
        arguments: serde_json::Value,
    ) -> Result<serde_json::Value, McpError>;
    /// Lists the tools again; `Ok(false)` when the server did not answer (its tools stay).
    async fn refresh(&self, actor: &Actor, name: &str) -> Result<bool, McpError>;
    /// Sets (or flips, with `None`) whether the server's tools are offered; the new state.
    async fn toggle(
        &self,
        actor: &Actor,
        name: &str,
        disabled: Option<bool>,
    ) -> Result<bool, McpError>;
    /// The tools of `user_id`'s enabled servers, ready to run.
    async fn tools_for(&self, user_id: &str) -> Result<Vec<Arc<dyn crate::Tool>>, McpError>;
    /// Connects to a server a request names (through the outbound policy; nothing is
    /// stored) and returns its tools, ready to run.
    async fn connect(
        &self,
        name: &str,
        endpoint: Endpoint,
    ) -> Result<Vec<Arc<dyn crate::Tool>>, McpError>;
    /// Adds a tool to the caller's AnyTool server, or replaces `original` (renaming it);
    /// the tool's name.
    async fn anytool_upsert(
        &self,
        actor: &Actor,
        definition: serde_json::Value,
        original: Option<&str>,
    ) -> Result<String, McpError>;
    /// Removes a tool from the caller's AnyTool server.
    async fn anytool_delete(&self, actor: &Actor, tool: &str) -> Result<(), McpError>;
    /// Plays a definition that is not saved yet (the editor's "try it").
    async fn anytool_preview_draft(
        &self,
        actor: &Actor,
        definition: serde_json::Value,
        arguments: serde_json::Value,
        simulator: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, McpError>;
}
