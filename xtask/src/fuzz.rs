//! `cargo xtask fuzz`: schemathesis (`st`, from PyPI) against a running server, driven by its
//! own `/openapi.json`, logged in as a user and as an admin, on the embedded default and, when
//! they answer (always in CI), on PostgreSQL + Redis. Passes only with zero 5xx answers and zero
//! responses that break their documented schema. Seeded, so a run repeats exactly.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::bench::{free_port, stop, wait_active};
use crate::{cargo, root, run};

const ADMIN_PASSWORD: &str = "Fuzz-admin-passphrase-1";
const USER_PASSWORD: &str = "Fuzz-user-passphrase-1";
/// Test cases per operation and phase; keeps the four runs under three minutes together.
const EXAMPLES: &str = "8";
const SEED: &str = "20261202";
/// Operations that end the fuzzer's own session or credentials (not what is being tested), and
/// the release import, which reads a configured feed on the internet that this machine cannot
/// reach (its 502 would be right; the suite tests it against a feed on loopback).
const EXCLUDED: &str = "^/api/auth/(logout|refresh)$|^/api/user/(change-password|delete|logout)$|^/api/system/version/import_github$";

/// One request on a fresh connection; returns the status and the body.
fn request(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let raw = format!(
        "{method} {path} HTTP/1.1\r\nHost: fuzz\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(raw.as_bytes()).ok()?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).ok()?;
    let text = String::from_utf8_lossy(&reply).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

fn login(port: u16, username: &str, password: &str) -> Result<String, String> {
    let body = serde_json::json!({"username_or_email": username, "password": password}).to_string();
    let (status, reply) = request(port, "POST", "/api/auth/login", None, &body)
        .ok_or_else(|| format!("login of {username}: no answer"))?;
    let value: serde_json::Value = serde_json::from_str(&reply).unwrap_or_default();
    match value["data"]["access_token"].as_str() {
        Some(token) if status == 200 => Ok(token.to_owned()),
        _ => Err(format!("login of {username} answered {status}: {reply}")),
    }
}

fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{}{nanos:x}", std::process::id())
}

/// A fresh database on the server of `url` (named like the suite's, so old ones get dropped).
fn fresh_database(url: &str) -> Result<String, String> {
    let name = format!("sage_test_fuzz{}", unique());
    run(
        Command::new("psql").args([url, "-qc", &format!("CREATE DATABASE \"{name}\"")]),
        "creating the fuzz database",
    )?;
    let base = url.split('?').next().unwrap_or(url);
    let server = base.rsplit_once('/').map_or(base, |(s, _)| s);
    Ok(format!("{server}/{name}"))
}

struct Leg {
    name: &'static str,
    database_url: Option<String>,
    redis_url: Option<String>,
}

fn fuzz_leg(binary: &Path, leg: &Leg) -> Result<(), String> {
    let data = std::env::temp_dir().join(format!("sage-fuzz-{}", unique()));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
    let log_path = data.join("server.log");
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let port = free_port()?;
    let mut cmd = Command::new(binary);
    cmd.arg("serve")
        .env("SAGE_DATA_DIR", &data)
        .env("SAGE_PORT", port.to_string())
        .env("SAGE_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("SAGE_LOGIN_LIMIT_PER_IP", "1000000")
        .env("SAGE_LOG_FORMAT", "json")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log);
    if let Some(url) = &leg.database_url {
        cmd.env("DATABASE_URL", url);
    }
    if let Some(url) = &leg.redis_url {
        cmd.env("REDIS_URL", url)
            .env("SAGE_REDIS_PREFIX", format!("sage-fuzz:{}:", unique()));
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let result = (|| {
        wait_active(port)?;
        let admin = login(port, "admin", ADMIN_PASSWORD)?;
        let user = serde_json::json!({"username": "fuzzer", "password": USER_PASSWORD,
            "email": "fuzzer@example.com"})
        .to_string();
        match request(port, "POST", "/api/user/add", Some(&admin), &user) {
            Some((200, _)) => {}
            other => return Err(format!("creating the fuzz user: {other:?}")),
        }
        let user = login(port, "fuzzer", USER_PASSWORD)?;
        for (role, token) in [("user", user), ("admin", admin)] {
            run(
                Command::new("st").args([
                    "run",
                    &format!("http://127.0.0.1:{port}/openapi.json"),
                    "--header",
                    &format!("Authorization: Bearer {token}"),
                    "--checks",
                    "not_a_server_error,response_schema_conformance",
                    "--exclude-path-regex",
                    EXCLUDED,
                    "--phases",
                    "examples,coverage,fuzzing",
                    "--max-examples",
                    EXAMPLES,
                    "--seed",
                    SEED,
                    // One worker: requests in a fixed order, so a run repeats exactly.
                    "--workers",
                    "1",
                    "--no-shrink",
                    "--request-timeout",
                    "10",
                    "--warnings",
                    "off",
                ]),
                &format!("schemathesis, {}, as {role}", leg.name),
            )?;
        }
        Ok(())
    })();
    stop(&mut child);
    if result.is_err() {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        eprintln!("xtask: last server log lines ({}):", leg.name);
        for line in tail.iter().rev() {
            eprintln!("  {line}");
        }
    }
    let _ = std::fs::remove_dir_all(&data);
    result
}

fn debug_server() -> Result<PathBuf, String> {
    run(
        cargo().args(["build", "-p", "server", "--bin", "sage-server"]),
        "building the server",
    )?;
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target"));
    Ok(target.join("debug/sage-server"))
}

pub(crate) fn fuzz() -> Result<(), String> {
    if Command::new("st").arg("--version").output().is_err() {
        return Err("schemathesis is not installed (pip install schemathesis)".into());
    }
    let binary = debug_server()?;
    fuzz_leg(
        &binary,
        &Leg {
            name: "embedded (SQLite, in-process stores)",
            database_url: None,
            redis_url: None,
        },
    )?;
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    let db_url = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| crate::DEFAULT_TEST_DATABASE_URL.into());
    let redis_url =
        std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| crate::DEFAULT_TEST_REDIS_URL.into());
    if !(crate::answers("127.0.0.1:5432") && crate::answers("127.0.0.1:6379")) {
        if ci {
            return Err(
                "PostgreSQL or Redis does not answer; CI requires the fuzz run on them".into(),
            );
        }
        eprintln!("xtask: SKIPPED fuzzing on PostgreSQL + Redis: they do not answer");
        return Ok(());
    }
    fuzz_leg(
        &binary,
        &Leg {
            name: "PostgreSQL + Redis",
            database_url: Some(fresh_database(&db_url)?),
            redis_url: Some(redis_url),
        },
    )
}
