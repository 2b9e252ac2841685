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
mod m20261204_190000_planner_create_tasks;
mod m20261204_230000_oauth_as_create_tables;
mod m20261207_040000_releases_create_desktop_releases;
mod m20261207_050000_tooling_create_mcp_servers;
mod m20261207_080000_knowledge_create_tables;
mod m20261207_090000_tooling_mcp_anytool;
mod m20261207_100000_conversations_ordered_indexes;
mod m20261207_130000_identity_create_user_cleanups;

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
            Box::new(m20261204_190000_planner_create_tasks::Migration),
            Box::new(m20261204_230000_oauth_as_create_tables::Migration),
            Box::new(m20261207_040000_releases_create_desktop_releases::Migration),
            Box::new(m20261207_050000_tooling_create_mcp_servers::Migration),
            Box::new(m20261207_080000_knowledge_create_tables::Migration),
            Box::new(m20261207_090000_tooling_mcp_anytool::Migration),
            Box::new(m20261207_100000_conversations_ordered_indexes::Migration),
            Box::new(m20261207_130000_identity_create_user_cleanups::Migration),
        ]
    }
}

/// A fresh, migrated database for a domain crate's storage tests: a new database on the
/// PostgreSQL server of `TEST_DATABASE_URL` when it is set, else SQLite in `dir`.
pub async fn test_database(dir: &std::path::Path) -> Result<platform::db::Db, String> {
    use sea_orm_migration::sea_orm::ConnectionTrait;
    let base = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let url = match base {
        Some(base) => {
            let admin = platform::db::connect_url(&base)
                .await
                .map_err(|e| e.to_string())?;
            let name = format!("sage_test_{}", platform::ids::new_hex_id());
            admin
                .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await
                .map_err(|e| e.to_string())?;
            let without_query = base.split('?').next().unwrap_or(&base);
            let (server, _) = without_query
                .rsplit_once('/')
                .ok_or_else(|| format!("TEST_DATABASE_URL has no database name: {base}"))?;
            format!("{server}/{name}")
        }
        None => format!("sqlite://{}?mode=rwc", dir.join("test.db").display()),
    };
    let db = platform::db::connect_url(&url)
        .await
        .map_err(|e| e.to_string())?;
    Migrator::up(db.primary(), None)
        .await
        .map_err(|e| e.to_string())?;
    Ok(db)
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
