//! Upstream login with OpenID Connect (openidconnect crate): discovery, authorization code
//! with PKCE (S256), `state` and `nonce`, ID token verification against the provider's keys,
//! then userinfo for the e-mail claims.
//!
//! The flow record (provider, PKCE verifier, nonce, `next`, redirect URI) lives in the
//! key-value store under the random `state` for a short time and is used once; the browser
//! also carries the `state` in a cookie, so a callback only completes in the browser that
//! started it. `next` is always reduced to a local path.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use platform::store::KvStore;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::IdentityError;

/// How long discovered metadata (and keys) are reused.
const METADATA_TTL: Duration = Duration::from_secs(3600);

/// One configured upstream OpenID Provider.
#[derive(Debug, Clone)]
pub(crate) struct UpstreamProvider {
    pub id: String,
    pub issuer: String,
    pub client_id: String,
    client_secret: Option<String>,
    pub scopes: Vec<String>,
    pub admin_emails: Vec<String>,
    pub admin_usernames: Vec<String>,
    pub default_admin: bool,
    pub link_by_email: bool,
}

fn text(entry: &Value, field: &str) -> Option<String> {
    entry
        .get(field)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn list(entry: &Value, field: &str) -> Vec<String> {
    match entry.get(field) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty())
            .collect(),
        Some(Value::String(csv)) => csv
            .split(',')
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty())
            .collect(),
        _ => Vec::new(),
    }
}

/// The usable OIDC providers of `SAGE_AUTH_PROVIDERS` (ids normalised as in the overview).
pub(crate) fn providers_from_config(raw: &Value) -> Vec<UpstreamProvider> {
    let mut out = Vec::new();
    for entry in raw.as_array().into_iter().flatten() {
        let enabled = entry
            .get("enabled")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let kind = text(entry, "type").unwrap_or_else(|| "oidc".into());
        let Some(id) = text(entry, "id").map(|id| crate::overview::normalise_id(&id)) else {
            continue;
        };
        let issuer = text(entry, "issuer").or_else(|| {
            text(entry, "discovery_url").map(|u| {
                u.trim_end_matches('/')
                    .trim_end_matches("/.well-known/openid-configuration")
                    .to_owned()
            })
        });
        let (Some(issuer), Some(client_id)) = (issuer, text(entry, "client_id")) else {
            tracing::warn!(provider = %id, "upstream provider without issuer/discovery_url or client_id is ignored");
            continue;
        };
        if !enabled || kind != "oidc" || id.is_empty() {
            continue;
        }
        let mut scopes: Vec<String> = text(entry, "scope")
            .unwrap_or_else(|| "openid profile email".into())
            .split_whitespace()
            .filter(|s| *s != "openid")
            .map(str::to_owned)
            .collect();
        scopes.dedup();
        out.push(UpstreamProvider {
            id,
            issuer,
            client_id,
            client_secret: text(entry, "client_secret"),
            scopes,
            admin_emails: list(entry, "admin_emails"),
            admin_usernames: list(entry, "admin_usernames"),
            default_admin: text(entry, "default_role")
                .is_some_and(|r| r.eq_ignore_ascii_case("admin")),
            link_by_email: entry
                .get("link_by_email")
                .and_then(Value::as_bool)
                .unwrap_or(true),
        });
    }
    out
}

/// What the provider said about the user.
#[derive(Debug, Clone)]
pub(crate) struct UpstreamClaims {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub username: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct FlowRecord {
    provider_id: String,
    pkce_verifier: String,
    nonce: String,
    next: String,
    redirect_uri: String,
}

/// Reduces a `next` parameter to a local path (no scheme, no host, no `//`).
pub(crate) fn local_path(next: Option<&str>) -> String {
    const DEFAULT: &str = "/agent/chat";
    let Some(next) = next.map(str::trim).filter(|n| !n.is_empty()) else {
        return DEFAULT.to_owned();
    };
    let safe = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|c| c.is_control() || c == '\\');
    if safe {
        next.to_owned()
    } else {
        DEFAULT.to_owned()
    }
}

fn upstream_failed(what: &str, e: impl std::fmt::Display) -> IdentityError {
    let detail = e.to_string();
    tracing::warn!(error = %detail, "upstream login: {what} failed");
    IdentityError::UpstreamFailed(format!("{what} failed"))
}

/// `openidconnect`'s HTTP client: the workspace's reqwest, redirects off.
async fn send(
    http: reqwest::Client,
    request: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, reqwest::Error> {
    let request = reqwest::Request::try_from(request.map(reqwest::Body::from))?;
    let response = http.execute(request).await?;
    let mut builder = http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    let body = response.bytes().await?.to_vec();
    Ok(builder.body(body).unwrap_or_default())
}

/// The OIDC client side of upstream login.
pub(crate) struct Upstream {
    providers: Vec<UpstreamProvider>,
    http: reqwest::Client,
    kv: Arc<dyn KvStore>,
    flow_ttl: Duration,
    metadata: Mutex<HashMap<String, (Instant, CoreProviderMetadata)>>,
}

/// Where to send the browser to start a login.
#[derive(Debug, Clone)]
pub struct UpstreamStart {
    pub authorize_url: String,
    /// Also set as a short-lived cookie binding the flow to this browser.
    pub state: String,
    pub ttl: Duration,
}

/// The query of the callback.
#[derive(Debug, Clone, Default)]
pub struct UpstreamCallback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

impl Upstream {
    pub fn new(
        raw: &Value,
        kv: Arc<dyn KvStore>,
        flow_ttl: Duration,
    ) -> Result<Self, IdentityError> {
        platform::tls::ensure_crypto_provider();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| IdentityError::Internal(e.into()))?;
        Ok(Self {
            providers: providers_from_config(raw),
            http,
            kv,
            flow_ttl,
            metadata: Mutex::new(HashMap::new()),
        })
    }

    pub fn provider(&self, id: Option<&str>) -> Result<&UpstreamProvider, IdentityError> {
        match id {
            Some(id) => self
                .providers
                .iter()
                .find(|p| p.id == id)
                .ok_or(IdentityError::UpstreamProviderNotFound),
            None => self
                .providers
                .first()
                .ok_or(IdentityError::UpstreamProviderNotFound),
        }
    }

    async fn metadata(
        &self,
        provider: &UpstreamProvider,
    ) -> Result<CoreProviderMetadata, IdentityError> {
        if let Some((at, meta)) = self.metadata.lock().await.get(&provider.id)
            && at.elapsed() < METADATA_TTL
        {
            return Ok(meta.clone());
        }
        let issuer = IssuerUrl::new(provider.issuer.clone())
            .map_err(|e| upstream_failed("issuer URL", e))?;
        let http = self.http.clone();
        let client = move |req| send(http.clone(), req);
        let meta = CoreProviderMetadata::discover_async(issuer, &client)
            .await
            .map_err(|e| upstream_failed("discovery", e))?;
        self.metadata
            .lock()
            .await
            .insert(provider.id.clone(), (Instant::now(), meta.clone()));
        Ok(meta)
    }

    /// Starts a login: records the flow and returns the provider's authorization URL.
    pub async fn start(
        &self,
        provider: &UpstreamProvider,
        redirect_uri: String,
        next: Option<&str>,
    ) -> Result<UpstreamStart, IdentityError> {
        let meta = self.metadata(provider).await?;
        let redirect = RedirectUrl::new(redirect_uri.clone())
            .map_err(|_| IdentityError::invalid("redirect_uri", "is not a valid URL"))?;
        let client = CoreClient::from_provider_metadata(
            meta,
            ClientId::new(provider.client_id.clone()),
            provider.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(redirect);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &provider.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        let record = FlowRecord {
            provider_id: provider.id.clone(),
            pkce_verifier: verifier.secret().clone(),
            nonce: nonce.secret().clone(),
            next: local_path(next),
            redirect_uri,
        };
        let bytes = serde_json::to_vec(&record).map_err(|e| IdentityError::Internal(e.into()))?;
        self.kv
            .set(
                &format!("oidc-flow:{}", state.secret()),
                &bytes,
                Some(self.flow_ttl),
            )
            .await?;
        Ok(UpstreamStart {
            authorize_url: url.to_string(),
            state: state.secret().clone(),
            ttl: self.flow_ttl,
        })
    }

    /// Completes a login: checks the flow, exchanges the code, verifies the ID token and
    /// reads the user's claims. Returns them with the `next` path.
    pub async fn finish(
        &self,
        provider_id: &str,
        callback: UpstreamCallback,
        browser_state: Option<&str>,
    ) -> Result<(UpstreamProvider, UpstreamClaims, String), IdentityError> {
        let provider = self.provider(Some(provider_id))?.clone();
        let state = callback.state.as_deref().unwrap_or_default();
        if state.is_empty() || browser_state != Some(state) {
            return Err(IdentityError::UpstreamFlowInvalid);
        }
        let record = self
            .kv
            .take(&format!("oidc-flow:{state}"))
            .await?
            .and_then(|b| serde_json::from_slice::<FlowRecord>(&b).ok())
            .ok_or(IdentityError::UpstreamFlowInvalid)?;
        if record.provider_id != provider.id {
            return Err(IdentityError::UpstreamFlowInvalid);
        }
        if let Some(error) = callback.error {
            let description = callback.error_description.unwrap_or_default();
            return Err(IdentityError::UpstreamDenied(
                format!("{error} {description}").trim().to_owned(),
            ));
        }
        let code = callback
            .code
            .filter(|c| !c.is_empty())
            .ok_or_else(|| IdentityError::invalid("code", "is missing"))?;
        let meta = self.metadata(&provider).await?;
        let redirect = RedirectUrl::new(record.redirect_uri.clone())
            .map_err(|e| upstream_failed("redirect URI", e))?;
        let client = CoreClient::from_provider_metadata(
            meta,
            ClientId::new(provider.client_id.clone()),
            provider.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(redirect);
        let http = self.http.clone();
        let http_client = move |req| send(http.clone(), req);
        let token = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| upstream_failed("token endpoint", e))?
            .set_pkce_verifier(PkceCodeVerifier::new(record.pkce_verifier))
            .request_async(&http_client)
            .await
            .map_err(|e| upstream_failed("code exchange", e))?;
        let id_token = token
            .id_token()
            .ok_or_else(|| upstream_failed("ID token", "none in the token response"))?;
        let claims = id_token
            .claims(&client.id_token_verifier(), &Nonce::new(record.nonce))
            .map_err(|e| upstream_failed("ID token verification", e))?;
        let subject = claims.subject().to_string();
        let mut result = UpstreamClaims {
            subject: subject.clone(),
            email: claims.email().map(|e| e.to_string()),
            email_verified: claims.email_verified().unwrap_or(false),
            username: claims.preferred_username().map(|u| u.to_string()),
            name: claims
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.to_string()),
        };
        if result.email.is_none()
            && let Ok(request) =
                client.user_info(token.access_token().clone(), Some(claims.subject().clone()))
        {
            let info: openidconnect::core::CoreUserInfoClaims = request
                .request_async(&http_client)
                .await
                .map_err(|e| upstream_failed("userinfo", e))?;
            result.email = info.email().map(|e| e.to_string());
            result.email_verified = info.email_verified().unwrap_or(false);
            result.username = result
                .username
                .or_else(|| info.preferred_username().map(|u| u.to_string()));
            result.name = result
                .name
                .or_else(|| info.name().and_then(|n| n.get(None)).map(|n| n.to_string()));
        }
        Ok((provider, result, record.next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_reduced_to_a_local_path() {
        assert_eq!(local_path(Some("/agent/chat?x=1")), "/agent/chat?x=1");
        for hostile in [
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "javascript:alert(1)",
            "",
            "/a\nb",
        ] {
            assert_eq!(local_path(Some(hostile)), "/agent/chat", "{hostile:?}");
        }
        assert_eq!(local_path(None), "/agent/chat");
    }

    #[test]
    fn providers_are_read_from_configuration() {
        let raw = serde_json::json!([
            {"id": "Corp", "discovery_url": "https://id.example/.well-known/openid-configuration", "client_id": "c", "client_secret": "s", "admin_emails": "Boss@example.com, x@y.z"},
            {"id": "off", "issuer": "https://x", "client_id": "c", "enabled": false},
            {"id": "incomplete"}
        ]);
        let providers = providers_from_config(&raw);
        assert_eq!(providers.len(), 1);
        assert_eq!(providers[0].id, "corp");
        assert_eq!(providers[0].issuer, "https://id.example");
        assert_eq!(providers[0].admin_emails, vec!["boss@example.com", "x@y.z"]);
        assert!(providers[0].link_by_email);
        assert_eq!(providers[0].scopes, vec!["profile", "email"]);
    }
}
