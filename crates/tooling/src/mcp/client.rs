//! A Model Context Protocol client over the streamable HTTP transport (JSON-RPC requests
//! POSTed to the server's endpoint, answers as JSON or as a server-sent event stream) and
//! the legacy HTTP+SSE transport (a `GET` event stream names where to POST; answers come on
//! the stream). Each operation opens its own session (`initialize`,
//! `notifications/initialized`), so no state is kept between calls and any replica can make
//! them. Every request passes the outbound policy; answers are capped.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use platform::outbound::{OutboundPolicy, http_client_builder};
use serde_json::{Value, json};

use super::McpError;

/// The protocol revision asked for.
pub const PROTOCOL_VERSION: &str = "2025-06-18";
/// The largest answer (or event stream) read.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;
/// Pages of `tools/list` followed, at most.
const MAX_PAGES: usize = 20;

/// Where a server is and how to authenticate to it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The streamable HTTP endpoint, or with `sse` the event stream's address.
    pub url: String,
    /// Sent as `Authorization: Bearer`.
    pub api_key: Option<String>,
    /// The legacy HTTP+SSE transport.
    pub sse: bool,
}

/// A tool a server offers.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ToolDef {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The JSON schema of its arguments.
    #[serde(default)]
    pub input_schema: Value,
}

/// The MCP client (cheap to clone).
#[derive(Clone)]
pub struct McpClient {
    http: reqwest::Client,
    policy: Arc<OutboundPolicy>,
}

/// Server-sent events from a response body, one at a time (`event` name, `data`).
struct EventReader {
    stream: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    pending: Vec<u8>,
    read: usize,
}

struct Session<'a> {
    client: &'a McpClient,
    endpoint: &'a Endpoint,
    /// Streamable HTTP: the session id the server gave.
    id: Option<String>,
    /// HTTP+SSE: where requests go, and the stream their answers come on.
    sse: Option<(String, EventReader)>,
    next_id: u64,
}

fn transport(e: reqwest::Error) -> McpError {
    McpError::Server(e.without_url().to_string())
}

impl EventReader {
    fn new(response: reqwest::Response) -> Self {
        Self {
            stream: response.bytes_stream().boxed(),
            pending: Vec::new(),
            read: 0,
        }
    }

    /// The next complete event; `None` when the stream ends.
    async fn next(&mut self) -> Result<Option<(String, String)>, McpError> {
        let (mut event, mut data) = (String::new(), String::new());
        loop {
            while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                let line = line.trim_end_matches(['\n', '\r']);
                if line.is_empty() {
                    if !data.is_empty() || !event.is_empty() {
                        return Ok(Some((event, data)));
                    }
                } else if let Some(rest) = line.strip_prefix("data:") {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
                } else if let Some(rest) = line.strip_prefix("event:") {
                    event = rest.trim().to_owned();
                }
            }
            match self.stream.next().await {
                Some(chunk) => {
                    let chunk = chunk.map_err(transport)?;
                    self.read += chunk.len();
                    if self.read > MAX_ANSWER_BYTES {
                        return Err(McpError::Server("the event stream is too long".into()));
                    }
                    self.pending.extend_from_slice(&chunk);
                }
                None if !data.is_empty() => return Ok(Some((event, data))),
                None => return Ok(None),
            }
        }
    }

    /// Events until the JSON-RPC answer to `id` (notifications and requests from the server
    /// before it are skipped).
    async fn answer(&mut self, id: u64) -> Result<Value, McpError> {
        while let Some((_, data)) = self.next().await? {
            if let Ok(message) = serde_json::from_str::<Value>(&data)
                && message["id"].as_u64() == Some(id)
                && (message.get("result").is_some() || message.get("error").is_some())
            {
                return Ok(message);
            }
        }
        Err(McpError::Server(
            "the event stream ended without an answer".into(),
        ))
    }
}

impl McpClient {
    pub fn new(policy: Arc<OutboundPolicy>, timeout: Duration) -> Result<Self, String> {
        let http = http_client_builder(policy.clone())
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self { http, policy })
    }

    async fn open<'a>(&'a self, endpoint: &'a Endpoint) -> Result<Session<'a>, McpError> {
        self.policy
            .check_url(&endpoint.url)
            .await
            .map_err(McpError::Refused)?;
        let sse = if endpoint.sse {
            Some(self.connect_sse(endpoint).await?)
        } else {
            None
        };
        let mut session = Session {
            client: self,
            endpoint,
            id: None,
            sse,
            next_id: 0,
        };
        let init = session
            .request(
                "initialize",
                json!({"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                       "clientInfo": {"name": "sage-server", "version": env!("CARGO_PKG_VERSION")}}),
            )
            .await?;
        if init.get("protocolVersion").is_none() {
            return Err(McpError::Server(
                "the server's initialize answer has no protocolVersion".into(),
            ));
        }
        session.notify("notifications/initialized").await?;
        Ok(session)
    }

    /// Opens the event stream of the HTTP+SSE transport and reads where to post requests
    /// (the `endpoint` event; it must stay on the stream's origin).
    async fn connect_sse(&self, endpoint: &Endpoint) -> Result<(String, EventReader), McpError> {
        let mut request = self
            .http
            .get(&endpoint.url)
            .header("accept", "text/event-stream");
        if let Some(key) = endpoint.api_key.as_deref().filter(|k| !k.is_empty()) {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(transport)?;
        if !response.status().is_success() {
            return Err(McpError::Server(format!(
                "the event stream answered HTTP {}",
                response.status().as_u16()
            )));
        }
        let base = response.url().clone();
        let mut events = EventReader::new(response);
        let mut post = None;
        while let Some((event, data)) = events.next().await? {
            if event == "endpoint" {
                post = Some(data);
                break;
            }
        }
        let post = post
            .and_then(|p| base.join(p.trim()).ok())
            .ok_or_else(|| McpError::Server("the event stream named no endpoint".into()))?;
        if post.origin() != base.origin() {
            return Err(McpError::Server(
                "the event stream named an endpoint on another origin".into(),
            ));
        }
        Ok((post.to_string(), events))
    }

    /// Every tool the server offers.
    pub async fn list_tools(&self, endpoint: &Endpoint) -> Result<Vec<ToolDef>, McpError> {
        let mut session = self.open(endpoint).await?;
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let page = session.request("tools/list", params).await?;
            for tool in page["tools"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                let Some(name) = tool["name"].as_str() else {
                    continue;
                };
                tools.push(ToolDef {
                    name: name.to_owned(),
                    description: tool["description"].as_str().unwrap_or_default().to_owned(),
                    input_schema: tool
                        .get("inputSchema")
                        .cloned()
                        .unwrap_or_else(|| json!({"type": "object"})),
                });
            }
            cursor = page["nextCursor"].as_str().map(str::to_owned);
            if cursor.is_none() {
                break;
            }
        }
        session.close().await;
        Ok(tools)
    }

    /// Calls one tool; its `result` (`content`, `isError`, …).
    pub async fn call_tool(
        &self,
        endpoint: &Endpoint,
        name: &str,
        arguments: Value,
    ) -> Result<Value, McpError> {
        let mut session = self.open(endpoint).await?;
        let result = session
            .request("tools/call", json!({"name": name, "arguments": arguments}))
            .await;
        session.close().await;
        result
    }
}

impl Session<'_> {
    fn post(&self, body: &Value) -> reqwest::RequestBuilder {
        let url = match &self.sse {
            Some((post, _)) => post.as_str(),
            None => self.endpoint.url.as_str(),
        };
        let mut request = self
            .client
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_string());
        if let Some(id) = &self.id {
            request = request
                .header("mcp-session-id", id)
                .header("mcp-protocol-version", PROTOCOL_VERSION);
        }
        if let Some(key) = self.endpoint.api_key.as_deref().filter(|k| !k.is_empty()) {
            request = request.bearer_auth(key);
        }
        request
    }

    async fn notify(&mut self, method: &str) -> Result<(), McpError> {
        let response = self
            .post(&json!({"jsonrpc": "2.0", "method": method}))
            .send()
            .await
            .map_err(transport)?;
        if !response.status().is_success() {
            return Err(McpError::Server(format!(
                "{method} answered HTTP {}",
                response.status().as_u16()
            )));
        }
        Ok(())
    }

    async fn request(&mut self, method: &str, params: Value) -> Result<Value, McpError> {
        self.next_id += 1;
        let id = self.next_id;
        let response = self
            .post(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        if !status.is_success() {
            return Err(McpError::Server(format!(
                "{method} answered HTTP {}",
                status.as_u16()
            )));
        }
        if let Some((_, events)) = self.sse.as_mut() {
            // HTTP+SSE: the POST is only accepted; the answer comes on the stream.
            let message = events.answer(id).await?;
            return answer_of(method, message);
        }
        if self.id.is_none() {
            self.id = response
                .headers()
                .get("mcp-session-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
        }
        let is_stream = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let message = if is_stream {
            EventReader::new(response).answer(id).await?
        } else {
            let body = read_capped(response).await?;
            serde_json::from_slice::<Value>(&body)
                .map_err(|_| McpError::Server(format!("{method} answered no JSON")))?
        };
        if message["id"].as_u64() != Some(id) {
            return Err(McpError::Server(format!(
                "{method}: no answer to the request"
            )));
        }
        answer_of(method, message)
    }

    /// Ends the session (best effort; an SSE session ends when its stream is dropped).
    async fn close(self) {
        if let Some(id) = &self.id {
            let _ = self
                .client
                .http
                .delete(&self.endpoint.url)
                .header("mcp-session-id", id)
                .header("mcp-protocol-version", PROTOCOL_VERSION)
                .send()
                .await;
        }
    }
}

/// The `result` of a JSON-RPC answer, or its error.
fn answer_of(method: &str, message: Value) -> Result<Value, McpError> {
    if let Some(error) = message.get("error") {
        return Err(McpError::Server(format!(
            "{method}: {}",
            error["message"].as_str().unwrap_or("error")
        )));
    }
    Ok(message.get("result").cloned().unwrap_or(Value::Null))
}

async fn read_capped(response: reqwest::Response) -> Result<Vec<u8>, McpError> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(transport)?;
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(McpError::Server("the answer is too large".into()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
