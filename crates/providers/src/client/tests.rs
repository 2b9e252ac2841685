//! The client against the scripted OpenAI-compatible server, over real HTTP on loopback.

use std::sync::Arc;
use std::time::Duration;

use llm_double::{LlmDouble, Reply, ToolCall as DoubleCall, Usage as DoubleUsage};
use platform::outbound::OutboundPolicy;
use serde_json::json;

use super::*;

fn client(read_timeout: Duration) -> LlmClient {
    let policy = OutboundPolicy::from_allow_list(&["loopback".into()]).unwrap();
    LlmClient::new(
        Arc::new(policy),
        ClientSettings {
            read_timeout,
            backoff: Duration::from_millis(10),
            ..ClientSettings::default()
        },
    )
    .unwrap()
}

fn endpoint(double: &LlmDouble, key: &str, model: &str) -> Endpoint {
    Endpoint {
        base_url: double.base_url.clone(),
        api_key: key.into(),
        model: model.into(),
        supports_multimodal: false,
    }
}

fn hello() -> ChatRequest {
    ChatRequest {
        messages: vec![json!({"role": "user", "content": "Hi"})],
        ..ChatRequest::default()
    }
}

#[tokio::test]
async fn a_stream_delivers_text_reasoning_tool_calls_and_usage() {
    let double = LlmDouble::start(Some("sk-good"), &["m1"]).await.unwrap();
    double.push(Reply::Answer {
        chunks: vec!["Hel".into(), "lo".into()],
        reasoning: vec!["think".into(), "ing".into()],
        tool_calls: vec![
            DoubleCall {
                id: "call_1".into(),
                name: "search".into(),
                arguments: r#"{"q":"rust"}"#.into(),
            },
            DoubleCall {
                id: "call_2".into(),
                name: "clock".into(),
                arguments: "{}".into(),
            },
        ],
        usage: Some(DoubleUsage {
            prompt_tokens: 7,
            completion_tokens: 3,
        }),
        delay: Duration::ZERO,
        cut_after: None,
    });
    let c = client(Duration::from_secs(5));
    let stream = c
        .chat_stream(&endpoint(&double, "sk-good", "m1"), &hello())
        .await
        .unwrap();
    let done = collect(stream).await.unwrap();
    assert_eq!(done.content, "Hello");
    assert_eq!(done.reasoning, "thinking");
    assert_eq!(done.tool_calls.len(), 2);
    assert_eq!(
        done.tool_calls[0],
        ToolCall {
            id: "call_1".into(),
            name: "search".into(),
            arguments: r#"{"q":"rust"}"#.into()
        }
    );
    assert_eq!(done.tool_calls[1].name, "clock");
    assert_eq!(done.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(done.usage.unwrap().prompt_tokens, 7);
    let sent = &double.chat_requests()[0];
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["stream_options"]["include_usage"], true);
    assert_eq!(sent["model"], "m1");
}

#[tokio::test]
async fn a_json_answer_is_read_whole() {
    let double = LlmDouble::start(None, &[]).await.unwrap();
    double.push(Reply::text(&["for", "ty-two"]));
    let c = client(Duration::from_secs(5));
    let mut request = hello();
    request.max_tokens = Some(5);
    request.response_format = Some(json!({"type": "json_object"}));
    let done = c
        .chat(&endpoint(&double, "k", "any"), &request)
        .await
        .unwrap();
    assert_eq!(done.content, "forty-two");
    assert_eq!(done.usage.unwrap().completion_tokens, 2);
    let sent = &double.chat_requests()[0];
    assert_eq!(sent["max_tokens"], 5);
    assert_eq!(sent["response_format"]["type"], "json_object");
    assert!(sent.get("stream").is_none());
}

#[tokio::test]
async fn provider_failures_are_typed_and_keep_the_provider_message() {
    let double = LlmDouble::start(Some("sk-good"), &["m1"]).await.unwrap();
    let c = client(Duration::from_secs(5));
    let wrong_key = c
        .chat(&endpoint(&double, "sk-bad", "m1"), &hello())
        .await
        .unwrap_err();
    assert_eq!(wrong_key.kind, LlmErrorKind::Authentication);
    assert!(
        wrong_key.message.contains("Incorrect API key"),
        "{wrong_key}"
    );
    let no_model = c
        .chat(&endpoint(&double, "sk-good", "m9"), &hello())
        .await
        .unwrap_err();
    assert_eq!(no_model.kind, LlmErrorKind::ModelNotFound);
    double.push(Reply::Html);
    let html = c
        .chat(&endpoint(&double, "sk-good", "m1"), &hello())
        .await
        .unwrap_err();
    assert_eq!(html.kind, LlmErrorKind::MalformedResponse);
    double.push(Reply::Html);
    let html_stream = c
        .chat_stream(&endpoint(&double, "sk-good", "m1"), &hello())
        .await
        .err()
        .unwrap();
    assert_eq!(html_stream.kind, LlmErrorKind::MalformedResponse);
    double.push(Reply::error(400, "messages must not be empty"));
    let bad = c
        .chat(&endpoint(&double, "sk-good", "m1"), &hello())
        .await
        .unwrap_err();
    assert_eq!(bad.kind, LlmErrorKind::BadRequest);
    assert!(bad.message.contains("messages must not be empty"));
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_retried_before_the_first_byte_only() {
    let double = LlmDouble::start(None, &[]).await.unwrap();
    double.push(Reply::error(503, "overloaded"));
    double.push(Reply::error(429, "slow down"));
    double.push(Reply::text(&["ok"]));
    let c = client(Duration::from_secs(5));
    let done = c
        .chat(&endpoint(&double, "k", "m"), &hello())
        .await
        .unwrap();
    assert_eq!(done.content, "ok");
    assert_eq!(double.chat_requests().len(), 3);

    for _ in 0..3 {
        double.push(Reply::error(500, "still broken"));
    }
    let failed = c
        .chat(&endpoint(&double, "k", "m"), &hello())
        .await
        .unwrap_err();
    assert_eq!(failed.kind, LlmErrorKind::ServerError);
    assert_eq!(double.chat_requests().len(), 6, "one try and two retries");

    double.push(Reply::error(400, "bad"));
    c.chat(&endpoint(&double, "k", "m"), &hello())
        .await
        .unwrap_err();
    assert_eq!(
        double.chat_requests().len(),
        7,
        "client errors are not retried"
    );
}

#[tokio::test]
async fn a_stream_cut_in_the_middle_is_an_error_after_the_text_so_far() {
    let double = LlmDouble::start(None, &[]).await.unwrap();
    double.push(Reply::Answer {
        chunks: vec!["one ".into(), "two ".into(), "three".into()],
        reasoning: vec![],
        tool_calls: vec![],
        usage: None,
        delay: Duration::ZERO,
        cut_after: Some(3),
    });
    let c = client(Duration::from_secs(5));
    let mut stream = c
        .chat_stream(&endpoint(&double, "k", "m"), &hello())
        .await
        .unwrap();
    let mut text = String::new();
    let mut failure = None;
    while let Some(event) = stream.next().await {
        match event {
            Ok(StreamEvent::Content(c)) => text.push_str(&c),
            Ok(_) => {}
            Err(e) => failure = Some(e),
        }
    }
    assert_eq!(text, "one two ");
    assert_eq!(failure.unwrap().kind, LlmErrorKind::MalformedResponse);
    assert_eq!(
        double.chat_requests().len(),
        1,
        "never retried after the first byte"
    );
}

#[tokio::test]
async fn a_stalled_stream_times_out() {
    let double = LlmDouble::start(None, &[]).await.unwrap();
    double.push(Reply::Answer {
        chunks: vec!["a".into(), "b".into()],
        reasoning: vec![],
        tool_calls: vec![],
        usage: None,
        delay: Duration::from_millis(800),
        cut_after: None,
    });
    let c = client(Duration::from_millis(200));
    let stream = c
        .chat_stream(&endpoint(&double, "k", "m"), &hello())
        .await
        .unwrap();
    let e = collect(stream).await.unwrap_err();
    assert_eq!(e.kind, LlmErrorKind::Timeout);
}

#[tokio::test]
async fn unreachable_and_forbidden_addresses_are_told_apart() {
    let c = client(Duration::from_secs(2));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ep = Endpoint {
        base_url: format!("http://127.0.0.1:{closed}/v1"),
        api_key: "k".into(),
        model: "m".into(),
        supports_multimodal: false,
    };
    assert_eq!(
        c.chat(&ep, &hello()).await.unwrap_err().kind,
        LlmErrorKind::Unreachable
    );

    let strict = LlmClient::new(
        Arc::new(OutboundPolicy::default()),
        ClientSettings::default(),
    )
    .unwrap();
    let double = LlmDouble::start(None, &[]).await.unwrap();
    let refused = strict
        .chat(&endpoint(&double, "k", "m"), &hello())
        .await
        .unwrap_err();
    assert_eq!(refused.kind, LlmErrorKind::Forbidden);
    assert!(double.chat_requests().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn embeddings_come_back_in_input_order() {
    let double = LlmDouble::start(None, &[]).await.unwrap();
    let c = client(Duration::from_secs(5));
    let inputs = vec!["alpha".to_owned(), "beta".to_owned()];
    let vectors = c
        .embeddings(&endpoint(&double, "k", "emb"), &inputs)
        .await
        .unwrap();
    assert_eq!(vectors.len(), 2);
    assert_eq!(vectors[0], llm_double::embed("alpha"));
    assert_eq!(vectors[1].len(), 8);
}

#[test]
fn the_sse_decoder_handles_split_lines_comments_and_done() {
    let mut d = SseDecoder::new(1024);
    assert!(d.feed(b": keep-alive\n\ndata: {\"a\"").unwrap().is_empty());
    assert_eq!(d.feed(b":1}\n\n").unwrap(), vec!["{\"a\":1}".to_owned()]);
    assert!(d.feed(b"data: [DONE]\n\n").unwrap().is_empty());
    assert!(d.done);
    let mut html = SseDecoder::new(1024);
    assert!(html.feed(b"<html>\n").is_err());
}

#[test]
fn the_sse_decoder_refuses_lines_and_events_over_its_cap() {
    let mut line = SseDecoder::new(1024);
    // A line that never ends is refused once it passes the cap, fed in small pieces.
    let mut refused = false;
    for _ in 0..40 {
        if line.feed(&[b'x'; 100]).is_err() {
            refused = true;
            break;
        }
    }
    assert!(refused);
    assert!(line.buffer.len() <= 1024 + 100);
    // An event made of many short `data:` lines is refused too.
    let mut event = SseDecoder::new(1024);
    let mut refused = false;
    for _ in 0..40 {
        if event
            .feed(&[b"data: ".as_slice(), &[b'y'; 50], b"\n"].concat())
            .is_err()
        {
            refused = true;
            break;
        }
    }
    assert!(refused);
}

fn small_caps() -> LlmClient {
    let policy = OutboundPolicy::from_allow_list(&["loopback".into()]).unwrap();
    LlmClient::new(
        Arc::new(policy),
        ClientSettings {
            read_timeout: Duration::from_secs(10),
            backoff: Duration::from_millis(10),
            retries: 0,
            max_body_bytes: 4 * 1024 * 1024,
            max_stream_bytes: 4 * 1024 * 1024,
            max_event_bytes: 256 * 1024,
            ..ClientSettings::default()
        },
    )
    .unwrap()
}

#[tokio::test]
async fn oversized_answers_are_refused_without_reading_them_whole() {
    let double = LlmDouble::start(None, &[]).await.unwrap();
    let c = small_caps();
    let e = endpoint(&double, "k", "m");
    // A JSON answer over the body cap.
    double.push(Reply::Huge {
        bytes: 6 * 1024 * 1024,
        status: 200,
    });
    let error = c.chat(&e, &hello()).await.unwrap_err();
    assert_eq!(error.kind, LlmErrorKind::MalformedResponse);
    assert!(error.message.contains("larger than"), "{error}");
    // Under the cap the same shape is read.
    double.push(Reply::Huge {
        bytes: 1024 * 1024,
        status: 200,
    });
    let answer = c.chat(&e, &hello()).await.unwrap();
    assert!(answer.content.len() >= 1024 * 1024);
    // A stream whose one line passes the event cap.
    double.push(Reply::Huge {
        bytes: 1024 * 1024,
        status: 200,
    });
    let stream = c.chat_stream(&e, &hello()).await.unwrap();
    let error = collect(stream).await.unwrap_err();
    assert!(error.message.contains("larger than"), "{error}");
    // A huge error body: its start gives the message, the rest is never read.
    double.push(Reply::Huge {
        bytes: 8 * 1024 * 1024,
        status: 400,
    });
    let error = c.chat(&e, &hello()).await.unwrap_err();
    assert_eq!(error.kind, LlmErrorKind::BadRequest);
    assert!(error.message.len() < 1024, "{}", error.message.len());
}

#[tokio::test]
async fn a_stream_over_the_total_cap_ends_with_an_error() {
    let double = LlmDouble::start(None, &[]).await.unwrap();
    let c = small_caps();
    double.push(Reply::Flood {
        n: 100_000,
        text: "many small deltas ".into(),
    });
    let stream = c
        .chat_stream(&endpoint(&double, "k", "m"), &hello())
        .await
        .unwrap();
    let error = collect(stream).await.unwrap_err();
    assert!(
        error.message.contains("the event stream is larger than"),
        "{error}"
    );
}
