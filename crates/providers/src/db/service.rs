//! `SeaOrmProviders`: provider rows with sealed keys, probes through [`LlmClient`].

use async_trait::async_trait;
use chrono::Utc;
use platform::Actor;
use platform::config::ModelEndpoint;
use platform::db::{Budget, StampedCache, Topic};
use platform::secret::Sealer;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    TransactionTrait,
};
use serde_json::json;

use super::entity;
use crate::ProviderError;
use crate::client::{ChatRequest, Endpoint, LlmClient};
use crate::model::{
    Capabilities, MultimodalCheck, ProbeResult, ProviderInput, ProviderPatch, ProviderView,
    base_url, check_ranges, mask, single_key,
};
use crate::service::Providers;

/// The id the deployment default provider answers to.
pub const SYSTEM_PROVIDER_ID: &str = "system-default";

/// A 16×16 red PNG for the multimodal probe.
const RED_PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAIAAACQkWg2AAAAF0lEQVR4nGP4z8BAEiJN9aiGUQ1DSgMAkPn/Afnh+ngAAAAASUVORK5CYII=";

pub struct SeaOrmProviders {
    db: platform::db::Db,
    sealer: Sealer,
    client: LlmClient,
    system: Option<ModelEndpoint>,
    /// Whether a user has a provider (every page of the web UI asks), trusted while no
    /// process has announced that a provider was added or removed ([`Topic::Providers`]).
    has_provider: StampedCache<String, bool>,
}

/// Validated values of a provider, ready to probe and store.
struct Values {
    name: String,
    base_url: String,
    api_key: String,
    model: String,
    max_tokens: Option<i64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    presence_penalty: Option<f64>,
    max_model_len: Option<i64>,
    supports_multimodal: bool,
    supports_structured_output: bool,
    is_default: bool,
}

fn default_name(model: &str, base_url: &str) -> String {
    let host = reqwest::Url::parse(base_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    format!("{model}@{host}")
}

/// Whether two base URLs share scheme, host and port (an unparsable URL shares nothing).
fn same_origin(a: &str, b: &str) -> bool {
    match (reqwest::Url::parse(a.trim()), reqwest::Url::parse(b.trim())) {
        (Ok(a), Ok(b)) => a.origin() == b.origin() && a.origin().is_tuple(),
        _ => false,
    }
}

fn validate(input: ProviderInput) -> Result<Values, ProviderError> {
    let base_url = base_url(&input.base_url)?;
    let api_key = single_key(&input.api_keys)?;
    let model = input.model.trim().to_owned();
    if model.is_empty() || model.len() > 256 {
        return Err(ProviderError::invalid(
            "model",
            "must be 1 to 256 characters",
        ));
    }
    check_ranges(
        input.max_tokens,
        input.temperature,
        input.top_p,
        input.presence_penalty,
        input.max_model_len,
    )?;
    let name = match input
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        Some(n) if n.chars().count() <= 128 => n.to_owned(),
        Some(_) => {
            return Err(ProviderError::invalid(
                "name",
                "must be at most 128 characters",
            ));
        }
        None => default_name(&model, &base_url),
    };
    Ok(Values {
        name,
        base_url,
        api_key,
        model,
        max_tokens: input.max_tokens,
        temperature: input.temperature,
        top_p: input.top_p,
        presence_penalty: input.presence_penalty,
        max_model_len: input.max_model_len,
        supports_multimodal: input.supports_multimodal,
        supports_structured_output: input.supports_structured_output,
        is_default: input.is_default,
    })
}

impl Values {
    fn endpoint(&self) -> Endpoint {
        Endpoint {
            base_url: self.base_url.clone(),
            api_key: self.api_key.clone(),
            model: self.model.clone(),
            supports_multimodal: self.supports_multimodal,
        }
    }
}

fn hello() -> ChatRequest {
    ChatRequest {
        messages: vec![json!({"role": "user", "content": "Hi"})],
        max_tokens: Some(5),
        ..ChatRequest::default()
    }
}

impl SeaOrmProviders {
    pub fn new(
        db: platform::db::Db,
        sealer: Sealer,
        client: LlmClient,
        system: Option<ModelEndpoint>,
    ) -> Self {
        Self {
            has_provider: StampedCache::new(&db, Topic::Providers, Budget::default(), |_| 64),
            db,
            sealer,
            client,
            system,
        }
    }

    /// Re-encrypts every stored API key still sealed under a previous secret key with the
    /// current one (`sage-server admin reseal`). A row is only rewritten if its sealed value is
    /// still the one read, so a concurrent update is never overwritten.
    pub async fn reseal(&self) -> Result<platform::secret::ResealReport, ProviderError> {
        use sea_orm::sea_query::Expr;
        let rows: Vec<(String, String)> = entity::Entity::find()
            .select_only()
            .column(entity::Column::Id)
            .column(entity::Column::ApiKeySealed)
            .into_tuple()
            .all(&self.db)
            .await?;
        platform::secret::reseal_rows(&self.sealer, "provider", rows, |id, old, new| async move {
            let updated = entity::Entity::update_many()
                .col_expr(entity::Column::ApiKeySealed, Expr::value(new))
                .filter(entity::Column::Id.eq(id))
                .filter(entity::Column::ApiKeySealed.eq(old))
                .exec(&self.db)
                .await?;
            Ok(updated.rows_affected)
        })
        .await
    }

    fn view(&self, m: &entity::Model) -> ProviderView {
        let key = self.sealer.open(&m.api_key_sealed).unwrap_or_default();
        ProviderView {
            id: m.id.clone(),
            user_id: m.user_id.clone(),
            name: m.name.clone(),
            base_url: m.base_url.clone(),
            api_key_masked: mask(&key),
            model: m.model.clone(),
            max_tokens: m.max_tokens,
            temperature: m.temperature,
            top_p: m.top_p,
            presence_penalty: m.presence_penalty,
            max_model_len: m.max_model_len,
            supports_multimodal: m.supports_multimodal,
            supports_structured_output: m.supports_structured_output,
            is_default: m.is_default,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }

    /// The caller's own provider, or 404 (others' providers are never confirmed to exist).
    async fn own(&self, actor: &Actor, id: &str) -> Result<entity::Model, ProviderError> {
        if id == SYSTEM_PROVIDER_ID && self.system.is_some() {
            return Err(ProviderError::SystemReadOnly);
        }
        entity::Entity::find_by_id(id.to_owned())
            .filter(entity::Column::UserId.eq(actor.user_id.clone()))
            .one(&self.db)
            .await?
            .ok_or(ProviderError::NotFound)
    }

    async fn probe(&self, values: &Values) -> Result<ProbeResult, ProviderError> {
        let answer = self
            .client
            .chat(&values.endpoint(), &hello())
            .await
            .map_err(ProviderError::from_llm)?;
        Ok(ProbeResult {
            supported: true,
            response: answer.content,
        })
    }

    async fn capabilities(&self, values: &Values) -> Result<Capabilities, ProviderError> {
        let connection = self.probe(values).await?;
        let image = self.multimodal(values).await;
        let structured = ChatRequest {
            messages: vec![
                json!({"role": "system", "content": "Answer with a JSON object only."}),
                json!({"role": "user", "content": "Return {\"ok\": true}"}),
            ],
            max_tokens: Some(20),
            response_format: Some(json!({"type": "json_object"})),
            ..ChatRequest::default()
        };
        let structured_output = match self.client.chat(&values.endpoint(), &structured).await {
            Ok(answer) => ProbeResult {
                supported: serde_json::from_str::<serde_json::Value>(answer.content.trim())
                    .is_ok_and(|v| v.is_object()),
                response: answer.content,
            },
            Err(e) => ProbeResult {
                supported: false,
                response: e.to_string(),
            },
        };
        Ok(Capabilities {
            connection,
            multimodal: ProbeResult {
                supported: image.supports_multimodal,
                response: image.error.unwrap_or(image.response),
            },
            structured_output,
            model: values.model.clone(),
            base_url: values.base_url.clone(),
        })
    }

    async fn multimodal(&self, values: &Values) -> MultimodalCheck {
        let request = ChatRequest {
            messages: vec![json!({"role": "user", "content": [
                {"type": "text", "text": "What colour is this image? Answer with one word."},
                {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{RED_PNG}")}},
            ]})],
            max_tokens: Some(10),
            ..ChatRequest::default()
        };
        match self.client.chat(&values.endpoint(), &request).await {
            Ok(answer) => MultimodalCheck {
                supports_multimodal: true,
                recognized: answer.content.to_lowercase().contains("red"),
                response: answer.content,
                error: None,
            },
            Err(e) => MultimodalCheck {
                supports_multimodal: false,
                recognized: false,
                response: String::new(),
                error: Some(e.to_string()),
            },
        }
    }

    /// Stored values with a patch applied (the stored key unless a new one is given).
    fn merged(&self, row: &entity::Model, patch: ProviderPatch) -> Result<Values, ProviderError> {
        let stored = || {
            self.sealer
                .open(&row.api_key_sealed)
                .map_err(|_| ProviderError::KeyUnreadable)
        };
        // The edit form sends back the masked key it was shown: that means "unchanged".
        let sent = match patch.api_keys {
            Some(keys) if keys.iter().any(|k| !k.trim().is_empty()) => Some(keys),
            _ => None,
        };
        let sent = match sent {
            Some(keys) if keys.len() == 1 && keys[0].trim() == mask(&stored()?) => None,
            other => other,
        };
        let api_keys = match sent {
            Some(keys) => keys,
            // The stored key only ever goes to the host it was entered for.
            _ if patch
                .base_url
                .as_deref()
                .is_some_and(|url| !same_origin(url, &row.base_url)) =>
            {
                return Err(ProviderError::invalid(
                    "api_keys",
                    "the base URL points at another host: enter the API key again",
                ));
            }
            None => vec![stored()?],
        };
        validate(ProviderInput {
            name: Some(patch.name.unwrap_or_else(|| row.name.clone())),
            base_url: patch.base_url.unwrap_or_else(|| row.base_url.clone()),
            api_keys,
            model: patch.model.unwrap_or_else(|| row.model.clone()),
            max_tokens: patch.max_tokens.unwrap_or(row.max_tokens),
            temperature: patch.temperature.unwrap_or(row.temperature),
            top_p: patch.top_p.unwrap_or(row.top_p),
            presence_penalty: patch.presence_penalty.unwrap_or(row.presence_penalty),
            max_model_len: patch.max_model_len.unwrap_or(row.max_model_len),
            supports_multimodal: patch.supports_multimodal.unwrap_or(row.supports_multimodal),
            supports_structured_output: patch
                .supports_structured_output
                .unwrap_or(row.supports_structured_output),
            is_default: patch.is_default.unwrap_or(row.is_default),
        })
    }

    fn system_endpoint(&self) -> Option<Endpoint> {
        self.system.as_ref().map(|s| Endpoint {
            base_url: s.base_url.clone(),
            api_key: s.api_key.clone().unwrap_or_default(),
            model: s.model.clone(),
            supports_multimodal: false,
        })
    }
}

#[async_trait]
impl Providers for SeaOrmProviders {
    async fn list(&self, actor: &Actor) -> Result<Vec<ProviderView>, ProviderError> {
        let rows = entity::Entity::find()
            .filter(entity::Column::UserId.eq(actor.user_id.clone()))
            .order_by_desc(entity::Column::CreatedAt)
            .order_by_desc(entity::Column::Id)
            .limit(100)
            .all(&self.db)
            .await?;
        Ok(rows.iter().map(|r| self.view(r)).collect())
    }

    async fn create(&self, actor: &Actor, input: ProviderInput) -> Result<String, ProviderError> {
        let values = validate(input)?;
        let existing = entity::Entity::find()
            .filter(entity::Column::UserId.eq(actor.user_id.clone()))
            .filter(entity::Column::BaseUrl.eq(values.base_url.clone()))
            .filter(entity::Column::Model.eq(values.model.clone()))
            .all(&self.db)
            .await?;
        if let Some(same) = existing.iter().find(|r| {
            self.sealer
                .open(&r.api_key_sealed)
                .is_ok_and(|k| k == values.api_key)
        }) {
            return Ok(same.id.clone());
        }
        self.probe(&values).await?;
        let id = platform::ids::new_uuid();
        let now = Utc::now();
        let txn = self.db.begin().await?;
        if values.is_default {
            entity::Entity::update_many()
                .col_expr(
                    entity::Column::IsDefault,
                    sea_orm::sea_query::Expr::value(false),
                )
                .filter(entity::Column::UserId.eq(actor.user_id.clone()))
                .exec(&txn)
                .await?;
        }
        entity::ActiveModel {
            id: Set(id.clone()),
            user_id: Set(actor.user_id.clone()),
            name: Set(values.name),
            base_url: Set(values.base_url),
            api_key_sealed: Set(self.sealer.seal(&values.api_key)),
            model: Set(values.model),
            max_tokens: Set(values.max_tokens),
            temperature: Set(values.temperature),
            top_p: Set(values.top_p),
            presence_penalty: Set(values.presence_penalty),
            max_model_len: Set(values.max_model_len),
            supports_multimodal: Set(values.supports_multimodal),
            supports_structured_output: Set(values.supports_structured_output),
            is_default: Set(values.is_default),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        self.has_provider.changed().await;
        Ok(id)
    }

    async fn update(
        &self,
        actor: &Actor,
        id: &str,
        patch: ProviderPatch,
    ) -> Result<ProviderView, ProviderError> {
        let row = self.own(actor, id).await?;
        let values = self.merged(&row, patch)?;
        self.probe(&values).await?;
        let txn = self.db.begin().await?;
        if values.is_default && !row.is_default {
            entity::Entity::update_many()
                .col_expr(
                    entity::Column::IsDefault,
                    sea_orm::sea_query::Expr::value(false),
                )
                .filter(entity::Column::UserId.eq(actor.user_id.clone()))
                .exec(&txn)
                .await?;
        }
        let mut active: entity::ActiveModel = row.into();
        active.name = Set(values.name);
        active.base_url = Set(values.base_url);
        active.api_key_sealed = Set(self.sealer.seal(&values.api_key));
        active.model = Set(values.model);
        active.max_tokens = Set(values.max_tokens);
        active.temperature = Set(values.temperature);
        active.top_p = Set(values.top_p);
        active.presence_penalty = Set(values.presence_penalty);
        active.max_model_len = Set(values.max_model_len);
        active.supports_multimodal = Set(values.supports_multimodal);
        active.supports_structured_output = Set(values.supports_structured_output);
        active.is_default = Set(values.is_default);
        active.updated_at = Set(Utc::now());
        let saved = active.update(&txn).await?;
        txn.commit().await?;
        Ok(self.view(&saved))
    }

    async fn delete(&self, actor: &Actor, id: &str) -> Result<(), ProviderError> {
        let row = self.own(actor, id).await?;
        if row.is_default {
            return Err(ProviderError::DefaultInUse);
        }
        entity::Entity::delete_by_id(row.id).exec(&self.db).await?;
        self.has_provider.changed().await;
        Ok(())
    }

    async fn verify(
        &self,
        _actor: &Actor,
        input: ProviderInput,
    ) -> Result<ProbeResult, ProviderError> {
        let values = validate(input)?;
        self.probe(&values).await
    }

    async fn verify_capabilities(
        &self,
        _actor: &Actor,
        input: ProviderInput,
    ) -> Result<Capabilities, ProviderError> {
        let values = validate(input)?;
        self.capabilities(&values).await
    }

    async fn verify_capabilities_stored(
        &self,
        actor: &Actor,
        id: &str,
        patch: ProviderPatch,
    ) -> Result<Capabilities, ProviderError> {
        let row = self.own(actor, id).await?;
        let values = self.merged(&row, patch)?;
        self.capabilities(&values).await
    }

    async fn verify_multimodal(
        &self,
        _actor: &Actor,
        input: ProviderInput,
    ) -> Result<MultimodalCheck, ProviderError> {
        let values = validate(input)?;
        Ok(self.multimodal(&values).await)
    }

    async fn resolve(
        &self,
        actor: &Actor,
        provider_id: Option<&str>,
    ) -> Result<Endpoint, ProviderError> {
        let row = match provider_id.filter(|p| !p.is_empty()) {
            Some(SYSTEM_PROVIDER_ID) if self.system.is_some() => None,
            Some(id) => Some(self.own(actor, id).await?),
            None => {
                entity::Entity::find()
                    .filter(entity::Column::UserId.eq(actor.user_id.clone()))
                    .filter(entity::Column::IsDefault.eq(true))
                    .one(&self.db)
                    .await?
            }
        };
        match row {
            Some(row) => Ok(Endpoint {
                api_key: self
                    .sealer
                    .open(&row.api_key_sealed)
                    .map_err(|_| ProviderError::KeyUnreadable)?,
                base_url: row.base_url,
                model: row.model,
                supports_multimodal: row.supports_multimodal,
            }),
            None => self.system_endpoint().ok_or(ProviderError::NoneConfigured),
        }
    }

    async fn has_provider(&self, actor: &Actor) -> Result<bool, ProviderError> {
        if self.system.is_some() {
            return Ok(true);
        }
        self.has_provider
            .get_or_fill(actor.user_id.clone(), || async {
                Ok(entity::Entity::find()
                    .select_only()
                    .column(entity::Column::Id)
                    .filter(entity::Column::UserId.eq(actor.user_id.clone()))
                    .into_tuple::<String>()
                    .one(&self.db)
                    .await?
                    .is_some())
            })
            .await
    }
}

/// A deleted user's providers (and their sealed keys) are deleted.
#[async_trait]
impl platform::UserCleanup for SeaOrmProviders {
    async fn user_deleted(&self, user_id: &str) -> Result<(), platform::actor::CleanupError> {
        entity::Entity::delete_many()
            .filter(entity::Column::UserId.eq(user_id.to_owned()))
            .exec(&self.db)
            .await?;
        self.has_provider.changed().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::same_origin;

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let stored = "https://api.example.com/v1";
        assert!(same_origin("https://api.example.com/v2/", stored));
        assert!(same_origin("https://API.example.com:443/v1", stored));
        assert!(!same_origin("http://api.example.com/v1", stored));
        assert!(!same_origin("https://api.example.com:8443/v1", stored));
        assert!(!same_origin("https://evil.example/v1", stored));
        assert!(!same_origin("not a url", stored));
    }
}
