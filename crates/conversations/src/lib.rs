//! Conversations and their messages, sharing, titles and token-usage records.
//!
//! Allowed dependencies: platform. This crate never depends on actix or any other HTTP
//! server type; the `server` app crate adapts it to routes. The tidy test in `xtask`
//! enforces the rule.
//!
//! Status: responsibility reserved; the service trait arrives with its issue.
