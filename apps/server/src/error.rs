//! The one place where errors become responses.
//!
//! Every error has a stable key (`route.not_found`, `request.validation`, …) listed in
//! [`CATALOGUE`] with its [`ErrorKind`] and its en-US and zh-CN messages. The kind decides the
//! HTTP status (`ErrorKind::status`), and the `/api` envelope's `code` equals it. 5xx answers
//! never carry internal text: the cause goes to the log with the request id, the client gets
//! a generic sentence and the request id. `docs/errors.md` is generated from this table and
//! a test keeps the two equal.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use platform::ErrorKind;
use serde_json::{Value, json};

use crate::middleware::{Locale, RequestContext};
use crate::response::Envelope;

/// One row of the error-code matrix.
#[derive(Debug, Clone, Copy)]
pub struct ErrorSpec {
    pub key: &'static str,
    pub kind: ErrorKind,
    pub en: &'static str,
    pub zh: &'static str,
}

/// The error-code matrix: every key the server answers with. Messages may name parameters
/// in braces, filled from the error.
pub const CATALOGUE: &[ErrorSpec] = &[
    ErrorSpec {
        key: "request.bad_request",
        kind: ErrorKind::BadRequest,
        en: "The request is malformed: {reason}",
        zh: "请求格式错误：{reason}",
    },
    ErrorSpec {
        key: "auth.unauthorized",
        kind: ErrorKind::Unauthenticated,
        en: "Login required.",
        zh: "未授权，请先登录。",
    },
    ErrorSpec {
        key: "auth.forbidden",
        kind: ErrorKind::Forbidden,
        en: "You are not allowed to do this.",
        zh: "无权执行此操作。",
    },
    ErrorSpec {
        key: "route.not_found",
        kind: ErrorKind::NotFound,
        en: "No route matches {method} {path}.",
        zh: "没有与 {method} {path} 匹配的接口。",
    },
    ErrorSpec {
        key: "route.method_not_allowed",
        kind: ErrorKind::MethodNotAllowed,
        en: "{method} is not allowed on {path}.",
        zh: "{path} 不支持 {method} 方法。",
    },
    ErrorSpec {
        key: "resource.conflict",
        kind: ErrorKind::Conflict,
        en: "The resource is in a state that does not allow this change.",
        zh: "资源当前状态不允许此操作。",
    },
    ErrorSpec {
        key: "request.payload_too_large",
        kind: ErrorKind::PayloadTooLarge,
        en: "The request body is larger than the limit of {limit} bytes.",
        zh: "请求体超过 {limit} 字节的上限。",
    },
    ErrorSpec {
        key: "request.body_timeout",
        kind: ErrorKind::BadRequest,
        en: "The request body did not arrive in time (limit {seconds} s).",
        zh: "请求体未能及时到达（上限 {seconds} 秒）。",
    },
    ErrorSpec {
        key: "request.unsupported_media_type",
        kind: ErrorKind::UnsupportedMediaType,
        en: "The request body must be sent as {expected}.",
        zh: "请求体必须以 {expected} 格式发送。",
    },
    ErrorSpec {
        key: "request.invalid_json",
        kind: ErrorKind::Invalid,
        en: "The request body is not valid JSON: {reason}",
        zh: "请求体不是有效的 JSON：{reason}",
    },
    ErrorSpec {
        key: "request.validation",
        kind: ErrorKind::Invalid,
        en: "Invalid value for `{field}`: {reason}",
        zh: "字段 `{field}` 的值无效：{reason}",
    },
    ErrorSpec {
        key: "request.rate_limited",
        kind: ErrorKind::RateLimited,
        en: "Too many requests; retry in {retry_after} seconds.",
        zh: "请求过于频繁，请在 {retry_after} 秒后重试。",
    },
    ErrorSpec {
        key: "user.invalid_credentials",
        kind: ErrorKind::Unauthenticated,
        en: "Invalid username or password.",
        zh: "用户名或密码错误。",
    },
    ErrorSpec {
        key: "auth.invalid_refresh_token",
        kind: ErrorKind::Unauthenticated,
        en: "The refresh token is invalid, expired or already used; log in again.",
        zh: "刷新令牌无效、已过期或已被使用，请重新登录。",
    },
    ErrorSpec {
        key: "auth.password_login_disabled",
        kind: ErrorKind::Forbidden,
        en: "Password login is disabled in this deployment.",
        zh: "此部署已禁用账号密码登录。",
    },
    ErrorSpec {
        key: "auth.admin_password_login_required",
        kind: ErrorKind::Forbidden,
        en: "Only administrators may log in with a password in this deployment.",
        zh: "此部署仅允许管理员使用密码登录。",
    },
    ErrorSpec {
        key: "auth.registration_disabled",
        kind: ErrorKind::Forbidden,
        en: "Registration is disabled.",
        zh: "注册功能已关闭。",
    },
    ErrorSpec {
        key: "auth.cross_site",
        kind: ErrorKind::Forbidden,
        en: "Cross-site requests may not change state with a session cookie.",
        zh: "不允许跨站请求使用会话 Cookie 修改数据。",
    },
    ErrorSpec {
        key: "user.not_found",
        kind: ErrorKind::NotFound,
        en: "No such user.",
        zh: "用户不存在。",
    },
    ErrorSpec {
        key: "user.username_taken",
        kind: ErrorKind::Conflict,
        en: "That username is taken.",
        zh: "用户名已被占用。",
    },
    ErrorSpec {
        key: "user.email_taken",
        kind: ErrorKind::Conflict,
        en: "That e-mail address is already registered.",
        zh: "该邮箱已被注册。",
    },
    ErrorSpec {
        key: "user.last_admin",
        kind: ErrorKind::Conflict,
        en: "The last administrator cannot be deleted.",
        zh: "不能删除最后一个管理员。",
    },
    ErrorSpec {
        key: "user.wrong_password",
        kind: ErrorKind::Invalid,
        en: "The current password is wrong.",
        zh: "当前密码错误。",
    },
    ErrorSpec {
        key: "email.verification_code_invalid",
        kind: ErrorKind::Invalid,
        en: "The verification code is wrong or has expired.",
        zh: "验证码错误或已过期。",
    },
    ErrorSpec {
        key: "auth.too_many_attempts",
        kind: ErrorKind::RateLimited,
        en: "Too many login attempts; retry in {retry_after} seconds.",
        zh: "登录尝试过多，请在 {retry_after} 秒后重试。",
    },
    ErrorSpec {
        key: "email.verification_code_throttled",
        kind: ErrorKind::RateLimited,
        en: "A code was sent recently; retry in {retry_after} seconds.",
        zh: "验证码已发送，请在 {retry_after} 秒后重试。",
    },
    ErrorSpec {
        key: "email.delivery_failed",
        kind: ErrorKind::Upstream,
        en: "The e-mail could not be delivered; try again later.",
        zh: "邮件发送失败，请稍后重试。",
    },
    ErrorSpec {
        key: "auth.upstream_provider_not_found",
        kind: ErrorKind::NotFound,
        en: "No such login provider is configured.",
        zh: "未配置该登录提供方。",
    },
    ErrorSpec {
        key: "auth.upstream_flow_invalid",
        kind: ErrorKind::BadRequest,
        en: "This login attempt is unknown, expired or was started in another browser; start again.",
        zh: "登录请求无效、已过期或来自其他浏览器，请重新登录。",
    },
    ErrorSpec {
        key: "auth.upstream_denied",
        kind: ErrorKind::BadRequest,
        en: "The identity provider refused the login: {reason}",
        zh: "身份提供方拒绝了登录：{reason}",
    },
    ErrorSpec {
        key: "auth.upstream_failed",
        kind: ErrorKind::Upstream,
        en: "The identity provider could not complete the login ({reason}); try again later.",
        zh: "身份提供方未能完成登录（{reason}），请稍后重试。",
    },
    ErrorSpec {
        key: "auth.upstream_link_required",
        kind: ErrorKind::Conflict,
        en: "An account with this e-mail address already exists; log in to it and link this identity from there.",
        zh: "该邮箱已有账号，请先登录该账号，再关联此身份。",
    },
    ErrorSpec {
        key: "auth.upstream_identity_taken",
        kind: ErrorKind::Conflict,
        en: "This identity is already linked to another account.",
        zh: "该身份已关联到其他账号。",
    },
    ErrorSpec {
        key: "provider.not_found",
        kind: ErrorKind::NotFound,
        en: "No such LLM provider.",
        zh: "模型提供方不存在。",
    },
    ErrorSpec {
        key: "provider.default_in_use",
        kind: ErrorKind::Conflict,
        en: "The default provider cannot be deleted; make another provider the default first.",
        zh: "不能删除默认模型提供方，请先将其他提供方设为默认。",
    },
    ErrorSpec {
        key: "provider.none_configured",
        kind: ErrorKind::Conflict,
        en: "No LLM provider is configured; add one under model providers first.",
        zh: "尚未配置模型提供方，请先添加。",
    },
    ErrorSpec {
        key: "provider.system_readonly",
        kind: ErrorKind::Forbidden,
        en: "The deployment's default provider cannot be changed through the API.",
        zh: "部署默认的模型提供方不能通过接口修改。",
    },
    ErrorSpec {
        key: "provider.rejected",
        kind: ErrorKind::Invalid,
        en: "The provider refused the request ({reason}); check the key, the model and the base URL. Nothing was saved.",
        zh: "模型提供方拒绝了请求（{reason}），请检查密钥、模型和地址。未保存任何内容。",
    },
    ErrorSpec {
        key: "provider.address_forbidden",
        kind: ErrorKind::Invalid,
        en: "The base URL is not allowed: {reason}",
        zh: "不允许访问该地址：{reason}",
    },
    ErrorSpec {
        key: "provider.probe_failed",
        kind: ErrorKind::Upstream,
        en: "The provider did not answer properly ({reason}). Nothing was saved.",
        zh: "模型提供方未正常响应（{reason}）。未保存任何内容。",
    },
    ErrorSpec {
        key: "agent.not_found",
        kind: ErrorKind::NotFound,
        en: "No such agent.",
        zh: "智能体不存在。",
    },
    ErrorSpec {
        key: "agent.forbidden",
        kind: ErrorKind::Forbidden,
        en: "Only the agent's owner or an administrator may do this.",
        zh: "只有智能体的所有者或管理员可以执行此操作。",
    },
    ErrorSpec {
        key: "agent.name_taken",
        kind: ErrorKind::Conflict,
        en: "You already have an agent with this name.",
        zh: "你已有同名的智能体。",
    },
    ErrorSpec {
        key: "agent.quota_exceeded",
        kind: ErrorKind::Conflict,
        en: "You already have {limit} agents, the most allowed; delete one first.",
        zh: "你的智能体数量已达上限（{limit} 个），请先删除一个。",
    },
    ErrorSpec {
        key: "release.not_found",
        kind: ErrorKind::NotFound,
        en: "No such release.",
        zh: "版本不存在。",
    },
    ErrorSpec {
        key: "release.exists",
        kind: ErrorKind::Conflict,
        en: "This version already exists; delete it first or import it again.",
        zh: "该版本已存在，请先删除或重新导入。",
    },
    ErrorSpec {
        key: "release.feed_failed",
        kind: ErrorKind::Upstream,
        en: "The release feed could not be read: {reason}",
        zh: "无法读取版本发布源：{reason}",
    },
    ErrorSpec {
        key: "upload.not_found",
        kind: ErrorKind::NotFound,
        en: "No such file, or the link has expired.",
        zh: "文件不存在或链接已过期。",
    },
    ErrorSpec {
        key: "upload.path_conflict",
        kind: ErrorKind::Conflict,
        en: "The path is taken by a folder or passes through a file.",
        zh: "该路径已被文件夹占用，或经过一个文件。",
    },
    ErrorSpec {
        key: "skill.not_found",
        kind: ErrorKind::NotFound,
        en: "No such skill.",
        zh: "技能不存在。",
    },
    ErrorSpec {
        key: "skill.invalid_package",
        kind: ErrorKind::BadRequest,
        en: "Not a usable skill package: {reason}",
        zh: "不是可用的技能包：{reason}",
    },
    ErrorSpec {
        key: "skill.quota_exceeded",
        kind: ErrorKind::Conflict,
        en: "At most {limit} skills may be kept here. Delete one first.",
        zh: "此处最多可保存 {limit} 个技能。请先删除一个。",
    },
    ErrorSpec {
        key: "skill.download_failed",
        kind: ErrorKind::Upstream,
        en: "The skill could not be downloaded: {reason}",
        zh: "技能下载失败：{reason}",
    },
    ErrorSpec {
        key: "mcp.server_not_found",
        kind: ErrorKind::NotFound,
        en: "No such MCP server.",
        zh: "MCP 服务器不存在。",
    },
    ErrorSpec {
        key: "mcp.server_exists",
        kind: ErrorKind::Conflict,
        en: "You already have an MCP server of this name.",
        zh: "你已有同名的 MCP 服务器。",
    },
    ErrorSpec {
        key: "mcp.anytool_fixed",
        kind: ErrorKind::Forbidden,
        en: "AnyTool can be switched off, not deleted or renamed.",
        zh: "AnyTool 只能关闭，不能删除或重命名。",
    },
    ErrorSpec {
        key: "mcp.anytool_tool_not_found",
        kind: ErrorKind::NotFound,
        en: "No such AnyTool tool.",
        zh: "AnyTool 工具不存在。",
    },
    ErrorSpec {
        key: "mcp.server_register_failed",
        kind: ErrorKind::Upstream,
        en: "The MCP server did not answer properly ({reason}). Nothing was saved.",
        zh: "MCP 服务器未正常响应（{reason}）。未保存任何内容。",
    },
    ErrorSpec {
        key: "kdb.not_found",
        kind: ErrorKind::NotFound,
        en: "No such knowledge base.",
        zh: "知识库不存在。",
    },
    ErrorSpec {
        key: "kdb.doc_not_found",
        kind: ErrorKind::NotFound,
        en: "No such document.",
        zh: "文档不存在。",
    },
    ErrorSpec {
        key: "kdb.quota_exceeded",
        kind: ErrorKind::Conflict,
        en: "You already have {limit} knowledge bases, the most allowed. Delete one first.",
        zh: "你已有 {limit} 个知识库，已达上限。请先删除一个。",
    },
    ErrorSpec {
        key: "kdb.doc_quota_exceeded",
        kind: ErrorKind::Conflict,
        en: "Your knowledge bases may hold at most {limit} documents. Delete some first.",
        zh: "你的知识库最多可容纳 {limit} 个文档。请先删除一些。",
    },
    ErrorSpec {
        key: "task.not_found",
        kind: ErrorKind::NotFound,
        en: "No such task.",
        zh: "任务不存在。",
    },
    ErrorSpec {
        key: "task.quota_exceeded",
        kind: ErrorKind::Conflict,
        en: "You already have {limit} scheduled tasks, the most allowed; delete one first.",
        zh: "你的定时任务数量已达上限（{limit} 个），请先删除一个。",
    },
    ErrorSpec {
        key: "agent.generation_invalid",
        kind: ErrorKind::Upstream,
        en: "The model's answer could not be used; try again or use another model.",
        zh: "模型的回答无法使用，请重试或更换模型。",
    },
    ErrorSpec {
        key: "agent.generation_failed",
        kind: ErrorKind::Upstream,
        en: "The model failed: {reason}",
        zh: "模型调用失败：{reason}",
    },
    ErrorSpec {
        key: "agent.too_many_jobs",
        kind: ErrorKind::RateLimited,
        en: "You already have {limit} unfinished jobs; wait for one to finish or cancel one.",
        zh: "你已有 {limit} 个未完成的任务，请等待完成或取消后再提交。",
    },
    ErrorSpec {
        key: "model.rate_limited",
        kind: ErrorKind::RateLimited,
        en: "Too many model requests; retry in {retry_after} seconds.",
        zh: "模型调用过于频繁，请在 {retry_after} 秒后重试。",
    },
    ErrorSpec {
        key: "model.input_too_large",
        kind: ErrorKind::PayloadTooLarge,
        en: "`{field}` sends {length} characters to the model; the limit is {limit}.",
        zh: "`{field}` 发送给模型的内容有 {length} 个字符，超过 {limit} 个字符的上限。",
    },
    ErrorSpec {
        key: "workspace.path_invalid",
        kind: ErrorKind::BadRequest,
        en: "The path is not allowed: it must stay inside the workspace.",
        zh: "路径不合法：必须位于工作区内。",
    },
    ErrorSpec {
        key: "workspace.not_found",
        kind: ErrorKind::NotFound,
        en: "No such file or directory in the workspace.",
        zh: "工作区中不存在该文件或目录。",
    },
    ErrorSpec {
        key: "workspace.file_exists",
        kind: ErrorKind::Conflict,
        en: "A file of that name already exists in the workspace; delete it first or choose another name.",
        zh: "工作区中已存在同名文件；请先删除或换一个名称。",
    },
    ErrorSpec {
        key: "chat.session_not_found",
        kind: ErrorKind::NotFound,
        en: "No such chat session.",
        zh: "会话不存在。",
    },
    ErrorSpec {
        key: "chat.messages_required",
        kind: ErrorKind::Invalid,
        en: "Send at least one message.",
        zh: "请至少发送一条消息。",
    },
    ErrorSpec {
        key: "chat.max_loop_required",
        kind: ErrorKind::BadRequest,
        en: "No max_loop_count: set it in the request or in the agent.",
        zh: "缺少 max_loop_count：请在请求或智能体配置中设置。",
    },
    ErrorSpec {
        key: "chat.session_running",
        kind: ErrorKind::Conflict,
        en: "A run is already in progress for this session; wait for it or interrupt it.",
        zh: "该会话正在运行，请等待结束或先中断。",
    },
    ErrorSpec {
        key: "chat.session_not_running",
        kind: ErrorKind::Conflict,
        en: "No run is in progress for this session.",
        zh: "该会话当前没有正在运行的任务。",
    },
    ErrorSpec {
        key: "chat.guidance_not_found",
        kind: ErrorKind::NotFound,
        en: "No such queued message (it may already have been used).",
        zh: "该排队消息不存在（可能已被使用）。",
    },
    ErrorSpec {
        key: "chat.questionnaire_answered",
        kind: ErrorKind::Conflict,
        en: "Answers to this questionnaire were already submitted.",
        zh: "该问卷的答案已经提交。",
    },
    ErrorSpec {
        key: "tool.not_found",
        kind: ErrorKind::NotFound,
        en: "No such tool in this deployment.",
        zh: "该部署中没有这个工具。",
    },
    ErrorSpec {
        key: "tool.use_forbidden",
        kind: ErrorKind::Forbidden,
        en: "Only an administrator may call this tool directly (it changes files).",
        zh: "只有管理员可以直接调用此工具（它会修改文件）。",
    },
    ErrorSpec {
        key: "tool.failed",
        kind: ErrorKind::Invalid,
        en: "The tool reported an error: {reason}",
        zh: "工具返回错误：{reason}",
    },
    ErrorSpec {
        key: "conversation.not_found",
        kind: ErrorKind::NotFound,
        en: "No such conversation.",
        zh: "会话不存在。",
    },
    ErrorSpec {
        key: "conversation.no_user_message",
        kind: ErrorKind::Conflict,
        en: "The conversation has no user message to edit or run again.",
        zh: "该会话没有可编辑或重新运行的用户消息。",
    },
    ErrorSpec {
        key: "observability.jaeger_not_configured",
        kind: ErrorKind::NotFound,
        en: "Tracing UI is not configured (SAGE_JAEGER_PUBLIC_URL).",
        zh: "未配置链路追踪界面（SAGE_JAEGER_PUBLIC_URL）。",
    },
    ErrorSpec {
        key: "observability.login_unavailable",
        kind: ErrorKind::Unavailable,
        en: "There is no password login to send you to; sign in through your identity provider first.",
        zh: "没有可用的账号密码登录页面，请先通过身份提供方登录。",
    },
    ErrorSpec {
        key: "internal",
        kind: ErrorKind::Internal,
        en: "An internal error occurred; quote request id {request_id} when reporting it.",
        zh: "服务器内部错误；反馈时请提供请求 ID {request_id}。",
    },
    ErrorSpec {
        key: "upstream.failed",
        kind: ErrorKind::Upstream,
        en: "An upstream service failed: {reason}",
        zh: "上游服务出错：{reason}",
    },
    ErrorSpec {
        key: "service.not_ready",
        kind: ErrorKind::Unavailable,
        en: "Not ready: {dependencies} unavailable.",
        zh: "尚未就绪：{dependencies} 不可用。",
    },
    ErrorSpec {
        key: "service.unavailable",
        kind: ErrorKind::Unavailable,
        en: "A service the server depends on is unavailable; retry shortly (request id {request_id}).",
        zh: "服务器依赖的服务暂不可用，请稍后重试（请求 ID {request_id}）。",
    },
];

/// `Retry-After` of a 503 caused by an unreachable database or Redis.
pub const RETRY_AFTER_OUTAGE_SECS: u64 = 2;

/// Looks a key up in the catalogue.
pub fn spec(key: &str) -> Option<&'static ErrorSpec> {
    CATALOGUE.iter().find(|s| s.key == key)
}

/// An error on its way to becoming an `/api` envelope.
pub struct AppError {
    key: &'static str,
    kind: ErrorKind,
    params: Vec<(&'static str, String)>,
    detail: Option<Value>,
    retry_after: Option<u64>,
    source: Option<anyhow::Error>,
}

impl AppError {
    /// An error by catalogue key; an unknown key is a bug and renders as `internal`.
    pub fn new(key: &'static str) -> Self {
        let (key, kind) = match spec(key) {
            Some(s) => (s.key, s.kind),
            None => ("internal", ErrorKind::Internal),
        };
        Self {
            key,
            kind,
            params: Vec::new(),
            detail: None,
            retry_after: None,
            source: None,
        }
    }

    pub fn param(mut self, name: &'static str, value: impl fmt::Display) -> Self {
        self.params.push((name, value.to_string()));
        self
    }

    pub fn detail(mut self, detail: Value) -> Self {
        self.detail = Some(detail);
        self
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self.param("retry_after", seconds)
    }

    /// An unexpected failure: logged with its cause chain, answered as a bare 500. A
    /// database that cannot be reached anywhere in the chain is an outage instead (503).
    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        let source = source.into();
        let outage = source.chain().any(|cause| {
            cause
                .downcast_ref::<sea_orm::DbErr>()
                .is_some_and(platform::db::is_outage)
        });
        if outage {
            return Self::unavailable(source);
        }
        let mut e = Self::new("internal");
        e.source = Some(source);
        e
    }

    /// A dependency of ours failed (database, Redis): 503 with `Retry-After`, cause logged.
    pub fn unavailable(source: impl Into<anyhow::Error>) -> Self {
        let mut e = Self::new("service.unavailable").retry_after(RETRY_AFTER_OUTAGE_SECS);
        e.source = Some(source.into());
        e
    }

    /// A field failed validation; `location` is `body`, `query` or `path`.
    pub fn validation(location: &str, field: &str, reason: &str) -> Self {
        Self::new("request.validation")
            .param("field", field)
            .param("reason", reason)
            .detail(json!([{ "location": location, "field": field, "message": reason }]))
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn key(&self) -> &'static str {
        self.key
    }

    /// The message in the given locale with parameters filled in.
    pub fn message(&self, locale: Locale, request_id: &str) -> String {
        let template = match (spec(self.key), locale) {
            (Some(s), Locale::ZhCn) => s.zh,
            (Some(s), Locale::EnUs) => s.en,
            (None, _) => "internal error",
        };
        let mut text = template.replace("{request_id}", request_id);
        for (name, value) in &self.params {
            text = text.replace(&format!("{{{name}}}"), value);
        }
        text
    }
}

impl fmt::Debug for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.key)?;
        if let Some(source) = &self.source {
            write!(f, ": {source:#}")?;
        }
        Ok(())
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message(Locale::EnUs, "-"))
    }
}

/// Seconds since the epoch with millisecond precision, as Sage's `timestamp`.
pub(crate) fn timestamp() -> f64 {
    chrono::Utc::now().timestamp_millis() as f64 / 1000.0
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let ctx = RequestContext::current();
        let status = self.status_code();
        let mut detail = self.detail.clone();
        if self.kind.is_server_error() {
            tracing::error!(request_id = %ctx.request_id, error = ?self, "request failed");
            detail = Some(json!({ "request_id": ctx.request_id }));
        }
        let body = Envelope::<Value> {
            code: status.as_u16(),
            message: self.message(ctx.locale, &ctx.request_id),
            data: None,
            timestamp: timestamp(),
            error_code: Some(self.key),
            error_detail: detail,
        };
        let mut response = HttpResponse::build(status).json(body);
        if let Some(seconds) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

impl AppError {
    /// A domain error by its catalogue key, checked against the kind the domain gave it (a
    /// mismatch is a bug in the catalogue and answers 500 rather than a wrong status).
    fn domain(key: &'static str, kind: ErrorKind) -> AppError {
        let app = AppError::new(key);
        if app.kind() == kind {
            app
        } else {
            AppError::internal(anyhow::anyhow!("catalogue kind mismatch for {key}"))
        }
    }
}

impl From<identity::IdentityError> for AppError {
    fn from(e: identity::IdentityError) -> Self {
        use identity::IdentityError as E;
        let key = e.key();
        let retry = e.retry_after();
        let reason = match &e {
            E::UpstreamDenied(r) | E::UpstreamFailed(r) => Some(r.clone()),
            _ => None,
        };
        match e {
            E::Invalid { field, reason } => AppError::validation("body", field, &reason),
            E::Store(source) => AppError::unavailable(source),
            E::Internal(source) => AppError::internal(source),
            other => {
                let mut app = AppError::domain(key, other.kind());
                if let Some(seconds) = retry {
                    app = app.retry_after(seconds);
                }
                if let Some(reason) = reason {
                    app = app.param("reason", reason);
                }
                app
            }
        }
    }
}

/// The `/tasks` family's error body: `{"detail": <sentence>, "code": <key>}`.
pub(crate) fn plain_error_response(error: &AppError) -> HttpResponse {
    let ctx = RequestContext::current();
    let status = error.status_code();
    if error.kind.is_server_error() {
        tracing::error!(request_id = %ctx.request_id, error = ?error, "request failed");
    }
    HttpResponse::build(status).json(json!({
        "detail": error.message(ctx.locale, &ctx.request_id),
        "code": error.key,
    }))
}

impl From<providers::ProviderError> for AppError {
    fn from(e: providers::ProviderError) -> Self {
        use providers::ProviderError as E;
        let key = e.key();
        let reason = e.reason();
        match e {
            E::Invalid { field, reason } => AppError::validation("body", field, &reason),
            E::Internal(source) => AppError::internal(source),
            E::KeyUnreadable => {
                AppError::internal(anyhow::anyhow!("a sealed provider key cannot be opened"))
            }
            other => {
                let mut app = AppError::domain(key, other.kind());
                if let Some(reason) = reason {
                    app = app.param("reason", reason);
                }
                app
            }
        }
    }
}

impl From<agents::AgentError> for AppError {
    fn from(e: agents::AgentError) -> Self {
        use agents::AgentError as E;
        match e {
            E::Invalid { field, reason } => AppError::validation("body", &field, &reason),
            E::Provider(p) => AppError::from(p),
            E::Internal(source) => AppError::internal(source),
            E::Llm(llm) => AppError::new("agent.generation_failed").param("reason", llm),
            E::InputTooLarge(big) => AppError::from(big),
            E::TooManyJobs { limit } => AppError::new("agent.too_many_jobs").param("limit", limit),
            E::QuotaExceeded { limit } => {
                AppError::new("agent.quota_exceeded").param("limit", limit)
            }
            other => AppError::domain(other.key(), other.kind()),
        }
    }
}

impl From<platform::spend::SpendError> for AppError {
    fn from(e: platform::spend::SpendError) -> Self {
        use platform::spend::SpendError as E;
        match e {
            E::RateLimited { retry_after } => {
                AppError::new("model.rate_limited").retry_after(retry_after)
            }
            E::Store(source) => AppError::unavailable(source),
        }
    }
}

impl From<chat_runtime::ChatError> for AppError {
    fn from(e: chat_runtime::ChatError) -> Self {
        use chat_runtime::ChatError as E;
        match e {
            E::Invalid { field, reason } => AppError::validation("body", field, &reason),
            E::InputTooLarge(big) => AppError::from(big),
            E::Agent(a) => AppError::from(a),
            E::Provider(p) => AppError::from(p),
            E::Store(source) => AppError::unavailable(source),
            E::Internal(source) => AppError::internal(source),
            E::ToolFailed(reason) => AppError::new("tool.failed").param("reason", reason),
            other => AppError::domain(other.key(), other.kind()),
        }
    }
}

impl From<conversations::ConversationError> for AppError {
    fn from(e: conversations::ConversationError) -> Self {
        use conversations::ConversationError as E;
        match e {
            E::Invalid { field, reason } => AppError::validation("body", field, &reason),
            E::Internal(source) => AppError::internal(source),
            other => AppError::domain(other.key(), other.kind()),
        }
    }
}

impl From<planner::PlannerError> for AppError {
    fn from(e: planner::PlannerError) -> Self {
        use planner::PlannerError as E;
        match e {
            E::Invalid { field, reason } => AppError::validation("body", field, &reason),
            E::Internal(source) => AppError::internal(source),
            E::QuotaExceeded { limit } => {
                AppError::new("task.quota_exceeded").param("limit", limit)
            }
            other => AppError::domain(other.key(), other.kind()),
        }
    }
}

impl From<tooling::mcp::McpError> for AppError {
    fn from(e: tooling::mcp::McpError) -> Self {
        use tooling::mcp::McpError as E;
        match e {
            E::Invalid { field, reason } => AppError::validation("body", field, &reason),
            E::Refused(refused) => {
                AppError::validation("body", "streamable_http_url", &refused.to_string())
            }
            E::Internal(source) => AppError::internal(source),
            E::Server(reason) => {
                AppError::new("mcp.server_register_failed").param("reason", reason)
            }
            other => AppError::domain(other.key(), other.kind()),
        }
    }
}

impl From<tooling::skills::SkillError> for AppError {
    fn from(e: tooling::skills::SkillError) -> Self {
        use tooling::skills::SkillError as E;
        match e {
            E::Invalid { field, reason } => AppError::validation("body", field, &reason),
            E::Internal(source) => AppError::internal(source),
            E::BadPackage(reason) => AppError::new("skill.invalid_package").param("reason", reason),
            E::Download(reason) => AppError::new("skill.download_failed").param("reason", reason),
            E::QuotaExceeded { limit } => {
                AppError::new("skill.quota_exceeded").param("limit", limit)
            }
            other => AppError::domain(other.key(), other.kind()),
        }
    }
}

impl From<knowledge::KnowledgeError> for AppError {
    fn from(e: knowledge::KnowledgeError) -> Self {
        use knowledge::KnowledgeError as E;
        match e {
            E::Invalid { field, reason } => AppError::validation("body", field, &reason),
            E::Internal(source) => AppError::internal(source),
            E::QuotaExceeded { limit } => AppError::new("kdb.quota_exceeded").param("limit", limit),
            E::DocQuotaExceeded { limit } => {
                AppError::new("kdb.doc_quota_exceeded").param("limit", limit)
            }
            other => AppError::domain(other.key(), other.kind()),
        }
    }
}

impl From<releases::ReleaseError> for AppError {
    fn from(e: releases::ReleaseError) -> Self {
        use releases::ReleaseError as E;
        match e {
            E::Invalid { field, reason } => AppError::validation("body", field, &reason),
            E::Internal(source) => AppError::internal(source),
            E::Feed(reason) => AppError::new("release.feed_failed").param("reason", reason),
            other => AppError::domain(other.key(), other.kind()),
        }
    }
}

impl From<platform::blobs::BlobError> for AppError {
    fn from(e: platform::blobs::BlobError) -> Self {
        match e {
            platform::blobs::BlobError::InvalidPath(p) => {
                AppError::validation("body", "path", &p.0)
            }
            platform::blobs::BlobError::NotFound => AppError::new("upload.not_found"),
            platform::blobs::BlobError::Conflict => AppError::new("upload.path_conflict"),
            platform::blobs::BlobError::Io(e) => AppError::internal(anyhow::anyhow!(e)),
        }
    }
}

impl From<platform::spend::InputTooLarge> for AppError {
    fn from(e: platform::spend::InputTooLarge) -> Self {
        let detail = json!([{ "location": "body", "field": e.field, "message": e.to_string(), "length": e.length, "limit": e.limit }]);
        AppError::new("model.input_too_large")
            .param("field", &e.field)
            .param("length", e.length)
            .param("limit", e.limit)
            .detail(detail)
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::internal(e)
    }
}

/// Renders the error-code matrix as Markdown (`docs/errors.md`).
pub fn render_error_matrix() -> String {
    let mut out = String::from(
        "# Error-code matrix\n\n\
         Generated from `apps/server/src/error.rs` by `cargo xtask docs`; a test keeps it equal to the code.\n\n\
         Every `/api/*` failure answers the envelope `{code, message, data: null, timestamp, error_code, error_detail?}` \
         with the HTTP status equal to `code`. `message` is the sentence below in the locale chosen by \
         `X-Sage-Locale`, then `X-Accept-Language` (what Sage's web UI sends), then `Accept-Language`, then en-US; `error_code` is the key below. 5xx answers never carry internal text; \
         `error_detail.request_id` and the `X-Request-Id` header tie them to the log. `/tasks/*` failures \
         answer `{\"detail\": <sentence>, \"code\": <key>}` with the same status; `/oauth2/*` (and \
         `/api/oauth2/*`) failures answer RFC 6749 bodies `{\"error\", \"error_description\"}` with \
         `Cache-Control: no-store`: 401 for `invalid_client` (with `WWW-Authenticate: Basic realm=\"sage\"`) \
         and `invalid_token` (with `WWW-Authenticate: Bearer`), 403 for `unauthorized_client` at `authorize`, \
         500 for `server_error`, 400 for every other code (`invalid_request`, `invalid_grant`, `invalid_scope`, \
         `unsupported_grant_type`, `unsupported_response_type`); an anonymous consent post answers 401 \
         `login_required` (docs/auth.md).\n\n\
         ## Status by kind\n\n| kind | HTTP status = `code` |\n|---|---|\n",
    );
    for kind in ErrorKind::ALL {
        let name = serde_json::to_value(kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        out.push_str(&format!("| `{name}` | {} |\n", kind.status()));
    }
    out.push_str("\n## Keys\n\n| key | status | en-US | zh-CN |\n|---|---|---|---|\n");
    for s in CATALOGUE {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            s.key,
            s.kind.status(),
            s.en.replace('|', "\\|"),
            s.zh.replace('|', "\\|")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_unique_and_every_kind_has_a_key() {
        let mut keys: Vec<_> = CATALOGUE.iter().map(|s| s.key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), CATALOGUE.len());
        for kind in ErrorKind::ALL {
            assert!(
                CATALOGUE.iter().any(|s| s.kind == kind),
                "no catalogue key for {kind:?}"
            );
        }
    }

    #[test]
    fn docs_errors_md_is_generated_from_the_catalogue() {
        crate::openapi::ensure_file_contents("docs/errors.md", &render_error_matrix());
    }

    #[test]
    fn identity_errors_keep_their_kind_through_the_catalogue() {
        use identity::IdentityError as E;
        let samples = [
            E::InvalidCredentials,
            E::Unauthenticated,
            E::InvalidRefreshToken,
            E::TooManyAttempts { retry_after: 3 },
            E::PasswordLoginDisabled,
            E::AdminPasswordLoginRequired,
            E::RegistrationDisabled,
            E::UsernameTaken,
            E::EmailTaken,
            E::WrongPassword,
            E::CodeInvalid,
            E::CodeThrottled { retry_after: 3 },
            E::MailFailed("x".into()),
            E::Forbidden,
            E::UserNotFound,
            E::LastAdmin,
            E::UpstreamProviderNotFound,
            E::UpstreamFlowInvalid,
            E::UpstreamDenied("x".into()),
            E::UpstreamFailed("x".into()),
            E::UpstreamLinkRequired,
            E::UpstreamIdentityTaken,
        ];
        for e in samples {
            let (kind, key) = (e.kind(), e.key());
            let app = AppError::from(e);
            assert_eq!(app.key(), key);
            assert_eq!(app.kind(), kind, "{key}");
        }
    }

    #[test]
    fn messages_fill_parameters_in_both_locales() {
        let e = AppError::validation("body", "name", "missing field");
        assert_eq!(
            e.message(Locale::EnUs, "r1"),
            "Invalid value for `name`: missing field"
        );
        assert!(e.message(Locale::ZhCn, "r1").contains("`name`"));
        let internal = AppError::internal(anyhow::anyhow!("secret table t_users"));
        let text = internal.message(Locale::EnUs, "req-9");
        assert!(text.contains("req-9") && !text.contains("t_users"));
        assert_eq!(AppError::new("no.such.key").key(), "internal");
    }
}
