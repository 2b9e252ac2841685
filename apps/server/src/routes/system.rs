//! System and platform routes: liveness, health, public system information and the OpenAPI
//! document.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::AppError;
use crate::extract::ApiJson;
use crate::response::{ApiOk, ApiResult};
use crate::state::AppState;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/health").route(web::get().to(health)))
        .service(web::resource("/ready").route(web::get().to(ready)))
        .service(web::resource("/system/info").route(web::get().to(system_info)))
        .service(web::resource("/system/update_settings").route(web::post().to(update_settings)));
}

/// Root liveness probe: plain text, no envelope.
#[utoipa::path(
    get,
    path = "/active",
    tag = "system",
    responses((status = 200, description = "The server is up", content_type = "text/plain", body = String, example = "Service is available."))
)]
pub(crate) async fn active() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("Service is available.")
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    /// Always `healthy` while the process serves requests.
    status: &'static str,
    /// Server time, RFC 3339.
    timestamp: String,
    service: &'static str,
}

/// Liveness: the process serves requests. Needs neither the database nor Redis, so an
/// outage of either never restarts healthy replicas (Kubernetes `livenessProbe`).
#[utoipa::path(
    get,
    path = "/api/health",
    tag = "system",
    responses((status = 200, description = "Healthy", body = crate::response::Envelope<Health>))
)]
pub(crate) async fn health() -> ApiResult<Health> {
    Ok(ApiOk(Health {
        status: "healthy",
        timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        service: "SagePlatform",
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Ready {
    /// Always `ready` in a 200 answer.
    status: &'static str,
    /// Each dependency: `up` (`database`, and `redis` when configured).
    checks: std::collections::BTreeMap<&'static str, &'static str>,
}

/// Readiness: the database (and Redis when configured) answer. 503 `service.not_ready`
/// names the dependencies that do not (Kubernetes `readinessProbe`).
#[utoipa::path(
    get,
    path = "/api/ready",
    tag = "system",
    responses((status = 200, description = "Ready", body = crate::response::Envelope<Ready>),
        (status = 503, description = "A dependency is down; the message names it"))
)]
pub(crate) async fn ready(state: web::Data<AppState>) -> ApiResult<Ready> {
    let checks = state.readiness.check().await;
    let down: Vec<&str> = checks.iter().filter(|c| !c.up).map(|c| c.name).collect();
    if !down.is_empty() {
        return Err(AppError::new("service.not_ready")
            .param("dependencies", down.join(", "))
            .retry_after(crate::error::RETRY_AFTER_OUTAGE_SECS));
    }
    Ok(ApiOk(Ready {
        status: "ready",
        checks: checks.iter().map(|c| (c.name, "up")).collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuthProviderDto {
    id: String,
    /// `native` or `oidc`.
    #[serde(rename = "type")]
    kind: String,
    name: String,
    button_text: String,
    description: String,
    icon: String,
}

impl From<&identity::LoginProvider> for AuthProviderDto {
    fn from(p: &identity::LoginProvider) -> Self {
        Self {
            id: p.id.clone(),
            kind: p.kind.clone(),
            name: p.name.clone(),
            button_text: p.button_text.clone(),
            description: p.description.clone(),
            icon: p.icon.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SystemInfo {
    allow_registration: bool,
    /// `native`, `trusted_proxy` or `oauth`.
    auth_mode: &'static str,
    auth_providers: Vec<AuthProviderDto>,
    default_auth_provider: Option<String>,
    has_local_auth: bool,
    has_oauth_auth: bool,
    oauth_enabled: bool,
    oauth_provider_name: Option<String>,
    native_login_admin_only: bool,
    /// Server version.
    version: &'static str,
    /// Seconds since the process started.
    uptime_seconds: u64,
}

/// Public bootstrap information for the login page and the web UI.
#[utoipa::path(
    get,
    path = "/api/system/info",
    tag = "system",
    responses((status = 200, description = "Public system configuration", body = crate::response::Envelope<SystemInfo>))
)]
pub(crate) async fn system_info(state: web::Data<AppState>) -> ApiResult<SystemInfo> {
    let allow_registration = state.identity.allow_registration().await?;
    let overview = identity::AuthOverview::new(&state.config, allow_registration);
    Ok(ApiOk(SystemInfo {
        allow_registration: overview.allow_registration,
        auth_mode: overview.mode.as_str(),
        auth_providers: overview
            .providers
            .iter()
            .map(AuthProviderDto::from)
            .collect(),
        default_auth_provider: overview.default_provider().map(|p| p.id.clone()),
        has_local_auth: overview.has_local_auth(),
        has_oauth_auth: overview.has_oauth_auth(),
        oauth_enabled: overview.has_oauth_auth(),
        oauth_provider_name: overview.oauth_provider_name().map(str::to_owned),
        native_login_admin_only: overview.native_login_admin_only(),
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: state.started_at.elapsed().as_secs(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct SettingsBody {
    allow_registration: bool,
}

/// Admin: change system settings.
#[utoipa::path(
    post,
    path = "/api/system/update_settings",
    tag = "system",
    request_body = SettingsBody,
    responses((status = 200, body = crate::response::Envelope<crate::routes::auth::Empty>), (status = 403, description = "Not an admin"))
)]
pub(crate) async fn update_settings(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<SettingsBody>,
) -> ApiResult<crate::routes::auth::Empty> {
    state
        .identity
        .update_settings(&caller.0, body.0.allow_registration)
        .await?;
    Ok(ApiOk(crate::routes::auth::Empty {}))
}

/// The OpenAPI 3.1 document of this server.
pub(crate) async fn openapi_document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(crate::openapi::document_json())
}
