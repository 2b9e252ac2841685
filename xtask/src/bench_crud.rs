//! `cargo xtask bench crud`: authenticated reads under load, side by side with a bare
//! actix-web handler built from the same workspace (the physical limit of the machine).
//!
//! Load: `wrk -t2 -c50` (Debian package `wrk`) for `SAGE_BENCH_SECS` seconds per target
//! (default 10) over loopback against the release binaries. Targets: the bare handler,
//! `GET /api/health`, `GET /api/auth/session` (Bearer and cookie) and `GET /api/agent/list`
//! with a Bearer token for users with 1, 20 and 100 agents; on SQLite (the embedded default)
//! and, when they answer, on PostgreSQL + Redis.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::bench::{free_port, machine, stop, wait_active, write_section};
use crate::{DEFAULT_TEST_DATABASE_URL, DEFAULT_TEST_REDIS_URL, answers, cargo, root, run};

pub(crate) const PASSWORD: &str = "Bench-admin-passphrase";
pub(crate) const USER_PASSWORD: &str = "Bench-user-passphrase";
/// Agents of the three list users.
const AGENT_COUNTS: [usize; 3] = [1, 20, 100];

/// What one answer of the server looked like.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) head: String,
    pub(crate) body: Value,
}

/// One request on a fresh connection.
pub(crate) fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<Reply, String> {
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let payload = body.map(Value::to_string).unwrap_or_default();
    let mut raw =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    if let Some(token) = token {
        raw.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if body.is_some() {
        raw.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            payload.len()
        ));
    }
    raw.push_str("\r\n");
    raw.push_str(&payload);
    stream
        .write_all(raw.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut reply = Vec::new();
    stream
        .read_to_end(&mut reply)
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&reply);
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // Bodies here are small JSON envelopes; a chunked one is de-chunked crudely.
    let json_text = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = rest;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 || tail.len() < n {
                break;
            }
            out.push_str(&tail[..n]);
            rest = tail[n..].trim_start_matches("\r\n");
        }
        out
    } else {
        rest.to_owned()
    };
    Ok(Reply {
        status,
        head: head.to_owned(),
        body: serde_json::from_str(&json_text).unwrap_or(Value::Null),
    })
}

pub(crate) fn ok(reply: Reply, what: &str) -> Result<Reply, String> {
    if reply.status == 200 {
        Ok(reply)
    } else {
        Err(format!("{what}: HTTP {} {}", reply.status, reply.body))
    }
}

/// A logged-in user: its Bearer access token and its session cookie value.
pub(crate) struct Login {
    pub(crate) token: String,
    pub(crate) cookie: String,
}

pub(crate) fn login(port: u16, username: &str, password: &str) -> Result<Login, String> {
    let reply = ok(
        http(
            port,
            "POST",
            "/api/auth/login",
            None,
            Some(&json!({"username_or_email": username, "password": password})),
        )?,
        "login",
    )?;
    let token = reply.body["data"]["access_token"]
        .as_str()
        .ok_or("login: no access token")?
        .to_owned();
    let cookie = reply
        .head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(name, _)| name.trim().eq_ignore_ascii_case("set-cookie"))
        .find_map(|(_, value)| {
            value
                .trim()
                .strip_prefix("sage_session=")
                .map(|v| v.split(';').next().unwrap_or_default().to_owned())
        })
        .ok_or("login: no session cookie")?;
    Ok(Login { token, cookie })
}

/// The figures of one wrk run.
#[derive(Clone)]
pub(crate) struct Figures {
    pub(crate) rps: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    /// Non-2xx answers and socket errors.
    pub(crate) errors: u64,
}

fn duration_ms(text: &str) -> Option<f64> {
    let text = text.trim();
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60_000.0)
    } else {
        return None;
    };
    number.trim().parse::<f64>().ok().map(|n| n * factor)
}

fn parse_wrk(out: &str) -> Result<Figures, String> {
    let mut figures = Figures {
        rps: 0.0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        errors: 0,
    };
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", n] => figures.rps = n.parse().unwrap_or(0.0),
            ["50%", t] => figures.p50_ms = duration_ms(t).unwrap_or(0.0),
            ["99%", t] => figures.p99_ms = duration_ms(t).unwrap_or(0.0),
            ["Non-2xx", "or", "3xx", "responses:", n] => {
                figures.errors += n.parse::<u64>().unwrap_or(0);
            }
            ["Socket", "errors:", rest @ ..] => {
                figures.errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    if figures.rps == 0.0 {
        return Err(format!("wrk printed no rate:\n{out}"));
    }
    Ok(figures)
}

pub(crate) fn seconds() -> u64 {
    std::env::var("SAGE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s| *s > 0)
        .unwrap_or(10)
}

/// `wrk -t2 -c50 -d<secs>s --latency` with extra headers.
fn wrk(port: u16, path: &str, headers: &[String]) -> Result<Figures, String> {
    wrk_with(port, path, headers, 50)
}

/// `wrk -c<connections> -d<secs>s --latency` (one thread per connection, at most two).
pub(crate) fn wrk_with(
    port: u16,
    path: &str,
    headers: &[String],
    connections: u32,
) -> Result<Figures, String> {
    wrk_for(port, path, headers, connections, seconds())
}

/// [`wrk_with`] for `secs` seconds.
fn wrk_for(
    port: u16,
    path: &str,
    headers: &[String],
    connections: u32,
    secs: u64,
) -> Result<Figures, String> {
    let mut cmd = Command::new("wrk");
    cmd.args([
        &format!("-t{}", connections.min(2)),
        &format!("-c{connections}"),
        &format!("-d{secs}s"),
        "--latency",
    ]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    cmd.arg(format!("http://127.0.0.1:{port}{path}"));
    let output = cmd
        .output()
        .map_err(|e| format!("cannot run wrk (apt-get install -y wrk): {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "wrk failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let figures = parse_wrk(&String::from_utf8_lossy(&output.stdout))?;
    eprintln!(
        "xtask:   {path}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors",
        figures.rps, figures.p50_ms, figures.p99_ms, figures.errors
    );
    Ok(figures)
}

/// One measured row: what was called, on which backend.
struct Row {
    target: String,
    backend: &'static str,
    figures: Figures,
}

pub(crate) fn target_dir() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target"))
}

/// A backend to run the server on.
pub(crate) struct Backend {
    pub(crate) name: &'static str,
    pub(crate) env: Vec<(String, String)>,
    /// PostgreSQL database to drop afterwards.
    pub(crate) database: Option<(String, String)>,
}

pub(crate) fn postgres_backend() -> Option<Backend> {
    if !(answers("127.0.0.1:5432") && answers("127.0.0.1:6379")) {
        eprintln!("xtask: PostgreSQL or Redis does not answer; measuring SQLite only");
        return None;
    }
    let admin_url = DEFAULT_TEST_DATABASE_URL.to_owned();
    let name = format!("sage_bench_{}", std::process::id());
    let created = Command::new("psql")
        .args([&admin_url, "-qc", &format!("CREATE DATABASE \"{name}\"")])
        .output()
        .ok()?;
    if !created.status.success() {
        eprintln!(
            "xtask: cannot create the bench database: {}",
            String::from_utf8_lossy(&created.stderr)
        );
        return None;
    }
    let url = match admin_url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => return None,
    };
    Some(Backend {
        name: "PostgreSQL + Redis",
        env: vec![
            ("DATABASE_URL".into(), url),
            ("REDIS_URL".into(), DEFAULT_TEST_REDIS_URL.into()),
            ("SAGE_REDIS_PREFIX".into(), format!("{name}:")),
        ],
        database: Some((admin_url, name)),
    })
}

pub(crate) fn start_server(
    binary: &PathBuf,
    data: &PathBuf,
    port: u16,
    backend: &Backend,
) -> Result<Child, String> {
    let mut cmd = Command::new(binary);
    cmd.arg("serve")
        .env("SAGE_DATA_DIR", data)
        .env("SAGE_PORT", port.to_string())
        .env("SAGE_ADMIN_PASSWORD", PASSWORD)
        .env("SAGE_LOGIN_LIMIT_PER_IP", "1000000")
        .env("SAGE_ACCESS_TOKEN_TTL_SECS", "3600")
        .env("RUST_LOG", "warn")
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        // The bench's own setting, unknown to the server (which warns about it).
        .env_remove("SAGE_BENCH_SECS")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in &backend.env {
        cmd.env(k, v);
    }
    cmd.spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))
}

/// Creates a user with [`USER_PASSWORD`] as the admin; returns its id.
pub(crate) fn add_user(port: u16, admin_token: &str, username: &str) -> Result<String, String> {
    let reply = ok(
        http(
            port,
            "POST",
            "/api/user/add",
            Some(admin_token),
            Some(&json!({"username": username, "password": USER_PASSWORD,
                "email": format!("{username}@example.com")})),
        )?,
        "add user",
    )?;
    reply.body["data"]["user_id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "add user: no user_id".to_owned())
}

/// Users with 1, 20 and 100 agents, logged in.
fn populate(port: u16) -> Result<Vec<(usize, Login)>, String> {
    let admin = login(port, "admin", PASSWORD)?;
    let prompt = ok(
        http(
            port,
            "GET",
            "/api/agent/template/default_system_prompt",
            Some(&admin.token),
            None,
        )?,
        "default prompt",
    )?
    .body["data"]["content"]
        .as_str()
        .unwrap_or("You are a helpful assistant.")
        .to_owned();
    let mut users = Vec::new();
    for count in AGENT_COUNTS {
        let username = format!("bench{count}");
        add_user(port, &admin.token, &username)?;
        let user = login(port, &username, USER_PASSWORD)?;
        for i in 0..count {
            // The web UI's default agent, as its first-screen dialog creates it.
            let agent = json!({
                "name": format!("Agent {i}"),
                "description": "默认智能体",
                "maxLoopCount": 100,
                "memoryType": "session",
                "agentMode": "fibre",
                "availableTools": [
                    "todo_write", "todo_read", "execute_shell_command", "execute_python_code",
                    "execute_javascript_code", "file_read", "file_write", "download_file_from_url",
                    "file_update", "load_skill", "add_task", "delete_task", "complete_task",
                    "enable_task", "get_task_details", "fetch_webpages"
                ],
                "availableSkills": [],
                "systemPrefix": prompt,
            });
            ok(
                http(
                    port,
                    "POST",
                    "/api/agent/create",
                    Some(&user.token),
                    Some(&agent),
                )?,
                "create agent",
            )?;
        }
        users.push((count, user));
    }
    Ok(users)
}

/// Runs `measure(port, data_dir)` against a server started on `backend` with a fresh data
/// directory (answering `/active`); the server is stopped and the directory removed after.
pub(crate) fn with_server(
    binary: &PathBuf,
    backend: &Backend,
    label: &str,
    measure: impl FnOnce(u16, &std::path::Path) -> Result<(), String>,
) -> Result<(), String> {
    let data = std::env::temp_dir().join(format!("sage-bench-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let port = free_port()?;
    eprintln!("xtask: {}", backend.name);
    let mut child = start_server(binary, &data, port, backend)?;
    let result = wait_active(port).and_then(|()| measure(port, &data));
    stop(&mut child);
    let _ = std::fs::remove_dir_all(&data);
    result
}

/// Rounds of the paired health measurement, and the seconds of each half.
const PAIRS: usize = 5;
const PAIR_SECS: u64 = 3;

/// Health against the bare handler in alternating short runs (bare, health, bare, …), one
/// ratio per pair: a drift of the machine's speed during the run (other tenants of its host,
/// frequency) then moves both halves of a pair alike instead of one figure of the table.
fn paired_health(bare_port: u16, port: u16) -> Result<Vec<f64>, String> {
    let mut ratios = Vec::with_capacity(PAIRS);
    for _ in 0..PAIRS {
        let bare = wrk_for(bare_port, "/", &[], 50, PAIR_SECS)?;
        let health = wrk_for(port, "/api/health", &[], 50, PAIR_SECS)?;
        ratios.push(health.rps / bare.rps * 100.0);
    }
    ratios.sort_by(f64::total_cmp);
    Ok(ratios)
}

/// Measures one backend's rows; with `bare_port`, also the paired health ratios.
fn measure_backend(
    binary: &PathBuf,
    backend: &Backend,
    rows: &mut Vec<Row>,
    bare_port: Option<u16>,
) -> Result<Vec<f64>, String> {
    let mut paired = Vec::new();
    with_server(binary, backend, "crud", |port, _| {
        let users = populate(port)?;
        let mut push = |target: &str, figures: Figures| {
            rows.push(Row {
                target: target.to_owned(),
                backend: backend.name,
                figures,
            });
        };
        push("`GET /api/health`", wrk(port, "/api/health", &[])?);
        if let Some(bare_port) = bare_port {
            paired = paired_health(bare_port, port)?;
        }
        let (_, first) = users.first().ok_or("no users")?;
        push(
            "`GET /api/auth/session`, Bearer",
            wrk(
                port,
                "/api/auth/session",
                &[format!("Authorization: Bearer {}", first.token)],
            )?,
        );
        push(
            "`GET /api/auth/session`, cookie",
            wrk(
                port,
                "/api/auth/session",
                &[format!("Cookie: sage_session={}", first.cookie)],
            )?,
        );
        for (count, user) in &users {
            push(
                &format!(
                    "`GET /api/agent/list`, {count} agent{}",
                    if *count == 1 { "" } else { "s" }
                ),
                wrk(
                    port,
                    "/api/agent/list",
                    &[format!("Authorization: Bearer {}", user.token)],
                )?,
            );
        }
        Ok(())
    })?;
    Ok(paired)
}

pub(crate) fn drop_database(backend: &Backend) {
    if let Some((url, name)) = &backend.database {
        let _ = Command::new("psql")
            .args([
                url,
                "-qc",
                &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
            ])
            .output();
    }
}

fn goal(
    target: &str,
    backend: &str,
    figures: &Figures,
    bare: f64,
    one_agent: Option<f64>,
    paired: &[f64],
) -> String {
    let share = figures.rps / bare * 100.0;
    let mark = |met: bool| if met { "met" } else { "**missed**" };
    if backend != "SQLite" {
        return String::new();
    }
    if target.contains("health") {
        // Judged on the paired runs when there are some: they cancel the machine's drift.
        let Some(median) = paired.get(paired.len() / 2) else {
            return format!("≥ 90 % of bare: {}", mark(share >= 90.0));
        };
        return format!(
            "≥ 90 % of bare: {} (paired: median {median:.0} %, {} pairs of {PAIR_SECS} s, {:.0}–{:.0} %)",
            mark(*median >= 90.0),
            paired.len(),
            paired.first().copied().unwrap_or_default(),
            paired.last().copied().unwrap_or_default(),
        );
    }
    if target.contains("auth/session") || target.contains(", 20 agents") {
        return format!(
            "≥ 20 % of bare, p99 ≤ 5 ms: {}",
            mark(share >= 20.0 && figures.p99_ms <= 5.0)
        );
    }
    if target.contains(", 100 agents")
        && let Some(one) = one_agent
    {
        return format!("≥ half of 1 agent: {}", mark(figures.rps >= one / 2.0));
    }
    String::new()
}

/// Fails unless `wrk` runs.
pub(crate) fn require_wrk() -> Result<(), String> {
    if Command::new("wrk").arg("--version").output().is_err() {
        return Err("wrk is not installed (Debian: apt-get install -y wrk)".into());
    }
    Ok(())
}

pub(crate) fn crud() -> Result<(), String> {
    require_wrk()?;
    // Two builds: built together, the bare handler's dependency features would unify with the
    // server's and rebuild it.
    run(
        cargo().args(["build", "--release", "-p", "server", "--bin", "sage-server"]),
        "release build (server)",
    )?;
    run(
        cargo().args(["build", "--release", "-p", "bench-bare"]),
        "release build (bare handler)",
    )?;
    let release = target_dir().join("release");
    let server = release.join("sage-server");

    eprintln!("xtask: bare actix-web handler");
    let port = free_port()?;
    let mut bare_child = Command::new(release.join("bench-bare"))
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start bench-bare: {e}"))?;
    let bare = (|| {
        let began = std::time::Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if began.elapsed() > Duration::from_secs(10) {
                return Err("bench-bare did not listen".to_owned());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        wrk(port, "/", &[])
    })();
    let bare = match bare {
        Ok(b) => b,
        Err(e) => {
            stop(&mut bare_child);
            return Err(e);
        }
    };

    let mut rows = vec![Row {
        target: "bare actix-web handler".into(),
        backend: "—",
        figures: bare.clone(),
    }];
    let sqlite = Backend {
        name: "SQLite",
        env: Vec::new(),
        database: None,
    };
    // The bare handler idles while the SQLite rows are measured, then answers the halves of
    // the paired health runs.
    let paired = measure_backend(&server, &sqlite, &mut rows, Some(port));
    stop(&mut bare_child);
    let paired = paired?;
    if let Some(pg) = postgres_backend() {
        let result = measure_backend(&server, &pg, &mut rows, None);
        drop_database(&pg);
        result?;
    }

    let one_agent = |backend: &str| {
        rows.iter()
            .find(|r| r.backend == backend && r.target.contains(", 1 agent"))
            .map(|r| r.figures.rps)
    };
    let mut table = String::from(
        "| target | backend | req/s | % of bare | p50 | p99 | errors | goal (SQLite) |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for row in &rows {
        let f = &row.figures;
        table.push_str(&format!(
            "| {} | {} | {:.0} | {:.0} % | {:.2} ms | {:.2} ms | {} | {} |\n",
            row.target,
            row.backend,
            f.rps,
            f.rps / bare.rps * 100.0,
            f.p50_ms,
            f.p99_ms,
            f.errors,
            goal(
                &row.target,
                row.backend,
                f,
                bare.rps,
                one_agent(row.backend),
                &paired,
            ),
        ));
    }
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default();
    let body = format!(
        "`wrk -t2 -c50 -d{}s --latency` per target over loopback, release build, one run, side \
         by side; the bare handler is one actix-web route answering a small JSON body, built \
         from the same workspace. Agent lists are the first page (Sage's plain array) of a \
         user's own agents, each the web UI's default agent with the default system prompt, \
         read with a Bearer token. The load generator runs on the same cores as the server. \
         Health is also run against the bare handler in {PAIRS} alternating pairs of \
         {PAIR_SECS} s (bare, health, bare, …) on the SQLite server, and its goal is judged on \
         the median of the pairs' ratios.\n\n\
         {table}\n\
         Machine: {} Load average at the end: {load}.\n",
        seconds(),
        machine(),
    );
    write_section("crud", &body)?;
    println!("{body}");
    Ok(())
}
