//! Long-term memory of an agent whose `memoryType` is `user`: `search_memory` finds what the
//! caller said and was answered in their other conversations (their own only), so the model
//! can recall facts across sessions.

use std::sync::Arc;

use async_trait::async_trait;
use conversations::Conversations;
use platform::Actor;
use serde_json::{Value, json};
use tooling::{Tool, ToolContext, ToolError};

pub(crate) const TOOL_NAME: &str = "search_memory";
/// Words of a query that must all appear.
const MAX_TERMS: usize = 5;
const MAX_RESULTS: u64 = 20;
/// Characters of each recalled message shown.
const MAX_SNIPPET_CHARS: usize = 1_000;

/// The caller's memory, for one run (its own conversation left out).
pub(crate) struct MemorySearch {
    pub conversations: Arc<dyn Conversations>,
    pub actor: Actor,
    pub session_id: String,
}

#[async_trait]
impl Tool for MemorySearch {
    fn name(&self) -> &str {
        TOOL_NAME
    }

    fn description(&self, language: &str) -> &str {
        if language == "zh" {
            "在用户以往的对话中检索记忆：返回同时包含所有关键词的消息（最新的在前）及其所在对话。"
        } else {
            "Search the user's earlier conversations: returns the messages that contain every keyword (newest first) with the conversation they are from."
        }
    }

    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {
            "query": {"type": "string", "description": "Keywords, separated by spaces"},
            "limit": {"type": "integer", "minimum": 1, "maximum": MAX_RESULTS, "default": 5}
        }, "required": ["query"]})
    }

    async fn call(&self, _ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        let terms: Vec<String> = args["query"]
            .as_str()
            .unwrap_or_default()
            .split_whitespace()
            .take(MAX_TERMS)
            .map(str::to_owned)
            .collect();
        if terms.is_empty() {
            return Err(ToolError::Invalid("`query` is required".into()));
        }
        let limit = args["limit"].as_u64().unwrap_or(5).clamp(1, MAX_RESULTS);
        let found = self
            .conversations
            .recall(&self.actor, &terms, &self.session_id, limit)
            .await
            .map_err(|e| ToolError::Failed(e.to_string()))?;
        let memories: Vec<Value> = found
            .into_iter()
            .map(|r| {
                let text: String = crate::prompt::text_of(&r.message.content)
                    .chars()
                    .take(MAX_SNIPPET_CHARS)
                    .collect();
                json!({"session_id": r.session_id, "conversation": r.title,
                       "role": r.message.role, "content": text,
                       "time": r.message.created_at.to_rfc3339()})
            })
            .collect();
        Ok(json!({"count": memories.len(), "memories": memories}))
    }
}
