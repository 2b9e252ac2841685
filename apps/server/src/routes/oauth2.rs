//! The OAuth2 authorization server's protocol endpoints under `/oauth2` (advertised) and
//! `/api/oauth2` (the same handlers), and the discovery documents under `/.well-known`.
//! Answers are RFC 6749 bodies (`{error, error_description}`), never the API envelope.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use identity::Principal;
use oauth_as::{AuthorizeOutcome, AuthorizeRequest, ClientCredentials, OAuthError, TokenRequest};

use crate::state::AppState;

/// `/.well-known/*` and `/oauth2/*` at the root.
pub(crate) fn configure_root(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/.well-known/oauth-authorization-server",
        web::get().to(well_known_oauth),
    )
    .route(
        "/.well-known/openid-configuration",
        web::get().to(well_known_openid),
    )
    .service(scope());
}

/// `/oauth2/*` inside the `/api` scope.
pub(crate) fn configure_api(cfg: &mut web::ServiceConfig) {
    cfg.service(scope());
}

fn scope() -> actix_web::Scope {
    web::scope("/oauth2")
        .route("/metadata", web::get().to(metadata))
        .route("/authorize", web::get().to(authorize))
        .route("/authorize/consent", web::post().to(consent))
        .route("/token", web::post().to(token))
        .route("/userinfo", web::get().to(userinfo))
        .route("/userinfo", web::post().to(userinfo_post))
        .route("/jwks", web::get().to(jwks))
        .route("/revoke", web::post().to(revoke))
        .route("/introspect", web::post().to(introspect))
}

/// The issuer: `SAGE_PUBLIC_URL` + `/oauth2`, else this request's own origin + `/oauth2`.
fn issuer(req: &HttpRequest, state: &AppState) -> String {
    let base = match state.config.public_url.as_deref() {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => crate::auth::request_origin(req, &state.config)
            .unwrap_or_else(|| format!("http://{}:{}", state.config.host, state.config.port)),
    };
    format!("{base}/oauth2")
}

/// The token endpoint's form fields (documentation only: the handler reads the raw form, so
/// repeated fields can be refused and any Content-Type accepted).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct TokenForm {
    /// `authorization_code` or `refresh_token`.
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    scope: Option<String>,
    /// Unless HTTP Basic authenticates the client.
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// The revocation and introspection endpoints' form fields (documentation only).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct TokenHintForm {
    /// Required.
    token: Option<String>,
    token_type_hint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

fn no_store(mut builder: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    builder
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"));
    builder
}

/// An RFC 6749 error body with its status and, where due, `WWW-Authenticate`.
fn error_response(error: OAuthError, at_authorize: bool) -> HttpResponse {
    let code = error.code();
    let description = match &error {
        OAuthError::Protocol { description, .. } => description.clone(),
        OAuthError::Internal(e) => {
            tracing::error!(error = %e, "OAuth2 request failed");
            "the server could not complete the request".to_owned()
        }
    };
    let status = match code {
        "invalid_client" | "invalid_token" => StatusCode::UNAUTHORIZED,
        "unauthorized_client" if at_authorize => StatusCode::FORBIDDEN,
        "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    let mut builder = no_store(HttpResponse::build(status));
    match code {
        "invalid_client" => {
            builder.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"sage\""));
        }
        "invalid_token" => {
            builder.insert_header((
                header::WWW_AUTHENTICATE,
                "Bearer realm=\"sage\", error=\"invalid_token\"",
            ));
        }
        _ => {}
    }
    builder.json(serde_json::json!({"error": code, "error_description": description}))
}

/// Form or query parameters; a repeated parameter is refused (RFC 6749 §3.1, §3.2).
fn params(text: &[u8]) -> Result<std::collections::HashMap<String, String>, OAuthError> {
    let mut out = std::collections::HashMap::new();
    for (name, value) in form_urlencoded::parse(text) {
        if out.insert(name.to_string(), value.into_owned()).is_some() {
            return Err(OAuthError::invalid_request(format!(
                "parameter {name} is repeated"
            )));
        }
    }
    Ok(out)
}

fn credentials(
    req: &HttpRequest,
    form: &mut std::collections::HashMap<String, String>,
) -> ClientCredentials {
    ClientCredentials {
        authorization: req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        client_id: form.remove("client_id"),
        client_secret: form.remove("client_secret"),
    }
}

fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn consent_page(action: &str, prompt: &oauth_as::ConsentPrompt) -> HttpResponse {
    let scopes: String = prompt
        .scopes
        .iter()
        .map(|s| format!("<li>{}</li>", html_escape(s)))
        .collect();
    let description = prompt
        .client_description
        .as_deref()
        .map(|d| format!("<p>{}</p>", html_escape(d)))
        .unwrap_or_default();
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Authorize {name}</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}}\
         button{{padding:.5rem 1rem;margin-right:.5rem}}</style></head><body>\
         <h1>{name} wants to use your Sage account</h1>{description}\
         <p>It will receive:</p><ul>{scopes}</ul><p>You will be sent back to <b>{host}</b>.</p>\
         <form method=\"post\" action=\"{action}\">\
         <input type=\"hidden\" name=\"ticket\" value=\"{ticket}\">\
         <button type=\"submit\" name=\"decision\" value=\"approve\">Allow</button>\
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form></body></html>",
        name = html_escape(&prompt.client_name),
        host = html_escape(&prompt.redirect_host),
        action = html_escape(action),
        ticket = html_escape(&prompt.ticket),
    );
    no_store(HttpResponse::Ok())
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ))
        .content_type("text/html; charset=utf-8")
        .body(page)
}

fn discovery(req: &HttpRequest, state: &AppState) -> HttpResponse {
    HttpResponse::Ok().json(oauth_as::metadata(&issuer(req, state)))
}

/// Authorization server metadata (RFC 8414).
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "oauth2", security(()),
    responses((status = 200, description = "The metadata document")))]
pub(crate) async fn well_known_oauth(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    discovery(&req, &state)
}

/// OpenID Connect discovery (the same document).
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "oauth2", security(()),
    responses((status = 200, description = "The metadata document")))]
pub(crate) async fn well_known_openid(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> HttpResponse {
    discovery(&req, &state)
}

/// Metadata alias (also under `/api/oauth2`).
#[utoipa::path(get, path = "/oauth2/metadata", tag = "oauth2", security(()),
    responses((status = 200, description = "The metadata document")))]
pub(crate) async fn metadata(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    discovery(&req, &state)
}

/// Start the authorization code flow (PKCE S256 required); also under `/api/oauth2`.
#[utoipa::path(get, path = "/oauth2/authorize", tag = "oauth2", security(()),
    params(("response_type" = String, Query), ("client_id" = String, Query),
           ("redirect_uri" = Option<String>, Query), ("scope" = Option<String>, Query),
           ("state" = Option<String>, Query), ("code_challenge" = String, Query),
           ("code_challenge_method" = String, Query), ("nonce" = Option<String>, Query)),
    responses((status = 302, description = "To the client with `code`, `state` and `iss`, or to the login page"),
              (status = 200, description = "The consent page (clients with `skip_consent=false`)", content_type = "text/html"),
              (status = 400, description = "`invalid_request`, `invalid_scope`, `unsupported_response_type`"),
              (status = 401, description = "`invalid_client`"), (status = 403, description = "`unauthorized_client`")))]
pub(crate) async fn authorize(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let mut query = match params(req.query_string().as_bytes()) {
        Ok(q) => q,
        Err(e) => return error_response(e, true),
    };
    let request = AuthorizeRequest {
        response_type: query.remove("response_type"),
        client_id: query.remove("client_id"),
        redirect_uri: query.remove("redirect_uri"),
        scope: query.remove("scope"),
        state: query.remove("state"),
        code_challenge: query.remove("code_challenge"),
        code_challenge_method: query.remove("code_challenge_method"),
        nonce: query.remove("nonce"),
    };
    let user = req
        .extensions()
        .get::<Principal>()
        .map(|p| p.user_id.clone());
    let issuer = issuer(&req, &state);
    match state
        .oauth
        .authorize(user.as_deref(), request, &issuer)
        .await
    {
        Ok(AuthorizeOutcome::Redirect(url)) => no_store(HttpResponse::Found())
            .insert_header((header::LOCATION, url))
            .finish(),
        Ok(AuthorizeOutcome::Login) => {
            let here = match req.query_string() {
                "" => req.path().to_owned(),
                q => format!("{}?{q}", req.path()),
            };
            let next: String = form_urlencoded::byte_serialize(here.as_bytes()).collect();
            no_store(HttpResponse::Found())
                .insert_header((
                    header::LOCATION,
                    format!("{}?next={next}", state.config.login_page),
                ))
                .finish()
        }
        Ok(AuthorizeOutcome::Consent(prompt)) => {
            consent_page(&format!("{}/consent", req.path()), &prompt)
        }
        Err(e) => error_response(e, true),
    }
}

/// The consent form's answer (`ticket`, `decision` = approve | deny); also under `/api/oauth2`.
#[utoipa::path(post, path = "/oauth2/authorize/consent", tag = "oauth2",
    responses((status = 302, description = "To the client with `code`, or with `error=access_denied`"),
              (status = 400, description = "`invalid_request`: the ticket expired or was answered"),
              (status = 401, description = "`login_required`")))]
pub(crate) async fn consent(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> HttpResponse {
    let Some(user) = req
        .extensions()
        .get::<Principal>()
        .map(|p| p.user_id.clone())
    else {
        return no_store(HttpResponse::Unauthorized()).json(serde_json::json!({
            "error": "login_required", "error_description": "log in, then answer the request again"
        }));
    };
    let form = match params(&body) {
        Ok(f) => f,
        Err(e) => return error_response(e, true),
    };
    let ticket = form.get("ticket").map(String::as_str).unwrap_or_default();
    let approve = form.get("decision").map(String::as_str) == Some("approve");
    match state
        .oauth
        .consent(&user, ticket, approve, &issuer(&req, &state))
        .await
    {
        Ok(url) => no_store(HttpResponse::Found())
            .insert_header((header::LOCATION, url))
            .finish(),
        Err(e) => error_response(e, true),
    }
}

/// Exchange a code or a refresh token (form body, whatever the Content-Type); also under
/// `/api/oauth2`.
#[utoipa::path(post, path = "/oauth2/token", tag = "oauth2", security(()),
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded",
        description = "grant_type, code, redirect_uri, code_verifier | refresh_token, scope; client_id/client_secret unless HTTP Basic"),
    responses((status = 200, description = "`{token_type, access_token, expires_in, refresh_token?, scope, id_token?}`"),
              (status = 400, description = "`invalid_request`, `invalid_grant`, `invalid_scope`, `unauthorized_client`, `unsupported_grant_type`"),
              (status = 401, description = "`invalid_client`")))]
pub(crate) async fn token(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> HttpResponse {
    let mut form = match params(&body) {
        Ok(f) => f,
        Err(e) => return error_response(e, false),
    };
    let client = credentials(&req, &mut form);
    let request = TokenRequest {
        grant_type: form.remove("grant_type"),
        code: form.remove("code"),
        redirect_uri: form.remove("redirect_uri"),
        code_verifier: form.remove("code_verifier"),
        refresh_token: form.remove("refresh_token"),
        scope: form.remove("scope"),
    };
    match state
        .oauth
        .token(client, request, &issuer(&req, &state))
        .await
    {
        Ok(tokens) => no_store(HttpResponse::Ok()).json(tokens),
        Err(e) => error_response(e, false),
    }
}

/// The access token's user (`Authorization: Bearer`); also `POST`, and under `/api/oauth2`.
#[utoipa::path(get, path = "/oauth2/userinfo", tag = "oauth2", security(()),
    responses((status = 200, description = "Claims: sub, iss, preferred_username, role; name and picture with `profile`; email with `email`"),
              (status = 401, description = "`invalid_token`")))]
pub(crate) async fn userinfo(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_owned())
        .unwrap_or_default();
    match state.oauth.userinfo(&token, &issuer(&req, &state)).await {
        Ok(claims) => no_store(HttpResponse::Ok()).json(claims),
        Err(e) => error_response(e, false),
    }
}

/// The same as `GET`.
#[utoipa::path(post, path = "/oauth2/userinfo", tag = "oauth2", security(()),
    responses((status = 200, description = "The claims, as `GET`"), (status = 401, description = "`invalid_token`")))]
pub(crate) async fn userinfo_post(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    userinfo(req, state).await
}

/// The keys id_tokens are signed with (JWK Set); also under `/api/oauth2`.
#[utoipa::path(get, path = "/oauth2/jwks", tag = "oauth2", security(()),
    responses((status = 200, description = "`{keys: [JWK]}`")))]
pub(crate) async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    match state.oauth.jwks().await {
        Ok(keys) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
            .json(keys),
        Err(e) => error_response(e, false),
    }
}

/// Token revocation (RFC 7009): `token` in the form, client authenticated; also under
/// `/api/oauth2`.
#[utoipa::path(post, path = "/oauth2/revoke", tag = "oauth2", security(()),
    request_body(content = TokenHintForm, content_type = "application/x-www-form-urlencoded", description = "token, token_type_hint?"),
    responses((status = 200, description = "Revoked, or unknown (ignored)"),
              (status = 400, description = "`invalid_request`"), (status = 401, description = "`invalid_client`")))]
pub(crate) async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> HttpResponse {
    let mut form = match params(&body) {
        Ok(f) => f,
        Err(e) => return error_response(e, false),
    };
    let client = credentials(&req, &mut form);
    let Some(token) = form.remove("token").filter(|t| !t.is_empty()) else {
        return error_response(OAuthError::invalid_request("token is required"), false);
    };
    match state.oauth.revoke(client, &token).await {
        Ok(()) => no_store(HttpResponse::Ok()).finish(),
        Err(e) => error_response(e, false),
    }
}

/// Token introspection (RFC 7662) of the client's own tokens; also under `/api/oauth2`.
#[utoipa::path(post, path = "/oauth2/introspect", tag = "oauth2", security(()),
    request_body(content = TokenHintForm, content_type = "application/x-www-form-urlencoded", description = "token, token_type_hint?"),
    responses((status = 200, description = "`{active: false}` or `{active: true, scope, client_id, username, sub, token_type, exp, iat, iss}`"),
              (status = 400, description = "`invalid_request`"), (status = 401, description = "`invalid_client`")))]
pub(crate) async fn introspect(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> HttpResponse {
    let mut form = match params(&body) {
        Ok(f) => f,
        Err(e) => return error_response(e, false),
    };
    let client = credentials(&req, &mut form);
    let Some(token) = form.remove("token").filter(|t| !t.is_empty()) else {
        return error_response(OAuthError::invalid_request("token is required"), false);
    };
    match state
        .oauth
        .introspect(client, &token, &issuer(&req, &state))
        .await
    {
        Ok(answer) => no_store(HttpResponse::Ok()).json(answer),
        Err(e) => error_response(e, false),
    }
}
