//! Configuration: environment variables plus an optional TOML file named by `SAGE_CONFIG`.
//!
//! The file uses the same names in lower case without the `SAGE_` prefix (`port = 8000`,
//! `database_url = "…"`); the environment wins over the file. A malformed value of a known
//! setting stops the start with one line naming the setting. Unknown `SAGE_*` variables are
//! collected as warnings for the log, since deployments set settings ahead of the features that
//! read them.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A setting that could not be read; `Display` is one line naming it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {setting}: {message}")]
pub struct ConfigError {
    pub setting: String,
    pub message: String,
}

impl ConfigError {
    fn new(setting: &str, message: impl Into<String>) -> Self {
        Self {
            setting: setting.to_owned(),
            message: message.into(),
        }
    }
}

/// How the server decides who a caller is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    Native,
    TrustedProxy,
    OAuth,
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Native => "native",
            AuthMode::TrustedProxy => "trusted_proxy",
            AuthMode::OAuth => "oauth",
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// An address or a CIDR block (`10.0.0.0/8`, `::1/128`, `127.0.0.1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text
            .trim()
            .parse()
            .map_err(|_| format!("`{text}` is not an IP address or CIDR block"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{text}` has an invalid prefix length"))?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            _ => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The deployment default LLM provider, or the embedding endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelEndpoint {
    pub base_url: String,
    pub api_key: Option<String>,
    pub model: String,
}

/// S3-compatible object storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    pub endpoint: Option<String>,
    pub bucket: String,
    pub region: Option<String>,
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
}

/// Every setting of config.md, typed. Build it with [`Config::load`] or
/// [`Config::from_sources`]; [`Config::default`] is the embedded single-machine default.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub data_dir: PathBuf,
    /// `None` means the SQLite file under `data_dir`.
    pub database_url: Option<String>,
    pub redis_url: Option<String>,
    /// Prefix of every Redis key this deployment writes.
    pub redis_prefix: String,
    pub public_url: Option<String>,
    /// `Secure` on the session and flow cookies: `None` (the default) means "when
    /// `public_url` is https".
    pub cookie_secure: Option<bool>,
    pub secret_key: Option<String>,
    pub admin_username: String,
    pub admin_password: Option<String>,
    pub admin_email: Option<String>,
    pub auth_mode: AuthMode,
    pub allow_registration: bool,
    pub trusted_proxies: Vec<IpNet>,
    /// Whether the trusted proxy's identity header may name an admin account.
    pub trusted_proxy_admins: bool,
    pub smtp_url: Option<String>,
    pub mail_from: Option<String>,
    /// Raw JSON array of upstream OIDC providers (validated by the identity crate).
    pub auth_providers: serde_json::Value,
    /// Raw JSON array of OAuth2 clients (validated by the oauth-as crate).
    pub oauth2_clients: serde_json::Value,
    pub login_page: String,
    pub default_llm: Option<ModelEndpoint>,
    pub embedding: Option<ModelEndpoint>,
    pub outbound_allow: Vec<String>,
    pub enable_shell_tool: bool,
    /// Also accept cleartext HTTP/2 with prior knowledge (h2c) on the HTTP port, for a proxy
    /// in front that carries many requests over one connection (`SAGE_HTTP2_CLEARTEXT`).
    pub http2_cleartext: bool,
    pub worker_token: Option<String>,
    pub timezone: String,
    /// The GitHub-style "latest release" document `POST /api/system/version/import_github`
    /// reads (`SAGE_RELEASES_URL`); it passes the outbound policy like any user-chosen URL.
    pub releases_url: String,
    pub stream_log_ttl: Duration,
    /// How long a `/api/chat` or `/api/stream` run goes on after its client went, waiting to
    /// be resumed (`SAGE_STREAM_DISCONNECT_GRACE_SECS`; 0 stops it at once).
    pub stream_disconnect_grace: Duration,
    /// How long an upstream (OIDC) login may take from start to callback.
    pub upstream_flow_ttl: Duration,
    /// Upstream login starts allowed per client address per minute.
    pub upstream_starts_per_ip: i64,
    /// Login attempts allowed per client IP per minute.
    pub login_limit_per_ip: i64,
    /// A session unused this long ends.
    pub session_idle: Duration,
    /// A session ends this long after login, used or not.
    pub session_lifetime: Duration,
    /// Lifetime of access tokens (`expires_in`).
    pub access_token_ttl: Duration,
    /// How long a background job's claim lasts without renewal.
    pub job_lease: Duration,
    /// How long finished background jobs are kept.
    pub job_retention: Duration,
    /// How long one planner task's run may take before it fails.
    pub task_time_limit: Duration,
    /// Pause between the planner worker's rounds when nothing was due.
    pub task_poll: Duration,
    /// Background jobs one worker (replica) runs at once.
    pub job_concurrency: usize,
    /// Unfinished (pending or running) background jobs one user may have.
    pub max_pending_jobs_per_user: u32,
    /// Largest text, in characters, a request may send to a model.
    pub max_prompt_chars: usize,
    /// Model calls per user per minute (token bucket refill); 0 turns the limit off.
    pub model_calls_per_minute: u32,
    /// Model calls a user may make at once before the per-minute rate applies.
    pub model_calls_burst: u32,
    /// Agents one user may own.
    pub max_agents_per_user: u64,
    /// Knowledge bases one user may own.
    pub max_knowledge_bases_per_user: u64,
    /// Documents one user's knowledge bases may hold together.
    pub max_knowledge_docs_per_user: u64,
    /// Skills one user may keep (and one agent workspace may hold).
    pub max_skills_per_user: u64,
    /// Unfinished one-time plus recurring planner tasks one user may have.
    pub max_tasks_per_user: u64,
    /// How long opening one database connection may take.
    pub db_connect_timeout: Duration,
    /// How long a request waits for a pooled database connection before answering 503.
    pub db_acquire_timeout: Duration,
    /// Earlier secret keys, still accepted for opening sealed values (rotation).
    pub secret_key_previous: Vec<String>,
    pub s3: Option<S3Config>,
    pub otlp_endpoint: Option<String>,
    pub jaeger_public_url: Option<String>,
    pub log_format: LogFormat,
    pub log_filter: String,
    /// Origins allowed by CORS; empty = no CORS headers; `*` = any origin without credentials.
    pub cors_origins: Vec<String>,
    /// Largest accepted JSON body.
    pub max_json_bytes: usize,
    /// Largest accepted upload (multipart) body.
    pub max_upload_bytes: usize,
    /// How long a link to an uploaded file (`/api/oss/upload`) works.
    pub upload_link_ttl: Duration,
    /// Longest wait for a whole JSON body, and between two pieces of an upload; a client
    /// slower than this gets 400 `request.body_timeout`.
    pub body_read_timeout: Duration,
    /// How long in-flight requests may take to finish after SIGINT/SIGTERM.
    pub shutdown_timeout: Duration,
    /// HTTP worker threads; 0 = one per core.
    pub workers: usize,
    /// Run migrations when the server starts.
    pub migrate_on_start: bool,
    /// Unknown `SAGE_*` names seen, to be logged once telemetry is up.
    pub warnings: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8000,
            data_dir: PathBuf::from("./data"),
            database_url: None,
            redis_url: None,
            redis_prefix: "sage:".into(),
            public_url: None,
            cookie_secure: None,
            secret_key: None,
            admin_username: "admin".into(),
            admin_password: None,
            admin_email: None,
            auth_mode: AuthMode::Native,
            allow_registration: false,
            trusted_proxies: Vec::new(),
            trusted_proxy_admins: false,
            smtp_url: None,
            mail_from: None,
            auth_providers: serde_json::Value::Array(Vec::new()),
            oauth2_clients: serde_json::Value::Array(Vec::new()),
            login_page: "/sage/login".into(),
            default_llm: None,
            embedding: None,
            outbound_allow: Vec::new(),
            enable_shell_tool: false,
            http2_cleartext: false,
            worker_token: None,
            timezone: "UTC".into(),
            releases_url: "https://api.github.com/repos/ZHangZHengEric/Sage/releases/latest".into(),
            stream_log_ttl: Duration::from_secs(3600),
            stream_disconnect_grace: Duration::from_secs(10),
            upstream_flow_ttl: Duration::from_secs(600),
            upstream_starts_per_ip: 20,
            login_limit_per_ip: 60,
            session_idle: Duration::from_secs(7 * 24 * 3600),
            session_lifetime: Duration::from_secs(30 * 24 * 3600),
            access_token_ttl: Duration::from_secs(3600),
            job_lease: Duration::from_secs(60),
            job_retention: Duration::from_secs(1800),
            task_time_limit: Duration::from_secs(1800),
            task_poll: Duration::from_secs(5),
            job_concurrency: 4,
            max_pending_jobs_per_user: 20,
            max_prompt_chars: 64_000,
            model_calls_per_minute: 30,
            model_calls_burst: 30,
            max_agents_per_user: 200,
            max_knowledge_bases_per_user: 100,
            max_knowledge_docs_per_user: 10_000,
            max_skills_per_user: 200,
            max_tasks_per_user: 200,
            db_connect_timeout: Duration::from_millis(1000),
            db_acquire_timeout: Duration::from_millis(1500),
            secret_key_previous: Vec::new(),
            s3: None,
            otlp_endpoint: None,
            jaeger_public_url: None,
            log_format: LogFormat::Pretty,
            log_filter: "info".into(),
            cors_origins: Vec::new(),
            max_json_bytes: 2 * 1024 * 1024,
            max_upload_bytes: 100 * 1024 * 1024,
            upload_link_ttl: Duration::from_secs(7 * 24 * 3600),
            body_read_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(30),
            workers: 0,
            migrate_on_start: true,
            warnings: Vec::new(),
        }
    }
}

/// Every setting name this version reads, in environment form.
pub const KNOWN_SETTINGS: &[&str] = &[
    "SAGE_CONFIG",
    "SAGE_HOST",
    "SAGE_PORT",
    "SAGE_DATA_DIR",
    "DATABASE_URL",
    "REDIS_URL",
    "SAGE_REDIS_PREFIX",
    "SAGE_PUBLIC_URL",
    "SAGE_COOKIE_SECURE",
    "SAGE_SECRET_KEY",
    "SAGE_ADMIN_USERNAME",
    "SAGE_ADMIN_PASSWORD",
    "SAGE_ADMIN_EMAIL",
    "SAGE_AUTH_MODE",
    "SAGE_ALLOW_REGISTRATION",
    "SAGE_TRUSTED_PROXIES",
    "SAGE_TRUSTED_PROXY_ADMINS",
    "SAGE_SMTP_URL",
    "SAGE_MAIL_FROM",
    "SAGE_AUTH_PROVIDERS",
    "SAGE_OAUTH2_CLIENTS",
    "SAGE_LOGIN_PAGE",
    "SAGE_DEFAULT_LLM_BASE_URL",
    "SAGE_DEFAULT_LLM_API_KEY",
    "SAGE_DEFAULT_LLM_MODEL",
    "SAGE_EMBEDDING_BASE_URL",
    "SAGE_EMBEDDING_API_KEY",
    "SAGE_EMBEDDING_MODEL",
    "SAGE_OUTBOUND_ALLOW",
    "SAGE_ENABLE_SHELL_TOOL",
    "SAGE_HTTP2_CLEARTEXT",
    "SAGE_WORKER_TOKEN",
    "SAGE_TIMEZONE",
    "SAGE_RELEASES_URL",
    "SAGE_STREAM_LOG_TTL_SECS",
    "SAGE_STREAM_DISCONNECT_GRACE_SECS",
    "SAGE_UPSTREAM_FLOW_TTL_SECS",
    "SAGE_UPSTREAM_STARTS_PER_IP",
    "SAGE_LOGIN_LIMIT_PER_IP",
    "SAGE_SESSION_IDLE_SECS",
    "SAGE_SESSION_LIFETIME_SECS",
    "SAGE_ACCESS_TOKEN_TTL_SECS",
    "SAGE_JOB_LEASE_SECS",
    "SAGE_JOB_RETENTION_SECS",
    "SAGE_TASK_TIME_LIMIT_SECS",
    "SAGE_TASK_POLL_SECS",
    "SAGE_JOB_CONCURRENCY",
    "SAGE_MAX_PENDING_JOBS_PER_USER",
    "SAGE_MAX_PROMPT_CHARS",
    "SAGE_MODEL_CALLS_PER_MINUTE",
    "SAGE_MODEL_CALLS_BURST",
    "SAGE_MAX_AGENTS_PER_USER",
    "SAGE_MAX_KNOWLEDGE_BASES_PER_USER",
    "SAGE_MAX_KNOWLEDGE_DOCS_PER_USER",
    "SAGE_MAX_SKILLS_PER_USER",
    "SAGE_MAX_TASKS_PER_USER",
    "SAGE_DB_CONNECT_TIMEOUT_MS",
    "SAGE_DB_ACQUIRE_TIMEOUT_MS",
    "SAGE_SECRET_KEY_PREVIOUS",
    "SAGE_S3_ENDPOINT",
    "SAGE_S3_BUCKET",
    "SAGE_S3_REGION",
    "SAGE_S3_ACCESS_KEY",
    "SAGE_S3_SECRET_KEY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "SAGE_JAEGER_PUBLIC_URL",
    "SAGE_LOG_FORMAT",
    "RUST_LOG",
    "SAGE_CORS_ORIGINS",
    "SAGE_MAX_JSON_BYTES",
    "SAGE_MAX_UPLOAD_BYTES",
    "SAGE_UPLOAD_LINK_TTL_SECS",
    "SAGE_BODY_READ_TIMEOUT_SECS",
    "SAGE_SHUTDOWN_TIMEOUT_SECS",
    "SAGE_WORKERS",
    "SAGE_MIGRATE_ON_START",
];

/// The TOML-file key of an environment name: lower case, without `SAGE_`.
fn file_key(env_name: &str) -> String {
    env_name
        .strip_prefix("SAGE_")
        .unwrap_or(env_name)
        .to_ascii_lowercase()
}

struct Source {
    values: HashMap<String, String>,
}

impl Source {
    /// The value of a setting, with empty strings treated as unset.
    fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    fn string(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_owned)
    }

    fn parse<T: std::str::FromStr>(
        &self,
        name: &str,
        what: &str,
    ) -> Result<Option<T>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .parse::<T>()
                .map(Some)
                .map_err(|_| ConfigError::new(name, format!("`{v}` is not {what}"))),
        }
    }

    fn bool(&self, name: &str) -> Result<Option<bool>, ConfigError> {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(None),
            Some("true" | "1" | "yes" | "on") => Ok(Some(true)),
            Some("false" | "0" | "no" | "off") => Ok(Some(false)),
            Some(other) => Err(ConfigError::new(
                name,
                format!("`{other}` is not a boolean (true or false)"),
            )),
        }
    }

    fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn json_array(&self, name: &str) -> Result<serde_json::Value, ConfigError> {
        match self.get(name) {
            None => Ok(serde_json::Value::Array(Vec::new())),
            Some(v) => match serde_json::from_str::<serde_json::Value>(v) {
                Ok(value @ serde_json::Value::Array(_)) => Ok(value),
                Ok(_) => Err(ConfigError::new(name, "must be a JSON array")),
                Err(e) => Err(ConfigError::new(name, format!("is not valid JSON: {e}"))),
            },
        }
    }

    fn url(&self, name: &str, schemes: &[&str]) -> Result<Option<String>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => {
                let scheme = v.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
                match scheme {
                    Some(s) if schemes.contains(&s.as_str()) => {
                        Ok(Some(v.trim_end_matches('/').to_owned()))
                    }
                    _ => Err(ConfigError::new(
                        name,
                        format!("`{v}` is not a URL with scheme {}", schemes.join(" or ")),
                    )),
                }
            }
        }
    }

    fn endpoint(&self, prefix: &str) -> Result<Option<ModelEndpoint>, ConfigError> {
        let base = self.url(&format!("{prefix}_BASE_URL"), &["http", "https"])?;
        let model = self.string(&format!("{prefix}_MODEL"));
        let api_key = self.string(&format!("{prefix}_API_KEY"));
        match (base, model) {
            (Some(base_url), Some(model)) => Ok(Some(ModelEndpoint {
                base_url,
                api_key,
                model,
            })),
            (None, None) if api_key.is_none() => Ok(None),
            (None, _) => Err(ConfigError::new(
                &format!("{prefix}_BASE_URL"),
                "is required when the other settings of this endpoint are given",
            )),
            (Some(_), None) => Err(ConfigError::new(
                &format!("{prefix}_MODEL"),
                "is required when the base URL is given",
            )),
        }
    }
}

/// Flattens a TOML value into the string form the environment would carry.
fn toml_to_string(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

impl Config {
    /// Reads the process environment and, when `SAGE_CONFIG` names one, the TOML file.
    pub fn load() -> Result<Self, ConfigError> {
        Self::from_sources(std::env::vars())
    }

    /// Builds the configuration from the given environment pairs (and the file they name).
    pub fn from_sources<I>(env: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let env: BTreeMap<String, String> = env.into_iter().collect();
        let mut values: HashMap<String, String> = HashMap::new();
        let mut warnings = Vec::new();

        if let Some(path) = env.get("SAGE_CONFIG").filter(|p| !p.trim().is_empty()) {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::new("SAGE_CONFIG", format!("cannot read `{path}`: {e}"))
            })?;
            let table: toml::Table = toml::from_str(&text).map_err(|e| {
                let line = e.to_string().lines().next().unwrap_or_default().to_owned();
                ConfigError::new("SAGE_CONFIG", format!("`{path}` is not valid TOML: {line}"))
            })?;
            let by_file_key: HashMap<String, &str> =
                KNOWN_SETTINGS.iter().map(|n| (file_key(n), *n)).collect();
            for (key, value) in &table {
                match by_file_key.get(key.as_str()) {
                    Some(name) => {
                        let text = match (
                            name.ends_with("_PROVIDERS") || name.ends_with("_CLIENTS"),
                            value,
                        ) {
                            (false, toml::Value::Array(items)) => items
                                .iter()
                                .map(toml_to_string)
                                .collect::<Vec<_>>()
                                .join(","),
                            _ => toml_to_string(value),
                        };
                        values.insert((*name).to_owned(), text);
                    }
                    None => warnings.push(format!("unknown setting `{key}` in {path}")),
                }
            }
        }
        for (name, value) in &env {
            if KNOWN_SETTINGS.contains(&name.as_str()) {
                values.insert(name.clone(), value.clone());
            } else if name.starts_with("SAGE_") {
                warnings.push(format!("unknown environment variable {name}"));
            }
        }
        let src = Source { values };
        let defaults = Config::default();

        let auth_mode = match src
            .get("SAGE_AUTH_MODE")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("native") => AuthMode::Native,
            Some("trusted_proxy") => AuthMode::TrustedProxy,
            Some("oauth") => AuthMode::OAuth,
            Some(other) => {
                return Err(ConfigError::new(
                    "SAGE_AUTH_MODE",
                    format!("`{other}` is not one of native, trusted_proxy, oauth"),
                ));
            }
        };
        let log_format = match src
            .get("SAGE_LOG_FORMAT")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::new(
                    "SAGE_LOG_FORMAT",
                    format!("`{other}` is not one of pretty, json"),
                ));
            }
        };
        let trusted_proxies = src
            .list("SAGE_TRUSTED_PROXIES")
            .iter()
            .map(|p| IpNet::parse(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| ConfigError::new("SAGE_TRUSTED_PROXIES", m))?;
        let host = src.string("SAGE_HOST").unwrap_or(defaults.host);
        if host.parse::<IpAddr>().is_err() && host != "localhost" {
            return Err(ConfigError::new(
                "SAGE_HOST",
                format!("`{host}` is not an IP address"),
            ));
        }
        let database_url = src.url("DATABASE_URL", &["sqlite", "postgres", "postgresql"])?;
        let redis_url = src.url("REDIS_URL", &["redis", "rediss"])?;
        let stream_log_ttl = src
            .parse::<u64>("SAGE_STREAM_LOG_TTL_SECS", "a whole number of seconds")?
            .map(Duration::from_secs)
            .unwrap_or(defaults.stream_log_ttl);
        let stream_disconnect_grace = src
            .parse::<u64>(
                "SAGE_STREAM_DISCONNECT_GRACE_SECS",
                "a whole number of seconds",
            )?
            .map(Duration::from_secs)
            .unwrap_or(defaults.stream_disconnect_grace);
        let s3 = match src.string("SAGE_S3_BUCKET") {
            Some(bucket) => Some(S3Config {
                endpoint: src.url("SAGE_S3_ENDPOINT", &["http", "https"])?,
                bucket,
                region: src.string("SAGE_S3_REGION"),
                access_key: src.string("SAGE_S3_ACCESS_KEY"),
                secret_key: src.string("SAGE_S3_SECRET_KEY"),
            }),
            None if src.get("SAGE_S3_ENDPOINT").is_some() => {
                return Err(ConfigError::new(
                    "SAGE_S3_BUCKET",
                    "is required when SAGE_S3_ENDPOINT is set",
                ));
            }
            None => None,
        };
        let secret_key = src.string("SAGE_SECRET_KEY");
        if let Some(key) = &secret_key
            && key.len() < 32
        {
            return Err(ConfigError::new(
                "SAGE_SECRET_KEY",
                "must be at least 32 characters",
            ));
        }
        let secret_key_previous = src.list("SAGE_SECRET_KEY_PREVIOUS");
        if secret_key_previous.iter().any(|k| k.len() < 32) {
            return Err(ConfigError::new(
                "SAGE_SECRET_KEY_PREVIOUS",
                "every key must be at least 32 characters",
            ));
        }
        let millis = |name: &str, default: Duration| -> Result<Duration, ConfigError> {
            Ok(src
                .parse::<u64>(name, "a whole number of milliseconds")?
                .filter(|ms| *ms >= 1)
                .map(Duration::from_millis)
                .unwrap_or(default))
        };
        let db_connect_timeout = millis("SAGE_DB_CONNECT_TIMEOUT_MS", defaults.db_connect_timeout)?;
        let db_acquire_timeout = millis("SAGE_DB_ACQUIRE_TIMEOUT_MS", defaults.db_acquire_timeout)?;
        let timezone = src.string("SAGE_TIMEZONE").unwrap_or(defaults.timezone);
        let login_page = src.string("SAGE_LOGIN_PAGE").unwrap_or(defaults.login_page);
        if !login_page.starts_with('/') || login_page.starts_with("//") {
            return Err(ConfigError::new(
                "SAGE_LOGIN_PAGE",
                "must be a local path starting with a single /",
            ));
        }
        let max_json_bytes = src
            .parse::<usize>("SAGE_MAX_JSON_BYTES", "a number of bytes")?
            .unwrap_or(defaults.max_json_bytes);
        let max_upload_bytes = src
            .parse::<usize>("SAGE_MAX_UPLOAD_BYTES", "a number of bytes")?
            .unwrap_or(defaults.max_upload_bytes);

        let config = Config {
            port: src
                .parse::<u16>("SAGE_PORT", "a port number (0-65535)")?
                .unwrap_or(defaults.port),
            host,
            data_dir: src
                .string("SAGE_DATA_DIR")
                .map(PathBuf::from)
                .unwrap_or(defaults.data_dir),
            database_url,
            redis_url,
            redis_prefix: src
                .string("SAGE_REDIS_PREFIX")
                .unwrap_or(defaults.redis_prefix),
            public_url: src.url("SAGE_PUBLIC_URL", &["http", "https"])?,
            cookie_secure: src.bool("SAGE_COOKIE_SECURE")?,
            secret_key,
            admin_username: src
                .string("SAGE_ADMIN_USERNAME")
                .unwrap_or(defaults.admin_username),
            admin_password: src.string("SAGE_ADMIN_PASSWORD"),
            admin_email: src.string("SAGE_ADMIN_EMAIL"),
            auth_mode,
            allow_registration: src
                .bool("SAGE_ALLOW_REGISTRATION")?
                .unwrap_or(defaults.allow_registration),
            trusted_proxies,
            trusted_proxy_admins: src
                .bool("SAGE_TRUSTED_PROXY_ADMINS")?
                .unwrap_or(defaults.trusted_proxy_admins),
            smtp_url: src.url("SAGE_SMTP_URL", &["smtp", "smtps"])?,
            mail_from: src.string("SAGE_MAIL_FROM"),
            auth_providers: src.json_array("SAGE_AUTH_PROVIDERS")?,
            oauth2_clients: src.json_array("SAGE_OAUTH2_CLIENTS")?,
            login_page,
            default_llm: src.endpoint("SAGE_DEFAULT_LLM")?,
            embedding: src.endpoint("SAGE_EMBEDDING")?,
            outbound_allow: src.list("SAGE_OUTBOUND_ALLOW"),
            enable_shell_tool: src
                .bool("SAGE_ENABLE_SHELL_TOOL")?
                .unwrap_or(defaults.enable_shell_tool),
            http2_cleartext: src
                .bool("SAGE_HTTP2_CLEARTEXT")?
                .unwrap_or(defaults.http2_cleartext),
            worker_token: src.string("SAGE_WORKER_TOKEN"),
            timezone,
            releases_url: src
                .url("SAGE_RELEASES_URL", &["http", "https"])?
                .unwrap_or(defaults.releases_url),
            stream_log_ttl,
            stream_disconnect_grace,
            upstream_flow_ttl: src
                .parse::<u64>("SAGE_UPSTREAM_FLOW_TTL_SECS", "a whole number of seconds")?
                .filter(|s| *s > 0)
                .map(Duration::from_secs)
                .unwrap_or(defaults.upstream_flow_ttl),
            upstream_starts_per_ip: src
                .parse::<i64>(
                    "SAGE_UPSTREAM_STARTS_PER_IP",
                    "a whole number of starts per minute",
                )?
                .filter(|n| *n > 0)
                .unwrap_or(defaults.upstream_starts_per_ip),
            login_limit_per_ip: src
                .parse::<i64>(
                    "SAGE_LOGIN_LIMIT_PER_IP",
                    "a whole number of attempts per minute",
                )?
                .filter(|n| *n > 0)
                .unwrap_or(defaults.login_limit_per_ip),
            session_idle: src
                .parse::<u64>("SAGE_SESSION_IDLE_SECS", "a whole number of seconds")?
                .filter(|s| *s >= 1)
                .map(Duration::from_secs)
                .unwrap_or(defaults.session_idle),
            session_lifetime: src
                .parse::<u64>("SAGE_SESSION_LIFETIME_SECS", "a whole number of seconds")?
                .filter(|s| *s >= 1)
                .map(Duration::from_secs)
                .unwrap_or(defaults.session_lifetime),
            access_token_ttl: src
                .parse::<u64>("SAGE_ACCESS_TOKEN_TTL_SECS", "a whole number of seconds")?
                .filter(|s| *s >= 1)
                .map(Duration::from_secs)
                .unwrap_or(defaults.access_token_ttl),
            job_lease: src
                .parse::<u64>("SAGE_JOB_LEASE_SECS", "a whole number of seconds")?
                .filter(|s| *s >= 1)
                .map(Duration::from_secs)
                .unwrap_or(defaults.job_lease),
            task_time_limit: src
                .parse::<u64>("SAGE_TASK_TIME_LIMIT_SECS", "a whole number of seconds")?
                .filter(|s| *s >= 1)
                .map(Duration::from_secs)
                .unwrap_or(defaults.task_time_limit),
            task_poll: src
                .parse::<u64>("SAGE_TASK_POLL_SECS", "a whole number of seconds")?
                .filter(|s| *s >= 1)
                .map(Duration::from_secs)
                .unwrap_or(defaults.task_poll),
            job_retention: src
                .parse::<u64>("SAGE_JOB_RETENTION_SECS", "a whole number of seconds")?
                .map(Duration::from_secs)
                .unwrap_or(defaults.job_retention),
            job_concurrency: src
                .parse::<usize>("SAGE_JOB_CONCURRENCY", "a number of jobs")?
                .filter(|n| *n > 0)
                .unwrap_or(defaults.job_concurrency),
            max_pending_jobs_per_user: src
                .parse::<u32>("SAGE_MAX_PENDING_JOBS_PER_USER", "a number of jobs")?
                .filter(|n| *n > 0)
                .unwrap_or(defaults.max_pending_jobs_per_user),
            max_prompt_chars: src
                .parse::<usize>("SAGE_MAX_PROMPT_CHARS", "a number of characters")?
                .filter(|n| *n > 0)
                .unwrap_or(defaults.max_prompt_chars),
            model_calls_per_minute: src
                .parse::<u32>(
                    "SAGE_MODEL_CALLS_PER_MINUTE",
                    "a whole number of calls per minute",
                )?
                .unwrap_or(defaults.model_calls_per_minute),
            model_calls_burst: src
                .parse::<u32>("SAGE_MODEL_CALLS_BURST", "a whole number of calls")?
                .filter(|n| *n > 0)
                .unwrap_or(defaults.model_calls_burst),
            max_agents_per_user: src
                .parse::<u64>("SAGE_MAX_AGENTS_PER_USER", "a whole number of agents")?
                .filter(|n| *n >= 1)
                .unwrap_or(defaults.max_agents_per_user),
            max_knowledge_bases_per_user: src
                .parse::<u64>(
                    "SAGE_MAX_KNOWLEDGE_BASES_PER_USER",
                    "a whole number of knowledge bases",
                )?
                .filter(|n| *n >= 1)
                .unwrap_or(defaults.max_knowledge_bases_per_user),
            max_knowledge_docs_per_user: src
                .parse::<u64>(
                    "SAGE_MAX_KNOWLEDGE_DOCS_PER_USER",
                    "a whole number of documents",
                )?
                .filter(|n| *n >= 1)
                .unwrap_or(defaults.max_knowledge_docs_per_user),
            max_skills_per_user: src
                .parse::<u64>("SAGE_MAX_SKILLS_PER_USER", "a whole number of skills")?
                .filter(|n| *n >= 1)
                .unwrap_or(defaults.max_skills_per_user),
            max_tasks_per_user: src
                .parse::<u64>("SAGE_MAX_TASKS_PER_USER", "a whole number of tasks")?
                .filter(|n| *n >= 1)
                .unwrap_or(defaults.max_tasks_per_user),
            db_connect_timeout,
            db_acquire_timeout,
            secret_key_previous,
            s3,
            otlp_endpoint: src.url("OTEL_EXPORTER_OTLP_ENDPOINT", &["http", "https"])?,
            jaeger_public_url: src.url("SAGE_JAEGER_PUBLIC_URL", &["http", "https"])?,
            log_format,
            log_filter: src.string("RUST_LOG").unwrap_or(defaults.log_filter),
            cors_origins: src.list("SAGE_CORS_ORIGINS"),
            max_json_bytes,
            max_upload_bytes,
            upload_link_ttl: src
                .parse::<u64>("SAGE_UPLOAD_LINK_TTL_SECS", "a whole number of seconds")?
                .filter(|s| *s > 0)
                .map(Duration::from_secs)
                .unwrap_or(defaults.upload_link_ttl),
            body_read_timeout: src
                .parse::<u64>("SAGE_BODY_READ_TIMEOUT_SECS", "a whole number of seconds")?
                .filter(|s| *s > 0)
                .map(Duration::from_secs)
                .unwrap_or(defaults.body_read_timeout),
            shutdown_timeout: src
                .parse::<u64>("SAGE_SHUTDOWN_TIMEOUT_SECS", "a whole number of seconds")?
                .map(Duration::from_secs)
                .unwrap_or(defaults.shutdown_timeout),
            workers: src
                .parse::<usize>("SAGE_WORKERS", "a number of worker threads")?
                .unwrap_or(defaults.workers),
            migrate_on_start: src
                .bool("SAGE_MIGRATE_ON_START")?
                .unwrap_or(defaults.migrate_on_start),
            warnings,
        };
        config.validate()?;
        Ok(config)
    }

    /// Rules that span settings; [`Config::from_sources`] applies them, and the server
    /// applies them again to a configuration built in code.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.auth_mode == AuthMode::OAuth && self.public_url.is_none() {
            return Err(ConfigError::new(
                "SAGE_PUBLIC_URL",
                "is required when SAGE_AUTH_MODE is oauth (upstream callbacks are registered on it)",
            ));
        }
        Ok(())
    }

    /// The database URL in force: the configured one, or the SQLite file under the data dir.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("sage.db").display()
            ),
        }
    }

    /// Whether cookies carry `Secure`: the explicit setting, else "the public URL is https".
    pub fn secure_cookies(&self) -> bool {
        self.cookie_secure.unwrap_or_else(|| {
            self.public_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://"))
        })
    }

    /// A listener that browsers may reach from other machines while session cookies lack
    /// `Secure`: they would travel in clear text over plain http. The server warns at start.
    pub fn plain_http_cookies_off_loopback(&self) -> bool {
        let loopback = match self.host.parse::<std::net::IpAddr>() {
            Ok(ip) => ip.is_loopback(),
            Err(_) => self.host.eq_ignore_ascii_case("localhost"),
        };
        !loopback && !self.secure_cookies()
    }

    /// The external base URL: configured, or derived from the listen address.
    pub fn effective_public_url(&self, bound_port: u16) -> String {
        match &self.public_url {
            Some(url) => url.clone(),
            None => format!("http://{}:{}", self.host, bound_port),
        }
    }
}

#[cfg(test)]
mod tests;
