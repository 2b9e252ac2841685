//! `apply_patch`: one structured patch (`*** Begin Patch` … `*** End Patch` with `Add File`,
//! `Update File` (optionally `Move to`) and `Delete File` blocks) applied to the workspace as
//! a whole: every operation is parsed and planned in memory against the current files first,
//! so a patch that does not fit changes nothing; the writes then go through the same confined
//! file operations as the other file tools, and a failure part way restores what was there.

use std::io::{Read, Write};

use async_trait::async_trait;
use platform::confined::{Confined, ConfinedError, relative_parts};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::tool::{Tool, ToolContext, ToolError};

/// Largest patch text.
const MAX_PATCH_BYTES: usize = 1_000_000;
/// Most file operations in one patch.
const MAX_OPERATIONS: usize = 200;
/// Largest file an update reads.
const MAX_FILE_BYTES: u64 = 2 * 1024 * 1024;

const BEGIN: &str = "*** Begin Patch";
const END: &str = "*** End Patch";
const ADD: &str = "*** Add File: ";
const DELETE: &str = "*** Delete File: ";
const UPDATE: &str = "*** Update File: ";
const MOVE_TO: &str = "*** Move to: ";
const END_OF_FILE: &str = "*** End of File";

/// Why a patch was refused: one sentence, with the patch line when one is to blame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PatchError {
    message: String,
    line: Option<usize>,
}

impl PatchError {
    fn at(line: usize, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            line: Some(line),
        }
    }

    fn plain(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            line: None,
        }
    }
}

impl std::fmt::Display for PatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "patch line {line}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// What a hunk line does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Keep,
    Remove,
    Add,
}

/// One `@@` section of an update: its lines in order, optionally after an anchor line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Hunk {
    anchor: Option<String>,
    lines: Vec<(Mark, String)>,
    at_end: bool,
}

impl Hunk {
    /// The lines to find in the file (context and removals).
    fn old(&self) -> Vec<String> {
        self.lines
            .iter()
            .filter(|(m, _)| *m != Mark::Add)
            .map(|(_, t)| t.clone())
            .collect()
    }

    fn count(&self, mark: Mark) -> usize {
        self.lines.iter().filter(|(m, _)| *m == mark).count()
    }

    /// What replaces `found` (the file's lines that matched [`Hunk::old`]): context lines
    /// as the file has them, additions as the patch has them.
    fn replacement(&self, found: &[String]) -> Vec<String> {
        let mut file = found.iter();
        let mut out = Vec::new();
        for (mark, text) in &self.lines {
            match mark {
                Mark::Keep => out.extend(file.next().cloned()),
                Mark::Remove => {
                    file.next();
                }
                Mark::Add => out.push(text.clone()),
            }
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Operation {
    Add {
        path: String,
        content: String,
    },
    Delete {
        path: String,
    },
    Update {
        path: String,
        move_to: Option<String>,
        hunks: Vec<Hunk>,
    },
}

impl Operation {
    fn paths(&self) -> impl Iterator<Item = &str> {
        let (path, move_to) = match self {
            Operation::Add { path, .. } | Operation::Delete { path } => (path, None),
            Operation::Update { path, move_to, .. } => (path, move_to.as_ref()),
        };
        std::iter::once(path.as_str()).chain(move_to.map(String::as_str))
    }
}

/// A workspace-relative path of the patch, `/`-joined; `.git` is never touched.
fn patch_path(raw: &str, line: usize) -> Result<String, PatchError> {
    let parts = relative_parts(raw.trim()).map_err(|e| PatchError::at(line, e.0))?;
    if parts.is_empty() {
        return Err(PatchError::at(line, "the path is empty"));
    }
    if parts.iter().any(|p| p.eq_ignore_ascii_case(".git")) {
        return Err(PatchError::at(line, "the patch may not change `.git`"));
    }
    Ok(parts.join("/"))
}

fn is_boundary(line: &str) -> bool {
    line == END || line.starts_with(ADD) || line.starts_with(DELETE) || line.starts_with(UPDATE)
}

/// Parses the patch text into operations (each path at most once).
fn parse(patch: &str) -> Result<Vec<Operation>, PatchError> {
    if patch.trim().is_empty() {
        return Err(PatchError::plain("`patch` is empty"));
    }
    if patch.len() > MAX_PATCH_BYTES {
        return Err(PatchError::plain(format!(
            "the patch is larger than {MAX_PATCH_BYTES} bytes; split it"
        )));
    }
    let text = patch.replace("\r\n", "\n");
    let mut lines: Vec<&str> = text.split('\n').collect();
    if lines.last() == Some(&"") {
        lines.pop();
    }
    if lines.first().map(|l| l.trim_end()) != Some(BEGIN) {
        return Err(PatchError::at(
            1,
            format!("the first line must be `{BEGIN}`"),
        ));
    }
    let mut ops = Vec::new();
    let mut i = 1;
    loop {
        let Some(line) = lines.get(i) else {
            return Err(PatchError::at(
                i + 1,
                format!("the last line must be `{END}`"),
            ));
        };
        if line.trim_end() == END {
            if i + 1 != lines.len() {
                return Err(PatchError::at(i + 2, format!("nothing may follow `{END}`")));
            }
            break;
        }
        let (op, next) = if let Some(raw) = line.strip_prefix(ADD) {
            parse_add(&lines, i, patch_path(raw, i + 1)?)?
        } else if let Some(raw) = line.strip_prefix(DELETE) {
            (
                Operation::Delete {
                    path: patch_path(raw, i + 1)?,
                },
                i + 1,
            )
        } else if let Some(raw) = line.strip_prefix(UPDATE) {
            parse_update(&lines, i, patch_path(raw, i + 1)?)?
        } else {
            return Err(PatchError::at(
                i + 1,
                "expected `*** Add File:`, `*** Update File:`, `*** Delete File:` or `*** End Patch`",
            ));
        };
        ops.push(op);
        if ops.len() > MAX_OPERATIONS {
            return Err(PatchError::plain(format!(
                "the patch has more than {MAX_OPERATIONS} file operations; split it"
            )));
        }
        i = next;
    }
    if ops.is_empty() {
        return Err(PatchError::plain("the patch changes no file"));
    }
    let mut seen = std::collections::HashSet::new();
    for path in ops.iter().flat_map(Operation::paths) {
        if !seen.insert(path) {
            return Err(PatchError::plain(format!(
                "the patch changes `{path}` more than once; combine those changes"
            )));
        }
    }
    Ok(ops)
}

fn parse_add(lines: &[&str], start: usize, path: String) -> Result<(Operation, usize), PatchError> {
    let mut i = start + 1;
    let mut content = String::new();
    while let Some(line) = lines.get(i).filter(|l| !is_boundary(l)) {
        let Some(text) = line.strip_prefix('+') else {
            return Err(PatchError::at(
                i + 1,
                "every line of an added file starts with `+`",
            ));
        };
        content.push_str(text);
        content.push('\n');
        i += 1;
    }
    if content.is_empty() {
        return Err(PatchError::at(start + 1, "an added file needs `+` lines"));
    }
    Ok((Operation::Add { path, content }, i))
}

fn parse_update(
    lines: &[&str],
    start: usize,
    path: String,
) -> Result<(Operation, usize), PatchError> {
    let mut i = start + 1;
    let mut move_to = None;
    if let Some(raw) = lines.get(i).and_then(|l| l.strip_prefix(MOVE_TO)) {
        let target = patch_path(raw, i + 1)?;
        if target == path {
            return Err(PatchError::at(i + 1, "a move must name another path"));
        }
        move_to = Some(target);
        i += 1;
    }
    let mut hunks = Vec::new();
    let mut hunk = Hunk::default();
    let mut started = false;
    while let Some(line) = lines.get(i).filter(|l| !is_boundary(l)) {
        if *line == "@@" || line.starts_with("@@ ") {
            if started {
                hunks.push(finish(std::mem::take(&mut hunk), i)?);
            }
            hunk.anchor = line.strip_prefix("@@ ").map(str::to_owned);
            started = true;
        } else if line.trim_end() == END_OF_FILE {
            if !started {
                return Err(PatchError::at(
                    i + 1,
                    "`*** End of File` follows hunk lines",
                ));
            }
            hunk.at_end = true;
            i += 1;
            while lines.get(i).is_some_and(|l| l.trim().is_empty()) {
                i += 1;
            }
            if lines.get(i).is_some_and(|l| !is_boundary(l)) {
                return Err(PatchError::at(
                    i + 1,
                    "`*** End of File` ends its `Update File` block",
                ));
            }
            break;
        } else if line.starts_with(MOVE_TO) {
            return Err(PatchError::at(
                i + 1,
                "`*** Move to:` comes right after `*** Update File:`",
            ));
        } else {
            started = true;
            let marked = if let Some(text) = line.strip_prefix('+') {
                Some((Mark::Add, text))
            } else if let Some(text) = line.strip_prefix('-') {
                Some((Mark::Remove, text))
            } else if let Some(text) = line.strip_prefix(' ') {
                Some((Mark::Keep, text))
            } else {
                line.is_empty().then_some((Mark::Keep, ""))
            };
            if let Some((mark, text)) = marked {
                hunk.lines.push((mark, text.to_owned()));
            } else {
                return Err(PatchError::at(
                    i + 1,
                    "lines of an update start with ` `, `+`, `-` or `@@`",
                ));
            }
        }
        i += 1;
    }
    if started {
        hunks.push(finish(hunk, i)?);
    }
    if hunks.is_empty() && move_to.is_none() {
        return Err(PatchError::at(
            start + 1,
            "an update needs a hunk or a `*** Move to:`",
        ));
    }
    Ok((
        Operation::Update {
            path,
            move_to,
            hunks,
        },
        i,
    ))
}

fn finish(hunk: Hunk, line: usize) -> Result<Hunk, PatchError> {
    if hunk.lines.is_empty() {
        return Err(PatchError::at(line, "a hunk has no lines"));
    }
    Ok(hunk)
}

/// Where `pattern` occurs in `lines` at or after `from` (at the very end when `at_end`):
/// exactly, else ignoring trailing blanks, else ignoring surrounding blanks; two places at
/// the first level that finds any is an error.
fn find(
    lines: &[String],
    pattern: &[String],
    from: usize,
    at_end: bool,
    what: &str,
    path: &str,
) -> Result<usize, PatchError> {
    let levels: [fn(&str) -> &str; 3] = [|s| s, str::trim_end, str::trim];
    for norm in levels {
        let fits = |at: usize| {
            pattern
                .iter()
                .zip(&lines[at..])
                .all(|(p, l)| norm(p) == norm(l))
        };
        let last = match lines.len().checked_sub(pattern.len()) {
            Some(last) if last >= from => last,
            _ => break,
        };
        let mut found = if at_end {
            fits(last).then_some(last).into_iter().collect::<Vec<_>>()
        } else {
            (from..=last).filter(|&at| fits(at)).take(2).collect()
        };
        match found.len() {
            0 => continue,
            1 => return Ok(found.remove(0)),
            _ => {
                return Err(PatchError::plain(format!(
                    "{what} occurs more than once in `{path}`; add context lines or an `@@` anchor"
                )));
            }
        }
    }
    Err(PatchError::plain(format!(
        "{what} was not found in `{path}`; read the file again and regenerate the patch:\n{}",
        pattern.join("\n")
    )))
}

/// The file's text after the hunks, in order; its newline style is kept.
fn apply_hunks(original: &str, hunks: &[Hunk], path: &str) -> Result<String, PatchError> {
    let newline = if original.contains("\r\n") {
        "\r\n"
    } else {
        "\n"
    };
    let mut lines: Vec<String> = original
        .replace("\r\n", "\n")
        .split('\n')
        .map(str::to_owned)
        .collect();
    if lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    let mut cursor = 0;
    for hunk in hunks {
        if let Some(anchor) = &hunk.anchor {
            let at = find(
                &lines,
                std::slice::from_ref(anchor),
                cursor,
                false,
                &format!("the anchor `{anchor}`"),
                path,
            )?;
            cursor = at + 1;
        }
        let old = hunk.old();
        let at = if old.is_empty() {
            // Pure additions: after the anchor, else at the end of the file.
            if hunk.anchor.is_some() {
                cursor
            } else {
                lines.len()
            }
        } else {
            find(&lines, &old, cursor, hunk.at_end, "a hunk's context", path)?
        };
        let new = hunk.replacement(&lines[at..at + old.len()]);
        cursor = at + new.len();
        lines.splice(at..at + old.len(), new);
    }
    let mut text = lines.join(newline);
    if !lines.is_empty() {
        text.push_str(newline);
    }
    Ok(text)
}

/// One file's state before the patch (`None`: absent).
struct Snapshot {
    parts: Vec<String>,
    before: Option<Vec<u8>>,
}

/// A planned change: the text to write at `parts`, or `None` to remove it.
struct Change {
    parts: Vec<String>,
    after: Option<String>,
}

fn read_text(tree: &Confined, parts: &[String], path: &str) -> Result<Option<Vec<u8>>, ToolError> {
    let file = match tree.open_file(parts) {
        Ok(f) => f,
        Err(ConfinedError::NotFound) => return Ok(None),
        Err(ConfinedError::IsADirectory) => {
            return Err(ToolError::Failed(format!("`{path}` is a directory")));
        }
        Err(e) => return Err(e.into()),
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ToolError::Failed(e.to_string()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ToolError::Failed(format!(
            "`{path}` is larger than {MAX_FILE_BYTES} bytes"
        )));
    }
    Ok(Some(bytes))
}

fn write_text(tree: &Confined, parts: &[String], bytes: &[u8]) -> Result<(), ConfinedError> {
    let (name, dirs) = parts.split_last().ok_or(ConfinedError::BadName)?;
    let dir = tree.create_dirs(dirs)?;
    Confined::write_in(&dir, name, false)?.write_all(bytes)?;
    Ok(())
}

fn split(path: &str) -> Vec<String> {
    path.split('/').map(str::to_owned).collect()
}

/// What a patch will do: the files as they are, the changes, and the report per operation.
struct Plan {
    snapshots: Vec<Snapshot>,
    changes: Vec<Change>,
    report: Vec<Value>,
}

/// Plans every operation against the files as they are; nothing is written.
fn plan(tree: &Confined, ops: &[Operation]) -> Result<Plan, ToolError> {
    let mut snapshots = Vec::new();
    let mut changes = Vec::new();
    let mut report = Vec::new();
    let failed = |e: PatchError| ToolError::Failed(e.to_string());
    for op in ops {
        for path in op.paths() {
            let parts = split(path);
            let before = read_text(tree, &parts, path)?;
            snapshots.push(Snapshot { parts, before });
        }
        let state = |path: &str| {
            snapshots
                .iter()
                .find(|s| s.parts.join("/") == path)
                .and_then(|s| s.before.as_deref())
        };
        match op {
            Operation::Add { path, content } => {
                if state(path).is_some() {
                    return Err(ToolError::Failed(format!(
                        "cannot add `{path}`: it exists (update it instead)"
                    )));
                }
                changes.push(Change {
                    parts: split(path),
                    after: Some(content.clone()),
                });
                report.push(json!({"action": "add", "path": path,
                    "lines_added": content.lines().count(), "lines_removed": 0}));
            }
            Operation::Delete { path } => {
                let Some(before) = state(path) else {
                    return Err(ToolError::Failed(format!(
                        "cannot delete `{path}`: it does not exist"
                    )));
                };
                let removed = String::from_utf8_lossy(before).lines().count();
                changes.push(Change {
                    parts: split(path),
                    after: None,
                });
                report.push(json!({"action": "delete", "path": path,
                    "lines_added": 0, "lines_removed": removed}));
            }
            Operation::Update {
                path,
                move_to,
                hunks,
            } => {
                let Some(before) = state(path) else {
                    return Err(ToolError::Failed(format!(
                        "cannot update `{path}`: it does not exist"
                    )));
                };
                let text = std::str::from_utf8(before)
                    .map_err(|_| ToolError::Failed(format!("`{path}` is not UTF-8 text")))?;
                let after = apply_hunks(text, hunks, path).map_err(failed)?;
                let (added, removed) = hunks.iter().fold((0, 0), |(a, r), h| {
                    (a + h.count(Mark::Add), r + h.count(Mark::Remove))
                });
                let mut entry = json!({"action": "update", "path": path,
                    "lines_added": added, "lines_removed": removed});
                if let Some(target) = move_to {
                    if state(target).is_some() {
                        return Err(ToolError::Failed(format!(
                            "cannot move `{path}` to `{target}`: it exists"
                        )));
                    }
                    changes.push(Change {
                        parts: split(target),
                        after: Some(after),
                    });
                    changes.push(Change {
                        parts: split(path),
                        after: None,
                    });
                    entry["action"] = json!("move");
                    entry["move_path"] = json!(target);
                } else {
                    changes.push(Change {
                        parts: split(path),
                        after: Some(after),
                    });
                }
                report.push(entry);
            }
        }
    }
    Ok(Plan {
        snapshots,
        changes,
        report,
    })
}

/// Writes every change (files first, removals last); on a failure restores the snapshots
/// and reports both.
fn commit(tree: &Confined, snapshots: &[Snapshot], changes: &[Change]) -> Result<(), ToolError> {
    let ordered = changes
        .iter()
        .filter(|c| c.after.is_some())
        .chain(changes.iter().filter(|c| c.after.is_none()));
    let mut outcome = Ok(());
    for change in ordered {
        let done = match &change.after {
            Some(text) => write_text(tree, &change.parts, text.as_bytes()),
            None => tree.remove(&change.parts),
        };
        if let Err(e) = done {
            outcome = Err(format!("writing `{}` failed: {e}", change.parts.join("/")));
            break;
        }
    }
    let Err(failure) = outcome else {
        return Ok(());
    };
    let mut unrestored = Vec::new();
    for snap in snapshots.iter().rev() {
        let restored = match &snap.before {
            Some(bytes) => write_text(tree, &snap.parts, bytes),
            None => match tree.remove(&snap.parts) {
                Err(ConfinedError::NotFound) => Ok(()),
                other => other,
            },
        };
        if restored.is_err() {
            unrestored.push(snap.parts.join("/"));
        }
    }
    Err(ToolError::Failed(if unrestored.is_empty() {
        format!("{failure}; every file was restored")
    } else {
        format!("{failure}; could not restore {}", unrestored.join(", "))
    }))
}

pub(crate) struct ApplyPatch;

#[async_trait]
impl Tool for ApplyPatch {
    fn name(&self) -> &'static str {
        "apply_patch"
    }
    fn description(&self, language: &str) -> &'static str {
        match language {
            "zh" => {
                "一次性对工作区中的一个或多个文本文件应用结构化补丁：先整体预检，任何一处不匹配则不做任何修改；写入失败时恢复原文件。支持 Add File、Update File（可带 Move to）和 Delete File。"
            }
            _ => {
                "Apply one structured patch to one or more text files of the workspace: the whole patch is checked first and nothing changes unless every part fits; a failed write restores the files. Supports Add File, Update File (with Move to) and Delete File."
            }
        }
    }
    fn writes(&self) -> bool {
        true
    }
    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {
            "patch": {"type": "string", "description": "Patch text: `*** Begin Patch`, then `*** Add File: <path>` (lines starting with +), `*** Delete File: <path>`, or `*** Update File: <path>` (optionally `*** Move to: <path>` next) with hunks whose lines start with a space (context), - (removed) or + (added), optionally opened by `@@ <a line to find first>`; `*** End of File` pins the last hunk to the file's end; then `*** End Patch`. A hunk of only + lines without an anchor appends to the file. Paths are relative to the workspace."}
        }, "required": ["patch"]})
    }
    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        let patch = args
            .get("patch")
            .and_then(Value::as_str)
            .ok_or_else(|| ToolError::Invalid("`patch` (a string) is required".into()))?
            .to_owned();
        let ops = parse(&patch).map_err(|e| ToolError::Invalid(e.to_string()))?;
        let root = ctx.workspace.clone();
        tokio::task::spawn_blocking(move || {
            let tree = Confined::create(&root)?;
            let Plan {
                snapshots,
                changes,
                report,
            } = plan(&tree, &ops)?;
            commit(&tree, &snapshots, &changes)?;
            Ok(json!({
                "success": true,
                "status": "success",
                "message": format!("Applied patch to {} file operation(s)", report.len()),
                "files_changed": report.len(),
                "patch_sha256": hex::encode(Sha256::digest(patch.as_bytes())),
                "changes": report,
                "rollback": {"attempted": false},
            }))
        })
        .await
        .map_err(|e| ToolError::Failed(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hunks(patch: &str) -> Vec<Hunk> {
        match parse(patch).unwrap().remove(0) {
            Operation::Update { hunks, .. } => hunks,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_every_operation_and_refuses_what_it_cannot_place() {
        let ops = parse(
            "*** Begin Patch\n*** Add File: a/new.txt\n+one\n+two\n*** Delete File: old.txt\n\
             *** Update File: src/x.rs\n*** Move to: src/y.rs\n@@ fn main\n-a\n+b\n*** End Patch\n",
        )
        .unwrap();
        assert_eq!(ops.len(), 3);
        assert_eq!(
            ops[0],
            Operation::Add {
                path: "a/new.txt".into(),
                content: "one\ntwo\n".into()
            }
        );
        assert!(
            matches!(&ops[2], Operation::Update { move_to: Some(t), hunks, .. }
            if t == "src/y.rs" && hunks[0].anchor.as_deref() == Some("fn main"))
        );

        for (patch, wanted) in [
            ("", "empty"),
            ("*** Add File: a\n+x\n*** End Patch", "first line"),
            ("*** Begin Patch\n*** Add File: a\n+x\n", "last line"),
            (
                "*** Begin Patch\n*** Add File: ../a\n+x\n*** End Patch",
                "`..`",
            ),
            (
                "*** Begin Patch\n*** Add File: /etc/a\n+x\n*** End Patch",
                "absolute",
            ),
            (
                "*** Begin Patch\n*** Add File: .git/config\n+x\n*** End Patch",
                ".git",
            ),
            (
                "*** Begin Patch\n*** Add File: a\nx\n*** End Patch",
                "starts with `+`",
            ),
            (
                "*** Begin Patch\n*** Update File: a\n*** End Patch",
                "needs a hunk",
            ),
            (
                "*** Begin Patch\n*** Update File: a\n~x\n*** End Patch",
                "start with",
            ),
            (
                "*** Begin Patch\n*** Delete File: a\n*** Delete File: a\n*** End Patch",
                "more than once",
            ),
            ("*** Begin Patch\n*** End Patch", "no file"),
            (
                "*** Begin Patch\n*** Delete File: a\n*** End Patch\nmore",
                "nothing may follow",
            ),
        ] {
            let e = parse(patch).unwrap_err().to_string();
            assert!(e.contains(wanted), "{patch:?}: {e}");
        }
    }

    #[test]
    fn hunks_apply_in_order_with_anchors_tolerant_whitespace_and_the_files_newlines() {
        let text = "fn a() {\n    1\n}\nfn b() {\n    1\n}\n";
        let h = hunks(
            "*** Begin Patch\n*** Update File: f\n@@ fn b() {\n-    1\n+    2\n*** End Patch",
        );
        assert_eq!(
            apply_hunks(text, &h, "f").unwrap(),
            "fn a() {\n    1\n}\nfn b() {\n    2\n}\n"
        );
        // Without the anchor the context is ambiguous.
        let h = hunks("*** Begin Patch\n*** Update File: f\n-    1\n+    2\n*** End Patch");
        assert!(
            apply_hunks(text, &h, "f")
                .unwrap_err()
                .to_string()
                .contains("more than once")
        );
        // Trailing blanks in the file do not stop a match; CRLF files stay CRLF.
        let h = hunks("*** Begin Patch\n*** Update File: f\n x\n-y\n+z\n*** End Patch");
        assert_eq!(
            apply_hunks("x  \r\ny\r\n", &h, "f").unwrap(),
            "x  \r\nz\r\n"
        );
        // Pure additions append; `End of File` pins a hunk to the end.
        let h = hunks("*** Begin Patch\n*** Update File: f\n+tail\n*** End Patch");
        assert_eq!(apply_hunks("a\n", &h, "f").unwrap(), "a\ntail\n");
        let h =
            hunks("*** Begin Patch\n*** Update File: f\n-a\n+b\n*** End of File\n*** End Patch");
        assert_eq!(apply_hunks("a\nc\na\n", &h, "f").unwrap(), "a\nc\nb\n");
        let h = hunks("*** Begin Patch\n*** Update File: f\n-gone\n+b\n*** End Patch");
        assert!(
            apply_hunks("a\n", &h, "f")
                .unwrap_err()
                .to_string()
                .contains("not found")
        );
    }
}
