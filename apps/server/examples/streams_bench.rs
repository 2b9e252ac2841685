//! Benchmark of chat streams (run by `cargo xtask bench streams`, release build): the release
//! server (`SAGE_BENCH_SERVER`, a path) relays answers of the scripted model (`llm-double`,
//! started in this process, no delay between chunks) to clients over loopback.
//!
//! * relay latency: every model chunk carries the time the model handed it to its connection;
//!   the client subtracts it from the time it reads the relayed line (both hops, buffering
//!   included), at 1, 100 and 1,000 concurrent streams;
//! * 100 concurrent chats of 200 chunks: time to the first line, and the whole batch, next to
//!   the same 100 answers read straight from the model;
//! * idle open streams: streams whose model pauses after its first chunk, carried over one
//!   cleartext HTTP/2 connection (`SAGE_HTTP2_CLEARTEXT`, as from a proxy in front), opened in
//!   steps until 10,000 or until the server's RSS passes 1 GiB.
//!
//! Prints one JSON object. Needs a high `ulimit -n` (the xtask raises it).

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use llm_double::{LlmDouble, Reply};
use serde_json::{Value, json};

type Failure = Box<dyn std::error::Error + Send + Sync>;
/// An open response body (it owns its connection).
type Body =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

const PASSWORD: &str = "Bench-admin-passphrase";
const IDLE_GOAL: usize = 10_000;
const IDLE_STEP: usize = 500;
const RSS_LIMIT_KIB: u64 = 1024 * 1024;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * (sorted.len().saturating_sub(1)) as f64).round() as usize;
    sorted.get(rank).copied().unwrap_or(0.0)
}

fn now_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn free_port() -> Result<u16, Failure> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

struct Server {
    child: Child,
    base: String,
    data: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

async fn start_server(double: &LlmDouble) -> Result<Server, Failure> {
    let binary = std::env::var("SAGE_BENCH_SERVER").map_err(|_| "SAGE_BENCH_SERVER is not set")?;
    let port = free_port()?;
    let data = std::env::temp_dir().join(format!("sage-bench-streams-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let child = Command::new(binary)
        .arg("serve")
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env("SAGE_DATA_DIR", &data)
        .env("SAGE_PORT", port.to_string())
        .env("SAGE_ADMIN_PASSWORD", PASSWORD)
        .env("SAGE_ACCESS_TOKEN_TTL_SECS", "3600")
        .env("SAGE_DEFAULT_LLM_BASE_URL", &double.base_url)
        .env("SAGE_DEFAULT_LLM_MODEL", "bench")
        .env("SAGE_DEFAULT_LLM_API_KEY", "bench-key")
        .env("SAGE_OUTBOUND_ALLOW", "loopback")
        .env("SAGE_HTTP2_CLEARTEXT", "true")
        .env("SAGE_MODEL_CALLS_PER_MINUTE", "100000000")
        .env("SAGE_MODEL_CALLS_BURST", "100000000")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        data,
    };
    let client = reqwest::Client::new();
    let began = Instant::now();
    loop {
        if let Ok(r) = client.get(format!("{}/active", server.base)).send().await
            && r.status() == 200
        {
            break;
        }
        if began.elapsed() > Duration::from_secs(30) {
            return Err("the server did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(server)
}

async fn login(client: &reqwest::Client, base: &str) -> Result<String, Failure> {
    let reply: Value = client
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"username_or_email": "admin", "password": PASSWORD}))
        .send()
        .await?
        .json()
        .await?;
    Ok(reply["data"]["access_token"]
        .as_str()
        .ok_or("no access token")?
        .to_owned())
}

/// What one stream gave.
#[derive(Default)]
struct Outcome {
    /// Relay latencies of stamped chunks, ms.
    latencies: Vec<f64>,
    first_line: Option<Duration>,
    lines: usize,
}

/// Starts a run on `/api/stream` and reads it; `until_first` returns after the first
/// content line and keeps the connection open in `hold` (idle streams).
async fn run_stream(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    hold: Option<&tokio::sync::Mutex<Vec<Body>>>,
) -> Result<Outcome, Failure> {
    let began = Instant::now();
    let response = client
        .post(format!("{base}/api/stream"))
        .bearer_auth(token)
        .json(&json!({"messages": [{"role": "user", "content": "go"}], "max_loop_count": 1}))
        .send()
        .await?;
    if response.status() != 200 {
        return Err(format!("stream: HTTP {}", response.status()).into());
    }
    let mut outcome = Outcome::default();
    let mut body = Box::pin(response.bytes_stream());
    let mut pending: Vec<u8> = Vec::new();
    let mut held = false;
    while let Some(piece) = body.next().await {
        let piece = piece?;
        let received = now_micros();
        pending.extend_from_slice(&piece);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            if line.starts_with(b":") || line.len() <= 1 {
                continue;
            }
            outcome.lines += 1;
            if outcome.first_line.is_none() {
                outcome.first_line = Some(began.elapsed());
            }
            let text = String::from_utf8_lossy(&line);
            if let Some(at) = text.find("\"@") {
                let digits: String = text[at + 2..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                if let Ok(sent) = digits.parse::<u128>() {
                    outcome
                        .latencies
                        .push(received.saturating_sub(sent) as f64 / 1000.0);
                    held = hold.is_some();
                }
            }
        }
        if held {
            break;
        }
    }
    if let Some(hold) = hold
        && held
    {
        // The stream stays open while its body is kept.
        hold.lock().await.push(body);
    }
    Ok(outcome)
}

/// Relay latency at `streams` concurrent streams of `chunks` stamped chunks each.
async fn latency(
    double: &LlmDouble,
    client: &reqwest::Client,
    base: &str,
    token: &str,
    streams: usize,
    chunks: usize,
) -> Result<Value, Failure> {
    for _ in 0..streams {
        double.push(Reply::Stamped {
            n: chunks,
            delay: Duration::ZERO,
        });
    }
    let runs = (0..streams).map(|_| run_stream(client, base, token, None));
    let results = futures_util::future::join_all(runs).await;
    let mut all = Vec::new();
    let mut failed = 0;
    for r in results {
        match r {
            Ok(o) => all.extend(o.latencies),
            Err(e) => {
                failed += 1;
                eprintln!("stream failed: {e}");
            }
        }
    }
    all.sort_by(f64::total_cmp);
    Ok(json!({
        "streams": streams, "chunks_per_stream": chunks, "samples": all.len(), "failed": failed,
        "p50_ms": percentile(&all, 50.0), "p99_ms": percentile(&all, 99.0),
    }))
}

/// 100 chats of 200 chunks through the server, and the same answers straight from the model.
async fn chats(
    double: &LlmDouble,
    client: &reqwest::Client,
    base: &str,
    token: &str,
) -> Result<Value, Failure> {
    const CHATS: usize = 100;
    const CHUNKS: usize = 200;
    let flood = || Reply::Flood {
        n: CHUNKS,
        text: "tok ".into(),
    };
    // The model alone.
    for _ in 0..CHATS {
        double.push(flood());
    }
    let began = Instant::now();
    let direct = (0..CHATS).map(|_| async {
        let response = client
            .post(format!("{}/chat/completions", double.base_url))
            .json(&json!({"model": "bench", "stream": true, "messages": [{"role": "user", "content": "go"}]}))
            .send()
            .await?;
        let mut body = response.bytes_stream();
        while let Some(piece) = body.next().await {
            piece?;
        }
        Ok::<_, Failure>(())
    });
    for r in futures_util::future::join_all(direct).await {
        r?;
    }
    let model_ms = began.elapsed().as_secs_f64() * 1000.0;

    // One chat at a time: what a run costs without contention.
    let mut alone = Vec::new();
    for _ in 0..10 {
        double.push(flood());
        let began = Instant::now();
        let o = run_stream(client, base, token, None).await?;
        alone.push((
            o.first_line.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0),
            began.elapsed().as_secs_f64() * 1000.0,
        ));
    }
    let mut alone_first: Vec<f64> = alone.iter().map(|a| a.0).collect();
    let mut alone_total: Vec<f64> = alone.iter().map(|a| a.1).collect();
    alone_first.sort_by(f64::total_cmp);
    alone_total.sort_by(f64::total_cmp);

    for _ in 0..CHATS {
        double.push(flood());
    }
    let began = Instant::now();
    let runs = (0..CHATS).map(|_| run_stream(client, base, token, None));
    let results = futures_util::future::join_all(runs).await;
    let total_ms = began.elapsed().as_secs_f64() * 1000.0;
    let mut firsts = Vec::new();
    let mut lines = 0;
    for r in results {
        let o = r?;
        lines += o.lines;
        firsts.push(o.first_line.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0));
    }
    firsts.sort_by(f64::total_cmp);
    Ok(json!({
        "chats": CHATS, "chunks": CHUNKS, "lines": lines,
        "first_line_p50_ms": percentile(&firsts, 50.0),
        "first_line_max_ms": firsts.last().copied().unwrap_or(0.0),
        "total_ms": total_ms, "model_alone_ms": model_ms,
        "one_chat_first_line_p50_ms": percentile(&alone_first, 50.0),
        "one_chat_total_p50_ms": percentile(&alone_total, 50.0),
    }))
}

/// Descriptors kept free for everything but idle streams.
const FD_RESERVE: usize = 200;

/// This process's soft limit of open files (the server inherits it).
fn open_files_limit() -> Option<usize> {
    std::fs::read_to_string("/proc/self/limits")
        .ok()?
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

/// Idle streams opened in steps until the goal or the memory limit.
async fn idle(double: &LlmDouble, server: &Server, token: &str) -> Result<Value, Failure> {
    // The streams arrive as a proxy in front would carry them: multiplexed over cleartext
    // HTTP/2 (over HTTP/1.1 each would hold a descriptor of its own in the server).
    let client = reqwest::Client::builder().http2_prior_knowledge().build()?;
    let hold = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let pid = server.child.id();
    let before = rss_kib(pid);
    let mut open = 0usize;
    let mut steps = Vec::new();
    let mut stopped = "reached the goal".to_owned();
    // Each idle stream holds one descriptor in the server (its model's connection) and one
    // here (the model double's end); the client's streams share one connection.
    let fd_limit = open_files_limit();
    let fd_room = fd_limit.map_or(usize::MAX, |l| l.saturating_sub(FD_RESERVE));
    while open < IDLE_GOAL {
        if open + IDLE_STEP > fd_room {
            stopped = format!(
                "stopped by the open-files limit of {} per process: each stream holds one",
                fd_limit.unwrap_or_default()
            );
            break;
        }
        for _ in 0..IDLE_STEP {
            double.push(Reply::Stamped {
                n: 2,
                delay: Duration::from_secs(600),
            });
        }
        let batch = (0..IDLE_STEP).map(|_| run_stream(&client, &server.base, token, Some(&hold)));
        let results = futures_util::future::join_all(batch).await;
        let failed = results.iter().filter(|r| r.is_err()).count();
        if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
            stopped = format!("{failed} of a step of {IDLE_STEP} failed: {e}");
        }
        open = hold.lock().await.len();
        let rss = rss_kib(pid);
        steps.push(json!({"open": open, "rss_mib": rss as f64 / 1024.0}));
        eprintln!(
            "idle streams: {open} open, server RSS {:.0} MiB",
            rss as f64 / 1024.0
        );
        if failed > 0 {
            break;
        }
        if rss > RSS_LIMIT_KIB {
            stopped = "the server passed 1 GiB".into();
            break;
        }
    }
    let after = rss_kib(pid);
    Ok(json!({
        "open": open, "rss_before_mib": before as f64 / 1024.0, "rss_mib": after as f64 / 1024.0,
        "per_stream_kib": if open > 0 { (after.saturating_sub(before)) as f64 / open as f64 } else { 0.0 },
        "stopped": stopped, "steps": steps,
    }))
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    platform::tls::ensure_crypto_provider();
    let double = LlmDouble::start(None, &[]).await?;
    let server = start_server(&double).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(2000)
        .build()?;
    let token = login(&client, &server.base).await?;

    // `SAGE_BENCH_ONLY=latency|chats|idle` runs one part (while profiling, say).
    let only = std::env::var("SAGE_BENCH_ONLY").unwrap_or_default();
    let part = |name: &str| only.is_empty() || only == name;
    // Warm-up.
    latency(&double, &client, &server.base, &token, 10, 50).await?;
    let mut latencies = Vec::new();
    if part("latency") {
        for (streams, chunks) in [(1, 2000), (100, 50), (1000, 20)] {
            let figures = latency(&double, &client, &server.base, &token, streams, chunks).await?;
            eprintln!("latency: {figures}");
            latencies.push(figures);
        }
    }
    let mut chats_figures = Value::Null;
    if part("chats") {
        chats_figures = chats(&double, &client, &server.base, &token).await?;
        eprintln!("chats: {chats_figures}");
    }
    let chats = chats_figures;
    let mut idle_figures = Value::Null;
    if part("idle") {
        idle_figures = idle(&double, &server, &token).await?;
        eprintln!("idle: {idle_figures}");
    }
    let idle = idle_figures;
    println!(
        "{}",
        json!({"latency": latencies, "chats": chats, "idle": idle})
    );
    drop(server);
    // Held streams and the double's sleeping answers end with the process.
    std::process::exit(0);
}
