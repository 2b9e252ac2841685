//! Generation with the caller's LLM: agent drafts from a description, system-prompt
//! optimisation, and ability cards. Model output must be a JSON object; a reply wrapped in
//! prose or a code fence is repaired by taking its outermost object, anything else is a clear
//! upstream error (502), never a 500.

use serde_json::{Map, Value, json};

use crate::{AgentError, Language};

/// The first balanced `{…}` in `text`, parsed.
pub(crate) fn extract_object(text: &str) -> Option<Map<String, Value>> {
    if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text.trim()) {
        return Some(map);
    }
    let start = text.find('{')?;
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in text[start..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '{' if !in_string => depth += 1,
            '}' if !in_string => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return match serde_json::from_str::<Value>(&text[start..=start + i]) {
                        Ok(Value::Object(map)) => Some(map),
                        _ => None,
                    };
                }
            }
            _ => {}
        }
    }
    None
}

/// Characters of the caller's text in `messages` (the user turns): what the prompt cap
/// (`SAGE_MAX_PROMPT_CHARS`) applies to.
pub(crate) fn user_chars(messages: &[Value]) -> usize {
    messages
        .iter()
        .filter(|m| m["role"] == "user")
        .filter_map(|m| m["content"].as_str())
        .map(|c| c.chars().count())
        .sum()
}

/// The messages a job sends, checked against the cap before the job is queued or run.
pub(crate) fn job_messages(
    kind: &crate::JobKind,
    max_chars: usize,
) -> Result<Vec<Value>, AgentError> {
    let (field, messages) = match kind {
        crate::JobKind::AutoGenerate {
            description,
            tools,
            language,
        } => (
            "agent_description",
            draft_messages(description.trim(), tools, *language),
        ),
        crate::JobKind::OptimizePrompt {
            original,
            goal,
            language,
        } => (
            "original_prompt",
            optimize_messages(original, goal, *language),
        ),
    };
    platform::spend::check_input(field, user_chars(&messages), max_chars)?;
    Ok(messages)
}

pub(crate) fn language_name(language: Language) -> &'static str {
    match language {
        Language::En => "English",
        Language::Zh => "Simplified Chinese",
    }
}

pub(crate) fn draft_messages(
    description: &str,
    tools: &[String],
    language: Language,
) -> Vec<Value> {
    let tools = if tools.is_empty() {
        "(none)".to_owned()
    } else {
        tools.join(", ")
    };
    vec![
        json!({"role": "system", "content": format!(
            "You design AI agents. Reply with one JSON object only, no prose, with the keys: \
             name (short), description (one sentence), systemPrefix (a complete system prompt in \
             Markdown), availableTools (a subset of the tools offered), maxLoopCount (an integer \
             from 5 to 50). Write the texts in {}.", language_name(language))}),
        json!({"role": "user", "content": format!("Agent description: {description}\nTools offered: {tools}")}),
    ]
}

/// The auto-generate answer in Sage's shape.
pub(crate) fn draft(model_output: &str, offered: &[String]) -> Result<Value, AgentError> {
    let obj = extract_object(model_output).ok_or(AgentError::GenerationInvalid)?;
    let text = |k: &str| {
        obj.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let name = text("name");
    let system_prefix = text("systemPrefix");
    if name.is_empty() || system_prefix.is_empty() {
        return Err(AgentError::GenerationInvalid);
    }
    let tools: Vec<String> = obj
        .get("availableTools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|t| offered.is_empty() || offered.iter().any(|o| o == t))
        .map(str::to_owned)
        .collect();
    let loops = obj
        .get("maxLoopCount")
        .and_then(Value::as_u64)
        .filter(|n| (1..=10_000).contains(n))
        .unwrap_or(25);
    Ok(json!({
        "id": "",
        "name": name.chars().take(128).collect::<String>(),
        "description": text("description"),
        "systemPrefix": system_prefix,
        "deepThinking": false,
        "moreSupport": false,
        "maxLoopCount": loops,
        "llmConfig": {"model": "", "maxTokens": "", "temperature": ""},
        "availableTools": tools,
        "systemContext": {},
        "availableWorkflows": {},
        "exportTime": chrono::Utc::now().to_rfc3339(),
        "version": "1.0",
    }))
}

pub(crate) fn optimize_messages(original: &str, goal: &str, language: Language) -> Vec<Value> {
    vec![
        json!({"role": "system", "content": format!(
            "You improve system prompts for AI agents. Reply with one JSON object only, with the \
             keys: optimized_prompt (the improved prompt in Markdown), analysis (what you changed \
             and why), sections (a list of the section titles of the new prompt). Write in {}.",
            language_name(language))}),
        json!({"role": "user", "content": format!(
            "Optimization goal: {}\n\nOriginal prompt:\n{original}",
            if goal.trim().is_empty() { "clarity, structure and completeness" } else { goal })}),
    ]
}

pub(crate) fn optimized(
    model_output: &str,
    original: &str,
    goal: &str,
) -> Result<Value, AgentError> {
    let obj = extract_object(model_output).ok_or(AgentError::GenerationInvalid)?;
    let prompt = obj
        .get("optimized_prompt")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .ok_or(AgentError::GenerationInvalid)?
        .to_owned();
    let sections: Vec<Value> = obj
        .get("sections")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    Ok(json!({
        "success": true,
        "optimized_prompt": prompt,
        "analysis": obj.get("analysis").cloned().unwrap_or(Value::String(String::new())),
        "sections": sections,
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "optimization_details": {
            "original_length": original.chars().count(),
            "optimized_length": prompt.chars().count(),
            "optimization_goal": goal,
        },
    }))
}

pub(crate) fn ability_messages(
    agent: &Map<String, Value>,
    context: &str,
    language: Language,
) -> Vec<Value> {
    let name = agent
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let description = agent
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let prompt = agent
        .get("systemPrefix")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let tools = agent.get("availableTools").cloned().unwrap_or(Value::Null);
    vec![
        json!({"role": "system", "content": format!(
            "You write short ability cards that show users what an agent can do. Reply with one \
             JSON object only: {{\"items\": [{{\"id\", \"title\", \"description\", \"promptText\"}}]}} \
             with 3 to 6 items; promptText is a message the user could send to try it. Write in {}.",
            language_name(language))}),
        json!({"role": "user", "content": format!(
            "Agent: {name}\nDescription: {description}\nTools: {tools}\nSystem prompt:\n{prompt}\n\nContext: {context}")}),
    ]
}

pub(crate) fn abilities(model_output: &str) -> Result<Value, AgentError> {
    let obj = extract_object(model_output).ok_or(AgentError::GenerationInvalid)?;
    let items: Vec<Value> = obj
        .get("items")
        .and_then(Value::as_array)
        .ok_or(AgentError::GenerationInvalid)?
        .iter()
        .enumerate()
        .filter_map(|(i, item)| {
            let text = |k: &str| item.get(k).and_then(Value::as_str).map(str::to_owned);
            let title = text("title")?;
            Some(json!({
                "id": text("id").unwrap_or_else(|| format!("ability_{}", i + 1)),
                "title": title,
                "description": text("description").unwrap_or_default(),
                "promptText": text("promptText").unwrap_or_default(),
            }))
        })
        .collect();
    if items.is_empty() {
        return Err(AgentError::GenerationInvalid);
    }
    Ok(json!({"items": items}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_repaired_out_of_prose_and_fences() {
        let fenced = "Here you go:\n```json\n{\"name\": \"A {b}\", \"n\": 1}\n```\nEnjoy!";
        assert_eq!(extract_object(fenced).unwrap()["name"], "A {b}");
        assert!(extract_object("no json here").is_none());
        assert!(extract_object("{broken").is_none());
        assert!(draft("{\"name\": \"\"}", &[]).is_err());
        let ok = draft(r#"{"name":"Helper","systemPrefix":"Be good","availableTools":["web","nope"],"maxLoopCount":9}"#, &["web".into()]).unwrap();
        assert_eq!(ok["availableTools"], json!(["web"]));
        assert_eq!(ok["maxLoopCount"], 9);
        assert_eq!(ok["version"], "1.0");
    }
}
