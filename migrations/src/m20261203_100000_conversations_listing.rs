//! Conversation listing at scale: per-row counts (messages, user and agent messages) kept by
//! the writer so `sort_by=messages` and the list's counts need no join, the share flag, and
//! indexes for each sort (per owner, and across owners for admins) and for usage statistics.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Conversations {
    Table,
    UserId,
    AgentId,
    Title,
    UpdatedAt,
    MessageCount,
    UserCount,
    AgentCount,
    Shared,
}

#[derive(DeriveIden)]
enum TokenUsage {
    Table,
    UserId,
    AgentId,
    StartedAt,
}

const COUNTS: [Conversations; 3] = [
    Conversations::MessageCount,
    Conversations::UserCount,
    Conversations::AgentCount,
];

fn indexes() -> Vec<IndexCreateStatement> {
    let c = |name: &str, cols: Vec<Conversations>| {
        let mut index = Index::create();
        index.name(name).table(Conversations::Table);
        for col in cols {
            index.col(col);
        }
        index.to_owned()
    };
    vec![
        c(
            "idx_conversations_user_title",
            vec![Conversations::UserId, Conversations::Title],
        ),
        c(
            "idx_conversations_user_messages",
            vec![
                Conversations::UserId,
                Conversations::MessageCount,
                Conversations::UpdatedAt,
            ],
        ),
        c(
            "idx_conversations_user_agent",
            vec![
                Conversations::UserId,
                Conversations::AgentId,
                Conversations::UpdatedAt,
            ],
        ),
        c("idx_conversations_updated", vec![Conversations::UpdatedAt]),
        c("idx_conversations_title", vec![Conversations::Title]),
        c(
            "idx_conversations_messages",
            vec![Conversations::MessageCount, Conversations::UpdatedAt],
        ),
        Index::create()
            .name("idx_token_usage_user_started")
            .table(TokenUsage::Table)
            .col(TokenUsage::UserId)
            .col(TokenUsage::StartedAt)
            .to_owned(),
        Index::create()
            .name("idx_token_usage_agent_started")
            .table(TokenUsage::Table)
            .col(TokenUsage::AgentId)
            .col(TokenUsage::StartedAt)
            .to_owned(),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        for col in COUNTS {
            manager
                .alter_table(
                    Table::alter()
                        .table(Conversations::Table)
                        .add_column(ColumnDef::new(col).integer().not_null().default(0))
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Conversations::Table)
                    .add_column(
                        ColumnDef::new(Conversations::Shared)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .to_owned(),
            )
            .await?;
        // Rows written before the counts existed.
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE conversations SET \
                 message_count = (SELECT COUNT(*) FROM conversation_messages m \
                   WHERE m.session_id = conversations.session_id), \
                 user_count = (SELECT COUNT(*) FROM conversation_messages m \
                   WHERE m.session_id = conversations.session_id AND m.role = 'user'), \
                 agent_count = (SELECT COUNT(*) FROM conversation_messages m \
                   WHERE m.session_id = conversations.session_id AND m.role = 'assistant')",
            )
            .await?;
        for index in indexes() {
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for index in indexes() {
            let name = index
                .get_index_spec()
                .get_name()
                .unwrap_or_default()
                .to_owned();
            let table = if name.starts_with("idx_token_usage") {
                TokenUsage::Table.into_iden()
            } else {
                Conversations::Table.into_iden()
            };
            manager
                .drop_index(Index::drop().name(name).table(table).to_owned())
                .await?;
        }
        for col in COUNTS.into_iter().chain([Conversations::Shared]) {
            manager
                .alter_table(
                    Table::alter()
                        .table(Conversations::Table)
                        .drop_column(col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
