//! Fair job claiming: when each job was last claimed (the user served longest ago goes
//! first), and an index for the per-user lookups (pending cap, last claim).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AgentJobs {
    Table,
    UserId,
    ClaimedAt,
}

const INDEX: &str = "idx_agent_jobs_user_claimed";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(AgentJobs::Table)
                    .add_column(
                        ColumnDef::new(AgentJobs::ClaimedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(AgentJobs::Table)
                    .col(AgentJobs::UserId)
                    .col(AgentJobs::ClaimedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(INDEX).table(AgentJobs::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(AgentJobs::Table)
                    .drop_column(AgentJobs::ClaimedAt)
                    .to_owned(),
            )
            .await
    }
}
