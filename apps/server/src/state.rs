//! The shared application state, built once before the HTTP server starts.

use std::sync::Arc;
use std::time::Instant;

use platform::Config;

/// Everything handlers reach through `web::Data<AppState>`.
#[derive(Clone)]
pub(crate) struct AppState {
    pub config: Arc<Config>,
    pub started_at: Instant,
    pub identity: Arc<dyn identity::Identity>,
    pub providers: Arc<dyn providers::Providers>,
    pub agents: Arc<dyn agents::Agents>,
    pub jobs: Arc<dyn agents::AgentJobs>,
    pub workspaces: agents::WorkspaceService,
    /// The per-user bucket of model calls (`auth::ModelCaller` takes from it).
    pub budget: platform::spend::ModelBudget,
    /// Deletes users and then their data everywhere.
    pub user_cleanup: Arc<crate::user_cleanup::UserCleanups>,
    pub chat: Arc<dyn chat_runtime::ChatRuntime>,
    /// The tool catalogue and direct calls (the same runtime).
    pub tools: Arc<dyn chat_runtime::DirectTools>,
    pub conversations: Arc<dyn conversations::Conversations>,
    pub planner: Arc<dyn planner::Planner>,
    pub oauth: Arc<dyn oauth_as::AuthorizationServer>,
    pub releases: Arc<dyn releases::Releases>,
    pub skills: Arc<dyn tooling::skills::Skills>,
    pub mcp: Arc<dyn tooling::mcp::McpServers>,
    pub knowledge: Arc<dyn knowledge::KnowledgeBases>,
    /// Uploads (`/api/oss/*`).
    pub blobs: platform::blobs::Blobs,
    /// Max-Age of the session cookie (the absolute session lifetime).
    pub session_max_age_secs: i64,
    /// The dependencies `/api/ready` checks.
    pub readiness: platform::readiness::Readiness,
}
