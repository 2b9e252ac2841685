//! Observability: the Jaeger gate (`/api/observability/jaeger*`) for a reverse proxy's
//! `auth_request`, redirects into the Jaeger UI, and Prometheus metrics. The gate routes are
//! on the allow-list and answer 401/403 themselves.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::MaybeCaller;
use crate::error::AppError;
use crate::extract::ApiQuery;
use crate::state::AppState;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/observability")
            .service(web::resource("/metrics").route(web::get().to(metrics)))
            .service(web::resource("/jaeger/login").route(web::get().to(jaeger_login)))
            .service(web::resource("/jaeger/auth").route(web::get().to(jaeger_auth)))
            .service(web::resource("/jaeger").route(web::route().to(jaeger_redirect)))
            .service(
                web::resource("/jaeger/{full_path:.*}").route(web::route().to(jaeger_redirect)),
            ),
    );
}

/// Admins only; anonymous 401, others 403.
fn require_admin(caller: &MaybeCaller) -> Result<&identity::Principal, AppError> {
    match &caller.0 {
        None => Err(AppError::new("auth.unauthorized")),
        Some(p) if p.is_admin() => Ok(p),
        Some(_) => Err(AppError::new("auth.forbidden")),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct NextQuery {
    /// Local path to continue to (default: the proxy's `X-Original-URI`, else `/jaeger/`).
    next: Option<String>,
}

/// A local path (the identity crate's check: one leading `/`, no `\\`, no control
/// character, so a TAB cannot hide a `//host`).
fn local(path: &str) -> Option<String> {
    identity::safe_local_path(path)
}

/// Entry into Jaeger: admins continue to `next`; anonymous browsers go to the login page.
#[utoipa::path(get, path = "/api/observability/jaeger/login", tag = "observability", params(NextQuery),
    responses((status = 302, description = "To `next` (admin) or to the login page (anonymous)"),
              (status = 403, description = "Not an admin"), (status = 503, description = "No password login to send the browser to")))]
pub(crate) async fn jaeger_login(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: MaybeCaller,
    query: ApiQuery<NextQuery>,
) -> Result<HttpResponse, AppError> {
    let next = query
        .0
        .next
        .as_deref()
        .and_then(local)
        .or_else(|| {
            req.headers()
                .get("x-original-uri")
                .and_then(|v| v.to_str().ok())
                .and_then(local)
        })
        .unwrap_or_else(|| "/jaeger/".to_owned());
    match &caller.0 {
        Some(p) if p.is_admin() => Ok(HttpResponse::Found()
            .insert_header((header::LOCATION, next))
            .finish()),
        Some(_) => Err(AppError::new("auth.forbidden")),
        None if state.config.auth_mode == platform::AuthMode::OAuth => {
            Err(AppError::new("observability.login_unavailable"))
        }
        None => {
            let here = format!(
                "{}?next={}",
                req.path(),
                form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
            );
            let target = format!(
                "{}?next={}&local_only=1",
                state.config.login_page,
                form_urlencoded::byte_serialize(here.as_bytes()).collect::<String>()
            );
            Ok(HttpResponse::Found()
                .insert_header((header::LOCATION, target))
                .finish())
        }
    }
}

/// For a proxy's `auth_request`: 204 with the admin's identity, else 401/403.
#[utoipa::path(get, path = "/api/observability/jaeger/auth", tag = "observability",
    responses((status = 204, description = "An admin; identity in X-Sage-UserId, X-Sage-Username, X-Sage-Role"),
              (status = 401, description = "Not logged in"), (status = 403, description = "Not an admin")))]
pub(crate) async fn jaeger_auth(caller: MaybeCaller) -> Result<HttpResponse, AppError> {
    let admin = require_admin(&caller)?;
    Ok(HttpResponse::NoContent()
        .insert_header(("X-Sage-UserId", admin.user_id.clone()))
        .insert_header(("X-Sage-Username", admin.username.clone()))
        .insert_header(("X-Sage-Role", admin.role.as_str()))
        .finish())
}

/// 307 into the Jaeger UI (`SAGE_JAEGER_PUBLIC_URL`), path and query preserved; admins only.
#[utoipa::path(get, path = "/api/observability/jaeger", tag = "observability",
    responses((status = 307, description = "To the Jaeger UI"), (status = 401, description = "Not logged in"),
              (status = 403, description = "Not an admin"), (status = 404, description = "Jaeger is not configured")))]
pub(crate) async fn jaeger_redirect(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: MaybeCaller,
) -> Result<HttpResponse, AppError> {
    require_admin(&caller)?;
    let base = state
        .config
        .jaeger_public_url
        .as_deref()
        .ok_or_else(|| AppError::new("observability.jaeger_not_configured"))?;
    let rest = req
        .match_info()
        .get("full_path")
        .unwrap_or_default()
        .trim_start_matches('/');
    let mut target = format!("{}/{rest}", base.trim_end_matches('/'));
    if !req.query_string().is_empty() {
        target.push('?');
        target.push_str(req.query_string());
    }
    Ok(HttpResponse::TemporaryRedirect()
        .insert_header((header::LOCATION, target))
        .finish())
}

/// Prometheus text metrics (public, as in Sage).
#[utoipa::path(get, path = "/api/observability/metrics", tag = "observability",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub(crate) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let counts = crate::middleware::request_counts();
    let mut text = String::new();
    text.push_str(
        "# HELP sage_up Whether the server is serving.\n# TYPE sage_up gauge\nsage_up 1\n",
    );
    text.push_str(&format!(
        "# HELP sage_uptime_seconds Seconds since the process started.\n# TYPE sage_uptime_seconds gauge\nsage_uptime_seconds {}\n",
        state.started_at.elapsed().as_secs()
    ));
    text.push_str("# HELP sage_http_requests_total Requests answered, by status class.\n# TYPE sage_http_requests_total counter\n");
    for (class, n) in ["1xx", "2xx", "3xx", "4xx", "5xx"].iter().zip(counts) {
        text.push_str(&format!(
            "sage_http_requests_total{{class=\"{class}\"}} {n}\n"
        ));
    }
    text.push_str(&format!(
        "# HELP sage_build_info Build information.\n# TYPE sage_build_info gauge\nsage_build_info{{version=\"{}\"}} 1\n",
        env!("CARGO_PKG_VERSION")
    ));
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text)
}
