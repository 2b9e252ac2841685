//! `/api/agent/*`: configurations, authorisation, templates and generation (against the
//! scripted LLM server).

use llm_double::{LlmDouble, Reply};
use serde_json::{Value, json};

use crate::helpers::{TestApp, envelope};

fn config(name: &str) -> Value {
    json!({
        "name": name,
        "description": "Answers research questions",
        "systemPrefix": "You are a careful researcher.",
        "systemContext": {"team": "R&D"},
        "availableWorkflows": {"triage": ["read", "answer"]},
        "availableTools": ["web_search"],
        "availableSkills": ["summarise"],
        "availableKnowledgeBases": [],
        "memoryType": "session",
        "maxLoopCount": 12,
        "deepThinking": true,
        "thinkingLevel": "high",
        "enableMultimodal": false,
        "agentMode": "simple",
        "llm_provider_id": null,
    })
}

async fn create(app: &TestApp, client: &reqwest::Client, body: Value) -> reqwest::Response {
    app.post_json(client, "/api/agent/create", body).await
}

async fn create_ok(app: &TestApp, client: &reqwest::Client, name: &str) -> String {
    let body = envelope(create(app, client, config(name)).await).await;
    body["data"]["agent_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_created_agent_reads_back_as_sent_with_id_owner_and_timestamps() {
    let app = TestApp::spawn().await;
    let (alice, alice_id) = app.user("alice").await;
    let id = create_ok(&app, &alice, "Researcher").await;
    assert!(id.starts_with("agent_"));
    let got = envelope(
        alice
            .get(app.url(&format!("/api/agent/{id}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let data = &got["data"];
    let sent = config("Researcher");
    for (k, v) in sent.as_object().unwrap() {
        assert_eq!(&data[k], v, "{k}");
    }
    assert_eq!(data["id"], id);
    assert_eq!(data["user_id"], alice_id);
    assert!(data["created_at"].is_string() && data["updated_at"].is_string());
    assert_eq!(data["is_default"], false);

    let list = envelope(alice.get(app.url("/api/agent/list")).send().await.unwrap()).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let session = envelope(
        alice
            .get(app.url("/api/auth/session"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(session["data"]["has_agent"], true);
}

#[tokio::test]
async fn the_specs_own_example_round_trips() {
    let app = TestApp::spawn().await;
    let (alice, _) = app.user("alice").await;
    let example = json!({
        "id": "optional",
        "user_id": "optional",
        "name": "Research Agent",
        "systemPrefix": "You are a careful research assistant.",
        "systemContext": {},
        "availableWorkflows": {},
        "availableTools": ["web_search"],
        "availableSubAgentIds": [],
        "availableSkills": ["market-research"],
        "availableKnowledgeBases": [],
        "memoryType": "session",
        "maxLoopCount": 10,
        "deepThinking": false,
        "llm_provider_id": "provider_xxx",
        "enableMultimodal": false,
        "multiAgent": false,
        "agentMode": "default",
        "description": "Handles market research"
    });
    let id = envelope(create(&app, &alice, example.clone()).await).await["data"]["agent_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let got = envelope(
        alice
            .get(app.url(&format!("/api/agent/{id}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    for (k, v) in example.as_object().unwrap() {
        if k == "id" || k == "user_id" {
            continue;
        }
        assert_eq!(&got["data"][k], v, "{k}");
    }
    assert_eq!(got["data"]["id"], id, "the server assigns the id");
    assert_ne!(got["data"]["user_id"], "optional", "and the owner");
}

#[tokio::test]
async fn invalid_configurations_name_the_field() {
    let app = TestApp::spawn().await;
    let (alice, _) = app.user("alice").await;
    let mut cases = Vec::new();
    let mut missing_name = config("x");
    missing_name.as_object_mut().unwrap().remove("name");
    cases.push((missing_name, "name"));
    for (field, value) in [
        ("maxLoopCount", json!(0)),
        ("maxLoopCount", json!("10")),
        ("agentMode", json!("turbo")),
        ("availableTools", json!("web")),
    ] {
        let mut c = config("x");
        c[field] = value;
        cases.push((c, field));
    }
    let mut no_loops = config("x");
    no_loops.as_object_mut().unwrap().remove("maxLoopCount");
    cases.push((no_loops, "maxLoopCount"));
    for (body, field) in cases {
        let r = create(&app, &alice, body.clone()).await;
        assert_eq!(r.status(), 422, "{body}");
        assert_eq!(
            envelope(r).await["error_detail"][0]["field"],
            field,
            "{body}"
        );
    }
    let list = envelope(alice.get(app.url("/api/agent/list")).send().await.unwrap()).await;
    assert!(list["data"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn names_are_unique_per_owner_and_tools_follow_the_mode() {
    let app = TestApp::spawn().await;
    let (alice, _) = app.user("alice").await;
    let (bob, _) = app.user("bob").await;
    create_ok(&app, &alice, "Helper").await;
    let dup = create(&app, &alice, config("helper")).await;
    assert_eq!(dup.status(), 409);
    assert_eq!(envelope(dup).await["error_code"], "agent.name_taken");
    create_ok(&app, &bob, "Helper").await;

    let mut fibre = config("Fibre");
    fibre["agentMode"] = json!("fibre");
    fibre["availableTools"] = json!(["web_search", "sys_team_delegate_task"]);
    let id = envelope(create(&app, &alice, fibre).await).await["data"]["agent_id"].clone();
    let got = envelope(
        alice
            .get(app.url(&format!("/api/agent/{}", id.as_str().unwrap())))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        got["data"]["availableTools"],
        json!(["web_search", "sys_spawn_agent", "sys_delegate_task"])
    );
}

#[tokio::test]
async fn owners_and_admins_manage_grantees_use_and_others_see_nothing() {
    let app = TestApp::spawn().await;
    let (alice, _) = app.user("alice").await;
    let (bob, bob_id) = app.user("bob").await;
    let (carol, _) = app.user("carol").await;
    let id = create_ok(&app, &alice, "Private").await;
    let url = app.url(&format!("/api/agent/{id}"));

    assert_eq!(bob.get(&url).send().await.unwrap().status(), 404);
    assert_eq!(
        bob.put(&url)
            .json(&config("Stolen"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(bob.delete(&url).send().await.unwrap().status(), 404);
    assert_eq!(
        bob.get(format!("{url}/auth"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    let granted = envelope(
        app.post_json(
            &alice,
            &format!("/api/agent/{id}/auth"),
            json!({"user_ids": [bob_id, bob_id]}),
        )
        .await,
    )
    .await;
    assert_eq!(granted["data"]["user_ids"], json!([bob_id]));
    let grants = envelope(alice.get(format!("{url}/auth")).send().await.unwrap()).await;
    assert_eq!(grants["data"], json!([bob_id]));

    assert_eq!(
        bob.get(&url).send().await.unwrap().status(),
        200,
        "grantees read"
    );
    let bob_list = envelope(bob.get(app.url("/api/agent/list")).send().await.unwrap()).await;
    assert_eq!(bob_list["data"][0]["id"], id);
    let edit = bob.put(&url).json(&config("Stolen")).send().await.unwrap();
    assert_eq!(edit.status(), 403);
    assert_eq!(envelope(edit).await["error_code"], "agent.forbidden");
    assert_eq!(bob.delete(&url).send().await.unwrap().status(), 403);
    assert_eq!(
        bob.get(format!("{url}/auth"))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        carol.get(&url).send().await.unwrap().status(),
        404,
        "others still see nothing"
    );

    let admin = app.admin().await;
    let all = envelope(admin.get(app.url("/api/agent/list")).send().await.unwrap()).await;
    assert_eq!(all["data"].as_array().unwrap().len(), 1);
    let renamed = admin
        .put(&url)
        .json(&config("Renamed"))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), 200);
    let after = envelope(alice.get(&url).send().await.unwrap()).await;
    assert_eq!(after["data"]["name"], "Renamed");

    let deleted = envelope(alice.delete(&url).send().await.unwrap()).await;
    assert_eq!(deleted["data"]["agent_id"], id);
    assert_eq!(alice.get(&url).send().await.unwrap().status(), 404);
    assert_eq!(bob.get(&url).send().await.unwrap().status(), 404);
    let bad_id = alice
        .get(app.url("/api/agent/..%2F..%2Fetc"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_id.status(), 404);
}

#[tokio::test]
async fn the_default_prompt_template_follows_the_language() {
    let app = TestApp::spawn().await;
    let (alice, _) = app.user("alice").await;
    let path = "/api/agent/template/default_system_prompt";
    let en = envelope(alice.get(app.url(path)).send().await.unwrap()).await;
    assert!(en["data"]["content"].as_str().unwrap().contains("# Role"));
    let zh = envelope(
        alice
            .get(app.url(&format!("{path}?language=zh")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(zh["data"]["content"].as_str().unwrap().contains("角色"));
    let header = envelope(
        alice
            .get(app.url(path))
            .header("X-accept-language", "zh-CN")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(header["data"]["content"].as_str().unwrap().contains("角色"));
}

async fn with_provider(app: &TestApp, client: &reqwest::Client, llm: &LlmDouble) {
    let r = app
        .post_json(
            client,
            "/api/llm-provider/create",
            json!({"base_url": llm.base_url, "api_keys": ["sk-agents-test-key"], "model": "m", "is_default": true}),
        )
        .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn generation_uses_the_callers_provider_and_repairs_or_reports_bad_output() {
    let app = TestApp::spawn().await;
    let llm = LlmDouble::start(None, &[]).await.unwrap();
    let (alice, _) = app.user("alice").await;

    let none = app
        .post_json(
            &alice,
            "/api/agent/auto-generate",
            json!({"agent_description": "helps with taxes"}),
        )
        .await;
    assert_eq!(none.status(), 409);
    let body = envelope(none).await;
    assert_eq!(body["error_code"], "provider.none_configured");
    assert!(body["message"].as_str().unwrap().contains("add one"));

    with_provider(&app, &alice, &llm).await;
    llm.push(Reply::text(&[
        "Sure! ```json\n{\"name\": \"Tax helper\", \"description\": \"Explains taxes\", ",
        "\"systemPrefix\": \"You explain taxes.\", \"availableTools\": [\"calculator\", \"made_up\"], \"maxLoopCount\": 8}\n```",
    ]));
    let draft = envelope(
        app.post_json(
            &alice,
            "/api/agent/auto-generate",
            json!({"agent_description": "helps with taxes", "available_tools": ["calculator"]}),
        )
        .await,
    )
    .await;
    let d = &draft["data"];
    assert_eq!(d["name"], "Tax helper");
    assert_eq!(d["systemPrefix"], "You explain taxes.");
    assert_eq!(d["availableTools"], json!(["calculator"]));
    assert_eq!(d["maxLoopCount"], 8);
    assert_eq!(d["version"], "1.0");
    let sent = llm.chat_requests();
    assert_eq!(
        sent.last().unwrap()["response_format"]["type"],
        "json_object"
    );

    llm.push(Reply::text(&["I cannot do that."]));
    let garbage = app
        .post_json(
            &alice,
            "/api/agent/auto-generate",
            json!({"agent_description": "x"}),
        )
        .await;
    assert_eq!(garbage.status(), 502);
    assert_eq!(
        envelope(garbage).await["error_code"],
        "agent.generation_invalid"
    );

    llm.push(Reply::error(500, "model crashed"));
    llm.push(Reply::error(500, "model crashed"));
    llm.push(Reply::error(500, "model crashed"));
    let failed = app
        .post_json(
            &alice,
            "/api/agent/auto-generate",
            json!({"agent_description": "x"}),
        )
        .await;
    assert_eq!(failed.status(), 502);
    assert!(
        envelope(failed).await["message"]
            .as_str()
            .unwrap()
            .contains("model crashed")
    );

    llm.push(Reply::text(&[r##"{"optimized_prompt": "# Role\nBe precise.", "analysis": "tightened", "sections": ["Role"]}"##]));
    let optimized = envelope(
        app.post_json(
            &alice,
            "/api/agent/system-prompt/optimize",
            json!({"original_prompt": "be good", "optimization_goal": "precision"}),
        )
        .await,
    )
    .await;
    assert_eq!(optimized["data"]["success"], true);
    assert_eq!(optimized["data"]["optimized_prompt"], "# Role\nBe precise.");
    assert_eq!(
        optimized["data"]["optimization_details"]["original_length"],
        7
    );

    let missing = app
        .post_json(&alice, "/api/agent/auto-generate", json!({}))
        .await;
    assert_eq!(missing.status(), 422);
}

#[tokio::test]
async fn ability_cards_need_access_to_the_agent() {
    let app = TestApp::spawn().await;
    let llm = LlmDouble::start(None, &[]).await.unwrap();
    let (alice, _) = app.user("alice").await;
    let (bob, _) = app.user("bob").await;
    with_provider(&app, &alice, &llm).await;
    let id = create_ok(&app, &alice, "Cards").await;
    llm.push(Reply::text(&[r#"{"items": [{"id": "a1", "title": "Summarise", "description": "Short summaries", "promptText": "Summarise this"}]}"#]));
    let cards = envelope(
        app.post_json(
            &alice,
            "/api/agent/abilities",
            json!({"agent_id": id, "language": "en"}),
        )
        .await,
    )
    .await;
    assert_eq!(cards["data"]["items"][0]["title"], "Summarise");
    assert_eq!(cards["data"]["items"][0]["promptText"], "Summarise this");
    let foreign = app
        .post_json(&bob, "/api/agent/abilities", json!({"agent_id": id}))
        .await;
    assert_eq!(foreign.status(), 404);
}

#[tokio::test]
async fn the_list_is_paginated_keeping_a_plain_array() {
    let app = TestApp::spawn().await;
    let (alice, _) = app.user("alice").await;
    for i in 0..5 {
        create_ok(&app, &alice, &format!("Agent {i}")).await;
    }
    let first = alice.get(app.url("/api/agent/list")).send().await.unwrap();
    assert_eq!(first.headers()["x-total-count"], "5");
    let first = envelope(first).await;
    let all = first["data"].as_array().unwrap();
    assert_eq!(all.len(), 5, "no parameters: the first page holds them all");
    assert_eq!(all[0]["name"], "Agent 4", "newest first");

    let names = |v: &Value| -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let mut seen = Vec::new();
    for page in 1..=3 {
        let r = alice
            .get(app.url(&format!("/api/agent/list?page={page}&page_size=2")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-total-count"], "5");
        let body = envelope(r).await;
        assert!(body["data"].is_array());
        seen.extend(names(&body));
    }
    let expected: Vec<String> = (0..5).rev().map(|i| format!("Agent {i}")).collect();
    assert_eq!(seen, expected, "pages cover every agent once, in order");
    let past = envelope(
        alice
            .get(app.url("/api/agent/list?page=9&page_size=2"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(past["data"], json!([]));
    // Sage's UI sends empty numbers as 0: unset.
    let zero = envelope(
        alice
            .get(app.url("/api/agent/list?page=0&page_size=0"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(zero["data"].as_array().unwrap().len(), 5);
    for bad in ["page_size=101", "page=x", "page=1000001"] {
        let r = alice
            .get(app.url(&format!("/api/agent/list?{bad}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{bad}");
    }
}

#[tokio::test]
async fn each_user_owns_at_most_the_configured_number_of_agents() {
    let app = TestApp::spawn_with(|c| c.max_agents_per_user = 2).await;
    let (alice, _) = app.user("alice").await;
    let (bob, _) = app.user("bob").await;
    let first = create_ok(&app, &alice, "One").await;
    create_ok(&app, &alice, "Two").await;
    let third = create(&app, &alice, config("Three")).await;
    assert_eq!(third.status(), 409);
    let third = envelope(third).await;
    assert_eq!(third["error_code"], "agent.quota_exceeded");
    assert!(third["message"].as_str().unwrap().contains('2'), "{third}");
    assert_eq!(
        create(&app, &bob, config("Three")).await.status(),
        200,
        "the quota is per user"
    );
    let deleted = alice
        .delete(app.url(&format!("/api/agent/{first}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    assert_eq!(create(&app, &alice, config("Three")).await.status(), 200);
}

#[tokio::test]
async fn every_configuration_field_is_bounded() {
    let app = TestApp::spawn().await;
    let (alice, _) = app.user("alice").await;
    let long = |n: usize| "x".repeat(n);
    let cases = [
        ("systemPrefix", json!(long(65_537))),
        ("description", json!(long(10_001))),
        ("thinkingLevel", json!(long(257))),
        ("availableTools", json!(vec!["t"; 201])),
        ("availableKnowledgeBases", json!([long(257)])),
        ("systemContext", json!({"blob": long(70_000)})),
    ];
    for (field, value) in cases {
        let mut body = config("Big");
        body[field] = value;
        let r = create(&app, &alice, body).await;
        assert_eq!(r.status(), 422, "{field}");
        assert_eq!(envelope(r).await["error_detail"][0]["field"], field);
    }
    let mut at_limit = config("Big");
    at_limit["systemPrefix"] = json!(long(65_536));
    assert_eq!(create(&app, &alice, at_limit).await.status(), 200);
}
