//! Skills under `/api/skills`: listing, the skills an agent may take, upload and import of
//! zip packages, delete, reading and editing `SKILL.md`, and copying skills into agent
//! workspaces.

use actix_multipart::Multipart;
use actix_web::{HttpRequest, web};
use serde::{Deserialize, Serialize};
use tooling::skills::{
    AvailableSkill, Dimension, SkillInfo, SkillQuery, SyncedSkill, Target, WorkspaceSync,
};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::AppError;
use crate::extract::{ApiJson, ApiQuery, form_fields, spool_multipart};
use crate::response::{ApiOk, ApiResult, Envelope};
use crate::routes::auth::Empty;
use crate::state::AppState;

/// Routes inside the `/api` scope.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/skills")
            .route(web::get().to(list))
            .route(web::delete().to(delete)),
    )
    .service(web::resource("/skills/agent-available").route(web::get().to(agent_available)))
    .service(web::resource("/skills/upload").route(web::post().to(upload)))
    .service(web::resource("/skills/upload-batch").route(web::post().to(upload_batch)))
    .service(web::resource("/skills/import-url").route(web::post().to(import_url)))
    .service(
        web::resource("/skills/content")
            .route(web::get().to(content))
            .route(web::put().to(update_content)),
    )
    .service(web::resource("/skills/sync-to-agent").route(web::post().to(sync_to_agent)))
    .service(
        web::resource("/skills/sync-to-agent-workspaces")
            .route(web::post().to(sync_to_agent_workspaces)),
    )
    .service(web::resource("/skills/sync-workspace-skills").route(web::post().to(sync_workspace)));
}

/// The UI's empty spellings (`""`, `null`) of an optional text.
fn given(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn truthy(value: Option<&str>) -> bool {
    matches!(
        value.map(|v| v.trim().to_ascii_lowercase()).as_deref(),
        Some("true" | "1" | "on" | "yes")
    )
}

/// Where `is_system`, `is_agent` and `agent_id` put a skill.
fn target(is_system: bool, is_agent: bool, agent_id: Option<String>) -> Result<Target, AppError> {
    if is_system {
        return Ok(Target::System);
    }
    match (is_agent, given(agent_id)) {
        (true, Some(id)) => Ok(Target::Agent(id)),
        (true, None) => Err(AppError::validation(
            "body",
            "agent_id",
            "is required with is_agent",
        )),
        (false, _) => Ok(Target::User),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SkillDto {
    name: String,
    description: String,
    /// The owner (empty for system skills).
    user_id: String,
    /// `system`, `user` or `agent`.
    dimension: &'static str,
    owner_user_id: Option<String>,
    agent_id: Option<String>,
    agent_name: Option<String>,
    /// Where it lives in the data layout (`skills/<folder>`, `users/<id>/skills/<folder>`,
    /// `agents/<user id>/<agent id>/skills/<folder>`).
    path: String,
}

impl From<SkillInfo> for SkillDto {
    fn from(s: SkillInfo) -> Self {
        Self {
            user_id: s.owner_user_id.clone().unwrap_or_default(),
            name: s.name,
            description: s.description,
            dimension: s.dimension.as_str(),
            owner_user_id: s.owner_user_id,
            agent_id: s.agent_id,
            agent_name: s.agent_name,
            path: s.path,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SkillsDto {
    skills: Vec<SkillDto>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only skills this agent's `availableSkills` names; with `dimension=agent`, the copies in
    /// the caller's workspace of the agent.
    #[param(max_length = 64)]
    agent_id: Option<String>,
    /// `system`, `user`, `agent`, or `all` (the default: system and user skills).
    #[param(max_length = 16)]
    dimension: Option<String>,
}

/// Skills: the system's and the caller's own (admins: every user's), or an agent's copies.
#[utoipa::path(get, path = "/api/skills", tag = "skills", params(ListQuery),
    responses((status = 200, body = Envelope<SkillsDto>), (status = 404, description = "`agent.not_found`"),
              (status = 422, description = "Unknown dimension, or `agent` without `agent_id`")))]
pub(crate) async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<ListQuery>,
) -> ApiResult<SkillsDto> {
    let q = query.0;
    let dimension = match given(q.dimension)
        .map(|d| d.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("all") => None,
        Some("system") => Some(Dimension::System),
        Some("user") => Some(Dimension::User),
        Some("agent") => Some(Dimension::Agent),
        Some(_) => {
            return Err(AppError::validation(
                "query",
                "dimension",
                "must be system, user, agent or all",
            ));
        }
    };
    let skills = state
        .skills
        .list(
            &caller.actor(),
            SkillQuery {
                dimension,
                agent_id: given(q.agent_id),
            },
        )
        .await?;
    Ok(ApiOk(SkillsDto {
        skills: skills.into_iter().map(SkillDto::from).collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AvailableDto {
    name: String,
    description: String,
    /// `system`, or `user` when the caller's own skill hides the system's.
    source_dimension: &'static str,
    source_path: String,
    /// The agent's copy differs from its source.
    need_update: bool,
    /// The copy in the caller's workspace of the agent, when there is one.
    agent_path: Option<String>,
}

impl From<AvailableSkill> for AvailableDto {
    fn from(s: AvailableSkill) -> Self {
        Self {
            name: s.name,
            description: s.description,
            source_dimension: s.source_dimension.as_str(),
            source_path: s.source_path,
            need_update: s.need_update,
            agent_path: s.agent_path,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AvailableListDto {
    skills: Vec<AvailableDto>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AgentQuery {
    #[param(min_length = 1, max_length = 64)]
    agent_id: String,
}

/// Every skill the caller could give the agent, with the state of the agent's copy.
#[utoipa::path(get, path = "/api/skills/agent-available", tag = "skills", params(AgentQuery),
    responses((status = 200, body = Envelope<AvailableListDto>), (status = 404, description = "`agent.not_found`")))]
pub(crate) async fn agent_available(
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<AgentQuery>,
) -> ApiResult<AvailableListDto> {
    let skills = state
        .skills
        .agent_available(&caller.actor(), &query.0.agent_id)
        .await?;
    Ok(ApiOk(AvailableListDto {
        skills: skills.into_iter().map(AvailableDto::from).collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct InstalledDto {
    /// The caller.
    user_id: String,
    name: String,
    dimension: &'static str,
    path: String,
}

fn installed(caller: &Caller, skill: SkillInfo) -> InstalledDto {
    InstalledDto {
        user_id: caller.0.user_id.clone(),
        name: skill.name,
        dimension: skill.dimension.as_str(),
        path: skill.path,
    }
}

/// Install a skill from a zip (multipart `file`; `is_system` (admins), `is_agent` with
/// `agent_id` for the caller's workspace of that agent, else the caller's own skills). The
/// archive holds `SKILL.md` at its root or in its one top folder; a skill of the same name is
/// replaced.
#[utoipa::path(post, path = "/api/skills/upload", tag = "skills",
    responses((status = 200, body = Envelope<InstalledDto>), (status = 400, description = "`skill.invalid_package`"),
              (status = 403, description = "System skills need an admin"), (status = 404, description = "`agent.not_found`"),
              (status = 413, description = "Larger than `SAGE_MAX_UPLOAD_BYTES`")))]
pub(crate) async fn upload(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    form: Multipart,
) -> ApiResult<InstalledDto> {
    let mut form = spool_multipart(&req, form, state.config.max_upload_bytes).await?;
    let file = form
        .take_file("file")
        .ok_or_else(|| AppError::validation("body", "file", "is required"))?;
    let target = target(
        truthy(form.field("is_system")),
        truthy(form.field("is_agent")),
        form.field("agent_id").map(str::to_owned),
    )?;
    // The temporary file is removed when `file.path` drops.
    let skill = state
        .skills
        .install(&caller.actor(), target, file.path.to_path_buf())
        .await?;
    Ok(ApiOk(installed(&caller, skill)))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BatchItemDto {
    filename: String,
    success: bool,
    /// What happened (the skill's name, or why the package was refused).
    message: String,
    /// The installed skill's name.
    name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BatchDto {
    results: Vec<BatchItemDto>,
    success_count: usize,
    failed_count: usize,
    /// The caller.
    user_id: String,
}

/// Install several skills at once (multipart `files[]` or `files`, with `is_system`,
/// `is_agent` and `agent_id` as for `upload`); each package succeeds or fails on its own.
#[utoipa::path(post, path = "/api/skills/upload-batch", tag = "skills",
    responses((status = 200, body = Envelope<BatchDto>), (status = 403, description = "System skills need an admin"),
              (status = 404, description = "`agent.not_found`"), (status = 422, description = "No file")))]
pub(crate) async fn upload_batch(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    form: Multipart,
) -> ApiResult<BatchDto> {
    let mut form = spool_multipart(&req, form, state.config.max_upload_bytes).await?;
    let files = form.take_files(&["files", "files[]", "file"]);
    if files.is_empty() {
        return Err(AppError::validation(
            "body",
            "files",
            "at least one file is required",
        ));
    }
    let target = target(
        truthy(form.field("is_system")),
        truthy(form.field("is_agent")),
        form.field("agent_id").map(str::to_owned),
    )?;
    // The temporary files are removed when `files` drops.
    let archives = files
        .iter()
        .map(|f| {
            (
                f.file_name.clone().unwrap_or_default(),
                f.path.to_path_buf(),
            )
        })
        .collect();
    let outcomes = state
        .skills
        .install_many(&caller.actor(), target, archives)
        .await?;
    drop(files);
    let results: Vec<BatchItemDto> = outcomes
        .into_iter()
        .map(|(filename, outcome)| match outcome {
            Ok(skill) => BatchItemDto {
                filename,
                success: true,
                message: format!("skill '{}' installed", skill.name),
                name: Some(skill.name),
            },
            Err(e) => BatchItemDto {
                filename,
                success: false,
                message: e.to_string(),
                name: None,
            },
        })
        .collect();
    let success_count = results.iter().filter(|r| r.success).count();
    Ok(ApiOk(BatchDto {
        failed_count: results.len() - success_count,
        success_count,
        results,
        user_id: caller.0.user_id.clone(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ImportUrlBody {
    /// An http(s) URL of a zip (it passes the outbound policy; at most 64 MiB).
    #[schema(min_length = 1, max_length = 2048)]
    url: String,
    #[serde(default)]
    is_system: Option<bool>,
    #[serde(default)]
    is_agent: Option<bool>,
    #[serde(default)]
    #[schema(max_length = 64)]
    agent_id: Option<String>,
}

/// Download a skill zip and install it, as `upload`.
#[utoipa::path(post, path = "/api/skills/import-url", tag = "skills", request_body = ImportUrlBody,
    responses((status = 200, body = Envelope<InstalledDto>), (status = 400, description = "`skill.invalid_package`"),
              (status = 403, description = "System skills need an admin"), (status = 404, description = "`agent.not_found`"),
              (status = 502, description = "`skill.download_failed`")))]
pub(crate) async fn import_url(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<ImportUrlBody>,
) -> ApiResult<InstalledDto> {
    let b = body.0;
    let target = target(
        b.is_system.unwrap_or(false),
        b.is_agent.unwrap_or(false),
        b.agent_id,
    )?;
    let skill = state
        .skills
        .import_url(&caller.actor(), target, &b.url)
        .await?;
    Ok(ApiOk(installed(&caller, skill)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeleteQuery {
    #[param(min_length = 1, max_length = 128)]
    name: String,
    /// The caller's copy in this agent's workspace.
    #[param(max_length = 64)]
    agent_id: Option<String>,
}

/// Remove a skill: the caller's copy in the agent's workspace (with `agent_id`), else the
/// caller's own, else (admins) the system's. Removing what is not there succeeds.
#[utoipa::path(delete, path = "/api/skills", tag = "skills", params(DeleteQuery),
    responses((status = 200, body = Envelope<Empty>), (status = 403, description = "A system skill, not an admin"),
              (status = 404, description = "`agent.not_found`")))]
pub(crate) async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<DeleteQuery>,
) -> ApiResult<Empty> {
    let q = query.0;
    state
        .skills
        .delete(&caller.actor(), &q.name, given(q.agent_id).as_deref())
        .await?;
    Ok(ApiOk(Empty {}))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct NameQuery {
    #[param(min_length = 1, max_length = 128)]
    name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SkillContentDto {
    content: String,
}

/// The `SKILL.md` of the caller's skill of that name, else the system's.
#[utoipa::path(get, path = "/api/skills/content", tag = "skills", params(NameQuery),
    responses((status = 200, body = Envelope<SkillContentDto>), (status = 404, description = "`skill.not_found`")))]
pub(crate) async fn content(
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<NameQuery>,
) -> ApiResult<SkillContentDto> {
    let content = state.skills.content(&caller.actor(), &query.0.name).await?;
    Ok(ApiOk(SkillContentDto { content }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ContentBody {
    #[schema(min_length = 1, max_length = 128)]
    name: String,
    /// The new `SKILL.md`: front-matter with the same `name` and a `description`.
    #[schema(max_length = 1048576)]
    content: String,
}

/// Replace a skill's `SKILL.md` (system skills: admins).
#[utoipa::path(put, path = "/api/skills/content", tag = "skills", request_body = ContentBody,
    responses((status = 200, body = Envelope<Empty>), (status = 403, description = "A system skill, not an admin"),
              (status = 404, description = "`skill.not_found`"), (status = 422, description = "Front-matter missing or renamed")))]
pub(crate) async fn update_content(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<ContentBody>,
) -> ApiResult<Empty> {
    let b = body.0;
    state
        .skills
        .update_content(&caller.actor(), &b.name, &b.content)
        .await?;
    Ok(ApiOk(Empty {}))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SyncedDto {
    skill_name: String,
    agent_id: String,
    source_dimension: &'static str,
    source_path: String,
    target_path: String,
    /// Always `synced`.
    sync_status: &'static str,
}

impl From<SyncedSkill> for SyncedDto {
    fn from(s: SyncedSkill) -> Self {
        Self {
            skill_name: s.skill_name,
            agent_id: s.agent_id,
            source_dimension: s.source_dimension.as_str(),
            source_path: s.source_path,
            target_path: s.target_path,
            sync_status: "synced",
        }
    }
}

/// The form of `sync-to-agent` (multipart, URL-encoded or JSON).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Documentation only: the handler reads the form in any encoding.
pub(crate) struct SyncToAgentForm {
    #[schema(min_length = 1, max_length = 128)]
    skill_name: String,
    #[schema(min_length = 1, max_length = 64)]
    agent_id: String,
}

/// Copy the caller's skill (else the system's) into the caller's workspace of the agent.
#[utoipa::path(post, path = "/api/skills/sync-to-agent", tag = "skills",
    request_body(content = SyncToAgentForm, content_type = "multipart/form-data"),
    responses((status = 200, body = Envelope<SyncedDto>), (status = 404, description = "`skill.not_found` or `agent.not_found`"),
              (status = 422, description = "A field is missing")))]
pub(crate) async fn sync_to_agent(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    payload: web::Payload,
) -> ApiResult<SyncedDto> {
    let fields = form_fields(&req, payload, 64 * 1024).await?;
    let field = |name: &'static str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| AppError::validation("body", name, "is required"))
    };
    let synced = state
        .skills
        .sync_to_agent(&caller.actor(), &field("skill_name")?, &field("agent_id")?)
        .await?;
    Ok(ApiOk(synced.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct BulkSyncBody {
    #[schema(min_length = 1, max_length = 64)]
    agent_id: String,
    /// Default: the agent's `availableSkills`.
    #[serde(default)]
    #[schema(max_items = 256)]
    skill_names: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WorkspaceResultDto {
    user_id: String,
    workspace_path: String,
    updated_skills: Vec<String>,
    failed_skills: Vec<String>,
    /// `success`, `partial_success` or `failed`.
    status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BulkSyncDto {
    agent_id: String,
    resolved_skill_names: Vec<String>,
    workspace_count: usize,
    updated_workspace_count: usize,
    failed_workspace_count: usize,
    results: Vec<WorkspaceResultDto>,
}

/// The agent's owner or an admin: copy skills into every existing workspace of the agent.
#[utoipa::path(post, path = "/api/skills/sync-to-agent-workspaces", tag = "skills", request_body = BulkSyncBody,
    responses((status = 200, body = Envelope<BulkSyncDto>), (status = 403, description = "Not the agent's owner"),
              (status = 404, description = "`agent.not_found`")))]
pub(crate) async fn sync_to_agent_workspaces(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<BulkSyncBody>,
) -> ApiResult<BulkSyncDto> {
    let b = body.0;
    let bulk = state
        .skills
        .sync_to_agent_workspaces(&caller.actor(), &b.agent_id, b.skill_names)
        .await?;
    let results: Vec<WorkspaceResultDto> = bulk
        .results
        .into_iter()
        .map(|r| WorkspaceResultDto {
            status: match (r.updated_skills.is_empty(), r.failed_skills.is_empty()) {
                (_, true) => "success",
                (false, false) => "partial_success",
                (true, false) => "failed",
            },
            user_id: r.user_id,
            workspace_path: r.workspace_path,
            updated_skills: r.updated_skills,
            failed_skills: r.failed_skills,
        })
        .collect();
    Ok(ApiOk(BulkSyncDto {
        agent_id: bulk.agent_id,
        resolved_skill_names: bulk.resolved_skill_names,
        workspace_count: results.len(),
        updated_workspace_count: results.iter().filter(|r| r.status == "success").count(),
        failed_workspace_count: results.iter().filter(|r| r.status == "failed").count(),
        results,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct WorkspaceSyncBody {
    /// Admins only: whose workspace; ignored for everyone else (their own).
    #[serde(default)]
    #[schema(max_length = 64)]
    user_id: Option<String>,
    #[schema(min_length = 1, max_length = 64)]
    agent_id: String,
    /// Also remove skill folders the agent does not list.
    #[serde(default)]
    purge_extra: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WorkspaceSyncDto {
    synced: Vec<String>,
    removed: Vec<String>,
    unchanged: Vec<String>,
}

impl From<WorkspaceSync> for WorkspaceSyncDto {
    fn from(s: WorkspaceSync) -> Self {
        Self {
            synced: s.synced,
            removed: s.removed,
            unchanged: s.unchanged,
        }
    }
}

/// Materialise the agent's `availableSkills` in the caller's workspace of it (skill names
/// per outcome).
#[utoipa::path(post, path = "/api/skills/sync-workspace-skills", tag = "skills", request_body = WorkspaceSyncBody,
    responses((status = 200, body = Envelope<WorkspaceSyncDto>), (status = 404, description = "`agent.not_found`")))]
pub(crate) async fn sync_workspace(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<WorkspaceSyncBody>,
) -> ApiResult<WorkspaceSyncDto> {
    let b = body.0;
    let outcome = state
        .skills
        .sync_workspace(
            &caller.actor(),
            b.user_id.as_deref(),
            &b.agent_id,
            b.purge_extra.unwrap_or(false),
        )
        .await?;
    Ok(ApiOk(outcome.into()))
}
