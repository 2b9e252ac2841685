//! The relational database connection: SQLite under the data directory by default, PostgreSQL
//! when `DATABASE_URL` says so. Migrations live in the `migration` crate and are run by the
//! application, not here.
//!
//! Stores hold a [`Db`]. On PostgreSQL it is one pool. On a SQLite file it is two: one
//! connection for everything that writes (statements other than `SELECT`, and every
//! transaction) and a small pool for plain reads. SQLite admits one writer at a time; writers
//! on several connections would meet its lock and wait in its busy handler, which sleeps 1,
//! 2, 5 … up to 100 ms between tries, so a burst of short writes (100 chats starting at once)
//! cost hundreds of milliseconds. On one connection they queue in the pool, in order, and each
//! starts the moment the previous one ends; WAL lets the readers go on meanwhile.

mod changes;

use std::sync::Arc;
use std::time::Duration;

pub use changes::{Budget, Changes, StampedCache, Topic};

use sea_orm::{
    AccessMode, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction,
    DbBackend, DbErr, ExecResult, IsolationLevel, QueryResult, Statement, TransactionError,
    TransactionOptions, TransactionTrait,
};

use crate::StartError;
use crate::config::Config;

/// How long connecting and waiting for a pooled connection may take.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Opening one connection.
    pub connect: Duration,
    /// Waiting for a pooled connection; past it a request fails with an outage error
    /// ([`is_outage`]) instead of hanging.
    pub acquire: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let defaults = Config::default();
        Self {
            connect: defaults.db_connect_timeout,
            acquire: defaults.db_acquire_timeout,
        }
    }
}

/// A database handle: statements that write, and transactions, go to the primary connection;
/// plain `SELECT`s to the read pool where there is one (a SQLite file).
#[derive(Debug, Clone)]
pub struct Db {
    primary: DatabaseConnection,
    reads: Option<DatabaseConnection>,
    changes: Arc<Changes>,
}

impl Db {
    /// One pool for everything (PostgreSQL, an in-memory SQLite database).
    /// A SQLite database opened this way is taken to be this process's own (its change
    /// signals live in memory); a server database has none (see [`connect_with`], which
    /// gives PostgreSQL its notifications).
    pub fn single(primary: DatabaseConnection) -> Self {
        let changes = if primary.get_database_backend() == DbBackend::Sqlite {
            Changes::private()
        } else {
            Changes::none()
        };
        Self {
            primary,
            reads: None,
            changes: Arc::new(changes),
        }
    }

    /// The same database with other change signals.
    pub fn with_changes(mut self, changes: Changes) -> Self {
        self.changes = Arc::new(changes);
        self
    }

    /// The change signals every process on this database shares ([`Changes`]).
    pub fn changes(&self) -> Arc<Changes> {
        self.changes.clone()
    }

    /// The connection that writes (migrations run on it).
    pub fn primary(&self) -> &DatabaseConnection {
        &self.primary
    }

    fn for_query(&self, stmt: &Statement) -> &DatabaseConnection {
        match &self.reads {
            Some(reads) if is_plain_read(&stmt.sql) => reads,
            _ => &self.primary,
        }
    }

    /// On PostgreSQL, a transaction in which every statement is planned for its own
    /// parameter values; `None` elsewhere. sqlx prepares each statement once per connection,
    /// and PostgreSQL keeps a prepared statement on a generic plan after five runs when that
    /// plan looks no dearer than the custom ones. For a pattern search it cannot see how
    /// selective the pattern and the owner are, and the plan it keeps walks every row of the
    /// owner (the history search on the bench seed: count 15 ms generic, 3.5 ms custom).
    /// Searches read in this transaction; commit it when done.
    pub async fn custom_plans(&self) -> Result<Option<DatabaseTransaction>, DbErr> {
        if self.get_database_backend() != DbBackend::Postgres {
            return Ok(None);
        }
        let txn = self.primary.begin().await?;
        txn.execute_unprepared("SET LOCAL plan_cache_mode = force_custom_plan")
            .await?;
        Ok(Some(txn))
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), DbErr> {
        self.primary.ping().await?;
        if let Some(reads) = &self.reads {
            reads.ping().await?;
        }
        Ok(())
    }

    /// Closes every pool.
    pub async fn close(self) -> Result<(), DbErr> {
        if let Some(reads) = self.reads {
            reads.close().await?;
        }
        self.primary.close().await
    }
}

/// A statement that only reads: its first word is `SELECT` (an `INSERT … RETURNING` is not).
fn is_plain_read(sql: &str) -> bool {
    sql.trim_start()
        .get(..6)
        .is_some_and(|word| word.eq_ignore_ascii_case("select"))
}

#[async_trait::async_trait]
impl ConnectionTrait for Db {
    fn get_database_backend(&self) -> DbBackend {
        self.primary.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.primary.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.primary.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.for_query(&stmt).query_one_raw(stmt).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.for_query(&stmt).query_all_raw(stmt).await
    }
}

/// What a `transaction` callback returns (SeaORM's signature).
type TransactionBody<'c, T, E> = std::pin::Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>;

#[async_trait::async_trait]
impl TransactionTrait for Db {
    type Transaction = DatabaseTransaction;

    async fn begin(&self) -> Result<DatabaseTransaction, DbErr> {
        self.primary.begin().await
    }

    async fn begin_with_config(
        &self,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<DatabaseTransaction, DbErr> {
        self.primary
            .begin_with_config(isolation_level, access_mode)
            .await
    }

    async fn begin_with_options(
        &self,
        options: TransactionOptions,
    ) -> Result<DatabaseTransaction, DbErr> {
        self.primary.begin_with_options(options).await
    }

    async fn transaction<F, T, E>(&self, callback: F) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(&'c DatabaseTransaction) -> TransactionBody<'c, T, E> + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        self.primary.transaction(callback).await
    }

    async fn transaction_with_config<F, T, E>(
        &self,
        callback: F,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(&'c DatabaseTransaction) -> TransactionBody<'c, T, E> + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        self.primary
            .transaction_with_config(callback, isolation_level, access_mode)
            .await
    }
}

/// Opens the configured database, creating the SQLite file (and its directory) on first start.
pub async fn connect(config: &Config) -> Result<Db, StartError> {
    let url = config.effective_database_url();
    connect_with(
        &url,
        Timeouts {
            connect: config.db_connect_timeout,
            acquire: config.db_acquire_timeout,
        },
    )
    .await
}

/// Opens a database by URL with the default timeouts.
pub async fn connect_url(url: &str) -> Result<Db, StartError> {
    connect_with(url, Timeouts::default()).await
}

/// Read connections beside the writer of a SQLite file.
const SQLITE_READERS: u32 = 4;

/// Opens a database by URL; errors are one line and never echo a password.
pub async fn connect_with(url: &str, timeouts: Timeouts) -> Result<Db, StartError> {
    let is_sqlite = url.starts_with("sqlite:");
    if !is_sqlite {
        probe(url).await?;
        let pool = open_pool(url, timeouts, 20).await?;
        let changes = Changes::notified(url, pool.clone());
        return Ok(Db::single(pool).with_changes(changes));
    }
    ensure_sqlite_dir(url)?;
    if sqlite_file(url).is_none() {
        // An in-memory database lives in its one connection.
        return Ok(Db::single(open_pool(url, timeouts, 1).await?));
    }
    let primary = open_pool(url, timeouts, 1).await?;
    // The writer has set up WAL (a database property) before the readers open.
    let reads = open_pool(url, timeouts, SQLITE_READERS).await?;
    let changes = Changes::path_for(url).map_or_else(Changes::none, |p| Changes::shared(&p));
    Ok(Db {
        primary,
        reads: Some(reads),
        changes: Arc::new(changes),
    })
}

async fn open_pool(
    url: &str,
    timeouts: Timeouts,
    max_connections: u32,
) -> Result<DatabaseConnection, StartError> {
    let is_sqlite = url.starts_with("sqlite:");
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .connect_timeout(timeouts.connect)
        .acquire_timeout(timeouts.acquire)
        .max_connections(max_connections)
        .min_connections(1)
        .sqlx_logging(false);
    if is_sqlite {
        // The pragmas hold for every pooled connection (a PRAGMA run once reaches only one):
        // WAL with synchronous=NORMAL syncs at checkpoints rather than at every commit. The
        // busy timeout is for other processes (the admin CLI): this one never has two writers.
        options.map_sqlx_sqlite_opts(|opts| {
            use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
            opts.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
        });
    }
    let db = Database::connect(options).await.map_err(|e| {
        StartError::new(format!(
            "cannot connect to the database at {}: {}",
            redact(url),
            first_line(&e.to_string())
        ))
    })?;
    if db.get_database_backend() == DbBackend::Sqlite {
        for pragma in [
            "PRAGMA journal_mode = WAL",
            "PRAGMA foreign_keys = ON",
            "PRAGMA synchronous = NORMAL",
        ] {
            db.execute_unprepared(pragma)
                .await
                .map_err(|e| StartError::new(format!("cannot prepare the SQLite database: {e}")))?;
        }
    }
    Ok(db)
}

/// Whether a database error means the database cannot be reached right now (no connection
/// within the acquire timeout, a broken or refused connection, a server shutting down or
/// starting up), as opposed to a bug or bad data. Such failures answer 503, not 500.
pub fn is_outage(e: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr};
    match e {
        DbErr::ConnectionAcquire(_) => true,
        DbErr::Conn(RuntimeErr::SqlxError(inner))
        | DbErr::Exec(RuntimeErr::SqlxError(inner))
        | DbErr::Query(RuntimeErr::SqlxError(inner)) => sqlx_outage(inner),
        DbErr::Conn(_) => true,
        _ => false,
    }
}

fn sqlx_outage(e: &sea_orm::sqlx::Error) -> bool {
    use sea_orm::sqlx::Error;
    match e {
        Error::Io(_)
        | Error::Tls(_)
        | Error::Protocol(_)
        | Error::PoolTimedOut
        | Error::PoolClosed
        | Error::WorkerCrashed => true,
        // Class 08 (connection exception), 57P01-57P03 (admin shutdown, crash shutdown,
        // cannot connect now), 53300 (too many connections).
        Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

/// Whether the database answers a trivial query within `timeout`.
pub async fn ping(db: &Db, timeout: Duration) -> bool {
    matches!(tokio::time::timeout(timeout, db.ping()).await, Ok(Ok(())))
}

/// A quick TCP check of a server database, so an unreachable one fails at once with the
/// real cause instead of after the pool's acquire timeout.
async fn probe(url: &str) -> Result<(), StartError> {
    let Some(authority) = url
        .split_once("://")
        .map(|(_, rest)| rest.rsplit_once('@').map_or(rest, |(_, host)| host))
        .and_then(|rest| rest.split(['/', '?']).next())
    else {
        return Ok(());
    };
    if authority.is_empty() {
        return Ok(());
    }
    let target = if authority.starts_with('[')
        || authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_owned()
    } else {
        format!("{authority}:5432")
    };
    let attempt = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(target.as_str()),
    )
    .await;
    let reason = match attempt {
        Ok(Ok(_)) => return Ok(()),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "timed out".to_owned(),
    };
    Err(StartError::new(format!(
        "cannot connect to the database at {}: {reason}",
        redact(url)
    )))
}

/// The file of a SQLite database URL; `None` for another database or an in-memory one.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let in_memory = path == ":memory:"
        || query
            .split('&')
            .any(|pair| pair == "mode=memory" || pair == "memory=true");
    (!path.is_empty() && !in_memory).then(|| std::path::PathBuf::from(path))
}

fn ensure_sqlite_dir(url: &str) -> Result<(), StartError> {
    let Some(path) = sqlite_file(url) else {
        return Ok(());
    };
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| {
                StartError::new(format!(
                    "cannot create the data directory {}: {e}",
                    dir.display()
                ))
            })?;
    }
    // Created here 0600 so SQLite opens an existing file; its WAL and shared-memory files
    // take the database file's permissions.
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StartError::new(format!(
            "cannot create the database file {}: {e}",
            path.display()
        ))),
    }
}

/// What a worker may claim from a table of leased work: rows `pending`, and rows `running`
/// whose lease (`locked_until`) ran out before `now` (their worker is gone). Agent jobs,
/// planner tasks and knowledge-base documents claim with it in a conditional UPDATE.
pub fn lease_due<C: sea_orm::ColumnTrait>(
    status: C,
    locked_until: C,
    pending: impl Into<sea_orm::Value>,
    running: impl Into<sea_orm::Value>,
    now: chrono::DateTime<chrono::Utc>,
) -> sea_orm::Condition {
    sea_orm::Condition::any().add(status.eq(pending)).add(
        sea_orm::Condition::all()
            .add(status.eq(running))
            .add(locked_until.lt(now)),
    )
}

/// `text` lower-cased as a LIKE pattern (escape character `\`) matching it anywhere, with
/// `%`, `_` and `\` taken literally: the searches of listings.
pub fn contains_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// The URL with any password replaced, for error lines and logs.
pub fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((userinfo, host)) => {
                let user = userinfo.split(':').next().unwrap_or_default();
                if userinfo.contains(':') {
                    format!("{scheme}://{user}:***@{host}")
                } else {
                    format!("{scheme}://{user}@{host}")
                }
            }
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_patterns_take_wildcards_literally() {
        assert_eq!(contains_pattern("50%_A\\b"), "%50\\%\\_a\\\\b%");
    }

    #[test]
    fn passwords_never_reach_error_lines() {
        assert_eq!(
            redact("postgres://sage:hunter2@db:5432/sage"),
            "postgres://sage:***@db:5432/sage"
        );
        assert_eq!(redact("postgres://sage@db/sage"), "postgres://sage@db/sage");
        assert_eq!(redact("sqlite://./data/sage.db"), "sqlite://./data/sage.db");
    }

    #[tokio::test]
    async fn a_sqlite_file_and_its_directory_are_created_on_first_start() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nested/sage.db");
        let url = format!("sqlite://{}?mode=rwc", file.display());
        let db = connect_url(&url).await.unwrap();
        db.execute_unprepared("CREATE TABLE t (x INTEGER)")
            .await
            .unwrap();
        db.execute_unprepared("INSERT INTO t VALUES (1)")
            .await
            .unwrap();
        assert!(file.exists());
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(file.parent().unwrap()), 0o700);
        let wal = dir.path().join("nested/sage.db-wal");
        assert!(wal.exists(), "the database runs in WAL mode");
        assert_eq!(mode(&wal), 0o600);
    }

    #[test]
    fn only_plain_selects_go_to_the_read_pool() {
        assert!(is_plain_read("SELECT 1"));
        assert!(is_plain_read("  select \"id\" FROM \"users\""));
        assert!(!is_plain_read("INSERT INTO t VALUES (1) RETURNING id"));
        assert!(!is_plain_read("UPDATE t SET x = 1"));
        assert!(!is_plain_read("WITH x AS (SELECT 1) DELETE FROM t"));
        assert!(!is_plain_read("SEL"));
    }

    #[tokio::test]
    async fn concurrent_writers_on_a_sqlite_file_all_land_and_reads_see_them() {
        use sea_orm::{DbBackend, Statement};
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("w.db").display());
        let db = connect_url(&url).await.unwrap();
        assert!(db.reads.is_some(), "a SQLite file gets a read pool");
        db.execute_unprepared("CREATE TABLE t (x INTEGER)")
            .await
            .unwrap();
        // Each writer reads then writes in one transaction: on several connections this is
        // the pattern that fails with SQLITE_BUSY_SNAPSHOT; on the one writer it queues.
        let writers = (0..40).map(|i| {
            let db = db.clone();
            async move {
                let txn = db.begin().await.unwrap();
                txn.query_one_raw(Statement::from_string(
                    DbBackend::Sqlite,
                    "SELECT COUNT(*) AS n FROM t",
                ))
                .await
                .unwrap();
                txn.execute_unprepared(&format!("INSERT INTO t VALUES ({i})"))
                    .await
                    .unwrap();
                txn.commit().await.unwrap();
            }
        });
        futures_util::future::join_all(writers).await;
        let row = db
            .query_one_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT COUNT(*) AS n FROM t",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.try_get::<i64>("", "n").unwrap(), 40);
    }

    #[test]
    fn only_reachability_failures_count_as_outages() {
        use sea_orm::{DbErr, RuntimeErr};
        let timeout = DbErr::ConnectionAcquire(sea_orm::error::ConnAcquireErr::Timeout);
        assert!(is_outage(&timeout));
        let io = DbErr::Query(RuntimeErr::SqlxError(std::sync::Arc::new(
            sea_orm::sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        )));
        assert!(is_outage(&io));
        assert!(!is_outage(&DbErr::RecordNotFound("x".into())));
        let not_found = DbErr::Query(RuntimeErr::SqlxError(std::sync::Arc::new(
            sea_orm::sqlx::Error::RowNotFound,
        )));
        assert!(!is_outage(&not_found));
    }

    #[tokio::test]
    async fn an_unreachable_database_is_a_one_line_error() {
        let err = connect_url("postgres://nobody:secret@127.0.0.1:1/none")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("cannot connect to the database"), "{err}");
        assert!(!err.contains("secret"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
}
