//! OAuth2 errors: the RFC 6749 `error` code and a description, as the protocol answers them.

/// A refusal the protocol reports to the client (`error`, `error_description`), or an internal
/// failure (never described to the client).
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("{code}: {description}")]
    Protocol {
        /// The RFC 6749 / 6750 / 7009 error code, e.g. `invalid_grant`.
        code: &'static str,
        description: String,
    },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl OAuthError {
    fn protocol(code: &'static str, description: impl Into<String>) -> Self {
        OAuthError::Protocol {
            code,
            description: description.into(),
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::protocol("invalid_request", description)
    }
    pub fn invalid_client(description: impl Into<String>) -> Self {
        Self::protocol("invalid_client", description)
    }
    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::protocol("invalid_grant", description)
    }
    pub fn unauthorized_client(description: impl Into<String>) -> Self {
        Self::protocol("unauthorized_client", description)
    }
    pub fn unsupported_grant_type(description: impl Into<String>) -> Self {
        Self::protocol("unsupported_grant_type", description)
    }
    pub fn unsupported_response_type(description: impl Into<String>) -> Self {
        Self::protocol("unsupported_response_type", description)
    }
    pub fn invalid_scope(description: impl Into<String>) -> Self {
        Self::protocol("invalid_scope", description)
    }
    pub fn invalid_token(description: impl Into<String>) -> Self {
        Self::protocol("invalid_token", description)
    }

    /// The protocol error code (`server_error` for internal failures).
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::Protocol { code, .. } => code,
            OAuthError::Internal(_) => "server_error",
        }
    }
}

impl From<sea_orm::DbErr> for OAuthError {
    fn from(e: sea_orm::DbErr) -> Self {
        OAuthError::Internal(anyhow::Error::new(e))
    }
}

impl From<platform::store::StoreError> for OAuthError {
    fn from(e: platform::store::StoreError) -> Self {
        OAuthError::Internal(anyhow::Error::new(e))
    }
}
