//! `SeaOrmAuthorizationServer`: clients and tokens in the database (token hashes only, never
//! the tokens), codes and consent tickets in the key-value store (single use by `take`).

use std::sync::Arc;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use base64::Engine;
use chrono::{DateTime, Duration, SubsecRound, Utc};
use platform::clock::{Clock, SystemClock};
use platform::secret::Sealer;
use platform::store::KvStore;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::Digest;

use super::entities::{clients, signing_keys, tokens};
use crate::jwt::{SigningKey, generate_pkcs8};
use crate::model::{GRANT_CODE, GRANT_REFRESH};
use crate::{
    Account, Accounts, AuthMethod, AuthorizationServer, AuthorizeOutcome, AuthorizeRequest,
    ClientConfig, ClientCredentials, ConsentPrompt, OAuthError, TokenRequest, TokenResponse,
};

/// Lifetimes of what the server issues.
#[derive(Debug, Clone)]
pub struct Settings {
    pub access_token_ttl: StdDuration,
    /// A refresh token unused this long expires (each rotation starts it again).
    pub refresh_token_ttl: StdDuration,
    pub code_ttl: StdDuration,
    pub consent_ttl: StdDuration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            access_token_ttl: StdDuration::from_secs(3600),
            refresh_token_ttl: StdDuration::from_secs(30 * 24 * 3600),
            code_ttl: StdDuration::from_secs(300),
            consent_ttl: StdDuration::from_secs(600),
        }
    }
}

const MAX_STATE_CHARS: usize = 2048;
const MAX_NONCE_CHARS: usize = 512;
const MAX_TOKEN_CHARS: usize = 512;

pub struct SeaOrmAuthorizationServer {
    db: platform::db::Db,
    kv: Arc<dyn KvStore>,
    sealer: Sealer,
    accounts: Arc<dyn Accounts>,
    clock: Arc<dyn Clock>,
    settings: Settings,
    keys: tokio::sync::OnceCell<Arc<Vec<SigningKey>>>,
}

/// A validated authorization request, waiting for the user (consent) or for its code.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    client_id: String,
    redirect_uri: String,
    scope: String,
    code_challenge: String,
    nonce: Option<String>,
    state: Option<String>,
}

/// What a code stands for.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CodeGrant {
    user_id: String,
    client_id: String,
    redirect_uri: String,
    scope: String,
    code_challenge: String,
    nonce: Option<String>,
    auth_time: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ticket {
    user_id: String,
    pending: Pending,
}

/// A registered client as stored.
struct Client {
    id: String,
    name: String,
    description: Option<String>,
    secret_hash: Option<String>,
    enabled: bool,
    skip_consent: bool,
    grant_types: Vec<String>,
    redirect_uris: Vec<String>,
    scopes: Vec<String>,
    auth_method: Option<AuthMethod>,
}

impl Client {
    fn allows(&self, grant: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant)
    }
}

impl From<clients::Model> for Client {
    fn from(m: clients::Model) -> Self {
        Client {
            grant_types: words(&m.grant_types),
            redirect_uris: serde_json::from_str(&m.redirect_uris).unwrap_or_default(),
            scopes: words(&m.scope),
            auth_method: AuthMethod::parse(&m.auth_method),
            id: m.client_id,
            name: m.name,
            description: m.description,
            secret_hash: m.secret_hash,
            enabled: m.enabled,
            skip_consent: m.skip_consent,
        }
    }
}

fn words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        if !out.iter().any(|w| w == word) {
            out.push(word.to_owned());
        }
    }
    out
}

fn sha256_hex(text: &str) -> String {
    hex_of(&sha2::Sha256::digest(text.as_bytes()))
}

fn hex_of(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn present(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

fn code_key(code: &str) -> String {
    format!("oauth2:code:{}", sha256_hex(code))
}

fn used_key(code: &str) -> String {
    format!("oauth2:used:{}", sha256_hex(code))
}

fn ticket_key(ticket: &str) -> String {
    format!("oauth2:consent:{}", sha256_hex(ticket))
}

/// RFC 7636 §4.1: 43 to 128 unreserved characters.
fn valid_pkce_text(text: &str) -> bool {
    (43..=128).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// `uri` with the query parameters added (after an existing query).
fn with_query(uri: &str, params: &[(&str, Option<&str>)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        if let Some(value) = value {
            serializer.append_pair(name, value);
        }
    }
    let query = serializer.finish();
    let separator = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{separator}{query}")
}

fn host_of(uri: &str) -> String {
    uri.split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(uri)
        .split(['/', '?'])
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The claims of `account` that `scopes` release.
fn claims(account: &Account, scopes: &[String], issuer: &str) -> Map<String, Value> {
    let has = |s: &str| scopes.iter().any(|x| x == s);
    let mut out = Map::new();
    out.insert("sub".into(), json!(account.user_id));
    out.insert("iss".into(), json!(issuer));
    out.insert("preferred_username".into(), json!(account.username));
    out.insert("role".into(), json!(account.role));
    if has("profile") || scopes.is_empty() {
        let name = account
            .nickname
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| account.username.clone());
        out.insert("name".into(), json!(name));
        if let Some(avatar) = account.avatar.as_ref().filter(|a| !a.is_empty()) {
            out.insert("picture".into(), json!(avatar));
            out.insert("avatar_url".into(), json!(avatar));
        }
    }
    if has("email")
        && let Some(email) = account.email.as_ref().filter(|e| !e.is_empty())
    {
        out.insert("email".into(), json!(email));
    }
    out
}

impl SeaOrmAuthorizationServer {
    pub fn new(
        db: platform::db::Db,
        kv: Arc<dyn KvStore>,
        sealer: Sealer,
        accounts: Arc<dyn Accounts>,
        settings: Settings,
    ) -> Self {
        Self {
            db,
            kv,
            sealer,
            accounts,
            clock: Arc::new(SystemClock),
            settings,
            keys: tokio::sync::OnceCell::new(),
        }
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Re-encrypts the id_token signing keys still sealed under a previous secret key
    /// (`sage-server admin reseal`).
    pub async fn reseal(&self) -> Result<platform::secret::ResealReport, OAuthError> {
        let rows: Vec<(String, String)> = signing_keys::Entity::find()
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| (row.kid, row.private_key))
            .collect();
        platform::secret::reseal_rows(
            &self.sealer,
            "signing key",
            rows,
            |kid, old, new| async move {
                let updated = signing_keys::Entity::update_many()
                    .col_expr(signing_keys::Column::PrivateKey, Expr::value(new))
                    .filter(signing_keys::Column::Kid.eq(kid))
                    .filter(signing_keys::Column::PrivateKey.eq(old))
                    .exec(&self.db)
                    .await?;
                Ok(updated.rows_affected)
            },
        )
        .await
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now().trunc_subsecs(6)
    }

    fn ttl(d: StdDuration) -> Duration {
        Duration::from_std(d).unwrap_or(Duration::hours(1))
    }

    async fn client(&self, id: &str) -> Result<Option<Client>, OAuthError> {
        Ok(clients::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await?
            .map(Client::from))
    }

    async fn enabled_client(&self, id: &str) -> Result<Client, OAuthError> {
        match self.client(id).await? {
            Some(c) if c.enabled => Ok(c),
            _ => Err(OAuthError::invalid_client("unknown client")),
        }
    }

    /// RFC 6749 §2.3: HTTP Basic, or the form's id and secret, or the id alone (public
    /// clients); the way used must be the client's registered one.
    async fn authenticate_client(&self, creds: ClientCredentials) -> Result<Client, OAuthError> {
        let (id, secret, method) = if let Some(header) = present(creds.authorization) {
            let (scheme, value) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
            if !scheme.eq_ignore_ascii_case("basic") {
                return Err(OAuthError::invalid_client(
                    "client authentication must use HTTP Basic",
                ));
            }
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(value.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
            let decode = |s: &str| {
                form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            (decode(id), Some(decode(secret)), AuthMethod::Basic)
        } else if let Some(secret) = present(creds.client_secret) {
            let id = present(creds.client_id)
                .ok_or_else(|| OAuthError::invalid_client("client_id is required"))?;
            (id, Some(secret), AuthMethod::Post)
        } else if let Some(id) = present(creds.client_id) {
            (id, None, AuthMethod::None)
        } else {
            return Err(OAuthError::invalid_client(
                "client authentication is required",
            ));
        };
        let client = self.enabled_client(id.trim()).await?;
        if client.auth_method != Some(method) {
            return Err(OAuthError::invalid_client(format!(
                "this client authenticates with {}",
                client
                    .auth_method
                    .map_or("an unknown method", AuthMethod::as_str)
            )));
        }
        if method != AuthMethod::None {
            use subtle::ConstantTimeEq;
            let presented = sha256_hex(secret.as_deref().unwrap_or_default());
            let expected = client.secret_hash.as_deref().unwrap_or_default();
            if !bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
                return Err(OAuthError::invalid_client("wrong client secret"));
            }
        }
        Ok(client)
    }

    fn check_scopes(
        requested: Option<&str>,
        allowed: &[String],
    ) -> Result<Vec<String>, OAuthError> {
        let requested = requested.map(words).unwrap_or_default();
        if requested.is_empty() {
            return Ok(allowed.to_vec());
        }
        if let Some(bad) = requested.iter().find(|s| !allowed.contains(s)) {
            return Err(OAuthError::invalid_scope(format!(
                "scope {bad:?} is not allowed for this client"
            )));
        }
        Ok(requested)
    }

    async fn issue_code(
        &self,
        user_id: &str,
        pending: Pending,
        issuer: &str,
    ) -> Result<String, OAuthError> {
        let code = platform::ids::new_secret_token(24);
        let grant = CodeGrant {
            user_id: user_id.to_owned(),
            client_id: pending.client_id,
            redirect_uri: pending.redirect_uri.clone(),
            scope: pending.scope,
            code_challenge: pending.code_challenge,
            nonce: pending.nonce,
            auth_time: self.now().timestamp(),
        };
        let value = serde_json::to_vec(&grant).map_err(anyhow::Error::new)?;
        self.kv
            .set(&code_key(&code), &value, Some(self.settings.code_ttl))
            .await?;
        Ok(with_query(
            &pending.redirect_uri,
            &[
                ("code", Some(&code)),
                ("state", pending.state.as_deref()),
                ("iss", Some(issuer)),
            ],
        ))
    }

    /// Every key id tokens may be signed with, oldest (the one in use) first; the first is
    /// made and stored on first need (replicas converge on the oldest).
    async fn keys(&self) -> Result<Arc<Vec<SigningKey>>, OAuthError> {
        self.keys
            .get_or_try_init(|| async {
                let mut keys = self.load_keys().await?;
                if keys.is_empty() {
                    let pkcs8 = generate_pkcs8()?;
                    let sealed = self
                        .sealer
                        .seal(&base64::engine::general_purpose::STANDARD.encode(&pkcs8));
                    let kid = platform::ids::new_hex_id();
                    signing_keys::Entity::insert(signing_keys::ActiveModel {
                        kid: Set(kid.get(..16).unwrap_or(&kid).to_owned()),
                        private_key: Set(sealed),
                        created_at: Set(self.now()),
                    })
                    .exec(&self.db)
                    .await?;
                    keys = self.load_keys().await?;
                }
                Ok::<_, OAuthError>(Arc::new(keys))
            })
            .await
            .cloned()
    }

    async fn load_keys(&self) -> Result<Vec<SigningKey>, OAuthError> {
        let rows = signing_keys::Entity::find()
            .order_by_asc(signing_keys::Column::CreatedAt)
            .order_by_asc(signing_keys::Column::Kid)
            .all(&self.db)
            .await?;
        let mut keys = Vec::with_capacity(rows.len());
        for row in rows {
            let pkcs8 = self
                .sealer
                .open(&row.private_key)
                .ok()
                .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok());
            match pkcs8.map(|k| SigningKey::from_pkcs8(row.kid.clone(), &k)) {
                Some(Ok(key)) => keys.push(key),
                _ => {
                    tracing::warn!(kid = %row.kid, "an id_token signing key cannot be opened (another SAGE_SECRET_KEY?); skipped")
                }
            }
        }
        Ok(keys)
    }

    #[allow(clippy::too_many_arguments)]
    async fn issue_tokens(
        &self,
        client: &Client,
        account: &Account,
        scopes: &[String],
        grant_id: &str,
        auth_time: DateTime<Utc>,
        nonce: Option<&str>,
        issuer: &str,
    ) -> Result<TokenResponse, OAuthError> {
        let now = self.now();
        let access = platform::ids::new_secret_token(24);
        let refresh = client
            .allows(GRANT_REFRESH)
            .then(|| platform::ids::new_secret_token(24));
        let access_ttl = Self::ttl(self.settings.access_token_ttl);
        let scope = scopes.join(" ");
        tokens::Entity::insert(tokens::ActiveModel {
            id: Set(platform::ids::new_uuid()),
            grant_id: Set(grant_id.to_owned()),
            client_id: Set(client.id.clone()),
            user_id: Set(account.user_id.clone()),
            scope: Set(scope.clone()),
            access_hash: Set(sha256_hex(&access)),
            access_expires_at: Set(now + access_ttl),
            refresh_hash: Set(refresh.as_deref().map(sha256_hex)),
            refresh_expires_at: Set(refresh
                .as_ref()
                .map(|_| now + Self::ttl(self.settings.refresh_token_ttl))),
            revoked_at: Set(None),
            auth_time: Set(auth_time),
            created_at: Set(now),
        })
        .exec(&self.db)
        .await?;
        let id_token = if scopes.iter().any(|s| s == "openid") {
            let keys = self.keys().await?;
            let key = keys
                .first()
                .ok_or_else(|| anyhow::anyhow!("no usable id_token signing key"))?;
            let mut body = claims(account, scopes, issuer);
            body.insert("aud".into(), json!(client.id));
            body.insert("iat".into(), json!(now.timestamp()));
            body.insert("exp".into(), json!((now + access_ttl).timestamp()));
            body.insert("auth_time".into(), json!(auth_time.timestamp()));
            if let Some(nonce) = nonce {
                body.insert("nonce".into(), json!(nonce));
            }
            Some(key.sign(&Value::Object(body))?)
        } else {
            None
        };
        Ok(TokenResponse {
            token_type: "Bearer",
            access_token: access,
            expires_in: access_ttl.num_seconds(),
            refresh_token: refresh,
            scope,
            id_token,
        })
    }

    async fn revoke_grant(&self, grant_id: &str) -> Result<(), OAuthError> {
        tokens::Entity::update_many()
            .col_expr(tokens::Column::RevokedAt, Expr::value(self.now()))
            .filter(tokens::Column::GrantId.eq(grant_id))
            .filter(tokens::Column::RevokedAt.is_null())
            .exec(&self.db)
            .await?;
        Ok(())
    }

    async fn code_grant(
        &self,
        client: &Client,
        request: TokenRequest,
        issuer: &str,
    ) -> Result<TokenResponse, OAuthError> {
        if !client.allows(GRANT_CODE) {
            return Err(OAuthError::unauthorized_client(
                "this client may not use the authorization_code grant",
            ));
        }
        let code = present(request.code)
            .filter(|c| c.len() <= MAX_TOKEN_CHARS)
            .ok_or_else(|| OAuthError::invalid_request("code is required"))?;
        let redirect_uri = present(request.redirect_uri)
            .ok_or_else(|| OAuthError::invalid_request("redirect_uri is required"))?;
        let spent = || OAuthError::invalid_grant("the code is invalid, expired or already used");
        let Some(stored) = self.kv.take(&code_key(&code)).await? else {
            // A replayed code: whatever it issued is revoked (RFC 6749 §4.1.2).
            if let Some(grant_id) = self.kv.get(&used_key(&code)).await? {
                self.revoke_grant(&String::from_utf8_lossy(&grant_id))
                    .await?;
            }
            return Err(spent());
        };
        let grant: CodeGrant = serde_json::from_slice(&stored).map_err(|_| spent())?;
        if grant.client_id != client.id {
            return Err(spent());
        }
        if grant.redirect_uri != redirect_uri {
            return Err(OAuthError::invalid_grant(
                "redirect_uri differs from the authorization request's",
            ));
        }
        let verifier = present(request.code_verifier)
            .ok_or_else(|| OAuthError::invalid_request("code_verifier is required"))?;
        let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes()));
        if !valid_pkce_text(&verifier) || computed != grant.code_challenge {
            return Err(OAuthError::invalid_grant("code_verifier does not match"));
        }
        let account = self
            .accounts
            .account(&grant.user_id)
            .await?
            .ok_or_else(|| OAuthError::invalid_grant("the user no longer exists"))?;
        let grant_id = platform::ids::new_uuid();
        let auth_time = DateTime::from_timestamp(grant.auth_time, 0).unwrap_or_else(|| self.now());
        let response = self
            .issue_tokens(
                client,
                &account,
                &words(&grant.scope),
                &grant_id,
                auth_time,
                grant.nonce.as_deref(),
                issuer,
            )
            .await?;
        self.kv
            .set(
                &used_key(&code),
                grant_id.as_bytes(),
                Some(self.settings.code_ttl * 2),
            )
            .await?;
        Ok(response)
    }

    async fn refresh_grant(
        &self,
        client: &Client,
        request: TokenRequest,
        issuer: &str,
    ) -> Result<TokenResponse, OAuthError> {
        if !client.allows(GRANT_REFRESH) {
            return Err(OAuthError::unauthorized_client(
                "this client may not use the refresh_token grant",
            ));
        }
        let presented = present(request.refresh_token)
            .filter(|t| t.len() <= MAX_TOKEN_CHARS)
            .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
        let invalid = || OAuthError::invalid_grant("the refresh token is invalid or expired");
        let row = tokens::Entity::find()
            .filter(tokens::Column::RefreshHash.eq(sha256_hex(&presented)))
            .one(&self.db)
            .await?
            .filter(|r| r.client_id == client.id)
            .ok_or_else(invalid)?;
        let reused = || {
            OAuthError::invalid_grant("the refresh token was already used; the grant is revoked")
        };
        if row.revoked_at.is_some() {
            self.revoke_grant(&row.grant_id).await?;
            return Err(reused());
        }
        let now = self.now();
        if row.refresh_expires_at.is_none_or(|at| at <= now) {
            return Err(invalid());
        }
        let scopes = Self::check_scopes(request.scope.as_deref(), &words(&row.scope))?;
        let account = self
            .accounts
            .account(&row.user_id)
            .await?
            .ok_or_else(|| OAuthError::invalid_grant("the user no longer exists"))?;
        // Rotation: exactly one exchange may retire this row; a concurrent second one is a reuse.
        let retired = tokens::Entity::update_many()
            .col_expr(tokens::Column::RevokedAt, Expr::value(now))
            .filter(tokens::Column::Id.eq(row.id.as_str()))
            .filter(tokens::Column::RevokedAt.is_null())
            .exec(&self.db)
            .await?;
        if retired.rows_affected != 1 {
            self.revoke_grant(&row.grant_id).await?;
            return Err(reused());
        }
        self.issue_tokens(
            client,
            &account,
            &scopes,
            &row.grant_id,
            row.auth_time,
            None,
            issuer,
        )
        .await
    }

    /// The live row, client and account behind an access token.
    async fn live_access(
        &self,
        token: &str,
    ) -> Result<Option<(tokens::Model, Account)>, OAuthError> {
        if token.is_empty() || token.len() > MAX_TOKEN_CHARS {
            return Ok(None);
        }
        let Some(row) = tokens::Entity::find()
            .filter(tokens::Column::AccessHash.eq(sha256_hex(token)))
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        if row.revoked_at.is_some() || row.access_expires_at <= self.now() {
            return Ok(None);
        }
        self.live_subject(row).await
    }

    async fn live_subject(
        &self,
        row: tokens::Model,
    ) -> Result<Option<(tokens::Model, Account)>, OAuthError> {
        if !self
            .client(&row.client_id)
            .await?
            .is_some_and(|c| c.enabled)
        {
            return Ok(None);
        }
        Ok(self.accounts.account(&row.user_id).await?.map(|a| (row, a)))
    }

    async fn find_any(&self, token: &str) -> Result<Option<(tokens::Model, bool)>, OAuthError> {
        if token.is_empty() || token.len() > MAX_TOKEN_CHARS {
            return Ok(None);
        }
        let hash = sha256_hex(token);
        let row = tokens::Entity::find()
            .filter(
                Condition::any()
                    .add(tokens::Column::AccessHash.eq(hash.as_str()))
                    .add(tokens::Column::RefreshHash.eq(hash.as_str())),
            )
            .one(&self.db)
            .await?;
        Ok(row.map(|r| {
            let is_refresh = r.refresh_hash.as_deref() == Some(hash.as_str());
            (r, is_refresh)
        }))
    }
}

#[async_trait]
impl AuthorizationServer for SeaOrmAuthorizationServer {
    async fn sync_clients(&self, configured: &[ClientConfig]) -> Result<(), OAuthError> {
        let now = self.now();
        for c in configured {
            let model = clients::ActiveModel {
                client_id: Set(c.client_id.clone()),
                name: Set(c.name.clone()),
                description: Set(c.description.clone()),
                secret_hash: Set(c.client_secret.as_deref().map(sha256_hex)),
                enabled: Set(c.enabled),
                skip_consent: Set(c.skip_consent),
                grant_types: Set(c.grant_types.join(" ")),
                redirect_uris: Set(
                    serde_json::to_string(&c.redirect_uris).map_err(anyhow::Error::new)?
                ),
                scope: Set(c.scopes.join(" ")),
                auth_method: Set(c.auth_method.as_str().to_owned()),
                created_at: Set(now),
                updated_at: Set(now),
            };
            clients::Entity::insert(model)
                .on_conflict(
                    OnConflict::column(clients::Column::ClientId)
                        .update_columns([
                            clients::Column::Name,
                            clients::Column::Description,
                            clients::Column::SecretHash,
                            clients::Column::Enabled,
                            clients::Column::SkipConsent,
                            clients::Column::GrantTypes,
                            clients::Column::RedirectUris,
                            clients::Column::Scope,
                            clients::Column::AuthMethod,
                            clients::Column::UpdatedAt,
                        ])
                        .to_owned(),
                )
                .exec(&self.db)
                .await?;
        }
        let ids: Vec<String> = configured.iter().map(|c| c.client_id.clone()).collect();
        clients::Entity::update_many()
            .col_expr(clients::Column::Enabled, Expr::value(false))
            .col_expr(clients::Column::UpdatedAt, Expr::value(now))
            .filter(clients::Column::ClientId.is_not_in(ids))
            .filter(clients::Column::Enabled.eq(true))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    async fn authorize(
        &self,
        user_id: Option<&str>,
        request: AuthorizeRequest,
        issuer: &str,
    ) -> Result<AuthorizeOutcome, OAuthError> {
        if present(request.response_type).as_deref() != Some("code") {
            return Err(OAuthError::unsupported_response_type(
                "response_type must be code",
            ));
        }
        let client_id = present(request.client_id)
            .ok_or_else(|| OAuthError::invalid_request("client_id is required"))?;
        let client = self.enabled_client(client_id.trim()).await?;
        if !client.allows(GRANT_CODE) {
            return Err(OAuthError::unauthorized_client(
                "this client may not use the authorization_code grant",
            ));
        }
        let redirect_uri = match present(request.redirect_uri) {
            Some(uri) if client.redirect_uris.contains(&uri) => uri,
            Some(_) => {
                return Err(OAuthError::invalid_request(
                    "redirect_uri is not registered for this client",
                ));
            }
            None => client
                .redirect_uris
                .first()
                .cloned()
                .ok_or_else(|| OAuthError::invalid_request("redirect_uri is required"))?,
        };
        let scopes = Self::check_scopes(present(request.scope).as_deref(), &client.scopes)?;
        let code_challenge = present(request.code_challenge).ok_or_else(|| {
            OAuthError::invalid_request("code_challenge is required (PKCE with S256)")
        })?;
        if present(request.code_challenge_method).as_deref() != Some("S256") {
            return Err(OAuthError::invalid_request(
                "code_challenge_method must be S256",
            ));
        }
        if !valid_pkce_text(&code_challenge) {
            return Err(OAuthError::invalid_request(
                "code_challenge must be 43 to 128 unreserved characters",
            ));
        }
        let state = present(request.state);
        if state.as_ref().is_some_and(|s| s.len() > MAX_STATE_CHARS) {
            return Err(OAuthError::invalid_request("state is too long"));
        }
        let nonce = present(request.nonce);
        if nonce.as_ref().is_some_and(|n| n.len() > MAX_NONCE_CHARS) {
            return Err(OAuthError::invalid_request("nonce is too long"));
        }
        let pending = Pending {
            client_id: client.id.clone(),
            redirect_uri,
            scope: scopes.join(" "),
            code_challenge,
            nonce,
            state,
        };
        let Some(user_id) = user_id else {
            return Ok(AuthorizeOutcome::Login);
        };
        if client.skip_consent {
            return Ok(AuthorizeOutcome::Redirect(
                self.issue_code(user_id, pending, issuer).await?,
            ));
        }
        let ticket = platform::ids::new_secret_token(24);
        let redirect_host = host_of(&pending.redirect_uri);
        let value = serde_json::to_vec(&Ticket {
            user_id: user_id.to_owned(),
            pending,
        })
        .map_err(anyhow::Error::new)?;
        self.kv
            .set(
                &ticket_key(&ticket),
                &value,
                Some(self.settings.consent_ttl),
            )
            .await?;
        Ok(AuthorizeOutcome::Consent(ConsentPrompt {
            ticket,
            client_name: client.name,
            client_description: client.description,
            scopes,
            redirect_host,
        }))
    }

    async fn consent(
        &self,
        user_id: &str,
        ticket: &str,
        approve: bool,
        issuer: &str,
    ) -> Result<String, OAuthError> {
        let gone =
            || OAuthError::invalid_request("this consent request expired or was already answered");
        if ticket.is_empty() || ticket.len() > MAX_TOKEN_CHARS {
            return Err(gone());
        }
        let stored = self.kv.take(&ticket_key(ticket)).await?.ok_or_else(gone)?;
        let ticket: Ticket = serde_json::from_slice(&stored).map_err(|_| gone())?;
        if ticket.user_id != user_id {
            return Err(gone());
        }
        if approve {
            return self.issue_code(user_id, ticket.pending, issuer).await;
        }
        Ok(with_query(
            &ticket.pending.redirect_uri,
            &[
                ("error", Some("access_denied")),
                ("error_description", Some("the user declined the request")),
                ("state", ticket.pending.state.as_deref()),
                ("iss", Some(issuer)),
            ],
        ))
    }

    async fn token(
        &self,
        client: ClientCredentials,
        request: TokenRequest,
        issuer: &str,
    ) -> Result<TokenResponse, OAuthError> {
        let client = self.authenticate_client(client).await?;
        match present(request.grant_type.clone()).as_deref() {
            None => Err(OAuthError::invalid_request("grant_type is required")),
            Some(GRANT_CODE) => self.code_grant(&client, request, issuer).await,
            Some(GRANT_REFRESH) => self.refresh_grant(&client, request, issuer).await,
            Some(_) => Err(OAuthError::unsupported_grant_type(
                "grant_type must be authorization_code or refresh_token",
            )),
        }
    }

    async fn userinfo(
        &self,
        access_token: &str,
        issuer: &str,
    ) -> Result<Map<String, Value>, OAuthError> {
        let (row, account) = self
            .live_access(access_token)
            .await?
            .ok_or_else(|| OAuthError::invalid_token("the access token is invalid or expired"))?;
        Ok(claims(&account, &words(&row.scope), issuer))
    }

    async fn revoke(&self, client: ClientCredentials, token: &str) -> Result<(), OAuthError> {
        let client = self.authenticate_client(client).await?;
        if let Some((row, _)) = self.find_any(token).await?
            && row.client_id == client.id
        {
            self.revoke_grant(&row.grant_id).await?;
        }
        Ok(())
    }

    async fn introspect(
        &self,
        client: ClientCredentials,
        token: &str,
        issuer: &str,
    ) -> Result<Map<String, Value>, OAuthError> {
        let client = self.authenticate_client(client).await?;
        let mut out = Map::new();
        let now = self.now();
        let found = self
            .find_any(token)
            .await?
            .filter(|(row, _)| row.client_id == client.id && row.revoked_at.is_none())
            .filter(|(row, is_refresh)| {
                let expires = if *is_refresh {
                    row.refresh_expires_at
                } else {
                    Some(row.access_expires_at)
                };
                expires.is_some_and(|at| at > now)
            });
        let live = match found {
            Some((row, is_refresh)) => self.live_subject(row).await?.map(|l| (l, is_refresh)),
            None => None,
        };
        let Some(((row, account), is_refresh)) = live else {
            out.insert("active".into(), json!(false));
            return Ok(out);
        };
        let exp = if is_refresh {
            row.refresh_expires_at.unwrap_or(row.access_expires_at)
        } else {
            row.access_expires_at
        };
        out.insert("active".into(), json!(true));
        out.insert("scope".into(), json!(row.scope));
        out.insert("client_id".into(), json!(row.client_id));
        out.insert("username".into(), json!(account.username));
        out.insert("sub".into(), json!(account.user_id));
        out.insert(
            "token_type".into(),
            json!(if is_refresh {
                "refresh_token"
            } else {
                "Bearer"
            }),
        );
        out.insert("exp".into(), json!(exp.timestamp()));
        out.insert("iat".into(), json!(row.created_at.timestamp()));
        out.insert("iss".into(), json!(issuer));
        Ok(out)
    }

    async fn jwks(&self) -> Result<Value, OAuthError> {
        let keys = self.keys().await?;
        Ok(json!({"keys": keys.iter().map(SigningKey::jwk).collect::<Vec<_>>()}))
    }
}

#[async_trait]
impl platform::UserCleanup for SeaOrmAuthorizationServer {
    async fn user_deleted(&self, user_id: &str) -> Result<(), platform::actor::CleanupError> {
        tokens::Entity::delete_many()
            .filter(tokens::Column::UserId.eq(user_id))
            .exec(&self.db)
            .await?;
        Ok(())
    }
}
