//! `cargo xtask bench login`: logins per second against the release server, and the latency
//! of `GET /api/health` before and while 50 clients log in concurrently (argon2id must never
//! block the async workers).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::bench::{free_port, machine, release_server, stop, wait_active, write_section};

const CLIENTS: usize = 50;
const STORM: Duration = Duration::from_secs(10);
const PASSWORD: &str = "Bench-admin-passphrase";

/// One request on a fresh connection; returns the status code.
fn request(port: u16, raw: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    stream.write_all(raw.as_bytes()).ok()?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).ok()?;
    let text = String::from_utf8_lossy(&reply);
    text.split_whitespace().nth(1)?.parse().ok()
}

fn login_request() -> String {
    let body = format!(r#"{{"username_or_email":"admin","password":"{PASSWORD}"}}"#);
    format!(
        "POST /api/auth/login HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

const HEALTH: &str = "GET /api/health HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Health latencies (ms) sampled until `stop` is set or `limit` samples are taken.
fn sample_health(port: u16, stop: &AtomicBool, limit: usize) -> Vec<f64> {
    let mut out = Vec::new();
    while !stop.load(Ordering::Relaxed) && out.len() < limit {
        let began = Instant::now();
        if request(port, HEALTH) == Some(200) {
            out.push(began.elapsed().as_secs_f64() * 1000.0);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    out.sort_by(f64::total_cmp);
    out
}

pub(crate) fn login() -> Result<(), String> {
    let binary = release_server()?;
    let data = std::env::temp_dir().join(format!("sage-bench-login-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let port = free_port()?;
    let mut child = Command::new(binary)
        .env("SAGE_DATA_DIR", &data)
        .env("SAGE_PORT", port.to_string())
        .env("SAGE_ADMIN_PASSWORD", PASSWORD)
        .env("SAGE_LOGIN_LIMIT_PER_IP", "1000000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let result = (|| {
        wait_active(port)?;
        if request(port, &login_request()) != Some(200) {
            return Err("the admin login failed".to_owned());
        }
        let idle_stop = AtomicBool::new(false);
        let idle = sample_health(port, &idle_stop, 400);

        let stop_flag = Arc::new(AtomicBool::new(false));
        let logins = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(AtomicU64::new(0));
        let began = Instant::now();
        let workers: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (stop_flag, logins, failures) =
                    (stop_flag.clone(), logins.clone(), failures.clone());
                std::thread::spawn(move || {
                    let body = login_request();
                    while !stop_flag.load(Ordering::Relaxed) {
                        match request(port, &body) {
                            Some(200) => logins.fetch_add(1, Ordering::Relaxed),
                            _ => failures.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                })
            })
            .collect();
        let sampler = {
            let stop_flag = stop_flag.clone();
            std::thread::spawn(move || sample_health(port, &stop_flag, usize::MAX))
        };
        std::thread::sleep(STORM);
        stop_flag.store(true, Ordering::Relaxed);
        for w in workers {
            let _ = w.join();
        }
        let elapsed = began.elapsed().as_secs_f64();
        let storm = sampler
            .join()
            .map_err(|_| "the sampler failed".to_owned())?;
        let per_second = logins.load(Ordering::Relaxed) as f64 / elapsed;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let body = format!(
            "{CLIENTS} concurrent clients log in as the same user for {} s (a new connection per \
             request), release build, argon2id 19 MiB/t=2/p=1; meanwhile one client calls \
             `GET /api/health` every 5 ms on a new connection.\n\n\
             | measure | value | goal |\n|---|---|---|\n\
             | logins per second | {per_second:.1} ({:.1} per core; {} failed) | ≥ 40 per core |\n\
             | health p50 / p99, idle | {:.2} ms / {:.2} ms | |\n\
             | health p50 / p99, during the storm | {:.2} ms / {:.2} ms | p99 ≤ 5 ms |\n\n\
             Machine: {}\n",
            STORM.as_secs(),
            per_second / cores as f64,
            failures.load(Ordering::Relaxed),
            percentile(&idle, 50.0),
            percentile(&idle, 99.0),
            percentile(&storm, 50.0),
            percentile(&storm, 99.0),
            machine(),
        );
        write_section("login", &body)?;
        println!("{body}");
        Ok(())
    })();
    stop(&mut child);
    let _ = std::fs::remove_dir_all(&data);
    result
}
