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

/// What the leading control tags of the user's message ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Controls {
    /// `<enable_plan>`: recorded on the run (the planner is a later issue).
    pub plan: Option<bool>,
    /// `<enable_deep_thinking>`: `true` also when only a level is given.
    pub deep_thinking: Option<bool>,
    /// `<thinking_level>` / `<deep_thinking_level>`, lower-cased.
    pub level: Option<String>,
}

impl Controls {
    /// The model request's `reasoning_effort` (OpenAI-compatible endpoints): the level, with
    /// `xhigh` and `max` sent as `high` and unknown levels as `medium`; thinking without a level
    /// is `medium` (the agent's default `thinkingLevel`). `None` sends nothing (the model's own
    /// default): no tags, or `<enable_deep_thinking>false</enable_deep_thinking>` (which wins
    /// over a level).
    pub(crate) fn reasoning_effort(&self) -> Option<&'static str> {
        if self.deep_thinking != Some(true) {
            return None;
        }
        Some(match self.level.as_deref() {
            Some("minimal") => "minimal",
            Some("low") => "low",
            Some("high" | "xhigh" | "max") => "high",
            _ => "medium",
        })
    }
}

fn flag(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// The text after the leading control tags, and what they asked for.
fn split_tags(text: &str) -> (String, Controls) {
    let mut controls = Controls::default();
    let mut rest = text.trim_start();
    'again: loop {
        for tag in CONTROL_TAGS {
            let open = format!("<{tag}>");
            let close = format!("</{tag}>");
            if let Some(after) = rest.strip_prefix(&open)
                && let Some(end) = after.find(&close)
            {
                let value = after[..end].trim();
                match tag {
                    "enable_plan" => controls.plan = flag(value).or(controls.plan),
                    "enable_deep_thinking" => {
                        controls.deep_thinking = flag(value).or(controls.deep_thinking);
                    }
                    _ if !value.is_empty() => {
                        controls.level = Some(value.to_ascii_lowercase());
                    }
                    _ => {}
                }
                rest = after[end + close.len()..].trim_start();
                continue 'again;
            }
        }
        if controls.level.is_some() && controls.deep_thinking.is_none() {
            controls.deep_thinking = Some(true);
        }
        return (rest.to_owned(), controls);
    }
}

fn strip_tags(text: &str) -> String {
    split_tags(text).0
}

/// What the leading control tags of a message (a string, or its first text part) ask for.
pub(crate) fn controls_of(content: &Value) -> Controls {
    match content {
        Value::String(s) => split_tags(s).1,
        Value::Array(parts) => parts
            .iter()
            .find(|p| p["type"] == "text")
            .and_then(|p| p["text"].as_str())
            .map(|t| split_tags(t).1)
            .unwrap_or_default(),
        _ => Controls::default(),
    }
}

/// A message's content for a model without image input: image parts become markdown links
/// `![name](url)` (the name is the part's `name`, else the URL's file name, else `image`) and
/// the parts join into one text. Content without images is unchanged.
pub(crate) fn without_images(content: &Value) -> Value {
    let Value::Array(parts) = content else {
        return content.clone();
    };
    if !parts.iter().any(|p| p["type"] == "image_url") {
        return content.clone();
    }
    let pieces: Vec<String> = parts
        .iter()
        .filter_map(|p| match p["type"].as_str() {
            Some("text") => p["text"].as_str().map(str::to_owned),
            Some("image_url") => {
                let url = p["image_url"]["url"]
                    .as_str()
                    .or_else(|| p["image_url"].as_str())?;
                let name = p["name"]
                    .as_str()
                    .or_else(|| p["image_url"]["name"].as_str())
                    .map(str::to_owned)
                    .unwrap_or_else(|| image_name(url));
                Some(format!("![{name}]({url})"))
            }
            _ => None,
        })
        .collect();
    Value::String(pieces.join("\n"))
}

fn image_name(url: &str) -> String {
    if url.starts_with("data:") {
        return "image".to_owned();
    }
    url.split(['?', '#'])
        .next()
        .and_then(|u| u.rsplit('/').next())
        .filter(|n| !n.is_empty() && !n.contains(':'))
        .map_or_else(|| "image".to_owned(), str::to_owned)
}

/// Every message of a model request made fit for the model: without image parts when it
/// does not take images.
pub(crate) fn fit_for_model(messages: &mut [Value], multimodal: bool) {
    if multimodal {
        return;
    }
    for m in messages {
        if m["content"].is_array() {
            let text = without_images(&m["content"]);
            m["content"] = text;
        }
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

/// Appends `section` to the system message that opens `messages`.
pub(crate) fn extend_system(messages: &mut [Value], section: &str) {
    if let Some(system) = messages.first_mut() {
        let text = system["content"].as_str().unwrap_or_default();
        system["content"] = json!(format!("{text}{section}"));
    }
}

/// The skills the model may load, appended to the system prompt.
pub(crate) fn skills_section(skills: &[tooling::skills::FrontMatter], language: &str) -> String {
    let mut out = String::from(if language == "zh" {
        "\n\n<skills>\n以下技能位于工作区的 skills/ 文件夹。任务适用某个技能时，先用 load_skill 按名称加载它，再按其说明执行。\n"
    } else {
        "\n\n<skills>\nThese skills are in the workspace folder skills/. When a task fits one, first call load_skill with its name, then follow its instructions.\n"
    });
    for skill in skills {
        out.push_str(&format!("- {}: {}\n", skill.name, skill.description));
    }
    out.push_str("</skills>");
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
    fn control_tags_ask_for_planning_and_a_reasoning_effort() {
        let c = controls_of(&json!(
            "<enable_plan>true</enable_plan><deep_thinking_level>XHigh</deep_thinking_level>Go"
        ));
        assert_eq!(c.plan, Some(true));
        assert_eq!(c.deep_thinking, Some(true), "a level implies thinking");
        assert_eq!(c.reasoning_effort(), Some("high"));
        let c = controls_of(&json!([{"type": "text",
            "text": "<enable_deep_thinking>true</enable_deep_thinking>Look"}]));
        assert_eq!((c.plan, c.reasoning_effort()), (None, Some("medium")));
        let c = controls_of(&json!(
            "<enable_deep_thinking>false</enable_deep_thinking>x"
        ));
        assert_eq!(c.reasoning_effort(), None);
        let c = controls_of(&json!("<thinking_level>low</thinking_level>x"));
        assert_eq!(c.reasoning_effort(), Some("low"));
        assert_eq!(controls_of(&json!("plain")), Controls::default());
        assert_eq!(controls_of(&json!("plain")).reasoning_effort(), None);
    }

    #[test]
    fn images_become_markdown_links_for_models_without_image_input() {
        let content = json!([{"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "https://x.test/up/cat.png?sig=1"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]);
        assert_eq!(
            without_images(&content),
            json!(
                "What is this?\n![cat.png](https://x.test/up/cat.png?sig=1)\n![image](data:image/png;base64,AAAA)"
            )
        );
        let mut messages = vec![json!({"role": "user", "content": content.clone()})];
        fit_for_model(&mut messages, true);
        assert_eq!(messages[0]["content"], content);
        fit_for_model(&mut messages, false);
        assert!(messages[0]["content"].is_string());
        assert_eq!(
            without_images(&json!([{"type": "text", "text": "t"}])),
            json!([{"type": "text", "text": "t"}])
        );
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
