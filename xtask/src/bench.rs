//! Benchmarks that measure the release binary from the outside and write their figures, with
//! the machine they ran on, into `docs/benchmarks.md` between markers.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{cargo, root, run};

const RUNS: usize = 7;

pub(crate) fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

fn active(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    if stream
        .write_all(b"GET /active HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut reply = String::new();
    stream.read_to_string(&mut reply).is_ok() && reply.starts_with("HTTP/1.1 200")
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub(crate) fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

fn start(binary: &Path, data_dir: &Path, port: u16) -> Result<Child, String> {
    Command::new(binary)
        .arg("serve")
        .env("SAGE_DATA_DIR", data_dir)
        .env("SAGE_PORT", port.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))
}

/// Waits (up to 30 s) until `GET /active` answers 200.
pub(crate) fn wait_active(port: u16) -> Result<(), String> {
    let began = Instant::now();
    while !active(port) {
        if began.elapsed() > Duration::from_secs(30) {
            return Err("the server did not answer within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// Builds the release server and returns the binary's path.
pub(crate) fn release_server() -> Result<std::path::PathBuf, String> {
    run(
        cargo().args(["build", "--release", "-p", "server", "--bin", "sage-server"]),
        "release build",
    )?;
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root().join("target"));
    Ok(target.join("release/sage-server"))
}

/// Cold start (fresh data dir: database created and migrated) to the first 200 from
/// `GET /active`, and resident memory after two idle seconds.
pub(crate) fn startup() -> Result<(), String> {
    let binary = release_server()?;
    let mut starts = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..RUNS {
        let data = std::env::temp_dir().join(format!("sage-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let port = free_port()?;
        let began = Instant::now();
        let mut child = start(&binary, &data, port)?;
        loop {
            if active(port) {
                break;
            }
            if began.elapsed() > Duration::from_secs(30) {
                stop(&mut child);
                return Err("the server did not answer within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        starts.push(began.elapsed().as_secs_f64() * 1000.0);
        // Idle memory is read after the start settles.
        std::thread::sleep(Duration::from_secs(2));
        rss.push(rss_kib(child.id()).unwrap_or(0) as f64 / 1024.0);
        stop(&mut child);
        let _ = std::fs::remove_dir_all(&data);
    }
    starts.sort_by(f64::total_cmp);
    rss.sort_by(f64::total_cmp);
    let median = |v: &[f64]| v[v.len() / 2];
    let body = format!(
        "Cold start to the first `200` from `GET /active` (fresh data directory: SQLite file \
         created and migrated, first admin created with one argon2id hash), release build, \
         {RUNS} runs.\n\n\
         | measure | median | best | worst | goal |\n|---|---|---|---|---|\n\
         | start | {:.0} ms | {:.0} ms | {:.0} ms | ≤ 300 ms |\n\
         | idle RSS | {:.1} MiB | {:.1} MiB | {:.1} MiB | ≤ 30 MiB |\n\n\
         Sage's Python server, for comparison: starts in about 4 s and idles at about 256 MB.\n\n\
         Machine: {}\n",
        median(&starts),
        starts[0],
        starts[starts.len() - 1],
        median(&rss),
        rss[0],
        rss[rss.len() - 1],
        machine(),
    );
    write_section("startup", &body)?;
    println!("{body}");
    Ok(())
}

/// CPU, cores, memory, kernel and compiler, for the figures' context.
pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let output = |cmd: &str, arg: &str| {
        Command::new(cmd)
            .arg(arg)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    format!(
        "{cpu}, {cores} cores, {mem_gib:.0} GiB RAM, Linux {}, {}; measured {}.",
        output("uname", "-r"),
        output("rustc", "--version"),
        output("date", "-u").trim(),
    )
}

/// Replaces the text between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`.
pub(crate) fn write_section(name: &str, body: &str) -> Result<(), String> {
    let path = root().join("docs/benchmarks.md");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let open = format!("<!-- bench:{name} -->");
    let close = format!("<!-- /bench:{name} -->");
    let (Some(start), Some(end)) = (text.find(&open), text.find(&close)) else {
        return Err(format!(
            "docs/benchmarks.md has no {open} … {close} section"
        ));
    };
    let updated = format!("{}{open}\n{body}{}", &text[..start], &text[end..]);
    std::fs::write(&path, updated).map_err(|e| format!("{}: {e}", path.display()))
}
