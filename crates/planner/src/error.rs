//! Planner errors with their stable keys.

use platform::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum PlannerError {
    /// Unknown, or another user's (never confirms that it exists).
    #[error("no such task")]
    NotFound,
    /// The task's agent is unknown or not one the caller may use.
    #[error("no such agent")]
    AgentNotFound,
    /// The internal protocol is for admins and the worker.
    #[error("only an administrator or the worker may do this")]
    Forbidden,
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// The caller has the most tasks allowed (`SAGE_MAX_TASKS_PER_USER`).
    #[error("you already have {limit} scheduled tasks, the most allowed; delete one first")]
    QuotaExceeded { limit: u64 },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl PlannerError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            PlannerError::NotFound | PlannerError::AgentNotFound => ErrorKind::NotFound,
            PlannerError::Forbidden => ErrorKind::Forbidden,
            PlannerError::Invalid { .. } => ErrorKind::Invalid,
            PlannerError::QuotaExceeded { .. } => ErrorKind::Conflict,
            PlannerError::Internal(_) => ErrorKind::Internal,
        }
    }

    pub fn key(&self) -> &'static str {
        match self {
            PlannerError::NotFound => "task.not_found",
            PlannerError::AgentNotFound => "agent.not_found",
            PlannerError::Forbidden => "auth.forbidden",
            PlannerError::Invalid { .. } => "request.validation",
            PlannerError::QuotaExceeded { .. } => "task.quota_exceeded",
            PlannerError::Internal(_) => "internal",
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        PlannerError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

impl From<sea_orm::DbErr> for PlannerError {
    fn from(e: sea_orm::DbErr) -> Self {
        PlannerError::Internal(anyhow::Error::new(e))
    }
}
