//! The conversation storage service: what runs write and read.

use async_trait::async_trait;
use std::collections::BTreeMap;

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
    /// Visible stored messages (hidden ones are not counted).
    pub message_count: u64,
    /// Visible messages from the user.
    pub user_count: u64,
    /// Visible messages from agents (role `assistant`).
    pub agent_count: u64,
    /// Whether the share link answers (owner's choice).
    pub shared: bool,
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

impl StoredMessage {
    /// Withheld from readers: `metadata.hidden_from_chat|hide_from_chat == true` or
    /// `metadata.sse_visible == false`.
    pub fn is_hidden(&self) -> bool {
        self.metadata["hidden_from_chat"] == true
            || self.metadata["hide_from_chat"] == true
            || self.metadata["sse_visible"] == false
    }

    /// The child session a sub-agent's message belongs to (`metadata.sub_session_id`): such
    /// messages are stored in their parent conversation, outside its own history.
    pub fn sub_session(&self) -> Option<&str> {
        self.metadata["sub_session_id"].as_str()
    }
}

/// How a list is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortBy {
    /// Last updated first (the default).
    #[default]
    Date,
    /// Title, ascending.
    Title,
    /// Most messages first.
    Messages,
}

/// A page of conversations.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// From 1.
    pub page: u64,
    /// 1..=100.
    pub page_size: u64,
    /// Case-insensitive substring of the title or the session id; `%` and `_` are literal.
    pub search: Option<String>,
    pub agent_id: Option<String>,
    /// Admins only: one user's conversations (ignored for everyone else).
    pub user_id: Option<String>,
    pub sort_by: SortBy,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConversationPage {
    pub items: Vec<Conversation>,
    pub total: u64,
}

/// The result of editing the last user message.
#[derive(Debug, Clone, PartialEq)]
pub struct EditedConversation {
    pub conversation: Conversation,
    /// Stored messages kept (through the edited one).
    pub message_count: u64,
    pub last_user_message: StoredMessage,
}

/// How token usage is grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    Agent,
    User,
    Session,
}

/// Token-usage statistics filters; `from`/`until` bound `started_at` (`until` exclusive).
#[derive(Debug, Clone)]
pub struct TokenStatsQuery {
    pub dimension: Dimension,
    /// Admins only (everyone else sees their own).
    pub user_id: Option<String>,
    pub agent_id: Option<String>,
    pub session_id: Option<String>,
    pub request_source: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// Figures over a set of runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenFigures {
    pub session_count: u64,
    pub run_count: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    pub cached_tokens: u64,
    pub reasoning_tokens: u64,
    /// Model calls (steps) of the runs.
    pub model_call_count: u64,
}

/// One group of [`TokenStats`]: the agent, user or session id and its figures.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenGroup {
    pub key: String,
    pub figures: TokenFigures,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TokenStats {
    pub summary: TokenFigures,
    /// Largest total first.
    pub items: Vec<TokenGroup>,
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

    /// A page of the caller's conversations (admins: everyone's, or one user's).
    async fn list(
        &self,
        actor: &Actor,
        query: ListQuery,
    ) -> Result<ConversationPage, ConversationError>;

    async fn rename(
        &self,
        actor: &Actor,
        session_id: &str,
        title: &str,
    ) -> Result<Conversation, ConversationError>;

    /// Deletes the row, its messages and its share state; its usage rows stay in the totals
    /// but lose their link to the conversation. (The replay log is the runtime's.)
    async fn delete(&self, actor: &Actor, session_id: &str) -> Result<(), ConversationError>;

    /// A deleted user's conversations: every row, its messages, share state and the owner's
    /// count go (usage rows stay in the totals, unlinked, as on `delete`). Returns their
    /// session ids, so the runtime can drop their replay logs. Idempotent.
    async fn remove_user(&self, user_id: &str) -> Result<Vec<String>, ConversationError>;

    /// Turns the share link on or off (the owner only).
    async fn set_shared(
        &self,
        actor: &Actor,
        session_id: &str,
        shared: bool,
    ) -> Result<Conversation, ConversationError>;

    /// A shared conversation and its messages, for anyone; `NotFound` unless shared.
    async fn shared(
        &self,
        session_id: &str,
    ) -> Result<(Conversation, Vec<StoredMessage>), ConversationError>;

    /// Keeps the messages through the last visible user message, replaces its text with
    /// `content` and retitles the conversation. `NoUserMessage` when there is none.
    async fn edit_last_user_message(
        &self,
        actor: &Actor,
        session_id: &str,
        content: &str,
    ) -> Result<EditedConversation, ConversationError>;

    /// Tool calls per tool name in the caller's own conversations updated since `since`
    /// (optionally of one agent).
    async fn tool_usage(
        &self,
        actor: &Actor,
        since: DateTime<Utc>,
        agent_id: Option<&str>,
    ) -> Result<BTreeMap<String, u64>, ConversationError>;

    /// Token usage grouped by agent, user or session (non-admins: their own runs only).
    async fn token_stats(
        &self,
        actor: &Actor,
        query: TokenStatsQuery,
    ) -> Result<TokenStats, ConversationError>;

    /// The caller's own visible messages (what users said and agents answered) from their
    /// conversations other than `except_session` that contain every one of `terms`
    /// (case-insensitively; `%` and `_` literal), newest first, at most `limit`.
    async fn recall(
        &self,
        actor: &Actor,
        terms: &[String],
        except_session: &str,
        limit: u64,
    ) -> Result<Vec<Recalled>, ConversationError>;
}

/// A message found by [`Conversations::recall`], with its conversation's title.
#[derive(Debug, Clone, PartialEq)]
pub struct Recalled {
    pub session_id: String,
    pub title: String,
    pub message: StoredMessage,
}
