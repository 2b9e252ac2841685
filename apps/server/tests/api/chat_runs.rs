//! Chat runs, continued: leading control tags, images for models with and without image
//! input, `tool_progress`, `/api/chat` fed by pending guidance, the disconnect grace period,
//! a second server over PostgreSQL + Redis, many concurrent streams, and the nested key order
//! of Sage's lines.

use std::time::Duration;

use futures_util::StreamExt;
use llm_double::{Reply, Usage};
use serde_json::{Value, json};

use crate::chat::{
    Chat, answer, body, call, first_event, first_lines, keys, kinds, parse, post, setup,
    setup_with, slow,
};
use crate::helpers::{TestApp, envelope, fresh_postgres};

/// Every object key of a line in textual order, at any depth.
fn all_keys(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut in_str, mut escaped, mut start) = (false, false, 0);
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if in_str {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
                if bytes[i + 1..].iter().find(|c| !c.is_ascii_whitespace()) == Some(&b':') {
                    out.push(line[start..i].to_owned());
                }
            }
        } else if b == b'"' {
            in_str = true;
            start = i + 1;
        }
    }
    out
}

fn last_user_content(request: &Value) -> Value {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .unwrap()["content"]
        .clone()
}

async fn provider(chat: &Chat, multimodal: bool) -> String {
    let r = chat
        .app
        .post_json(
            &chat.alice,
            "/api/llm-provider/create",
            json!({"name": format!("vision {multimodal}"), "base_url": chat.llm.base_url,
                   "api_keys": ["sk-chat"], "model": format!("model-{multimodal}"),
                   "supports_multimodal": multimodal}),
        )
        .await;
    envelope(r).await["data"]["provider_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn leading_tags_set_the_reasoning_effort_and_images_suit_the_model() {
    let chat = setup(&[]).await;
    let cases = [
        (
            "<enable_plan>true</enable_plan><thinking_level>high</thinking_level>Think hard",
            Some("high"),
        ),
        (
            "<enable_deep_thinking>true</enable_deep_thinking>Think",
            Some("medium"),
        ),
        (
            "<deep_thinking_level>minimal</deep_thinking_level>Quick",
            Some("minimal"),
        ),
        (
            "<enable_deep_thinking>false</enable_deep_thinking><enable_plan>false</enable_plan>Plain",
            None,
        ),
        ("No tags at all", None),
    ];
    for (i, (text, effort)) in cases.iter().enumerate() {
        chat.llm.push(Reply::text(&["ok"]));
        post(
            &chat,
            &chat.alice,
            "/api/stream",
            body(&chat.agent, &format!("session_tags_{i}"), text),
        )
        .await;
        let sent = chat.llm.chat_requests().pop().unwrap();
        assert_eq!(sent["reasoning_effort"].as_str(), *effort, "{text}");
        let content = last_user_content(&sent);
        assert!(
            !content.as_str().unwrap().contains('<'),
            "tags stripped: {content}"
        );
    }

    // Image parts reach a model that takes images, and become markdown links otherwise (the
    // default provider here was created without `supports_multimodal`).
    let parts = json!([{"type": "text", "text": "<enable_plan>true</enable_plan>What is this?"},
        {"type": "image_url", "image_url": {"url": "https://img.example/up/cat.png"}}]);
    let vision = provider(&chat, true).await;
    let blind = provider(&chat, false).await;
    assert_ne!(vision, blind);
    for (i, (provider_id, multimodal)) in [
        (Some(vision.as_str()), true),
        (Some(blind.as_str()), false),
        (None, false),
    ]
    .into_iter()
    .enumerate()
    {
        chat.llm.push(Reply::text(&["A cat."]));
        let mut b = body(&chat.agent, &format!("session_image_{i}"), "");
        b["messages"][0]["content"] = parts.clone();
        if let Some(id) = provider_id {
            b["provider_id"] = json!(id);
        }
        let (_, text) = post(&chat, &chat.alice, "/api/web-stream", b).await;
        assert_eq!(answer(&parse(&text)), "A cat.");
        let content = last_user_content(&chat.llm.chat_requests().pop().unwrap());
        if multimodal {
            assert!(content.is_array(), "{i}: {content}");
            assert_eq!(content[0], json!({"type": "text", "text": "What is this?"}));
            assert_eq!(
                content[1]["image_url"]["url"],
                "https://img.example/up/cat.png"
            );
        } else {
            assert_eq!(
                content,
                json!("What is this?\n![cat.png](https://img.example/up/cat.png)"),
                "{i}"
            );
        }
    }
    // The next turn's history, sent to a model without image input, carries the link too.
    chat.llm.push(Reply::text(&["Still a cat."]));
    let mut b = body(&chat.agent, "session_image_0", "And now?");
    b["provider_id"] = json!(blind);
    post(&chat, &chat.alice, "/api/stream", b).await;
    let sent = chat.llm.chat_requests().pop().unwrap();
    assert_eq!(
        sent["messages"][1]["content"],
        json!("What is this?\n![cat.png](https://img.example/up/cat.png)")
    );
}

#[tokio::test]
async fn tool_progress_reaches_only_api_stream_and_is_counted_everywhere() {
    let chat = setup(&["todo_write"]).await;
    let todo = json!({"tasks": [{"id": "t1", "content": "Write", "status": "pending"}]});
    let mut seen = Vec::new();
    for (i, path) in ["/api/stream", "/api/web-stream", "/api/chat"]
        .iter()
        .enumerate()
    {
        chat.llm.push(call("call_p", "todo_write", todo.clone()));
        chat.llm.push(Reply::text(&["Done."]));
        let session = format!("session_progress_{i}");
        let (_, text) = post(
            &chat,
            &chat.alice,
            path,
            body(&chat.agent, &session, "Plan"),
        )
        .await;
        let lines = parse(&text);
        let end = lines.last().unwrap();
        let progress: Vec<&Value> = lines
            .iter()
            .filter(|l| l["type"] == "tool_progress")
            .collect();
        if *path == "/api/stream" {
            assert_eq!(progress.len(), 1, "{text}");
            let p = progress[0];
            assert_eq!(
                (
                    p["tool_call_id"].as_str(),
                    p["text"].as_str(),
                    p["stream"].as_str(),
                    p["closed"].as_bool()
                ),
                (Some("call_p"), Some(""), Some("info"), Some(true))
            );
            assert_eq!(p["session_id"], session.as_str());
            let raw = text
                .lines()
                .find(|l| l.contains("\"tool_progress\""))
                .unwrap();
            assert_eq!(
                keys(raw),
                [
                    "type",
                    "session_id",
                    "tool_call_id",
                    "text",
                    "stream",
                    "closed",
                    "ts"
                ]
            );
            // The note comes before its call's result.
            let at = |kind: &str| lines.iter().position(|l| l["type"] == kind).unwrap();
            assert!(at("tool_progress") < at("tool_call_result"));
            assert_eq!(end["total_stream_count"], lines.len() - 1);
        } else {
            assert!(progress.is_empty(), "{path}: {text}");
            assert_eq!(end["total_stream_count"], lines.len(), "{path}: counted");
        }
        seen.push(kinds(&lines).len());
        // The replay log holds what the other routes send: a resume at N continues them.
        let replay = chat
            .alice
            .get(
                chat.app
                    .url(&format!("/api/stream/resume/{session}?last_index=0")),
            )
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let replayed = parse(&replay);
        assert!(replayed.iter().all(|l| l["type"] != "tool_progress"));
        if *path != "/api/stream" {
            assert_eq!(replay, text, "{path}");
        }
    }
    assert_eq!(seen[0], seen[1] + 1);
}

#[tokio::test]
async fn chat_without_messages_takes_the_pending_guidance_else_422() {
    let chat = setup(&[]).await;
    let empty = |session: &str| {
        json!({"messages": [], "agent_id": chat.agent, "session_id": session,
               "system_context": {"response_language": "en-US"}})
    };
    for b in [
        empty("session_unknown"),
        json!({"messages": [], "agent_id": chat.agent}),
    ] {
        let r = chat.app.post_json(&chat.alice, "/api/chat", b).await;
        assert_eq!(r.status(), 422);
        assert_eq!(envelope(r).await["error_code"], "chat.messages_required");
    }

    // Guidance sent during a run's last model call is still pending when the run ends.
    chat.llm.push(slow(6, 100));
    let r = chat
        .app
        .post_json(
            &chat.alice,
            "/api/web-stream",
            body(&chat.agent, "session_pending", "Write"),
        )
        .await;
    let mut live = r.bytes_stream();
    first_lines(&mut live, 1).await;
    let queued = chat
        .app
        .post_json(
            &chat.alice,
            "/api/sessions/session_pending/inject-user-message",
            json!({"content": "Also add tests", "guidance_id": "g_late"}),
        )
        .await;
    assert_eq!(envelope(queued).await["data"]["accepted"], true);
    while live.next().await.is_some() {}
    let pending = chat
        .alice
        .get(
            chat.app
                .url("/api/sessions/session_pending/inject-user-message"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        envelope(pending).await["data"]["items"][0]["guidance_id"],
        "g_late"
    );

    // /api/stream still needs a message; /api/chat takes the guidance as its input.
    let mut stream_body = body(&chat.agent, "session_pending", "");
    stream_body["messages"] = json!([]);
    let refused = chat
        .app
        .post_json(&chat.alice, "/api/stream", stream_body)
        .await;
    assert_eq!(refused.status(), 422);
    let (bob, _) = chat.app.user("bob").await;
    let foreign = chat
        .app
        .post_json(&bob, "/api/chat", empty("session_pending"))
        .await;
    assert_eq!(foreign.status(), 422, "bob sees no guidance of alice's");

    chat.llm.push(Reply::text(&["Tests added."]));
    let (_, text) = post(&chat, &chat.alice, "/api/chat", empty("session_pending")).await;
    let lines = parse(&text);
    assert_eq!(
        kinds(&lines),
        [
            "user_input",
            "do_subtask_result",
            "token_usage",
            "stream_end"
        ],
        "{text}"
    );
    assert_eq!(lines[0]["content"], "Also add tests");
    assert_eq!(lines[0]["metadata"]["guidance_id"], "g_late");
    let sent = chat.llm.chat_requests().pop().unwrap();
    assert_eq!(last_user_content(&sent), "Also add tests");
    let roles: Vec<_> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);
    let drained = chat
        .alice
        .get(
            chat.app
                .url("/api/sessions/session_pending/inject-user-message"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(envelope(drained).await["data"]["items"], json!([]));
}

async fn wait_until_idle(app: &TestApp, client: &reqwest::Client, session: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let event = first_event(app, client).await;
        if event
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["session_id"] != session)
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run kept going: {event}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_departed_chat_client_is_resumed_within_the_grace_period_or_its_run_stops() {
    let chat = setup_with(&[], |c| {
        c.stream_disconnect_grace = Duration::from_secs(2);
    })
    .await;
    for (path, session) in [
        ("/api/chat", "session_back_chat"),
        ("/api/stream", "session_back_stream"),
    ] {
        // Resumed within the grace period: the run goes on to its end (it lasts longer than
        // the grace period).
        chat.llm.push(slow(30, 150));
        let r = chat
            .app
            .post_json(&chat.alice, path, body(&chat.agent, session, "Count"))
            .await;
        let mut s = r.bytes_stream();
        let got = first_lines(&mut s, 1).await;
        drop(s);
        let rest = chat
            .alice
            .get(chat.app.url(&format!(
                "/api/stream/resume/{session}?last_index={}",
                parse(&got).len()
            )))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let mut all = parse(&got);
        all.extend(parse(&rest));
        assert_eq!(
            answer(&all),
            (0..30).map(|i| format!("part{i} ")).collect::<String>(),
            "{path}"
        );
        assert!(all.last().unwrap().get("interrupted").is_none(), "{rest}");
    }

    // Not resumed: the run is interrupted after the grace period and keeps its partial answer.
    for (path, session) in [
        ("/api/chat", "session_gone_chat"),
        ("/api/stream", "session_gone_stream"),
    ] {
        chat.llm.push(slow(200, 100));
        let r = chat
            .app
            .post_json(&chat.alice, path, body(&chat.agent, session, "Long"))
            .await;
        let mut s = r.bytes_stream();
        first_lines(&mut s, 1).await;
        drop(s);
        wait_until_idle(&chat.app, &chat.alice, session).await;
        let logged = parse(
            &chat
                .alice
                .get(chat.app.url(&format!("/api/stream/resume/{session}")))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
        assert_eq!(logged.last().unwrap()["interrupted"], true, "{path}");
        let partial = answer(&logged);
        let deltas = logged
            .iter()
            .filter(|l| l["type"] == "do_subtask_result")
            .count();
        assert!((1..200).contains(&deltas), "{path}: {partial}");

        chat.llm.push(Reply::text(&["Continuing."]));
        post(
            &chat,
            &chat.alice,
            "/api/web-stream",
            body(&chat.agent, session, "Go on"),
        )
        .await;
        let sent = chat.llm.chat_requests().pop().unwrap();
        assert_eq!(sent["messages"][2]["content"], partial, "{path}: persisted");
    }
}

#[tokio::test]
async fn a_second_server_over_postgres_and_redis_resumes_and_interrupts_a_run() {
    let database = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into());
    let redis = std::env::var("TEST_REDIS_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let database = fresh_postgres(&database).await;
    let chat = setup_with(&[], |c| {
        c.database_url = Some(database);
        c.redis_url = Some(redis);
        c.redis_prefix = format!("sage-test:{}:", platform::ids::new_hex_id());
    })
    .await;
    let other = chat.app.another_server().await;

    chat.llm.push(slow(300, 50));
    let r = chat
        .app
        .post_json(
            &chat.alice,
            "/api/web-stream",
            body(&chat.agent, "session_replica", "Long story"),
        )
        .await;
    let mut first = r.bytes_stream();
    let head = first_lines(&mut first, 2).await;
    let head_lines = parse(&head);

    // The second server replays what the first sent and follows it live.
    let resumed = chat
        .alice
        .get(format!(
            "{other}/api/stream/resume/session_replica?last_index=0"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 200);
    let mut follow = resumed.bytes_stream();
    let replayed = first_lines(&mut follow, head_lines.len() + 1).await;
    assert_eq!(
        parse(&replayed)[..head_lines.len()],
        head_lines[..],
        "replayed from the shared log"
    );

    // Interrupted through the second server: the first ends its run.
    let stopped = envelope(
        chat.alice
            .post(format!("{other}/api/sessions/session_replica/interrupt"))
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(stopped["data"]["interrupted"], true);
    let mut rest = head;
    while let Some(chunk) = first.next().await {
        rest.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    let mut followed = replayed;
    while let Some(chunk) = follow.next().await {
        followed.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    let original = parse(&rest);
    assert_eq!(original.last().unwrap()["interrupted"], true);
    assert!(
        original
            .iter()
            .filter(|l| l["type"] == "do_subtask_result")
            .count()
            < 300,
        "stopped early"
    );
    assert_eq!(
        parse(&followed),
        original,
        "the resumed copy is the same run"
    );
}

#[tokio::test]
async fn fifty_concurrent_streams_each_arrive_complete_and_in_order() {
    const STREAMS: usize = 50;
    const CHUNKS: usize = 20;
    let chat = setup_with(&[], |c| c.model_calls_per_minute = 0).await;
    // The double answers in queue order, so each stream's reply is one of these; which one
    // is up to the scheduler.
    for r in 0..STREAMS {
        chat.llm.push(Reply::Answer {
            chunks: (0..CHUNKS).map(|c| format!("r{r}.{c} ")).collect(),
            reasoning: Vec::new(),
            tool_calls: Vec::new(),
            usage: Some(Usage {
                prompt_tokens: 5,
                completion_tokens: CHUNKS as u64,
            }),
            delay: Duration::from_millis(5),
            cut_after: None,
        });
    }
    let runs = (0..STREAMS).map(|i| {
        let chat = &chat;
        async move {
            let path = ["/api/web-stream", "/api/stream", "/api/chat"][i % 3];
            let session = format!("session_many_{i}");
            let (_, text) = post(chat, &chat.alice, path, body(&chat.agent, &session, "Go")).await;
            (session, text)
        }
    });
    let results = futures_util::future::join_all(runs).await;
    let mut replies = Vec::new();
    for (session, text) in &results {
        let lines = parse(text);
        assert!(lines.iter().all(|l| l["session_id"] == session.as_str()));
        assert_eq!(lines.len(), CHUNKS + 2, "{session}: {text}");
        let end = lines.last().unwrap();
        assert_eq!(end["type"], "stream_end");
        assert_eq!(end["total_stream_count"], CHUNKS + 1);
        let answer = answer(&lines);
        let reply = answer
            .split('.')
            .next()
            .unwrap()
            .trim_start_matches('r')
            .parse::<usize>()
            .unwrap();
        let expected: String = (0..CHUNKS).map(|c| format!("r{reply}.{c} ")).collect();
        assert_eq!(answer, expected, "{session}: complete and in order");
        replies.push(reply);
    }
    replies.sort_unstable();
    assert_eq!(replies, (0..STREAMS).collect::<Vec<_>>(), "one reply each");
}

/// Key sequences (every depth, in order) of lines Sage's own server sent; copied from the
/// captures in the contract's examples so the suite runs without them.
const SAGE_TOKEN_USAGE_KEYS: &[&str] = &[
    "role",
    "content",
    "message_id",
    "type",
    "timestamp",
    "metadata",
    "token_usage",
    "total_info",
    "completion_tokens",
    "prompt_tokens",
    "total_tokens",
    "model",
    "models",
    "per_step_info",
    "step_name",
    "model",
    "usage",
    "completion_tokens",
    "prompt_tokens",
    "total_tokens",
    "completion_tokens_details",
    "prompt_tokens_details",
    "models",
    "model",
    "models",
    "session_id",
    "session_id",
];
const SAGE_LOOP_STOP_METADATA_KEYS: &[&str] = &[
    "runtime_generated",
    "runtime_notice",
    "stop_reason",
    "needs_user_input",
    "max_loop_count",
];
const SAGE_TOOL_RESULT_KEYS: &[&str] = &[
    "role",
    "content",
    "message_id",
    "tool_call_id",
    "type",
    "timestamp",
    "agent_name",
    "metadata",
    "tool_execution_status",
    "session_id",
];
const SAGE_FIRST_TOOL_CALL_KEYS: &[&str] = &[
    "role",
    "tool_calls",
    "id",
    "type",
    "index",
    "function",
    "name",
    "arguments",
    "message_id",
    "type",
    "timestamp",
    "agent_name",
    "metadata",
    "session_id",
];

#[tokio::test]
async fn nested_keys_come_in_the_order_sage_sends_them() {
    let chat = setup(&["todo_write"]).await;
    chat.llm.push(call(
        "call_k",
        "todo_write",
        json!({"tasks": [{"id": "t1", "content": "Write", "status": "pending"}]}),
    ));
    let mut limited = body(&chat.agent, "session_keys", "Plan");
    limited["max_loop_count"] = json!(1);
    let (_, text) = post(&chat, &chat.alice, "/api/web-stream", limited).await;
    let line = |kind: &str| {
        text.lines()
            .find(|l| l.contains(&format!("\"type\": \"{kind}\"")))
            .unwrap_or_else(|| panic!("no {kind}: {text}"))
    };
    assert_eq!(all_keys(line("token_usage")), SAGE_TOKEN_USAGE_KEYS);
    assert_eq!(all_keys(line("tool_call_result")), SAGE_TOOL_RESULT_KEYS);
    assert_eq!(all_keys(line("tool_call")), SAGE_FIRST_TOOL_CALL_KEYS);
    let stop = line("assistant_text");
    let metadata = &stop[stop.find("\"metadata\": ").unwrap() + "\"metadata\": ".len()..];
    assert_eq!(
        all_keys(metadata)[..SAGE_LOOP_STOP_METADATA_KEYS.len()],
        *SAGE_LOOP_STOP_METADATA_KEYS
    );

    // A run without a model call: `total_info` is `{}` and `model` null, as Sage sends it.
    chat.llm.push(Reply::error(400, "refused"));
    let (_, text) = post(
        &chat,
        &chat.alice,
        "/api/web-stream",
        body(&chat.agent, "session_keys_empty", "Go"),
    )
    .await;
    let usage = text
        .lines()
        .find(|l| l.contains("\"type\": \"token_usage\""))
        .unwrap();
    assert!(
        usage.contains(r#""metadata": {"token_usage": {"total_info": {}, "per_step_info": [], "models": []}, "model": null, "models": [], "session_id": "session_keys_empty"}"#),
        "{usage}"
    );
}

#[tokio::test]
async fn a_questionnaire_ends_the_turn_and_a_bad_one_goes_back_to_the_model() {
    let chat = setup(&["questionnaire_async"]).await;
    let before = chat.llm.chat_requests().len();
    // A bad questionnaire is an error the model sees; it then asks a good one, which ends the
    // turn without another model call.
    chat.llm.push(call(
        "call_bad",
        "questionnaire_async",
        json!({"questions": [{"type": "rating", "text": "How?"}]}),
    ));
    chat.llm.push(call(
        "call_ask",
        "questionnaire_async",
        json!({"title": "Trip", "questions": [
            {"type": "single_choice", "text": "Where to?", "options": ["Sea", "Hills"], "default": "Sea"},
            {"type": "free_text", "text": "Anything else?"}]}),
    ));
    chat.llm.push(Reply::text(&["never sent"]));
    let (_, text) = post(
        &chat,
        &chat.alice,
        "/api/web-stream",
        body(&chat.agent, "session_questionnaire", "Plan a trip"),
    )
    .await;
    let lines = parse(&text);
    let result = |id: &str| -> Value {
        let line = lines
            .iter()
            .find(|l| l["tool_call_id"] == id)
            .unwrap_or_else(|| panic!("{id}: {text}"));
        serde_json::from_str(line["content"].as_str().unwrap()).unwrap()
    };
    assert_eq!(result("call_bad")["status"], "error");
    let asked = result("call_ask");
    assert_eq!(asked["validation_passed"], true, "{asked}");
    assert_eq!(asked["should_end"], true);
    assert_eq!(asked["questions"][0]["id"], "q1");
    assert_eq!(asked["questions"][1]["type"], "free_text");
    assert_eq!(lines.last().unwrap()["type"], "stream_end");
    assert!(!text.contains("never sent"), "{text}");
    assert_eq!(chat.llm.chat_requests().len(), before + 2);
}

#[tokio::test]
async fn user_memory_recalls_the_callers_other_conversations_and_no_one_elses() {
    let chat = setup(&[]).await;
    let created = |client: &reqwest::Client, name: &str, memory: &str| {
        let body = json!({"name": name, "maxLoopCount": 5, "agentMode": "simple",
                          "availableTools": [], "memoryType": memory});
        let (app, client) = (&chat.app, client.clone());
        async move {
            envelope(app.post_json(&client, "/api/agent/create", body).await).await["data"]
                ["agent_id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let keeper = created(&chat.alice, "Keeper", "user").await;
    // What Alice said before, and what Bob said in his own conversation.
    chat.llm.push(Reply::text(&["Noted."]));
    post(
        &chat,
        &chat.alice,
        "/api/web-stream",
        body(&keeper, "session_memory_1", "My cat is called Miso"),
    )
    .await;
    let (bob, _) = chat.app.user("bob").await;
    crate::chat::provider(&chat.app, &bob, &chat.llm).await;
    let bobs = created(&bob, "Bob's keeper", "user").await;
    chat.llm.push(Reply::text(&["Noted too."]));
    post(
        &chat,
        &bob,
        "/api/web-stream",
        body(&bobs, "session_memory_bob", "My cat is called Whiskers"),
    )
    .await;

    chat.llm.push(call(
        "call_recall",
        "search_memory",
        json!({"query": "CAT called"}),
    ));
    chat.llm.push(Reply::text(&["Miso."]));
    let (_, text) = post(
        &chat,
        &chat.alice,
        "/api/web-stream",
        body(
            &keeper,
            "session_memory_2",
            "What is my cat called? Check what I told you.",
        ),
    )
    .await;
    let line = parse(&text)
        .into_iter()
        .find(|l| l["tool_call_id"] == "call_recall")
        .unwrap_or_else(|| panic!("{text}"));
    let recalled: Value = serde_json::from_str(line["content"].as_str().unwrap()).unwrap();
    assert_eq!(recalled["count"], 1, "{recalled}");
    let memory = &recalled["memories"][0];
    assert_eq!(memory["content"], "My cat is called Miso");
    assert_eq!(memory["session_id"], "session_memory_1");
    assert_eq!(memory["role"], "user");
    assert!(!recalled.to_string().contains("Whiskers"), "{recalled}");

    // An agent without user memory is offered no such tool.
    chat.llm.push(Reply::text(&["Hello."]));
    post(
        &chat,
        &chat.alice,
        "/api/web-stream",
        body(&chat.agent, "session_memory_3", "Hi"),
    )
    .await;
    let last = chat.llm.chat_requests().pop().unwrap();
    assert!(
        last.get("tools")
            .is_none_or(|t| !t.to_string().contains("search_memory")),
        "{last}"
    );
}

#[tokio::test]
async fn analyze_image_shows_a_workspace_image_to_a_model_that_takes_images() {
    use base64::Engine;
    let chat = setup(&["file_write", "analyze_image"]).await;
    let seeing = provider(&chat, true).await;
    chat.llm.push(call(
        "call_save",
        "file_write",
        json!({"file_path": "cat.png", "content": "not really a png"}),
    ));
    chat.llm.push(call(
        "call_look",
        "analyze_image",
        json!({"image_path": "cat.png", "question": "What animal?"}),
    ));
    chat.llm.push(Reply::text(&["A cat on a mat."]));
    chat.llm.push(Reply::text(&["It is a cat."]));
    let mut b = body(&chat.agent, "session_vision", "Look at my picture");
    b["provider_id"] = json!(seeing);
    let (_, text) = post(&chat, &chat.alice, "/api/web-stream", b).await;
    let line = parse(&text)
        .into_iter()
        .find(|l| l["tool_call_id"] == "call_look")
        .unwrap_or_else(|| panic!("{text}"));
    let result: Value = serde_json::from_str(line["content"].as_str().unwrap()).unwrap();
    assert_eq!(result["analysis"], "A cat on a mat.", "{result}");
    assert_eq!(answer(&parse(&text)), "It is a cat.");
    // The image went to the model as a data URL beside the question.
    let look = chat
        .llm
        .chat_requests()
        .into_iter()
        .find(|r| r["messages"][0]["content"][1]["type"] == "image_url")
        .unwrap();
    assert_eq!(look["messages"][0]["content"][0]["text"], "What animal?");
    let url = look["messages"][0]["content"][1]["image_url"]["url"]
        .as_str()
        .unwrap();
    let data = url.strip_prefix("data:image/png;base64,").unwrap();
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap(),
        b"not really a png"
    );

    // A model without image input is not offered the tool.
    let blind = provider(&chat, false).await;
    chat.llm.push(Reply::text(&["I cannot see."]));
    let mut b = body(&chat.agent, "session_blind", "Look again");
    b["provider_id"] = json!(blind);
    post(&chat, &chat.alice, "/api/web-stream", b).await;
    let offered = chat.llm.chat_requests().pop().unwrap()["tools"].to_string();
    assert!(!offered.contains("analyze_image"), "{offered}");
    assert!(offered.contains("file_write"), "{offered}");
}
