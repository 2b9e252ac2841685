//! The `sage-server` binary itself: subcommands, one-line start errors with exit code 1, and
//! graceful shutdown on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_sage-server");

pub(crate) fn sage(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_clear();
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

#[test]
fn openapi_prints_a_valid_document() {
    let output = sage(&["openapi"], &[]).output().unwrap();
    assert!(output.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(doc["paths"]["/api/health"].is_object());
}

#[test]
fn unknown_arguments_print_usage_and_fail() {
    let output = sage(&["frobnicate"], &[]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("usage"));
}

fn one_error_line(output: &std::process::Output) -> String {
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    assert_eq!(stderr.lines().count(), 1, "one line expected: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn a_malformed_setting_stops_the_start_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let output = sage(&[], &[("SAGE_DATA_DIR", data), ("SAGE_PORT", "eighty")])
        .output()
        .unwrap();
    assert!(one_error_line(&output).contains("SAGE_PORT"));
    let output = sage(
        &["migrate"],
        &[("SAGE_DATA_DIR", data), ("SAGE_AUTH_MODE", "ldap")],
    )
    .output()
    .unwrap();
    assert!(one_error_line(&output).contains("SAGE_AUTH_MODE"));
}

#[test]
fn an_unreachable_database_or_redis_stops_the_start_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let output = sage(
        &[],
        &[
            ("SAGE_DATA_DIR", data),
            ("DATABASE_URL", "postgres://sage:pw@127.0.0.1:1/sage"),
        ],
    )
    .output()
    .unwrap();
    let line = one_error_line(&output);
    assert!(
        line.contains("database") && !line.contains(":pw@"),
        "{line}"
    );

    let output = sage(
        &[],
        &[
            ("SAGE_DATA_DIR", data),
            ("REDIS_URL", "redis://127.0.0.1:1"),
        ],
    )
    .output()
    .unwrap();
    assert!(one_error_line(&output).contains("Redis"));
}

#[test]
fn migrate_creates_the_embedded_database_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let output = sage(
        &["migrate"],
        &[("SAGE_DATA_DIR", dir.path().to_str().unwrap())],
    )
    .output()
    .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(dir.path().join("sage.db").exists());
}

#[test]
fn serve_logs_its_port_and_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = sage(
        &["serve"],
        &[
            ("SAGE_DATA_DIR", dir.path().to_str().unwrap()),
            ("SAGE_PORT", "0"),
            ("SAGE_LOG_FORMAT", "json"),
            ("SAGE_WORKERS", "1"),
        ],
    )
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    // The "listening" line is the readiness signal; reading it blocks until it is written.
    let port: u16 = loop {
        let line = lines
            .next()
            .expect("the server logs before exiting")
            .unwrap();
        if let Some(rest) = line.split("listening on http://127.0.0.1:").nth(1) {
            break rest
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .unwrap();
        }
    };
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    use std::io::{Read, Write};
    stream
        .write_all(b"GET /active HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert!(reply.contains("Service is available."), "{reply}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "graceful stop exits 0: {exit:?}");
    assert!(lines.any(|l| l.is_ok_and(|l| l.contains("stopped"))));
}

fn with_stdin(mut cmd: Command, input: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn the_admin_cli_creates_users_and_resets_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let env = [
        ("SAGE_DATA_DIR", data.as_str()),
        ("SAGE_ADMIN_PASSWORD", "Boot-admin-pass"),
    ];
    let created = with_stdin(
        sage(
            &[
                "admin",
                "create-user",
                "--username",
                "opal",
                "--password-stdin",
                "--role",
                "admin",
            ],
            &env,
        ),
        "Opal-first-pass\n",
    );
    assert!(created.status.success(), "{created:?}");
    let id = String::from_utf8_lossy(&created.stdout).trim().to_owned();
    assert_eq!(id.len(), 32, "the new id is printed: {id}");

    let weak = with_stdin(
        sage(
            &[
                "admin",
                "create-user",
                "--username",
                "weak",
                "--password-stdin",
            ],
            &env,
        ),
        "short\n",
    );
    assert_eq!(weak.status.code(), Some(1));

    let reset = with_stdin(
        sage(
            &[
                "admin",
                "reset-password",
                "--username",
                "opal",
                "--password-stdin",
            ],
            &env,
        ),
        "Opal-second-pass\n",
    );
    assert!(reset.status.success(), "{reset:?}");

    // The embedded server over the same data directory sees both changes.
    let app = crate::helpers::TestApp::spawn_with(|c| {
        c.data_dir = dir.path().to_path_buf();
        c.database_url = None;
        c.redis_url = None;
        c.admin_password = Some("Boot-admin-pass".into());
    })
    .await;
    let client = app.new_client();
    assert_eq!(
        app.login(&client, "opal", "Opal-first-pass").await.status(),
        401
    );
    let ok = app.login(&client, "opal", "Opal-second-pass").await;
    assert_eq!(ok.status(), 200);
    let session: serde_json::Value = client
        .get(app.url("/api/auth/session"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(session["data"]["user"]["role"], "admin");
}

pub(crate) async fn wait_ready(port: u16) {
    platform::tls::ensure_crypto_provider();
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/active"))
            .send()
            .await
            && r.status() == 200
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not start"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

pub(crate) async fn admin_client(port: u16) -> reqwest::Client {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let r = client
        .post(format!("http://127.0.0.1:{port}/api/auth/login"))
        .json(&serde_json::json!({"username_or_email": "admin", "password": "Boot-admin-pass"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    client
}

#[tokio::test]
async fn a_job_interrupted_by_a_crash_is_resumed_after_a_restart() {
    use llm_double::{LlmDouble, Reply};
    let llm = LlmDouble::start(None, &[]).await.unwrap();
    // The first attempt hangs (the server is killed meanwhile); the second answers.
    llm.push(Reply::Answer {
        chunks: vec!["{}".into()],
        reasoning: vec![],
        tool_calls: vec![],
        usage: None,
        delay: std::time::Duration::from_secs(120),
        cut_after: None,
    });
    llm.push(Reply::text(&[
        r#"{"name": "Survivor", "systemPrefix": "You persist.", "maxLoopCount": 5}"#,
    ]));
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let port_text = port.to_string();
    let data = dir.path().to_str().unwrap().to_owned();
    let env = [
        ("SAGE_DATA_DIR", data.as_str()),
        ("SAGE_PORT", port_text.as_str()),
        ("SAGE_ADMIN_PASSWORD", "Boot-admin-pass"),
        ("SAGE_OUTBOUND_ALLOW", "loopback"),
        ("SAGE_DEFAULT_LLM_BASE_URL", llm.base_url.as_str()),
        ("SAGE_DEFAULT_LLM_MODEL", "m"),
        ("SAGE_DEFAULT_LLM_API_KEY", "k"),
        ("SAGE_JOB_LEASE_SECS", "1"),
        ("SAGE_WORKERS", "1"),
        ("RUST_LOG", "warn"),
    ];
    let spawn = || {
        sage(&["serve"], &env)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut first = spawn();
    wait_ready(port).await;
    let client = admin_client(port).await;
    let submitted: serde_json::Value = client
        .post(format!(
            "http://127.0.0.1:{port}/api/agent/auto-generate/submit"
        ))
        .json(&serde_json::json!({"agent_description": "survives crashes"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = format!(
        "http://127.0.0.1:{port}/api/agent/tasks/{}",
        submitted["data"]["task_id"].as_str().unwrap()
    );
    crate::jobs::poll(&client, &url, |s| s == "running").await;
    // The model call is under way once the model has received it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while llm.chat_requests().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the model was never called"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    // A crash: no graceful stop, the job row stays `running` with its lease.
    first.kill().unwrap();
    first.wait().unwrap();

    let mut second = spawn();
    wait_ready(port).await;
    let client = admin_client(port).await;
    let done = crate::jobs::poll(&client, &url, |s| s == "completed" || s == "failed").await;
    second.kill().unwrap();
    second.wait().unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["result"]["name"], "Survivor");
    assert_eq!(
        llm.chat_requests().len(),
        2,
        "the job ran again after the restart"
    );
}

/// The peak resident memory of a process so far, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn a_100_mib_upload_does_not_sit_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let port_text = port.to_string();
    let data = dir.path().to_str().unwrap().to_owned();
    let mut server = sage(
        &["serve"],
        &[
            ("SAGE_DATA_DIR", data.as_str()),
            ("SAGE_PORT", port_text.as_str()),
            ("SAGE_ADMIN_PASSWORD", "Boot-admin-pass"),
            ("SAGE_WORKERS", "1"),
            ("RUST_LOG", "warn"),
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    wait_ready(port).await;
    let client = admin_client(port).await;
    let created: serde_json::Value = client
        .post(format!("http://127.0.0.1:{port}/api/agent/create"))
        .json(&serde_json::json!({"name": "Big files", "maxLoopCount": 5}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let agent = created["data"]["agent_id"].as_str().unwrap().to_owned();
    let url = format!("http://127.0.0.1:{port}/api/agent/{agent}/file_workspace/upload");
    let send = |name: &str, bytes: usize| {
        let (content_type, body) = crate::workspaces::streamed_upload(name, bytes, false);
        client
            .post(&url)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    // A small upload first, so that the baseline includes what any upload needs.
    assert_eq!(send("warm.bin", 1024 * 1024).await.unwrap().status(), 200);
    let before = peak_rss_kib(server.id());
    let big = send("big.bin", 100 * 1024 * 1024).await.unwrap();
    let status = big.status();
    let after = peak_rss_kib(server.id());
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(status, 200);
    let stored = dir
        .path()
        .join("workspaces")
        .read_dir()
        .unwrap()
        .flatten()
        .find_map(|user| std::fs::metadata(user.path().join(&agent).join("big.bin")).ok())
        .unwrap();
    assert_eq!(stored.len(), 100 * 1024 * 1024);
    assert!(
        after - before < 20 * 1024,
        "the peak resident size grew by {} KiB",
        after - before
    );
}

#[tokio::test]
async fn an_oversized_model_answer_leaves_the_server_bounded() {
    use llm_double::{LlmDouble, Reply};
    let llm = LlmDouble::start(None, &[]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let port_text = port.to_string();
    let data = dir.path().to_str().unwrap().to_owned();
    let mut server = sage(
        &["serve"],
        &[
            ("SAGE_DATA_DIR", data.as_str()),
            ("SAGE_PORT", port_text.as_str()),
            ("SAGE_ADMIN_PASSWORD", "Boot-admin-pass"),
            ("SAGE_OUTBOUND_ALLOW", "loopback"),
            ("SAGE_WORKERS", "1"),
            ("RUST_LOG", "warn"),
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    wait_ready(port).await;
    let client = admin_client(port).await;
    let create = || {
        client
            .post(format!("http://127.0.0.1:{port}/api/llm-provider/create"))
            .json(&serde_json::json!({"base_url": llm.base_url, "api_keys": ["k"], "model": "m"}))
            .send()
    };
    // One ordinary probe first, so the baseline includes what any probe needs.
    assert_eq!(create().await.unwrap().status(), 200);
    let before = peak_rss_kib(server.id());
    // 200 MiB of answer; only the first 16 MiB may ever be read.
    llm.push(Reply::Huge {
        bytes: 200 * 1024 * 1024,
        status: 200,
    });
    let refused = client
        .post(format!("http://127.0.0.1:{port}/api/llm-provider/verify"))
        .json(&serde_json::json!({"base_url": llm.base_url, "api_keys": ["k"], "model": "m"}))
        .send()
        .await
        .unwrap();
    let status = refused.status();
    let body: serde_json::Value = refused.json().await.unwrap();
    let after = peak_rss_kib(server.id());
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(status, 502, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("larger than"),
        "{body}"
    );
    assert!(
        after - before < 48 * 1024,
        "the peak resident size grew by {} KiB",
        after - before
    );
}
