//! Desktop releases under `/api/system/version`: the desktop app's update check and the web
//! download page (public), the list (logged in), and create, import and delete (admins).

use std::collections::BTreeMap;

use actix_web::web;
use chrono::{DateTime, SecondsFormat, Utc};
use releases::{Artifact, NewRelease, Release};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::AppError;
use crate::extract::ApiJson;
use crate::response::{ApiOk, ApiResult, Envelope};
use crate::state::AppState;

/// Routes inside the `/api` scope (literal segments before `{version_str}`).
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/system/version/check").route(web::get().to(check)))
        .service(web::resource("/system/version/latest").route(web::get().to(latest)))
        .service(web::resource("/system/version/import_github").route(web::post().to(import)))
        .service(
            web::resource("/system/version")
                .route(web::get().to(list))
                .route(web::post().to(create)),
        )
        .service(web::resource("/system/version/{version_str}").route(web::delete().to(delete)));
}

fn iso(date: DateTime<Utc>) -> String {
    date.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct ArtifactDto {
    /// `<os>-<arch>`: `darwin-aarch64`, `darwin-x86_64`, `windows-x86_64`, `linux-x86_64`, …
    #[schema(max_length = 64, pattern = "^[A-Za-z0-9_]+-[A-Za-z0-9_-]+$")]
    platform: String,
    /// What a person downloads; empty or null: none.
    #[serde(default)]
    #[schema(max_length = 2048)]
    installer_url: Option<String>,
    /// What the desktop app's updater downloads; empty or null: none.
    #[serde(default)]
    #[schema(max_length = 2048)]
    updater_url: Option<String>,
    /// The updater bundle's signature (the text of its `.sig`).
    #[serde(default)]
    #[schema(max_length = 8192)]
    updater_signature: Option<String>,
}

impl From<Artifact> for ArtifactDto {
    fn from(a: Artifact) -> Self {
        Self {
            platform: a.platform,
            installer_url: a.installer_url,
            updater_url: a.updater_url,
            updater_signature: a.updater_signature,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReleaseDto {
    version: String,
    release_notes: String,
    /// RFC 3339, UTC (`Z`).
    pub_date: String,
    artifacts: Vec<ArtifactDto>,
}

impl From<Release> for ReleaseDto {
    fn from(r: Release) -> Self {
        Self {
            version: r.version,
            release_notes: r.release_notes,
            pub_date: iso(r.pub_date),
            artifacts: r.artifacts.into_iter().map(ArtifactDto::from).collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UpdaterPlatform {
    url: String,
    signature: String,
}

/// The shape of Tauri's updater (`version`, `notes`, `pub_date`, `platforms`).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UpdateDto {
    version: String,
    notes: String,
    pub_date: String,
    /// `<os>-<arch>` → the signed updater bundle.
    platforms: BTreeMap<String, UpdaterPlatform>,
}

/// The desktop app's update check: the highest version's signed updater bundles. Public.
#[utoipa::path(get, path = "/api/system/version/check", tag = "system", security(()),
    responses((status = 200, body = Envelope<UpdateDto>),
              (status = 404, description = "`release.not_found`: no release yet")))]
pub(crate) async fn check(state: web::Data<AppState>) -> ApiResult<UpdateDto> {
    let release = state
        .releases
        .latest()
        .await?
        .ok_or_else(|| AppError::from(releases::ReleaseError::NotFound))?;
    let platforms = release
        .artifacts
        .into_iter()
        .filter_map(|a| {
            Some((
                a.platform,
                UpdaterPlatform {
                    url: a.updater_url?,
                    signature: a.updater_signature.unwrap_or_default(),
                },
            ))
        })
        .collect();
    Ok(ApiOk(UpdateDto {
        version: release.version,
        notes: release.release_notes,
        pub_date: iso(release.pub_date),
        platforms,
    }))
}

/// The highest version, for the web download page; `data` is null when there is none. Public.
#[utoipa::path(get, path = "/api/system/version/latest", tag = "system", security(()),
    responses((status = 200, body = Envelope<Option<ReleaseDto>>)))]
pub(crate) async fn latest(state: web::Data<AppState>) -> ApiResult<Option<ReleaseDto>> {
    Ok(ApiOk(state.releases.latest().await?.map(ReleaseDto::from)))
}

/// Every release, the highest version first.
#[utoipa::path(get, path = "/api/system/version", tag = "system",
    responses((status = 200, body = Envelope<Vec<ReleaseDto>>)))]
pub(crate) async fn list(
    state: web::Data<AppState>,
    _caller: Caller,
) -> ApiResult<Vec<ReleaseDto>> {
    let all = state.releases.list().await?;
    Ok(ApiOk(all.into_iter().map(ReleaseDto::from).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct CreateVersionRequest {
    /// `1.2.3` (a leading `v` is dropped): letters, digits, `.`, `+`, `-`, starting with a digit.
    #[schema(min_length = 1, max_length = 65)]
    version: String,
    #[serde(default)]
    #[schema(max_length = 100000)]
    release_notes: Option<String>,
    /// RFC 3339; empty or absent: now.
    #[serde(default)]
    pub_date: Option<String>,
    #[serde(default)]
    #[schema(max_items = 32)]
    artifacts: Option<Vec<ArtifactDto>>,
}

/// Admin: a new release (an existing version answers 409 `release.exists`).
#[utoipa::path(post, path = "/api/system/version", tag = "system", request_body = CreateVersionRequest,
    responses((status = 200, body = Envelope<ReleaseDto>), (status = 403, description = "Not an admin"),
              (status = 409, description = "`release.exists`"), (status = 422, description = "A field is invalid")))]
pub(crate) async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<CreateVersionRequest>,
) -> ApiResult<ReleaseDto> {
    let body = body.0;
    let pub_date = match body.pub_date.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(
            DateTime::parse_from_rfc3339(text)
                .map_err(|_| AppError::validation("body", "pub_date", "must be an RFC 3339 time"))?
                .with_timezone(&Utc),
        ),
    };
    let new = NewRelease {
        version: body.version,
        release_notes: body.release_notes.unwrap_or_default(),
        pub_date,
        artifacts: body
            .artifacts
            .unwrap_or_default()
            .into_iter()
            .map(|a| Artifact {
                platform: a.platform,
                installer_url: a.installer_url,
                updater_url: a.updater_url,
                updater_signature: a.updater_signature,
            })
            .collect(),
    };
    let release = state.releases.create(&caller.actor(), new).await?;
    Ok(ApiOk(release.into()))
}

/// Admin: import the latest release of the feed (`SAGE_RELEASES_URL`, Sage's GitHub releases
/// by default); the same version is replaced. Platforms come from the asset names, signatures
/// from their `.sig` assets.
#[utoipa::path(post, path = "/api/system/version/import_github", tag = "system",
    responses((status = 200, body = Envelope<ReleaseDto>), (status = 403, description = "Not an admin"),
              (status = 502, description = "`release.feed_failed`: the feed could not be read")))]
pub(crate) async fn import(state: web::Data<AppState>, caller: Caller) -> ApiResult<ReleaseDto> {
    let release = state.releases.import_latest(&caller.actor()).await?;
    Ok(ApiOk(release.into()))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReleaseDeletedDto {
    success: bool,
}

/// Admin: remove a version.
#[utoipa::path(delete, path = "/api/system/version/{version_str}", tag = "system",
    params(("version_str" = String, Path)),
    responses((status = 200, body = Envelope<ReleaseDeletedDto>), (status = 403, description = "Not an admin"),
              (status = 404, description = "`release.not_found`")))]
pub(crate) async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<ReleaseDeletedDto> {
    state
        .releases
        .delete(&caller.actor(), &path.into_inner())
        .await?;
    Ok(ApiOk(ReleaseDeletedDto { success: true }))
}
