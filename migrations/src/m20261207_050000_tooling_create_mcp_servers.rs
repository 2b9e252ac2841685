//! MCP servers: one row per user and server name, the API key sealed, the tools as JSON.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum McpServers {
    Table,
    Id,
    UserId,
    Name,
    Protocol,
    Url,
    ApiKeySealed,
    Description,
    Disabled,
    Tools,
    CreatedAt,
    UpdatedAt,
}

fn time(col: McpServers) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(McpServers::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(McpServers::Id)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(McpServers::UserId).string_len(64).not_null())
                    .col(ColumnDef::new(McpServers::Name).string_len(256).not_null())
                    .col(
                        ColumnDef::new(McpServers::Protocol)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(ColumnDef::new(McpServers::Url).text().not_null())
                    .col(ColumnDef::new(McpServers::ApiKeySealed).text().null())
                    .col(ColumnDef::new(McpServers::Description).text().not_null())
                    .col(ColumnDef::new(McpServers::Disabled).boolean().not_null())
                    .col(ColumnDef::new(McpServers::Tools).text().not_null())
                    .col(time(McpServers::CreatedAt))
                    .col(time(McpServers::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_mcp_servers_user_name")
                    .table(McpServers::Table)
                    .col(McpServers::UserId)
                    .col(McpServers::Name)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(McpServers::Table).to_owned())
            .await
    }
}
