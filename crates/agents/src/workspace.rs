//! Per-(user, agent) file workspaces under `<data dir>/workspaces/<user_id>/<agent_id>/`,
//! behind [`Workspaces`] so object storage can implement it later.
//!
//! Every path from a request is confined to its workspace: NUL bytes, absolute paths, `..` and
//! over-long names are refused lexically ([`platform::confined::relative_parts`]), then every operation goes through
//! [`platform::confined`], which walks from the workspace root's descriptor with no-follow
//! semantics: a symlink in a path is refused, never followed, and listings never enter one.
//! Ids are validated before a directory name is built from them.

use std::io::Write;
use std::path::{Path, PathBuf};

use platform::confined::{Confined, ConfinedError, InvalidPath, Kind, relative_parts};

use crate::AgentError;

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceEntry {
    pub name: String,
    /// Relative to the workspace root, `/`-separated.
    pub path: String,
    pub size: u64,
    /// Seconds since the epoch.
    pub modified_time: i64,
    pub is_directory: bool,
}

/// A listing and whether depth cut it short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub entries: Vec<WorkspaceEntry>,
    pub truncated_by_depth: bool,
}

/// What a download is.
#[derive(Debug)]
pub enum Download {
    /// A regular file, already opened (no-follow, inside the workspace).
    File {
        file: std::fs::File,
        name: String,
        size: u64,
    },
    /// A zip of a directory, produced while it is sent: 64 KiB pieces from a blocking task
    /// that stops when the receiver is dropped. Nothing is staged on disk or in memory.
    Zip {
        chunks: tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
        name: String,
    },
}

/// Local-directory workspaces.
#[derive(Debug, Clone)]
pub struct Workspaces {
    root: PathBuf,
}

fn invalid(reason: &str) -> AgentError {
    AgentError::PathInvalid(reason.to_owned())
}

impl From<InvalidPath> for AgentError {
    fn from(e: InvalidPath) -> Self {
        AgentError::PathInvalid(e.0)
    }
}

fn io(e: std::io::Error) -> AgentError {
    match e.kind() {
        std::io::ErrorKind::NotFound => AgentError::FileNotFound,
        _ => AgentError::Internal(e.into()),
    }
}

/// Confined-tree errors as the workspace routes answer them.
fn fs(e: ConfinedError) -> AgentError {
    match e {
        ConfinedError::NotFound | ConfinedError::NotADirectory => AgentError::FileNotFound,
        ConfinedError::Symlink => invalid("the path goes through a symbolic link"),
        ConfinedError::BadName => invalid("the name is not allowed"),
        ConfinedError::Exists => AgentError::FileExists,
        ConfinedError::IsADirectory => invalid("the path is a directory"),
        ConfinedError::Io(e) => io(e),
    }
}

/// A `Write` that hands 64 KiB pieces to an async receiver; fails once it is gone.
struct ChannelWriter {
    buffer: Vec<u8>,
    tx: tokio::sync::mpsc::Sender<std::io::Result<Vec<u8>>>,
}

const PIECE: usize = 64 * 1024;

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let piece = std::mem::replace(&mut self.buffer, Vec::with_capacity(PIECE));
        self.tx
            .blocking_send(Ok(piece))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= PIECE {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// Writes the zip of the directory at `parts` into `out`.
fn write_zip(tree: &Confined, parts: &[String], out: ChannelWriter) -> Result<(), AgentError> {
    write_export(Some(tree), parts, &[], "", out)
}

/// Writes a zip of `extras` (name, bytes) then, when `tree` is given, of the directory at
/// `parts` with every entry under `prefix`.
fn write_export(
    tree: Option<&Confined>,
    parts: &[String],
    extras: &[(String, Vec<u8>)],
    prefix: &str,
    out: ChannelWriter,
) -> Result<(), AgentError> {
    let mut zip = zip::ZipWriter::new_stream(out);
    let options = zip::write::SimpleFileOptions::default().large_file(true);
    for (name, bytes) in extras {
        zip.start_file(name.as_str(), options)
            .map_err(|e| AgentError::Internal(e.into()))?;
        zip.write_all(bytes).map_err(io)?;
    }
    let mut copy_error = None;
    let Some(tree) = tree else {
        let mut out = zip.finish().map_err(|e| AgentError::Internal(e.into()))?;
        out.flush().map_err(io)?;
        return Ok(());
    };
    tree.walk(parts, MAX_ZIP_DEPTH, &mut |entry, dir| {
        let zipped = match (entry.meta.kind, dir) {
            (Kind::Dir, _) => zip
                .add_directory(format!("{prefix}{}/", entry.path), options)
                .map_err(std::io::Error::other),
            (Kind::File, dir) => match Confined::open_in(dir, &entry.name) {
                Ok(mut file) => zip
                    .start_file(format!("{prefix}{}", entry.path), options)
                    .map_err(std::io::Error::other)
                    .and_then(|()| std::io::copy(&mut file, &mut zip).map(|_| ())),
                // Gone or replaced since it was listed: leave it out.
                Err(_) => Ok(()),
            },
            // Symlinks and special files are not followed or archived.
            _ => Ok(()),
        };
        match zipped {
            Ok(()) => Ok(true),
            Err(e) => {
                copy_error = Some(e);
                Ok(false)
            }
        }
    })
    .map_err(fs)?;
    if let Some(e) = copy_error {
        return Err(io(e));
    }
    let mut out = zip.finish().map_err(|e| AgentError::Internal(e.into()))?;
    out.flush().map_err(io)?;
    Ok(())
}

/// Deepest level a zip descends to.
const MAX_ZIP_DEPTH: u32 = 64;

impl Workspaces {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root of one workspace (ids validated).
    pub fn root_of(&self, user_id: &str, agent_id: &str) -> Result<PathBuf, AgentError> {
        if !platform::ids::is_safe_id(user_id) || !platform::ids::is_safe_id(agent_id) {
            return Err(invalid("invalid user or agent id"));
        }
        Ok(self.root.join(user_id).join(agent_id))
    }

    /// Deletes every workspace of a user (their directory under the root); absent is fine.
    pub fn remove_user(&self, user_id: &str) -> Result<(), AgentError> {
        if !platform::ids::is_safe_id(user_id) {
            return Err(invalid("invalid user id"));
        }
        match std::fs::remove_dir_all(self.root.join(user_id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(AgentError::Internal(e.into()))
            }
            _ => Ok(()),
        }
    }

    /// The open workspace at `root`, or `None` when it does not exist yet.
    fn tree(root: &Path) -> Result<Option<Confined>, AgentError> {
        match Confined::open(root) {
            Ok(tree) => Ok(Some(tree)),
            Err(ConfinedError::NotFound) => Ok(None),
            Err(e) => Err(fs(e)),
        }
    }

    /// Lists `path` (relative; empty = the root) recursively down to `max_depth` levels.
    /// Symbolic links are not listed and never entered.
    pub fn list(&self, root: &Path, path: &str, max_depth: u32) -> Result<Listing, AgentError> {
        let parts = relative_parts(path)?;
        let Some(tree) = Self::tree(root)? else {
            return Ok(Listing {
                entries: Vec::new(),
                truncated_by_depth: false,
            });
        };
        let base = parts.join("/");
        let mut entries = Vec::new();
        let truncated = tree
            .walk(&parts, max_depth.max(1), &mut |entry, _| {
                if entry.name.starts_with('.') {
                    // Hidden entries are skipped, and so is everything below them.
                    return Ok(true);
                }
                if entry.path.split('/').any(|p| p.starts_with('.')) {
                    return Ok(true);
                }
                if !matches!(entry.meta.kind, Kind::File | Kind::Dir) {
                    return Ok(true);
                }
                let is_directory = entry.meta.kind == Kind::Dir;
                entries.push(WorkspaceEntry {
                    name: entry.name.clone(),
                    path: if base.is_empty() {
                        entry.path.clone()
                    } else {
                        format!("{base}/{}", entry.path)
                    },
                    size: if is_directory { 0 } else { entry.meta.size },
                    modified_time: entry.meta.modified,
                    is_directory,
                });
                Ok(true)
            })
            .map_err(fs)?;
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Listing {
            entries,
            truncated_by_depth: truncated,
        })
    }

    /// A file to stream, or a zip of a directory produced while it streams.
    pub fn download(&self, root: &Path, path: &str) -> Result<Download, AgentError> {
        let parts = relative_parts(path)?;
        let tree = Self::tree(root)?.ok_or(AgentError::FileNotFound)?;
        let meta = tree.stat(&parts).map_err(fs)?;
        let name = parts
            .last()
            .cloned()
            .unwrap_or_else(|| "workspace".to_owned());
        match meta.kind {
            Kind::File => {
                let file = tree.open_file(&parts).map_err(fs)?;
                let size = file.metadata().map_err(io)?.len();
                Ok(Download::File { file, name, size })
            }
            Kind::Dir => {
                // Fail before the first byte when the directory cannot be opened.
                tree.dir(&parts).map_err(fs)?;
                let (tx, chunks) = tokio::sync::mpsc::channel(4);
                let out = ChannelWriter {
                    buffer: Vec::with_capacity(PIECE),
                    tx: tx.clone(),
                };
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = write_zip(&tree, &parts, out) {
                        tracing::warn!(error = %e, "a workspace zip stopped");
                        let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                    }
                });
                Ok(Download::Zip {
                    chunks,
                    name: format!("{name}.zip"),
                })
            }
            Kind::Symlink => Err(invalid("the path goes through a symbolic link")),
            Kind::Other => Err(AgentError::FileNotFound),
        }
    }

    /// A zip of `extras` (name, bytes) and of the whole workspace at `root` under
    /// `folder/` (left out when the workspace does not exist), produced while it is sent.
    pub fn export(
        &self,
        root: &Path,
        extras: Vec<(String, Vec<u8>)>,
        folder: &str,
    ) -> Result<tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>, AgentError> {
        let tree = Self::tree(root)?;
        let prefix = format!("{}/", folder.trim_matches('/'));
        let (tx, chunks) = tokio::sync::mpsc::channel(4);
        let out = ChannelWriter {
            buffer: Vec::with_capacity(PIECE),
            tx: tx.clone(),
        };
        tokio::task::spawn_blocking(move || {
            if let Err(e) = write_export(tree.as_ref(), &[], &extras, &prefix, out) {
                tracing::warn!(error = %e, "an export zip stopped");
                let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
            }
        });
        Ok(chunks)
    }

    /// Deletes a file or a directory (recursively); the root itself cannot be deleted here.
    pub fn delete(&self, root: &Path, path: &str) -> Result<(), AgentError> {
        let parts = relative_parts(path)?;
        if parts.is_empty() {
            return Err(invalid("name a file or directory inside the workspace"));
        }
        let tree = Self::tree(root)?.ok_or(AgentError::FileNotFound)?;
        tree.remove(&parts).map_err(fs)
    }

    /// Checks `dir`/`file_name` (both relative) before an upload is received.
    pub fn check_target(dir: &str, file_name: &str) -> Result<(Vec<String>, String), AgentError> {
        let name_parts = relative_parts(file_name)?;
        let [name] = name_parts.as_slice() else {
            return Err(invalid("the file name must be a single name"));
        };
        Ok((relative_parts(dir)?, name.clone()))
    }

    /// Moves the finished upload at `source` to `dir`/`file_name`, creating directories
    /// (0700); an existing file of that name is a conflict, never replaced.
    pub fn place(
        &self,
        root: &Path,
        dir: &str,
        file_name: &str,
        source: &Path,
    ) -> Result<String, AgentError> {
        let (mut parts, name) = Self::check_target(dir, file_name)?;
        let tree = Confined::create(root).map_err(fs)?;
        let dir_fd = tree.create_dirs(&parts).map_err(|e| match e {
            ConfinedError::NotADirectory => invalid("a file of that name is in the way"),
            other => fs(other),
        })?;
        tree.place(&dir_fd, &name, source).map_err(fs)?;
        parts.push(name);
        Ok(parts.join("/"))
    }

    /// Writes `bytes` to `dir`/`file_name` through a temporary file (tests and small files).
    pub fn write(
        &self,
        root: &Path,
        dir: &str,
        file_name: &str,
        bytes: &[u8],
    ) -> Result<String, AgentError> {
        Self::check_target(dir, file_name)?;
        std::fs::create_dir_all(&self.root).map_err(io)?;
        let mut temp = tempfile::NamedTempFile::new_in(&self.root).map_err(io)?;
        temp.write_all(bytes).map_err(io)?;
        self.place(root, dir, file_name, temp.path())
    }

    /// Removes a whole workspace; `true` when there was one.
    pub fn remove_all(&self, root: &Path) -> Result<bool, AgentError> {
        match std::fs::remove_dir_all(root) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io(e)),
        }
    }

    /// Removes every user's workspace of an agent (when the agent is deleted).
    pub fn remove_agent(&self, agent_id: &str) -> Result<(), AgentError> {
        for (_, root) in self.of_agent(agent_id)? {
            self.remove_all(&root)?;
        }
        Ok(())
    }

    /// Every existing workspace of an agent, as (user id, root), by user id.
    pub fn of_agent(&self, agent_id: &str) -> Result<Vec<(String, PathBuf)>, AgentError> {
        if !platform::ids::is_safe_id(agent_id) {
            return Err(invalid("invalid agent id"));
        }
        let users = match std::fs::read_dir(&self.root) {
            Ok(users) => users,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(e)),
        };
        let mut found: Vec<(String, PathBuf)> = users
            .flatten()
            .filter(|user| user.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|user| {
                let root = user.path().join(agent_id);
                let is_dir = std::fs::symlink_metadata(&root).is_ok_and(|m| m.is_dir());
                is_dir.then(|| (user.file_name().to_string_lossy().into_owned(), root))
            })
            .collect();
        found.sort();
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Workspaces, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspaces::new(dir.path().join("workspaces"));
        let root = ws.root_of("user1", "agent_1").unwrap();
        std::fs::create_dir_all(root.join("docs/deep")).unwrap();
        std::fs::write(root.join("docs/a.txt"), "alpha").unwrap();
        std::fs::write(root.join("docs/deep/b.txt"), "beta").unwrap();
        std::fs::write(root.join(".hidden"), "x").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "outside").unwrap();
        (dir, ws, root)
    }

    fn is_path_error(r: Result<impl std::fmt::Debug, AgentError>) -> bool {
        matches!(r, Err(AgentError::PathInvalid(_)))
    }

    #[test]
    fn each_escape_is_refused() {
        let (dir, ws, root) = setup();
        let long = "x".repeat(300);
        for bad in [
            "../secret.txt",
            "docs/../../secret.txt",
            "/etc/passwd",
            "C:\\x",
            "a\0b",
            long.as_str(),
        ] {
            assert!(is_path_error(ws.download(&root, bad)), "{bad:?}");
            assert!(is_path_error(ws.delete(&root, bad)), "{bad:?}");
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("link")).unwrap();
            std::os::unix::fs::symlink(dir.path(), root.join("dirlink")).unwrap();
            assert!(is_path_error(ws.download(&root, "link")));
            assert!(is_path_error(ws.download(&root, "dirlink/secret.txt")));
            assert!(is_path_error(ws.write(&root, "dirlink", "new.txt", b"x")));
            assert!(!dir.path().join("new.txt").exists());
            let listing = ws.list(&root, "", 10).unwrap();
            assert!(
                listing
                    .entries
                    .iter()
                    .all(|e| e.name != "link" && e.name != "dirlink")
            );
        }
        assert!(is_path_error(ws.delete(&root, "")));
        assert!(is_path_error(ws.delete(&root, ".")));
        assert!(ws.root_of("../x", "a").is_err());
        assert!(std::fs::read_to_string(dir.path().join("secret.txt")).unwrap() == "outside");
    }

    #[test]
    fn listing_respects_depth_and_skips_dot_files() {
        let (_dir, ws, root) = setup();
        let all = ws.list(&root, "", 5).unwrap();
        let paths: Vec<_> = all.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            vec!["docs", "docs/a.txt", "docs/deep", "docs/deep/b.txt"]
        );
        assert!(!all.truncated_by_depth);
        let shallow = ws.list(&root, "", 1).unwrap();
        assert_eq!(shallow.entries.len(), 1);
        assert!(shallow.truncated_by_depth);
        let sub = ws.list(&root, "docs/deep", 3).unwrap();
        assert_eq!(sub.entries[0].size, 4);
    }

    #[tokio::test]
    async fn writes_downloads_and_deletes_stay_inside() {
        let (_dir, ws, root) = setup();
        assert_eq!(
            ws.write(&root, "out/reports", "r.md", b"# r").unwrap(),
            "out/reports/r.md"
        );
        match ws.download(&root, "out/reports/r.md").unwrap() {
            Download::File { size, name, .. } => assert_eq!((size, name.as_str()), (3, "r.md")),
            other => panic!("{other:?}"),
        }
        match ws.download(&root, "docs").unwrap() {
            Download::Zip { mut chunks, name } => {
                assert_eq!(name, "docs.zip");
                let mut bytes = Vec::new();
                while let Some(piece) = chunks.recv().await {
                    bytes.extend(piece.unwrap());
                }
                let archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
                let names: Vec<String> = archive
                    .file_names()
                    .map(|n| n.unwrap().into_owned())
                    .collect();
                assert!(
                    names.contains(&"a.txt".to_owned()) && names.contains(&"deep/b.txt".to_owned()),
                    "{names:?}"
                );
            }
            other => panic!("{other:?}"),
        }
        ws.delete(&root, "docs").unwrap();
        assert!(!root.join("docs").exists());
        assert!(matches!(
            ws.delete(&root, "docs"),
            Err(AgentError::FileNotFound)
        ));
        assert!(is_path_error(ws.write(&root, "", "a/b", b"x")));
    }

    #[test]
    fn a_dangling_symlink_cannot_carry_an_upload_outside() {
        let (dir, ws, root) = setup();
        std::os::unix::fs::symlink(dir.path().join("planted.txt"), root.join("report.txt"))
            .unwrap();
        std::os::unix::fs::symlink(dir.path().join("newdir"), root.join("out")).unwrap();
        assert!(ws.write(&root, "", "report.txt", b"x").is_err());
        assert!(is_path_error(ws.write(&root, "out", "a.txt", b"x")));
        assert!(!dir.path().join("planted.txt").exists());
        assert!(!dir.path().join("newdir").exists());
    }

    #[test]
    fn symlink_loops_do_not_blow_up_listing() {
        let (_dir, ws, root) = setup();
        // A link to the workspace itself, and one to itself.
        std::os::unix::fs::symlink(&root, root.join("docs/again")).unwrap();
        std::os::unix::fs::symlink(root.join("self"), root.join("self")).unwrap();
        let listing = ws.list(&root, "", 20).unwrap();
        let paths: Vec<_> = listing.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            vec!["docs", "docs/a.txt", "docs/deep", "docs/deep/b.txt"]
        );
        assert!(is_path_error(ws.list(&root, "docs/again", 5)));
    }

    #[test]
    fn existing_files_conflict_and_files_are_not_directories() {
        let (_dir, ws, root) = setup();
        assert!(matches!(
            ws.write(&root, "docs", "a.txt", b"new"),
            Err(AgentError::FileExists)
        ));
        assert_eq!(
            std::fs::read_to_string(root.join("docs/a.txt")).unwrap(),
            "alpha"
        );
        assert!(matches!(
            ws.download(&root, "docs/a.txt/x"),
            Err(AgentError::FileNotFound)
        ));
        assert!(matches!(
            ws.delete(&root, "docs/a.txt/x"),
            Err(AgentError::FileNotFound)
        ));
        assert!(is_path_error(ws.write(&root, "docs/a.txt", "x", b"x")));
    }

    #[test]
    fn new_files_and_directories_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspaces::new(dir.path().join("workspaces"));
        let root = ws.root_of("user1", "agent_1").unwrap();
        ws.write(&root, "a/b", "f.txt", b"x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("a/b")), 0o700);
        assert_eq!(mode(&root.join("a/b/f.txt")), 0o600);
        ws.remove_agent("agent_1").unwrap();
        assert!(!root.exists());
        assert!(dir.path().join("workspaces/user1").exists());
    }
}
