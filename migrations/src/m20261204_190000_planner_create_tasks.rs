//! Planner tasks: recurring (cron) templates, one-time tasks and spawned instances (one table,
//! `recurring_task_id` links an instance to its template), and each execution's history.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum PlannerRecurringTasks {
    Table,
    Id,
    UserId,
    Name,
    Description,
    SessionId,
    AgentId,
    CronExpression,
    Timezone,
    Enabled,
    CreatedAt,
    UpdatedAt,
    LastExecutedAt,
}

#[derive(DeriveIden)]
enum PlannerTasks {
    Table,
    Id,
    UserId,
    Name,
    Description,
    AgentId,
    SessionId,
    ExecuteAt,
    Timezone,
    Status,
    CreatedAt,
    UpdatedAt,
    CompletedAt,
    RetryCount,
    MaxRetries,
    RecurringTaskId,
    LockedUntil,
}

#[derive(DeriveIden)]
enum PlannerTaskHistory {
    Table,
    Id,
    TaskId,
    ExecutedAt,
    Status,
    Response,
    ErrorMessage,
}

fn time(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).timestamp_with_time_zone().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PlannerRecurringTasks::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(PlannerRecurringTasks::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(PlannerRecurringTasks::UserId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PlannerRecurringTasks::Name)
                            .text()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PlannerRecurringTasks::Description)
                            .text()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(PlannerRecurringTasks::SessionId)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PlannerRecurringTasks::AgentId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PlannerRecurringTasks::CronExpression)
                            .string_len(256)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PlannerRecurringTasks::Timezone)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PlannerRecurringTasks::Enabled)
                            .boolean()
                            .not_null(),
                    )
                    .col(time(PlannerRecurringTasks::CreatedAt).not_null())
                    .col(time(PlannerRecurringTasks::UpdatedAt).not_null())
                    .col(time(PlannerRecurringTasks::LastExecutedAt).null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_planner_recurring_user")
                    .table(PlannerRecurringTasks::Table)
                    .col(PlannerRecurringTasks::UserId)
                    .col(PlannerRecurringTasks::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PlannerTasks::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(PlannerTasks::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(PlannerTasks::UserId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(ColumnDef::new(PlannerTasks::Name).text().not_null())
                    .col(ColumnDef::new(PlannerTasks::Description).text().null())
                    .col(
                        ColumnDef::new(PlannerTasks::AgentId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PlannerTasks::SessionId)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(time(PlannerTasks::ExecuteAt).not_null())
                    .col(
                        ColumnDef::new(PlannerTasks::Timezone)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PlannerTasks::Status)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(time(PlannerTasks::CreatedAt).not_null())
                    .col(time(PlannerTasks::UpdatedAt).not_null())
                    .col(time(PlannerTasks::CompletedAt).null())
                    .col(
                        ColumnDef::new(PlannerTasks::RetryCount)
                            .integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PlannerTasks::MaxRetries)
                            .integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PlannerTasks::RecurringTaskId)
                            .big_integer()
                            .null(),
                    )
                    .col(time(PlannerTasks::LockedUntil).null())
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            (
                "idx_planner_tasks_user",
                vec![PlannerTasks::UserId, PlannerTasks::Id],
            ),
            (
                "idx_planner_tasks_due",
                vec![PlannerTasks::Status, PlannerTasks::ExecuteAt],
            ),
            (
                "idx_planner_tasks_recurring",
                vec![PlannerTasks::RecurringTaskId, PlannerTasks::ExecuteAt],
            ),
        ] {
            let mut index = Index::create();
            index.name(name).table(PlannerTasks::Table);
            for col in cols {
                index.col(col);
            }
            manager.create_index(index.to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(PlannerTaskHistory::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(PlannerTaskHistory::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(PlannerTaskHistory::TaskId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(time(PlannerTaskHistory::ExecutedAt).not_null())
                    .col(
                        ColumnDef::new(PlannerTaskHistory::Status)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(ColumnDef::new(PlannerTaskHistory::Response).text().null())
                    .col(
                        ColumnDef::new(PlannerTaskHistory::ErrorMessage)
                            .text()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_planner_history_task")
                    .table(PlannerTaskHistory::Table)
                    .col(PlannerTaskHistory::TaskId)
                    .col(PlannerTaskHistory::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            PlannerTaskHistory::Table.into_iden(),
            PlannerTasks::Table.into_iden(),
            PlannerRecurringTasks::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
