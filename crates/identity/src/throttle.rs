//! Login throttling, checked before any password hashing: attempts per client IP per minute,
//! and failures per account and IP within a window. Both answer 429 with Retry-After.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use platform::store::KvStore;

use crate::IdentityError;
use crate::model::IdentitySettings;

pub(crate) struct Throttle {
    kv: Arc<dyn KvStore>,
    settings: IdentitySettings,
}

fn ip_text(ip: Option<IpAddr>) -> String {
    ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}

fn retry(ttl: Option<Duration>) -> u64 {
    ttl.map_or(60, |t| t.as_secs().max(1))
}

impl Throttle {
    pub fn new(kv: Arc<dyn KvStore>, settings: IdentitySettings) -> Self {
        Self { kv, settings }
    }

    fn failures_key(account: &str, ip: Option<IpAddr>) -> String {
        format!("login-failures:{}:{}", account.to_lowercase(), ip_text(ip))
    }

    /// Counts this attempt and refuses it when a limit is exceeded.
    pub async fn before_login(
        &self,
        account: &str,
        ip: Option<IpAddr>,
    ) -> Result<(), IdentityError> {
        let per_ip = self
            .kv
            .incr(
                &format!("login-ip:{}", ip_text(ip)),
                1,
                Duration::from_secs(60),
            )
            .await?;
        if per_ip.value > self.settings.login_attempts_per_ip_per_minute {
            return Err(IdentityError::TooManyAttempts {
                retry_after: retry(per_ip.ttl),
            });
        }
        let key = Self::failures_key(account, ip);
        let failures = self
            .kv
            .incr(&key, 0, self.settings.login_failure_window)
            .await?;
        if failures.value >= self.settings.login_failures_per_account {
            return Err(IdentityError::TooManyAttempts {
                retry_after: retry(failures.ttl),
            });
        }
        Ok(())
    }

    pub async fn failed(&self, account: &str, ip: Option<IpAddr>) -> Result<(), IdentityError> {
        self.kv
            .incr(
                &Self::failures_key(account, ip),
                1,
                self.settings.login_failure_window,
            )
            .await?;
        Ok(())
    }

    pub async fn succeeded(&self, account: &str, ip: Option<IpAddr>) -> Result<(), IdentityError> {
        self.kv.delete(&Self::failures_key(account, ip)).await?;
        Ok(())
    }
}
