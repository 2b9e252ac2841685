//! Redis implementations of both stores, so several replicas share sessions, locks, rate
//! limits and stream replay logs.
//!
//! Multi-key operations run as Lua scripts (atomic on the server). A log's keys share a hash
//! tag (`{name}`), so they land in one slot under Redis Cluster. Log entries are stream
//! entries with the explicit id `0-<index>`; closing appends an end marker.

use std::collections::VecDeque;
use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use redis::streams::StreamReadReply;

use super::log::OPEN_LOG_TTL;
use super::{Counter, KvStore, LogEntry, LogInfo, LogReader, LogStore, Rate, StoreError, Taken};
use crate::redis_conn::RedisHandle;

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn pttl_to_duration(pttl: i64) -> Option<Duration> {
    u64::try_from(pttl).ok().map(Duration::from_millis)
}

/// The Redis key-value store.
#[derive(Clone)]
pub struct RedisKvStore {
    conn: ConnectionManager,
    prefix: String,
}

impl RedisKvStore {
    pub fn new(handle: RedisHandle) -> Self {
        Self {
            conn: handle.manager,
            prefix: format!("{}kv:", handle.prefix),
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

const DELETE_IF_EQUALS: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

const INCR_WITH_TTL: &str = r"
local existed = redis.call('EXISTS', KEYS[1])
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if existed == 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return {value, redis.call('PTTL', KEYS[1])}";

/// GCRA on the server's clock (`TIME`, microseconds), as `kv::gcra` computes it.
const TAKE_TOKENS: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tau = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval * tonumber(ARGV[3])
if new_tat - now > tau then
  return {0, math.floor((tau - (tat - now)) / interval), new_tat - now - tau}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.max(1, math.ceil((new_tat - now) / 1000)))
return {1, math.floor((tau - (new_tat - now)) / interval), 0}";

const SET_ADD_WITH_TTL: &str = r"
redis.call('SADD', KEYS[1], ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1";

#[async_trait]
impl KvStore for RedisKvStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut conn = self.conn.clone();
        Ok(conn.get(self.key(key)).await?)
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key)).arg(value);
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(millis(ttl));
        }
        let _: () = cmd.query_async(&mut conn).await?;
        Ok(())
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key)).arg(value).arg("NX");
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(millis(ttl));
        }
        let reply: Option<String> = cmd.query_async(&mut conn).await?;
        Ok(reply.is_some())
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("GETDEL")
            .arg(self.key(key))
            .query_async(&mut conn)
            .await?)
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let n: i64 = conn.del(self.key(key)).await?;
        Ok(n > 0)
    }

    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let n: i64 = redis::Script::new(DELETE_IF_EQUALS)
            .key(self.key(key))
            .arg(expected)
            .invoke_async(&mut conn)
            .await?;
        Ok(n > 0)
    }

    async fn incr(&self, key: &str, by: i64, ttl: Duration) -> Result<Counter, StoreError> {
        let mut conn = self.conn.clone();
        let (value, pttl): (i64, i64) = redis::Script::new(INCR_WITH_TTL)
            .key(self.key(key))
            .arg(by)
            .arg(millis(ttl))
            .invoke_async(&mut conn)
            .await?;
        Ok(Counter {
            value,
            ttl: pttl_to_duration(pttl),
        })
    }

    async fn take_tokens(&self, key: &str, rate: Rate, cost: u32) -> Result<Taken, StoreError> {
        let mut conn = self.conn.clone();
        let interval = u64::try_from(rate.interval.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let (allowed, remaining, wait): (i64, i64, i64) = redis::Script::new(TAKE_TOKENS)
            .key(self.key(key))
            .arg(interval)
            .arg(rate.burst.max(1))
            .arg(cost.max(1))
            .invoke_async(&mut conn)
            .await?;
        Ok(Taken {
            allowed: allowed == 1,
            remaining: u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
            retry_after: Duration::from_micros(u64::try_from(wait).unwrap_or(0)),
        })
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>, StoreError> {
        let mut conn = self.conn.clone();
        let pttl: i64 = redis::cmd("PTTL")
            .arg(self.key(key))
            .query_async(&mut conn)
            .await?;
        Ok(pttl_to_duration(pttl))
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let n: i64 = redis::cmd("PEXPIRE")
            .arg(self.key(key))
            .arg(millis(ttl))
            .query_async(&mut conn)
            .await?;
        Ok(n > 0)
    }

    async fn set_add(&self, key: &str, member: &str, ttl: Duration) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::Script::new(SET_ADD_WITH_TTL)
            .key(self.key(key))
            .arg(member)
            .arg(millis(ttl))
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn set_remove(&self, key: &str, member: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: i64 = conn.srem(self.key(key), member).await?;
        Ok(())
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn.clone();
        let mut members: Vec<String> = conn.smembers(self.key(key)).await?;
        members.sort();
        Ok(members)
    }
}

/// The Redis log store.
#[derive(Clone)]
pub struct RedisLogStore {
    handle: RedisHandle,
}

impl RedisLogStore {
    pub fn new(handle: RedisHandle) -> Self {
        Self { handle }
    }

    /// The stream key and the metadata key of a log.
    fn keys(&self, log: &str) -> (String, String) {
        let base = format!("{}log:{{{log}}}", self.handle.prefix);
        (format!("{base}:s"), format!("{base}:m"))
    }
}

const APPEND: &str = r"
if redis.call('HGET', KEYS[2], 'closed') == '1' then
  return -1
end
local n = redis.call('HINCRBY', KEYS[2], 'len', 1)
redis.call('XADD', KEYS[1], '0-' .. n, 'd', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return n";

const CLOSE: &str = r"
if redis.call('HGET', KEYS[2], 'closed') ~= '1' then
  local n = tonumber(redis.call('HGET', KEYS[2], 'len') or '0')
  redis.call('HSET', KEYS[2], 'closed', '1', 'len', n)
  redis.call('XADD', KEYS[1], '0-' .. (n + 1), 'e', '1')
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return 1";

/// How long one blocking read waits before checking the log still exists.
const BLOCK: Duration = Duration::from_secs(2);

struct ReadState {
    conn: redis::aio::MultiplexedConnection,
    stream_key: String,
    meta_key: String,
    cursor: u64,
    buffer: VecDeque<Option<LogEntry>>,
}

fn parse_reply(
    reply: StreamReadReply,
    buffer: &mut VecDeque<Option<LogEntry>>,
) -> Result<(), StoreError> {
    for key in reply.keys {
        for item in key.ids {
            let index = item
                .id
                .split_once('-')
                .and_then(|(_, seq)| seq.parse::<u64>().ok())
                .ok_or_else(|| StoreError::Corrupt(format!("log entry id `{}`", item.id)))?;
            if item.map.contains_key("e") {
                buffer.push_back(None);
                continue;
            }
            let data: Vec<u8> = match item.map.get("d") {
                Some(value) => redis::from_redis_value_ref(value)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                None => {
                    return Err(StoreError::Corrupt(format!(
                        "log entry {index} has no data"
                    )));
                }
            };
            buffer.push_back(Some(LogEntry { index, data }));
        }
    }
    Ok(())
}

#[async_trait]
impl LogStore for RedisLogStore {
    async fn append(&self, log: &str, data: &[u8]) -> Result<u64, StoreError> {
        let (stream_key, meta_key) = self.keys(log);
        let mut conn = self.handle.manager.clone();
        let n: i64 = redis::Script::new(APPEND)
            .key(stream_key)
            .key(meta_key)
            .arg(data)
            .arg(millis(OPEN_LOG_TTL))
            .invoke_async(&mut conn)
            .await?;
        u64::try_from(n).map_err(|_| StoreError::Closed(log.to_owned()))
    }

    async fn close(&self, log: &str, ttl: Duration) -> Result<(), StoreError> {
        let (stream_key, meta_key) = self.keys(log);
        let mut conn = self.handle.manager.clone();
        let _: i64 = redis::Script::new(CLOSE)
            .key(stream_key)
            .key(meta_key)
            .arg(millis(ttl))
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn info(&self, log: &str) -> Result<Option<LogInfo>, StoreError> {
        let (_, meta_key) = self.keys(log);
        let mut conn = self.handle.manager.clone();
        let (len, closed): (Option<u64>, Option<String>) = redis::cmd("HMGET")
            .arg(&meta_key)
            .arg("len")
            .arg("closed")
            .query_async(&mut conn)
            .await?;
        Ok(len.map(|len| LogInfo {
            len,
            closed: closed.as_deref() == Some("1"),
        }))
    }

    async fn read(&self, log: &str, after: u64) -> Result<Option<LogReader>, StoreError> {
        let (stream_key, meta_key) = self.keys(log);
        let mut shared = self.handle.manager.clone();
        let exists: i64 = shared.exists(&meta_key).await?;
        if exists == 0 {
            return Ok(None);
        }
        // Blocking reads get a connection of their own so they never stall other commands.
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(BLOCK + Duration::from_secs(5)));
        let conn = self
            .handle
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let state = ReadState {
            conn,
            stream_key,
            meta_key,
            cursor: after,
            buffer: VecDeque::new(),
        };
        let stream = futures_util::stream::unfold(Some(state), |state| async move {
            let mut state = state?;
            loop {
                match state.buffer.pop_front() {
                    Some(Some(entry)) => {
                        state.cursor = entry.index;
                        return Some((Ok(entry), Some(state)));
                    }
                    Some(None) => return None,
                    None => {}
                }
                let reply: Result<Option<StreamReadReply>, _> = redis::cmd("XREAD")
                    .arg("COUNT")
                    .arg(512)
                    .arg("BLOCK")
                    .arg(millis(BLOCK))
                    .arg("STREAMS")
                    .arg(&state.stream_key)
                    .arg(format!("0-{}", state.cursor))
                    .query_async(&mut state.conn)
                    .await;
                match reply {
                    Ok(Some(reply)) => {
                        if let Err(e) = parse_reply(reply, &mut state.buffer) {
                            return Some((Err(e), None));
                        }
                    }
                    Ok(None) => {
                        let exists: Result<i64, _> = state.conn.exists(&state.meta_key).await;
                        match exists {
                            Ok(0) => return None,
                            Ok(_) => {}
                            Err(e) => return Some((Err(e.into()), None)),
                        }
                    }
                    Err(e) => return Some((Err(e.into()), None)),
                }
            }
        });
        Ok(Some(Box::pin(stream)))
    }

    async fn delete(&self, log: &str) -> Result<(), StoreError> {
        let (stream_key, meta_key) = self.keys(log);
        let mut conn = self.handle.manager.clone();
        let _: i64 = conn.del(&[stream_key, meta_key]).await?;
        Ok(())
    }
}
