//! One-time and recurring (cron) tasks, their run history and the due/claim/complete protocol; runs go through a TaskRunner trait the application implements.
//!
//! Allowed dependencies: platform. This crate never depends on actix or any other HTTP
//! server type; the `server` app crate adapts it to routes. The tidy test in `xtask`
//! enforces the rule.
//!
//! Status: responsibility reserved; the service trait arrives with its issue.
