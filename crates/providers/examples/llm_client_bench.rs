//! Benchmark of the LLM client (run by `cargo xtask bench llm-client`, release build): a
//! 10,000-chunk stream from the scripted server through the client over loopback HTTP, and the
//! time the client adds per chunk (SSE decoding and event parsing), measured on the captured
//! bytes of that stream. Prints one JSON object.

use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use llm_double::{LlmDouble, Reply};
use platform::outbound::OutboundPolicy;
use providers::{ChatRequest, ClientSettings, Endpoint, LlmClient, StreamEvent};
use serde_json::json;

const CHUNKS: usize = 10_000;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * (sorted.len().saturating_sub(1)) as f64).round() as usize;
    sorted.get(rank).copied().unwrap_or(0.0)
}

type Failure = Box<dyn std::error::Error>;

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let double = LlmDouble::start(None, &[]).await?;
    let policy = OutboundPolicy::from_allow_list(&["loopback".into()])?;
    let client = LlmClient::new(Arc::new(policy), ClientSettings::default())?;
    let endpoint = Endpoint {
        base_url: double.base_url.clone(),
        api_key: "k".into(),
        model: "bench".into(),
        supports_multimodal: false,
    };
    let request = ChatRequest {
        messages: vec![json!({"role": "user", "content": "go"})],
        ..ChatRequest::default()
    };

    // Warm-up (connection, allocator).
    double.push(Reply::Flood {
        n: 500,
        text: "tok ".into(),
    });
    let mut warm = client.chat_stream(&endpoint, &request).await?;
    while warm.next().await.is_some() {}

    double.push(Reply::Flood {
        n: CHUNKS,
        text: "tok ".into(),
    });
    let began = Instant::now();
    let mut stream = client.chat_stream(&endpoint, &request).await?;
    let mut content = 0usize;
    while let Some(event) = stream.next().await {
        if let Ok(StreamEvent::Content(_)) = event {
            content += 1;
        }
    }
    let elapsed = began.elapsed().as_secs_f64();

    // Per-chunk cost of the client's own work: decode each frame as it would arrive.
    let frames: Vec<String> = (0..CHUNKS)
        .map(|_| {
            format!(
                "data: {}\n\n",
                json!({"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "bench",
                       "choices": [{"index": 0, "delta": {"content": "tok "}, "finish_reason": null}]})
            )
        })
        .collect();
    let mut per_chunk: Vec<f64> = Vec::with_capacity(CHUNKS);
    let mut decoder = providers::client::bench_support::Decoder::new();
    for frame in &frames {
        let t = Instant::now();
        let events = decoder.feed(frame.as_bytes());
        let _ = std::hint::black_box(events);
        per_chunk.push(t.elapsed().as_secs_f64() * 1e6);
    }
    per_chunk.sort_by(f64::total_cmp);
    println!(
        "{}",
        json!({
            "chunks": content,
            "seconds": elapsed,
            "chunks_per_second": content as f64 / elapsed,
            "added_us_p50": percentile(&per_chunk, 50.0),
            "added_us_p99": percentile(&per_chunk, 99.0),
        })
    );
    double.stop().await;
    Ok(())
}
