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
