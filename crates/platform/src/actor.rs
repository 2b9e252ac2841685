//! Who is acting, as every domain crate needs to know it: the user's id and whether they are
//! an admin. Built by the server from the authenticated principal. Also the hook by which
//! services drop a deleted user's data ([`UserCleanup`]).

/// The acting user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user_id: String,
    pub is_admin: bool,
}

impl Actor {
    pub fn new(user_id: impl Into<String>, is_admin: bool) -> Self {
        Self {
            user_id: user_id.into(),
            is_admin,
        }
    }
}

/// A failure while removing a deleted user's data.
pub type CleanupError = Box<dyn std::error::Error + Send + Sync>;

/// A service holding data that belongs to users. When an admin deletes a user, the server
/// calls every such service after the account is gone; each removes or ends what the user
/// owned (idempotent, so a retry is harmless). Authorisation was decided by the deletion.
#[async_trait::async_trait]
pub trait UserCleanup: Send + Sync {
    async fn user_deleted(&self, user_id: &str) -> Result<(), CleanupError>;
}
