//! Server-side sessions and the tokens bound to them.
//!
//! A session id (the cookie value) and every token are 256-bit random strings; only their
//! SHA-256 digests are stored, so a dump of the store gives no working credential. The
//! digest of a session id, its *key*, is what the rest of the crate (and
//! [`crate::Principal::session_id`]) calls the session.
//!
//! Two stores: [`KvSessionStore`] in the platform key-value store (Redis, for several
//! replicas) and `DbSessionStore` in the database (the embedded default: restarts and every
//! process, the admin CLI included, see the same sessions), with an in-process cache kept
//! correct by a revocation generation.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use platform::store::KvStore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::IdentityError;
use crate::model::{IdentitySettings, Principal, Role, TokenPair, User};

/// How often at most a session's idle timer is pushed forward (one write per minute).
const TOUCH_EVERY_SECS: i64 = 60;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SessionRecord {
    pub user_id: String,
    pub username: String,
    pub role: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub touched_at: i64,
}

impl SessionRecord {
    pub fn principal(&self, session_key: &str) -> Principal {
        Principal {
            user_id: self.user_id.clone(),
            username: self.username.clone(),
            role: Role::parse(&self.role).unwrap_or(Role::User),
            session_id: Some(session_key.to_owned()),
        }
    }
}

/// The outcome of presenting a refresh token.
pub(crate) enum Rotation {
    /// Valid: the key of the session it belongs to.
    Session(String),
    /// Already rotated: someone replayed it; the session has been ended.
    Reused,
    Unknown,
}

/// Where sessions and tokens live. Keys and hashes are SHA-256 hex digests; times are Unix
/// seconds.
#[async_trait]
pub(crate) trait SessionStore: Send + Sync {
    /// Writes a new session (`created`) or a touched one; unused, it ends at `idle_until`.
    async fn save(
        &self,
        key: &str,
        record: &SessionRecord,
        idle_until: i64,
        created: bool,
    ) -> Result<(), IdentityError>;
    /// The session, unless it is unknown or idle past its time.
    async fn load(&self, key: &str) -> Result<Option<SessionRecord>, IdentityError>;
    /// Ends a session and every token bound to it.
    async fn remove(&self, key: &str) -> Result<(), IdentityError>;
    /// Ends every session of a user.
    async fn remove_user(&self, user_id: &str) -> Result<(), IdentityError>;
    /// Stores an access and a refresh token issued together for a session.
    #[allow(clippy::too_many_arguments)]
    async fn put_pair(
        &self,
        session_key: &str,
        user_id: &str,
        access: &str,
        access_until: i64,
        refresh: &str,
        refresh_until: i64,
    ) -> Result<(), IdentityError>;
    /// The session a live access token belongs to.
    async fn access_session(&self, access: &str) -> Result<Option<String>, IdentityError>;
    /// Consumes a live refresh token: it and the access token issued with it stop working,
    /// and it is remembered as used until `used_until`. Returns its session; `None` when it
    /// was not live (or another request consumed it first).
    async fn consume_refresh(
        &self,
        refresh: &str,
        used_until: i64,
    ) -> Result<Option<String>, IdentityError>;
    /// The session of an already used refresh token.
    async fn used_refresh(&self, refresh: &str) -> Result<Option<String>, IdentityError>;
}

pub(crate) fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Session ids and tokens are 256-bit random hex strings.
pub(crate) fn well_formed(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

fn ttl_until(until: i64, now: i64) -> Duration {
    Duration::from_secs(u64::try_from(until - now).unwrap_or(0).max(1))
}

pub(crate) struct Sessions {
    store: Arc<dyn SessionStore>,
    settings: IdentitySettings,
}

impl Sessions {
    pub fn new(store: Arc<dyn SessionStore>, settings: IdentitySettings) -> Self {
        Self { store, settings }
    }

    fn idle_until(&self, record: &SessionRecord, now: i64) -> i64 {
        let idle = i64::try_from(self.settings.session_idle.as_secs()).unwrap_or(i64::MAX);
        now.saturating_add(idle).min(record.expires_at)
    }

    /// A new session for `user`: its id (for the cookie), key and record.
    pub async fn create(
        &self,
        user: &User,
    ) -> Result<(String, String, SessionRecord), IdentityError> {
        let id = platform::ids::new_secret_token(32);
        let key = digest(&id);
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
        self.store
            .save(&key, &record, self.idle_until(&record, now), true)
            .await?;
        Ok((id, key, record))
    }

    /// The key of the session named by a cookie value, when it is well formed.
    pub fn key_of_id(id: &str) -> Option<String> {
        well_formed(id).then(|| digest(id))
    }

    /// The live session `key`, its idle timer pushed forward.
    pub async fn get(&self, key: &str) -> Result<Option<SessionRecord>, IdentityError> {
        let Some(mut record) = self.store.load(key).await? else {
            return Ok(None);
        };
        let now = Utc::now().timestamp();
        if record.expires_at <= now {
            self.store.remove(key).await?;
            return Ok(None);
        }
        if now - record.touched_at >= TOUCH_EVERY_SECS {
            record.touched_at = now;
            self.store
                .save(key, &record, self.idle_until(&record, now), false)
                .await?;
        }
        Ok(Some(record))
    }

    /// New access and refresh tokens for the session.
    pub async fn issue_tokens(
        &self,
        session_key: &str,
        record: &SessionRecord,
    ) -> Result<TokenPair, IdentityError> {
        let access = platform::ids::new_secret_token(32);
        let refresh = platform::ids::new_secret_token(32);
        let now = Utc::now().timestamp();
        let remaining = u64::try_from(record.expires_at - now).unwrap_or(1).max(1);
        let access_ttl = self
            .settings
            .access_token_ttl
            .min(Duration::from_secs(remaining));
        let access_until = now.saturating_add(i64::try_from(access_ttl.as_secs()).unwrap_or(1));
        self.store
            .put_pair(
                session_key,
                &record.user_id,
                &digest(&access),
                access_until,
                &digest(&refresh),
                record.expires_at,
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
        self.store.access_session(&digest(token)).await
    }

    /// Consumes a refresh token (and revokes the access token issued with it). A token
    /// presented twice ends its session (reuse detection).
    pub async fn rotate_refresh(&self, token: &str) -> Result<Rotation, IdentityError> {
        if !well_formed(token) {
            return Ok(Rotation::Unknown);
        }
        let hash = digest(token);
        let absolute = i64::try_from(self.settings.session_absolute.as_secs()).unwrap_or(i64::MAX);
        let used_until = Utc::now().timestamp().saturating_add(absolute);
        if let Some(session) = self.store.consume_refresh(&hash, used_until).await? {
            return Ok(Rotation::Session(session));
        }
        match self.store.used_refresh(&hash).await? {
            Some(session) => {
                tracing::warn!("a rotated refresh token was presented again; ending its session");
                self.store.remove(&session).await?;
                Ok(Rotation::Reused)
            }
            None => Ok(Rotation::Unknown),
        }
    }

    /// Ends one session; every token bound to it stops working.
    pub async fn destroy(&self, key: &str) -> Result<(), IdentityError> {
        self.store.remove(key).await
    }

    /// Ends every session of a user.
    pub async fn destroy_all(&self, user_id: &str) -> Result<(), IdentityError> {
        self.store.remove_user(user_id).await
    }
}

/// Sessions in the platform key-value store (Redis when several replicas share it).
///
/// Keys: `session:<key>` (the record; its TTL is the idle timeout capped by the absolute
/// lifetime), `access:<sha256>` (→ session key), `refresh:<sha256>` (→ session key and the
/// access token's hash), `refresh-used:<sha256>` (a rotated refresh token, kept to detect
/// reuse), `user-sessions:<user id>` (the user's session keys).
pub(crate) struct KvSessionStore {
    kv: Arc<dyn KvStore>,
    /// How long the per-user index lives (the absolute session lifetime).
    index_ttl: Duration,
}

#[derive(Serialize, Deserialize)]
struct RefreshEntry {
    session: String,
    access: String,
}

impl KvSessionStore {
    pub fn new(kv: Arc<dyn KvStore>, settings: &IdentitySettings) -> Self {
        Self {
            kv,
            index_ttl: settings.session_absolute,
        }
    }
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, IdentityError> {
    serde_json::to_vec(value).map_err(|e| IdentityError::Internal(e.into()))
}

#[async_trait]
impl SessionStore for KvSessionStore {
    async fn save(
        &self,
        key: &str,
        record: &SessionRecord,
        idle_until: i64,
        created: bool,
    ) -> Result<(), IdentityError> {
        let now = Utc::now().timestamp();
        self.kv
            .set(
                &format!("session:{key}"),
                &encode(record)?,
                Some(ttl_until(idle_until, now)),
            )
            .await?;
        if created {
            self.kv
                .set_add(
                    &format!("user-sessions:{}", record.user_id),
                    key,
                    self.index_ttl,
                )
                .await?;
        }
        Ok(())
    }

    async fn load(&self, key: &str) -> Result<Option<SessionRecord>, IdentityError> {
        Ok(self
            .kv
            .get(&format!("session:{key}"))
            .await?
            .and_then(|b| serde_json::from_slice(&b).ok()))
    }

    async fn remove(&self, key: &str) -> Result<(), IdentityError> {
        let record = self.load(key).await?;
        self.kv.delete(&format!("session:{key}")).await?;
        if let Some(record) = record {
            self.kv
                .set_remove(&format!("user-sessions:{}", record.user_id), key)
                .await?;
        }
        Ok(())
    }

    async fn remove_user(&self, user_id: &str) -> Result<(), IdentityError> {
        let index = format!("user-sessions:{user_id}");
        for key in self.kv.set_members(&index).await? {
            self.kv.delete(&format!("session:{key}")).await?;
        }
        self.kv.delete(&index).await?;
        Ok(())
    }

    async fn put_pair(
        &self,
        session_key: &str,
        _user_id: &str,
        access: &str,
        access_until: i64,
        refresh: &str,
        refresh_until: i64,
    ) -> Result<(), IdentityError> {
        let now = Utc::now().timestamp();
        self.kv
            .set(
                &format!("access:{access}"),
                session_key.as_bytes(),
                Some(ttl_until(access_until, now)),
            )
            .await?;
        let entry = RefreshEntry {
            session: session_key.to_owned(),
            access: access.to_owned(),
        };
        self.kv
            .set(
                &format!("refresh:{refresh}"),
                &encode(&entry)?,
                Some(ttl_until(refresh_until, now)),
            )
            .await?;
        Ok(())
    }

    async fn access_session(&self, access: &str) -> Result<Option<String>, IdentityError> {
        Ok(self
            .kv
            .get(&format!("access:{access}"))
            .await?
            .and_then(|b| String::from_utf8(b).ok()))
    }

    async fn consume_refresh(
        &self,
        refresh: &str,
        used_until: i64,
    ) -> Result<Option<String>, IdentityError> {
        let Some(bytes) = self.kv.take(&format!("refresh:{refresh}")).await? else {
            return Ok(None);
        };
        let Ok(entry) = serde_json::from_slice::<RefreshEntry>(&bytes) else {
            return Ok(None);
        };
        self.kv.delete(&format!("access:{}", entry.access)).await?;
        self.kv
            .set(
                &format!("refresh-used:{refresh}"),
                entry.session.as_bytes(),
                Some(ttl_until(used_until, Utc::now().timestamp())),
            )
            .await?;
        Ok(Some(entry.session))
    }

    async fn used_refresh(&self, refresh: &str) -> Result<Option<String>, IdentityError> {
        Ok(self
            .kv
            .get(&format!("refresh-used:{refresh}"))
            .await?
            .and_then(|b| String::from_utf8(b).ok()))
    }
}
