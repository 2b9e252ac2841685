//! LLM provider records and the OpenAI-compatible client: streaming chat with tool calls
//! assembled from deltas, reasoning passed through, usage, JSON answers, embeddings, and the
//! verification and capability probes behind `/api/llm-provider/*`.
//!
//! Allowed dependencies: platform. This crate never depends on actix or any other HTTP server
//! type. It is the only crate that talks to LLM servers. Keys are sealed at rest with the
//! server secret and masked in every view.

pub mod client;

pub use client::{
    ChatRequest, ClientSettings, Completion, Endpoint, LlmClient, LlmError, LlmErrorKind,
    StreamEvent, ToolCall, Usage, collect,
};

mod db;
mod error;
pub mod model;
mod service;

pub use db::SeaOrmProviders;
pub use error::ProviderError;
pub use model::{
    Capabilities, MultimodalCheck, ProbeResult, ProviderInput, ProviderPatch, ProviderView,
};
pub use service::Providers;

/// The id under which the deployment default provider (`SAGE_DEFAULT_LLM_*`) is addressed.
pub const SYSTEM_PROVIDER_ID: &str = db::SYSTEM_PROVIDER_ID;
