//! `cargo xtask bench llm-client`: runs the client benchmark example in release mode and
//! writes its figures to `docs/benchmarks.md`.

use std::process::Command;

use crate::bench::{machine, write_section};
use crate::{cargo, run};

pub(crate) fn llm_client() -> Result<(), String> {
    run(
        cargo().args([
            "build",
            "--release",
            "-p",
            "providers",
            "--example",
            "llm_client_bench",
        ]),
        "release build of the client benchmark",
    )?;
    let output: std::process::Output = {
        let mut cmd: Command = cargo();
        cmd.args([
            "run",
            "--quiet",
            "--release",
            "-p",
            "providers",
            "--example",
            "llm_client_bench",
        ]);
        cmd.output().map_err(|e| e.to_string())?
    };
    if !output.status.success() {
        return Err(format!(
            "the benchmark failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().last().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("{e}: {line}"))?;
    let body = format!(
        "One streamed answer of {} content chunks from the scripted OpenAI-compatible server \
         (`sage-llm-double`) through `providers::LlmClient` over loopback HTTP, release build; the \
         added latency is the client's own work per chunk (SSE framing, JSON parsing, event \
         building), measured on each chunk's bytes.\n\n\
         | measure | value |\n|---|---|\n\
         | chunks per second, end to end | {:.0} |\n\
         | whole stream | {:.3} s |\n\
         | added latency per chunk, p50 / p99 | {:.1} µs / {:.1} µs |\n\n\
         Machine: {}\n",
        v["chunks"],
        v["chunks_per_second"].as_f64().unwrap_or(0.0),
        v["seconds"].as_f64().unwrap_or(0.0),
        v["added_us_p50"].as_f64().unwrap_or(0.0),
        v["added_us_p99"].as_f64().unwrap_or(0.0),
        machine(),
    );
    write_section("llm-client", &body)?;
    println!("{body}");
    Ok(())
}
