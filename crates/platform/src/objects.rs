//! Object storage: files that outlive a request (knowledge-base documents), under keys of
//! `/`-separated safe segments. [`LocalObjects`] keeps them in a confined directory (the
//! embedded default); [`S3Objects`] in a bucket of an S3-compatible service (AWS Signature
//! Version 4, path-style URLs), which every replica reaches.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::Utc;
use ring::{digest, hmac};
use tokio::io::AsyncReadExt;

use crate::config::S3Config;
use futures_util::StreamExt;

use crate::confined::{Confined, ConfinedError, Kind, relative_parts};

/// Why an object operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("no such object")]
    NotFound,
    /// The key names a directory, or passes through an object (local files only).
    #[error("the key is taken by a directory or passes through a file")]
    Conflict,
    #[error("the object is larger than {0} bytes")]
    TooLarge(u64),
    #[error("invalid object key: {0}")]
    BadKey(String),
    #[error("object storage: {0}")]
    Io(String),
}

impl From<std::io::Error> for ObjectError {
    fn from(e: std::io::Error) -> Self {
        ObjectError::Io(e.to_string())
    }
}

impl From<ConfinedError> for ObjectError {
    fn from(e: ConfinedError) -> Self {
        match e {
            ConfinedError::NotFound | ConfinedError::Symlink | ConfinedError::BadName => {
                ObjectError::NotFound
            }
            ConfinedError::NotADirectory | ConfinedError::IsADirectory | ConfinedError::Exists => {
                ObjectError::Conflict
            }
            other => ObjectError::Io(other.to_string()),
        }
    }
}

/// An object's bytes as they arrive.
pub type ByteStream =
    futures_util::stream::BoxStream<'static, Result<bytes::Bytes, std::io::Error>>;

/// Where objects live.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Stores the finished file at `source` under `key`, replacing an object already there,
    /// and returns its size. The source may be moved; the caller removes whatever is left.
    async fn put_file(&self, key: &str, source: &Path) -> Result<u64, ObjectError>;
    /// The object's bytes; [`ObjectError::TooLarge`] past `max` bytes.
    async fn get(&self, key: &str, max: u64) -> Result<Vec<u8>, ObjectError>;
    /// The object's size and its bytes as a stream.
    async fn open(&self, key: &str) -> Result<(u64, ByteStream), ObjectError>;
    /// Removes the object; a missing one is not an error.
    async fn delete(&self, key: &str) -> Result<(), ObjectError>;
    /// Removes every object below `prefix` (a key of one or more segments, without the
    /// trailing `/`).
    async fn delete_prefix(&self, prefix: &str) -> Result<(), ObjectError>;
}

fn parts(key: &str) -> Result<Vec<String>, ObjectError> {
    let parts = relative_parts(key).map_err(|e| ObjectError::BadKey(e.0))?;
    if parts.is_empty() {
        return Err(ObjectError::BadKey("the key is empty".into()));
    }
    Ok(parts)
}

/// Objects as files below a root directory (created on first write, 0700/0600).
#[derive(Debug, Clone)]
pub struct LocalObjects {
    root: PathBuf,
}

impl LocalObjects {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
}

#[async_trait]
impl ObjectStore for LocalObjects {
    async fn put_file(&self, key: &str, source: &Path) -> Result<u64, ObjectError> {
        let parts = parts(key)?;
        let (root, source) = (self.root.clone(), source.to_owned());
        tokio::task::spawn_blocking(move || {
            let tree = Confined::create(&root)?;
            let (name, dirs) = parts.split_last().ok_or(ObjectError::NotFound)?;
            let dir = tree.create_dirs(dirs)?;
            match tree.stat(&parts) {
                Ok(meta) if meta.kind == Kind::File || meta.kind == Kind::Symlink => {
                    tree.remove(&parts)?;
                }
                Ok(_) => return Err(ObjectError::Conflict),
                Err(ConfinedError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
            tree.place(&dir, name, &source)?;
            Ok(tree.stat(&parts)?.size)
        })
        .await
        .map_err(|e| ObjectError::Io(e.to_string()))?
    }

    async fn get(&self, key: &str, max: u64) -> Result<Vec<u8>, ObjectError> {
        let parts = parts(key)?;
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let tree = Confined::open(&root)?;
            let file = tree.open_file(&parts)?;
            let mut bytes = Vec::new();
            file.take(max + 1).read_to_end(&mut bytes)?;
            if bytes.len() as u64 > max {
                return Err(ObjectError::TooLarge(max));
            }
            Ok(bytes)
        })
        .await
        .map_err(|e| ObjectError::Io(e.to_string()))?
    }

    async fn open(&self, key: &str) -> Result<(u64, ByteStream), ObjectError> {
        let parts = parts(key)?;
        let root = self.root.clone();
        let file = tokio::task::spawn_blocking(move || {
            let tree = Confined::open(&root)?;
            Ok::<_, ObjectError>(tree.open_file(&parts)?)
        })
        .await
        .map_err(|e| ObjectError::Io(e.to_string()))??;
        let size = file.metadata()?.len();
        Ok((size, file_stream(tokio::fs::File::from_std(file))))
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<(), ObjectError> {
        self.delete(prefix).await
    }

    async fn delete(&self, key: &str) -> Result<(), ObjectError> {
        let parts = parts(key)?;
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            let tree = match Confined::open(&root) {
                Ok(tree) => tree,
                Err(ConfinedError::NotFound) => return Ok(()),
                Err(e) => return Err(e.into()),
            };
            match tree.remove(&parts) {
                Ok(()) | Err(ConfinedError::NotFound) => Ok(()),
                Err(e) => Err(e.into()),
            }
        })
        .await
        .map_err(|e| ObjectError::Io(e.to_string()))?
    }
}

/// Objects in an S3 bucket (path-style requests signed with AWS Signature Version 4; bodies
/// sent as `UNSIGNED-PAYLOAD` over the configured endpoint).
#[derive(Clone)]
pub struct S3Objects {
    client: reqwest::Client,
    /// `scheme://host[:port]`, no trailing slash.
    endpoint: String,
    host: String,
    bucket: String,
    region: String,
    access_key: String,
    secret_key: String,
}

impl std::fmt::Debug for S3Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Objects")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

/// RFC 3986 unreserved characters stay; everything else is `%XX` (`/` too unless `path`).
fn uri_encode(text: &str, path: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            b'/' if path => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, bytes))
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
        .as_ref()
        .to_vec()
}

struct Credentials<'a> {
    access_key: &'a str,
    secret_key: &'a str,
    region: &'a str,
}

/// The `Authorization` header of AWS Signature Version 4 for S3: `headers` are the signed
/// ones, lower-case and sorted by name; the request has no query string.
fn authorization(
    credentials: &Credentials<'_>,
    method: &str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
    payload_hash: &str,
    amz_date: &str,
) -> String {
    let date = amz_date.get(..8).unwrap_or_default();
    let signed: Vec<&str> = headers.iter().map(|(name, _)| *name).collect();
    let signed = signed.join(";");
    let mut canonical = format!("{method}\n{path}\n{query}\n");
    for (name, value) in headers {
        canonical.push_str(&format!("{name}:{}\n", value.trim()));
    }
    canonical.push_str(&format!("\n{signed}\n{payload_hash}"));
    let scope = format!("{date}/{}/s3/aws4_request", credentials.region);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let mut key = hmac_sha256(
        format!("AWS4{}", credentials.secret_key).as_bytes(),
        date.as_bytes(),
    );
    for part in [credentials.region, "s3", "aws4_request"] {
        key = hmac_sha256(&key, part.as_bytes());
    }
    let signature = hex::encode(hmac_sha256(&key, to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope},SignedHeaders={signed},Signature={signature}",
        credentials.access_key
    )
}

impl S3Objects {
    pub fn new(config: &S3Config) -> Result<Self, String> {
        let region = config
            .region
            .clone()
            .unwrap_or_else(|| "us-east-1".to_owned());
        let endpoint = config
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let url = reqwest::Url::parse(&endpoint).map_err(|e| format!("SAGE_S3_ENDPOINT: {e}"))?;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => return Err("SAGE_S3_ENDPOINT has no host".into()),
        };
        crate::tls::ensure_crypto_provider();
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot build the S3 client: {e}"))?;
        Ok(Self {
            client,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            host,
            bucket: config.bucket.clone(),
            region,
            access_key: config.access_key.clone().unwrap_or_default(),
            secret_key: config.secret_key.clone().unwrap_or_default(),
        })
    }

    /// A signed request for `key` (the payload is not signed).
    fn request(&self, method: reqwest::Method, key: &str) -> reqwest::RequestBuilder {
        let path = format!(
            "/{}/{}",
            uri_encode(&self.bucket, false),
            uri_encode(key, true)
        );
        self.signed(method, path, &[])
    }

    /// A signed request for `path` with query parameters (put in canonical order here).
    fn signed(
        &self,
        method: reqwest::Method,
        path: String,
        query: &[(&str, &str)],
    ) -> reqwest::RequestBuilder {
        let mut pairs: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
            .collect();
        pairs.sort();
        let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let query = query.join("&");
        let amz_date = Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let payload = "UNSIGNED-PAYLOAD";
        let authorization = authorization(
            &Credentials {
                access_key: &self.access_key,
                secret_key: &self.secret_key,
                region: &self.region,
            },
            method.as_str(),
            &path,
            &query,
            &[
                ("host", &self.host),
                ("x-amz-content-sha256", payload),
                ("x-amz-date", &amz_date),
            ],
            payload,
            &amz_date,
        );
        let url = if query.is_empty() {
            format!("{}{path}", self.endpoint)
        } else {
            format!("{}{path}?{query}", self.endpoint)
        };
        self.client
            .request(method, url)
            .header("x-amz-content-sha256", payload)
            .header("x-amz-date", amz_date)
            .header("authorization", authorization)
    }

    /// A successful GET of `key` (missing: [`ObjectError::NotFound`]).
    async fn fetch(&self, key: &str) -> Result<reqwest::Response, ObjectError> {
        parts(key)?;
        let response = self
            .request(reqwest::Method::GET, key)
            .send()
            .await
            .map_err(|e| ObjectError::Io(e.to_string()))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(ObjectError::NotFound);
        }
        if !response.status().is_success() {
            return Err(Self::failure(response).await);
        }
        Ok(response)
    }

    async fn failure(response: reqwest::Response) -> ObjectError {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let code = text
            .split_once("<Code>")
            .and_then(|(_, rest)| rest.split_once("</Code>"))
            .map_or("", |(code, _)| code);
        ObjectError::Io(format!("S3 answered HTTP {} {code}", status.as_u16()))
    }
}

#[async_trait]
impl ObjectStore for S3Objects {
    async fn put_file(&self, key: &str, source: &Path) -> Result<u64, ObjectError> {
        parts(key)?;
        let file = tokio::fs::File::open(source).await?;
        let length = file.metadata().await?.len();
        let body = reqwest::Body::wrap_stream(file_stream(file));
        let response = self
            .request(reqwest::Method::PUT, key)
            .header("content-length", length)
            .body(body)
            .send()
            .await
            .map_err(|e| ObjectError::Io(e.to_string()))?;
        if response.status().is_success() {
            Ok(length)
        } else {
            Err(Self::failure(response).await)
        }
    }

    async fn open(&self, key: &str) -> Result<(u64, ByteStream), ObjectError> {
        let response = self.fetch(key).await?;
        let size = response
            .content_length()
            .ok_or_else(|| ObjectError::Io("S3 sent no content length".into()))?;
        let stream = response
            .bytes_stream()
            .map(|chunk| chunk.map_err(std::io::Error::other));
        Ok((size, Box::pin(stream)))
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<(), ObjectError> {
        parts(prefix)?;
        let below = format!("{prefix}/");
        let path = format!("/{}", uri_encode(&self.bucket, false));
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![("list-type", "2"), ("prefix", below.as_str())];
            if let Some(t) = token.as_deref() {
                query.push(("continuation-token", t));
            }
            let response = self
                .signed(reqwest::Method::GET, path.clone(), &query)
                .send()
                .await
                .map_err(|e| ObjectError::Io(e.to_string()))?;
            if !response.status().is_success() {
                return Err(Self::failure(response).await);
            }
            let listing = response
                .text()
                .await
                .map_err(|e| ObjectError::Io(e.to_string()))?;
            for key in xml_values(&listing, "Key") {
                self.delete(&key).await?;
            }
            token = xml_values(&listing, "NextContinuationToken")
                .into_iter()
                .next();
            let truncated = xml_values(&listing, "IsTruncated")
                .first()
                .is_some_and(|t| t == "true");
            if !truncated || token.is_none() {
                return Ok(());
            }
        }
    }

    async fn get(&self, key: &str, max: u64) -> Result<Vec<u8>, ObjectError> {
        let mut response = self.fetch(key).await?;
        if response.content_length().is_some_and(|n| n > max) {
            return Err(ObjectError::TooLarge(max));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| ObjectError::Io(e.to_string()))?
        {
            if (bytes.len() + chunk.len()) as u64 > max {
                return Err(ObjectError::TooLarge(max));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    async fn delete(&self, key: &str) -> Result<(), ObjectError> {
        parts(key)?;
        let response = self
            .request(reqwest::Method::DELETE, key)
            .send()
            .await
            .map_err(|e| ObjectError::Io(e.to_string()))?;
        if response.status().is_success() || response.status() == reqwest::StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(Self::failure(response).await)
        }
    }
}

/// The texts of every `<tag>…</tag>` of an S3 XML answer, with XML's five entities decoded.
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(at) = rest.find(&open) {
        let after = &rest[at + open.len()..];
        let Some(end) = after.find(&close) else { break };
        out.push(
            after[..end]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        );
        rest = &after[end + close.len()..];
    }
    out
}

/// An open file as a stream of 64 KiB chunks (ends after the first error): object reads,
/// S3 uploads and the server's file downloads.
pub fn file_stream(file: tokio::fs::File) -> ByteStream {
    Box::pin(futures_util::stream::unfold(
        Some(file),
        |state| async move {
            let mut file = state?;
            let mut buf = vec![0u8; 64 * 1024];
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(bytes::Bytes::from(buf)), Some(file)))
                }
                Err(e) => Some((Err(e), None)),
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_aws_example() {
        // The GET Object example of AWS's Signature Version 4 documentation.
        let header = authorization(
            &Credentials {
                access_key: "AKIAIOSFODNN7EXAMPLE",
                secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                region: "us-east-1",
            },
            "GET",
            "/test.txt",
            "",
            &[
                ("host", "examplebucket.s3.amazonaws.com"),
                ("range", "bytes=0-9"),
                (
                    "x-amz-content-sha256",
                    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                ),
                ("x-amz-date", "20130524T000000Z"),
            ],
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "20130524T000000Z",
        );
        assert_eq!(
            header,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,\
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn listings_are_read() {
        let xml = "<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>oss/u1/a&amp;b.txt</Key></Contents>\
                   <Contents><Key>oss/u1/c</Key></Contents><NextContinuationToken>t1</NextContinuationToken></ListBucketResult>";
        assert_eq!(xml_values(xml, "Key"), ["oss/u1/a&b.txt", "oss/u1/c"]);
        assert_eq!(xml_values(xml, "NextContinuationToken"), ["t1"]);
    }

    #[test]
    fn keys_are_encoded_as_sigv4_wants() {
        assert_eq!(uri_encode("kdb/a b/ü~.txt", true), "kdb/a%20b/%C3%BC~.txt");
        assert_eq!(uri_encode("a/b", false), "a%2Fb");
    }

    #[tokio::test]
    async fn local_objects_store_read_replace_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalObjects::new(dir.path().join("objects"));
        let source = dir.path().join("upload");
        std::fs::write(&source, b"first").unwrap();
        assert_eq!(store.put_file("kdb/k1/d1", &source).await.unwrap(), 5);
        assert_eq!(store.get("kdb/k1/d1", 100).await.unwrap(), b"first");
        std::fs::write(&source, b"second").unwrap();
        store.put_file("kdb/k1/d1", &source).await.unwrap();
        assert_eq!(store.get("kdb/k1/d1", 100).await.unwrap(), b"second");
        assert!(matches!(
            store.get("kdb/k1/d1", 3).await,
            Err(ObjectError::TooLarge(3))
        ));
        assert!(matches!(
            store.get("../x", 3).await,
            Err(ObjectError::BadKey(_))
        ));
        let (size, stream) = store.open("kdb/k1/d1").await.unwrap();
        let streamed: Vec<bytes::Bytes> = stream.map(|c| c.unwrap()).collect().await;
        assert_eq!((size, streamed.concat()), (6, b"second".to_vec()));
        // A directory in the way is a conflict, never replaced.
        std::fs::write(&source, b"x").unwrap();
        assert!(matches!(
            store.put_file("kdb/k1", &source).await,
            Err(ObjectError::Conflict)
        ));
        store.delete("kdb/k1/d1").await.unwrap();
        store.delete("kdb/k1/d1").await.unwrap();
        store.put_file("kdb/k2/d2", &source).await.unwrap();
        store.delete_prefix("kdb").await.unwrap();
        assert!(matches!(
            store.get("kdb/k2/d2", 100).await,
            Err(ObjectError::NotFound)
        ));
        assert!(matches!(
            store.get("kdb/k1/d1", 100).await,
            Err(ObjectError::NotFound)
        ));
    }
}
