//! Conversations and their messages, sharing, titles and token-usage records.
//!
//! Allowed dependencies: platform. This crate never depends on actix or any other HTTP
//! server type; the `server` app crate adapts it to routes. The tidy test in `xtask`
//! enforces the rule.
//!
//! Built so far: the storage chat runs write to (conversation rows created on a session's
//! first run, messages appended as each step completes, one token-usage row per run), owner
//! scoped: another user's conversation answers exactly like a missing one. Listing (paged,
//! searched, sorted on indexed columns; counts kept on the row), rename, delete, sharing,
//! editing the last user message, tool-call and token-usage statistics.

mod db;
mod error;
mod service;
mod title;

pub use db::SeaOrmConversations;
pub use error::ConversationError;
pub use service::{
    Conversation, ConversationPage, Conversations, Dimension, EditedConversation, ListQuery,
    NewConversation, Recalled, SortBy, StoredMessage, TokenFigures, TokenGroup, TokenStats,
    TokenStatsQuery, UsageRecord,
};
pub use title::title_from;
