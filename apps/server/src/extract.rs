//! Extractors whose rejections are `/api` envelopes naming the field at fault.
//!
//! `ApiJson<T>` checks the content type, enforces the body limit (413) and deserialises with
//! the path of the failing field (422); `ApiQuery<T>` does the same for the query string.
//! The stock `Json`/`Query`/`Path` extractors get the same error shapes through the
//! `*Config` handlers registered in `Application::build`.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use actix_multipart::Multipart;

use actix_web::dev::Payload;
use actix_web::error::{JsonPayloadError, PathError, PayloadError, QueryPayloadError};
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::error::AppError;

/// Body limits, registered once as app data.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimits {
    pub json: usize,
    /// A whole JSON body, and each piece of an upload, must arrive within this.
    pub read_timeout: Duration,
}

fn body_timeout(after: Duration) -> AppError {
    AppError::new("request.body_timeout").param("seconds", after.as_secs())
}

/// A JSON body of type `T`.
#[derive(Debug)]
pub(crate) struct ApiJson<T>(pub T);

/// A query string of type `T`.
#[derive(Debug)]
pub(crate) struct ApiQuery<T>(pub T);

fn is_json(req: &HttpRequest) -> bool {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(text) = value.to_str() else {
        return false;
    };
    let essence = text
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The field a serde error is about: the failing path, or the name in "missing field `x`".
fn field_of(path: &str, message: &str) -> String {
    if path != "." && !path.is_empty() {
        return path.to_owned();
    }
    message
        .split('`')
        .nth(1)
        .filter(|_| message.starts_with("missing field") || message.starts_with("unknown field"))
        .map(str::to_owned)
        .unwrap_or_else(|| "body".to_owned())
}

/// Reason text without serde_json's position suffix.
fn reason_of(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let invalid_json = |message: String| {
        AppError::new("request.invalid_json")
            .param("reason", &message)
            .detail(
                serde_json::json!([{ "location": "body", "field": "body", "message": message }]),
            )
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize::<_, T>(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        if inner.is_syntax() || inner.is_eof() {
            invalid_json(message)
        } else {
            AppError::validation("body", &field_of(&path, &message), &reason_of(&message))
        }
    })?;
    de.end().map_err(|e| invalid_json(e.to_string()))?;
    Ok(value)
}

pub(crate) fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, AppError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize::<_, T>(de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        AppError::validation("query", &field_of(&path, &message), &message)
    })
}

/// Refuses a body that is not declared as JSON.
pub(crate) fn require_json(req: &HttpRequest) -> Result<(), AppError> {
    if is_json(req) {
        Ok(())
    } else {
        Err(AppError::new("request.unsupported_media_type").param("expected", "application/json"))
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let (limit, read_timeout) = req
            .app_data::<web::Data<BodyLimits>>()
            .map(|l| (l.json, l.read_timeout))
            .unwrap_or((2 * 1024 * 1024, Duration::from_secs(30)));
        let json = is_json(req);
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if !json {
                return Err(AppError::new("request.unsupported_media_type")
                    .param("expected", "application/json"));
            }
            if declared.is_some_and(|n| n > limit) {
                return Err(AppError::new("request.payload_too_large").param("limit", limit));
            }
            let read = async {
                let mut body = web::BytesMut::new();
                while let Some(chunk) = payload.next().await {
                    let chunk = chunk.map_err(payload_error)?;
                    if body.len() + chunk.len() > limit {
                        return Err(
                            AppError::new("request.payload_too_large").param("limit", limit)
                        );
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(body)
            };
            // A slow body must not hold the connection: the whole of it has a deadline.
            let body = tokio::time::timeout(read_timeout, read)
                .await
                .map_err(|_| body_timeout(read_timeout))??;
            parse_json::<T>(&body).map(ApiJson)
        })
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for ApiQuery<T> {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(parse_query::<T>(req.query_string()).map(ApiQuery))
    }
}

/// Where uploads are received: `<data dir>/tmp` (0700), emptied at start.
#[derive(Debug, Clone)]
pub(crate) struct UploadDir(pub PathBuf);

pub(crate) fn prepare_upload_dir(data_dir: &Path) -> std::io::Result<web::Data<UploadDir>> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let dir = data_dir.join("tmp");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    for entry in std::fs::read_dir(&dir)?.flatten() {
        if entry.file_name().to_string_lossy().starts_with("upload-") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(web::Data::new(UploadDir(dir)))
}

/// One file of a received multipart form, in a temporary file that is removed when this is
/// dropped unless it was moved into place first.
#[derive(Debug)]
pub(crate) struct SpooledFile {
    pub field: String,
    pub file_name: Option<String>,
    pub size: u64,
    pub path: tempfile::TempPath,
}

/// A multipart form received without holding it in memory: text fields (at most 64 KiB each)
/// and files streamed to `<data dir>/tmp`.
#[derive(Debug, Default)]
pub(crate) struct SpooledForm {
    pub fields: Vec<(String, String)>,
    pub files: Vec<SpooledFile>,
}

impl SpooledForm {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Takes the first file sent as `field`.
    pub fn take_file(&mut self, field: &str) -> Option<SpooledFile> {
        let at = self.files.iter().position(|f| f.field == field)?;
        Some(self.files.swap_remove(at))
    }

    /// Takes every file sent under any of `fields`, in the order they came.
    pub fn take_files(&mut self, fields: &[&str]) -> Vec<SpooledFile> {
        let (taken, kept) = std::mem::take(&mut self.files)
            .into_iter()
            .partition(|f| fields.contains(&f.field.as_str()));
        self.files = kept;
        taken
    }
}

const MAX_TEXT_FIELD: usize = 64 * 1024;

/// Receives a multipart form for a route whose access the caller has already passed: files
/// go to temporary files, the body may hold at most `limit` bytes of field contents (413 as
/// soon as it passes, before the rest is read), and each piece must arrive within the read
/// timeout. On any failure every temporary file is removed.
pub(crate) async fn spool_multipart(
    req: &HttpRequest,
    mut form: Multipart,
    limit: usize,
) -> Result<SpooledForm, AppError> {
    use tokio::io::AsyncWriteExt;
    let too_large = || AppError::new("request.payload_too_large").param("limit", limit);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Boundaries and part headers come on top of the contents; allow for them.
    if declared.is_some_and(|n| n > limit as u64 + 64 * 1024) {
        return Err(too_large());
    }
    let read_timeout = req
        .app_data::<web::Data<BodyLimits>>()
        .map_or(Duration::from_secs(30), |l| l.read_timeout);
    let dir = req
        .app_data::<web::Data<UploadDir>>()
        .map(|d| d.0.clone())
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("no upload directory")))?;
    let bad = |e: actix_multipart::MultipartError| {
        AppError::new("request.bad_request").param("reason", e)
    };
    let mut out = SpooledForm::default();
    let mut total: u64 = 0;
    loop {
        let next = tokio::time::timeout(read_timeout, form.next())
            .await
            .map_err(|_| body_timeout(read_timeout))?;
        let Some(field) = next else { break };
        let mut field = field.map_err(bad)?;
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field
            .content_disposition()
            .and_then(|d| d.get_filename())
            .map(str::to_owned);
        if file_name.is_some() {
            let temp = tempfile::Builder::new()
                .prefix("upload-")
                .tempfile_in(&dir)
                .map_err(AppError::internal)?;
            let (file, path) = temp.into_parts();
            let mut file = tokio::fs::File::from_std(file);
            let mut size: u64 = 0;
            loop {
                let chunk = tokio::time::timeout(read_timeout, field.next())
                    .await
                    .map_err(|_| body_timeout(read_timeout))?;
                let Some(chunk) = chunk else { break };
                let chunk = chunk.map_err(bad)?;
                total += chunk.len() as u64;
                if total > limit as u64 {
                    return Err(too_large());
                }
                size += chunk.len() as u64;
                file.write_all(&chunk).await.map_err(AppError::internal)?;
            }
            file.flush().await.map_err(AppError::internal)?;
            out.files.push(SpooledFile {
                field: name,
                file_name,
                size,
                path,
            });
        } else {
            let mut text = Vec::new();
            loop {
                let chunk = tokio::time::timeout(read_timeout, field.next())
                    .await
                    .map_err(|_| body_timeout(read_timeout))?;
                let Some(chunk) = chunk else { break };
                let chunk = chunk.map_err(bad)?;
                total += chunk.len() as u64;
                if total > limit as u64 || text.len() + chunk.len() > MAX_TEXT_FIELD {
                    return Err(too_large());
                }
                text.extend_from_slice(&chunk);
            }
            out.fields
                .push((name, String::from_utf8_lossy(&text).into_owned()));
        }
    }
    Ok(out)
}

/// The text fields of a small form, whatever its encoding: multipart (files ignored and
/// removed), `application/x-www-form-urlencoded`, or a JSON object (strings, numbers and
/// booleans as text). At most `limit` bytes are read.
pub(crate) async fn form_fields(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<Vec<(String, String)>, AppError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let form = Multipart::new(req.headers(), payload.into_inner());
        return Ok(spool_multipart(req, form, limit).await?.fields);
    }
    let read_timeout = req
        .app_data::<web::Data<BodyLimits>>()
        .map_or(Duration::from_secs(30), |l| l.read_timeout);
    let mut body = web::BytesMut::new();
    let mut payload = payload.into_inner();
    loop {
        let next = tokio::time::timeout(read_timeout, payload.next())
            .await
            .map_err(|_| body_timeout(read_timeout))?;
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(payload_error)?;
        if body.len() + chunk.len() > limit {
            return Err(AppError::new("request.payload_too_large").param("limit", limit));
        }
        body.extend_from_slice(&chunk);
    }
    if is_json(req) {
        let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            AppError::new("request.invalid_json").param("reason", reason_of(&e.to_string()))
        })?;
        let object = value
            .as_object()
            .ok_or_else(|| AppError::validation("body", "body", "must be a JSON object"))?;
        return Ok(object
            .iter()
            .filter_map(|(k, v)| {
                let text = match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Bool(_) | serde_json::Value::Number(_) => v.to_string(),
                    _ => return None,
                };
                Some((k.clone(), text))
            })
            .collect());
    }
    Ok(form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect())
}

fn payload_error(e: PayloadError) -> AppError {
    match e {
        PayloadError::Overflow => AppError::new("request.payload_too_large").param("limit", "the"),
        other => AppError::new("request.bad_request").param("reason", other),
    }
}

/// Rejections of the stock `web::Json` extractor.
pub(crate) fn json_error(e: JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    let app = match e {
        JsonPayloadError::ContentType => {
            AppError::new("request.unsupported_media_type").param("expected", "application/json")
        }
        JsonPayloadError::Overflow { limit }
        | JsonPayloadError::OverflowKnownLength { limit, .. } => {
            AppError::new("request.payload_too_large").param("limit", limit)
        }
        JsonPayloadError::Deserialize(e) if e.is_data() => {
            let message = e.to_string();
            AppError::validation("body", &field_of(".", &message), &reason_of(&message))
        }
        JsonPayloadError::Deserialize(e) => {
            AppError::new("request.invalid_json").param("reason", e)
        }
        JsonPayloadError::Payload(e) => payload_error(e),
        other => AppError::new("request.bad_request").param("reason", other),
    };
    app.into()
}

/// Rejections of the stock `web::Query` extractor.
pub(crate) fn query_error(e: QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    let message = e.to_string();
    AppError::validation("query", &field_of(".", &message), &message).into()
}

/// Rejections of the stock `web::Path` extractor.
pub(crate) fn path_error(e: PathError, _: &HttpRequest) -> actix_web::Error {
    AppError::validation("path", "path", &e.to_string()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Agent {
        name: String,
        #[serde(rename = "maxLoopCount")]
        max_loop_count: u32,
        tags: Option<Vec<String>>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Paging {
        page: Option<u64>,
        page_size: Option<u64>,
    }

    fn field(e: &AppError) -> String {
        e.message(crate::middleware::Locale::EnUs, "-")
    }

    #[test]
    fn json_errors_name_the_field() {
        let missing = parse_json::<Agent>(br#"{"maxLoopCount": 3}"#).unwrap_err();
        assert_eq!(missing.key(), "request.validation");
        assert!(field(&missing).contains("`name`"), "{}", field(&missing));

        let wrong_type = parse_json::<Agent>(br#"{"name":"a","maxLoopCount":"ten"}"#).unwrap_err();
        assert!(
            field(&wrong_type).contains("`maxLoopCount`"),
            "{}",
            field(&wrong_type)
        );

        let nested =
            parse_json::<Agent>(br#"{"name":"a","maxLoopCount":1,"tags":[1]}"#).unwrap_err();
        assert!(field(&nested).contains("`tags[0]`"), "{}", field(&nested));

        let syntax = parse_json::<Agent>(br#"{"name": "#).unwrap_err();
        assert_eq!(syntax.key(), "request.invalid_json");
        let trailing = parse_json::<Agent>(br#"{"name":"a","maxLoopCount":1} x"#).unwrap_err();
        assert_eq!(trailing.key(), "request.invalid_json");

        assert!(parse_json::<Agent>(br#"{"name":"a","maxLoopCount":1}"#).is_ok());
    }

    fn request(content_type: Option<&str>, body: &'static [u8]) -> (HttpRequest, Payload) {
        let mut req = actix_web::test::TestRequest::post()
            .app_data(web::Data::new(BodyLimits {
                json: 64,
                read_timeout: Duration::from_secs(5),
            }))
            .set_payload(body);
        if let Some(ct) = content_type {
            req = req.insert_header((header::CONTENT_TYPE, ct));
        }
        req.to_http_parts()
    }

    async fn extract(content_type: Option<&str>, body: &'static [u8]) -> Result<Agent, AppError> {
        let (req, mut payload) = request(content_type, body);
        ApiJson::<Agent>::from_request(&req, &mut payload)
            .await
            .map(|j| j.0)
    }

    #[actix_web::test]
    async fn json_bodies_need_the_json_content_type_and_fit_the_limit() {
        let ok = br#"{"name":"a","maxLoopCount":1}"#;
        assert!(extract(Some("application/json"), ok).await.is_ok());
        assert!(
            extract(Some("application/json; charset=utf-8"), ok)
                .await
                .is_ok()
        );
        let wrong = extract(Some("text/plain"), ok).await.unwrap_err();
        assert_eq!(wrong.kind().status(), 415);
        let none = extract(None, ok).await.unwrap_err();
        assert_eq!(none.kind().status(), 415);
        let big = extract(Some("application/json"), &[b' '; 100])
            .await
            .unwrap_err();
        assert_eq!(big.kind().status(), 413);
    }

    #[test]
    fn query_errors_name_the_parameter() {
        let bad = parse_query::<Paging>("page=two").unwrap_err();
        assert!(field(&bad).contains("`page`"), "{}", field(&bad));
        assert!(parse_query::<Paging>("page=2&page_size=10").is_ok());
        let req = actix_web::test::TestRequest::get()
            .uri("/x?page=2&page_size=oops")
            .to_http_request();
        let err = ApiQuery::<Paging>::extract(&req).into_inner().unwrap_err();
        assert!(field(&err).contains("`page_size`"), "{}", field(&err));
        assert!(parse_query::<Paging>("").is_ok());
    }
}
