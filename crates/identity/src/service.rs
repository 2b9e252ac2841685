//! The identity service: what the routes (and the CLI) may ask of identity.

use async_trait::async_trait;
use platform::{Page, PageRequest};
use serde_json::{Map, Value};

use crate::IdentityError;
use crate::upstream::{UpstreamCallback, UpstreamStart};

/// A completed upstream login.
#[derive(Debug, Clone)]
pub struct UpstreamLogin {
    /// The new session; `None` after a link flow (the caller's session goes on).
    pub session_id: Option<String>,
    /// The local path to send the browser to.
    pub next: String,
    pub user: User,
}
use crate::model::{
    BootstrapAdmin, ClientInfo, CodeSent, Credential, LoginOutcome, LoginRequest, NewUser,
    Principal, Profile, ProfileUpdate, RegisterRequest, TokenPair, User,
};

/// Accounts, sessions, tokens and settings. Methods that act for someone take the acting
/// [`Principal`] first and decide authorisation themselves.
#[async_trait]
pub trait Identity: Send + Sync {
    /// Password login. `replace_session` (the caller's current cookie session) is ended, so
    /// the session id is renewed at every login.
    async fn login(
        &self,
        request: LoginRequest,
        client: ClientInfo,
        replace_session: Option<&str>,
    ) -> Result<LoginOutcome, IdentityError>;

    /// The principal behind a credential; `None` when it is unknown, expired or revoked.
    async fn authenticate(
        &self,
        credential: Credential<'_>,
    ) -> Result<Option<Principal>, IdentityError>;

    /// The principal for a username asserted by a trusted proxy (only in `trusted_proxy`
    /// mode); the account is created on first sight. `None` when the header is not honoured
    /// (another mode, or an admin account without `SAGE_TRUSTED_PROXY_ADMINS`).
    async fn authenticate_proxy_user(
        &self,
        username: &str,
    ) -> Result<Option<Principal>, IdentityError>;

    /// Starts an upstream (OIDC) login with the given provider, or the first one. The
    /// callback is always `SAGE_PUBLIC_URL` + `/api/auth/upstream/callback/<id>`; a
    /// `redirect_uri` other than that (or its `/api/user/oauth/callback/<id>` alias) is
    /// refused. Starts are limited per client address.
    async fn upstream_start(
        &self,
        provider_id: Option<&str>,
        redirect_uri: Option<&str>,
        next: Option<&str>,
        client: ClientInfo,
    ) -> Result<UpstreamStart, IdentityError>;

    /// Starts linking an upstream identity to the caller's account (they are logged in).
    async fn upstream_link_start(
        &self,
        actor: &Principal,
        provider_id: &str,
        next: Option<&str>,
        client: ClientInfo,
    ) -> Result<UpstreamStart, IdentityError>;

    /// Completes an upstream login: the user is found by their provider identity, linked by a
    /// verified e-mail the provider vouches for (never to an account with a password, an
    /// admin, or one linked elsewhere), or created; a new session is opened. A link flow
    /// instead links the identity to `caller`, who must be the user who started it.
    async fn upstream_finish(
        &self,
        provider_id: &str,
        callback: UpstreamCallback,
        browser_secret: Option<&str>,
        caller: Option<&Principal>,
    ) -> Result<UpstreamLogin, IdentityError>;

    /// Ends the caller's session (and so its tokens).
    async fn logout(&self, principal: &Principal) -> Result<(), IdentityError>;

    /// Rotates a refresh token into a new pair (the previous pair stops working); without
    /// one, issues a pair for the session named by the `cookie_session` id (how the web UI
    /// refreshes). A Bearer access token alone never mints a refresh token.
    async fn refresh(
        &self,
        refresh_token: Option<&str>,
        cookie_session: Option<&str>,
    ) -> Result<TokenPair, IdentityError>;

    /// Sends a registration code; at most `code_requests_per_ip_per_hour` per client address.
    async fn send_registration_code(
        &self,
        email: &str,
        client: ClientInfo,
    ) -> Result<CodeSent, IdentityError>;

    /// Creates an account from a registration; returns its id.
    async fn register(&self, request: RegisterRequest) -> Result<String, IdentityError>;

    /// The caller's account.
    async fn current_user(&self, principal: &Principal) -> Result<User, IdentityError>;

    /// Changes the caller's nickname, avatar, e-mail (with the code sent to the new address
    /// while registration by e-mail is on) and language; returns the profile.
    async fn update_profile(
        &self,
        principal: &Principal,
        update: ProfileUpdate,
    ) -> Result<Profile, IdentityError>;

    /// Changes the caller's password and ends all of their sessions.
    async fn change_password(
        &self,
        principal: &Principal,
        old_password: &str,
        new_password: &str,
    ) -> Result<(), IdentityError>;

    /// Admin: users, newest first.
    async fn list_users(
        &self,
        actor: &Principal,
        page: PageRequest,
    ) -> Result<Page<User>, IdentityError>;

    /// Admin: creates a user; returns its id.
    async fn add_user(&self, actor: &Principal, user: NewUser) -> Result<String, IdentityError>;

    /// Admin: deletes a user (never the last admin) and ends their sessions. The user is
    /// recorded as pending clean-up in the same transaction (see [`Identity::pending_cleanups`]).
    async fn delete_user(&self, actor: &Principal, user_id: &str) -> Result<(), IdentityError>;

    /// System: deleted users whose data some service may still hold, oldest first, at most
    /// `limit`.
    async fn pending_cleanups(&self, limit: u64) -> Result<Vec<String>, IdentityError>;

    /// System: every service dropped `user_id`'s data.
    async fn cleanup_finished(&self, user_id: &str) -> Result<(), IdentityError>;

    /// `(user id, username)` pairs for pickers: every user (at most 1000) for admins, only
    /// themselves for anyone else.
    async fn user_options(&self, actor: &Principal)
    -> Result<Vec<(String, String)>, IdentityError>;

    async fn user_config(&self, actor: &Principal) -> Result<Value, IdentityError>;

    /// Shallow-merges `patch` into the caller's configuration; returns the result.
    async fn update_user_config(
        &self,
        actor: &Principal,
        patch: Map<String, Value>,
    ) -> Result<Value, IdentityError>;

    /// The current `allow_registration` system setting.
    async fn allow_registration(&self) -> Result<bool, IdentityError>;

    /// Admin: changes system settings.
    async fn update_settings(
        &self,
        actor: &Principal,
        allow_registration: bool,
    ) -> Result<(), IdentityError>;

    /// Creates the first admin when no user exists.
    async fn ensure_first_admin(&self) -> Result<Option<BootstrapAdmin>, IdentityError>;

    /// Operator (CLI): creates a user without an acting principal.
    async fn create_user_unchecked(&self, user: NewUser) -> Result<String, IdentityError>;

    /// Operator (CLI): sets a password and ends the user's sessions.
    async fn reset_password_unchecked(
        &self,
        username: &str,
        password: &str,
    ) -> Result<(), IdentityError>;
}
