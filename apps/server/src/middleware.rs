//! Cross-cutting middleware: request id, tracing span and access log, locale, security
//! headers, and the fallback that turns routing's bare 404/405 into the family's envelope.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Uri;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::uri::PathAndQuery;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, ResponseError};
use tracing::Instrument;

use crate::error::AppError;

/// The header carrying the request id, accepted from clients and always returned.
pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The language of messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locale {
    EnUs,
    ZhCn,
}

impl Locale {
    /// `X-Sage-Locale`, `X-Accept-Language`, then the first `zh*`/`en*` of
    /// `Accept-Language`, then en-US.
    fn from_request(req: &ServiceRequest) -> Self {
        let header_text = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_ascii_lowercase)
        };
        // Sage's web UI sends its chosen language as `X-Accept-Language`.
        for name in ["x-sage-locale", "x-accept-language"] {
            if let Some(explicit) = header_text(name) {
                if explicit.starts_with("zh") {
                    return Locale::ZhCn;
                }
                if explicit.starts_with("en") {
                    return Locale::EnUs;
                }
            }
        }
        if let Some(accept) = header_text("accept-language") {
            for part in accept.split(',') {
                let tag = part.split(';').next().unwrap_or_default().trim();
                if tag.starts_with("zh") {
                    return Locale::ZhCn;
                }
                if tag.starts_with("en") {
                    return Locale::EnUs;
                }
            }
        }
        Locale::EnUs
    }
}

/// Per-request facts available to error rendering anywhere below the middleware.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    pub locale: Locale,
}

tokio::task_local! {
    static CONTEXT: RequestContext;
}

impl RequestContext {
    /// The context of the request being served, or a neutral one outside a request.
    pub fn current() -> RequestContext {
        CONTEXT
            .try_with(Clone::clone)
            .unwrap_or_else(|_| RequestContext {
                request_id: "-".into(),
                locale: Locale::EnUs,
            })
    }
}

/// A client-supplied id is kept when it is short and plain; otherwise a new one is made.
fn request_id_of(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(platform::ids::new_uuid)
}

static STATUS_CLASSES: [std::sync::atomic::AtomicU64; 5] = [
    std::sync::atomic::AtomicU64::new(0),
    std::sync::atomic::AtomicU64::new(0),
    std::sync::atomic::AtomicU64::new(0),
    std::sync::atomic::AtomicU64::new(0),
    std::sync::atomic::AtomicU64::new(0),
];

/// Requests answered so far by status class (1xx … 5xx), for the metrics route.
pub(crate) fn request_counts() -> [u64; 5] {
    std::array::from_fn(|i| STATUS_CLASSES[i].load(std::sync::atomic::Ordering::Relaxed))
}

/// The prefix Sage's web UI puts before every API path (`/prod-api/api/…`), which Sage's
/// own deployment strips in a proxy.
const UI_PREFIX: &str = "/prod-api";

/// Serves `/prod-api/<path>` as `/<path>`, so the web UI works with or without that proxy.
fn strip_ui_prefix(req: &mut ServiceRequest) {
    let Some(rest) = req
        .path()
        .strip_prefix(UI_PREFIX)
        .filter(|r| r.starts_with('/'))
    else {
        return;
    };
    let path_and_query = match req.query_string() {
        "" => rest.to_owned(),
        query => format!("{rest}?{query}"),
    };
    let mut parts = req.head().uri.clone().into_parts();
    let Ok(path_and_query) = PathAndQuery::try_from(path_and_query) else {
        return;
    };
    parts.path_and_query = Some(path_and_query);
    if let Ok(uri) = Uri::from_parts(parts) {
        req.match_info_mut().get_mut().update(&uri);
        req.head_mut().uri = uri;
    }
}

/// Request id, span, locale, access log and fallback envelopes, around everything else.
pub(crate) async fn request_context(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    strip_ui_prefix(&mut req);
    let ctx = RequestContext {
        request_id: request_id_of(&req),
        locale: Locale::from_request(&req),
    };
    req.extensions_mut().insert(ctx.clone());
    let span = tracing::info_span!(
        "http",
        request_id = %ctx.request_id,
        method = %req.method(),
        path = %req.path(),
    );
    let request_id = ctx.request_id.clone();
    let under_api = req.path() == "/api" || req.path().starts_with("/api/");
    let result = CONTEXT
        .scope(ctx.clone(), async move {
            let res = next.call(req).await;
            // Errors that escape handlers are rendered here, inside the request's context.
            let res = match res {
                Ok(res) => res.map_into_boxed_body(),
                Err(e) => return Err(e),
            };
            Ok(fallback(res))
        })
        .instrument(span.clone())
        .await;
    let mut res = match result {
        Ok(res) => res,
        Err(e) => {
            return Err(e);
        }
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    security_headers(res.headers_mut(), under_api);
    let status = res.status().as_u16();
    if let Some(counter) = STATUS_CLASSES.get(usize::from(status / 100).saturating_sub(1)) {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(target: "sage::access", status, elapsed_ms, "request");
        } else {
            tracing::info!(target: "sage::access", status, elapsed_ms, "request");
        }
    });
    Ok(res)
}

/// On every answer: no `Referer` to other sites, no MIME sniffing. Under `/api`,
/// `Cache-Control: no-store` unless the route chose its own caching (public, cacheable
/// routes say so themselves): answers there carry tokens and users' data.
fn security_headers(headers: &mut actix_web::http::header::HeaderMap, under_api: bool) {
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if under_api && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// Routing answers unknown paths with an empty 404 and wrong methods with an empty 405;
/// under `/api` those become envelopes, elsewhere short plain text.
fn fallback(res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let status = res.status().as_u16();
    if !(status == 404 || status == 405) || res.headers().contains_key(header::CONTENT_TYPE) {
        return res;
    }
    let (req, _) = res.into_parts();
    let (method, path) = (req.method(), req.path());
    let mut response = if path == "/api" || path.starts_with("/api/") {
        let key = if status == 404 {
            "route.not_found"
        } else {
            "route.method_not_allowed"
        };
        AppError::new(key)
            .param("method", method)
            .param("path", path)
            .error_response()
    } else {
        let text = if status == 404 {
            "Not Found"
        } else {
            "Method Not Allowed"
        };
        HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or_default())
            .content_type("text/plain; charset=utf-8")
            .body(text)
    };
    if status == 405 {
        let allowed = crate::openapi::allowed_methods(path);
        if !allowed.is_empty()
            && let Ok(value) = HeaderValue::from_str(&allowed.join(", "))
        {
            response.headers_mut().insert(header::ALLOW, value);
        }
    }
    ServiceResponse::new(req, response)
}
