//! One run of the agent loop: stream the model's answer, run its tool calls, feed the results
//! back, until a final answer or `max_loop_count`. Every line goes to the replay log before
//! it is sent; messages are stored as each step completes; usage is one line and one row.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use conversations::{StoredMessage, UsageRecord};
use futures_util::StreamExt;
use providers::{ChatRequest, LlmError, StreamEvent, Usage};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;
use tooling::{Cancel, Progress, ProgressNote, ToolContext};

use crate::runtime::{Inner, Prepared};
use crate::service::Source;
use crate::wire::{
    self, AgentLine, FunctionDelta, LoopStopMetadata, StepInfo, StepUsage, StreamEnd, TokenUsage,
    ToolCallDelta, ToolProgress, TotalInfo, UsageMetadata,
};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Done,
    Failed,
    Interrupted,
}

struct Emitter {
    inner: Arc<Inner>,
    session_id: String,
    source: Source,
    tx: UnboundedSender<Vec<u8>>,
    /// Whether lines go to the replay log here; a sub-agent's go to its parent's emitter
    /// (`tx`), which logs and counts them.
    logs: bool,
    count: u64,
    /// The store of the run's first messages, while it is under way.
    storing: Option<tokio::task::JoinHandle<()>>,
    /// The text of the step that ended the run without tool calls.
    answer: String,
    /// Why the model failed, when it did.
    failure: Option<String>,
}

impl Emitter {
    /// The run's emitter; `logs` is false for a sub-agent, whose lines go to its parent's.
    fn new(inner: &Arc<Inner>, p: &Prepared, tx: UnboundedSender<Vec<u8>>, logs: bool) -> Self {
        Self {
            inner: inner.clone(),
            session_id: p.session_id.clone(),
            source: p.source,
            tx,
            logs,
            count: 0,
            storing: None,
            answer: String::new(),
            failure: None,
        }
    }

    /// Waits for the store under way, if any.
    async fn stored(&mut self) {
        if let Some(storing) = self.storing.take()
            && let Err(e) = storing.await
        {
            tracing::error!(session_id = %self.session_id, error = %e, "messages could not be stored");
        }
    }

    /// Appends to the replay log, then sends.
    async fn emit(&mut self, value: &impl Serialize) {
        self.emit_line(wire::line(value)).await;
    }

    async fn emit_line(&mut self, bytes: Vec<u8>) {
        if self.logs
            && let Err(e) = self.inner.hub.append(&self.session_id, &bytes).await
        {
            tracing::warn!(session_id = %self.session_id, error = %e, "a line could not be logged");
        }
        self.count += 1;
        let _ = self.tx.send(bytes);
    }

    /// A tool's progress note: counted, sent on `/api/stream` only, never logged (so a
    /// resumed client's `last_index` counts what the other routes send). A sub-agent's
    /// tools report none.
    fn progress(&mut self, note: &ProgressNote) {
        if !self.logs {
            return;
        }
        self.count += 1;
        if self.source == Source::Stream {
            let _ = self.tx.send(wire::line(&ToolProgress {
                kind: "tool_progress",
                session_id: &self.session_id,
                tool_call_id: &note.tool_call_id,
                text: &note.text,
                stream: note.stream,
                closed: note.closed,
                ts: wire::now(),
            }));
        }
    }
}

#[derive(Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

pub(crate) struct Step {
    model: String,
    usage: Usage,
}

fn stored(
    message_id: &str,
    role: &str,
    kind: &str,
    content: Value,
    agent_name: &str,
) -> StoredMessage {
    StoredMessage {
        message_id: message_id.to_owned(),
        role: role.to_owned(),
        message_type: kind.to_owned(),
        content,
        reasoning_content: None,
        tool_calls: None,
        tool_call_id: None,
        agent_name: Some(agent_name.to_owned()),
        metadata: json!({}),
        created_at: Utc::now(),
    }
}

/// Runs to the end, then releases the session. Never panics the caller: every failure
/// becomes lines.
pub(crate) async fn drive(inner: Arc<Inner>, p: Prepared, tx: UnboundedSender<Vec<u8>>) {
    let (cancel_tx, cancel) = Cancel::new();
    let watchdog = tokio::spawn(watch(
        inner.clone(),
        p.session_id.clone(),
        p.run_id.clone(),
        p.source,
        tx.clone(),
        cancel_tx,
    ));
    let started_at = Utc::now();
    let mut out = Emitter::new(&inner, &p, tx, true);
    let mut steps = Vec::new();
    let end = run_loop(&inner, &p, &mut out, &cancel, &mut steps).await;
    out.stored().await;
    watchdog.abort();

    emit_usage(&mut out, &p, &steps).await;
    out.emit(&StreamEnd::new(
        &p.session_id,
        out.count,
        end == End::Interrupted,
    ))
    .await;
    record_usage(&inner, &p, &steps, started_at).await;
    if let Err(e) = inner
        .hub
        .finish(&p.session_id, &p.run_id, inner.settings.log_ttl)
        .await
    {
        tracing::warn!(session_id = %p.session_id, error = %e, "the run could not be closed cleanly");
    }
    tracing::info!(session_id = %p.session_id, end = ?end, lines = out.count,
        plan_requested = ?p.controls.plan, "run finished");
}

/// Raises `cancel` when an interrupt is requested (any replica) or, for `/api/chat` and
/// `/api/stream`, when the client has gone and nobody resumed the run within the grace period
/// (`SAGE_STREAM_DISCONNECT_GRACE_SECS`; a resumed run then goes on to its end like a
/// web-stream); renews the session lease meanwhile.
async fn watch(
    inner: Arc<Inner>,
    session_id: String,
    run_id: String,
    source: Source,
    tx: UnboundedSender<Vec<u8>>,
    cancel: tokio::sync::watch::Sender<bool>,
) {
    let every = inner.settings.poll_interval;
    let renew_every = (crate::hub::LOCK_LEASE.as_millis() / 3 / every.as_millis().max(1)).max(1);
    let mut tick: u128 = 0;
    let mut adopted = source.survives_client();
    let mut gone_since: Option<tokio::time::Instant> = None;
    loop {
        tokio::time::sleep(every).await;
        tick += 1;
        if !adopted {
            adopted = inner
                .hub
                .was_resumed(&session_id, &run_id)
                .await
                .unwrap_or(false);
        }
        let gone = !adopted
            && tx.is_closed()
            && gone_since
                .get_or_insert_with(tokio::time::Instant::now)
                .elapsed()
                >= inner.settings.disconnect_grace;
        let asked = inner
            .hub
            .interrupt_requested(&session_id, &run_id)
            .await
            .unwrap_or(false);
        if gone || asked {
            let _ = cancel.send(true);
            return;
        }
        if tick.is_multiple_of(renew_every) {
            let _ = inner.hub.renew(&session_id).await;
        }
    }
}

/// Stores messages after the run's earlier ones (a store still under way is waited for).
async fn persist(inner: &Inner, p: &Prepared, out: &mut Emitter, messages: Vec<StoredMessage>) {
    out.stored().await;
    store(inner, &p.actor, &p.session_id, tagged(p, messages)).await;
}

/// A sub-agent's messages name its child session.
fn tagged(p: &Prepared, mut messages: Vec<StoredMessage>) -> Vec<StoredMessage> {
    if let Some(child) = &p.sub_session {
        for m in &mut messages {
            m.metadata["sub_session_id"] = json!(child);
        }
    }
    messages
}

async fn store(
    inner: &Inner,
    actor: &platform::Actor,
    session_id: &str,
    messages: Vec<StoredMessage>,
) {
    if messages.is_empty() {
        return;
    }
    if let Err(e) = inner
        .conversations
        .append(actor, session_id, messages)
        .await
    {
        tracing::error!(session_id = %session_id, error = %e, "messages could not be stored");
    }
}

async fn run_loop(
    inner: &Arc<Inner>,
    p: &Prepared,
    out: &mut Emitter,
    cancel: &Cancel,
    steps: &mut Vec<Step>,
) -> End {
    let agent = p.line_agent_name.as_str();
    let sid = p.line_session();
    let mut messages = p.messages.clone();
    if p.max_loop == 0 {
        persist(inner, p, out, p.new_messages.clone()).await;
    }
    for step in 0..p.max_loop {
        if cancel.is_cancelled() {
            if step == 0 {
                persist(inner, p, out, p.new_messages.clone()).await;
            }
            return End::Interrupted;
        }
        let guidance = if p.sub_session.is_none() {
            drain_guidance(inner, p, out, &mut messages).await
        } else {
            Vec::new()
        };
        let mut request = ChatRequest {
            messages: messages.clone(),
            tools: p.tool_schemas.clone(),
            ..ChatRequest::default()
        };
        if let Some(effort) = p.controls.reasoning_effort() {
            request
                .extra
                .insert("reasoning_effort".into(), json!(effort));
        }
        let opening = async {
            tokio::select! {
                biased;
                () = cancel.cancelled() => None,
                r = inner.llm.chat_stream(&p.endpoint, &request) => Some(r),
            }
        };
        if step == 0 {
            // The run's new messages (and guidance taken at its start) are stored beside the
            // first step: the model call and its first lines do not wait for the write, and
            // every later store waits for it, so the stored order is the streamed one.
            let mut first = tagged(p, p.new_messages.clone());
            first.extend(guidance);
            let (inner, actor, session_id) = (inner.clone(), p.actor.clone(), p.session_id.clone());
            out.storing = Some(tokio::spawn(async move {
                store(&inner, &actor, &session_id, first).await;
            }));
        } else {
            persist(inner, p, out, guidance).await;
        }
        let opened = opening.await;
        let Some(opened) = opened else {
            return End::Interrupted;
        };
        let mut stream = match opened {
            Ok(s) => s,
            Err(e) => {
                provider_failure(inner, p, out, &e).await;
                return End::Failed;
            }
        };
        let (text_id, call_id, reasoning_id) = (
            platform::ids::new_uuid(),
            platform::ids::new_uuid(),
            platform::ids::new_uuid(),
        );
        let mut text = String::new();
        let mut reasoning = String::new();
        let mut calls: BTreeMap<u32, PartialCall> = BTreeMap::new();
        let mut usage = None;
        let mut failure: Option<LlmError> = None;
        let mut interrupted = false;
        loop {
            let event = tokio::select! {
                biased;
                () = cancel.cancelled() => { interrupted = true; break; }
                e = stream.next() => e,
            };
            match event {
                None => break,
                Some(Err(e)) => {
                    failure = Some(e);
                    break;
                }
                Some(Ok(StreamEvent::Content(c))) => {
                    if c.is_empty() {
                        continue;
                    }
                    text.push_str(&c);
                    out.emit(&AgentLine {
                        role: "assistant",
                        content: Some(json!(c)),
                        reasoning_content: None,
                        tool_calls: None,
                        message_id: &text_id,
                        tool_call_id: None,
                        kind: "do_subtask_result",
                        timestamp: wire::now(),
                        agent_name: Some(agent),
                        metadata: json!({}),
                        session_id: sid,
                    })
                    .await;
                }
                Some(Ok(StreamEvent::Reasoning(r))) => {
                    if r.is_empty() {
                        continue;
                    }
                    reasoning.push_str(&r);
                    out.emit(&AgentLine {
                        role: "assistant",
                        content: Some(json!("")),
                        reasoning_content: Some(&r),
                        tool_calls: None,
                        message_id: &reasoning_id,
                        tool_call_id: None,
                        kind: "reasoning_content",
                        timestamp: wire::now(),
                        agent_name: Some(agent),
                        metadata: json!({}),
                        session_id: sid,
                    })
                    .await;
                }
                Some(Ok(StreamEvent::ToolCall {
                    index,
                    id,
                    name,
                    arguments,
                })) => {
                    let call = calls.entry(index).or_default();
                    if let Some(id) = &id {
                        call.id = id.clone();
                    }
                    if let Some(name) = &name {
                        call.name.push_str(name);
                    }
                    call.arguments.push_str(&arguments);
                    let first = id.is_some();
                    out.emit(&AgentLine {
                        role: "assistant",
                        content: None,
                        reasoning_content: None,
                        tool_calls: Some(vec![ToolCallDelta {
                            id,
                            kind: first.then_some("function"),
                            index,
                            function: FunctionDelta { name, arguments },
                        }]),
                        message_id: &call_id,
                        tool_call_id: None,
                        kind: "tool_call",
                        timestamp: wire::now(),
                        agent_name: Some(agent),
                        metadata: json!({}),
                        session_id: sid,
                    })
                    .await;
                }
                Some(Ok(StreamEvent::Usage(u))) => usage = Some(u),
                Some(Ok(StreamEvent::Finish(_))) => {}
            }
        }
        steps.push(Step {
            model: p.endpoint.model.clone(),
            usage: usage.unwrap_or_default(),
        });

        // Store what the step produced (a cut step keeps its text, not its half calls).
        let mut produced = Vec::new();
        if !reasoning.is_empty() {
            let mut m = stored(
                &reasoning_id,
                "assistant",
                "reasoning_content",
                json!(""),
                agent,
            );
            m.reasoning_content = Some(reasoning.clone());
            produced.push(m);
        }
        if !text.is_empty() {
            produced.push(stored(
                &text_id,
                "assistant",
                "do_subtask_result",
                json!(text),
                agent,
            ));
        }
        let complete = failure.is_none() && !interrupted;
        let calls: Vec<PartialCall> = if complete {
            calls
                .into_values()
                .map(|mut c| {
                    if c.id.is_empty() {
                        c.id = format!("call_{}", platform::ids::new_hex_id());
                    }
                    // A delegation's tasks get their child sessions now, so the stored call
                    // (what a reloaded view and the model's history show) names them.
                    if let Some(d) = &p.delegation
                        && let Some(settled) = d.with_sessions(&c.name, &c.arguments, &p.session_id)
                    {
                        c.arguments = settled;
                    }
                    c
                })
                .collect()
        } else {
            Vec::new()
        };
        let call_values: Vec<Value> = calls
            .iter()
            .map(|c| {
                json!({"id": c.id, "type": "function",
                            "function": {"name": c.name, "arguments": c.arguments}})
            })
            .collect();
        if !calls.is_empty() {
            let mut m = stored(&call_id, "assistant", "tool_call", json!(""), agent);
            m.tool_calls = Some(json!(call_values));
            produced.push(m);
        }
        persist(inner, p, out, produced).await;
        if let Some(e) = failure {
            provider_failure(inner, p, out, &e).await;
            return End::Failed;
        }
        if interrupted {
            return End::Interrupted;
        }
        if calls.is_empty() {
            out.answer = text;
            return End::Done;
        }

        messages.push(json!({"role": "assistant", "content": text, "tool_calls": call_values}));
        let results = run_tools(inner, p, out, cancel, &calls, steps).await;
        let ended_turn = results
            .iter()
            .any(|o| !o.is_error && o.content["should_end"] == true);
        let mut produced = Vec::new();
        for (call, output) in calls.iter().zip(results) {
            let content = wire::to_py_json(&output.content);
            let result_id = platform::ids::new_uuid();
            let metadata = json!({"tool_execution_status":
                if output.is_error { "error" } else { "success" }});
            out.emit(&AgentLine {
                role: "tool",
                content: Some(json!(content)),
                reasoning_content: None,
                tool_calls: None,
                message_id: &result_id,
                tool_call_id: Some(&call.id),
                kind: "tool_call_result",
                timestamp: wire::now(),
                agent_name: Some(agent),
                metadata: metadata.clone(),
                session_id: sid,
            })
            .await;
            let mut m = stored(
                &result_id,
                "tool",
                "tool_call_result",
                json!(content),
                agent,
            );
            m.tool_call_id = Some(call.id.clone());
            m.metadata = metadata;
            produced.push(m);
            messages.push(json!({"role": "tool", "tool_call_id": call.id, "content": content}));
        }
        persist(inner, p, out, produced).await;
        if cancel.is_cancelled() {
            return End::Interrupted;
        }
        // A tool that hands the turn to the user (a questionnaire) ends the run.
        if ended_turn {
            return End::Done;
        }
        if step + 1 == p.max_loop {
            let notice_id = platform::ids::new_uuid();
            let text = crate::prompt::max_loop_text(&p.language, p.max_loop);
            let metadata = LoopStopMetadata {
                runtime_generated: true,
                runtime_notice: "max_loop_questionnaire",
                stop_reason: "max_loop_count",
                needs_user_input: true,
                max_loop_count: p.max_loop,
            };
            out.emit(&AgentLine {
                role: "assistant",
                content: Some(json!(text)),
                reasoning_content: None,
                tool_calls: None,
                message_id: &notice_id,
                tool_call_id: None,
                kind: "assistant_text",
                timestamp: wire::now(),
                agent_name: Some(agent),
                metadata: metadata.clone(),
                session_id: sid,
            })
            .await;
            let mut m = stored(
                &notice_id,
                "assistant",
                "assistant_text",
                json!(text),
                agent,
            );
            m.metadata = serde_json::to_value(&metadata).unwrap_or_default();
            persist(inner, p, out, vec![m]).await;
        }
    }
    End::Done
}

/// Guidance queued since the last step joins the conversation as user messages, streamed
/// back as `user_input` lines with `metadata.guidance_id`; the messages to store.
async fn drain_guidance(
    inner: &Inner,
    p: &Prepared,
    out: &mut Emitter,
    messages: &mut Vec<Value>,
) -> Vec<StoredMessage> {
    let items = match crate::guidance::drain(inner.hub.kv().as_ref(), &p.session_id).await {
        Ok(items) => items,
        Err(e) => {
            tracing::warn!(session_id = %p.session_id, error = %e, "guidance could not be read");
            return Vec::new();
        }
    };
    let mut produced = Vec::new();
    for g in items {
        let mut metadata = g.metadata.clone();
        metadata["guidance_id"] = json!(g.guidance_id);
        metadata["injected"] = json!(true);
        out.emit(&AgentLine {
            role: "user",
            content: Some(json!(g.content)),
            reasoning_content: None,
            tool_calls: None,
            message_id: &g.guidance_id,
            tool_call_id: None,
            kind: "user_input",
            timestamp: wire::now(),
            agent_name: None,
            metadata: metadata.clone(),
            session_id: &p.session_id,
        })
        .await;
        messages.push(json!({"role": "user", "content": g.content}));
        let mut m = stored(
            &g.guidance_id,
            "user",
            "user_input",
            json!(g.content),
            &p.line_agent_name,
        );
        m.agent_name = None;
        m.metadata = metadata;
        produced.push(m);
    }
    produced
}

/// Independent calls run concurrently (at most `tool_concurrency` at once), each within the
/// registry's time limit and output cap; results come back in call order. Delegation calls
/// run sub-agents, whose lines are relayed as they come and whose steps join `steps`.
async fn run_tools(
    inner: &Arc<Inner>,
    p: &Prepared,
    out: &mut Emitter,
    cancel: &Cancel,
    calls: &[PartialCall],
    steps: &mut Vec<Step>,
) -> Vec<tooling::ToolOutput> {
    let (notes_tx, mut notes) = tokio::sync::mpsc::unbounded_channel::<ProgressNote>();
    let (relay_tx, mut relay) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let ctx = ToolContext {
        workspace: p.workspace.clone(),
        // A sub-agent keeps its own todo list.
        session_id: p.line_session().to_owned(),
        user_id: p.actor.user_id.clone(),
        agent_id: p.agent_id.clone(),
        scheduled: p.source == Source::Task,
        language: p.language.clone(),
        kv: inner.hub.kv(),
        cancel: cancel.clone(),
        progress: Progress::silent(),
    };
    let limit = Arc::new(tokio::sync::Semaphore::new(
        inner.settings.tool_concurrency.max(1),
    ));
    let runs: Vec<_> = calls
        .iter()
        .map(|call| -> ToolRun<'_> {
            if let Some(d) = p.delegation.as_ref().filter(|d| d.offers(&call.name)) {
                let relay = relay_tx.clone();
                return Box::pin(async move {
                    d.call(inner, p, &call.name, &call.arguments, relay, cancel)
                        .await
                });
            }
            let (mut ctx, limit) = (ctx.clone(), limit.clone());
            ctx.progress = Progress::new(notes_tx.clone(), call.id.clone());
            Box::pin(async move {
                let _permit = limit.acquire().await;
                let output = p.tools.run(&ctx, &call.name, &call.arguments).await;
                ctx.progress.close();
                (output, Vec::new())
            })
        })
        .collect();
    drop((notes_tx, relay_tx));
    let all = futures_util::future::join_all(runs);
    tokio::pin!(all);
    // Notes and sub-agents' lines are relayed while the calls run; each precedes its call's
    // result.
    let results = loop {
        tokio::select! {
            results = &mut all => break results,
            Some(note) = notes.recv() => out.progress(&note),
            Some(line) = relay.recv() => out.emit_line(line).await,
        }
    };
    while let Ok(note) = notes.try_recv() {
        out.progress(&note);
    }
    while let Ok(line) = relay.try_recv() {
        out.emit_line(line).await;
    }
    results
        .into_iter()
        .map(|(output, more)| {
            steps.extend(more);
            output
        })
        .collect()
}

/// One call of a step: its output, and the model steps of any sub-agents it ran.
type ToolRun<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = (tooling::ToolOutput, Vec<Step>)> + Send + 'a>,
>;

/// How a sub-agent's run ended: its answer (or why it has none) and its model steps.
pub(crate) struct ChildEnd {
    pub status: &'static str,
    pub result: String,
    pub steps: Vec<Step>,
}

/// Runs a sub-agent's task to its end: its lines go to `relay` (the parent's emitter), its
/// messages into the parent conversation under its child session.
pub(crate) fn run_child<'a>(
    inner: &'a Arc<Inner>,
    child: &'a Prepared,
    relay: UnboundedSender<Vec<u8>>,
    cancel: &'a Cancel,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ChildEnd> + Send + 'a>> {
    Box::pin(async move {
        let mut out = Emitter::new(inner, child, relay, false);
        // The task reaches the sub-agent's view as its user message.
        if let Some(task) = child.new_messages.first() {
            out.emit(&AgentLine {
                role: "user",
                content: Some(task.content.clone()),
                reasoning_content: None,
                tool_calls: None,
                message_id: &task.message_id,
                tool_call_id: None,
                kind: "user_input",
                timestamp: wire::now(),
                agent_name: None,
                metadata: json!({"delegated": true}),
                session_id: child.line_session(),
            })
            .await;
        }
        let mut steps = Vec::new();
        let end = run_loop(inner, child, &mut out, cancel, &mut steps).await;
        out.stored().await;
        let (status, result) = match end {
            End::Done => ("success", out.answer),
            End::Failed => ("failed", out.failure.unwrap_or_default()),
            End::Interrupted => ("interrupted", out.answer),
        };
        ChildEnd {
            status,
            result,
            steps,
        }
    })
}

/// Sage's error body, in its key order.
#[derive(Serialize)]
struct ErrorBody<'a> {
    status: &'static str,
    error: &'a str,
}

/// A provider failure: an `error` line, then a failure `final_answer` (stored).
async fn provider_failure(inner: &Inner, p: &Prepared, out: &mut Emitter, e: &LlmError) {
    let reason = e.to_string();
    out.failure = Some(reason.clone());
    let error_id = platform::ids::new_uuid();
    out.emit(&AgentLine {
        role: "assistant",
        content: Some(json!(wire::to_py_json(&ErrorBody {
            status: "error",
            error: &reason,
        }))),
        reasoning_content: None,
        tool_calls: None,
        message_id: &error_id,
        tool_call_id: None,
        kind: "error",
        timestamp: wire::now(),
        agent_name: Some(&p.line_agent_name),
        metadata: json!({}),
        session_id: p.line_session(),
    })
    .await;
    let answer_id = platform::ids::new_uuid();
    let text = crate::prompt::failure_text(&p.language, &reason);
    out.emit(&AgentLine {
        role: "assistant",
        content: Some(json!(text)),
        reasoning_content: None,
        tool_calls: None,
        message_id: &answer_id,
        tool_call_id: None,
        kind: "final_answer",
        timestamp: wire::now(),
        agent_name: None,
        metadata: json!({}),
        session_id: p.line_session(),
    })
    .await;
    let mut m = stored(
        &answer_id,
        "assistant",
        "final_answer",
        json!(text),
        &p.line_agent_name,
    );
    m.metadata = json!({"runtime_generated": true, "error": true});
    persist(inner, p, out, vec![m]).await;
}

fn step_usage(u: &Usage) -> StepUsage {
    StepUsage {
        completion_tokens: u.completion_tokens,
        prompt_tokens: u.prompt_tokens,
        total_tokens: u.prompt_tokens + u.completion_tokens,
        completion_tokens_details: None,
        prompt_tokens_details: None,
    }
}

async fn emit_usage(out: &mut Emitter, p: &Prepared, steps: &[Step]) {
    let mut models: Vec<String> = Vec::new();
    for s in steps {
        if !models.contains(&s.model) {
            models.push(s.model.clone());
        }
    }
    let (prompt, completion, cached, reasoning) = steps.iter().fold((0, 0, 0, 0), |t, s| {
        (
            t.0 + s.usage.prompt_tokens,
            t.1 + s.usage.completion_tokens,
            t.2 + s.usage.cached_tokens,
            t.3 + s.usage.reasoning_tokens,
        )
    });
    let model = models.first().map(String::as_str);
    let total_info = if steps.is_empty() {
        TotalInfo::default()
    } else {
        TotalInfo {
            completion_tokens: Some(completion),
            prompt_tokens: Some(prompt),
            total_tokens: Some(prompt + completion),
            cached_tokens: (cached > 0).then_some(cached),
            reasoning_tokens: (reasoning > 0).then_some(reasoning),
            model,
            models: Some(&models),
        }
    };
    let per_step_info: Vec<StepInfo<'_>> = steps
        .iter()
        .map(|s| StepInfo {
            step_name: "direct_execution",
            model: &s.model,
            usage: step_usage(&s.usage),
        })
        .collect();
    let id = platform::ids::new_uuid();
    out.emit(&AgentLine {
        role: "assistant",
        content: Some(json!("")),
        reasoning_content: None,
        tool_calls: None,
        message_id: &id,
        tool_call_id: None,
        kind: "token_usage",
        timestamp: wire::now(),
        agent_name: None,
        metadata: UsageMetadata {
            token_usage: TokenUsage {
                total_info,
                per_step_info,
                models: &models,
            },
            model,
            models: &models,
            session_id: &p.session_id,
        },
        session_id: &p.session_id,
    })
    .await;
}

async fn record_usage(
    inner: &Inner,
    p: &Prepared,
    steps: &[Step],
    started_at: chrono::DateTime<Utc>,
) {
    let sum = |f: fn(&Usage) -> u64| steps.iter().map(|s| f(&s.usage)).sum::<u64>();
    let (input, output) = (sum(|u| u.prompt_tokens), sum(|u| u.completion_tokens));
    let record = UsageRecord {
        session_id: p.session_id.clone(),
        user_id: p.actor.user_id.clone(),
        agent_id: p.agent_id.clone(),
        request_source: p.source.request_source().to_owned(),
        model: p.endpoint.model.clone(),
        input_tokens: input,
        output_tokens: output,
        total_tokens: input + output,
        cached_tokens: sum(|u| u.cached_tokens),
        reasoning_tokens: sum(|u| u.reasoning_tokens),
        step_count: u32::try_from(steps.len()).unwrap_or(u32::MAX),
        step_model_names: steps.iter().map(|s| s.model.clone()).collect(),
        started_at,
        finished_at: Utc::now(),
    };
    if let Err(e) = inner.conversations.record_usage(&p.actor, record).await {
        tracing::error!(session_id = %p.session_id, error = %e, "usage could not be recorded");
    }
}
