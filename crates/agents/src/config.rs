//! The agent configuration document (`AgentConfigDTO`, camelCase on the wire): which fields
//! exist, their types and defaults, and the tool-list normalisation per mode.
//!
//! The configuration is kept as a JSON object of known fields only: unknown keys are dropped
//! (as Sage's model does), known keys are type-checked with the field named on failure.

use serde_json::{Map, Value, json};

use crate::AgentError;

/// How an agent runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentMode {
    Simple,
    Fibre,
    Team,
}

impl AgentMode {
    /// `default` (the spec's example value) runs as `simple` and is kept as written.
    pub fn parse(text: &str) -> Option<AgentMode> {
        match text {
            "simple" | "default" => Some(AgentMode::Simple),
            "fibre" => Some(AgentMode::Fibre),
            "team" => Some(AgentMode::Team),
            _ => None,
        }
    }
}

/// A validated configuration (known fields only, defaults applied).
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig(pub Map<String, Value>);

impl AgentConfig {
    pub fn name(&self) -> &str {
        self.0
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    pub fn is_default(&self) -> bool {
        self.0
            .get("is_default")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    pub fn provider_id(&self) -> Option<&str> {
        self.0.get("llm_provider_id").and_then(Value::as_str)
    }

    /// The strings of a list field (`availableTools`, `availableSkills`, …); none when the
    /// field is absent.
    pub fn text_list(&self, key: &str) -> Vec<String> {
        strings(self.0.get(key))
    }
}

/// The strings of a JSON array (none when absent or not an array).
fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[derive(Clone, Copy)]
enum Kind {
    Text,
    OptText,
    Bool,
    TextList,
    Object,
    WorkflowMap,
}

/// Every stored field, its type, and its default in answers.
const FIELDS: &[(&str, Kind)] = &[
    ("name", Kind::Text),
    ("description", Kind::OptText),
    ("systemPrefix", Kind::OptText),
    ("systemContext", Kind::Object),
    ("availableWorkflows", Kind::WorkflowMap),
    ("availableTools", Kind::TextList),
    ("availableSubAgentIds", Kind::TextList),
    ("subAgentSelectionMode", Kind::OptText),
    ("availableSkills", Kind::TextList),
    ("availableKnowledgeBases", Kind::TextList),
    ("memoryType", Kind::OptText),
    ("deepThinking", Kind::Bool),
    ("thinkingLevel", Kind::OptText),
    ("llm_provider_id", Kind::OptText),
    ("fast_llm_provider_id", Kind::OptText),
    ("enableMultimodal", Kind::Bool),
    ("multiAgent", Kind::Bool),
    ("agentMode", Kind::OptText),
    ("is_default", Kind::Bool),
];

/// Legacy snake_case spellings still accepted on input.
const ALIASES: &[(&str, &str)] = &[
    ("system_prefix", "systemPrefix"),
    ("system_context", "systemContext"),
    ("available_workflows", "availableWorkflows"),
    ("available_tools", "availableTools"),
    ("available_sub_agent_ids", "availableSubAgentIds"),
    ("sub_agent_selection_mode", "subAgentSelectionMode"),
    ("available_skills", "availableSkills"),
    ("available_knowledge_bases", "availableKnowledgeBases"),
    ("memory_type", "memoryType"),
    ("max_loop_count", "maxLoopCount"),
    ("deep_thinking", "deepThinking"),
    ("thinking_level", "thinkingLevel"),
    ("enable_multimodal", "enableMultimodal"),
    ("agent_mode", "agentMode"),
    ("multi_agent", "multiAgent"),
    ("llmProviderId", "llm_provider_id"),
];

/// Longest `systemPrefix` and `systemContext`/`availableWorkflows` (serialised), in characters.
pub const MAX_PROMPT_CHARS: usize = 65_536;
/// Longest `description`.
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;
/// Longest short text (modes, provider ids) and list entry.
pub const MAX_SHORT_CHARS: usize = 256;
/// Most entries of one list field.
pub const MAX_LIST_ITEMS: usize = 200;

/// Whether any string inside `value` (keys included) holds a NUL, which PostgreSQL cannot store.
fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// Bounds every field so one configuration stays small whatever the body limit is.
fn bound(field: &str, kind: Kind, value: &Value) -> Result<(), AgentError> {
    if has_nul(value) {
        return Err(AgentError::invalid(
            field,
            "must not contain NUL characters",
        ));
    }
    let too_long =
        |max: usize| AgentError::invalid(field, format!("must be at most {max} characters"));
    match (kind, value) {
        (Kind::Text | Kind::OptText, Value::String(text)) => {
            let max = match field {
                "systemPrefix" => MAX_PROMPT_CHARS,
                "description" => MAX_DESCRIPTION_CHARS,
                "name" => 128,
                _ => MAX_SHORT_CHARS,
            };
            if text.chars().count() > max {
                return Err(too_long(max));
            }
        }
        (Kind::TextList, Value::Array(items)) => {
            if items.len() > MAX_LIST_ITEMS {
                return Err(AgentError::invalid(
                    field,
                    format!("must have at most {MAX_LIST_ITEMS} entries"),
                ));
            }
            if items
                .iter()
                .filter_map(Value::as_str)
                .any(|t| t.chars().count() > MAX_SHORT_CHARS)
            {
                return Err(AgentError::invalid(
                    field,
                    format!("entries must be at most {MAX_SHORT_CHARS} characters"),
                ));
            }
        }
        (Kind::Object | Kind::WorkflowMap, Value::Object(_))
            if value.to_string().chars().count() > MAX_PROMPT_CHARS =>
        {
            return Err(AgentError::invalid(
                field,
                format!("must be at most {MAX_PROMPT_CHARS} characters as JSON"),
            ));
        }
        _ => {}
    }
    Ok(())
}

const SPAWN_TOOLS: [&str; 2] = ["sys_spawn_agent", "sys_delegate_task"];
const TEAM_TOOL: &str = "sys_team_delegate_task";

fn check(field: &str, kind: Kind, value: &Value) -> Result<(), AgentError> {
    let ok = match kind {
        Kind::Text | Kind::OptText => {
            value.is_string() || (matches!(kind, Kind::OptText) && value.is_null())
        }
        // The web UI sends `null` for a switch it never showed: unset.
        Kind::Bool => value.is_boolean() || value.is_null(),
        Kind::TextList => {
            value.is_null()
                || value
                    .as_array()
                    .is_some_and(|a| a.iter().all(Value::is_string))
        }
        Kind::Object => value.is_null() || value.is_object(),
        Kind::WorkflowMap => {
            value.is_null()
                || value.as_object().is_some_and(|m| {
                    m.values()
                        .all(|v| v.as_array().is_some_and(|a| a.iter().all(Value::is_string)))
                })
        }
    };
    if ok {
        Ok(())
    } else {
        let expected = match kind {
            Kind::Text => "a string",
            Kind::OptText => "a string or null",
            Kind::Bool => "true, false or null",
            Kind::TextList => "a list of strings",
            Kind::Object => "an object",
            Kind::WorkflowMap => "an object of string lists",
        };
        Err(AgentError::invalid(field, format!("must be {expected}")))
    }
}

/// Validates a submitted configuration (create or full update) and normalises it.
pub fn normalise(input: &Map<String, Value>) -> Result<AgentConfig, AgentError> {
    let mut source = input.clone();
    for (legacy, modern) in ALIASES {
        if let Some(v) = source.remove(*legacy) {
            source.entry((*modern).to_owned()).or_insert(v);
        }
    }
    let mut out = Map::new();
    for (field, kind) in FIELDS {
        if let Some(value) = source.get(*field) {
            check(field, *kind, value)?;
            bound(field, *kind, value)?;
            if !value.is_null() || field.ends_with("provider_id") {
                out.insert((*field).to_owned(), value.clone());
            }
        }
    }
    let name = out
        .get("name")
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    if name.is_empty() {
        return Err(AgentError::invalid("name", "is required"));
    }
    if name.chars().any(char::is_control) {
        return Err(AgentError::invalid(
            "name",
            "must not contain control characters",
        ));
    }
    if name.chars().count() > 128 {
        return Err(AgentError::invalid(
            "name",
            "must be at most 128 characters",
        ));
    }
    out.insert("name".into(), json!(name));
    match source.get("maxLoopCount") {
        Some(Value::Number(n)) if n.as_u64().is_some_and(|v| (1..=10_000).contains(&v)) => {
            out.insert("maxLoopCount".into(), Value::Number(n.clone()));
        }
        Some(_) => {
            return Err(AgentError::invalid(
                "maxLoopCount",
                "must be a whole number from 1 to 10000",
            ));
        }
        None => return Err(AgentError::invalid("maxLoopCount", "is required")),
    }
    let mode = match out.get("agentMode").and_then(Value::as_str) {
        None => None,
        Some(m) => Some(
            AgentMode::parse(m)
                .ok_or_else(|| AgentError::invalid("agentMode", "must be simple, fibre or team"))?,
        ),
    };
    if let Some(memory) = out.get("memoryType").and_then(Value::as_str)
        && !matches!(memory, "session" | "user")
    {
        return Err(AgentError::invalid("memoryType", "must be session or user"));
    }
    if let Some(selection) = out.get("subAgentSelectionMode").and_then(Value::as_str)
        && !matches!(selection, "manual" | "auto_all")
    {
        return Err(AgentError::invalid(
            "subAgentSelectionMode",
            "must be manual or auto_all",
        ));
    }
    // Tool-list normalisation per mode.
    let mut tools: Vec<String> = strings(out.get("availableTools"));
    let add = |tools: &mut Vec<String>, t: &str| {
        if !tools.iter().any(|x| x == t) {
            tools.push(t.to_owned());
        }
    };
    if out.get("memoryType").and_then(Value::as_str) == Some("user") {
        add(&mut tools, "search_memory");
    }
    match mode {
        Some(AgentMode::Fibre) => {
            for t in SPAWN_TOOLS {
                add(&mut tools, t);
            }
            tools.retain(|t| t != TEAM_TOOL);
        }
        Some(AgentMode::Team) => {
            add(&mut tools, TEAM_TOOL);
            tools.retain(|t| !SPAWN_TOOLS.contains(&t.as_str()));
        }
        _ => tools.retain(|t| t != TEAM_TOOL && !SPAWN_TOOLS.contains(&t.as_str())),
    }
    if out.contains_key("availableTools") || !tools.is_empty() {
        out.insert("availableTools".into(), json!(tools));
    }
    Ok(AgentConfig(out))
}

/// The answer form: every field present (null when unset), with defaults applied.
pub fn with_defaults(config: &AgentConfig) -> Map<String, Value> {
    let mut out = Map::new();
    for (field, kind) in FIELDS {
        let default = match (*field, kind) {
            ("deepThinking" | "enableMultimodal" | "multiAgent" | "is_default", _) => json!(false),
            ("thinkingLevel", _) => json!("medium"),
            _ => Value::Null,
        };
        out.insert(
            (*field).to_owned(),
            config.0.get(*field).cloned().unwrap_or(default),
        );
    }
    out.insert(
        "maxLoopCount".into(),
        config.0.get("maxLoopCount").cloned().unwrap_or(Value::Null),
    );
    out
}

/// The `AgentConfigDTO` of a stored agent as JSON text, assembled from the stored
/// configuration (JSON written by [`normalise`]'s output) without parsing it into values: each
/// field's stored text is copied as it is, missing fields get [`with_defaults`]'s defaults.
/// Produces the same document as serialising [`crate::Agent::to_dto`].
pub fn dto_json(
    id: &str,
    user_id: &str,
    created_at: &chrono::DateTime<chrono::Utc>,
    updated_at: &chrono::DateTime<chrono::Utc>,
    stored: &str,
) -> Result<Box<serde_json::value::RawValue>, serde_json::Error> {
    use serde_json::value::RawValue;
    let fields: std::collections::HashMap<std::borrow::Cow<'_, str>, &RawValue> =
        serde_json::from_str(stored)?;
    let mut entries: Vec<(&str, std::borrow::Cow<'_, str>)> = Vec::with_capacity(FIELDS.len() + 5);
    for (field, _) in FIELDS {
        let text = match fields.get(*field) {
            Some(raw) => std::borrow::Cow::Borrowed(raw.get()),
            None => std::borrow::Cow::Borrowed(match *field {
                "deepThinking" | "enableMultimodal" | "multiAgent" | "is_default" => "false",
                "thinkingLevel" => "\"medium\"",
                _ => "null",
            }),
        };
        entries.push((field, text));
    }
    entries.push((
        "maxLoopCount",
        std::borrow::Cow::Borrowed(fields.get("maxLoopCount").map_or("null", |raw| raw.get())),
    ));
    let string = |text: &str| serde_json::to_string(text).map(std::borrow::Cow::Owned);
    entries.push(("id", string(id)?));
    entries.push(("user_id", string(user_id)?));
    entries.push(("created_at", string(&created_at.to_rfc3339())?));
    entries.push(("updated_at", string(&updated_at.to_rfc3339())?));
    // serde_json's map (without `preserve_order`) writes keys in order.
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut out = String::with_capacity(stored.len() + 256);
    out.push('{');
    for (i, (key, value)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Keys are plain ASCII names: no escaping needed.
        out.push('"');
        out.push_str(key);
        out.push_str("\":");
        out.push_str(value);
    }
    out.push('}');
    RawValue::from_string(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn field_of(e: AgentError) -> String {
        match e {
            AgentError::Invalid { field, .. } => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn required_fields_and_types_are_checked_with_the_field_named() {
        let cases = [
            (json!({"maxLoopCount": 3}), "name"),
            (json!({"name": "  ", "maxLoopCount": 3}), "name"),
            (json!({"name": "a"}), "maxLoopCount"),
            (json!({"name": "a", "maxLoopCount": 0}), "maxLoopCount"),
            (json!({"name": "a", "maxLoopCount": "10"}), "maxLoopCount"),
            (json!({"name": "a", "maxLoopCount": 2.5}), "maxLoopCount"),
            (
                json!({"name": "a", "maxLoopCount": 3, "agentMode": "turbo"}),
                "agentMode",
            ),
            (
                json!({"name": "a", "maxLoopCount": 3, "availableTools": "x"}),
                "availableTools",
            ),
            (
                json!({"name": "a", "maxLoopCount": 3, "deepThinking": "yes"}),
                "deepThinking",
            ),
            (
                json!({"name": "a", "maxLoopCount": 3, "memoryType": "forever"}),
                "memoryType",
            ),
        ];
        for (input, field) in cases {
            assert_eq!(
                field_of(normalise(&map(input.clone())).unwrap_err()),
                field,
                "{input}"
            );
        }
    }

    #[test]
    fn tools_follow_the_mode() {
        let fibre = normalise(&map(
            json!({"name": "a", "maxLoopCount": 3, "agentMode": "fibre",
            "availableTools": ["web", "sys_team_delegate_task"], "memoryType": "user"}),
        ))
        .unwrap();
        assert_eq!(
            fibre.0["availableTools"],
            json!([
                "web",
                "search_memory",
                "sys_spawn_agent",
                "sys_delegate_task"
            ])
        );
        let team = normalise(&map(
            json!({"name": "a", "maxLoopCount": 3, "agentMode": "team",
            "availableTools": ["sys_spawn_agent"]}),
        ))
        .unwrap();
        assert_eq!(team.0["availableTools"], json!(["sys_team_delegate_task"]));
        let simple = normalise(&map(json!({"name": "a", "maxLoopCount": 3,
            "availableTools": ["sys_delegate_task", "calc"]})))
        .unwrap();
        assert_eq!(simple.0["availableTools"], json!(["calc"]));
    }

    #[test]
    fn unknown_fields_are_dropped_and_legacy_names_read() {
        let c = normalise(&map(
            json!({"name": "a", "max_loop_count": 4, "system_prefix": "hi",
            "multiAgent": true, "id": "x", "futureField": 1}),
        ))
        .unwrap();
        assert_eq!(c.0["maxLoopCount"], 4);
        assert_eq!(c.0["systemPrefix"], "hi");
        assert_eq!(c.0["multiAgent"], true);
        assert!(!c.0.contains_key("futureField") && !c.0.contains_key("id"));
        let full = with_defaults(&c);
        assert_eq!(full["thinkingLevel"], "medium");
        assert_eq!(full["deepThinking"], false);
        assert!(full["availableSkills"].is_null());
    }

    #[test]
    fn every_field_is_bounded() {
        let base = json!({"name": "a", "maxLoopCount": 3});
        let long = |n: usize| "x".repeat(n);
        let cases = [
            ("systemPrefix", json!(long(MAX_PROMPT_CHARS + 1))),
            ("description", json!(long(MAX_DESCRIPTION_CHARS + 1))),
            ("agentMode", json!(long(MAX_SHORT_CHARS + 1))),
            ("llm_provider_id", json!(long(MAX_SHORT_CHARS + 1))),
            ("availableTools", json!(vec!["t"; MAX_LIST_ITEMS + 1])),
            ("availableSkills", json!([long(MAX_SHORT_CHARS + 1)])),
            ("systemContext", json!({"k": long(MAX_PROMPT_CHARS)})),
            ("availableWorkflows", json!({"w": [long(MAX_PROMPT_CHARS)]})),
        ];
        for (field, value) in cases {
            let mut input = map(base.clone());
            input.insert(field.to_owned(), value);
            assert_eq!(field_of(normalise(&input).unwrap_err()), field);
        }
        let mut nul = map(base.clone());
        nul.insert("systemContext".into(), json!({"k": ["a\u{0}b"]}));
        assert_eq!(field_of(normalise(&nul).unwrap_err()), "systemContext");
        let mut control = map(base.clone());
        control.insert("name".into(), json!("tab\there"));
        assert_eq!(field_of(normalise(&control).unwrap_err()), "name");
        let mut at_limit = map(base);
        at_limit.insert("systemPrefix".into(), json!(long(MAX_PROMPT_CHARS)));
        at_limit.insert("availableTools".into(), json!(vec!["t"; MAX_LIST_ITEMS]));
        assert!(normalise(&at_limit).is_ok());
    }

    #[test]
    fn the_assembled_dto_is_the_serialised_dto() {
        let created = chrono::Utc::now();
        let updated = created + chrono::Duration::seconds(5);
        let inputs = [
            json!({"name": "a", "maxLoopCount": 3}),
            json!({"name": "Zavix \"q\" \u{00e9}\n", "maxLoopCount": 100, "agentMode": "fibre",
                "availableTools": ["file_read", "todo_write"], "systemPrefix": "line\n\ttab \\ 默认",
                "systemContext": {"k": [1, 2.5, {"x": null}]}, "deepThinking": true,
                "availableWorkflows": {"w": ["s1", "s2"]}, "llm_provider_id": "p1"}),
            json!({"name": "b", "maxLoopCount": 1}),
        ];
        for input in inputs {
            let config = normalise(&map(input)).unwrap();
            let stored = serde_json::to_string(&config.0).unwrap();
            let agent = crate::Agent {
                id: "agent_x\"1".into(),
                user_id: "user_1".into(),
                config,
                created_at: created,
                updated_at: updated,
            };
            let assembled =
                dto_json(&agent.id, &agent.user_id, &created, &updated, &stored).unwrap();
            assert_eq!(
                assembled.get(),
                serde_json::to_string(&agent.to_dto()).unwrap()
            );
        }
        assert!(dto_json("a", "u", &created, &updated, "{not json").is_err());
    }
}
