//! `fetch_webpages`: reads web pages for the model. Every URL (and every redirect) passes the
//! deployment's outbound policy, a page is read up to 5 MiB within its time limit, and its
//! text is extracted like a knowledge-base file (HTML without scripts and styles, PDF, plain
//! text), then cut to `max_length_per_url` characters.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use platform::outbound::{OutboundPolicy, fetch, http_client_builder};
use serde_json::{Value, json};
use tooling::{Tool, ToolContext, ToolError};

pub const TOOL_NAME: &str = "fetch_webpages";
/// URLs of one call.
const MAX_URLS: usize = 5;
/// Bytes read of one page.
const MAX_PAGE_BYTES: usize = 5 * 1024 * 1024;
const DEFAULT_CHARS: usize = 8_000;
const MAX_CHARS: usize = 50_000;
const DEFAULT_TIMEOUT_SECS: u64 = 30;
const MAX_TIMEOUT_SECS: u64 = 60;

/// The tool over `policy` (the one `SAGE_OUTBOUND_ALLOW` configures).
pub fn fetch_webpages(policy: Arc<OutboundPolicy>) -> Result<Arc<dyn Tool>, String> {
    let client = http_client_builder(policy.clone())
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(FetchWebpages { client, policy }))
}

struct FetchWebpages {
    client: reqwest::Client,
    policy: Arc<OutboundPolicy>,
}

/// What the bytes of a page are, by their first bytes: the extractor's file name for them.
fn kind_of(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(b"%PDF-") {
        return "page.pdf";
    }
    let head = String::from_utf8_lossy(bytes.get(..2048).unwrap_or(bytes)).to_ascii_lowercase();
    if head.contains("<html") || head.contains("<!doctype html") || head.contains("<body") {
        "page.html"
    } else {
        "page.txt"
    }
}

impl FetchWebpages {
    async fn one(&self, url: String, max_chars: usize, timeout: Duration) -> Value {
        let url = if url.contains("://") {
            url
        } else {
            format!("https://{url}")
        };
        let headers = [
            ("user-agent", "Mozilla/5.0 (compatible; SageServer)"),
            (
                "accept",
                "text/html,application/xhtml+xml,text/plain,application/pdf;q=0.9,*/*;q=0.5",
            ),
        ];
        let fetched = tokio::time::timeout(
            timeout,
            fetch(&self.client, &self.policy, &url, &headers, MAX_PAGE_BYTES),
        )
        .await;
        let bytes = match fetched {
            Err(_) => {
                return json!({"url": url, "status": "error",
                    "error": format!("no answer within {} seconds", timeout.as_secs())});
            }
            Ok(Err(e)) => return json!({"url": url, "status": "error", "error": e.to_string()}),
            Ok(Ok(bytes)) => bytes,
        };
        let name = kind_of(&bytes);
        let extracted =
            tokio::task::spawn_blocking(move || knowledge::parse::extract(name, &bytes)).await;
        let page = match extracted {
            Ok(Ok(page)) => page,
            Ok(Err(e)) => return json!({"url": url, "status": "error", "error": e.to_string()}),
            Err(_) => {
                return json!({"url": url, "status": "error", "error": "the page could not be read"});
            }
        };
        let text = page.text.trim();
        let length = text.chars().count();
        let content: String = text.chars().take(max_chars).collect();
        json!({"url": url, "status": "success", "title": page.title, "content": content,
               "length": length, "truncated": length > max_chars})
    }
}

#[async_trait]
impl Tool for FetchWebpages {
    fn name(&self) -> &str {
        TOOL_NAME
    }

    fn description(&self, language: &str) -> &str {
        if language == "zh" {
            "抓取一个或多个网页（最多 5 个，并发），返回其标题和正文文本（HTML、PDF 或纯文本）。只能访问部署允许的地址。"
        } else {
            "Fetch one or more web pages (up to 5, concurrently) and return their title and text (HTML, PDF or plain text). Only addresses this deployment allows are reachable."
        }
    }

    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {
            "urls": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": MAX_URLS,
                     "description": "http(s) URLs (a bare host gets https://)"},
            "max_length_per_url": {"type": "integer", "minimum": 1, "maximum": MAX_CHARS, "default": DEFAULT_CHARS},
            "timeout": {"type": "integer", "minimum": 1, "maximum": MAX_TIMEOUT_SECS, "default": DEFAULT_TIMEOUT_SECS}
        }, "required": ["urls"]})
    }

    async fn call(&self, _ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        let urls: Vec<String> = match &args["urls"] {
            Value::String(one) => vec![one.clone()],
            Value::Array(many) => many
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        let urls: Vec<String> = urls
            .into_iter()
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .collect();
        if urls.is_empty() || urls.len() > MAX_URLS {
            return Err(ToolError::Invalid(format!(
                "`urls` takes 1 to {MAX_URLS} URLs"
            )));
        }
        let max_chars = args["max_length_per_url"]
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(DEFAULT_CHARS)
            .clamp(1, MAX_CHARS);
        let timeout = Duration::from_secs(
            args["timeout"]
                .as_u64()
                .unwrap_or(DEFAULT_TIMEOUT_SECS)
                .clamp(1, MAX_TIMEOUT_SECS),
        );
        let results = futures_util::future::join_all(
            urls.into_iter()
                .map(|url| self.one(url, max_chars, timeout)),
        )
        .await;
        let ok = results.iter().filter(|r| r["status"] == "success").count();
        let status = match ok {
            0 => "error",
            n if n == results.len() => "success",
            _ => "partial",
        };
        Ok(json!({"status": status, "results": results}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_read_by_what_they_hold() {
        assert_eq!(kind_of(b"%PDF-1.7\n..."), "page.pdf");
        assert_eq!(
            kind_of(b"<!DOCTYPE html><html><p>x</p></html>"),
            "page.html"
        );
        assert_eq!(kind_of(b"  <HTML lang=en>"), "page.html");
        assert_eq!(kind_of(b"{\"a\": 1}"), "page.txt");
    }
}
