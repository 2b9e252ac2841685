//! The chat runtime service: what the routes call.

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use platform::Actor;
use serde_json::{Map, Value};

use crate::ChatError;
pub use crate::hub::ActiveSession;

/// Which route started a run: decides the usage row's source and what a client disconnect
/// means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `/api/chat`: stops when the client goes.
    Chat,
    /// `/api/stream`: stops when the client goes.
    Stream,
    /// `/api/web-stream`: survives the client; a second one on the session interrupts it.
    WebStream,
    /// `/api/conversations/{id}/rerun-stream`: a web-stream that continues from the stored
    /// history (its messages may be empty) as the conversation's owner.
    Rerun,
    /// A planner task run by the worker: no client, so it runs to its end.
    Task,
}

impl Source {
    pub fn request_source(self) -> &'static str {
        match self {
            Source::Chat => "api/chat",
            Source::Stream => "api/stream",
            Source::WebStream => "api/web-stream",
            Source::Rerun => "api/conversations/rerun-stream",
            Source::Task => "tasks",
        }
    }

    /// Whether the run goes on after its client disconnects (and takes over a running
    /// session instead of being refused).
    pub fn survives_client(self) -> bool {
        matches!(self, Source::WebStream | Source::Rerun | Source::Task)
    }
}

/// A conversation as its readers see it: hidden messages withheld, and where a live run's
/// replay log stands (0 when none is running).
#[derive(Debug, Clone)]
pub struct ConversationView {
    pub conversation: conversations::Conversation,
    pub messages: Vec<conversations::StoredMessage>,
    pub next_stream_index: u64,
}

/// A session's zip (`<id>.zip`), produced while it is sent.
pub struct SessionDownload {
    pub name: String,
    pub chunks: tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
}

/// A conversation's run workspace listed: the files, and whose workspace of which agent.
pub struct SessionFiles {
    pub listing: agents::Listing,
    pub user_id: String,
    pub agent_id: String,
}

/// A message from the client (`content` is a string or a list of parts).
#[derive(Debug, Clone)]
pub struct InputMessage {
    pub message_id: Option<String>,
    pub role: String,
    pub content: Value,
}

/// A run as requested; `None` fields fall back to the agent, then to defaults.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub source: Source,
    pub messages: Vec<InputMessage>,
    pub session_id: Option<String>,
    pub agent_id: Option<String>,
    pub provider_id: Option<String>,
    pub max_loop_count: Option<u32>,
    pub agent_mode: Option<String>,
    pub system_prefix: Option<String>,
    pub system_context: Map<String, Value>,
    pub available_tools: Option<Vec<String>>,
    /// More skills for this run, resolved from the caller's own skills (else the system's);
    /// the agent's `availableSkills` resolve from its owner's.
    pub available_skills: Option<Vec<String>>,
    /// More knowledge bases for this run: the caller's own (the agent's
    /// `availableKnowledgeBases` are searched as its owner).
    pub available_knowledge_bases: Option<Vec<String>>,
    /// The sub-agents of a fibre or team run (agents the caller may use); none or empty: the
    /// agent's `availableSubAgentIds`, else (unless its `subAgentSelectionMode` is `manual`)
    /// every agent the caller owns or was granted.
    pub available_sub_agent_ids: Option<Vec<String>>,
    /// Ad-hoc sub-agents of a fibre or team run, defined in the request.
    pub custom_sub_agents: Vec<CustomSubAgent>,
    /// MCP servers for this run only (`{name: {url | streamable_http_url | sse_url,
    /// api_key?}}`): their tools join the run's, reached through the outbound policy.
    pub extra_mcp_config: Option<Value>,
    /// The request's locale: `en` or `zh` (used when no `response_language` is given).
    pub language: String,
}

/// A sub-agent defined in the request (`custom_sub_agents`): it runs with its own prompt
/// and the parent's model, and with these tools (those the caller may use) or the parent's.
#[derive(Debug, Clone, Default)]
pub struct CustomSubAgent {
    /// Its id in delegation calls; `custom_<n>` when absent.
    pub agent_id: Option<String>,
    pub name: String,
    pub description: Option<String>,
    pub system_prompt: Option<String>,
    pub available_tools: Option<Vec<String>>,
}

/// Lines of NDJSON, each ending with `\n`.
pub type LineStream = BoxStream<'static, Vec<u8>>;

/// A started run: its session id and the lines as they are produced.
pub struct StartedRun {
    pub session_id: String,
    pub lines: LineStream,
}

/// Chat runs: the agent loop, replay, interrupt and the running-session view. Only the
/// session's owner (or an admin) may touch a run; everyone else gets `SessionNotFound`.
#[async_trait]
pub trait ChatRuntime: Send + Sync {
    /// Validates and resolves the request, then starts the run in the background.
    async fn start(&self, actor: &Actor, request: RunRequest) -> Result<StartedRun, ChatError>;

    /// The session's lines after the first `last_index`, then live ones until the run ends.
    /// After the log expired: one `stream_end` with `resume_fallback`.
    async fn resume(
        &self,
        actor: &Actor,
        session_id: &str,
        last_index: u64,
    ) -> Result<LineStream, ChatError>;

    /// Asks the session's run to stop (any replica); `false` when none is running.
    async fn interrupt(&self, actor: &Actor, session_id: &str) -> Result<bool, ChatError>;

    /// The session's todo list.
    async fn tasks_status(&self, actor: &Actor, session_id: &str) -> Result<Vec<Value>, ChatError>;

    /// The caller's answers to their questionnaire `questionnaire_id`, for the
    /// `questionnaire` tool of one of their runs, which waits for them (any replica).
    /// Answers already waiting there → `QuestionnaireAnswered`.
    async fn submit_questionnaire(
        &self,
        actor: &Actor,
        questionnaire_id: &str,
        answers: Map<String, Value>,
        is_auto_submit: bool,
    ) -> Result<(), ChatError>;

    /// Running sessions: the caller's (admins: all).
    async fn active_sessions(&self, actor: &Actor) -> Result<Vec<ActiveSession>, ChatError>;

    /// Queues a message for the running session's next step; its guidance id.
    async fn inject_guidance(
        &self,
        actor: &Actor,
        session_id: &str,
        content: &str,
        guidance_id: Option<String>,
        metadata: Value,
    ) -> Result<String, ChatError>;

    /// The queued messages, oldest first.
    async fn guidance(
        &self,
        actor: &Actor,
        session_id: &str,
    ) -> Result<Vec<crate::Guidance>, ChatError>;

    async fn update_guidance(
        &self,
        actor: &Actor,
        session_id: &str,
        guidance_id: &str,
        content: &str,
    ) -> Result<(), ChatError>;

    async fn delete_guidance(
        &self,
        actor: &Actor,
        session_id: &str,
        guidance_id: &str,
    ) -> Result<(), ChatError>;

    /// The draft rewritten by the model: `{success, optimized_input, timestamp}`, or the
    /// original with `status: "fallback"` when the model fails.
    async fn optimize_input(
        &self,
        actor: &Actor,
        request: crate::OptimizeRequest,
    ) -> Result<Value, ChatError>;

    /// The same as NDJSON: `start`, `delta`s, `done`.
    async fn optimize_input_stream(
        &self,
        actor: &Actor,
        request: crate::OptimizeRequest,
    ) -> Result<LineStream, ChatError>;

    /// A conversation with its visible messages (owner or admin).
    async fn conversation(
        &self,
        actor: &Actor,
        session_id: &str,
    ) -> Result<ConversationView, ChatError>;

    /// A shared conversation, for anyone; `SessionNotFound` unless its owner shared it.
    async fn shared_conversation(&self, session_id: &str) -> Result<ConversationView, ChatError>;

    /// Stops a live run (waiting for it to let go), then deletes the conversation, its
    /// messages, share state and replay log.
    async fn delete_conversation(&self, actor: &Actor, session_id: &str) -> Result<(), ChatError>;

    /// Stops a live run, keeps the history through the last visible user message with its
    /// text replaced, and closes the replay log; `rerun-stream` then runs from there.
    async fn edit_last_user_message(
        &self,
        actor: &Actor,
        session_id: &str,
        content: &str,
    ) -> Result<conversations::EditedConversation, ChatError>;

    /// Deletes a file or directory of the conversation's run workspace (confined like the
    /// agent workspace routes).
    async fn delete_session_file(
        &self,
        actor: &Actor,
        session_id: &str,
        path: &str,
        missing_ok: bool,
    ) -> Result<(), ChatError>;

    /// The files of the conversation's run workspace (the owner's workspace of its agent),
    /// listed as the agent workspace route lists them; also the owner and agent it belongs to.
    async fn session_files(
        &self,
        actor: &Actor,
        session_id: &str,
        dir: &str,
        max_depth: u32,
    ) -> Result<SessionFiles, ChatError>;

    /// One file (or a directory as a zip) of the conversation's run workspace.
    async fn download_session_file(
        &self,
        actor: &Actor,
        session_id: &str,
        path: &str,
    ) -> Result<agents::Download, ChatError>;

    /// The conversation as a zip: `messages.json`, `transcript.md` and the run workspace's
    /// files under `workspace/`.
    async fn download_session(
        &self,
        actor: &Actor,
        session_id: &str,
    ) -> Result<SessionDownload, ChatError>;

    /// The running sessions now, then again on every change.
    fn watch_active_sessions(&self, actor: &Actor) -> BoxStream<'static, Vec<ActiveSession>>;
}
