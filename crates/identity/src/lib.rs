//! Users, roles, password hashing (argon2id), e-mail codes, server-side sessions and tokens,
//! login throttling, upstream OIDC login and per-user configuration.
//!
//! Allowed dependencies: platform. This crate never depends on actix or any other HTTP
//! server type; the `server` app crate extracts credentials and maps [`IdentityError`]s. The
//! tidy test in `xtask` enforces the rule.
//!
//! Sessions live in the database (the embedded default; cached per process and kept correct
//! across processes by a revocation generation) or in Redis (with `REDIS_URL`): an opaque
//! session id (256 random bits), stored only as its SHA-256, names a record holding the
//! user's id, name and role. Bearer access tokens and rotating refresh tokens are stored
//! hashed and point at the session, so ending a session revokes every token issued for it.
//! Logout, password change or reset, role change and user deletion end the user's sessions.

mod db;
mod error;
mod mail;
mod model;
mod overview;
mod password;
mod service;
mod sessions;
mod throttle;
mod upstream;
mod validate;

#[cfg(test)]
mod tests;

pub use db::SeaOrmIdentity;
pub use error::IdentityError;
pub use mail::{LogMailer, Mailer, SmtpMailer};
pub use model::{
    BootstrapAdmin, ClientInfo, CodeSent, Credential, IdentitySettings, LoginOutcome, LoginRequest,
    NewUser, Principal, Profile, ProfileUpdate, RegisterRequest, Role, TokenPair, User,
};
pub use overview::{AuthOverview, LoginProvider};
pub use service::{Identity, UpstreamLogin};
pub use upstream::{UpstreamCallback, UpstreamStart, safe_local_path};
