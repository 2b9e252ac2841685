//! Spending the deployment's model: input caps, the per-user bucket of model calls, the cap
//! on unfinished jobs, fair claiming across users, admins' view of jobs and what deleting a
//! user leaves behind (issue 13).

use std::time::Duration;

use llm_double::{LlmDouble, Reply};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use crate::helpers::{TestApp, envelope};
use crate::jobs::poll;

const DRAFT: &str = r#"{"name": "Planner", "description": "Plans trips", "systemPrefix": "You plan trips.", "availableTools": [], "maxLoopCount": 6}"#;
const OPTIMIZED: &str =
    r#"{"optimized_prompt": "Be kind.", "analysis": "shorter", "sections": []}"#;

/// A reply that arrives after `delay`.
fn slow(text: &str, delay: Duration) -> Reply {
    Reply::Answer {
        chunks: vec![text.into()],
        reasoning: vec![],
        tool_calls: vec![],
        usage: None,
        delay,
        cut_after: None,
    }
}

async fn user_with_provider(
    app: &TestApp,
    llm: &LlmDouble,
    name: &str,
) -> (reqwest::Client, String) {
    let (client, id) = app.user(name).await;
    let r = app
        .post_json(
            &client,
            "/api/llm-provider/create",
            json!({"base_url": llm.base_url, "api_keys": ["sk-spend-test-key"], "model": "m", "is_default": true}),
        )
        .await;
    assert_eq!(r.status(), 200);
    (client, id)
}

async fn submit(app: &TestApp, client: &reqwest::Client, description: &str) -> String {
    let body = envelope(
        app.post_json(
            client,
            "/api/agent/auto-generate/submit",
            json!({"agent_description": description}),
        )
        .await,
    )
    .await;
    body["data"]["task_id"].as_str().unwrap().to_owned()
}

fn task_url(app: &TestApp, id: &str) -> String {
    app.url(&format!("/api/agent/tasks/{id}"))
}

async fn status(client: &reqwest::Client, url: &str) -> String {
    let job = envelope(client.get(url).send().await.unwrap()).await;
    job["data"]["status"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn too_much_text_for_the_model_is_refused_before_any_model_call() {
    let app = TestApp::spawn_with(|c| c.max_prompt_chars = 1000).await;
    let llm = LlmDouble::start(None, &[]).await.unwrap();
    let (alice, _) = user_with_provider(&app, &llm, "alice").await;
    let long_prompt = "x".repeat(1200);
    let agent = envelope(
        app.post_json(
            &alice,
            "/api/agent/create",
            json!({"name": "Long", "systemPrefix": long_prompt, "maxLoopCount": 10}),
        )
        .await,
    )
    .await["data"]["agent_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let short = envelope(
        app.post_json(
            &alice,
            "/api/agent/create",
            json!({"name": "Short", "systemPrefix": "Be brief.", "maxLoopCount": 10}),
        )
        .await,
    )
    .await["data"]["agent_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = llm.chat_requests().len();
    let cases = [
        (
            "/api/agent/auto-generate",
            json!({"agent_description": long_prompt}),
            "agent_description",
        ),
        (
            "/api/agent/auto-generate/submit",
            json!({"agent_description": long_prompt}),
            "agent_description",
        ),
        (
            "/api/agent/system-prompt/optimize",
            json!({"original_prompt": long_prompt}),
            "original_prompt",
        ),
        (
            "/api/agent/system-prompt/optimize/submit",
            json!({"original_prompt": long_prompt}),
            "original_prompt",
        ),
        (
            "/api/agent/system-prompt/optimize",
            json!({"original_prompt": "short", "optimization_goal": long_prompt}),
            "original_prompt",
        ),
        (
            "/api/agent/abilities",
            json!({"agent_id": short, "context": long_prompt}),
            "context",
        ),
        (
            "/api/agent/abilities",
            json!({"agent_id": agent}),
            "agent_id",
        ),
    ];
    for (path, body, field) in cases {
        let response = app.post_json(&alice, path, body).await;
        assert_eq!(response.status(), 413, "{path}");
        let body = envelope(response).await;
        assert_eq!(body["error_code"], "model.input_too_large", "{path}");
        assert_eq!(body["error_detail"][0]["field"], field, "{path}: {body}");
        assert_eq!(body["error_detail"][0]["limit"], 1000, "{path}");
    }
    assert_eq!(
        llm.chat_requests().len(),
        before,
        "no text reached the model"
    );
    // The limit applies to the text, not to ordinary requests.
    llm.push(Reply::text(&[OPTIMIZED]));
    let ok = app
        .post_json(
            &alice,
            "/api/agent/system-prompt/optimize",
            json!({"original_prompt": "y".repeat(900)}),
        )
        .await;
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn model_calls_are_limited_per_user_with_retry_after() {
    let app = TestApp::spawn_with(|c| {
        c.model_calls_per_minute = 1;
        c.model_calls_burst = 3;
    })
    .await;
    let llm = LlmDouble::start(None, &[]).await.unwrap();
    let (alice, _) = user_with_provider(&app, &llm, "alice").await;
    let (bob, _) = user_with_provider(&app, &llm, "bob").await;
    let before = llm.chat_requests().len();
    for _ in 0..3 {
        llm.push(Reply::text(&[OPTIMIZED]));
        let r = app
            .post_json(
                &alice,
                "/api/agent/system-prompt/optimize",
                json!({"original_prompt": "be nice"}),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    for path in [
        "/api/agent/system-prompt/optimize",
        "/api/agent/system-prompt/optimize/submit",
    ] {
        let refused = app
            .post_json(&alice, path, json!({"original_prompt": "be nice"}))
            .await;
        assert_eq!(refused.status(), 429, "{path}");
        let retry: u64 = refused.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
        let body = envelope(refused).await;
        assert_eq!(body["error_code"], "model.rate_limited");
    }
    assert_eq!(
        llm.chat_requests().len(),
        before + 3,
        "refused calls never reached the model"
    );
    let verify = app
        .post_json(
            &alice,
            "/api/llm-provider/verify",
            json!({"base_url": llm.base_url, "api_keys": ["sk-spend-test-key"], "model": "m"}),
        )
        .await;
    assert_eq!(verify.status(), 429, "provider checks call the model too");
    llm.push(Reply::text(&[OPTIMIZED]));
    let other = app
        .post_json(
            &bob,
            "/api/agent/system-prompt/optimize",
            json!({"original_prompt": "be nice"}),
        )
        .await;
    assert_eq!(other.status(), 200, "each user has their own bucket");
}

#[tokio::test]
async fn the_job_cap_holds_under_concurrent_submits() {
    let app = TestApp::spawn_with(|c| c.max_pending_jobs_per_user = 3).await;
    let llm = LlmDouble::start(None, &[]).await.unwrap();
    let (alice, _) = user_with_provider(&app, &llm, "alice").await;
    for _ in 0..12 {
        llm.push(slow(DRAFT, Duration::from_secs(60)));
    }
    let submits = (0..12).map(|i| {
        app.post_json(
            &alice,
            "/api/agent/auto-generate/submit",
            json!({"agent_description": format!("burst {i}")}),
        )
    });
    let statuses: Vec<u16> = futures_util::future::join_all(submits)
        .await
        .into_iter()
        .map(|r| r.status().as_u16())
        .collect();
    let accepted = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((accepted, refused), (3, 9), "{statuses:?}");
}

#[tokio::test]
async fn unfinished_jobs_are_capped_per_user() {
    let app = TestApp::spawn_with(|c| c.max_pending_jobs_per_user = 2).await;
    let llm = LlmDouble::start(None, &[]).await.unwrap();
    let (alice, _) = user_with_provider(&app, &llm, "alice").await;
    let (bob, _) = user_with_provider(&app, &llm, "bob").await;
    for _ in 0..4 {
        llm.push(slow(DRAFT, Duration::from_secs(60)));
    }
    let first = submit(&app, &alice, "one").await;
    submit(&app, &alice, "two").await;
    let refused = app
        .post_json(
            &alice,
            "/api/agent/auto-generate/submit",
            json!({"agent_description": "three"}),
        )
        .await;
    assert_eq!(refused.status(), 429);
    assert_eq!(envelope(refused).await["error_code"], "agent.too_many_jobs");
    submit(&app, &bob, "bob's own").await;
    let url = task_url(&app, &first);
    assert_eq!(
        alice
            .post(format!("{url}/cancel"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    poll(&alice, &url, |s| s == "cancelled").await;
    submit(&app, &alice, "three, once one ended").await;
}

#[tokio::test]
async fn one_users_backlog_does_not_delay_another_users_job() {
    let app = TestApp::spawn_with(|c| c.job_concurrency = 1).await;
    let llm = LlmDouble::start(None, &[]).await.unwrap();
    let (mallory, _) = user_with_provider(&app, &llm, "mallory").await;
    let (victim, _) = user_with_provider(&app, &llm, "victim").await;
    for _ in 0..21 {
        llm.push(slow(DRAFT, Duration::from_secs(2)));
    }
    let mut backlog = Vec::new();
    for i in 0..20 {
        let description = format!("backlog-{i:02}.");
        backlog.push((submit(&app, &mallory, &description).await, description));
    }
    let victims_job = submit(&app, &victim, "victim-job.").await;
    // Mallory's jobs still waiting after the victim's was queued.
    let mut waiting = Vec::new();
    for (id, description) in &backlog {
        if status(&mallory, &task_url(&app, id)).await == "pending" {
            waiting.push(description.clone());
        }
    }
    assert!(waiting.len() >= 10, "a backlog exists: {waiting:?}");

    let done = poll(&victim, &task_url(&app, &victims_job), |s| s == "completed").await;
    assert_eq!(done["result"]["name"], "Planner");
    // With one worker slot, the model saw the victim's request before any waiting job's.
    let seen: Vec<String> = llm
        .chat_requests()
        .iter()
        .filter_map(|r| r["messages"][1]["content"].as_str().map(str::to_owned))
        .collect();
    let victim_at = seen
        .iter()
        .position(|c| c.contains("victim-job."))
        .expect("the victim's request reached the model");
    // The promise: one user's backlog delays another's job by at most one job per worker
    // slot (a job of the backlog may have been claimed before the victim's arrived, and when
    // neither user was served yet the older job goes first).
    let ahead: Vec<&String> = waiting
        .iter()
        .filter(|d| {
            seen.iter()
                .position(|c| c.contains(d.as_str()))
                .is_some_and(|at| at < victim_at)
        })
        .collect();
    assert!(
        ahead.len() <= 1,
        "more than one waiting job ran before the victim's: {ahead:?}"
    );
}

#[tokio::test]
async fn admins_see_and_cancel_any_users_job() {
    let app = TestApp::spawn().await;
    let llm = LlmDouble::start(None, &[]).await.unwrap();
    let (alice, _) = user_with_provider(&app, &llm, "alice").await;
    let (bob, _) = app.user("bob").await;
    llm.push(slow(DRAFT, Duration::from_secs(60)));
    let id = submit(&app, &alice, "slow").await;
    let url = task_url(&app, &id);
    let admin = app.admin().await;
    poll(&admin, &url, |s| s == "running").await;
    assert_eq!(
        bob.get(&url).send().await.unwrap().status(),
        404,
        "others still see nothing"
    );
    let cancel = admin.post(format!("{url}/cancel")).send().await.unwrap();
    assert_eq!(cancel.status(), 200);
    let cancelled = poll(&alice, &url, |s| s == "cancelled").await;
    assert_eq!(cancelled["error"]["code"], "TASK_CANCELLED");
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let db = platform::db::connect_url(&app.database_url).await.unwrap();
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            sql.to_owned(),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

#[tokio::test]
async fn deleting_a_user_cancels_their_jobs_and_deletes_their_agents_and_providers() {
    let app = TestApp::spawn_with(|c| c.job_concurrency = 1).await;
    let llm = LlmDouble::start(None, &[]).await.unwrap();
    let (alice, alice_id) = user_with_provider(&app, &llm, "alice").await;
    let (bob, bob_id) = app.user("bob").await;
    let agent: Value = envelope(
        app.post_json(
            &alice,
            "/api/agent/create",
            json!({"name": "Shared", "systemPrefix": "Hi.", "maxLoopCount": 10}),
        )
        .await,
    )
    .await;
    let agent_id = agent["data"]["agent_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{agent}"))
        .to_owned();
    let grant = app
        .post_json(
            &alice,
            &format!("/api/agent/{agent_id}/auth"),
            json!({"user_ids": [bob_id]}),
        )
        .await;
    assert_eq!(grant.status(), 200);
    let file = app
        .data_path()
        .join("workspaces")
        .join(&alice_id)
        .join(&agent_id);
    std::fs::create_dir_all(&file).unwrap();
    std::fs::write(file.join("notes.txt"), "mine").unwrap();
    llm.push(slow(DRAFT, Duration::from_secs(60)));
    llm.push(slow(DRAFT, Duration::from_secs(60)));
    let running = submit(&app, &alice, "running").await;
    let pending = submit(&app, &alice, "pending").await;
    let admin = app.admin().await;
    poll(&admin, &task_url(&app, &running), |s| s == "running").await;
    assert_eq!(status(&admin, &task_url(&app, &pending)).await, "pending");

    let deleted = app
        .post_json(&admin, "/api/user/delete", json!({"user_id": alice_id}))
        .await;
    assert_eq!(deleted.status(), 200);

    for id in [&running, &pending] {
        let job = poll(&admin, &task_url(&app, id), |s| {
            s != "pending" && s != "running"
        })
        .await;
        assert_eq!(job["status"], "cancelled", "{job}");
    }
    assert_eq!(
        admin
            .get(app.url(&format!("/api/agent/{agent_id}")))
            .send()
            .await
            .unwrap()
            .status(),
        404,
        "the agent is gone"
    );
    let listed = envelope(bob.get(app.url("/api/agent/list")).send().await.unwrap()).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 0, "{listed}");
    assert!(!app.data_path().join("workspaces").join(&alice_id).exists());
    let left = |table: &str| format!("SELECT COUNT(*) FROM {table} WHERE user_id = '{alice_id}'");
    assert_eq!(
        count(&app, &left("llm_providers")).await,
        0,
        "providers deleted"
    );
    assert_eq!(count(&app, &left("agents")).await, 0);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM agent_grants").await, 0);
}

#[tokio::test]
async fn chat_runs_take_from_the_same_bucket_and_are_capped_before_any_model_call() {
    let app = TestApp::spawn_with(|c| {
        c.model_calls_per_minute = 1;
        c.model_calls_burst = 3;
        c.max_prompt_chars = 1000;
    })
    .await;
    let llm = LlmDouble::start(None, &[]).await.unwrap();
    let (alice, _) = user_with_provider(&app, &llm, "alice").await;
    let agent = envelope(
        app.post_json(
            &alice,
            "/api/agent/create",
            json!({"name": "Chat", "maxLoopCount": 3}),
        )
        .await,
    )
    .await["data"]["agent_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let run = |text: String| {
        json!({"messages": [{"role": "user", "content": text}], "agent_id": agent,
               "max_loop_count": 3})
    };
    let before = llm.chat_requests().len();
    for (path, field) in [
        ("/api/web-stream", "messages"),
        ("/api/stream", "messages"),
        ("/api/chat/optimize-input", "current_input"),
    ] {
        let body = if field == "messages" {
            run("x".repeat(1200))
        } else {
            json!({"current_input": "x".repeat(1200), "agent_id": agent})
        };
        let refused = app.post_json(&alice, path, body).await;
        assert_eq!(refused.status(), 413, "{path}");
        let refused = envelope(refused).await;
        assert_eq!(refused["error_code"], "model.input_too_large", "{path}");
        assert_eq!(refused["error_detail"][0]["field"], field, "{path}");
    }
    assert_eq!(
        llm.chat_requests().len(),
        before,
        "nothing reached the model"
    );

    // The refused runs took their tokens (the bucket is taken before the body is read, as on
    // every model-calling route): the burst of 3 is spent, so the next run is refused.
    let limited = app
        .post_json(&alice, "/api/web-stream", run("Hello".into()))
        .await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(envelope(limited).await["error_code"], "model.rate_limited");
    assert_eq!(llm.chat_requests().len(), before);
}
