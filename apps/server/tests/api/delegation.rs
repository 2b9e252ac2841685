//! Sub-agents of fibre and team runs: spawning an expert, delegating to it and continuing
//! its child session in a later run; a team delegating to the caller's saved agents only;
//! an interrupt reaching a sub-agent's run.

use llm_double::Reply;
use serde_json::{Value, json};

use crate::chat::{Chat, body, call, named_agent, parse, post, setup, slow, tool_names};
use crate::helpers::envelope;

/// The model calls of runs (the provider check at its creation left out).
fn model_calls(chat: &Chat) -> Vec<Value> {
    chat.llm
        .chat_requests()
        .into_iter()
        .filter(|r| r["messages"][0]["role"] == "system")
        .collect()
}

/// The lines of one session.
fn of<'a>(lines: &'a [Value], session: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| l["session_id"] == session)
        .collect()
}

fn text_of(lines: &[&Value]) -> String {
    lines
        .iter()
        .filter(|l| l["type"] == "do_subtask_result")
        .map(|l| l["content"].as_str().unwrap())
        .collect()
}

/// The parsed result of the tool call `id`.
fn result_of(lines: &[Value], id: &str) -> Value {
    let line = lines
        .iter()
        .find(|l| l["type"] == "tool_call_result" && l["tool_call_id"] == id)
        .unwrap_or_else(|| panic!("no result for {id}"));
    serde_json::from_str(line["content"].as_str().unwrap()).unwrap()
}

fn system_of(request: &Value) -> String {
    request["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The `<sub_agents>` section of a system prompt ("" when there is none).
fn sub_agents_section(system: &str) -> String {
    match (system.find("<sub_agents>"), system.find("</sub_agents>")) {
        (Some(a), Some(b)) => system[a..b].to_owned(),
        _ => String::new(),
    }
}

/// What `/api/conversations/{session}/messages` answers as `messages`.
async fn stored_messages(chat: &Chat, session: &str) -> Value {
    let r = chat
        .alice
        .get(
            chat.app
                .url(&format!("/api/conversations/{session}/messages")),
        )
        .send()
        .await
        .unwrap();
    envelope(r).await["data"]["messages"].clone()
}

/// An agent with its own prompt and no tools.
async fn member(chat: &Chat, client: &reqwest::Client, name: &str, mode: &str) -> String {
    let r = chat
        .app
        .post_json(
            client,
            "/api/agent/create",
            json!({"name": name, "maxLoopCount": 3, "agentMode": mode, "availableTools": [],
                   "description": format!("{name} does {name}'s work"),
                   "systemPrefix": format!("You are {name}.")}),
        )
        .await;
    envelope(r).await["data"]["agent_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_fibre_run_spawns_an_expert_delegates_to_it_and_a_later_run_continues_its_session() {
    let chat = setup(&[]).await;
    let lead = named_agent(&chat.app, &chat.alice, "Lead", &["todo_write"], "fibre").await;
    let session = "session_fibre_team";
    chat.llm.push(call(
        "call_spawn",
        "sys_spawn_agent",
        json!({"name": "Eric", "description": "Arithmetic expert",
               "system_prompt": "You are Eric, a careful arithmetic expert."}),
    ));
    chat.llm.push(call(
        "call_delegate",
        "sys_delegate_task",
        json!({"tasks": [{"agent_id": "Eric", "task_name": "sum", "original_task": "Add",
                          "content": "Add 2 and 3.", "session_id": ""}]}),
    ));
    chat.llm.push(Reply::text(&["Five", "."]));
    chat.llm.push(Reply::text(&["Eric says five."]));
    let mut b = body(&lead, session, "Ask an expert what 2 + 3 is");
    b["agent_mode"] = json!("fibre");
    let (_, text) = post(&chat, &chat.alice, "/api/web-stream", b).await;
    let lines = parse(&text);

    // The parent's lines: its own answer, as the fibre agent.
    let parent = of(&lines, session);
    assert_eq!(text_of(&parent), "Eric says five.", "{text}");
    assert!(
        parent
            .iter()
            .filter(|l| l.get("agent_name").is_some())
            .all(|l| l["agent_name"] == "FibreAgent"),
        "{text}"
    );
    let spawned = result_of(&lines, "call_spawn");
    assert_eq!(spawned["status"], "success", "{spawned}");
    let eric = spawned["agent_id"].as_str().unwrap().to_owned();

    // The delegation's result names the child session and carries Eric's answer.
    let delegated = result_of(&lines, "call_delegate");
    let outcome = &delegated["results"][0];
    assert_eq!(delegated["status"], "success", "{delegated}");
    assert_eq!(outcome["status"], "success");
    assert_eq!(outcome["result"], "Five.");
    assert_eq!(outcome["agent_id"], eric.as_str());
    assert_eq!(outcome["agent_name"], "Eric");
    assert_eq!(outcome["task_name"], "sum");
    let child = outcome["session_id"].as_str().unwrap().to_owned();
    assert!(child.starts_with(&format!("{session}_sub_")), "{child}");

    // The child's lines are in the same stream, before the result, naming its session.
    let child_lines = of(&lines, &child);
    assert_eq!(child_lines[0]["type"], "user_input");
    assert_eq!(child_lines[0]["content"], "Add 2 and 3.");
    assert_eq!(text_of(&child_lines), "Five.");
    assert!(
        child_lines
            .iter()
            .filter(|l| l["role"] == "assistant")
            .all(|l| l["agent_name"] == "Eric")
    );
    let position = |pred: &dyn Fn(&Value) -> bool| lines.iter().position(pred).unwrap();
    assert!(
        position(&|l| l["session_id"] == child.as_str())
            < position(&|l| l["tool_call_id"] == "call_delegate")
    );
    assert_eq!(
        lines.last().unwrap()["total_stream_count"],
        json!(lines.len() - 1)
    );

    // What the models saw: the parent the delegation tools and its sub-agents, Eric his
    // persona, the task and the parent's tools without delegation, the parent Eric's answer.
    let requests = model_calls(&chat);
    assert_eq!(requests.len(), 4);
    assert_eq!(
        tool_names(&requests[0]),
        ["todo_write", "sys_spawn_agent", "sys_delegate_task"]
    );
    assert!(system_of(&requests[0]).contains("<sub_agents>"));
    assert!(system_of(&requests[2]).starts_with("You are Eric, a careful arithmetic expert."));
    let child_messages = requests[2]["messages"].as_array().unwrap();
    assert_eq!(child_messages.len(), 2, "{child_messages:?}");
    assert_eq!(child_messages[1]["content"], "Add 2 and 3.");
    assert_eq!(tool_names(&requests[2]), ["todo_write"]);
    let last = requests[3]["messages"].as_array().unwrap().last().unwrap();
    assert_eq!(last["role"], "tool");
    assert!(last["content"].as_str().unwrap().contains("Five."));

    // Usage counts the sub-agent's step: 20 + 20 + 11 for the parent, 11 for Eric.
    let usage = lines.iter().find(|l| l["type"] == "token_usage").unwrap();
    assert_eq!(
        usage["metadata"]["token_usage"]["total_info"]["prompt_tokens"],
        62
    );

    // The stored conversation shows the child's messages under the child session.
    let messages = stored_messages(&chat, session).await;
    let messages = messages.as_array().unwrap();
    let in_child: Vec<&Value> = messages
        .iter()
        .filter(|m| m["session_id"] == child.as_str())
        .collect();
    assert_eq!(in_child.len(), 2, "{messages:?}");
    assert_eq!(in_child[0]["content"], "Add 2 and 3.");
    assert_eq!(in_child[1]["content"], "Five.");
    // The stored call names the child session its task got (what the web UI's "view
    // sub-session" button reads), and so does the call in the model's history.
    let stored_call = messages
        .iter()
        .find_map(|m| {
            m["tool_calls"]
                .as_array()?
                .iter()
                .find(|c| c["id"] == "call_delegate")
                .cloned()
        })
        .unwrap();
    let args: Value =
        serde_json::from_str(stored_call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args["tasks"][0]["session_id"], child.as_str(), "{args}");
    assert_eq!(args["tasks"][0]["content"], "Add 2 and 3.");
    assert!(requests[3]["messages"].to_string().contains(&child));

    // A later run: Eric is still known, and continuing his session gives him its history;
    // the parent's own history leaves the child's messages out.
    chat.llm.push(call(
        "call_again",
        "sys_delegate_task",
        json!({"tasks": [{"agent_id": eric, "content": "Now double it.", "session_id": child}]}),
    ));
    chat.llm.push(Reply::text(&["Ten."]));
    chat.llm.push(Reply::text(&["Ten it is."]));
    let mut b = body(&lead, session, "Double it");
    b["agent_mode"] = json!("fibre");
    let (_, text) = post(&chat, &chat.alice, "/api/web-stream", b).await;
    let lines = parse(&text);
    assert_eq!(text_of(&of(&lines, session)), "Ten it is.", "{text}");
    let again = result_of(&lines, "call_again");
    assert_eq!(again["results"][0]["session_id"], child.as_str());
    assert_eq!(again["results"][0]["result"], "Ten.");
    let requests = model_calls(&chat);
    let parent_first = &requests[4];
    assert!(sub_agents_section(&system_of(parent_first)).contains(&eric));
    let own = parent_first["messages"].as_array().unwrap();
    assert!(
        own.iter()
            .all(|m| m["content"] != "Add 2 and 3." && m["content"] != "Five."),
        "the parent's history holds the child's messages: {own:?}"
    );
    let child_request = &requests[5];
    assert!(system_of(child_request).starts_with("You are Eric"));
    let seen: Vec<&Value> = child_request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["content"])
        .collect();
    assert_eq!(
        seen[1..],
        [
            &json!("Add 2 and 3."),
            &json!("Five."),
            &json!("Now double it.")
        ]
    );

    // Editing the last user message edits the parent's, not a task given to Eric, and drops
    // what followed it, his second task included.
    let r = chat
        .app
        .post_json(
            &chat.alice,
            &format!("/api/conversations/{session}/edit-last-user-message"),
            json!({"content": "Triple it"}),
        )
        .await;
    let edited = envelope(r).await;
    assert_eq!(edited["data"]["last_user_message"]["content"], "Triple it");
    assert_eq!(edited["data"]["last_user_message"]["session_id"], session);
    let stored = stored_messages(&chat, session).await;
    let child_texts: Vec<&Value> = stored
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["session_id"] == child.as_str())
        .map(|m| &m["content"])
        .collect();
    assert_eq!(child_texts, [&json!("Add 2 and 3."), &json!("Five.")]);
}

#[tokio::test]
async fn a_team_delegates_only_to_agents_its_caller_may_use() {
    let chat = setup(&[]).await;
    let coder = member(&chat, &chat.alice, "Coder", "simple").await;
    let (bob, _) = chat.app.user("bob").await;
    let spy = member(&chat, &bob, "Spy", "simple").await;
    let lead = member(&chat, &chat.alice, "Lead", "team").await;

    // Named sub-agents: Bob's agent is left out, so a task for it fails and the other runs.
    chat.llm.push(call(
        "call_team",
        "sys_team_delegate_task",
        json!({"tasks": [{"agent_id": coder, "content": "Write hello."},
                         {"agent_id": spy, "content": "Read Bob's secrets."}]}),
    ));
    chat.llm.push(Reply::text(&["hello written"]));
    chat.llm.push(Reply::text(&["Team done."]));
    let mut b = body(&lead, "session_team_named", "Work together");
    b["agent_mode"] = json!("team");
    b["available_sub_agent_ids"] = json!([coder, spy]);
    let (_, text) = post(&chat, &chat.alice, "/api/web-stream", b).await;
    let lines = parse(&text);
    assert_eq!(
        text_of(&of(&lines, "session_team_named")),
        "Team done.",
        "{text}"
    );
    let outcome = result_of(&lines, "call_team");
    assert_eq!(outcome["status"], "success", "{outcome}");
    assert_eq!(outcome["results"][0]["status"], "success");
    assert_eq!(outcome["results"][0]["result"], "hello written");
    assert_eq!(outcome["results"][0]["agent_name"], "Coder");
    assert_eq!(outcome["results"][1]["status"], "failed");
    let reason = outcome["results"][1]["result"].as_str().unwrap();
    assert!(reason.contains("no sub-agent"), "{reason}");
    assert!(!reason.contains("Spy"), "{reason}");
    let requests = model_calls(&chat);
    assert_eq!(requests.len(), 3, "Bob's agent never ran");
    assert_eq!(tool_names(&requests[0]), ["sys_team_delegate_task"]);
    let section = sub_agents_section(&system_of(&requests[0]));
    assert!(
        section.contains(&coder) && !section.contains(&spy),
        "{section}"
    );
    assert!(system_of(&requests[1]).starts_with("You are Coder."));
    assert!(tool_names(&requests[1]).is_empty());

    // No names: every agent Alice may use but the team itself, never Bob's.
    chat.llm.push(Reply::text(&["Alone."]));
    let mut b = body(&lead, "session_team_auto", "Anyone there?");
    b["agent_mode"] = json!("team");
    b["available_sub_agent_ids"] = json!([]);
    post(&chat, &chat.alice, "/api/web-stream", b).await;
    let section = sub_agents_section(&system_of(&model_calls(&chat)[3]));
    assert!(
        section.contains(&coder) && section.contains(&chat.agent),
        "{section}"
    );
    assert!(
        !section.contains(&spy) && !section.contains(&lead),
        "{section}"
    );

    // A simple run is offered no delegation, whatever it names.
    chat.llm.push(Reply::text(&["Simple."]));
    let mut b = body(&lead, "session_team_simple", "Just you");
    b["available_sub_agent_ids"] = json!([coder]);
    post(&chat, &chat.alice, "/api/web-stream", b).await;
    let request = &model_calls(&chat)[4];
    assert!(tool_names(request).is_empty());
    assert!(sub_agents_section(&system_of(request)).is_empty());
}

#[tokio::test]
async fn an_interrupt_stops_the_sub_agents_run_and_the_parents() {
    let chat = setup(&[]).await;
    let coder = member(&chat, &chat.alice, "Coder", "simple").await;
    let lead = member(&chat, &chat.alice, "Lead", "team").await;
    chat.llm.push(call(
        "call_long",
        "sys_team_delegate_task",
        json!({"tasks": [{"agent_id": coder, "content": "Write a long essay."}]}),
    ));
    chat.llm.push(slow(200, 50));
    let mut b = body(&lead, "session_team_stop", "Take your time");
    b["agent_mode"] = json!("team");
    b["available_sub_agent_ids"] = json!([coder]);
    let r = chat.app.post_json(&chat.alice, "/api/web-stream", b).await;
    let mut stream = r.bytes_stream();
    // Wait for the sub-agent's first words, then interrupt the parent session.
    let mut seen = String::new();
    while !seen.contains("part0") {
        let chunk = futures_util::StreamExt::next(&mut stream)
            .await
            .unwrap()
            .unwrap();
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let r = chat
        .app
        .post_json(
            &chat.alice,
            "/api/sessions/session_team_stop/interrupt",
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
        seen.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    let lines = parse(&seen);
    let outcome = result_of(&lines, "call_long");
    assert_eq!(outcome["results"][0]["status"], "interrupted", "{outcome}");
    let end = lines.last().unwrap();
    assert_eq!(end["type"], "stream_end");
    assert!(
        !seen.contains("part199"),
        "the sub-agent ran to its end: {seen}"
    );
    assert_eq!(model_calls(&chat).len(), 2, "the parent went on");
}

#[tokio::test]
async fn one_run_hands_out_at_most_sixteen_tasks() {
    let chat = setup(&[]).await;
    let coder = member(&chat, &chat.alice, "Coder", "simple").await;
    let lead = member(&chat, &chat.alice, "Lead", "team").await;
    let eight = json!({"tasks": (0..8)
        .map(|i| json!({"agent_id": coder, "content": format!("Part {i}")}))
        .collect::<Vec<_>>()});
    for id in ["call_first", "call_second"] {
        chat.llm
            .push(call(id, "sys_team_delegate_task", eight.clone()));
        for _ in 0..8 {
            chat.llm.push(Reply::text(&["part done"]));
        }
    }
    chat.llm.push(call(
        "call_more",
        "sys_team_delegate_task",
        json!({"tasks": [{"agent_id": coder, "content": "One more"}]}),
    ));
    chat.llm.push(Reply::text(&["Enough."]));
    let mut b = body(&lead, "session_team_cap", "Split it all");
    b["agent_mode"] = json!("team");
    b["available_sub_agent_ids"] = json!([coder]);
    let (_, text) = post(&chat, &chat.alice, "/api/web-stream", b).await;
    let lines = parse(&text);
    for id in ["call_first", "call_second"] {
        let outcome = result_of(&lines, id);
        let results = outcome["results"].as_array().unwrap();
        assert_eq!(results.len(), 8);
        assert!(
            results.iter().all(|r| r["status"] == "success"),
            "{outcome}"
        );
    }
    let refused = result_of(&lines, "call_more");
    assert_eq!(refused["status"], "error", "{refused}");
    assert!(
        refused["results"][0]["result"]
            .as_str()
            .unwrap()
            .contains("16 tasks"),
        "{refused}"
    );
    assert_eq!(text_of(&of(&lines, "session_team_cap")), "Enough.");
    // The parent's four model calls and sixteen sub-agent runs of one call each.
    assert_eq!(model_calls(&chat).len(), 20);
}

#[tokio::test]
async fn a_request_defines_its_own_sub_agents_with_their_prompts_and_tools() {
    let chat = setup(&[]).await;
    let lead = named_agent(&chat.app, &chat.alice, "Lead", &["todo_write"], "team").await;
    let session = "session_custom_subs";
    chat.llm.push(call(
        "call_team",
        "sys_team_delegate_task",
        json!({"tasks": [{"agent_id": "reviewer", "task_name": "review",
                          "content": "Review the plan."}]}),
    ));
    chat.llm.push(Reply::text(&["Looks sound."]));
    chat.llm.push(Reply::text(&["The reviewer approves."]));
    let mut b = body(&lead, session, "Get the plan reviewed");
    b["agent_mode"] = json!("team");
    // Only request-defined members: the caller's saved agents are not asked for.
    b["available_sub_agent_ids"] = json!(["nobody-saved"]);
    b["custom_sub_agents"] = json!([
        {"agent_id": "reviewer", "name": "Rita", "description": "Reviews plans",
         "system_prompt": "You are Rita, a strict reviewer.", "available_tools": ["file_read"],
         "agent_mode": "simple"},
        {"name": "Sam", "system_prompt": null}
    ]);
    let (_, text) = post(&chat, &chat.alice, "/api/web-stream", b).await;
    let lines = parse(&text);
    assert_eq!(
        text_of(&of(&lines, session)),
        "The reviewer approves.",
        "{text}"
    );
    let result = result_of(&lines, "call_team");
    assert!(result.to_string().contains("Looks sound."), "{result}");

    let calls = model_calls(&chat);
    assert_eq!(calls.len(), 3, "{calls:?}");
    // The lead sees both members, the second under its default id.
    let members = sub_agents_section(&system_of(&calls[0]));
    assert!(
        members.contains("reviewer (Rita): Reviews plans"),
        "{members}"
    );
    assert!(members.contains("custom_2 (Sam)"), "{members}");
    assert_eq!(
        tool_names(&calls[0]),
        ["todo_write", "sys_team_delegate_task"]
    );
    // The member runs with its persona and only its own tools.
    assert!(
        system_of(&calls[1]).starts_with("You are Rita, a strict reviewer."),
        "{}",
        system_of(&calls[1])
    );
    assert_eq!(tool_names(&calls[1]), ["file_read"]);

    // Bad definitions are refused before anything runs.
    for (custom, wanted) in [
        (json!([{"name": ""}]), "`name`"),
        (json!([{"name": "A"}, {"name": "a"}]), "another one"),
        (json!([{"name": "A", "agent_id": "../x"}]), "`agent_id`"),
    ] {
        let mut b = body(&lead, "session_custom_bad", "Hi");
        b["agent_mode"] = json!("team");
        b["custom_sub_agents"] = custom;
        let r = chat.app.post_json(&chat.alice, "/api/web-stream", b).await;
        assert_eq!(r.status(), 422);
        let e = envelope(r).await;
        assert!(e["message"].as_str().unwrap().contains(wanted), "{e}");
    }
    assert_eq!(model_calls(&chat).len(), 3);
}
