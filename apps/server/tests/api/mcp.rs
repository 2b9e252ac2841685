//! MCP servers (`/api/mcp/*`) against the MCP reference server (npm
//! `@modelcontextprotocol/server-everything`) on loopback over streamable HTTP: registration
//! only after the server answered, the caller's own servers, masked keys, its tools in the
//! catalogue, in direct calls and in a run, switching them off, refresh and delete.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use crate::chat::{body, call, first_result, post, setup};
use crate::helpers::{TestApp, envelope};

struct McpPeer {
    child: Child,
    url: String,
}

impl Drop for McpPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl McpPeer {
    /// The reference server over streamable HTTP (`/mcp`).
    fn start() -> McpPeer {
        Self::start_with("streamableHttp", "listening on port", "/mcp")
    }

    /// The reference server over the legacy HTTP+SSE transport (`/sse`).
    fn start_sse() -> McpPeer {
        Self::start_with("sse", "running on port", "/sse")
    }

    fn start_with(transport: &str, ready_line: &str, path: &str) -> McpPeer {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/mcp");
        let script = std::path::Path::new(dir)
            .join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
        assert!(
            script.exists(),
            "the MCP reference server is not installed: run `npm ci --prefix fixtures/mcp` (.ci/run and cargo xtask test do)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new("node")
            .arg(&script)
            .arg(transport)
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node runs");
        // It says `… on port N` on stderr once it listens: reading blocks until then.
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let ready = lines
            .by_ref()
            .map_while(Result::ok)
            .any(|line| line.contains(ready_line));
        assert!(ready, "the MCP server did not start");
        std::thread::spawn(move || lines.for_each(drop));
        McpPeer {
            child,
            url: format!("http://127.0.0.1:{port}{path}"),
        }
    }
}

async fn data(response: reqwest::Response) -> Value {
    let status = response.status();
    let body = envelope(response).await;
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

async fn add(app: &TestApp, client: &reqwest::Client, body: Value) -> reqwest::Response {
    app.post_json(client, "/api/mcp/add", body).await
}

fn tool_names(tools: &Value) -> Vec<String> {
    tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["type"] == "mcp")
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn an_mcp_server_is_registered_listed_used_and_removed() {
    let peer = McpPeer::start();
    let chat = setup(&[]).await;
    let app = &chat.app;
    let alice = &chat.alice;
    let (bob, _) = app.user("bob").await;

    // Registered only once it answered; the key is stored sealed and shown masked.
    let added = data(
        add(
            app,
            alice,
            json!({"name": "everything", "protocol": "streamable_http", "kind": "external",
                   "streamable_http_url": peer.url, "api_key": "sk-mcp-0123456789abcdef0123456789",
                   "description": "reference", "sse_url": "", "command": null}),
        )
        .await,
    )
    .await;
    assert_eq!(
        added,
        json!({"server_name": "everything", "status": "success"})
    );
    let listed = data(alice.get(app.url("/api/mcp/list")).send().await.unwrap()).await;
    // Sorted by name: the caller's AnyTool server comes first.
    assert_eq!(listed["servers"][0]["name"], "AnyTool");
    let server = &listed["servers"][1];
    assert_eq!(server["name"], "everything");
    assert_eq!(server["kind"], "external");
    assert_eq!(server["disabled"], false);
    assert_eq!(server["api_key"], "sk-m***6789");
    assert_eq!(server["user_id"], chat.alice_id);
    assert!(
        server["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "echo" && t["input_schema"]["type"] == "object"),
        "{server}"
    );

    // Refused before anything is stored: a duplicate, no MCP server there, other transports.
    let again = add(app, alice, json!({"name": "everything", "url": peer.url})).await;
    assert_eq!(again.status(), 409);
    assert_eq!(envelope(again).await["error_code"], "mcp.server_exists");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nothing = format!("http://{}/mcp", closed.local_addr().unwrap());
    drop(closed);
    let failed = add(app, alice, json!({"name": "gone", "url": nothing})).await;
    assert_eq!(failed.status(), 502);
    assert_eq!(
        envelope(failed).await["error_code"],
        "mcp.server_register_failed"
    );
    for bad in [
        json!({"name": "local", "command": "npx", "url": peer.url}),
        json!({"name": "any", "kind": "simulated", "url": peer.url}),
        json!({"name": "ftp", "url": "ftp://127.0.0.1/mcp"}),
    ] {
        let response = add(app, alice, bad.clone()).await;
        assert_eq!(response.status(), 422, "{bad}");
    }
    let listed = data(alice.get(app.url("/api/mcp/list")).send().await.unwrap()).await;
    assert_eq!(listed["servers"].as_array().unwrap().len(), 2);

    // Bob sees none of it (only his own AnyTool) and can change none of it.
    let bobs = data(bob.get(app.url("/api/mcp/list")).send().await.unwrap()).await;
    assert_eq!(bobs["servers"].as_array().unwrap().len(), 1);
    assert_eq!(bobs["servers"][0]["name"], "AnyTool");
    for (method, path) in [
        ("DELETE", "/api/mcp/everything"),
        ("POST", "/api/mcp/everything/refresh"),
        ("PUT", "/api/mcp/everything/toggle"),
    ] {
        let response = bob
            .request(method.parse().unwrap(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{method} {path}");
        assert_eq!(
            envelope(response).await["error_code"],
            "mcp.server_not_found"
        );
    }
    let theirs = data(bob.get(app.url("/api/tools")).send().await.unwrap()).await;
    assert!(tool_names(&theirs).is_empty());

    // The tools join the caller's catalogue and direct calls.
    let tools = data(alice.get(app.url("/api/tools")).send().await.unwrap()).await;
    assert!(tool_names(&tools).contains(&"echo".to_owned()));
    let echo = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "echo")
        .unwrap();
    assert_eq!(echo["source"], "MCP Server: everything");
    assert_eq!(echo["server_kind"], "external");
    assert_eq!(echo["user_id"], chat.alice_id);
    let exec = data(
        app.post_json(
            alice,
            "/api/tools/exec",
            json!({"tool_name": "echo", "tool_params": {"message": "direct"}}),
        )
        .await,
    )
    .await;
    assert!(exec.to_string().contains("Echo: direct"), "{exec}");

    // An agent names the tool; the run calls the server.
    let agent = crate::chat::agent(app, alice, &["echo"], "simple").await;
    chat.llm
        .push(call("c1", "echo", json!({"message": "from the run"})));
    chat.llm.push(llm_double::Reply::text(&["Done."]));
    let (_, text) = post(
        &chat,
        alice,
        "/api/web-stream",
        body(&agent, "s-mcp", "Echo"),
    )
    .await;
    let result = first_result(&text);
    assert!(result.contains("Echo: from the run"), "{result}");

    // Switched off, its tools leave the catalogue; on again, they return.
    let toggled = data(
        alice
            .put(app.url("/api/mcp/everything/toggle"))
            .json(&json!({"disabled": true}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        toggled,
        json!({"server_name": "everything", "disabled": true})
    );
    let tools = data(alice.get(app.url("/api/tools")).send().await.unwrap()).await;
    assert!(tool_names(&tools).is_empty());
    let toggled = data(
        alice
            .put(app.url("/api/mcp/everything/toggle"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(toggled["disabled"], false);

    // Refresh asks again; once the server is gone it says so and keeps the tools.
    let refreshed = data(
        alice
            .post(app.url("/api/mcp/everything/refresh"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(refreshed["status"], "refreshed");

    // "Try it" on one tool; then a rename that keeps the stored key.
    let preview = data(
        app.post_json(
            alice,
            "/api/mcp/everything/preview",
            json!({"tool_name": "echo", "arguments": {"message": "try"}}),
        )
        .await,
    )
    .await;
    assert_eq!(preview["result"]["content"][0]["text"], "Echo: try");
    let unknown = app
        .post_json(
            alice,
            "/api/mcp/everything/preview",
            json!({"tool_name": "nope"}),
        )
        .await;
    assert_eq!(unknown.status(), 422);
    let foreign = app
        .post_json(
            &bob,
            "/api/mcp/everything/preview",
            json!({"tool_name": "echo"}),
        )
        .await;
    assert_eq!(foreign.status(), 404);
    let renamed = data(
        alice
            .put(app.url("/api/mcp/everything"))
            .json(&json!({"name": "renamed", "streamable_http_url": peer.url, "api_key": ""}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(renamed["server_name"], "renamed");
    let listed = data(alice.get(app.url("/api/mcp/list")).send().await.unwrap()).await;
    assert_eq!(listed["servers"][1]["name"], "renamed");
    assert_eq!(listed["servers"][1]["api_key"], "sk-m***6789");
    drop(peer);
    let refreshed = data(
        alice
            .post(app.url("/api/mcp/renamed/refresh"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(refreshed["status"], "failed");
    // A change the server cannot confirm changes nothing.
    let unconfirmed = alice
        .put(app.url("/api/mcp/renamed"))
        .json(&json!({"name": "again", "url": nothing}))
        .send()
        .await
        .unwrap();
    assert_eq!(unconfirmed.status(), 502);
    let tools = data(alice.get(app.url("/api/tools")).send().await.unwrap()).await;
    assert!(tool_names(&tools).contains(&"echo".to_owned()));

    let deleted = data(
        alice
            .delete(app.url("/api/mcp/renamed"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(deleted, json!({"server_name": "renamed"}));
    let listed = data(alice.get(app.url("/api/mcp/list")).send().await.unwrap()).await;
    let names: Vec<&str> = listed["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["AnyTool"]);
}

#[tokio::test]
async fn a_server_on_the_legacy_sse_transport_works_too() {
    let peer = McpPeer::start_sse();
    let chat = setup(&[]).await;
    let (app, alice) = (&chat.app, &chat.alice);
    let added = data(
        add(
            app,
            alice,
            json!({"name": "legacy", "sse_url": peer.url, "streamable_http_url": ""}),
        )
        .await,
    )
    .await;
    assert_eq!(added["status"], "success");
    let listed = data(alice.get(app.url("/api/mcp/list")).send().await.unwrap()).await;
    let server = &listed["servers"][1];
    assert_eq!(server["protocol"], "sse");
    assert_eq!(server["sse_url"], peer.url);
    assert_eq!(server["streamable_http_url"], "");
    assert!(
        server["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "echo")
    );
    let exec = data(
        app.post_json(
            alice,
            "/api/tools/exec",
            json!({"tool_name": "echo", "tool_params": {"message": "over sse"}}),
        )
        .await,
    )
    .await;
    assert!(exec.to_string().contains("Echo: over sse"), "{exec}");
}

#[tokio::test]
async fn every_user_has_an_anytool_server_whose_tools_a_model_plays() {
    let chat = setup(&[]).await;
    let app = &chat.app;
    let alice = &chat.alice;
    let (bob, _) = app.user("bob").await;

    // Listed from the start, empty.
    let listed = data(alice.get(app.url("/api/mcp/list")).send().await.unwrap()).await;
    let anytool = listed["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "AnyTool")
        .unwrap_or_else(|| panic!("{listed}"))
        .clone();
    assert_eq!(anytool["kind"], "anytool");
    assert_eq!(anytool["tools"], json!([]));
    assert_eq!(anytool["simulator"], json!({}));

    // A tool is defined; a second one of the same name is refused.
    let definition = json!({"name": "search_customer", "description": "Finds a customer by name.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
        "returns": {"type": "object", "properties": {"id": {"type": "integer"}}}});
    let saved = data(
        app.post_json(
            alice,
            "/api/mcp/anytool/tool",
            json!({"tool_definition": definition}),
        )
        .await,
    )
    .await;
    assert_eq!(
        saved,
        json!({"server_name": "AnyTool", "tool_name": "search_customer", "original_name": "search_customer"})
    );
    let again = app
        .post_json(
            alice,
            "/api/mcp/anytool/tool",
            json!({"tool_definition": definition}),
        )
        .await;
    assert_eq!(again.status(), 422);
    let spaced = app
        .post_json(
            alice,
            "/api/mcp/anytool/tool",
            json!({"tool_definition": {"name": "two words"}}),
        )
        .await;
    assert_eq!(spaced.status(), 422);

    // A draft is played by the caller's model, asked for JSON.
    chat.llm.push(llm_double::Reply::text(&["{\"id\": 42}"]));
    let draft = data(
        app.post_json(
            alice,
            "/api/mcp/anytool/preview-draft",
            json!({"tool_definition": {"name": "lookup", "returns": {"type": "object"}},
                   "arguments": {"query": "acme", "session_id": "dropped"}, "simulator": {"temperature": 0.5}}),
        )
        .await,
    )
    .await;
    assert_eq!(draft["parsed"], json!({"id": 42}));
    assert_eq!(draft["result"], json!({"id": 42}));
    assert_eq!(draft["arguments"], json!({"query": "acme"}));
    assert_eq!(draft["model"], "acc-model");
    let asked = chat.llm.chat_requests().last().unwrap().clone();
    assert_eq!(asked["response_format"], json!({"type": "json_object"}));
    assert_eq!(asked["temperature"], 0.5);
    assert!(
        asked["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("\"lookup\"")
    );

    // A saved tool plays on the server's preview, shows in the catalogue, and runs in a chat.
    chat.llm
        .push(llm_double::Reply::text(&["Here: {\"id\": 7} done"]));
    let preview = data(
        app.post_json(
            alice,
            "/api/mcp/AnyTool/preview",
            json!({"tool_name": "search_customer", "arguments": {"query": "acme"}}),
        )
        .await,
    )
    .await;
    assert_eq!(preview["parsed"], json!({"id": 7}));
    assert_eq!(preview["raw_text"], "Here: {\"id\": 7} done");
    let tools = data(alice.get(app.url("/api/tools")).send().await.unwrap()).await;
    let listed_tool = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "search_customer")
        .unwrap_or_else(|| panic!("{tools}"))
        .clone();
    assert_eq!(listed_tool["server_kind"], "anytool");
    assert_eq!(listed_tool["source"], "内置MCP: AnyTool");
    let agent = crate::chat::agent(app, alice, &["search_customer"], "simple").await;
    chat.llm
        .push(call("a1", "search_customer", json!({"query": "acme"})));
    chat.llm.push(llm_double::Reply::text(&[
        "{\"id\": 9, \"name\": \"ACME\"}",
    ]));
    chat.llm.push(llm_double::Reply::text(&["Found ACME."]));
    let (_, text) = post(
        &chat,
        alice,
        "/api/web-stream",
        body(&agent, "s-any", "Find acme"),
    )
    .await;
    let result = first_result(&text);
    assert!(result.contains("ACME"), "{result}");

    // Without a model of his own, Bob's drafts are refused (not a gateway failure).
    let no_model = app
        .post_json(
            &bob,
            "/api/mcp/anytool/preview-draft",
            json!({"tool_definition": {"name": "lookup"}}),
        )
        .await;
    assert_eq!(no_model.status(), 409);
    assert_eq!(
        envelope(no_model).await["error_code"],
        "provider.none_configured"
    );

    // Bob has his own, empty AnyTool; Alice's can be switched off, not deleted.
    let bobs = data(bob.get(app.url("/api/mcp/list")).send().await.unwrap()).await;
    assert_eq!(bobs["servers"].as_array().unwrap().len(), 1);
    assert_eq!(bobs["servers"][0]["tools"], json!([]));
    let refused = alice
        .delete(app.url("/api/mcp/AnyTool"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(envelope(refused).await["error_code"], "mcp.anytool_fixed");
    let off = data(
        alice
            .put(app.url("/api/mcp/AnyTool/toggle"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(off["disabled"], true);

    // Adding kind anytool replaces the definitions and settings; tools are deleted one by one.
    data(
        add(
            app,
            alice,
            json!({"name": "whatever", "kind": "anytool", "protocol": "streamable_http",
                   "tools": [definition, {"name": "weather"}],
                   "simulator": {"system_prompt": "Be brief.", "api_key": "sk-never-stored", "temperature": 0.4}}),
        )
        .await,
    )
    .await;
    let listed = data(alice.get(app.url("/api/mcp/list")).send().await.unwrap()).await;
    let anytool = &listed["servers"][0];
    assert_eq!(anytool["tools"].as_array().unwrap().len(), 2);
    assert_eq!(anytool["simulator"]["system_prompt"], "Be brief.");
    // A key sent with the simulator settings is never stored (nor shown).
    assert_eq!(anytool["simulator"].get("api_key"), None);
    let gone = alice
        .delete(app.url("/api/mcp/anytool/tool/weather"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 200);
    let missing = alice
        .delete(app.url("/api/mcp/anytool/tool/weather"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        envelope(missing).await["error_code"],
        "mcp.anytool_tool_not_found"
    );
}

#[tokio::test]
async fn a_request_attaches_its_own_mcp_server_for_one_run_only() {
    let peer = McpPeer::start();
    let chat = setup(&["file_read"]).await;
    let (app, alice) = (&chat.app, &chat.alice);
    chat.llm
        .push(call("c1", "echo", json!({"message": "attached"})));
    chat.llm.push(llm_double::Reply::text(&["Done."]));
    let mut b = body(&chat.agent, "s-extra-mcp", "Echo");
    b["extra_mcp_config"] = json!({"docs": {"streamable_http_url": peer.url, "api_key": ""}});
    let (_, text) = post(&chat, alice, "/api/web-stream", b).await;
    let result = first_result(&text);
    assert!(result.contains("Echo: attached"), "{result}");
    // The model was offered the agent's tools and the server's.
    let sent = chat
        .llm
        .chat_requests()
        .into_iter()
        .rfind(|r| r["messages"][0]["role"] == "system")
        .unwrap();
    let offered = crate::chat::tool_names(&sent);
    assert!(
        offered.iter().any(|t| t == "file_read") && offered.iter().any(|t| t == "echo"),
        "{offered:?}"
    );
    // Nothing was registered for the caller.
    let servers = data(alice.get(app.url("/api/mcp/list")).send().await.unwrap()).await;
    assert!(!servers.to_string().contains("docs"), "{servers}");

    // A server that does not answer, or a config that cannot be used, refuses the request
    // before anything is stored.
    let dead = format!(
        "http://127.0.0.1:{}/mcp",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    );
    for (config, wanted) in [
        (json!({"gone": {"url": dead}}), "did not answer"),
        (json!({"local": {"command": "npx"}}), "stdio"),
    ] {
        let mut b = body(&chat.agent, "s-extra-bad", "Echo");
        b["extra_mcp_config"] = config;
        let r = app.post_json(alice, "/api/web-stream", b).await;
        assert_eq!(r.status(), 422);
        let e = envelope(r).await;
        assert!(e["message"].as_str().unwrap().contains(wanted), "{e}");
    }
    let r = alice
        .get(app.url("/api/conversations/s-extra-bad/messages"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
