//! The service trait the server's knowledge-base routes (and the retrieval tool) call.
//!
//! Every method takes the caller: a knowledge base (and its documents) is its owner's, and an
//! administrator's; anyone else gets [`KnowledgeError::NotFound`] /
//! [`KnowledgeError::DocNotFound`], exactly as for an id that does not exist.

use platform::Actor;
use platform::pagination::Page;

use crate::{
    Doc, DocQuery, Hit, KnowledgeBase, KnowledgeBaseQuery, KnowledgeBaseSummary,
    KnowledgeBaseUpdate, KnowledgeError, NewFile, NewKnowledgeBase, TaskProgress,
};

#[async_trait::async_trait]
pub trait KnowledgeBases: Send + Sync {
    async fn create(
        &self,
        actor: &Actor,
        new: NewKnowledgeBase,
    ) -> Result<KnowledgeBase, KnowledgeError>;
    async fn update(
        &self,
        actor: &Actor,
        id: &str,
        update: KnowledgeBaseUpdate,
    ) -> Result<KnowledgeBase, KnowledgeError>;
    async fn get(&self, actor: &Actor, id: &str) -> Result<KnowledgeBase, KnowledgeError>;
    /// The caller's knowledge bases (admins: everyone's), newest first.
    async fn list(
        &self,
        actor: &Actor,
        query: KnowledgeBaseQuery,
    ) -> Result<Page<KnowledgeBaseSummary>, KnowledgeError>;
    /// Removes the knowledge base with its documents, chunks, files and index.
    async fn delete(&self, actor: &Actor, id: &str) -> Result<KnowledgeBase, KnowledgeError>;
    /// Removes every document (with chunks, files and index entries); the base stays.
    async fn clear(&self, actor: &Actor, id: &str) -> Result<KnowledgeBase, KnowledgeError>;
    /// Puts every document back in the queue.
    async fn redo_all(&self, actor: &Actor, id: &str) -> Result<KnowledgeBase, KnowledgeError>;
    /// The best passages for `query` (BM25), at most `top_k` (1–50).
    async fn retrieve(
        &self,
        actor: &Actor,
        id: &str,
        query: &str,
        top_k: u64,
    ) -> Result<(KnowledgeBase, Vec<Hit>), KnowledgeError>;
    async fn docs(
        &self,
        actor: &Actor,
        query: DocQuery,
    ) -> Result<(KnowledgeBase, Page<Doc>), KnowledgeError>;
    async fn doc(&self, actor: &Actor, doc_id: &str) -> Result<Doc, KnowledgeError>;
    /// Stores the files (moved from their temporary paths) as pending documents of one new
    /// task, and returns the task id. Every file is checked before any is stored.
    async fn add_files(
        &self,
        actor: &Actor,
        id: &str,
        files: Vec<NewFile>,
    ) -> Result<(KnowledgeBase, String), KnowledgeError>;
    async fn delete_doc(&self, actor: &Actor, doc_id: &str) -> Result<Doc, KnowledgeError>;
    /// Puts one document back in the queue (attempts start again).
    async fn redo_doc(&self, actor: &Actor, doc_id: &str) -> Result<Doc, KnowledgeError>;
    async fn task_progress(
        &self,
        actor: &Actor,
        id: &str,
        task_id: &str,
    ) -> Result<(KnowledgeBase, TaskProgress), KnowledgeError>;
    /// Puts the documents of one task back in the queue.
    async fn redo_task(
        &self,
        actor: &Actor,
        id: &str,
        task_id: &str,
    ) -> Result<KnowledgeBase, KnowledgeError>;
}
