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
use platform::{AuthMode, Config};

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
    "/api/oauth2/authorize/consent",
    "/oauth2/authorize",
    "/oauth2/authorize/consent",
    "/api/share/conversations/{}/messages",
    "/api/observability/metrics",
    "/api/observability/jaeger",
    "/api/observability/jaeger/**",
    "/api/oss/files/**",
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

/// Paths behind the gate: the JSON API, the planner, and the two OAuth2 authorization
/// steps at the root (they need the login session).
fn is_gated(path: &str) -> bool {
    path == "/api"
        || path.starts_with("/api/")
        || path == "/tasks"
        || path.starts_with("/tasks/")
        || path.starts_with("/oauth2/authorize")
}

/// The OAuth2 endpoints clients call with their own credentials (token, userinfo, revoke,
/// introspect, metadata, keys): never authenticated by our session or access token.
fn is_oauth2_client_endpoint(path: &str) -> bool {
    path.strip_prefix("/api")
        .unwrap_or(path)
        .strip_prefix("/oauth2/")
        .is_some_and(|rest| !rest.starts_with("authorize"))
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

/// How the caller was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Bearer,
    Cookie,
    /// The trusted proxy's identity header: ambient like a cookie (the proxy authenticates
    /// the browser by its own cookie), so it is CSRF-checked too.
    Proxy,
}

fn peer_is_trusted(peer: Option<IpAddr>, config: &Config) -> bool {
    peer.is_some_and(|ip| config.trusted_proxies.iter().any(|n| n.contains(ip)))
}

/// Resolves the caller from the request's credentials.
async fn resolve(
    req: &ServiceRequest,
    state: &AppState,
) -> Result<Option<(Principal, Via)>, AppError> {
    if let Some(token) = bearer(req)
        && let Some(p) = state
            .identity
            .authenticate(Credential::Bearer(&token))
            .await?
    {
        return Ok(Some((p, Via::Bearer)));
    }
    // An invalid or expired Bearer token falls back to the cookie: the web UI sends both,
    // and its access token expires long before its session.
    if let Some(cookie) = req.cookie(SESSION_COOKIE)
        && let Some(p) = state
            .identity
            .authenticate(Credential::Session(cookie.value()))
            .await?
    {
        return Ok(Some((p, Via::Cookie)));
    }
    // The identity header counts only in trusted_proxy mode and only from a configured proxy
    // (the real peer address); the proxy must strip it from clients' requests.
    if state.config.auth_mode == AuthMode::TrustedProxy
        && let Some(user) = req
            .headers()
            .get(PROXY_USER_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|u| !u.is_empty())
        && peer_is_trusted(req.peer_addr().map(|a| a.ip()), &state.config)
        && let Some(p) = state.identity.authenticate_proxy_user(user).await?
    {
        return Ok(Some((p, Via::Proxy)));
    }
    Ok(None)
}

/// `scheme://host[:port]` of a URL or origin, lower case, default ports dropped.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next()?.to_ascii_lowercase();
    if authority.is_empty() {
        return None;
    }
    let authority = match (scheme.as_str(), authority.rsplit_once(':')) {
        ("http", Some((host, "80"))) | ("https", Some((host, "443"))) => host.to_owned(),
        _ => authority,
    };
    Some(format!("{scheme}://{authority}"))
}

/// This server's origin as the request reached it: `Host` (HTTP/2: `:authority`) and plain
/// http, or, only from a
/// trusted proxy, its `X-Forwarded-Host` and `X-Forwarded-Proto`.
pub(crate) fn request_origin(req: &HttpRequest, config: &Config) -> Option<String> {
    let header_text = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let trusted = peer_is_trusted(req.peer_addr().map(|a| a.ip()), config);
    let forwarded = |name: &str| if trusted { header_text(name) } else { None };
    // HTTP/2 carries the host in the `:authority` pseudo-header (the request's URI).
    let host = forwarded("x-forwarded-host")
        .or_else(|| header_text("host"))
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()))?;
    let scheme = forwarded("x-forwarded-proto").unwrap_or_else(|| "http".to_owned());
    origin_of(&format!("{scheme}://{host}"))
}

/// A state change carried by ambient credentials must come from our own origin (scheme and
/// host), `SAGE_PUBLIC_URL`'s, or an explicitly listed CORS origin (`*` never counts); a
/// missing `Origin` (non-browser clients) passes.
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
    let Some(origin) = origin_of(origin) else {
        return true;
    };
    let ours = request_origin(req.request(), &state.config);
    let public = state.config.public_url.as_deref().and_then(origin_of);
    let listed = state
        .config
        .cors_origins
        .iter()
        .filter(|o| o.as_str() != "*")
        .filter_map(|o| origin_of(o))
        .any(|o| o == origin);
    !(ours.as_deref() == Some(origin.as_str())
        || public.as_deref() == Some(origin.as_str())
        || listed)
}

/// `SAGE_WORKER_TOKEN` as a Bearer token opens the planner's internal protocol (and nothing
/// else) to an external worker, which acts as an administrator there.
fn worker_principal(req: &ServiceRequest, config: &Config) -> Option<Principal> {
    use subtle::ConstantTimeEq;
    let expected = config.worker_token.as_deref().filter(|t| !t.is_empty())?;
    if !req.path().starts_with("/tasks/internal/") {
        return None;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?
        .trim();
    if !bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
        return None;
    }
    Some(Principal {
        user_id: "task_scheduler".into(),
        username: "task_scheduler".into(),
        role: identity::Role::Admin,
        session_id: None,
    })
}

/// The authentication gate.
pub(crate) async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let open = {
        let path = req.path();
        !is_gated(path)
            || req.method() == Method::OPTIONS
            || PROBES.contains(&path)
            || is_oauth2_client_endpoint(path)
    };
    if open {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    }
    let path = req.path().to_owned();
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    if let Some(worker) = worker_principal(&req, &state.config) {
        req.extensions_mut().insert(worker);
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    }
    let principal = match resolve(&req, &state).await {
        Ok(p) => p,
        Err(e) => return Ok(req.into_response(render(&path, e))),
    };
    match principal {
        Some((principal, via)) => {
            if via != Via::Bearer && cross_site(&req, &state) {
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

/// The authenticated caller of a route that calls a model on their behalf: extracting it
/// takes one call from the caller's bucket (`platform::spend`), so an exhausted bucket
/// answers 429 with `Retry-After` before the body is read or any model is called.
#[derive(Debug, Clone)]
pub(crate) struct ModelCaller(pub Caller);

impl FromRequest for ModelCaller {
    type Error = AppError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let caller = req
            .extensions()
            .get::<Principal>()
            .cloned()
            .map(Caller)
            .ok_or_else(|| AppError::new("auth.unauthorized"));
        let budget = req
            .app_data::<web::Data<AppState>>()
            .map(|s| s.budget.clone());
        Box::pin(async move {
            let caller = caller?;
            let budget = budget
                .ok_or_else(|| AppError::internal(anyhow::anyhow!("no application state")))?;
            budget.admit(&caller.0.user_id).await?;
            Ok(ModelCaller(caller))
        })
    }
}

impl ModelCaller {
    pub fn actor(&self) -> platform::Actor {
        self.0.actor()
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
    let secure = config.secure_cookies();
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
    fn origins_compare_scheme_host_and_port() {
        assert_eq!(
            origin_of("https://A.example:443/x").as_deref(),
            Some("https://a.example")
        );
        assert_eq!(
            origin_of("http://a.example:80").as_deref(),
            Some("http://a.example")
        );
        assert_eq!(
            origin_of("http://a.example:8080").as_deref(),
            Some("http://a.example:8080")
        );
        assert_ne!(
            origin_of("https://a.example"),
            origin_of("http://a.example")
        );
        assert_eq!(origin_of("null"), None);
    }

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
