//! Desktop releases: one row per version, artifacts as a JSON array.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum DesktopReleases {
    Table,
    Version,
    ReleaseNotes,
    PubDate,
    Artifacts,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DesktopReleases::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(DesktopReleases::Version)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(DesktopReleases::ReleaseNotes)
                            .text()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(DesktopReleases::PubDate)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(DesktopReleases::Artifacts).text().not_null())
                    .col(
                        ColumnDef::new(DesktopReleases::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(DesktopReleases::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DesktopReleases::Table).to_owned())
            .await
    }
}
