//! Login throttling, checked before any password hashing: attempts per client IP per minute,
//! and failures per account and IP within a window (IPv6 clients count per /64). Both answer 429 with Retry-After.
//!
//! A failure is counted (reserved) *before* the password is checked and forgotten again only
//! when the check succeeds, so parallel wrong guesses cannot all reach the hash. Account keys
//! are the SHA-256 of the lower-cased, trimmed identifier: bounded whatever the client sends.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use platform::store::KvStore;
use sha2::{Digest, Sha256};

use crate::IdentityError;
use crate::model::IdentitySettings;

/// The throttle scope of password logins.
pub(crate) const LOGIN_SCOPE: &str = "login";

pub(crate) struct Throttle {
    kv: Arc<dyn KvStore>,
    settings: IdentitySettings,
}

/// The throttle key of a client address, for every per-address limit: IPv6 addresses count
/// per /64 (one subscriber's prefix), IPv4-mapped ones as their IPv4 address.
pub(crate) fn address_key(ip: Option<IpAddr>) -> String {
    match ip {
        Some(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Some(IpAddr::V6(v6)) => v6
            .to_ipv4_mapped()
            .map_or_else(String::new, |v4| v4.to_string()),
        Some(ip) => ip.to_string(),
        None => "unknown".to_owned(),
    }
}

fn retry(ttl: Option<Duration>) -> u64 {
    ttl.map_or(60, |t| t.as_secs().max(1))
}

/// A bounded, normalised form of an account identifier for store keys.
pub(crate) fn account_key(account: &str) -> String {
    hex::encode(Sha256::digest(account.trim().to_lowercase().as_bytes()))
}

impl Throttle {
    pub fn new(kv: Arc<dyn KvStore>, settings: IdentitySettings) -> Self {
        Self { kv, settings }
    }

    fn failures_key(scope: &str, account: &str, ip: Option<IpAddr>) -> String {
        format!(
            "{scope}-failures:{}:{}",
            account_key(account),
            address_key(ip)
        )
    }

    /// Counts this login attempt and reserves a failure for it; refuses it when a limit is
    /// exceeded. Call [`Throttle::succeeded`] when the password was right.
    pub async fn before_login(
        &self,
        account: &str,
        ip: Option<IpAddr>,
    ) -> Result<(), IdentityError> {
        let per_ip = self
            .kv
            .incr(
                &format!("login-ip:{}", address_key(ip)),
                1,
                Duration::from_secs(60),
            )
            .await?;
        if per_ip.value > self.settings.login_attempts_per_ip_per_minute {
            return Err(IdentityError::TooManyAttempts {
                retry_after: retry(per_ip.ttl),
            });
        }
        self.reserve(LOGIN_SCOPE, account, ip).await
    }

    /// Reserves one failure of `scope` for `account` from `ip`; refuses once the window's
    /// allowance is used up.
    pub async fn reserve(
        &self,
        scope: &str,
        account: &str,
        ip: Option<IpAddr>,
    ) -> Result<(), IdentityError> {
        let failures = self
            .kv
            .incr(
                &Self::failures_key(scope, account, ip),
                1,
                self.settings.login_failure_window,
            )
            .await?;
        if failures.value > self.settings.login_failures_per_account {
            return Err(IdentityError::TooManyAttempts {
                retry_after: retry(failures.ttl),
            });
        }
        Ok(())
    }

    /// The password was right: the reserved failures are forgotten.
    pub async fn succeeded(
        &self,
        scope: &str,
        account: &str,
        ip: Option<IpAddr>,
    ) -> Result<(), IdentityError> {
        self.kv
            .delete(&Self::failures_key(scope, account, ip))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(Some(a)), address_key(Some(b)));
        assert_ne!(address_key(Some(a)), address_key(Some(other)));
        assert_eq!(
            address_key(Some("::ffff:10.0.0.1".parse().unwrap())),
            "10.0.0.1"
        );
        assert_eq!(address_key(Some("10.0.0.1".parse().unwrap())), "10.0.0.1");
        assert_eq!(address_key(None), "unknown");
    }
}
