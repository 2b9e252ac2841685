//! The agent service: configurations and who may see or change them.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use platform::{Actor, Page, PageRequest};
use serde_json::{Map, Value};

use crate::{AgentConfig, AgentError};

/// A stored agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    pub id: String,
    /// The owner.
    pub user_id: String,
    pub config: AgentConfig,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Agent {
    /// The `AgentConfigDTO` answer: every field, plus id, owner and timestamps.
    pub fn to_dto(&self) -> Map<String, Value> {
        let mut dto = crate::config::with_defaults(&self.config);
        dto.insert("id".into(), Value::String(self.id.clone()));
        dto.insert("user_id".into(), Value::String(self.user_id.clone()));
        dto.insert(
            "created_at".into(),
            Value::String(self.created_at.to_rfc3339()),
        );
        dto.insert(
            "updated_at".into(),
            Value::String(self.updated_at.to_rfc3339()),
        );
        dto
    }
}

/// Owners and admins edit and delete; users granted an agent read and use it; everyone else
/// gets `NotFound`.
/// A page of agents as JSON documents.
pub type JsonPage = Page<Box<serde_json::value::RawValue>>;

/// Told after an agent's configuration is saved (created or updated), so what follows it
/// elsewhere (its skills copied into the owner's workspace) can follow. The hook logs its own
/// failures: the saved configuration stands either way.
#[async_trait]
pub trait AgentSaved: Send + Sync {
    async fn agent_saved(&self, owner_id: &str, agent_id: &str, skills: Vec<String>, created: bool);
}

#[async_trait]
pub trait Agents: Send + Sync {
    /// One page of own and granted agents, newest first (admins: all), and their total.
    async fn list(&self, actor: &Actor, page: PageRequest) -> Result<Page<Agent>, AgentError>;

    /// The same page as [`Agents::list`], each agent as its `AgentConfigDTO` JSON
    /// ([`Agent::to_dto`]) assembled from the stored text, in one query (the list's hot path).
    /// Pages may be shared from a cache that every change of an agent or a grant drops.
    async fn list_json(
        &self,
        actor: &Actor,
        page: PageRequest,
    ) -> Result<Arc<JsonPage>, AgentError>;

    /// Creates an agent owned by the caller; returns its id. Names are unique per owner, and
    /// an owner has at most the deployment's quota of agents.
    async fn create(&self, actor: &Actor, config: Map<String, Value>)
    -> Result<String, AgentError>;

    async fn get(&self, actor: &Actor, id: &str) -> Result<Agent, AgentError>;

    /// Replaces the configuration (owner or admin).
    async fn update(
        &self,
        actor: &Actor,
        id: &str,
        config: Map<String, Value>,
    ) -> Result<String, AgentError>;

    async fn delete(&self, actor: &Actor, id: &str) -> Result<String, AgentError>;

    /// The users the agent is shared with (owner or admin).
    async fn grants(&self, actor: &Actor, id: &str) -> Result<Vec<String>, AgentError>;

    /// Replaces the users the agent is shared with (owner or admin); the owner is dropped.
    async fn set_grants(
        &self,
        actor: &Actor,
        id: &str,
        user_ids: Vec<String>,
    ) -> Result<Vec<String>, AgentError>;

    /// A draft agent from a description (the caller's provider).
    async fn auto_generate(
        &self,
        actor: &Actor,
        description: &str,
        tools: Vec<String>,
        language: crate::Language,
    ) -> Result<Value, AgentError>;

    /// An improved system prompt (the caller's provider).
    async fn optimize_prompt(
        &self,
        actor: &Actor,
        original: &str,
        goal: &str,
        language: crate::Language,
    ) -> Result<Value, AgentError>;

    /// Ability cards for an agent the caller may use (the agent's provider, else theirs).
    async fn abilities(
        &self,
        actor: &Actor,
        agent_id: &str,
        context: &str,
        language: crate::Language,
    ) -> Result<Value, AgentError>;

    /// Whether the caller owns an agent.
    async fn has_agent(&self, actor: &Actor) -> Result<bool, AgentError>;
}
