//! Graceful shutdown and jobs: on SIGTERM a server stops claiming jobs, gives running ones
//! `SAGE_SHUTDOWN_TIMEOUT_SECS` to finish, and hands back the lease of any it could not finish,
//! so another process runs it at once instead of after the lease expires.

use std::process::Stdio;
use std::time::{Duration, Instant};

use llm_double::{LlmDouble, Reply};

use crate::binary::{admin_client, sage, wait_ready};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn a_job_running_at_shutdown_is_handed_back_and_finished_by_another_process() {
    let llm = LlmDouble::start(None, &[]).await.unwrap();
    // The first attempt outlasts the grace period; the second answers.
    llm.push(Reply::Answer {
        chunks: vec!["{}".into()],
        reasoning: vec![],
        tool_calls: vec![],
        usage: None,
        delay: Duration::from_secs(300),
        cut_after: None,
    });
    llm.push(Reply::text(&[
        r#"{"name": "Handed over", "systemPrefix": "You carry on.", "maxLoopCount": 5}"#,
    ]));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let database_url = match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => Some(crate::helpers::fresh_postgres(&url).await),
        _ => None,
    };
    let (first_port, second_port) = (free_port().to_string(), free_port().to_string());
    let spawn = |port: &str| {
        let mut env = vec![
            ("SAGE_DATA_DIR", data.as_str()),
            ("SAGE_PORT", port),
            ("SAGE_ADMIN_PASSWORD", "Boot-admin-pass"),
            ("SAGE_OUTBOUND_ALLOW", "loopback"),
            ("SAGE_DEFAULT_LLM_BASE_URL", llm.base_url.as_str()),
            ("SAGE_DEFAULT_LLM_MODEL", "m"),
            ("SAGE_DEFAULT_LLM_API_KEY", "k"),
            // A lease far longer than the test: only a handed-back job can run again in time.
            ("SAGE_JOB_LEASE_SECS", "600"),
            ("SAGE_SHUTDOWN_TIMEOUT_SECS", "1"),
            ("SAGE_WORKERS", "1"),
            ("RUST_LOG", "warn"),
        ];
        if let Some(url) = &database_url {
            env.push(("DATABASE_URL", url.as_str()));
        }
        sage(&["serve"], &env)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut first = spawn(&first_port);
    wait_ready(first_port.parse().unwrap()).await;
    let client = admin_client(first_port.parse().unwrap()).await;
    let submitted: serde_json::Value = client
        .post(format!(
            "http://127.0.0.1:{first_port}/api/agent/auto-generate/submit"
        ))
        .json(&serde_json::json!({"agent_description": "survives shutdowns"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let task = submitted["data"]["task_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    while llm.chat_requests().is_empty() {
        assert!(Instant::now() < deadline, "the model was never called");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // A second replica is up and polling before the first one is told to stop.
    let mut second = spawn(&second_port);
    wait_ready(second_port.parse().unwrap()).await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = first.wait().unwrap();
    assert!(exit.success(), "a graceful stop exits 0: {exit:?}");

    let client = admin_client(second_port.parse().unwrap()).await;
    let url = format!("http://127.0.0.1:{second_port}/api/agent/tasks/{task}");
    let done = crate::jobs::poll(&client, &url, |s| s == "completed" || s == "failed").await;
    second.kill().unwrap();
    second.wait().unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["result"]["name"], "Handed over");
    assert_eq!(llm.chat_requests().len(), 2, "the second process ran it");
}
