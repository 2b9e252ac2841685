//! Password hashing with argon2id (OWASP parameters: 19 MiB, t=2, p=1) on the blocking pool,
//! bounded by a semaphore so a login storm cannot exhaust memory or starve async workers.
//! Hashes with other parameters still verify and are flagged for rehashing.

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use tokio::sync::{OnceCell, Semaphore};

use crate::IdentityError;

/// The PHC prefix of a hash made with the current parameters.
const CURRENT_PREFIX: &str = "$argon2id$v=19$m=19456,t=2,p=1$";

pub(crate) struct Passwords {
    permits: Arc<Semaphore>,
    dummy: OnceCell<String>,
}

/// The result of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verified {
    pub ok: bool,
    pub needs_rehash: bool,
}

fn internal(e: impl std::fmt::Display) -> IdentityError {
    IdentityError::Internal(anyhow::anyhow!("password hashing: {e}"))
}

impl Passwords {
    pub fn new(concurrency: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy: OnceCell::new(),
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, IdentityError> {
        let _permit = self.permits.acquire().await.map_err(internal)?;
        tokio::task::spawn_blocking(work).await.map_err(internal)
    }

    /// A PHC string for `password`.
    pub async fn hash(&self, password: &str) -> Result<String, IdentityError> {
        let password = password.to_owned();
        self.blocking(move || {
            Argon2::default()
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(internal)
        })
        .await?
    }

    /// Checks `password` against `hash`. Without a hash (unknown user) a dummy hash is
    /// checked instead, so both cases take the same time.
    pub async fn verify(
        &self,
        password: &str,
        hash: Option<&str>,
    ) -> Result<Verified, IdentityError> {
        let (stored, real) = match hash {
            Some(h) => (h.to_owned(), true),
            None => (
                self.dummy
                    .get_or_try_init(|| self.hash("dummy-password-for-timing"))
                    .await?
                    .clone(),
                false,
            ),
        };
        let password = password.to_owned();
        let ok = self
            .blocking(move || match PasswordHash::new(&stored) {
                Ok(parsed) => Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok(),
                Err(_) => false,
            })
            .await?;
        let ok = ok && real;
        Ok(Verified {
            ok,
            needs_rehash: ok && hash.is_some_and(|h| !h.starts_with(CURRENT_PREFIX)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_old_parameters_are_flagged() {
        let passwords = Passwords::new(2);
        let hash = passwords.hash("correct horse battery").await.unwrap();
        assert!(hash.starts_with(CURRENT_PREFIX), "{hash}");
        let good = passwords
            .verify("correct horse battery", Some(&hash))
            .await
            .unwrap();
        assert_eq!(
            good,
            Verified {
                ok: true,
                needs_rehash: false
            }
        );
        let bad = passwords.verify("wrong", Some(&hash)).await.unwrap();
        assert!(!bad.ok);
        let unknown = passwords.verify("anything", None).await.unwrap();
        assert!(!unknown.ok);
        assert!(
            !passwords
                .verify("x", Some("not a phc string"))
                .await
                .unwrap()
                .ok
        );

        // A hash made with other argon2id parameters (Sage's argon2-cffi defaults).
        let params = argon2::Params::new(65536, 3, 4, None).unwrap();
        let old = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password(b"legacy pass")
            .unwrap()
            .to_string();
        let legacy = passwords.verify("legacy pass", Some(&old)).await.unwrap();
        assert_eq!(
            legacy,
            Verified {
                ok: true,
                needs_rehash: true
            }
        );
    }
}
