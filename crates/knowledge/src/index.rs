//! The full-text index of each knowledge base: tantivy under `<root>/<kdb id>`, derived from the
//! chunk table and brought up to date before each search.
//!
//! Each commit carries a payload with the knowledge base's revision and the chunk version of
//! every indexed document. A search first compares the base's revision in the database with
//! the payload; when they differ it re-indexes only the documents whose version changed (and
//! drops the ones that are gone), so every replica's index converges on the table, whichever
//! replica ingested a document.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tantivy::collector::TopDocs;
use tantivy::directory::MmapDirectory;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::tokenizer::{TextAnalyzer, Token, TokenStream, Tokenizer};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term, doc};

use crate::KnowledgeError;

const TOKENIZER: &str = "sage_kdb";
/// The writer's memory budget (tantivy's minimum is 15 MB per thread).
const WRITER_BYTES: usize = 20_000_000;

/// One chunk to index.
#[derive(Debug, Clone)]
pub(crate) struct IndexChunk {
    pub id: String,
    pub doc_id: String,
    pub content: String,
}

/// One search hit: the chunk id and its BM25 score.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ChunkHit {
    pub chunk_id: String,
    pub score: f32,
}

/// What a commit says it holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    revision: i64,
    /// doc id → chunk version.
    docs: BTreeMap<String, i64>,
}

#[derive(Clone, Copy)]
struct Fields {
    chunk_id: Field,
    doc_id: Field,
    content: Field,
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let fields = Fields {
        chunk_id: builder.add_text_field("chunk_id", STRING | STORED),
        doc_id: builder.add_text_field("doc_id", STRING),
        content: builder.add_text_field("content", text),
    };
    (builder.build(), fields)
}

/// Word tokens for BM25: runs of letters and digits, lower-cased (at most 64 characters
/// each), and every Han, Kana or Hangul character on its own plus each pair of neighbouring
/// ones, so Chinese and Japanese text without spaces is searchable.
#[derive(Clone, Default)]
pub(crate) struct WordTokenizer;

pub(crate) struct WordStream {
    tokens: Vec<Token>,
    at: usize,
    current: Token,
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF
        | 0x20000..=0x2FA1F)
}

pub(crate) fn tokens(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut word: Option<(usize, String)> = None;
    let mut previous_cjk: Option<(usize, char)> = None;
    let push = |out: &mut Vec<Token>, from: usize, to: usize, text: String| {
        let position = out.len();
        out.push(Token {
            offset_from: from,
            offset_to: to,
            position,
            text,
            position_length: 1,
        });
    };
    for (at, c) in text.char_indices() {
        let end = at + c.len_utf8();
        if is_cjk(c) {
            if let Some((from, w)) = word.take() {
                push(&mut out, from, at, w);
            }
            push(&mut out, at, end, c.to_string());
            if let Some((from, p)) = previous_cjk {
                push(&mut out, from, end, format!("{p}{c}"));
            }
            previous_cjk = Some((at, c));
        } else if c.is_alphanumeric() {
            previous_cjk = None;
            match &mut word {
                Some((_, w)) => {
                    if w.chars().count() < 64 {
                        w.extend(c.to_lowercase());
                    }
                }
                None => word = Some((at, c.to_lowercase().collect())),
            }
        } else {
            previous_cjk = None;
            if let Some((from, w)) = word.take() {
                push(&mut out, from, at, w);
            }
        }
    }
    if let Some((from, w)) = word.take() {
        push(&mut out, from, text.len(), w);
    }
    out
}

impl Tokenizer for WordTokenizer {
    type TokenStream<'a> = WordStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> WordStream {
        WordStream {
            tokens: tokens(text),
            at: 0,
            current: Token::default(),
        }
    }
}

impl TokenStream for WordStream {
    fn advance(&mut self) -> bool {
        match self.tokens.get_mut(self.at) {
            Some(token) => {
                self.current = std::mem::take(token);
                self.at += 1;
                true
            }
            None => false,
        }
    }

    fn token(&self) -> &Token {
        &self.current
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.current
    }
}

fn err(e: impl std::fmt::Display) -> KnowledgeError {
    KnowledgeError::internal(format!("knowledge index: {e}"))
}

/// An open index and its reader (reloaded after each commit of this process).
#[derive(Clone)]
struct Open {
    index: Index,
    reader: IndexReader,
}

/// One knowledge base's index, opened on first use.
type Slot = Arc<tokio::sync::Mutex<Option<Open>>>;

/// Open indexes kept at most; past it, the ones not in use are closed (reopened on demand).
const MAX_OPEN: usize = 128;

/// The open indexes of this process, one per knowledge base, each behind its own lock (a
/// tantivy directory takes one writer at a time).
#[derive(Clone)]
pub(crate) struct Indexes {
    root: PathBuf,
    open: Arc<Mutex<HashMap<String, Slot>>>,
}

impl Indexes {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            open: Arc::default(),
        }
    }

    fn slot(&self, kdb_id: &str) -> Slot {
        let mut open = match self.open.lock() {
            Ok(open) => open,
            Err(poisoned) => poisoned.into_inner(),
        };
        if open.len() >= MAX_OPEN && !open.contains_key(kdb_id) {
            open.retain(|_, slot| Arc::strong_count(slot) > 1);
        }
        open.entry(kdb_id.to_owned()).or_default().clone()
    }

    fn dir(&self, kdb_id: &str) -> PathBuf {
        self.root.join(kdb_id)
    }

    fn open_index(dir: &Path) -> Result<Open, KnowledgeError> {
        std::fs::create_dir_all(dir).map_err(err)?;
        let (schema, _) = schema();
        let directory = MmapDirectory::open(dir).map_err(err)?;
        let index = Index::open_or_create(directory, schema).map_err(err)?;
        index
            .tokenizers()
            .register(TOKENIZER, TextAnalyzer::builder(WordTokenizer).build());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(err)?;
        Ok(Open { index, reader })
    }

    /// Forgets a knowledge base's index and removes its files.
    pub async fn drop_index(&self, kdb_id: &str) -> Result<(), KnowledgeError> {
        let slot = self.slot(kdb_id);
        let mut guard = slot.lock().await;
        *guard = None;
        let dir = self.dir(kdb_id);
        let removed = tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(err(e)),
            _ => Ok(()),
        })
        .await
        .map_err(err)?;
        if let Ok(mut open) = self.open.lock() {
            open.remove(kdb_id);
        }
        removed
    }

    /// Brings the index of `kdb_id` to `revision` when it is behind (documents and their
    /// chunk versions from `versions`, chunks of changed documents from `load`), then
    /// searches it.
    pub async fn search<V, VF, L, LF>(
        &self,
        kdb_id: &str,
        revision: i64,
        versions: V,
        load: L,
        query: &str,
        limit: usize,
    ) -> Result<Vec<ChunkHit>, KnowledgeError>
    where
        V: FnOnce() -> VF,
        VF: std::future::Future<Output = Result<BTreeMap<String, i64>, KnowledgeError>>,
        L: FnOnce(Vec<String>) -> LF,
        LF: std::future::Future<Output = Result<Vec<IndexChunk>, KnowledgeError>>,
    {
        let slot = self.slot(kdb_id);
        let mut guard = slot.lock().await;
        if guard.is_none() {
            let dir = self.dir(kdb_id);
            *guard = Some(
                tokio::task::spawn_blocking(move || Self::open_index(&dir))
                    .await
                    .map_err(err)??,
            );
        }
        let Some(open) = guard.clone() else {
            return Ok(Vec::new());
        };
        let state: State = open
            .index
            .load_metas()
            .map_err(err)?
            .payload
            .and_then(|p| serde_json::from_str(&p).ok())
            .unwrap_or_default();
        if state.revision != revision {
            let current = versions().await?;
            let stale: Vec<String> = state
                .docs
                .iter()
                .filter(|(doc, version)| current.get(*doc) != Some(version))
                .map(|(doc, _)| doc.clone())
                .collect();
            let missing: Vec<String> = current
                .iter()
                .filter(|(doc, version)| state.docs.get(*doc) != Some(version))
                .map(|(doc, _)| doc.clone())
                .collect();
            let chunks = if missing.is_empty() {
                Vec::new()
            } else {
                load(missing).await?
            };
            let Open { index, reader } = open.clone();
            tokio::task::spawn_blocking(move || {
                let (_, fields) = schema();
                let mut writer: IndexWriter<TantivyDocument> = index
                    .writer_with_num_threads(1, WRITER_BYTES)
                    .map_err(err)?;
                for doc in stale.iter().chain(chunks.iter().map(|c| &c.doc_id)) {
                    writer.delete_term(Term::from_field_text(fields.doc_id, doc));
                }
                for chunk in chunks {
                    writer
                        .add_document(doc!(
                            fields.chunk_id => chunk.id,
                            fields.doc_id => chunk.doc_id,
                            fields.content => chunk.content,
                        ))
                        .map_err(err)?;
                }
                let payload = serde_json::to_string(&State {
                    revision,
                    docs: current,
                })
                .map_err(err)?;
                let mut prepared = writer.prepare_commit().map_err(err)?;
                prepared.set_payload(&payload);
                prepared.commit().map_err(err)?;
                writer.wait_merging_threads().map_err(err)?;
                reader.reload().map_err(err)?;
                Ok::<_, KnowledgeError>(())
            })
            .await
            .map_err(err)??;
        }
        // Searches of one base run side by side; only bringing it up to date is exclusive.
        drop(guard);
        let query = query.to_owned();
        tokio::task::spawn_blocking(move || search_in(&open.reader, &query, limit))
            .await
            .map_err(err)?
    }
}

fn search_in(
    reader: &IndexReader,
    query: &str,
    limit: usize,
) -> Result<Vec<ChunkHit>, KnowledgeError> {
    let (_, fields) = schema();
    let mut seen = std::collections::HashSet::new();
    let terms: Vec<(Occur, Box<dyn Query>)> = tokens(query)
        .into_iter()
        .filter(|t| seen.insert(t.text.clone()))
        .take(64)
        .map(|t| {
            let term = Term::from_field_text(fields.content, &t.text);
            (
                Occur::Should,
                Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs)) as Box<dyn Query>,
            )
        })
        .collect();
    if terms.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    let searcher = reader.searcher();
    let query = BooleanQuery::new(terms);
    let top = searcher
        .search(&query, &TopDocs::with_limit(limit).order_by_score())
        .map_err(err)?;
    let mut hits = Vec::with_capacity(top.len());
    for (score, address) in top {
        let doc: TantivyDocument = searcher.doc(address).map_err(err)?;
        if let Some(id) = doc.get_first(fields.chunk_id).and_then(|v| v.as_str()) {
            hits.push(ChunkHit {
                chunk_id: id.to_owned(),
                score,
            });
        }
    }
    Ok(hits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &str) -> Vec<String> {
        tokens(s).into_iter().map(|t| t.text).collect()
    }

    #[test]
    fn words_and_cjk_are_tokens() {
        assert_eq!(texts("Hello, World-2!"), ["hello", "world", "2"]);
        assert_eq!(
            texts("登录流程"),
            ["登", "录", "登录", "流", "录流", "程", "流程"]
        );
        assert_eq!(
            texts("API的用法"),
            ["api", "的", "用", "的用", "法", "用法"]
        );
        assert!(texts("  ,.;  ").is_empty());
    }

    #[tokio::test]
    async fn an_index_follows_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let indexes = Indexes::new(dir.path());
        let chunk = |id: &str, doc: &str, text: &str| IndexChunk {
            id: id.into(),
            doc_id: doc.into(),
            content: text.into(),
        };
        let table = vec![
            chunk("c1", "d1", "Login uses a password and a one-time code."),
            chunk("c2", "d1", "Billing happens monthly."),
            chunk("c3", "d2", "登录需要密码。"),
        ];
        let versions = |docs: &'static [(&'static str, i64)]| {
            move || async move {
                Ok(docs
                    .iter()
                    .map(|(d, v)| ((*d).to_owned(), *v))
                    .collect::<BTreeMap<_, _>>())
            }
        };
        let all = table.clone();
        let hits = indexes
            .search(
                "k1",
                2,
                versions(&[("d1", 1), ("d2", 2)]),
                |docs| async move {
                    Ok(all
                        .into_iter()
                        .filter(|c| docs.contains(&c.doc_id))
                        .collect())
                },
                "how does LOGIN work",
                10,
            )
            .await
            .unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].chunk_id, "c1");
        let hits = indexes
            .search(
                "k1",
                2,
                versions(&[("d1", 1), ("d2", 2)]),
                |_| async { Ok(vec![]) },
                "登录",
                10,
            )
            .await
            .unwrap();
        assert_eq!(hits[0].chunk_id, "c3");

        // d1 is re-ingested (version 3) and d2 deleted: only d1's new chunk is loaded.
        let hits = indexes
            .search(
                "k1",
                4,
                versions(&[("d1", 3)]),
                |docs| async move {
                    assert_eq!(docs, vec!["d1".to_owned()]);
                    Ok(vec![chunk("c9", "d1", "Login now needs a passkey.")])
                },
                "login 登录",
                10,
            )
            .await
            .unwrap();
        assert_eq!(
            hits.iter().map(|h| h.chunk_id.as_str()).collect::<Vec<_>>(),
            ["c9"]
        );

        // A second process (a fresh handle on the same directory) sees the same state.
        let other = Indexes::new(dir.path());
        let hits = other
            .search(
                "k1",
                4,
                || async { panic!("up to date") },
                |_| async { panic!("up to date") },
                "passkey",
                10,
            )
            .await
            .unwrap();
        assert_eq!(hits[0].chunk_id, "c9");
        indexes.drop_index("k1").await.unwrap();
        assert!(!dir.path().join("k1").exists());
    }
}
