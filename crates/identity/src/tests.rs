//! Identity service tests without HTTP: SQLite with migrations applied, in-process stores.

use std::sync::Arc;

use async_trait::async_trait;
use platform::store::MemoryKvStore;
use platform::{Config, PageRequest};
use tokio::sync::Mutex;

use crate::{
    ClientInfo, Identity, IdentityError, LoginRequest, Mailer, NewUser, Role, SeaOrmIdentity,
};
use migration::MigratorTrait;

/// Collects messages instead of sending them (SMTP itself is tested over the wire in the
/// server's integration tests).
#[derive(Default)]
struct Outbox(Mutex<Vec<String>>);

#[async_trait]
impl Mailer for Outbox {
    async fn send(&self, _to: &str, _subject: &str, body: &str) -> Result<(), String> {
        self.0.lock().await.push(body.to_owned());
        Ok(())
    }
}

async fn service(config: Config) -> (SeaOrmIdentity, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let db = platform::db::connect_url(&url).await.unwrap();
    migration::Migrator::up(db.primary(), None).await.unwrap();
    let identity = SeaOrmIdentity::new(
        db,
        Arc::new(MemoryKvStore::new()),
        &config,
        Arc::new(Outbox::default()),
        crate::IdentitySettings::default(),
    )
    .unwrap();
    (identity, dir)
}

fn config_with_admin() -> Config {
    Config {
        admin_password: Some("First-admin-pass".into()),
        ..Config::default()
    }
}

#[tokio::test]
async fn the_first_admin_is_created_once() {
    let (identity, _dir) = service(config_with_admin()).await;
    let created = identity.ensure_first_admin().await.unwrap().unwrap();
    assert_eq!(created.username, "admin");
    assert!(created.generated_password.is_none());
    assert!(identity.ensure_first_admin().await.unwrap().is_none());

    let (generated, _dir2) = service(Config::default()).await;
    let admin = generated.ensure_first_admin().await.unwrap().unwrap();
    let password = admin.generated_password.unwrap();
    assert!(password.len() >= 20);
    let outcome = generated
        .login(
            LoginRequest {
                username_or_email: "admin".into(),
                password,
            },
            ClientInfo::default(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(outcome.user.role, Role::Admin);
}

#[tokio::test]
async fn admin_rights_are_decided_in_the_domain() {
    let (identity, _dir) = service(config_with_admin()).await;
    identity.ensure_first_admin().await.unwrap();
    let user_id = identity
        .create_user_unchecked(NewUser {
            username: "plain".into(),
            password: "plain-Secret-9".into(),
            email: None,
            phonenum: None,
            nickname: None,
            role: Role::User,
        })
        .await
        .unwrap();
    let user = identity
        .login(
            LoginRequest {
                username_or_email: "plain".into(),
                password: "plain-Secret-9".into(),
            },
            ClientInfo::default(),
            None,
        )
        .await
        .unwrap();
    let principal = identity
        .authenticate(crate::Credential::Session(&user.session_id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(principal.user_id, user_id);
    assert!(matches!(
        identity
            .list_users(&principal, PageRequest::default())
            .await,
        Err(IdentityError::Forbidden)
    ));
    assert!(matches!(
        identity.update_settings(&principal, true).await,
        Err(IdentityError::Forbidden)
    ));
    assert!(matches!(
        identity.delete_user(&principal, &user_id).await,
        Err(IdentityError::Forbidden)
    ));
}

#[tokio::test]
async fn the_cli_reset_ends_sessions_and_sets_the_password() {
    let (identity, _dir) = service(config_with_admin()).await;
    identity.ensure_first_admin().await.unwrap();
    let login = |password: &'static str| {
        identity.login(
            LoginRequest {
                username_or_email: "admin".into(),
                password: password.into(),
            },
            ClientInfo::default(),
            None,
        )
    };
    let before = login("First-admin-pass").await.unwrap();
    identity
        .reset_password_unchecked("admin", "Second-admin-pass")
        .await
        .unwrap();
    assert!(
        identity
            .authenticate(crate::Credential::Session(&before.session_id))
            .await
            .unwrap()
            .is_none()
    );
    assert!(login("Second-admin-pass").await.is_ok());
    assert!(matches!(
        identity
            .reset_password_unchecked("ghost", "Whatever-pass-1")
            .await,
        Err(IdentityError::UserNotFound)
    ));
}
