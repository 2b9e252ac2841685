//! Users, roles, password hashing (argon2id), e-mail codes, server-side sessions and tokens,
//! login throttling, upstream OIDC login and per-user configuration.
//!
//! Allowed dependencies: platform. This crate never depends on actix or any other HTTP
//! server type; the `server` app crate adapts it to routes. The tidy test in `xtask`
//! enforces the rule.
//!
//! Status: the public view of the deployment's login options ([`AuthOverview`]) exists; users,
//! sessions and tokens arrive with the identity issue.

mod overview;

pub use overview::{AuthOverview, LoginProvider};
