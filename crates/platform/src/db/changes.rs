//! Change signals: a cheap way for every process on one database to tell the others that
//! some kind of data changed, so that in-process caches of it may be trusted without a
//! database round trip.
//!
//! On a SQLite file the signal is a small file next to the database (`sage.db-changes`)
//! holding one 8-byte slot per [`Topic`]. A process that has committed a change writes a new
//! random value into the topic's slot; a reader compares the slot with the value it saw when
//! it filled its cache: one `pread` from the page cache. Every process on the database (the
//! admin CLI, a second server) opens the same file, so a change made anywhere is seen by the
//! next request everywhere. Values are random rather than counters, so two processes
//! announcing at once cannot write the same value; a torn or failed read only ever looks
//! like a change.
//!
//! An in-memory SQLite database belongs to one process: the signal is a counter in memory.
//!
//! On PostgreSQL the signal travels as a notification (`NOTIFY sage_changes`): a process
//! that committed a change bumps its own counter and sends the topic, awaiting the send
//! before it answers; every process keeps one connection listening and bumps its counter for
//! each topic it hears. Another replica sees the change when the notification reaches it,
//! normally well under a millisecond after the writer's commit, not in the same instant as
//! on a shared file. While the listening connection is down, nothing is trusted: [`Changes::read`]
//! answers `None` and every lookup reads the database; when it is back, every topic counts as
//! changed (notifications sent meanwhile were lost).
//!
//! The order that makes this correct: read the signal *before* the rows a cache entry is
//! filled from, announce *after* the change is committed. A reader that races a writer then
//! at worst caches fresh rows under an old value (refilled at the next request), never old
//! rows under a new one. A process that dies between its commit and its announcement leaves
//! other processes' caches stale; [`StampedCache`] bounds that by an entry age.

use std::collections::HashMap;
use std::fs::File;
use std::hash::Hash;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The kinds of data whose changes are signalled. Each owns a fixed slot of the signal file,
/// so the numbering is part of the file format: append, never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Topic {
    /// Sessions and tokens ended (logout, rotation, password reset, role change, deletion).
    Revocations = 0,
    /// User rows (profile, role, e-mail).
    Users = 1,
    /// Agents and their grants.
    Agents = 2,
    /// Model providers.
    Providers = 3,
}

const TOPICS: usize = 4;
const SLOT: u64 = 8;

#[derive(Debug)]
enum Signal {
    /// Shared with every process on the database file.
    File(File),
    /// The database lives in this process only.
    Private([AtomicU64; TOPICS]),
    /// PostgreSQL notifications.
    Notified(Notified),
    /// No cheap signal.
    None,
}

/// The PostgreSQL channel change notifications travel on.
const CHANNEL: &str = "sage_changes";

/// What the listening task and the readers share.
#[derive(Debug, Default)]
struct Heard {
    counters: [AtomicU64; TOPICS],
    /// The listening connection is up (and was when the counters were last bumped for a gap).
    live: AtomicBool,
}

impl Heard {
    fn bump(&self, topic: usize) {
        if let Some(counter) = self.counters.get(topic) {
            counter.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn bump_all(&self) {
        (0..TOPICS).for_each(|t| self.bump(t));
    }
}

#[derive(Debug)]
struct Notified {
    heard: Arc<Heard>,
    /// Sends this process's notifications.
    sender: sea_orm::DatabaseConnection,
    /// Tells this process's own notifications (already counted) from others'.
    origin: u64,
    listener: tokio::task::AbortHandle,
}

impl Drop for Notified {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// Listens on [`CHANNEL`] for as long as the process runs, reconnecting after a loss.
async fn listen(url: String, heard: Arc<Heard>, origin: u64) {
    use sea_orm::sqlx::postgres::PgListener;
    let mut backoff = Duration::from_millis(100);
    loop {
        let connected = async {
            let mut listener = PgListener::connect(&url).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sea_orm::sqlx::Error>(listener)
        }
        .await;
        match connected {
            Ok(mut listener) => {
                backoff = Duration::from_millis(100);
                // Whatever was cached while nobody listened may be stale.
                heard.bump_all();
                heard.live.store(true, Ordering::Release);
                loop {
                    match listener.try_recv().await {
                        Ok(Some(note)) => {
                            let mut parts = note.payload().split(':');
                            let topic = parts.next().and_then(|t| t.parse::<usize>().ok());
                            let from = parts.next().and_then(|o| o.parse::<u64>().ok());
                            match topic {
                                Some(_) if from == Some(origin) => {}
                                Some(topic) => heard.bump(topic),
                                None => heard.bump_all(),
                            }
                        }
                        // The connection dropped and was opened again: the gap lost what was
                        // sent in it.
                        Ok(None) => heard.bump_all(),
                        Err(e) => {
                            tracing::warn!(error = %e, "change notifications lost; cached sessions, users and agents are read from the database until they are back");
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for change notifications; cached sessions, users and agents are read from the database meanwhile");
            }
        }
        heard.live.store(false, Ordering::Release);
        heard.bump_all();
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// The change signals of one database (every [`super::Db`] clone shares them).
#[derive(Debug)]
pub struct Changes {
    signal: Signal,
}

impl Changes {
    /// The signal file of the SQLite database at `database_url`, when it is a file.
    pub fn path_for(database_url: &str) -> Option<PathBuf> {
        super::sqlite_file(database_url).map(|db| {
            let mut name = db.into_os_string();
            name.push("-changes");
            PathBuf::from(name)
        })
    }

    /// Signals shared through the file at `path` (created 0600). When it cannot be opened
    /// there is no signal, and a warning says what that costs.
    pub fn shared(path: &Path) -> Self {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path);
        match file {
            Ok(file) => Self {
                signal: Signal::File(file),
            },
            Err(e) => {
                tracing::warn!(
                    path = %path.display(),
                    error = %e,
                    "no change signal file: cached sessions, users and agents are checked against the database on each request"
                );
                Self::none()
            }
        }
    }

    /// Signals for a database that only this process can reach.
    pub fn private() -> Self {
        Self {
            signal: Signal::Private(Default::default()),
        }
    }

    /// Signals carried by notifications on the PostgreSQL database at `url`, sent through
    /// `sender` (a pool on it). Starts the listening task (a tokio runtime must be running);
    /// until it listens, nothing is trusted.
    pub fn notified(url: &str, sender: sea_orm::DatabaseConnection) -> Self {
        let heard = Arc::new(Heard::default());
        let origin = rand::random::<u64>();
        let listener = tokio::spawn(listen(url.to_owned(), heard.clone(), origin)).abort_handle();
        Self {
            signal: Signal::Notified(Notified {
                heard,
                sender,
                origin,
                listener,
            }),
        }
    }

    /// No signal: every [`Changes::read`] answers `None`.
    pub fn none() -> Self {
        Self {
            signal: Signal::None,
        }
    }

    /// The topic's current value; `None` when there is no signal (then nothing may be
    /// trusted from a cache without asking the database). A failed read answers a value that
    /// differs from every value written, so caches are dropped.
    pub fn read(&self, topic: Topic) -> Option<u64> {
        match &self.signal {
            Signal::File(file) => {
                let mut bytes = [0u8; 8];
                match file.read_at(&mut bytes, u64::from(topic as u8) * SLOT) {
                    Ok(8) => Some(u64::from_le_bytes(bytes)),
                    // A slot nobody has written yet (the file is shorter) reads as zero.
                    Ok(0) => Some(0),
                    _ => Some(rand::random::<u64>() | 1),
                }
            }
            Signal::Private(counters) => Some(counters[topic as usize].load(Ordering::Acquire)),
            Signal::Notified(n) => n
                .heard
                .live
                .load(Ordering::Acquire)
                .then(|| n.heard.counters[topic as usize].load(Ordering::Acquire)),
            Signal::None => None,
        }
    }

    /// Tells every process that data of `topic` changed. Call it after the change is
    /// committed; on PostgreSQL it returns once the notification is sent.
    pub async fn announce(&self, topic: Topic) {
        match &self.signal {
            Signal::File(file) => {
                let value = rand::random::<u64>().max(1);
                if let Err(e) =
                    file.write_all_at(&value.to_le_bytes(), u64::from(topic as u8) * SLOT)
                {
                    tracing::error!(error = %e, ?topic, "cannot write the change signal; other processes see the change when their cached entries age out");
                }
            }
            Signal::Private(counters) => {
                counters[topic as usize].fetch_add(1, Ordering::AcqRel);
            }
            Signal::Notified(n) => {
                n.heard.bump(topic as usize);
                let payload = format!("{}:{}", topic as u8, n.origin);
                let sent = sea_orm::ConnectionTrait::execute_raw(
                    &n.sender,
                    sea_orm::Statement::from_sql_and_values(
                        sea_orm::DbBackend::Postgres,
                        "SELECT pg_notify($1, $2)",
                        [CHANNEL.into(), payload.into()],
                    ),
                )
                .await;
                if let Err(e) = sent {
                    tracing::error!(error = %e, ?topic, "cannot send the change notification; other processes see the change when their cached entries age out");
                }
            }
            Signal::None => {}
        }
    }
}

/// How much a [`StampedCache`] holds before it starts afresh, and for how long an entry is
/// trusted at most.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub entries: usize,
    /// The sum of the entries' weights.
    pub weight: usize,
    pub max_age: Duration,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            entries: 20_000,
            weight: 64 << 20,
            max_age: Duration::from_secs(5),
        }
    }
}

struct Entries<K, V> {
    /// The signal's value the entries were filled under.
    stamp: Option<u64>,
    map: HashMap<K, (Instant, V)>,
    weight: usize,
}

/// An in-process cache of values read from the database, trusted only while the signal of
/// its topic is unchanged (and for at most [`Budget::max_age`]). Without a signal (a server
/// database) it never holds anything and every lookup reads through.
pub struct StampedCache<K, V> {
    topic: Topic,
    changes: Arc<Changes>,
    budget: Budget,
    weigh: fn(&V) -> usize,
    entries: Mutex<Entries<K, V>>,
}

impl<K: Hash + Eq, V: Clone> StampedCache<K, V> {
    /// A cache of `topic` on `db`, each entry weighing what `weigh` says.
    pub fn new(db: &super::Db, topic: Topic, budget: Budget, weigh: fn(&V) -> usize) -> Self {
        Self {
            topic,
            changes: db.changes(),
            budget,
            weigh,
            entries: Mutex::new(Entries {
                stamp: None,
                map: HashMap::new(),
                weight: 0,
            }),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries<K, V>> {
        // A panic while holding the lock can at worst lose entries.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached value of `key`, or what `fill` reads (then cached).
    pub async fn get_or_fill<E, F, Fut>(&self, key: K, fill: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        // The signal is read before the rows (see the module's note on order).
        let Some(stamp) = self.changes.read(self.topic) else {
            return fill().await;
        };
        {
            let mut entries = self.entries();
            if entries.stamp != Some(stamp) {
                entries.map.clear();
                entries.weight = 0;
                entries.stamp = Some(stamp);
            } else if let Some((at, value)) = entries.map.get(&key)
                && at.elapsed() < self.budget.max_age
            {
                return Ok(value.clone());
            }
        }
        let value = fill().await?;
        let weight = (self.weigh)(&value);
        let mut entries = self.entries();
        // Filled under another value than the one now current: keep it out.
        if entries.stamp == Some(stamp) && weight <= self.budget.weight {
            if entries.map.len() >= self.budget.entries
                || entries.weight.saturating_add(weight) > self.budget.weight
            {
                entries.map.clear();
                entries.weight = 0;
            }
            if let Some((_, old)) = entries.map.insert(key, (Instant::now(), value.clone())) {
                entries.weight = entries.weight.saturating_sub((self.weigh)(&old));
            }
            entries.weight = entries.weight.saturating_add(weight);
        }
        Ok(value)
    }

    /// Tells every process (this one included) that data of the topic changed; call it after
    /// the change is committed.
    pub async fn changed(&self) {
        self.changes.announce(self.topic).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_announcement_changes_what_every_opener_reads_in_its_own_slot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sage.db-changes");
        let writer = Changes::shared(&path);
        let reader = Changes::shared(&path);
        assert_eq!(reader.read(Topic::Agents), Some(0));
        let mut seen = vec![reader.read(Topic::Agents)];
        for _ in 0..20 {
            let users = reader.read(Topic::Users);
            writer.announce(Topic::Agents).await;
            let now = reader.read(Topic::Agents);
            assert!(!seen.contains(&now), "an announcement went unseen");
            seen.push(now);
            assert_eq!(reader.read(Topic::Users), users, "another topic moved");
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[tokio::test]
    async fn private_signals_count_and_no_signal_reads_none() {
        let private = Changes::private();
        let before = private.read(Topic::Users);
        private.announce(Topic::Users).await;
        assert_ne!(private.read(Topic::Users), before);
        assert_eq!(private.read(Topic::Agents), Some(0));
        let none = Changes::none();
        none.announce(Topic::Users).await;
        assert_eq!(none.read(Topic::Users), None);
    }

    #[test]
    fn the_signal_file_sits_next_to_a_sqlite_file_only() {
        assert_eq!(
            Changes::path_for("sqlite:///data/sage.db?mode=rwc"),
            Some(PathBuf::from("/data/sage.db-changes"))
        );
        assert_eq!(Changes::path_for("sqlite::memory:"), None);
        assert_eq!(
            Changes::path_for("postgres://postgres@127.0.0.1/test"),
            None
        );
    }

    async fn cached(
        cache: &StampedCache<&'static str, u32>,
        key: &'static str,
        fills: &std::cell::Cell<u32>,
        value: u32,
    ) -> u32 {
        cache
            .get_or_fill(key, || async {
                fills.set(fills.get() + 1);
                Ok::<_, ()>(value)
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_cache_serves_until_any_process_announces_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("sage.db").display());
        let db = super::super::connect_url(&url).await.unwrap();
        // Another process on the same file (the admin CLI, a second server).
        let other = Changes::shared(&Changes::path_for(&url).unwrap());
        let cache = StampedCache::new(&db, Topic::Users, Budget::default(), |_| 1);
        let fills = std::cell::Cell::new(0);
        assert_eq!(cached(&cache, "a", &fills, 1).await, 1);
        assert_eq!(
            cached(&cache, "a", &fills, 2).await,
            1,
            "served from the cache"
        );
        assert_eq!(fills.get(), 1);
        other.announce(Topic::Agents).await;
        assert_eq!(
            cached(&cache, "a", &fills, 2).await,
            1,
            "another topic changed"
        );
        other.announce(Topic::Users).await;
        assert_eq!(
            cached(&cache, "a", &fills, 3).await,
            3,
            "refilled after a change"
        );
        cache.changed().await;
        assert_eq!(
            cached(&cache, "a", &fills, 4).await,
            4,
            "refilled after its own change"
        );
        assert_eq!(fills.get(), 3);
    }

    #[tokio::test]
    async fn entries_age_out_and_budgets_hold() {
        let db = super::super::connect_url("sqlite::memory:").await.unwrap();
        let budget = Budget {
            entries: 2,
            weight: 10,
            max_age: Duration::ZERO,
        };
        let aged = StampedCache::new(&db, Topic::Users, budget, |_| 1);
        let fills = std::cell::Cell::new(0);
        cached(&aged, "a", &fills, 1).await;
        cached(&aged, "a", &fills, 1).await;
        assert_eq!(fills.get(), 2, "an entry past its age is read again");

        let budget = Budget {
            max_age: Duration::from_secs(60),
            ..budget
        };
        let heavy = StampedCache::new(&db, Topic::Users, budget, |v| *v as usize);
        let fills = std::cell::Cell::new(0);
        cached(&heavy, "big", &fills, 11).await;
        cached(&heavy, "big", &fills, 11).await;
        assert_eq!(
            fills.get(),
            2,
            "an entry over the whole budget is never kept"
        );
        for key in ["a", "b", "c"] {
            cached(&heavy, key, &fills, 1).await;
        }
        assert!(heavy.entries().map.len() <= 2);
    }

    /// Waits (at most 10 s) until `done` holds.
    async fn until(done: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            if Instant::now() > deadline {
                return false;
            }
            tokio::task::yield_now().await;
        }
        true
    }

    #[tokio::test]
    async fn notifications_carry_changes_between_processes_and_nothing_is_trusted_unheard() {
        // Nobody listens where nothing answers: every read goes to the database.
        let sender = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
        let deaf = Changes::notified("postgres://postgres@127.0.0.1:1/test", sender);
        assert_eq!(deaf.read(Topic::Users), None);

        let Some(url) = std::env::var("TEST_DATABASE_URL")
            .ok()
            .filter(|v| !v.trim().is_empty())
        else {
            return;
        };
        // Two processes on one PostgreSQL database, each with its own listener.
        let a = super::super::connect_url(&url).await.unwrap().changes();
        let b = super::super::connect_url(&url).await.unwrap().changes();
        assert!(until(|| a.read(Topic::Agents).is_some() && b.read(Topic::Agents).is_some()).await);
        for _ in 0..5 {
            let (mine, theirs) = (a.read(Topic::Agents), b.read(Topic::Agents));
            a.announce(Topic::Agents).await;
            assert_ne!(
                a.read(Topic::Agents),
                mine,
                "the writer's own change counts at once"
            );
            assert!(
                until(|| b.read(Topic::Agents) != theirs).await,
                "the other process heard nothing"
            );
        }
    }

    #[tokio::test]
    async fn without_a_signal_every_lookup_reads_through() {
        let db =
            super::super::Db::single(sea_orm::Database::connect("sqlite::memory:").await.unwrap())
                .with_changes(Changes::none());
        let cache = StampedCache::new(&db, Topic::Agents, Budget::default(), |_| 1);
        let fills = std::cell::Cell::new(0);
        cached(&cache, "a", &fills, 1).await;
        cached(&cache, "a", &fills, 1).await;
        assert_eq!(fills.get(), 2);
    }
}
