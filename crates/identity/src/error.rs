//! Identity errors, each with a stable key (published in docs/errors.md) and a kind.

use platform::ErrorKind;
use platform::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("invalid username or password")]
    InvalidCredentials,
    #[error("not authenticated")]
    Unauthenticated,
    #[error("the refresh token is invalid, expired or already used")]
    InvalidRefreshToken,
    #[error("too many attempts; retry in {retry_after} s")]
    TooManyAttempts { retry_after: u64 },
    #[error("password login is disabled in this deployment")]
    PasswordLoginDisabled,
    #[error("only admins may log in with a password in this deployment")]
    AdminPasswordLoginRequired,
    #[error("registration is disabled")]
    RegistrationDisabled,
    #[error("the username is taken")]
    UsernameTaken,
    #[error("the e-mail address is taken")]
    EmailTaken,
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("the current password is wrong")]
    WrongPassword,
    #[error("the verification code is wrong or expired")]
    CodeInvalid,
    #[error("a code was sent recently; retry in {retry_after} s")]
    CodeThrottled { retry_after: u64 },
    #[error("the e-mail could not be delivered: {0}")]
    MailFailed(String),
    #[error("admin rights are required")]
    Forbidden,
    #[error("no such user")]
    UserNotFound,
    #[error("the last admin cannot be deleted or demoted")]
    LastAdmin,
    #[error("no such upstream login provider")]
    UpstreamProviderNotFound,
    #[error("the login flow is unknown, expired or belongs to another browser")]
    UpstreamFlowInvalid,
    #[error("the identity provider refused the login: {0}")]
    UpstreamDenied(String),
    #[error("the identity provider failed: {0}")]
    UpstreamFailed(String),
    #[error("an account with this e-mail exists; log in to it and link this identity")]
    UpstreamLinkRequired,
    #[error("this upstream identity is linked to another account")]
    UpstreamIdentityTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl IdentityError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            IdentityError::InvalidCredentials
            | IdentityError::Unauthenticated
            | IdentityError::InvalidRefreshToken => ErrorKind::Unauthenticated,
            IdentityError::TooManyAttempts { .. } | IdentityError::CodeThrottled { .. } => {
                ErrorKind::RateLimited
            }
            IdentityError::PasswordLoginDisabled
            | IdentityError::AdminPasswordLoginRequired
            | IdentityError::RegistrationDisabled
            | IdentityError::Forbidden => ErrorKind::Forbidden,
            IdentityError::UsernameTaken
            | IdentityError::EmailTaken
            | IdentityError::LastAdmin
            | IdentityError::UpstreamLinkRequired
            | IdentityError::UpstreamIdentityTaken => ErrorKind::Conflict,
            IdentityError::Invalid { .. }
            | IdentityError::WrongPassword
            | IdentityError::CodeInvalid => ErrorKind::Invalid,
            IdentityError::MailFailed(_) => ErrorKind::Upstream,
            IdentityError::UserNotFound | IdentityError::UpstreamProviderNotFound => {
                ErrorKind::NotFound
            }
            IdentityError::UpstreamFlowInvalid | IdentityError::UpstreamDenied(_) => {
                ErrorKind::BadRequest
            }
            IdentityError::UpstreamFailed(_) => ErrorKind::Upstream,
            IdentityError::Store(e) => e.kind(),
            IdentityError::Internal(_) => ErrorKind::Internal,
        }
    }

    /// The stable key of docs/errors.md.
    pub fn key(&self) -> &'static str {
        match self {
            IdentityError::InvalidCredentials => "user.invalid_credentials",
            IdentityError::Unauthenticated => "auth.unauthorized",
            IdentityError::InvalidRefreshToken => "auth.invalid_refresh_token",
            IdentityError::TooManyAttempts { .. } => "auth.too_many_attempts",
            IdentityError::PasswordLoginDisabled => "auth.password_login_disabled",
            IdentityError::AdminPasswordLoginRequired => "auth.admin_password_login_required",
            IdentityError::RegistrationDisabled => "auth.registration_disabled",
            IdentityError::UsernameTaken => "user.username_taken",
            IdentityError::EmailTaken => "user.email_taken",
            IdentityError::Invalid { .. } => "request.validation",
            IdentityError::WrongPassword => "user.wrong_password",
            IdentityError::CodeInvalid => "email.verification_code_invalid",
            IdentityError::CodeThrottled { .. } => "email.verification_code_throttled",
            IdentityError::MailFailed(_) => "email.delivery_failed",
            IdentityError::Forbidden => "auth.forbidden",
            IdentityError::UserNotFound => "user.not_found",
            IdentityError::LastAdmin => "user.last_admin",
            IdentityError::UpstreamProviderNotFound => "auth.upstream_provider_not_found",
            IdentityError::UpstreamFlowInvalid => "auth.upstream_flow_invalid",
            IdentityError::UpstreamDenied(_) => "auth.upstream_denied",
            IdentityError::UpstreamFailed(_) => "auth.upstream_failed",
            IdentityError::UpstreamLinkRequired => "auth.upstream_link_required",
            IdentityError::UpstreamIdentityTaken => "auth.upstream_identity_taken",
            IdentityError::Store(_) => "service.unavailable",
            IdentityError::Internal(_) => "internal",
        }
    }

    /// Seconds a rate-limited client should wait.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            IdentityError::TooManyAttempts { retry_after }
            | IdentityError::CodeThrottled { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        IdentityError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

impl From<sea_orm::DbErr> for IdentityError {
    fn from(e: sea_orm::DbErr) -> Self {
        IdentityError::Internal(anyhow::Error::new(e))
    }
}
