//! The workspace service: who may touch which workspace, then the file operations on the
//! blocking pool.

use std::path::PathBuf;
use std::sync::Arc;

use platform::Actor;

use crate::AgentError;
use crate::service::Agents;
use crate::workspace::{Download, Listing, Workspaces};

/// An upload's checked destination, from [`WorkspaceService::upload_target`].
#[derive(Debug, Clone)]
pub struct UploadTarget {
    root: PathBuf,
}

/// File workspaces per (user, agent).
#[derive(Clone)]
pub struct WorkspaceService {
    agents: Arc<dyn Agents>,
    store: Workspaces,
}

/// Runs a file operation on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AgentError> + Send + 'static,
) -> Result<T, AgentError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| AgentError::Internal(e.into()))?
}

impl WorkspaceService {
    pub fn new(agents: Arc<dyn Agents>, store: Workspaces) -> Self {
        Self { agents, store }
    }

    /// The workspace root for the caller (or, for an admin, the user they name) on an agent
    /// the caller may use.
    async fn root(
        &self,
        actor: &Actor,
        agent_id: &str,
        user_id: Option<&str>,
    ) -> Result<(PathBuf, String), AgentError> {
        self.agents.get(actor, agent_id).await?;
        let user = match user_id.map(str::trim).filter(|u| !u.is_empty()) {
            Some(other) if actor.is_admin => other.to_owned(),
            _ => actor.user_id.clone(),
        };
        Ok((self.store.root_of(&user, agent_id)?, user))
    }

    pub async fn list(
        &self,
        actor: &Actor,
        agent_id: &str,
        user_id: Option<&str>,
        path: &str,
        max_depth: u32,
    ) -> Result<(Listing, String), AgentError> {
        let (root, user) = self.root(actor, agent_id, user_id).await?;
        let (store, path) = (self.store.clone(), path.to_owned());
        let listing = blocking(move || store.list(&root, &path, max_depth)).await?;
        Ok((listing, user))
    }

    pub async fn download(
        &self,
        actor: &Actor,
        agent_id: &str,
        user_id: Option<&str>,
        path: &str,
    ) -> Result<Download, AgentError> {
        let (root, _) = self.root(actor, agent_id, user_id).await?;
        let (store, path) = (self.store.clone(), path.to_owned());
        blocking(move || store.download(&root, &path)).await
    }

    pub async fn delete(
        &self,
        actor: &Actor,
        agent_id: &str,
        user_id: Option<&str>,
        path: &str,
        missing_ok: bool,
    ) -> Result<(), AgentError> {
        let (root, _) = self.root(actor, agent_id, user_id).await?;
        let (store, path) = (self.store.clone(), path.to_owned());
        match blocking(move || store.delete(&root, &path)).await {
            Err(AgentError::FileNotFound) if missing_ok => Ok(()),
            other => other,
        }
    }

    /// Where an upload for the caller may go: checked (agent access, ids) before any byte of
    /// the body is read, so a refused upload stores nothing.
    pub async fn upload_target(
        &self,
        actor: &Actor,
        agent_id: &str,
        user_id: Option<&str>,
    ) -> Result<UploadTarget, AgentError> {
        let (root, _) = self.root(actor, agent_id, user_id).await?;
        Ok(UploadTarget { root })
    }

    /// Moves a received upload (a finished temporary file) to `target_dir`/`file_name`.
    pub async fn place_upload(
        &self,
        target: &UploadTarget,
        target_dir: &str,
        file_name: &str,
        source: PathBuf,
    ) -> Result<String, AgentError> {
        let (store, root, dir, name) = (
            self.store.clone(),
            target.root.clone(),
            target_dir.to_owned(),
            file_name.to_owned(),
        );
        blocking(move || store.place(&root, &dir, &name, &source)).await
    }

    /// Deletes an agent (owner or admin) and every user's workspace of it.
    pub async fn delete_agent(&self, actor: &Actor, agent_id: &str) -> Result<String, AgentError> {
        let id = self.agents.delete(actor, agent_id).await?;
        let (store, removed) = (self.store.clone(), id.clone());
        if let Err(e) = blocking(move || store.remove_agent(&removed)).await {
            tracing::warn!(agent_id = %id, error = %e, "the deleted agent's workspaces stay on disk");
        }
        Ok(id)
    }

    /// Deletes a user's whole workspace for an agent. A non-admin always acts on their own
    /// workspace of an agent they may use (`user_id` is ignored, an agent they cannot see is
    /// `NotFound`); an admin may name any user, and an agent that no longer exists, to clean
    /// up. Returns the logical path, the user and whether anything was there.
    pub async fn delete_workspace(
        &self,
        actor: &Actor,
        agent_id: &str,
        user_id: Option<&str>,
    ) -> Result<(String, String, bool), AgentError> {
        let user = if actor.is_admin {
            if !platform::ids::is_safe_id(agent_id) {
                return Err(AgentError::invalid("agent_id", "is not an agent id"));
            }
            match user_id.map(str::trim).filter(|u| !u.is_empty()) {
                Some(other) if !platform::ids::is_safe_id(other) => {
                    return Err(AgentError::invalid("user_id", "is not a user id"));
                }
                Some(other) => other.to_owned(),
                None => actor.user_id.clone(),
            }
        } else {
            self.agents.get(actor, agent_id).await?;
            actor.user_id.clone()
        };
        let root = self.store.root_of(&user, agent_id)?;
        let logical = format!("workspaces/{user}/{agent_id}");
        let store = self.store.clone();
        let deleted = blocking(move || store.remove_all(&root)).await?;
        Ok((logical, user, deleted))
    }
}

/// A deleted user's workspace files are deleted.
#[async_trait::async_trait]
impl platform::UserCleanup for WorkspaceService {
    async fn user_deleted(&self, user_id: &str) -> Result<(), platform::actor::CleanupError> {
        let store = self.store.clone();
        let user = user_id.to_owned();
        blocking(move || store.remove_user(&user)).await?;
        Ok(())
    }
}
