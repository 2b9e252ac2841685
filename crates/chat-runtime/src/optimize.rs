//! Input optimisation: the model rewrites the user's draft into a clearer request. A model
//! failure is not an error: the answer falls back to the original text.

use futures_util::StreamExt;
use platform::Actor;
use providers::{ChatRequest, StreamEvent};
use serde_json::{Value, json};

use crate::runtime::Runtime;
use crate::service::LineStream;
use crate::{ChatError, wire};

/// What the UI sends.
#[derive(Debug, Clone)]
pub struct OptimizeRequest {
    pub current_input: String,
    /// `(role, content)` of the conversation so far (the last 10 are used).
    pub history: Vec<(String, String)>,
    pub agent_id: Option<String>,
    /// `en` or `zh`.
    pub language: String,
}

fn stamp() -> String {
    chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string()
}

fn messages(request: &OptimizeRequest) -> Vec<Value> {
    let (instruction, label) = if request.language == "zh" {
        (
            "你是提示词优化助手。把用户的草稿改写成清晰、具体、完整的请求，保留原意，不要回答它。只输出改写后的文本，使用中文。",
            "草稿",
        )
    } else {
        (
            "You improve prompts. Rewrite the user's draft into a clear, specific and complete request that keeps its intent; do not answer it. Output only the rewritten text, in English.",
            "Draft",
        )
    };
    let mut context = String::new();
    let skip = request.history.len().saturating_sub(10);
    for (role, content) in request.history.iter().skip(skip) {
        context.push_str(&format!("{role}: {content}\n"));
    }
    let mut user = String::new();
    if !context.is_empty() {
        user.push_str(&format!("<conversation>\n{context}</conversation>\n\n"));
    }
    user.push_str(&format!("{label}:\n{}", request.current_input));
    vec![
        json!({"role": "system", "content": instruction}),
        json!({"role": "user", "content": user}),
    ]
}

fn fallback(original: &str, error: &str, kind: &str) -> Value {
    json!({"success": false, "optimized_input": original, "timestamp": stamp(),
           "status": "fallback", "error_message": error, "error_type": kind})
}

impl Runtime {
    async fn optimize_endpoint(
        &self,
        actor: &Actor,
        request: &OptimizeRequest,
    ) -> Result<providers::Endpoint, ChatError> {
        if request.current_input.trim().is_empty() {
            return Err(ChatError::Invalid {
                field: "current_input",
                reason: "is required".into(),
            });
        }
        let chars = request.current_input.chars().count()
            + request
                .history
                .iter()
                .map(|(_, c)| c.chars().count())
                .sum::<usize>();
        platform::spend::check_input("current_input", chars, self.max_input_chars())?;
        let agent = match request.agent_id.as_deref() {
            Some(id) => Some(self.agents().get(actor, id).await?),
            None => None,
        };
        self.endpoint(actor, None, agent.as_ref()).await
    }

    /// `{success, optimized_input, timestamp[, status, error_message, error_type]}`.
    pub(crate) async fn optimize_once(
        &self,
        actor: &Actor,
        request: OptimizeRequest,
    ) -> Result<Value, ChatError> {
        let endpoint = self.optimize_endpoint(actor, &request).await?;
        let ask = ChatRequest {
            messages: messages(&request),
            ..ChatRequest::default()
        };
        Ok(match self.llm().chat(&endpoint, &ask).await {
            Ok(answer) if !answer.content.trim().is_empty() => json!({"success": true,
                "optimized_input": answer.content.trim(), "timestamp": stamp()}),
            Ok(_) => fallback(
                &request.current_input,
                "the model answered nothing",
                "EmptyAnswer",
            ),
            Err(e) => fallback(&request.current_input, &e.to_string(), "LlmError"),
        })
    }

    /// NDJSON: `start`, `delta`s, then `done` (or a fallback `done`).
    pub(crate) async fn optimize_streamed(
        &self,
        actor: &Actor,
        request: OptimizeRequest,
    ) -> Result<LineStream, ChatError> {
        let endpoint = self.optimize_endpoint(actor, &request).await?;
        let ask = ChatRequest {
            messages: messages(&request),
            ..ChatRequest::default()
        };
        let llm = self.llm();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            let _ = tx.send(wire::line(&json!({"type": "start", "timestamp": stamp()})));
            let done = match llm.chat_stream(&endpoint, &ask).await {
                Err(e) => fallback(&request.current_input, &e.to_string(), "LlmError"),
                Ok(mut stream) => {
                    let mut text = String::new();
                    let mut failed = None;
                    while let Some(event) = stream.next().await {
                        match event {
                            Ok(StreamEvent::Content(c)) if !c.is_empty() => {
                                text.push_str(&c);
                                let line =
                                    json!({"type": "delta", "content": c, "timestamp": stamp()});
                                if tx.send(wire::line(&line)).is_err() {
                                    return;
                                }
                            }
                            Ok(_) => {}
                            Err(e) => {
                                failed = Some(e);
                                break;
                            }
                        }
                    }
                    match failed {
                        Some(e) => fallback(&request.current_input, &e.to_string(), "LlmError"),
                        None if text.trim().is_empty() => fallback(
                            &request.current_input,
                            "the model answered nothing",
                            "EmptyAnswer",
                        ),
                        None => {
                            json!({"success": true, "optimized_input": text.trim(), "timestamp": stamp()})
                        }
                    }
                }
            };
            let mut done = done;
            done["type"] = json!("done");
            let _ = tx.send(wire::line(&done));
        });
        Ok(futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|l| (l, rx)) },
        )
        .boxed())
    }
}
