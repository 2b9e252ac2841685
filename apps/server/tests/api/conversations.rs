//! Conversation history against real runs of the scripted LLM: listing (paging, search with
//! `%` and `_`, each sort, admin vs user), messages, title, sharing (logged out), download
//! (unzipped), the session's files, usage statistics, edit-then-rerun, delete (also of a live
//! run) and the 404 matrix for another user.

use std::io::Read;

use futures_util::StreamExt;
use llm_double::Reply;
use serde_json::{Value, json};

use crate::chat::{Chat, answer, call, named_agent, parse, provider, setup_with, slow};
use crate::helpers::{TestApp, envelope};

type Setup = Chat;

async fn setup(tools: &[&str]) -> Setup {
    setup_with(tools, |c| c.model_calls_per_minute = 0).await
}

async fn agent(app: &TestApp, client: &reqwest::Client, name: &str, tools: &[&str]) -> String {
    named_agent(app, client, name, tools, "simple").await
}

/// Runs one web-stream turn to its end; its lines.
async fn run(
    s: &Setup,
    client: &reqwest::Client,
    agent: &str,
    session: &str,
    text: &str,
) -> Vec<Value> {
    let r = s
        .app
        .post_json(
            client,
            "/api/web-stream",
            json!({"messages": [{"role": "user", "content": text}], "session_id": session,
                   "agent_id": agent, "max_loop_count": 5}),
        )
        .await;
    assert_eq!(r.status(), 200, "run {session}");
    let lines = parse(&r.text().await.unwrap());
    assert_eq!(lines.last().unwrap()["type"], "stream_end", "{lines:?}");
    lines
}

async fn get(s: &Setup, client: &reqwest::Client, path: &str) -> reqwest::Response {
    client.get(s.app.url(path)).send().await.unwrap()
}

async fn list(s: &Setup, client: &reqwest::Client, query: &str) -> Value {
    let r = get(s, client, &format!("/api/conversations{query}")).await;
    assert_eq!(r.status(), 200, "{query}");
    envelope(r).await["data"].clone()
}

fn ids(page: &Value) -> Vec<String> {
    page["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["session_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_list_pages_searches_literally_sorts_and_scopes_to_the_caller() {
    let s = setup(&[]).await;
    let (bob, bob_id) = s.app.user("bob").await;
    provider(&s.app, &bob, &s.llm).await;
    let bob_agent = agent(&s.app, &bob, "Bob's helper", &[]).await;
    let other_agent = agent(&s.app, &s.alice, "Second helper", &[]).await;
    for (session, text, agent) in [
        ("conv-a", "Alpha 100% done", &s.agent),
        ("conv-b", "Beta_test", &s.agent),
        ("conv-c", "Gamma plain", &s.agent),
        ("conv-d", "Delta other agent", &other_agent),
    ] {
        s.llm.push(Reply::text(&["Answer ", session]));
        run(&s, &s.alice, agent, session, text).await;
    }
    // A second turn: conv-c has the most messages and is the most recent.
    s.llm.push(Reply::text(&["More"]));
    run(&s, &s.alice, &s.agent, "conv-c", "And more").await;
    s.llm.push(Reply::text(&["Bob's answer"]));
    run(&s, &bob, &bob_agent, "conv-bob", "Alpha of Bob").await;

    // Default: newest first, real counts, Sage's item shape.
    let page = list(&s, &s.alice, "").await;
    assert_eq!(ids(&page), ["conv-c", "conv-d", "conv-b", "conv-a"]);
    assert_eq!(page["total"], 4);
    assert_eq!(page["page"], 1);
    assert_eq!(page["page_size"], 10);
    assert_eq!(page["total_pages"], 1);
    assert_eq!(page["has_next"], false);
    assert_eq!(page["has_prev"], false);
    assert_eq!(page["user_id"], s.alice_id);
    let c = &page["list"][0];
    assert_eq!(c["message_count"], 4, "{c}");
    assert_eq!(c["user_count"], 2);
    assert_eq!(c["agent_count"], 2);
    assert_eq!(c["title"], "Gamma plain");
    assert_eq!(c["agent_id"], s.agent);
    assert_eq!(c["agent_name"], "Helper simple 0");
    assert_eq!(c["user_id"], s.alice_id);
    assert_eq!(c["shared"], false);
    let trace = c["trace_id"].as_str().unwrap();
    assert!(
        trace.len() == 32 && trace.chars().all(|ch| ch.is_ascii_hexdigit()),
        "{trace}"
    );
    assert!(c["created_at"].as_str().unwrap().starts_with("20"));
    assert_eq!(page["list"][3]["message_count"], 2);

    // Paging.
    let first = list(&s, &s.alice, "?page=1&page_size=3").await;
    assert_eq!(ids(&first), ["conv-c", "conv-d", "conv-b"]);
    assert_eq!(first["total_pages"], 2);
    assert_eq!(first["has_next"], true);
    assert_eq!(first["has_prev"], false);
    let second = list(&s, &s.alice, "?page=2&page_size=3").await;
    assert_eq!(ids(&second), ["conv-a"]);
    assert_eq!(second["has_next"], false);
    assert_eq!(second["has_prev"], true);
    let beyond = list(&s, &s.alice, "?page=9&page_size=3").await;
    assert_eq!(beyond["list"], json!([]));
    assert_eq!(beyond["total"], 4);

    // Search: case-insensitive, title or session id, `%` and `_` literal.
    for (query, expected) in [
        ("search=100%25", vec!["conv-a"]),
        ("search=%25", vec!["conv-a"]),
        ("search=_", vec!["conv-b"]),
        ("search=a_1", vec![]),
        ("search=ALPHA", vec!["conv-a"]),
        ("search=conv-b", vec!["conv-b"]),
        ("search=", vec!["conv-c", "conv-d", "conv-b", "conv-a"]),
    ] {
        let page = list(&s, &s.alice, &format!("?{query}")).await;
        assert_eq!(ids(&page), expected, "{query}");
        assert_eq!(page["total"], expected.len(), "{query}");
    }

    // Each sort, and the agent filter.
    let by_title = list(&s, &s.alice, "?sort_by=title").await;
    assert_eq!(ids(&by_title), ["conv-a", "conv-b", "conv-d", "conv-c"]);
    let by_messages = list(&s, &s.alice, "?sort_by=messages").await;
    assert_eq!(ids(&by_messages)[0], "conv-c");
    assert_eq!(by_messages["list"][1]["message_count"], 2);
    let by_date = list(&s, &s.alice, "?sort_by=date").await;
    assert_eq!(ids(&by_date), ids(&page));
    let of_agent = list(&s, &s.alice, &format!("?agent_id={other_agent}")).await;
    assert_eq!(ids(&of_agent), ["conv-d"]);

    // Bad parameters are 422; the UI's empty values are unset.
    for query in [
        "?page=0",
        "?page=abc",
        "?page_size=0",
        "?page_size=101",
        "?sort_by=size",
    ] {
        let r = get(&s, &s.alice, &format!("/api/conversations{query}")).await;
        assert_eq!(r.status(), 422, "{query}");
        assert_eq!(envelope(r).await["error_code"], "request.validation");
    }
    let empty = list(&s, &s.alice, "?page=&page_size=&sort_by=&agent_id=").await;
    assert_eq!(empty["total"], 4);

    // Bob sees his own, whatever user_id he names.
    let of_bob = list(&s, &bob, &format!("?user_id={}", s.alice_id)).await;
    assert_eq!(ids(&of_bob), ["conv-bob"]);
    assert_eq!(of_bob["user_id"], bob_id);
    let search_bob = list(&s, &bob, "?search=alpha").await;
    assert_eq!(ids(&search_bob), ["conv-bob"]);

    // Admins see everyone's, or one user's.
    let admin = s.app.admin().await;
    let all = list(&s, &admin, "?page_size=100").await;
    assert_eq!(all["total"], 5);
    assert!(all.get("user_id").is_none(), "{all}");
    let of_alice = list(&s, &admin, &format!("?user_id={}", s.alice_id)).await;
    assert_eq!(of_alice["total"], 4);
    let searched = list(&s, &admin, "?search=alpha&sort_by=title").await;
    assert_eq!(ids(&searched), ["conv-a", "conv-bob"]);
}

fn unzip(bytes: &[u8]) -> std::collections::BTreeMap<String, String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let mut out = std::collections::BTreeMap::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).unwrap();
        if file.is_dir() {
            continue;
        }
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        out.insert(file.name().unwrap().to_string(), text);
    }
    out
}

/// (status, error_code, message) of a response.
async fn outcome(r: reqwest::Response) -> (u16, Value, Value) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    (status, body["error_code"].clone(), body["message"].clone())
}

#[tokio::test]
async fn messages_title_share_download_files_statistics_delete_and_the_404_matrix() {
    let s = setup(&["file_write"]).await;
    s.llm.push(call(
        "call_w1",
        "file_write",
        json!({"file_path": "out/report.md", "content": "# Report\n"}),
    ));
    s.llm.push(Reply::text(&["Done", "."]));
    let lines = run(&s, &s.alice, &s.agent, "conv-t", "Write the report").await;
    assert_eq!(answer(&lines), "Done.");

    // Whole messages, Sage's shape, idle replay position.
    let r = get(&s, &s.alice, "/api/conversations/conv-t/messages").await;
    assert_eq!(r.status(), 200);
    let data = envelope(r).await["data"].clone();
    assert_eq!(data["conversation_id"], "conv-t");
    assert_eq!(data["next_stream_index"], 0);
    assert_eq!(data["message_count"], 4, "{data}");
    let messages = data["messages"].as_array().unwrap();
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "tool", "assistant"]);
    assert_eq!(messages[0]["content"], "Write the report");
    assert_eq!(messages[0]["type"], "user_input");
    assert_eq!(messages[0]["message_type"], "user_input");
    assert_eq!(messages[1]["type"], "tool_call");
    assert_eq!(
        messages[1]["tool_calls"][0]["function"]["name"],
        "file_write"
    );
    assert_eq!(messages[2]["tool_call_id"], "call_w1");
    assert_eq!(messages[3]["content"], "Done.");
    for m in messages {
        assert_eq!(m["session_id"], "conv-t");
        assert!(m["timestamp"].as_f64().unwrap() > 1.7e9);
        assert!(m["message_id"].is_string());
    }
    let info = &data["conversation_info"];
    assert_eq!(info["session_id"], "conv-t");
    assert_eq!(info["agent_id"], s.agent);
    assert_eq!(info["title"], "Write the report");

    // Title.
    let r = s
        .app
        .post_json(
            &s.alice,
            "/api/conversations/conv-t/title",
            json!({"title": "  Renamed report  "}),
        )
        .await;
    let renamed = envelope(r).await;
    assert_eq!(
        renamed["data"],
        json!({"session_id": "conv-t", "title": "Renamed report"})
    );
    assert_eq!(
        list(&s, &s.alice, "").await["list"][0]["title"],
        "Renamed report"
    );
    let r = s
        .app
        .post_json(
            &s.alice,
            "/api/conversations/conv-t/title",
            json!({"title": " "}),
        )
        .await;
    assert_eq!(r.status(), 422);

    // Sharing: a logged-out reader only while shared.
    let anonymous = s.app.new_client();
    let share_path = "/api/share/conversations/conv-t/messages";
    assert_eq!(get(&s, &anonymous, share_path).await.status(), 404);
    let r = s
        .app
        .post_json(
            &s.alice,
            "/api/conversations/conv-t/share",
            json!({"shared": true}),
        )
        .await;
    let shared = envelope(r).await["data"].clone();
    assert_eq!(shared["shared"], true);
    assert_eq!(shared["share_path"], share_path);
    let r = get(&s, &anonymous, share_path).await;
    assert_eq!(r.status(), 200);
    let public = envelope(r).await["data"].clone();
    assert_eq!(public["messages"], data["messages"]);
    assert_eq!(public["conversation_info"]["title"], "Renamed report");
    // Sharing opens nothing else.
    assert_eq!(
        get(&s, &anonymous, "/api/conversations/conv-t/messages")
            .await
            .status(),
        401
    );
    let r = s
        .app
        .post_json(
            &s.alice,
            "/api/conversations/conv-t/share",
            json!({"shared": false}),
        )
        .await;
    assert_eq!(envelope(r).await["data"]["shared"], false);
    assert_eq!(get(&s, &anonymous, share_path).await.status(), 404);
    let r = s
        .app
        .post_json(
            &s.alice,
            "/api/conversations/conv-t/share",
            json!({"shared": true}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(get(&s, &anonymous, share_path).await.status(), 200);

    // Download: messages, transcript and the run's workspace output.
    let r = get(&s, &s.alice, "/api/sessions/conv-t/download").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/zip");
    assert_eq!(
        r.headers()["content-disposition"],
        "attachment; filename=\"conv-t.zip\""
    );
    let files = unzip(&r.bytes().await.unwrap());
    let exported: Value = serde_json::from_str(&files["messages.json"]).unwrap();
    assert_eq!(exported["messages"], data["messages"]);
    assert_eq!(exported["conversation_info"]["session_id"], "conv-t");
    let transcript = &files["transcript.md"];
    assert!(transcript.starts_with("# Renamed report"), "{transcript}");
    assert!(transcript.contains("Write the report"), "{transcript}");
    assert!(
        transcript.contains("Tool call `file_write`"),
        "{transcript}"
    );
    assert!(transcript.contains("Done."), "{transcript}");
    assert_eq!(files["workspace/out/report.md"], "# Report\n");

    // Tool-call statistics over the caller's conversations.
    let r = s
        .app
        .post_json(
            &s.alice,
            "/api/system/agent/usage-stats",
            json!({"days": 7}),
        )
        .await;
    assert_eq!(
        envelope(r).await["data"],
        json!({"usage": {"file_write": 1}})
    );
    let r = s
        .app
        .post_json(
            &s.alice,
            "/api/system/agent/usage-stats",
            json!({"days": 7, "agent_id": "agent_other"}),
        )
        .await;
    assert_eq!(envelope(r).await["data"], json!({"usage": {}}));
    let r = s
        .app
        .post_json(
            &s.alice,
            "/api/system/agent/usage-stats",
            json!({"days": 366}),
        )
        .await;
    assert_eq!(r.status(), 422);

    // Token usage: the session's two model calls.
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let r = s
        .app
        .post_json(
            &s.alice,
            "/api/token-usage/stats",
            json!({"dimension": "session", "session_id": "conv-t"}),
        )
        .await;
    let stats = envelope(r).await["data"].clone();
    assert_eq!(stats["summary"]["session_count"], 1, "{stats}");
    assert_eq!(stats["summary"]["model_call_count"], 2);
    assert_eq!(stats["summary"]["input_tokens"], 31);
    assert_eq!(stats["summary"]["output_tokens"], 7);
    assert_eq!(stats["summary"]["total_tokens"], 38);
    assert_eq!(stats["summary"]["average_tokens_per_session"], 38.0);
    assert_eq!(stats["items"][0]["session_id"], "conv-t");
    let r = s
        .app
        .post_json(
            &s.alice,
            "/api/token-usage/stats",
            json!({"dimension": "agent", "start_date": today, "end_date": today}),
        )
        .await;
    let by_agent = envelope(r).await["data"].clone();
    assert_eq!(by_agent["items"][0]["agent_id"], s.agent, "{by_agent}");
    assert_eq!(by_agent["items"][0]["run_count"], 1);
    for bad in [
        json!({"dimension": "agent"}),
        json!({"dimension": "agent", "start_date": today}),
        json!({"dimension": "model", "start_date": today, "end_date": today}),
        json!({"dimension": "user", "start_date": "yesterday", "end_date": today}),
        json!({"dimension": "user", "start_date": today, "end_date": today, "extra": 1}),
    ] {
        let r = s
            .app
            .post_json(&s.alice, "/api/token-usage/stats", bad.clone())
            .await;
        assert_eq!(r.status(), 422, "{bad}");
    }
    let r = s
        .app
        .post_json(
            &anonymous,
            "/api/token-usage/stats",
            json!({"dimension": "session", "session_id": "conv-t"}),
        )
        .await;
    assert_eq!(r.status(), 401);

    // The 404 matrix: Bob on Alice's conversation answers exactly as on a missing one.
    let (bob, _) = s.app.user("bob").await;
    let admin = s.app.admin().await;
    let calls: Vec<(&str, &str, Option<Value>)> = vec![
        ("GET", "/api/conversations/{}/messages", None),
        (
            "POST",
            "/api/conversations/{}/title",
            Some(json!({"title": "Mine"})),
        ),
        ("DELETE", "/api/conversations/{}", None),
        (
            "POST",
            "/api/conversations/{}/edit-last-user-message",
            Some(json!({"content": "Mine"})),
        ),
        (
            "POST",
            "/api/conversations/{}/rerun-stream",
            Some(json!({})),
        ),
        (
            "POST",
            "/api/conversations/{}/share",
            Some(json!({"shared": false})),
        ),
        ("GET", "/api/sessions/{}/download", None),
        (
            "DELETE",
            "/api/sessions/{}/file_workspace/delete?file_path=out/report.md",
            None,
        ),
        ("POST", "/api/sessions/{}/file_workspace", Some(json!({}))),
        (
            "GET",
            "/api/sessions/{}/file_workspace/download?file_path=out/report.md",
            None,
        ),
        ("GET", "/api/stream/resume/{}?last_index=0", None),
        ("POST", "/api/sessions/{}/interrupt", None),
        ("POST", "/api/sessions/{}/tasks_status", None),
    ];
    for (method, path, body) in &calls {
        let send = |id: &str| {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let mut request = bob.request(method, s.app.url(&path.replace("{}", id)));
            if let Some(b) = body {
                request = request.json(b);
            }
            request.send()
        };
        let foreign = outcome(send("conv-t").await.unwrap()).await;
        let missing = outcome(send("conv-zz").await.unwrap()).await;
        assert_eq!(foreign.0, 404, "{method} {path}: {foreign:?}");
        assert_eq!(foreign, missing, "{method} {path}");
    }
    // The admin may read and download, but sharing stays the owner's.
    assert_eq!(
        get(&s, &admin, "/api/conversations/conv-t/messages")
            .await
            .status(),
        200
    );
    assert_eq!(
        get(&s, &admin, "/api/sessions/conv-t/download")
            .await
            .status(),
        200
    );
    let r = s
        .app
        .post_json(
            &admin,
            "/api/conversations/conv-t/share",
            json!({"shared": false}),
        )
        .await;
    assert_eq!(r.status(), 404);
    // Nothing of Alice's changed.
    assert_eq!(get(&s, &anonymous, share_path).await.status(), 200);
    let r = get(&s, &s.alice, "/api/conversations/conv-t/messages").await;
    assert_eq!(envelope(r).await["data"]["message_count"], 4);
    let r = s
        .app
        .post_json(&bob, "/api/system/agent/usage-stats", json!({"days": 30}))
        .await;
    assert_eq!(envelope(r).await["data"], json!({"usage": {}}));

    // The session's files (the web UI's file panel): listed and downloaded by session id,
    // confined like the agent workspace.
    let r = s
        .app
        .post_json(&s.alice, "/api/sessions/conv-t/file_workspace", json!({}))
        .await;
    let listing = envelope(r).await["data"].clone();
    let paths: Vec<&str> = listing["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"out/report.md"), "{listing}");
    assert_eq!(listing["agent_id"], s.agent.as_str());
    let r = get(
        &s,
        &s.alice,
        "/api/sessions/conv-t/file_workspace/download?file_path=out/report.md",
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "# Report\n");
    let r = get(
        &s,
        &s.alice,
        "/api/sessions/conv-t/file_workspace/download?file_path=../escape.txt",
    )
    .await;
    assert_eq!(r.status(), 400);
    let delete_file = |query: &str| {
        s.alice
            .delete(s.app.url(&format!(
                "/api/sessions/conv-t/file_workspace/delete?{query}"
            )))
            .send()
    };
    let r = delete_file("file_path=../escape.txt").await.unwrap();
    assert_eq!(r.status(), 400);
    let r = delete_file("file_path=out/report.md").await.unwrap();
    assert_eq!(
        envelope(r).await["data"],
        json!({"file_path": "out/report.md", "deleted": true})
    );
    let r = delete_file("file_path=out/report.md").await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(envelope(r).await["error_code"], "workspace.not_found");
    let r = delete_file("file_path=out/report.md&missing_ok=true")
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = get(&s, &s.alice, "/api/sessions/conv-t/download").await;
    let files = unzip(&r.bytes().await.unwrap());
    assert!(!files.contains_key("workspace/out/report.md"), "{files:?}");

    // Delete: the conversation, its messages and share state go; usage stays, unlinked.
    let r = s
        .alice
        .delete(s.app.url("/api/conversations/conv-t"))
        .send()
        .await
        .unwrap();
    assert_eq!(envelope(r).await["data"], json!({"session_id": "conv-t"}));
    let r = get(&s, &s.alice, "/api/conversations/conv-t/messages").await;
    assert_eq!(r.status(), 404);
    assert_eq!(envelope(r).await["error_code"], "chat.session_not_found");
    assert_eq!(get(&s, &anonymous, share_path).await.status(), 404);
    assert_eq!(list(&s, &s.alice, "").await["total"], 0);
    let r = s
        .alice
        .delete(s.app.url("/api/conversations/conv-t"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = s
        .app
        .post_json(
            &s.alice,
            "/api/token-usage/stats",
            json!({"dimension": "user", "start_date": today, "end_date": today}),
        )
        .await;
    let after = envelope(r).await["data"].clone();
    assert_eq!(after["summary"]["total_tokens"], 38, "{after}");
    assert_eq!(after["summary"]["session_count"], 0);
    let r = s
        .app
        .post_json(
            &s.alice,
            "/api/system/agent/usage-stats",
            json!({"days": 7}),
        )
        .await;
    assert_eq!(envelope(r).await["data"], json!({"usage": {}}));
    // The session id can start a new conversation; the old messages do not come back.
    s.llm.push(Reply::text(&["Fresh"]));
    run(&s, &s.alice, &s.agent, "conv-t", "Start again").await;
    let r = get(&s, &s.alice, "/api/conversations/conv-t/messages").await;
    let fresh = envelope(r).await["data"].clone();
    assert_eq!(fresh["message_count"], 2, "{fresh}");
    assert_eq!(list(&s, &s.alice, "").await["list"][0]["shared"], false);
}

#[tokio::test]
async fn an_edit_then_rerun_sends_the_edited_text_and_not_the_old_answer() {
    let s = setup(&[]).await;
    s.llm.push(Reply::text(&["OLD ANSWER ", "four"]));
    run(&s, &s.alice, &s.agent, "conv-e", "What is two plus two?").await;

    let r = s
        .app
        .post_json(
            &s.alice,
            "/api/conversations/conv-e/edit-last-user-message",
            json!({"content": "<enable_plan>false</enable_plan>What is three plus three?"}),
        )
        .await;
    let edited = envelope(r).await["data"].clone();
    assert_eq!(edited["session_id"], "conv-e");
    assert_eq!(edited["title"], "What is three plus three?");
    assert_eq!(edited["message_count"], 1);
    assert_eq!(
        edited["last_user_message"]["content"],
        "What is three plus three?"
    );
    let r = get(&s, &s.alice, "/api/conversations/conv-e/messages").await;
    let data = envelope(r).await["data"].clone();
    assert_eq!(data["message_count"], 1, "{data}");
    assert_eq!(list(&s, &s.alice, "").await["list"][0]["message_count"], 1);

    s.llm.push(Reply::text(&["NEW ANSWER ", "six"]));
    let before = s.llm.chat_requests().len();
    let r = s
        .app
        .post_json(
            &s.alice,
            "/api/conversations/conv-e/rerun-stream",
            json!({"ignored_key": true}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
    let lines = parse(&r.text().await.unwrap());
    assert_eq!(answer(&lines), "NEW ANSWER six");
    assert_eq!(lines.last().unwrap()["type"], "stream_end");
    assert!(lines.iter().all(|l| l["session_id"] == "conv-e"));
    let requests = s.llm.chat_requests();
    assert_eq!(requests.len(), before + 1);
    let sent = requests.last().unwrap().to_string();
    assert!(sent.contains("What is three plus three?"), "{sent}");
    assert!(!sent.contains("two plus two"), "{sent}");
    assert!(!sent.contains("OLD ANSWER"), "{sent}");
    assert!(sent.contains("rerun_from_edit_last_user_message"), "{sent}");
    let sent = requests.last().unwrap();
    let sent_messages = sent["messages"].as_array().unwrap();
    assert_eq!(sent_messages.last().unwrap()["role"], "user");
    let r = get(&s, &s.alice, "/api/conversations/conv-e/messages").await;
    let data = envelope(r).await["data"].clone();
    let texts: Vec<&str> = data["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["What is three plus three?", "NEW ANSWER six"]);

    // With guidance: a new user message after the stored history.
    s.llm.push(Reply::text(&["EIGHT"]));
    let r = s
        .app
        .post_json(
            &s.alice,
            "/api/conversations/conv-e/rerun-stream",
            json!({"guidance_content": "And four plus four?", "guidance_id": "g-1"}),
        )
        .await;
    let lines = parse(&r.text().await.unwrap());
    assert_eq!(answer(&lines), "EIGHT");
    let sent = s.llm.chat_requests().pop().unwrap();
    let sent_messages = sent["messages"].as_array().unwrap();
    let n = sent_messages.len();
    assert_eq!(sent_messages[n - 1]["content"], "And four plus four?");
    assert_eq!(sent_messages[n - 2]["content"], "NEW ANSWER six");
    let r = get(&s, &s.alice, "/api/conversations/conv-e/messages").await;
    let data = envelope(r).await["data"].clone();
    assert_eq!(data["message_count"], 4);
    assert_eq!(data["messages"][2]["message_id"], "g-1");

    // Each re-run is a usage row of its own source.
    let r = s
        .app
        .post_json(
            &s.alice,
            "/api/token-usage/stats",
            json!({"dimension": "session", "session_id": "conv-e",
                   "request_source": "api/conversations/rerun-stream"}),
        )
        .await;
    let stats = envelope(r).await["data"].clone();
    assert_eq!(stats["items"][0]["run_count"], 2, "{stats}");

    // Empty content, and an unknown conversation.
    let r = s
        .app
        .post_json(
            &s.alice,
            "/api/conversations/conv-e/edit-last-user-message",
            json!({"content": "  "}),
        )
        .await;
    assert_eq!(r.status(), 422);
    let r = s
        .app
        .post_json(
            &s.alice,
            "/api/conversations/conv-none/rerun-stream",
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn a_live_run_shows_its_replay_position_and_is_stopped_by_delete() {
    let s = setup(&[]).await;
    s.llm.push(slow(60, 100));
    let r = s
        .app
        .post_json(
            &s.alice,
            "/api/web-stream",
            json!({"messages": [{"role": "user", "content": "Go slow"}], "session_id": "conv-live",
                   "agent_id": s.agent, "max_loop_count": 5}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let mut live = r.bytes_stream();
    let mut head = String::new();
    while head.lines().filter(|l| l.starts_with('{')).count() < 2 {
        let chunk = live.next().await.unwrap().unwrap();
        head.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    // While it runs: what is stored so far, and where the live log stands.
    let r = get(&s, &s.alice, "/api/conversations/conv-live/messages").await;
    let data = envelope(r).await["data"].clone();
    assert!(data["next_stream_index"].as_u64().unwrap() >= 2, "{data}");
    assert_eq!(data["messages"][0]["content"], "Go slow");

    let r = s
        .alice
        .delete(s.app.url("/api/conversations/conv-live"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The run was stopped: its stream ends long before 60 chunks.
    let mut rest = head;
    while let Some(chunk) = live.next().await {
        rest.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    assert!(!rest.contains("part59"), "{rest}");
    let r = get(&s, &s.alice, "/api/conversations/conv-live/messages").await;
    assert_eq!(r.status(), 404);
    assert_eq!(list(&s, &s.alice, "").await["total"], 0);
    let r = get(&s, &s.alice, "/api/stream/resume/conv-live?last_index=0").await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn deleting_a_user_stops_their_runs_and_removes_their_conversations() {
    let s = setup(&[]).await;
    s.llm.push(Reply::text(&["Kept answer"]));
    run(&s, &s.alice, &s.agent, "conv-gone", "Remember this").await;
    s.llm.push(slow(60, 100));
    let r = s
        .app
        .post_json(
            &s.alice,
            "/api/web-stream",
            json!({"messages": [{"role": "user", "content": "Go slow"}], "session_id": "conv-running",
                   "agent_id": s.agent, "max_loop_count": 5}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let mut live = r.bytes_stream();
    let mut seen = String::new();
    while seen.lines().filter(|l| l.starts_with('{')).count() < 2 {
        let chunk = live.next().await.unwrap().unwrap();
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let admin = s.app.admin().await;
    let before = list(&s, &admin, &format!("?user_id={}", s.alice_id)).await;
    assert_eq!(before["total"], 2);

    let r = s
        .app
        .post_json(&admin, "/api/user/delete", json!({"user_id": s.alice_id}))
        .await;
    assert_eq!(r.status(), 200);
    // The live run was stopped, and nothing of either conversation is left to read.
    while let Some(chunk) = live.next().await {
        seen.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    assert!(!seen.contains("part59"), "{seen}");
    let after = list(&s, &admin, &format!("?user_id={}", s.alice_id)).await;
    assert_eq!(after["total"], 0, "{after}");
    assert_eq!(after["list"], json!([]));
    for session in ["conv-gone", "conv-running"] {
        let r = get(
            &s,
            &admin,
            &format!("/api/conversations/{session}/messages"),
        )
        .await;
        assert_eq!(r.status(), 404, "{session}");
        let r = get(
            &s,
            &admin,
            &format!("/api/stream/resume/{session}?last_index=0"),
        )
        .await;
        assert_eq!(r.status(), 404, "{session}");
    }
}
