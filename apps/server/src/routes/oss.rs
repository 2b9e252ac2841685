//! Uploads to the object store: `POST /api/oss/upload` (multipart `file`, optional `path`)
//! answers a signed, expiring link that `GET /api/oss/files/{key}` serves to whoever holds it
//! (decisions.md 29: uploads are private; the link is the capability).

use actix_multipart::Multipart;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use platform::blobs::Blobs;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::AppError;
use crate::extract::{ApiQuery, spool_multipart};
use crate::response::{ApiOk, ApiResult, Envelope};
use crate::routes::workspaces::{attachment, content_type};
use crate::state::AppState;

/// Routes inside the `/api` scope.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/oss/upload").route(web::post().to(upload)))
        .service(web::resource("/oss/files/{key:.*}").route(web::get().to(download)));
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OssUploadDto {
    /// A link to the file that works without login until it expires
    /// (`SAGE_UPLOAD_LINK_TTL_SECS`, 7 days by default).
    url: String,
    /// `<user id>/<path>`.
    key: String,
    size: u64,
    /// RFC 3339: when the link stops working.
    expires_at: String,
}

/// Percent-encodes one path segment (RFC 3986 unreserved characters stay).
fn encode_segment(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Upload one file (multipart `file`; optional `path`, below the caller's own space, else
/// `<YYYYmmddHHMMSS>_<file name>`); the same path again replaces the caller's file.
#[utoipa::path(post, path = "/api/oss/upload", tag = "system",
    responses((status = 200, body = Envelope<OssUploadDto>), (status = 409, description = "`upload.path_conflict`"),
              (status = 413, description = "Larger than `SAGE_MAX_UPLOAD_BYTES`"),
              (status = 422, description = "No `file`, or a `path` that leaves the caller's space")))]
pub(crate) async fn upload(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    form: Multipart,
) -> ApiResult<OssUploadDto> {
    let mut form = spool_multipart(&req, form, state.config.max_upload_bytes).await?;
    let file = form
        .take_file("file")
        .ok_or_else(|| AppError::validation("body", "file", "is required"))?;
    let now = chrono::Utc::now();
    let key = Blobs::key_for(
        &caller.0.user_id,
        form.field("path"),
        file.file_name.as_deref(),
        &now.format("%Y%m%d%H%M%S").to_string(),
    )?;
    let ttl = chrono::Duration::from_std(state.config.upload_link_ttl)
        .unwrap_or_else(|_| chrono::Duration::days(7));
    let expires_at = now + ttl;
    // The temporary file is removed when `file.path` drops, unless it was moved into place.
    let stored = state
        .blobs
        .put(&key, &file.path, expires_at.timestamp())
        .await?;
    let base = match state.config.public_url.as_deref() {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => crate::auth::request_origin(&req, &state.config).unwrap_or_default(),
    };
    let path: Vec<String> = stored.key.split('/').map(encode_segment).collect();
    Ok(ApiOk(OssUploadDto {
        url: format!(
            "{base}/api/oss/files/{}?expires={}&sig={}",
            path.join("/"),
            stored.expires,
            stored.signature
        ),
        key: stored.key,
        size: stored.size,
        expires_at: expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LinkQuery {
    /// Seconds since the epoch, as signed.
    #[serde(default)]
    expires: Option<i64>,
    #[serde(default)]
    #[param(max_length = 128)]
    sig: Option<String>,
}

/// Types shown in the browser; everything else downloads (an uploaded page or SVG never runs
/// as this origin).
fn inline(content_type: &str) -> bool {
    matches!(
        content_type,
        "image/png" | "image/jpeg" | "image/gif" | "application/pdf" | "text/plain; charset=utf-8"
    )
}

/// A file behind a signed link; no login. An expired, altered or unknown link is 404.
#[utoipa::path(get, path = "/api/oss/files/{key}", tag = "system", security(()),
    params(("key" = String, Path, description = "`<user id>/<path>`"), LinkQuery),
    responses((status = 200, description = "The file's bytes"), (status = 404, description = "`upload.not_found`")))]
pub(crate) async fn download(
    state: web::Data<AppState>,
    key: web::Path<String>,
    query: ApiQuery<LinkQuery>,
) -> Result<HttpResponse, AppError> {
    let key = key.into_inner();
    let (Some(expires), Some(sig)) = (query.0.expires, query.0.sig) else {
        return Err(AppError::new("upload.not_found"));
    };
    let (size, bytes) = state
        .blobs
        .open_signed(&key, expires, &sig, chrono::Utc::now().timestamp())
        .await?;
    let name = key.rsplit('/').next().unwrap_or_default();
    let kind = content_type(name);
    let disposition = if inline(kind) {
        "inline".to_owned()
    } else {
        attachment(name)
    };
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::CONTENT_TYPE, kind))
        .insert_header((header::CONTENT_DISPOSITION, disposition))
        .insert_header((header::CACHE_CONTROL, "private, max-age=300"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; sandbox",
        ))
        .no_chunking(size);
    Ok(response.streaming(bytes))
}
