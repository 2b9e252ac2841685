//! The OpenAI-compatible client: chat completions (streamed as server-sent events, or one
//! JSON answer), embeddings and model listing, over the workspace's reqwest.
//!
//! Why not async-openai: its types drop `reasoning_content` (DeepSeek, vLLM, Qwen), and its
//! errors lose the HTTP status; this client keeps both, retries only before the first byte,
//! and applies the outbound policy at connect time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use platform::outbound::OutboundPolicy;
use serde_json::{Map, Value, json};

/// Where and as whom to call.
#[derive(Clone)]
pub struct Endpoint {
    pub base_url: String,
    pub api_key: String,
    pub model: String,
    /// Whether the model takes image parts (the provider's `supports_multimodal`; the
    /// deployment default: no). Runs turn images into markdown links for the others.
    pub supports_multimodal: bool,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("supports_multimodal", &self.supports_multimodal)
            .finish_non_exhaustive()
    }
}

/// A chat request; `extra` fields are passed through verbatim.
#[derive(Debug, Clone, Default)]
pub struct ChatRequest {
    pub messages: Vec<Value>,
    pub tools: Vec<Value>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub presence_penalty: Option<f64>,
    /// e.g. `{"type": "json_object"}`.
    pub response_format: Option<Value>,
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    pub reasoning_tokens: u64,
}

/// One piece of a streamed answer.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    Content(String),
    Reasoning(String),
    /// A fragment of tool call `index`; `id` and `name` come in the first fragment.
    ToolCall {
        index: u32,
        id: Option<String>,
        name: Option<String>,
        arguments: String,
    },
    Usage(Usage),
    Finish(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// A whole answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Completion {
    pub content: String,
    pub reasoning: String,
    pub tool_calls: Vec<ToolCall>,
    pub usage: Option<Usage>,
    pub finish_reason: Option<String>,
}

/// What went wrong talking to a provider; `message` keeps the provider's own words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct LlmError {
    pub kind: LlmErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlmErrorKind {
    Authentication,
    RateLimited,
    BadRequest,
    ModelNotFound,
    Unreachable,
    Forbidden,
    MalformedResponse,
    Timeout,
    ServerError,
}

impl std::fmt::Display for LlmErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LlmErrorKind::Authentication => "authentication failed",
            LlmErrorKind::RateLimited => "rate limited",
            LlmErrorKind::BadRequest => "bad request",
            LlmErrorKind::ModelNotFound => "model not found",
            LlmErrorKind::Unreachable => "unreachable",
            LlmErrorKind::Forbidden => "address not allowed",
            LlmErrorKind::MalformedResponse => "malformed response",
            LlmErrorKind::Timeout => "timed out",
            LlmErrorKind::ServerError => "provider error",
        })
    }
}

fn err(kind: LlmErrorKind, message: impl Into<String>) -> LlmError {
    LlmError {
        kind,
        message: message.into(),
    }
}

/// Timeouts and retries.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub connect_timeout: Duration,
    /// Longest wait for the first byte, and between two stream chunks.
    pub read_timeout: Duration,
    /// Attempts after the first on 429, 5xx and connection failures before the first byte.
    pub retries: u32,
    pub backoff: Duration,
    /// Largest JSON answer read from a provider.
    pub max_body_bytes: usize,
    /// Largest whole event stream.
    pub max_stream_bytes: usize,
    /// Largest line, and largest event, of an event stream.
    pub max_event_bytes: usize,
}

/// How much of an error body is read for its message.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(120),
            retries: 2,
            backoff: Duration::from_millis(250),
            max_body_bytes: 16 * 1024 * 1024,
            max_stream_bytes: 64 * 1024 * 1024,
            max_event_bytes: 1024 * 1024,
        }
    }
}

/// The client; cheap to clone.
#[derive(Clone)]
pub struct LlmClient {
    http: reqwest::Client,
    policy: Arc<OutboundPolicy>,
    settings: ClientSettings,
}

fn url(base: &str, path: &str) -> String {
    format!("{}/{path}", base.trim_end_matches('/'))
}

/// The provider's error message from an OpenAI-style body, or the body's start.
fn provider_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v["error"]["message"]
                .as_str()
                .or_else(|| v["error"].as_str())
                .or_else(|| v["message"].as_str())
                .or_else(|| v["detail"].as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| body.chars().take(200).collect::<String>().trim().to_owned())
}

fn status_error(status: u16, body: &str) -> LlmError {
    let message = provider_message(body);
    let lower = body.to_ascii_lowercase();
    let kind = match status {
        401 | 403 => LlmErrorKind::Authentication,
        429 => LlmErrorKind::RateLimited,
        404 if lower.contains("model") => LlmErrorKind::ModelNotFound,
        400 | 422
            if lower.contains("model")
                && (lower.contains("not exist") || lower.contains("not found")) =>
        {
            LlmErrorKind::ModelNotFound
        }
        400..=499 => LlmErrorKind::BadRequest,
        _ => LlmErrorKind::ServerError,
    };
    err(kind, format!("HTTP {status}: {message}"))
}

/// A transport failure as the caller sees it: a short classified text, never the operating
/// system's own message (it names local paths, resolver details and error numbers); the full
/// chain goes to the log.
fn transport_error(e: &reqwest::Error) -> LlmError {
    if e.is_timeout() {
        return err(LlmErrorKind::Timeout, "no answer in time");
    }
    let mut chain = vec![e.to_string()];
    let mut io_kind = None;
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        chain.push(s.to_string());
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            io_kind = Some(io.kind());
        }
        source = s.source();
    }
    if let Some(refusal) = chain
        .iter()
        .find(|t| t.contains("no address this deployment allows"))
    {
        return err(LlmErrorKind::Forbidden, refusal.clone());
    }
    tracing::debug!(error = %chain.join(": "), "provider transport failure");
    let joined = chain.join(" ").to_ascii_lowercase();
    let text = match io_kind {
        Some(std::io::ErrorKind::ConnectionRefused) => "the provider refused the connection",
        Some(std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted) => {
            "the provider closed the connection"
        }
        Some(std::io::ErrorKind::TimedOut) => "no answer in time",
        _ if joined.contains("dns") || joined.contains("lookup") || joined.contains("resolve") => {
            "the provider's host name does not resolve"
        }
        _ if joined.contains("certificate") || joined.contains("tls") => {
            "the TLS handshake with the provider failed"
        }
        _ if e.is_decode() || e.is_body() => "the provider's answer broke off",
        _ => "the provider cannot be reached",
    };
    err(LlmErrorKind::Unreachable, text)
}

fn usage_of(v: &Value) -> Option<Usage> {
    let u = v.get("usage").filter(|u| u.is_object())?;
    let n = |p: &str| u.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    Some(Usage {
        prompt_tokens: n("/prompt_tokens"),
        completion_tokens: n("/completion_tokens"),
        cached_tokens: n("/prompt_tokens_details/cached_tokens"),
        reasoning_tokens: n("/completion_tokens_details/reasoning_tokens"),
    })
}

/// Events of one decoded SSE `data:` payload.
fn events_of(payload: &Value) -> Result<Vec<StreamEvent>, LlmError> {
    if payload.get("error").is_some() {
        return Err(err(
            LlmErrorKind::ServerError,
            provider_message(&payload.to_string()),
        ));
    }
    let mut out = Vec::new();
    for choice in payload["choices"].as_array().into_iter().flatten() {
        let delta = &choice["delta"];
        if let Some(r) = delta["reasoning_content"]
            .as_str()
            .or_else(|| delta["reasoning"].as_str())
            && !r.is_empty()
        {
            out.push(StreamEvent::Reasoning(r.to_owned()));
        }
        if let Some(c) = delta["content"].as_str()
            && !c.is_empty()
        {
            out.push(StreamEvent::Content(c.to_owned()));
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            out.push(StreamEvent::ToolCall {
                index: u32::try_from(call["index"].as_u64().unwrap_or(0)).unwrap_or(0),
                id: call["id"].as_str().map(str::to_owned),
                name: call["function"]["name"].as_str().map(str::to_owned),
                arguments: call["function"]["arguments"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            });
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            out.push(StreamEvent::Finish(f.to_owned()));
        }
    }
    if let Some(u) = usage_of(payload) {
        out.push(StreamEvent::Usage(u));
    }
    Ok(out)
}

/// Splits a byte stream into SSE `data:` payloads; `[DONE]` ends it.
struct SseDecoder {
    buffer: BytesMut,
    /// How much of `buffer` is known to hold no newline.
    scanned: usize,
    data: String,
    done: bool,
    max_event: usize,
}

fn too_large(what: &str, limit: usize) -> LlmError {
    err(
        LlmErrorKind::MalformedResponse,
        format!("{what} is larger than {limit} bytes"),
    )
}

impl SseDecoder {
    fn new(max_event: usize) -> Self {
        Self {
            buffer: BytesMut::new(),
            scanned: 0,
            data: String::new(),
            done: false,
            max_event,
        }
    }

    /// Complete payloads found after adding `chunk`; a line or an event over the cap is an
    /// error (the stream is never buffered beyond it).
    fn feed(&mut self, chunk: &[u8]) -> Result<Vec<String>, LlmError> {
        self.buffer.extend_from_slice(chunk);
        let mut payloads = Vec::new();
        loop {
            let Some(found) = self.buffer[self.scanned..].iter().position(|b| *b == b'\n') else {
                self.scanned = self.buffer.len();
                if self.buffer.len() > self.max_event {
                    return Err(too_large("a line of the event stream", self.max_event));
                }
                break;
            };
            let pos = self.scanned + found;
            self.scanned = 0;
            let line = self.buffer.split_to(pos + 1);
            let line = std::str::from_utf8(&line)
                .map_err(|_| err(LlmErrorKind::MalformedResponse, "the stream is not UTF-8"))?
                .trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !self.data.is_empty() {
                    let data = std::mem::take(&mut self.data);
                    if data.trim() == "[DONE]" {
                        self.done = true;
                        return Ok(payloads);
                    }
                    payloads.push(data);
                }
            } else if let Some(rest) = line.strip_prefix("data:") {
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
                if self.data.len() > self.max_event {
                    return Err(too_large("an event of the stream", self.max_event));
                }
            } else if line.starts_with(':') || line.contains(':') {
                // Comments, `event:`, `id:`, `retry:` lines carry nothing for us.
            } else {
                return Err(err(
                    LlmErrorKind::MalformedResponse,
                    format!(
                        "not a server-sent event stream: `{}`",
                        line.chars().take(80).collect::<String>()
                    ),
                ));
            }
        }
        Ok(payloads)
    }
}

impl LlmClient {
    /// Proxies from the environment are not used: the outbound policy checks the address the
    /// client connects to, which must be the provider's.
    pub fn new(policy: Arc<OutboundPolicy>, settings: ClientSettings) -> Result<Self, LlmError> {
        let http = platform::outbound::http_client_builder(policy.clone())
            .connect_timeout(settings.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| err(LlmErrorKind::Unreachable, e.to_string()))?;
        Ok(Self {
            http,
            policy,
            settings,
        })
    }

    /// Sends `body` to `path`, retrying before the first byte; returns the successful response.
    async fn send(
        &self,
        endpoint: &Endpoint,
        path: &str,
        body: &Value,
    ) -> Result<reqwest::Response, LlmError> {
        let target = url(&endpoint.base_url, path);
        self.policy
            .check_url(&target)
            .await
            .map_err(|e| err(LlmErrorKind::Forbidden, e.to_string()))?;
        let mut attempt = 0;
        loop {
            let result = tokio::time::timeout(
                self.settings.read_timeout,
                self.http
                    .post(&target)
                    .bearer_auth(&endpoint.api_key)
                    .json(body)
                    .send(),
            )
            .await;
            let (error, retry_after) = match result {
                Err(_) => (err(LlmErrorKind::Timeout, "no answer in time"), None),
                Ok(Err(e)) => (transport_error(&e), None),
                Ok(Ok(response)) if response.status().is_success() => return Ok(response),
                Ok(Ok(response)) => {
                    let status = response.status().as_u16();
                    let retry_after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let text = self.error_text(response).await;
                    (status_error(status, &text), retry_after)
                }
            };
            let retryable = matches!(
                error.kind,
                LlmErrorKind::RateLimited | LlmErrorKind::ServerError | LlmErrorKind::Unreachable
            );
            if !retryable || attempt >= self.settings.retries {
                return Err(error);
            }
            attempt += 1;
            let backoff = self.settings.backoff * 3u32.pow(attempt - 1);
            // A short Retry-After is honoured; a long one is the caller's to wait for.
            let wait = match retry_after {
                Some(ra) if ra > Duration::from_secs(5) => return Err(error),
                Some(ra) => ra.max(backoff),
                None => backoff,
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// At most `limit` bytes of a body; more is an error, and nothing beyond is read.
    async fn read_capped(
        &self,
        response: reqwest::Response,
        limit: usize,
    ) -> Result<BytesMut, LlmError> {
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(too_large("the answer", limit));
        }
        let mut body = BytesMut::new();
        let mut stream = response.bytes_stream();
        loop {
            match tokio::time::timeout(self.settings.read_timeout, stream.next()).await {
                Err(_) => return Err(err(LlmErrorKind::Timeout, "the answer stalled")),
                Ok(None) => return Ok(body),
                Ok(Some(Err(e))) => return Err(transport_error(&e)),
                Ok(Some(Ok(chunk))) => {
                    if body.len() + chunk.len() > limit {
                        return Err(too_large("the answer", limit));
                    }
                    body.extend_from_slice(&chunk);
                }
            }
        }
    }

    /// The start of an error body (at most 64 KiB are read), for its message.
    async fn error_text(&self, response: reqwest::Response) -> String {
        let mut body = BytesMut::new();
        let mut stream = response.bytes_stream();
        while body.len() < MAX_ERROR_BODY_BYTES {
            match tokio::time::timeout(self.settings.read_timeout, stream.next()).await {
                Ok(Some(Ok(chunk))) => body.extend_from_slice(&chunk),
                _ => break,
            }
        }
        body.truncate(MAX_ERROR_BODY_BYTES);
        String::from_utf8_lossy(&body).into_owned()
    }

    fn chat_body(endpoint: &Endpoint, request: &ChatRequest, stream: bool) -> Value {
        let mut body = Map::new();
        body.insert("model".into(), json!(endpoint.model));
        body.insert("messages".into(), json!(request.messages));
        if !request.tools.is_empty() {
            body.insert("tools".into(), json!(request.tools));
        }
        if let Some(v) = request.max_tokens {
            body.insert("max_tokens".into(), json!(v));
        }
        if let Some(v) = request.temperature {
            body.insert("temperature".into(), json!(v));
        }
        if let Some(v) = request.top_p {
            body.insert("top_p".into(), json!(v));
        }
        if let Some(v) = request.presence_penalty {
            body.insert("presence_penalty".into(), json!(v));
        }
        if let Some(v) = &request.response_format {
            body.insert("response_format".into(), v.clone());
        }
        if stream {
            body.insert("stream".into(), json!(true));
            body.insert("stream_options".into(), json!({"include_usage": true}));
        }
        for (k, v) in &request.extra {
            body.entry(k.clone()).or_insert_with(|| v.clone());
        }
        Value::Object(body)
    }

    /// One JSON answer.
    pub async fn chat(
        &self,
        endpoint: &Endpoint,
        request: &ChatRequest,
    ) -> Result<Completion, LlmError> {
        let response = self
            .send(
                endpoint,
                "chat/completions",
                &Self::chat_body(endpoint, request, false),
            )
            .await?;
        let body = self
            .read_capped(response, self.settings.max_body_bytes)
            .await?;
        let value: Value = serde_json::from_slice(&body).map_err(|_| {
            err(
                LlmErrorKind::MalformedResponse,
                format!(
                    "the answer is not JSON: `{}`",
                    String::from_utf8_lossy(&body[..body.len().min(80)])
                ),
            )
        })?;
        let choice = value["choices"]
            .get(0)
            .ok_or_else(|| err(LlmErrorKind::MalformedResponse, "the answer has no choices"))?;
        let message = &choice["message"];
        let tool_calls = message["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| ToolCall {
                id: c["id"].as_str().unwrap_or_default().to_owned(),
                name: c["function"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                arguments: c["function"]["arguments"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            })
            .collect();
        Ok(Completion {
            content: message["content"].as_str().unwrap_or_default().to_owned(),
            reasoning: message["reasoning_content"]
                .as_str()
                .or_else(|| message["reasoning"].as_str())
                .unwrap_or_default()
                .to_owned(),
            tool_calls,
            usage: usage_of(&value),
            finish_reason: choice["finish_reason"].as_str().map(str::to_owned),
        })
    }

    /// A streamed answer as events. Errors after the first byte end the stream with an error
    /// (never retried: the caller may already have shown output).
    pub async fn chat_stream(
        &self,
        endpoint: &Endpoint,
        request: &ChatRequest,
    ) -> Result<BoxStream<'static, Result<StreamEvent, LlmError>>, LlmError> {
        let response = self
            .send(
                endpoint,
                "chat/completions",
                &Self::chat_body(endpoint, request, true),
            )
            .await?;
        let is_sse = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("text/event-stream"));
        if !is_sse {
            let text = self.error_text(response).await;
            return Err(err(
                LlmErrorKind::MalformedResponse,
                format!(
                    "expected an event stream, got `{}`",
                    text.chars().take(80).collect::<String>()
                ),
            ));
        }
        Ok(decode(response.bytes_stream(), &self.settings).boxed())
    }

    /// Embeddings of `inputs`, in order.
    pub async fn embeddings(
        &self,
        endpoint: &Endpoint,
        inputs: &[String],
    ) -> Result<Vec<Vec<f32>>, LlmError> {
        let body = json!({"model": endpoint.model, "input": inputs});
        let response = self.send(endpoint, "embeddings", &body).await?;
        let body = self
            .read_capped(response, self.settings.max_body_bytes)
            .await?;
        let value: Value = serde_json::from_slice(&body).map_err(|_| {
            err(
                LlmErrorKind::MalformedResponse,
                "the embeddings answer is not JSON",
            )
        })?;
        let mut rows: Vec<(u64, Vec<f32>)> = value["data"]
            .as_array()
            .ok_or_else(|| {
                err(
                    LlmErrorKind::MalformedResponse,
                    "the embeddings answer has no data",
                )
            })?
            .iter()
            .map(|d| {
                let vector = d["embedding"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_f64)
                    .map(|x| x as f32)
                    .collect();
                (d["index"].as_u64().unwrap_or(0), vector)
            })
            .collect();
        rows.sort_by_key(|(i, _)| *i);
        if rows.len() != inputs.len() {
            return Err(err(
                LlmErrorKind::MalformedResponse,
                "the embeddings answer has the wrong length",
            ));
        }
        Ok(rows.into_iter().map(|(_, v)| v).collect())
    }
}

/// Decodes an SSE byte stream into events, with a per-chunk read timeout, a cap per line and
/// event, and a cap on the whole stream.
fn decode<S>(
    bytes: S,
    settings: &ClientSettings,
) -> impl Stream<Item = Result<StreamEvent, LlmError>> + use<S>
where
    S: Stream<Item = Result<Bytes, reqwest::Error>> + Send + Unpin + 'static,
{
    struct State<S> {
        bytes: S,
        decoder: SseDecoder,
        pending: std::collections::VecDeque<StreamEvent>,
        finished: bool,
        received: usize,
    }
    let (timeout, max_total) = (settings.read_timeout, settings.max_stream_bytes);
    let state = State {
        bytes,
        decoder: SseDecoder::new(settings.max_event_bytes),
        pending: Default::default(),
        finished: false,
        received: 0,
    };
    futures_util::stream::unfold(state, move |mut st| async move {
        loop {
            if let Some(event) = st.pending.pop_front() {
                return Some((Ok(event), st));
            }
            if st.finished || st.decoder.done {
                return None;
            }
            match tokio::time::timeout(timeout, st.bytes.next()).await {
                Err(_) => {
                    st.finished = true;
                    return Some((Err(err(LlmErrorKind::Timeout, "the stream stalled")), st));
                }
                Ok(None) => {
                    st.finished = true;
                    return Some((
                        Err(err(
                            LlmErrorKind::MalformedResponse,
                            "the stream ended before [DONE]",
                        )),
                        st,
                    ));
                }
                Ok(Some(Err(e))) => {
                    st.finished = true;
                    let mut e = transport_error(&e);
                    e.kind = LlmErrorKind::MalformedResponse;
                    e.message = format!("the stream broke off: {}", e.message);
                    return Some((Err(e), st));
                }
                Ok(Some(Ok(chunk))) => {
                    st.received += chunk.len();
                    if st.received > max_total {
                        st.finished = true;
                        return Some((Err(too_large("the event stream", max_total)), st));
                    }
                    let payloads = match st.decoder.feed(&chunk) {
                        Ok(p) => p,
                        Err(e) => {
                            st.finished = true;
                            return Some((Err(e), st));
                        }
                    };
                    for payload in payloads {
                        let parsed = serde_json::from_str::<Value>(&payload)
                            .map_err(|_| {
                                err(
                                    LlmErrorKind::MalformedResponse,
                                    "a stream chunk is not JSON",
                                )
                            })
                            .and_then(|v| events_of(&v));
                        match parsed {
                            Ok(events) => st.pending.extend(events),
                            Err(e) => {
                                st.finished = true;
                                return Some((Err(e), st));
                            }
                        }
                    }
                }
            }
        }
    })
}

/// Assembles a whole answer from stream events (tool calls joined from their fragments).
pub async fn collect(
    mut stream: BoxStream<'static, Result<StreamEvent, LlmError>>,
) -> Result<Completion, LlmError> {
    let mut completion = Completion::default();
    let mut calls: BTreeMap<u32, ToolCall> = BTreeMap::new();
    while let Some(event) = stream.next().await {
        match event? {
            StreamEvent::Content(c) => completion.content.push_str(&c),
            StreamEvent::Reasoning(r) => completion.reasoning.push_str(&r),
            StreamEvent::ToolCall {
                index,
                id,
                name,
                arguments,
            } => {
                let call = calls.entry(index).or_insert_with(|| ToolCall {
                    id: String::new(),
                    name: String::new(),
                    arguments: String::new(),
                });
                if let Some(id) = id {
                    call.id = id;
                }
                if let Some(name) = name {
                    call.name.push_str(&name);
                }
                call.arguments.push_str(&arguments);
            }
            StreamEvent::Usage(u) => completion.usage = Some(u),
            StreamEvent::Finish(f) => completion.finish_reason = Some(f),
        }
    }
    completion.tool_calls = calls.into_values().collect();
    Ok(completion)
}

/// The decoder, exposed for the client benchmark only.
#[doc(hidden)]
pub mod bench_support {
    use super::{LlmError, SseDecoder, StreamEvent, events_of};

    /// Decodes SSE bytes into events, as the client does for each received chunk.
    pub struct Decoder(SseDecoder);

    impl Decoder {
        pub fn new() -> Self {
            Self(SseDecoder::new(
                super::ClientSettings::default().max_event_bytes,
            ))
        }

        pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<StreamEvent>, LlmError> {
            let mut out = Vec::new();
            for payload in self.0.feed(bytes)? {
                let value: serde_json::Value = serde_json::from_str(&payload).map_err(|_| {
                    super::err(
                        super::LlmErrorKind::MalformedResponse,
                        "a stream chunk is not JSON",
                    )
                })?;
                out.extend(events_of(&value)?);
            }
            Ok(out)
        }
    }

    impl Default for Decoder {
        fn default() -> Self {
            Self::new()
        }
    }
}

#[cfg(test)]
mod tests;
