//! LLM providers: `/api/llm-provider/*`. Keys are masked in every answer; only the owner sees
//! or changes a provider (others get 404).

use actix_web::web;
use providers::{Capabilities, ProviderInput, ProviderPatch, ProviderView};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Caller, ModelCaller};
use crate::extract::ApiJson;
use crate::lenient;
use crate::response::{ApiOk, ApiResult, Envelope};
use crate::state::AppState;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/llm-provider")
            .service(web::resource("/verify").route(web::post().to(verify)))
            .service(
                web::resource("/verify-capabilities").route(web::post().to(verify_capabilities)),
            )
            .service(
                web::resource("/verify-capabilities/{provider_id}")
                    .route(web::post().to(verify_capabilities_stored)),
            )
            .service(web::resource("/verify-multimodal").route(web::post().to(verify_multimodal)))
            .service(web::resource("/list").route(web::get().to(list_providers)))
            .service(web::resource("/create").route(web::post().to(create_provider)))
            .service(web::resource("/update/{provider_id}").route(web::put().to(update_provider)))
            .service(
                web::resource("/delete/{provider_id}").route(web::delete().to(delete_provider)),
            ),
    );
}

/// `LLMProviderCreate`.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ProviderCreate {
    name: Option<String>,
    base_url: String,
    /// Exactly one non-empty, single-line key.
    api_keys: Vec<String>,
    model: String,
    /// `0`, `null` and `""` mean "not set" (the web UI sends them for an empty field).
    #[serde(default, deserialize_with = "lenient::count")]
    max_tokens: Option<i64>,
    #[serde(default, deserialize_with = "lenient::real")]
    temperature: Option<f64>,
    #[serde(default, deserialize_with = "lenient::real")]
    top_p: Option<f64>,
    #[serde(default, deserialize_with = "lenient::real")]
    presence_penalty: Option<f64>,
    /// `0`, `null` and `""` mean "not set".
    #[serde(default, deserialize_with = "lenient::count")]
    max_model_len: Option<i64>,
    #[serde(default)]
    supports_multimodal: bool,
    #[serde(default)]
    supports_structured_output: bool,
    #[serde(default)]
    is_default: bool,
}

impl From<ProviderCreate> for ProviderInput {
    fn from(b: ProviderCreate) -> Self {
        ProviderInput {
            name: b.name,
            base_url: b.base_url,
            api_keys: b.api_keys,
            model: b.model,
            max_tokens: b.max_tokens,
            temperature: b.temperature,
            top_p: b.top_p,
            presence_penalty: b.presence_penalty,
            max_model_len: b.max_model_len,
            supports_multimodal: b.supports_multimodal,
            supports_structured_output: b.supports_structured_output,
            is_default: b.is_default,
        }
    }
}

/// `LLMProviderUpdate`: every field optional; `null` or `""` (and `0` for the counts) clears
/// an optional number, absence keeps it.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub(crate) struct ProviderUpdate {
    name: Option<String>,
    base_url: Option<String>,
    api_keys: Option<Vec<String>>,
    model: Option<String>,
    #[serde(default, deserialize_with = "lenient::count_patch")]
    #[schema(value_type = Option<i64>)]
    max_tokens: Option<Option<i64>>,
    #[serde(default, deserialize_with = "lenient::real_patch")]
    #[schema(value_type = Option<f64>)]
    temperature: Option<Option<f64>>,
    #[serde(default, deserialize_with = "lenient::real_patch")]
    #[schema(value_type = Option<f64>)]
    top_p: Option<Option<f64>>,
    #[serde(default, deserialize_with = "lenient::real_patch")]
    #[schema(value_type = Option<f64>)]
    presence_penalty: Option<Option<f64>>,
    #[serde(default, deserialize_with = "lenient::count_patch")]
    #[schema(value_type = Option<i64>)]
    max_model_len: Option<Option<i64>>,
    supports_multimodal: Option<bool>,
    supports_structured_output: Option<bool>,
    is_default: Option<bool>,
}

impl From<ProviderUpdate> for ProviderPatch {
    fn from(b: ProviderUpdate) -> Self {
        ProviderPatch {
            name: b.name,
            base_url: b.base_url,
            api_keys: b.api_keys,
            model: b.model,
            max_tokens: b.max_tokens,
            temperature: b.temperature,
            top_p: b.top_p,
            presence_penalty: b.presence_penalty,
            max_model_len: b.max_model_len,
            supports_multimodal: b.supports_multimodal,
            supports_structured_output: b.supports_structured_output,
            is_default: b.is_default,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProviderDto {
    id: String,
    name: String,
    base_url: String,
    /// Masked: `abcd***wxyz`.
    api_keys: Vec<String>,
    model: String,
    max_tokens: Option<i64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    presence_penalty: Option<f64>,
    max_model_len: Option<i64>,
    supports_multimodal: bool,
    supports_structured_output: bool,
    is_default: bool,
    user_id: String,
    created_at: String,
    updated_at: String,
}

impl From<ProviderView> for ProviderDto {
    fn from(p: ProviderView) -> Self {
        Self {
            id: p.id,
            name: p.name,
            base_url: p.base_url,
            api_keys: vec![p.api_key_masked],
            model: p.model,
            max_tokens: p.max_tokens,
            temperature: p.temperature,
            top_p: p.top_p,
            presence_penalty: p.presence_penalty,
            max_model_len: p.max_model_len,
            supports_multimodal: p.supports_multimodal,
            supports_structured_output: p.supports_structured_output,
            is_default: p.is_default,
            user_id: p.user_id,
            created_at: p.created_at.to_rfc3339(),
            updated_at: p.updated_at.to_rfc3339(),
        }
    }
}

/// `provider_id` is Sage's field; `id` carries the same value because the web UI's set-up
/// dialog reads `id` to link the default agent it creates to the new provider.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProviderIdDto {
    provider_id: String,
    id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProbeDto {
    supported: bool,
    response: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CapabilitiesDto {
    connection: ProbeDto,
    supports_multimodal: bool,
    supports_structured_output: bool,
    multimodal: ProbeDto,
    structured_output: ProbeDto,
    model: String,
    base_url: String,
}

impl From<Capabilities> for CapabilitiesDto {
    fn from(c: Capabilities) -> Self {
        Self {
            supports_multimodal: c.multimodal.supported,
            supports_structured_output: c.structured_output.supported,
            connection: ProbeDto {
                supported: c.connection.supported,
                response: c.connection.response,
            },
            multimodal: ProbeDto {
                supported: c.multimodal.supported,
                response: c.multimodal.response,
            },
            structured_output: ProbeDto {
                supported: c.structured_output.supported,
                response: c.structured_output.response,
            },
            model: c.model,
            base_url: c.base_url,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MultimodalDto {
    supports_multimodal: bool,
    recognized: bool,
    response: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Basic connectivity check (a tiny chat request).
#[utoipa::path(post, path = "/api/llm-provider/verify", tag = "llm-provider", request_body = ProviderCreate,
    responses((status = 200, body = Envelope<ProbeDto>), (status = 422, description = "Invalid input, key or model"),
              (status = 502, description = "The provider failed")))]
pub(crate) async fn verify(
    state: web::Data<AppState>,
    caller: ModelCaller,
    body: ApiJson<ProviderCreate>,
) -> ApiResult<ProbeDto> {
    let probe = state
        .providers
        .verify(&caller.actor(), body.0.into())
        .await?;
    Ok(ApiOk(ProbeDto {
        supported: probe.supported,
        response: probe.response,
    }))
}

/// Connection, multimodal and structured-output probes, reported separately.
#[utoipa::path(post, path = "/api/llm-provider/verify-capabilities", tag = "llm-provider", request_body = ProviderCreate,
    responses((status = 200, body = Envelope<CapabilitiesDto>), (status = 422, description = "Invalid input, key or model"),
              (status = 502, description = "The provider failed")))]
pub(crate) async fn verify_capabilities(
    state: web::Data<AppState>,
    caller: ModelCaller,
    body: ApiJson<ProviderCreate>,
) -> ApiResult<CapabilitiesDto> {
    let caps = state
        .providers
        .verify_capabilities(&caller.actor(), body.0.into())
        .await?;
    Ok(ApiOk(caps.into()))
}

/// Capability probes of a stored provider, with its stored key and any unsaved form values.
#[utoipa::path(post, path = "/api/llm-provider/verify-capabilities/{provider_id}", tag = "llm-provider",
    params(("provider_id" = String, Path)), request_body = ProviderUpdate,
    responses((status = 200, body = Envelope<CapabilitiesDto>), (status = 404, description = "Not the caller's provider")))]
pub(crate) async fn verify_capabilities_stored(
    state: web::Data<AppState>,
    caller: ModelCaller,
    path: web::Path<String>,
    body: web::Bytes,
    req: actix_web::HttpRequest,
) -> ApiResult<CapabilitiesDto> {
    // The web UI may post no body at all.
    let patch: ProviderUpdate = if body.iter().all(u8::is_ascii_whitespace) {
        ProviderUpdate::default()
    } else {
        crate::extract::require_json(&req)?;
        crate::extract::parse_json(&body)?
    };
    let caps = state
        .providers
        .verify_capabilities_stored(&caller.actor(), &path.into_inner(), patch.into())
        .await?;
    Ok(ApiOk(caps.into()))
}

/// Whether the model recognises a small red test image.
#[utoipa::path(post, path = "/api/llm-provider/verify-multimodal", tag = "llm-provider", request_body = ProviderCreate,
    responses((status = 200, body = Envelope<MultimodalDto>)))]
pub(crate) async fn verify_multimodal(
    state: web::Data<AppState>,
    caller: ModelCaller,
    body: ApiJson<ProviderCreate>,
) -> ApiResult<MultimodalDto> {
    let check = state
        .providers
        .verify_multimodal(&caller.actor(), body.0.into())
        .await?;
    Ok(ApiOk(MultimodalDto {
        supports_multimodal: check.supports_multimodal,
        recognized: check.recognized,
        response: check.response,
        error: check.error,
    }))
}

/// The caller's providers, newest first, keys masked.
#[utoipa::path(get, path = "/api/llm-provider/list", tag = "llm-provider",
    responses((status = 200, body = Envelope<Vec<ProviderDto>>)))]
pub(crate) async fn list_providers(
    state: web::Data<AppState>,
    caller: Caller,
) -> ApiResult<Vec<ProviderDto>> {
    let providers = state.providers.list(&caller.actor()).await?;
    Ok(ApiOk(
        providers.into_iter().map(ProviderDto::from).collect(),
    ))
}

/// Probe, then save a provider; `is_default` clears the caller's other defaults.
#[utoipa::path(post, path = "/api/llm-provider/create", tag = "llm-provider", request_body = ProviderCreate,
    responses((status = 200, body = Envelope<ProviderIdDto>), (status = 422, description = "Invalid input, key or model"),
              (status = 502, description = "The provider failed; nothing saved")))]
pub(crate) async fn create_provider(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<ProviderCreate>,
) -> ApiResult<ProviderIdDto> {
    let provider_id = state
        .providers
        .create(&caller.actor(), body.0.into())
        .await?;
    Ok(ApiOk(ProviderIdDto {
        id: provider_id.clone(),
        provider_id,
    }))
}

/// Probe the merged values, then save.
#[utoipa::path(put, path = "/api/llm-provider/update/{provider_id}", tag = "llm-provider",
    params(("provider_id" = String, Path)), request_body = ProviderUpdate,
    responses((status = 200, body = Envelope<ProviderDto>), (status = 404, description = "Not the caller's provider"),
              (status = 403, description = "The deployment default")))]
pub(crate) async fn update_provider(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: ApiJson<ProviderUpdate>,
) -> ApiResult<ProviderDto> {
    let view = state
        .providers
        .update(&caller.actor(), &path.into_inner(), body.0.into())
        .await?;
    Ok(ApiOk(view.into()))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProviderDeletedDto {
    provider_id: String,
    deleted: bool,
}

/// Delete a provider (not the default one: 409).
#[utoipa::path(delete, path = "/api/llm-provider/delete/{provider_id}", tag = "llm-provider",
    params(("provider_id" = String, Path)),
    responses((status = 200, body = Envelope<ProviderDeletedDto>), (status = 404, description = "Not the caller's provider"),
              (status = 409, description = "It is the default provider")))]
pub(crate) async fn delete_provider(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<ProviderDeletedDto> {
    let provider_id = path.into_inner();
    state
        .providers
        .delete(&caller.actor(), &provider_id)
        .await?;
    Ok(ApiOk(ProviderDeletedDto {
        provider_id,
        deleted: true,
    }))
}
