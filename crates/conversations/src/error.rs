//! Conversation errors with their stable keys.

use platform::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum ConversationError {
    /// Unknown, or another user's (never confirms that it exists).
    #[error("no such conversation")]
    NotFound,
    /// Editing or re-running needs a visible user message.
    #[error("the conversation has no user message")]
    NoUserMessage,
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ConversationError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ConversationError::NotFound => ErrorKind::NotFound,
            ConversationError::NoUserMessage => ErrorKind::Conflict,
            ConversationError::Invalid { .. } => ErrorKind::Invalid,
            ConversationError::Internal(_) => ErrorKind::Internal,
        }
    }

    pub fn key(&self) -> &'static str {
        match self {
            ConversationError::NotFound => "conversation.not_found",
            ConversationError::NoUserMessage => "conversation.no_user_message",
            ConversationError::Invalid { .. } => "request.validation",
            ConversationError::Internal(_) => "internal",
        }
    }
}

impl From<sea_orm::DbErr> for ConversationError {
    fn from(e: sea_orm::DbErr) -> Self {
        ConversationError::Internal(anyhow::Error::new(e))
    }
}
