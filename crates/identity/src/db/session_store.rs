//! `DbSessionStore`: sessions and tokens in the database, the embedded default.
//!
//! Every process using the database (replicas, the admin CLI) sees the same rows, so a
//! session survives restarts and a revocation made anywhere holds everywhere. Valid sessions
//! and access tokens are cached in process; the cache is only trusted while its *stamp* is
//! current: the revocation generation (one row, bumped after every revocation by whichever
//! process made it) and the database's change signal for revocations ([`Topic::Revocations`]
//! of [`Changes`]: on SQLite a file slot that the same processes rewrite after each bump).
//! With the signal, checking a cached credential costs one 8-byte `pread` and no database
//! round trip; the generation row is still read at most once per [`BACKSTOP_MS`] (a process
//! that died between its commit and its signal write is seen within that time). Without a
//! signal (PostgreSQL without Redis) each check reads the generation row.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use async_trait::async_trait;
use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set};

use super::entities::{auth_revocations, auth_sessions, auth_tokens};
use crate::IdentityError;
use crate::sessions::{SessionRecord, SessionStore};
use platform::db::{Changes, Topic};

const ACCESS: &str = "access";
const REFRESH: &str = "refresh";
const USED: &str = "used";

/// Entries the cache holds before it starts afresh.
const CACHE_LIMIT: usize = 20_000;
/// Expired rows are purged at most this often (seconds), on session creation.
const PURGE_EVERY_SECS: i64 = 600;
/// With a signal file, the generation row is still read at most this often (milliseconds).
pub(crate) const BACKSTOP_MS: i64 = 1000;

/// What the cache was filled under: the signal's value and the revocation generation.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    signal: u64,
    generation: i64,
}

#[derive(Default)]
struct Cache {
    stamp: Stamp,
    /// session key → (record, idle until)
    sessions: HashMap<String, (SessionRecord, i64)>,
    /// access token hash → (session key, expires at)
    access: HashMap<String, (String, i64)>,
}

impl Cache {
    /// Forgets everything when another stamp is seen.
    fn sync(&mut self, stamp: Stamp) {
        if self.stamp != stamp {
            self.sessions.clear();
            self.access.clear();
            self.stamp = stamp;
        }
    }

    fn bounded(&mut self) {
        if self.sessions.len() + self.access.len() >= CACHE_LIMIT {
            self.sessions.clear();
            self.access.clear();
        }
    }
}

pub(crate) struct DbSessionStore {
    db: platform::db::Db,
    cache: Mutex<Cache>,
    last_purge: AtomicI64,
    signal: std::sync::Arc<Changes>,
    /// The generation row as last read, and when (Unix milliseconds).
    generation: AtomicI64,
    generation_read_at: AtomicI64,
}

fn record_of(row: &auth_sessions::Model) -> SessionRecord {
    SessionRecord {
        user_id: row.user_id.clone(),
        username: row.username.clone(),
        role: row.role.clone(),
        created_at: row.created_at,
        expires_at: row.expires_at,
        touched_at: row.touched_at,
    }
}

impl DbSessionStore {
    pub fn new(db: platform::db::Db) -> Self {
        Self {
            signal: db.changes(),
            db,
            cache: Mutex::new(Cache::default()),
            last_purge: AtomicI64::new(0),
            generation: AtomicI64::new(0),
            generation_read_at: AtomicI64::new(i64::MIN),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        // A panic while holding the lock cannot leave the maps inconsistent in a harmful
        // way: at worst an entry is missing.
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn generation(&self) -> Result<i64, IdentityError> {
        Ok(auth_revocations::Entity::find_by_id(1)
            .one(&self.db)
            .await?
            .map_or(0, |r| r.generation))
    }

    /// The stamp a cached credential must carry to be trusted now; read before the rows a
    /// cache entry is filled from.
    async fn stamp(&self) -> Result<Stamp, IdentityError> {
        let Some(signal) = self.signal.read(Topic::Revocations) else {
            return Ok(Stamp {
                signal: 0,
                generation: self.generation().await?,
            });
        };
        let now = Utc::now().timestamp_millis();
        let read_at = self.generation_read_at.load(Ordering::Acquire);
        if now.saturating_sub(read_at) >= BACKSTOP_MS
            && self
                .generation_read_at
                .compare_exchange(read_at, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            match self.generation().await {
                Ok(generation) => self.generation.store(generation, Ordering::Release),
                Err(e) => {
                    // Let the next request try again.
                    self.generation_read_at.store(read_at, Ordering::Release);
                    return Err(e);
                }
            }
        }
        Ok(Stamp {
            signal,
            generation: self.generation.load(Ordering::Acquire),
        })
    }

    /// Tells every process that cached credentials may have been revoked.
    async fn bump(&self) -> Result<(), IdentityError> {
        auth_revocations::Entity::update_many()
            .col_expr(
                auth_revocations::Column::Generation,
                Expr::col(auth_revocations::Column::Generation).add(1),
            )
            .filter(auth_revocations::Column::Id.eq(1))
            .exec(&self.db)
            .await?;
        self.signal.announce(Topic::Revocations).await;
        // This process's own cache is dropped at once even without a signal file.
        self.generation_read_at.store(i64::MIN, Ordering::Release);
        Ok(())
    }

    async fn purge_expired(&self, now: i64) -> Result<(), IdentityError> {
        let last = self.last_purge.load(Ordering::Relaxed);
        if now - last < PURGE_EVERY_SECS
            || self
                .last_purge
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return Ok(());
        }
        auth_tokens::Entity::delete_many()
            .filter(auth_tokens::Column::ExpiresAt.lte(now))
            .exec(&self.db)
            .await?;
        auth_sessions::Entity::delete_many()
            .filter(
                auth_sessions::Column::IdleUntil
                    .lte(now)
                    .or(auth_sessions::Column::ExpiresAt.lte(now)),
            )
            .exec(&self.db)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl SessionStore for DbSessionStore {
    async fn save(
        &self,
        key: &str,
        record: &SessionRecord,
        idle_until: i64,
        created: bool,
    ) -> Result<(), IdentityError> {
        if created {
            let now = Utc::now().timestamp();
            self.purge_expired(now).await?;
            auth_sessions::Entity::insert(auth_sessions::ActiveModel {
                key: Set(key.to_owned()),
                user_id: Set(record.user_id.clone()),
                username: Set(record.username.clone()),
                role: Set(record.role.clone()),
                created_at: Set(record.created_at),
                expires_at: Set(record.expires_at),
                touched_at: Set(record.touched_at),
                idle_until: Set(idle_until),
            })
            .exec_without_returning(&self.db)
            .await?;
            return Ok(());
        }
        auth_sessions::Entity::update_many()
            .col_expr(
                auth_sessions::Column::TouchedAt,
                Expr::value(record.touched_at),
            )
            .col_expr(auth_sessions::Column::IdleUntil, Expr::value(idle_until))
            .filter(auth_sessions::Column::Key.eq(key))
            .exec(&self.db)
            .await?;
        if let Some(entry) = self.cache().sessions.get_mut(key) {
            *entry = (record.clone(), idle_until);
        }
        Ok(())
    }

    async fn load(&self, key: &str) -> Result<Option<SessionRecord>, IdentityError> {
        let stamp = self.stamp().await?;
        let now = Utc::now().timestamp();
        {
            let mut cache = self.cache();
            cache.sync(stamp);
            if let Some((record, idle_until)) = cache.sessions.get(key)
                && *idle_until > now
            {
                return Ok(Some(record.clone()));
            }
        }
        let Some(row) = auth_sessions::Entity::find_by_id(key.to_owned())
            .filter(auth_sessions::Column::IdleUntil.gt(now))
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let record = record_of(&row);
        let mut cache = self.cache();
        if cache.stamp == stamp {
            cache.bounded();
            cache
                .sessions
                .insert(key.to_owned(), (record.clone(), row.idle_until));
        }
        Ok(Some(record))
    }

    async fn remove(&self, key: &str) -> Result<(), IdentityError> {
        auth_tokens::Entity::delete_many()
            .filter(auth_tokens::Column::SessionKey.eq(key))
            .filter(auth_tokens::Column::Kind.ne(USED))
            .exec(&self.db)
            .await?;
        auth_sessions::Entity::delete_by_id(key.to_owned())
            .exec(&self.db)
            .await?;
        self.bump().await
    }

    async fn remove_user(&self, user_id: &str) -> Result<(), IdentityError> {
        auth_tokens::Entity::delete_many()
            .filter(auth_tokens::Column::UserId.eq(user_id))
            .filter(auth_tokens::Column::Kind.ne(USED))
            .exec(&self.db)
            .await?;
        auth_sessions::Entity::delete_many()
            .filter(auth_sessions::Column::UserId.eq(user_id))
            .exec(&self.db)
            .await?;
        self.bump().await
    }

    async fn put_pair(
        &self,
        session_key: &str,
        user_id: &str,
        access: &str,
        access_until: i64,
        refresh: &str,
        refresh_until: i64,
    ) -> Result<(), IdentityError> {
        let row =
            |hash: &str, kind: &str, pair: Option<&str>, until: i64| auth_tokens::ActiveModel {
                hash: Set(hash.to_owned()),
                kind: Set(kind.to_owned()),
                session_key: Set(session_key.to_owned()),
                user_id: Set(user_id.to_owned()),
                pair: Set(pair.map(str::to_owned)),
                expires_at: Set(until),
            };
        auth_tokens::Entity::insert_many([
            row(access, ACCESS, None, access_until),
            row(refresh, REFRESH, Some(access), refresh_until),
        ])
        .exec_without_returning(&self.db)
        .await?;
        Ok(())
    }

    async fn access_session(&self, access: &str) -> Result<Option<String>, IdentityError> {
        let stamp = self.stamp().await?;
        let now = Utc::now().timestamp();
        {
            let mut cache = self.cache();
            cache.sync(stamp);
            if let Some((session, until)) = cache.access.get(access)
                && *until > now
            {
                return Ok(Some(session.clone()));
            }
        }
        let Some(row) = auth_tokens::Entity::find_by_id(access.to_owned())
            .filter(auth_tokens::Column::Kind.eq(ACCESS))
            .filter(auth_tokens::Column::ExpiresAt.gt(now))
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let mut cache = self.cache();
        if cache.stamp == stamp {
            cache.bounded();
            cache
                .access
                .insert(access.to_owned(), (row.session_key.clone(), row.expires_at));
        }
        Ok(Some(row.session_key))
    }

    async fn consume_refresh(
        &self,
        refresh: &str,
        used_until: i64,
    ) -> Result<Option<String>, IdentityError> {
        let now = Utc::now().timestamp();
        let Some(row) = auth_tokens::Entity::find_by_id(refresh.to_owned())
            .filter(auth_tokens::Column::Kind.eq(REFRESH))
            .filter(auth_tokens::Column::ExpiresAt.gt(now))
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        // One conditional update: of two concurrent refreshes with the same token, one wins.
        let consumed = auth_tokens::Entity::update_many()
            .col_expr(auth_tokens::Column::Kind, Expr::value(USED))
            .col_expr(auth_tokens::Column::ExpiresAt, Expr::value(used_until))
            .filter(auth_tokens::Column::Hash.eq(refresh))
            .filter(auth_tokens::Column::Kind.eq(REFRESH))
            .exec(&self.db)
            .await?;
        if consumed.rows_affected != 1 {
            return Ok(None);
        }
        if let Some(pair) = &row.pair {
            auth_tokens::Entity::delete_by_id(pair.clone())
                .exec(&self.db)
                .await?;
        }
        self.bump().await?;
        Ok(Some(row.session_key))
    }

    async fn used_refresh(&self, refresh: &str) -> Result<Option<String>, IdentityError> {
        Ok(auth_tokens::Entity::find_by_id(refresh.to_owned())
            .filter(auth_tokens::Column::Kind.eq(USED))
            .one(&self.db)
            .await?
            .map(|r| r.session_key))
    }
}
