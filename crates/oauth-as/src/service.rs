//! The authorization server's service: what the protocol endpoints do.

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::{
    Account, AuthorizeOutcome, AuthorizeRequest, ClientConfig, ClientCredentials, OAuthError,
    TokenRequest, TokenResponse,
};

/// The accounts grants are issued for (implemented by the application over identity).
#[async_trait]
pub trait Accounts: Send + Sync {
    /// The account, or `None` when it no longer exists.
    async fn account(&self, user_id: &str) -> Result<Option<Account>, anyhow::Error>;
}

/// The OAuth2 authorization server (RFC 6749 with PKCE, RFC 7636), with OpenID Connect
/// id_tokens, revocation (RFC 7009) and introspection (RFC 7662). `issuer` is this server's
/// issuer identifier (`…/oauth2`), which the application derives from its public URL.
#[async_trait]
pub trait AuthorizationServer: Send + Sync {
    /// Makes the configured clients the registered ones (clients no longer configured are
    /// disabled).
    async fn sync_clients(&self, clients: &[ClientConfig]) -> Result<(), OAuthError>;

    /// Checks an authorization request; for a logged-in `user_id` issues a code (or asks for
    /// consent first), otherwise answers [`AuthorizeOutcome::Login`]. Errors are never
    /// redirected: they answer the user agent directly.
    async fn authorize(
        &self,
        user_id: Option<&str>,
        request: AuthorizeRequest,
        issuer: &str,
    ) -> Result<AuthorizeOutcome, OAuthError>;

    /// The user's answer to a consent prompt: the client's redirect URI with a code, or with
    /// `error=access_denied`. A ticket is single use and only its user may answer it.
    async fn consent(
        &self,
        user_id: &str,
        ticket: &str,
        approve: bool,
        issuer: &str,
    ) -> Result<String, OAuthError>;

    /// The token endpoint: `authorization_code` or `refresh_token`.
    async fn token(
        &self,
        client: ClientCredentials,
        request: TokenRequest,
        issuer: &str,
    ) -> Result<TokenResponse, OAuthError>;

    /// The claims of the access token's user (`invalid_token` when it is not live).
    async fn userinfo(
        &self,
        access_token: &str,
        issuer: &str,
    ) -> Result<Map<String, Value>, OAuthError>;

    /// Revokes the grant behind one of the client's tokens; unknown tokens are ignored.
    async fn revoke(&self, client: ClientCredentials, token: &str) -> Result<(), OAuthError>;

    /// Whether one of the client's tokens is live, with its metadata.
    async fn introspect(
        &self,
        client: ClientCredentials,
        token: &str,
        issuer: &str,
    ) -> Result<Map<String, Value>, OAuthError>;

    /// The public keys id_tokens are signed with (a JWK Set).
    async fn jwks(&self) -> Result<Value, OAuthError>;
}

/// The discovery document (RFC 8414, OpenID Connect Discovery) for `issuer`.
pub fn metadata(issuer: &str) -> Value {
    serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/jwks"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "introspection_endpoint": format!("{issuer}/introspect"),
        "grant_types_supported": [crate::model::GRANT_CODE, crate::model::GRANT_REFRESH],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "scopes_supported": crate::model::SCOPES,
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce",
            "preferred_username", "name", "picture", "email", "role"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [crate::jwt::ALG],
        "authorization_response_iss_parameter_supported": true,
    })
}
