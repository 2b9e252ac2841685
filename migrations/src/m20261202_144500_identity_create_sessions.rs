//! Server-side sessions and their tokens in the database (the embedded default keeps them
//! here, so restarts and every process see them), and the revocation generation that lets
//! each process cache valid sessions and still see a revocation made by another one.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuthSessions {
    Table,
    Key,
    UserId,
    Username,
    Role,
    CreatedAt,
    ExpiresAt,
    TouchedAt,
    IdleUntil,
}

#[derive(DeriveIden)]
enum AuthTokens {
    Table,
    Hash,
    Kind,
    SessionKey,
    UserId,
    Pair,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum AuthRevocations {
    Table,
    Id,
    Generation,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuthSessions::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(AuthSessions::Key)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(AuthSessions::UserId)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AuthSessions::Username)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(ColumnDef::new(AuthSessions::Role).string_len(16).not_null())
                    .col(
                        ColumnDef::new(AuthSessions::CreatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AuthSessions::ExpiresAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AuthSessions::TouchedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AuthSessions::IdleUntil)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_auth_sessions_user")
                    .table(AuthSessions::Table)
                    .col(AuthSessions::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_auth_sessions_idle_until")
                    .table(AuthSessions::Table)
                    .col(AuthSessions::IdleUntil)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuthTokens::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(AuthTokens::Hash)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(AuthTokens::Kind).string_len(16).not_null())
                    .col(
                        ColumnDef::new(AuthTokens::SessionKey)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(ColumnDef::new(AuthTokens::UserId).string_len(32).not_null())
                    .col(ColumnDef::new(AuthTokens::Pair).string_len(64).null())
                    .col(
                        ColumnDef::new(AuthTokens::ExpiresAt)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_auth_tokens_session")
                    .table(AuthTokens::Table)
                    .col(AuthTokens::SessionKey)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_auth_tokens_user")
                    .table(AuthTokens::Table)
                    .col(AuthTokens::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_auth_tokens_expires_at")
                    .table(AuthTokens::Table)
                    .col(AuthTokens::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuthRevocations::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(AuthRevocations::Id)
                            .integer()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(AuthRevocations::Generation)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(AuthRevocations::Table)
                    .columns([AuthRevocations::Id, AuthRevocations::Generation])
                    .values_panic([1.into(), 0.into()])
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AuthRevocations::Table.into_iden(),
            AuthTokens::Table.into_iden(),
            AuthSessions::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
