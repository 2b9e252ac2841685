//! Readiness: whether the database and the shared store answer right now. Liveness
//! (`/api/health`) needs neither; readiness (`/api/ready`) checks both, each within a short
//! timeout, so a probe never hangs on an outage.

use std::sync::Arc;
use std::time::Duration;

use crate::db::Db;
use crate::store::KvStore;

/// The dependencies a ready server needs.
#[derive(Clone)]
pub struct Readiness {
    db: Db,
    /// `None` for the in-process store, which cannot be down.
    redis: Option<Arc<dyn KvStore>>,
    timeout: Duration,
}

/// One dependency's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    /// `database` or `redis`.
    pub name: &'static str,
    pub up: bool,
}

impl Readiness {
    /// `redis` is the Redis-backed store when one is configured.
    pub fn new(db: Db, redis: Option<Arc<dyn KvStore>>, timeout: Duration) -> Self {
        Self { db, redis, timeout }
    }

    /// Checks every dependency at once.
    pub async fn check(&self) -> Vec<Check> {
        let database = crate::db::ping(&self.db, self.timeout);
        let redis = async {
            match &self.redis {
                None => None,
                Some(kv) => Some(matches!(
                    tokio::time::timeout(self.timeout, kv.get("readiness-probe")).await,
                    Ok(Ok(_))
                )),
            }
        };
        let (database, redis) = tokio::join!(database, redis);
        let mut checks = vec![Check {
            name: "database",
            up: database,
        }];
        if let Some(up) = redis {
            checks.push(Check { name: "redis", up });
        }
        checks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_embedded_deployment_checks_its_database_only() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display());
        let db = crate::db::connect_url(&url).await.unwrap();
        let readiness = Readiness::new(db.clone(), None, Duration::from_secs(1));
        assert_eq!(
            readiness.check().await,
            vec![Check {
                name: "database",
                up: true
            }]
        );
        db.close().await.unwrap();
        assert!(!readiness.check().await[0].up, "a closed pool is down");
    }
}
