//! Release errors with their stable keys.

use platform::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("no such release")]
    NotFound,
    #[error("this version already exists")]
    Exists,
    /// Creating, importing and deleting are for administrators.
    #[error("only an administrator may do this")]
    Forbidden,
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// The release feed could not be read or understood.
    #[error("the release feed failed: {0}")]
    Feed(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ReleaseError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ReleaseError::NotFound => ErrorKind::NotFound,
            ReleaseError::Exists => ErrorKind::Conflict,
            ReleaseError::Forbidden => ErrorKind::Forbidden,
            ReleaseError::Invalid { .. } => ErrorKind::Invalid,
            ReleaseError::Feed(_) => ErrorKind::Upstream,
            ReleaseError::Internal(_) => ErrorKind::Internal,
        }
    }

    pub fn key(&self) -> &'static str {
        match self {
            ReleaseError::NotFound => "release.not_found",
            ReleaseError::Exists => "release.exists",
            ReleaseError::Forbidden => "auth.forbidden",
            ReleaseError::Invalid { .. } => "request.validation",
            ReleaseError::Feed(_) => "release.feed_failed",
            ReleaseError::Internal(_) => "internal",
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        ReleaseError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

impl From<sea_orm::DbErr> for ReleaseError {
    fn from(e: sea_orm::DbErr) -> Self {
        ReleaseError::Internal(anyhow::Error::new(e))
    }
}
