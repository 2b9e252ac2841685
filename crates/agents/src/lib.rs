//! Agent configurations, their authorisation (owner, grants, admins), prompt templates, durable asynchronous agent jobs and per-user agent file workspaces.
//!
//! Allowed dependencies: platform, providers. This crate never depends on actix or any other HTTP
//! server type; the `server` app crate adapts it to routes. The tidy test in `xtask`
//! enforces the rule.
//!
//! Status: responsibility reserved; the service trait arrives with its issue.
