//! What the authorization server works with: registered clients (parsed from configuration),
//! authorization and token requests, and their outcomes.

use serde_json::Value;

/// How a client authenticates at the token, revocation and introspection endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// `client_secret_basic`: HTTP Basic with the id and secret.
    Basic,
    /// `client_secret_post`: `client_id` and `client_secret` in the form body.
    Post,
    /// `none`: a public client (PKCE is its only proof).
    None,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Basic => "client_secret_basic",
            AuthMethod::Post => "client_secret_post",
            AuthMethod::None => "none",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "client_secret_basic" => Some(AuthMethod::Basic),
            "client_secret_post" => Some(AuthMethod::Post),
            "none" => Some(AuthMethod::None),
            _ => None,
        }
    }
}

pub const GRANT_CODE: &str = "authorization_code";
pub const GRANT_REFRESH: &str = "refresh_token";
/// The scopes this server knows.
pub const SCOPES: [&str; 3] = ["openid", "profile", "email"];

/// A registered client, as configuration (`SAGE_OAUTH2_CLIENTS`) describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    pub client_id: String,
    /// Only its SHA-256 is stored.
    pub client_secret: Option<String>,
    pub name: String,
    pub description: Option<String>,
    pub enabled: bool,
    /// Whether codes are issued without asking the user first.
    pub skip_consent: bool,
    pub grant_types: Vec<String>,
    /// Exact values; the first is the default.
    pub redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    pub auth_method: AuthMethod,
}

fn is_client_id(id: &str) -> bool {
    (2..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A list given as a JSON array, a JSON array in a string, or a space/comma separated string.
fn string_list(value: &Value) -> Result<Vec<String>, String> {
    match value {
        Value::Array(items) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(|s| s.trim().to_owned())
                    .ok_or_else(|| "must hold strings".to_owned())
            })
            .filter(|r| r.as_ref().map_or(true, |s| !s.is_empty()))
            .collect(),
        Value::String(text) if text.trim_start().starts_with('[') => {
            let parsed: Value =
                serde_json::from_str(text).map_err(|e| format!("is not a JSON list: {e}"))?;
            string_list(&parsed)
        }
        Value::String(text) => Ok(text
            .split([' ', ','])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()),
        Value::Null => Ok(Vec::new()),
        _ => Err("must be a list or a string".to_owned()),
    }
}

fn valid_redirect_uri(uri: &str) -> bool {
    let lower = uri.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    matches!(rest, Some(r) if !r.is_empty() && !r.starts_with('/'))
        && !uri.contains('#')
        && !uri.chars().any(char::is_whitespace)
}

fn text_field(
    object: &serde_json::Map<String, Value>,
    names: &[&str],
) -> Result<Option<String>, String> {
    for name in names {
        match object.get(*name) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s.trim().is_empty() => {}
            Some(Value::String(s)) => return Ok(Some(s.trim().to_owned())),
            Some(_) => return Err(format!("{name} must be a string")),
        }
    }
    Ok(None)
}

fn bool_field(
    object: &serde_json::Map<String, Value>,
    name: &str,
    default: bool,
) -> Result<bool, String> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(format!("{name} must be true or false")),
    }
}

fn parse_client(value: &Value) -> Result<ClientConfig, String> {
    let object = value.as_object().ok_or("each client must be an object")?;
    let client_id = text_field(object, &["client_id", "id"])?.ok_or("client_id is required")?;
    if !is_client_id(&client_id) {
        return Err(format!(
            "client_id {client_id:?} must be 2 to 128 of A-Z a-z 0-9 . _ -"
        ));
    }
    let at = |e: String| format!("client {client_id}: {e}");
    let client_secret = text_field(object, &["client_secret"]).map_err(at)?;
    let grant_types = match object.get("grant_types") {
        None | Some(Value::Null) => vec![GRANT_CODE.to_owned(), GRANT_REFRESH.to_owned()],
        Some(v) => string_list(v).map_err(|e| at(format!("grant_types {e}")))?,
    };
    if let Some(bad) = grant_types
        .iter()
        .find(|g| !matches!(g.as_str(), GRANT_CODE | GRANT_REFRESH))
    {
        return Err(at(format!(
            "grant type {bad:?} is not supported (authorization_code, refresh_token)"
        )));
    }
    if let Some(v) = object.get("response_types").filter(|v| !v.is_null()) {
        let types = string_list(v).map_err(|e| at(format!("response_types {e}")))?;
        if types.iter().any(|t| t != "code") {
            return Err(at("only the response type \"code\" is supported".into()));
        }
    }
    let redirect_uris = match object.get("redirect_uris").filter(|v| !v.is_null()) {
        Some(v) => string_list(v),
        None => string_list(object.get("redirect_uri").unwrap_or(&Value::Null)),
    }
    .map_err(|e| at(format!("redirect_uris {e}")))?;
    if redirect_uris.is_empty() {
        return Err(at("at least one redirect URI is required".into()));
    }
    if let Some(bad) = redirect_uris.iter().find(|u| !valid_redirect_uri(u)) {
        return Err(at(format!(
            "redirect URI {bad:?} must be an absolute http(s) URL without a fragment"
        )));
    }
    let scopes = match object.get("scope").filter(|v| !v.is_null()) {
        Some(v) => string_list(v).map_err(|e| at(format!("scope {e}")))?,
        None => SCOPES.iter().map(|s| (*s).to_owned()).collect(),
    };
    if let Some(bad) = scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
        return Err(at(format!(
            "scope {bad:?} is not one of openid, profile, email"
        )));
    }
    let auth_method = match text_field(object, &["token_endpoint_auth_method"]).map_err(at)? {
        Some(m) => AuthMethod::parse(&m).ok_or_else(|| {
            at(format!(
                "token_endpoint_auth_method {m:?} must be client_secret_basic, client_secret_post or none"
            ))
        })?,
        None if client_secret.is_some() => AuthMethod::Basic,
        None => AuthMethod::None,
    };
    match (auth_method, &client_secret) {
        (AuthMethod::None, Some(_)) => {
            return Err(at(
                "a public client (none) must not have a client_secret".into()
            ));
        }
        (AuthMethod::Basic | AuthMethod::Post, None) => {
            return Err(at(format!(
                "{} needs a client_secret",
                auth_method.as_str()
            )));
        }
        _ => {}
    }
    if client_secret.as_ref().is_some_and(|s| s.len() < 16) {
        return Err(at("client_secret must be at least 16 characters".into()));
    }
    Ok(ClientConfig {
        name: text_field(object, &["name"])
            .map_err(at)?
            .unwrap_or_else(|| client_id.clone()),
        description: text_field(object, &["description"]).map_err(at)?,
        enabled: bool_field(object, "enabled", true).map_err(at)?,
        skip_consent: bool_field(object, "skip_consent", true).map_err(at)?,
        client_id,
        client_secret,
        grant_types,
        redirect_uris,
        scopes,
        auth_method,
    })
}

/// Parses `SAGE_OAUTH2_CLIENTS` (a JSON array); a bad entry or a repeated id is an error
/// naming it, so a wrong configuration stops the server at start.
pub fn parse_clients(value: &Value) -> Result<Vec<ClientConfig>, String> {
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        _ => return Err("SAGE_OAUTH2_CLIENTS must be a JSON array".into()),
    };
    let mut clients: Vec<ClientConfig> = Vec::with_capacity(items.len());
    for item in items {
        let client = parse_client(item)?;
        if clients.iter().any(|c| c.client_id == client.client_id) {
            return Err(format!("client_id {} appears twice", client.client_id));
        }
        clients.push(client);
    }
    Ok(clients)
}

/// The query of `GET /oauth2/authorize`, every field as sent (empty counts as absent).
#[derive(Debug, Clone, Default)]
pub struct AuthorizeRequest {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub nonce: Option<String>,
}

/// What to do with a valid authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeOutcome {
    /// Send the browser here (the client's redirect URI with `code` or `error`).
    Redirect(String),
    /// Nobody is logged in: send the browser to the login page, then back.
    Login,
    /// Ask the user first; the consent form posts `ticket` back.
    Consent(ConsentPrompt),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentPrompt {
    pub ticket: String,
    pub client_name: String,
    pub client_description: Option<String>,
    pub scopes: Vec<String>,
    pub redirect_host: String,
}

/// The client's credentials as presented: an `Authorization: Basic` pair (or another scheme,
/// which is refused) and the form's `client_id` / `client_secret`.
#[derive(Debug, Clone, Default)]
pub struct ClientCredentials {
    /// The raw `Authorization` header, if any.
    pub authorization: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// The form of `POST /oauth2/token`.
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenResponse {
    pub token_type: &'static str,
    pub access_token: String,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

/// The account behind a grant, as the application knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub user_id: String,
    pub username: String,
    pub role: String,
    pub nickname: Option<String>,
    pub email: Option<String>,
    pub avatar: Option<String>,
}
