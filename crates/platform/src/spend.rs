//! Limits on what one user may spend of the deployment's models: a per-user token bucket of
//! model calls, shared by every replica through the [`KvStore`], and the cap on the text one
//! request may send to a model. Every route or run that calls a model on a user's behalf
//! calls [`ModelBudget::admit`] once before it starts, and checks its input with
//! [`check_input`] before any model call. Separate from the login throttle.

use std::sync::Arc;
use std::time::Duration;

use crate::Config;
use crate::store::{KvStore, Rate, StoreError};

/// The configured limits (`SAGE_MODEL_CALLS_PER_MINUTE`, `SAGE_MODEL_CALLS_BURST`,
/// `SAGE_MAX_PROMPT_CHARS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpendLimits {
    /// Refill rate of the bucket; 0 turns the bucket off.
    pub calls_per_minute: u32,
    /// Calls a user may make at once.
    pub burst: u32,
    /// Largest text, in characters, one request may send to a model.
    pub max_prompt_chars: usize,
}

impl SpendLimits {
    pub fn from_config(config: &Config) -> Self {
        Self {
            calls_per_minute: config.model_calls_per_minute,
            burst: config.model_calls_burst,
            max_prompt_chars: config.max_prompt_chars,
        }
    }
}

/// A user has used up their model calls for now.
#[derive(Debug, thiserror::Error)]
pub enum SpendError {
    #[error("too many model calls; retry in {retry_after} s")]
    RateLimited {
        /// Whole seconds, at least 1 (the `Retry-After` value).
        retry_after: u64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SpendError {
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            SpendError::RateLimited { .. } => crate::ErrorKind::RateLimited,
            SpendError::Store(e) => e.kind(),
        }
    }
}

/// Text for a model longer than the cap.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` sends {length} characters to the model; the limit is {limit}")]
pub struct InputTooLarge {
    pub field: String,
    pub length: usize,
    pub limit: usize,
}

/// Refuses `chars` characters of model input for `field` when they exceed `limit`.
pub fn check_input(field: &str, chars: usize, limit: usize) -> Result<(), InputTooLarge> {
    if chars > limit {
        return Err(InputTooLarge {
            field: field.to_owned(),
            length: chars,
            limit,
        });
    }
    Ok(())
}

/// The per-user bucket of model calls.
#[derive(Clone)]
pub struct ModelBudget {
    kv: Arc<dyn KvStore>,
    limits: SpendLimits,
}

impl ModelBudget {
    pub fn new(kv: Arc<dyn KvStore>, limits: SpendLimits) -> Self {
        Self { kv, limits }
    }

    pub fn limits(&self) -> SpendLimits {
        self.limits
    }

    /// Takes one model call from `user_id`'s bucket, or says how long to wait. Call it once
    /// per request or run that will call a model (a chat run: at run start), before any
    /// model call.
    pub async fn admit(&self, user_id: &str) -> Result<(), SpendError> {
        if self.limits.calls_per_minute == 0 {
            return Ok(());
        }
        let rate = Rate {
            burst: self.limits.burst.max(1),
            interval: Duration::from_secs(60) / self.limits.calls_per_minute,
        };
        let taken = self
            .kv
            .take_tokens(&format!("model-calls:{user_id}"), rate, 1)
            .await?;
        if taken.allowed {
            Ok(())
        } else {
            let millis = u64::try_from(taken.retry_after.as_millis()).unwrap_or(u64::MAX);
            Err(SpendError::RateLimited {
                retry_after: millis.div_ceil(1000).max(1),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryKvStore;

    #[tokio::test]
    async fn each_user_has_their_own_bucket_and_zero_turns_it_off() {
        let kv: Arc<dyn KvStore> = Arc::new(MemoryKvStore::new());
        let limits = SpendLimits {
            calls_per_minute: 6,
            burst: 2,
            max_prompt_chars: 10,
        };
        let budget = ModelBudget::new(kv.clone(), limits);
        budget.admit("u1").await.unwrap();
        budget.admit("u1").await.unwrap();
        match budget.admit("u1").await {
            Err(SpendError::RateLimited { retry_after }) => {
                assert!((1..=10).contains(&retry_after), "{retry_after}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        budget.admit("u2").await.unwrap();
        let off = ModelBudget::new(
            kv,
            SpendLimits {
                calls_per_minute: 0,
                ..limits
            },
        );
        for _ in 0..10 {
            off.admit("u1").await.unwrap();
        }
    }

    #[test]
    fn inputs_over_the_cap_name_their_field() {
        assert!(check_input("prompt", 10, 10).is_ok());
        let e = check_input("prompt", 11, 10).unwrap_err();
        assert_eq!((e.field.as_str(), e.length, e.limit), ("prompt", 11, 10));
    }
}
