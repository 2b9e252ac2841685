//! The tool catalogue and direct calls: `GET /api/tools`, `POST /api/tools/exec`, against a
//! workspace a real run (the scripted model calling `file_write`) filled.

use llm_double::Reply;
use serde_json::{Value, json};

use crate::chat::{body, call, first_result, parse, post, setup};
use crate::helpers::envelope;

async fn exec(
    app: &crate::helpers::TestApp,
    client: &reqwest::Client,
    body: Value,
) -> (u16, Value) {
    let r = app.post_json(client, "/api/tools/exec", body).await;
    let status = r.status().as_u16();
    (status, envelope(r).await)
}

#[tokio::test]
async fn the_catalogue_lists_the_built_ins_with_their_schemas_in_the_callers_language() {
    let s = setup(&[]).await;
    assert_eq!(s.app.get("/api/tools").await.status(), 401);

    let r = s.alice.get(s.app.url("/api/tools")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let tools = envelope(r).await["data"]["tools"].clone();
    let names: Vec<&str> = tools
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for name in [
        "file_read",
        "file_write",
        "file_update",
        "list_dir",
        "glob",
        "grep",
        "todo_read",
        "todo_write",
    ] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    let read = tools
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "file_read")
        .unwrap();
    assert_eq!(read["type"], "basic");
    assert_eq!(read["source"], "Basic tools");
    assert_eq!(read["user_id"], "");
    assert_eq!(read["server_kind"], "");
    assert_eq!(read["admin_only"], false);
    assert_eq!(read["input_schema"]["type"], "object");
    assert_eq!(read["parameters"], read["input_schema"]["properties"]);
    assert!(read["parameters"].get("file_path").is_some(), "{read}");
    assert_eq!(read["required"], json!(["file_path"]));
    let write = tools
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "file_write")
        .unwrap();
    assert_eq!(write["admin_only"], true);
    let english = read["description"].as_str().unwrap().to_owned();

    // Chinese by query or by header; Portuguese names the source in Portuguese.
    for (path, header) in [
        ("/api/tools?language=zh", "en-US"),
        ("/api/tools", "zh-CN,zh;q=0.9"),
    ] {
        let r = s
            .alice
            .get(s.app.url(path))
            .header("accept-language", header)
            .send()
            .await
            .unwrap();
        let tools = envelope(r).await["data"]["tools"].clone();
        let read = tools
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "file_read")
            .unwrap()
            .clone();
        assert_eq!(read["source"], "基础工具", "{path}");
        assert_ne!(read["description"], english.as_str(), "{path}");
    }
    let r = s
        .alice
        .get(s.app.url("/api/tools?language=pt&type="))
        .send()
        .await
        .unwrap();
    let tools = envelope(r).await["data"]["tools"].clone();
    let by_name = |tools: &Value, name: &str| {
        tools
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        by_name(&tools, "file_read")["source"],
        "Ferramentas básicas"
    );
    assert_eq!(tools.as_array().unwrap().len(), names.len());

    // The planner's tools are the built-in MCP server `task_scheduler`'s, as in Sage.
    let add = by_name(&tools, "add_task");
    assert_eq!(add["type"], "sage_mcp", "{add}");
    assert_eq!(add["source"], "内置MCP: task_scheduler");
    assert_eq!(add["user_id"], "");
    let r = s
        .alice
        .get(s.app.url("/api/tools?type=sage_mcp"))
        .send()
        .await
        .unwrap();
    let planner = envelope(r).await["data"]["tools"].clone();
    let mut planner_names: Vec<&str> = planner
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    planner_names.sort_unstable();
    assert_eq!(
        planner_names,
        [
            "add_task",
            "complete_task",
            "delete_task",
            "enable_task",
            "get_task_details",
            "list_tasks",
            "update_task"
        ]
    );
    let r = s
        .alice
        .get(s.app.url("/api/tools?type=basic"))
        .send()
        .await
        .unwrap();
    let basic = envelope(r).await["data"]["tools"].clone();
    assert_eq!(by_name(&basic, "add_task"), Value::Null);
    assert_eq!(by_name(&basic, "file_read")["type"], "basic");

    // A type with no tools here yet.
    let r = s
        .alice
        .get(s.app.url("/api/tools?type=mcp"))
        .send()
        .await
        .unwrap();
    assert_eq!(envelope(r).await["data"]["tools"], json!([]));
}

#[tokio::test]
async fn a_direct_call_runs_in_the_callers_agent_workspace_and_writes_need_an_admin() {
    let s = setup(&["file_write"]).await;
    // A run writes a file into Alice's workspace of her agent.
    s.llm.push(call(
        "c1",
        "file_write",
        json!({"file_path": "notes/plan.md", "content": "# Plan\nship it\n"}),
    ));
    s.llm.push(Reply::text(&["Written."]));
    let (_, text) = post(
        &s,
        &s.alice,
        "/api/web-stream",
        body(&s.agent, "tools-1", "Write the plan"),
    )
    .await;
    assert_eq!(parse(&text).last().unwrap()["type"], "stream_end");

    // Alice reads it back directly, from the same workspace.
    let (status, read) = exec(
        &s.app,
        &s.alice,
        json!({"tool_name": "file_read", "tool_params": {"file_path": "notes/plan.md"},
               "agent_id": s.agent}),
    )
    .await;
    assert_eq!(status, 200, "{read}");
    let data = &read["data"];
    assert!(
        data["raw_text"].as_str().unwrap().contains("ship it"),
        "{data}"
    );
    assert_eq!(data["content"], data["raw_text"]);
    assert_eq!(data["parsed"], data["tool_response"]);
    assert!(data["formatted_text"].as_str().unwrap().contains("ship it"));
    assert!(data["tool_response"].is_object(), "{data}");

    // `arguments` as JSON text works too; `session_id` in the arguments is ignored.
    let (status, listed) = exec(
        &s.app,
        &s.alice,
        json!({"tool_name": "list_dir", "arguments": "{\"path\": \"notes\", \"session_id\": \"x\"}",
               "tool_params": null, "agent_id": s.agent}),
    )
    .await;
    assert_eq!(status, 200, "{listed}");
    assert!(
        listed["data"]["raw_text"]
            .as_str()
            .unwrap()
            .contains("plan.md")
    );

    // The agentless workspace is another one: the file is not there.
    let (status, missing) = exec(
        &s.app,
        &s.alice,
        json!({"tool_name": "file_read", "tool_params": {"file_path": "notes/plan.md"},
               "agent_id": ""}),
    )
    .await;
    assert_eq!(status, 422, "{missing}");
    assert_eq!(missing["error_code"], "tool.failed");

    // Writing tools need an admin; the refusal changes nothing.
    let (status, refused) = exec(
        &s.app,
        &s.alice,
        json!({"tool_name": "file_write", "agent_id": s.agent,
               "tool_params": {"file_path": "notes/plan.md", "content": "overwritten"}}),
    )
    .await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["error_code"], "tool.use_forbidden");
    let (_, again) = exec(
        &s.app,
        &s.alice,
        json!({"tool_name": "file_read", "tool_params": {"file_path": "notes/plan.md"},
               "agent_id": s.agent}),
    )
    .await;
    assert!(
        again["data"]["raw_text"]
            .as_str()
            .unwrap()
            .contains("ship it")
    );

    // An admin may write, in their own agentless workspace, and read it back.
    let admin = s.app.admin().await;
    let (status, written) = exec(
        &s.app,
        &admin,
        json!({"tool_name": "file_write",
               "tool_params": {"file_path": "admin.txt", "content": "from the admin"}}),
    )
    .await;
    assert_eq!(status, 200, "{written}");
    let (_, read) = exec(
        &s.app,
        &admin,
        json!({"tool_name": "file_read", "tool_params": {"file_path": "admin.txt"}}),
    )
    .await;
    assert!(
        read["data"]["raw_text"]
            .as_str()
            .unwrap()
            .contains("from the admin")
    );

    // The todo list of direct calls round-trips.
    let (status, _) = exec(
        &s.app,
        &s.alice,
        json!({"tool_name": "todo_write", "tool_params": {"tasks": [
            {"id": "1", "content": "review", "status": "pending"}]}}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, todos) = exec(&s.app, &s.alice, json!({"tool_name": "todo_read"})).await;
    assert!(
        todos["data"]["raw_text"]
            .as_str()
            .unwrap()
            .contains("review"),
        "{todos}"
    );

    // Unknown tools, bad arguments, and Bob on Alice's agent.
    let (status, unknown) = exec(&s.app, &s.alice, json!({"tool_name": "web_search"})).await;
    assert_eq!(status, 404);
    assert_eq!(unknown["error_code"], "tool.not_found");
    let (status, bad) = exec(
        &s.app,
        &s.alice,
        json!({"tool_name": "file_read", "tool_params": [1, 2]}),
    )
    .await;
    assert_eq!(status, 422, "{bad}");
    let (status, bad) = exec(
        &s.app,
        &s.alice,
        json!({"tool_name": "file_read", "tool_params": {"file_path": "../../etc/passwd"},
               "agent_id": s.agent}),
    )
    .await;
    assert_eq!(status, 422, "{bad}");
    let (bob, _) = s.app.user("bob").await;
    let foreign = exec(
        &s.app,
        &bob,
        json!({"tool_name": "file_read", "tool_params": {"file_path": "notes/plan.md"},
               "agent_id": s.agent}),
    )
    .await;
    let missing = exec(
        &s.app,
        &bob,
        json!({"tool_name": "file_read", "tool_params": {"file_path": "notes/plan.md"},
               "agent_id": "agent_does_not_exist"}),
    )
    .await;
    assert_eq!(foreign.0, 404);
    assert_eq!(foreign.0, missing.0);
    assert_eq!(foreign.1["error_code"], missing.1["error_code"]);
    assert_eq!(foreign.1["message"], missing.1["message"]);
}

#[tokio::test]
async fn fetch_webpages_reads_pages_through_the_outbound_policy() {
    use actix_web::{App, HttpResponse, HttpServer, web};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = HttpServer::new(|| {
        App::new()
            .route(
                "/news.html",
                web::get().to(|| async {
                    HttpResponse::Ok().content_type("text/html").body(
                        "<!doctype html><html><head><title>Daily news</title>\
                         <script>var secret = 1;</script><style>p{}</style></head>\
                         <body><h1>Rust 2.0</h1><p>Released today.</p></body></html>",
                    )
                }),
            )
            .route(
                "/moved",
                web::get().to(|| async {
                    HttpResponse::Found()
                        .insert_header(("location", "/news.html"))
                        .finish()
                }),
            )
            .route(
                "/private",
                web::get().to(|| async {
                    HttpResponse::Found()
                        .insert_header(("location", "http://10.1.2.3/admin"))
                        .finish()
                }),
            )
            .route(
                "/gone",
                web::get().to(|| async { HttpResponse::NotFound().finish() }),
            )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);

    let s = setup(&[]).await;
    let (status, answer) = exec(
        &s.app,
        &s.alice,
        json!({"tool_name": "fetch_webpages", "tool_params": {
            "urls": [format!("{base}/moved"), format!("{base}/gone"), format!("{base}/private"),
                     "http://10.0.0.1/"],
            "max_length_per_url": 12}}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let out = &answer["data"]["tool_response"];
    assert_eq!(out["status"], "partial", "{out}");
    let page = &out["results"][0];
    assert_eq!(page["status"], "success", "{page}");
    assert_eq!(page["title"], "Daily news");
    assert_eq!(page["content"], "Rust 2.0\n\nRe", "{page}");
    assert_eq!(page["truncated"], true);
    assert!(!page.to_string().contains("secret"), "{page}");
    assert!(
        out["results"][1]["error"].as_str().unwrap().contains("404"),
        "{out}"
    );
    // A redirect to, or a URL of, an address the deployment does not allow is refused.
    for refused in [&out["results"][2], &out["results"][3]] {
        assert_eq!(refused["status"], "error");
        assert!(
            refused["error"]
                .as_str()
                .unwrap()
                .contains("SAGE_OUTBOUND_ALLOW"),
            "{refused}"
        );
    }
    let (status, _) = exec(
        &s.app,
        &s.alice,
        json!({"tool_name": "fetch_webpages", "tool_params": {"urls": []}}),
    )
    .await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn apply_patch_changes_several_files_at_once_or_none_at_all() {
    let s = setup(&["apply_patch"]).await;
    let workspace = s
        .app
        .data_path()
        .join(format!("workspaces/{}/{}", s.alice_id, s.agent));
    std::fs::create_dir_all(workspace.join("src")).unwrap();
    std::fs::write(
        workspace.join("src/main.rs"),
        "fn main() {\n    println!(\"hi\");\n}\n",
    )
    .unwrap();
    std::fs::write(workspace.join("old.txt"), "obsolete\n").unwrap();
    std::fs::write(workspace.join("keep.txt"), "one\ntwo\n").unwrap();

    let good = "*** Begin Patch\n\
                *** Update File: src/main.rs\n\
                @@ fn main() {\n\
                -    println!(\"hi\");\n\
                +    println!(\"hello\");\n\
                *** Add File: docs/notes.md\n\
                +# Notes\n\
                *** Delete File: old.txt\n\
                *** End Patch";
    // The second patch's update does not fit: its add must not happen either.
    let bad = "*** Begin Patch\n\
               *** Add File: created.txt\n\
               +never\n\
               *** Update File: keep.txt\n\
               -three\n\
               +four\n\
               *** End Patch";
    s.llm
        .push(call("p1", "apply_patch", json!({ "patch": good })));
    s.llm
        .push(call("p2", "apply_patch", json!({ "patch": bad })));
    s.llm.push(call(
        "p3",
        "apply_patch",
        json!({"patch": "*** Begin Patch\n*** Add File: ../escape.txt\n+x\n*** End Patch"}),
    ));
    s.llm.push(Reply::text(&["Patched."]));
    let (_, text) = post(
        &s,
        &s.alice,
        "/api/web-stream",
        body(&s.agent, "patch-1", "Patch it"),
    )
    .await;
    let results: Vec<Value> = parse(&text)
        .into_iter()
        .filter(|l| l["type"] == "tool_call_result")
        .collect();
    assert_eq!(results.len(), 3, "{text}");
    let first: Value = serde_json::from_str(results[0]["content"].as_str().unwrap()).unwrap();
    assert_eq!(results[0]["metadata"]["tool_execution_status"], "success");
    assert_eq!(first["files_changed"], 3, "{first}");
    assert_eq!(first["changes"][0]["action"], "update");
    assert_eq!(first["changes"][0]["lines_added"], 1);
    assert_eq!(first["patch_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(
        std::fs::read_to_string(workspace.join("src/main.rs")).unwrap(),
        "fn main() {\n    println!(\"hello\");\n}\n"
    );
    assert_eq!(
        std::fs::read_to_string(workspace.join("docs/notes.md")).unwrap(),
        "# Notes\n"
    );
    assert!(!workspace.join("old.txt").exists());

    for (result, wanted) in results[1..].iter().zip(["was not found", "`..`"]) {
        assert_eq!(result["metadata"]["tool_execution_status"], "error");
        assert!(
            result["content"].as_str().unwrap().contains(wanted),
            "{result}"
        );
    }
    assert!(!workspace.join("created.txt").exists());
    assert_eq!(
        std::fs::read_to_string(workspace.join("keep.txt")).unwrap(),
        "one\ntwo\n"
    );
    assert!(
        !s.app
            .data_path()
            .join("workspaces")
            .join(&s.alice_id)
            .join("escape.txt")
            .exists()
    );
}

#[tokio::test]
async fn the_blocking_questionnaire_waits_for_the_users_answers_or_uses_its_defaults() {
    let s = setup(&["questionnaire"]).await;
    let questions = json!([
        {"id": "size", "type": "single_choice", "title": "Which size?",
         "options": [{"label": "Small", "value": "s"}, {"label": "Medium", "value": "m"}],
         "default": "s"},
        {"id": "note", "type": "text", "title": "Anything else?"}
    ]);
    s.llm.push(call(
        "q1",
        "questionnaire",
        json!({"title": "Order", "questionnaire_id": "order-1", "questions": questions,
               "wait_time": 60}),
    ));
    s.llm.push(Reply::text(&["Medium it is."]));
    // The run waits in its tool call while the form is answered.
    let run = {
        let (client, url) = (s.alice.clone(), s.app.url("/api/web-stream"));
        let b = body(&s.agent, "questionnaire-1", "Order a coffee");
        tokio::spawn(async move {
            client
                .post(url)
                .json(&b)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
    };
    let submitted = s
        .app
        .post_json(
            &s.alice,
            "/api/questionnaires/order-1/submit",
            json!({"answers": {"size": "m", "note": "oat milk"}, "title": "Order",
                   "is_auto_submit": false}),
        )
        .await;
    assert_eq!(submitted.status(), 200);
    assert_eq!(envelope(submitted).await["data"]["success"], true);
    let text = tokio::time::timeout(std::time::Duration::from_secs(30), run)
        .await
        .expect("the run ends once answered")
        .unwrap();
    let answered: Value = serde_json::from_str(&first_result(&text)).unwrap();
    assert_eq!(answered["status"], "submitted", "{answered}");
    assert_eq!(
        answered["answers"],
        json!({"size": "m", "note": "oat milk"})
    );
    assert_eq!(answered["questionnaire_id"], "order-1");
    assert_eq!(parse(&text).last().unwrap()["type"], "stream_end");

    // Answers already waiting are not replaced; a bad id is refused.
    let first = s
        .app
        .post_json(
            &s.alice,
            "/api/questionnaires/order-2/submit",
            json!({"answers": {"size": "s"}}),
        )
        .await;
    assert_eq!(first.status(), 200);
    let again = s
        .app
        .post_json(
            &s.alice,
            "/api/questionnaires/order-2/submit",
            json!({"answers": {"size": "m"}}),
        )
        .await;
    assert_eq!(again.status(), 409);
    assert_eq!(
        envelope(again).await["error_code"],
        "chat.questionnaire_answered"
    );
    let bad = s
        .app
        .post_json(
            &s.alice,
            "/api/questionnaires/a%20b/submit",
            json!({"answers": {}}),
        )
        .await;
    assert_eq!(bad.status(), 422);
    let huge = s
        .app
        .post_json(
            &s.alice,
            "/api/questionnaires/order-4/submit",
            json!({"answers": {"note": "x".repeat(70_000)}}),
        )
        .await;
    assert_eq!(huge.status(), 422);

    // A direct call would only hold the request: it runs inside chats.
    let direct = s
        .app
        .post_json(
            &s.alice,
            "/api/tools/exec",
            json!({"tool_name": "questionnaire", "tool_params": {"title": "T",
                   "questionnaire_id": "d1", "questions": questions}}),
        )
        .await;
    assert_eq!(direct.status(), 422);

    // Another user's answers never reach Alice's questionnaire: it times out with defaults.
    let (bob, _) = s.app.user("bob").await;
    let foreign = s
        .app
        .post_json(
            &bob,
            "/api/questionnaires/order-3/submit",
            json!({"answers": {"size": "m", "note": "from bob"}}),
        )
        .await;
    assert_eq!(foreign.status(), 200);
    s.llm.push(call(
        "q2",
        "questionnaire",
        json!({"title": "Order", "questionnaire_id": "order-3", "questions": questions,
               "wait_time": 1}),
    ));
    s.llm.push(Reply::text(&["Small, then."]));
    let (_, text) = post(
        &s,
        &s.alice,
        "/api/web-stream",
        body(&s.agent, "questionnaire-2", "Order again"),
    )
    .await;
    let answered: Value = serde_json::from_str(&first_result(&text)).unwrap();
    assert_eq!(answered["status"], "timeout", "{answered}");
    assert_eq!(answered["answers"], json!({"size": "s", "note": ""}));
}

#[tokio::test]
async fn tool_expansion_reports_what_the_agent_is_offered_already() {
    let s = setup(&["file_read", "tool_expand_tools"]).await;
    s.llm.push(call(
        "x1",
        "tool_expand_tools",
        json!({"tool_names": ["file_read", "file_write", "file_read"]}),
    ));
    s.llm.push(Reply::text(&["Reading it directly."]));
    let (_, text) = post(
        &s,
        &s.alice,
        "/api/web-stream",
        body(&s.agent, "expand-1", "Read the notes"),
    )
    .await;
    let out: Value = serde_json::from_str(&first_result(&text)).unwrap();
    assert_eq!(out["already_selected_tools"], json!(["file_read"]), "{out}");
    // The agent was not given `file_write`: expansion never grants it.
    assert_eq!(out["invalid_tools"], json!(["file_write"]));
    assert_eq!(out["expanded_tools"], json!([]));
    let offered = crate::chat::tool_names(s.llm.chat_requests().last().unwrap());
    assert_eq!(offered, ["file_read", "tool_expand_tools"]);

    // In fibre mode the delegation tools are offered too, and reported as such.
    s.llm.push(call(
        "x2",
        "tool_expand_tools",
        json!({"tool_names": ["sys_delegate_task", "sys_team_delegate_task"]}),
    ));
    s.llm.push(Reply::text(&["Delegating directly."]));
    let mut fibre = body(&s.agent, "expand-2", "Split the work");
    fibre["agent_mode"] = json!("fibre");
    let (_, text) = post(&s, &s.alice, "/api/web-stream", fibre).await;
    let out: Value = serde_json::from_str(&first_result(&text)).unwrap();
    assert_eq!(
        out["already_selected_tools"],
        json!(["sys_delegate_task"]),
        "{out}"
    );
    // Team delegation belongs to team mode.
    assert_eq!(out["invalid_tools"], json!(["sys_team_delegate_task"]));
}
