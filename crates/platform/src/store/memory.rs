//! In-process implementations of both stores, for the embedded single-replica default.
//!
//! Expired entries are dropped lazily on access and by a sweep every few hundred writes, so
//! memory stays bounded without a background task.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::time::Instant;

use super::kv::gcra;
use super::log::OPEN_LOG_TTL;
use super::{Counter, KvStore, LogEntry, LogInfo, LogReader, LogStore, Rate, StoreError, Taken};

const SWEEP_EVERY: u64 = 512;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these maps half-updated in a way that
    // matters more than losing the whole store, so a poisoned lock is simply reused.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Debug, Clone)]
enum Value {
    Bytes(Vec<u8>),
    Int(i64),
    Set(BTreeSet<String>),
}

#[derive(Debug, Clone)]
struct Entry {
    value: Value,
    expires: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|at| at > now)
    }
}

/// The in-process key-value store.
#[derive(Debug, Default)]
pub struct MemoryKvStore {
    map: Mutex<HashMap<String, Entry>>,
    writes: AtomicU64,
}

impl MemoryKvStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Locks the map, first dropping the expired entry at `key` (and, now and then, all).
    fn map_for(&self, key: &str) -> MutexGuard<'_, HashMap<String, Entry>> {
        let now = Instant::now();
        let mut map = lock(&self.map);
        if self.writes.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            map.retain(|_, e| e.live(now));
        } else if map.get(key).is_some_and(|e| !e.live(now)) {
            map.remove(key);
        }
        map
    }
}

fn deadline(ttl: Option<Duration>) -> Option<Instant> {
    ttl.map(|t| Instant::now() + t)
}

fn remaining(expires: Option<Instant>) -> Option<Duration> {
    expires.map(|at| at.saturating_duration_since(Instant::now()))
}

fn bytes_of(value: &Value) -> Vec<u8> {
    match value {
        Value::Bytes(b) => b.clone(),
        Value::Int(i) => i.to_string().into_bytes(),
        Value::Set(_) => Vec::new(),
    }
}

#[async_trait]
impl KvStore for MemoryKvStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let map = self.map_for(key);
        Ok(map.get(key).map(|e| bytes_of(&e.value)))
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        let mut map = self.map_for(key);
        map.insert(
            key.to_owned(),
            Entry {
                value: Value::Bytes(value.to_vec()),
                expires: deadline(ttl),
            },
        );
        Ok(())
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let mut map = self.map_for(key);
        if map.contains_key(key) {
            return Ok(false);
        }
        map.insert(
            key.to_owned(),
            Entry {
                value: Value::Bytes(value.to_vec()),
                expires: deadline(ttl),
            },
        );
        Ok(true)
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut map = self.map_for(key);
        Ok(map.remove(key).map(|e| bytes_of(&e.value)))
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let mut map = self.map_for(key);
        Ok(map.remove(key).is_some())
    }

    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        let mut map = self.map_for(key);
        let matches = map
            .get(key)
            .is_some_and(|e| matches!(&e.value, Value::Bytes(b) if b == expected));
        if matches {
            map.remove(key);
        }
        Ok(matches)
    }

    async fn incr(&self, key: &str, by: i64, ttl: Duration) -> Result<Counter, StoreError> {
        let mut map = self.map_for(key);
        let entry = map.entry(key.to_owned()).or_insert_with(|| Entry {
            value: Value::Int(0),
            expires: deadline(Some(ttl)),
        });
        let current = match &entry.value {
            Value::Int(i) => *i,
            Value::Bytes(b) => std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or_else(|| StoreError::Corrupt(format!("`{key}` is not a counter")))?,
            Value::Set(_) => return Err(StoreError::Corrupt(format!("`{key}` is a set"))),
        };
        let value = current.saturating_add(by);
        entry.value = Value::Int(value);
        Ok(Counter {
            value,
            ttl: remaining(entry.expires),
        })
    }

    async fn take_tokens(&self, key: &str, rate: Rate, cost: u32) -> Result<Taken, StoreError> {
        static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        let base = *BASE.get_or_init(Instant::now);
        let now =
            i64::try_from(Instant::now().duration_since(base).as_micros()).unwrap_or(i64::MAX);
        let mut map = self.map_for(key);
        let tat = match map.get(key).map(|e| &e.value) {
            None => None,
            Some(Value::Int(t)) => Some(*t),
            Some(_) => return Err(StoreError::Corrupt(format!("`{key}` is not a bucket"))),
        };
        let (taken, new_tat) = gcra(tat, now, rate, cost);
        if let Some(new_tat) = new_tat {
            let full_in = Duration::from_micros(u64::try_from(new_tat - now).unwrap_or(0));
            map.insert(
                key.to_owned(),
                Entry {
                    value: Value::Int(new_tat),
                    expires: deadline(Some(full_in)),
                },
            );
        }
        Ok(taken)
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>, StoreError> {
        let map = self.map_for(key);
        Ok(map.get(key).and_then(|e| remaining(e.expires)))
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut map = self.map_for(key);
        match map.get_mut(key) {
            Some(e) => {
                e.expires = deadline(Some(ttl));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn set_add(&self, key: &str, member: &str, ttl: Duration) -> Result<(), StoreError> {
        let mut map = self.map_for(key);
        let entry = map.entry(key.to_owned()).or_insert_with(|| Entry {
            value: Value::Set(BTreeSet::new()),
            expires: None,
        });
        match &mut entry.value {
            Value::Set(set) => {
                set.insert(member.to_owned());
            }
            _ => return Err(StoreError::Corrupt(format!("`{key}` is not a set"))),
        }
        let wanted = Instant::now() + ttl;
        if entry.expires.is_none_or(|at| at < wanted) {
            entry.expires = Some(wanted);
        }
        Ok(())
    }

    async fn set_remove(&self, key: &str, member: &str) -> Result<(), StoreError> {
        let mut map = self.map_for(key);
        let now_empty = match map.get_mut(key).map(|e| &mut e.value) {
            Some(Value::Set(set)) => {
                set.remove(member);
                set.is_empty()
            }
            _ => false,
        };
        if now_empty {
            map.remove(key);
        }
        Ok(())
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>, StoreError> {
        let map = self.map_for(key);
        Ok(match map.get(key).map(|e| &e.value) {
            Some(Value::Set(set)) => set.iter().cloned().collect(),
            _ => Vec::new(),
        })
    }
}

struct MemLog {
    entries: Vec<Arc<[u8]>>,
    closed: bool,
    expires: Instant,
    notify: watch::Sender<()>,
}

#[derive(Default)]
struct LogMap {
    logs: Mutex<HashMap<String, MemLog>>,
    writes: AtomicU64,
}

impl LogMap {
    fn locked(&self, name: &str) -> MutexGuard<'_, HashMap<String, MemLog>> {
        let now = Instant::now();
        let mut logs = lock(&self.logs);
        if self.writes.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            logs.retain(|_, l| l.expires > now);
        } else if logs.get(name).is_some_and(|l| l.expires <= now) {
            logs.remove(name);
        }
        logs
    }
}

/// The in-process log store.
#[derive(Clone, Default)]
pub struct MemoryLogStore {
    inner: Arc<LogMap>,
}

impl MemoryLogStore {
    pub fn new() -> Self {
        Self::default()
    }
}

enum Step {
    Entry(LogEntry),
    End,
    Wait(watch::Receiver<()>),
}

#[async_trait]
impl LogStore for MemoryLogStore {
    async fn append(&self, log: &str, data: &[u8]) -> Result<u64, StoreError> {
        let mut logs = self.inner.locked(log);
        let entry = logs.entry(log.to_owned()).or_insert_with(|| MemLog {
            entries: Vec::new(),
            closed: false,
            expires: Instant::now() + OPEN_LOG_TTL,
            notify: watch::Sender::new(()),
        });
        if entry.closed {
            return Err(StoreError::Closed(log.to_owned()));
        }
        entry.entries.push(Arc::from(data));
        entry.expires = Instant::now() + OPEN_LOG_TTL;
        entry.notify.send_replace(());
        Ok(entry.entries.len() as u64)
    }

    async fn close(&self, log: &str, ttl: Duration) -> Result<(), StoreError> {
        let mut logs = self.inner.locked(log);
        let entry = logs.entry(log.to_owned()).or_insert_with(|| MemLog {
            entries: Vec::new(),
            closed: false,
            expires: Instant::now(),
            notify: watch::Sender::new(()),
        });
        entry.closed = true;
        entry.expires = Instant::now() + ttl;
        entry.notify.send_replace(());
        Ok(())
    }

    async fn info(&self, log: &str) -> Result<Option<LogInfo>, StoreError> {
        let logs = self.inner.locked(log);
        Ok(logs.get(log).map(|l| LogInfo {
            len: l.entries.len() as u64,
            closed: l.closed,
        }))
    }

    async fn read(&self, log: &str, after: u64) -> Result<Option<LogReader>, StoreError> {
        if !self.inner.locked(log).contains_key(log) {
            return Ok(None);
        }
        let state = (self.inner.clone(), log.to_owned(), after);
        let stream = futures_util::stream::unfold(state, |(inner, name, mut cursor)| async move {
            loop {
                let step = {
                    let logs = inner.locked(&name);
                    match logs.get(&name) {
                        None => Step::End,
                        Some(l) => match l.entries.get(cursor as usize) {
                            Some(data) => {
                                cursor += 1;
                                Step::Entry(LogEntry {
                                    index: cursor,
                                    data: data.to_vec(),
                                })
                            }
                            None if l.closed => Step::End,
                            // Subscribing under the lock means any later append notifies us.
                            None => Step::Wait(l.notify.subscribe()),
                        },
                    }
                };
                match step {
                    Step::Entry(entry) => return Some((Ok(entry), (inner, name, cursor))),
                    Step::End => return None,
                    Step::Wait(mut rx) => {
                        // An error means the log was dropped; the next pass sees that.
                        let _ = rx.changed().await;
                    }
                }
            }
        });
        Ok(Some(Box::pin(stream)))
    }

    async fn delete(&self, log: &str) -> Result<(), StoreError> {
        let mut logs = self.inner.locked(log);
        logs.remove(log);
        Ok(())
    }
}
