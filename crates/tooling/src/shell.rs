//! `execute_shell_command`, off unless the deployment enables it (`SAGE_ENABLE_SHELL_TOOL`):
//! `/bin/sh -c <command>` in a bubblewrap sandbox that sees the system's programs read-only,
//! the agent's workspace as `/workspace` (read-write, the working directory), a private `/tmp`,
//! and nothing else of the host: no network (a network namespace of its own), no other
//! processes (a PID namespace), no data directory, no environment but `PATH`, `HOME`, `LANG`
//! and `TMPDIR`. `prlimit` caps memory, file size, open files and CPU time. Output streams
//! as progress notes while the command runs and is kept up to a cap; the command is killed at
//! its time limit, when the run is interrupted, and with the server.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::{Progress, Tool, ToolContext, ToolError};

pub const TOOL_NAME: &str = "execute_shell_command";
const DEFAULT_TIMEOUT_SECS: u64 = 30;
/// Below the registry's time limit, so the tool reports its own time-out with the output.
const MAX_TIMEOUT_SECS: u64 = 55;
/// Bytes of each stream kept for the model.
const MAX_STREAM_BYTES: usize = 32 * 1024;
const MAX_COMMAND_CHARS: usize = 16_000;
/// Address space, largest file and open files of the sandboxed command.
const MEMORY_BYTES: u64 = 2 * 1024 * 1024 * 1024;
const FILE_BYTES: u64 = 1024 * 1024 * 1024;
const OPEN_FILES: u64 = 1024;
/// Host paths mapped read-only when they exist: programs, libraries and the little of `/etc`
/// they need to start.
const READ_ONLY: [&str; 14] = [
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/ssl",
    "/etc/mime.types",
];

/// The sandboxed shell.
#[derive(Debug, Clone)]
pub struct Shell {
    bwrap: PathBuf,
    prlimit: Option<PathBuf>,
}

fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

impl Shell {
    /// Finds bubblewrap and checks that it can start a sandbox on this host (namespaces may
    /// be refused, in containers for example); the reason when it cannot.
    pub async fn detect() -> Result<Self, String> {
        let bwrap = find("bwrap").ok_or(
            "the shell tool needs bubblewrap (`bwrap`, Debian package `bubblewrap`) on PATH",
        )?;
        let shell = Self {
            bwrap,
            prlimit: find("prlimit"),
        };
        let probe = std::env::temp_dir();
        let mut check = shell.command(&probe, "true", 5);
        let status = check
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .await
            .map_err(|e| format!("bubblewrap could not be started: {e}"))?;
        if !status.status.success() {
            return Err(format!(
                "bubblewrap cannot create a sandbox here: {}",
                String::from_utf8_lossy(&status.stderr).trim()
            ));
        }
        Ok(shell)
    }

    fn command(
        &self,
        workspace: &Path,
        script: &str,
        timeout_secs: u64,
    ) -> tokio::process::Command {
        let mut cmd = match &self.prlimit {
            Some(prlimit) => {
                let mut cmd = tokio::process::Command::new(prlimit);
                cmd.arg(format!("--as={MEMORY_BYTES}"))
                    .arg(format!("--fsize={FILE_BYTES}"))
                    .arg(format!("--nofile={OPEN_FILES}"))
                    .arg(format!("--cpu={}", timeout_secs + 5))
                    .arg("--")
                    .arg(&self.bwrap);
                cmd
            }
            None => tokio::process::Command::new(&self.bwrap),
        };
        cmd.args([
            "--die-with-parent",
            "--new-session",
            "--unshare-all",
            "--hostname",
            "sandbox",
        ]);
        for path in READ_ONLY {
            cmd.arg("--ro-bind-try").arg(path).arg(path);
        }
        cmd.args(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"])
            .arg("--bind")
            .arg(workspace)
            .arg("/workspace")
            .args(["--chdir", "/workspace", "--clearenv"])
            .args(["--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin"])
            .args(["--setenv", "HOME", "/workspace"])
            .args(["--setenv", "LANG", "C.UTF-8"])
            .args(["--setenv", "TMPDIR", "/tmp"])
            .args(["--", "/bin/sh", "-c", script])
            .stdin(Stdio::null())
            .env_clear()
            .kill_on_drop(true);
        cmd
    }
}

/// One output stream: kept up to the cap, relayed as progress as it comes.
async fn collect(
    mut stream: impl AsyncRead + Unpin,
    progress: Progress,
    stderr: bool,
) -> (String, bool) {
    let mut kept: Vec<u8> = Vec::new();
    let mut cut = false;
    let mut buf = vec![0u8; 8192];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let piece = buf.get(..n).unwrap_or_default();
        let text = String::from_utf8_lossy(piece).into_owned();
        if stderr {
            progress.stderr(text);
        } else {
            progress.stdout(text);
        }
        let room = MAX_STREAM_BYTES.saturating_sub(kept.len());
        if piece.len() > room {
            cut = true;
        }
        kept.extend_from_slice(piece.get(..room.min(piece.len())).unwrap_or_default());
    }
    (String::from_utf8_lossy(&kept).into_owned(), cut)
}

#[async_trait]
impl Tool for Shell {
    fn name(&self) -> &str {
        TOOL_NAME
    }

    fn description(&self, language: &str) -> &str {
        if language == "zh" {
            "在沙箱中执行 shell 命令（/bin/sh -c）：工作目录是智能体的工作区 /workspace，系统程序只读，没有网络。返回退出码、标准输出和标准错误。"
        } else {
            "Run a shell command (/bin/sh -c) in a sandbox: the working directory is the agent's workspace /workspace, system programs are read-only, and there is no network. Returns the exit code, stdout and stderr."
        }
    }

    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {
            "command": {"type": "string", "description": "The shell command"},
            "timeout": {"type": "integer", "minimum": 1, "maximum": MAX_TIMEOUT_SECS,
                        "default": DEFAULT_TIMEOUT_SECS, "description": "Seconds before it is killed"}
        }, "required": ["command"]})
    }

    fn writes(&self) -> bool {
        true
    }

    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        let command = args["command"].as_str().map(str::trim).unwrap_or_default();
        if command.is_empty() || command.chars().count() > MAX_COMMAND_CHARS {
            return Err(ToolError::Invalid(format!(
                "`command` needs 1 to {MAX_COMMAND_CHARS} characters"
            )));
        }
        let timeout = args["timeout"]
            .as_u64()
            .unwrap_or(DEFAULT_TIMEOUT_SECS)
            .clamp(1, MAX_TIMEOUT_SECS);
        let mut child = self
            .command(&ctx.workspace, command, timeout)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| ToolError::Failed(format!("the sandbox could not be started: {e}")))?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(ToolError::Failed(
                "the command's output is not readable".into(),
            ));
        };
        let out = tokio::spawn(collect(stdout, ctx.progress.clone(), false));
        let err = tokio::spawn(collect(stderr, ctx.progress.clone(), true));
        let mut timed_out = false;
        let status = tokio::select! {
            biased;
            () = ctx.cancel.cancelled() => {
                let _ = child.kill().await;
                return Err(ToolError::Cancelled);
            }
            r = tokio::time::timeout(Duration::from_secs(timeout), child.wait()) => match r {
                Ok(status) => status.ok(),
                Err(_) => {
                    timed_out = true;
                    let _ = child.kill().await;
                    None
                }
            },
        };
        let (stdout, out_cut) = out.await.unwrap_or_default();
        let (stderr, err_cut) = err.await.unwrap_or_default();
        let exit_code = status.and_then(|s| s.code());
        let ok = exit_code == Some(0) && !timed_out;
        Ok(json!({"status": if ok { "success" } else { "error" },
                  "exit_code": exit_code, "stdout": stdout, "stderr": stderr,
                  "timed_out": timed_out, "truncated": out_cut || err_cut}))
    }
}
