//! The ingestion worker: documents are their own job rows. A worker claims a pending one (or
//! one whose lease ran out) with a conditional UPDATE, so two workers or replicas never take
//! the same document; parses it, splits it into chunks and writes them in one transaction
//! with the document's new status. Every failure is recorded on the document.

use std::sync::Arc;
use std::time::Duration;

use chrono::{SubsecRound, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};
use serde_json::json;
use tokio::sync::watch;

use super::entities::{chunk, doc};
use super::service::SeaOrmKnowledge;
use crate::embed::to_bytes;
use crate::{DocStatus, KnowledgeError, parse, split};

/// The largest stored file ingestion reads (the parsers cap each type lower).
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Ingestion and quota settings.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// How long a claimed document stays with its worker before another may take it.
    pub lease: Duration,
    /// How often an idle worker looks for work another process queued.
    pub poll: Duration,
    /// A document whose worker disappeared this many times is failed, not retried.
    pub max_attempts: i32,
    /// Characters per chunk and repeated between neighbours.
    pub chunk_chars: usize,
    pub chunk_overlap: usize,
    /// Chunks one document may produce.
    pub max_chunks_per_doc: usize,
    /// Knowledge bases one user may own.
    pub max_per_user: u64,
    /// Documents one user's knowledge bases may hold together.
    pub max_docs_per_user: u64,
    /// How long the document in hand may go on after shutdown began.
    pub shutdown_grace: Duration,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(300),
            poll: Duration::from_secs(5),
            max_attempts: 3,
            chunk_chars: 512,
            chunk_overlap: 64,
            max_chunks_per_doc: 50_000,
            max_per_user: 100,
            max_docs_per_user: 10_000,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// One chunk ready to store.
pub(super) struct Piece {
    title: String,
    content: String,
    start: usize,
    end: usize,
    embedding: Option<Vec<u8>>,
}

pub(super) enum Outcome {
    Done {
        pieces: Vec<Piece>,
        title: Option<String>,
    },
    Failed(String),
}

impl SeaOrmKnowledge {
    /// Runs documents until `stopped` turns true. The document in hand gets
    /// `shutdown_grace` to finish; past it, its claim is handed back (pending again, the
    /// attempt not counted) so another worker takes it at once.
    pub async fn work(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        loop {
            if *stopped.borrow() {
                return;
            }
            let claimed = match self.claim().await {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::error!(error = %e, "knowledge ingestion failed");
                    None
                }
            };
            if let Some(row) = claimed {
                let run = async {
                    let outcome = self.process(&row).await;
                    self.finish(&row, outcome).await
                };
                let mut stop = stopped.clone();
                let grace = self.settings.shutdown_grace;
                let deadline = async move {
                    let _ = stop.wait_for(|s| *s).await;
                    tokio::time::sleep(grace).await;
                };
                tokio::select! {
                    finished = run => {
                        if let Err(e) = finished {
                            tracing::error!(error = %e, "knowledge ingestion failed");
                        }
                    }
                    () = deadline => {
                        if let Err(e) = self.hand_back(&row).await {
                            tracing::error!(error = %e, "a knowledge document could not be handed back");
                        }
                        return;
                    }
                }
                continue;
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.settings.poll) => {}
                _ = stopped.changed() => {}
            }
        }
    }

    /// Claims and processes one document; false when none is due (the tests' worker).
    #[cfg(test)]
    pub(super) async fn run_one(&self) -> Result<bool, KnowledgeError> {
        let Some(row) = self.claim().await? else {
            return Ok(false);
        };
        let outcome = self.process(&row).await;
        self.finish(&row, outcome).await?;
        Ok(true)
    }

    /// Gives a claimed document back to the queue (pending, its attempt not counted) if it is
    /// still this claim's.
    pub(super) async fn hand_back(&self, row: &doc::Model) -> Result<(), KnowledgeError> {
        doc::Entity::update_many()
            .col_expr(doc::Column::Status, Expr::value(DocStatus::Pending.code()))
            .col_expr(doc::Column::Attempts, Expr::value(row.attempts - 1))
            .col_expr(
                doc::Column::LockedUntil,
                Expr::value(Option::<chrono::DateTime<Utc>>::None),
            )
            .filter(doc::Column::Id.eq(row.id.clone()))
            .filter(doc::Column::Status.eq(DocStatus::Processing.code()))
            .filter(doc::Column::Attempts.eq(row.attempts))
            .filter(doc::Column::LockedUntil.eq(row.locked_until))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    pub(super) async fn claim(&self) -> Result<Option<doc::Model>, KnowledgeError> {
        let now = Utc::now();
        let due = platform::db::lease_due(
            doc::Column::Status,
            doc::Column::LockedUntil,
            DocStatus::Pending.code(),
            DocStatus::Processing.code(),
            now,
        );
        let candidates = doc::Entity::find()
            .filter(due.clone())
            .order_by_asc(doc::Column::UpdatedAt)
            .limit(8)
            .all(&self.db)
            .await?;
        let lease = chrono::Duration::from_std(self.settings.lease)
            .unwrap_or_else(|_| chrono::Duration::minutes(5));
        // The lease's end is also the claim's fencing token (a redo resets the attempts, so
        // they alone cannot tell this claim from a later one); microsecond precision, so it
        // compares equal after the round trip through either database.
        let until = (now + lease).trunc_subsecs(6);
        for candidate in candidates {
            if candidate.attempts >= self.settings.max_attempts {
                // Its workers kept disappearing (a crash on this file?): stop retrying.
                doc::Entity::update_many()
                    .col_expr(doc::Column::Status, Expr::value(DocStatus::Failed.code()))
                    .col_expr(
                        doc::Column::Error,
                        Expr::value(format!(
                            "processing stopped {} times without finishing",
                            candidate.attempts
                        )),
                    )
                    .col_expr(doc::Column::UpdatedAt, Expr::value(now))
                    .filter(doc::Column::Id.eq(candidate.id.clone()))
                    .filter(doc::Column::Attempts.eq(candidate.attempts))
                    .filter(due.clone())
                    .exec(&self.db)
                    .await?;
                continue;
            }
            let claimed = doc::Entity::update_many()
                .col_expr(
                    doc::Column::Status,
                    Expr::value(DocStatus::Processing.code()),
                )
                .col_expr(doc::Column::Attempts, Expr::value(candidate.attempts + 1))
                .col_expr(doc::Column::LockedUntil, Expr::value(until))
                .col_expr(doc::Column::UpdatedAt, Expr::value(now))
                .filter(doc::Column::Id.eq(candidate.id.clone()))
                .filter(doc::Column::Attempts.eq(candidate.attempts))
                .filter(due.clone())
                .exec(&self.db)
                .await?;
            if claimed.rows_affected == 1 {
                let mut row = candidate;
                row.attempts += 1;
                row.locked_until = Some(until);
                return Ok(Some(row));
            }
        }
        Ok(None)
    }

    pub(super) async fn process(&self, row: &doc::Model) -> Outcome {
        let key = Self::object_key(&row.kdb_id, &row.id);
        let bytes = match self.objects.get(&key, MAX_FILE_BYTES).await {
            Ok(bytes) => bytes,
            Err(e) => return Outcome::Failed(format!("the stored file cannot be read: {e}")),
        };
        let name = row.name.clone();
        let qa = row.data_source == "qa";
        let settings = self.settings.clone();
        let parsed = tokio::task::spawn_blocking(move || {
            if qa {
                let rows = parse::qa_rows(&name, &bytes).map_err(|e| e.to_string())?;
                let mut at = 0usize;
                let pieces = rows
                    .into_iter()
                    .map(|(q, a)| {
                        let content = format!("{q}\n{a}");
                        let len = content.chars().count();
                        let piece = Piece {
                            title: q,
                            content,
                            start: at,
                            end: at + len,
                            embedding: None,
                        };
                        at += len + 1;
                        piece
                    })
                    .collect::<Vec<_>>();
                return Ok((pieces, None));
            }
            let extracted = parse::extract(&name, &bytes).map_err(|e| e.to_string())?;
            let title = extracted.title.clone().unwrap_or_default();
            let pieces = split::split(
                &extracted.text,
                settings.chunk_chars,
                settings.chunk_overlap,
            )
            .into_iter()
            .filter(|p| !p.text.trim().is_empty())
            .map(|p| Piece {
                title: title.clone(),
                content: p.text,
                start: p.start,
                end: p.end,
                embedding: None,
            })
            .collect::<Vec<_>>();
            Ok::<_, String>((pieces, extracted.title))
        })
        .await;
        match parsed {
            Ok(Ok((pieces, title))) => {
                if pieces.is_empty() {
                    Outcome::Failed("the document holds no text".to_owned())
                } else if pieces.len() > self.settings.max_chunks_per_doc {
                    Outcome::Failed(format!(
                        "the document is too long ({} chunks; at most {})",
                        pieces.len(),
                        self.settings.max_chunks_per_doc
                    ))
                } else {
                    self.embedded(pieces, title).await
                }
            }
            Ok(Err(reason)) => Outcome::Failed(reason),
            Err(e) => Outcome::Failed(format!("the parser stopped: {e}")),
        }
    }

    /// The pieces with their vectors when an embedding model is configured.
    async fn embedded(&self, mut pieces: Vec<Piece>, title: Option<String>) -> Outcome {
        let Some(embedder) = &self.embedder else {
            return Outcome::Done { pieces, title };
        };
        let texts: Vec<String> = pieces
            .iter()
            .map(|p| {
                if p.title.is_empty() {
                    p.content.clone()
                } else {
                    format!("{}\n{}", p.title, p.content)
                }
            })
            .collect();
        match embedder.embed(&texts).await {
            Ok(vectors) => {
                for (piece, vector) in pieces.iter_mut().zip(vectors) {
                    piece.embedding = Some(to_bytes(&vector));
                }
                Outcome::Done { pieces, title }
            }
            Err(e) => Outcome::Failed(format!("the embedding model failed: {e}")),
        }
    }

    /// Writes the outcome if the document is still this worker's (not deleted, redone or
    /// taken over meanwhile); otherwise drops it.
    pub(super) async fn finish(
        &self,
        row: &doc::Model,
        outcome: Outcome,
    ) -> Result<(), KnowledgeError> {
        let txn = self.db.begin().await?;
        chunk::Entity::delete_many()
            .filter(chunk::Column::DocId.eq(row.id.clone()))
            .exec(&txn)
            .await?;
        let (status, error, count, title, pieces) = match outcome {
            Outcome::Done { pieces, title } => (DocStatus::Done, None, pieces.len(), title, pieces),
            Outcome::Failed(reason) => (DocStatus::Failed, Some(reason), 0, None, Vec::new()),
        };
        let revision = Self::bump(&txn, &row.kdb_id).await?;
        let rows: Vec<chunk::ActiveModel> = pieces
            .into_iter()
            .enumerate()
            .map(|(seq, p)| chunk::ActiveModel {
                id: Set(format!("{}_{seq}", row.id)),
                kdb_id: Set(row.kdb_id.clone()),
                doc_id: Set(row.id.clone()),
                seq: Set(i32::try_from(seq).unwrap_or(i32::MAX)),
                title: Set(p.title),
                content: Set(p.content),
                start_char: Set(i64::try_from(p.start).unwrap_or(i64::MAX)),
                end_char: Set(i64::try_from(p.end).unwrap_or(i64::MAX)),
                embedding: Set(p.embedding),
            })
            .collect();
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let batch: Vec<_> = rows.by_ref().take(200).collect();
            chunk::Entity::insert_many(batch).exec(&txn).await?;
        }
        let mut metadata = json!({"size": row.size, "chunks": count});
        if let Some(title) = title {
            metadata["title"] = json!(title);
        }
        if let Some(error) = &error {
            metadata["error"] = json!(error);
        }
        let written = doc::Entity::update_many()
            .col_expr(doc::Column::Status, Expr::value(status.code()))
            .col_expr(doc::Column::Error, Expr::value(error.clone()))
            .col_expr(doc::Column::Metadata, Expr::value(metadata.to_string()))
            .col_expr(
                doc::Column::ChunkVersion,
                Expr::value(if count > 0 { revision } else { 0 }),
            )
            .col_expr(
                doc::Column::LockedUntil,
                Expr::value(Option::<chrono::DateTime<Utc>>::None),
            )
            .col_expr(doc::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(doc::Column::Id.eq(row.id.clone()))
            .filter(doc::Column::Status.eq(DocStatus::Processing.code()))
            .filter(doc::Column::Attempts.eq(row.attempts))
            .filter(doc::Column::LockedUntil.eq(row.locked_until))
            .exec(&txn)
            .await?;
        if written.rows_affected == 1 {
            txn.commit().await?;
            if let Some(reason) = error {
                tracing::info!(doc_id = %row.id, reason, "a knowledge document failed");
            }
        } else {
            txn.rollback().await?;
        }
        Ok(())
    }
}
