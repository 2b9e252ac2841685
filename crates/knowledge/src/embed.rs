//! Embeddings for hybrid retrieval (`SAGE_EMBEDDING_*`): passages are embedded at ingestion,
//! queries at retrieval; the nearest passages by cosine similarity are fused with the BM25
//! ones by reciprocal rank.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use providers::{Endpoint, LlmClient};

/// Passages sent to the model in one request.
const BATCH: usize = 32;
/// Knowledge bases whose vectors are kept in memory at most.
const MAX_CACHED_BASES: usize = 32;
/// Reciprocal-rank fusion constant (Σ 1 / (K + rank), rank from 1).
const RRF_K: f32 = 60.0;

/// The embedding model of the deployment.
#[derive(Clone)]
pub struct Embedder {
    client: LlmClient,
    endpoint: Endpoint,
}

impl Embedder {
    pub fn new(client: LlmClient, endpoint: Endpoint) -> Self {
        Self { client, endpoint }
    }

    /// Normalised vectors of `texts`, in order.
    pub(crate) async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(BATCH) {
            let vectors = self
                .client
                .embeddings(&self.endpoint, batch)
                .await
                .map_err(|e| e.to_string())?;
            out.extend(vectors.into_iter().map(normalised));
        }
        Ok(out)
    }
}

fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > f32::EPSILON {
        for x in &mut v {
            *x /= norm;
        }
    }
    v
}

pub(crate) fn to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(crate) fn from_bytes(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// The passage vectors of one knowledge base at one revision.
pub(crate) struct Vectors {
    pub revision: i64,
    pub rows: Vec<(String, Vec<f32>)>,
}

/// Vectors per knowledge base, reloaded when the base's revision moves.
#[derive(Clone, Default)]
pub(crate) struct VectorCache {
    bases: Arc<Mutex<HashMap<String, Arc<Vectors>>>>,
}

impl VectorCache {
    pub fn get(&self, kdb_id: &str, revision: i64) -> Option<Arc<Vectors>> {
        let bases = self.bases.lock().ok()?;
        bases
            .get(kdb_id)
            .filter(|v| v.revision == revision)
            .cloned()
    }

    pub fn put(&self, kdb_id: &str, vectors: Vectors) -> Arc<Vectors> {
        let vectors = Arc::new(vectors);
        if let Ok(mut bases) = self.bases.lock() {
            if bases.len() >= MAX_CACHED_BASES && !bases.contains_key(kdb_id) {
                // Keep the ones a search holds right now; the rest reload on their next search.
                bases.retain(|_, v| Arc::strong_count(v) > 1);
            }
            bases.insert(kdb_id.to_owned(), vectors.clone());
        }
        vectors
    }

    pub fn forget(&self, kdb_id: &str) {
        if let Ok(mut bases) = self.bases.lock() {
            bases.remove(kdb_id);
        }
    }
}

/// The `limit` passages nearest to `query` (dot product of normalised vectors; passages of
/// another dimension are skipped), best first.
pub(crate) fn nearest(vectors: &Vectors, query: &[f32], limit: usize) -> Vec<(String, f32)> {
    let mut scored: Vec<(String, f32)> = vectors
        .rows
        .iter()
        .filter(|(_, v)| v.len() == query.len())
        .map(|(id, v)| (id.clone(), v.iter().zip(query).map(|(a, b)| a * b).sum()))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    scored.truncate(limit);
    scored
}

/// Reciprocal-rank fusion of ranked lists of ids.
pub(crate) fn fuse(lists: &[Vec<String>]) -> HashMap<String, f32> {
    let mut scores: HashMap<String, f32> = HashMap::new();
    for list in lists {
        for (rank, id) in list.iter().enumerate() {
            *scores.entry(id.clone()).or_default() += 1.0 / (RRF_K + rank as f32 + 1.0);
        }
    }
    scores
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip_and_rank() {
        let v = normalised(vec![3.0, 4.0]);
        assert_eq!(from_bytes(&to_bytes(&v)), v);
        let vectors = Vectors {
            revision: 1,
            rows: vec![
                ("a".into(), normalised(vec![1.0, 0.0])),
                ("b".into(), normalised(vec![0.6, 0.8])),
                ("c".into(), vec![1.0, 0.0, 0.0]),
            ],
        };
        let best = nearest(&vectors, &normalised(vec![0.0, 1.0]), 5);
        assert_eq!(
            best.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
            ["b", "a"]
        );
        let fused = fuse(&[vec!["a".into(), "b".into()], vec!["b".into()]]);
        assert!(fused["b"] > fused["a"]);
    }
}
