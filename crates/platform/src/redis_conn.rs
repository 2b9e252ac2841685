//! The Redis connection, opened when `REDIS_URL` is set. Sessions, stream replay logs, locks and
//! rate limits use it through the store abstractions in [`crate::store`].

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::StartError;

/// A Redis client (for dedicated connections, such as blocking stream reads) and a shared,
/// self-reconnecting connection for everything else, with the deployment's key prefix.
#[derive(Clone)]
pub struct RedisHandle {
    pub client: redis::Client,
    pub manager: ConnectionManager,
    pub prefix: String,
}

impl std::fmt::Debug for RedisHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisHandle")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Connects and checks the server answers; a failure is one line naming the (redacted) URL.
pub async fn connect(url: &str, prefix: &str) -> Result<RedisHandle, StartError> {
    let fail = |e: &dyn std::fmt::Display| {
        StartError::new(format!(
            "cannot connect to Redis at {}: {}",
            crate::db::redact(url),
            e.to_string().lines().next().unwrap_or_default()
        ))
    };
    let client = redis::Client::open(url).map_err(|e| fail(&e))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(Duration::from_secs(10)))
        .set_number_of_retries(2);
    let manager = tokio::time::timeout(
        Duration::from_secs(8),
        ConnectionManager::new_with_config(client.clone(), config),
    )
    .await
    .map_err(|_| fail(&"timed out"))?
    .map_err(|e| fail(&e))?;
    let mut probe = manager.clone();
    let _: String = redis::cmd("PING")
        .query_async(&mut probe)
        .await
        .map_err(|e| fail(&e))?;
    Ok(RedisHandle {
        client,
        manager,
        prefix: prefix.to_owned(),
    })
}
