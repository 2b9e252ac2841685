//! Table models (crate-private).

pub(crate) mod kdb {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "knowledge_bases")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub user_id: String,
        pub name: String,
        pub intro: String,
        pub kb_type: String,
        /// JSON object.
        pub setting: String,
        /// Bumped whenever the chunks of any of its documents change.
        pub revision: i64,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod doc {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "kdb_docs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub kdb_id: String,
        /// The knowledge base's owner.
        pub user_id: String,
        pub task_id: String,
        pub name: String,
        pub data_source: String,
        pub status: i32,
        pub error: Option<String>,
        pub attempts: i32,
        pub locked_until: Option<DateTimeUtc>,
        pub size: i64,
        /// JSON object.
        pub metadata: String,
        /// The knowledge base's revision when its chunks were written (0: none).
        pub chunk_version: i64,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod chunk {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "kdb_chunks")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub kdb_id: String,
        pub doc_id: String,
        pub seq: i32,
        pub title: String,
        pub content: String,
        pub start_char: i64,
        pub end_char: i64,
        /// Little-endian f32s, normalised (null without an embedding model).
        pub embedding: Option<Vec<u8>>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
