//! What the model sees: the system prompt, the stored history as OpenAI messages, control
//! tags stripped from the user's message, and the runtime's localised texts.

use conversations::StoredMessage;
use serde_json::{Map, Value, json};

const CONTROL_TAGS: [&str; 4] = [
    "enable_plan",
    "enable_deep_thinking",
    "thinking_level",
    "deep_thinking_level",
];

fn strip_tags(text: &str) -> String {
    let mut rest = text.trim_start();
    'again: loop {
        for tag in CONTROL_TAGS {
            let open = format!("<{tag}>");
            let close = format!("</{tag}>");
            if let Some(after) = rest.strip_prefix(&open)
                && let Some(end) = after.find(&close)
            {
                rest = after[end + close.len()..].trim_start();
                continue 'again;
            }
        }
        return rest.to_owned();
    }
}

/// Removes the leading `<enable_plan>`, `<enable_deep_thinking>` and `<thinking_level>` tags
/// (from a string, or from the first text part).
pub(crate) fn strip_control_tags(content: &Value) -> Value {
    match content {
        Value::String(s) => Value::String(strip_tags(s)),
        Value::Array(parts) => {
            let mut done = false;
            Value::Array(
                parts
                    .iter()
                    .map(|p| {
                        if !done
                            && p["type"] == "text"
                            && let Some(t) = p["text"].as_str()
                        {
                            done = true;
                            let mut p = p.clone();
                            p["text"] = json!(strip_tags(t));
                            return p;
                        }
                        p.clone()
                    })
                    .collect(),
            )
        }
        other => other.clone(),
    }
}

/// The text of a message (a string, or its text parts joined).
pub(crate) fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// `en` or `zh` from a `response_language` such as `zh-CN`.
pub(crate) fn language_of(response_language: Option<&str>, fallback: &str) -> String {
    match response_language.map(str::to_ascii_lowercase) {
        Some(l) if l.starts_with("zh") => "zh".into(),
        Some(l) if l.starts_with("en") => "en".into(),
        _ => fallback.to_owned(),
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The system prompt: the agent's prefix, then the system context as tags.
pub(crate) fn system_prompt(prefix: &str, context: &Map<String, Value>) -> String {
    let mut out = prefix.trim().to_owned();
    if !context.is_empty() {
        out.push_str("\n\n<system_context>\n");
        for (k, v) in context {
            out.push_str(&format!("  <{k}>{}</{k}>\n", scalar_text(v)));
        }
        out.push_str("</system_context>");
    }
    out
}

fn runtime_generated(m: &StoredMessage) -> bool {
    m.metadata["runtime_generated"] == true
}

/// Stored messages as OpenAI messages: consecutive assistant pieces of one step join into
/// one message; tool calls without a stored result are dropped (an interrupted step), and
/// runtime notices are not shown to the model.
pub(crate) fn history(stored: &[StoredMessage]) -> Vec<Value> {
    let answered: Vec<&str> = stored
        .iter()
        .filter(|m| m.role == "tool")
        .filter_map(|m| m.tool_call_id.as_deref())
        .collect();
    let mut out: Vec<Value> = Vec::new();
    for m in stored.iter().filter(|m| !runtime_generated(m)) {
        match m.role.as_str() {
            "user" => out.push(json!({"role": "user", "content": m.content})),
            "tool" => out.push(json!({"role": "tool", "tool_call_id": m.tool_call_id,
                                      "content": text_of(&m.content)})),
            "assistant" => {
                if m.message_type == "reasoning_content" {
                    continue;
                }
                let calls: Vec<Value> = m
                    .tool_calls
                    .as_ref()
                    .and_then(Value::as_array)
                    .map(|calls| {
                        calls
                            .iter()
                            .filter(|c| c["id"].as_str().is_some_and(|id| answered.contains(&id)))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                let text = text_of(&m.content);
                if text.is_empty() && calls.is_empty() {
                    continue;
                }
                let joinable = out.last().is_some_and(|l| l["role"] == "assistant");
                if joinable && let Some(last) = out.last_mut() {
                    let joined = format!("{}{}", last["content"].as_str().unwrap_or(""), text);
                    last["content"] = json!(joined);
                    if !calls.is_empty() {
                        let mut all = last["tool_calls"].as_array().cloned().unwrap_or_default();
                        all.extend(calls);
                        last["tool_calls"] = json!(all);
                    }
                } else {
                    let mut msg = json!({"role": "assistant", "content": text});
                    if !calls.is_empty() {
                        msg["tool_calls"] = json!(calls);
                    }
                    out.push(msg);
                }
            }
            _ => {}
        }
    }
    out
}

pub(crate) fn new_title(language: &str) -> &'static str {
    if language == "zh" {
        "新对话"
    } else {
        "New conversation"
    }
}

pub(crate) fn failure_text(language: &str, reason: &str) -> String {
    if language == "zh" {
        format!("工作流执行失败: {reason}")
    } else {
        format!("Workflow execution failed: {reason}")
    }
}

/// The loop-limit stop message with its questionnaire.
pub(crate) fn max_loop_text(language: &str, max_loop: u32) -> String {
    if language == "zh" {
        format!(
            "智能体已达到本轮的最大循环次数（{max_loop}），执行已暂停。请通过下面的问卷确认是否继续。\n\n```questionnaire\ntitle: 智能体陷入循环\nquestions:\n- type: single_choice\n  text: 是否继续当前任务？\n  options:\n  - 继续\n  default: 继续\n```"
        )
    } else {
        format!(
            "The agent reached the maximum loop count for this turn ({max_loop}) and is stuck in an execution loop, so execution has been paused. Please use the questionnaire below to confirm whether to continue.\n\n```questionnaire\ntitle: Agent is stuck in a loop\nquestions:\n- type: single_choice\n  text: Continue the current task?\n  options:\n  - Continue\n  default: Continue\n```"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(
        role: &str,
        kind: &str,
        content: &str,
        calls: Option<Value>,
        call_id: Option<&str>,
    ) -> StoredMessage {
        StoredMessage {
            message_id: "m".into(),
            role: role.into(),
            message_type: kind.into(),
            content: json!(content),
            reasoning_content: None,
            tool_calls: calls,
            tool_call_id: call_id.map(str::to_owned),
            agent_name: None,
            metadata: json!({}),
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn control_tags_are_stripped_only_at_the_start() {
        assert_eq!(
            strip_control_tags(&json!(
                "<enable_plan>false</enable_plan><thinking_level>high</thinking_level> Hi <enable_plan>x</enable_plan>"
            )),
            json!("Hi <enable_plan>x</enable_plan>")
        );
        let parts = strip_control_tags(
            &json!([{"type": "text", "text": "<enable_deep_thinking>true</enable_deep_thinking>Look"}, {"type": "image_url", "image_url": {"url": "u"}}]),
        );
        assert_eq!(parts[0]["text"], "Look");
    }

    #[test]
    fn history_joins_a_step_and_drops_unanswered_calls() {
        let call = |id: &str| json!([{"id": id, "type": "function", "function": {"name": "f", "arguments": "{}"}}]);
        let h = history(&[
            stored("user", "user_input", "hi", None, None),
            stored("assistant", "do_subtask_result", "Let me look.", None, None),
            stored("assistant", "tool_call", "", Some(call("c1")), None),
            stored("tool", "tool_call_result", "{}", None, Some("c1")),
            stored("assistant", "do_subtask_result", "Done.", None, None),
            stored("assistant", "tool_call", "", Some(call("c2")), None),
        ]);
        assert_eq!(h.len(), 4, "{h:?}");
        assert_eq!(h[1]["content"], "Let me look.");
        assert_eq!(h[1]["tool_calls"][0]["id"], "c1");
        assert_eq!(h[3]["content"], "Done.");
        assert!(h[3].get("tool_calls").is_none());
    }
}
