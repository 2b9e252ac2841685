//! Server-side sessions and the tokens bound to them, in the platform key-value store.
//!
//! Keys: `session:<id>` (the record; its TTL is the idle timeout capped by the absolute
//! lifetime), `access:<sha256>` and `refresh:<sha256>` (→ session id), `refresh-used:<sha256>`
//! (a rotated refresh token, kept to detect reuse), `user-sessions:<user id>` (index used to end
//! all of a user's sessions). Tokens are stored hashed, so a store dump reveals none.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use platform::store::KvStore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::IdentityError;
use crate::model::{IdentitySettings, Principal, Role, TokenPair, User};

/// How often at most a session's idle timer is pushed forward (one write per minute).
const TOUCH_EVERY_SECS: i64 = 60;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SessionRecord {
    pub user_id: String,
    pub username: String,
    pub role: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub touched_at: i64,
}

impl SessionRecord {
    pub fn principal(&self, session_id: &str) -> Principal {
        Principal {
            user_id: self.user_id.clone(),
            username: self.username.clone(),
            role: Role::parse(&self.role).unwrap_or(Role::User),
            session_id: Some(session_id.to_owned()),
        }
    }
}

/// The outcome of presenting a refresh token.
pub(crate) enum Rotation {
    /// Valid: the session it belongs to.
    Session(String),
    /// Already rotated: someone replayed it; the session has been ended.
    Reused,
    Unknown,
}

pub(crate) struct Sessions {
    kv: Arc<dyn KvStore>,
    settings: IdentitySettings,
}

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Session ids and tokens are 256-bit random hex strings.
pub(crate) fn well_formed(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Sessions {
    pub fn new(kv: Arc<dyn KvStore>, settings: IdentitySettings) -> Self {
        Self { kv, settings }
    }

    fn ttl_for(&self, record: &SessionRecord, now: i64) -> Duration {
        let remaining = u64::try_from(record.expires_at - now).unwrap_or(0);
        self.settings
            .session_idle
            .min(Duration::from_secs(remaining.max(1)))
    }

    async fn write(&self, id: &str, record: &SessionRecord, now: i64) -> Result<(), IdentityError> {
        let bytes = serde_json::to_vec(record).map_err(|e| IdentityError::Internal(e.into()))?;
        self.kv
            .set(
                &format!("session:{id}"),
                &bytes,
                Some(self.ttl_for(record, now)),
            )
            .await?;
        Ok(())
    }

    /// A new session for `user`: its id and record.
    pub async fn create(&self, user: &User) -> Result<(String, SessionRecord), IdentityError> {
        let id = platform::ids::new_secret_token(32);
        let now = Utc::now().timestamp();
        let absolute = i64::try_from(self.settings.session_absolute.as_secs()).unwrap_or(i64::MAX);
        let record = SessionRecord {
            user_id: user.id.clone(),
            username: user.username.clone(),
            role: user.role.as_str().to_owned(),
            created_at: now,
            expires_at: now.saturating_add(absolute),
            touched_at: now,
        };
        self.write(&id, &record, now).await?;
        self.kv
            .set_add(
                &format!("user-sessions:{}", user.id),
                &id,
                self.settings.session_absolute,
            )
            .await?;
        Ok((id, record))
    }

    /// The live session `id`, its idle timer pushed forward.
    pub async fn get(&self, id: &str) -> Result<Option<SessionRecord>, IdentityError> {
        if !well_formed(id) {
            return Ok(None);
        }
        let Some(bytes) = self.kv.get(&format!("session:{id}")).await? else {
            return Ok(None);
        };
        let Ok(mut record) = serde_json::from_slice::<SessionRecord>(&bytes) else {
            return Ok(None);
        };
        let now = Utc::now().timestamp();
        if record.expires_at <= now {
            self.destroy(id, Some(&record.user_id)).await?;
            return Ok(None);
        }
        if now - record.touched_at >= TOUCH_EVERY_SECS {
            record.touched_at = now;
            self.write(id, &record, now).await?;
        }
        Ok(Some(record))
    }

    /// New access and refresh tokens for the session.
    pub async fn issue_tokens(
        &self,
        session_id: &str,
        record: &SessionRecord,
    ) -> Result<TokenPair, IdentityError> {
        let access = platform::ids::new_secret_token(32);
        let refresh = platform::ids::new_secret_token(32);
        let remaining = u64::try_from(record.expires_at - Utc::now().timestamp())
            .unwrap_or(1)
            .max(1);
        let access_ttl = self
            .settings
            .access_token_ttl
            .min(Duration::from_secs(remaining));
        self.kv
            .set(
                &format!("access:{}", digest(&access)),
                session_id.as_bytes(),
                Some(access_ttl),
            )
            .await?;
        self.kv
            .set(
                &format!("refresh:{}", digest(&refresh)),
                session_id.as_bytes(),
                Some(Duration::from_secs(remaining)),
            )
            .await?;
        Ok(TokenPair {
            access_token: access,
            refresh_token: refresh,
            expires_in: access_ttl.as_secs(),
        })
    }

    /// The session an access token belongs to.
    pub async fn session_of_access(&self, token: &str) -> Result<Option<String>, IdentityError> {
        if !well_formed(token) {
            return Ok(None);
        }
        let session = self.kv.get(&format!("access:{}", digest(token))).await?;
        Ok(session.and_then(|b| String::from_utf8(b).ok()))
    }

    /// Consumes a refresh token. A token presented twice ends its session (reuse detection).
    pub async fn rotate_refresh(&self, token: &str) -> Result<Rotation, IdentityError> {
        if !well_formed(token) {
            return Ok(Rotation::Unknown);
        }
        let hash = digest(token);
        if let Some(session) = self.kv.take(&format!("refresh:{hash}")).await? {
            let session = String::from_utf8(session).unwrap_or_default();
            self.kv
                .set(
                    &format!("refresh-used:{hash}"),
                    session.as_bytes(),
                    Some(self.settings.session_absolute),
                )
                .await?;
            return Ok(Rotation::Session(session));
        }
        match self.kv.get(&format!("refresh-used:{hash}")).await? {
            Some(session) => {
                let session = String::from_utf8(session).unwrap_or_default();
                tracing::warn!("a rotated refresh token was presented again; ending its session");
                self.destroy(&session, None).await?;
                Ok(Rotation::Reused)
            }
            None => Ok(Rotation::Unknown),
        }
    }

    /// Ends one session; every token bound to it stops working.
    pub async fn destroy(&self, id: &str, user_id: Option<&str>) -> Result<(), IdentityError> {
        let user_id = match user_id {
            Some(u) => Some(u.to_owned()),
            None => self
                .kv
                .get(&format!("session:{id}"))
                .await?
                .and_then(|b| serde_json::from_slice::<SessionRecord>(&b).ok())
                .map(|r| r.user_id),
        };
        self.kv.delete(&format!("session:{id}")).await?;
        if let Some(user_id) = user_id {
            self.kv
                .set_remove(&format!("user-sessions:{user_id}"), id)
                .await?;
        }
        Ok(())
    }

    /// Ends every session of a user.
    pub async fn destroy_all(&self, user_id: &str) -> Result<(), IdentityError> {
        let index = format!("user-sessions:{user_id}");
        for id in self.kv.set_members(&index).await? {
            self.kv.delete(&format!("session:{id}")).await?;
        }
        self.kv.delete(&index).await?;
        Ok(())
    }
}
