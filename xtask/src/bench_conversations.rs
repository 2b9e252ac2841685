//! `cargo xtask bench conversations`: the history screens at scale. One user with 10,000
//! conversations of 20 messages among 100 users (the 99 others with 20 each), seeded through
//! the storage service (`conversations/bench_seed`, release); then `wrk` against the list for
//! each sort and for a search, and the messages of a 200-message conversation, on SQLite and,
//! when they answer, on PostgreSQL + Redis. Each target is measured with one client (the
//! latency a user sees: the goal, ≤ 5 ms p99) and with 50 (the rate under load).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::bench::{machine, release_server, write_section};
use crate::bench_crud::{
    Backend, Figures, PASSWORD, USER_PASSWORD, add_user, drop_database, http, login, ok,
    postgres_backend, require_wrk, seconds, target_dir, with_server, wrk_with,
};
use crate::{cargo, run};

const USERS: usize = 100;
const CONVERSATIONS: usize = 10_000;

struct Row {
    target: String,
    backend: &'static str,
    one: Figures,
    fifty: Figures,
}

/// Creates the 100 users; the first is the one measured.
fn users(port: u16) -> Result<Vec<String>, String> {
    let admin = login(port, "admin", PASSWORD)?;
    (0..USERS)
        .map(|i| add_user(port, &admin.token, &format!("history{i}")))
        .collect()
}

fn seed(program: &Path, database_url: &str, users: &[String]) -> Result<String, String> {
    let output = Command::new(program)
        .env("SAGE_BENCH_DATABASE_URL", database_url)
        .env("SAGE_BENCH_USERS", users.join(","))
        .env("SAGE_BENCH_CONVERSATIONS", CONVERSATIONS.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    if !output.status.success() {
        return Err(format!("bench_seed failed ({})", output.status));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let line: Value = serde_json::from_str(text.lines().last().unwrap_or_default())
        .map_err(|e| format!("bench_seed printed no JSON: {e}"))?;
    line["long_session"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "bench_seed: no long_session".into())
}

fn measure_backend(
    binary: &PathBuf,
    seeder: &Path,
    backend: &Backend,
    rows: &mut Vec<Row>,
) -> Result<(), String> {
    with_server(binary, backend, "history", |port, data| {
        let ids = users(port)?;
        let database_url = backend
            .env
            .iter()
            .find(|(k, _)| k == "DATABASE_URL")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", data.join("sage.db").display()));
        let began = std::time::Instant::now();
        let long = seed(seeder, &database_url, &ids)?;
        eprintln!("xtask:   seeded in {:.0} s", began.elapsed().as_secs_f64());
        let user = login(port, "history0", USER_PASSWORD)?;
        let auth = [format!("Authorization: Bearer {}", user.token)];
        let total = ok(
            http(
                port,
                "GET",
                "/api/conversations?page=1&page_size=1",
                Some(&user.token),
                None,
            )?,
            "list",
        )?
        .body["data"]["total"]
            .as_u64()
            .unwrap_or(0);
        if total != CONVERSATIONS as u64 + 1 {
            return Err(format!(
                "the measured user lists {total} conversations, not {}",
                CONVERSATIONS + 1
            ));
        }
        let targets = [
            (
                "list, `sort_by=date`",
                "/api/conversations?page=1&page_size=20&sort_by=date".to_owned(),
            ),
            (
                "list, `sort_by=title`",
                "/api/conversations?page=1&page_size=20&sort_by=title".to_owned(),
            ),
            (
                "list, `sort_by=messages`",
                "/api/conversations?page=1&page_size=20&sort_by=messages".to_owned(),
            ),
            (
                "list, `search=review` (1,250 hits)",
                "/api/conversations?page=1&page_size=20&search=review".to_owned(),
            ),
            (
                "messages of a 200-message conversation",
                format!("/api/conversations/{long}/messages"),
            ),
        ];
        for (target, path) in targets {
            // One answered request first: it waits out what the previous target's wrk left
            // unfinished when it stopped, and warms this route, so the figures are of the
            // route in service.
            http(port, "GET", &path, Some(&user.token), None)?;
            let one = wrk_with(port, &path, &auth, 1)?;
            let fifty = wrk_with(port, &path, &auth, 50)?;
            rows.push(Row {
                target: target.to_owned(),
                backend: backend.name,
                one,
                fifty,
            });
        }
        Ok(())
    })
}

pub(crate) fn conversations() -> Result<(), String> {
    require_wrk()?;
    let server = release_server()?;
    run(
        cargo().args([
            "build",
            "--release",
            "-p",
            "conversations",
            "--example",
            "bench_seed",
        ]),
        "release build (seeder)",
    )?;
    let release = target_dir().join("release");
    let seeder = release.join("examples/bench_seed");

    let mut rows = Vec::new();
    let sqlite = Backend {
        name: "SQLite",
        env: Vec::new(),
        database: None,
    };
    measure_backend(&server, &seeder, &sqlite, &mut rows)?;
    if let Some(pg) = postgres_backend() {
        let result = measure_backend(&server, &seeder, &pg, &mut rows);
        drop_database(&pg);
        result?;
    }

    let mut table = String::from(
        "| target | backend | 1 client: p50 | 1 client: p99 | goal p99 ≤ 5 ms | 50 clients: req/s | 50 clients: p99 | errors |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for row in &rows {
        table.push_str(&format!(
            "| {} | {} | {:.2} ms | {:.2} ms | {} | {:.0} | {:.2} ms | {} |\n",
            row.target,
            row.backend,
            row.one.p50_ms,
            row.one.p99_ms,
            if row.one.p99_ms <= 5.0 {
                "met"
            } else {
                "**missed**"
            },
            row.fifty.rps,
            row.fifty.p99_ms,
            row.one.errors + row.fifty.errors,
        ));
    }
    let body = format!(
        "One user with {CONVERSATIONS} conversations of 20 messages (and one of 200) among \
         {USERS} users (the others with 20 each), seeded through the storage service; pages of \
         20 read with a Bearer token. `wrk --latency -d{}s` per target over loopback, release \
         build, one run: once with one connection (the latency one user sees; the goal) and \
         once with 50 (the rate under load, queueing included). The load generator runs on the \
         same cores as the server.\n\n{table}\nMachine: {}\n",
        seconds(),
        machine(),
    );
    write_section("conversations", &body)?;
    println!("{body}");
    Ok(())
}
