//! Agent errors with their stable keys.

use platform::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Unknown, or not visible to the caller (never confirms that others' agents exist).
    #[error("no such agent")]
    NotFound,
    /// Visible (granted) but only the owner or an admin may do this.
    #[error("only the agent's owner or an admin may do this")]
    Forbidden,
    #[error("an agent with this name already exists")]
    NameTaken,
    /// The owner already has as many agents as the deployment allows.
    #[error("at most {limit} agents per user")]
    QuotaExceeded { limit: u64 },
    /// Unknown job, or another user's (never confirms that it exists).
    #[error("no such task")]
    TaskNotFound,
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
    /// The model's answer could not be used (not a JSON object of the expected shape).
    #[error("the model's answer could not be used")]
    GenerationInvalid,
    /// The text for the model is longer than `SAGE_MAX_PROMPT_CHARS`.
    #[error(transparent)]
    InputTooLarge(#[from] platform::spend::InputTooLarge),
    /// The caller already has `limit` unfinished jobs.
    #[error("at most {limit} unfinished jobs per user")]
    TooManyJobs { limit: u32 },
    #[error(transparent)]
    Provider(#[from] providers::ProviderError),
    #[error("the model failed: {0}")]
    Llm(providers::LlmError),
    /// A workspace path that is malformed or leaves its root.
    #[error("invalid path: {0}")]
    PathInvalid(String),
    #[error("no such file or directory")]
    FileNotFound,
    /// An upload's target name is taken (files are never replaced).
    #[error("a file of that name already exists")]
    FileExists,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AgentError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            AgentError::NotFound => ErrorKind::NotFound,
            AgentError::Forbidden => ErrorKind::Forbidden,
            AgentError::NameTaken | AgentError::QuotaExceeded { .. } => ErrorKind::Conflict,
            AgentError::TaskNotFound => ErrorKind::NotFound,
            AgentError::Invalid { .. } => ErrorKind::Invalid,
            AgentError::GenerationInvalid | AgentError::Llm(_) => ErrorKind::Upstream,
            AgentError::InputTooLarge(_) => ErrorKind::PayloadTooLarge,
            AgentError::TooManyJobs { .. } => ErrorKind::RateLimited,
            AgentError::Provider(e) => e.kind(),
            AgentError::PathInvalid(_) => ErrorKind::BadRequest,
            AgentError::FileNotFound => ErrorKind::NotFound,
            AgentError::FileExists => ErrorKind::Conflict,
            AgentError::Internal(_) => ErrorKind::Internal,
        }
    }

    pub fn key(&self) -> &'static str {
        match self {
            AgentError::NotFound => "agent.not_found",
            AgentError::Forbidden => "agent.forbidden",
            AgentError::NameTaken => "agent.name_taken",
            AgentError::QuotaExceeded { .. } => "agent.quota_exceeded",
            AgentError::TaskNotFound => "task.not_found",
            AgentError::Invalid { .. } => "request.validation",
            AgentError::GenerationInvalid => "agent.generation_invalid",
            AgentError::Llm(_) => "agent.generation_failed",
            AgentError::InputTooLarge(_) => "model.input_too_large",
            AgentError::TooManyJobs { .. } => "agent.too_many_jobs",
            AgentError::Provider(e) => e.key(),
            AgentError::PathInvalid(_) => "workspace.path_invalid",
            AgentError::FileNotFound => "workspace.not_found",
            AgentError::FileExists => "workspace.file_exists",
            AgentError::Internal(_) => "internal",
        }
    }

    pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> Self {
        AgentError::Invalid {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
}

impl From<sea_orm::DbErr> for AgentError {
    fn from(e: sea_orm::DbErr) -> Self {
        AgentError::Internal(anyhow::Error::new(e))
    }
}
