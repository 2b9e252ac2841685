//! The conversation storage service: what runs write and read.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use platform::Actor;
use serde_json::Value;

use crate::ConversationError;

/// A conversation (one per session id); its owner never changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    pub session_id: String,
    pub user_id: String,
    pub agent_id: String,
    pub agent_name: String,
    pub title: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a first run creates.
#[derive(Debug, Clone)]
pub struct NewConversation {
    pub session_id: String,
    pub agent_id: String,
    pub agent_name: String,
    pub title: String,
}

/// One merged message as streamed (all deltas of a `message_id` joined).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMessage {
    pub message_id: String,
    /// `user`, `assistant` or `tool`.
    pub role: String,
    /// The line `type` (`do_subtask_result`, `tool_call`, `tool_call_result`, …).
    pub message_type: String,
    /// A string, or a list of content parts.
    pub content: Value,
    pub reasoning_content: Option<String>,
    /// OpenAI-style `tool_calls` (whole, not deltas).
    pub tool_calls: Option<Value>,
    pub tool_call_id: Option<String>,
    pub agent_name: Option<String>,
    pub metadata: Value,
    pub created_at: DateTime<Utc>,
}

/// The token usage of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRecord {
    pub session_id: String,
    pub user_id: String,
    pub agent_id: String,
    /// `api/chat`, `api/stream` or `api/web-stream`.
    pub request_source: String,
    pub model: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    pub cached_tokens: u64,
    pub reasoning_tokens: u64,
    pub step_count: u32,
    pub step_model_names: Vec<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

/// Conversations are their owner's (admins see all); everyone else gets `NotFound`.
#[async_trait]
pub trait Conversations: Send + Sync {
    /// The caller's conversation for `new.session_id`, created when absent. A session id
    /// that belongs to someone else is `NotFound`.
    async fn open(
        &self,
        actor: &Actor,
        new: NewConversation,
    ) -> Result<Conversation, ConversationError>;

    async fn get(&self, actor: &Actor, session_id: &str)
    -> Result<Conversation, ConversationError>;

    /// Every stored message in order.
    async fn messages(
        &self,
        actor: &Actor,
        session_id: &str,
    ) -> Result<Vec<StoredMessage>, ConversationError>;

    /// Appends messages after the stored ones and touches `updated_at`.
    async fn append(
        &self,
        actor: &Actor,
        session_id: &str,
        messages: Vec<StoredMessage>,
    ) -> Result<(), ConversationError>;

    /// Records one run's usage (`usage.user_id` is the conversation's owner).
    async fn record_usage(
        &self,
        actor: &Actor,
        usage: UsageRecord,
    ) -> Result<(), ConversationError>;

    /// The usage rows of a conversation, oldest first.
    async fn usage(
        &self,
        actor: &Actor,
        session_id: &str,
    ) -> Result<Vec<UsageRecord>, ConversationError>;
}
