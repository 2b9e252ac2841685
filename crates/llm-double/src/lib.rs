//! A scripted OpenAI-compatible server on a loopback port, speaking the real protocol:
//! `GET /v1/models`, `POST /v1/chat/completions` (SSE when `stream` is true, JSON otherwise)
//! and `POST /v1/embeddings`. Tests queue [`Reply`]s and read back the requests received.
//! With an empty script it answers deterministically ("Hello from the double." in three
//! chunks), which is what the `sage-llm-double` binary serves for demos and benchmarks.
//!
//! This crate is test support: the server binary never depends on it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use bytes::Bytes;
use serde_json::{Value, json};

/// One tool call in a scripted reply.
#[derive(Debug, Clone)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// Token usage reported at the end of a reply.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// What the next chat completion answers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A normal answer: text split into `chunks` (for streams), optional reasoning, tool calls
    /// and usage; `delay` between stream chunks; `cut_after` ends a stream abruptly after that
    /// many chunks (no `[DONE]`, connection dropped).
    Answer {
        chunks: Vec<String>,
        reasoning: Vec<String>,
        tool_calls: Vec<ToolCall>,
        usage: Option<Usage>,
        delay: Duration,
        cut_after: Option<usize>,
    },
    /// An HTTP error with an OpenAI-style error body.
    Error { status: u16, message: String },
    /// A 200 that is not JSON (a misconfigured base URL hitting a web page).
    Html,
    /// `n` content chunks of `text` as fast as possible (benchmarks).
    Flood { n: usize, text: String },
    /// `n` content chunks, each `@<microseconds since the Unix epoch> ` taken as the chunk is
    /// handed to the connection, `delay` apart (benchmarks of relay latency).
    Stamped { n: usize, delay: Duration },
    /// An answer of about `bytes` bytes, sent in 64 KiB pieces without a length: one JSON
    /// answer (or, with `status` other than 200, an error body) whose content is that long,
    /// or for a stream one `data:` line that long.
    Huge { bytes: usize, status: u16 },
}

impl Reply {
    /// Text in the given chunks, with usage.
    pub fn text(chunks: &[&str]) -> Reply {
        Reply::Answer {
            chunks: chunks.iter().map(|c| (*c).to_owned()).collect(),
            reasoning: Vec::new(),
            tool_calls: Vec::new(),
            usage: Some(Usage {
                prompt_tokens: 11,
                completion_tokens: chunks.len() as u64,
            }),
            delay: Duration::ZERO,
            cut_after: None,
        }
    }

    pub fn error(status: u16, message: &str) -> Reply {
        Reply::Error {
            status,
            message: message.to_owned(),
        }
    }
}

#[derive(Default)]
struct State {
    script: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<(String, Value)>>,
    api_key: Option<String>,
    models: Vec<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running double.
pub struct LlmDouble {
    /// Base URL including `/v1`, e.g. `http://127.0.0.1:PORT/v1`.
    pub base_url: String,
    pub port: u16,
    state: Arc<State>,
    handle: ServerHandle,
}

impl LlmDouble {
    /// Starts on a free loopback port. `api_key`: when set, other keys get 401. `models`:
    /// the known model ids; others get 404 `model_not_found`.
    pub async fn start(api_key: Option<&str>, models: &[&str]) -> std::io::Result<LlmDouble> {
        Self::start_on(0, api_key, models).await
    }

    pub async fn start_on(
        port: u16,
        api_key: Option<&str>,
        models: &[&str],
    ) -> std::io::Result<LlmDouble> {
        let state = Arc::new(State {
            api_key: api_key.map(str::to_owned),
            models: models.iter().map(|m| (*m).to_owned()).collect(),
            ..State::default()
        });
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::JsonConfig::default().limit(16 * 1024 * 1024))
                .route("/v1/models", web::get().to(models_route))
                .route("/v1/chat/completions", web::post().to(chat_route))
                .route("/v1/embeddings", web::post().to(embeddings_route))
        })
        .workers(1)
        // Send each SSE frame at once, as a model endpoint does.
        .tcp_nodelay(true)
        .disable_signals()
        .bind(("127.0.0.1", port))?;
        let port = server.addrs().first().map(|a| a.port()).unwrap_or(port);
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(LlmDouble {
            base_url: format!("http://127.0.0.1:{port}/v1"),
            port,
            state,
            handle,
        })
    }

    /// Queues the reply of the next chat completion.
    pub fn push(&self, reply: Reply) {
        lock(&self.state.script).push_back(reply);
    }

    /// The chat-completion request bodies received so far.
    pub fn chat_requests(&self) -> Vec<Value> {
        lock(&self.state.requests)
            .iter()
            .filter(|(path, _)| path == "chat")
            .map(|(_, body)| body.clone())
            .collect()
    }

    /// Every request received: (`chat` | `embeddings` | `models`, body).
    pub fn requests(&self) -> Vec<(String, Value)> {
        lock(&self.state.requests).clone()
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

fn error_body(status: u16, message: &str, code: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or_default()).json(
        json!({
            "error": {"message": message, "type": "invalid_request_error", "code": code}
        }),
    )
}

fn authorised(req: &HttpRequest, state: &State) -> bool {
    let Some(expected) = &state.api_key else {
        return true;
    };
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {expected}"))
}

async fn models_route(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    lock(&state.requests).push(("models".into(), Value::Null));
    if !authorised(&req, &state) {
        return error_body(401, "Incorrect API key provided.", "invalid_api_key");
    }
    let data: Vec<Value> = state
        .models
        .iter()
        .map(|m| json!({"id": m, "object": "model", "created": 0, "owned_by": "double"}))
        .collect();
    HttpResponse::Ok().json(json!({"object": "list", "data": data}))
}

fn chunk(id: &str, model: &str, delta: Value, finish: Option<&str>) -> Bytes {
    let body = json!({
        "id": id, "object": "chat.completion.chunk", "created": 0, "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    });
    Bytes::from(format!("data: {body}\n\n"))
}

fn usage_json(u: Usage) -> Value {
    json!({"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
           "total_tokens": u.prompt_tokens + u.completion_tokens})
}

async fn chat_route(
    req: HttpRequest,
    state: web::Data<State>,
    body: web::Json<Value>,
) -> HttpResponse {
    let body = body.into_inner();
    lock(&state.requests).push(("chat".into(), body.clone()));
    if !authorised(&req, &state) {
        return error_body(401, "Incorrect API key provided.", "invalid_api_key");
    }
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    if !state.models.is_empty() && !state.models.contains(&model) {
        return error_body(
            404,
            &format!("The model `{model}` does not exist."),
            "model_not_found",
        );
    }
    let stream = body["stream"].as_bool().unwrap_or(false);
    let include_usage = body["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false);
    let reply = lock(&state.script)
        .pop_front()
        .unwrap_or_else(|| Reply::text(&["Hello", " from the", " double."]));
    match reply {
        Reply::Error { status, message } => error_body(status, &message, "scripted"),
        Reply::Html => HttpResponse::Ok()
            .content_type("text/html")
            .body("<html><body>Welcome to nginx!</body></html>"),
        Reply::Huge { bytes, status } => {
            let (head, tail, content_type): (&'static [u8], &'static [u8], _) = if status != 200 {
                (b"{\"error\":{\"message\":\"", b"\"}}", "application/json")
            } else if stream {
                (
                    b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"",
                    b"\"}}]}\n\ndata: [DONE]\n\n",
                    "text/event-stream",
                )
            } else {
                (
                    b"{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"",
                    b"\"},\"finish_reason\":\"stop\"}]}",
                    "application/json",
                )
            };
            const PIECE: usize = 64 * 1024;
            let piece = Bytes::from(vec![b'x'; PIECE]);
            let pieces = bytes.div_ceil(PIECE);
            let frames = futures_util::stream::iter((0..pieces + 2).map(move |i| {
                Ok::<_, actix_web::Error>(if i == 0 {
                    Bytes::from_static(head)
                } else if i <= pieces {
                    piece.clone()
                } else {
                    Bytes::from_static(tail)
                })
            }));
            HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or_default())
                .content_type(content_type)
                .streaming(frames)
        }
        Reply::Flood { n, text } => {
            let id = "chatcmpl-flood".to_owned();
            let frames = futures_util::stream::iter((0..=n).map(move |i| {
                let frame = if i < n {
                    chunk(&id, &model, json!({"content": text}), None)
                } else {
                    let mut end = chunk(&id, &model, json!({}), Some("stop")).to_vec();
                    end.extend_from_slice(b"data: [DONE]\n\n");
                    Bytes::from(end)
                };
                Ok::<_, actix_web::Error>(frame)
            }));
            HttpResponse::Ok()
                .content_type("text/event-stream")
                .streaming(frames)
        }
        Reply::Stamped { n, delay } => {
            let id = "chatcmpl-stamped".to_owned();
            let frames = futures_util::stream::unfold(0usize, move |i| {
                let (id, model) = (id.clone(), model.clone());
                async move {
                    if i > n {
                        return None;
                    }
                    if i > 0 && !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    let frame = if i < n {
                        let micros = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_micros());
                        chunk(&id, &model, json!({"content": format!("@{micros} ")}), None)
                    } else {
                        let mut end = chunk(&id, &model, json!({}), Some("stop")).to_vec();
                        end.extend_from_slice(b"data: [DONE]\n\n");
                        Bytes::from(end)
                    };
                    Some((Ok::<_, actix_web::Error>(frame), i + 1))
                }
            });
            HttpResponse::Ok()
                .content_type("text/event-stream")
                .streaming(frames)
        }
        Reply::Answer {
            chunks,
            reasoning,
            tool_calls,
            usage,
            delay,
            cut_after,
        } if stream => {
            let id = "chatcmpl-double".to_owned();
            let mut frames: Vec<Bytes> = Vec::new();
            frames.push(chunk(
                &id,
                &model,
                json!({"role": "assistant", "content": ""}),
                None,
            ));
            for r in &reasoning {
                frames.push(chunk(&id, &model, json!({"reasoning_content": r}), None));
            }
            for c in &chunks {
                frames.push(chunk(&id, &model, json!({"content": c}), None));
            }
            for (index, call) in tool_calls.iter().enumerate() {
                frames.push(chunk(
                    &id,
                    &model,
                    json!({"tool_calls": [{"index": index, "id": call.id, "type": "function",
                    "function": {"name": call.name, "arguments": ""}}]}),
                    None,
                ));
                // Arguments arrive in two pieces, as real servers send them.
                let mid = call.arguments.len() / 2;
                let (a, b) = call.arguments.split_at(
                    call.arguments
                        .char_indices()
                        .map(|(i, _)| i)
                        .find(|i| *i >= mid)
                        .unwrap_or(0),
                );
                for part in [a, b] {
                    frames.push(chunk(
                        &id,
                        &model,
                        json!({"tool_calls": [{"index": index, "function": {"arguments": part}}]}),
                        None,
                    ));
                }
            }
            let finish = if tool_calls.is_empty() {
                "stop"
            } else {
                "tool_calls"
            };
            frames.push(chunk(&id, &model, json!({}), Some(finish)));
            if include_usage && let Some(u) = usage {
                let body = json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": model,
                                  "choices": [], "usage": usage_json(u)});
                frames.push(Bytes::from(format!("data: {body}\n\n")));
            }
            frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
            let total = frames.len();
            let cut = cut_after.map(|n| n.min(total));
            let stream = futures_util::stream::unfold(0usize, move |i| {
                let frames = frames.clone();
                async move {
                    if cut == Some(i) {
                        // Let the frames so far reach the client, then drop the connection.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        return Some((
                            Err(actix_web::error::ErrorInternalServerError("cut")),
                            usize::MAX,
                        ));
                    }
                    if i >= frames.len() {
                        return None;
                    }
                    if !delay.is_zero() && i > 0 {
                        tokio::time::sleep(delay).await;
                    }
                    Some((Ok::<_, actix_web::Error>(frames[i].clone()), i + 1))
                }
            });
            HttpResponse::Ok()
                .content_type("text/event-stream")
                .streaming(stream)
        }
        Reply::Answer {
            chunks,
            reasoning,
            tool_calls,
            usage,
            delay,
            ..
        } => {
            // A slow model: the whole answer arrives after `delay`.
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let calls: Vec<Value> = tool_calls
                .iter()
                .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
                .collect();
            let mut message = json!({"role": "assistant", "content": chunks.concat()});
            if !reasoning.is_empty() {
                message["reasoning_content"] = json!(reasoning.concat());
            }
            if !calls.is_empty() {
                message["tool_calls"] = json!(calls);
            }
            let finish = if calls.is_empty() {
                "stop"
            } else {
                "tool_calls"
            };
            let mut answer = json!({
                "id": "chatcmpl-double", "object": "chat.completion", "created": 0, "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            });
            if let Some(u) = usage {
                answer["usage"] = usage_json(u);
            }
            HttpResponse::Ok().json(answer)
        }
    }
}

/// Deterministic embeddings: 8 dimensions derived from the bytes of the input.
pub fn embed(text: &str) -> Vec<f32> {
    let mut v = [0f32; 8];
    for (i, b) in text.bytes().enumerate() {
        v[i % 8] += f32::from(b) / 255.0;
    }
    let norm = v
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::EPSILON);
    v.iter().map(|x| x / norm).collect()
}

async fn embeddings_route(
    req: HttpRequest,
    state: web::Data<State>,
    body: web::Json<Value>,
) -> HttpResponse {
    let body = body.into_inner();
    lock(&state.requests).push(("embeddings".into(), body.clone()));
    if !authorised(&req, &state) {
        return error_body(401, "Incorrect API key provided.", "invalid_api_key");
    }
    let inputs: Vec<String> = match &body["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => {
            return error_body(
                400,
                "input must be a string or an array of strings",
                "invalid_input",
            );
        }
    };
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| json!({"object": "embedding", "index": i, "embedding": embed(text)}))
        .collect();
    let tokens: usize = inputs.iter().map(|t| t.split_whitespace().count()).sum();
    HttpResponse::Ok().json(json!({
        "object": "list", "data": data, "model": body["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
}
