//! Knowledge bases, documents, task progress and retrieval hits, with their validation.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha1::{Digest, Sha1};

use crate::KnowledgeError;

/// A knowledge base.
#[derive(Debug, Clone, PartialEq)]
pub struct KnowledgeBase {
    pub id: String,
    /// The owner.
    pub user_id: String,
    pub name: String,
    pub intro: String,
    /// A free string; `qa` bases take question/answer tables (csv, xlsx, xls).
    pub kb_type: String,
    /// `{"kdbAttach": {"language": …}}` and whatever the owner stored with `update`.
    pub setting: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl KnowledgeBase {
    /// Sage's index name: `kdb_` and the first 8 hex digits of sha1(id).
    pub fn index_name(&self) -> String {
        index_name(&self.id)
    }

    pub fn is_qa(&self) -> bool {
        self.kb_type.eq_ignore_ascii_case("qa")
    }
}

pub(crate) fn index_name(id: &str) -> String {
    let digest = Sha1::digest(id.as_bytes());
    format!("kdb_{}", &hex::encode(digest)[..8])
}

/// A knowledge base in a listing, with its number of documents.
#[derive(Debug, Clone, PartialEq)]
pub struct KnowledgeBaseSummary {
    pub base: KnowledgeBase,
    pub doc_count: u64,
}

#[derive(Debug, Clone, Default)]
pub struct NewKnowledgeBase {
    pub name: String,
    pub kb_type: String,
    pub intro: Option<String>,
    pub language: Option<String>,
}

/// Changes to a knowledge base; empty or absent fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct KnowledgeBaseUpdate {
    pub name: Option<String>,
    pub intro: Option<String>,
    /// Replaces the stored setting when it is an object.
    pub setting: Option<Value>,
}

/// `GET /list`'s filters.
#[derive(Debug, Clone, Default)]
pub struct KnowledgeBaseQuery {
    /// Part of the name, case-insensitive, `%` and `_` literal.
    pub name: Option<String>,
    pub kb_type: Option<String>,
    pub page: platform::pagination::PageRequest,
}

/// Where a document is in the pipeline (Sage's numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocStatus {
    Pending = 0,
    Processing = 1,
    Done = 2,
    Failed = 3,
}

impl DocStatus {
    pub fn code(self) -> i32 {
        self as i32
    }

    pub fn from_code(code: i32) -> Option<Self> {
        Some(match code {
            0 => DocStatus::Pending,
            1 => DocStatus::Processing,
            2 => DocStatus::Done,
            3 => DocStatus::Failed,
            _ => return None,
        })
    }
}

/// A document of a knowledge base.
#[derive(Debug, Clone, PartialEq)]
pub struct Doc {
    pub id: String,
    pub kdb_id: String,
    /// The owner of its knowledge base.
    pub user_id: String,
    pub task_id: String,
    pub name: String,
    /// `file`, `qa` or `eml`.
    pub data_source: String,
    pub status: DocStatus,
    /// Why the last attempt failed (only while failed).
    pub error: Option<String>,
    pub attempts: i32,
    pub size: u64,
    /// `{"size", "chunks", "title"?, "error"?}`.
    pub metadata: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `GET /doc/list`'s filters.
#[derive(Debug, Clone, Default)]
pub struct DocQuery {
    pub kdb_id: String,
    pub name: Option<String>,
    pub statuses: Vec<DocStatus>,
    pub task_id: Option<String>,
    pub page: platform::pagination::PageRequest,
}

/// A received file to add: already on disk (a temporary file the service moves into place).
#[derive(Debug, Clone)]
pub struct NewFile {
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
}

/// The documents of one upload task, by status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TaskProgress {
    pub success: u64,
    pub fail: u64,
    pub in_progress: u64,
    pub waiting: u64,
    pub total: u64,
}

impl TaskProgress {
    /// Integer percent of successes (Sage's `taskProcess`); 0 for an empty task.
    pub fn percent(&self) -> u64 {
        (self.success * 100).checked_div(self.total).unwrap_or(0)
    }
}

/// One retrieval result: a passage of a document (overlapping chunks of one document merged).
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub doc_id: String,
    /// The first chunk of the passage.
    pub segment_id: String,
    pub content: String,
    pub score: f32,
    /// Character offsets of the passage in the document's text.
    pub start: u64,
    pub end: u64,
    pub title: String,
    /// The document's name.
    pub path: String,
}

pub(crate) const MAX_NAME_CHARS: usize = 128;
pub(crate) const MAX_INTRO_CHARS: usize = 2000;
pub(crate) const MAX_TYPE_CHARS: usize = 32;
pub(crate) const MAX_SETTING_BYTES: usize = 16 * 1024;
pub(crate) const MAX_QUERY_CHARS: usize = 2000;
pub(crate) const MAX_TOP_K: u64 = 50;
pub(crate) const MAX_FILE_NAME_CHARS: usize = 255;

pub(crate) fn check_text(
    field: &'static str,
    value: &str,
    max: usize,
    required: bool,
) -> Result<String, KnowledgeError> {
    let value = value.trim();
    if required && value.is_empty() {
        return Err(KnowledgeError::invalid(field, "is required"));
    }
    if value.chars().count() > max {
        return Err(KnowledgeError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if value.contains('\0') {
        return Err(KnowledgeError::invalid(
            field,
            "must not contain NUL characters",
        ));
    }
    Ok(value.to_owned())
}

/// The stored name of an uploaded file: its last path component, without control characters.
pub(crate) fn file_name(raw: &str) -> Result<String, KnowledgeError> {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default().trim();
    let name: String = last.chars().filter(|c| !c.is_control()).collect();
    if name.is_empty() || name == "." || name == ".." {
        return Err(KnowledgeError::invalid("files", "every file needs a name"));
    }
    if name.chars().count() > MAX_FILE_NAME_CHARS {
        return Err(KnowledgeError::invalid(
            "files",
            format!("file names must be at most {MAX_FILE_NAME_CHARS} characters"),
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_follow_sage() {
        // sha1("abc") = a9993e36…
        assert_eq!(index_name("abc"), "kdb_a9993e36");
    }

    #[test]
    fn progress_is_an_integer_percent() {
        let p = TaskProgress {
            success: 1,
            total: 3,
            ..TaskProgress::default()
        };
        assert_eq!(p.percent(), 33);
        assert_eq!(TaskProgress::default().percent(), 0);
    }

    #[test]
    fn file_names_keep_their_last_component() {
        assert_eq!(file_name("../../etc/passwd").unwrap(), "passwd");
        assert_eq!(file_name("C:\\x\\a b.pdf").unwrap(), "a b.pdf");
        assert!(file_name("dir/").is_err());
        assert!(file_name("..").is_err());
    }
}
