//! Identities asserted by others: the trusted proxy's header, and upstream (OIDC) logins and
//! links. Decides which local account an upstream identity reaches and with which role:
//! the `(provider, subject)` link; else a verified e-mail the provider vouches for, and only
//! to an account without a password, not an admin and not linked to any provider; else a new
//! account. Admin comes from the provider's own statements (subject, verified e-mail,
//! `role_claim`, `default_role`), never from a local username.

use chrono::Utc;
use platform::AuthMode;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set, TransactionTrait,
};
use sha2::{Digest, Sha256};

use super::{SeaOrmIdentity, lock_admins, not_the_last_admin, to_user};
use crate::db::entities::{user_identities, users};
use crate::model::{ClientInfo, Principal, Role};
use crate::service::UpstreamLogin;
use crate::upstream::{UpstreamCallback, UpstreamClaims, UpstreamProvider, UpstreamStart};
use crate::{IdentityError, validate};

/// A claimed name is used only when it is already a valid username: cleaning it could turn
/// `boss!` into someone else's `boss`.
fn clean_candidate(raw: &str) -> Option<String> {
    validate::username(raw)
        .ok()
        .filter(|name| name == raw && name.len() <= 25)
}

fn new_user_model(
    username: String,
    email: Option<String>,
    nickname: Option<String>,
) -> users::ActiveModel {
    let now = Utc::now();
    users::ActiveModel {
        id: Set(platform::ids::new_hex_id()),
        username_key: Set(username.to_lowercase()),
        username: Set(username),
        email: Set(email.clone()),
        email_key: Set(email),
        nickname: Set(nickname),
        phonenum: Set(None),
        avatar: Set(None),
        role: Set(Role::User.as_str().to_owned()),
        password_hash: Set(None),
        config: Set("{}".to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
    }
}

impl SeaOrmIdentity {
    /// The trusted proxy's user: only in `trusted_proxy` mode, and an admin account only when
    /// the operator allowed it (`SAGE_TRUSTED_PROXY_ADMINS`).
    pub(super) async fn proxy_user(
        &self,
        username: &str,
    ) -> Result<Option<Principal>, IdentityError> {
        if self.mode != AuthMode::TrustedProxy {
            return Ok(None);
        }
        let Ok(username) = validate::username(username) else {
            tracing::warn!("trusted proxy asserted an invalid username; ignored");
            return Ok(None);
        };
        let user = match self.find_by_login(&username).await? {
            Some(user) => user,
            None => {
                // Two first requests may race; the loser reads the winner's row.
                let _ = users::Entity::insert(new_user_model(username.clone(), None, None))
                    .on_conflict(
                        OnConflict::column(users::Column::UsernameKey)
                            .do_nothing()
                            .to_owned(),
                    )
                    .exec_without_returning(&self.db)
                    .await?;
                let Some(user) = self.find_by_login(&username).await? else {
                    return Ok(None);
                };
                user
            }
        };
        let role = Role::parse(&user.role).unwrap_or(Role::User);
        if role == Role::Admin && !self.trusted_proxy_admins {
            tracing::warn!(username = %user.username, "trusted proxy asserted an admin; refused (SAGE_TRUSTED_PROXY_ADMINS is off)");
            return Ok(None);
        }
        Ok(Some(Principal {
            role,
            user_id: user.id,
            username: user.username,
            session_id: None,
        }))
    }

    /// The registered callback of a provider: `SAGE_PUBLIC_URL` + the callback route.
    fn callback_url(&self, provider_id: &str) -> Result<String, IdentityError> {
        let base = self.public_url.as_deref().ok_or_else(|| {
            IdentityError::Internal(anyhow::anyhow!(
                "SAGE_PUBLIC_URL is required for upstream login"
            ))
        })?;
        Ok(format!(
            "{}/api/auth/upstream/callback/{provider_id}",
            base.trim_end_matches('/')
        ))
    }

    pub(super) async fn start_upstream(
        &self,
        provider_id: Option<&str>,
        redirect_uri: Option<&str>,
        next: Option<&str>,
        client: ClientInfo,
    ) -> Result<UpstreamStart, IdentityError> {
        if self.mode != AuthMode::OAuth {
            return Err(IdentityError::UpstreamProviderNotFound);
        }
        let provider = self.upstream.provider(provider_id)?;
        let registered = self.callback_url(&provider.id)?;
        let redirect = match redirect_uri.map(str::trim).filter(|r| !r.is_empty()) {
            Some(requested) => {
                let alias =
                    registered.replace("/api/auth/upstream/callback/", "/api/user/oauth/callback/");
                if requested != registered && requested != alias {
                    return Err(IdentityError::invalid(
                        "redirect_uri",
                        "must be this server's registered callback",
                    ));
                }
                requested.to_owned()
            }
            None => registered,
        };
        self.upstream
            .start(provider, redirect, next, client.ip, None)
            .await
    }

    pub(super) async fn start_link(
        &self,
        actor: &Principal,
        provider_id: &str,
        next: Option<&str>,
        client: ClientInfo,
    ) -> Result<UpstreamStart, IdentityError> {
        if self.mode != AuthMode::OAuth {
            return Err(IdentityError::UpstreamProviderNotFound);
        }
        let provider = self.upstream.provider(Some(provider_id))?;
        let redirect = self.callback_url(&provider.id)?;
        self.upstream
            .start(
                provider,
                redirect,
                next,
                client.ip,
                Some(actor.user_id.clone()),
            )
            .await
    }

    pub(super) async fn finish_upstream(
        &self,
        provider_id: &str,
        callback: UpstreamCallback,
        browser_secret: Option<&str>,
        caller: Option<&Principal>,
    ) -> Result<UpstreamLogin, IdentityError> {
        if self.mode != AuthMode::OAuth {
            return Err(IdentityError::UpstreamProviderNotFound);
        }
        let finished = self
            .upstream
            .finish(provider_id, callback, browser_secret)
            .await?;
        if let Some(user_id) = &finished.link_user_id {
            // A link completes only in the session of the user who asked for it.
            let caller = caller
                .filter(|c| &c.user_id == user_id)
                .ok_or(IdentityError::UpstreamFlowInvalid)?;
            let user = self
                .link_identity(&finished.provider, &finished.claims, &caller.user_id)
                .await?;
            return Ok(UpstreamLogin {
                session_id: None,
                next: finished.next,
                user: to_user(user),
            });
        }
        let user = to_user(
            self.login_upstream(&finished.provider, finished.claims)
                .await?,
        );
        let (session_id, _, _) = self.sessions.create(&user).await?;
        Ok(UpstreamLogin {
            session_id: Some(session_id),
            next: finished.next,
            user,
        })
    }

    /// Records `(provider, subject)` → `user_id`; refused when it belongs to someone else.
    async fn insert_link(
        &self,
        provider: &UpstreamProvider,
        claims: &UpstreamClaims,
        user_id: &str,
        email: Option<String>,
    ) -> Result<(), IdentityError> {
        let link = user_identities::ActiveModel {
            provider_id: Set(provider.id.clone()),
            subject: Set(claims.subject.clone()),
            user_id: Set(user_id.to_owned()),
            email: Set(email),
            created_at: Set(Utc::now()),
        };
        user_identities::Entity::insert(link)
            .on_conflict(
                OnConflict::columns([
                    user_identities::Column::ProviderId,
                    user_identities::Column::Subject,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        let stored =
            user_identities::Entity::find_by_id((provider.id.clone(), claims.subject.clone()))
                .one(&self.db)
                .await?;
        match stored {
            Some(link) if link.user_id == user_id => Ok(()),
            _ => Err(IdentityError::UpstreamIdentityTaken),
        }
    }

    /// The logged-in user links an upstream identity to their own account.
    async fn link_identity(
        &self,
        provider: &UpstreamProvider,
        claims: &UpstreamClaims,
        user_id: &str,
    ) -> Result<users::Model, IdentityError> {
        let user = self
            .find_by_id(user_id)
            .await?
            .ok_or(IdentityError::Unauthenticated)?;
        let email = claims
            .email
            .as_deref()
            .filter(|_| claims.email_verified)
            .and_then(|e| validate::email("email", e).ok());
        self.insert_link(provider, claims, user_id, email).await?;
        Ok(user)
    }

    /// Whether an existing account may be linked automatically by its e-mail.
    async fn auto_linkable(&self, user: &users::Model) -> Result<bool, IdentityError> {
        if user.password_hash.is_some() || user.role == Role::Admin.as_str() {
            return Ok(false);
        }
        let links = user_identities::Entity::find()
            .filter(user_identities::Column::UserId.eq(user.id.clone()))
            .count(&self.db)
            .await?;
        Ok(links == 0)
    }

    /// A free username derived from the provider's claims; claimed names that are not valid
    /// usernames as they are are skipped, never cleaned into another name.
    async fn free_username(
        &self,
        provider: &UpstreamProvider,
        claims: &UpstreamClaims,
    ) -> Result<String, IdentityError> {
        let from_subject = {
            let short: String = claims.subject.chars().take(12).collect();
            clean_candidate(&format!("user_{short}")).unwrap_or_else(|| {
                let digest = Sha256::digest(format!("{}\n{}", provider.id, claims.subject));
                format!("user_{}", &hex::encode(digest)[..12])
            })
        };
        let base = [
            claims.username.as_deref().and_then(clean_candidate),
            claims
                .email
                .as_deref()
                .and_then(|e| e.split('@').next())
                .and_then(clean_candidate),
        ]
        .into_iter()
        .flatten()
        .next()
        .unwrap_or(from_subject);
        let mut name = base.clone();
        for _ in 0..5 {
            let taken = users::Entity::find()
                .filter(users::Column::UsernameKey.eq(name.to_lowercase()))
                .one(&self.db)
                .await?
                .is_some();
            if !taken {
                return Ok(name);
            }
            name = format!("{base}_{}", &platform::ids::new_hex_id()[..6]);
        }
        Err(IdentityError::UsernameTaken)
    }

    /// Finds or creates the local user for an upstream login and applies the role rules.
    async fn login_upstream(
        &self,
        provider: &UpstreamProvider,
        claims: UpstreamClaims,
    ) -> Result<users::Model, IdentityError> {
        let email = claims
            .email
            .as_deref()
            .and_then(|e| validate::email("email", e).ok());
        let verified_email = email.clone().filter(|_| claims.email_verified);
        let key = (provider.id.clone(), claims.subject.clone());
        let mut user = None;
        if let Some(link) = user_identities::Entity::find_by_id(key.clone())
            .one(&self.db)
            .await?
        {
            user = self.find_by_id(&link.user_id).await?;
            if user.is_none() {
                // The account was deleted: the stale link goes too.
                user_identities::Entity::delete_by_id(key)
                    .exec(&self.db)
                    .await?;
            }
        }
        let user = match user {
            Some(user) => user,
            None => {
                let holder = match &verified_email {
                    Some(e) => self.find_by_email(e).await?,
                    None => None,
                };
                match (holder, &verified_email) {
                    (Some(holder), Some(e))
                        if provider.vouches_for(e) && self.auto_linkable(&holder).await? =>
                    {
                        holder
                    }
                    (Some(_), _) => return Err(IdentityError::UpstreamLinkRequired),
                    (None, _) => {
                        let username = self.free_username(provider, &claims).await?;
                        // An unverified address is not attached to a new account.
                        new_user_model(username, verified_email.clone(), claims.name.clone())
                            .insert(&self.db)
                            .await?
                    }
                }
            }
        };
        self.insert_link(provider, &claims, &user.id, verified_email.clone())
            .await?;
        self.apply_upstream_role(provider, &claims, verified_email.as_deref(), user)
            .await
    }

    /// The role at each login: admin when the provider says so (subject, verified e-mail,
    /// `role_claim`, `default_role`). With a `role_claim`, the provider decides for the
    /// accounts it manages (no password): anyone else is a plain user. Without one, admins
    /// stay admins. The last admin is never demoted; a role change ends the user's sessions.
    async fn apply_upstream_role(
        &self,
        provider: &UpstreamProvider,
        claims: &UpstreamClaims,
        verified_email: Option<&str>,
        user: users::Model,
    ) -> Result<users::Model, IdentityError> {
        let says_admin = provider.default_admin
            || verified_email.is_some_and(|e| provider.admin_emails.iter().any(|a| a == e))
            || provider.admin_subjects.contains(&claims.subject)
            || claims.claims_admin == Some(true);
        let is_admin = user.role == Role::Admin.as_str();
        let target = if says_admin {
            Role::Admin
        } else if provider.role_claim.is_some() && user.password_hash.is_none() {
            Role::User
        } else if is_admin {
            Role::Admin
        } else {
            Role::User
        };
        if target.as_str() == user.role {
            return Ok(user);
        }
        // One conditional statement (with the admin rows locked on PostgreSQL): a demotion
        // never leaves the deployment without an admin, even when two happen at once.
        let txn = self.db.begin().await?;
        lock_admins(&txn).await?;
        let mut update = users::Entity::update_many()
            .col_expr(users::Column::Role, Expr::value(target.as_str()))
            .col_expr(users::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(users::Column::Id.eq(user.id.clone()));
        if target == Role::User {
            update = update.filter(not_the_last_admin());
        }
        let changed = update.exec(&txn).await?.rows_affected;
        txn.commit().await?;
        self.current.changed().await;
        if changed == 0 {
            // The last admin stays one.
            return Ok(user);
        }
        self.sessions.destroy_all(&user.id).await?;
        self.find_by_id(&user.id)
            .await?
            .ok_or(IdentityError::UserNotFound)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use migration::MigratorTrait;
    use platform::Config;
    use platform::store::MemoryKvStore;

    use super::*;
    use crate::upstream::providers_from_config;

    async fn service() -> (SeaOrmIdentity, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let db = platform::db::connect_url(&url).await.unwrap();
        migration::Migrator::up(db.primary(), None).await.unwrap();
        let config = Config {
            auth_mode: AuthMode::OAuth,
            public_url: Some("https://sage.example".into()),
            ..Config::default()
        };
        let identity = SeaOrmIdentity::new(
            db,
            Arc::new(MemoryKvStore::new()),
            &config,
            Arc::new(crate::LogMailer),
            crate::IdentitySettings::default(),
        )
        .unwrap();
        (identity, dir)
    }

    fn provider(settings: serde_json::Value) -> UpstreamProvider {
        let mut entry =
            serde_json::json!({"id": "corp", "issuer": "https://id.example", "client_id": "c"});
        if let (Some(e), Some(s)) = (entry.as_object_mut(), settings.as_object()) {
            e.extend(s.clone());
        }
        providers_from_config(&serde_json::json!([entry])).remove(0)
    }

    fn claims(subject: &str, email: &str) -> UpstreamClaims {
        UpstreamClaims {
            subject: subject.into(),
            email: Some(email.into()),
            email_verified: true,
            username: Some(subject.into()),
            name: None,
            claims_admin: None,
        }
    }

    async fn account(identity: &SeaOrmIdentity, name: &str, email: &str) -> users::Model {
        new_user_model(name.into(), Some(email.into()), None)
            .insert(&identity.db)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_verified_e_mail_links_only_where_the_provider_vouches_for_its_domain() {
        let (identity, _dir) = service().await;
        let ann = account(&identity, "ann", "ann@corp.example").await;
        let off = provider(serde_json::json!({}));
        assert!(matches!(
            identity
                .login_upstream(&off, claims("s1", "ann@corp.example"))
                .await,
            Err(IdentityError::UpstreamLinkRequired)
        ));
        let elsewhere = provider(
            serde_json::json!({"link_by_email": true, "link_email_domains": "other.example"}),
        );
        assert!(matches!(
            identity
                .login_upstream(&elsewhere, claims("s1", "ann@corp.example"))
                .await,
            Err(IdentityError::UpstreamLinkRequired)
        ));
        let vouching = provider(
            serde_json::json!({"link_by_email": true, "link_email_domains": "corp.example"}),
        );
        let linked = identity
            .login_upstream(&vouching, claims("s1", "ann@corp.example"))
            .await
            .unwrap();
        assert_eq!(
            linked.id, ann.id,
            "no password, not admin, not linked: linked"
        );

        // Now linked to corp: another provider vouching for the domain is refused.
        let mut partner = vouching.clone();
        partner.id = "partner".into();
        assert!(matches!(
            identity
                .login_upstream(&partner, claims("p1", "ann@corp.example"))
                .await,
            Err(IdentityError::UpstreamLinkRequired)
        ));
    }

    #[tokio::test]
    async fn the_role_claim_decides_for_accounts_the_provider_manages() {
        let (identity, _dir) = service().await;
        let p = provider(serde_json::json!({"role_claim": "roles"}));
        let mut c = claims("s1", "bo@corp.example");
        c.claims_admin = Some(true);
        let first = identity.login_upstream(&p, c.clone()).await.unwrap();
        assert_eq!(first.role, "admin");
        // A second admin, so that bo is not the last one.
        let _ = identity
            .login_upstream(&p, {
                let mut other = claims("s2", "cy@corp.example");
                other.claims_admin = Some(true);
                other
            })
            .await
            .unwrap();
        c.claims_admin = Some(false);
        let demoted = identity.login_upstream(&p, c.clone()).await.unwrap();
        assert_eq!(demoted.id, first.id);
        assert_eq!(demoted.role, "user", "the claim no longer says admin");
    }
}
