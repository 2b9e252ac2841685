//! Built-in tools that need only the run's workspace: files (confined with
//! `platform::confined`: every path walks from the workspace root's descriptor, and a
//! symbolic link anywhere is refused, never followed) and the session todo list.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use platform::confined::{Confined, ConfinedError, Kind, relative_parts};
use serde_json::{Value, json};

use crate::tool::{Tool, ToolContext, ToolError, todos};

/// Largest file `file_read` reads.
const MAX_READ_BYTES: u64 = 2 * 1024 * 1024;
/// Largest content `file_write` writes.
const MAX_WRITE_BYTES: usize = 8 * 1024 * 1024;
const MAX_LIST_ENTRIES: usize = 1000;

pub(crate) fn all() -> Vec<Arc<dyn Tool>> {
    vec![
        Arc::new(FileRead),
        Arc::new(FileWrite),
        Arc::new(ListDir),
        Arc::new(TodoRead),
        Arc::new(TodoWrite),
        Arc::new(FileUpdate),
        Arc::new(crate::patch::ApplyPatch),
        Arc::new(Glob),
        Arc::new(Grep),
        Arc::new(LoadSkill),
        Arc::new(crate::questionnaire::Questionnaire),
        Arc::new(crate::questionnaire::blocking::Questionnaire),
    ]
}

fn text_arg<'a>(args: &'a Value, name: &str) -> Result<&'a str, ToolError> {
    args.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| ToolError::Invalid(format!("`{name}` (a string) is required")))
}

fn opt_u64(args: &Value, name: &str) -> Option<u64> {
    args.get(name).and_then(Value::as_u64)
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ToolError> + Send + 'static,
) -> Result<T, ToolError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ToolError::Failed(e.to_string()))?
}

/// How deep `glob` and `grep` walk below their start.
const MAX_WALK_DEPTH: u32 = 64;

/// The workspace tree (it must exist).
fn open_tree(root: &Path) -> Result<Confined, ToolError> {
    Ok(Confined::open(root)?)
}

/// Joins a start directory's `/`-path and a path below it.
fn join(base: &str, below: &str) -> String {
    if base.is_empty() {
        below.to_owned()
    } else {
        format!("{base}/{below}")
    }
}

/// The regular file at `parts`, opened for reading, and its size.
fn open_regular(
    tree: &Confined,
    parts: &[String],
    path: &str,
) -> Result<(std::fs::File, u64), ToolError> {
    let file = match tree.open_file(parts) {
        Ok(f) => f,
        Err(ConfinedError::IsADirectory) => {
            return Err(ToolError::Failed(format!("`{path}` is not a file")));
        }
        Err(e) => return Err(e.into()),
    };
    let size = file
        .metadata()
        .map_err(|e| ToolError::Failed(e.to_string()))?
        .len();
    Ok((file, size))
}

/// A workspace file's bytes, confined like the file tools (a symlink anywhere refused), at
/// most `max` of them or an error. Blocking.
pub fn read_workspace_file(
    workspace: &std::path::Path,
    path: &str,
    max: u64,
) -> Result<Vec<u8>, ToolError> {
    let parts = relative_parts(path)?;
    let tree = open_tree(workspace)?;
    let (file, size) = open_regular(&tree, &parts, path)?;
    if size > max {
        return Err(ToolError::Failed(format!(
            "`{path}` is larger than {max} bytes"
        )));
    }
    let mut bytes = Vec::new();
    file.take(max)
        .read_to_end(&mut bytes)
        .map_err(|e| ToolError::Failed(e.to_string()))?;
    Ok(bytes)
}

fn read_all(file: std::fs::File) -> Result<Vec<u8>, ToolError> {
    let mut bytes = Vec::new();
    file.take(MAX_READ_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ToolError::Failed(e.to_string()))?;
    Ok(bytes)
}

struct FileRead;

#[async_trait]
impl Tool for FileRead {
    fn name(&self) -> &'static str {
        "file_read"
    }
    fn description(&self, language: &str) -> &'static str {
        match language {
            "zh" => "读取工作区中的文本文件，可指定起止行号（从 1 开始）。",
            _ => {
                "Read a text file in the workspace, optionally from start_line to end_line (1-based)."
            }
        }
    }
    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {
            "file_path": {"type": "string", "description": "Path relative to the workspace"},
            "start_line": {"type": "integer", "minimum": 1},
            "end_line": {"type": "integer", "minimum": 1}
        }, "required": ["file_path"]})
    }
    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        let path = text_arg(&args, "file_path")?.to_owned();
        let (start, end) = (opt_u64(&args, "start_line"), opt_u64(&args, "end_line"));
        let root = ctx.workspace.clone();
        blocking(move || {
            let parts = relative_parts(&path)?;
            let tree = open_tree(&root)?;
            let (file, size) = open_regular(&tree, &parts, &path)?;
            if size > MAX_READ_BYTES {
                return Err(ToolError::Failed(format!(
                    "`{path}` is larger than {MAX_READ_BYTES} bytes; read it in line ranges"
                )));
            }
            let bytes = read_all(file)?;
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            let total = lines.len();
            let content = match (start, end) {
                (None, None) => text.into_owned(),
                (s, e) => {
                    let from = usize::try_from(s.unwrap_or(1).max(1) - 1).unwrap_or(usize::MAX);
                    let to = e
                        .and_then(|e| usize::try_from(e).ok())
                        .unwrap_or(total)
                        .min(total);
                    lines.get(from..to.max(from)).unwrap_or_default().join("\n")
                }
            };
            Ok(json!({"status": "success", "file_path": parts.join("/"),
                      "content": content, "total_lines": total}))
        })
        .await
    }
}

struct FileWrite;

#[async_trait]
impl Tool for FileWrite {
    fn name(&self) -> &'static str {
        "file_write"
    }
    fn description(&self, language: &str) -> &'static str {
        match language {
            "zh" => "在工作区中写入文件（覆盖或追加），自动创建目录。",
            _ => "Write a file in the workspace (overwrite or append), creating directories.",
        }
    }
    fn writes(&self) -> bool {
        true
    }
    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {
            "file_path": {"type": "string", "description": "Path relative to the workspace"},
            "content": {"type": "string"},
            "mode": {"type": "string", "enum": ["overwrite", "append"]}
        }, "required": ["file_path", "content"]})
    }
    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        let path = text_arg(&args, "file_path")?.to_owned();
        let content = text_arg(&args, "content")?.to_owned();
        if content.len() > MAX_WRITE_BYTES {
            return Err(ToolError::Invalid(format!(
                "`content` is larger than {MAX_WRITE_BYTES} bytes"
            )));
        }
        let append = match args.get("mode").and_then(Value::as_str) {
            None | Some("overwrite") => false,
            Some("append") => true,
            Some(other) => {
                return Err(ToolError::Invalid(format!(
                    "`mode` must be overwrite or append, not `{other}`"
                )));
            }
        };
        let root = ctx.workspace.clone();
        blocking(move || {
            let parts = relative_parts(&path)?;
            let Some((name, dirs)) = parts.split_last() else {
                return Err(ToolError::Invalid("`file_path` must name a file".into()));
            };
            let tree = Confined::create(&root)?;
            let dir = tree.create_dirs(dirs)?;
            let mut file = match Confined::write_in(&dir, name, append) {
                Ok(f) => f,
                Err(ConfinedError::IsADirectory) => {
                    return Err(ToolError::Failed(format!("`{path}` is a directory")));
                }
                Err(e) => return Err(e.into()),
            };
            file.write_all(content.as_bytes())
                .map_err(|e| ToolError::Failed(e.to_string()))?;
            Ok(json!({"status": "success", "file_path": parts.join("/"),
                      "bytes_written": content.len()}))
        })
        .await
    }
}

struct ListDir;

#[async_trait]
impl Tool for ListDir {
    fn name(&self) -> &'static str {
        "list_dir"
    }
    fn description(&self, language: &str) -> &'static str {
        match language {
            "zh" => "列出工作区目录的内容（可指定深度）。",
            _ => "List a workspace directory (optionally recursively, up to max_depth levels).",
        }
    }
    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {
            "path": {"type": "string", "description": "Directory relative to the workspace (default: its root)"},
            "max_depth": {"type": "integer", "minimum": 1, "maximum": 10}
        }})
    }
    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        let path = args
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let depth = opt_u64(&args, "max_depth").unwrap_or(1).clamp(1, 10);
        let root = ctx.workspace.clone();
        blocking(move || {
            let parts = relative_parts(&path)?;
            let tree = open_tree(&root)?;
            let base = parts.join("/");
            let mut entries = Vec::new();
            let mut truncated = false;
            let walked = tree.walk(&parts, u32::try_from(depth).unwrap_or(10), &mut |entry, _| {
                // Symlinks are refused, never followed: they are not listed.
                if !matches!(entry.meta.kind, Kind::File | Kind::Dir) {
                    return Ok(true);
                }
                if entries.len() >= MAX_LIST_ENTRIES {
                    truncated = true;
                    return Ok(false);
                }
                let is_dir = entry.meta.kind == Kind::Dir;
                entries.push(json!({"path": join(&base, &entry.path), "is_directory": is_dir,
                                    "size": if is_dir { 0 } else { entry.meta.size }}));
                Ok(true)
            });
            match walked {
                Ok(_) => {}
                Err(ConfinedError::NotADirectory) => {
                    return Err(ToolError::Failed(format!("`{path}` is not a directory")));
                }
                Err(e) => return Err(e.into()),
            }
            entries.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
            Ok(json!({"status": "success", "path": path, "entries": entries, "truncated": truncated}))
        })
        .await
    }
}

struct TodoRead;

#[async_trait]
impl Tool for TodoRead {
    fn name(&self) -> &'static str {
        "todo_read"
    }
    fn description(&self, language: &str) -> &'static str {
        match language {
            "zh" => "读取本会话的任务清单。",
            _ => "Read this session's task list.",
        }
    }
    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {}})
    }
    async fn call(&self, ctx: &ToolContext, _args: Value) -> Result<Value, ToolError> {
        let tasks = todos::load(ctx.kv.as_ref(), &ctx.session_id)
            .await
            .map_err(|e| ToolError::Failed(e.to_string()))?;
        Ok(json!({"tasks": numbered(&tasks)}))
    }
}

fn numbered(tasks: &[Value]) -> Vec<Value> {
    tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({"index": i + 1, "id": t["id"], "name": t["name"], "status": t["status"]})
        })
        .collect()
}

struct TodoWrite;

const STATUSES: [&str; 4] = ["pending", "in_progress", "completed", "cancelled"];

#[async_trait]
impl Tool for TodoWrite {
    fn name(&self) -> &'static str {
        "todo_write"
    }
    fn description(&self, language: &str) -> &'static str {
        match language {
            "zh" => {
                "新增或更新本会话的任务（按 id 合并）；状态为 pending、in_progress、completed 或 cancelled。"
            }
            _ => {
                "Add or update tasks of this session (merged by id); status is pending, in_progress, completed or cancelled."
            }
        }
    }
    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {"tasks": {"type": "array", "items": {
            "type": "object", "properties": {
                "id": {"type": "string"}, "content": {"type": "string"},
                "status": {"type": "string", "enum": STATUSES}
            }, "required": ["id"]}}}, "required": ["tasks"]})
    }
    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        let Some(updates) = args.get("tasks").and_then(Value::as_array) else {
            return Err(ToolError::Invalid("`tasks` (a list) is required".into()));
        };
        let mut tasks = todos::load(ctx.kv.as_ref(), &ctx.session_id)
            .await
            .map_err(|e| ToolError::Failed(e.to_string()))?;
        let (mut added, mut updated) = (0, 0);
        for update in updates {
            let id = match &update["id"] {
                Value::String(s) if !s.is_empty() => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err(ToolError::Invalid("every task needs an `id`".into())),
            };
            let status = update["status"].as_str();
            if let Some(s) = status
                && !STATUSES.contains(&s)
            {
                return Err(ToolError::Invalid(format!("unknown status `{s}`")));
            }
            let name = update["content"]
                .as_str()
                .or_else(|| update["name"].as_str());
            match tasks.iter_mut().find(|t| t["id"] == id.as_str()) {
                Some(task) => {
                    if let Some(n) = name {
                        task["name"] = json!(n);
                    }
                    if let Some(s) = status {
                        task["status"] = json!(s);
                    }
                    updated += 1;
                }
                None => {
                    tasks.push(json!({"id": id, "name": name.unwrap_or_default(),
                                      "status": status.unwrap_or("pending")}));
                    added += 1;
                }
            }
        }
        todos::save(ctx.kv.as_ref(), &ctx.session_id, &tasks)
            .await
            .map_err(|e| ToolError::Failed(e.to_string()))?;
        let unfinished = tasks
            .iter()
            .filter(|t| matches!(t["status"].as_str(), Some("pending" | "in_progress")))
            .count();
        Ok(json!({
            "summary": format!("Task list updated. Added: {added}, updated: {updated}, currently unfinished: {unfinished}."),
            "tasks": numbered(&tasks),
        }))
    }
}

/// A walked entry: its path below the start, whether it is a directory.
type Entry = (String, bool);

/// Every file and directory below `parts` (sorted by path, at most `limit`), symlinks
/// skipped, never entered; whether the limit or the depth cut the walk short.
fn walk(tree: &Confined, parts: &[String], limit: usize) -> Result<(Vec<Entry>, bool), ToolError> {
    let mut out = Vec::new();
    let mut full = false;
    let deep = tree.walk(parts, MAX_WALK_DEPTH, &mut |entry, _| {
        if !matches!(entry.meta.kind, Kind::File | Kind::Dir) {
            return Ok(true);
        }
        if out.len() >= limit {
            full = true;
            return Ok(false);
        }
        out.push((entry.path.clone(), entry.meta.kind == Kind::Dir));
        Ok(true)
    })?;
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((out, full || deep))
}

/// `*` (within a name), `?`, and `**` (any number of directories) against a `/` path.
fn glob_match(pattern: &str, path: &str) -> bool {
    fn parts(p: &[&str], s: &[&str]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(&"**"), _) => parts(&p[1..], s) || (!s.is_empty() && parts(p, &s[1..])),
            (Some(pp), Some(ss)) => name(pp.as_bytes(), ss.as_bytes()) && parts(&p[1..], &s[1..]),
            _ => false,
        }
    }
    fn name(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => name(&p[1..], s) || (!s.is_empty() && name(p, &s[1..])),
            (Some(b'?'), Some(_)) => name(&p[1..], &s[1..]),
            (Some(a), Some(b)) => a == b && name(&p[1..], &s[1..]),
            _ => false,
        }
    }
    let p: Vec<&str> = pattern.split('/').filter(|x| !x.is_empty()).collect();
    let s: Vec<&str> = path.split('/').filter(|x| !x.is_empty()).collect();
    parts(&p, &s)
}

struct FileUpdate;

#[async_trait]
impl Tool for FileUpdate {
    fn name(&self) -> &'static str {
        "file_update"
    }
    fn description(&self, language: &str) -> &'static str {
        match language {
            "zh" => "在工作区文件中把 old_string 精确替换为 new_string（默认要求唯一匹配）。",
            _ => {
                "Replace the exact text old_string with new_string in a workspace file (it must match once unless replace_all)."
            }
        }
    }
    fn writes(&self) -> bool {
        true
    }
    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {
            "file_path": {"type": "string"}, "old_string": {"type": "string"},
            "new_string": {"type": "string"}, "replace_all": {"type": "boolean"}
        }, "required": ["file_path", "old_string", "new_string"]})
    }
    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        let path = text_arg(&args, "file_path")?.to_owned();
        let old = text_arg(&args, "old_string")?.to_owned();
        let new = text_arg(&args, "new_string")?.to_owned();
        let all = args
            .get("replace_all")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if old.is_empty() {
            return Err(ToolError::Invalid("`old_string` must not be empty".into()));
        }
        let root = ctx.workspace.clone();
        blocking(move || {
            let parts = relative_parts(&path)?;
            let tree = open_tree(&root)?;
            let (file, size) = open_regular(&tree, &parts, &path)?;
            if size > MAX_READ_BYTES {
                return Err(ToolError::Failed(format!(
                    "`{path}` is not a text file this tool edits"
                )));
            }
            let text = String::from_utf8(read_all(file)?)
                .map_err(|_| ToolError::Failed(format!("`{path}` is not UTF-8 text")))?;
            let count = text.matches(&old).count();
            if count == 0 {
                return Err(ToolError::Failed("`old_string` was not found".into()));
            }
            if count > 1 && !all {
                return Err(ToolError::Failed(format!(
                    "`old_string` occurs {count} times; give more context or set replace_all"
                )));
            }
            let updated = if all {
                text.replace(&old, &new)
            } else {
                text.replacen(&old, &new, 1)
            };
            tree.open_write(&parts, false)?
                .write_all(updated.as_bytes())
                .map_err(|e| ToolError::Failed(e.to_string()))?;
            Ok(json!({"status": "success", "file_path": parts.join("/"),
                      "replacements": if all { count } else { 1 }}))
        })
        .await
    }
}

struct Glob;

#[async_trait]
impl Tool for Glob {
    fn name(&self) -> &'static str {
        "glob"
    }
    fn description(&self, language: &str) -> &'static str {
        match language {
            "zh" => "按模式查找工作区中的文件（支持 *、? 和 **）。",
            _ => "Find workspace files by pattern (`*`, `?` and `**`), e.g. `**/*.md`.",
        }
    }
    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {
            "pattern": {"type": "string"},
            "path": {"type": "string", "description": "Directory to search (default: the workspace)"}
        }, "required": ["pattern"]})
    }
    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        let pattern = text_arg(&args, "pattern")?.to_owned();
        let path = args
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let root = ctx.workspace.clone();
        blocking(move || {
            let parts = relative_parts(&path)?;
            let tree = open_tree(&root)?;
            let base = parts.join("/");
            let (entries, truncated) = walk(&tree, &parts, 20 * MAX_LIST_ENTRIES)?;
            let files: Vec<Value> = entries
                .into_iter()
                .filter(|(inner, is_dir)| !is_dir && glob_match(&pattern, inner))
                .take(MAX_LIST_ENTRIES)
                .map(|(inner, _)| json!(join(&base, &inner)))
                .collect();
            Ok(json!({"status": "success", "pattern": pattern, "files": files, "truncated": truncated}))
        })
        .await
    }
}

struct Grep;

const MAX_MATCHES: usize = 200;
/// `grep` reports progress after every this many files searched.
const GREP_PROGRESS_EVERY: usize = 500;

#[async_trait]
impl Tool for Grep {
    fn name(&self) -> &'static str {
        "grep"
    }
    fn description(&self, language: &str) -> &'static str {
        match language {
            "zh" => "在工作区文本文件中查找字面文本，返回文件、行号和该行。",
            _ => {
                "Search workspace text files for literal text; returns file, line number and line."
            }
        }
    }
    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {
            "pattern": {"type": "string", "description": "Literal text to find"},
            "path": {"type": "string"},
            "glob": {"type": "string", "description": "Only files matching this pattern"},
            "case_insensitive": {"type": "boolean"}
        }, "required": ["pattern"]})
    }
    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        let pattern = text_arg(&args, "pattern")?.to_owned();
        if pattern.is_empty() {
            return Err(ToolError::Invalid("`pattern` must not be empty".into()));
        }
        let path = args
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let filter = args.get("glob").and_then(Value::as_str).map(str::to_owned);
        let fold = args
            .get("case_insensitive")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let root = ctx.workspace.clone();
        let cancel = ctx.cancel.clone();
        let progress = ctx.progress.clone();
        blocking(move || {
            let parts = relative_parts(&path)?;
            let tree = open_tree(&root)?;
            let base = parts.join("/");
            let (entries, _) = walk(&tree, &parts, 20 * MAX_LIST_ENTRIES)?;
            let mut searched = 0usize;
            let needle = if fold { pattern.to_lowercase() } else { pattern.clone() };
            let mut matches = Vec::new();
            let mut truncated = false;
            'files: for (inner, is_dir) in entries {
                let rel = join(&base, &inner);
                if is_dir || filter.as_deref().is_some_and(|g| !glob_match(g, &rel)) {
                    continue;
                }
                if cancel.is_cancelled() {
                    return Err(ToolError::Cancelled);
                }
                searched += 1;
                if searched.is_multiple_of(GREP_PROGRESS_EVERY) {
                    progress.info(format!("searched {searched} files"));
                }
                let file_parts: Vec<String> = rel.split('/').map(str::to_owned).collect();
                let Ok((file, size)) = open_regular(&tree, &file_parts, &rel) else { continue };
                if size > MAX_READ_BYTES {
                    continue;
                }
                let Ok(text) = read_all(file).map(String::from_utf8) else { continue };
                let Ok(text) = text else { continue };
                for (n, line) in text.lines().enumerate() {
                    let hay = if fold { line.to_lowercase() } else { line.to_owned() };
                    if hay.contains(&needle) {
                        if matches.len() >= MAX_MATCHES {
                            truncated = true;
                            break 'files;
                        }
                        matches.push(json!({"file": rel, "line_number": n + 1, "line": line}));
                    }
                }
            }
            Ok(json!({"status": "success", "pattern": pattern, "matches": matches, "truncated": truncated}))
        })
        .await
    }
}

/// Files of a loaded skill listed, at most.
const MAX_SKILL_FILES: usize = 200;

/// Reads one skill of the run's workspace (`skills/<folder>/SKILL.md`, found by its
/// front-matter name) and lists the files beside it.
struct LoadSkill;

#[async_trait]
impl Tool for LoadSkill {
    fn name(&self) -> &'static str {
        "load_skill"
    }
    fn description(&self, language: &str) -> &'static str {
        match language {
            "zh" => "按名称加载一个技能：返回其 SKILL.md 说明和技能文件夹中的文件列表。",
            _ => {
                "Load a skill by name: returns its SKILL.md instructions and the files in the skill's folder."
            }
        }
    }
    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {
            "skill_name": {"type": "string", "description": "The skill's name, as listed in the system prompt"}
        }, "required": ["skill_name"]})
    }
    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        let name = text_arg(&args, "skill_name")?.trim().to_owned();
        let root = ctx.workspace.clone();
        blocking(move || {
            let skills = crate::skills::workspace_skills(&root);
            let Some((folder, meta)) = skills.iter().find(|(_, m)| m.name == name).or_else(|| {
                skills
                    .iter()
                    .find(|(_, m)| m.name.eq_ignore_ascii_case(&name))
            }) else {
                let known: Vec<&str> = skills.iter().map(|(_, m)| m.name.as_str()).collect();
                return Err(ToolError::Failed(format!(
                    "no skill named `{name}`; the workspace has: {}",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                )));
            };
            let tree = open_tree(&root)?;
            let parts = vec!["skills".to_owned(), folder.clone()];
            let mut md = parts.clone();
            md.push("SKILL.md".to_owned());
            let (file, _) = open_regular(&tree, &md, "SKILL.md")?;
            let content = String::from_utf8_lossy(&read_all(file)?).into_owned();
            let (entries, _) = walk(&tree, &parts, MAX_SKILL_FILES)?;
            let files: Vec<String> = entries
                .iter()
                .filter(|(_, is_dir)| !is_dir)
                .map(|(path, _)| format!("skills/{folder}/{path}"))
                .collect();
            Ok(json!({
                "skill_name": meta.name,
                "description": meta.description,
                "path": format!("skills/{folder}"),
                "content": content,
                "files": files,
            }))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cancel, Limits, Registry};
    use platform::store::MemoryKvStore;

    fn context(dir: &tempfile::TempDir) -> (tokio::sync::watch::Sender<bool>, ToolContext) {
        let root = dir.path().join("ws");
        std::fs::create_dir_all(&root).unwrap();
        let (tx, cancel) = Cancel::new();
        (
            tx,
            ToolContext {
                workspace: root,
                session_id: "s1".into(),
                user_id: "u1".into(),
                agent_id: "a1".into(),
                scheduled: false,
                language: "en".into(),
                kv: Arc::new(MemoryKvStore::new()),
                cancel,
                progress: crate::Progress::silent(),
            },
        )
    }

    #[tokio::test]
    async fn files_are_written_read_and_listed_inside_the_workspace() {
        let dir = tempfile::tempdir().unwrap();
        let (_tx, ctx) = context(&dir);
        let reg = Registry::builtin(Limits::default());
        let w = reg
            .run(
                &ctx,
                "file_write",
                r#"{"file_path": "notes/a.txt", "content": "one\ntwo\nthree"}"#,
            )
            .await;
        assert!(!w.is_error, "{w:?}");
        assert_eq!(w.content["file_path"], "notes/a.txt");
        let r = reg
            .run(
                &ctx,
                "file_read",
                r#"{"file_path": "notes/a.txt", "start_line": 2, "end_line": 3}"#,
            )
            .await;
        assert_eq!(r.content["content"], "two\nthree");
        assert_eq!(r.content["total_lines"], 3);
        let l = reg.run(&ctx, "list_dir", r#"{"max_depth": 2}"#).await;
        let paths: Vec<_> = l.content["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["path"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(paths, ["notes", "notes/a.txt"]);
    }

    #[tokio::test]
    async fn escapes_bad_arguments_and_unknown_tools_are_error_outputs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret.txt"), "outside").unwrap();
        let (tx, ctx) = context(&dir);
        #[cfg(unix)]
        std::os::unix::fs::symlink(dir.path(), ctx.workspace.join("up")).unwrap();
        let reg = Registry::builtin(Limits::default());
        for (tool, args) in [
            ("file_read", r#"{"file_path": "../secret.txt"}"#),
            ("file_read", r#"{"file_path": "/etc/passwd"}"#),
            ("file_write", r#"{"file_path": "../x.txt", "content": "x"}"#),
            ("file_read", "not json"),
            ("file_read", "{}"),
            ("no_such_tool", "{}"),
            (
                "todo_write",
                r#"{"tasks": [{"id": "a", "status": "someday"}]}"#,
            ),
        ] {
            let out = reg.run(&ctx, tool, args).await;
            assert!(out.is_error, "{tool} {args}: {out:?}");
            assert_eq!(out.content["status"], "error");
        }
        #[cfg(unix)]
        {
            let out = reg
                .run(&ctx, "file_read", r#"{"file_path": "up/secret.txt"}"#)
                .await;
            assert!(out.is_error, "{out:?}");
            let out = reg
                .run(
                    &ctx,
                    "file_write",
                    r#"{"file_path": "up/new.txt", "content": "x"}"#,
                )
                .await;
            assert!(out.is_error && !dir.path().join("new.txt").exists());
            // A symlink pointing inside the workspace is refused too, and the error says so.
            std::fs::write(ctx.workspace.join("real.txt"), "inside").unwrap();
            std::os::unix::fs::symlink("real.txt", ctx.workspace.join("alias.txt")).unwrap();
            let out = reg
                .run(&ctx, "file_read", r#"{"file_path": "alias.txt"}"#)
                .await;
            assert!(out.is_error, "{out:?}");
            assert!(out.content.to_string().contains("symbolic link"), "{out:?}");
            let out = reg
                .run(&ctx, "file_read", r#"{"file_path": "real.txt"}"#)
                .await;
            assert_eq!(out.content["content"], "inside");
        }
        tx.send(true).unwrap();
        let out = reg.run(&ctx, "todo_read", "{}").await;
        assert!(
            out.is_error,
            "a cancelled run's calls do not start: {out:?}"
        );
    }

    #[tokio::test]
    async fn files_are_updated_found_by_pattern_and_searched() {
        let dir = tempfile::tempdir().unwrap();
        let (_tx, ctx) = context(&dir);
        let reg = Registry::builtin(Limits::default());
        for (p, c) in [
            ("docs/a.md", "Alpha beta\nbeta gamma"),
            ("docs/deep/b.md", "BETA"),
            ("c.txt", "none"),
        ] {
            let args = serde_json::json!({"file_path": p, "content": c}).to_string();
            assert!(!reg.run(&ctx, "file_write", &args).await.is_error);
        }
        let twice = reg
            .run(
                &ctx,
                "file_update",
                r#"{"file_path": "docs/a.md", "old_string": "beta", "new_string": "delta"}"#,
            )
            .await;
        assert!(twice.is_error, "ambiguous: {twice:?}");
        let all = reg
            .run(&ctx, "file_update", r#"{"file_path": "docs/a.md", "old_string": "beta", "new_string": "delta", "replace_all": true}"#)
            .await;
        assert_eq!(all.content["replacements"], 2);
        assert_eq!(
            std::fs::read_to_string(ctx.workspace.join("docs/a.md")).unwrap(),
            "Alpha delta\ndelta gamma"
        );
        let found = reg.run(&ctx, "glob", r#"{"pattern": "**/*.md"}"#).await;
        assert_eq!(
            found.content["files"],
            serde_json::json!(["docs/a.md", "docs/deep/b.md"])
        );
        let shallow = reg
            .run(&ctx, "glob", r#"{"pattern": "*.md", "path": "docs"}"#)
            .await;
        assert_eq!(shallow.content["files"], serde_json::json!(["docs/a.md"]));
        let hits = reg
            .run(&ctx, "grep", r#"{"pattern": "delta", "glob": "**/*.md"}"#)
            .await;
        assert_eq!(hits.content["matches"].as_array().unwrap().len(), 2);
        assert_eq!(hits.content["matches"][1]["line_number"], 2);
        let folded = reg
            .run(
                &ctx,
                "grep",
                r#"{"pattern": "beta", "case_insensitive": true}"#,
            )
            .await;
        assert_eq!(folded.content["matches"][0]["file"], "docs/deep/b.md");
        let outside = reg
            .run(&ctx, "grep", r#"{"pattern": "x", "path": ".."}"#)
            .await;
        assert!(outside.is_error);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_dangling_symlink_cannot_carry_file_write_outside() {
        let dir = tempfile::tempdir().unwrap();
        let (_tx, ctx) = context(&dir);
        let outside = dir.path().join("outside.txt");
        let outside_dir = dir.path().join("outside-dir");
        std::os::unix::fs::symlink(&outside, ctx.workspace.join("link.txt")).unwrap();
        std::os::unix::fs::symlink(&outside_dir, ctx.workspace.join("linkdir")).unwrap();
        let reg = Registry::builtin(Limits::default());
        for (path, mode) in [
            ("link.txt", "overwrite"),
            ("link.txt", "append"),
            ("linkdir/new.txt", "overwrite"),
            ("linkdir/sub/new.txt", "append"),
        ] {
            let args =
                serde_json::json!({"file_path": path, "content": "x", "mode": mode}).to_string();
            let out = reg.run(&ctx, "file_write", &args).await;
            assert!(out.is_error, "{path} {mode}: {out:?}");
            assert!(out.content.to_string().contains("symbolic link"), "{out:?}");
        }
        let out = reg
            .run(
                &ctx,
                "file_update",
                r#"{"file_path": "link.txt", "old_string": "a", "new_string": "b"}"#,
            )
            .await;
        assert!(out.is_error, "{out:?}");
        assert!(!outside.exists());
        assert!(!outside_dir.exists());
        // The links are still just links.
        assert!(
            std::fs::symlink_metadata(ctx.workspace.join("link.txt"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn symlink_loops_do_not_break_list_dir_glob_or_grep() {
        let dir = tempfile::tempdir().unwrap();
        let (_tx, ctx) = context(&dir);
        let reg = Registry::builtin(Limits::default());
        let args = serde_json::json!({"file_path": "d/a.txt", "content": "needle"}).to_string();
        assert!(!reg.run(&ctx, "file_write", &args).await.is_error);
        // A link to itself, a pair pointing at each other, and a directory link to its parent.
        std::os::unix::fs::symlink("self", ctx.workspace.join("self")).unwrap();
        std::os::unix::fs::symlink("pong", ctx.workspace.join("ping")).unwrap();
        std::os::unix::fs::symlink("ping", ctx.workspace.join("pong")).unwrap();
        std::os::unix::fs::symlink("..", ctx.workspace.join("d/up")).unwrap();
        let l = reg.run(&ctx, "list_dir", r#"{"max_depth": 10}"#).await;
        assert!(!l.is_error, "{l:?}");
        let paths: Vec<_> = l.content["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["path"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(paths, ["d", "d/a.txt"]);
        let found = reg.run(&ctx, "glob", r#"{"pattern": "**/*"}"#).await;
        assert!(!found.is_error, "{found:?}");
        assert_eq!(found.content["files"], serde_json::json!(["d/a.txt"]));
        let hits = reg.run(&ctx, "grep", r#"{"pattern": "needle"}"#).await;
        assert!(!hits.is_error, "{hits:?}");
        assert_eq!(
            hits.content["matches"],
            serde_json::json!([{"file": "d/a.txt", "line_number": 1, "line": "needle"}])
        );
        for (tool, args) in [
            ("list_dir", r#"{"path": "d/up"}"#),
            ("glob", r#"{"pattern": "*", "path": "self"}"#),
            ("grep", r#"{"pattern": "x", "path": "ping"}"#),
        ] {
            let out = reg.run(&ctx, tool, args).await;
            assert!(out.is_error, "{tool} {args}: {out:?}");
        }
    }

    #[tokio::test]
    async fn todos_merge_by_id_and_output_is_capped() {
        let dir = tempfile::tempdir().unwrap();
        let (_tx, ctx) = context(&dir);
        let reg = Registry::builtin(Limits::default());
        let first = reg
            .run(&ctx, "todo_write", r#"{"tasks": [{"id": "t1", "content": "Write the transcript", "status": "pending"}]}"#)
            .await;
        assert_eq!(
            first.content["summary"],
            "Task list updated. Added: 1, updated: 0, currently unfinished: 1."
        );
        reg.run(
            &ctx,
            "todo_write",
            r#"{"tasks": [{"id": "t1", "status": "completed"}, {"id": "t2", "content": "Next"}]}"#,
        )
        .await;
        let read = reg.run(&ctx, "todo_read", "{}").await;
        assert_eq!(read.content["tasks"][0]["status"], "completed");
        assert_eq!(read.content["tasks"][1]["index"], 2);

        let small = Registry::builtin(Limits {
            output_cap: 64,
            ..Limits::default()
        });
        reg.run(
            &ctx,
            "file_write",
            &serde_json::json!({"file_path": "big.txt", "content": "x".repeat(500)}).to_string(),
        )
        .await;
        let capped = small
            .run(&ctx, "file_read", r#"{"file_path": "big.txt"}"#)
            .await;
        assert_eq!(capped.content["truncated"], true);
        assert_eq!(capped.content["output"].as_str().unwrap().len(), 64);
        assert_eq!(
            reg.schemas(&["todo_write".into(), "nope".into()], "zh")
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn grep_over_many_files_reports_progress() {
        let dir = tempfile::tempdir().unwrap();
        let (_tx, mut ctx) = context(&dir);
        for i in 0..(GREP_PROGRESS_EVERY + 1) {
            std::fs::write(ctx.workspace.join(format!("f{i}.txt")), "hay\n").unwrap();
        }
        let (notes_tx, mut notes) = tokio::sync::mpsc::unbounded_channel();
        ctx.progress = crate::Progress::new(notes_tx, "call_g");
        let reg = Registry::builtin(Limits::default());
        let out = reg.run(&ctx, "grep", r#"{"pattern": "needle"}"#).await;
        assert!(!out.is_error, "{out:?}");
        let note = notes.try_recv().unwrap();
        assert_eq!(
            (note.tool_call_id.as_str(), note.stream, note.closed),
            ("call_g", "info", false)
        );
        assert_eq!(note.text, format!("searched {GREP_PROGRESS_EVERY} files"));
        assert!(
            notes.try_recv().is_err(),
            "one note per {GREP_PROGRESS_EVERY} files"
        );
    }
}
