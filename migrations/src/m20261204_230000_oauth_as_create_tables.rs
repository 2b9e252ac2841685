//! The OAuth2 authorization server: registered clients, issued tokens (hashes only; one row
//! per access/refresh pair, `grant_id` ties a rotation chain together) and id_token signing
//! keys (sealed).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Oauth2Clients {
    Table,
    ClientId,
    Name,
    Description,
    SecretHash,
    Enabled,
    SkipConsent,
    GrantTypes,
    RedirectUris,
    Scope,
    AuthMethod,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Oauth2Tokens {
    Table,
    Id,
    GrantId,
    ClientId,
    UserId,
    Scope,
    AccessHash,
    AccessExpiresAt,
    RefreshHash,
    RefreshExpiresAt,
    RevokedAt,
    AuthTime,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Oauth2SigningKeys {
    Table,
    Kid,
    PrivateKey,
    CreatedAt,
}

fn time(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).timestamp_with_time_zone().to_owned()
}

fn text(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).text().to_owned()
}

fn short(col: impl IntoIden, len: u32) -> ColumnDef {
    ColumnDef::new(col).string_len(len).to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Oauth2Clients::Table)
                    .if_not_exists()
                    .col(short(Oauth2Clients::ClientId, 128).not_null().primary_key())
                    .col(text(Oauth2Clients::Name).not_null())
                    .col(text(Oauth2Clients::Description).null())
                    .col(short(Oauth2Clients::SecretHash, 64).null())
                    .col(ColumnDef::new(Oauth2Clients::Enabled).boolean().not_null())
                    .col(
                        ColumnDef::new(Oauth2Clients::SkipConsent)
                            .boolean()
                            .not_null(),
                    )
                    .col(text(Oauth2Clients::GrantTypes).not_null())
                    .col(text(Oauth2Clients::RedirectUris).not_null())
                    .col(text(Oauth2Clients::Scope).not_null())
                    .col(short(Oauth2Clients::AuthMethod, 32).not_null())
                    .col(time(Oauth2Clients::CreatedAt).not_null())
                    .col(time(Oauth2Clients::UpdatedAt).not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Oauth2Tokens::Table)
                    .if_not_exists()
                    .col(short(Oauth2Tokens::Id, 36).not_null().primary_key())
                    .col(short(Oauth2Tokens::GrantId, 36).not_null())
                    .col(short(Oauth2Tokens::ClientId, 128).not_null())
                    .col(short(Oauth2Tokens::UserId, 64).not_null())
                    .col(text(Oauth2Tokens::Scope).not_null())
                    .col(short(Oauth2Tokens::AccessHash, 64).not_null().unique_key())
                    .col(time(Oauth2Tokens::AccessExpiresAt).not_null())
                    .col(short(Oauth2Tokens::RefreshHash, 64).null().unique_key())
                    .col(time(Oauth2Tokens::RefreshExpiresAt).null())
                    .col(time(Oauth2Tokens::RevokedAt).null())
                    .col(time(Oauth2Tokens::AuthTime).not_null())
                    .col(time(Oauth2Tokens::CreatedAt).not_null())
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("idx_oauth2_tokens_grant", Oauth2Tokens::GrantId),
            ("idx_oauth2_tokens_user", Oauth2Tokens::UserId),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Oauth2Tokens::Table)
                        .col(col)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(Oauth2SigningKeys::Table)
                    .if_not_exists()
                    .col(short(Oauth2SigningKeys::Kid, 64).not_null().primary_key())
                    .col(text(Oauth2SigningKeys::PrivateKey).not_null())
                    .col(time(Oauth2SigningKeys::CreatedAt).not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Oauth2SigningKeys::Table.into_iden(),
            Oauth2Tokens::Table.into_iden(),
            Oauth2Clients::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
