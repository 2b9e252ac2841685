//! Per-(user, agent) file workspaces under `<data dir>/workspaces/<user_id>/<agent_id>/`,
//! behind [`Workspaces`] so object storage can implement it later.
//!
//! Every path from a request is confined to its workspace: NUL bytes, absolute paths, `..`,
//! over-long names and symlinks that resolve outside the root are refused before any file is
//! touched. Ids are validated before a directory name is built from them.

use std::io::Write;
use std::path::{Path, PathBuf};

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
    File {
        path: PathBuf,
        name: String,
        size: u64,
    },
    /// A zip of a directory, written to a temporary file that is removed when dropped.
    Zip {
        file: tempfile::NamedTempFile,
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

impl From<platform::confine::ConfineError> for AgentError {
    fn from(e: platform::confine::ConfineError) -> Self {
        use platform::confine::ConfineError as E;
        match e {
            E::Invalid(reason) => AgentError::PathInvalid(reason),
            E::NotFound => AgentError::FileNotFound,
            E::Io(e) => AgentError::Internal(e.into()),
        }
    }
}

/// Checks a relative path lexically and returns its normal components
/// (`platform::confine`).
pub fn relative_parts(raw: &str) -> Result<Vec<String>, AgentError> {
    Ok(platform::confine::relative_parts(raw)?)
}

fn io(e: std::io::Error) -> AgentError {
    platform::confine::io(e).into()
}

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

    /// Resolves `raw` inside `root` (`platform::confine`).
    fn resolve(root: &Path, raw: &str) -> Result<PathBuf, AgentError> {
        Ok(platform::confine::resolve(root, raw)?)
    }

    /// Lists `path` (relative; empty = the root) recursively down to `max_depth` levels.
    pub fn list(&self, root: &Path, path: &str, max_depth: u32) -> Result<Listing, AgentError> {
        if !root.exists() {
            return Ok(Listing {
                entries: Vec::new(),
                truncated_by_depth: false,
            });
        }
        let start = Self::resolve(root, path)?;
        let canonical_root = root.canonicalize().map_err(io)?;
        if !start.is_dir() {
            return Err(AgentError::FileNotFound);
        }
        let mut entries = Vec::new();
        let mut truncated = false;
        let mut stack = vec![(start, 1u32)];
        while let Some((dir, depth)) = stack.pop() {
            let mut children: Vec<_> = std::fs::read_dir(&dir).map_err(io)?.flatten().collect();
            children.sort_by_key(|c| c.file_name());
            for child in children {
                let name = child.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                // Symlinks are listed only when they stay inside the workspace.
                let Ok(real) = child.path().canonicalize() else {
                    continue;
                };
                if !real.starts_with(&canonical_root) {
                    continue;
                }
                let meta = std::fs::metadata(&real).map_err(io)?;
                let rel = real
                    .strip_prefix(&canonical_root)
                    .map(|p| p.to_string_lossy().replace('\\', "/"))
                    .unwrap_or_default();
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
                entries.push(WorkspaceEntry {
                    name,
                    path: rel,
                    size: if meta.is_dir() { 0 } else { meta.len() },
                    modified_time: modified,
                    is_directory: meta.is_dir(),
                });
                if meta.is_dir() {
                    if depth < max_depth {
                        stack.push((real, depth + 1));
                    } else {
                        truncated = true;
                    }
                }
            }
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Listing {
            entries,
            truncated_by_depth: truncated,
        })
    }

    /// A file to stream, or a zip of a directory.
    pub fn download(&self, root: &Path, path: &str) -> Result<Download, AgentError> {
        if !root.exists() {
            return Err(AgentError::FileNotFound);
        }
        let target = Self::resolve(root, path)?;
        let meta = std::fs::metadata(&target).map_err(io)?;
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "workspace".to_owned());
        if meta.is_file() {
            return Ok(Download::File {
                path: target,
                name,
                size: meta.len(),
            });
        }
        let canonical_root = root.canonicalize().map_err(io)?;
        let mut file = tempfile::NamedTempFile::new().map_err(io)?;
        {
            let mut zip = zip::ZipWriter::new(file.as_file_mut());
            let options = zip::write::SimpleFileOptions::default();
            let base = target.canonicalize().map_err(io)?;
            let mut stack = vec![base.clone()];
            while let Some(dir) = stack.pop() {
                for child in std::fs::read_dir(&dir).map_err(io)?.flatten() {
                    let Ok(real) = child.path().canonicalize() else {
                        continue;
                    };
                    if !real.starts_with(&canonical_root) {
                        continue;
                    }
                    let rel = real
                        .strip_prefix(&base)
                        .map(|p| p.to_string_lossy().replace('\\', "/"))
                        .unwrap_or_default();
                    if real.is_dir() {
                        zip.add_directory(format!("{rel}/"), options)
                            .map_err(|e| AgentError::Internal(e.into()))?;
                        stack.push(real);
                    } else {
                        zip.start_file(rel, options)
                            .map_err(|e| AgentError::Internal(e.into()))?;
                        let bytes = std::fs::read(&real).map_err(io)?;
                        zip.write_all(&bytes).map_err(io)?;
                    }
                }
            }
            zip.finish().map_err(|e| AgentError::Internal(e.into()))?;
        }
        Ok(Download::Zip {
            file,
            name: format!("{name}.zip"),
        })
    }

    /// Deletes a file or a directory (recursively); the root itself cannot be deleted here.
    pub fn delete(&self, root: &Path, path: &str) -> Result<(), AgentError> {
        if relative_parts(path)?.is_empty() {
            return Err(invalid("name a file or directory inside the workspace"));
        }
        if !root.exists() {
            return Err(AgentError::FileNotFound);
        }
        let target = Self::resolve(root, path)?;
        let meta = std::fs::symlink_metadata(&target).map_err(io)?;
        if meta.is_dir() {
            std::fs::remove_dir_all(&target).map_err(io)
        } else {
            std::fs::remove_file(&target).map_err(io)
        }
    }

    /// Writes `bytes` to `dir`/`file_name` (both relative), creating directories.
    pub fn write(
        &self,
        root: &Path,
        dir: &str,
        file_name: &str,
        bytes: &[u8],
    ) -> Result<String, AgentError> {
        let name_parts = relative_parts(file_name)?;
        let [name] = name_parts.as_slice() else {
            return Err(invalid("the file name must be a single name"));
        };
        std::fs::create_dir_all(root).map_err(io)?;
        let mut parts = relative_parts(dir)?;
        platform::confine::create_dirs(root, &parts)?;
        parts.push(name.clone());
        let rel = parts.join("/");
        let target = Self::resolve(root, &rel)?;
        if target.is_dir() {
            return Err(invalid("a directory of that name exists"));
        }
        std::fs::write(&target, bytes).map_err(io)?;
        Ok(rel)
    }

    /// Removes a whole workspace; `true` when there was one.
    pub fn remove_all(&self, root: &Path) -> Result<bool, AgentError> {
        match std::fs::remove_dir_all(root) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io(e)),
        }
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

    #[test]
    fn writes_downloads_and_deletes_stay_inside() {
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
            Download::Zip { file, name } => {
                assert_eq!(name, "docs.zip");
                let archive =
                    zip::ZipArchive::new(std::fs::File::open(file.path()).unwrap()).unwrap();
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
}
