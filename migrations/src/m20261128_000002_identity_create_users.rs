//! Users and their links to upstream identity providers.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Username,
    UsernameKey,
    Email,
    EmailKey,
    Nickname,
    Phonenum,
    Avatar,
    Role,
    PasswordHash,
    Config,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum UserIdentities {
    Table,
    ProviderId,
    Subject,
    UserId,
    Email,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Users::Id)
                            .string_len(32)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Users::Username).string_len(64).not_null())
                    .col(
                        ColumnDef::new(Users::UsernameKey)
                            .string_len(64)
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(Users::Email).string_len(254).null())
                    .col(
                        ColumnDef::new(Users::EmailKey)
                            .string_len(254)
                            .null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(Users::Nickname).string_len(128).null())
                    .col(ColumnDef::new(Users::Phonenum).string_len(32).null())
                    .col(ColumnDef::new(Users::Avatar).text().null())
                    .col(ColumnDef::new(Users::Role).string_len(16).not_null())
                    .col(ColumnDef::new(Users::PasswordHash).text().null())
                    .col(ColumnDef::new(Users::Config).text().not_null())
                    .col(
                        ColumnDef::new(Users::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Users::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_users_created_at")
                    .table(Users::Table)
                    .col(Users::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UserIdentities::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(UserIdentities::ProviderId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(UserIdentities::Subject)
                            .string_len(255)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(UserIdentities::UserId)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(ColumnDef::new(UserIdentities::Email).string_len(254).null())
                    .col(
                        ColumnDef::new(UserIdentities::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(UserIdentities::ProviderId)
                            .col(UserIdentities::Subject),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_user_identities_user")
                            .from(UserIdentities::Table, UserIdentities::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(UserIdentities::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Users::Table).to_owned())
            .await
    }
}
