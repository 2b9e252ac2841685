//! `questionnaire_async`: the model asks the user structured questions. The tool checks the
//! questions (types, texts, options, defaults) and answers them normalised with
//! `should_end: true`, so the run stops there; Sage's web UI renders the result as a form
//! whose answers come back as the user's next message (`<questionnaire-response>…`).

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use crate::{Tool, ToolContext, ToolError};

pub const TOOL_NAME: &str = "questionnaire_async";
const MAX_QUESTIONS: usize = 20;
const MAX_OPTIONS: usize = 20;
const MAX_TEXT_CHARS: usize = 2_000;
const TYPES: [&str; 3] = ["single_choice", "multi_choice", "free_text"];

pub(crate) struct Questionnaire;

fn short_text(v: &Value) -> Option<&str> {
    v.as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.chars().count() <= MAX_TEXT_CHARS)
}

/// One question normalised, or what is wrong with it.
fn question(i: usize, q: &Value) -> Result<Value, String> {
    let n = i + 1;
    let kind = q["type"]
        .as_str()
        .filter(|t| TYPES.contains(t))
        .ok_or_else(|| format!("question {n}: `type` must be one of {}", TYPES.join(", ")))?;
    let text = short_text(&q["text"])
        .or_else(|| short_text(&q["question"]))
        .ok_or_else(|| format!("question {n}: `text` is required"))?;
    let mut out = Map::new();
    let id = short_text(&q["id"]).map_or_else(|| format!("q{n}"), str::to_owned);
    out.insert("id".into(), json!(id));
    out.insert("type".into(), json!(kind));
    out.insert("text".into(), json!(text));
    if kind != "free_text" {
        let options: Vec<Value> = q["options"]
            .as_array()
            .map(|o| {
                o.iter()
                    .filter(|o| short_text(o).is_some() || short_text(&o["label"]).is_some())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if options.is_empty() || options.len() > MAX_OPTIONS {
            return Err(format!(
                "question {n}: a choice needs 1 to {MAX_OPTIONS} `options`"
            ));
        }
        out.insert("options".into(), Value::Array(options));
        if let Some(other) = q["allow_other"].as_bool() {
            out.insert("allow_other".into(), json!(other));
        }
    }
    match (&q["default"], kind) {
        (Value::Null, _) => {}
        (Value::String(_), "single_choice" | "free_text") | (Value::Array(_), "multi_choice") => {
            out.insert("default".into(), q["default"].clone());
        }
        _ => {
            return Err(format!(
                "question {n}: `default` does not suit a {kind} question"
            ));
        }
    }
    if let Some(placeholder) = short_text(&q["placeholder"]) {
        out.insert("placeholder".into(), json!(placeholder));
    }
    Ok(Value::Object(out))
}

#[async_trait]
impl Tool for Questionnaire {
    fn name(&self) -> &str {
        TOOL_NAME
    }

    fn description(&self, language: &str) -> &str {
        if language == "zh" {
            "向用户发起问卷（单选、多选或填空题）以获取继续所需的信息。调用后本轮结束，用户的回答会作为下一条消息到来。"
        } else {
            "Ask the user a questionnaire (single choice, multiple choice or free text) for what you need to go on. The turn ends with it; the answers arrive as the user's next message."
        }
    }

    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {
            "title": {"type": "string"},
            "questions": {"type": "array", "minItems": 1, "maxItems": MAX_QUESTIONS, "items": {
                "type": "object",
                "properties": {
                    "type": {"type": "string", "enum": TYPES},
                    "text": {"type": "string"},
                    "options": {"type": "array", "maxItems": MAX_OPTIONS, "items": {"type": "string"}},
                    "default": {"description": "an option (single), a list of options (multi), or text"},
                    "allow_other": {"type": "boolean"},
                    "placeholder": {"type": "string"}
                },
                "required": ["type", "text"]
            }}
        }, "required": ["questions"]})
    }

    async fn call(&self, _ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        let list = args["questions"].as_array().cloned().unwrap_or_default();
        if list.is_empty() || list.len() > MAX_QUESTIONS {
            return Err(ToolError::Invalid(format!(
                "`questions` takes 1 to {MAX_QUESTIONS} questions"
            )));
        }
        let mut questions = Vec::new();
        let mut errors = Vec::new();
        for (i, q) in list.iter().enumerate() {
            match question(i, q) {
                Ok(q) => questions.push(q),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(ToolError::Invalid(errors.join("; ")));
        }
        let title = args["title"].as_str().map(str::trim).unwrap_or_default();
        Ok(
            json!({"success": true, "status": "questionnaire_ready", "validation_passed": true,
                  "title": title, "question_count": questions.len(), "questions": questions,
                  "should_end": true}),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_are_checked_and_normalised() {
        let ok = question(
            0,
            &json!({"type": "single_choice", "text": "Size?", "options": ["S", "M"], "default": "M"}),
        )
        .unwrap();
        assert_eq!(ok["id"], "q1");
        assert_eq!(ok["options"], json!(["S", "M"]));
        for bad in [
            json!({"type": "rating", "text": "How?"}),
            json!({"type": "free_text"}),
            json!({"type": "multi_choice", "text": "Which?", "options": []}),
            json!({"type": "multi_choice", "text": "Which?", "options": ["a"], "default": "a"}),
        ] {
            assert!(question(0, &bad).is_err(), "{bad}");
        }
    }
}
