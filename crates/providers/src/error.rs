//! Provider errors with their stable keys.

use platform::ErrorKind;

use crate::client::{LlmError, LlmErrorKind};

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("no such provider")]
    NotFound,
    #[error("the default provider cannot be deleted; make another one the default first")]
    DefaultInUse,
    #[error("the deployment's default provider cannot be changed through the API")]
    SystemReadOnly,
    #[error("no LLM provider is configured; add one first")]
    NoneConfigured,
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// The provider refused the request (wrong key, unknown model, bad parameters).
    #[error("the provider refused: {0}")]
    Rejected(LlmError),
    /// The base URL points at an address this deployment does not allow.
    #[error("{0}")]
    AddressForbidden(String),
    /// The provider could not be reached or answered nonsense.
    #[error("the provider failed: {0}")]
    ProbeFailed(LlmError),
    #[error("a stored key cannot be decrypted")]
    KeyUnreadable,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ProviderError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ProviderError::NotFound => ErrorKind::NotFound,
            ProviderError::DefaultInUse | ProviderError::NoneConfigured => ErrorKind::Conflict,
            ProviderError::SystemReadOnly => ErrorKind::Forbidden,
            ProviderError::Invalid { .. }
            | ProviderError::Rejected(_)
            | ProviderError::AddressForbidden(_) => ErrorKind::Invalid,
            ProviderError::ProbeFailed(_) => ErrorKind::Upstream,
            ProviderError::KeyUnreadable | ProviderError::Internal(_) => ErrorKind::Internal,
        }
    }

    pub fn key(&self) -> &'static str {
        match self {
            ProviderError::NotFound => "provider.not_found",
            ProviderError::DefaultInUse => "provider.default_in_use",
            ProviderError::SystemReadOnly => "provider.system_readonly",
            ProviderError::NoneConfigured => "provider.none_configured",
            ProviderError::Invalid { .. } => "request.validation",
            ProviderError::Rejected(_) => "provider.rejected",
            ProviderError::AddressForbidden(_) => "provider.address_forbidden",
            ProviderError::ProbeFailed(_) => "provider.probe_failed",
            ProviderError::KeyUnreadable | ProviderError::Internal(_) => "internal",
        }
    }

    /// The cause as a sentence for the message's `{reason}`.
    pub fn reason(&self) -> Option<String> {
        match self {
            ProviderError::Rejected(e) | ProviderError::ProbeFailed(e) => Some(e.to_string()),
            ProviderError::AddressForbidden(m) => Some(m.clone()),
            _ => None,
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        ProviderError::Invalid {
            field,
            reason: reason.into(),
        }
    }

    /// Classifies a failed call to the provider.
    pub(crate) fn from_llm(e: LlmError) -> Self {
        match e.kind {
            LlmErrorKind::Authentication
            | LlmErrorKind::ModelNotFound
            | LlmErrorKind::BadRequest => ProviderError::Rejected(e),
            LlmErrorKind::Forbidden => ProviderError::AddressForbidden(e.message),
            LlmErrorKind::RateLimited
            | LlmErrorKind::Unreachable
            | LlmErrorKind::MalformedResponse
            | LlmErrorKind::Timeout
            | LlmErrorKind::ServerError => ProviderError::ProbeFailed(e),
        }
    }
}

impl From<sea_orm::DbErr> for ProviderError {
    fn from(e: sea_orm::DbErr) -> Self {
        ProviderError::Internal(anyhow::Error::new(e))
    }
}
