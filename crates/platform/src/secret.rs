//! The server secret: signing and encryption of secrets at rest. Configured with
//! `SAGE_SECRET_KEY`, or generated once into `<data dir>/secret.key` (mode 0600) and reused.
//! Several replicas must share a configured key.

use std::path::Path;

use rand::Rng;

use crate::StartError;

/// At least 32 bytes of key material. Debug output never shows it.
#[derive(Clone)]
pub struct SecretKey(Vec<u8>);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

impl SecretKey {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

const FILE_NAME: &str = "secret.key";

/// The configured key, or the one stored under `data_dir`, or a new one written there.
pub fn load_or_create(data_dir: &Path, configured: Option<&str>) -> Result<SecretKey, StartError> {
    if let Some(key) = configured {
        return Ok(SecretKey(key.as_bytes().to_vec()));
    }
    let path = data_dir.join(FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let bytes = hex::decode(text.trim()).map_err(|_| {
                StartError::new(format!("the secret key file {} is corrupt", path.display()))
            })?;
            if bytes.len() < 32 {
                return Err(StartError::new(format!(
                    "the secret key file {} is too short",
                    path.display()
                )));
            }
            Ok(SecretKey(bytes))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir).map_err(|e| {
                StartError::new(format!(
                    "cannot create the data directory {}: {e}",
                    data_dir.display()
                ))
            })?;
            let mut bytes = vec![0u8; 32];
            rand::rng().fill(bytes.as_mut_slice());
            write_private(&path, &hex::encode(&bytes))
                .map_err(|e| StartError::new(format!("cannot write {}: {e}", path.display())))?;
            Ok(SecretKey(bytes))
        }
        Err(e) => Err(StartError::new(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_stored_privately_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path(), None).unwrap();
        let second = load_or_create(dir.path(), None).unwrap();
        assert_eq!(first.as_bytes(), second.as_bytes());
        assert_eq!(first.as_bytes().len(), 32);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(FILE_NAME))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(format!("{first:?}"), "SecretKey(***)");
    }

    #[test]
    fn a_configured_key_wins_and_a_corrupt_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let configured = "k".repeat(40);
        let key = load_or_create(dir.path(), Some(&configured)).unwrap();
        assert_eq!(key.as_bytes(), configured.as_bytes());
        std::fs::write(dir.path().join(FILE_NAME), "zz").unwrap();
        assert!(load_or_create(dir.path(), None).is_err());
    }
}

/// Seals secrets at rest (provider API keys, MCP keys, client secrets) with XChaCha20-Poly1305
/// under a key derived from the server secret. Sealed text: `v1:<base64(nonce ‖ ciphertext)>`.
#[derive(Clone)]
pub struct Sealer {
    cipher: chacha20poly1305::XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(***)")
    }
}

/// A sealed value could not be opened (another secret key, or corruption).
#[derive(Debug, thiserror::Error)]
#[error("a stored secret cannot be decrypted (was SAGE_SECRET_KEY changed?)")]
pub struct UnsealError;

impl Sealer {
    pub fn new(key: &SecretKey) -> Self {
        use chacha20poly1305::KeyInit;
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        hasher.update(b"sage-server/seal/v1");
        hasher.update(key.as_bytes());
        let derived = hasher.finalize();
        let cipher = chacha20poly1305::XChaCha20Poly1305::new(&derived);
        Self { cipher }
    }

    pub fn seal(&self, plain: &str) -> String {
        use base64::Engine;
        use chacha20poly1305::aead::Aead;
        let mut nonce = [0u8; 24];
        rand::rng().fill(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(&nonce.into(), plain.as_bytes())
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!(
            "v1:{}",
            base64::engine::general_purpose::STANDARD.encode(out)
        )
    }

    pub fn open(&self, sealed: &str) -> Result<String, UnsealError> {
        use base64::Engine;
        use chacha20poly1305::aead::Aead;
        let body = sealed.strip_prefix("v1:").ok_or(UnsealError)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| UnsealError)?;
        if bytes.len() < 24 {
            return Err(UnsealError);
        }
        let (nonce, ciphertext) = bytes.split_at(24);
        let nonce: [u8; 24] = nonce.try_into().map_err(|_| UnsealError)?;
        let plain = self
            .cipher
            .decrypt(&nonce.into(), ciphertext)
            .map_err(|_| UnsealError)?;
        String::from_utf8(plain).map_err(|_| UnsealError)
    }
}

#[cfg(test)]
mod sealer_tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key() {
        let a = Sealer::new(&SecretKey(vec![1; 32]));
        let b = Sealer::new(&SecretKey(vec![2; 32]));
        let sealed = a.seal("sk-secret-key");
        assert!(sealed.starts_with("v1:") && !sealed.contains("sk-secret"));
        assert_ne!(a.seal("sk-secret-key"), sealed, "a fresh nonce each time");
        assert_eq!(a.open(&sealed).unwrap(), "sk-secret-key");
        assert!(b.open(&sealed).is_err());
        assert!(a.open("v1:AAAA").is_err());
        assert!(a.open("plain").is_err());
    }
}
