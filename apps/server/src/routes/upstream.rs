//! Upstream (OIDC) login: `/api/auth/upstream/*` and the aliases `/api/user/oauth/*`.
//! Starting answers 302 to the provider; the callback answers 302 to the local `next` path
//! with the session cookie, or a 4xx envelope when the flow is invalid or the provider refused.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use identity::UpstreamCallback;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth;
use crate::error::AppError;
use crate::extract::ApiQuery;
use crate::state::AppState;

/// The cookie binding a login flow to the browser that started it.
const FLOW_COOKIE: &str = "sage_oidc_flow";

/// Routes inside the `/api/auth` scope.
pub(crate) fn configure_auth(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/upstream/login").route(web::get().to(start_default)))
        .service(web::resource("/upstream/login/{provider_id}").route(web::get().to(start)))
        .service(web::resource("/upstream/callback/{provider_id}").route(web::get().to(callback)));
}

/// The legacy aliases inside the `/api/user` scope.
pub(crate) fn configure_user_aliases(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/oauth/login").route(web::get().to(start_default)))
        .service(web::resource("/oauth/login/{provider_id}").route(web::get().to(start)))
        .service(web::resource("/oauth/callback/{provider_id}").route(web::get().to(callback)));
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct StartQuery {
    /// Local path to return to after login.
    next: Option<String>,
    /// Callback URL on this server's origin (default: the auth callback route).
    redirect_uri: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// This server's external base URL: `SAGE_PUBLIC_URL`, else the request's `Host`.
fn base_url(req: &HttpRequest, state: &AppState) -> String {
    if let Some(url) = &state.config.public_url {
        return url.clone();
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

async fn begin(
    req: HttpRequest,
    state: web::Data<AppState>,
    provider_id: Option<String>,
    query: StartQuery,
) -> Result<HttpResponse, AppError> {
    let base = base_url(&req, &state);
    let started = state
        .identity
        .upstream_start(
            provider_id.as_deref(),
            &base,
            query.redirect_uri.as_deref(),
            query.next.as_deref(),
        )
        .await?;
    let cookie = Cookie::build(FLOW_COOKIE, started.state)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(actix_web::cookie::time::Duration::seconds(
            i64::try_from(started.ttl.as_secs()).unwrap_or(600),
        ))
        .finish();
    Ok(HttpResponse::Found()
        .insert_header((header::LOCATION, started.authorize_url))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .cookie(cookie)
        .finish())
}

/// Start login with a given upstream provider.
#[utoipa::path(get, path = "/api/auth/upstream/login/{provider_id}", tag = "auth",
    params(("provider_id" = String, Path), StartQuery),
    responses((status = 302, description = "To the provider's authorization endpoint"), (status = 404, description = "Unknown provider")))]
pub(crate) async fn start(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: ApiQuery<StartQuery>,
) -> Result<HttpResponse, AppError> {
    begin(req, state, Some(path.into_inner()), query.0).await
}

/// Start login with the default (first) upstream provider.
#[utoipa::path(get, path = "/api/auth/upstream/login", tag = "auth", params(StartQuery),
    responses((status = 302, description = "To the provider's authorization endpoint"), (status = 404, description = "No provider")))]
pub(crate) async fn start_default(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: ApiQuery<StartQuery>,
) -> Result<HttpResponse, AppError> {
    begin(req, state, None, query.0).await
}

/// The provider's redirect back: completes the login and opens a session.
#[utoipa::path(get, path = "/api/auth/upstream/callback/{provider_id}", tag = "auth",
    params(("provider_id" = String, Path), CallbackQuery),
    responses((status = 302, description = "Logged in; to the local `next` path"),
              (status = 400, description = "Unknown, expired or foreign flow, or the provider refused"),
              (status = 502, description = "The provider failed")))]
pub(crate) async fn callback(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: ApiQuery<CallbackQuery>,
) -> Result<HttpResponse, AppError> {
    let browser_state = req.cookie(FLOW_COOKIE).map(|c| c.value().to_owned());
    let q = query.0;
    let mut clear = Cookie::build(FLOW_COOKIE, "").path("/").finish();
    clear.make_removal();
    let result = state
        .identity
        .upstream_finish(
            &path.into_inner(),
            UpstreamCallback {
                code: q.code,
                state: q.state,
                error: q.error,
                error_description: q.error_description,
            },
            browser_state.as_deref(),
        )
        .await;
    match result {
        Ok(login) => {
            let session =
                auth::session_cookie(&login.session_id, &state.config, state.session_max_age_secs);
            Ok(HttpResponse::Found()
                .insert_header((header::LOCATION, login.next))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .cookie(session)
                .cookie(clear)
                .finish())
        }
        Err(e) => {
            let mut response = actix_web::ResponseError::error_response(&AppError::from(e));
            response.add_cookie(&clear).map_err(AppError::internal)?;
            Ok(response)
        }
    }
}
