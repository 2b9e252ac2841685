//! LLM provider records and the OpenAI-compatible client: streaming chat with tool calls, embeddings, verification and capability probes, and the outbound-URL (SSRF) policy.
//!
//! Allowed dependencies: platform. This crate never depends on actix or any other HTTP
//! server type; the `server` app crate adapts it to routes. The tidy test in `xtask`
//! enforces the rule.
//!
//! Status: responsibility reserved; the service trait arrives with its issue.
