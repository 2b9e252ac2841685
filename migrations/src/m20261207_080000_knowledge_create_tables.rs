//! Knowledge bases, their documents (each row is also its own ingestion job: status, attempts,
//! last error and a lease) and the chunks retrieval searches (the source of truth; the
//! tantivy index of each replica is derived from them).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum KnowledgeBases {
    Table,
    Id,
    UserId,
    Name,
    Intro,
    KbType,
    Setting,
    Revision,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum KdbDocs {
    Table,
    Id,
    KdbId,
    UserId,
    TaskId,
    Name,
    DataSource,
    Status,
    Error,
    Attempts,
    LockedUntil,
    Size,
    Metadata,
    ChunkVersion,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum KdbChunks {
    Table,
    Id,
    KdbId,
    DocId,
    Seq,
    Title,
    Content,
    StartChar,
    EndChar,
    Embedding,
}

fn time(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

fn id(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).string_len(64).not_null().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(KnowledgeBases::Table)
                    .if_not_exists()
                    .col(id(KnowledgeBases::Id).primary_key())
                    .col(id(KnowledgeBases::UserId))
                    .col(
                        ColumnDef::new(KnowledgeBases::Name)
                            .string_len(256)
                            .not_null(),
                    )
                    .col(ColumnDef::new(KnowledgeBases::Intro).text().not_null())
                    .col(
                        ColumnDef::new(KnowledgeBases::KbType)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(ColumnDef::new(KnowledgeBases::Setting).text().not_null())
                    .col(
                        ColumnDef::new(KnowledgeBases::Revision)
                            .big_integer()
                            .not_null(),
                    )
                    .col(time(KnowledgeBases::CreatedAt))
                    .col(time(KnowledgeBases::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_knowledge_bases_user")
                    .table(KnowledgeBases::Table)
                    .col(KnowledgeBases::UserId)
                    .col(KnowledgeBases::CreatedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(KdbDocs::Table)
                    .if_not_exists()
                    .col(id(KdbDocs::Id).primary_key())
                    .col(id(KdbDocs::KdbId))
                    .col(id(KdbDocs::UserId))
                    .col(id(KdbDocs::TaskId))
                    .col(ColumnDef::new(KdbDocs::Name).string_len(512).not_null())
                    .col(
                        ColumnDef::new(KdbDocs::DataSource)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(ColumnDef::new(KdbDocs::Status).integer().not_null())
                    .col(ColumnDef::new(KdbDocs::Error).text().null())
                    .col(ColumnDef::new(KdbDocs::Attempts).integer().not_null())
                    .col(
                        ColumnDef::new(KdbDocs::LockedUntil)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(KdbDocs::Size).big_integer().not_null())
                    .col(ColumnDef::new(KdbDocs::Metadata).text().not_null())
                    .col(
                        ColumnDef::new(KdbDocs::ChunkVersion)
                            .big_integer()
                            .not_null(),
                    )
                    .col(time(KdbDocs::CreatedAt))
                    .col(time(KdbDocs::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            ("ix_kdb_docs_kdb", vec![KdbDocs::KdbId, KdbDocs::CreatedAt]),
            ("ix_kdb_docs_task", vec![KdbDocs::KdbId, KdbDocs::TaskId]),
            (
                "ix_kdb_docs_status",
                vec![KdbDocs::Status, KdbDocs::UpdatedAt],
            ),
        ] {
            let mut index = Index::create();
            index.name(name).table(KdbDocs::Table).if_not_exists();
            for col in cols {
                index.col(col);
            }
            manager.create_index(index.to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(KdbChunks::Table)
                    .if_not_exists()
                    .col(id(KdbChunks::Id).primary_key())
                    .col(id(KdbChunks::KdbId))
                    .col(id(KdbChunks::DocId))
                    .col(ColumnDef::new(KdbChunks::Seq).integer().not_null())
                    .col(ColumnDef::new(KdbChunks::Title).text().not_null())
                    .col(ColumnDef::new(KdbChunks::Content).text().not_null())
                    .col(
                        ColumnDef::new(KdbChunks::StartChar)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(KdbChunks::EndChar).big_integer().not_null())
                    // Little-endian f32s, normalised; null without an embedding model.
                    .col(ColumnDef::new(KdbChunks::Embedding).blob().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_kdb_chunks_doc")
                    .table(KdbChunks::Table)
                    .col(KdbChunks::DocId)
                    .col(KdbChunks::Seq)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_kdb_chunks_kdb")
                    .table(KdbChunks::Table)
                    .col(KdbChunks::KdbId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            KdbChunks::Table.into_iden(),
            KdbDocs::Table.into_iden(),
            KnowledgeBases::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
