//! The planner's two ports, implemented over the other domain crates: which agents a task
//! may name (agents) and how a due task runs (chat-runtime, as its owner, in a new session).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chat_runtime::{ChatRuntime, InputMessage, RunRequest, Source};
use futures_util::StreamExt;
use platform::Actor;
use serde_json::{Map, Value};

/// A task may name an agent its owner can see (own or granted).
pub(crate) struct VisibleAgents(pub Arc<dyn agents::Agents>);

#[async_trait]
impl planner::AgentCheck for VisibleAgents {
    async fn usable(&self, actor: &Actor, agent_id: &str) -> Result<bool, anyhow::Error> {
        match self.0.get(actor, agent_id).await {
            Ok(_) => Ok(true),
            Err(agents::AgentError::NotFound) => Ok(false),
            Err(e) => Err(anyhow::Error::new(e)),
        }
    }
}

/// Runs a task as one chat run of its agent; the answer is the run's assistant text.
pub(crate) struct ChatTaskRunner {
    pub chat: Arc<dyn ChatRuntime>,
    /// A run longer than this fails (and may be retried).
    pub time_limit: Duration,
}

#[async_trait]
impl planner::TaskRunner for ChatTaskRunner {
    async fn run(&self, task: &planner::Task) -> Result<String, String> {
        let text = task
            .description
            .clone()
            .filter(|d| !d.trim().is_empty())
            .unwrap_or_else(|| task.name.clone());
        let request = RunRequest {
            source: Source::Task,
            messages: vec![InputMessage {
                message_id: None,
                role: "user".into(),
                content: Value::String(text),
            }],
            session_id: None,
            agent_id: Some(task.agent_id.clone()),
            provider_id: None,
            max_loop_count: None,
            agent_mode: None,
            system_prefix: None,
            system_context: Map::new(),
            available_tools: None,
            available_skills: None,
            available_knowledge_bases: None,
            available_sub_agent_ids: None,
            custom_sub_agents: Vec::new(),
            extra_mcp_config: None,
            language: "en".into(),
        };
        let owner = Actor::new(task.user_id.clone(), false);
        let run = self
            .chat
            .start(&owner, request)
            .await
            .map_err(|e| e.to_string())?;
        let session_id = run.session_id;
        let mut lines = run.lines;
        let collect = async {
            let mut answer = String::new();
            while let Some(line) = lines.next().await {
                let Ok(value) = serde_json::from_slice::<Value>(&line) else {
                    continue;
                };
                let kind = value["type"].as_str().unwrap_or_default();
                let content = value["content"].as_str();
                match (kind, content) {
                    ("error", Some(reason)) => return Err(reason.to_owned()),
                    ("tool_call" | "tool_call_result" | "reasoning_content", _) => {}
                    (_, Some(text)) if value["role"] == "assistant" => answer.push_str(text),
                    _ => {}
                }
            }
            Ok(answer)
        };
        match tokio::time::timeout(self.time_limit, collect).await {
            Ok(outcome) => outcome,
            Err(_) => {
                // The run has no client to stop it: stop it here.
                let _ = self.chat.interrupt(&owner, &session_id).await;
                Err(format!(
                    "the run took longer than {} s",
                    self.time_limit.as_secs()
                ))
            }
        }
    }
}
