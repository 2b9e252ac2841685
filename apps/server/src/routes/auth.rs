//! Accounts and login: `/api/auth/*` and its compatibility aliases under `/api/user/*`
//! (the same handlers, registered twice).

use actix_web::{HttpRequest, HttpResponse, web};
use identity::{ClientInfo, LoginRequest, RegisterRequest};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{self, Caller, SESSION_COOKIE};
use crate::error::AppError;
use crate::extract::ApiJson;
use crate::response::{ApiOk, ApiResult, Envelope};
use crate::routes::system::AuthProviderDto;
use crate::state::AppState;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/auth")
            .service(web::resource("/register/send-code").route(web::post().to(send_code)))
            .service(web::resource("/register").route(web::post().to(register)))
            .service(web::resource("/login").route(web::post().to(login)))
            .service(web::resource("/session").route(web::get().to(session)))
            .service(web::resource("/providers").route(web::get().to(providers)))
            .service(web::resource("/logout").route(web::post().to(logout)))
            .service(web::resource("/refresh").route(web::post().to(refresh)))
            .configure(crate::routes::upstream::configure_auth),
    );
}

/// The legacy aliases under `/api/user`, sharing the handlers above.
pub(crate) fn configure_user_aliases(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/register/send-code").route(web::post().to(send_code)))
        .service(web::resource("/register").route(web::post().to(register)))
        .service(web::resource("/login").route(web::post().to(login)))
        .service(web::resource("/auth-providers").route(web::get().to(providers)))
        .service(web::resource("/logout").route(web::post().to(logout)))
        .service(web::resource("/check_login").route(web::get().to(session)))
        .service(web::resource("/refresh-token").route(web::post().to(refresh)));
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct SendCodeBody {
    email: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CodeSentDto {
    expires_in: u64,
    retry_after: u64,
}

/// Send an e-mail verification code before registration.
#[utoipa::path(post, path = "/api/auth/register/send-code", tag = "auth", request_body = SendCodeBody,
    responses((status = 200, body = Envelope<CodeSentDto>), (status = 429, description = "Resend throttled")))]
pub(crate) async fn send_code(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: ApiJson<SendCodeBody>,
) -> ApiResult<CodeSentDto> {
    let client = ClientInfo {
        ip: auth::client_ip(&req, &state.config),
    };
    let sent = state
        .identity
        .send_registration_code(&body.0.email, client)
        .await?;
    Ok(ApiOk(CodeSentDto {
        expires_in: sent.expires_in,
        retry_after: sent.retry_after,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct RegisterBody {
    username: String,
    password: String,
    email: String,
    phonenum: Option<String>,
    verification_code: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserIdDto {
    pub user_id: String,
}

/// Register a local account with a verification code.
#[utoipa::path(post, path = "/api/auth/register", tag = "auth", request_body = RegisterBody,
    responses((status = 200, body = Envelope<UserIdDto>), (status = 409, description = "Username or e-mail taken")))]
pub(crate) async fn register(
    state: web::Data<AppState>,
    body: ApiJson<RegisterBody>,
) -> ApiResult<UserIdDto> {
    let b = body.0;
    let user_id = state
        .identity
        .register(RegisterRequest {
            username: b.username,
            password: b.password,
            email: b.email,
            phonenum: b.phonenum,
            verification_code: b.verification_code,
        })
        .await?;
    Ok(ApiOk(UserIdDto { user_id }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct LoginBody {
    /// A username or an e-mail address (no control characters).
    #[schema(max_length = 254)]
    username_or_email: String,
    password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TokensDto {
    access_token: String,
    refresh_token: String,
    expires_in: u64,
    token_type: &'static str,
}

impl From<identity::TokenPair> for TokensDto {
    fn from(t: identity::TokenPair) -> Self {
        Self {
            access_token: t.access_token,
            refresh_token: t.refresh_token,
            expires_in: t.expires_in,
            token_type: "Bearer",
        }
    }
}

/// Log in with a password: sets the `sage_session` cookie and returns tokens.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginBody,
    responses((status = 200, body = Envelope<TokensDto>), (status = 401, description = "Invalid credentials"),
              (status = 429, description = "Too many attempts")))]
pub(crate) async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: ApiJson<LoginBody>,
) -> Result<HttpResponse, AppError> {
    let client = ClientInfo {
        ip: auth::client_ip(&req, &state.config),
    };
    let current = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned());
    let outcome = state
        .identity
        .login(
            LoginRequest {
                username_or_email: body.0.username_or_email,
                password: body.0.password,
            },
            client,
            current.as_deref(),
        )
        .await?;
    let cookie = auth::session_cookie(
        &outcome.session_id,
        &state.config,
        state.session_max_age_secs,
    );
    let mut response = ApiOk(TokensDto::from(outcome.tokens)).into_response();
    response.add_cookie(&cookie).map_err(AppError::internal)?;
    Ok(response)
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SessionUserDto {
    userid: String,
    user_id: String,
    username: String,
    nickname: String,
    email: String,
    phonenum: String,
    role: &'static str,
    avatar: String,
    avatar_url: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SessionDto {
    user: SessionUserDto,
    has_provider: bool,
    has_agent: bool,
}

/// The current login session.
#[utoipa::path(get, path = "/api/auth/session", tag = "auth",
    responses((status = 200, body = Envelope<SessionDto>), (status = 401, description = "Not logged in")))]
pub(crate) async fn session(state: web::Data<AppState>, caller: Caller) -> ApiResult<SessionDto> {
    // Three independent reads, at once (each on its own pooled connection).
    let actor = caller.actor();
    let (user, has_provider, has_agent) = tokio::try_join!(
        async { Ok::<_, AppError>(state.identity.current_user(&caller.0).await?) },
        async { Ok::<_, AppError>(state.providers.has_provider(&actor).await?) },
        async { Ok::<_, AppError>(state.agents.has_agent(&actor).await?) },
    )?;
    let avatar = user.avatar.unwrap_or_default();
    Ok(ApiOk(SessionDto {
        user: SessionUserDto {
            userid: user.id.clone(),
            user_id: user.id,
            nickname: user.nickname.unwrap_or_else(|| user.username.clone()),
            username: user.username,
            email: user.email.unwrap_or_default(),
            phonenum: user.phonenum.unwrap_or_default(),
            role: user.role.as_str(),
            avatar_url: avatar.clone(),
            avatar,
        },
        has_provider,
        has_agent,
    }))
}

/// Login options for the login page (password form first when it exists).
#[utoipa::path(get, path = "/api/auth/providers", tag = "auth",
    responses((status = 200, body = Envelope<Vec<AuthProviderDto>>)))]
pub(crate) async fn providers(state: web::Data<AppState>) -> ApiResult<Vec<AuthProviderDto>> {
    let overview = identity::AuthOverview::new(&state.config, false);
    Ok(ApiOk(
        overview
            .providers
            .iter()
            .map(AuthProviderDto::from)
            .collect(),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Empty {}

/// End the current session (its tokens stop working) and clear the cookie.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth",
    responses((status = 200, body = Envelope<Empty>), (status = 401, description = "Not logged in")))]
pub(crate) async fn logout(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, AppError> {
    state.identity.logout(&caller.0).await?;
    let mut response = ApiOk(Empty {}).into_response();
    response
        .add_cookie(&auth::cleared_cookie())
        .map_err(AppError::internal)?;
    Ok(response)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub(crate) struct RefreshBody {
    refresh_token: Option<String>,
}

/// Rotate a refresh token into a new token pair (the previous pair stops working); with no
/// body, issue a pair for the cookie session (never from a Bearer token alone).
#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", request_body = RefreshBody,
    responses((status = 200, body = Envelope<TokensDto>), (status = 401, description = "Invalid or reused refresh token")))]
pub(crate) async fn refresh(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> ApiResult<TokensDto> {
    // The web UI posts no body; API clients post `{"refresh_token": …}`. The empty form
    // works from the cookie session only: a Bearer access token never mints a refresh token.
    let cookie = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned());
    let parsed: RefreshBody = if body.iter().all(u8::is_ascii_whitespace) {
        RefreshBody::default()
    } else {
        crate::extract::require_json(&req)?;
        crate::extract::parse_json(&body)?
    };
    let tokens = state
        .identity
        .refresh(parsed.refresh_token.as_deref(), cookie.as_deref())
        .await?;
    Ok(ApiOk(TokensDto::from(tokens)))
}
