//! Deleted users whose data is still to be removed: written in the transaction that deletes
//! the user, removed once every service dropped the user's data, so a failure or a crash in
//! between is retried by the workers' sweep instead of leaving the data behind.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum UserCleanups {
    Table,
    UserId,
    DeletedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(UserCleanups::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(UserCleanups::UserId)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(UserCleanups::DeletedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(UserCleanups::Table).to_owned())
            .await
    }
}
