//! The authorization server's view of accounts, over identity.

use std::sync::Arc;

use async_trait::async_trait;
use identity::{Identity, IdentityError, Principal, Role};
use oauth_as::{Account, Accounts};

/// Accounts as identity knows them (a deleted user is `None`).
pub(crate) struct IdentityAccounts(pub Arc<identity::SeaOrmIdentity>);

#[async_trait]
impl Accounts for IdentityAccounts {
    async fn account(&self, user_id: &str) -> Result<Option<Account>, anyhow::Error> {
        let principal = Principal {
            user_id: user_id.to_owned(),
            username: String::new(),
            role: Role::User,
            session_id: None,
        };
        match self.0.current_user(&principal).await {
            Ok(user) => Ok(Some(Account {
                user_id: user.id,
                username: user.username,
                role: user.role.as_str().to_owned(),
                nickname: user.nickname,
                email: user.email,
                avatar: user.avatar,
            })),
            Err(IdentityError::Unauthenticated | IdentityError::UserNotFound) => Ok(None),
            Err(e) => Err(anyhow::Error::new(e)),
        }
    }
}
