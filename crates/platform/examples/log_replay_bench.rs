//! Benchmark of stream resume (run by `cargo xtask bench streams`, release build): a closed
//! replay log of 10,000 NDJSON lines (the size of a long chat answer) is read back from
//! index 0, the way `GET /api/stream/resume/{id}?last_index=0` replays it, in process and on
//! Redis (`TEST_REDIS_URL`, default `redis://127.0.0.1:6379`, when it answers). Prints one
//! JSON object: milliseconds per full replay (best and median of 7) for each store.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use platform::store::{LogStore, MemoryLogStore, RedisLogStore};
use serde_json::json;

const LINES: usize = 10_000;
const RUNS: usize = 7;

type Failure = Box<dyn std::error::Error>;

/// One delta line as the hub writes it (about 150 bytes).
fn line(i: usize) -> Vec<u8> {
    let mut text = json!({
        "type": "assistant",
        "message_id": "msg_0123456789abcdef",
        "content": format!("token {i} "),
        "session_id": "bench-session",
        "index": i,
    })
    .to_string()
    .into_bytes();
    text.push(b'\n');
    text
}

/// Appends the log once, then times full replays; returns (best, median) in ms.
async fn measure(store: &dyn LogStore, name: &str) -> Result<(f64, f64), Failure> {
    let _ = store.delete(name).await;
    for i in 0..LINES {
        store.append(name, &line(i)).await?;
    }
    store.close(name, Duration::from_secs(600)).await?;
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let began = Instant::now();
        let mut reader = store.read(name, 0).await?.ok_or("the log is missing")?;
        let mut count = 0usize;
        let mut bytes = 0usize;
        while let Some(entry) = reader.next().await {
            bytes += entry?.data.len();
            count += 1;
        }
        times.push(began.elapsed().as_secs_f64() * 1000.0);
        if count != LINES || bytes == 0 {
            return Err(format!("replayed {count} of {LINES} lines").into());
        }
    }
    store.delete(name).await?;
    times.sort_by(f64::total_cmp);
    Ok((times[0], times[times.len() / 2]))
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let memory = MemoryLogStore::new();
    let (mem_best, mem_median) = measure(&memory, "bench-replay").await?;
    let url = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("sage-bench-replay-{}:", std::process::id());
    let redis = match platform::redis_conn::connect(&url, &prefix).await {
        Ok(handle) => {
            let store = RedisLogStore::new(handle);
            Some(measure(&store, "bench-replay").await?)
        }
        Err(e) => {
            eprintln!("no Redis: {e}");
            None
        }
    };
    println!(
        "{}",
        json!({
            "lines": LINES,
            "memory_best_ms": mem_best,
            "memory_median_ms": mem_median,
            "redis_best_ms": redis.map(|r| r.0),
            "redis_median_ms": redis.map(|r| r.1),
        })
    );
    Ok(())
}
