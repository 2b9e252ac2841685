//! Conversations and their messages, sharing, titles and token-usage records.
//!
//! Allowed dependencies: platform. This crate never depends on actix or any other HTTP
//! server type; the `server` app crate adapts it to routes. The tidy test in `xtask`
//! enforces the rule.
//!
//! Built so far: the storage chat runs write to (conversation rows created on a session's
//! first run, messages appended as each step completes, one token-usage row per run), owner
//! scoped: another user's conversation answers exactly like a missing one. The conversation
//! routes (list, messages, title, delete, share) arrive with their issue.

mod db;
mod error;
mod service;
mod title;

pub use db::SeaOrmConversations;
pub use error::ConversationError;
pub use service::{Conversation, Conversations, NewConversation, StoredMessage, UsageRecord};
pub use title::title_from;
