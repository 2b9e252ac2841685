//! User administration and per-user settings under `/api/user`.

use actix_web::web;
use identity::{NewUser, ProfileUpdate, Role};
use platform::PageRequest;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::AppError;
use crate::extract::{ApiJson, ApiQuery};
use crate::response::{ApiOk, ApiResult, Envelope};
use crate::routes::auth::{Empty, UserIdDto};
use crate::state::AppState;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/user")
            .service(web::resource("/options").route(web::get().to(user_options)))
            .service(web::resource("/change-password").route(web::post().to(change_password)))
            .service(web::resource("/profile").route(web::put().to(update_profile)))
            .service(web::resource("/list").route(web::get().to(list_users)))
            .service(web::resource("/add").route(web::post().to(add_user)))
            .service(web::resource("/delete").route(web::post().to(delete_user)))
            .service(
                web::resource("/config")
                    .route(web::get().to(get_config))
                    .route(web::post().to(update_config)),
            )
            .configure(crate::routes::auth::configure_user_aliases)
            .configure(crate::routes::upstream::configure_user_aliases),
    );
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserOption {
    label: String,
    value: String,
}

/// Users for pickers (any logged-in user).
#[utoipa::path(get, path = "/api/user/options", tag = "users",
    responses((status = 200, body = Envelope<Vec<UserOption>>)))]
pub(crate) async fn user_options(
    state: web::Data<AppState>,
    caller: Caller,
) -> ApiResult<Vec<UserOption>> {
    let options = state.identity.user_options(&caller.0).await?;
    Ok(ApiOk(
        options
            .into_iter()
            .map(|(value, label)| UserOption { label, value })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ChangePasswordBody {
    old_password: String,
    new_password: String,
}

/// Change the caller's password; all of their sessions end.
#[utoipa::path(post, path = "/api/user/change-password", tag = "users", request_body = ChangePasswordBody,
    responses((status = 200, body = Envelope<Empty>), (status = 422, description = "Wrong current password or weak new one")))]
pub(crate) async fn change_password(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<ChangePasswordBody>,
) -> ApiResult<Empty> {
    state
        .identity
        .change_password(&caller.0, &body.0.old_password, &body.0.new_password)
        .await?;
    Ok(ApiOk(Empty {}))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ProfileBody {
    /// Empty or null: unchanged.
    #[schema(max_length = 128)]
    nickname: Option<String>,
    /// An image URL (or a small `data:` URL); empty or null: unchanged.
    #[serde(alias = "avatar_url")]
    avatar: Option<String>,
    /// A new address; while registration by e-mail is on it needs `verification_code`, sent
    /// to the new address by `POST /api/auth/register/send-code`.
    #[schema(max_length = 254)]
    email: Option<String>,
    /// A language tag such as `en` or `zh-CN`.
    #[schema(max_length = 16)]
    language: Option<String>,
    verification_code: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProfileDto {
    user_id: String,
    username: String,
    nickname: String,
    email: String,
    avatar: String,
    avatar_url: String,
    language: Option<String>,
}

/// Change the caller's nickname, avatar, e-mail and language (the web UI's profile form).
#[utoipa::path(put, path = "/api/user/profile", tag = "users", request_body = ProfileBody,
    responses((status = 200, body = Envelope<ProfileDto>),
              (status = 409, description = "E-mail taken"),
              (status = 422, description = "Invalid field or wrong verification code")))]
pub(crate) async fn update_profile(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<ProfileBody>,
) -> ApiResult<ProfileDto> {
    let b = body.0;
    let profile = state
        .identity
        .update_profile(
            &caller.0,
            ProfileUpdate {
                nickname: b.nickname,
                avatar: b.avatar,
                email: b.email,
                language: b.language,
                verification_code: b.verification_code,
            },
        )
        .await?;
    let user = profile.user;
    let avatar = user.avatar.unwrap_or_default();
    Ok(ApiOk(ProfileDto {
        user_id: user.id,
        nickname: user.nickname.unwrap_or_else(|| user.username.clone()),
        username: user.username,
        email: user.email.unwrap_or_default(),
        avatar_url: avatar.clone(),
        avatar,
        language: profile.language,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct PageQuery {
    page: Option<u64>,
    page_size: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserDto {
    user_id: String,
    username: String,
    nickname: Option<String>,
    email: Option<String>,
    phonenum: Option<String>,
    role: &'static str,
    created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserPage {
    items: Vec<UserDto>,
    total: u64,
}

/// Admin: users, newest first.
#[utoipa::path(get, path = "/api/user/list", tag = "users", params(("page" = Option<u64>, Query), ("page_size" = Option<u64>, Query)),
    responses((status = 200, body = Envelope<UserPage>), (status = 403, description = "Not an admin")))]
pub(crate) async fn list_users(
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<PageQuery>,
) -> ApiResult<UserPage> {
    let page = PageRequest::new(query.0.page, query.0.page_size)
        .map_err(|e| AppError::validation("query", e.field(), &e.to_string()))?;
    let users = state.identity.list_users(&caller.0, page).await?;
    Ok(ApiOk(UserPage {
        total: users.total,
        items: users
            .items
            .into_iter()
            .map(|u| UserDto {
                user_id: u.id,
                username: u.username,
                nickname: u.nickname,
                email: u.email,
                phonenum: u.phonenum,
                role: u.role.as_str(),
                created_at: u.created_at.to_rfc3339(),
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct AddUserBody {
    username: String,
    password: String,
    email: Option<String>,
    phonenum: Option<String>,
    nickname: Option<String>,
    /// `user` (default) or `admin`.
    role: Option<String>,
}

/// Admin: create a user.
#[utoipa::path(post, path = "/api/user/add", tag = "users", request_body = AddUserBody,
    responses((status = 200, body = Envelope<UserIdDto>), (status = 409, description = "Username or e-mail taken")))]
pub(crate) async fn add_user(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<AddUserBody>,
) -> ApiResult<UserIdDto> {
    let b = body.0;
    let role = match b.role.as_deref() {
        None | Some("") => Role::User,
        Some(text) => Role::parse(text)
            .ok_or_else(|| AppError::validation("body", "role", "must be `user` or `admin`"))?,
    };
    let user_id = state
        .identity
        .add_user(
            &caller.0,
            NewUser {
                username: b.username,
                password: b.password,
                email: b.email,
                phonenum: b.phonenum,
                nickname: b.nickname,
                role,
            },
        )
        .await?;
    Ok(ApiOk(UserIdDto { user_id }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct DeleteUserBody {
    user_id: String,
}

/// Admin: delete a user (never the last admin); their sessions end, their unfinished jobs
/// are cancelled, and their agents, providers and workspace files are deleted.
#[utoipa::path(post, path = "/api/user/delete", tag = "users", request_body = DeleteUserBody,
    responses((status = 200, body = Envelope<Empty>), (status = 404, description = "No such user"), (status = 409, description = "Last admin")))]
pub(crate) async fn delete_user(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<DeleteUserBody>,
) -> ApiResult<Empty> {
    state
        .user_cleanup
        .delete_user(&caller.0, &body.0.user_id)
        .await?;
    Ok(ApiOk(Empty {}))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct ConfigDto {
    config: Value,
}

/// The caller's configuration object.
#[utoipa::path(get, path = "/api/user/config", tag = "users", responses((status = 200, body = Envelope<ConfigDto>)))]
pub(crate) async fn get_config(state: web::Data<AppState>, caller: Caller) -> ApiResult<ConfigDto> {
    let config = state.identity.user_config(&caller.0).await?;
    Ok(ApiOk(ConfigDto { config }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ConfigPatch {
    config: Map<String, Value>,
}

/// Shallow-merge into the caller's configuration; returns the merged object.
#[utoipa::path(post, path = "/api/user/config", tag = "users", request_body = ConfigPatch,
    responses((status = 200, body = Envelope<ConfigDto>)))]
pub(crate) async fn update_config(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<ConfigPatch>,
) -> ApiResult<ConfigDto> {
    let config = state
        .identity
        .update_user_config(&caller.0, body.0.config)
        .await?;
    Ok(ApiOk(ConfigDto { config }))
}
