//! `questionnaire_async` (and the blocking `questionnaire`, [`blocking`]): the model asks
//! the user structured questions. The tool checks the
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

/// `questionnaire`: Sage's blocking questionnaire. The web UI renders the call's arguments as
/// a form and posts the answers to `/api/questionnaires/{questionnaire_id}/submit`; the tool
/// waits for them (any replica: they pass through the `KvStore`) and answers them, or the
/// questions' defaults once `wait_time` is over.
pub mod blocking {
    use std::time::Duration;

    use async_trait::async_trait;
    use platform::store::{KvStore, StoreError};
    use serde_json::{Map, Value, json};

    use crate::{Tool, ToolContext, ToolError};

    pub const TOOL_NAME: &str = "questionnaire";
    /// The longest a questionnaire waits (`wait_time` is capped to it).
    pub const MAX_WAIT: Duration = Duration::from_secs(600);
    const DEFAULT_WAIT_SECS: u64 = 300;
    /// How long submitted answers wait for their questionnaire.
    const ANSWER_TTL: Duration = Duration::from_secs(3600);
    /// The largest answers (their JSON text, with the submission's time) kept for a
    /// questionnaire.
    pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
    /// How often the waiting tool looks for answers.
    const POLL: Duration = Duration::from_millis(250);
    const TYPES: [&str; 3] = ["single_choice", "multiple_choice", "text"];
    const MAX_ID_CHARS: usize = 128;

    fn key(user_id: &str, questionnaire_id: &str) -> String {
        format!("questionnaire:answers:{user_id}:{questionnaire_id}")
    }

    /// Whether `id` can name a questionnaire.
    pub fn valid_id(id: &str) -> bool {
        !id.is_empty()
            && id.chars().count() <= MAX_ID_CHARS
            && id
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
    }

    /// What became of submitted answers.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Submitted {
        /// Kept for the waiting tool.
        Kept,
        /// Answers were already waiting there; these were not kept.
        AlreadyWaiting,
        /// More than [`MAX_ANSWER_BYTES`] of JSON; not kept.
        TooLarge,
    }

    /// Keeps the caller's answers to their questionnaire `questionnaire_id` for the waiting
    /// tool (answers go to the caller's own questionnaires only: they are kept under the
    /// caller's id).
    pub async fn submit(
        kv: &dyn KvStore,
        user_id: &str,
        questionnaire_id: &str,
        answers: Map<String, Value>,
        is_auto_submit: bool,
    ) -> Result<Submitted, StoreError> {
        let record = json!({"answers": answers, "is_auto_submit": is_auto_submit,
            "submitted_at": chrono::Utc::now().to_rfc3339()});
        let bytes = serde_json::to_vec(&record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if bytes.len() > MAX_ANSWER_BYTES {
            return Ok(Submitted::TooLarge);
        }
        let kept = kv
            .set_if_absent(&key(user_id, questionnaire_id), &bytes, Some(ANSWER_TTL))
            .await?;
        Ok(if kept {
            Submitted::Kept
        } else {
            Submitted::AlreadyWaiting
        })
    }

    /// The questions checked (Sage's shape), or what is wrong with them.
    fn check(questions: &[Value]) -> Result<(), String> {
        if questions.is_empty() || questions.len() > super::MAX_QUESTIONS {
            return Err(format!(
                "`questions` takes 1 to {} questions",
                super::MAX_QUESTIONS
            ));
        }
        for (i, q) in questions.iter().enumerate() {
            let n = i + 1;
            if super::short_text(&q["id"]).is_none() || super::short_text(&q["title"]).is_none() {
                return Err(format!("question {n}: `id` and `title` are required"));
            }
            let kind = q["type"].as_str().unwrap_or_default();
            if !TYPES.contains(&kind) {
                return Err(format!(
                    "question {n}: `type` must be one of {}",
                    TYPES.join(", ")
                ));
            }
            if kind != "text" {
                let options = q["options"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                if options.is_empty() || options.len() > super::MAX_OPTIONS {
                    return Err(format!(
                        "question {n}: a choice needs 1 to {} `options`",
                        super::MAX_OPTIONS
                    ));
                }
                if options
                    .iter()
                    .any(|o| o["label"].as_str().is_none() || o["value"].as_str().is_none())
                {
                    return Err(format!(
                        "question {n}: every option has a `label` and a `value`"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Each question's default answer (`[]` or `""` when it has none).
    fn defaults(questions: &[Value]) -> Map<String, Value> {
        questions
            .iter()
            .filter_map(|q| {
                let id = q["id"].as_str()?;
                let default = match (&q["default"], q["type"].as_str()) {
                    (Value::Null, Some("multiple_choice")) => json!([]),
                    (Value::Null, _) => json!(""),
                    (v, _) => v.clone(),
                };
                Some((id.to_owned(), default))
            })
            .collect()
    }

    pub(crate) struct Questionnaire;

    #[async_trait]
    impl Tool for Questionnaire {
        fn name(&self) -> &str {
            TOOL_NAME
        }

        fn description(&self, language: &str) -> &str {
            if language == "zh" {
                "向用户展示问卷表单并等待其提交（单选、多选或文本题），返回用户的答案；超过 wait_time 未提交则返回各题的默认值。"
            } else {
                "Show the user a questionnaire form (single choice, multiple choice or text questions) and wait for their answers; past wait_time the questions' defaults are returned."
            }
        }

        fn parameters(&self) -> Value {
            json!({"type": "object", "properties": {
                "title": {"type": "string"},
                "questionnaire_id": {"type": "string", "description": "Names this questionnaire; the answers come back for it"},
                "questions": {"type": "array", "minItems": 1, "maxItems": super::MAX_QUESTIONS, "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "type": {"type": "string", "enum": TYPES},
                        "title": {"type": "string"},
                        "options": {"type": "array", "maxItems": super::MAX_OPTIONS, "items": {
                            "type": "object",
                            "properties": {"label": {"type": "string"}, "value": {"type": "string"}},
                            "required": ["label", "value"]
                        }},
                        "default": {"description": "an option's value (single), a list of values (multiple), or text"},
                        "placeholder": {"type": "string"},
                        "max_length": {"type": "integer"}
                    },
                    "required": ["id", "type", "title"]
                }},
                "wait_time": {"type": "integer", "minimum": 0, "maximum": MAX_WAIT.as_secs(),
                              "description": "Seconds to wait for the answers (default 300)"},
                "questionnaire_kind": {"type": "string", "enum": ["general", "plan_information", "plan_confirmation"]}
            }, "required": ["title", "questions", "questionnaire_id"]})
        }

        fn time_limit(&self) -> Option<Duration> {
            // The wait, and a little for the answer to be read.
            Some(MAX_WAIT + Duration::from_secs(5))
        }

        async fn call(&self, ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
            let id = args["questionnaire_id"]
                .as_str()
                .map(str::trim)
                .unwrap_or_default()
                .to_owned();
            if !valid_id(&id) {
                return Err(ToolError::Invalid(format!(
                    "`questionnaire_id` takes 1 to {MAX_ID_CHARS} letters, digits, `_`, `-`, `.` or `:`"
                )));
            }
            let questions = args["questions"].as_array().cloned().unwrap_or_default();
            check(&questions).map_err(ToolError::Invalid)?;
            let kind = args["questionnaire_kind"].as_str().unwrap_or("general");
            let wait = Duration::from_secs(
                args["wait_time"]
                    .as_u64()
                    .unwrap_or(DEFAULT_WAIT_SECS)
                    .min(MAX_WAIT.as_secs()),
            );
            let key = key(&ctx.user_id, &id);
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                let taken = ctx
                    .kv
                    .take(&key)
                    .await
                    .map_err(|e| ToolError::Failed(e.to_string()))?;
                if let Some(bytes) = taken {
                    let record: Value = serde_json::from_slice(&bytes).unwrap_or_default();
                    return Ok(json!({"success": true, "status": "submitted",
                        "message": "The user submitted the answers.",
                        "answers": record["answers"], "questionnaire_id": id,
                        "submitted_at": record["submitted_at"],
                        "is_auto_submit": record["is_auto_submit"].as_bool().unwrap_or(false),
                        "questionnaire_kind": kind}));
                }
                if tokio::time::Instant::now() >= deadline {
                    return Ok(json!({"success": true, "status": "timeout",
                        "message": "The user did not answer in time; these are the defaults.",
                        "answers": defaults(&questions), "questionnaire_id": id,
                        "questionnaire_kind": kind}));
                }
                tokio::select! {
                    () = ctx.cancel.cancelled() => return Err(ToolError::Cancelled),
                    () = tokio::time::sleep(
                        POLL.min(deadline.saturating_duration_since(tokio::time::Instant::now())),
                    ) => {}
                }
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn sages_question_shape_is_checked_and_defaults_fill_a_timeout() {
            let questions = vec![
                json!({"id": "size", "type": "single_choice", "title": "Size?",
                       "options": [{"label": "Small", "value": "s"}], "default": "s"}),
                json!({"id": "extras", "type": "multiple_choice", "title": "Extras?",
                       "options": [{"label": "Milk", "value": "milk"}]}),
                json!({"id": "note", "type": "text", "title": "Anything else?"}),
            ];
            assert!(check(&questions).is_ok());
            assert_eq!(
                Value::Object(defaults(&questions)),
                json!({"size": "s", "extras": [], "note": ""})
            );
            for bad in [
                json!({"id": "a", "type": "rating", "title": "How?"}),
                json!({"type": "text", "title": "No id"}),
                json!({"id": "b", "type": "single_choice", "title": "Pick", "options": ["x"]}),
                json!({"id": "c", "type": "multiple_choice", "title": "Pick", "options": []}),
            ] {
                assert!(check(std::slice::from_ref(&bad)).is_err(), "{bad}");
            }
            assert!(valid_id("q_1-a.b:c") && !valid_id("") && !valid_id("a/b"));
        }
    }
}
