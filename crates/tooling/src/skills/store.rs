//! [`Skills`] on the local file system: `<data dir>/skills/system/<folder>`,
//! `<data dir>/skills/users/<user id>/<folder>`, and `skills/<folder>` in agent workspaces.
//! Archives unpack into `<data dir>/tmp` and move into place with one rename, so a reader
//! never sees half a skill; a replaced skill is removed after the new one is in place.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use platform::Actor;
use platform::confined::{Confined, ConfinedError};
use platform::outbound::{OutboundPolicy, fetch, http_client_builder};

use super::FrontMatter;
use super::package::{self, folder_name, front_matter, read_skill_md};
use super::{
    AvailableSkill, BulkSync, Dimension, SkillAgent, SkillAgents, SkillError, SkillInfo,
    SkillQuery, Skills, SyncedSkill, Target, WorkspaceResult, WorkspaceSync,
};

/// The largest archive downloaded by `import-url`.
const MAX_DOWNLOAD_BYTES: usize = 64 * 1024 * 1024;
/// The longest skill name accepted in a request.
const MAX_NAME_CHARS: usize = 128;

/// One skill found in a folder.
#[derive(Debug, Clone)]
struct Found {
    folder: String,
    meta: FrontMatter,
    dir: PathBuf,
}

/// A place skills live, with how to show it.
#[derive(Debug, Clone)]
struct Place {
    dir: PathBuf,
    /// Display prefix, ending in `/`.
    label: String,
    dimension: Dimension,
    owner: Option<String>,
}

impl Place {
    fn info(&self, found: &Found, agent: Option<&SkillAgent>) -> SkillInfo {
        SkillInfo {
            name: found.meta.name.clone(),
            description: found.meta.description.clone(),
            dimension: self.dimension,
            owner_user_id: self.owner.clone(),
            agent_id: agent.map(|a| a.id.clone()),
            agent_name: agent.map(|a| a.name.clone()),
            path: format!("{}{}", self.label, found.folder),
        }
    }
}

struct Inner {
    root: PathBuf,
    tmp: PathBuf,
    agents: Arc<dyn SkillAgents>,
    client: reqwest::Client,
    policy: Arc<OutboundPolicy>,
    /// Skills one user may keep (and one agent workspace may hold).
    max_per_place: usize,
}

/// Skills one user may keep unless configured otherwise (`SAGE_MAX_SKILLS_PER_USER`).
pub const DEFAULT_MAX_SKILLS_PER_USER: usize = 200;

/// Skills in the data directory.
#[derive(Clone)]
pub struct FsSkills {
    inner: Arc<Inner>,
}

fn internal(e: impl Into<anyhow::Error>) -> SkillError {
    SkillError::Internal(e.into())
}

/// A directory removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn check_id(field: &'static str, id: &str) -> Result<String, SkillError> {
    if platform::ids::is_safe_id(id) {
        Ok(id.to_owned())
    } else {
        Err(SkillError::invalid(field, "is not a valid id"))
    }
}

fn check_name(name: &str) -> Result<&str, SkillError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.contains('\0') {
        return Err(SkillError::invalid(
            "name",
            format!("must be 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    Ok(name)
}

/// The skills of one folder, by name.
fn scan(dir: &Path) -> Vec<Found> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<Found> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let dir = e.path();
            let meta = front_matter(&read_skill_md(&dir)?)?;
            Some(Found {
                folder: e.file_name().to_string_lossy().into_owned(),
                meta,
                dir,
            })
        })
        .collect();
    found.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
    found
}

/// The skill of `name` in a folder: by front-matter name, else by folder name.
fn find(dir: &Path, name: &str) -> Option<Found> {
    let all = scan(dir);
    let folder = folder_name(name).ok();
    all.iter()
        .find(|f| f.meta.name == name)
        .or_else(|| all.iter().find(|f| Some(&f.folder) == folder.as_ref()))
        .cloned()
}

/// Moves the folder `source` to `root/folder`, replacing what is there.
fn place_dir(root: &Path, folder: &str, source: &Path) -> Result<(), SkillError> {
    let tree = Confined::create(root).map_err(internal)?;
    let name = [folder.to_owned()];
    let old = match tree.stat(&name) {
        Ok(_) => {
            let aside = format!(".replaced-{}", platform::ids::new_hex_id());
            fs::rename(root.join(folder), root.join(&aside)).map_err(internal)?;
            Some(aside)
        }
        Err(ConfinedError::NotFound) => None,
        Err(e) => return Err(internal(e)),
    };
    let top = tree.dir(&[]).map_err(internal)?;
    tree.place(&top, folder, source).map_err(internal)?;
    if let Some(aside) = old {
        let _ = tree.remove(&[aside]);
    }
    Ok(())
}

/// Removes `root/folder`.
fn remove_dir(root: &Path, folder: &str) -> Result<(), SkillError> {
    let tree = match Confined::open(root) {
        Ok(tree) => tree,
        Err(ConfinedError::NotFound) => return Ok(()),
        Err(e) => return Err(internal(e)),
    };
    match tree.remove(&[folder.to_owned()]) {
        Ok(()) | Err(ConfinedError::NotFound) => Ok(()),
        Err(e) => Err(internal(e)),
    }
}

/// The skills in a workspace's `skills/` folder: (folder, front-matter), by name.
pub(crate) fn workspace_skills(workspace: &Path) -> Vec<(String, FrontMatter)> {
    scan(&workspace.join("skills"))
        .into_iter()
        .map(|f| (f.folder, f.meta))
        .collect()
}

impl FsSkills {
    /// Skills under `<data_dir>/skills`, scratch space in `<data_dir>/tmp`; archives named by
    /// URL are fetched through `policy`.
    pub fn new(
        data_dir: &Path,
        agents: Arc<dyn SkillAgents>,
        policy: Arc<OutboundPolicy>,
    ) -> Result<Self, String> {
        let client = http_client_builder(policy.clone())
            .timeout(std::time::Duration::from_secs(60))
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            inner: Arc::new(Inner {
                root: data_dir.join("skills"),
                tmp: data_dir.join("tmp"),
                agents,
                client,
                policy,
                max_per_place: DEFAULT_MAX_SKILLS_PER_USER,
            }),
        })
    }

    /// At most `max` skills per user (and per agent workspace); replacing one is always
    /// allowed. System skills (admins') are not counted.
    pub fn with_quota(mut self, max: usize) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.max_per_place = max.max(1);
        }
        self
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> Result<T, SkillError> + Send + 'static,
    ) -> Result<T, SkillError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(internal)?
    }

    async fn agent(&self, actor: &Actor, agent_id: &str) -> Result<SkillAgent, SkillError> {
        let id = check_id("agent_id", agent_id).map_err(|_| SkillError::AgentNotFound)?;
        self.inner
            .agents
            .visible(actor, &id)
            .await?
            .ok_or(SkillError::AgentNotFound)
    }

    /// Checks that `actor` may write to `target` and says where it is.
    async fn target_place(
        &self,
        actor: &Actor,
        target: &Target,
    ) -> Result<(Place, Option<SkillAgent>), SkillError> {
        match target {
            Target::System if !actor.is_admin => Err(SkillError::Forbidden),
            Target::System => Ok((self.inner.system(), None)),
            Target::User => Ok((self.inner.user(&actor.user_id)?, None)),
            Target::Agent(id) => {
                let agent = self.agent(actor, id).await?;
                Ok((self.inner.agent_place(&actor.user_id, &agent)?, Some(agent)))
            }
        }
    }

    async fn install_at(
        &self,
        place: Place,
        agent: Option<SkillAgent>,
        archive: PathBuf,
    ) -> Result<SkillInfo, SkillError> {
        self.blocking(move |inner| {
            let scratch = Scratch(inner.scratch()?);
            package::unpack(&archive, &scratch.0)?;
            let skill_dir = package::skill_root(&scratch.0)?;
            let meta = read_skill_md(&skill_dir)
                .as_deref()
                .and_then(front_matter)
                .ok_or_else(|| {
                    SkillError::BadPackage(
                        "SKILL.md must open with front-matter giving `name` and `description`"
                            .into(),
                    )
                })?;
            let folder = folder_name(&meta.name)
                .map_err(|_| SkillError::BadPackage("the skill's name has no letters".into()))?;
            if place.dimension != Dimension::System {
                let held: Vec<String> = std::fs::read_dir(&place.dir)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| !n.starts_with('.'))
                    .collect();
                if !held.contains(&folder) && held.len() >= inner.max_per_place {
                    return Err(SkillError::QuotaExceeded {
                        limit: inner.max_per_place,
                    });
                }
            }
            place_dir(&place.dir, &folder, &skill_dir)?;
            let found = Found {
                folder,
                meta,
                dir: place.dir.clone(),
            };
            Ok(place.info(&found, agent.as_ref()))
        })
        .await
    }
}

impl Inner {
    fn system(&self) -> Place {
        Place {
            dir: self.root.join("system"),
            label: "skills/".into(),
            dimension: Dimension::System,
            owner: None,
        }
    }

    fn user(&self, user_id: &str) -> Result<Place, SkillError> {
        let id = check_id("user_id", user_id)?;
        Ok(Place {
            dir: self.root.join("users").join(&id),
            label: format!("users/{id}/skills/"),
            dimension: Dimension::User,
            owner: Some(id),
        })
    }

    fn agent_place(&self, user_id: &str, agent: &SkillAgent) -> Result<Place, SkillError> {
        let workspace = self.agents.workspace(user_id, &agent.id)?;
        Ok(Place {
            dir: workspace.join("skills"),
            label: format!("agents/{user_id}/{}/skills/", agent.id),
            dimension: Dimension::Agent,
            owner: Some(user_id.to_owned()),
        })
    }

    /// A fresh scratch directory path (not created) in the data directory's `tmp`.
    fn scratch(&self) -> Result<PathBuf, SkillError> {
        fs::create_dir_all(&self.tmp).map_err(internal)?;
        Ok(self
            .tmp
            .join(format!("skill-{}", platform::ids::new_hex_id())))
    }

    /// The skill `user_id` would give an agent under `name`: their own, else the system's.
    fn source(&self, user_id: &str, name: &str) -> Result<Option<(Place, Found)>, SkillError> {
        let user = self.user(user_id)?;
        if let Some(found) = find(&user.dir, name) {
            return Ok(Some((user, found)));
        }
        let system = self.system();
        Ok(find(&system.dir, name).map(|found| (system, found)))
    }

    /// Copies a skill folder into `place` under its folder name.
    fn copy_into(&self, found: &Found, place: &Place) -> Result<String, SkillError> {
        let scratch = Scratch(self.scratch()?);
        package::copy_tree(&found.dir, &scratch.0).map_err(internal)?;
        place_dir(&place.dir, &found.folder, &scratch.0)?;
        Ok(format!("{}{}", place.label, found.folder))
    }
}

#[async_trait::async_trait]
impl Skills for FsSkills {
    async fn list(&self, actor: &Actor, query: SkillQuery) -> Result<Vec<SkillInfo>, SkillError> {
        let agent = match query.agent_id.as_deref().filter(|a| !a.trim().is_empty()) {
            Some(id) => Some(self.agent(actor, id).await?),
            None => None,
        };
        let actor = actor.clone();
        self.blocking(move |inner| {
            if query.dimension == Some(Dimension::Agent) {
                let agent = agent.ok_or_else(|| {
                    SkillError::invalid("agent_id", "is required with dimension=agent")
                })?;
                let place = inner.agent_place(&actor.user_id, &agent)?;
                return Ok(scan(&place.dir)
                    .iter()
                    .map(|f| place.info(f, Some(&agent)))
                    .collect());
            }
            let mut places = Vec::new();
            if query.dimension != Some(Dimension::User) {
                places.push(inner.system());
            }
            if query.dimension != Some(Dimension::System) {
                if actor.is_admin {
                    let mut users: Vec<String> = fs::read_dir(inner.root.join("users"))
                        .map(|d| {
                            d.flatten()
                                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                                .map(|e| e.file_name().to_string_lossy().into_owned())
                                .collect()
                        })
                        .unwrap_or_default();
                    users.sort();
                    for user in users {
                        places.push(inner.user(&user)?);
                    }
                } else {
                    places.push(inner.user(&actor.user_id)?);
                }
            }
            let mut out = Vec::new();
            for place in &places {
                for found in scan(&place.dir) {
                    if agent
                        .as_ref()
                        .is_some_and(|a| !a.available_skills.contains(&found.meta.name))
                    {
                        continue;
                    }
                    out.push(place.info(&found, None));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn agent_available(
        &self,
        actor: &Actor,
        agent_id: &str,
    ) -> Result<Vec<AvailableSkill>, SkillError> {
        let agent = self.agent(actor, agent_id).await?;
        let actor = actor.clone();
        self.blocking(move |inner| {
            let copies = inner.agent_place(&actor.user_id, &agent)?;
            let user = inner.user(&actor.user_id)?;
            let mut by_name: std::collections::BTreeMap<String, (Place, Found)> =
                Default::default();
            for place in [inner.system(), user] {
                for found in scan(&place.dir) {
                    by_name.insert(found.meta.name.clone(), (place.clone(), found));
                }
            }
            Ok(by_name
                .into_values()
                .map(|(place, found)| {
                    let copy = find(&copies.dir, &found.meta.name);
                    AvailableSkill {
                        need_update: copy.as_ref().is_some_and(|c| {
                            package::digest(&c.dir) != package::digest(&found.dir)
                        }),
                        agent_path: copy.map(|c| format!("{}{}", copies.label, c.folder)),
                        name: found.meta.name.clone(),
                        description: found.meta.description.clone(),
                        source_dimension: place.dimension,
                        source_path: format!("{}{}", place.label, found.folder),
                    }
                })
                .collect())
        })
        .await
    }

    async fn install(
        &self,
        actor: &Actor,
        target: Target,
        archive: PathBuf,
    ) -> Result<SkillInfo, SkillError> {
        let (place, agent) = self.target_place(actor, &target).await?;
        self.install_at(place, agent, archive).await
    }

    async fn import_url(
        &self,
        actor: &Actor,
        target: Target,
        url: &str,
    ) -> Result<SkillInfo, SkillError> {
        let (place, agent) = self.target_place(actor, &target).await?;
        let bytes = fetch(
            &self.inner.client,
            &self.inner.policy,
            url.trim(),
            &[("user-agent", "sage-server")],
            MAX_DOWNLOAD_BYTES,
        )
        .await
        .map_err(|e| match e {
            // The URL itself is the caller's mistake; the rest is the remote end's.
            platform::outbound::FetchError::Refused(refused) => {
                SkillError::invalid("url", refused.to_string())
            }
            other => SkillError::Download(other.to_string()),
        })?;
        let archive = self
            .blocking(move |inner| {
                fs::create_dir_all(&inner.tmp).map_err(internal)?;
                package::spill(&inner.tmp, &bytes)
            })
            .await?;
        // The downloaded archive is removed when `archive` drops.
        self.install_at(place, agent, archive.to_path_buf()).await
    }

    async fn delete(
        &self,
        actor: &Actor,
        name: &str,
        agent_id: Option<&str>,
    ) -> Result<(), SkillError> {
        let name = check_name(name)?.to_owned();
        let agent = match agent_id.filter(|a| !a.trim().is_empty()) {
            Some(id) => Some(self.agent(actor, id).await?),
            None => None,
        };
        let actor = actor.clone();
        self.blocking(move |inner| {
            if let Some(agent) = agent {
                let place = inner.agent_place(&actor.user_id, &agent)?;
                return match find(&place.dir, &name) {
                    Some(found) => remove_dir(&place.dir, &found.folder),
                    None => Ok(()),
                };
            }
            let user = inner.user(&actor.user_id)?;
            if let Some(found) = find(&user.dir, &name) {
                return remove_dir(&user.dir, &found.folder);
            }
            let system = inner.system();
            match find(&system.dir, &name) {
                Some(_) if !actor.is_admin => Err(SkillError::Forbidden),
                Some(found) => remove_dir(&system.dir, &found.folder),
                None => Ok(()),
            }
        })
        .await
    }

    async fn content(&self, actor: &Actor, name: &str) -> Result<String, SkillError> {
        let name = check_name(name)?.to_owned();
        let user_id = actor.user_id.clone();
        self.blocking(move |inner| {
            let (_, found) = inner.source(&user_id, &name)?.ok_or(SkillError::NotFound)?;
            read_skill_md(&found.dir).ok_or(SkillError::NotFound)
        })
        .await
    }

    async fn update_content(
        &self,
        actor: &Actor,
        name: &str,
        content: &str,
    ) -> Result<(), SkillError> {
        let name = check_name(name)?.to_owned();
        if content.len() as u64 > package::MAX_SKILL_MD_BYTES || content.contains('\0') {
            return Err(SkillError::invalid(
                "content",
                "must be at most 1 MiB of text",
            ));
        }
        match front_matter(content) {
            Some(meta) if meta.name == name => {}
            Some(_) => {
                return Err(SkillError::invalid(
                    "content",
                    "its front-matter must keep the skill's name",
                ));
            }
            None => {
                return Err(SkillError::invalid(
                    "content",
                    "must open with front-matter giving `name` and `description`",
                ));
            }
        }
        let actor = actor.clone();
        let content = content.to_owned();
        self.blocking(move |inner| {
            let (place, found) = inner
                .source(&actor.user_id, &name)?
                .ok_or(SkillError::NotFound)?;
            if place.dimension == Dimension::System && !actor.is_admin {
                return Err(SkillError::Forbidden);
            }
            let tree = Confined::open(&found.dir).map_err(internal)?;
            let top = tree.dir(&[]).map_err(internal)?;
            let temp = format!(".SKILL.md.{}", platform::ids::new_hex_id());
            {
                use std::io::Write;
                let mut file = Confined::write_in(&top, &temp, false).map_err(internal)?;
                file.write_all(content.as_bytes()).map_err(internal)?;
                file.sync_all().map_err(internal)?;
            }
            fs::rename(found.dir.join(&temp), found.dir.join("SKILL.md")).map_err(internal)
        })
        .await
    }

    async fn sync_to_agent(
        &self,
        actor: &Actor,
        skill_name: &str,
        agent_id: &str,
    ) -> Result<SyncedSkill, SkillError> {
        let name = check_name(skill_name)?.to_owned();
        let agent = self.agent(actor, agent_id).await?;
        let actor = actor.clone();
        self.blocking(move |inner| {
            let (place, found) = inner
                .source(&actor.user_id, &name)?
                .ok_or(SkillError::NotFound)?;
            let target = inner.agent_place(&actor.user_id, &agent)?;
            let target_path = inner.copy_into(&found, &target)?;
            Ok(SyncedSkill {
                skill_name: found.meta.name.clone(),
                agent_id: agent.id.clone(),
                source_dimension: place.dimension,
                source_path: format!("{}{}", place.label, found.folder),
                target_path,
            })
        })
        .await
    }

    async fn sync_to_agent_workspaces(
        &self,
        actor: &Actor,
        agent_id: &str,
        names: Option<Vec<String>>,
    ) -> Result<BulkSync, SkillError> {
        let agent = self.agent(actor, agent_id).await?;
        if !actor.is_admin && agent.owner_id != actor.user_id {
            return Err(SkillError::Forbidden);
        }
        let names: Vec<String> = names
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| agent.available_skills.clone());
        for name in &names {
            check_name(name)?;
        }
        self.blocking(move |inner| {
            let sources: Vec<(String, Option<Found>)> = names
                .iter()
                .map(|n| {
                    let found = inner.source(&agent.owner_id, n)?.map(|(_, f)| f);
                    Ok((n.clone(), found))
                })
                .collect::<Result<_, SkillError>>()?;
            let mut results = Vec::new();
            for (user_id, _) in inner.agents.workspaces_of(&agent.id)? {
                let place = inner.agent_place(&user_id, &agent)?;
                let mut result = WorkspaceResult {
                    workspace_path: format!("agents/{user_id}/{}", agent.id),
                    user_id,
                    updated_skills: Vec::new(),
                    failed_skills: Vec::new(),
                };
                for (name, found) in &sources {
                    match found.as_ref().map(|f| inner.copy_into(f, &place)) {
                        Some(Ok(_)) => result.updated_skills.push(name.clone()),
                        _ => result.failed_skills.push(name.clone()),
                    }
                }
                results.push(result);
            }
            Ok(BulkSync {
                agent_id: agent.id.clone(),
                resolved_skill_names: sources
                    .iter()
                    .filter(|(_, f)| f.is_some())
                    .map(|(n, _)| n.clone())
                    .collect(),
                results,
            })
        })
        .await
    }

    async fn prepare_run(
        &self,
        owner_id: &str,
        workspace: PathBuf,
        names: Vec<String>,
    ) -> Result<Vec<FrontMatter>, SkillError> {
        let owner = owner_id.to_owned();
        self.blocking(move |inner| {
            let place = Place {
                dir: workspace.join("skills"),
                label: "skills/".into(),
                dimension: Dimension::Agent,
                owner: None,
            };
            for name in &names {
                if find(&place.dir, name).is_some() {
                    continue;
                }
                if let Some((_, found)) = inner.source(&owner, name)? {
                    inner.copy_into(&found, &place)?;
                }
            }
            Ok(scan(&place.dir).into_iter().map(|f| f.meta).collect())
        })
        .await
    }

    async fn sync_workspace(
        &self,
        actor: &Actor,
        user_id: Option<&str>,
        agent_id: &str,
        purge_extra: bool,
    ) -> Result<WorkspaceSync, SkillError> {
        // A non-admin's `user_id` is ignored: they act on their own workspace.
        let user_id = match user_id.map(str::trim).filter(|u| !u.is_empty()) {
            Some(other) if actor.is_admin => check_id("user_id", other)?,
            _ => actor.user_id.clone(),
        };
        let agent = self.agent(actor, agent_id).await?;
        self.blocking(move |inner| {
            let place = inner.agent_place(&user_id, &agent)?;
            let mut outcome = WorkspaceSync::default();
            for name in &agent.available_skills {
                let Some((_, found)) = inner.source(&user_id, name)? else {
                    continue;
                };
                match find(&place.dir, name) {
                    Some(copy) if package::digest(&copy.dir) == package::digest(&found.dir) => {
                        outcome.unchanged.push(name.clone());
                    }
                    _ => {
                        inner.copy_into(&found, &place)?;
                        outcome.synced.push(name.clone());
                    }
                }
            }
            if purge_extra {
                for copy in scan(&place.dir) {
                    if !agent.available_skills.contains(&copy.meta.name) {
                        remove_dir(&place.dir, &copy.folder)?;
                        outcome.removed.push(copy.meta.name.clone());
                    }
                }
            }
            Ok(outcome)
        })
        .await
    }
}

/// A deleted user's own skills go with them (their workspace copies go with the workspaces).
#[async_trait::async_trait]
impl platform::UserCleanup for FsSkills {
    async fn user_deleted(&self, user_id: &str) -> Result<(), platform::actor::CleanupError> {
        let Ok(id) = check_id("user_id", user_id) else {
            return Ok(());
        };
        self.blocking(move |inner| remove_dir(&inner.root.join("users"), &id))
            .await
            .map_err(|e| e.into())
    }
}
