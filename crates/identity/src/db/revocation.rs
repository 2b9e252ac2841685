//! The revocation signal of the embedded default: a tiny file next to the SQLite database
//! (`sage.db-revocations`) holding 8 random bytes that every process rewrites after it has
//! committed a revocation (logout, refresh rotation, password reset, role change, deletion).
//!
//! Every process on the database opens the same file, so checking whether cached credentials
//! may still be trusted costs one `pread` of 8 bytes from the page cache instead of a database
//! round trip, and a revocation made by any process (the admin CLI included) is seen by the
//! next request of every other one. The value is random rather than a counter, so two
//! processes revoking at once cannot write the same value: any change after a cache was
//! filled is seen. A torn or failed read only ever looks like a change (the cache is dropped).
//!
//! Without a file (an in-memory or PostgreSQL database) there is no signal and the store reads
//! the revocation generation row on each check instead.

use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub(crate) struct RevocationSignal {
    file: Option<File>,
}

impl RevocationSignal {
    /// The signal file for the SQLite database at `database`, when it is a file.
    pub fn path_for(database_url: &str) -> Option<PathBuf> {
        platform::db::sqlite_file(database_url).map(|db| {
            let mut name = db.into_os_string();
            name.push("-revocations");
            PathBuf::from(name)
        })
    }

    /// Opens (creating, 0600) the signal file; without one the signal is absent.
    pub fn open(path: Option<&Path>) -> Self {
        let file = path.and_then(|path| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(|e| {
                    tracing::warn!(
                        path = %path.display(),
                        error = %e,
                        "no revocation signal file: every authenticated request reads the revocation generation from the database"
                    );
                })
                .ok()
        });
        Self { file }
    }

    /// The current value; `None` without a file. A failed read answers a value that differs
    /// from every value written (so caches are dropped).
    pub fn read(&self) -> Option<u64> {
        let file = self.file.as_ref()?;
        let mut bytes = [0u8; 8];
        match file.read_at(&mut bytes, 0) {
            Ok(8) => Some(u64::from_le_bytes(bytes)),
            // A new, still empty file reads as zero; nobody writes zero.
            Ok(0) => Some(0),
            _ => Some(rand::random::<u64>() | 1),
        }
    }

    /// Tells every process that cached credentials may have been revoked. Called after the
    /// revocation is committed.
    pub fn announce(&self) {
        let Some(file) = &self.file else { return };
        let value = rand::random::<u64>().max(1);
        if let Err(e) = file.write_all_at(&value.to_le_bytes(), 0) {
            tracing::error!(error = %e, "cannot write the revocation signal; other processes see the revocation within a second");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_announcement_changes_what_every_opener_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sage.db-revocations");
        let writer = RevocationSignal::open(Some(&path));
        let reader = RevocationSignal::open(Some(&path));
        assert_eq!(reader.read(), Some(0));
        let mut seen = vec![reader.read()];
        for _ in 0..20 {
            writer.announce();
            let now = reader.read();
            assert!(!seen.contains(&now), "an announcement went unseen");
            seen.push(now);
        }
        assert_eq!(RevocationSignal::open(None).read(), None);
    }

    #[test]
    fn the_signal_sits_next_to_a_sqlite_file_only() {
        assert_eq!(
            RevocationSignal::path_for("sqlite:///data/sage.db?mode=rwc"),
            Some(PathBuf::from("/data/sage.db-revocations"))
        );
        assert_eq!(RevocationSignal::path_for("sqlite::memory:"), None);
        assert_eq!(
            RevocationSignal::path_for("postgres://postgres@127.0.0.1/test"),
            None
        );
    }
}
