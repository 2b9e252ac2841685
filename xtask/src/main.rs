//! Project automation, run as `cargo xtask <command>` (matklad's xtask pattern: Rust, not
//! shell, so it works the same on every machine).
//!
//! * `test`: format check, clippy with warnings denied, the whole suite on the embedded
//!   default, then again on PostgreSQL + Redis when they answer (required when `CI` is set).
//! * `bench startup`: cold start to a successful `GET /active` and idle memory, written to
//!   `docs/benchmarks.md`.
//! * `bench login`: logins per second and health latency during a login storm.
//! * `bench crud`: authenticated reads (health, session, agent lists) under `wrk` load, next
//!   to a bare actix-web handler, on SQLite and on PostgreSQL + Redis.
//! * `bench conversations`: the history list (each sort, a search) and a 200-message
//!   conversation, for one user with 10,000 conversations, on SQLite and PostgreSQL + Redis.
//! * `bench streams`: relay latency, concurrent chats, idle streams and resume replay.
//! * `bench llm-client`: chunks per second through the LLM client, and its added latency.
//! * `fuzz`: schemathesis against the running server on both backends, as a user and an
//!   admin (zero 5xx, zero response-schema violations).
//! * `docs`: regenerate `docs/errors.md` and `docs/openapi.json` from the code.
//!
//! The tidy checks (dependency rule, module docs, banned test attributes, lint inheritance)
//! are tests of this crate, so they run with the suite.

mod bench;
mod bench_conversations;
mod bench_crud;
mod bench_llm;
mod bench_login;
mod bench_streams;
mod fuzz;
mod tidy;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match words.as_slice() {
        ["test"] => test(),
        ["bench", "startup"] => bench::startup(),
        ["bench", "login"] => bench_login::login(),
        ["bench", "crud"] => bench_crud::crud(),
        ["bench", "conversations"] => bench_conversations::conversations(),
        ["bench", "streams"] => bench_streams::streams(),
        ["bench", "llm-client"] => bench_llm::llm_client(),
        ["fuzz"] => fuzz::fuzz(),
        ["docs"] => docs(),
        _ => Err(
            "usage: cargo xtask (test | fuzz | bench startup | bench login | bench crud | bench conversations | bench streams | bench llm-client | docs)"
                .to_owned(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root.
pub(crate) fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

pub(crate) fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    // `cargo run` gives this process the package variables of xtask; build scripts (ring's,
    // through `rerun-if-env-changed`) would see them change between a plain `cargo build` and
    // one started from here and rebuild half the tree each time.
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || matches!(
                name,
                "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE"
            )
        {
            cmd.env_remove(name);
        }
    }
    cmd
}

pub(crate) fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    eprintln!("xtask: {what}");
    let status = cmd
        .status()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

pub(crate) const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
pub(crate) const DEFAULT_TEST_REDIS_URL: &str = "redis://127.0.0.1:6379";

pub(crate) fn answers(addr: &str) -> bool {
    addr.parse::<std::net::SocketAddr>().is_ok_and(|a| {
        std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_secs(2)).is_ok()
    })
}

/// The test peers from npm: the OpenID Provider of the upstream-login tests
/// (`oidc-provider`), the MCP reference server of the MCP tests and the S3-compatible server
/// of the object-storage tests (`s3rver`).
fn install_test_peers() -> Result<(), String> {
    for (fixture, module) in [
        ("oidc", "oidc-provider"),
        ("mcp", "@modelcontextprotocol/server-everything"),
        ("s3", "s3rver"),
    ] {
        let dir = root().join("fixtures").join(fixture);
        if dir.join("node_modules").join(module).exists() {
            continue;
        }
        run(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir),
            &format!("installing the test peer {module} (npm ci in fixtures/{fixture})"),
        )?;
    }
    Ok(())
}

fn test() -> Result<(), String> {
    install_test_peers()?;
    run(cargo().args(["fmt", "--all", "--check"]), "format check")?;
    run(
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
        "clippy",
    )?;
    run(
        cargo()
            .args(["nextest", "run", "--workspace", "--no-fail-fast"])
            .env_remove("TEST_DATABASE_URL")
            .env_remove("TEST_REDIS_URL"),
        "test suite, embedded (SQLite, in-process stores)",
    )?;
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    let db_url =
        std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_TEST_DATABASE_URL.into());
    let redis_url =
        std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| DEFAULT_TEST_REDIS_URL.into());
    let services_up = answers("127.0.0.1:5432") && answers("127.0.0.1:6379");
    if !services_up {
        if ci {
            return Err("PostgreSQL (127.0.0.1:5432) or Redis (127.0.0.1:6379) does not answer; CI requires the Postgres + Redis leg".into());
        }
        eprintln!(
            "xtask: SKIPPED the Postgres + Redis leg: PostgreSQL on 127.0.0.1:5432 or Redis on 127.0.0.1:6379 does not answer"
        );
        return Ok(());
    }
    drop_old_test_databases(&db_url);
    run(
        cargo()
            .args(["nextest", "run", "--workspace", "--no-fail-fast"])
            .env("TEST_DATABASE_URL", &db_url)
            .env("TEST_REDIS_URL", &redis_url),
        "test suite, PostgreSQL + Redis",
    )
}

/// Test databases are named `sage_test_<hex>`; drop those of earlier runs (best effort).
fn drop_old_test_databases(url: &str) {
    let list = Command::new("psql")
        .args([
            url,
            "-Atc",
            "SELECT datname FROM pg_database WHERE datname LIKE 'sage_test_%'",
        ])
        .output();
    let Ok(list) = list else { return };
    for name in String::from_utf8_lossy(&list.stdout).lines() {
        let name = name.trim();
        if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            let _ = Command::new("psql")
                .args([url, "-qc", &format!("DROP DATABASE IF EXISTS \"{name}\"")])
                .output();
        }
    }
}

fn docs() -> Result<(), String> {
    // The doc tests rewrite a stale file and fail; a second run confirms.
    let mut cmd = cargo();
    cmd.args(["test", "-q", "-p", "server", "--lib", "docs_"]);
    let _ = cmd.status();
    run(
        cargo().args(["test", "-q", "-p", "server", "--lib", "docs_"]),
        "generated docs are current",
    )
}
