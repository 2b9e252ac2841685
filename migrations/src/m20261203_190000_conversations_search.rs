//! Trigram indexes for the history search on PostgreSQL: `search` matches a substring of the
//! title or the session id, case-insensitively (`lower(col) LIKE '%…%'`), which a B-tree
//! cannot serve; with `pg_trgm` a GIN index on each lowered column turns the scan of an
//! owner's rows into an index lookup. The extension is created when the role may (it is a
//! trusted extension from PostgreSQL 13 on); where it is missing or refused the indexes are
//! left out and the search still works, as a scan. SQLite has no trigram indexes in its
//! default build; its search compares without `lower()` (its `LIKE` already ignores ASCII
//! case), which is what keeps that scan short.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
DO $$
BEGIN
    BEGIN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'pg_trgm is not available (%); the history search scans', SQLERRM;
    END;
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        EXECUTE 'CREATE INDEX IF NOT EXISTS idx_conversations_title_trgm ON conversations USING gin (lower(title) gin_trgm_ops)';
        EXECUTE 'CREATE INDEX IF NOT EXISTS idx_conversations_session_trgm ON conversations USING gin (lower(session_id) gin_trgm_ops)';
    END IF;
END
$$;
"#;

const DOWN: &str = "DROP INDEX IF EXISTS idx_conversations_title_trgm; \
                    DROP INDEX IF EXISTS idx_conversations_session_trgm;";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if db.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared(UP).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if db.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared(DOWN).await?;
        }
        Ok(())
    }
}
