//! The OAuth2 authorization server: clients, authorization codes with PKCE, tokens, userinfo and discovery metadata (RFC 6749, 7636, 8414, 9207, 9700).
//!
//! Allowed dependencies: platform. This crate never depends on actix or any other HTTP
//! server type; the `server` app crate adapts it to routes. The tidy test in `xtask`
//! enforces the rule. Accounts come through the [`Accounts`] port the application implements
//! over identity.
//!
//! Rules: clients come from configuration; redirect URIs match exactly; every client uses
//! PKCE with S256; codes are single use (a replay revokes what the code issued); refresh
//! tokens rotate, and a reused one revokes its whole grant; the authorization response
//! carries `iss`; with `openid` the token response has an ES256 id_token. Only hashes of
//! tokens are stored.

mod db;
mod error;
mod jwt;
mod model;
mod service;

pub use db::{SeaOrmAuthorizationServer, Settings};
pub use error::OAuthError;
pub use jwt::ALG as ID_TOKEN_ALG;
pub use model::{
    Account, AuthMethod, AuthorizeOutcome, AuthorizeRequest, ClientConfig, ClientCredentials,
    ConsentPrompt, TokenRequest, TokenResponse, parse_clients,
};
pub use service::{Accounts, AuthorizationServer, metadata};
