//! Durable asynchronous agent jobs: submit, poll, cancel, ownership, failures.

use std::time::{Duration, Instant};

use llm_double::{LlmDouble, Reply};
use serde_json::{Value, json};

use crate::helpers::{TestApp, envelope};

/// Polls a job until `done(status)` or 20 s pass, as the web UI polls.
pub(crate) async fn poll(
    client: &reqwest::Client,
    url: &str,
    done: impl Fn(&str) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let job = envelope(client.get(url).send().await.unwrap()).await["data"].clone();
        if done(job["status"].as_str().unwrap_or_default()) {
            return job;
        }
        assert!(Instant::now() < deadline, "job stuck: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn user_with_provider(app: &TestApp, llm: &LlmDouble) -> reqwest::Client {
    let (alice, _) = app.user("alice").await;
    let r = app
        .post_json(
            &alice,
            "/api/llm-provider/create",
            json!({"base_url": llm.base_url, "api_keys": ["sk-jobs-test-key"], "model": "m", "is_default": true}),
        )
        .await;
    assert_eq!(r.status(), 200);
    alice
}

const DRAFT: &str = r#"{"name": "Planner", "description": "Plans trips", "systemPrefix": "You plan trips.", "availableTools": [], "maxLoopCount": 6}"#;

#[tokio::test]
async fn a_submitted_job_runs_to_completion_and_only_its_owner_sees_it() {
    let app = TestApp::spawn().await;
    let llm = LlmDouble::start(None, &[]).await.unwrap();
    let alice = user_with_provider(&app, &llm).await;
    llm.push(Reply::text(&[DRAFT]));
    let submitted = envelope(
        app.post_json(
            &alice,
            "/api/agent/auto-generate/submit",
            json!({"agent_description": "plans trips"}),
        )
        .await,
    )
    .await;
    let task = &submitted["data"];
    assert_eq!(task["status"], "pending");
    assert_eq!(task["task_type"], "agent_auto_generate");
    assert_eq!(task["metadata"]["agent_description"], "plans trips");
    assert!(task["result"].is_null() && task["error"].is_null());
    assert!(task["created_at"].as_f64().unwrap() > 1.7e9);
    let id = task["task_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("task_"));
    let url = app.url(&format!("/api/agent/tasks/{id}"));

    let done = poll(&alice, &url, |s| s == "completed").await;
    assert_eq!(done["result"]["name"], "Planner");
    assert_eq!(done["result"]["systemPrefix"], "You plan trips.");

    let (bob, _) = app.user("bob").await;
    let foreign = bob.get(&url).send().await.unwrap();
    assert_eq!(foreign.status(), 404);
    let foreign = envelope(foreign).await;
    assert_eq!(foreign["error_code"], "task.not_found");
    let unknown = envelope(
        bob.get(app.url("/api/agent/tasks/task_doesnotexist"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(unknown["error_code"], "task.not_found");
    assert_eq!(unknown["message"], foreign["message"]);
    let cancel = bob.post(format!("{url}/cancel")).send().await.unwrap();
    assert_eq!(cancel.status(), 404);
    assert_eq!(envelope(cancel).await["error_code"], "task.not_found");
}

#[tokio::test]
async fn a_job_whose_model_answers_nonsense_fails_with_a_reason() {
    let app = TestApp::spawn().await;
    let llm = LlmDouble::start(None, &[]).await.unwrap();
    let alice = user_with_provider(&app, &llm).await;
    llm.push(Reply::text(&["no json at all"]));
    let submitted = envelope(
        app.post_json(
            &alice,
            "/api/agent/system-prompt/optimize/submit",
            json!({"original_prompt": "be nice"}),
        )
        .await,
    )
    .await;
    assert_eq!(submitted["data"]["metadata"]["original_length"], 7);
    let url = app.url(&format!(
        "/api/agent/tasks/{}",
        submitted["data"]["task_id"].as_str().unwrap()
    ));
    let failed = poll(&alice, &url, |s| s == "failed").await;
    assert_eq!(failed["error"]["code"], "TASK_FAILED");
    assert!(
        failed["error"]["message"].as_str().unwrap().contains("502"),
        "{failed}"
    );

    let empty = app
        .post_json(
            &alice,
            "/api/agent/system-prompt/optimize/submit",
            json!({"original_prompt": "  "}),
        )
        .await;
    assert_eq!(empty.status(), 422);
}

#[tokio::test]
async fn cancelling_stops_a_running_model_call() {
    let app = TestApp::spawn().await;
    let llm = LlmDouble::start(None, &[]).await.unwrap();
    let alice = user_with_provider(&app, &llm).await;
    llm.push(Reply::Answer {
        chunks: vec![DRAFT.into()],
        reasoning: vec![],
        tool_calls: vec![],
        usage: None,
        delay: Duration::from_secs(60),
        cut_after: None,
    });
    let submitted = envelope(
        app.post_json(
            &alice,
            "/api/agent/auto-generate/submit",
            json!({"agent_description": "slow"}),
        )
        .await,
    )
    .await;
    let url = app.url(&format!(
        "/api/agent/tasks/{}",
        submitted["data"]["task_id"].as_str().unwrap()
    ));
    poll(&alice, &url, |s| s == "running").await;
    let began = Instant::now();
    let cancel = alice.post(format!("{url}/cancel")).send().await.unwrap();
    assert_eq!(cancel.status(), 200);
    let cancelled = poll(&alice, &url, |s| s == "cancelled").await;
    assert!(
        began.elapsed() < Duration::from_secs(30),
        "the 60 s model call was not awaited"
    );
    assert_eq!(cancelled["error"]["code"], "TASK_CANCELLED");
    assert!(cancelled["result"].is_null());
}

#[tokio::test]
async fn jobs_without_a_provider_fail_with_the_reason() {
    let app = TestApp::spawn().await;
    let (alice, _) = app.user("alice").await;
    let submitted = envelope(
        app.post_json(
            &alice,
            "/api/agent/auto-generate/submit",
            json!({"agent_description": "x"}),
        )
        .await,
    )
    .await;
    let url = app.url(&format!(
        "/api/agent/tasks/{}",
        submitted["data"]["task_id"].as_str().unwrap()
    ));
    let failed = poll(&alice, &url, |s| s == "failed").await;
    assert!(
        failed["error"]["message"].as_str().unwrap().contains("409"),
        "{failed}"
    );
    assert_eq!(
        alice
            .get(app.url("/api/agent/tasks/task_doesnotexist"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn finished_jobs_are_purged_after_the_retention_time() {
    let app = TestApp::spawn_with(|c| c.job_retention = Duration::from_secs(1)).await;
    let llm = LlmDouble::start(None, &[]).await.unwrap();
    let alice = user_with_provider(&app, &llm).await;
    llm.push(Reply::text(&[DRAFT]));
    let submitted = envelope(
        app.post_json(
            &alice,
            "/api/agent/auto-generate/submit",
            json!({"agent_description": "short-lived"}),
        )
        .await,
    )
    .await;
    let url = app.url(&format!(
        "/api/agent/tasks/{}",
        submitted["data"]["task_id"].as_str().unwrap()
    ));
    poll(&alice, &url, |s| s == "completed").await;
    // Waiting is the behaviour under test: the retention time passing.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = alice.get(&url).send().await.unwrap().status();
        if status == 404 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the finished job was never purged"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
