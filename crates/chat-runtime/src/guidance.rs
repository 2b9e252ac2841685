//! The guidance queue: messages a user adds while a run is going, taken by the run before its
//! next model call. One `KvStore` record per item plus an index set, so taking an item is
//! atomic (`take`) on every replica.

use std::time::Duration;

use platform::store::{KvStore, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

const TTL: Duration = Duration::from_secs(24 * 3600);

/// One queued message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Guidance {
    pub guidance_id: String,
    pub content: String,
    pub metadata: Value,
    pub created_at: f64,
}

fn index(session_id: &str) -> String {
    format!("chat:guidance:{session_id}")
}

fn item(session_id: &str, guidance_id: &str) -> String {
    format!("chat:guidance:{session_id}:{guidance_id}")
}

fn encode(g: &Guidance) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(g).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) async fn push(
    kv: &dyn KvStore,
    session_id: &str,
    g: &Guidance,
) -> Result<(), StoreError> {
    kv.set(&item(session_id, &g.guidance_id), &encode(g)?, Some(TTL))
        .await?;
    kv.set_add(&index(session_id), &g.guidance_id, TTL).await
}

/// Pending items, oldest first.
pub(crate) async fn list(kv: &dyn KvStore, session_id: &str) -> Result<Vec<Guidance>, StoreError> {
    let mut out = Vec::new();
    for id in kv.set_members(&index(session_id)).await? {
        match kv.get(&item(session_id, &id)).await? {
            Some(bytes) => {
                if let Ok(g) = serde_json::from_slice::<Guidance>(&bytes) {
                    out.push(g);
                }
            }
            None => kv.set_remove(&index(session_id), &id).await?,
        }
    }
    out.sort_by(|a, b| a.created_at.total_cmp(&b.created_at));
    Ok(out)
}

/// Replaces an item's content; `false` when it is no longer queued.
pub(crate) async fn update(
    kv: &dyn KvStore,
    session_id: &str,
    guidance_id: &str,
    content: &str,
) -> Result<bool, StoreError> {
    let key = item(session_id, guidance_id);
    let Some(bytes) = kv.get(&key).await? else {
        return Ok(false);
    };
    let mut g: Guidance =
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    g.content = content.to_owned();
    kv.set(&key, &encode(&g)?, Some(TTL)).await?;
    Ok(true)
}

pub(crate) async fn remove(
    kv: &dyn KvStore,
    session_id: &str,
    guidance_id: &str,
) -> Result<bool, StoreError> {
    let found = kv.delete(&item(session_id, guidance_id)).await?;
    kv.set_remove(&index(session_id), guidance_id).await?;
    Ok(found)
}

/// Takes every pending item (each exactly once across replicas), oldest first.
pub(crate) async fn drain(kv: &dyn KvStore, session_id: &str) -> Result<Vec<Guidance>, StoreError> {
    let mut out = Vec::new();
    for id in kv.set_members(&index(session_id)).await? {
        if let Some(bytes) = kv.take(&item(session_id, &id)).await?
            && let Ok(g) = serde_json::from_slice::<Guidance>(&bytes)
        {
            out.push(g);
        }
        kv.set_remove(&index(session_id), &id).await?;
    }
    out.sort_by(|a, b| a.created_at.total_cmp(&b.created_at));
    Ok(out)
}
