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

/// `abcd***wxyz`: at most a quarter of the key shows, at most 4 characters at each end, so
/// a 32-character key shows 4 + 4, a 16-character one 2 + 2, and keys under 8 characters none.
/// Every listing of a secret (provider keys, MCP server keys) shows it this way.
pub fn mask(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let each = (chars.len() / 8).min(4);
    let head: String = chars.iter().take(each).collect();
    let tail: String = chars.iter().skip(chars.len() - each).collect();
    format!("{head}***{tail}")
}

/// The current key and the earlier ones still accepted for opening sealed values.
#[derive(Debug, Clone)]
pub struct SecretKeys {
    pub current: SecretKey,
    pub previous: Vec<SecretKey>,
}

/// The current key (as [`load_or_create`]) and the previous ones: those configured in
/// `SAGE_SECRET_KEY_PREVIOUS`, and, when a key is configured, the one generated earlier into
/// `<data dir>/secret.key` (so moving from the generated key to a configured one loses nothing).
pub fn load_keys(
    data_dir: &Path,
    configured: Option<&str>,
    previous: &[String],
) -> Result<SecretKeys, StartError> {
    let current = load_or_create(data_dir, configured)?;
    let mut keys: Vec<SecretKey> = previous
        .iter()
        .map(|k| SecretKey(k.as_bytes().to_vec()))
        .collect();
    if configured.is_some()
        && data_dir.join(FILE_NAME).exists()
        && let Ok(generated) = load_or_create(data_dir, None)
    {
        keys.push(generated);
    }
    keys.retain(|k| k.as_bytes() != current.as_bytes());
    Ok(SecretKeys {
        current,
        previous: keys,
    })
}

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
/// Values sealed under a previous key (rotation) still open; [`Sealer::reseal`] moves them to
/// the current key.
#[derive(Clone)]
pub struct Sealer {
    cipher: chacha20poly1305::XChaCha20Poly1305,
    previous: Vec<chacha20poly1305::XChaCha20Poly1305>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(***)")
    }
}

/// What a reseal pass did: values moved to the current key, values looked at, and values no
/// known key opens (left as they are).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResealReport {
    pub changed: u64,
    pub total: u64,
    pub unreadable: u64,
}

impl ResealReport {
    pub fn add(&mut self, other: ResealReport) {
        self.changed += other.changed;
        self.total += other.total;
        self.unreadable += other.unreadable;
    }
}

/// Re-encrypts stored values still sealed under a previous key with the current one
/// (`sage-server admin reseal`): for each `(id, sealed)` row, `write(id, old, new)` stores the
/// new value only where the old one is still there (so a concurrent change is never
/// overwritten) and answers how many rows it changed. Values no configured key opens are
/// counted as unreadable and left as they are.
pub async fn reseal_rows<E, F, Fut>(
    sealer: &Sealer,
    what: &str,
    rows: Vec<(String, String)>,
    mut write: F,
) -> Result<ResealReport, E>
where
    F: FnMut(String, String, String) -> Fut,
    Fut: std::future::Future<Output = Result<u64, E>>,
{
    let mut report = ResealReport::default();
    for (id, sealed) in rows {
        report.total += 1;
        match sealer.reseal(&sealed) {
            Ok(None) => {}
            Ok(Some(resealed)) => report.changed += write(id, sealed, resealed).await?,
            Err(_) => {
                tracing::warn!(%what, %id, "a sealed value opens with no configured secret key");
                report.unreadable += 1;
            }
        }
    }
    Ok(report)
}

/// A sealed value could not be opened (another secret key, or corruption).
#[derive(Debug, thiserror::Error)]
#[error("a stored secret cannot be decrypted (was SAGE_SECRET_KEY changed?)")]
pub struct UnsealError;

fn cipher_of(key: &SecretKey) -> chacha20poly1305::XChaCha20Poly1305 {
    use chacha20poly1305::KeyInit;
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    hasher.update(b"sage-server/seal/v1");
    hasher.update(key.as_bytes());
    let derived = hasher.finalize();
    chacha20poly1305::XChaCha20Poly1305::new(&derived)
}

impl Sealer {
    pub fn new(key: &SecretKey) -> Self {
        Self {
            cipher: cipher_of(key),
            previous: Vec::new(),
        }
    }

    /// Seals with the current key; opens with it or any of the previous ones.
    pub fn with_keys(keys: &SecretKeys) -> Self {
        Self {
            cipher: cipher_of(&keys.current),
            previous: keys.previous.iter().map(cipher_of).collect(),
        }
    }

    /// `None` when `sealed` is already under the current key; otherwise the same secret
    /// sealed under the current key. Fails when no known key opens it.
    pub fn reseal(&self, sealed: &str) -> Result<Option<String>, UnsealError> {
        let (nonce, ciphertext) = parts(sealed)?;
        if decrypt(&self.cipher, &nonce, &ciphertext).is_ok() {
            return Ok(None);
        }
        let plain = self.open(sealed)?;
        Ok(Some(self.seal(&plain)))
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
        let (nonce, ciphertext) = parts(sealed)?;
        std::iter::once(&self.cipher)
            .chain(&self.previous)
            .find_map(|cipher| decrypt(cipher, &nonce, &ciphertext).ok())
            .ok_or(UnsealError)
    }
}

fn parts(sealed: &str) -> Result<([u8; 24], Vec<u8>), UnsealError> {
    use base64::Engine;
    let body = sealed.strip_prefix("v1:").ok_or(UnsealError)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| UnsealError)?;
    if bytes.len() < 24 {
        return Err(UnsealError);
    }
    let (nonce, ciphertext) = bytes.split_at(24);
    let nonce: [u8; 24] = nonce.try_into().map_err(|_| UnsealError)?;
    Ok((nonce, ciphertext.to_vec()))
}

fn decrypt(
    cipher: &chacha20poly1305::XChaCha20Poly1305,
    nonce: &[u8; 24],
    ciphertext: &[u8],
) -> Result<String, UnsealError> {
    use chacha20poly1305::aead::Aead;
    let plain = cipher
        .decrypt(nonce.into(), ciphertext)
        .map_err(|_| UnsealError)?;
    String::from_utf8(plain).map_err(|_| UnsealError)
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

    #[test]
    fn previous_keys_open_and_reseal_moves_values_to_the_current_key() {
        let (k1, k2) = (SecretKey(vec![1; 32]), SecretKey(vec![2; 32]));
        let old = Sealer::new(&k1).seal("sk-rotated");
        let rotated = Sealer::with_keys(&SecretKeys {
            current: k2.clone(),
            previous: vec![k1],
        });
        assert_eq!(rotated.open(&old).unwrap(), "sk-rotated");
        let fresh = rotated.seal("sk-new");
        assert_eq!(
            Sealer::new(&k2).open(&fresh).unwrap(),
            "sk-new",
            "new values use the current key"
        );
        assert_eq!(rotated.reseal(&fresh).unwrap(), None, "already current");
        let moved = rotated.reseal(&old).unwrap().unwrap();
        assert_eq!(Sealer::new(&k2).open(&moved).unwrap(), "sk-rotated");
        assert!(Sealer::new(&SecretKey(vec![3; 32])).reseal(&old).is_err());
    }

    #[tokio::test]
    async fn reseal_rows_writes_only_what_a_previous_key_sealed() {
        let (k1, k2) = (SecretKey(vec![1; 32]), SecretKey(vec![2; 32]));
        let rotated = Sealer::with_keys(&SecretKeys {
            current: k2.clone(),
            previous: vec![k1.clone()],
        });
        let rows = vec![
            ("old".to_owned(), Sealer::new(&k1).seal("a")),
            ("current".to_owned(), Sealer::new(&k2).seal("b")),
            (
                "lost".to_owned(),
                Sealer::new(&SecretKey(vec![3; 32])).seal("c"),
            ),
            ("raced".to_owned(), Sealer::new(&k1).seal("d")),
        ];
        let mut written = Vec::new();
        let report = reseal_rows(&rotated, "test", rows, |id, _old, new| {
            // A row changed meanwhile writes nothing.
            let changed = u64::from(id != "raced");
            written.push((id, new));
            async move { Ok::<u64, std::convert::Infallible>(changed) }
        })
        .await
        .unwrap();
        assert_eq!((report.total, report.changed, report.unreadable), (4, 1, 1));
        let ids: Vec<&str> = written.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["old", "raced"]);
        assert_eq!(Sealer::new(&k2).open(&written[0].1).unwrap(), "a");
    }

    #[test]
    fn a_generated_key_becomes_a_previous_key_once_one_is_configured() {
        let dir = tempfile::tempdir().unwrap();
        let generated = load_or_create(dir.path(), None).unwrap();
        let configured = "c".repeat(32);
        let older = "o".repeat(32);
        let keys = load_keys(dir.path(), Some(&configured), std::slice::from_ref(&older)).unwrap();
        assert_eq!(keys.current.as_bytes(), configured.as_bytes());
        let previous: Vec<&[u8]> = keys.previous.iter().map(SecretKey::as_bytes).collect();
        assert_eq!(previous, vec![older.as_bytes(), generated.as_bytes()]);
        let unconfigured = load_keys(dir.path(), None, &[]).unwrap();
        assert!(unconfigured.previous.is_empty());
    }
}
