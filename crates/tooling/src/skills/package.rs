//! A skill package: a folder whose `SKILL.md` opens with YAML front-matter naming the skill
//! (`name`, `description`), plus any files. Reading front-matter, turning a name into a
//! folder name, unpacking a zip safely, hashing and copying a skill folder.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::SkillError;

/// The most entries a skill archive may hold.
pub const MAX_ENTRIES: usize = 2000;
/// The most bytes a skill archive may unpack to.
pub const MAX_UNPACKED_BYTES: u64 = 64 * 1024 * 1024;
/// The largest `SKILL.md` read.
pub const MAX_SKILL_MD_BYTES: u64 = 1024 * 1024;
/// How deep a skill folder is walked.
const MAX_DEPTH: usize = 16;

/// What the front-matter says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontMatter {
    pub name: String,
    pub description: String,
}

fn unquote(value: &str) -> String {
    let v = value.trim();
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return v[1..v.len() - 1].to_owned();
        }
    }
    v.to_owned()
}

/// The `name` and `description` of a `SKILL.md`'s front-matter (`---` lines around
/// `key: value` pairs; quoted values and `|`/`>` block scalars understood); `None` when either
/// is missing or empty.
pub fn front_matter(text: &str) -> Option<FrontMatter> {
    let text = text.trim_start_matches('\u{feff}');
    let mut lines = text.lines();
    if lines.next()?.trim_end() != "---" {
        return None;
    }
    let mut body: Vec<&str> = Vec::new();
    let mut closed = false;
    for line in lines {
        if line.trim_end() == "---" {
            closed = true;
            break;
        }
        body.push(line);
    }
    if !closed {
        return None;
    }
    let (mut name, mut description) = (None, None);
    let mut i = 0;
    while let Some(line) = body.get(i) {
        i += 1;
        if line.starts_with([' ', '\t']) || line.trim_start().starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        let value = if value.starts_with('|') || value.starts_with('>') {
            let folded = value.starts_with('>');
            let mut block = Vec::new();
            while let Some(next) = body.get(i) {
                if !next.is_empty() && !next.starts_with([' ', '\t']) {
                    break;
                }
                block.push(next.trim());
                i += 1;
            }
            block
                .join(if folded { " " } else { "\n" })
                .trim()
                .to_owned()
        } else {
            unquote(value)
        };
        match key.trim() {
            "name" => name = Some(value),
            "description" => description = Some(value),
            _ => {}
        }
    }
    let name = name.filter(|n| !n.trim().is_empty())?;
    let description = description.filter(|d| !d.trim().is_empty())?;
    Some(FrontMatter {
        name: name.trim().to_owned(),
        description: description.trim().to_owned(),
    })
}

/// The folder a skill of this name lives in: spaces become `-`, characters other than
/// letters, digits, `_` and `-` are dropped, at most 64 characters.
pub fn folder_name(name: &str) -> Result<String, SkillError> {
    let folder: String = name
        .trim()
        .chars()
        .map(|c| if c.is_whitespace() { '-' } else { c })
        .filter(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
        .take(64)
        .collect();
    if !folder.chars().any(char::is_alphanumeric) {
        return Err(SkillError::invalid(
            "name",
            "must contain a letter or a digit",
        ));
    }
    Ok(folder)
}

/// Reads a folder's `SKILL.md` (a regular file, not a link, at most 1 MiB).
pub fn read_skill_md(dir: &Path) -> Option<String> {
    let path = dir.join("SKILL.md");
    let meta = fs::symlink_metadata(&path).ok()?;
    if !meta.is_file() || meta.len() > MAX_SKILL_MD_BYTES {
        return None;
    }
    fs::read_to_string(path).ok()
}

fn bad(reason: impl Into<String>) -> SkillError {
    SkillError::BadPackage(reason.into())
}

fn make_dir(path: &Path) -> std::io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

fn executable(path: &Path, mode: Option<u32>) -> bool {
    let by_mode = mode.is_some_and(|m| m & 0o111 != 0);
    let by_place = path.components().any(|c| c.as_os_str() == "scripts");
    let by_name = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e, "sh" | "py" | "bash"));
    by_mode || by_place || by_name
}

/// Unpacks the zip at `archive` into the new directory `dest` (ours, empty): entries that
/// would leave it, links, more than [`MAX_ENTRIES`] entries or more than
/// [`MAX_UNPACKED_BYTES`] (counted as written, whatever the headers claim) are refused.
/// Scripts are made executable (0700), other files 0600.
pub fn unpack(archive: &Path, dest: &Path) -> Result<(), SkillError> {
    let file = fs::File::open(archive).map_err(|e| SkillError::Internal(e.into()))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|_| bad("the file is not a zip archive"))?;
    if zip.len() > MAX_ENTRIES {
        return Err(bad(format!(
            "the archive holds more than {MAX_ENTRIES} entries"
        )));
    }
    make_dir(dest).map_err(|e| SkillError::Internal(e.into()))?;
    let mut written: u64 = 0;
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| bad(format!("the archive is damaged: {e}")))?;
        let shown = entry
            .name()
            .map(|n| n.into_owned())
            .unwrap_or_else(|_| "?".to_owned());
        let Some(relative) = entry.enclosed_name() else {
            return Err(bad(format!(
                "the entry `{shown}` would leave the skill's folder"
            )));
        };
        if relative
            .components()
            .next()
            .is_some_and(|c| c.as_os_str() == "__MACOSX")
            || relative.file_name().is_some_and(|n| n == ".DS_Store")
        {
            continue;
        }
        if entry.is_symlink() {
            return Err(bad(format!("the entry `{shown}` is a link")));
        }
        let target = dest.join(&relative);
        if entry.is_dir() {
            make_dir(&target).map_err(|e| bad(format!("`{shown}`: {e}")))?;
            continue;
        }
        if let Some(parent) = target.parent() {
            make_dir(parent).map_err(|e| bad(format!("`{shown}`: {e}")))?;
        }
        let mode = if executable(&relative, entry.unix_mode()) {
            0o700
        } else {
            0o600
        };
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&target)
            .map_err(|e| bad(format!("`{shown}`: {e}")))?;
        let room = MAX_UNPACKED_BYTES - written;
        let copied = std::io::copy(&mut (&mut entry).take(room + 1), &mut out)
            .map_err(|e| bad(format!("the archive is damaged: {e}")))?;
        if copied > room {
            return Err(bad(format!(
                "the archive unpacks to more than {} MiB",
                MAX_UNPACKED_BYTES / (1024 * 1024)
            )));
        }
        written += copied;
        out.flush().map_err(|e| SkillError::Internal(e.into()))?;
    }
    Ok(())
}

/// The folder of an unpacked archive that holds `SKILL.md`: the root, or the one folder
/// below it that does.
pub fn skill_root(unpacked: &Path) -> Result<PathBuf, SkillError> {
    if read_skill_md(unpacked).is_some() {
        return Ok(unpacked.to_path_buf());
    }
    let mut found: Vec<PathBuf> = fs::read_dir(unpacked)
        .map_err(|e| SkillError::Internal(e.into()))?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .filter(|p| read_skill_md(p).is_some())
        .collect();
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(bad(
            "SKILL.md must be at the archive's root or in its one top folder",
        )),
        _ => Err(bad("the archive holds more than one skill folder")),
    }
}

/// Every regular file below `dir` (links skipped, at most [`MAX_DEPTH`] levels), as paths
/// relative to it, in name order.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    fn walk(base: &Path, rel: &Path, depth: usize, out: &mut Vec<PathBuf>) {
        if depth > MAX_DEPTH {
            return;
        }
        let Ok(entries) = fs::read_dir(base.join(rel)) else {
            return;
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = rel.join(entry.file_name());
            if kind.is_dir() {
                walk(base, &path, depth + 1, out);
            } else if kind.is_file() {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, Path::new(""), 0, &mut out);
    out
}

/// A digest of a skill folder's files (names and contents), to tell copies apart.
pub fn digest(dir: &Path) -> String {
    let mut hash = Sha256::new();
    for file in files(dir) {
        hash.update(file.to_string_lossy().as_bytes());
        hash.update([0]);
        if let Ok(bytes) = fs::read(dir.join(&file)) {
            hash.update(&bytes);
        }
        hash.update([0]);
    }
    hex::encode(hash.finalize())
}

/// Copies the files of `from` into the new directory `to` (links skipped, modes kept).
pub fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    make_dir(to)?;
    for file in files(from) {
        let target = to.join(&file);
        if let Some(parent) = target.parent() {
            make_dir(parent)?;
        }
        fs::copy(from.join(&file), &target)?;
        let exec = fs::metadata(from.join(&file))
            .map(|m| m.permissions().mode() & 0o100 != 0)
            .unwrap_or(false);
        fs::set_permissions(
            &target,
            fs::Permissions::from_mode(if exec { 0o700 } else { 0o600 }),
        )?;
    }
    Ok(())
}

/// Reads an archive's bytes into `dir` as a file (for archives fetched over HTTP).
pub fn spill(dir: &Path, bytes: &[u8]) -> Result<tempfile::TempPath, SkillError> {
    let mut file = tempfile::Builder::new()
        .prefix("upload-skill-")
        .tempfile_in(dir)
        .map_err(|e| SkillError::Internal(e.into()))?;
    file.write_all(bytes)
        .map_err(|e| SkillError::Internal(e.into()))?;
    Ok(file.into_temp_path())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_matter_is_read() {
        let fm = front_matter(
            "---\nname: \"Market Research\"\ndescription: >\n  Finds markets\n  and sizes them.\nlicense: MIT\n---\n# Body\n",
        )
        .unwrap();
        assert_eq!(fm.name, "Market Research");
        assert_eq!(fm.description, "Finds markets and sizes them.");
        assert!(front_matter("---\nname: x\n---\n").is_none());
        assert!(front_matter("name: x\ndescription: y\n").is_none());
        assert!(front_matter("---\nname: x\ndescription: y\n").is_none());
        assert_eq!(
            front_matter("\u{feff}---\nname: 'a'\ndescription: b\n---").unwrap(),
            FrontMatter {
                name: "a".into(),
                description: "b".into()
            }
        );
    }

    #[test]
    fn folder_names_are_plain() {
        assert_eq!(folder_name("Market Research!").unwrap(), "Market-Research");
        assert_eq!(folder_name("../../etc").unwrap(), "etc");
        assert_eq!(folder_name("数据 分析").unwrap(), "数据-分析");
        assert!(folder_name("../ /").is_err());
    }
}
