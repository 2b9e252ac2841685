//! How many conversations each owner has, kept by the writer in the transaction that opens or
//! deletes one, so the unfiltered history page's `total` is one row instead of a count over
//! the owner's rows (a scan of thousands on PostgreSQL).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ConversationCounts {
    Table,
    UserId,
    Total,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ConversationCounts::Table)
                    .col(
                        ColumnDef::new(ConversationCounts::UserId)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(ConversationCounts::Total)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await?;
        // Conversations written before the counts existed.
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO conversation_counts (user_id, total) \
                 SELECT user_id, COUNT(*) FROM conversations GROUP BY user_id",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ConversationCounts::Table).to_owned())
            .await
    }
}
