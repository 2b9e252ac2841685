//! The OAuth2 authorization server: clients, authorization codes with PKCE, tokens, userinfo and discovery metadata (RFC 6749, 7636, 8414, 9207, 9700).
//!
//! Allowed dependencies: platform, identity. This crate never depends on actix or any other HTTP
//! server type; the `server` app crate adapts it to routes. The tidy test in `xtask`
//! enforces the rule.
//!
//! Status: responsibility reserved; the service trait arrives with its issue.
