//! Upstream (OIDC) login: `/api/auth/upstream/*` and the aliases `/api/user/oauth/*`.
//! Starting answers 302 to the provider; the callback answers 302 to the local `next` path
//! with the session cookie, or a 4xx envelope when the flow is invalid or the provider refused.
//! `POST /api/auth/upstream/link/{provider_id}` lets a logged-in user link an upstream
//! identity to their account through the same callback.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use identity::{ClientInfo, UpstreamCallback, UpstreamStart};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::{self, Caller, MaybeCaller};
use crate::error::AppError;
use crate::extract::ApiQuery;
use crate::state::AppState;

/// The cookie binding a login flow to the browser that started it (a random secret whose
/// hash is in the flow record; not the `state`, which travels in URLs).
const FLOW_COOKIE: &str = "sage_oidc_flow";

/// Routes inside the `/api/auth` scope.
pub(crate) fn configure_auth(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/upstream/login").route(web::get().to(start_default)))
        .service(web::resource("/upstream/login/{provider_id}").route(web::get().to(start)))
        .service(web::resource("/upstream/link/{provider_id}").route(web::post().to(link)))
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
    /// Local path to return to after login (at most 2048 characters).
    next: Option<String>,
    /// Only this server's registered callback (`SAGE_PUBLIC_URL` +
    /// `/api/auth/upstream/callback/{provider_id}`, or its `/api/user/oauth/` alias).
    redirect_uri: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LinkQuery {
    /// Local path to return to after linking (at most 2048 characters).
    next: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

fn client(req: &HttpRequest, state: &AppState) -> ClientInfo {
    ClientInfo {
        ip: auth::client_ip(req, &state.config),
    }
}

fn secure_cookies(state: &AppState) -> bool {
    state.config.secure_cookies()
}

/// 302 to the provider, with the cookie holding the flow's browser secret.
fn to_provider(state: &AppState, started: UpstreamStart) -> HttpResponse {
    let cookie = Cookie::build(FLOW_COOKIE, started.browser_secret)
        .path("/")
        .http_only(true)
        .secure(secure_cookies(state))
        .same_site(SameSite::Lax)
        .max_age(actix_web::cookie::time::Duration::seconds(
            i64::try_from(started.ttl.as_secs()).unwrap_or(600),
        ))
        .finish();
    HttpResponse::Found()
        .insert_header((header::LOCATION, started.authorize_url))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .cookie(cookie)
        .finish()
}

async fn begin(
    req: HttpRequest,
    state: web::Data<AppState>,
    provider_id: Option<String>,
    query: StartQuery,
) -> Result<HttpResponse, AppError> {
    let started = state
        .identity
        .upstream_start(
            provider_id.as_deref(),
            query.redirect_uri.as_deref(),
            query.next.as_deref(),
            client(&req, &state),
        )
        .await?;
    Ok(to_provider(&state, started))
}

/// Start login with a given upstream provider.
#[utoipa::path(get, path = "/api/auth/upstream/login/{provider_id}", tag = "auth",
    params(("provider_id" = String, Path), StartQuery),
    responses((status = 302, description = "To the provider's authorization endpoint"), (status = 404, description = "Unknown provider"),
              (status = 422, description = "A `next` too long or a foreign `redirect_uri`"), (status = 429, description = "Too many starts from this address")))]
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
    responses((status = 302, description = "To the provider's authorization endpoint"), (status = 404, description = "No provider"),
              (status = 422, description = "A `next` too long or a foreign `redirect_uri`"), (status = 429, description = "Too many starts from this address")))]
pub(crate) async fn start_default(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: ApiQuery<StartQuery>,
) -> Result<HttpResponse, AppError> {
    begin(req, state, None, query.0).await
}

/// Link an upstream identity to the logged-in caller's account: 302 to the provider, whose
/// callback links the identity and returns to `next` in the same session.
#[utoipa::path(post, path = "/api/auth/upstream/link/{provider_id}", tag = "auth",
    params(("provider_id" = String, Path), LinkQuery),
    responses((status = 302, description = "To the provider's authorization endpoint"),
              (status = 401, description = "Not logged in"), (status = 404, description = "Unknown provider"),
              (status = 429, description = "Too many starts from this address")))]
pub(crate) async fn link(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: ApiQuery<LinkQuery>,
) -> Result<HttpResponse, AppError> {
    let started = state
        .identity
        .upstream_link_start(
            &caller.0,
            &path.into_inner(),
            query.0.next.as_deref(),
            client(&req, &state),
        )
        .await?;
    Ok(to_provider(&state, started))
}

/// The provider's redirect back: completes the login and opens a session (or, for a link
/// flow, links the identity to the caller).
#[utoipa::path(get, path = "/api/auth/upstream/callback/{provider_id}", tag = "auth",
    params(("provider_id" = String, Path), CallbackQuery),
    responses((status = 302, description = "Logged in (or linked); to the local `next` path"),
              (status = 400, description = "Unknown, expired or foreign flow, or the provider refused"),
              (status = 409, description = "The e-mail belongs to an account that must link this identity itself, or the identity is linked to another account"),
              (status = 502, description = "The provider failed")))]
pub(crate) async fn callback(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: MaybeCaller,
    path: web::Path<String>,
    query: ApiQuery<CallbackQuery>,
) -> Result<HttpResponse, AppError> {
    let browser_secret = req.cookie(FLOW_COOKIE).map(|c| c.value().to_owned());
    let q = query.0;
    let mut clear = Cookie::build(FLOW_COOKIE, "")
        .path("/")
        .http_only(true)
        .secure(secure_cookies(&state))
        .finish();
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
            browser_secret.as_deref(),
            caller.0.as_ref(),
        )
        .await;
    match result {
        Ok(login) => {
            let mut response = HttpResponse::Found();
            response
                .insert_header((header::LOCATION, login.next))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .cookie(clear);
            if let Some(session_id) = &login.session_id {
                response.cookie(auth::session_cookie(
                    session_id,
                    &state.config,
                    state.session_max_age_secs,
                ));
            }
            Ok(response.finish())
        }
        Err(e) => {
            let mut response = actix_web::ResponseError::error_response(&AppError::from(e));
            response.add_cookie(&clear).map_err(AppError::internal)?;
            Ok(response)
        }
    }
}
