//! Database migrations, one file per change, named `m<date>_<time>_<domain>_<change>.rs`.
//!
//! Invariant: a migration never changes once it has landed; each uses local `DeriveIden` enums
//! (not live entities) and SeaQuery, so one file serves SQLite and PostgreSQL alike.

pub use sea_orm_migration::prelude::*;

mod m20261128_000001_platform_create_system_settings;
mod m20261128_000002_identity_create_users;
mod m20261128_000003_providers_create_llm_providers;
mod m20261128_000004_agents_create_agents;
mod m20261128_000005_agents_create_agent_jobs;
mod m20261202_144500_agents_job_fair_claims;
mod m20261202_144500_conversations_create_conversations;
mod m20261202_144500_identity_create_sessions;
mod m20261203_100000_conversations_listing;
mod m20261203_160000_conversations_owner_counts;
mod m20261203_190000_conversations_search;

/// Every migration, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261128_000001_platform_create_system_settings::Migration),
            Box::new(m20261128_000002_identity_create_users::Migration),
            Box::new(m20261128_000003_providers_create_llm_providers::Migration),
            Box::new(m20261128_000004_agents_create_agents::Migration),
            Box::new(m20261128_000005_agents_create_agent_jobs::Migration),
            Box::new(m20261202_144500_agents_job_fair_claims::Migration),
            Box::new(m20261202_144500_identity_create_sessions::Migration),
            Box::new(m20261202_144500_conversations_create_conversations::Migration),
            Box::new(m20261203_100000_conversations_listing::Migration),
            Box::new(m20261203_160000_conversations_owner_counts::Migration),
            Box::new(m20261203_190000_conversations_search::Migration),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm_migration::sea_orm::{ConnectionTrait, Statement};

    #[tokio::test]
    async fn migrations_apply_roll_back_and_apply_again() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display());
        let db = platform::db::connect_url(&url).await.unwrap();
        Migrator::up(db.primary(), None).await.unwrap();
        Migrator::up(db.primary(), None).await.unwrap();
        let backend = db.get_database_backend();
        db.execute_raw(Statement::from_string(
            backend,
            "INSERT INTO system_settings (key, value, updated_at) VALUES ('k', '\"v\"', '2026-01-01T00:00:00Z')",
        ))
        .await
        .unwrap();
        Migrator::down(db.primary(), None).await.unwrap();
        Migrator::up(db.primary(), None).await.unwrap();
        assert!(
            Migrator::get_pending_migrations(&db)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
