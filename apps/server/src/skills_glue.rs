//! The skills' view of agents, over the agents crate: who may see an agent, its
//! `availableSkills`, and where its workspaces are.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use platform::Actor;
use tooling::skills::{SkillAgent, SkillAgents};

pub(crate) struct AgentsForSkills {
    pub agents: Arc<dyn agents::Agents>,
    pub workspaces: agents::Workspaces,
}

#[async_trait]
impl SkillAgents for AgentsForSkills {
    async fn visible(
        &self,
        actor: &Actor,
        agent_id: &str,
    ) -> Result<Option<SkillAgent>, anyhow::Error> {
        match self.agents.get(actor, agent_id).await {
            Ok(agent) => Ok(Some(SkillAgent {
                name: agent.config.name().to_owned(),
                available_skills: agent.config.text_list("availableSkills"),
                id: agent.id,
                owner_id: agent.user_id,
            })),
            Err(agents::AgentError::NotFound) => Ok(None),
            Err(e) => Err(anyhow::Error::new(e)),
        }
    }

    fn workspace(&self, user_id: &str, agent_id: &str) -> Result<PathBuf, anyhow::Error> {
        Ok(self.workspaces.root_of(user_id, agent_id)?)
    }

    fn workspaces_of(&self, agent_id: &str) -> Result<Vec<(String, PathBuf)>, anyhow::Error> {
        Ok(self.workspaces.of_agent(agent_id)?)
    }
}

/// An agent's skills follow its configuration into its owner's workspace when it is saved, as
/// in Sage: copied at create; copied and the de-selected ones removed at update.
pub(crate) struct SkillsFollowAgents {
    pub skills: Arc<dyn tooling::skills::Skills>,
}

#[async_trait]
impl agents::AgentSaved for SkillsFollowAgents {
    async fn agent_saved(
        &self,
        owner_id: &str,
        agent_id: &str,
        skills: Vec<String>,
        created: bool,
    ) {
        if created && skills.is_empty() {
            return;
        }
        let owner = Actor::new(owner_id, false);
        if let Err(e) = self
            .skills
            .sync_workspace(&owner, None, agent_id, !created)
            .await
        {
            tracing::warn!(agent_id, error = %e, "the agent's skills could not be copied into its workspace");
        }
    }
}
