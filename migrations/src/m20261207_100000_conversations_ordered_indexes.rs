//! The per-owner listing indexes end with the session id, the tiebreak every sort orders by,
//! so a page is read in index order with no sort step (PostgreSQL otherwise adds an
//! incremental sort over rows with equal keys).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Conversations {
    Table,
    UserId,
    Title,
    UpdatedAt,
    MessageCount,
    SessionId,
}

/// (old name, new name, columns of the new index).
fn replaced() -> Vec<(&'static str, &'static str, Vec<Conversations>)> {
    use Conversations as C;
    vec![
        (
            "idx_conversations_user",
            "idx_conversations_user_date",
            vec![C::UserId, C::UpdatedAt, C::SessionId],
        ),
        (
            "idx_conversations_user_title",
            "idx_conversations_user_title_id",
            vec![C::UserId, C::Title, C::SessionId],
        ),
        (
            "idx_conversations_user_messages",
            "idx_conversations_user_messages_id",
            vec![C::UserId, C::MessageCount, C::UpdatedAt, C::SessionId],
        ),
    ]
}

fn drop(name: &str) -> IndexDropStatement {
    Index::drop()
        .name(name)
        .table(Conversations::Table)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (old, new, cols) in replaced() {
            let mut index = Index::create();
            index.name(new).table(Conversations::Table);
            for col in cols {
                index.col(col);
            }
            manager.create_index(index.to_owned()).await?;
            manager.drop_index(drop(old)).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (old, new, mut cols) in replaced() {
            cols.pop();
            let mut index = Index::create();
            index.name(old).table(Conversations::Table);
            for col in cols {
                index.col(col);
            }
            manager.create_index(index.to_owned()).await?;
            manager.drop_index(drop(new)).await?;
        }
        Ok(())
    }
}
