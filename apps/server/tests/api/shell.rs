//! The shell tool: absent unless `SAGE_ENABLE_SHELL_TOOL`; when enabled, a command runs in a
//! bubblewrap sandbox whose working directory is the agent's workspace, which cannot see the
//! data directory or reach the network, whose output streams as `tool_progress`, and which is
//! killed at its time limit. Direct calls of it need an admin.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::chat::{body, call, parse, post, setup, setup_with};
use crate::helpers::envelope;
use llm_double::Reply;

fn bwrap_works() -> bool {
    std::process::Command::new("bwrap")
        .args(["--unshare-all", "--ro-bind", "/", "/", "true"])
        .output()
        .is_ok_and(|o| o.status.success())
}

async fn exec(
    app: &crate::helpers::TestApp,
    client: &reqwest::Client,
    command: &str,
    timeout: u64,
) -> (u16, Value) {
    let r = app
        .post_json(
            client,
            "/api/tools/exec",
            json!({"tool_name": "execute_shell_command",
                   "tool_params": {"command": command, "timeout": timeout}}),
        )
        .await;
    let status = r.status().as_u16();
    let body = envelope(r).await;
    (status, body["data"]["tool_response"].clone())
}

#[tokio::test]
async fn the_shell_is_absent_unless_the_deployment_enables_it() {
    let s = setup(&[]).await;
    let r = s.alice.get(s.app.url("/api/tools")).send().await.unwrap();
    let tools = envelope(r).await["data"]["tools"].to_string();
    assert!(!tools.contains("execute_shell_command"), "{tools}");
    let admin = s.app.admin().await;
    let (status, _) = exec(&s.app, &admin, "id", 5).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_enabled_shell_runs_in_a_sandbox_of_the_workspace() {
    if !bwrap_works() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs bubblewrap (.ci/run installs it)"
        );
        eprintln!("SKIPPED: bubblewrap cannot create a sandbox on this machine");
        return;
    }
    let s = setup_with(&["execute_shell_command"], |c| c.enable_shell_tool = true).await;
    let admin = s.app.admin().await;

    // A user may not call it directly: it changes files.
    let (status, _) = exec(&s.app, &s.alice, "id", 5).await;
    assert_eq!(status, 403);

    // The workspace is the working directory, and what it writes stays there.
    let (status, out) = exec(
        &s.app,
        &admin,
        "echo hello > made.txt && cat made.txt && pwd",
        10,
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["status"], "success", "{out}");
    assert_eq!(out["exit_code"], 0);
    assert_eq!(out["stdout"], "hello\n/workspace\n");
    let r = s
        .app
        .post_json(
            &admin,
            "/api/tools/exec",
            json!({"tool_name": "file_read", "tool_params": {"file_path": "made.txt"}}),
        )
        .await;
    assert!(
        envelope(r).await["data"]["raw_text"]
            .as_str()
            .unwrap()
            .contains("hello")
    );

    // The host's data directory, its files and the network are out of reach.
    let data = s.app.data_path().display().to_string();
    let llm_port = s
        .llm
        .base_url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches("/v1");
    let probe = format!(
        "test -e '{data}' && echo data-visible; ls /root 2>/dev/null && echo root-visible; \
         bash -c 'echo > /dev/tcp/127.0.0.1/{llm_port}' 2>/dev/null && echo network-reached; \
         touch /usr/x 2>/dev/null && echo usr-writable; echo checked"
    );
    let (_, out) = exec(&s.app, &admin, &probe, 10).await;
    assert_eq!(out["stdout"], "checked\n", "{out}");

    // A failing command reports its exit code and stderr; a slow one is killed in time.
    let (_, out) = exec(&s.app, &admin, "echo oops >&2; exit 3", 10).await;
    assert_eq!(out["status"], "error");
    assert_eq!(out["exit_code"], 3);
    assert_eq!(out["stderr"], "oops\n");
    let started = Instant::now();
    let (_, out) = exec(&s.app, &admin, "echo begun; sleep 30", 1).await;
    assert!(started.elapsed() < Duration::from_secs(10), "{out}");
    assert_eq!(out["timed_out"], true, "{out}");
    assert_eq!(out["stdout"], "begun\n");

    // In a run, the output streams as tool_progress on /api/stream before the result.
    s.llm.push(call(
        "call_sh",
        "execute_shell_command",
        json!({"command": "echo from-the-run"}),
    ));
    s.llm.push(Reply::text(&["Ran it."]));
    let (_, text) = post(
        &s,
        &s.alice,
        "/api/stream",
        body(&s.agent, "session_shell", "Run something"),
    )
    .await;
    let lines = parse(&text);
    let progress = lines
        .iter()
        .position(|l| l["type"] == "tool_progress" && l["text"] == "from-the-run\n")
        .unwrap_or_else(|| panic!("{text}"));
    let result = lines
        .iter()
        .position(|l| l["type"] == "tool_call_result")
        .unwrap();
    assert!(progress < result);
    assert_eq!(lines[progress]["stream"], "stdout");
}
