//! `cargo xtask bench streams`: chat streams through the release server against the scripted
//! model (no delay between chunks) and resume replay of a 10,000-line log, in process and on
//! Redis; figures into `docs/benchmarks.md`. The measuring programs are the release examples
//! `server/streams_bench` and `platform/log_replay_bench`, run with a raised `ulimit -n`.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::bench::{machine, write_section};
use crate::{cargo, root, run};

fn release_dir() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target"))
        .join("release")
}

/// Runs a release program with `ulimit -n` raised; returns its last stdout line as JSON.
fn measure(program: &PathBuf, env: &[(&str, String)]) -> Result<Value, String> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -n \"$(ulimit -Hn)\" 2>/dev/null; exec \"$0\"")
        .arg(program)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    if !output.status.success() {
        return Err(format!("{} failed ({})", program.display(), output.status));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).map_err(|e| format!("{e}: {line}"))
}

fn ms(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "—".to_owned(), |n| format!("{n:.2} ms"))
}

fn mark(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

pub(crate) fn streams() -> Result<(), String> {
    run(
        cargo().args([
            "build",
            "--release",
            "-p",
            "server",
            "--bin",
            "sage-server",
            "--example",
            "streams_bench",
            "-p",
            "platform",
            "--example",
            "log_replay_bench",
        ]),
        "release build (server, stream and replay benchmarks)",
    )?;
    let release = release_dir();
    let replay = measure(&release.join("examples/log_replay_bench"), &[])?;
    let streams = measure(
        &release.join("examples/streams_bench"),
        &[(
            "SAGE_BENCH_SERVER",
            release.join("sage-server").display().to_string(),
        )],
    )?;

    let mut table = String::from("| measure | value | goal |\n|---|---|---|\n");
    if let Some(rows) = streams["latency"].as_array() {
        for row in rows {
            let p99 = row["p99_ms"].as_f64().unwrap_or(f64::MAX);
            let streams_n = row["streams"].as_u64().unwrap_or(0);
            table.push_str(&format!(
                "| relay latency per chunk, {} concurrent stream{} ({} chunks each; {} samples, {} failed), p50 / p99 | {} / {} | {} |\n",
                streams_n,
                if streams_n == 1 { "" } else { "s" },
                row["chunks_per_stream"],
                row["samples"],
                row["failed"],
                ms(&row["p50_ms"]),
                ms(&row["p99_ms"]),
                if streams_n == 1000 {
                    format!("p99 ≤ 1 ms: {}", mark(p99 <= 1.0))
                } else {
                    String::new()
                },
            ));
        }
    }
    let chats = &streams["chats"];
    let first_max = chats["first_line_max_ms"].as_f64().unwrap_or(f64::MAX);
    let total = chats["total_ms"].as_f64().unwrap_or(f64::MAX);
    let model = chats["model_alone_ms"].as_f64().unwrap_or(0.0);
    table.push_str(&format!(
        "| one chat of 200 chunks alone: first line / all done (median of 10) | {} / {} | |\n",
        ms(&chats["one_chat_first_line_p50_ms"]),
        ms(&chats["one_chat_total_p50_ms"]),
    ));
    table.push_str(&format!(
        "| 100 concurrent chats of 200 chunks: first line, median / slowest | {} / {} | ≤ 20 ms: {} |\n\
         | 100 concurrent chats of 200 chunks: all done / the model alone | {} / {} | within 100 ms of the model: {} |\n",
        ms(&chats["first_line_p50_ms"]),
        ms(&chats["first_line_max_ms"]),
        mark(first_max <= 20.0),
        ms(&chats["total_ms"]),
        ms(&chats["model_alone_ms"]),
        mark(total - model <= 100.0),
    ));
    let idle = &streams["idle"];
    let open = idle["open"].as_u64().unwrap_or(0);
    table.push_str(&format!(
        "| idle open streams held (server RSS {:.0} MiB, {:.1} KiB per stream; {}) | {} | ≥ 10,000 within 1 GiB: {} |\n",
        idle["rss_mib"].as_f64().unwrap_or(0.0),
        idle["per_stream_kib"].as_f64().unwrap_or(0.0),
        idle["stopped"].as_str().unwrap_or_default(),
        open,
        mark(open >= 10_000 && idle["rss_mib"].as_f64().unwrap_or(f64::MAX) <= 1024.0),
    ));
    let mem = replay["memory_median_ms"].as_f64().unwrap_or(f64::MAX);
    table.push_str(&format!(
        "| resume replay of a 10,000-line log, in process (median / best of 7) | {} / {} | ≤ 100 ms: {} |\n",
        ms(&replay["memory_median_ms"]),
        ms(&replay["memory_best_ms"]),
        mark(mem <= 100.0),
    ));
    match replay["redis_median_ms"].as_f64() {
        Some(redis) => table.push_str(&format!(
            "| resume replay of a 10,000-line log, on Redis (median / best of 7) | {} / {} | ≤ 100 ms: {} |\n",
            ms(&replay["redis_median_ms"]),
            ms(&replay["redis_best_ms"]),
            mark(redis <= 100.0),
        )),
        None => table.push_str("| resume replay on Redis | not measured (Redis did not answer) | |\n"),
    }
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default();
    let body = format!(
        "The release server on SQLite relays `POST /api/stream` runs of the scripted model \
         (`llm-double` in the measuring process, no delay between chunks, one worker) over \
         loopback; one run each. Relay latency is the time from the model handing a chunk to \
         its connection (the chunk carries that time) to the client reading the relayed line: \
         both loopback hops, the server's work and any buffering. Idle streams are runs whose \
         model pauses after its first chunk, opened 500 at a time over one cleartext HTTP/2 \
         connection (`SAGE_HTTP2_CLEARTEXT`, as a proxy in front would carry them; over \
         HTTP/1.1 each stream also holds a client connection). Replay reads a closed \
         log of 10,000 delta lines from index 0 through the platform `LogStore`.\n\n\
         {table}\n\
         Machine: {} Load average at the end: {load}.\n",
        machine(),
    );
    write_section("streams", &body)?;
    println!("{body}");
    Ok(())
}
