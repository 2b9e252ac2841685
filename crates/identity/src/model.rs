//! Identity value types.

use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// What a user may do beyond their own resources. Only `Admin` grants anything more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Admin,
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }

    /// Parses a stored or requested role; anything but `admin`/`user` is refused.
    pub fn parse(text: &str) -> Option<Role> {
        match text.trim().to_ascii_lowercase().as_str() {
            "admin" => Some(Role::Admin),
            "user" => Some(Role::User),
            _ => None,
        }
    }
}

/// A user account as other crates and the routes see it (never the password hash).
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    pub nickname: Option<String>,
    pub phonenum: Option<String>,
    pub avatar: Option<String>,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub username: String,
    pub role: Role,
    /// The server-side session behind the credential; `None` for identities asserted by a
    /// trusted proxy header.
    pub session_id: Option<String>,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// A credential presented by a client.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    /// The `sage_session` cookie value.
    Session(&'a str),
    /// An `Authorization: Bearer` access token.
    Bearer(&'a str),
}

/// Facts about the client that throttling needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientInfo {
    /// The client's address (already resolved through trusted proxies).
    pub ip: Option<IpAddr>,
}

#[derive(Debug, Clone)]
pub struct LoginRequest {
    pub username_or_email: String,
    pub password: String,
}

/// Tokens for API clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

/// A successful login: the new session (for the cookie) and tokens (for API clients).
#[derive(Debug, Clone)]
pub struct LoginOutcome {
    pub session_id: String,
    pub tokens: TokenPair,
    pub user: User,
}

#[derive(Debug, Clone)]
pub struct RegisterRequest {
    pub username: String,
    pub password: String,
    pub email: String,
    pub phonenum: Option<String>,
    pub verification_code: String,
}

/// The caller's own changes to their profile; `None` (or an empty string) leaves a field as
/// it is.
#[derive(Debug, Clone, Default)]
pub struct ProfileUpdate {
    pub nickname: Option<String>,
    pub avatar: Option<String>,
    pub email: Option<String>,
    pub language: Option<String>,
    /// The code sent to the new address (`register/send-code`), required for an e-mail
    /// change while registration by e-mail is on.
    pub verification_code: Option<String>,
}

/// A user's profile: the account and the preferred language.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub user: User,
    pub language: Option<String>,
}

/// A user created by an admin or the CLI.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub password: String,
    pub email: Option<String>,
    pub phonenum: Option<String>,
    pub nickname: Option<String>,
    pub role: Role,
}

/// The answer to a registration-code request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeSent {
    pub expires_in: u64,
    pub retry_after: u64,
}

/// The first admin created at start, with the generated password when none was configured.
#[derive(Debug, Clone)]
pub struct BootstrapAdmin {
    pub username: String,
    pub generated_password: Option<String>,
}

/// Tunables of sessions, tokens and throttling.
#[derive(Debug, Clone)]
pub struct IdentitySettings {
    /// A session unused this long ends.
    pub session_idle: Duration,
    /// A session ends this long after login, used or not.
    pub session_absolute: Duration,
    /// Lifetime of an access token.
    pub access_token_ttl: Duration,
    /// Login attempts per client IP per minute before 429.
    pub login_attempts_per_ip_per_minute: i64,
    /// Failed logins per account and IP within `login_failure_window` before 429.
    pub login_failures_per_account: i64,
    pub login_failure_window: Duration,
    /// Registration codes: lifetime, resend interval and wrong guesses that burn a code.
    pub code_ttl: Duration,
    pub code_resend: Duration,
    pub code_max_attempts: i64,
    /// Code requests per client address per hour (mail abuse).
    pub code_requests_per_ip_per_hour: i64,
    /// Concurrent argon2 hashes (each holds 19 MiB).
    pub hash_concurrency: usize,
    /// How long an upstream login may take from start to callback.
    pub upstream_flow_ttl: Duration,
    /// Upstream login starts per client address (IPv6: per /64) per minute before 429.
    pub upstream_starts_per_ip_per_minute: i64,
    /// Sessions in the key-value store (Redis, several replicas) instead of the database.
    pub sessions_in_kv: bool,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        Self {
            session_idle: Duration::from_secs(7 * 24 * 3600),
            session_absolute: Duration::from_secs(30 * 24 * 3600),
            access_token_ttl: Duration::from_secs(3600),
            login_attempts_per_ip_per_minute: 60,
            login_failures_per_account: 5,
            login_failure_window: Duration::from_secs(15 * 60),
            code_ttl: Duration::from_secs(600),
            code_resend: Duration::from_secs(60),
            code_max_attempts: 5,
            code_requests_per_ip_per_hour: 10,
            hash_concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
            upstream_flow_ttl: Duration::from_secs(600),
            upstream_starts_per_ip_per_minute: 20,
            sessions_in_kv: false,
        }
    }
}
