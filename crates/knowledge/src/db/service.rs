//! [`SeaOrmKnowledge`]: knowledge bases, documents and chunks over SeaORM, their files under
//! `<data dir>/knowledge/files/<kdb id>/<doc id>`, and retrieval through [`Indexes`].

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use chrono::Utc;
use platform::Actor;
use platform::db::Db;
use platform::objects::ObjectStore;
use platform::pagination::{Page, PageRequest};
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Select, TransactionTrait,
};
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::entities::{chunk, doc, kdb};
use super::ingest::IngestSettings;
use crate::embed::{Embedder, VectorCache, Vectors, from_bytes, fuse, nearest};
use crate::index::{IndexChunk, Indexes};
use crate::model::{
    MAX_FILE_NAME_CHARS, MAX_INTRO_CHARS, MAX_NAME_CHARS, MAX_QUERY_CHARS, MAX_SETTING_BYTES,
    MAX_TOP_K, MAX_TYPE_CHARS, check_text, file_name,
};
use crate::{
    Doc, DocQuery, DocStatus, Hit, KnowledgeBase, KnowledgeBaseQuery, KnowledgeBaseSummary,
    KnowledgeBaseUpdate, KnowledgeBases, KnowledgeError, NewFile, NewKnowledgeBase, TaskProgress,
    parse,
};

/// At most this many files in one upload.
const MAX_FILES_PER_UPLOAD: usize = 50;

pub struct SeaOrmKnowledge {
    pub(super) db: Db,
    /// The uploaded files, under `knowledge/<kdb id>/<doc id>`.
    pub(super) objects: Arc<dyn ObjectStore>,
    pub(super) indexes: Indexes,
    pub(super) settings: IngestSettings,
    pub(super) wake: Notify,
    /// With an embedding model, retrieval is hybrid (BM25 and nearest passages, fused).
    pub(super) embedder: Option<Embedder>,
    pub(super) vectors: VectorCache,
}

pub(super) fn to_base(row: kdb::Model) -> KnowledgeBase {
    KnowledgeBase {
        setting: serde_json::from_str(&row.setting).unwrap_or_else(|_| json!({})),
        id: row.id,
        user_id: row.user_id,
        name: row.name,
        intro: row.intro,
        kb_type: row.kb_type,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

pub(super) fn to_doc(row: doc::Model) -> Doc {
    Doc {
        status: DocStatus::from_code(row.status).unwrap_or(DocStatus::Failed),
        metadata: serde_json::from_str(&row.metadata).unwrap_or_else(|_| json!({})),
        size: u64::try_from(row.size).unwrap_or(0),
        id: row.id,
        kdb_id: row.kdb_id,
        user_id: row.user_id,
        task_id: row.task_id,
        name: row.name,
        data_source: row.data_source,
        error: row.error,
        attempts: row.attempts,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

fn lowered_like<C: ColumnTrait>(col: C, text: &str) -> Expr {
    Expr::expr(Func::lower(Expr::col(col)))
        .like(LikeExpr::new(platform::db::contains_pattern(text)).escape('\\'))
}

fn given(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

impl SeaOrmKnowledge {
    /// Knowledge bases in `db`, their files in `objects`, this process's indexes under
    /// `index_dir` (`<data dir>/knowledge/index`).
    pub fn new(
        db: Db,
        objects: Arc<dyn ObjectStore>,
        index_dir: &Path,
        settings: IngestSettings,
    ) -> Self {
        Self {
            db,
            objects,
            indexes: Indexes::new(index_dir),
            settings,
            wake: Notify::new(),
            embedder: None,
            vectors: VectorCache::default(),
        }
    }

    /// Embeds passages at ingestion and queries at retrieval (hybrid retrieval).
    pub fn with_embedder(mut self, embedder: Embedder) -> Self {
        self.embedder = Some(embedder);
        self
    }

    /// The passage vectors of a base at `revision` (loaded once per revision).
    async fn vectors_of(
        &self,
        kdb_id: &str,
        revision: i64,
    ) -> Result<Arc<Vectors>, KnowledgeError> {
        if let Some(v) = self.vectors.get(kdb_id, revision) {
            return Ok(v);
        }
        let rows: Vec<(String, Option<Vec<u8>>)> = chunk::Entity::find()
            .select_only()
            .column(chunk::Column::Id)
            .column(chunk::Column::Embedding)
            .filter(chunk::Column::KdbId.eq(kdb_id))
            .filter(chunk::Column::Embedding.is_not_null())
            .into_tuple()
            .all(&self.db)
            .await?;
        let rows = rows
            .into_iter()
            .filter_map(|(id, bytes)| Some((id, from_bytes(&bytes?))))
            .collect();
        Ok(self.vectors.put(kdb_id, Vectors { revision, rows }))
    }

    /// The nearest passages to `query`, best first; empty without an embedding model, or
    /// when it fails (retrieval then stays full-text only).
    async fn nearest_ids(
        &self,
        kdb_id: &str,
        revision: i64,
        query: &str,
        limit: usize,
    ) -> Result<Vec<String>, KnowledgeError> {
        let Some(embedder) = &self.embedder else {
            return Ok(Vec::new());
        };
        let vector = match embedder.embed(&[query.to_owned()]).await {
            Ok(mut v) if !v.is_empty() => v.swap_remove(0),
            Ok(_) => return Ok(Vec::new()),
            Err(e) => {
                tracing::warn!(error = %e, "the embedding model failed; retrieving by text only");
                return Ok(Vec::new());
            }
        };
        let vectors = self.vectors_of(kdb_id, revision).await?;
        Ok(nearest(&vectors, &vector, limit)
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    pub(super) fn object_key(kdb_id: &str, doc_id: &str) -> String {
        format!("knowledge/{kdb_id}/{doc_id}")
    }

    /// The knowledge base, if the caller may see it.
    async fn owned(&self, actor: &Actor, id: &str) -> Result<kdb::Model, KnowledgeError> {
        if !platform::ids::is_safe_id(id) {
            return Err(KnowledgeError::NotFound);
        }
        let mut query = kdb::Entity::find_by_id(id.to_owned());
        if !actor.is_admin {
            query = query.filter(kdb::Column::UserId.eq(actor.user_id.clone()));
        }
        query.one(&self.db).await?.ok_or(KnowledgeError::NotFound)
    }

    /// The document, if the caller may see its knowledge base.
    async fn owned_doc(&self, actor: &Actor, id: &str) -> Result<doc::Model, KnowledgeError> {
        if !platform::ids::is_safe_id(id) {
            return Err(KnowledgeError::DocNotFound);
        }
        let mut query = doc::Entity::find_by_id(id.to_owned());
        if !actor.is_admin {
            query = query.filter(doc::Column::UserId.eq(actor.user_id.clone()));
        }
        query
            .one(&self.db)
            .await?
            .ok_or(KnowledgeError::DocNotFound)
    }

    /// Bumps a knowledge base's revision and returns the new one.
    pub(super) async fn bump<C: ConnectionTrait>(
        conn: &C,
        kdb_id: &str,
    ) -> Result<i64, KnowledgeError> {
        kdb::Entity::update_many()
            .col_expr(
                kdb::Column::Revision,
                Expr::col(kdb::Column::Revision).add(1),
            )
            .filter(kdb::Column::Id.eq(kdb_id))
            .exec(conn)
            .await?;
        Ok(kdb::Entity::find_by_id(kdb_id.to_owned())
            .one(conn)
            .await?
            .map_or(0, |k| k.revision))
    }

    /// Puts the matching documents back in the queue.
    async fn requeue(&self, filter: Condition) -> Result<(), KnowledgeError> {
        doc::Entity::update_many()
            .col_expr(doc::Column::Status, Expr::value(DocStatus::Pending.code()))
            .col_expr(doc::Column::Attempts, Expr::value(0))
            .col_expr(doc::Column::Error, Expr::value(Option::<String>::None))
            .col_expr(
                doc::Column::LockedUntil,
                Expr::value(Option::<chrono::DateTime<Utc>>::None),
            )
            .col_expr(doc::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(filter)
            .exec(&self.db)
            .await?;
        self.wake.notify_waiters();
        Ok(())
    }

    /// Removes documents' files after their rows are gone; a failure is logged, not
    /// returned (the rows are the truth, and a leftover file is unreachable).
    async fn remove_files(&self, kdb_id: &str, doc_ids: &[String]) {
        for id in doc_ids {
            if let Err(e) = self.objects.delete(&Self::object_key(kdb_id, id)).await {
                tracing::warn!(kdb_id, doc_id = %id, error = %e, "cannot remove a knowledge file");
            }
        }
    }

    /// Deletes documents (and their chunks) matching `filter` and bumps the revision.
    async fn delete_docs(&self, kdb_id: &str, filter: Condition) -> Result<(), KnowledgeError> {
        let txn = self.db.begin().await?;
        let ids: Vec<String> = doc::Entity::find()
            .select_only()
            .column(doc::Column::Id)
            .filter(filter.clone())
            .into_tuple()
            .all(&txn)
            .await?;
        for batch in ids.chunks(500) {
            chunk::Entity::delete_many()
                .filter(chunk::Column::DocId.is_in(batch.iter().cloned()))
                .exec(&txn)
                .await?;
        }
        doc::Entity::delete_many().filter(filter).exec(&txn).await?;
        Self::bump(&txn, kdb_id).await?;
        txn.commit().await?;
        self.remove_files(kdb_id, &ids).await;
        Ok(())
    }

    /// Every document of a knowledge base that has chunks, with its chunk version.
    async fn versions(db: &Db, kdb_id: &str) -> Result<BTreeMap<String, i64>, KnowledgeError> {
        let rows: Vec<(String, i64)> = doc::Entity::find()
            .select_only()
            .column(doc::Column::Id)
            .column(doc::Column::ChunkVersion)
            .filter(doc::Column::KdbId.eq(kdb_id))
            .filter(doc::Column::ChunkVersion.gt(0))
            .into_tuple()
            .all(db)
            .await?;
        Ok(rows.into_iter().collect())
    }

    async fn chunks_of(db: &Db, docs: Vec<String>) -> Result<Vec<IndexChunk>, KnowledgeError> {
        let mut out = Vec::new();
        for batch in docs.chunks(500) {
            let rows: Vec<(String, String, String, String)> = chunk::Entity::find()
                .select_only()
                .column(chunk::Column::Id)
                .column(chunk::Column::DocId)
                .column(chunk::Column::Title)
                .column(chunk::Column::Content)
                .filter(chunk::Column::DocId.is_in(batch.iter().cloned()))
                .into_tuple()
                .all(db)
                .await?;
            out.extend(
                rows.into_iter()
                    .map(|(id, doc_id, title, content)| IndexChunk {
                        id,
                        doc_id,
                        content: if title.is_empty() {
                            content
                        } else {
                            format!("{title}\n{content}")
                        },
                    }),
            );
        }
        Ok(out)
    }

    fn doc_filter(query: &DocQuery) -> Result<Select<doc::Entity>, KnowledgeError> {
        let mut select = doc::Entity::find().filter(doc::Column::KdbId.eq(query.kdb_id.clone()));
        if let Some(name) = given(query.name.as_deref()) {
            let name = check_text("query_name", name, MAX_FILE_NAME_CHARS, false)?;
            select = select.filter(lowered_like(doc::Column::Name, &name));
        }
        if !query.statuses.is_empty() {
            select =
                select.filter(doc::Column::Status.is_in(query.statuses.iter().map(|s| s.code())));
        }
        if let Some(task) = given(query.task_id.as_deref()) {
            // An id that cannot exist matches nothing (and never reaches the database).
            let task = if platform::ids::is_safe_id(task) {
                task
            } else {
                ""
            };
            select = select.filter(doc::Column::TaskId.eq(task));
        }
        Ok(select)
    }
}

async fn page_of<E, M>(
    db: &Db,
    select: Select<E>,
    page: PageRequest,
) -> Result<Page<M>, KnowledgeError>
where
    E: EntityTrait<Model = M>,
    M: sea_orm::FromQueryResult + Send + Sync,
{
    let total = select.clone().count(db).await?;
    let items = select
        .offset(page.offset())
        .limit(page.page_size())
        .all(db)
        .await?;
    Ok(Page { items, total })
}

/// Merges hits on overlapping or touching passages of one document (the best score kept).
fn merge_hits(mut hits: Vec<Hit>) -> Vec<Hit> {
    hits.sort_by(|a, b| a.doc_id.cmp(&b.doc_id).then(a.start.cmp(&b.start)));
    let mut merged: Vec<Hit> = Vec::with_capacity(hits.len());
    for hit in hits {
        if let Some(last) = merged.last_mut()
            && last.doc_id == hit.doc_id
            && hit.start <= last.end
        {
            if hit.end > last.end {
                let skip = usize::try_from(last.end - hit.start).unwrap_or(usize::MAX);
                last.content.extend(hit.content.chars().skip(skip));
                last.end = hit.end;
            }
            last.score = last.score.max(hit.score);
            continue;
        }
        merged.push(hit);
    }
    merged.sort_by(|a, b| b.score.total_cmp(&a.score));
    merged
}

#[async_trait::async_trait]
impl KnowledgeBases for SeaOrmKnowledge {
    async fn create(
        &self,
        actor: &Actor,
        new: NewKnowledgeBase,
    ) -> Result<KnowledgeBase, KnowledgeError> {
        let name = check_text("name", &new.name, MAX_NAME_CHARS, true)?;
        let kb_type = check_text("type", &new.kb_type, MAX_TYPE_CHARS, false)?;
        let kb_type = if kb_type.is_empty() {
            "document".to_owned()
        } else {
            kb_type
        };
        let intro = check_text(
            "intro",
            new.intro.as_deref().unwrap_or_default(),
            MAX_INTRO_CHARS,
            false,
        )?;
        let language = check_text(
            "language",
            new.language.as_deref().unwrap_or_default(),
            16,
            false,
        )?;
        let language = if language.is_empty() {
            "zh-cn".to_owned()
        } else {
            language
        };
        let owned = kdb::Entity::find()
            .filter(kdb::Column::UserId.eq(actor.user_id.clone()))
            .count(&self.db)
            .await?;
        if owned >= self.settings.max_per_user {
            return Err(KnowledgeError::QuotaExceeded {
                limit: self.settings.max_per_user,
            });
        }
        let now = Utc::now();
        let row = kdb::ActiveModel {
            id: Set(platform::ids::new_hex_id()),
            user_id: Set(actor.user_id.clone()),
            name: Set(name),
            intro: Set(intro),
            kb_type: Set(kb_type),
            setting: Set(json!({"kdbAttach": {"language": language}}).to_string()),
            revision: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
        };
        let model = kdb::Entity::insert(row)
            .exec_with_returning(&self.db)
            .await?;
        Ok(to_base(model))
    }

    async fn update(
        &self,
        actor: &Actor,
        id: &str,
        update: KnowledgeBaseUpdate,
    ) -> Result<KnowledgeBase, KnowledgeError> {
        let row = self.owned(actor, id).await?;
        let name = check_text(
            "name",
            update.name.as_deref().unwrap_or_default(),
            MAX_NAME_CHARS,
            false,
        )?;
        let intro = check_text(
            "intro",
            update.intro.as_deref().unwrap_or_default(),
            MAX_INTRO_CHARS,
            false,
        )?;
        let setting = match update.setting {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) => {
                let text = Value::Object(map).to_string();
                if text.len() > MAX_SETTING_BYTES || text.contains("\\u0000") {
                    return Err(KnowledgeError::invalid(
                        "kdb_setting",
                        format!("must be at most {MAX_SETTING_BYTES} bytes of JSON, without NUL"),
                    ));
                }
                Some(text)
            }
            Some(_) => {
                return Err(KnowledgeError::invalid("kdb_setting", "must be an object"));
            }
        };
        let mut active: kdb::ActiveModel = row.into();
        if !name.is_empty() {
            active.name = Set(name);
        }
        if !intro.is_empty() {
            active.intro = Set(intro);
        }
        if let Some(setting) = setting {
            active.setting = Set(setting);
        }
        active.updated_at = Set(Utc::now());
        let model = kdb::Entity::update(active).exec(&self.db).await?;
        Ok(to_base(model))
    }

    async fn get(&self, actor: &Actor, id: &str) -> Result<KnowledgeBase, KnowledgeError> {
        Ok(to_base(self.owned(actor, id).await?))
    }

    async fn list(
        &self,
        actor: &Actor,
        query: KnowledgeBaseQuery,
    ) -> Result<Page<KnowledgeBaseSummary>, KnowledgeError> {
        let mut select = kdb::Entity::find();
        if !actor.is_admin {
            select = select.filter(kdb::Column::UserId.eq(actor.user_id.clone()));
        }
        if let Some(name) = given(query.name.as_deref()) {
            let name = check_text("query_name", name, MAX_NAME_CHARS, false)?;
            select = select.filter(lowered_like(kdb::Column::Name, &name));
        }
        if let Some(kb_type) = given(query.kb_type.as_deref()) {
            let kb_type = check_text("type", kb_type, MAX_TYPE_CHARS, false)?;
            select = select.filter(kdb::Column::KbType.eq(kb_type));
        }
        let select = select
            .order_by_desc(kdb::Column::CreatedAt)
            .order_by_desc(kdb::Column::Id);
        let page = page_of(&self.db, select, query.page).await?;
        let ids: Vec<String> = page.items.iter().map(|k| k.id.clone()).collect();
        let counts: HashMap<String, i64> = if ids.is_empty() {
            HashMap::new()
        } else {
            doc::Entity::find()
                .select_only()
                .column(doc::Column::KdbId)
                .column_as(doc::Column::Id.count(), "n")
                .filter(doc::Column::KdbId.is_in(ids))
                .group_by(doc::Column::KdbId)
                .into_tuple::<(String, i64)>()
                .all(&self.db)
                .await?
                .into_iter()
                .collect()
        };
        Ok(page.map(|row| KnowledgeBaseSummary {
            doc_count: counts
                .get(&row.id)
                .and_then(|n| u64::try_from(*n).ok())
                .unwrap_or(0),
            base: to_base(row),
        }))
    }

    async fn delete(&self, actor: &Actor, id: &str) -> Result<KnowledgeBase, KnowledgeError> {
        let row = self.owned(actor, id).await?;
        // Documents first (with chunks and files), then the base: a failure in between leaves
        // an empty base to delete again, never documents without one.
        self.delete_docs(id, Condition::all().add(doc::Column::KdbId.eq(id)))
            .await?;
        kdb::Entity::delete_by_id(id.to_owned())
            .exec(&self.db)
            .await?;
        self.vectors.forget(id);
        if let Err(e) = self.indexes.drop_index(id).await {
            tracing::warn!(kdb_id = id, error = %e, "cannot remove a knowledge index");
        }
        Ok(to_base(row))
    }

    async fn clear(&self, actor: &Actor, id: &str) -> Result<KnowledgeBase, KnowledgeError> {
        let row = self.owned(actor, id).await?;
        self.delete_docs(id, Condition::all().add(doc::Column::KdbId.eq(id)))
            .await?;
        Ok(to_base(row))
    }

    async fn redo_all(&self, actor: &Actor, id: &str) -> Result<KnowledgeBase, KnowledgeError> {
        let row = self.owned(actor, id).await?;
        self.requeue(Condition::all().add(doc::Column::KdbId.eq(id)))
            .await?;
        Ok(to_base(row))
    }

    async fn retrieve(
        &self,
        actor: &Actor,
        id: &str,
        query: &str,
        top_k: u64,
    ) -> Result<(KnowledgeBase, Vec<Hit>), KnowledgeError> {
        let row = self.owned(actor, id).await?;
        let query = check_text("query", query, MAX_QUERY_CHARS, true)?;
        if top_k == 0 || top_k > MAX_TOP_K {
            return Err(KnowledgeError::invalid(
                "top_k",
                format!("must be between 1 and {MAX_TOP_K}"),
            ));
        }
        let limit = usize::try_from(top_k * 3).unwrap_or(150);
        let db = self.db.clone();
        let db2 = self.db.clone();
        let kdb_id = id.to_owned();
        let found = self
            .indexes
            .search(
                id,
                row.revision,
                || async move { Self::versions(&db, &kdb_id).await },
                |docs| async move { Self::chunks_of(&db2, docs).await },
                &query,
                limit,
            )
            .await?;
        let near = self.nearest_ids(id, row.revision, &query, limit).await?;
        let scores: HashMap<String, f32> = if near.is_empty() {
            found
                .iter()
                .map(|h| (h.chunk_id.clone(), h.score))
                .collect()
        } else {
            let by_text: Vec<String> = found.iter().map(|h| h.chunk_id.clone()).collect();
            fuse(&[by_text, near])
        };
        let chunks = if scores.is_empty() {
            Vec::new()
        } else {
            chunk::Entity::find()
                .filter(chunk::Column::Id.is_in(scores.keys().cloned()))
                .filter(chunk::Column::KdbId.eq(id))
                .all(&self.db)
                .await?
        };
        let doc_ids: Vec<String> = chunks.iter().map(|c| c.doc_id.clone()).collect();
        let names: HashMap<String, String> = if doc_ids.is_empty() {
            HashMap::new()
        } else {
            doc::Entity::find()
                .select_only()
                .column(doc::Column::Id)
                .column(doc::Column::Name)
                .filter(doc::Column::Id.is_in(doc_ids))
                .into_tuple::<(String, String)>()
                .all(&self.db)
                .await?
                .into_iter()
                .collect()
        };
        let hits = chunks
            .into_iter()
            .filter_map(|c| {
                let path = names.get(&c.doc_id)?.clone();
                Some(Hit {
                    score: scores.get(&c.id).copied().unwrap_or_default(),
                    segment_id: c.id,
                    doc_id: c.doc_id,
                    content: c.content,
                    start: u64::try_from(c.start_char).unwrap_or(0),
                    end: u64::try_from(c.end_char).unwrap_or(0),
                    title: c.title,
                    path,
                })
            })
            .collect();
        let mut hits = merge_hits(hits);
        hits.truncate(usize::try_from(top_k).unwrap_or(usize::MAX));
        Ok((to_base(row), hits))
    }

    async fn docs(
        &self,
        actor: &Actor,
        query: DocQuery,
    ) -> Result<(KnowledgeBase, Page<Doc>), KnowledgeError> {
        let row = self.owned(actor, &query.kdb_id).await?;
        let select = Self::doc_filter(&query)?
            .order_by_desc(doc::Column::CreatedAt)
            .order_by_asc(doc::Column::Name)
            .order_by_asc(doc::Column::Id);
        let page = page_of(&self.db, select, query.page).await?;
        Ok((to_base(row), page.map(to_doc)))
    }

    async fn doc(&self, actor: &Actor, doc_id: &str) -> Result<Doc, KnowledgeError> {
        Ok(to_doc(self.owned_doc(actor, doc_id).await?))
    }

    async fn add_files(
        &self,
        actor: &Actor,
        id: &str,
        files: Vec<NewFile>,
    ) -> Result<(KnowledgeBase, String), KnowledgeError> {
        let row = self.owned(actor, id).await?;
        if files.is_empty() {
            return Err(KnowledgeError::invalid(
                "files",
                "at least one file is required",
            ));
        }
        if files.len() > MAX_FILES_PER_UPLOAD {
            return Err(KnowledgeError::invalid(
                "files",
                format!("at most {MAX_FILES_PER_UPLOAD} files at once"),
            ));
        }
        let base = to_base(row);
        let held = doc::Entity::find()
            .filter(doc::Column::UserId.eq(base.user_id.clone()))
            .count(&self.db)
            .await?;
        if held + files.len() as u64 > self.settings.max_docs_per_user {
            return Err(KnowledgeError::DocQuotaExceeded {
                limit: self.settings.max_docs_per_user,
            });
        }
        let qa = base.is_qa();
        let mut checked = Vec::with_capacity(files.len());
        for file in files {
            let name = file_name(&file.name)?;
            if !parse::is_supported(&name) {
                return Err(KnowledgeError::invalid(
                    "files",
                    format!("`{name}`: this file type cannot be read"),
                ));
            }
            if qa {
                let path = file.path.clone();
                let shown = name.clone();
                tokio::task::spawn_blocking(move || {
                    let bytes = std::fs::read(&path).map_err(KnowledgeError::internal)?;
                    parse::qa_rows(&shown, &bytes)
                        .map(|_| ())
                        .map_err(|e| KnowledgeError::invalid("files", format!("`{shown}`: {e}")))
                })
                .await
                .map_err(KnowledgeError::internal)??;
            }
            checked.push((name, file));
        }
        let task_id = platform::ids::new_hex_id();
        let now = Utc::now();
        let mut rows = Vec::with_capacity(checked.len());
        let mut placed = Vec::with_capacity(checked.len());
        for (name, file) in checked {
            let doc_id = platform::ids::new_hex_id();
            let stored = self
                .objects
                .put_file(&Self::object_key(id, &doc_id), &file.path)
                .await;
            if let Err(e) = stored {
                self.remove_files(id, &placed).await;
                return Err(KnowledgeError::internal(e));
            }
            placed.push(doc_id.clone());
            let data_source = if qa {
                "qa"
            } else if name.to_ascii_lowercase().ends_with("eml") {
                "eml"
            } else {
                "file"
            };
            rows.push(doc::ActiveModel {
                id: Set(doc_id),
                kdb_id: Set(id.to_owned()),
                user_id: Set(base.user_id.clone()),
                task_id: Set(task_id.clone()),
                name: Set(name),
                data_source: Set(data_source.to_owned()),
                status: Set(DocStatus::Pending.code()),
                error: Set(None),
                attempts: Set(0),
                locked_until: Set(None),
                size: Set(i64::try_from(file.size).unwrap_or(i64::MAX)),
                metadata: Set(json!({"size": file.size}).to_string()),
                chunk_version: Set(0),
                created_at: Set(now),
                updated_at: Set(now),
            });
        }
        if let Err(e) = doc::Entity::insert_many(rows).exec(&self.db).await {
            self.remove_files(id, &placed).await;
            return Err(e.into());
        }
        self.wake.notify_waiters();
        Ok((base, task_id))
    }

    async fn delete_doc(&self, actor: &Actor, doc_id: &str) -> Result<Doc, KnowledgeError> {
        let row = self.owned_doc(actor, doc_id).await?;
        self.delete_docs(
            &row.kdb_id,
            Condition::all().add(doc::Column::Id.eq(doc_id)),
        )
        .await?;
        Ok(to_doc(row))
    }

    async fn redo_doc(&self, actor: &Actor, doc_id: &str) -> Result<Doc, KnowledgeError> {
        let row = self.owned_doc(actor, doc_id).await?;
        self.requeue(Condition::all().add(doc::Column::Id.eq(doc_id)))
            .await?;
        Ok(to_doc(row))
    }

    async fn task_progress(
        &self,
        actor: &Actor,
        id: &str,
        task_id: &str,
    ) -> Result<(KnowledgeBase, TaskProgress), KnowledgeError> {
        let row = self.owned(actor, id).await?;
        let task_id = if platform::ids::is_safe_id(task_id.trim()) {
            task_id.trim()
        } else {
            ""
        };
        let counts: Vec<(i32, i64)> = doc::Entity::find()
            .select_only()
            .column(doc::Column::Status)
            .column_as(doc::Column::Id.count(), "n")
            .filter(doc::Column::KdbId.eq(id))
            .filter(doc::Column::TaskId.eq(task_id))
            .group_by(doc::Column::Status)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut progress = TaskProgress::default();
        for (status, n) in counts {
            let n = u64::try_from(n).unwrap_or(0);
            progress.total += n;
            match DocStatus::from_code(status) {
                Some(DocStatus::Pending) => progress.waiting += n,
                Some(DocStatus::Processing) => progress.in_progress += n,
                Some(DocStatus::Done) => progress.success += n,
                Some(DocStatus::Failed) | None => progress.fail += n,
            }
        }
        Ok((to_base(row), progress))
    }

    async fn redo_task(
        &self,
        actor: &Actor,
        id: &str,
        task_id: &str,
    ) -> Result<KnowledgeBase, KnowledgeError> {
        let row = self.owned(actor, id).await?;
        if platform::ids::is_safe_id(task_id.trim()) {
            self.requeue(
                Condition::all()
                    .add(doc::Column::KdbId.eq(id))
                    .add(doc::Column::TaskId.eq(task_id.trim())),
            )
            .await?;
        }
        Ok(to_base(row))
    }
}

#[async_trait::async_trait]
impl platform::UserCleanup for SeaOrmKnowledge {
    async fn user_deleted(&self, user_id: &str) -> Result<(), platform::actor::CleanupError> {
        let ids: Vec<String> = kdb::Entity::find()
            .select_only()
            .column(kdb::Column::Id)
            .filter(kdb::Column::UserId.eq(user_id))
            .into_tuple()
            .all(&self.db)
            .await?;
        let actor = Actor::new(user_id, false);
        for id in ids {
            self.delete(&actor, &id)
                .await
                .map_err(|e| format!("knowledge base {id}: {e}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod merge_tests {
    use super::*;

    fn hit(doc: &str, start: u64, end: u64, text: &str, score: f32) -> Hit {
        Hit {
            doc_id: doc.into(),
            segment_id: format!("{doc}-{start}"),
            content: text.into(),
            score,
            start,
            end,
            title: String::new(),
            path: "a.txt".into(),
        }
    }

    #[test]
    fn overlapping_passages_of_a_document_merge() {
        let merged = merge_hits(vec![
            hit("d1", 6, 12, "world!", 1.0),
            hit("d1", 0, 8, "hello wo", 2.0),
            hit("d2", 0, 3, "abc", 1.5),
        ]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].content, "hello world!");
        assert_eq!(
            (merged[0].start, merged[0].end, merged[0].score),
            (0, 12, 2.0)
        );
        assert_eq!(merged[1].doc_id, "d2");
    }
}
