//! `SeaOrmIdentity`: users in the database; sessions, tokens, codes and throttles in the
//! platform key-value store.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use platform::db::{Budget, StampedCache, Topic};
use platform::store::KvStore;
use platform::{AuthMode, Config, Page, PageRequest};
use rand::Rng;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, DbBackend,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, SqlErr,
    TransactionTrait,
};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use super::entities::{system_settings, user_cleanups, users};
use super::session_store::DbSessionStore;
use crate::mail::Mailer;
use crate::model::{
    BootstrapAdmin, ClientInfo, CodeSent, Credential, IdentitySettings, LoginOutcome, LoginRequest,
    NewUser, Principal, Profile, ProfileUpdate, RegisterRequest, Role, TokenPair, User,
};
use crate::password::Passwords;
use crate::service::{Identity, UpstreamLogin};
use crate::sessions::{KvSessionStore, Rotation, SessionStore, Sessions};
use crate::throttle::{LOGIN_SCOPE, Throttle};
use crate::upstream::{Upstream, UpstreamCallback, UpstreamStart};
use crate::{IdentityError, validate};

mod upstream_link;

const ALLOW_REGISTRATION: &str = "allow_registration";
/// The throttle scope of password changes (wrong current passwords count like failed logins).
const PASSWORD_CHANGE: &str = "password-change";

/// Token pairs one cookie session may mint per hour through `POST /api/auth/refresh`
/// without a refresh token.
const COOKIE_MINTS_PER_HOUR: i64 = 60;

/// The identity service over SeaORM and the key-value store.
pub struct SeaOrmIdentity {
    db: platform::db::Db,
    kv: Arc<dyn KvStore>,
    mailer: Arc<dyn Mailer>,
    passwords: Passwords,
    sessions: Sessions,
    throttle: Throttle,
    settings: IdentitySettings,
    mode: AuthMode,
    default_allow_registration: bool,
    admin_username: String,
    admin_password: Option<String>,
    admin_email: Option<String>,
    upstream: Upstream,
    /// `SAGE_PUBLIC_URL`: the base of the registered upstream callbacks.
    public_url: Option<String>,
    /// `SAGE_TRUSTED_PROXY_ADMINS`: the proxy's header may name an admin.
    trusted_proxy_admins: bool,
    /// Users as [`Identity::current_user`] answers them (every page of the web UI asks),
    /// trusted while no process has announced a change of a user's row
    /// ([`Topic::Users`]: profile, role, deletion).
    current: StampedCache<String, User>,
}

/// What a cached user costs in memory, roughly.
fn user_weight(user: &User) -> usize {
    let text = |v: &Option<String>| v.as_ref().map_or(0, String::len);
    std::mem::size_of::<User>()
        + user.id.len()
        + user.username.len()
        + text(&user.email)
        + text(&user.nickname)
        + text(&user.phonenum)
        + text(&user.avatar)
}

fn to_user(m: users::Model) -> User {
    User {
        role: Role::parse(&m.role).unwrap_or(Role::User),
        id: m.id,
        username: m.username,
        email: m.email,
        nickname: m.nickname,
        phonenum: m.phonenum,
        avatar: m.avatar,
        created_at: m.created_at,
    }
}

fn require_admin(actor: &Principal) -> Result<(), IdentityError> {
    if actor.is_admin() {
        Ok(())
    } else {
        Err(IdentityError::Forbidden)
    }
}

fn random_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

impl SeaOrmIdentity {
    pub fn new(
        db: platform::db::Db,
        kv: Arc<dyn KvStore>,
        config: &Config,
        mailer: Arc<dyn Mailer>,
        settings: IdentitySettings,
    ) -> Result<Self, IdentityError> {
        let policy = platform::outbound::OutboundPolicy::from_allow_list(&config.outbound_allow)
            .map_err(|e| IdentityError::Internal(anyhow::anyhow!(e)))?;
        let session_store: Arc<dyn SessionStore> = if settings.sessions_in_kv {
            Arc::new(KvSessionStore::new(kv.clone(), &settings))
        } else {
            Arc::new(DbSessionStore::new(db.clone()))
        };
        let upstream = Upstream::new(
            &config.auth_providers,
            kv.clone(),
            settings.upstream_flow_ttl,
            settings.upstream_starts_per_ip_per_minute,
            policy,
        )?;
        Ok(Self {
            current: StampedCache::new(&db, Topic::Users, Budget::default(), user_weight),
            upstream,
            public_url: config.public_url.clone(),
            trusted_proxy_admins: config.trusted_proxy_admins,
            passwords: Passwords::new(settings.hash_concurrency),
            sessions: Sessions::new(session_store, settings.clone()),
            throttle: Throttle::new(kv.clone(), settings.clone()),
            db,
            kv,
            mailer,
            settings,
            mode: config.auth_mode,
            default_allow_registration: config.allow_registration,
            admin_username: config.admin_username.clone(),
            admin_password: config.admin_password.clone(),
            admin_email: config.admin_email.clone(),
        })
    }

    async fn find_by_id(&self, id: &str) -> Result<Option<users::Model>, IdentityError> {
        Ok(users::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await?)
    }

    /// The user with this (lower-cased) e-mail address.
    async fn find_by_email(&self, email_key: &str) -> Result<Option<users::Model>, IdentityError> {
        Ok(users::Entity::find()
            .filter(users::Column::EmailKey.eq(email_key.to_owned()))
            .one(&self.db)
            .await?)
    }

    async fn find_by_login(&self, ident: &str) -> Result<Option<users::Model>, IdentityError> {
        let key = ident.trim().to_lowercase();
        if let Some(user) = users::Entity::find()
            .filter(users::Column::UsernameKey.eq(key.clone()))
            .one(&self.db)
            .await?
        {
            return Ok(Some(user));
        }
        if key.contains('@') {
            return self.find_by_email(&key).await;
        }
        Ok(None)
    }

    /// Validates and inserts a user; uniqueness is checked first and enforced by the
    /// database's unique keys.
    async fn insert_user(&self, user: NewUser) -> Result<String, IdentityError> {
        let username = validate::username(&user.username)?;
        let email = match user
            .email
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            Some(e) => Some(validate::email("email", e)?),
            None => None,
        };
        validate::password("password", &user.password, &username)?;
        let phonenum = validate::optional_text("phonenum", user.phonenum.as_deref(), 32)?;
        let nickname = validate::optional_text("nickname", user.nickname.as_deref(), 128)?;
        let username_key = username.to_lowercase();
        if users::Entity::find()
            .filter(users::Column::UsernameKey.eq(username_key.clone()))
            .one(&self.db)
            .await?
            .is_some()
        {
            return Err(IdentityError::UsernameTaken);
        }
        if let Some(email) = &email
            && self.find_by_email(email).await?.is_some()
        {
            return Err(IdentityError::EmailTaken);
        }
        let hash = self.passwords.hash(&user.password).await?;
        let id = platform::ids::new_hex_id();
        let now = Utc::now();
        let model = users::ActiveModel {
            id: Set(id.clone()),
            username: Set(username),
            username_key: Set(username_key),
            email: Set(email.clone()),
            email_key: Set(email),
            nickname: Set(nickname),
            phonenum: Set(phonenum),
            avatar: Set(None),
            role: Set(user.role.as_str().to_owned()),
            password_hash: Set(Some(hash)),
            config: Set("{}".to_owned()),
            created_at: Set(now),
            updated_at: Set(now),
        };
        match users::Entity::insert(model).exec(&self.db).await {
            Ok(_) => Ok(id),
            Err(e) => match e.sql_err() {
                Some(SqlErr::UniqueConstraintViolation(message)) if message.contains("email") => {
                    Err(IdentityError::EmailTaken)
                }
                Some(SqlErr::UniqueConstraintViolation(_)) => Err(IdentityError::UsernameTaken),
                _ => Err(e.into()),
            },
        }
    }

    async fn set_password(&self, user: users::Model, password: &str) -> Result<(), IdentityError> {
        validate::password("new_password", password, &user.username)?;
        let hash = self.passwords.hash(password).await?;
        let id = user.id.clone();
        let mut active: users::ActiveModel = user.into();
        active.password_hash = Set(Some(hash));
        active.updated_at = Set(Utc::now());
        active.update(&self.db).await?;
        self.sessions.destroy_all(&id).await
    }

    async fn principal_of_session(
        &self,
        session_key: &str,
    ) -> Result<Option<Principal>, IdentityError> {
        Ok(self
            .sessions
            .get(session_key)
            .await?
            .map(|record| record.principal(session_key)))
    }

    async fn check_code(&self, email: &str, code: &str) -> Result<(), IdentityError> {
        let Some(stored) = self.kv.get(&format!("regcode:{email}")).await? else {
            return Err(IdentityError::CodeInvalid);
        };
        if bool::from(stored.as_slice().ct_eq(code.trim().as_bytes())) {
            return Ok(());
        }
        let failures = self
            .kv
            .incr(
                &format!("regcode-failures:{email}"),
                1,
                self.settings.code_ttl,
            )
            .await?;
        if failures.value >= self.settings.code_max_attempts {
            self.kv.delete(&format!("regcode:{email}")).await?;
        }
        Err(IdentityError::CodeInvalid)
    }
}

#[async_trait]
impl Identity for SeaOrmIdentity {
    async fn login(
        &self,
        request: LoginRequest,
        client: ClientInfo,
        replace_session: Option<&str>,
    ) -> Result<LoginOutcome, IdentityError> {
        if self.mode == AuthMode::OAuth {
            return Err(IdentityError::PasswordLoginDisabled);
        }
        let account = validate::login_identifier(&request.username_or_email)?;
        if account.is_empty() || request.password.is_empty() {
            return Err(IdentityError::InvalidCredentials);
        }
        if request.password.chars().count() > validate::MAX_PASSWORD {
            return Err(IdentityError::InvalidCredentials);
        }
        self.throttle.before_login(&account, client.ip).await?;
        let user = self.find_by_login(&account).await?;
        let verified = self
            .passwords
            .verify(
                &request.password,
                user.as_ref().and_then(|u| u.password_hash.as_deref()),
            )
            .await?;
        let user = match user {
            Some(user) if verified.ok => user,
            // The failure was counted before the check.
            _ => return Err(IdentityError::InvalidCredentials),
        };
        if self.mode == AuthMode::TrustedProxy && user.role != Role::Admin.as_str() {
            return Err(IdentityError::AdminPasswordLoginRequired);
        }
        self.throttle
            .succeeded(LOGIN_SCOPE, &account, client.ip)
            .await?;
        if verified.needs_rehash {
            let hash = self.passwords.hash(&request.password).await?;
            let mut active: users::ActiveModel = user.clone().into();
            active.password_hash = Set(Some(hash));
            active.update(&self.db).await?;
        }
        if let Some(old) = replace_session.and_then(Sessions::key_of_id) {
            self.sessions.destroy(&old).await?;
        }
        let user = to_user(user);
        let (session_id, key, record) = self.sessions.create(&user).await?;
        let tokens = self.sessions.issue_tokens(&key, &record).await?;
        Ok(LoginOutcome {
            session_id,
            tokens,
            user,
        })
    }

    async fn authenticate(
        &self,
        credential: Credential<'_>,
    ) -> Result<Option<Principal>, IdentityError> {
        match credential {
            Credential::Session(id) => match Sessions::key_of_id(id) {
                Some(key) => self.principal_of_session(&key).await,
                None => Ok(None),
            },
            Credential::Bearer(token) => match self.sessions.session_of_access(token).await? {
                Some(key) => self.principal_of_session(&key).await,
                None => Ok(None),
            },
        }
    }

    async fn authenticate_proxy_user(
        &self,
        username: &str,
    ) -> Result<Option<Principal>, IdentityError> {
        self.proxy_user(username).await
    }

    async fn upstream_start(
        &self,
        provider_id: Option<&str>,
        redirect_uri: Option<&str>,
        next: Option<&str>,
        client: ClientInfo,
    ) -> Result<UpstreamStart, IdentityError> {
        self.start_upstream(provider_id, redirect_uri, next, client)
            .await
    }

    async fn upstream_link_start(
        &self,
        actor: &Principal,
        provider_id: &str,
        next: Option<&str>,
        client: ClientInfo,
    ) -> Result<UpstreamStart, IdentityError> {
        self.start_link(actor, provider_id, next, client).await
    }

    async fn upstream_finish(
        &self,
        provider_id: &str,
        callback: UpstreamCallback,
        browser_secret: Option<&str>,
        caller: Option<&Principal>,
    ) -> Result<UpstreamLogin, IdentityError> {
        self.finish_upstream(provider_id, callback, browser_secret, caller)
            .await
    }

    async fn logout(&self, principal: &Principal) -> Result<(), IdentityError> {
        if let Some(session) = &principal.session_id {
            self.sessions.destroy(session).await?;
        }
        Ok(())
    }

    async fn refresh(
        &self,
        refresh_token: Option<&str>,
        cookie_session: Option<&str>,
    ) -> Result<TokenPair, IdentityError> {
        let session_id = match refresh_token.map(str::trim).filter(|t| !t.is_empty()) {
            Some(token) => match self.sessions.rotate_refresh(token).await? {
                Rotation::Session(id) => id,
                Rotation::Reused | Rotation::Unknown => {
                    return Err(IdentityError::InvalidRefreshToken);
                }
            },
            None => {
                let key = cookie_session
                    .and_then(Sessions::key_of_id)
                    .ok_or(IdentityError::InvalidRefreshToken)?;
                // A cookie mints a new pair without consuming one, so the pairs one session
                // may mint this way are capped per hour (a refresh token rotates instead).
                let minted = self
                    .kv
                    .incr(
                        &format!("cookie-mint:{key}"),
                        1,
                        std::time::Duration::from_secs(3600),
                    )
                    .await?;
                if minted.value > COOKIE_MINTS_PER_HOUR {
                    return Err(IdentityError::TooManyAttempts {
                        retry_after: minted.ttl.map_or(3600, |t| t.as_secs().max(1)),
                    });
                }
                key
            }
        };
        let record = self
            .sessions
            .get(&session_id)
            .await?
            .ok_or(IdentityError::InvalidRefreshToken)?;
        self.sessions.issue_tokens(&session_id, &record).await
    }

    async fn send_registration_code(
        &self,
        email: &str,
        client: ClientInfo,
    ) -> Result<CodeSent, IdentityError> {
        if self.mode != AuthMode::Native || !self.allow_registration().await? {
            return Err(IdentityError::RegistrationDisabled);
        }
        let email = validate::email("email", email)?;
        // Throttles first; then known and unknown addresses get the same answer (the owner
        // of a known one is told by mail that they already have an account).
        let per_ip = self
            .kv
            .incr(
                &format!("regcode-ip:{}", crate::throttle::address_key(client.ip)),
                1,
                std::time::Duration::from_secs(3600),
            )
            .await?;
        if per_ip.value > self.settings.code_requests_per_ip_per_hour {
            return Err(IdentityError::CodeThrottled {
                retry_after: per_ip.ttl.map_or(3600, |t| t.as_secs().max(1)),
            });
        }
        let throttle_key = format!("regcode-resend:{email}");
        if !self
            .kv
            .set_if_absent(&throttle_key, b"1", Some(self.settings.code_resend))
            .await?
        {
            let wait = self.kv.ttl(&throttle_key).await?;
            return Err(IdentityError::CodeThrottled {
                retry_after: wait.map_or(1, |w| w.as_secs().max(1)),
            });
        }
        let sent = CodeSent {
            expires_in: self.settings.code_ttl.as_secs(),
            retry_after: self.settings.code_resend.as_secs(),
        };
        if let Some(user) = self.find_by_email(&email).await? {
            let body = format!(
                "Someone asked to register a new Sage account with this address, but you already have one (username: {}).\n\nLog in instead, or reset your password if you forgot it. If you did not ask, ignore this message.\n",
                user.username
            );
            if let Err(e) = self
                .mailer
                .send(&email, "You already have a Sage account", &body)
                .await
            {
                self.kv.delete(&throttle_key).await?;
                tracing::warn!(error = %e, "verification e-mail not delivered");
                return Err(IdentityError::MailFailed(e));
            }
            return Ok(sent);
        }
        let code = format!("{:06}", rand::rng().random_range(0..1_000_000u32));
        self.kv
            .set(
                &format!("regcode:{email}"),
                code.as_bytes(),
                Some(self.settings.code_ttl),
            )
            .await?;
        self.kv.delete(&format!("regcode-failures:{email}")).await?;
        let minutes = self.settings.code_ttl.as_secs() / 60;
        let body = format!(
            "Your Sage verification code is {code}.\n\nIt expires in {minutes} minutes. If you did not ask for it, ignore this message.\n"
        );
        if let Err(e) = self
            .mailer
            .send(&email, "Your Sage verification code", &body)
            .await
        {
            self.kv.delete(&format!("regcode:{email}")).await?;
            self.kv.delete(&throttle_key).await?;
            tracing::warn!(error = %e, "verification e-mail not delivered");
            return Err(IdentityError::MailFailed(e));
        }
        Ok(sent)
    }

    async fn register(&self, request: RegisterRequest) -> Result<String, IdentityError> {
        if self.mode != AuthMode::Native || !self.allow_registration().await? {
            return Err(IdentityError::RegistrationDisabled);
        }
        let email = validate::email("email", &request.email)?;
        let username = validate::username(&request.username)?;
        validate::password("password", &request.password, &username)?;
        // The code is checked before anything reveals whether a name or address exists.
        self.check_code(&email, &request.verification_code).await?;
        let id = self
            .insert_user(NewUser {
                username,
                password: request.password,
                email: Some(email.clone()),
                phonenum: request.phonenum,
                nickname: None,
                role: Role::User,
            })
            .await?;
        self.kv.delete(&format!("regcode:{email}")).await?;
        self.kv.delete(&format!("regcode-failures:{email}")).await?;
        Ok(id)
    }

    async fn current_user(&self, principal: &Principal) -> Result<User, IdentityError> {
        self.current
            .get_or_fill(principal.user_id.clone(), || async {
                self.find_by_id(&principal.user_id)
                    .await?
                    .map(to_user)
                    .ok_or(IdentityError::Unauthenticated)
            })
            .await
    }

    async fn update_profile(
        &self,
        principal: &Principal,
        update: ProfileUpdate,
    ) -> Result<Profile, IdentityError> {
        let given = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        let user = self
            .find_by_id(&principal.user_id)
            .await?
            .ok_or(IdentityError::Unauthenticated)?;
        let nickname = validate::optional_text("nickname", given(update.nickname).as_deref(), 128)?;
        let avatar = validate::optional_text(
            "avatar",
            given(update.avatar).as_deref(),
            validate::MAX_AVATAR,
        )?;
        let language = given(update.language)
            .map(|l| validate::language(&l))
            .transpose()?;
        let email = given(update.email)
            .map(|e| validate::email("email", &e))
            .transpose()?
            .filter(|e| user.email_key.as_deref() != Some(e.as_str()));
        let mut config = match serde_json::from_str::<Value>(&user.config) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        let verified_by_code = match &email {
            Some(email) if self.mode == AuthMode::Native && self.allow_registration().await? => {
                let code = given(update.verification_code).ok_or_else(|| {
                    IdentityError::invalid(
                        "verification_code",
                        "is required to change the e-mail address",
                    )
                })?;
                self.check_code(email, &code).await?;
                true
            }
            Some(email) => {
                if self.find_by_email(email).await?.is_some() {
                    return Err(IdentityError::EmailTaken);
                }
                false
            }
            None => false,
        };
        let mut active: users::ActiveModel = user.into();
        if let Some(nickname) = nickname {
            active.nickname = Set(Some(nickname));
        }
        if let Some(avatar) = avatar {
            active.avatar = Set(Some(avatar));
        }
        if let Some(email) = &email {
            active.email = Set(Some(email.clone()));
            active.email_key = Set(Some(email.clone()));
        }
        if let Some(language) = &language {
            config.insert("language".to_owned(), Value::String(language.clone()));
            let text =
                serde_json::to_string(&config).map_err(|e| IdentityError::Internal(e.into()))?;
            active.config = Set(text);
        }
        active.updated_at = Set(Utc::now());
        let updated = match active.update(&self.db).await {
            Ok(m) => m,
            Err(e) => {
                return Err(match e.sql_err() {
                    Some(SqlErr::UniqueConstraintViolation(_)) => IdentityError::EmailTaken,
                    _ => e.into(),
                });
            }
        };
        self.current.changed().await;
        if verified_by_code && let Some(email) = &email {
            self.kv.delete(&format!("regcode:{email}")).await?;
            self.kv.delete(&format!("regcode-failures:{email}")).await?;
        }
        let language = match config.get("language") {
            Some(Value::String(l)) => Some(l.clone()),
            _ => None,
        };
        Ok(Profile {
            user: to_user(updated),
            language,
        })
    }

    async fn change_password(
        &self,
        principal: &Principal,
        old_password: &str,
        new_password: &str,
    ) -> Result<(), IdentityError> {
        let user = self
            .find_by_id(&principal.user_id)
            .await?
            .ok_or(IdentityError::Unauthenticated)?;
        // Throttled like login: a failure is reserved before the current password is checked.
        self.throttle
            .reserve(PASSWORD_CHANGE, &user.id, None)
            .await?;
        let verified = self
            .passwords
            .verify(old_password, user.password_hash.as_deref())
            .await?;
        if !verified.ok {
            return Err(IdentityError::WrongPassword);
        }
        self.throttle
            .succeeded(PASSWORD_CHANGE, &user.id, None)
            .await?;
        if old_password == new_password {
            return Err(IdentityError::invalid(
                "new_password",
                "must differ from the current password",
            ));
        }
        self.set_password(user, new_password).await
    }

    async fn list_users(
        &self,
        actor: &Principal,
        page: PageRequest,
    ) -> Result<Page<User>, IdentityError> {
        require_admin(actor)?;
        let total = users::Entity::find().count(&self.db).await?;
        let items = users::Entity::find()
            .order_by_desc(users::Column::CreatedAt)
            .order_by_desc(users::Column::Id)
            .offset(page.offset())
            .limit(page.page_size())
            .all(&self.db)
            .await?;
        Ok(Page {
            items: items.into_iter().map(to_user).collect(),
            total,
        })
    }

    async fn add_user(&self, actor: &Principal, user: NewUser) -> Result<String, IdentityError> {
        require_admin(actor)?;
        self.insert_user(user).await
    }

    async fn delete_user(&self, actor: &Principal, user_id: &str) -> Result<(), IdentityError> {
        require_admin(actor)?;
        let user = self
            .find_by_id(user_id)
            .await?
            .ok_or(IdentityError::UserNotFound)?;
        // "Never the last admin" is decided by one conditional delete; on PostgreSQL the
        // admin rows are locked first, so two admins deleting each other at once cannot both
        // see the other still there (SQLite runs one writer at a time).
        let txn = self.db.begin().await?;
        lock_admins(&txn).await?;
        let deleted = users::Entity::delete_many()
            .filter(users::Column::Id.eq(user.id.clone()))
            .filter(not_the_last_admin())
            .exec(&txn)
            .await?;
        if deleted.rows_affected > 0 {
            // The user's data goes next (outside this crate); until it is gone, the record
            // says so, whatever happens to this process.
            user_cleanups::Entity::insert(user_cleanups::ActiveModel {
                user_id: Set(user.id.clone()),
                deleted_at: Set(Utc::now()),
            })
            .on_conflict(
                OnConflict::column(user_cleanups::Column::UserId)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        }
        txn.commit().await?;
        self.current.changed().await;
        if deleted.rows_affected == 0 {
            return Err(if self.find_by_id(&user.id).await?.is_some() {
                IdentityError::LastAdmin
            } else {
                IdentityError::UserNotFound
            });
        }
        self.sessions.destroy_all(&user.id).await
    }

    async fn pending_cleanups(&self, limit: u64) -> Result<Vec<String>, IdentityError> {
        Ok(user_cleanups::Entity::find()
            .order_by_asc(user_cleanups::Column::DeletedAt)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| row.user_id)
            .collect())
    }

    async fn cleanup_finished(&self, user_id: &str) -> Result<(), IdentityError> {
        user_cleanups::Entity::delete_by_id(user_id.to_owned())
            .exec(&self.db)
            .await?;
        Ok(())
    }

    async fn user_options(
        &self,
        actor: &Principal,
    ) -> Result<Vec<(String, String)>, IdentityError> {
        if !actor.is_admin() {
            // Other users see only themselves: the list of accounts is not theirs to read.
            return Ok(self
                .find_by_id(&actor.user_id)
                .await?
                .map(|u| vec![(u.id, u.username)])
                .unwrap_or_default());
        }
        let rows = users::Entity::find()
            .order_by_asc(users::Column::UsernameKey)
            .limit(1000)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(|u| (u.id, u.username)).collect())
    }

    async fn user_config(&self, actor: &Principal) -> Result<Value, IdentityError> {
        let user = self
            .find_by_id(&actor.user_id)
            .await?
            .ok_or(IdentityError::Unauthenticated)?;
        Ok(serde_json::from_str(&user.config).unwrap_or_else(|_| Value::Object(Map::new())))
    }

    async fn update_user_config(
        &self,
        actor: &Principal,
        patch: Map<String, Value>,
    ) -> Result<Value, IdentityError> {
        let user = self
            .find_by_id(&actor.user_id)
            .await?
            .ok_or(IdentityError::Unauthenticated)?;
        let mut config = match serde_json::from_str::<Value>(&user.config) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        config.extend(patch);
        let text = serde_json::to_string(&config).map_err(|e| IdentityError::Internal(e.into()))?;
        if text.len() > 256 * 1024 {
            return Err(IdentityError::invalid("config", "is larger than 256 KiB"));
        }
        let mut active: users::ActiveModel = user.into();
        active.config = Set(text);
        active.updated_at = Set(Utc::now());
        active.update(&self.db).await?;
        Ok(Value::Object(config))
    }

    async fn allow_registration(&self) -> Result<bool, IdentityError> {
        let row = system_settings::Entity::find_by_id(ALLOW_REGISTRATION.to_owned())
            .one(&self.db)
            .await?;
        Ok(row
            .and_then(|r| serde_json::from_str::<bool>(&r.value).ok())
            .unwrap_or(self.default_allow_registration))
    }

    async fn update_settings(
        &self,
        actor: &Principal,
        allow_registration: bool,
    ) -> Result<(), IdentityError> {
        require_admin(actor)?;
        let model = system_settings::ActiveModel {
            key: Set(ALLOW_REGISTRATION.to_owned()),
            value: Set(allow_registration.to_string()),
            updated_at: Set(Utc::now()),
        };
        system_settings::Entity::insert(model)
            .on_conflict(
                OnConflict::column(system_settings::Column::Key)
                    .update_columns([
                        system_settings::Column::Value,
                        system_settings::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec(&self.db)
            .await?;
        Ok(())
    }

    async fn ensure_first_admin(&self) -> Result<Option<BootstrapAdmin>, IdentityError> {
        if users::Entity::find().count(&self.db).await? > 0 {
            return Ok(None);
        }
        let generated = self.admin_password.is_none().then(random_password);
        let password = self
            .admin_password
            .clone()
            .or_else(|| generated.clone())
            .unwrap_or_default();
        let result = self
            .insert_user(NewUser {
                username: self.admin_username.clone(),
                password,
                email: self.admin_email.clone(),
                phonenum: None,
                nickname: None,
                role: Role::Admin,
            })
            .await;
        match result {
            Ok(_) => Ok(Some(BootstrapAdmin {
                username: self.admin_username.clone(),
                generated_password: generated,
            })),
            // Another replica created it first.
            Err(IdentityError::UsernameTaken | IdentityError::EmailTaken) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn create_user_unchecked(&self, user: NewUser) -> Result<String, IdentityError> {
        self.insert_user(user).await
    }

    async fn reset_password_unchecked(
        &self,
        username: &str,
        password: &str,
    ) -> Result<(), IdentityError> {
        let user = self
            .find_by_login(username)
            .await?
            .ok_or(IdentityError::UserNotFound)?;
        self.set_password(user, password).await
    }
}

/// On PostgreSQL, locks the admin rows for the rest of the transaction, so two statements
/// that each remove an admin (a delete, a demotion) cannot both see the other admin still
/// there. SQLite runs one writer at a time and needs no lock.
pub(crate) async fn lock_admins(txn: &DatabaseTransaction) -> Result<(), IdentityError> {
    if txn.get_database_backend() == DbBackend::Postgres {
        users::Entity::find()
            .filter(users::Column::Role.eq(Role::Admin.as_str()))
            .lock_exclusive()
            .all(txn)
            .await?;
    }
    Ok(())
}

/// The condition of a statement that would remove an admin: the row is not an admin, or
/// another admin remains.
pub(crate) fn not_the_last_admin() -> Condition {
    Condition::any()
        .add(users::Column::Role.ne(Role::Admin.as_str()))
        .add(Expr::cust(
            "(SELECT COUNT(*) FROM users WHERE role = 'admin') > 1",
        ))
}
