//! Skills: folders with a `SKILL.md` (front-matter `name` and `description`) that agents load.
//! Three places hold them: the system's (`<data dir>/skills/system`, admins change it), each
//! user's (`<data dir>/skills/users/<user id>`), and each agent workspace's `skills/` (the copy
//! an agent's run reads). A user's skill of a name hides the system's of the same name.
//!
//! [`Skills`] is the service; [`SkillAgents`] the port the server implements over the agents
//! crate (who may see an agent, its `availableSkills`, and where its workspaces are).

mod package;
mod store;

use std::path::PathBuf;

use platform::{Actor, ErrorKind};

pub use package::{FrontMatter, folder_name, front_matter};
pub use store::FsSkills;
pub(crate) use store::workspace_skills;

/// Where a skill lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    System,
    User,
    Agent,
}

impl Dimension {
    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::System => "system",
            Dimension::User => "user",
            Dimension::Agent => "agent",
        }
    }
}

/// One skill as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillInfo {
    pub name: String,
    pub description: String,
    pub dimension: Dimension,
    /// The user whose skill it is (none for the system's).
    pub owner_user_id: Option<String>,
    pub agent_id: Option<String>,
    pub agent_name: Option<String>,
    /// Where it lives, relative to the data layout (`skills/<folder>`,
    /// `users/<user id>/skills/<folder>`, `agents/<user id>/<agent id>/skills/<folder>`).
    pub path: String,
}

/// Which skills a listing shows.
#[derive(Debug, Clone, Default)]
pub struct SkillQuery {
    /// `system`, `user`, `agent`, or all but the agent's (none or `all`).
    pub dimension: Option<Dimension>,
    /// With `agent`: that agent's workspace copies; otherwise only the skills the agent's
    /// `availableSkills` names.
    pub agent_id: Option<String>,
}

/// A skill an agent may take, and the state of the agent's copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvailableSkill {
    pub name: String,
    pub description: String,
    /// `user` when the caller's own skill hides the system's.
    pub source_dimension: Dimension,
    pub source_path: String,
    /// The agent's copy differs from its source.
    pub need_update: bool,
    /// The agent's copy, when there is one.
    pub agent_path: Option<String>,
}

/// Where an uploaded or imported skill goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    System,
    User,
    /// The caller's workspace of this agent.
    Agent(String),
}

/// The answer of a copy into one agent workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncedSkill {
    pub skill_name: String,
    pub agent_id: String,
    pub source_dimension: Dimension,
    pub source_path: String,
    pub target_path: String,
}

/// One workspace's part of a bulk copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceResult {
    pub user_id: String,
    pub workspace_path: String,
    pub updated_skills: Vec<String>,
    pub failed_skills: Vec<String>,
}

/// A copy into every workspace of an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkSync {
    pub agent_id: String,
    pub resolved_skill_names: Vec<String>,
    pub results: Vec<WorkspaceResult>,
}

/// What materialising an agent's skills in one workspace did (skill names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkspaceSync {
    pub synced: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: Vec<String>,
}

/// An agent as the skills need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillAgent {
    pub id: String,
    pub name: String,
    pub owner_id: String,
    pub available_skills: Vec<String>,
}

/// What the skills need to know of agents (implemented by the server over the agents crate).
#[async_trait::async_trait]
pub trait SkillAgents: Send + Sync {
    /// The agent if `actor` may see it (own, granted, or any for admins).
    async fn visible(
        &self,
        actor: &Actor,
        agent_id: &str,
    ) -> Result<Option<SkillAgent>, anyhow::Error>;
    /// The directory of `user_id`'s workspace of `agent_id` (it may not exist yet).
    fn workspace(&self, user_id: &str, agent_id: &str) -> Result<PathBuf, anyhow::Error>;
    /// Every existing workspace of the agent, as (user id, directory).
    fn workspaces_of(&self, agent_id: &str) -> Result<Vec<(String, PathBuf)>, anyhow::Error>;
}

#[derive(Debug, thiserror::Error)]
pub enum SkillError {
    #[error("no such skill")]
    NotFound,
    /// Unknown, or not one the caller may see.
    #[error("no such agent")]
    AgentNotFound,
    /// System skills and other users' workspaces are for admins (and agents' owners).
    #[error("only an administrator (or the agent's owner) may do this")]
    Forbidden,
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// The archive or its `SKILL.md` is not a usable skill.
    #[error("not a usable skill package: {0}")]
    BadPackage(String),
    /// The archive could not be downloaded.
    #[error("the skill could not be downloaded: {0}")]
    Download(String),
    /// The place holds as many skills as allowed.
    #[error("at most {limit} skills")]
    QuotaExceeded { limit: usize },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl SkillError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            SkillError::NotFound | SkillError::AgentNotFound => ErrorKind::NotFound,
            SkillError::Forbidden => ErrorKind::Forbidden,
            SkillError::Invalid { .. } => ErrorKind::Invalid,
            SkillError::BadPackage(_) => ErrorKind::BadRequest,
            SkillError::Download(_) => ErrorKind::Upstream,
            SkillError::QuotaExceeded { .. } => ErrorKind::Conflict,
            SkillError::Internal(_) => ErrorKind::Internal,
        }
    }

    pub fn key(&self) -> &'static str {
        match self {
            SkillError::NotFound => "skill.not_found",
            SkillError::AgentNotFound => "agent.not_found",
            SkillError::Forbidden => "auth.forbidden",
            SkillError::Invalid { .. } => "request.validation",
            SkillError::BadPackage(_) => "skill.invalid_package",
            SkillError::Download(_) => "skill.download_failed",
            SkillError::QuotaExceeded { .. } => "skill.quota_exceeded",
            SkillError::Internal(_) => "internal",
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        SkillError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

/// The skills service.
#[async_trait::async_trait]
pub trait Skills: Send + Sync {
    /// System skills and the caller's own (admins: everyone's user skills), or an agent's
    /// workspace copies; sorted by dimension, then name.
    async fn list(&self, actor: &Actor, query: SkillQuery) -> Result<Vec<SkillInfo>, SkillError>;
    /// Every skill the caller could give the agent (their own hide the system's), with the
    /// state of the agent's copy in the caller's workspace.
    async fn agent_available(
        &self,
        actor: &Actor,
        agent_id: &str,
    ) -> Result<Vec<AvailableSkill>, SkillError>;
    /// Installs the zip at `archive` (replacing a skill of the same folder name).
    async fn install(
        &self,
        actor: &Actor,
        target: Target,
        archive: PathBuf,
    ) -> Result<SkillInfo, SkillError>;
    /// Installs several zips (`(file name, path)`), each on its own: a package that is not a
    /// usable skill fails alone; a target the caller may not use fails the whole call.
    async fn install_many(
        &self,
        actor: &Actor,
        target: Target,
        archives: Vec<(String, PathBuf)>,
    ) -> Result<Vec<(String, Result<SkillInfo, SkillError>)>, SkillError> {
        let mut out = Vec::with_capacity(archives.len());
        for (name, archive) in archives {
            match self.install(actor, target.clone(), archive).await {
                Err(e @ (SkillError::BadPackage(_) | SkillError::Invalid { .. })) => {
                    out.push((name, Err(e)));
                }
                Err(e) => return Err(e),
                Ok(skill) => out.push((name, Ok(skill))),
            }
        }
        Ok(out)
    }
    /// Downloads a zip (through the outbound policy, capped) and installs it.
    async fn import_url(
        &self,
        actor: &Actor,
        target: Target,
        url: &str,
    ) -> Result<SkillInfo, SkillError>;
    /// Removes the caller's copy in the agent's workspace (with `agent_id`), else the
    /// caller's own skill, else (admins) the system's. Removing what is not there succeeds.
    async fn delete(
        &self,
        actor: &Actor,
        name: &str,
        agent_id: Option<&str>,
    ) -> Result<(), SkillError>;
    /// The `SKILL.md` of the caller's skill of that name, else the system's.
    async fn content(&self, actor: &Actor, name: &str) -> Result<String, SkillError>;
    /// Replaces that `SKILL.md` (its front-matter must keep the name and have a description).
    async fn update_content(
        &self,
        actor: &Actor,
        name: &str,
        content: &str,
    ) -> Result<(), SkillError>;
    /// Copies the caller's skill (else the system's) into the caller's workspace of the agent.
    async fn sync_to_agent(
        &self,
        actor: &Actor,
        skill_name: &str,
        agent_id: &str,
    ) -> Result<SyncedSkill, SkillError>;
    /// The agent's owner or an admin: copies skills (default: its `availableSkills`) into
    /// every existing workspace of the agent.
    async fn sync_to_agent_workspaces(
        &self,
        actor: &Actor,
        agent_id: &str,
        names: Option<Vec<String>>,
    ) -> Result<BulkSync, SkillError>;
    /// Before a run: copies each of `names` missing from the run's `workspace` (from
    /// `owner_id`'s skills, else the system's) and answers every skill the workspace then holds
    /// (the catalogue the model is shown; `load_skill` reads them).
    async fn prepare_run(
        &self,
        owner_id: &str,
        workspace: PathBuf,
        names: Vec<String>,
    ) -> Result<Vec<FrontMatter>, SkillError>;
    /// Materialises the agent's `availableSkills` in one workspace (the caller's; an admin may
    /// name another user's), removing other folders when `purge_extra`.
    async fn sync_workspace(
        &self,
        actor: &Actor,
        user_id: Option<&str>,
        agent_id: &str,
        purge_extra: bool,
    ) -> Result<WorkspaceSync, SkillError>;
}
