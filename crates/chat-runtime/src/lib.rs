//! The agent loop and the stream hub: runs a chat turn against a provider with tools and knowledge, appends every event to the replay log before it is sent, and serves resume and interrupt.
//!
//! Allowed dependencies: platform, agents, conversations, providers, tooling, knowledge. This crate never depends on actix or any other HTTP
//! server type; the `server` app crate adapts it to routes. The tidy test in `xtask`
//! enforces the rule.
//!
//! Status: responsibility reserved; the service trait arrives with its issue.
