//! The planner on `/tasks/*`: one-time and recurring tasks with their owners, the worker's
//! protocol (claim once, retries, history), the worker token, and the in-process worker
//! running a due task through the agent against the scripted model.

use std::time::{Duration, Instant};

use llm_double::Reply;
use serde_json::{Value, json};

use crate::chat::{Chat, setup, setup_with};
use crate::helpers::TestApp;

async fn send(
    app: &TestApp,
    client: &reqwest::Client,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = client.request(method, app.url(path));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON from {path}: {text}"));
    (status, value)
}

/// A `/tasks` failure: plain `{detail, code}`, no envelope.
fn assert_plain_error(answer: &(u16, Value), status: u16, code: &str) {
    assert_eq!(answer.0, status, "{answer:?}");
    assert_eq!(answer.1["code"], code, "{answer:?}");
    assert!(answer.1["detail"].is_string(), "{answer:?}");
    assert!(answer.1.get("error_code").is_none(), "{answer:?}");
}

async fn one_time(s: &Chat, body: Value) -> Value {
    let created = send(&s.app, &s.alice, "POST", "/tasks/one-time", Some(body)).await;
    assert_eq!(created.0, 200, "{created:?}");
    created.1
}

#[tokio::test]
async fn one_time_tasks_belong_to_their_owner_and_keep_their_zone() {
    let s = setup(&[]).await;
    let (bob, _) = s.app.user("bob").await;
    let anonymous = send(&s.app, &s.app.new_client(), "GET", "/tasks/one-time", None).await;
    assert_plain_error(&anonymous, 401, "auth.unauthorized");

    // A wall-clock time is read in the task's zone; answers carry the zone's offset.
    let task = one_time(
        &s,
        json!({"name": "Morning report", "description": "Summarise the news", "agent_id": s.agent,
               "execute_at": "2030-01-02T09:00:00", "timezone": "Asia/Shanghai"}),
    )
    .await;
    assert!(task["id"].as_i64().unwrap() > 0, "{task}");
    assert_eq!(task["execute_at"], "2030-01-02T09:00:00+08:00");
    assert_eq!(task["timezone"], "Asia/Shanghai");
    assert_eq!(task["status"], "pending");
    assert_eq!(task["recurring_task_id"], 0);
    assert_eq!(task["retry_count"], 0);
    assert_eq!(task["max_retries"], 3);
    assert_eq!(task["user_id"], s.alice_id.as_str());
    assert!(
        task["session_id"]
            .as_str()
            .unwrap()
            .starts_with("one-time-")
    );
    // An instant with an offset keeps that instant; the default zone is UTC.
    let utc = one_time(
        &s,
        json!({"name": "Evening", "agent_id": s.agent, "execute_at": "2030-01-02T18:00:00+02:00",
               "description": ""}),
    )
    .await;
    assert_eq!(utc["execute_at"], "2030-01-02T16:00:00+00:00");
    assert_eq!(utc["description"], Value::Null);

    let id = task["id"].as_i64().unwrap();
    let path = format!("/tasks/one-time/{id}");
    let (status, page) = send(
        &s.app,
        &s.alice,
        "GET",
        "/tasks/one-time?page=1&page_size=1",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(page["total"], 2);
    assert_eq!(page["page"], 1);
    assert_eq!(page["page_size"], 1);
    assert_eq!(page["items"][0]["id"], utc["id"], "newest first");
    let filtered = send(
        &s.app,
        &s.alice,
        "GET",
        &format!("/tasks/one-time?agent_id={}&page_size=", s.agent),
        None,
    )
    .await;
    assert_eq!(filtered.1["total"], 2);
    let other_agent = send(
        &s.app,
        &s.alice,
        "GET",
        "/tasks/one-time?agent_id=nobody",
        None,
    )
    .await;
    assert_eq!(other_agent.1["total"], 0);
    assert_plain_error(
        &send(
            &s.app,
            &s.alice,
            "GET",
            "/tasks/one-time?page_size=500",
            None,
        )
        .await,
        422,
        "request.validation",
    );

    // Bob sees none of it, and Alice's task answers him exactly like a missing one.
    let bobs = send(&s.app, &bob, "GET", "/tasks/one-time", None).await;
    assert_eq!(bobs.1["total"], 0);
    let foreign = send(&s.app, &bob, "GET", &path, None).await;
    let missing = send(&s.app, &bob, "GET", "/tasks/one-time/999999", None).await;
    assert_plain_error(&foreign, 404, "task.not_found");
    assert_eq!(foreign, missing);
    assert_eq!(
        send(&s.app, &bob, "GET", "/tasks/one-time/not-a-number", None).await,
        missing
    );
    assert_plain_error(
        &send(&s.app, &bob, "PUT", &path, Some(json!({"name": "mine"}))).await,
        404,
        "task.not_found",
    );
    assert_plain_error(
        &send(&s.app, &bob, "DELETE", &path, None).await,
        404,
        "task.not_found",
    );
    // Nor may Bob schedule Alice's agent.
    let borrowed = send(
        &s.app,
        &bob,
        "POST",
        "/tasks/one-time",
        Some(json!({"name": "x", "agent_id": s.agent, "execute_at": "2030-01-01T00:00:00Z"})),
    )
    .await;
    assert_plain_error(&borrowed, 404, "agent.not_found");
    // The admin sees everyone's.
    let admin = s.app.admin().await;
    assert_eq!(
        send(&s.app, &admin, "GET", "/tasks/one-time", None).await.1["total"],
        2
    );

    // Bad input is a 422 naming the field, and changes nothing.
    for (body, field) in [
        (
            json!({"name": "x", "agent_id": s.agent, "execute_at": "next tuesday"}),
            "execute_at",
        ),
        (
            json!({"name": "", "agent_id": s.agent, "execute_at": "2030-01-01T00:00:00Z"}),
            "name",
        ),
        (
            json!({"name": "x", "agent_id": s.agent, "execute_at": "2030-01-01T00:00:00", "timezone": "Mars/Base"}),
            "timezone",
        ),
    ] {
        let refused = send(&s.app, &s.alice, "POST", "/tasks/one-time", Some(body)).await;
        assert_plain_error(&refused, 422, "request.validation");
        assert!(
            refused.1["detail"].as_str().unwrap().contains(field),
            "{refused:?}"
        );
    }
    assert_plain_error(
        &send(
            &s.app,
            &s.alice,
            "PUT",
            &path,
            Some(json!({"execute_at": "soon"})),
        )
        .await,
        422,
        "request.validation",
    );

    // The owner changes it: absent fields are kept.
    let (status, changed) = send(
        &s.app,
        &s.alice,
        "PUT",
        &path,
        Some(json!({"name": "Late report", "execute_at": "2030-01-02T10:30:00"})),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["name"], "Late report");
    assert_eq!(changed["description"], "Summarise the news");
    assert_eq!(changed["execute_at"], "2030-01-02T10:30:00+08:00");
    assert_eq!(send(&s.app, &s.alice, "GET", &path, None).await.1, changed);

    let deleted = send(&s.app, &s.alice, "DELETE", &path, None).await;
    assert_eq!(deleted, (200, json!({"success": true})));
    assert_plain_error(
        &send(&s.app, &s.alice, "GET", &path, None).await,
        404,
        "task.not_found",
    );
    assert_eq!(
        send(&s.app, &s.alice, "GET", "/tasks/one-time", None)
            .await
            .1["total"],
        1
    );
}

#[tokio::test]
async fn recurring_tasks_refuse_bad_cron_and_toggle() {
    let s = setup(&[]).await;
    let (bob, _) = s.app.user("bob").await;
    for (cron, zone) in [
        ("61 * * * *", "UTC"),
        ("* * *", "UTC"),
        ("0 9 * * *", "Nowhere/City"),
    ] {
        let refused = send(
            &s.app,
            &s.alice,
            "POST",
            "/tasks/recurring",
            Some(json!({"name": "r", "agent_id": s.agent, "cron_expression": cron, "timezone": zone})),
        )
        .await;
        assert_plain_error(&refused, 422, "request.validation");
    }
    let (status, created) = send(
        &s.app,
        &s.alice,
        "POST",
        "/tasks/recurring",
        Some(
            json!({"name": "Daily digest", "agent_id": s.agent, "cron_expression": "0 9 * * 1-5",
                    "timezone": "Europe/Berlin"}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["enabled"], true);
    assert_eq!(created["cron_expression"], "0 9 * * 1-5");
    assert_eq!(created["timezone"], "Europe/Berlin");
    assert!(
        created["session_id"]
            .as_str()
            .unwrap()
            .starts_with("recurring-")
    );
    let id = created["id"].as_i64().unwrap();
    let path = format!("/tasks/recurring/{id}");

    let toggled = send(
        &s.app,
        &s.alice,
        "POST",
        &format!("{path}/toggle"),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(toggled.0, 200);
    assert_eq!(toggled.1["enabled"], false);
    assert_eq!(
        send(&s.app, &s.alice, "GET", &path, None).await.1["enabled"],
        false
    );
    let changed = send(
        &s.app,
        &s.alice,
        "PUT",
        &path,
        Some(json!({"cron_expression": "*/15 * * * *", "enabled": true})),
    )
    .await;
    assert_eq!(changed.0, 200, "{changed:?}");
    assert_eq!(changed.1["cron_expression"], "*/15 * * * *");
    assert_eq!(changed.1["enabled"], true);
    assert_plain_error(
        &send(
            &s.app,
            &s.alice,
            "PUT",
            &path,
            Some(json!({"cron_expression": "nonsense"})),
        )
        .await,
        422,
        "request.validation",
    );
    let history = send(&s.app, &s.alice, "GET", &format!("{path}/history"), None).await;
    assert_eq!(
        history.1,
        json!({"items": [], "total": 0, "page": 1, "page_size": 20})
    );
    let list = send(&s.app, &s.alice, "GET", "/tasks/recurring", None).await;
    assert_eq!(list.1["total"], 1);
    assert_eq!(list.1["items"][0]["id"], id);

    assert_plain_error(
        &send(
            &s.app,
            &bob,
            "POST",
            &format!("{path}/toggle"),
            Some(json!({"enabled": false})),
        )
        .await,
        404,
        "task.not_found",
    );
    assert_eq!(
        send(&s.app, &bob, "GET", "/tasks/recurring", None).await.1["total"],
        0
    );
    assert_eq!(
        send(&s.app, &s.alice, "DELETE", &path, None).await,
        (200, json!({"success": true}))
    );
    assert_plain_error(
        &send(&s.app, &s.alice, "GET", &path, None).await,
        404,
        "task.not_found",
    );
}

#[tokio::test]
async fn the_worker_protocol_claims_once_retries_and_keeps_history() {
    let s = setup_with(&[], |c| {
        c.worker_token = Some("worker-secret-token".into());
        // The in-process worker stays out of the way of this test's own calls.
        c.task_poll = Duration::from_secs(3600);
    })
    .await;
    let admin = s.app.admin().await;
    let task = one_time(
        &s,
        json!({"name": "Far future", "agent_id": s.agent, "execute_at": "2099-01-01T00:00:00Z"}),
    )
    .await;
    let id = task["id"].as_i64().unwrap();

    // Users may not speak the protocol; the admin and the worker token may.
    assert_plain_error(
        &send(&s.app, &s.alice, "GET", "/tasks/internal/due", None).await,
        403,
        "auth.forbidden",
    );
    let worker = s.app.new_client();
    let with_token = worker
        .get(s.app.url("/tasks/internal/due?limit=10"))
        .bearer_auth("worker-secret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(with_token.status(), 200);
    assert_eq!(
        with_token.json::<Value>().await.unwrap(),
        json!({"items": []})
    );
    let wrong = worker
        .get(s.app.url("/tasks/internal/due"))
        .bearer_auth("worker-secret-tokeX")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    // The token opens the protocol only.
    let elsewhere = worker
        .get(s.app.url("/tasks/one-time"))
        .bearer_auth("worker-secret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 401);

    // A task in the future is not due; one in the past is.
    let past = one_time(
        &s,
        json!({"name": "Overdue", "agent_id": s.agent, "execute_at": "2020-01-01T00:00:00Z"}),
    )
    .await;
    let past_id = past["id"].as_i64().unwrap();
    let due = send(&s.app, &admin, "GET", "/tasks/internal/due", None).await;
    let due_ids: Vec<i64> = due.1["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    assert_eq!(due_ids, vec![past_id]);

    let claim = format!("/tasks/internal/one-time/{past_id}/claim");
    assert_eq!(
        send(&s.app, &admin, "POST", &claim, None).await,
        (200, json!({"claimed": true}))
    );
    assert_eq!(
        send(&s.app, &admin, "POST", &claim, None).await,
        (200, json!({"claimed": false}))
    );
    let processing = send(
        &s.app,
        &s.alice,
        "GET",
        &format!("/tasks/one-time/{past_id}"),
        None,
    )
    .await;
    assert_eq!(processing.1["status"], "processing");
    assert_eq!(
        send(&s.app, &admin, "GET", "/tasks/internal/due", None)
            .await
            .1["items"],
        json!([])
    );

    // A failure puts it back while retries remain.
    let failed = send(
        &s.app,
        &admin,
        "POST",
        &format!("/tasks/internal/one-time/{past_id}/fail"),
        Some(json!({"error_message": "model unavailable"})),
    )
    .await;
    assert_eq!(failed.0, 200);
    assert_eq!(failed.1["status"], "pending");
    assert_eq!(failed.1["retry_count"], 1);
    assert_eq!(
        send(&s.app, &admin, "POST", &claim, None).await.1["claimed"],
        true
    );
    let done = send(
        &s.app,
        &admin,
        "POST",
        &format!("/tasks/internal/one-time/{past_id}/complete"),
        Some(json!({"response": "All done."})),
    )
    .await;
    assert_eq!(done.0, 200);
    assert_eq!(done.1["status"], "completed");
    assert!(done.1["completed_at"].is_string());

    let (status, history) = history_of(&s, past_id).await;
    assert_eq!(status, 200);
    let entries = history.as_array().unwrap();
    assert_eq!(entries.len(), 2, "{history}");
    assert_eq!(entries[0]["status"], "completed");
    assert_eq!(entries[0]["response"], "All done.");
    assert_eq!(entries[1]["status"], "failed");
    assert_eq!(entries[1]["error_message"], "model unavailable");
    assert_eq!(entries[0]["task_id"], past_id);

    // Failures past the retries end it; an empty body is accepted.
    let fail = format!("/tasks/internal/one-time/{id}/fail");
    let mut last = Value::Null;
    for _ in 0..4 {
        let r = admin.post(s.app.url(&fail)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        last = r.json().await.unwrap();
    }
    assert_eq!(last["status"], "failed");
    assert_eq!(last["retry_count"], 4);
    assert_plain_error(
        &send(
            &s.app,
            &admin,
            "POST",
            "/tasks/internal/one-time/999999/claim",
            None,
        )
        .await,
        404,
        "task.not_found",
    );
    let spawned = send(&s.app, &admin, "POST", "/tasks/internal/spawn-due", None).await;
    assert_eq!(spawned, (200, json!({"items": []})));

    // A deleted user's tasks and their history go with them.
    let removed = s
        .app
        .post_json(&admin, "/api/user/delete", json!({"user_id": s.alice_id}))
        .await;
    assert_eq!(removed.status(), 200);
    assert_eq!(
        send(&s.app, &admin, "GET", "/tasks/one-time", None).await.1["total"],
        0
    );
    assert_plain_error(
        &send(
            &s.app,
            &admin,
            "GET",
            &format!("/tasks/one-time/{past_id}/history"),
            None,
        )
        .await,
        404,
        "task.not_found",
    );
}

/// A task's history as its owner reads it.
async fn history_of(s: &Chat, id: i64) -> (u16, Value) {
    send(
        &s.app,
        &s.alice,
        "GET",
        &format!("/tasks/one-time/{id}/history"),
        None,
    )
    .await
}

async fn wait_for_status(s: &Chat, id: i64, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let task = send(
            &s.app,
            &s.alice,
            "GET",
            &format!("/tasks/one-time/{id}"),
            None,
        )
        .await
        .1;
        if task["status"] == status {
            return task;
        }
        assert!(Instant::now() < deadline, "the task stayed {task}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_worker_runs_a_due_task_through_its_agent_and_records_the_answer() {
    let s = setup_with(&[], |c| c.task_poll = Duration::from_secs(1)).await;
    s.llm.push(Reply::text(&["Three", " headlines."]));
    let task = one_time(
        &s,
        json!({"name": "Digest", "description": "List three headlines", "agent_id": s.agent,
               "execute_at": "2020-01-01T00:00:00Z"}),
    )
    .await;
    let id = task["id"].as_i64().unwrap();
    let done = wait_for_status(&s, id, "completed").await;
    assert!(done["completed_at"].is_string());
    let history = history_of(&s, id).await;
    assert_eq!(history.1[0]["status"], "completed");
    assert_eq!(history.1[0]["response"], "Three headlines.");
    // The model was asked the task's description.
    let asked = s.llm.chat_requests();
    let last = asked.last().unwrap();
    let user = last["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .unwrap();
    assert!(
        user["content"].to_string().contains("List three headlines"),
        "{user}"
    );

    // A model that keeps failing fails the task after its retries, each one in the history.
    for _ in 0..4 {
        s.llm.push(Reply::error(400, "context length exceeded"));
    }
    let doomed = one_time(
        &s,
        json!({"name": "Doomed", "agent_id": s.agent, "execute_at": "2020-01-01T00:00:00Z"}),
    )
    .await;
    let doomed_id = doomed["id"].as_i64().unwrap();
    let failed = wait_for_status(&s, doomed_id, "failed").await;
    assert_eq!(failed["retry_count"], 4);
    let history = history_of(&s, doomed_id).await;
    let entries = history.1.as_array().unwrap();
    assert_eq!(entries.len(), 4);
    assert!(entries.iter().all(|e| e["status"] == "failed"));
    assert!(
        entries[0]["error_message"]
            .as_str()
            .unwrap()
            .contains("400"),
        "{entries:?}"
    );
}

#[tokio::test]
async fn a_separate_worker_process_runs_due_tasks() {
    // The server's own worker sleeps through the test: only `sage-server worker` can run it.
    let s = setup_with(&[], |c| c.task_poll = Duration::from_secs(3600)).await;
    s.llm.push(Reply::text(&["Ran elsewhere."]));
    let task = one_time(
        &s,
        json!({"name": "Offloaded", "agent_id": s.agent, "execute_at": "2020-01-01T00:00:00Z"}),
    )
    .await;
    let id = task["id"].as_i64().unwrap();
    let mut env = s.app.binary_env();
    env.push(("SAGE_TASK_POLL_SECS".into(), "1".into()));
    env.push(("SAGE_OUTBOUND_ALLOW".into(), "loopback".into()));
    env.push(("RUST_LOG".into(), "warn".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut worker = crate::binary::sage(&["worker"], &env)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let done = wait_for_status(&s, id, "completed").await;
    worker.kill().unwrap();
    worker.wait().unwrap();
    assert!(done["completed_at"].is_string());
    let history = history_of(&s, id).await;
    assert_eq!(history.1[0]["response"], "Ran elsewhere.");
}

const TASK_TOOLS: [&str; 7] = [
    "add_task",
    "list_tasks",
    "get_task_details",
    "update_task",
    "delete_task",
    "complete_task",
    "enable_task",
];

/// The parsed result of the tool call `id` in a stream.
fn tool_result(text: &str, id: &str) -> Value {
    let line = crate::chat::parse(text)
        .into_iter()
        .find(|l| l["type"] == "tool_call_result" && l["tool_call_id"] == id)
        .unwrap_or_else(|| panic!("no result for {id}: {text}"));
    serde_json::from_str(line["content"].as_str().unwrap()).unwrap()
}

async fn run_chat(s: &Chat, session: &str, replies: Vec<Reply>) -> String {
    for reply in replies {
        s.llm.push(reply);
    }
    let mut body = crate::chat::body(&s.agent, session, "Manage my schedule");
    body["max_loop_count"] = json!(10);
    crate::chat::post(s, &s.alice, "/api/web-stream", body)
        .await
        .1
}

#[tokio::test]
async fn agents_manage_their_callers_tasks_with_tools_and_scheduled_runs_add_none() {
    use crate::chat::call;
    let s = setup_with(&TASK_TOOLS, |c| c.task_poll = Duration::from_secs(1)).await;

    // Scheduling: a one-time task in a zone, for the run's agent; a recurring one.
    let text = run_chat(
        &s,
        "session_task_tools",
        vec![
            call(
                "c_once",
                "add_task",
                json!({"name": "Standup", "description": "Summarise yesterday",
                       "schedule": "2031-05-01T09:00:00", "timezone": "Europe/Berlin"}),
            ),
            call(
                "c_rec",
                "add_task",
                json!({"name": "Daily", "schedule": "0 9 * * *", "is_recurring": true}),
            ),
            Reply::text(&["Scheduled."]),
        ],
    )
    .await;
    let once = tool_result(&text, "c_once");
    assert_eq!(once["status"], "success", "{once}");
    let once_id = once["task"]["task_id"].as_str().unwrap().to_owned();
    assert!(once_id.starts_with("once_"), "{once}");
    assert_eq!(once["task"]["agent_id"], s.agent.as_str());
    assert_eq!(once["task"]["execute_at"], "2031-05-01T09:00:00+02:00");
    let rec = tool_result(&text, "c_rec");
    let rec_id = rec["task"]["task_id"].as_str().unwrap().to_owned();
    assert!(rec_id.starts_with("rec_"), "{rec}");
    let listed = send(&s.app, &s.alice, "GET", "/tasks/one-time", None).await;
    assert!(listed.1.to_string().contains("Standup"), "{listed:?}");
    let listed = send(&s.app, &s.alice, "GET", "/tasks/recurring", None).await;
    assert!(listed.1.to_string().contains("Daily"), "{listed:?}");

    // Bob's task is nobody else's business.
    let (bob, _) = s.app.user("bob").await;
    let bobs_agent = crate::chat::named_agent(&s.app, &bob, "Bob's", &[], "simple").await;
    let bobs = send(
        &s.app,
        &bob,
        "POST",
        "/tasks/one-time",
        Some(json!({"name": "Secret", "agent_id": bobs_agent,
                    "execute_at": "2031-01-01T00:00:00Z"})),
    )
    .await;
    let bobs_id = format!("once_{}", bobs.1["id"]);

    // Listing, reading, changing, completing and deleting, on Alice's tasks only.
    let text = run_chat(
        &s,
        "session_task_tools_2",
        vec![
            call("c_list", "list_tasks", json!({})),
            call("c_peek", "get_task_details", json!({"task_id": bobs_id})),
            call(
                "c_off",
                "enable_task",
                json!({"task_id": rec_id, "enabled": false}),
            ),
            call(
                "c_rename",
                "update_task",
                json!({"task_id": once_id, "name": "Standup v2"}),
            ),
            call("c_done", "complete_task", json!({"task_id": once_id})),
            call("c_del", "delete_task", json!({"task_id": rec_id})),
            Reply::text(&["Done."]),
        ],
    )
    .await;
    let list = tool_result(&text, "c_list");
    let ids: Vec<&str> = list["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [once_id.as_str(), rec_id.as_str()], "{list}");
    let peek = tool_result(&text, "c_peek");
    assert_eq!(peek["status"], "error", "{peek}");
    assert!(!peek.to_string().contains("Secret"), "{peek}");
    assert_eq!(tool_result(&text, "c_off")["task"]["enabled"], false);
    assert_eq!(tool_result(&text, "c_rename")["task"]["name"], "Standup v2");
    assert_eq!(tool_result(&text, "c_done")["task"]["status"], "completed");
    assert_eq!(tool_result(&text, "c_del")["deleted"], rec_id.as_str());
    let recurring = send(&s.app, &s.alice, "GET", "/tasks/recurring", None).await;
    assert!(!recurring.1.to_string().contains("Daily"), "{recurring:?}");
    let bobs_task = send(&s.app, &bob, "GET", "/tasks/one-time", None).await;
    assert!(bobs_task.1.to_string().contains("Secret"));

    // A scheduled run may read tasks but not add one.
    s.llm.push(call(
        "c_again",
        "add_task",
        json!({"name": "Forever", "schedule": "2020-01-01T00:00:00Z"}),
    ));
    s.llm.push(Reply::text(&["Could not."]));
    let due = one_time(
        &s,
        json!({"name": "Reschedule", "agent_id": s.agent, "execute_at": "2020-01-01T00:00:00Z"}),
    )
    .await;
    wait_for_status(&s, due["id"].as_i64().unwrap(), "completed").await;
    let asked = s.llm.chat_requests();
    let refusal = asked.last().unwrap()["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(refusal["role"], "tool");
    assert!(
        refusal["content"]
            .as_str()
            .unwrap()
            .contains("may not schedule"),
        "{refusal}"
    );
    let all = send(&s.app, &s.alice, "GET", "/tasks/one-time", None).await;
    assert!(!all.1.to_string().contains("Forever"), "{all:?}");
}

#[tokio::test]
async fn each_user_has_at_most_the_configured_number_of_scheduled_tasks() {
    let s = setup_with(&["add_task"], |c| c.max_tasks_per_user = 2).await;
    let at = "2031-01-01T00:00:00Z";
    let first = one_time(
        &s,
        json!({"name": "One", "agent_id": s.agent, "execute_at": at}),
    )
    .await;
    let rec = send(
        &s.app,
        &s.alice,
        "POST",
        "/tasks/recurring",
        Some(json!({"name": "Two", "agent_id": s.agent, "cron_expression": "0 9 * * *"})),
    )
    .await;
    assert_eq!(rec.0, 200, "{rec:?}");
    for (path, body) in [
        (
            "/tasks/one-time",
            json!({"name": "Three", "agent_id": s.agent, "execute_at": at}),
        ),
        (
            "/tasks/recurring",
            json!({"name": "Three", "agent_id": s.agent, "cron_expression": "0 9 * * *"}),
        ),
    ] {
        let refused = send(&s.app, &s.alice, "POST", path, Some(body)).await;
        assert_plain_error(&refused, 409, "task.quota_exceeded");
        assert!(
            refused.1["detail"].as_str().unwrap().contains('2'),
            "{refused:?}"
        );
    }
    // An agent's add_task meets the same limit.
    s.llm.push(crate::chat::call(
        "c_more",
        "add_task",
        json!({"name": "Four", "schedule": at}),
    ));
    s.llm.push(Reply::text(&["Full."]));
    let text = run_chat(&s, "session_task_quota", Vec::new()).await;
    let refused = tool_result(&text, "c_more");
    assert_eq!(refused["status"], "error", "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("2 scheduled tasks"),
        "{refused}"
    );
    // A deleted task frees its place; another user has their own allowance.
    let id = first["id"].as_i64().unwrap();
    let deleted = send(
        &s.app,
        &s.alice,
        "DELETE",
        &format!("/tasks/one-time/{id}"),
        None,
    )
    .await;
    assert_eq!(deleted.0, 200, "{deleted:?}");
    one_time(
        &s,
        json!({"name": "Again", "agent_id": s.agent, "execute_at": at}),
    )
    .await;
    let (bob, _) = s.app.user("bob").await;
    let bobs_agent = crate::chat::named_agent(&s.app, &bob, "Bob's", &[], "simple").await;
    let bobs = send(
        &s.app,
        &bob,
        "POST",
        "/tasks/one-time",
        Some(json!({"name": "Bob", "agent_id": bobs_agent, "execute_at": at})),
    )
    .await;
    assert_eq!(bobs.0, 200, "{bobs:?}");
}
