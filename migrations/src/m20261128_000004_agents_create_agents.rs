//! Agents (their configuration as a JSON document) and the users they are shared with.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Agents {
    Table,
    Id,
    UserId,
    Name,
    NameKey,
    Config,
    IsDefault,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AgentGrants {
    Table,
    AgentId,
    UserId,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Agents::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Agents::Id)
                            .string_len(32)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Agents::UserId).string_len(32).not_null())
                    .col(ColumnDef::new(Agents::Name).string_len(128).not_null())
                    .col(ColumnDef::new(Agents::NameKey).string_len(128).not_null())
                    .col(ColumnDef::new(Agents::Config).text().not_null())
                    .col(ColumnDef::new(Agents::IsDefault).boolean().not_null())
                    .col(
                        ColumnDef::new(Agents::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Agents::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_agents_owner_name")
                    .table(Agents::Table)
                    .col(Agents::UserId)
                    .col(Agents::NameKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AgentGrants::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(AgentGrants::AgentId)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AgentGrants::UserId)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AgentGrants::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(AgentGrants::AgentId)
                            .col(AgentGrants::UserId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_agent_grants_agent")
                            .from(AgentGrants::Table, AgentGrants::AgentId)
                            .to(Agents::Table, Agents::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_agent_grants_user")
                    .table(AgentGrants::Table)
                    .col(AgentGrants::UserId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AgentGrants::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Agents::Table).to_owned())
            .await
    }
}
