//! Uploads (`/api/oss/upload`) in an [`ObjectStore`] (`<data dir>/oss` on the embedded
//! default, `oss/` in the S3 bucket when configured), each user's below their own id (a key is
//! `<user id>/<path>`, so one user can never name, overwrite or list another's), and links to
//! them that are signed and expire: HMAC-SHA256 under a key derived from the server secret,
//! over the key and the expiry, so every replica sharing the secret serves every link and
//! nobody can forge or prolong one.

use std::path::Path;
use std::sync::Arc;

use ring::hmac;

use crate::confined::{InvalidPath, relative_parts};
use crate::objects::{ByteStream, ObjectError, ObjectStore};
use crate::secret::SecretKey;

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The path from the request is malformed or would leave the caller's space.
    #[error(transparent)]
    InvalidPath(#[from] InvalidPath),
    /// Missing, expired, badly signed, or not a file: one answer for all, so a link tells
    /// nothing about what else exists.
    #[error("no such file")]
    NotFound,
    /// The path names a directory or passes through a file.
    #[error("the path is taken by a directory or passes through a file")]
    Conflict,
    #[error("{0}")]
    Io(String),
}

impl From<ObjectError> for BlobError {
    fn from(e: ObjectError) -> Self {
        match e {
            ObjectError::NotFound | ObjectError::BadKey(_) => BlobError::NotFound,
            ObjectError::Conflict => BlobError::Conflict,
            other => BlobError::Io(other.to_string()),
        }
    }
}

/// A stored upload: its key and a signed link's query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    /// `<user id>/<path>`.
    pub key: String,
    pub size: u64,
    /// Seconds since the epoch after which the link stops working.
    pub expires: i64,
    /// Hex HMAC of the key and `expires`.
    pub signature: String,
}

/// The upload store.
#[derive(Clone)]
pub struct Blobs {
    objects: Arc<dyn ObjectStore>,
    /// Prepended to every key in `objects` (`oss/` in a shared bucket, empty in `<data dir>/oss`).
    prefix: String,
    signing: hmac::Key,
}

impl std::fmt::Debug for Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blobs")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// The longest stored file name kept from an upload's own name.
const MAX_FILE_NAME_CHARS: usize = 120;

impl Blobs {
    /// Uploads in `objects` below `prefix` (`""` or segments ending in `/`), signing with a
    /// key derived from the server secret (never the secret itself).
    pub fn new(objects: Arc<dyn ObjectStore>, prefix: &str, secret: &SecretKey) -> Self {
        let derive = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
        let derived = hmac::sign(&derive, b"sage-blob-links-v1");
        Self {
            objects,
            prefix: prefix.to_owned(),
            signing: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
        }
    }

    fn object_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn message(key: &str, expires: i64) -> Vec<u8> {
        format!("{key}\n{expires}").into_bytes()
    }

    fn sign(&self, key: &str, expires: i64) -> String {
        hex::encode(hmac::sign(&self.signing, &Self::message(key, expires)))
    }

    /// The key of an upload for `user_id`: `path` below the user's space when given
    /// (checked: no `..`, no absolute path), else `<stamp>_<file name>` with the file name
    /// reduced to its last component.
    pub fn key_for(
        user_id: &str,
        path: Option<&str>,
        file_name: Option<&str>,
        stamp: &str,
    ) -> Result<Vec<String>, BlobError> {
        let mut parts = relative_parts(user_id)?;
        if parts.len() != 1 {
            return Err(InvalidPath("the user id is not a single name".into()).into());
        }
        match path.map(str::trim).filter(|p| !p.is_empty()) {
            Some(path) => {
                let rest = relative_parts(path)?;
                if rest.is_empty() {
                    return Err(InvalidPath("the path names no file".into()).into());
                }
                parts.extend(rest);
            }
            None => {
                let base: String = file_name
                    .unwrap_or_default()
                    .rsplit(['/', '\\'])
                    .next()
                    .unwrap_or_default()
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(MAX_FILE_NAME_CHARS)
                    .collect();
                let base = base.trim();
                let base = if base.is_empty() || base == "." || base == ".." {
                    "file"
                } else {
                    base
                };
                parts.push(format!("{stamp}_{base}"));
            }
        }
        Ok(parts)
    }

    /// Stores the finished temporary file `source` at `key` (replacing a file already there:
    /// the key is the caller's own) and signs a link valid until `expires`.
    pub async fn put(
        &self,
        key: &[String],
        source: &Path,
        expires: i64,
    ) -> Result<StoredBlob, BlobError> {
        let joined = key.join("/");
        let size = self
            .objects
            .put_file(&self.object_key(&joined), source)
            .await?;
        Ok(StoredBlob {
            signature: self.sign(&joined, expires),
            key: joined,
            size,
            expires,
        })
    }

    /// Opens the file of a signed link if the signature holds and `now` is not past
    /// `expires`: its size and bytes. Every failure of the link is [`BlobError::NotFound`].
    pub async fn open_signed(
        &self,
        key: &str,
        expires: i64,
        signature: &str,
        now: i64,
    ) -> Result<(u64, ByteStream), BlobError> {
        let valid = hex::decode(signature).is_ok_and(|tag| {
            hmac::verify(&self.signing, &Self::message(key, expires), &tag).is_ok()
        });
        if !valid || now > expires {
            return Err(BlobError::NotFound);
        }
        let parts = relative_parts(key).map_err(|_| BlobError::NotFound)?;
        if parts.len() < 2 {
            return Err(BlobError::NotFound);
        }
        match self.objects.open(&self.object_key(&parts.join("/"))).await {
            Ok(open) => Ok(open),
            Err(ObjectError::Io(e)) => Err(BlobError::Io(e)),
            Err(_) => Err(BlobError::NotFound),
        }
    }
}

/// A deleted user's uploads go with them.
#[async_trait::async_trait]
impl crate::UserCleanup for Blobs {
    async fn user_deleted(&self, user_id: &str) -> Result<(), crate::actor::CleanupError> {
        let Ok(parts) = relative_parts(user_id) else {
            return Ok(());
        };
        if parts.len() != 1 {
            return Ok(());
        }
        self.objects
            .delete_prefix(&self.object_key(&parts[0]))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn temp_file(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join(format!("upload-{}", crate::ids::new_hex_id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    fn secret(byte: u8) -> SecretKey {
        let dir = tempfile::tempdir().unwrap();
        crate::secret::load_or_create(dir.path(), Some(&String::from(byte as char).repeat(32)))
            .unwrap()
    }

    #[test]
    fn keys_stay_in_the_callers_space() {
        let key = |path: Option<&str>, name: Option<&str>| {
            Blobs::key_for("u1", path, name, "20261207").map(|k| k.join("/"))
        };
        assert_eq!(key(Some("a/b.png"), None).unwrap(), "u1/a/b.png");
        assert_eq!(key(None, Some("../../x.png")).unwrap(), "u1/20261207_x.png");
        assert_eq!(
            key(None, Some("C:\\dir\\y.txt")).unwrap(),
            "u1/20261207_y.txt"
        );
        assert_eq!(key(Some(""), Some("")).unwrap(), "u1/20261207_file");
        for bad in ["../u2/x", "/etc/passwd", "a/../../x", "a\0b", "."] {
            assert!(key(Some(bad), None).is_err(), "{bad}");
        }
        assert!(Blobs::key_for("../x", None, Some("a"), "s").is_err());
    }

    fn local(dir: &Path) -> Arc<dyn ObjectStore> {
        Arc::new(crate::objects::LocalObjects::new(dir.join("oss")))
    }

    async fn read(open: Result<(u64, ByteStream), BlobError>) -> Result<(String, u64), BlobError> {
        use futures_util::StreamExt;
        let (size, stream) = open?;
        let chunks: Vec<bytes::Bytes> = stream.map(|c| c.unwrap()).collect().await;
        Ok((String::from_utf8(chunks.concat()).unwrap(), size))
    }

    #[tokio::test]
    async fn links_open_only_while_valid_and_unforged() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::new(local(dir.path()), "", &secret(b'a'));
        let key = Blobs::key_for("u1", Some("docs/a.txt"), None, "s").unwrap();
        let stored = blobs
            .put(&key, &temp_file(dir.path(), "first"), 1_000)
            .await
            .unwrap();
        assert_eq!(stored.key, "u1/docs/a.txt");
        assert_eq!(stored.size, 5);
        let open = |key: &str, expires: i64, sig: &str, now: i64| {
            let (blobs, key, sig) = (blobs.clone(), key.to_owned(), sig.to_owned());
            async move { read(blobs.open_signed(&key, expires, &sig, now).await).await }
        };
        assert_eq!(
            open(&stored.key, 1_000, &stored.signature, 999)
                .await
                .unwrap(),
            ("first".to_owned(), 5)
        );
        // Expired, prolonged, another key, another secret, garbage: all NotFound.
        assert!(matches!(
            open(&stored.key, 1_000, &stored.signature, 1_001).await,
            Err(BlobError::NotFound)
        ));
        assert!(
            open(&stored.key, 2_000, &stored.signature, 999)
                .await
                .is_err()
        );
        assert!(
            open("u1/docs/b.txt", 1_000, &stored.signature, 999)
                .await
                .is_err()
        );
        assert!(open(&stored.key, 1_000, "zz", 999).await.is_err());
        let other = Blobs::new(local(dir.path()), "", &secret(b'b'));
        assert!(
            other
                .open_signed(&stored.key, 1_000, &stored.signature, 999)
                .await
                .is_err()
        );

        // The same key again replaces the file; a directory in the way is a conflict.
        let again = blobs
            .put(&key, &temp_file(dir.path(), "second!"), 1_000)
            .await
            .unwrap();
        assert_eq!(
            open(&again.key, 1_000, &again.signature, 0)
                .await
                .unwrap()
                .1,
            7
        );
        let dir_key = Blobs::key_for("u1", Some("docs"), None, "s").unwrap();
        assert!(matches!(
            blobs
                .put(&dir_key, &temp_file(dir.path(), "x"), 1_000)
                .await,
            Err(BlobError::Conflict)
        ));
        let through_file = Blobs::key_for("u1", Some("docs/a.txt/c"), None, "s").unwrap();
        assert!(matches!(
            blobs
                .put(&through_file, &temp_file(dir.path(), "x"), 1_000)
                .await,
            Err(BlobError::Conflict)
        ));

        // A deleted user's uploads go.
        crate::UserCleanup::user_deleted(&blobs, "u1")
            .await
            .unwrap();
        assert!(open(&again.key, 1_000, &again.signature, 0).await.is_err());
    }
}
