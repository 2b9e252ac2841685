//! Authentication, once, in middleware: the session cookie `sage_session` or an
//! `Authorization: Bearer` access token (or, from a configured trusted proxy, the identity
//! header) becomes a `Principal` in the request's extensions. Anonymous requests to `/api/*`
//! and `/tasks/*` answer 401 before any body is read, unless the path is on the allow-list
//! (published in docs/auth.md). Cookie-authenticated state changes must come from our own
//! origin (CSRF).

use std::net::IpAddr;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError, web};
use identity::{Credential, Principal};
use platform::Config;

use crate::error::AppError;
use crate::state::AppState;

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "sage_session";

/// The header a trusted proxy uses to assert the user (trusted-proxy deployments).
const PROXY_USER_HEADER: &str = "x-sage-internal-userid";

/// Paths answering without login; `{}` matches one segment, a trailing `/**` any rest.
pub const ALLOW_LIST: &[&str] = &[
    "/api/health",
    "/api/ready",
    "/api/system/info",
    "/api/system/version/check",
    "/api/system/version/latest",
    "/api/auth/register/send-code",
    "/api/auth/register",
    "/api/auth/login",
    "/api/auth/providers",
    "/api/auth/upstream/login",
    "/api/auth/upstream/login/{}",
    "/api/auth/upstream/callback/{}",
    "/api/auth/refresh",
    "/api/user/register/send-code",
    "/api/user/register",
    "/api/user/login",
    "/api/user/auth-providers",
    "/api/user/oauth/login",
    "/api/user/oauth/login/{}",
    "/api/user/oauth/callback/{}",
    "/api/user/refresh-token",
    "/api/oauth2/metadata",
    "/api/oauth2/authorize",
    "/api/oauth2/token",
    "/api/oauth2/userinfo",
    "/api/share/conversations/{}/messages",
    "/api/observability/metrics",
    "/api/observability/jaeger",
    "/api/observability/jaeger/**",
];

/// Probes answer without looking at credentials at all: liveness must not depend on the
/// session store, and a probe sends none anyway.
const PROBES: &[&str] = &["/api/health", "/api/ready"];

/// Whether `path` is on the allow-list.
pub fn is_allow_listed(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    ALLOW_LIST
        .iter()
        .any(|pattern| matches_pattern(pattern, path))
}

fn matches_pattern(pattern: &str, path: &str) -> bool {
    let mut pattern_parts = pattern.split('/');
    let mut path_parts = path.split('/');
    loop {
        match (pattern_parts.next(), path_parts.next()) {
            (Some("**"), Some(seg)) => return !seg.is_empty(),
            (Some("{}"), Some(seg)) if !seg.is_empty() => {}
            (Some(p), Some(seg)) if p == seg => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Paths behind the gate: the JSON API and the planner.
fn is_gated(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/") || path == "/tasks" || path.starts_with("/tasks/")
}

/// The client's address: the peer, or through configured trusted proxies the last
/// untrusted address of `X-Forwarded-For`.
pub(crate) fn client_ip(req: &HttpRequest, config: &Config) -> Option<IpAddr> {
    let peer = req.peer_addr().map(|a| a.ip())?;
    let trusted = |ip: IpAddr| config.trusted_proxies.iter().any(|net| net.contains(ip));
    if !trusted(peer) {
        return Some(peer);
    }
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mut candidate = peer;
    for hop in forwarded.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) if trusted(ip) => candidate = ip,
            Ok(ip) => return Some(ip),
            Err(_) => break,
        }
    }
    Some(candidate)
}

fn bearer(req: &ServiceRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// Resolves the caller from the request's credentials.
async fn resolve(
    req: &ServiceRequest,
    state: &AppState,
) -> Result<Option<(Principal, bool)>, AppError> {
    if let Some(token) = bearer(req)
        && let Some(p) = state
            .identity
            .authenticate(Credential::Bearer(&token))
            .await?
    {
        return Ok(Some((p, false)));
    }
    // An invalid or expired Bearer token falls back to the cookie: the web UI sends both,
    // and its access token expires long before its session.
    if let Some(cookie) = req.cookie(SESSION_COOKIE)
        && let Some(p) = state
            .identity
            .authenticate(Credential::Session(cookie.value()))
            .await?
    {
        return Ok(Some((p, true)));
    }
    if let Some(user) = req
        .headers()
        .get(PROXY_USER_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        let peer = req.peer_addr().map(|a| a.ip());
        let trusted =
            peer.is_some_and(|ip| state.config.trusted_proxies.iter().any(|n| n.contains(ip)));
        if trusted && !user.trim().is_empty() {
            return Ok(Some((
                state.identity.authenticate_proxy_user(user).await?,
                false,
            )));
        }
    }
    Ok(None)
}

/// A state change carried by a cookie must come from our own origin (or a CORS-allowed
/// one); a missing `Origin` (non-browser clients) passes.
fn cross_site(req: &ServiceRequest, state: &AppState) -> bool {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
    let host = req.connection_info().host().to_owned();
    let public_host = state.config.public_url.as_deref().and_then(|u| {
        u.split_once("://")
            .map(|(_, h)| h.trim_end_matches('/').to_owned())
    });
    let same = origin_host == host || public_host.as_deref() == Some(origin_host);
    !same
        && !state
            .config
            .cors_origins
            .iter()
            .any(|o| o == origin || o == "*")
}

/// The authentication gate.
pub(crate) async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let path = req.path().to_owned();
    if !is_gated(&path) || req.method() == Method::OPTIONS || PROBES.contains(&path.as_str()) {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    }
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    let principal = match resolve(&req, &state).await {
        Ok(p) => p,
        Err(e) => return Ok(req.into_response(render(&path, e))),
    };
    match principal {
        Some((principal, by_cookie)) => {
            if by_cookie && cross_site(&req, &state) {
                return Ok(req.into_response(render(&path, AppError::new("auth.cross_site"))));
            }
            req.extensions_mut().insert(principal);
        }
        None if is_allow_listed(&path) => {}
        None => return Ok(req.into_response(render(&path, AppError::new("auth.unauthorized")))),
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_boxed_body)
}

/// `/api` answers envelopes; `/tasks` answers `{detail, code}`.
fn render(path: &str, error: AppError) -> HttpResponse {
    if path.starts_with("/tasks") {
        crate::error::plain_error_response(&error)
    } else {
        error.error_response()
    }
}

/// The authenticated caller; handlers behind the gate take this.
#[derive(Debug, Clone)]
pub(crate) struct Caller(pub Principal);

impl FromRequest for Caller {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(
            req.extensions()
                .get::<Principal>()
                .cloned()
                .map(Caller)
                .ok_or_else(|| AppError::new("auth.unauthorized")),
        )
    }
}

impl Caller {
    /// The acting user as domain crates see it.
    pub fn actor(&self) -> platform::Actor {
        platform::Actor::new(self.0.user_id.clone(), self.0.is_admin())
    }
}

/// The caller when there is one (allow-listed routes that behave differently when logged in).
#[derive(Debug, Clone)]
pub(crate) struct MaybeCaller(pub Option<Principal>);

impl FromRequest for MaybeCaller {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Ok(MaybeCaller(
            req.extensions().get::<Principal>().cloned(),
        )))
    }
}

/// The session cookie for a new session.
pub(crate) fn session_cookie(
    session_id: &str,
    config: &Config,
    max_age_secs: i64,
) -> Cookie<'static> {
    let secure = config
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"));
    Cookie::build(SESSION_COOKIE, session_id.to_owned())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(actix_web::cookie::time::Duration::seconds(max_age_secs))
        .finish()
}

/// A cookie that removes the session cookie.
pub(crate) fn cleared_cookie() -> Cookie<'static> {
    let mut cookie = Cookie::build(SESSION_COOKIE, "")
        .path("/")
        .http_only(true)
        .finish();
    cookie.make_removal();
    cookie
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_patterns_match_exactly() {
        for open in [
            "/api/health",
            "/api/auth/login",
            "/api/auth/upstream/login/corp",
            "/api/user/oauth/callback/corp",
            "/api/share/conversations/abc/messages",
            "/api/observability/jaeger/api/traces",
        ] {
            assert!(is_allow_listed(open), "{open}");
        }
        for closed in [
            "/api/auth/session",
            "/api/auth/logout",
            "/api/chat",
            "/api/stream",
            "/api/auth/upstream/login/a/b",
            "/api/share/conversations//messages",
            "/api/healthz",
            "/api/user/list",
            "/tasks/one-time",
        ] {
            assert!(!is_allow_listed(closed), "{closed}");
        }
    }
}
