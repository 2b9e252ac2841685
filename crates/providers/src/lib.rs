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
