//! The model that plays AnyTool tools: the user's provider (their default, else the
//! deployment default), asked for a JSON object, asked again without that request when the
//! provider refuses it.

use std::sync::Arc;

use async_trait::async_trait;
use platform::Actor;
use providers::{ChatRequest, LlmClient, Providers};
use serde_json::{Value, json};
use tooling::mcp::SimulatorError;

pub(crate) struct ModelSimulator {
    pub providers: Arc<dyn Providers>,
    pub llm: LlmClient,
}

#[async_trait]
impl tooling::mcp::Simulator for ModelSimulator {
    async fn complete(
        &self,
        user_id: &str,
        messages: Vec<Value>,
        temperature: f64,
    ) -> Result<(String, String), SimulatorError> {
        let endpoint =
            self.providers
                .resolve(&Actor::new(user_id, false), None)
                .await
                .map_err(|e| match e {
                    providers::ProviderError::NoneConfigured
                    | providers::ProviderError::NotFound => SimulatorError::NoModel,
                    other => SimulatorError::Failed(other.to_string()),
                })?;
        let mut request = ChatRequest {
            messages,
            temperature: Some(temperature),
            response_format: Some(json!({"type": "json_object"})),
            ..ChatRequest::default()
        };
        let answer = match self.llm.chat(&endpoint, &request).await {
            Ok(answer) => answer,
            Err(_) => {
                request.response_format = None;
                self.llm
                    .chat(&endpoint, &request)
                    .await
                    .map_err(|e| SimulatorError::Failed(e.to_string()))?
            }
        };
        Ok((endpoint.model, answer.content))
    }
}
