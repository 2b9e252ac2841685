//! Chat errors with their stable keys (before a stream starts; afterwards failures are lines).

use platform::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// Unknown session, or another user's.
    #[error("no such session")]
    SessionNotFound,
    #[error("`messages` must contain at least one message")]
    MessagesRequired,
    #[error("no max_loop_count in the request or the agent")]
    MaxLoopRequired,
    /// Another run holds the session (`/api/chat`, `/api/stream`; web-stream interrupts it).
    #[error("a run is already in progress for this session")]
    SessionRunning,
    /// Guidance needs a running session.
    #[error("no run is in progress for this session")]
    SessionNotRunning,
    /// An unknown (or already taken) guidance id.
    #[error("no such guidance message")]
    GuidanceNotFound,
    /// Answers to this questionnaire are already waiting for its tool.
    #[error("answers to this questionnaire were already submitted")]
    QuestionnaireAnswered,
    /// Editing or re-running a conversation needs a visible user message.
    #[error("the conversation has no user message")]
    NoUserMessage,
    /// No tool of that name in this deployment.
    #[error("no such tool")]
    ToolNotFound,
    /// A direct call of a tool that changes files, by a non-admin.
    #[error("only an admin may call this tool directly")]
    ToolForbidden,
    /// A direct call ran and the tool reported a failure (its message).
    #[error("the tool failed: {0}")]
    ToolFailed(String),
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// More text than one request may send to a model (`SAGE_MAX_PROMPT_CHARS`).
    #[error(transparent)]
    InputTooLarge(#[from] platform::spend::InputTooLarge),
    #[error(transparent)]
    Agent(#[from] agents::AgentError),
    #[error(transparent)]
    Provider(#[from] providers::ProviderError),
    #[error(transparent)]
    Store(#[from] platform::store::StoreError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ChatError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ChatError::SessionNotFound => ErrorKind::NotFound,
            ChatError::MessagesRequired | ChatError::Invalid { .. } => ErrorKind::Invalid,
            ChatError::MaxLoopRequired => ErrorKind::BadRequest,
            ChatError::SessionRunning | ChatError::SessionNotRunning => ErrorKind::Conflict,
            ChatError::GuidanceNotFound => ErrorKind::NotFound,
            ChatError::NoUserMessage | ChatError::QuestionnaireAnswered => ErrorKind::Conflict,
            ChatError::ToolNotFound => ErrorKind::NotFound,
            ChatError::ToolForbidden => ErrorKind::Forbidden,
            ChatError::ToolFailed(_) => ErrorKind::Invalid,
            ChatError::InputTooLarge(_) => ErrorKind::PayloadTooLarge,
            ChatError::Agent(e) => e.kind(),
            ChatError::Provider(e) => e.kind(),
            ChatError::Store(e) => e.kind(),
            ChatError::Internal(_) => ErrorKind::Internal,
        }
    }

    pub fn key(&self) -> &'static str {
        match self {
            ChatError::SessionNotFound => "chat.session_not_found",
            ChatError::MessagesRequired => "chat.messages_required",
            ChatError::MaxLoopRequired => "chat.max_loop_required",
            ChatError::SessionRunning => "chat.session_running",
            ChatError::SessionNotRunning => "chat.session_not_running",
            ChatError::GuidanceNotFound => "chat.guidance_not_found",
            ChatError::QuestionnaireAnswered => "chat.questionnaire_answered",
            ChatError::NoUserMessage => "conversation.no_user_message",
            ChatError::ToolNotFound => "tool.not_found",
            ChatError::ToolForbidden => "tool.use_forbidden",
            ChatError::ToolFailed(_) => "tool.failed",
            ChatError::Invalid { .. } => "request.validation",
            ChatError::InputTooLarge(_) => "model.input_too_large",
            ChatError::Agent(e) => e.key(),
            ChatError::Provider(e) => e.key(),
            ChatError::Store(_) => "service.unavailable",
            ChatError::Internal(_) => "internal",
        }
    }
}

impl From<conversations::ConversationError> for ChatError {
    fn from(e: conversations::ConversationError) -> Self {
        match e {
            conversations::ConversationError::NotFound => ChatError::SessionNotFound,
            conversations::ConversationError::NoUserMessage => ChatError::NoUserMessage,
            conversations::ConversationError::Invalid { field, reason } => {
                ChatError::Invalid { field, reason }
            }
            conversations::ConversationError::Internal(e) => ChatError::Internal(e),
        }
    }
}
