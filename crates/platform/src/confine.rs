//! Paths confined to a root directory (agent workspaces, skill folders): every path from a
//! request is checked lexically (NUL, absolute, `..`, length) and then by resolving the
//! deepest existing ancestor, so symlinks cannot lead out. Directories are created one level
//! at a time with the same check.
//!
//! Moved here from the agents crate so the tools (crate `tooling`) confine exactly as the
//! workspace routes do.

use std::path::{Component, Path, PathBuf};

const MAX_PATH_BYTES: usize = 4096;
const MAX_NAME_BYTES: usize = 255;

/// Why a path was refused or could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    /// Malformed, or leaves the root.
    #[error("invalid path: {0}")]
    Invalid(String),
    #[error("no such file or directory")]
    NotFound,
    #[error(transparent)]
    Io(std::io::Error),
}

fn invalid(reason: &str) -> ConfineError {
    ConfineError::Invalid(reason.to_owned())
}

/// Maps an I/O error, keeping "not found" apart.
pub fn io(e: std::io::Error) -> ConfineError {
    match e.kind() {
        std::io::ErrorKind::NotFound => ConfineError::NotFound,
        _ => ConfineError::Io(e),
    }
}

/// Checks a relative path lexically and returns its normal components.
pub fn relative_parts(raw: &str) -> Result<Vec<String>, ConfineError> {
    if raw.contains('\0') {
        return Err(invalid("the path contains a NUL byte"));
    }
    if raw.len() > MAX_PATH_BYTES {
        return Err(invalid("the path is too long"));
    }
    let normalised = raw.replace('\\', "/");
    if normalised.starts_with('/') || (normalised.len() >= 2 && normalised.as_bytes()[1] == b':') {
        return Err(invalid("absolute paths are not allowed"));
    }
    let mut parts = Vec::new();
    for component in Path::new(&normalised).components() {
        match component {
            Component::Normal(name) => {
                let name = name
                    .to_str()
                    .ok_or_else(|| invalid("the path is not UTF-8"))?;
                if name.len() > MAX_NAME_BYTES {
                    return Err(invalid("a name in the path is too long"));
                }
                parts.push(name.to_owned());
            }
            Component::CurDir => {}
            Component::ParentDir => return Err(invalid("`..` is not allowed")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(invalid("absolute paths are not allowed"));
            }
        }
    }
    Ok(parts)
}

/// Resolves `raw` inside `root`; the deepest existing ancestor must resolve (symlinks
/// followed) inside the root too.
pub fn resolve(root: &Path, raw: &str) -> Result<PathBuf, ConfineError> {
    let parts = relative_parts(raw)?;
    let mut target = root.to_path_buf();
    for p in &parts {
        target.push(p);
    }
    let canonical_root = root.canonicalize().map_err(io)?;
    let mut probe = target.clone();
    loop {
        match probe.canonicalize() {
            Ok(real) => {
                if !real.starts_with(&canonical_root) {
                    return Err(invalid("the path leaves the workspace"));
                }
                break;
            }
            Err(_) if probe != *root => {
                if !probe.pop() {
                    break;
                }
            }
            Err(e) => return Err(io(e)),
        }
    }
    Ok(target)
}

/// Creates the directories `parts` under `root` one level at a time, checking each stays
/// inside.
pub fn create_dirs(root: &Path, parts: &[String]) -> Result<(), ConfineError> {
    let mut current = root.to_path_buf();
    for part in parts {
        current.push(part);
        resolve(
            root,
            &current
                .strip_prefix(root)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
        )?;
        match std::fs::create_dir(&current) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && current.is_dir() => {}
            Err(e) => return Err(io(e)),
        }
    }
    Ok(())
}
