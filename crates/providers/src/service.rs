//! The provider service behind `/api/llm-provider/*`.

use async_trait::async_trait;
use platform::Actor;

use crate::ProviderError;
use crate::client::Endpoint;
use crate::model::{
    Capabilities, MultimodalCheck, ProbeResult, ProviderInput, ProviderPatch, ProviderView,
};

/// LLM providers, owned by users; others' providers are invisible (404).
#[async_trait]
pub trait Providers: Send + Sync {
    /// The caller's providers, newest first (at most 100).
    async fn list(&self, actor: &Actor) -> Result<Vec<ProviderView>, ProviderError>;

    /// Probes, then saves; an identical provider (URL, model, key) already owned is returned.
    async fn create(&self, actor: &Actor, input: ProviderInput) -> Result<String, ProviderError>;

    /// Probes the merged values, then saves.
    async fn update(
        &self,
        actor: &Actor,
        id: &str,
        patch: ProviderPatch,
    ) -> Result<ProviderView, ProviderError>;

    async fn delete(&self, actor: &Actor, id: &str) -> Result<(), ProviderError>;

    /// A tiny chat request; an error when the provider does not answer.
    async fn verify(
        &self,
        actor: &Actor,
        input: ProviderInput,
    ) -> Result<ProbeResult, ProviderError>;

    /// Connection, multimodal (a tiny image) and structured output (JSON mode), separately.
    async fn verify_capabilities(
        &self,
        actor: &Actor,
        input: ProviderInput,
    ) -> Result<Capabilities, ProviderError>;

    /// The same for a stored provider, with unsaved form values applied and its stored key.
    async fn verify_capabilities_stored(
        &self,
        actor: &Actor,
        id: &str,
        patch: ProviderPatch,
    ) -> Result<Capabilities, ProviderError>;

    /// Whether the model recognised a red test image.
    async fn verify_multimodal(
        &self,
        actor: &Actor,
        input: ProviderInput,
    ) -> Result<MultimodalCheck, ProviderError>;

    /// The endpoint a run should use: the caller's own `provider_id`, else their default,
    /// else the deployment default.
    async fn resolve(
        &self,
        actor: &Actor,
        provider_id: Option<&str>,
    ) -> Result<Endpoint, ProviderError>;

    /// Whether the caller has a usable provider (own or the deployment default).
    async fn has_provider(&self, actor: &Actor) -> Result<bool, ProviderError>;
}
