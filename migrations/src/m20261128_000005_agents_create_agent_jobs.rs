//! Durable asynchronous agent jobs (auto-generate, prompt optimisation), claimed with a lease.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AgentJobs {
    Table,
    Id,
    UserId,
    TaskType,
    Status,
    Input,
    Result,
    Error,
    Metadata,
    Attempts,
    CancelRequested,
    LockedBy,
    LockedUntil,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AgentJobs::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(AgentJobs::Id)
                            .string_len(32)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(AgentJobs::UserId).string_len(32).not_null())
                    .col(
                        ColumnDef::new(AgentJobs::TaskType)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(ColumnDef::new(AgentJobs::Status).string_len(16).not_null())
                    .col(ColumnDef::new(AgentJobs::Input).text().not_null())
                    .col(ColumnDef::new(AgentJobs::Result).text().null())
                    .col(ColumnDef::new(AgentJobs::Error).text().null())
                    .col(ColumnDef::new(AgentJobs::Metadata).text().not_null())
                    .col(ColumnDef::new(AgentJobs::Attempts).integer().not_null())
                    .col(
                        ColumnDef::new(AgentJobs::CancelRequested)
                            .boolean()
                            .not_null(),
                    )
                    .col(ColumnDef::new(AgentJobs::LockedBy).string_len(64).null())
                    .col(
                        ColumnDef::new(AgentJobs::LockedUntil)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(AgentJobs::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AgentJobs::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_agent_jobs_status")
                    .table(AgentJobs::Table)
                    .col(AgentJobs::Status)
                    .col(AgentJobs::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AgentJobs::Table).to_owned())
            .await
    }
}
