//! The NDJSON wire format: one JSON object per line with Python's separators (`", "`,
//! `": "`), UTF-8 unescaped, top-level nulls dropped, keys in Sage's order.

use serde::Serialize;
use serde_json::Value;

/// Python's `json.dumps` separators.
struct PyFormatter;

impl serde_json::ser::Formatter for PyFormatter {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
    ) -> std::io::Result<()> {
        writer.write_all(b": ")
    }
}

/// `value` as Python would print it.
pub fn to_py_json(value: &impl Serialize) -> String {
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PyFormatter);
    if value.serialize(&mut ser).is_err() {
        return "{}".to_owned();
    }
    String::from_utf8(out).unwrap_or_default()
}

/// One line (with its `\n`).
pub fn line(value: &impl Serialize) -> Vec<u8> {
    let mut text = to_py_json(value);
    text.push('\n');
    text.into_bytes()
}

/// Seconds since the epoch as a float, as Sage's `timestamp`.
pub fn now() -> f64 {
    let now = chrono::Utc::now();
    now.timestamp() as f64 + f64::from(now.timestamp_subsec_micros()) / 1e6
}

/// An OpenAI-style tool-call delta; its nulls are kept.
#[derive(Debug, Clone, Serialize)]
pub struct ToolCallDelta {
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<&'static str>,
    pub index: u32,
    pub function: FunctionDelta,
}

#[derive(Debug, Clone, Serialize)]
pub struct FunctionDelta {
    pub name: Option<String>,
    pub arguments: String,
}

/// An agent message line (deltas share a `message_id`). `metadata` is a `Value` (keys
/// sorted) or one of the typed shapes below (keys in Sage's order).
#[derive(Debug, Clone, Serialize)]
pub struct AgentLine<'a, M: Serialize = Value> {
    pub role: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
    pub message_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<&'a str>,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub timestamp: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_name: Option<&'a str>,
    pub metadata: M,
    pub session_id: &'a str,
}

/// `metadata` of the loop-limit stop message, in Sage's key order.
#[derive(Debug, Clone, Serialize)]
pub struct LoopStopMetadata {
    pub runtime_generated: bool,
    pub runtime_notice: &'static str,
    pub stop_reason: &'static str,
    pub needs_user_input: bool,
    pub max_loop_count: u32,
}

/// Token counts in OpenAI's `usage` order.
#[derive(Debug, Clone, Serialize)]
pub struct StepUsage {
    pub completion_tokens: u64,
    pub prompt_tokens: u64,
    pub total_tokens: u64,
    pub completion_tokens_details: Option<Value>,
    pub prompt_tokens_details: Option<Value>,
}

/// One step of `per_step_info`.
#[derive(Debug, Clone, Serialize)]
pub struct StepInfo<'a> {
    pub step_name: &'static str,
    pub model: &'a str,
    pub usage: StepUsage,
}

/// `total_info`: `{}` for a run without a model call.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TotalInfo<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub models: Option<&'a [String]>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TokenUsage<'a> {
    pub total_info: TotalInfo<'a>,
    pub per_step_info: Vec<StepInfo<'a>>,
    pub models: &'a [String],
}

/// `metadata` of the `token_usage` line, in Sage's key order.
#[derive(Debug, Clone, Serialize)]
pub struct UsageMetadata<'a> {
    pub token_usage: TokenUsage<'a>,
    pub model: Option<&'a str>,
    pub models: &'a [String],
    pub session_id: &'a str,
}

/// A note of a running tool call; only `/api/stream` sends these, never logged, but counted
/// in `total_stream_count`.
#[derive(Debug, Clone, Serialize)]
pub struct ToolProgress<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub session_id: &'a str,
    pub tool_call_id: &'a str,
    pub text: &'a str,
    pub stream: &'a str,
    pub closed: bool,
    pub ts: f64,
}

/// The last line of a run (or of a resume after the log expired).
#[derive(Debug, Clone, Serialize)]
pub struct StreamEnd<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub session_id: &'a str,
    pub timestamp: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_stream_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resume_fallback: Option<bool>,
}

impl<'a> StreamEnd<'a> {
    pub fn new(session_id: &'a str, count: u64, interrupted: bool) -> Self {
        Self {
            kind: "stream_end",
            session_id,
            timestamp: now(),
            total_stream_count: Some(count),
            interrupted: interrupted.then_some(true),
            resume_fallback: None,
        }
    }

    pub fn fallback(session_id: &'a str) -> Self {
        Self {
            kind: "stream_end",
            session_id,
            timestamp: now(),
            total_stream_count: None,
            interrupted: None,
            resume_fallback: Some(true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines_use_pythons_separators_sages_key_order_and_keep_nulls_inside_tool_calls() {
        let l = AgentLine {
            role: "assistant",
            content: None,
            reasoning_content: None,
            tool_calls: Some(vec![ToolCallDelta {
                id: None,
                kind: None,
                index: 0,
                function: FunctionDelta {
                    name: None,
                    arguments: "{\"a\": \"é\"}".into(),
                },
            }]),
            message_id: "m1",
            tool_call_id: None,
            kind: "tool_call",
            timestamp: 1.5,
            agent_name: Some("SimpleAgent"),
            metadata: json!({}),
            session_id: "s1",
        };
        assert_eq!(
            to_py_json(&l),
            r#"{"role": "assistant", "tool_calls": [{"id": null, "type": null, "index": 0, "function": {"name": null, "arguments": "{\"a\": \"é\"}"}}], "message_id": "m1", "type": "tool_call", "timestamp": 1.5, "agent_name": "SimpleAgent", "metadata": {}, "session_id": "s1"}"#
        );
        let end = to_py_json(&StreamEnd::new("s1", 3, false));
        assert!(end.starts_with(r#"{"type": "stream_end", "session_id": "s1", "timestamp": "#));
        assert!(end.ends_with(r#", "total_stream_count": 3}"#), "{end}");
    }
}
