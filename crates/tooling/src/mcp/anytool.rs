//! AnyTool: each user's built-in MCP server whose tools exist only as definitions (a name, a
//! description, JSON schemas of the arguments and of the result, examples, notes) and whose
//! results a model plays ("simulates"). Useful to prototype an agent before the real tool
//! exists. The model is the caller's (their provider, else the deployment default), reached
//! through the [`Simulator`] port the server implements.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::McpError;
use crate::tool::{Tool, ToolContext, ToolError};

/// The name of every user's AnyTool server.
pub const ANYTOOL: &str = "AnyTool";
/// Tools one AnyTool server may define.
pub const MAX_TOOLS: usize = 100;
const MAX_TEXT_CHARS: usize = 20_000;
const MAX_SCHEMA_BYTES: usize = 64 * 1024;

/// One simulated tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnyToolDef {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// JSON schema of the arguments (an object schema).
    #[serde(default)]
    pub parameters: Value,
    /// JSON schema of the result.
    #[serde(default)]
    pub returns: Value,
    #[serde(default)]
    pub prompt_template: String,
    #[serde(default)]
    pub example_input: Value,
    #[serde(default)]
    pub example_output: Value,
    #[serde(default)]
    pub notes: String,
}

fn text_of(raw: &Value, keys: &[&str], field: &'static str) -> Result<String, McpError> {
    let text = keys
        .iter()
        .find_map(|k| raw.get(*k).and_then(Value::as_str))
        .unwrap_or_default()
        .trim()
        .to_owned();
    if text.chars().count() > MAX_TEXT_CHARS || text.contains('\0') {
        return Err(McpError::invalid(
            field,
            format!("must be at most {MAX_TEXT_CHARS} characters"),
        ));
    }
    Ok(text)
}

fn object_of(raw: &Value, keys: &[&str], field: &'static str) -> Result<Value, McpError> {
    let value = keys
        .iter()
        .find_map(|k| raw.get(*k).filter(|v| !v.is_null()))
        .cloned()
        .unwrap_or_else(|| json!({}));
    if !value.is_object() {
        return Err(McpError::invalid(field, "must be a JSON object"));
    }
    if value.to_string().len() > MAX_SCHEMA_BYTES {
        return Err(McpError::invalid(
            field,
            format!("must be at most {MAX_SCHEMA_BYTES} bytes of JSON"),
        ));
    }
    Ok(value)
}

/// Any JSON value (an example), bounded.
fn example_of(raw: &Value, keys: &[&str], field: &'static str) -> Result<Value, McpError> {
    let value = keys
        .iter()
        .find_map(|k| raw.get(*k).filter(|v| !v.is_null()))
        .cloned()
        .unwrap_or_else(|| json!({}));
    if value.to_string().len() > MAX_SCHEMA_BYTES {
        return Err(McpError::invalid(
            field,
            format!("must be at most {MAX_SCHEMA_BYTES} bytes of JSON"),
        ));
    }
    Ok(value)
}

/// A definition as the web UI sends it, checked: a name a model can call (1–64 of
/// `A-Z a-z 0-9 _ -`), object schemas, bounded texts.
pub fn normalize(raw: &Value) -> Result<AnyToolDef, McpError> {
    if !raw.is_object() {
        return Err(McpError::invalid("tool_definition", "must be an object"));
    }
    let name = raw
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim()
        .to_owned();
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(McpError::invalid(
            "tool_definition.name",
            "must be 1 to 64 letters, digits, `_` or `-` (no spaces)",
        ));
    }
    let mut parameters = object_of(raw, &["parameters", "input_schema"], "parameters")?;
    if parameters.as_object().is_some_and(Map::is_empty) {
        parameters = json!({"type": "object", "properties": {}});
    }
    Ok(AnyToolDef {
        name,
        description: text_of(raw, &["description"], "description")?,
        parameters,
        returns: object_of(raw, &["returns"], "returns")?,
        prompt_template: text_of(raw, &["prompt_template", "prompt"], "prompt_template")?,
        example_input: example_of(raw, &["example_input", "example"], "example_input")?,
        example_output: example_of(raw, &["example_output"], "example_output")?,
        notes: text_of(raw, &["notes"], "notes")?,
    })
}

/// A list of definitions (an AnyTool server's `tools`), each checked, names unique.
pub fn normalize_all(raw: &[Value]) -> Result<Vec<AnyToolDef>, McpError> {
    if raw.len() > MAX_TOOLS {
        return Err(McpError::invalid(
            "tools",
            format!("at most {MAX_TOOLS} tools"),
        ));
    }
    let mut out: Vec<AnyToolDef> = Vec::with_capacity(raw.len());
    for def in raw {
        let def = normalize(def)?;
        if out.iter().any(|d| d.name == def.name) {
            return Err(McpError::invalid(
                "tools",
                format!("`{}` is defined twice", def.name),
            ));
        }
        out.push(def);
    }
    Ok(out)
}

/// The simulator's settings, checked (an object; `system_prompt` and `temperature` are
/// used). An `api_key` is dropped, never stored: tools are played with the user's own
/// provider, whose key is sealed (and whose base URL passed the outbound policy).
pub fn normalize_simulator(raw: Option<&Value>) -> Result<Value, McpError> {
    let mut settings = match raw {
        None | Some(Value::Null) => return Ok(json!({})),
        Some(v) => object_of(&json!({"simulator": v}), &["simulator"], "simulator")?,
    };
    if let Some(map) = settings.as_object_mut() {
        map.remove("api_key");
    }
    Ok(settings)
}

/// The temperature of the settings: a number or a numeric string, 0–2 (default 0.2).
fn temperature_of(settings: &Value) -> f64 {
    let t = &settings["temperature"];
    t.as_f64()
        .or_else(|| t.as_str().and_then(|s| s.trim().parse().ok()))
        .filter(|t: &f64| t.is_finite())
        .unwrap_or(0.2)
        .clamp(0.0, 2.0)
}

/// Why the model could not play a tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimulatorError {
    /// The user has no model to play it (no provider, no deployment default).
    NoModel,
    /// The model failed.
    Failed(String),
}

/// The model that plays AnyTool tools for a user.
#[async_trait]
pub trait Simulator: Send + Sync {
    /// The model's name and its answer to `messages` (JSON asked for), as `user_id`.
    async fn complete(
        &self,
        user_id: &str,
        messages: Vec<Value>,
        temperature: f64,
    ) -> Result<(String, String), SimulatorError>;
}

const DEFAULT_SYSTEM_PROMPT: &str = "You are an AnyTool simulator for Sage. Return only valid JSON. \
     Use the tool definition, input schema, and output schema to produce a realistic result.";

fn messages(server: &str, def: &AnyToolDef, arguments: &Value, simulator: &Value) -> Vec<Value> {
    let system = simulator["system_prompt"]
        .as_str()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or(DEFAULT_SYSTEM_PROMPT);
    let context = json!({
        "server_name": server,
        "tool_name": def.name,
        "tool_description": def.description,
        "input_schema": def.parameters,
        "returns_schema": def.returns,
        "example_input": def.example_input,
        "example_output": def.example_output,
        "arguments": arguments,
        "notes": def.notes,
        "prompt_template": def.prompt_template,
    });
    let pretty = serde_json::to_string_pretty(&context).unwrap_or_else(|_| context.to_string());
    vec![
        json!({"role": "system", "content": system}),
        json!({"role": "user", "content": format!(
            "Simulate the following tool call and respond with JSON only.\n{pretty}\n\n\
             If the tool definition includes a prompt_template, treat it as additional guidance.\n\
             Do not include markdown fences or explanations."
        )}),
    ]
}

/// The JSON in a model's answer: the whole text, a fenced block, or the outermost braces;
/// otherwise `{content, _parse_error}`.
pub fn parse_answer(raw: &str) -> Value {
    let text = raw.trim();
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return v;
    }
    let fenced = text
        .split_once("```")
        .map(|(_, rest)| rest.trim_start_matches("json").trim_start())
        .and_then(|rest| rest.split_once("```"))
        .map(|(inner, _)| inner.trim());
    if let Some(v) = fenced.and_then(|f| serde_json::from_str::<Value>(f).ok()) {
        return v;
    }
    if let (Some(start), Some(end)) = (text.find('{'), text.rfind('}'))
        && end > start
        && let Ok(v) = serde_json::from_str::<Value>(&text[start..=end])
    {
        return v;
    }
    json!({"content": raw, "_parse_error": "unable to parse JSON from model output"})
}

/// Plays one call: `{server_name, tool_name, model, raw_text, parsed, tool_definition,
/// arguments}` (Sage's shape). `session_id` and `user_id` arguments are dropped.
pub async fn simulate(
    simulator: &dyn Simulator,
    user_id: &str,
    server: &str,
    def: &AnyToolDef,
    arguments: Value,
    settings: &Value,
) -> Result<Value, McpError> {
    let mut arguments = match arguments {
        Value::Object(map) => map,
        Value::Null => Map::new(),
        _ => return Err(McpError::invalid("arguments", "must be an object")),
    };
    arguments.remove("session_id");
    arguments.remove("user_id");
    let arguments = Value::Object(arguments);
    let temperature = temperature_of(settings);
    let (model, raw_text) = simulator
        .complete(
            user_id,
            messages(server, def, &arguments, settings),
            temperature,
        )
        .await
        .map_err(|e| match e {
            SimulatorError::NoModel => McpError::NoModel,
            SimulatorError::Failed(reason) => McpError::Server(reason),
        })?;
    Ok(json!({
        "server_name": server,
        "tool_name": def.name,
        "model": model,
        "parsed": parse_answer(&raw_text),
        "raw_text": raw_text,
        "tool_definition": def,
        "arguments": arguments,
    }))
}

/// An AnyTool tool in a run or a direct call.
pub(crate) struct AnyTool {
    pub simulator: Arc<dyn Simulator>,
    pub user_id: String,
    pub server: String,
    pub def: AnyToolDef,
    pub settings: Value,
}

#[async_trait]
impl Tool for AnyTool {
    fn name(&self) -> &str {
        &self.def.name
    }
    fn description(&self, _language: &str) -> &str {
        &self.def.description
    }
    fn parameters(&self) -> Value {
        self.def.parameters.clone()
    }
    async fn call(&self, _ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        let result = simulate(
            self.simulator.as_ref(),
            &self.user_id,
            &self.server,
            &self.def,
            args,
            &self.settings,
        )
        .await
        .map_err(|e| ToolError::Failed(e.to_string()))?;
        Ok(json!({"server": self.server, "content": result["parsed"]}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_are_checked() {
        let def = normalize(
            &json!({"name": "search_customer", "description": " Finds. ",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
            "returns": {"type": "object"}, "prompt": "Be terse."}),
        )
        .unwrap();
        assert_eq!(def.description, "Finds.");
        assert_eq!(def.prompt_template, "Be terse.");
        assert_eq!(
            normalize(&json!({"name": "x"})).unwrap().parameters,
            json!({"type": "object", "properties": {}})
        );
        for bad in [
            json!({"name": "two words"}),
            json!({"name": ""}),
            json!({"name": "x", "parameters": [1]}),
            json!("x"),
        ] {
            assert!(normalize(&bad).is_err(), "{bad}");
        }
        assert!(normalize_all(&[json!({"name": "a"}), json!({"name": "a"})]).is_err());
        assert_eq!(
            normalize(&json!({"name": "x", "example_input": [1]}))
                .unwrap()
                .example_input,
            json!([1])
        );
    }

    #[test]
    fn simulator_settings_keep_no_key() {
        let s = normalize_simulator(Some(&json!({"api_key": "sk-secret", "temperature": "0.7"})))
            .unwrap();
        assert_eq!(s, json!({"temperature": "0.7"}));
        assert_eq!(temperature_of(&s), 0.7);
        assert_eq!(temperature_of(&json!({"temperature": 9})), 2.0);
        assert_eq!(temperature_of(&json!({})), 0.2);
    }

    #[test]
    fn answers_are_read_as_json_where_possible() {
        assert_eq!(parse_answer(" {\"v\": 1} "), json!({"v": 1}));
        assert_eq!(parse_answer("```json\n{\"v\": 2}\n```"), json!({"v": 2}));
        assert_eq!(parse_answer("Here: {\"v\": 3} done"), json!({"v": 3}));
        assert_eq!(parse_answer("no json")["content"], "no json");
    }
}
