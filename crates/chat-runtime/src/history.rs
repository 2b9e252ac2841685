//! Conversation-level operations that touch a live run or its workspace: reading with the
//! replay position, deleting, editing before a re-run, the session's files and its export.

use std::time::Duration;

use conversations::{Conversation, EditedConversation, StoredMessage};
use platform::Actor;
use serde_json::{Map, Value, json};

use crate::runtime::Runtime;
use crate::service::{ConversationView, SessionDownload, SessionFiles};
use crate::{ChatError, prompt};

/// A stored message as the history routes answer it: Sage's keys (`type` and `message_type`
/// both), absent optional fields left out; a sub-agent's message names its child session.
pub fn message_json(m: &StoredMessage, session_id: &str) -> Value {
    let mut out = Map::new();
    out.insert("role".into(), json!(m.role));
    out.insert("content".into(), m.content.clone());
    if let Some(r) = &m.reasoning_content {
        out.insert("reasoning_content".into(), json!(r));
    }
    if let Some(calls) = &m.tool_calls {
        out.insert("tool_calls".into(), calls.clone());
    }
    out.insert("message_id".into(), json!(m.message_id));
    if let Some(id) = &m.tool_call_id {
        out.insert("tool_call_id".into(), json!(id));
    }
    out.insert("type".into(), json!(m.message_type));
    out.insert("message_type".into(), json!(m.message_type));
    out.insert(
        "timestamp".into(),
        json!(m.created_at.timestamp_millis() as f64 / 1000.0),
    );
    if let Some(name) = &m.agent_name {
        out.insert("agent_name".into(), json!(name));
    }
    out.insert("metadata".into(), m.metadata.clone());
    out.insert(
        "session_id".into(),
        json!(m.sub_session().unwrap_or(session_id)),
    );
    Value::Object(out)
}

/// `conversation_info` of the history routes.
pub fn conversation_info(c: &Conversation) -> Value {
    json!({"session_id": c.session_id, "agent_id": c.agent_id, "agent_name": c.agent_name,
           "title": c.title, "created_at": c.created_at.to_rfc3339(),
           "updated_at": c.updated_at.to_rfc3339()})
}

/// A readable Markdown transcript of the visible messages.
fn transcript(c: &Conversation, messages: &[StoredMessage]) -> String {
    let mut out = format!(
        "# {}\n\n- Session: `{}`\n- Agent: {} (`{}`)\n- Created: {}\n- Updated: {}\n",
        c.title,
        c.session_id,
        c.agent_name,
        c.agent_id,
        c.created_at.to_rfc3339(),
        c.updated_at.to_rfc3339()
    );
    for m in messages {
        let who = match m.role.as_str() {
            "user" => "User".to_owned(),
            "tool" => format!(
                "Tool result (`{}`)",
                m.tool_call_id.as_deref().unwrap_or("")
            ),
            _ => m.agent_name.clone().unwrap_or_else(|| "Assistant".into()),
        };
        out.push_str(&format!(
            "\n## {who} · {}\n\n",
            m.created_at.format("%Y-%m-%d %H:%M:%S UTC")
        ));
        if let Some(r) = m.reasoning_content.as_deref().filter(|r| !r.is_empty()) {
            for line in r.lines() {
                out.push_str(&format!("> {line}\n"));
            }
            out.push('\n');
        }
        let text = prompt::text_of(&m.content);
        if !text.is_empty() {
            if m.role == "tool" {
                out.push_str(&format!("```\n{text}\n```\n"));
            } else {
                out.push_str(&text);
                out.push('\n');
            }
        }
        for call in m
            .tool_calls
            .as_ref()
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            out.push_str(&format!(
                "\n- Tool call `{}`: `{}`\n",
                call["function"]["name"].as_str().unwrap_or(""),
                call["function"]["arguments"].as_str().unwrap_or("")
            ));
        }
    }
    out
}

fn visible(messages: Vec<StoredMessage>) -> Vec<StoredMessage> {
    messages.into_iter().filter(|m| !m.is_hidden()).collect()
}

impl Runtime {
    /// Asks the session's run to stop and waits until it has let the session go.
    async fn stop_run(&self, session_id: &str) -> Result<(), ChatError> {
        let hub = self.hub();
        let Some(holder) = hub.holder(session_id).await? else {
            return Ok(());
        };
        hub.request_interrupt(session_id, &holder).await?;
        let deadline = tokio::time::Instant::now() + self.takeover_wait();
        while hub.holder(session_id).await?.is_some() {
            if tokio::time::Instant::now() >= deadline {
                return Err(ChatError::SessionRunning);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Ok(())
    }

    /// A deleted user's live runs stop, then their conversations and replay logs go.
    async fn remove_user(&self, user_id: &str) -> Result<(), ChatError> {
        for run in self.hub().running().await? {
            if run.user_id == user_id {
                self.stop_run(&run.session_id).await?;
            }
        }
        for session_id in self.conversations().remove_user(user_id).await? {
            self.hub().delete_log(&session_id).await?;
        }
        Ok(())
    }

    pub(crate) async fn view(
        &self,
        actor: &Actor,
        session_id: &str,
    ) -> Result<ConversationView, ChatError> {
        let conversations = self.conversations();
        let conversation = conversations.get(actor, session_id).await?;
        let messages = visible(conversations.messages(actor, session_id).await?);
        let next_stream_index = self.hub().live_length(session_id).await?;
        Ok(ConversationView {
            conversation,
            messages,
            next_stream_index,
        })
    }

    pub(crate) async fn shared_view(
        &self,
        session_id: &str,
    ) -> Result<ConversationView, ChatError> {
        let (conversation, messages) = self.conversations().shared(session_id).await?;
        let next_stream_index = self.hub().live_length(session_id).await?;
        Ok(ConversationView {
            conversation,
            messages: visible(messages),
            next_stream_index,
        })
    }

    pub(crate) async fn delete(&self, actor: &Actor, session_id: &str) -> Result<(), ChatError> {
        self.conversations().get(actor, session_id).await?;
        self.stop_run(session_id).await?;
        self.hub().delete_log(session_id).await?;
        self.conversations().delete(actor, session_id).await?;
        Ok(())
    }

    pub(crate) async fn edit(
        &self,
        actor: &Actor,
        session_id: &str,
        content: &str,
    ) -> Result<EditedConversation, ChatError> {
        self.conversations().get(actor, session_id).await?;
        let text = prompt::text_of(&prompt::strip_control_tags(&json!(content)));
        if text.trim().is_empty() {
            return Err(ChatError::Invalid {
                field: "content",
                reason: "is required".into(),
            });
        }
        self.stop_run(session_id).await?;
        let edited = self
            .conversations()
            .edit_last_user_message(actor, session_id, &text)
            .await?;
        self.hub().delete_log(session_id).await?;
        Ok(edited)
    }

    /// The conversation's owner, agent and workspace directory (only for a caller who may
    /// see the conversation).
    async fn session_workspace(
        &self,
        actor: &Actor,
        session_id: &str,
    ) -> Result<(Conversation, std::path::PathBuf), ChatError> {
        let c = self.conversations().get(actor, session_id).await?;
        let root = self.workspaces().root_of(&c.user_id, &c.agent_id)?;
        Ok((c, root))
    }

    pub(crate) async fn list_files(
        &self,
        actor: &Actor,
        session_id: &str,
        dir: &str,
        max_depth: u32,
    ) -> Result<SessionFiles, ChatError> {
        let (c, root) = self.session_workspace(actor, session_id).await?;
        let store = self.workspaces();
        let dir = dir.to_owned();
        let listing = tokio::task::spawn_blocking(move || store.list(&root, &dir, max_depth))
            .await
            .map_err(|e| ChatError::Internal(e.into()))??;
        Ok(SessionFiles {
            listing,
            user_id: c.user_id,
            agent_id: c.agent_id,
        })
    }

    pub(crate) async fn download_file(
        &self,
        actor: &Actor,
        session_id: &str,
        path: &str,
    ) -> Result<agents::Download, ChatError> {
        let (_, root) = self.session_workspace(actor, session_id).await?;
        let store = self.workspaces();
        let path = path.to_owned();
        Ok(
            tokio::task::spawn_blocking(move || store.download(&root, &path))
                .await
                .map_err(|e| ChatError::Internal(e.into()))??,
        )
    }

    pub(crate) async fn delete_file(
        &self,
        actor: &Actor,
        session_id: &str,
        path: &str,
        missing_ok: bool,
    ) -> Result<(), ChatError> {
        let (_, root) = self.session_workspace(actor, session_id).await?;
        let store = self.workspaces();
        let path = path.to_owned();
        let removed = tokio::task::spawn_blocking(move || store.delete(&root, &path))
            .await
            .map_err(|e| ChatError::Internal(e.into()))?;
        match removed {
            Err(agents::AgentError::FileNotFound) if missing_ok => Ok(()),
            other => Ok(other?),
        }
    }

    pub(crate) async fn download(
        &self,
        actor: &Actor,
        session_id: &str,
    ) -> Result<SessionDownload, ChatError> {
        let view = self.view(actor, session_id).await?;
        let c = &view.conversation;
        let messages: Vec<Value> = view
            .messages
            .iter()
            .map(|m| message_json(m, &c.session_id))
            .collect();
        let document = json!({"conversation_info": conversation_info(c),
                              "message_count": messages.len(), "messages": messages});
        let json_bytes =
            serde_json::to_vec_pretty(&document).map_err(|e| ChatError::Internal(e.into()))?;
        let extras = vec![
            ("messages.json".to_owned(), json_bytes),
            (
                "transcript.md".to_owned(),
                transcript(c, &view.messages).into_bytes(),
            ),
        ];
        let store = self.workspaces();
        let root = store.root_of(&c.user_id, &c.agent_id)?;
        let chunks = store.export(&root, extras, "workspace")?;
        Ok(SessionDownload {
            name: format!("{}.zip", c.session_id),
            chunks,
        })
    }
}

#[async_trait::async_trait]
impl platform::UserCleanup for Runtime {
    async fn user_deleted(&self, user_id: &str) -> Result<(), platform::actor::CleanupError> {
        Ok(self.remove_user(user_id).await?)
    }
}
