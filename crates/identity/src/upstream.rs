//! Upstream login with OpenID Connect (openidconnect crate): discovery, authorization code
//! with PKCE (S256), `state` and `nonce`, ID token verification against the provider's keys,
//! then userinfo for the e-mail and role claims.
//!
//! The flow record (provider, PKCE verifier, nonce, `next`, the SHA-256 of a browser secret,
//! and for a link flow the user to link to) lives in the key-value store under the random
//! `state` for a short time and is used once. The browser carries an independent random
//! secret in a cookie, so a callback URL alone (which carries the `state`) cannot finish the
//! login in another browser. `next` is always reduced to a local path.
//!
//! Every request to the provider goes to the issuer's own origin (configured by the
//! operator) or passes the platform outbound policy; answers are read up to a size cap.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreGenderClaim, CoreProviderMetadata,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
    UserInfoClaims,
};
use platform::outbound::{OutboundPolicy, PolicyResolver};
use platform::store::KvStore;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Mutex;

use crate::IdentityError;

/// How long discovered metadata (and keys) are reused.
const METADATA_TTL: Duration = Duration::from_secs(3600);

/// Largest answer read from a provider (discovery, keys, token, userinfo).
pub(crate) const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Longest accepted `next` parameter.
pub(crate) const MAX_NEXT_LEN: usize = 2048;

/// One configured upstream OpenID Provider.
#[derive(Debug, Clone)]
pub(crate) struct UpstreamProvider {
    pub id: String,
    pub issuer: String,
    pub client_id: String,
    client_secret: Option<String>,
    pub scopes: Vec<String>,
    /// Verified e-mail addresses (lower case) that make a user admin at each login.
    pub admin_emails: Vec<String>,
    /// Subjects (`sub`, exact) at this provider that make a user admin at each login.
    pub admin_subjects: Vec<String>,
    /// The claim (a string or an array; a dotted path reaches nested objects) whose value
    /// `admin` makes a user admin at each login; without it the role is `default_role`.
    pub role_claim: Option<String>,
    pub default_admin: bool,
    /// Whether a verified e-mail may link to an existing account (off by default) …
    pub link_by_email: bool,
    /// … and only for these e-mail domains (lower case), which this provider vouches for.
    pub link_email_domains: Vec<String>,
}

impl UpstreamProvider {
    /// Whether this provider may link a verified e-mail to an existing account.
    pub fn vouches_for(&self, email: &str) -> bool {
        let Some((_, domain)) = email.rsplit_once('@') else {
            return false;
        };
        self.link_by_email
            && self
                .link_email_domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(domain))
    }
}

fn text(entry: &Value, field: &str) -> Option<String> {
    entry
        .get(field)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A csv string or an array of strings, trimmed, empty entries dropped.
fn raw_list(entry: &Value, field: &str) -> Vec<String> {
    match entry.get(field) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
        Some(Value::String(csv)) => csv
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
        _ => Vec::new(),
    }
}

fn list(entry: &Value, field: &str) -> Vec<String> {
    raw_list(entry, field)
        .into_iter()
        .map(|s| s.to_lowercase())
        .collect()
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
        if !raw_list(entry, "admin_usernames").is_empty() {
            tracing::warn!(provider = %id, "admin_usernames is ignored (a local name can be claimed); use admin_subjects or role_claim");
        }
        let link_by_email = entry
            .get("link_by_email")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let link_email_domains: Vec<String> = list(entry, "link_email_domains")
            .into_iter()
            .map(|d| d.trim_start_matches('@').to_owned())
            .collect();
        if link_by_email && link_email_domains.is_empty() {
            tracing::warn!(provider = %id, "link_by_email is on but link_email_domains is empty: no e-mail is linked");
        }
        out.push(UpstreamProvider {
            id,
            issuer,
            client_id,
            client_secret: text(entry, "client_secret"),
            scopes,
            admin_emails: list(entry, "admin_emails"),
            admin_subjects: raw_list(entry, "admin_subjects"),
            role_claim: text(entry, "role_claim"),
            default_admin: text(entry, "default_role")
                .is_some_and(|r| r.eq_ignore_ascii_case("admin")),
            link_by_email,
            link_email_domains,
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
    /// Whether the provider's `role_claim` contains `admin`; `None` without a role claim.
    pub claims_admin: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize)]
struct FlowRecord {
    provider_id: String,
    pkce_verifier: String,
    nonce: String,
    next: String,
    redirect_uri: String,
    /// SHA-256 (hex) of the secret in the browser's flow cookie.
    browser_hash: String,
    /// For a link flow: the logged-in user the identity is linked to.
    #[serde(default)]
    link_user_id: Option<String>,
}

/// A local path (starting with one `/`, no `\`, no control character), or `None`.
pub fn safe_local_path(path: &str) -> Option<String> {
    let safe = path.starts_with('/')
        && !path.starts_with("//")
        && !path.starts_with("/\\")
        && !path.chars().any(|c| c.is_control() || c == '\\');
    safe.then(|| path.to_owned())
}

/// Reduces a `next` parameter to a local path (no scheme, no host, no `//`).
pub(crate) fn local_path(next: Option<&str>) -> String {
    const DEFAULT: &str = "/agent/chat";
    next.map(str::trim)
        .filter(|n| !n.is_empty())
        .and_then(safe_local_path)
        .unwrap_or_else(|| DEFAULT.to_owned())
}

fn upstream_failed(what: &str, e: impl std::fmt::Display) -> IdentityError {
    let detail = e.to_string();
    tracing::warn!(error = %detail, "upstream login: {what} failed");
    IdentityError::UpstreamFailed(format!("{what} failed"))
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn random_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// Every claim of an ID token or userinfo answer, for the configured `role_claim`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AllClaims {
    #[serde(flatten)]
    rest: serde_json::Map<String, Value>,
}

impl AdditionalClaims for AllClaims {}

/// Whether the claim `name` (exact key, else a dotted path) holds `admin`: a string (one
/// value, or several separated by spaces or commas) or an array of strings.
fn claim_has_admin(claims: &serde_json::Map<String, Value>, name: &str) -> Option<bool> {
    let value = claims.get(name).or_else(|| {
        let mut parts = name.split('.');
        let first = claims.get(parts.next()?)?;
        parts.try_fold(first, |v, part| v.get(part))
    })?;
    let is_admin = |s: &str| s.trim().eq_ignore_ascii_case("admin");
    Some(match value {
        Value::String(s) => s.split([' ', ',']).any(is_admin),
        Value::Array(items) => items.iter().filter_map(Value::as_str).any(is_admin),
        _ => false,
    })
}

/// The claims in a verified ID token's payload (the JWT's middle part).
fn id_token_payload(compact: &str) -> serde_json::Map<String, Value> {
    use base64::Engine as _;
    compact
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Why a request to a provider was not sent or its answer not read.
#[derive(Debug, thiserror::Error)]
enum HttpError {
    #[error(transparent)]
    Reqwest(#[from] reqwest::Error),
    #[error(transparent)]
    Http(#[from] http::Error),
    #[error("{0}")]
    Refused(String),
}

/// The HTTP side of one provider: the issuer's own origin is reached directly (the operator
/// configured it); any other URL of the discovery document must pass the outbound policy.
#[derive(Clone)]
struct ProviderHttp {
    direct: reqwest::Client,
    checked: reqwest::Client,
    policy: Arc<OutboundPolicy>,
    issuer_origin: Option<reqwest::Url>,
}

fn same_origin(a: &reqwest::Url, b: &reqwest::Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

impl ProviderHttp {
    /// `openidconnect`'s HTTP client: redirects off, answers capped at
    /// [`MAX_RESPONSE_BYTES`].
    async fn send(
        self,
        request: openidconnect::HttpRequest,
    ) -> Result<openidconnect::HttpResponse, HttpError> {
        let request = reqwest::Request::try_from(request.map(reqwest::Body::from))?;
        let on_issuer = self
            .issuer_origin
            .as_ref()
            .is_some_and(|o| same_origin(o, request.url()));
        let client = if on_issuer {
            &self.direct
        } else {
            self.policy
                .check_url(request.url().as_str())
                .await
                .map_err(|e| HttpError::Refused(e.to_string()))?;
            &self.checked
        };
        let mut response = client.execute(request).await?;
        if response
            .content_length()
            .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
        {
            return Err(HttpError::Refused(format!(
                "the answer is larger than {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        let mut builder = http::Response::builder().status(response.status());
        for (name, value) in response.headers() {
            builder = builder.header(name, value);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(HttpError::Refused(format!(
                    "the answer is larger than {MAX_RESPONSE_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(builder.body(body)?)
    }
}

/// The OIDC client side of upstream login.
pub(crate) struct Upstream {
    providers: Vec<UpstreamProvider>,
    direct: reqwest::Client,
    checked: reqwest::Client,
    policy: Arc<OutboundPolicy>,
    kv: Arc<dyn KvStore>,
    flow_ttl: Duration,
    starts_per_minute: i64,
    metadata: Mutex<HashMap<String, (Instant, CoreProviderMetadata)>>,
}

/// Where to send the browser to start a login.
#[derive(Debug, Clone)]
pub struct UpstreamStart {
    pub authorize_url: String,
    /// Set as a short-lived cookie binding the flow to this browser (only its hash is
    /// stored).
    pub browser_secret: String,
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

/// A verified upstream identity, from [`Upstream::finish`].
pub(crate) struct Finished {
    pub provider: UpstreamProvider,
    pub claims: UpstreamClaims,
    pub next: String,
    pub link_user_id: Option<String>,
}

impl Upstream {
    pub fn new(
        raw: &Value,
        kv: Arc<dyn KvStore>,
        flow_ttl: Duration,
        starts_per_minute: i64,
        policy: OutboundPolicy,
    ) -> Result<Self, IdentityError> {
        platform::tls::ensure_crypto_provider();
        let policy = Arc::new(policy);
        let build = |checked: bool| {
            let mut builder = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(Duration::from_secs(5))
                .timeout(Duration::from_secs(15));
            if checked {
                builder = builder
                    .no_proxy()
                    .dns_resolver(Arc::new(PolicyResolver::new(policy.clone())));
            }
            builder
                .build()
                .map_err(|e| IdentityError::Internal(e.into()))
        };
        Ok(Self {
            providers: providers_from_config(raw),
            direct: build(false)?,
            checked: build(true)?,
            policy: policy.clone(),
            kv,
            flow_ttl,
            starts_per_minute,
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

    fn http(&self, provider: &UpstreamProvider) -> ProviderHttp {
        ProviderHttp {
            direct: self.direct.clone(),
            checked: self.checked.clone(),
            policy: self.policy.clone(),
            issuer_origin: reqwest::Url::parse(&provider.issuer).ok(),
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
        let http = self.http(provider);
        let client = move |req| http.clone().send(req);
        let meta = CoreProviderMetadata::discover_async(issuer, &client)
            .await
            .map_err(|e| upstream_failed("discovery", e))?;
        self.metadata
            .lock()
            .await
            .insert(provider.id.clone(), (Instant::now(), meta.clone()));
        Ok(meta)
    }

    /// At most `starts_per_minute` starts per client address (IPv6: per /64).
    async fn throttle_start(&self, ip: Option<IpAddr>) -> Result<(), IdentityError> {
        let count = self
            .kv
            .incr(
                &format!("oidc-starts:{}", crate::throttle::address_key(ip)),
                1,
                Duration::from_secs(60),
            )
            .await?;
        if count.value > self.starts_per_minute {
            return Err(IdentityError::TooManyAttempts {
                retry_after: count.ttl.map_or(60, |t| t.as_secs().max(1)),
            });
        }
        Ok(())
    }

    /// Starts a login (or, with `link_user_id`, a link to that user): records the flow and
    /// returns the provider's authorization URL.
    pub async fn start(
        &self,
        provider: &UpstreamProvider,
        redirect_uri: String,
        next: Option<&str>,
        ip: Option<IpAddr>,
        link_user_id: Option<String>,
    ) -> Result<UpstreamStart, IdentityError> {
        if next.is_some_and(|n| n.len() > MAX_NEXT_LEN) {
            return Err(IdentityError::invalid(
                "next",
                format!("must be at most {MAX_NEXT_LEN} characters"),
            ));
        }
        self.throttle_start(ip).await?;
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
        let browser_secret = random_secret();
        let record = FlowRecord {
            provider_id: provider.id.clone(),
            pkce_verifier: verifier.secret().clone(),
            nonce: nonce.secret().clone(),
            next: local_path(next),
            redirect_uri,
            browser_hash: sha256_hex(&browser_secret),
            link_user_id,
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
            browser_secret,
            ttl: self.flow_ttl,
        })
    }

    /// The flow of `state`, when the browser holds its secret; it is consumed.
    async fn take_flow(
        &self,
        state: &str,
        browser_secret: Option<&str>,
    ) -> Result<FlowRecord, IdentityError> {
        let (Some(secret), false) = (browser_secret.filter(|s| !s.is_empty()), state.is_empty())
        else {
            return Err(IdentityError::UpstreamFlowInvalid);
        };
        let key = format!("oidc-flow:{state}");
        let record = self
            .kv
            .get(&key)
            .await?
            .and_then(|b| serde_json::from_slice::<FlowRecord>(&b).ok())
            .ok_or(IdentityError::UpstreamFlowInvalid)?;
        let presented = sha256_hex(secret);
        if !bool::from(presented.as_bytes().ct_eq(record.browser_hash.as_bytes())) {
            return Err(IdentityError::UpstreamFlowInvalid);
        }
        // Single use: only the caller that removes the record may finish the flow.
        self.kv
            .take(&key)
            .await?
            .ok_or(IdentityError::UpstreamFlowInvalid)?;
        Ok(record)
    }

    /// Completes a login: checks the flow, exchanges the code, verifies the ID token and
    /// reads the user's claims.
    pub async fn finish(
        &self,
        provider_id: &str,
        callback: UpstreamCallback,
        browser_secret: Option<&str>,
    ) -> Result<Finished, IdentityError> {
        let provider = self.provider(Some(provider_id))?.clone();
        let state = callback.state.as_deref().unwrap_or_default();
        let record = self.take_flow(state, browser_secret).await?;
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
        let http = self.http(&provider);
        let http_client = move |req| http.clone().send(req);
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
            claims_admin: None,
        };
        if let Some(role_claim) = &provider.role_claim {
            result.claims_admin =
                claim_has_admin(&id_token_payload(&id_token.to_string()), role_claim);
        }
        let wants_userinfo = result.email.is_none()
            || (provider.role_claim.is_some() && result.claims_admin.is_none());
        if wants_userinfo
            && let Ok(request) =
                client.user_info(token.access_token().clone(), Some(claims.subject().clone()))
        {
            let info: UserInfoClaims<AllClaims, CoreGenderClaim> = request
                .request_async(&http_client)
                .await
                .map_err(|e| upstream_failed("userinfo", e))?;
            if result.email.is_none() {
                result.email = info.email().map(|e| e.to_string());
                result.email_verified = info.email_verified().unwrap_or(false);
            }
            result.username = result
                .username
                .or_else(|| info.preferred_username().map(|u| u.to_string()));
            result.name = result
                .name
                .or_else(|| info.name().and_then(|n| n.get(None)).map(|n| n.to_string()));
            if let Some(role_claim) = &provider.role_claim
                && result.claims_admin.is_none()
            {
                result.claims_admin = claim_has_admin(&info.additional_claims().rest, role_claim);
            }
        }
        if provider.role_claim.is_some() && result.claims_admin.is_none() {
            result.claims_admin = Some(false);
        }
        Ok(Finished {
            provider,
            claims: result,
            next: record.next,
            link_user_id: record.link_user_id,
        })
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
            "/\t/evil.example/x",
            "/a\tb",
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
        assert!(!providers[0].link_by_email, "off by default");
        assert!(!providers[0].vouches_for("boss@example.com"));
        assert_eq!(providers[0].scopes, vec!["profile", "email"]);
    }

    #[test]
    fn a_provider_vouches_only_for_its_configured_domains() {
        let raw = serde_json::json!([
            {"id": "corp", "issuer": "https://id.example", "client_id": "c", "link_by_email": true, "link_email_domains": "corp.example, @Sub.Corp.Example", "admin_subjects": ["Abc-1"]},
            {"id": "none", "issuer": "https://id.example", "client_id": "c", "link_by_email": true}
        ]);
        let providers = providers_from_config(&raw);
        assert!(providers[0].vouches_for("ann@corp.example"));
        assert!(providers[0].vouches_for("ann@sub.corp.example"));
        assert!(!providers[0].vouches_for("ann@evil.example"));
        assert!(!providers[0].vouches_for("ann@corp.example.evil"));
        assert_eq!(
            providers[0].admin_subjects,
            vec!["Abc-1"],
            "subjects keep their case"
        );
        assert!(
            !providers[1].vouches_for("ann@corp.example"),
            "no domains, no linking"
        );
    }

    #[test]
    fn role_claims_are_strings_arrays_or_nested() {
        let claims = serde_json::json!({
            "roles": ["user", "Admin"],
            "role": "admin",
            "several": "user admin",
            "other": ["user"],
            "realm_access": {"roles": ["admin"]},
            "number": 3
        });
        let map = claims.as_object().unwrap();
        assert_eq!(claim_has_admin(map, "roles"), Some(true));
        assert_eq!(claim_has_admin(map, "role"), Some(true));
        assert_eq!(claim_has_admin(map, "several"), Some(true));
        assert_eq!(claim_has_admin(map, "other"), Some(false));
        assert_eq!(claim_has_admin(map, "realm_access.roles"), Some(true));
        assert_eq!(claim_has_admin(map, "number"), Some(false));
        assert_eq!(claim_has_admin(map, "missing"), None);
    }
}
