//! LLM provider records; API keys are stored sealed (never in clear).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum LlmProviders {
    Table,
    Id,
    UserId,
    Name,
    BaseUrl,
    ApiKeySealed,
    Model,
    MaxTokens,
    Temperature,
    TopP,
    PresencePenalty,
    MaxModelLen,
    SupportsMultimodal,
    SupportsStructuredOutput,
    IsDefault,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(LlmProviders::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(LlmProviders::Id)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(LlmProviders::UserId)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(LlmProviders::Name)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(LlmProviders::BaseUrl)
                            .string_len(2048)
                            .not_null(),
                    )
                    .col(ColumnDef::new(LlmProviders::ApiKeySealed).text().not_null())
                    .col(
                        ColumnDef::new(LlmProviders::Model)
                            .string_len(256)
                            .not_null(),
                    )
                    .col(ColumnDef::new(LlmProviders::MaxTokens).big_integer().null())
                    .col(ColumnDef::new(LlmProviders::Temperature).double().null())
                    .col(ColumnDef::new(LlmProviders::TopP).double().null())
                    .col(
                        ColumnDef::new(LlmProviders::PresencePenalty)
                            .double()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(LlmProviders::MaxModelLen)
                            .big_integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(LlmProviders::SupportsMultimodal)
                            .boolean()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(LlmProviders::SupportsStructuredOutput)
                            .boolean()
                            .not_null(),
                    )
                    .col(ColumnDef::new(LlmProviders::IsDefault).boolean().not_null())
                    .col(
                        ColumnDef::new(LlmProviders::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(LlmProviders::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_llm_providers_user")
                    .table(LlmProviders::Table)
                    .col(LlmProviders::UserId)
                    .col(LlmProviders::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(LlmProviders::Table).to_owned())
            .await
    }
}
