//! Directory trees that no path can leave: every operation walks from an open descriptor of
//! the root, one component at a time, with `O_NOFOLLOW`, so a symlink anywhere in a path
//! (dangling, looping, or pointing out) is refused instead of followed, and swapping a
//! directory for a symlink between a check and a use cannot redirect the operation.
//! Directories are created 0700 and files 0600. Paths are given as checked names
//! (`&[String]`, no `/`, `.` or `..`): [`relative_parts`] turns a path from a request into
//! them (the one lexical check, shared by the workspace routes and the tools).

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Component, Path};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags};
use rustix::io::Errno;

/// Why a confined operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ConfinedError {
    #[error("no such file or directory")]
    NotFound,
    /// A component of the path is a file.
    #[error("a component of the path is not a directory")]
    NotADirectory,
    #[error("the path is a directory")]
    IsADirectory,
    /// A component of the path is a symbolic link (never followed).
    #[error("the path goes through a symbolic link")]
    Symlink,
    #[error("the target already exists")]
    Exists,
    #[error("the name is not allowed")]
    BadName,
    #[error(transparent)]
    Io(#[from] io::Error),
}

const MAX_PATH_BYTES: usize = 4096;
const MAX_NAME_BYTES: usize = 255;

/// A path from a request that is malformed or would leave the tree; the reason is one
/// sentence for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid path: {0}")]
pub struct InvalidPath(pub String);

fn invalid(reason: &str) -> InvalidPath {
    InvalidPath(reason.to_owned())
}

/// Checks a relative path lexically (NUL bytes, length, absolute paths, `..`, non-UTF-8,
/// over-long names are refused; a backslash counts as `/`, `.` and empty components are dropped) and
/// returns its names, ready for the [`Confined`] operations. The empty path is the root.
pub fn relative_parts(raw: &str) -> Result<Vec<String>, InvalidPath> {
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

fn from_errno(e: Errno) -> ConfinedError {
    match e {
        Errno::NOENT => ConfinedError::NotFound,
        Errno::NOTDIR => ConfinedError::NotADirectory,
        Errno::ISDIR => ConfinedError::IsADirectory,
        Errno::LOOP | Errno::MLINK => ConfinedError::Symlink,
        Errno::EXIST | Errno::NOTEMPTY => ConfinedError::Exists,
        other => ConfinedError::Io(other.into()),
    }
}

/// What an entry is, without following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

/// An entry's metadata (never a symlink's target's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    pub size: u64,
    /// Seconds since the epoch.
    pub modified: i64,
}

fn meta_of(stat: &rustix::fs::Stat) -> Meta {
    let kind = match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile => Kind::File,
        FileType::Directory => Kind::Dir,
        FileType::Symlink => Kind::Symlink,
        _ => Kind::Other,
    };
    Meta {
        kind,
        size: u64::try_from(stat.st_size).unwrap_or(0),
        modified: stat.st_mtime,
    }
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

fn check_name(name: &str) -> Result<(), ConfinedError> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(ConfinedError::BadName);
    }
    Ok(())
}

/// Called for each entry of a walk with the directory holding it; `Ok(false)` stops the walk.
pub type Visitor<'a> = dyn FnMut(&Entry, &OwnedFd) -> Result<bool, ConfinedError> + 'a;

/// An open directory tree.
#[derive(Debug)]
pub struct Confined {
    root: OwnedFd,
}

/// One entry of a listing: its `/`-joined path below the listed directory, name and metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub name: String,
    pub depth: u32,
    pub meta: Meta,
}

impl Confined {
    /// Opens an existing root (the root path itself is the server's, not a user's).
    pub fn open(root: &Path) -> Result<Self, ConfinedError> {
        let fd = rustix::fs::open(root, DIR_FLAGS, Mode::empty()).map_err(from_errno)?;
        Ok(Self { root: fd })
    }

    /// Creates the root (0700, with missing parents) if needed, then opens it.
    pub fn create(root: &Path) -> Result<Self, ConfinedError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(root)?;
        Self::open(root)
    }

    fn child_dir(parent: &OwnedFd, name: &str) -> Result<OwnedFd, ConfinedError> {
        check_name(name)?;
        match rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => Ok(fd),
            // O_NOFOLLOW|O_DIRECTORY on a symlink answers ENOTDIR or ELOOP: tell them apart.
            Err(Errno::NOTDIR | Errno::LOOP) => {
                Err(match Self::stat_in(parent, name).map(|m| m.kind) {
                    Ok(Kind::Symlink) => ConfinedError::Symlink,
                    _ => ConfinedError::NotADirectory,
                })
            }
            Err(e) => Err(from_errno(e)),
        }
    }

    fn stat_in(parent: &OwnedFd, name: &str) -> Result<Meta, ConfinedError> {
        check_name(name)?;
        rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
            .map(|s| meta_of(&s))
            .map_err(from_errno)
    }

    /// The directory at `parts` (the root when empty).
    pub fn dir(&self, parts: &[String]) -> Result<OwnedFd, ConfinedError> {
        let mut fd = self.root.try_clone()?;
        for part in parts {
            fd = Self::child_dir(&fd, part)?;
        }
        Ok(fd)
    }

    /// The directory at `parts`, creating missing levels (0700) one at a time.
    pub fn create_dirs(&self, parts: &[String]) -> Result<OwnedFd, ConfinedError> {
        let mut fd = self.root.try_clone()?;
        for part in parts {
            check_name(part)?;
            match rustix::fs::mkdirat(&fd, part.as_str(), Mode::from_raw_mode(DIR_MODE)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(from_errno(e)),
            }
            fd = Self::child_dir(&fd, part)?;
        }
        Ok(fd)
    }

    /// Metadata of the entry at `parts` (the root when empty), not following a symlink.
    pub fn stat(&self, parts: &[String]) -> Result<Meta, ConfinedError> {
        match parts.split_last() {
            None => Ok(meta_of(&rustix::fs::fstat(&self.root).map_err(from_errno)?)),
            Some((name, dirs)) => Self::stat_in(&self.dir(dirs)?, name),
        }
    }

    /// Opens the regular file at `parts` for reading.
    pub fn open_file(&self, parts: &[String]) -> Result<File, ConfinedError> {
        let (name, dirs) = parts.split_last().ok_or(ConfinedError::IsADirectory)?;
        Self::open_file_in(&self.dir(dirs)?, name)
    }

    fn open_file_in(dir: &OwnedFd, name: &str) -> Result<File, ConfinedError> {
        check_name(name)?;
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let fd = rustix::fs::openat(dir, name, flags, Mode::empty()).map_err(from_errno)?;
        let meta = meta_of(&rustix::fs::fstat(&fd).map_err(from_errno)?);
        match meta.kind {
            Kind::File => Ok(File::from(fd)),
            Kind::Dir => Err(ConfinedError::IsADirectory),
            _ => Err(ConfinedError::NotFound),
        }
    }

    /// Opens the regular file at `parts` for writing (created 0600 when missing; truncated
    /// unless `append`), see [`Confined::write_in`].
    pub fn open_write(&self, parts: &[String], append: bool) -> Result<File, ConfinedError> {
        let (name, dirs) = parts.split_last().ok_or(ConfinedError::IsADirectory)?;
        Self::write_in(&self.dir(dirs)?, name, append)
    }

    /// Opens the regular file `name` inside `dir` for writing, creating it (0600) when
    /// missing; truncated unless `append`, else every write goes to its end. A symlink of that
    /// name (even a dangling one) is refused, never written through; a directory or anything
    /// else that is not a regular file is refused before any data is written.
    pub fn write_in(dir: &OwnedFd, name: &str, append: bool) -> Result<File, ConfinedError> {
        check_name(name)?;
        // NONBLOCK: a FIFO without a reader fails (ENXIO) instead of blocking the open.
        let mut flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
        if append {
            flags |= OFlags::APPEND;
        }
        let fd = rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(FILE_MODE))
            .map_err(from_errno)?;
        let meta = meta_of(&rustix::fs::fstat(&fd).map_err(from_errno)?);
        match meta.kind {
            Kind::File => {}
            Kind::Dir => return Err(ConfinedError::IsADirectory),
            _ => return Err(ConfinedError::BadName),
        }
        if !append {
            // Truncate only once it is known to be a regular file.
            rustix::fs::ftruncate(&fd, 0).map_err(from_errno)?;
        }
        Ok(File::from(fd))
    }

    /// Moves the file at `source` (outside the tree, e.g. a finished upload) to `name` in the
    /// directory `dir`; an existing entry of that name is never replaced.
    pub fn place(&self, dir: &OwnedFd, name: &str, source: &Path) -> Result<(), ConfinedError> {
        check_name(name)?;
        match rustix::fs::renameat_with(rustix::fs::CWD, source, dir, name, RenameFlags::NOREPLACE)
        {
            Ok(()) => Ok(()),
            // Another file system, or a kernel without renameat2: copy into a new file.
            Err(Errno::XDEV | Errno::NOSYS | Errno::INVAL) => {
                let flags = OFlags::WRONLY
                    | OFlags::CREATE
                    | OFlags::EXCL
                    | OFlags::NOFOLLOW
                    | OFlags::CLOEXEC;
                let fd = rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(FILE_MODE))
                    .map_err(from_errno)?;
                let mut target = File::from(fd);
                let copied = File::open(source)
                    .and_then(|mut from| io::copy(&mut from, &mut target))
                    .and_then(|_| target.sync_all());
                if let Err(e) = copied {
                    let _ = rustix::fs::unlinkat(dir, name, AtFlags::empty());
                    return Err(e.into());
                }
                let _ = std::fs::remove_file(source);
                Ok(())
            }
            Err(e) => Err(from_errno(e)),
        }
    }

    /// Removes the entry at `parts`: a file or symlink itself, a directory with everything in
    /// it (symlinks inside are removed, never followed).
    pub fn remove(&self, parts: &[String]) -> Result<(), ConfinedError> {
        let (name, dirs) = parts.split_last().ok_or(ConfinedError::BadName)?;
        remove_tree(&self.dir(dirs)?, name)
    }

    /// Entries below the directory at `parts`, depth first in name order, down to
    /// `max_depth` levels; symlinks are reported as such and never entered. `visit` may stop
    /// the walk by returning `false`. Returns whether depth cut the walk short.
    pub fn walk(
        &self,
        parts: &[String],
        max_depth: u32,
        visit: &mut Visitor<'_>,
    ) -> Result<bool, ConfinedError> {
        let start = self.dir(parts)?;
        let mut truncated = false;
        walk_dir(&start, "", 1, max_depth, &mut truncated, visit)?;
        Ok(truncated)
    }

    /// Opens a regular file `name` inside `dir` (as passed to a `walk` visitor).
    pub fn open_in(dir: &OwnedFd, name: &str) -> Result<File, ConfinedError> {
        Self::open_file_in(dir, name)
    }
}

fn names_in(dir: &OwnedFd) -> Result<Vec<String>, ConfinedError> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir).map_err(from_errno)? {
        let entry = entry.map_err(from_errno)?;
        let Ok(name) = entry.file_name().to_str() else {
            continue;
        };
        if name != "." && name != ".." {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Returns `false` when the visitor stopped the walk.
fn walk_dir(
    dir: &OwnedFd,
    prefix: &str,
    depth: u32,
    max_depth: u32,
    truncated: &mut bool,
    visit: &mut Visitor<'_>,
) -> Result<bool, ConfinedError> {
    for name in names_in(dir)? {
        let meta = match Confined::stat_in(dir, &name) {
            Ok(m) => m,
            Err(ConfinedError::NotFound) => continue,
            Err(e) => return Err(e),
        };
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let entry = Entry {
            path,
            name,
            depth,
            meta,
        };
        if !visit(&entry, dir)? {
            return Ok(false);
        }
        if meta.kind == Kind::Dir {
            if depth >= max_depth {
                *truncated = true;
                continue;
            }
            let child = match Confined::child_dir(dir, &entry.name) {
                Ok(c) => c,
                Err(ConfinedError::NotFound | ConfinedError::Symlink) => continue,
                Err(e) => return Err(e),
            };
            if !walk_dir(&child, &entry.path, depth + 1, max_depth, truncated, visit)? {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

fn remove_tree(parent: &OwnedFd, name: &str) -> Result<(), ConfinedError> {
    let meta = Confined::stat_in(parent, name)?;
    if meta.kind == Kind::Dir {
        let dir = Confined::child_dir(parent, name)?;
        for child in names_in(&dir)? {
            match remove_tree(&dir, &child) {
                Ok(()) | Err(ConfinedError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR).map_err(from_errno)
    } else {
        rustix::fs::unlinkat(parent, name, AtFlags::empty()).map_err(from_errno)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn p(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn symlinks_are_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let tree = Confined::create(&root).unwrap();
        std::fs::write(dir.path().join("secret"), "outside").unwrap();
        symlink(dir.path().join("secret"), root.join("link")).unwrap();
        symlink(dir.path(), root.join("dirlink")).unwrap();
        symlink(dir.path().join("missing"), root.join("dangling")).unwrap();
        symlink(root.join("loop"), root.join("loop")).unwrap();
        assert!(matches!(
            tree.open_file(&p(&["link"])),
            Err(ConfinedError::Symlink)
        ));
        assert!(matches!(
            tree.dir(&p(&["dirlink"])),
            Err(ConfinedError::Symlink)
        ));
        assert!(matches!(
            tree.create_dirs(&p(&["dangling", "x"])),
            Err(ConfinedError::Symlink)
        ));
        assert!(!dir.path().join("missing").exists());
        assert!(matches!(
            tree.dir(&p(&["loop", "loop"])),
            Err(ConfinedError::Symlink)
        ));
        // Placing a file where a dangling symlink is refuses instead of writing through it.
        let upload = dir.path().join("upload");
        std::fs::write(&upload, "data").unwrap();
        let rootfd = tree.dir(&[]).unwrap();
        assert!(matches!(
            tree.place(&rootfd, "dangling", &upload),
            Err(ConfinedError::Exists)
        ));
        assert!(!dir.path().join("missing").exists());
        let mut seen = Vec::new();
        tree.walk(&[], 50, &mut |e, _| {
            seen.push((e.path.clone(), e.meta.kind));
            Ok(true)
        })
        .unwrap();
        assert_eq!(seen.len(), 4);
        assert!(seen.iter().all(|(_, k)| *k == Kind::Symlink));
        // Removing a symlink removes the link only.
        tree.remove(&p(&["dirlink"])).unwrap();
        assert!(dir.path().join("secret").exists());
    }

    #[test]
    fn writing_never_goes_through_a_symlink_and_paths_are_checked_lexically() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let tree = Confined::create(&root).unwrap();
        symlink(dir.path().join("missing"), root.join("dangling")).unwrap();
        for append in [false, true] {
            assert!(matches!(
                tree.open_write(&p(&["dangling"]), append),
                Err(ConfinedError::Symlink)
            ));
        }
        assert!(!dir.path().join("missing").exists());
        use std::io::Write;
        tree.open_write(&p(&["f"]), false)
            .unwrap()
            .write_all(b"one")
            .unwrap();
        tree.open_write(&p(&["f"]), true)
            .unwrap()
            .write_all(b"two")
            .unwrap();
        assert_eq!(std::fs::read_to_string(root.join("f")).unwrap(), "onetwo");
        tree.open_write(&p(&["f"]), false)
            .unwrap()
            .write_all(b"3")
            .unwrap();
        assert_eq!(std::fs::read_to_string(root.join("f")).unwrap(), "3");
        tree.create_dirs(&p(&["d"])).unwrap();
        assert!(matches!(
            tree.open_write(&p(&["d"]), false),
            Err(ConfinedError::IsADirectory)
        ));
        assert_eq!(relative_parts("./a\\b/").unwrap(), p(&["a", "b"]));
        assert!(relative_parts("").unwrap().is_empty());
        for bad in ["../x", "a/../../x", "/etc", "C:/x", "a\0b"] {
            assert!(relative_parts(bad).is_err(), "{bad}");
        }
        assert!(relative_parts(&"n".repeat(256)).is_err());
    }

    #[test]
    fn files_and_directories_are_private_and_placing_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let tree = Confined::create(&root).unwrap();
        let sub = tree.create_dirs(&p(&["a", "b"])).unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root.join("a/b")), 0o700);
        let upload = dir.path().join("upload");
        std::fs::write(&upload, "data").unwrap();
        tree.place(&sub, "f.txt", &upload).unwrap();
        assert!(!upload.exists());
        std::fs::write(&upload, "again").unwrap();
        assert!(matches!(
            tree.place(&sub, "f.txt", &upload),
            Err(ConfinedError::Exists)
        ));
        assert_eq!(
            std::fs::read_to_string(root.join("a/b/f.txt")).unwrap(),
            "data"
        );
        assert!(matches!(
            tree.open_file(&p(&["a", "b", "f.txt", "x"])),
            Err(ConfinedError::NotADirectory)
        ));
        assert!(matches!(
            tree.open_file(&p(&["a"])),
            Err(ConfinedError::IsADirectory)
        ));
        tree.remove(&p(&["a"])).unwrap();
        assert!(!root.join("a").exists());
    }
}
