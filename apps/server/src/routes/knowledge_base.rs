//! Knowledge bases under `/api/knowledge-base`: create, update, read, list, delete, clear and
//! redo; retrieval; documents (upload, list, read, delete, redo) and upload-task progress.
//! Every answer carries the knowledge base owner's `user_id`, as Sage's does. A knowledge
//! base and its documents are the owner's (and an admin's): anyone else gets
//! `kdb.not_found` / `kdb.doc_not_found`, like an id that does not exist.

use actix_multipart::Multipart;
use actix_web::{HttpRequest, web};
use knowledge::{
    Doc, DocQuery, DocStatus, Hit, KnowledgeBase, KnowledgeBaseQuery, KnowledgeBaseUpdate, NewFile,
    NewKnowledgeBase,
};
use platform::pagination::PageRequest;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::AppError;
use crate::extract::{ApiJson, ApiQuery, spool_multipart};
use crate::response::{ApiOk, ApiResult, Envelope};
use crate::routes::chat::non_empty;
use crate::routes::conversations::query_number;
use crate::state::AppState;

/// Routes inside the `/api` scope.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/knowledge-base")
            .service(web::resource("/add").route(web::post().to(add)))
            .service(web::resource("/update").route(web::post().to(update)))
            .service(web::resource("/info").route(web::get().to(info)))
            .service(web::resource("/retrieve").route(web::post().to(retrieve)))
            .service(web::resource("/list").route(web::get().to(list)))
            .service(web::resource("/delete/{kdb_id}").route(web::delete().to(delete)))
            .service(web::resource("/clear").route(web::post().to(clear)))
            .service(web::resource("/redo_all").route(web::post().to(redo_all)))
            .service(web::resource("/doc/list").route(web::get().to(doc_list)))
            .service(web::resource("/doc/info").route(web::get().to(doc_info_query)))
            .service(web::resource("/doc/info/{doc_id}").route(web::get().to(doc_info)))
            .service(web::resource("/doc/add_by_files").route(web::post().to(add_by_files)))
            .service(web::resource("/doc/delete/{doc_id}").route(web::delete().to(doc_delete)))
            .service(web::resource("/doc/redo/{doc_id}").route(web::put().to(doc_redo)))
            .service(web::resource("/doc/task_process").route(web::get().to(task_process)))
            .service(web::resource("/doc/task_redo").route(web::post().to(task_redo))),
    );
}

/// An optional id: also unset when it reads `undefined` or `null`, which the web UI's query
/// builder (`URLSearchParams` over an object) writes for a missing value.
fn given_id(value: Option<String>) -> Option<String> {
    non_empty(value).filter(|v| v != "undefined" && v != "null")
}

/// A required id from a query or body (empty is missing).
fn required(location: &str, name: &str, value: Option<String>) -> Result<String, AppError> {
    given_id(value).ok_or_else(|| AppError::validation(location, name, "is required"))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct KdbCreatedDto {
    kdb_id: String,
    user_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct KdbSuccessDto {
    success: bool,
    /// The knowledge base owner's id.
    user_id: String,
}

fn success(owner: String) -> ApiOk<KdbSuccessDto> {
    ApiOk(KdbSuccessDto {
        success: true,
        user_id: owner,
    })
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct KdbAddBody {
    #[schema(min_length = 1, max_length = 128)]
    name: String,
    /// A free string; the web UI offers `document` and `qa` (question/answer tables). Empty:
    /// `document`.
    #[serde(default, rename = "type")]
    #[schema(max_length = 32)]
    kb_type: Option<String>,
    #[serde(default)]
    #[schema(max_length = 2000)]
    intro: Option<String>,
    /// Stored as `kdbSetting.kdbAttach.language` (default `zh-cn`, as Sage).
    #[serde(default)]
    #[schema(max_length = 16)]
    language: Option<String>,
}

/// Create a knowledge base for the caller.
#[utoipa::path(post, path = "/api/knowledge-base/add", tag = "knowledge-base", request_body = KdbAddBody,
    responses((status = 200, body = Envelope<KdbCreatedDto>),
              (status = 409, description = "`kdb.quota_exceeded`"), (status = 422, description = "A field")))]
pub(crate) async fn add(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<KdbAddBody>,
) -> ApiResult<KdbCreatedDto> {
    let b = body.0;
    let base = state
        .knowledge
        .create(
            &caller.actor(),
            NewKnowledgeBase {
                name: b.name,
                kb_type: b.kb_type.unwrap_or_default(),
                intro: b.intro,
                language: b.language,
            },
        )
        .await?;
    Ok(ApiOk(KdbCreatedDto {
        kdb_id: base.id,
        user_id: base.user_id,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct KdbUpdateBody {
    #[schema(min_length = 1, max_length = 64)]
    kdb_id: String,
    /// Empty: unchanged.
    #[serde(default)]
    #[schema(max_length = 128)]
    name: Option<String>,
    /// Empty: unchanged.
    #[serde(default)]
    #[schema(max_length = 2000)]
    intro: Option<String>,
    /// Replaces the stored setting (an object of at most 16 KiB).
    #[serde(default)]
    kdb_setting: Option<Value>,
}

/// Rename a knowledge base, change its introduction or its setting.
#[utoipa::path(post, path = "/api/knowledge-base/update", tag = "knowledge-base", request_body = KdbUpdateBody,
    responses((status = 200, body = Envelope<KdbSuccessDto>), (status = 404, description = "`kdb.not_found`"),
              (status = 422, description = "A field")))]
pub(crate) async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<KdbUpdateBody>,
) -> ApiResult<KdbSuccessDto> {
    let b = body.0;
    let base = state
        .knowledge
        .update(
            &caller.actor(),
            &b.kdb_id,
            KnowledgeBaseUpdate {
                name: b.name,
                intro: b.intro,
                setting: b.kdb_setting,
            },
        )
        .await?;
    Ok(success(base.user_id))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct KdbIdQuery {
    #[param(max_length = 64)]
    kdb_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct KdbInfoDto {
    kdb_id: String,
    name: String,
    intro: String,
    #[serde(rename = "type")]
    kb_type: String,
    /// Seconds since the epoch.
    created_at: i64,
    /// Seconds since the epoch.
    updated_at: i64,
    kdb_setting: Value,
    #[serde(rename = "user_id")]
    user_id: String,
}

/// A knowledge base's details.
#[utoipa::path(get, path = "/api/knowledge-base/info", tag = "knowledge-base", params(KdbIdQuery),
    responses((status = 200, body = Envelope<KdbInfoDto>), (status = 404, description = "`kdb.not_found`"),
              (status = 422, description = "No kdb_id")))]
pub(crate) async fn info(
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<KdbIdQuery>,
) -> ApiResult<KdbInfoDto> {
    let id = required("query", "kdb_id", query.0.kdb_id)?;
    let b = state.knowledge.get(&caller.actor(), &id).await?;
    Ok(ApiOk(KdbInfoDto {
        created_at: b.created_at.timestamp(),
        updated_at: b.updated_at.timestamp(),
        kdb_id: b.id,
        name: b.name,
        intro: b.intro,
        kb_type: b.kb_type,
        kdb_setting: b.setting,
        user_id: b.user_id,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct KdbRetrieveBody {
    #[schema(min_length = 1, max_length = 64)]
    kdb_id: String,
    #[schema(min_length = 1, max_length = 2000)]
    query: String,
    /// 1 to 50 (default 10; `0`, `null` and `""` mean the default).
    #[serde(default, deserialize_with = "crate::lenient::count")]
    #[schema(value_type = Option<u64>, minimum = 0, maximum = 50)]
    top_k: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct KdbHitDto {
    doc_id: String,
    doc_segment_id: String,
    doc_content: String,
    /// BM25 relevance (higher is better).
    score: f32,
    /// Character offsets of the passage in the document's text.
    start: u64,
    end: u64,
    title: String,
    /// The document's file name.
    path: String,
    metadata: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct KdbRetrieveDto {
    results: Vec<KdbHitDto>,
    user_id: String,
}

fn hit(h: Hit) -> KdbHitDto {
    KdbHitDto {
        metadata: json!({"doc_name": h.path}),
        doc_id: h.doc_id,
        doc_segment_id: h.segment_id,
        doc_content: h.content,
        score: h.score,
        start: h.start,
        end: h.end,
        title: h.title,
        path: h.path,
    }
}

/// The passages of a knowledge base that best match a query (full-text, BM25; overlapping
/// passages of one document merged).
#[utoipa::path(post, path = "/api/knowledge-base/retrieve", tag = "knowledge-base", request_body = KdbRetrieveBody,
    responses((status = 200, body = Envelope<KdbRetrieveDto>), (status = 404, description = "`kdb.not_found`"),
              (status = 422, description = "An empty query or top_k out of range")))]
pub(crate) async fn retrieve(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<KdbRetrieveBody>,
) -> ApiResult<KdbRetrieveDto> {
    let b = body.0;
    let top_k = match b.top_k {
        None => 10,
        Some(n) => u64::try_from(n).unwrap_or(u64::MAX),
    };
    let (base, hits) = state
        .knowledge
        .retrieve(&caller.actor(), &b.kdb_id, &b.query, top_k)
        .await?;
    Ok(ApiOk(KdbRetrieveDto {
        results: hits.into_iter().map(hit).collect(),
        user_id: base.user_id,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct KdbListQuery {
    /// Part of the name (case-insensitive; `%` and `_` literal).
    #[param(max_length = 128)]
    query_name: Option<String>,
    /// Only this type.
    #[serde(rename = "type")]
    #[param(rename = "type", max_length = 32)]
    kb_type: Option<String>,
    /// From 1 (default 1).
    page: Option<String>,
    /// The same as `page` (the web UI sends this name).
    page_no: Option<String>,
    /// 1 to 100 (default 20; more is read as 100).
    page_size: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct KdbListItem {
    id: String,
    name: String,
    #[serde(rename = "index_name")]
    index_name: String,
    intro: String,
    /// RFC 3339.
    create_time: String,
    /// The type.
    data_source: String,
    doc_num: u64,
    cover: String,
    default_color: bool,
    #[serde(rename = "user_id")]
    user_id: String,
    /// Always null (Sage's shape; the type is `dataSource`).
    #[serde(rename = "type")]
    kb_type: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct KdbListDto {
    list: Vec<KdbListItem>,
    total: u64,
    /// The caller.
    user_id: String,
}

fn page_request(
    page_name: &str,
    page: Option<String>,
    size_name: &str,
    size: Option<String>,
) -> Result<PageRequest, AppError> {
    let page = query_number(page_name, page, 1..=platform::pagination::MAX_PAGE)?;
    // A larger page (a client loading "all" for a picker) gets the largest page there is.
    let size = query_number(size_name, size, 1..=u64::from(u32::MAX))?
        .map(|n| n.min(platform::pagination::MAX_PAGE_SIZE));
    PageRequest::new(page, size)
        .map_err(|e| AppError::validation("query", page_name, &e.to_string()))
}

/// The caller's knowledge bases (admins: everyone's), newest first, with their number of
/// documents.
#[utoipa::path(get, path = "/api/knowledge-base/list", tag = "knowledge-base", params(KdbListQuery),
    responses((status = 200, body = Envelope<KdbListDto>), (status = 422, description = "Bad page or page_size")))]
pub(crate) async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<KdbListQuery>,
) -> ApiResult<KdbListDto> {
    let q = query.0;
    let page = match non_empty(q.page) {
        Some(page) => page_request("page", Some(page), "page_size", q.page_size)?,
        None => page_request("page_no", q.page_no, "page_size", q.page_size)?,
    };
    let found = state
        .knowledge
        .list(
            &caller.actor(),
            KnowledgeBaseQuery {
                name: non_empty(q.query_name),
                kb_type: non_empty(q.kb_type),
                page,
            },
        )
        .await?;
    Ok(ApiOk(KdbListDto {
        total: found.total,
        list: found
            .items
            .into_iter()
            .map(|s| KdbListItem {
                index_name: s.base.index_name(),
                create_time: s.base.created_at.to_rfc3339(),
                doc_num: s.doc_count,
                id: s.base.id,
                name: s.base.name,
                intro: s.base.intro,
                data_source: s.base.kb_type,
                cover: String::new(),
                default_color: true,
                user_id: s.base.user_id,
                kb_type: None,
            })
            .collect(),
        user_id: caller.0.user_id.clone(),
    }))
}

/// Delete a knowledge base with its documents, passages, files and index.
#[utoipa::path(delete, path = "/api/knowledge-base/delete/{kdb_id}", tag = "knowledge-base",
    params(("kdb_id" = String, Path, max_length = 64)),
    responses((status = 200, body = Envelope<KdbSuccessDto>), (status = 404, description = "`kdb.not_found`")))]
pub(crate) async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<KdbSuccessDto> {
    let base = state.knowledge.delete(&caller.actor(), &path).await?;
    Ok(success(base.user_id))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct KdbIdBody {
    #[schema(min_length = 1, max_length = 64)]
    kdb_id: String,
}

/// Remove every document of a knowledge base (with passages, files and index entries).
#[utoipa::path(post, path = "/api/knowledge-base/clear", tag = "knowledge-base", request_body = KdbIdBody,
    responses((status = 200, body = Envelope<KdbSuccessDto>), (status = 404, description = "`kdb.not_found`")))]
pub(crate) async fn clear(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<KdbIdBody>,
) -> ApiResult<KdbSuccessDto> {
    let base: KnowledgeBase = state
        .knowledge
        .clear(&caller.actor(), &body.0.kdb_id)
        .await?;
    Ok(success(base.user_id))
}

/// Process every document of a knowledge base again.
#[utoipa::path(post, path = "/api/knowledge-base/redo_all", tag = "knowledge-base", request_body = KdbIdBody,
    responses((status = 200, body = Envelope<KdbSuccessDto>), (status = 404, description = "`kdb.not_found`")))]
pub(crate) async fn redo_all(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<KdbIdBody>,
) -> ApiResult<KdbSuccessDto> {
    let base = state
        .knowledge
        .redo_all(&caller.actor(), &body.0.kdb_id)
        .await?;
    Ok(success(base.user_id))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DocListQuery {
    #[param(max_length = 64)]
    kdb_id: Option<String>,
    /// Part of the document name (case-insensitive).
    #[param(max_length = 255)]
    query_name: Option<String>,
    /// Only the documents of this upload.
    #[param(max_length = 64)]
    task_id: Option<String>,
    /// From 1 (default 1).
    page_no: Option<String>,
    /// 1 to 100 (default 20).
    page_size: Option<String>,
}

/// `query_status`, repeated (`query_status=0&query_status=3`) or comma-separated.
fn statuses(query: &str) -> Result<Vec<DocStatus>, AppError> {
    let mut out = Vec::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if key != "query_status" && key != "query_status[]" {
            continue;
        }
        for part in value
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty() && *p != "undefined" && *p != "null")
        {
            let status = part
                .parse::<i32>()
                .ok()
                .and_then(DocStatus::from_code)
                .ok_or_else(|| {
                    AppError::validation(
                        "query",
                        "query_status",
                        "must be 0 (pending), 1 (processing), 2 (done) or 3 (failed)",
                    )
                })?;
            if !out.contains(&status) {
                out.push(status);
            }
        }
    }
    Ok(out)
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct KdbDocItem {
    id: String,
    doc_name: String,
    /// 0 pending, 1 processing, 2 done, 3 failed.
    status: i32,
    /// RFC 3339.
    create_time: String,
    /// `{size, chunks?, title?, error?}`.
    metadata: Value,
    task_id: String,
    /// `file`, `qa` or `eml`.
    data_source: String,
    /// Why processing failed (only while failed).
    error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct KdbDocListDto {
    list: Vec<KdbDocItem>,
    total: u64,
    user_id: String,
}

fn doc_item(d: Doc) -> KdbDocItem {
    KdbDocItem {
        status: d.status.code(),
        create_time: d.created_at.to_rfc3339(),
        id: d.id,
        doc_name: d.name,
        metadata: d.metadata,
        task_id: d.task_id,
        data_source: d.data_source,
        error: d.error,
    }
}

/// The documents of a knowledge base, newest first.
#[utoipa::path(get, path = "/api/knowledge-base/doc/list", tag = "knowledge-base",
    params(DocListQuery, ("query_status" = Option<Vec<i32>>, Query, description = "Only these statuses (repeat the parameter)")),
    responses((status = 200, body = Envelope<KdbDocListDto>), (status = 404, description = "`kdb.not_found`"),
              (status = 422, description = "No kdb_id, a bad status, page_no or page_size")))]
pub(crate) async fn doc_list(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    query: ApiQuery<DocListQuery>,
) -> ApiResult<KdbDocListDto> {
    let q = query.0;
    let kdb_id = required("query", "kdb_id", q.kdb_id)?;
    let statuses = statuses(req.query_string())?;
    let page = page_request("page_no", q.page_no, "page_size", q.page_size)?;
    let (base, found) = state
        .knowledge
        .docs(
            &caller.actor(),
            DocQuery {
                kdb_id,
                name: non_empty(q.query_name),
                statuses,
                task_id: given_id(q.task_id),
                page,
            },
        )
        .await?;
    Ok(ApiOk(KdbDocListDto {
        list: found.items.into_iter().map(doc_item).collect(),
        total: found.total,
        user_id: base.user_id,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct KdbDocInfoDto {
    id: String,
    /// `file`, `qa` or `eml`.
    #[serde(rename = "type")]
    data_source: String,
    data_name: String,
    status: i32,
    /// RFC 3339.
    create_time: String,
    metadata: Value,
    task_id: String,
    error: Option<String>,
    #[serde(rename = "user_id")]
    user_id: String,
}

/// A document, or null when there is none the caller may see (Sage answers null for a
/// missing document; a foreign one answers the same).
async fn doc_info_of(
    state: &AppState,
    caller: &Caller,
    doc_id: &str,
) -> ApiResult<Option<KdbDocInfoDto>> {
    match state.knowledge.doc(&caller.actor(), doc_id).await {
        Ok(d) => Ok(ApiOk(Some(KdbDocInfoDto {
            status: d.status.code(),
            create_time: d.created_at.to_rfc3339(),
            id: d.id,
            data_source: d.data_source,
            data_name: d.name,
            metadata: d.metadata,
            task_id: d.task_id,
            error: d.error,
            user_id: d.user_id,
        }))),
        Err(knowledge::KnowledgeError::DocNotFound) => Ok(ApiOk(None)),
        Err(e) => Err(e.into()),
    }
}

/// A document's details, or null.
#[utoipa::path(get, path = "/api/knowledge-base/doc/info/{doc_id}", tag = "knowledge-base",
    params(("doc_id" = String, Path, max_length = 64)),
    responses((status = 200, body = Envelope<Option<KdbDocInfoDto>>)))]
pub(crate) async fn doc_info(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<Option<KdbDocInfoDto>> {
    doc_info_of(&state, &caller, &path).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DocIdQuery {
    #[param(max_length = 64)]
    doc_id: Option<String>,
    /// The same as `doc_id` (the web UI sends this name, with `kdb_id`).
    #[param(max_length = 64)]
    data_id: Option<String>,
}

/// The same with the id in the query (the web UI calls this form).
#[utoipa::path(get, path = "/api/knowledge-base/doc/info", tag = "knowledge-base", params(DocIdQuery),
    responses((status = 200, body = Envelope<Option<KdbDocInfoDto>>)))]
pub(crate) async fn doc_info_query(
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<DocIdQuery>,
) -> ApiResult<Option<KdbDocInfoDto>> {
    let q = query.0;
    match given_id(q.doc_id).or(given_id(q.data_id)) {
        Some(id) => doc_info_of(&state, &caller, &id).await,
        None => Ok(ApiOk(None)),
    }
}

/// The multipart form of `add_by_files` (documentation only: the handler streams it).
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct KdbUploadForm {
    #[schema(max_length = 64)]
    kdb_id: String,
    /// Ignored (as in Sage): every upload adds documents.
    #[schema(max_length = 16)]
    r#override: Option<String>,
    /// One or more files (`files`, or `files[]`): pdf, docx, pptx, xlsx, xls, html, htm, txt,
    /// csv, json, xml, md, markdown, rtf, eml; `qa` bases take csv, xlsx and xls tables.
    #[schema(value_type = Vec<String>, format = Binary)]
    files: Vec<Vec<u8>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct KdbTaskDto {
    #[serde(rename = "taskId")]
    task_id: String,
    user_id: String,
}

/// Upload documents into a knowledge base; they are processed in the background (follow them
/// with `doc/task_process`).
#[utoipa::path(post, path = "/api/knowledge-base/doc/add_by_files", tag = "knowledge-base",
    request_body(content = KdbUploadForm, content_type = "multipart/form-data"),
    responses((status = 200, body = Envelope<KdbTaskDto>), (status = 404, description = "`kdb.not_found`"),
              (status = 413, description = "Over the upload limit"),
              (status = 422, description = "No kdb_id or files, a file type that cannot be read, or a QA table without two columns")))]
pub(crate) async fn add_by_files(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    form: Multipart,
) -> ApiResult<KdbTaskDto> {
    let mut form = spool_multipart(&req, form, state.config.max_upload_bytes).await?;
    let kdb_id = required("body", "kdb_id", form.field("kdb_id").map(str::to_owned))?;
    let files = form.take_files(&["files", "files[]", "file"]);
    // The temporary files are removed when `files` drops, unless moved into place first.
    let new = files
        .iter()
        .map(|f| NewFile {
            name: f.file_name.clone().unwrap_or_default(),
            path: f.path.to_path_buf(),
            size: f.size,
        })
        .collect();
    let (base, task_id) = state
        .knowledge
        .add_files(&caller.actor(), &kdb_id, new)
        .await?;
    drop(files);
    Ok(ApiOk(KdbTaskDto {
        task_id,
        user_id: base.user_id,
    }))
}

/// Delete a document with its passages and file.
#[utoipa::path(delete, path = "/api/knowledge-base/doc/delete/{doc_id}", tag = "knowledge-base",
    params(("doc_id" = String, Path, max_length = 64)),
    responses((status = 200, body = Envelope<KdbSuccessDto>), (status = 404, description = "`kdb.doc_not_found`")))]
pub(crate) async fn doc_delete(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<KdbSuccessDto> {
    let doc = state.knowledge.delete_doc(&caller.actor(), &path).await?;
    Ok(success(doc.user_id))
}

/// Process one document again.
#[utoipa::path(put, path = "/api/knowledge-base/doc/redo/{doc_id}", tag = "knowledge-base",
    params(("doc_id" = String, Path, max_length = 64)),
    responses((status = 200, body = Envelope<KdbSuccessDto>), (status = 404, description = "`kdb.doc_not_found`")))]
pub(crate) async fn doc_redo(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<KdbSuccessDto> {
    let doc = state.knowledge.redo_doc(&caller.actor(), &path).await?;
    Ok(success(doc.user_id))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct TaskQuery {
    #[param(max_length = 64)]
    kdb_id: Option<String>,
    #[param(max_length = 64)]
    task_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct KdbTaskProgressDto {
    success: u64,
    fail: u64,
    in_progress: u64,
    waiting: u64,
    total: u64,
    /// Integer percent of documents done (as Sage).
    task_process: u64,
    #[serde(rename = "user_id")]
    user_id: String,
}

/// How far the documents of one upload are.
#[utoipa::path(get, path = "/api/knowledge-base/doc/task_process", tag = "knowledge-base", params(TaskQuery),
    responses((status = 200, body = Envelope<KdbTaskProgressDto>), (status = 404, description = "`kdb.not_found`"),
              (status = 422, description = "No kdb_id or task_id")))]
pub(crate) async fn task_process(
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<TaskQuery>,
) -> ApiResult<KdbTaskProgressDto> {
    let q = query.0;
    let kdb_id = required("query", "kdb_id", q.kdb_id)?;
    let task_id = required("query", "task_id", q.task_id)?;
    let (base, p) = state
        .knowledge
        .task_progress(&caller.actor(), &kdb_id, &task_id)
        .await?;
    Ok(ApiOk(KdbTaskProgressDto {
        success: p.success,
        fail: p.fail,
        in_progress: p.in_progress,
        waiting: p.waiting,
        total: p.total,
        task_process: p.percent(),
        user_id: base.user_id,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct KdbTaskRedoBody {
    #[schema(min_length = 1, max_length = 64)]
    kdb_id: String,
    #[schema(min_length = 1, max_length = 64)]
    task_id: String,
}

/// Process the documents of one upload again.
#[utoipa::path(post, path = "/api/knowledge-base/doc/task_redo", tag = "knowledge-base", request_body = KdbTaskRedoBody,
    responses((status = 200, body = Envelope<KdbSuccessDto>), (status = 404, description = "`kdb.not_found`")))]
pub(crate) async fn task_redo(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<KdbTaskRedoBody>,
) -> ApiResult<KdbSuccessDto> {
    let b = body.0;
    let base = state
        .knowledge
        .redo_task(&caller.actor(), &b.kdb_id, &b.task_id)
        .await?;
    Ok(success(base.user_id))
}
