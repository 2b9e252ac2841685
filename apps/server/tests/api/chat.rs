//! Chat runs against the scripted LLM server: the NDJSON lines of each route, the tool loop,
//! the loop limit, provider failures, resume, interrupt, ownership and persistence.

use std::time::Duration;

use futures_util::StreamExt;
use llm_double::{LlmDouble, Reply, ToolCall, Usage};
use serde_json::{Value, json};

use crate::helpers::{TestApp, envelope};

pub(crate) struct Chat {
    pub(crate) app: TestApp,
    pub(crate) llm: LlmDouble,
    pub(crate) alice: reqwest::Client,
    pub(crate) alice_id: String,
    pub(crate) agent: String,
}

pub(crate) async fn agent(
    app: &TestApp,
    client: &reqwest::Client,
    tools: &[&str],
    mode: &str,
) -> String {
    named_agent(
        app,
        client,
        &format!("Helper {mode} {}", tools.len()),
        tools,
        mode,
    )
    .await
}

/// An agent called `name` with a loop limit of 5; its id.
pub(crate) async fn named_agent(
    app: &TestApp,
    client: &reqwest::Client,
    name: &str,
    tools: &[&str],
    mode: &str,
) -> String {
    let body = envelope(
        app.post_json(
            client,
            "/api/agent/create",
            json!({"name": name, "maxLoopCount": 5, "agentMode": mode, "availableTools": tools,
                   "systemPrefix": "You are a careful helper."}),
        )
        .await,
    )
    .await;
    body["data"]["agent_id"].as_str().unwrap().to_owned()
}

/// The caller's default provider on the scripted model.
pub(crate) async fn provider(app: &TestApp, client: &reqwest::Client, llm: &LlmDouble) {
    let r = app
        .post_json(
            client,
            "/api/llm-provider/create",
            json!({"base_url": llm.base_url, "api_keys": ["sk-chat"], "model": "acc-model",
                   "is_default": true}),
        )
        .await;
    assert_eq!(r.status(), 200);
}

pub(crate) async fn setup(tools: &[&str]) -> Chat {
    on(TestApp::spawn().await, tools).await
}

/// `setup` on a server started with `customise`d configuration.
pub(crate) async fn setup_with(
    tools: &[&str],
    customise: impl FnOnce(&mut platform::config::Config),
) -> Chat {
    on(TestApp::spawn_with(customise).await, tools).await
}

async fn on(app: TestApp, tools: &[&str]) -> Chat {
    let llm = LlmDouble::start(None, &[]).await.unwrap();
    let (alice, alice_id) = app.user("alice").await;
    provider(&app, &alice, &llm).await;
    let agent = agent(&app, &alice, tools, "simple").await;
    Chat {
        app,
        llm,
        alice,
        alice_id,
        agent,
    }
}

/// The content of a run's first `tool_call_result` line.
pub(crate) fn first_result(text: &str) -> String {
    parse(text)
        .into_iter()
        .find(|l| l["type"] == "tool_call_result")
        .and_then(|l| l["content"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no tool result in {text}"))
}

/// The names of the tools a model request offered.
pub(crate) fn tool_names(request: &Value) -> Vec<String> {
    request["tools"]
        .as_array()
        .map(|tools| {
            tools
                .iter()
                .map(|t| t["function"]["name"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn body(agent: &str, session: &str, text: &str) -> Value {
    json!({"messages": [{"role": "user", "content": text}], "session_id": session,
           "agent_id": agent, "agent_mode": "simple", "more_suggest": false,
           "max_loop_count": 5, "system_context": {"response_language": "en-US"}})
}

pub(crate) fn parse(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with(':'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

pub(crate) async fn post(
    chat: &Chat,
    client: &reqwest::Client,
    path: &str,
    body: Value,
) -> (String, String) {
    let r = chat.app.post_json(client, path, body).await;
    assert_eq!(r.status(), 200, "{path}");
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    (ct, r.text().await.unwrap())
}

pub(crate) fn kinds(lines: &[Value]) -> Vec<&str> {
    lines.iter().map(|l| l["type"].as_str().unwrap()).collect()
}

pub(crate) fn answer(lines: &[Value]) -> String {
    lines
        .iter()
        .filter(|l| l["type"] == "do_subtask_result")
        .map(|l| l["content"].as_str().unwrap())
        .collect()
}

pub(crate) fn call(id: &str, name: &str, args: Value) -> Reply {
    Reply::Answer {
        chunks: Vec::new(),
        reasoning: Vec::new(),
        tool_calls: vec![ToolCall {
            id: id.into(),
            name: name.into(),
            arguments: args.to_string(),
        }],
        usage: Some(Usage {
            prompt_tokens: 20,
            completion_tokens: 5,
        }),
        delay: Duration::ZERO,
        cut_after: None,
    }
}

pub(crate) fn slow(chunks: usize, delay_ms: u64) -> Reply {
    Reply::Answer {
        chunks: (0..chunks).map(|i| format!("part{i} ")).collect(),
        reasoning: Vec::new(),
        tool_calls: Vec::new(),
        usage: None,
        delay: Duration::from_millis(delay_ms),
        cut_after: None,
    }
}

#[tokio::test]
async fn a_text_answer_streams_deltas_then_usage_then_stream_end_on_every_route() {
    let chat = setup(&[]).await;
    for (i, path) in ["/api/web-stream", "/api/stream", "/api/chat"]
        .iter()
        .enumerate()
    {
        chat.llm.push(Reply::Answer {
            chunks: vec!["Hello".into(), " from the transcript".into()],
            reasoning: vec!["Thinking.".into()],
            tool_calls: Vec::new(),
            usage: Some(Usage {
                prompt_tokens: 30,
                completion_tokens: 4,
            }),
            delay: Duration::ZERO,
            cut_after: None,
        });
        let session = format!("session_text_{i}");
        let (ct, text) = post(
            &chat,
            &chat.alice,
            path,
            body(&chat.agent, &session, "Say hello"),
        )
        .await;
        assert_eq!(ct, "text/plain; charset=utf-8");
        let lines = parse(&text);
        assert_eq!(
            kinds(&lines),
            [
                "reasoning_content",
                "do_subtask_result",
                "do_subtask_result",
                "token_usage",
                "stream_end"
            ],
            "{path}: {text}"
        );
        assert_eq!(lines[0]["reasoning_content"], "Thinking.");
        assert_eq!(lines[1]["message_id"], lines[2]["message_id"]);
        assert_eq!(answer(&lines), "Hello from the transcript");
        for l in &lines[..3] {
            assert_eq!(l["session_id"], session);
            assert_eq!(l["agent_name"], "SimpleAgent");
            assert_eq!(l["role"], "assistant");
            assert!(l["timestamp"].as_f64().unwrap() > 1.7e9);
        }
        // Python's separators and Sage's key order, byte for byte.
        let first_delta = text.lines().nth(1).unwrap();
        assert!(
            first_delta.starts_with(r#"{"role": "assistant", "content": "Hello", "message_id": ""#),
            "{first_delta}"
        );
        let usage = &lines[3]["metadata"]["token_usage"];
        assert_eq!(usage["total_info"]["total_tokens"], 34);
        assert_eq!(usage["per_step_info"][0]["model"], "acc-model");
        assert_eq!(usage["models"], json!(["acc-model"]));
        let end = text.lines().last().unwrap();
        assert!(end.starts_with(&format!(
            r#"{{"type": "stream_end", "session_id": "{session}", "timestamp": "#
        )));
        assert_eq!(lines[4]["total_stream_count"], 4);
    }
    // The model saw the agent's prompt and the user's words, with control tags stripped.
    chat.llm.push(Reply::text(&["ok"]));
    let (_, text) = post(
        &chat,
        &chat.alice,
        "/api/chat",
        json!({"messages": [{"role": "user", "content": "<enable_plan>false</enable_plan>Plain please"}],
               "agent_id": chat.agent}),
    )
    .await;
    let lines = parse(&text);
    let session = lines[0]["session_id"].as_str().unwrap();
    assert_eq!(session.len(), 36, "a random UUID: {session}");
    let sent = chat.llm.chat_requests().pop().unwrap();
    assert!(
        sent["messages"][0]["content"]
            .as_str()
            .unwrap()
            .starts_with("You are a careful helper.")
    );
    assert_eq!(
        sent["messages"].as_array().unwrap().last().unwrap()["content"],
        "Plain please"
    );
    assert!(
        sent.get("tools").is_none(),
        "no tools for an agent without tools"
    );
}

#[tokio::test]
async fn with_http2_cleartext_one_connection_carries_several_chat_streams() {
    let chat = setup_with(&[], |c| c.http2_cleartext = true).await;
    // A proxy speaking h2c with prior knowledge; the session cookie rides on it.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .cookie_store(true)
        .build()
        .unwrap();
    let login = chat.app.login(&h2, "alice", "alice-Secret-9").await;
    assert_eq!(login.version(), reqwest::Version::HTTP_2);
    assert_eq!(login.status(), 200);
    for i in 0..3 {
        chat.llm.push(Reply::Answer {
            chunks: vec![format!("answer {i}"), " done".into()],
            reasoning: Vec::new(),
            tool_calls: Vec::new(),
            usage: None,
            delay: Duration::from_millis(20),
            cut_after: None,
        });
    }
    // Three streams at once; the browser's own origin (the `:authority`) passes the CSRF
    // check, another origin does not.
    let origin = chat.app.url("");
    let streams = (0..3).map(|i| {
        h2.post(chat.app.url("/api/web-stream"))
            .header("origin", origin.as_str())
            .json(&body(&chat.agent, &format!("h2c-{i}"), "Answer"))
            .send()
    });
    let mut answers = Vec::new();
    for r in futures_util::future::join_all(streams).await {
        let r = r.unwrap();
        assert_eq!(r.version(), reqwest::Version::HTTP_2);
        assert_eq!(r.status(), 200);
        let lines = parse(&r.text().await.unwrap());
        assert_eq!(lines.last().unwrap()["type"], "stream_end");
        answers.push(answer(&lines));
    }
    answers.sort();
    assert_eq!(answers, ["answer 0 done", "answer 1 done", "answer 2 done"]);
    let r = h2
        .post(chat.app.url("/api/web-stream"))
        .header("origin", "http://evil.example")
        .json(&body(&chat.agent, "h2c-evil", "Answer"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(envelope(r).await["error_code"], "auth.cross_site");

    // Off by default: the plain server speaks HTTP/1.1 only.
    let plain = TestApp::spawn().await;
    let refused = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap()
        .get(plain.url("/active"))
        .send()
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(plain.get("/active").await.status(), 200);
}

#[tokio::test]
async fn a_two_step_tool_loop_writes_a_file_then_reads_it_back() {
    let chat = setup(&["file_write", "file_read"]).await;
    chat.llm.push(call(
        "call_w",
        "file_write",
        json!({"file_path": "notes/plan.md", "content": "# Plan\nship it"}),
    ));
    chat.llm.push(call(
        "call_r",
        "file_read",
        json!({"file_path": "notes/plan.md"}),
    ));
    chat.llm.push(Reply::text(&["The plan says ", "ship it."]));
    let (_, text) = post(
        &chat,
        &chat.alice,
        "/api/web-stream",
        body(&chat.agent, "session_tools", "Plan"),
    )
    .await;
    let lines = parse(&text);
    assert_eq!(
        kinds(&lines),
        [
            "tool_call",
            "tool_call",
            "tool_call",
            "tool_call_result",
            "tool_call",
            "tool_call",
            "tool_call",
            "tool_call_result",
            "do_subtask_result",
            "do_subtask_result",
            "token_usage",
            "stream_end"
        ],
        "{text}"
    );
    let first = &lines[0]["tool_calls"][0];
    assert_eq!(
        (
            first["id"].as_str(),
            first["type"].as_str(),
            first["index"].as_u64()
        ),
        (Some("call_w"), Some("function"), Some(0))
    );
    assert_eq!(first["function"]["name"], "file_write");
    let piece = &lines[1]["tool_calls"][0];
    assert!(
        piece["id"].is_null() && piece["type"].is_null() && piece["function"]["name"].is_null()
    );
    assert_eq!(lines[0]["message_id"], lines[2]["message_id"]);
    let args: String = lines[..3]
        .iter()
        .map(|l| {
            l["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap()["file_path"],
        "notes/plan.md"
    );

    let written = &lines[3];
    assert_eq!(
        (written["role"].as_str(), written["tool_call_id"].as_str()),
        (Some("tool"), Some("call_w"))
    );
    assert_eq!(written["metadata"]["tool_execution_status"], "success");
    let read: Value = serde_json::from_str(lines[7]["content"].as_str().unwrap()).unwrap();
    assert_eq!(read["content"], "# Plan\nship it");
    let on_disk = chat.app.data_path().join(format!(
        "workspaces/{}/{}/notes/plan.md",
        chat.alice_id, chat.agent
    ));
    assert_eq!(std::fs::read_to_string(on_disk).unwrap(), "# Plan\nship it");

    // The model got the tool schemas, then each result after its call.
    let requests = chat.llm.chat_requests();
    let third = requests.last().unwrap();
    let names: Vec<_> = third["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["file_write", "file_read"]);
    let msgs = third["messages"].as_array().unwrap();
    let roles: Vec<_> = msgs.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(
        roles,
        ["system", "user", "assistant", "tool", "assistant", "tool"]
    );
    assert_eq!(msgs[3]["tool_call_id"], "call_w");
    assert_eq!(
        lines[10]["metadata"]["token_usage"]["per_step_info"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(answer(&lines), "The plan says ship it.");
}

#[tokio::test]
async fn the_loop_limit_stops_with_the_questionnaire_and_failures_are_lines() {
    let chat = setup(&["todo_write"]).await;
    chat.llm.push(call(
        "call_t",
        "todo_write",
        json!({"tasks": [{"id": "t1", "content": "Write the transcript", "status": "pending"}]}),
    ));
    let mut limited = body(&chat.agent, "session_loop", "Plan");
    limited["max_loop_count"] = json!(1);
    let before = chat.llm.chat_requests().len();
    let (_, text) = post(&chat, &chat.alice, "/api/web-stream", limited).await;
    let lines = parse(&text);
    assert_eq!(
        kinds(&lines),
        [
            "tool_call",
            "tool_call",
            "tool_call",
            "tool_call_result",
            "assistant_text",
            "token_usage",
            "stream_end"
        ]
    );
    let result: Value = serde_json::from_str(lines[3]["content"].as_str().unwrap()).unwrap();
    assert_eq!(
        result["summary"],
        "Task list updated. Added: 1, updated: 0, currently unfinished: 1."
    );
    let stop = &lines[4];
    assert!(
        stop["content"]
            .as_str()
            .unwrap()
            .contains("maximum loop count for this turn (1)")
    );
    assert!(
        stop["content"]
            .as_str()
            .unwrap()
            .contains("```questionnaire")
    );
    assert_eq!(stop["metadata"]["stop_reason"], "max_loop_count");
    assert_eq!(stop["metadata"]["needs_user_input"], true);
    assert_eq!(chat.llm.chat_requests().len(), before + 1, "one model call");
    let status = envelope(
        chat.app
            .post_json(
                &chat.alice,
                "/api/sessions/session_loop/tasks_status",
                json!({}),
            )
            .await,
    )
    .await;
    assert_eq!(
        status["data"]["tasks_status"]["tasks"][0]["name"],
        "Write the transcript"
    );

    // A stream cut by the provider: the text so far, an error line, then the end; HTTP 200.
    chat.llm.push(Reply::Answer {
        chunks: vec!["Half ".into(), "an ".into(), "answer".into()],
        reasoning: Vec::new(),
        tool_calls: Vec::new(),
        usage: None,
        delay: Duration::ZERO,
        cut_after: Some(3),
    });
    let (_, text) = post(
        &chat,
        &chat.alice,
        "/api/web-stream",
        body(&chat.agent, "session_cut", "Go"),
    )
    .await;
    let lines = parse(&text);
    let k = kinds(&lines);
    assert_eq!(
        &k[k.len() - 4..],
        ["error", "final_answer", "token_usage", "stream_end"],
        "{text}"
    );
    assert!(k[..k.len() - 4].iter().all(|t| *t == "do_subtask_result"));
    let error: Value =
        serde_json::from_str(lines[k.len() - 4]["content"].as_str().unwrap()).unwrap();
    assert_eq!(error["status"], "error");
    assert!(
        lines[k.len() - 3]["content"]
            .as_str()
            .unwrap()
            .starts_with("Workflow execution failed: ")
    );

    // A refusal before the first byte (not retried) is reported the same way.
    chat.llm.push(Reply::error(400, "context length exceeded"));
    let (_, text) = post(
        &chat,
        &chat.alice,
        "/api/stream",
        body(&chat.agent, "session_refused", "Go"),
    )
    .await;
    let lines = parse(&text);
    assert_eq!(
        kinds(&lines),
        ["error", "final_answer", "token_usage", "stream_end"]
    );
    assert!(
        lines[0]["content"]
            .as_str()
            .unwrap()
            .contains("context length exceeded")
    );
    assert!(
        lines[0]["content"]
            .as_str()
            .unwrap()
            .starts_with(r#"{"status": "error", "error": "#)
    );
}

#[tokio::test]
async fn requests_are_checked_before_anything_streams() {
    let chat = setup(&[]).await;
    let (bob, _) = chat.app.user("bob").await;
    let cases = [
        (
            "/api/web-stream",
            json!({"messages": [], "agent_id": chat.agent, "max_loop_count": 3}),
            422,
            "chat.messages_required",
        ),
        (
            "/api/stream",
            json!({"messages": [{"role": "user", "content": "hi"}]}),
            400,
            "chat.max_loop_required",
        ),
        (
            "/api/stream",
            json!({"messages": [{"role": "user", "content": "hi"}], "max_loop_count": 0}),
            400,
            "chat.max_loop_required",
        ),
        (
            "/api/chat",
            json!({"messages": [{"role": "user", "content": "hi"}]}),
            422,
            "request.validation",
        ),
        (
            "/api/web-stream",
            json!({"messages": [{"role": "user", "content": "hi"}], "agent_id": "agent_nope", "max_loop_count": 3}),
            404,
            "agent.not_found",
        ),
        (
            "/api/web-stream",
            json!({"messages": [{"role": "user", "content": "hi"}], "session_id": "../x", "max_loop_count": 3}),
            422,
            "request.validation",
        ),
    ];
    for (path, b, status, key) in cases {
        let r = chat.app.post_json(&chat.alice, path, b.clone()).await;
        assert_eq!(r.status(), status, "{path} {b}");
        assert_eq!(envelope(r).await["error_code"], key, "{path} {b}");
    }
    // Bob cannot use Alice's agent, nor take over her session id.
    let r = chat
        .app
        .post_json(
            &bob,
            "/api/web-stream",
            body(&chat.agent, "session_b", "hi"),
        )
        .await;
    assert_eq!(r.status(), 404);
    chat.llm.push(Reply::text(&["mine"]));
    post(
        &chat,
        &chat.alice,
        "/api/web-stream",
        body(&chat.agent, "session_alice", "hi"),
    )
    .await;
    let bobs_agent = agent(&chat.app, &bob, &[], "fibre").await;
    chat.app.post_json(&bob, "/api/llm-provider/create", json!({"base_url": chat.llm.base_url, "api_keys": ["sk-b"], "model": "m", "is_default": true})).await;
    let r = chat
        .app
        .post_json(
            &bob,
            "/api/web-stream",
            body(&bobs_agent, "session_alice", "hi"),
        )
        .await;
    assert_eq!(envelope(r).await["error_code"], "chat.session_not_found");
    // Anonymous callers get a real 401.
    let r = reqwest::Client::new()
        .post(chat.app.url("/api/web-stream"))
        .json(&body(&chat.agent, "s", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

/// Reads lines from a streamed response until `n` JSON lines arrived.
pub(crate) async fn first_lines(
    stream: &mut (impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    n: usize,
) -> String {
    let mut text = String::new();
    while parse(&text).len() < n || !text.ends_with('\n') {
        let chunk = stream.next().await.expect("more lines").unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    text
}

#[tokio::test]
async fn resume_replays_from_any_index_during_and_after_the_run() {
    let chat = setup(&[]).await;
    chat.llm.push(slow(8, 150));
    let r = chat
        .app
        .post_json(
            &chat.alice,
            "/api/web-stream",
            body(&chat.agent, "session_slow", "Go slow"),
        )
        .await;
    let mut live = r.bytes_stream();
    let head = first_lines(&mut live, 3).await;

    // In the middle: lines [1:] of the original, through the same stream_end.
    let resumed = chat
        .alice
        .get(chat.app.url("/api/stream/resume/session_slow?last_index=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resumed.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    let resumed = resumed.text().await.unwrap();
    let mut original = head;
    while let Some(chunk) = live.next().await {
        original.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    let original_lines: Vec<&str> = original
        .lines()
        .filter(|l| !l.starts_with(':') && !l.is_empty())
        .collect();
    let resumed_lines: Vec<&str> = resumed
        .lines()
        .filter(|l| !l.starts_with(':') && !l.is_empty())
        .collect();
    assert_eq!(resumed_lines, original_lines[1..]);
    assert_eq!(parse(&original).last().unwrap()["type"], "stream_end");

    // After the end: replayed from 0, from the middle and from the end.
    for (index, expected) in [
        (0, &original_lines[..]),
        (5, &original_lines[5..]),
        (
            original_lines.len(),
            &original_lines[original_lines.len()..],
        ),
    ] {
        let text = chat
            .alice
            .get(chat.app.url(&format!(
                "/api/stream/resume/session_slow?last_index={index}"
            )))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let got: Vec<&str> = text.lines().collect();
        assert_eq!(got, expected, "last_index={index}");
    }
    for (query, status) in [("last_index=-1", 422), ("last_index=x", 422)] {
        let r = chat
            .alice
            .get(
                chat.app
                    .url(&format!("/api/stream/resume/session_slow?{query}")),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{query}");
    }
    let r = chat
        .alice
        .get(chat.app.url("/api/stream/resume/session_unknown"))
        .send()
        .await
        .unwrap();
    assert_eq!(envelope(r).await["error_code"], "chat.session_not_found");
}

#[tokio::test]
async fn resume_after_the_log_expired_answers_one_fallback_line() {
    let app = TestApp::spawn_with(|c| c.stream_log_ttl = Duration::from_millis(1)).await;
    let llm = LlmDouble::start(None, &[]).await.unwrap();
    let (alice, _) = app.user("alice").await;
    app.post_json(
        &alice,
        "/api/llm-provider/create",
        json!({"base_url": llm.base_url, "api_keys": ["k"], "model": "m", "is_default": true}),
    )
    .await;
    let agent = agent(&app, &alice, &[], "team").await;
    llm.push(Reply::text(&["x"]));
    let text = app
        .post_json(
            &alice,
            "/api/web-stream",
            json!({"messages": [{"role": "user", "content": "hi"}], "session_id": "session_gone",
                   "agent_id": agent}),
        )
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(parse(&text)[0]["agent_name"], "TeamAgent");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = alice
            .get(app.url("/api/stream/resume/session_gone?last_index=0"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let lines = parse(&text);
        if lines.len() == 1 && lines[0]["resume_fallback"] == true {
            assert_eq!(lines[0]["type"], "stream_end");
            assert_eq!(lines[0]["session_id"], "session_gone");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the log never expired: {text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The first `data:` event of the running-session feed.
pub(crate) async fn first_event(app: &TestApp, client: &reqwest::Client) -> Value {
    let r = client
        .get(app.url("/api/stream/active_sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    let mut stream = r.bytes_stream();
    let mut text = String::new();
    loop {
        text.push_str(std::str::from_utf8(&stream.next().await.unwrap().unwrap()).unwrap());
        if let Some(event) = text.split("\n\n").find(|e| e.starts_with("data: ")) {
            return serde_json::from_str(&event["data: ".len()..]).unwrap();
        }
    }
}

#[tokio::test]
async fn only_the_owner_sees_resumes_and_interrupts_a_run_and_the_partial_answer_is_kept() {
    let chat = setup(&[]).await;
    let (bob, _) = chat.app.user("bob").await;
    chat.llm.push(slow(40, 250));
    let r = chat
        .app
        .post_json(
            &chat.alice,
            "/api/web-stream",
            body(&chat.agent, "session_long", "Take your time"),
        )
        .await;
    let mut live = r.bytes_stream();
    first_lines(&mut live, 2).await;

    let mine = first_event(&chat.app, &chat.alice).await;
    assert_eq!(mine[0]["session_id"], "session_long");
    assert_eq!(mine[0]["status"], "running");
    assert_eq!(mine[0]["query"], "Take your time");
    assert!(mine[0].get("user_id").is_none());
    assert_eq!(first_event(&chat.app, &bob).await, json!([]));
    let admin = chat.app.admin().await;
    assert_eq!(
        first_event(&chat.app, &admin).await[0]["session_id"],
        "session_long"
    );

    for r in [
        bob.get(chat.app.url("/api/stream/resume/session_long"))
            .send()
            .await
            .unwrap(),
        chat.app
            .post_json(&bob, "/api/sessions/session_long/interrupt", json!({}))
            .await,
        chat.app
            .post_json(&bob, "/api/sessions/session_long/tasks_status", json!({}))
            .await,
    ] {
        assert_eq!(r.status(), 404);
        assert_eq!(envelope(r).await["error_code"], "chat.session_not_found");
    }

    let stopped = envelope(
        chat.app
            .post_json(
                &chat.alice,
                "/api/sessions/session_long/interrupt",
                json!({}),
            )
            .await,
    )
    .await;
    assert_eq!(stopped["data"]["interrupted"], true);
    let mut rest = String::new();
    while let Some(chunk) = live.next().await {
        rest.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    let tail = parse(&rest);
    let end = tail.last().unwrap();
    assert_eq!(
        (end["type"].as_str(), end["interrupted"].as_bool()),
        (Some("stream_end"), Some(true))
    );
    let resumed = parse(
        &chat
            .alice
            .get(chat.app.url("/api/stream/resume/session_long"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    let streamed = answer(&resumed);
    let deltas = resumed
        .iter()
        .filter(|l| l["type"] == "do_subtask_result")
        .count();
    assert!((1..40).contains(&deltas), "stopped early: {streamed}");
    let idle = envelope(
        chat.app
            .post_json(
                &chat.alice,
                "/api/sessions/session_long/interrupt",
                json!({}),
            )
            .await,
    )
    .await;
    assert_eq!(idle["data"]["interrupted"], false);

    // The next turn's history holds exactly what was streamed.
    chat.llm.push(Reply::text(&["Continuing."]));
    post(
        &chat,
        &chat.alice,
        "/api/web-stream",
        body(&chat.agent, "session_long", "Go on"),
    )
    .await;
    let sent = chat.llm.chat_requests().pop().unwrap();
    let msgs = sent["messages"].as_array().unwrap();
    let roles: Vec<_> = msgs.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);
    assert_eq!(msgs[1]["content"], "Take your time");
    assert_eq!(msgs[2]["content"], streamed);
    assert_eq!(msgs[3]["content"], "Go on");
}

#[tokio::test]
async fn a_second_web_stream_interrupts_the_first_and_a_web_stream_outlives_its_client() {
    let chat = setup(&[]).await;
    chat.llm.push(slow(40, 250));
    let r = chat
        .app
        .post_json(
            &chat.alice,
            "/api/web-stream",
            body(&chat.agent, "session_twice", "First"),
        )
        .await;
    let mut first = r.bytes_stream();
    first_lines(&mut first, 1).await;
    // A busy session refuses /api/chat and /api/stream.
    let busy = chat
        .app
        .post_json(
            &chat.alice,
            "/api/stream",
            body(&chat.agent, "session_twice", "x"),
        )
        .await;
    assert_eq!(envelope(busy).await["error_code"], "chat.session_running");

    chat.llm.push(Reply::text(&["Second answer"]));
    let (_, second) = post(
        &chat,
        &chat.alice,
        "/api/web-stream",
        body(&chat.agent, "session_twice", "Second"),
    )
    .await;
    assert_eq!(answer(&parse(&second)), "Second answer");
    let mut rest = String::new();
    while let Some(chunk) = first.next().await {
        rest.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    assert_eq!(parse(&rest).last().unwrap()["interrupted"], true);

    // /api/web-stream: the run outlives its client and is complete on resume.
    chat.llm.push(slow(3, 100));
    let r = chat
        .app
        .post_json(
            &chat.alice,
            "/api/web-stream",
            body(&chat.agent, "session_left", "Bye"),
        )
        .await;
    let mut s = r.bytes_stream();
    first_lines(&mut s, 1).await;
    drop(s);
    let resumed = chat
        .alice
        .get(chat.app.url("/api/stream/resume/session_left?last_index=0"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let resumed = parse(&resumed);
    assert_eq!(answer(&resumed), "part0 part1 part2 ");
    assert!(resumed.last().unwrap().get("interrupted").is_none());
    // /api/chat and /api/stream stop when their client goes: chat_runs.rs (grace period).
}

/// The top-level keys of a JSON line, in order.
pub(crate) fn keys(line: &str) -> Vec<String> {
    // serde_json sorts object keys; read them from the text instead, at depth one.
    let mut out = Vec::new();
    let (mut depth, mut in_str, mut escaped, mut start) = (0, false, false, None);
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if in_str {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
                if let Some(s) = start.take()
                    && bytes[i + 1..].iter().find(|c| !c.is_ascii_whitespace()) == Some(&b':')
                {
                    out.push(line[s..i].to_owned());
                }
            }
            continue;
        }
        match b {
            b'"' => {
                in_str = true;
                if depth == 1 {
                    start = Some(i + 1);
                }
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth -= 1,
            _ => {}
        }
    }
    out
}

#[tokio::test]
async fn the_stream_protocol_document_shows_each_line_kind_as_the_server_emits_it() {
    let app = TestApp::spawn_with(|c| c.stream_log_ttl = Duration::from_millis(1)).await;
    let llm = LlmDouble::start(None, &[]).await.unwrap();
    let (alice, _) = app.user("alice").await;
    app.post_json(&alice, "/api/llm-provider/create", json!({"base_url": llm.base_url, "api_keys": ["k"], "model": "acc-model", "is_default": true})).await;
    let agent = agent(&app, &alice, &["todo_write"], "simple").await;
    llm.push(Reply::Answer {
        chunks: vec!["Planning.".into()],
        reasoning: vec!["The user wants a plan.".into()],
        tool_calls: vec![ToolCall {
            id: "call_1".into(),
            name: "todo_write".into(),
            arguments: json!({"tasks": [{"id": "t1", "content": "Write", "status": "pending"}]})
                .to_string(),
        }],
        usage: Some(Usage {
            prompt_tokens: 40,
            completion_tokens: 9,
        }),
        delay: Duration::ZERO,
        cut_after: None,
    });
    let mut b = body(&agent, "session_doc", "Plan it");
    b["max_loop_count"] = json!(1);
    let mut emitted = app
        .post_json(&alice, "/api/web-stream", b)
        .await
        .text()
        .await
        .unwrap();
    llm.push(Reply::error(400, "context length exceeded"));
    emitted.push_str(
        &app.post_json(
            &alice,
            "/api/web-stream",
            body(&agent, "session_doc2", "Again"),
        )
        .await
        .text()
        .await
        .unwrap(),
    );
    llm.push(Reply::Answer {
        chunks: Vec::new(),
        reasoning: Vec::new(),
        tool_calls: vec![ToolCall {
            id: "call_3".into(),
            name: "todo_write".into(),
            arguments: json!({"tasks": []}).to_string(),
        }],
        usage: None,
        delay: Duration::ZERO,
        cut_after: None,
    });
    let mut b = body(&agent, "session_doc3", "Progress");
    b["max_loop_count"] = json!(1);
    emitted.push_str(
        &app.post_json(&alice, "/api/stream", b)
            .await
            .text()
            .await
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = alice
            .get(app.url("/api/stream/resume/session_doc?last_index=0"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains("resume_fallback") {
            emitted.push_str(&text);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen: Vec<(String, Vec<String>)> = emitted
        .lines()
        .map(|l| {
            (
                serde_json::from_str::<Value>(l).unwrap()["type"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                keys(l),
            )
        })
        .collect();

    let doc = include_str!("../../../../docs/stream-protocol.md");
    let mut documented = Vec::new();
    let mut in_block = false;
    for line in doc.lines() {
        match line.trim() {
            "```json" => in_block = true,
            "```" => in_block = false,
            l if in_block && l.starts_with('{') => {
                let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
                documented.push((v["type"].as_str().unwrap().to_owned(), keys(l)));
            }
            _ => {}
        }
    }
    for kind in [
        "reasoning_content",
        "do_subtask_result",
        "tool_call",
        "tool_call_result",
        "tool_progress",
        "assistant_text",
        "error",
        "final_answer",
        "token_usage",
        "stream_end",
    ] {
        assert!(
            documented.iter().any(|(k, _)| k == kind),
            "docs/stream-protocol.md lacks `{kind}`"
        );
    }
    for example in &documented {
        assert!(
            seen.contains(example),
            "documented but never emitted: {example:?}\nemitted:\n{emitted}"
        );
    }
}

#[tokio::test]
async fn optimize_input_rewrites_the_draft_or_falls_back_to_it() {
    let chat = setup(&[]).await;
    chat.llm.push(Reply::text(&[
        "  Summarise the report in three bullet points.  ",
    ]));
    let ok = envelope(
        chat.app
            .post_json(
                &chat.alice,
                "/api/chat/optimize-input",
                json!({"current_input": "summary pls", "agent_id": chat.agent,
                       "history_messages": [{"role": "user", "content": "Here is the report"}]}),
            )
            .await,
    )
    .await;
    assert_eq!(ok["data"]["success"], true);
    assert_eq!(
        ok["data"]["optimized_input"],
        "Summarise the report in three bullet points."
    );
    let sent = chat.llm.chat_requests().pop().unwrap();
    let prompt = sent["messages"][1]["content"].as_str().unwrap();
    assert!(prompt.contains("summary pls") && prompt.contains("Here is the report"));

    chat.llm.push(Reply::error(400, "no"));
    let fallback = envelope(
        chat.app
            .post_json(
                &chat.alice,
                "/api/chat/optimize-input",
                json!({"current_input": "draft"}),
            )
            .await,
    )
    .await;
    assert_eq!(fallback["data"]["success"], false);
    assert_eq!(fallback["data"]["status"], "fallback");
    assert_eq!(fallback["data"]["optimized_input"], "draft");

    chat.llm.push(Reply::text(&["Better ", "draft."]));
    let (ct, text) = post(
        &chat,
        &chat.alice,
        "/api/chat/optimize-input/stream",
        json!({"current_input": "draft", "language": "zh-CN"}),
    )
    .await;
    assert_eq!(ct, "text/plain; charset=utf-8");
    let lines = parse(&text);
    assert_eq!(kinds(&lines), ["start", "delta", "delta", "done"]);
    assert_eq!(lines[3]["optimized_input"], "Better draft.");
    assert!(
        chat.llm.chat_requests().pop().unwrap()["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("中文")
    );

    let empty = chat
        .app
        .post_json(
            &chat.alice,
            "/api/chat/optimize-input",
            json!({"current_input": "  "}),
        )
        .await;
    assert_eq!(empty.status(), 422);
}

#[tokio::test]
async fn guidance_is_queued_edited_withdrawn_and_taken_by_the_next_step() {
    let chat = setup(&[]).await;
    let (bob, _) = chat.app.user("bob").await;
    let url = |p: &str| {
        chat.app.url(&format!(
            "/api/sessions/session_guided/inject-user-message{p}"
        ))
    };
    let idle = chat
        .app
        .post_json(
            &chat.alice,
            "/api/sessions/session_guided/inject-user-message",
            json!({"content": "x"}),
        )
        .await;
    assert_eq!(idle.status(), 404, "no conversation yet");

    chat.llm.push(slow(40, 250));
    let r = chat
        .app
        .post_json(
            &chat.alice,
            "/api/web-stream",
            body(&chat.agent, "session_guided", "Write a poem"),
        )
        .await;
    let mut live = r.bytes_stream();
    first_lines(&mut live, 1).await;
    let accepted = envelope(
        chat.alice
            .post(url(""))
            .json(&json!({"content": "Make it rhyme", "guidance_id": "g1"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(accepted["data"]["accepted"], true);
    assert_eq!(accepted["data"]["guidance_id"], "g1");
    let second = envelope(
        chat.alice
            .post(url(""))
            .json(&json!({"content": "Never mind"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let g2 = second["data"]["guidance_id"].as_str().unwrap().to_owned();
    envelope(
        chat.alice
            .patch(url("/g1"))
            .json(&json!({"content": "Make it rhyme, please"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let deleted = envelope(
        chat.alice
            .delete(url(&format!("/{g2}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(deleted["data"]["deleted"], true);
    let listed = envelope(chat.alice.get(url("")).send().await.unwrap()).await;
    let items = listed["data"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["content"], "Make it rhyme, please");
    for r in [
        bob.post(url(""))
            .json(&json!({"content": "hijack"}))
            .send()
            .await
            .unwrap(),
        bob.get(url("")).send().await.unwrap(),
        bob.delete(url("/g1")).send().await.unwrap(),
    ] {
        assert_eq!(envelope(r).await["error_code"], "chat.session_not_found");
    }
    let missing = chat.alice.delete(url("/nope")).send().await.unwrap();
    assert_eq!(
        envelope(missing).await["error_code"],
        "chat.guidance_not_found"
    );

    // The queued message is taken before the next model call, streamed back and sent.
    envelope(
        chat.app
            .post_json(
                &chat.alice,
                "/api/sessions/session_guided/interrupt",
                json!({}),
            )
            .await,
    )
    .await;
    while live.next().await.is_some() {}
    chat.llm.push(Reply::text(&["Roses are red."]));
    let (_, text) = post(
        &chat,
        &chat.alice,
        "/api/web-stream",
        body(&chat.agent, "session_guided", "Go on"),
    )
    .await;
    let lines = parse(&text);
    assert_eq!(lines[0]["type"], "user_input");
    assert_eq!(lines[0]["role"], "user");
    assert_eq!(lines[0]["metadata"]["guidance_id"], "g1");
    assert_eq!(lines[0]["content"], "Make it rhyme, please");
    let sent = chat.llm.chat_requests().pop().unwrap();
    let last = sent["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["content"], "Make it rhyme, please");
    let after = chat
        .app
        .post_json(
            &chat.alice,
            "/api/sessions/session_guided/inject-user-message",
            json!({"content": "late"}),
        )
        .await;
    assert_eq!(
        envelope(after).await["error_code"],
        "chat.session_not_running"
    );
}
