//! Agent file workspaces: `/api/agent/{agent_id}/file_workspace*` and
//! `/api/agent/workspace/delete`. Paths are confined by the agents crate; this file only moves
//! bytes (downloads are streamed, uploads are multipart).

use actix_multipart::Multipart;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use agents::Download;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::AppError;
use crate::extract::{ApiJson, ApiQuery, spool_multipart};
use crate::response::{ApiOk, ApiResult, Envelope};
use crate::state::AppState;

/// Routes inside the `/api/agent` scope (registered before `/{agent_id}`).
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/workspace/delete").route(web::post().to(delete_workspace)))
        .service(web::resource("/{agent_id}/file_workspace").route(web::post().to(list_files)))
        .service(
            web::resource("/{agent_id}/file_workspace/download")
                .route(web::get().to(download_file)),
        )
        .service(
            web::resource("/{agent_id}/file_workspace/delete").route(web::delete().to(delete_file)),
        )
        .service(
            web::resource("/{agent_id}/file_workspace/upload").route(web::post().to(upload_file)),
        );
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Directory to list, relative to the workspace (default: its root).
    path: Option<String>,
    /// Levels to descend (default 5, at most 20).
    max_depth: Option<u32>,
    /// Accepted for compatibility; conversations land later.
    #[allow(dead_code)]
    session_id: Option<String>,
    /// Admins only: act on this user's workspace.
    user_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FileDto {
    name: String,
    path: String,
    size: u64,
    modified_time: i64,
    is_directory: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ListingDto {
    agent_id: String,
    user_id: String,
    files: Vec<FileDto>,
    workspace_path: String,
    path: String,
    max_depth: u32,
    truncated_by_depth: bool,
    message: String,
}

/// List the caller's workspace files for an agent (recursive).
#[utoipa::path(post, path = "/api/agent/{agent_id}/file_workspace", tag = "agent",
    params(("agent_id" = String, Path), ListQuery),
    responses((status = 200, body = Envelope<ListingDto>), (status = 400, description = "Path outside the workspace")))]
pub(crate) async fn list_files(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: ApiQuery<ListQuery>,
) -> ApiResult<ListingDto> {
    let agent_id = path.into_inner();
    let q = query.0;
    let depth = listing_depth(q.max_depth);
    let dir = q.path.unwrap_or_default();
    let (listing, user_id) = state
        .workspaces
        .list(
            &caller.actor(),
            &agent_id,
            q.user_id.as_deref(),
            &dir,
            depth,
        )
        .await?;
    Ok(ApiOk(ListingDto::new(
        listing, agent_id, user_id, dir, depth,
    )))
}

impl ListingDto {
    /// The listing of `user_id`'s workspace of `agent_id` below `dir`.
    pub(crate) fn new(
        listing: agents::Listing,
        agent_id: String,
        user_id: String,
        dir: String,
        max_depth: u32,
    ) -> Self {
        let files: Vec<FileDto> = listing
            .entries
            .into_iter()
            .map(|e| FileDto {
                name: e.name,
                path: e.path,
                size: e.size,
                modified_time: e.modified_time,
                is_directory: e.is_directory,
            })
            .collect();
        Self {
            message: format!("{} entries", files.len()),
            workspace_path: format!("workspaces/{user_id}/{agent_id}"),
            agent_id,
            user_id,
            files,
            path: dir,
            max_depth,
            truncated_by_depth: listing.truncated_by_depth,
        }
    }
}

/// Levels a listing descends: 5 unless asked, at most 20.
pub(crate) fn listing_depth(asked: Option<u32>) -> u32 {
    asked.unwrap_or(5).min(20)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct FileQuery {
    /// File or directory, relative to the workspace.
    file_path: String,
    #[allow(dead_code)]
    session_id: Option<String>,
    /// Admins only: act on this user's workspace.
    user_id: Option<String>,
    /// Deleting a missing path succeeds (default false).
    #[serde(default)]
    missing_ok: bool,
}

pub(crate) fn content_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "txt" | "log" => "text/plain; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "html" | "htm" => "text/html; charset=utf-8",
        "json" => "application/json",
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "zip" => "application/zip",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        _ => "application/octet-stream",
    }
}

/// An open file streamed in 64 KiB chunks.
pub(crate) fn stream_file(
    file: std::fs::File,
) -> impl futures_util::Stream<Item = Result<web::Bytes, actix_web::Error>> {
    platform::objects::file_stream(tokio::fs::File::from_std(file))
        .map(|chunk| chunk.map_err(actix_web::error::ErrorInternalServerError))
}

/// `Content-Disposition: attachment` with an ASCII `filename` and, for other names, the
/// exact name as `filename*` (RFC 6266, RFC 5987).
pub(crate) fn attachment(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if ascii == name {
        return format!("attachment; filename=\"{ascii}\"");
    }
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// Download a file (streamed) or a directory (as a zip).
#[utoipa::path(get, path = "/api/agent/{agent_id}/file_workspace/download", tag = "agent",
    params(("agent_id" = String, Path), FileQuery),
    responses((status = 200, description = "The file's bytes"), (status = 400, description = "Path outside the workspace"),
              (status = 404, description = "No such file")))]
pub(crate) async fn download_file(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: ApiQuery<FileQuery>,
) -> Result<HttpResponse, AppError> {
    let q = query.0;
    let download = state
        .workspaces
        .download(
            &caller.actor(),
            &path.into_inner(),
            q.user_id.as_deref(),
            &q.file_path,
        )
        .await?;
    Ok(download_response(download))
}

/// A file streamed with its length, or a directory as a zip streamed while it is made.
pub(crate) fn download_response(download: Download) -> HttpResponse {
    let (name, body, length): (
        String,
        futures_util::stream::BoxStream<'static, _>,
        Option<u64>,
    ) = match download {
        Download::File { file, name, size } => (name, stream_file(file).boxed(), Some(size)),
        Download::Zip { chunks, name } => {
            let pieces = futures_util::stream::unfold(chunks, |mut rx| async move {
                let piece = rx.recv().await?;
                Some((
                    piece
                        .map(web::Bytes::from)
                        .map_err(actix_web::error::ErrorInternalServerError),
                    rx,
                ))
            });
            (name, pieces.boxed(), None)
        }
    };
    let disposition = attachment(&name);
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::CONTENT_TYPE, content_type(&name)))
        .insert_header((header::CONTENT_DISPOSITION, disposition));
    if let Some(len) = length {
        response.no_chunking(len);
    }
    response.streaming(body)
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DeletedFileDto {
    file_path: String,
    deleted: bool,
}

impl DeletedFileDto {
    /// The answer of both workspace deletes (agent and conversation).
    pub(crate) fn new(file_path: String, deleted: bool) -> Self {
        Self { file_path, deleted }
    }
}

/// Delete a file or a directory (recursively) from the workspace.
#[utoipa::path(delete, path = "/api/agent/{agent_id}/file_workspace/delete", tag = "agent",
    params(("agent_id" = String, Path), FileQuery),
    responses((status = 200, body = Envelope<DeletedFileDto>), (status = 400, description = "Path outside the workspace"),
              (status = 404, description = "No such file")))]
pub(crate) async fn delete_file(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: ApiQuery<FileQuery>,
) -> ApiResult<DeletedFileDto> {
    let q = query.0;
    state
        .workspaces
        .delete(
            &caller.actor(),
            &path.into_inner(),
            q.user_id.as_deref(),
            &q.file_path,
            q.missing_ok,
        )
        .await?;
    Ok(ApiOk(DeletedFileDto {
        file_path: q.file_path,
        deleted: true,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct UploadQuery {
    /// Admins only: act on this user's workspace.
    user_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UploadedDto {
    path: String,
    size: u64,
}

/// Upload one file (multipart `file`, optional `target_path` directory).
#[utoipa::path(post, path = "/api/agent/{agent_id}/file_workspace/upload", tag = "agent",
    params(("agent_id" = String, Path), UploadQuery),
    responses((status = 200, body = Envelope<UploadedDto>), (status = 400, description = "Path outside the workspace"),
              (status = 413, description = "Too large")))]
pub(crate) async fn upload_file(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    query: ApiQuery<UploadQuery>,
    form: Multipart,
) -> ApiResult<UploadedDto> {
    // Access first: a refused caller's body is never read, let alone stored.
    let target = state
        .workspaces
        .upload_target(
            &caller.actor(),
            &path.into_inner(),
            query.0.user_id.as_deref(),
        )
        .await?;
    let mut form = spool_multipart(&req, form, state.config.max_upload_bytes).await?;
    let file = form
        .take_file("file")
        .ok_or_else(|| AppError::validation("body", "file", "is required"))?;
    let file_name = file
        .file_name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| AppError::validation("body", "file", "has no file name"))?;
    let target_dir = form.field("target_path").unwrap_or_default().to_owned();
    let size = file.size;
    // The temporary file is removed when `file.path` drops, unless it was moved into place.
    let stored = state
        .workspaces
        .place_upload(&target, &target_dir, &file_name, file.path.to_path_buf())
        .await?;
    Ok(ApiOk(UploadedDto { path: stored, size }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct WorkspaceDeleteBody {
    agent_id: String,
    /// Admins only: whose workspace; ignored for everyone else (their own is deleted).
    user_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WorkspaceDeletedDto {
    agent_id: String,
    user_id: String,
    workspace_path: String,
    deleted: bool,
}

/// Delete the caller's whole workspace for an agent (admins: any user's, named by `user_id`).
#[utoipa::path(post, path = "/api/agent/workspace/delete", tag = "agent", request_body = WorkspaceDeleteBody,
    responses((status = 200, body = Envelope<WorkspaceDeletedDto>), (status = 404, description = "Unknown or not visible agent"),
              (status = 422, description = "Invalid id (admins)")))]
pub(crate) async fn delete_workspace(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<WorkspaceDeleteBody>,
) -> ApiResult<WorkspaceDeletedDto> {
    let b = body.0;
    let (workspace_path, user_id, deleted) = state
        .workspaces
        .delete_workspace(&caller.actor(), &b.agent_id, b.user_id.as_deref())
        .await?;
    Ok(ApiOk(WorkspaceDeletedDto {
        agent_id: b.agent_id,
        user_id,
        workspace_path,
        deleted,
    }))
}

#[cfg(test)]
mod tests {
    use super::attachment;

    #[test]
    fn non_ascii_names_get_filename_star() {
        assert_eq!(attachment("r.md"), "attachment; filename=\"r.md\"");
        assert_eq!(
            attachment("报告 1.md"),
            "attachment; filename=\"__ 1.md\"; filename*=UTF-8''%E6%8A%A5%E5%91%8A%201.md"
        );
        assert_eq!(
            attachment("a\"b.txt"),
            "attachment; filename=\"a_b.txt\"; filename*=UTF-8''a%22b.txt"
        );
    }
}
