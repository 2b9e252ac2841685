//! Knowledge bases and their documents: the parse, chunk and index pipeline, the tantivy
//! index per knowledge base (derived from the chunk table) and retrieval.
//!
//! Allowed dependencies: platform, providers (the embedding model). This crate never depends on actix or any other HTTP
//! server type; the `server` app crate adapts it to routes. The tidy test in `xtask`
//! enforces the rule.
//!
//! Who may do what: a knowledge base, its documents and its retrieval are its owner's and an
//! administrator's; anyone else is told it does not exist.

mod db;
mod embed;
mod error;
mod index;
mod model;
pub mod parse;
mod service;
pub mod split;

pub use db::{IngestSettings, SeaOrmKnowledge};
pub use embed::Embedder;
pub use error::KnowledgeError;
pub use model::{
    Doc, DocQuery, DocStatus, Hit, KnowledgeBase, KnowledgeBaseQuery, KnowledgeBaseSummary,
    KnowledgeBaseUpdate, NewFile, NewKnowledgeBase, TaskProgress,
};
pub use service::KnowledgeBases;
