//! Knowledge-base errors with their stable keys.

use platform::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    /// Missing, or not the caller's: one answer for both.
    #[error("no such knowledge base")]
    NotFound,
    /// A document that is missing or in a knowledge base the caller may not see.
    #[error("no such document")]
    DocNotFound,
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// The caller already has as many knowledge bases as allowed.
    #[error("at most {limit} knowledge bases per user")]
    QuotaExceeded { limit: u64 },
    /// The owner's knowledge bases would hold more documents than allowed.
    #[error("at most {limit} documents per user")]
    DocQuotaExceeded { limit: u64 },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl KnowledgeError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            KnowledgeError::NotFound | KnowledgeError::DocNotFound => ErrorKind::NotFound,
            KnowledgeError::Invalid { .. } => ErrorKind::Invalid,
            KnowledgeError::QuotaExceeded { .. } | KnowledgeError::DocQuotaExceeded { .. } => {
                ErrorKind::Conflict
            }
            KnowledgeError::Internal(_) => ErrorKind::Internal,
        }
    }

    pub fn key(&self) -> &'static str {
        match self {
            KnowledgeError::NotFound => "kdb.not_found",
            KnowledgeError::DocNotFound => "kdb.doc_not_found",
            KnowledgeError::Invalid { .. } => "request.validation",
            KnowledgeError::QuotaExceeded { .. } => "kdb.quota_exceeded",
            KnowledgeError::DocQuotaExceeded { .. } => "kdb.doc_quota_exceeded",
            KnowledgeError::Internal(_) => "internal",
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        KnowledgeError::Invalid {
            field,
            reason: reason.into(),
        }
    }

    pub(crate) fn internal(e: impl std::fmt::Display) -> Self {
        KnowledgeError::Internal(anyhow::anyhow!("{e}"))
    }
}

impl From<sea_orm::DbErr> for KnowledgeError {
    fn from(e: sea_orm::DbErr) -> Self {
        KnowledgeError::Internal(anyhow::Error::new(e))
    }
}
