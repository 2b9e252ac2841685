//! The relational database connection: SQLite under the data directory by default, PostgreSQL
//! when `DATABASE_URL` says so. Migrations live in the `migration` crate and are run by the
//! application, not here.

use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend};

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

/// Opens the configured database, creating the SQLite file (and its directory) on first start.
pub async fn connect(config: &Config) -> Result<DatabaseConnection, StartError> {
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
pub async fn connect_url(url: &str) -> Result<DatabaseConnection, StartError> {
    connect_with(url, Timeouts::default()).await
}

/// Opens a database by URL; errors are one line and never echo a password.
pub async fn connect_with(url: &str, timeouts: Timeouts) -> Result<DatabaseConnection, StartError> {
    let is_sqlite = url.starts_with("sqlite:");
    if is_sqlite {
        ensure_sqlite_dir(url)?;
    } else {
        probe(url).await?;
    }
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .connect_timeout(timeouts.connect)
        .acquire_timeout(timeouts.acquire)
        .sqlx_logging(false);
    if is_sqlite {
        // One writer at a time is SQLite's model; a small pool avoids lock contention. The
        // pragmas hold for every pooled connection (a PRAGMA run once reaches only one):
        // WAL with synchronous=NORMAL syncs at checkpoints rather than at every commit, so a
        // busy disk does not queue writers into the busy timeout.
        options
            .max_connections(8)
            .min_connections(1)
            .map_sqlx_sqlite_opts(|opts| {
                use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
                opts.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(10))
            });
    } else {
        options.max_connections(20).min_connections(1);
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
pub async fn ping(db: &DatabaseConnection, timeout: Duration) -> bool {
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
